package tunehook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
)

// callbackBody returns the body of a callback of stage ct for taskID, with
// as many tracks as the seed says.
func callbackBody(t *testing.T, taskID string, ct tunehook.CallbackType) []byte {
	t.Helper()
	cb := tunehook.Callback{Code: 200, Msg: "ok", Data: tunehook.CallbackData{CallbackType: ct, TaskID: taskID, Data: []tunehook.CallbackTrack{}}}
	switch ct {
	case tunehook.CallbackFirst, tunehook.CallbackComplete:
		n := map[tunehook.CallbackType]int{tunehook.CallbackFirst: 1, tunehook.CallbackComplete: 2}[ct]
		for i := range n {
			cb.Data.Data = append(cb.Data.Data, tunehook.CallbackTrack{ID: fmt.Sprintf("%s-track-%d", taskID, i), Title: "Iron Man", Duration: 198.44})
		}
	case tunehook.CallbackError:
		cb.Code, cb.Msg, cb.Data.Data = 501, "Audio generation failed.", nil
	}
	b, err := json.Marshal(cb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// delivery is one POST to a receiver.
type delivery struct {
	taskID string
	ct     tunehook.CallbackType
	id     string   // webhook-id; empty: unsigned, no id
	keys   [][]byte // signing keys; nil: unsigned
}

// post sends d to url and returns the status code and the answer.
func post(t *testing.T, url string, d delivery) (int, string) {
	t.Helper()
	body := callbackBody(t, d.taskID, d.ct)
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if d.keys != nil {
		tunehook.SignKeys(req.Header, d.keys, d.id, d.taskID, t0, body)
	} else if d.id != "" {
		req.Header.Set(tunehook.HeaderWebhookID, d.id)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(answer))
}

const (
	received  = `{"status":"received"}`
	duplicate = `{"status":"duplicate"}`
)

// recorder is a receiver function that records its calls, checks that no
// task is processed twice at once, and measures the concurrency.
type recorder struct {
	mu          sync.Mutex
	calls       []string // "task/type"
	running     map[string]int
	maxRunning  int
	overlapping bool              // two calls for one task ran at once
	fail        func(n int) error // the error of the n-th call (from 1) of a task's stage; nil: none
	attempts    map[string]int
	block       chan struct{} // when set, calls wait for it to close (or their context)
}

func newRecorder() *recorder {
	return &recorder{running: map[string]int{}, attempts: map[string]int{}}
}

func (r *recorder) fn(ctx context.Context, cb *tunehook.Callback) error {
	call := cb.Data.TaskID + "/" + string(cb.Data.CallbackType)
	r.mu.Lock()
	r.running[cb.Data.TaskID]++
	r.overlapping = r.overlapping || r.running[cb.Data.TaskID] > 1
	total := 0
	for _, n := range r.running {
		total += n
	}
	r.maxRunning = max(r.maxRunning, total)
	r.attempts[call]++
	n := r.attempts[call]
	block := r.block
	r.mu.Unlock()

	// Deferred, so that a call that panics is recorded too.
	defer func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.running[cb.Data.TaskID]--
		r.calls = append(r.calls, call)
	}()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if r.fail != nil {
		return r.fail(n)
	}
	return nil
}

func (r *recorder) callList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// startReceiver serves a Receiver around rec with opts (its clock fixed at
// t0 unless set) and returns it with its URL. The receiver is shut down at
// the end of the test.
func startReceiver(t *testing.T, rec *recorder, opts tunehook.ReceiverOptions) (*tunehook.Receiver, string) {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0 }
	}
	if opts.RetryDelays == nil {
		opts.RetryDelays = []time.Duration{time.Millisecond, time.Millisecond}
	}
	r := tunehook.NewReceiver(rec.fn, opts)
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		srv.Close()
		if err := r.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return r, srv.URL
}

