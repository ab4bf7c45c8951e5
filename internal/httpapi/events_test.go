package httpapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/task"
)

// sseEvent is one event of a stream, or a comment.
type sseEvent struct {
	name, id, data, comment string
}

// eventReader reads an event stream.
type eventReader struct {
	resp *http.Response
	r    *bufio.Reader
}

// openEvents opens the event stream of task id with key and checks its
// headers.
func (s *testServer) openEvents(t *testing.T, key, id string) *eventReader {
	t.Helper()
	return s.reopenEvents(t, key, id, "")
}

// reopenEvents opens the event stream of task id as a client that
// reconnects after the event lastID (none: "").
func (s *testServer) reopenEvents(t *testing.T, key, id, lastID string) *eventReader {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url+"/api/v1/generate/events?taskId="+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("got HTTP %d, Content-Type %q, Cache-Control %q; want 200 text/event-stream no-cache",
			resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	return &eventReader{resp: resp, r: bufio.NewReader(resp.Body)}
}

// next reads the next event or comment; ok is false at the end of the
// stream. A stream that hangs fails the test after hangLimit.
func (e *eventReader) next(t *testing.T) (ev sseEvent, ok bool) {
	t.Helper()
	type result struct {
		ev  sseEvent
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var ev sseEvent
		for {
			line, err := e.r.ReadString('\n')
			if err != nil {
				ch <- result{ev, err}
				return
			}
			line = strings.TrimSuffix(line, "\n")
			if line == "" {
				ch <- result{ev, nil}
				return
			}
			field, value, _ := strings.Cut(line, ": ")
			switch field {
			case "":
				ev.comment = value
			case "event":
				ev.name = value
			case "id":
				ev.id = value
			case "data":
				ev.data = value
			default:
				t.Errorf("unknown line %q", line)
			}
		}
	}()
	select {
	case r := <-ch:
		return r.ev, r.err == nil
	case <-time.After(hangLimit):
		t.Fatal("no event within the hang limit")
		return sseEvent{}, false
	}
}

// wantStatus reads the next event and checks that it is the status event
// of status, with tracks tracks (-1: no response at all) and errorCode (0:
// null).
func (e *eventReader) wantStatus(t *testing.T, taskID string, status task.Status, tracks int, errorCode int) {
	t.Helper()
	ev, ok := e.next(t)
	if !ok || ev.name != "status" || ev.id != string(status) {
		t.Fatalf("got event %+v (stream open %v), want status %s", ev, ok, status)
	}
	var ri tunehook.RecordInfo
	if err := json.Unmarshal([]byte(ev.data), &ri); err != nil {
		t.Fatalf("%s: data %s: %v", status, ev.data, err)
	}
	if ri.TaskID != taskID || ri.Status != tunehook.Status(status) {
		t.Errorf("%s: got data of task %s at %s, want %s at %s", status, ri.TaskID, ri.Status, taskID, status)
	}
	switch {
	case tracks < 0 && ri.Response != nil:
		t.Errorf("%s: got response %+v, want null", status, ri.Response)
	case tracks >= 0 && (ri.Response == nil || len(ri.Response.SunoData) != tracks):
		t.Errorf("%s: got response %+v, want %d tracks", status, ri.Response, tracks)
	}
	if gotCode := ri.ErrorCode; (errorCode == 0) != (gotCode == nil) || (gotCode != nil && *gotCode != errorCode) {
		t.Errorf("%s: got errorCode %v, want %d (0: null)", status, gotCode, errorCode)
	}
}

// wantEnd reads the end event, then the end of the stream.
func (e *eventReader) wantEnd(t *testing.T) {
	t.Helper()
	if ev, ok := e.next(t); !ok || ev != (sseEvent{name: "end", data: "{}"}) {
		t.Errorf("got %+v (stream open %v), want the end event", ev, ok)
	}
	if ev, ok := e.next(t); ok {
		t.Errorf("got %+v after end, want the stream closed", ev)
	}
}

// A stream sends the current status, then every status the task reaches,
// in order, then end: also the statuses committed between two reads, which
// it rebuilds.
func TestEventsOrder(t *testing.T) {
	t.Parallel()
	changes := NewChanges()
	s := newTestServer(t, func(c *Config) {
		c.Changes = changes
		c.WaitPoll = time.Hour // the test says when the stream reads
	})
	id := s.createTask(t, testKey, customBody)
	text := &task.Text{Title: "Iron Man", Lyrics: "[Verse] la", Tags: "rock"}
	ev := s.openEvents(t, testKey, id)
	ev.wantStatus(t, id, task.StatusPending, -1, 0)

	s.commit(t, id, task.StageCommit{Text: text})
	changes.Notify(id)
	ev.wantStatus(t, id, task.StatusTextSuccess, 0, 0)

	// Two stages between two reads.
	s.commit(t, id, task.StageCommit{Track: s.testTrack(id, 0)})
	s.commit(t, id, task.StageCommit{Track: s.testTrack(id, 1)})
	changes.Notify(id)
	ev.wantStatus(t, id, task.StatusFirstSuccess, 1, 0)
	ev.wantStatus(t, id, task.StatusSuccess, 2, 0)
	ev.wantEnd(t)

	// A finished task: its final status, then end.
	again := s.openEvents(t, testKey, id)
	again.wantStatus(t, id, task.StatusSuccess, 2, 0)
	again.wantEnd(t)
}

// A client that reconnects with Last-Event-ID gets the statuses it missed,
// none twice; an ID of no status the task went through starts over at the
// current one.
func TestEventsResume(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	id := s.createTask(t, testKey, customBody)
	s.commit(t, id, task.StageCommit{Text: &task.Text{Title: "T", Lyrics: "la", Tags: "rock"}})
	s.commit(t, id, task.StageCommit{Track: s.testTrack(id, 0)})

	missed := s.reopenEvents(t, testKey, id, string(task.StatusPending))
	missed.wantStatus(t, id, task.StatusTextSuccess, 0, 0)
	missed.wantStatus(t, id, task.StatusFirstSuccess, 1, 0)

	s.commit(t, id, task.StageCommit{Track: s.testTrack(id, 1)})
	missed.wantStatus(t, id, task.StatusSuccess, 2, 0)
	missed.wantEnd(t)

	upToDate := s.reopenEvents(t, testKey, id, string(task.StatusSuccess))
	upToDate.wantEnd(t)

	for _, lastID := range []string{"SENSITIVE_WORD_ERROR", "garbage"} {
		other := s.reopenEvents(t, testKey, id, lastID)
		other.wantStatus(t, id, task.StatusSuccess, 2, 0)
		other.wantEnd(t)
	}
}

// A task that fails after first: the statuses before the failure are
// rebuilt without it; the failure comes last with its code. Polling alone
// finds the changes.
func TestEventsFailure(t *testing.T) {
	t.Parallel()
	var reads *readCounter
	s := newTestServer(t, countReads(&reads), func(c *Config) { c.WaitPoll = 20 * time.Millisecond })
	id := s.createTask(t, testKey, customBody)
	ev := s.openEvents(t, testKey, id)
	ev.wantStatus(t, id, task.StatusPending, -1, 0)
	reads.waitReads(t, id, 2)
	s.commit(t, id, task.StageCommit{Text: &task.Text{Title: "T", Lyrics: "la", Tags: "rock"}})
	s.commit(t, id, task.StageCommit{Track: s.testTrack(id, 0)})
	s.commit(t, id, task.StageCommit{Failure: task.NewFailure(400)})
	ev.wantStatus(t, id, task.StatusTextSuccess, 0, 0)
	ev.wantStatus(t, id, task.StatusFirstSuccess, 1, 0)
	ev.wantStatus(t, id, task.StatusSensitiveWordError, 1, 400)
	ev.wantEnd(t)
}

// A quiet stream gets keep-alive comments; when the server stops, the
// stream ends without an end event.
func TestEventsKeepAliveAndStop(t *testing.T) {
	t.Parallel()
	stop := make(chan struct{})
	s := newTestServer(t, func(c *Config) {
		c.KeepAlive = 20 * time.Millisecond
		c.Stop = stop
	})
	id := s.createTask(t, testKey, validBody)
	ev := s.openEvents(t, testKey, id)
	ev.wantStatus(t, id, task.StatusPending, -1, 0)
	for range 2 {
		if got, ok := ev.next(t); !ok || got != (sseEvent{comment: "keep-alive"}) {
			t.Fatalf("got %+v (stream open %v), want a keep-alive comment", got, ok)
		}
	}
	close(stop)
	for {
		got, ok := ev.next(t)
		if !ok {
			break
		}
		if got.comment != "keep-alive" {
			t.Errorf("got %+v after stop, want the stream closed", got)
		}
	}
}

// Errors found before the stream starts are envelopes.
func TestEventsErrors(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	theirs := s.createTask(t, otherKey, validBody)
	tests := []struct {
		query, key string
		wantCode   int
		wantMsg    string
	}{
		{"", testKey, task.CodeInvalid, "Please enter taskId."},
		{"?taskId=" + task.NewTaskID(), testKey, task.CodeNotFound, "Task not found."},
		{"?taskId=" + theirs, testKey, task.CodeNotFound, "Task not found."},
		{"?taskId=" + theirs, "", task.CodeUnauthorized, "Authentication required"},
	}
	for _, tt := range tests {
		wantError(t, s.do(t, http.MethodGet, "/api/v1/generate/events"+tt.query, tt.key, nil), http.StatusOK, tt.wantCode, tt.wantMsg)
	}
}

// reached and asOf rebuild the statuses a task went through.
func TestReached(t *testing.T) {
	t.Parallel()
	text := task.Text{Title: "T", Tags: "rock"}
	tracks := []task.Track{{ID: "a", Index: 0}, {ID: "b", Index: 1}}
	f := task.NewFailure(501)
	tests := []struct {
		name string
		t    task.Task
		want []task.Status
	}{
		{"pending", task.Task{Status: task.StatusPending}, []task.Status{"PENDING"}},
		{"text", task.Task{Status: task.StatusTextSuccess, Text: text}, []task.Status{"PENDING", "TEXT_SUCCESS"}},
		{"success", task.Task{Status: task.StatusSuccess, Text: text, Tracks: tracks},
			[]task.Status{"PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS", "SUCCESS"}},
		{"failed at once", task.Task{Status: f.Status(), Failure: f}, []task.Status{"PENDING", "GENERATE_AUDIO_FAILED"}},
		{"failed after text", task.Task{Status: f.Status(), Failure: f, Text: text},
			[]task.Status{"PENDING", "TEXT_SUCCESS", "GENERATE_AUDIO_FAILED"}},
		{"failed after first", task.Task{Status: f.Status(), Failure: f, Text: text, Tracks: tracks[:1]},
			[]task.Status{"PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS", "GENERATE_AUDIO_FAILED"}},
		{"refused at creation", task.Task{Status: task.StatusCreateTaskFailed, Failure: f}, []task.Status{"PENDING", "CREATE_TASK_FAILED"}},
	}
	for _, tt := range tests {
		got := reached(&tt.t)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
		for i, s := range got {
			v := asOf(&tt.t, s)
			wantTracks := max(i-1, 0)
			if s.Final() {
				wantTracks = len(tt.t.Tracks)
			}
			if v.Status != s || len(v.Tracks) != wantTracks || (v.Failure != nil) != (s == tt.t.Status && tt.t.Failure != nil) ||
				(v.Text == task.Text{}) != (i == 0 || tt.t.Text == task.Text{}) {
				t.Errorf("%s: asOf %s = %+v", tt.name, s, v)
			}
		}
	}
}

// A stream outlives the server's WriteTimeout.
func TestEventsOutliveWriteTimeout(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *Config) { c.KeepAlive = 20 * time.Millisecond })
	// A second server on the same store, with a short write timeout.
	h, err := NewServer(Config{Store: s.store, Media: s.media, Keys: []string{testKey}, KeepAlive: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.WriteTimeout = 100 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	id := s.createTask(t, testKey, validBody)
	ev := (&testServer{url: srv.URL}).openEvents(t, testKey, id)
	ev.wantStatus(t, id, task.StatusPending, -1, 0)
	deadline := time.Now().Add(500 * time.Millisecond) // five write timeouts
	for time.Now().Before(deadline) {
		if got, ok := ev.next(t); !ok || got.comment != "keep-alive" {
			t.Fatalf("got %+v (stream open %v), want the stream to go on", got, ok)
		}
	}
}
