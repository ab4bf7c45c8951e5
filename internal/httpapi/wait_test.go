package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/task"
)

func TestParseWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"", 0, false},
		{"0", 0, false},
		{"10", 10 * time.Second, false},
		{" 30 ", 30 * time.Second, false},
		{"2.5", 2500 * time.Millisecond, false},
		{"10s", 10 * time.Second, false},
		{"1500ms", 1500 * time.Millisecond, false},
		{"0s", 0, false},
		{"30s", 30 * time.Second, false},
		{"31", 0, true},
		{"30.001", 0, true},
		{"1m", 0, true},
		{"1e300", 0, true},
		{"-1", 0, true},
		{"-1s", 0, true},
		{"NaN", 0, true},
		{"Inf", 0, true},
		{"soon", 0, true},
		{"10 s", 0, true},
	}
	for _, tt := range tests {
		got, err := parseWait(tt.in)
		if tt.wantErr {
			e, ok := err.(*task.Error)
			if !ok || e.Code != task.CodeInvalid || e.Message[:4] != "wait" {
				t.Errorf("parseWait(%q): got %v, %v; want a 400 naming wait", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseWait(%q): got %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// readCounter is a task.Store that counts the reads of each task, so that
// a test knows when a request has started waiting.
type readCounter struct {
	task.Store
	mu sync.Mutex
	n  map[string]int
}

func (c *readCounter) Task(ctx context.Context, id string) (*task.Task, error) {
	c.mu.Lock()
	c.n[id]++
	c.mu.Unlock()
	return c.Store.Task(ctx, id)
}

// waitReads waits until task id has been read at least n times.
func (c *readCounter) waitReads(t *testing.T, id string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		got := c.n[id]
		c.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s read %d times, want %d", id, got, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// countReads is an option of newTestServer that counts the reads of tasks
// through the API into c.
func countReads(c **readCounter) func(*Config) {
	return func(cfg *Config) {
		*c = &readCounter{Store: cfg.Store, n: map[string]int{}}
		cfg.Store = *c
	}
}

// hangLimit is the most a request that must not wait may take: far below
// the waits the tests ask for, far above what an answer needs.
const hangLimit = 10 * time.Second

// getAsync sends a GET with key in the background; the answer (or the
// error, such as a timeout after hangLimit) comes on the channel.
func (s *testServer) getAsync(path, key string) <-chan answerOrError {
	ch := make(chan answerOrError, 1)
	go func() {
		req, err := http.NewRequest(http.MethodGet, s.url+path, nil)
		if err != nil {
			ch <- answerOrError{err: err}
			return
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := (&http.Client{Timeout: hangLimit}).Do(req)
		if err != nil {
			ch <- answerOrError{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- answerOrError{answer{status: resp.StatusCode, header: resp.Header, body: b}, err}
	}()
	return ch
}

type answerOrError struct {
	answer
	err error
}

// recordOf checks that a is a successful record-info answer and returns
// its record.
func recordOf(t *testing.T, a answerOrError) tunehook.RecordInfo {
	t.Helper()
	if a.err != nil {
		t.Fatalf("record-info: %v", a.err)
	}
	e := decodeEnvelope(t, a.answer, http.StatusOK)
	if e.Code != task.CodeOK {
		t.Fatalf("record-info: got code %d msg %q, want 200", e.Code, e.Msg)
	}
	var ri tunehook.RecordInfo
	if err := json.Unmarshal(e.Data, &ri); err != nil {
		t.Fatal(err)
	}
	return ri
}

// A long-poll answers when the task's status changes: at once when this
// process's runner says so through Changes, or at the next poll when the
// change comes from elsewhere (another instance).
func TestRecordInfoWaitChange(t *testing.T) {
	t.Parallel()
	for _, notify := range []bool{true, false} {
		name := map[bool]string{true: "notified", false: "polled"}[notify]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var reads *readCounter
			changes := NewChanges()
			s := newTestServer(t, countReads(&reads), func(c *Config) {
				c.Changes = changes
				c.WaitPoll = time.Hour // only a notification wakes the wait
				if !notify {
					c.WaitPoll = 20 * time.Millisecond
				}
			})
			id := s.createTask(t, testKey, validBody)
			got := s.getAsync("/api/v1/generate/record-info?wait=30&taskId="+id, testKey)
			// One read to check the key, one to start waiting.
			reads.waitReads(t, id, 2)
			s.commit(t, id, task.StageCommit{Text: &task.Text{Title: "T", Tags: "rock"}})
			if notify {
				changes.Notify(id)
			}
			if ri := recordOf(t, <-got); ri.Status != tunehook.StatusTextSuccess {
				t.Errorf("got status %s, want %s", ri.Status, tunehook.StatusTextSuccess)
			}
			// Notifying a task no one waits for is harmless.
			changes.Notify(id)
		})
	}
}

// A long-poll whose task does not change answers, when wait has passed,
// with the task unchanged.
func TestRecordInfoWaitTimeout(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *Config) { c.WaitPoll = 10 * time.Millisecond })
	id := s.createTask(t, testKey, validBody)
	for _, wait := range []string{"1", "300ms"} {
		if ri := recordOf(t, <-s.getAsync("/api/v1/generate/record-info?taskId="+id+"&wait="+wait, testKey)); ri.Status != tunehook.StatusPending {
			t.Errorf("wait=%s: got status %s, want the unchanged %s", wait, ri.Status, tunehook.StatusPending)
		}
	}
}

// A task in a final status never changes: a long-poll answers at once.
func TestRecordInfoWaitFinal(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	id := s.createTask(t, testKey, validBody)
	s.commit(t, id, task.StageCommit{Failure: task.NewFailure(501)})
	if ri := recordOf(t, <-s.getAsync("/api/v1/generate/record-info?wait=30&taskId="+id, testKey)); ri.Status != tunehook.StatusGenerateAudioFailed {
		t.Errorf("got status %s, want %s", ri.Status, tunehook.StatusGenerateAudioFailed)
	}
}

// When the server stops, the waiting long-polls answer at once, with the
// task unchanged.
func TestRecordInfoWaitStop(t *testing.T) {
	t.Parallel()
	var reads *readCounter
	stop := make(chan struct{})
	s := newTestServer(t, countReads(&reads), func(c *Config) { c.Stop = stop })
	id := s.createTask(t, testKey, validBody)
	got := s.getAsync("/api/v1/generate/record-info?wait=30&taskId="+id, testKey)
	reads.waitReads(t, id, 2)
	close(stop)
	if ri := recordOf(t, <-got); ri.Status != tunehook.StatusPending {
		t.Errorf("got status %s, want %s", ri.Status, tunehook.StatusPending)
	}
}

// Past MaxWaiters, a long-poll or an event stream is answered with code
// 430 and Retry-After; a record-info without wait is served as usual.
func TestWaitersBounded(t *testing.T) {
	t.Parallel()
	var reads *readCounter
	stop := make(chan struct{})
	s := newTestServer(t, countReads(&reads), func(c *Config) {
		c.MaxWaiters = 1
		c.Stop = stop
	})
	id := s.createTask(t, testKey, validBody)
	waiting := s.getAsync("/api/v1/generate/record-info?wait=30&taskId="+id, testKey)
	reads.waitReads(t, id, 2)
	for _, path := range []string{"/api/v1/generate/record-info?wait=5&taskId=" + id, "/api/v1/generate/events?taskId=" + id} {
		a := s.do(t, http.MethodGet, path, testKey, nil)
		wantError(t, a, http.StatusOK, task.CodeRateLimited, msgRateLimited)
		if ra := a.header.Get("Retry-After"); ra != "1" {
			t.Errorf("GET %s: got Retry-After %q, want 1", path, ra)
		}
	}
	s.recordInfo(t, testKey, id)
	close(stop)
	recordOf(t, <-waiting)
	// The slot is free again.
	if ri := recordOf(t, <-s.getAsync("/api/v1/generate/record-info?wait=1&taskId="+id, testKey)); ri.TaskID != id {
		t.Errorf("got task %s, want %s", ri.TaskID, id)
	}
}

func TestRecordInfoWaitErrors(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	mine := s.createTask(t, testKey, validBody)
	theirs := s.createTask(t, otherKey, validBody)
	tests := []struct {
		query    string
		wantCode int
		wantMsg  string
	}{
		{"?taskId=" + mine + "&wait=31", task.CodeInvalid, "wait must be from 0 to 30 seconds"},
		{"?taskId=" + mine + "&wait=forever", task.CodeInvalid, "wait must be"},
		{"?wait=10", task.CodeInvalid, "Please enter taskId."},
		{"?taskId=" + theirs + "&wait=10", task.CodeNotFound, "Task not found."},
		{"?taskId=" + task.NewTaskID() + "&wait=10", task.CodeNotFound, "Task not found."},
	}
	for _, tt := range tests {
		a := s.do(t, http.MethodGet, "/api/v1/generate/record-info"+tt.query, testKey, nil)
		wantError(t, a, http.StatusOK, tt.wantCode, tt.wantMsg)
	}
}