// shutdown waits until r has processed everything it accepted.
func shutdown(t *testing.T, r *tunehook.Receiver) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestReceiverRefuses(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	_, url := startReceiver(t, rec, tunehook.ReceiverOptions{Keys: [][]byte{newKey}, MaxBodyBytes: 1000})
	good := callbackBody(t, "t1", tunehook.CallbackText)
	signedHeader := func(body []byte) http.Header {
		h := http.Header{}
		tunehook.SignKeys(h, [][]byte{newKey}, "msg_1", "t1", t0, body)
		return h
	}
	tests := []struct {
		name       string
		method     string
		body       []byte
		header     http.Header
		wantStatus int
		wantAnswer string
	}{
		{"GET", http.MethodGet, nil, nil, http.StatusMethodNotAllowed, "method not allowed"},
		{"body too large", http.MethodPost, []byte(strings.Repeat(" ", 1001)), nil, http.StatusRequestEntityTooLarge, "body larger than 1000 bytes"},
		{"unsigned", http.MethodPost, good, nil, http.StatusUnauthorized, "invalid signature: no signature"},
		{"wrong key", http.MethodPost, good, func() http.Header {
			h := http.Header{}
			tunehook.SignKeys(h, [][]byte{oldKey}, "msg_1", "t1", t0, good)
			return h
		}(), http.StatusUnauthorized, "signature does not match"},
		{"tampered body", http.MethodPost, callbackBody(t, "t1", tunehook.CallbackComplete), signedHeader(good), http.StatusUnauthorized, "signature does not match"},
		{"stale", http.MethodPost, good, func() http.Header {
			h := http.Header{}
			tunehook.SignKeys(h, [][]byte{newKey}, "msg_1", "t1", t0.Add(-time.Hour), good)
			return h
		}(), http.StatusUnauthorized, "timestamp too old"},
		{"not JSON", http.MethodPost, []byte("code=200"), signedHeader([]byte("code=200")), http.StatusBadRequest, "invalid callback"},
		{"not a callback", http.MethodPost, []byte(`{"code":200}`), signedHeader([]byte(`{"code":200}`)), http.StatusBadRequest, "invalid callback: no data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tt.method, url, strings.NewReader(string(tt.body)))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(answer), tt.wantAnswer) {
				t.Errorf("got %d %q, want %d with %q", resp.StatusCode, answer, tt.wantStatus, tt.wantAnswer)
			}
		})
	}
	t.Cleanup(func() {
		if calls := rec.callList(); len(calls) != 0 {
			t.Errorf("got calls %v for refused callbacks, want none", calls)
		}
	})
}

// Duplicates, signed or not, concurrent or replayed later, reach the
// function once: by webhook-id, else by task and stage.
func TestReceiverDeduplicates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		keys [][]byte // receiver's and sender's
		id   string
	}{
		{"signed, by webhook-id", [][]byte{newKey}, "msg_dup"},
		{"unsigned, by webhook-id", nil, "msg_dup"},
		{"unsigned, by task and stage", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			r, url := startReceiver(t, rec, tunehook.ReceiverOptions{Keys: tt.keys})
			d := delivery{taskID: "t1", ct: tunehook.CallbackComplete, id: tt.id, keys: tt.keys}

			const n = 10
			answers := make([]string, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					status, answer := post(t, url, d)
					if status != http.StatusOK {
						t.Errorf("got status %d, want 200", status)
					}
					answers[i] = answer
				})
			}
			wg.Wait()
			slices.Sort(answers)
			want := append([]string{received}, slices.Repeat([]string{duplicate}, n-1)...)
			slices.Sort(want)
			if !slices.Equal(answers, want) {
				t.Errorf("got answers %q, want one received, the rest duplicate", answers)
			}
			shutdown(t, r)
			if calls := rec.callList(); !slices.Equal(calls, []string{"t1/complete"}) {
				t.Errorf("got calls %v, want [t1/complete]", calls)
			}
		})
	}
}

// A replayed webhook id is acknowledged and never processed again, and a
// webhook id differs from a task and stage key: the same stage under
// another id is found stale instead.
func TestReceiverRejectsReplays(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	store := newNotifyingStore()
	_, url := startReceiver(t, rec, tunehook.ReceiverOptions{Keys: [][]byte{newKey}, Store: store})
	d := delivery{taskID: "t1", ct: tunehook.CallbackFirst, id: "msg_1", keys: [][]byte{newKey}}
	if status, answer := post(t, url, d); status != 200 || answer != received {
		t.Fatalf("got %d %s, want 200 %s", status, answer, received)
	}
	store.waitCompleted(t, "id:msg_1")
	if status, answer := post(t, url, d); status != 200 || answer != duplicate {
		t.Errorf("replay: got %d %s, want 200 %s", status, answer, duplicate)
	}
	d.id = "msg_2"
	if status, answer := post(t, url, d); status != 200 || answer != received {
		t.Errorf("same stage, new id: got %d %s, want 200 %s", status, answer, received)
	}
	store.waitCompleted(t, "id:msg_2")
	if calls := rec.callList(); !slices.Equal(calls, []string{"t1/first"}) {
		t.Errorf("got calls %v, want [t1/first]", calls)
	}
}

// Out-of-order stages never move a task backwards: a late stage that is
// not after the task's furthest processed stage is skipped.
func TestReceiverStageOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		arrivals  []tunehook.CallbackType
		wantCalls []tunehook.CallbackType
	}{
		{"in order", []tunehook.CallbackType{"text", "first", "complete"}, []tunehook.CallbackType{"text", "first", "complete"}},
		{"complete before first", []tunehook.CallbackType{"text", "complete", "first"}, []tunehook.CallbackType{"text", "complete"}},
		{"complete only, then the rest", []tunehook.CallbackType{"complete", "text", "first"}, []tunehook.CallbackType{"complete"}},
		{"first before text", []tunehook.CallbackType{"first", "text", "complete"}, []tunehook.CallbackType{"first", "complete"}},
		{"error is final", []tunehook.CallbackType{"text", "error", "first", "complete"}, []tunehook.CallbackType{"text", "error"}},
		{"no error after complete", []tunehook.CallbackType{"complete", "error"}, []tunehook.CallbackType{"complete"}},
		{"failure after first", []tunehook.CallbackType{"text", "first", "error"}, []tunehook.CallbackType{"text", "first", "error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			r, url := startReceiver(t, rec, tunehook.ReceiverOptions{})
			for i, ct := range tt.arrivals {
				// Distinct webhook ids, so that only the stage tracking can
				// tell a stale stage.
				if status, answer := post(t, url, delivery{taskID: "t1", ct: ct, id: fmt.Sprintf("msg_%d", i)}); status != 200 || answer != received {
					t.Fatalf("%s: got %d %s, want 200 %s", ct, status, answer, received)
				}
			}
			shutdown(t, r)
			var want []string
			for _, ct := range tt.wantCalls {
				want = append(want, "t1/"+string(ct))
			}
			if calls := rec.callList(); !slices.Equal(calls, want) {
				t.Errorf("got calls %v, want %v", calls, want)
			}
		})
	}
}

// Many tasks delivered at once, each stage several times and in any order:
// every task's furthest stage is processed, no stage twice, no task twice at
// once, and never more calls at once than Concurrency.
func TestReceiverConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	const concurrency, tasks, copies = 3, 20, 3
	r, url := startReceiver(t, rec, tunehook.ReceiverOptions{Keys: [][]byte{newKey, oldKey}, Concurrency: concurrency})
	var wg sync.WaitGroup
	for i := range tasks {
		taskID := fmt.Sprintf("task-%02d", i)
		for _, ct := range []tunehook.CallbackType{"text", "first", "complete"} {
			for c := range copies {
				wg.Go(func() {
					// Rotation on the sender's side: some copies are signed
					// with the old key only.
					keys := [][]byte{newKey}
					if c%2 == 1 {
						keys = [][]byte{oldKey}
					}
					d := delivery{taskID: taskID, ct: ct, id: taskID + "-" + string(ct), keys: keys}
					if status, _ := post(t, url, d); status != 200 {
						t.Errorf("%s %s: got status %d, want 200", taskID, ct, status)
					}
				})
			}
		}
	}
	wg.Wait()
	shutdown(t, r)

	calls := rec.callList()
	seen := map[string]bool{}
	for _, c := range calls {
		if seen[c] {
			t.Errorf("%s processed twice", c)
		}
		seen[c] = true
	}
	for i := range tasks {
		if c := fmt.Sprintf("task-%02d/complete", i); !seen[c] {
			t.Errorf("%s never processed", c)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.overlapping {
		t.Error("two callbacks of one task were processed at once")
	}
	if rec.maxRunning > concurrency {
		t.Errorf("got %d calls at once, want at most %d", rec.maxRunning, concurrency)
	}
}

// A failing call is retried after each delay; a panic counts as a failure.
func TestReceiverRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		fail         func(n int) error
		wantAttempts int
	}{
		{"succeeds at once", nil, 1},
		{"fails twice", func(n int) error {
			if n < 3 {
				return errors.New("database away")
			}
			return nil
		}, 3},
		{"panics once", func(n int) error {
			if n == 1 {
				panic("nil map")
			}
			return nil
		}, 2},
		{"always fails", func(int) error { return errors.New("broken") }, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			rec.fail = tt.fail
			r, url := startReceiver(t, rec, tunehook.ReceiverOptions{RetryDelays: []time.Duration{time.Millisecond, 2 * time.Millisecond}})
			post(t, url, delivery{taskID: "t1", ct: tunehook.CallbackComplete})
			shutdown(t, r)
			if got := len(rec.callList()); got != tt.wantAttempts {
				t.Errorf("got %d attempts, want %d", got, tt.wantAttempts)
			}
		})
	}
}

// A callback whose processing failed for good is released: the sender's
// next delivery of it is processed again; once processed, never again.
func TestReceiverReprocessesAfterFailure(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	rec.fail = func(n int) error {
		if n == 1 {
			return errors.New("broken")
		}
		return nil
	}
	store := newNotifyingStore()
	_, url := startReceiver(t, rec, tunehook.ReceiverOptions{Store: store, RetryDelays: []time.Duration{}})
	d := delivery{taskID: "t1", ct: tunehook.CallbackFirst, id: "msg_1"}
	post(t, url, d)
	store.waitReleased(t, "id:msg_1")
	if status, answer := post(t, url, d); status != 200 || answer != received {
		t.Fatalf("after the failure: got %d %s, want 200 %s", status, answer, received)
	}
	store.waitCompleted(t, "id:msg_1")
	if status, answer := post(t, url, d); status != 200 || answer != duplicate {
		t.Errorf("after the success: got %d %s, want 200 %s", status, answer, duplicate)
	}
	if calls := rec.callList(); !slices.Equal(calls, []string{"t1/first", "t1/first"}) {
		t.Errorf("got calls %v, want [t1/first t1/first]", calls)
	}
}

// Shutdown refuses new callbacks and waits for the accepted ones.
func TestReceiverShutdownWaits(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	rec.block = make(chan struct{})
	r, url := startReceiver(t, rec, tunehook.ReceiverOptions{})
	text := delivery{taskID: "t1", ct: tunehook.CallbackText}
	post(t, url, text)
	post(t, url, delivery{taskID: "t1", ct: tunehook.CallbackFirst})
	done := make(chan error, 1)
	go func() { done <- r.Shutdown(context.Background()) }()
	// Every callback is refused once shutdown began; the sender retries it.
	// (Until then the duplicate is acknowledged and dropped.)
	waitFor(t, "the receiver refuses callbacks", func() bool {
		status, _ := post(t, url, text)
		return status == http.StatusServiceUnavailable
	})
	select {
	case err := <-done:
		t.Fatalf("shutdown returned %v while a callback was processed", err)
	default:
	}
	close(rec.block)
	if err := <-done; err != nil {
		t.Fatalf("shutdown: got %v, want nil", err)
	}
	if calls := rec.callList(); !slices.Equal(calls, []string{"t1/text", "t1/first"}) {
		t.Errorf("got calls %v, want both accepted callbacks processed", calls)
	}
}

// When Shutdown's context ends it cancels the processing: the call in
// progress sees its context cancelled, and its claim is released.
func TestReceiverShutdownCancels(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	rec.block = make(chan struct{}) // never closed
	store := newNotifyingStore()
	r, url := startReceiver(t, rec, tunehook.ReceiverOptions{Store: store})
	post(t, url, delivery{taskID: "t1", ct: tunehook.CallbackText, id: "msg_1"})
	waitFor(t, "the call starts", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.running["t1"] == 1
	})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	store.waitReleased(t, "id:msg_1")
}

// Beyond QueueSize the receiver answers 503 and keeps no claim, so that the
// sender's retry is processed.
func TestReceiverQueueFull(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	rec.block = make(chan struct{})
	r, url := startReceiver(t, rec, tunehook.ReceiverOptions{QueueSize: 1})
	if status, _ := post(t, url, delivery{taskID: "t1", ct: tunehook.CallbackText}); status != 200 {
		t.Fatalf("first: got %d, want 200", status)
	}
	if status, answer := post(t, url, delivery{taskID: "t2", ct: tunehook.CallbackText}); status != http.StatusServiceUnavailable || answer != "receiver busy" {
		t.Errorf("second: got %d %q, want 503 receiver busy", status, answer)
	}
	close(rec.block)
	waitFor(t, "the first callback is processed", func() bool { return len(rec.callList()) == 1 })
	waitFor(t, "the retry is accepted", func() bool {
		status, _ := post(t, url, delivery{taskID: "t2", ct: tunehook.CallbackText})
		return status == http.StatusOK
	})
	shutdown(t, r)
	if calls := rec.callList(); !slices.Equal(calls, []string{"t1/text", "t2/text"}) {
		t.Errorf("got calls %v, want [t1/text t2/text]", calls)
	}
}

// A store that fails makes the receiver answer 500: the sender retries.
func TestReceiverStoreFailure(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	_, url := startReceiver(t, rec, tunehook.ReceiverOptions{Store: failingStore{}})
	if status, answer := post(t, url, delivery{taskID: "t1", ct: tunehook.CallbackText}); status != 500 || answer != "dedupe store unavailable" {
		t.Errorf("got %d %q, want 500 dedupe store unavailable", status, answer)
	}
}

// With a SQLDedupe a restarted receiver still knows what was processed:
// duplicates and stale stages stay out.
func TestReceiverRestartWithSQLDedupe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := func(deliveries ...delivery) []string {
		rec := newRecorder()
		store := newSQLDedupe(t, openSQLite(t, dir), tunehook.SQLDedupeOptions{})
		r, url := startReceiver(t, rec, tunehook.ReceiverOptions{Keys: [][]byte{newKey}, Store: store})
		for _, d := range deliveries {
			if status, _ := post(t, url, d); status != 200 {
				t.Fatalf("%+v: got status %d, want 200", d, status)
			}
		}
		shutdown(t, r)
		return rec.callList()
	}
	signed := func(ct tunehook.CallbackType, id string) delivery {
		return delivery{taskID: "t1", ct: ct, id: id, keys: [][]byte{newKey}}
	}
	if calls := run(signed("text", "msg_text"), signed("complete", "msg_complete")); !slices.Equal(calls, []string{"t1/text", "t1/complete"}) {
		t.Fatalf("before the restart: got calls %v, want [t1/text t1/complete]", calls)
	}
	if calls := run(signed("complete", "msg_complete"), signed("first", "msg_first"), signed("complete", "msg_complete_again")); len(calls) != 0 {
		t.Errorf("after the restart: got calls %v, want none", calls)
	}
}

// notifyingStore is a MemoryDedupe that tells when keys are completed or
// released, so that tests wait for the processing after the answer.
type notifyingStore struct {
	*tunehook.MemoryDedupe
	mu                  sync.Mutex
	completed, released map[string]int
}

func newNotifyingStore() *notifyingStore {
	return &notifyingStore{MemoryDedupe: tunehook.NewMemoryDedupe(0), completed: map[string]int{}, released: map[string]int{}}
}

func (s *notifyingStore) Complete(ctx context.Context, key string, until time.Time) error {
	err := s.MemoryDedupe.Complete(ctx, key, until)
	s.mu.Lock()
	s.completed[key]++
	s.mu.Unlock()
	return err
}

func (s *notifyingStore) Release(ctx context.Context, key string) error {
	err := s.MemoryDedupe.Release(ctx, key)
	s.mu.Lock()
	s.released[key]++
	s.mu.Unlock()
	return err
}

func (s *notifyingStore) waitCompleted(t *testing.T, key string) {
	t.Helper()
	waitFor(t, key+" is completed", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.completed[key] > 0
	})
}

func (s *notifyingStore) waitReleased(t *testing.T, key string) {
	t.Helper()
	waitFor(t, key+" is released", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.released[key] > 0
	})
}

// failingStore is a DedupeStore whose database is away.
type failingStore struct{}

var errStoreAway = errors.New("database away")

func (failingStore) Claim(context.Context, string, time.Time, time.Time) (bool, error) {
	return false, errStoreAway
}
func (failingStore) Complete(context.Context, string, time.Time) error { return errStoreAway }
func (failingStore) Release(context.Context, string) error             { return errStoreAway }
func (failingStore) Done(context.Context, time.Time, ...string) (bool, error) {
	return false, errStoreAway
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
