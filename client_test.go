package tunehook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/task"
)

const clientKey = "client-test-key"

// writeEnvelope answers like the reference: HTTP 200 under /api/ whatever
// the code, the code as the HTTP status elsewhere.
func writeEnvelope(w http.ResponseWriter, r *http.Request, code int, msg string, data any) {
	status := code
	if strings.HasPrefix(r.URL.Path, "/api/") {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"code": code, "msg": msg, "data": data})
}

// newAPI starts a server that checks the bearer key like the reference and
// passes authorized requests to h.
func newAPI(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") && r.Header.Get("Authorization") != "Bearer "+clientKey {
			writeEnvelope(w, r, 401, "Invalid API key.", nil)
			return
		}
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func ptr[T any](v T) *T { return &v }

// The request has exactly the fields the server accepts, under its names:
// the server's parser keeps every one of them, and none is missing.
func TestGenerateSendsTheAPIFields(t *testing.T) {
	t.Parallel()
	req := tunehook.GenerateRequest{
		CustomMode: true, Instrumental: false, Model: "V5", CallBackURL: "https://example.com/cb",
		Prompt: "[Verse] lights", Style: "rock", Title: "Night", NegativeTags: "jazz", VocalGender: "f",
		StyleWeight: ptr(0.5), WeirdnessConstraint: ptr(0.25), AudioWeight: ptr(0.75),
		PersonaID: "p1", PersonaModel: "style_persona", IdempotencyKey: "retry-1",
	}
	var got []byte
	var header http.Header
	srv := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/generate" {
			t.Errorf("got %s %s, want POST /api/v1/generate", r.Method, r.URL.Path)
		}
		got, _ = io.ReadAll(r.Body)
		header = r.Header.Clone()
		writeEnvelope(w, r, 200, "success", map[string]string{"taskId": "t1"})
	})
	id, err := tunehook.NewClient(srv.URL+"/", clientKey).Generate(t.Context(), req)
	if err != nil || id != "t1" {
		t.Fatalf("Generate: got %q, %v, want t1", id, err)
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q", ct)
	}
	if k := header.Get("Idempotency-Key"); k != "retry-1" {
		t.Errorf("Idempotency-Key: got %q, want retry-1", k)
	}

	parsed, err := task.ParseRequest(got)
	if err != nil {
		t.Fatalf("the server refuses the body %s: %v", got, err)
	}
	var sent, kept map[string]any
	json.Unmarshal(got, &sent)
	json.Unmarshal([]byte(parsed.Param()), &kept)
	if !reflect.DeepEqual(sent, kept) {
		t.Errorf("the server does not keep every field:\nsent %v\nkept %v", sent, kept)
	}
	var accepted []string
	rt := reflect.TypeFor[task.Request]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		accepted = append(accepted, name)
	}
	slices.Sort(accepted)
	if names := slices.Sorted(maps.Keys(sent)); !slices.Equal(names, accepted) {
		t.Errorf("fields: the SDK sends %v, the server accepts %v", names, accepted)
	}
}

// The required booleans are sent even when false; unset options are not.
func TestGenerateMinimalBody(t *testing.T) {
	t.Parallel()
	var got map[string]any
	srv := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&got)
		if r.Header.Get("Idempotency-Key") != "" {
			t.Errorf("Idempotency-Key sent without one set")
		}
		writeEnvelope(w, r, 200, "success", map[string]string{"taskId": "t1"})
	})
	req := tunehook.GenerateRequest{Model: "V5", CallBackURL: "https://example.com/cb", Prompt: "a song"}
	if _, err := tunehook.NewClient(srv.URL, clientKey).Generate(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"customMode": false, "instrumental": false, "model": "V5", "callBackUrl": "https://example.com/cb", "prompt": "a song"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body: got %v, want %v", got, want)
	}
}

// Every request-level code of the reference becomes an *APIError that
// matches its sentinel, and only it.
func TestAPIErrorCodes(t *testing.T) {
	t.Parallel()
	all := []error{tunehook.ErrInvalidRequest, tunehook.ErrUnauthorized, tunehook.ErrNotFound, tunehook.ErrTooLarge,
		tunehook.ErrInsufficientCredits, tunehook.ErrRateLimited, tunehook.ErrMaintenance, tunehook.ErrServer}
	tests := []struct {
		code       int
		retryAfter string
		want       error // nil: no sentinel
		temporary  bool
		wantAfter  time.Duration
	}{
		{code: 400, want: tunehook.ErrInvalidRequest},
		{code: 401, want: tunehook.ErrUnauthorized},
		{code: 404, want: tunehook.ErrNotFound},
		{code: 405, want: tunehook.ErrRateLimited, temporary: true},
		{code: 413, want: tunehook.ErrTooLarge},
		{code: 429, want: tunehook.ErrInsufficientCredits},
		{code: 430, retryAfter: "7", want: tunehook.ErrRateLimited, temporary: true, wantAfter: 7 * time.Second},
		{code: 455, retryAfter: "60", want: tunehook.ErrMaintenance, temporary: true, wantAfter: time.Minute},
		{code: 500, want: tunehook.ErrServer, temporary: true},
		{code: 503, want: tunehook.ErrServer, temporary: true},
		{code: 418},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			t.Parallel()
			msg := fmt.Sprintf("message of %d", tt.code)
			srv := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.retryAfter != "" {
					w.Header().Set("Retry-After", tt.retryAfter)
				}
				writeEnvelope(w, r, tt.code, msg, nil)
			})
			_, err := tunehook.NewClient(srv.URL, clientKey).RecordInfo(t.Context(), "t1")
			e, ok := errors.AsType[*tunehook.APIError](err)
			if !ok {
				t.Fatalf("got %v (%T), want an *APIError", err, err)
			}
			if e.Code != tt.code || e.Msg != msg || e.HTTPStatus != 200 || e.RetryAfter != tt.wantAfter || e.Temporary() != tt.temporary {
				t.Errorf("got %+v temporary %v, want code %d msg %q HTTP 200 RetryAfter %v temporary %v",
					e, e.Temporary(), tt.code, msg, tt.wantAfter, tt.temporary)
			}
			for _, s := range all {
				if got := errors.Is(err, s); got != (s == tt.want) {
					t.Errorf("errors.Is(err, %q) = %v", s, got)
				}
			}
			if !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), fmt.Sprint(tt.code)) {
				t.Errorf("error %q does not show the code and the message", err)
			}
		})
	}
}

// A wrong key is a 401 the caller can test for.
func TestUnauthorized(t *testing.T) {
	t.Parallel()
	srv := newAPI(t, func(w http.ResponseWriter, r *http.Request) { t.Error("reached the handler") })
	_, err := tunehook.NewClient(srv.URL, "wrong").Credits(t.Context())
	if !errors.Is(err, tunehook.ErrUnauthorized) {
		t.Fatalf("got %v, want ErrUnauthorized", err)
	}
}

// Retry-After as an HTTP date is a duration from now.
func TestRetryAfterDate(t *testing.T) {
	t.Parallel()
	srv := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
		writeEnvelope(w, r, 430, "Your call frequency is too high. Please try again later.", nil)
	})
	_, err := tunehook.NewClient(srv.URL, clientKey).Generate(t.Context(), tunehook.GenerateRequest{})
	e, ok := errors.AsType[*tunehook.APIError](err)
	if !ok || e.RetryAfter < 58*time.Minute || e.RetryAfter > time.Hour {
		t.Fatalf("got %v, want an *APIError with RetryAfter of about an hour", err)
	}
}

// Answers that are not envelopes: an error page of a proxy is an
// *APIError of its HTTP status; a 200 that is not the API is an
// *InvalidAnswerError.
func TestAnswersWithoutEnvelope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		check  func(t *testing.T, err error)
	}{
		{"proxy 502", 502, "<html>Bad Gateway</html>", func(t *testing.T, err error) {
			e, ok := errors.AsType[*tunehook.APIError](err)
			if !ok || e.Code != 502 || !errors.Is(err, tunehook.ErrServer) || !e.Temporary() || !strings.Contains(e.Msg, "Bad Gateway") {
				t.Errorf("got %v, want a temporary APIError 502 that is ErrServer", err)
			}
		}},
		{"wrong base URL", 404, "404 page not found", func(t *testing.T, err error) {
			if !errors.Is(err, tunehook.ErrNotFound) {
				t.Errorf("got %v, want ErrNotFound", err)
			}
		}},
		{"not the API", 200, "<html>welcome</html>", func(t *testing.T, err error) {
			e, ok := errors.AsType[*tunehook.InvalidAnswerError](err)
			if !ok || e.HTTPStatus != 200 || e.Body != "<html>welcome</html>" {
				t.Errorf("got %v (%T), want an InvalidAnswerError", err, err)
			}
		}},
		{"data of another shape", 200, `{"code":200,"msg":"success","data":"lots"}`, func(t *testing.T, err error) {
			if _, ok := errors.AsType[*tunehook.InvalidAnswerError](err); !ok {
				t.Errorf("got %v (%T), want an InvalidAnswerError", err, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			_, err := tunehook.NewClient(srv.URL, clientKey).Credits(t.Context())
			tt.check(t, err)
		})
	}
}

// Credits, the delivery log and redelivery call their paths and decode the
// contract's shapes.
func TestCreditsCallbacksRedeliver(t *testing.T) {
	t.Parallel()
	cb := map[string]any{
		"id": "cb1", "taskId": "t1", "callbackType": "text", "callBackUrl": "https://example.com/cb",
		"state": "exhausted", "attempts": 4, "nextAttemptTime": nil, "createTime": 1700000000000, "finishTime": 1700000100000,
		"history": []any{map[string]any{"attempt": 1, "series": 1, "manual": false, "time": 1700000001000,
			"durationMs": 15000, "statusCode": nil, "error": "timeout", "response": ""}},
	}
	srv := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "GET /api/v1/generate/credit":
			writeEnvelope(w, r, 200, "success", 2147483647)
		case "GET /api/v1/callbacks":
			if r.URL.Query().Get("taskId") != "t1" {
				writeEnvelope(w, r, 404, "Task not found.", nil)
				return
			}
			writeEnvelope(w, r, 200, "success", map[string]any{"taskId": "t1", "callbacks": []any{cb}})
		case "POST /api/v1/callbacks/cb1/redeliver":
			redelivered := maps.Clone(cb)
			redelivered["state"], redelivered["attempts"], redelivered["nextAttemptTime"], redelivered["finishTime"] = "pending", 0, 1700000200000, nil
			writeEnvelope(w, r, 200, "success", redelivered)
		default:
			writeEnvelope(w, r, 404, "Not found: "+r.Method+" "+r.URL.Path, nil)
		}
	})
	c := tunehook.NewClient(srv.URL, clientKey)
	ctx := t.Context()

	if n, err := c.Credits(ctx); err != nil || n != 2147483647 {
		t.Errorf("Credits: got %d, %v", n, err)
	}

	log, err := c.Callbacks(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	want := tunehook.CallbackRecord{
		ID: "cb1", TaskID: "t1", CallbackType: tunehook.CallbackText, CallBackURL: "https://example.com/cb",
		State: tunehook.DeliveryExhausted, Attempts: 4, CreateTime: 1700000000000, FinishTime: ptr[int64](1700000100000),
		History: []tunehook.DeliveryAttempt{{Attempt: 1, Series: 1, Time: 1700000001000, DurationMS: 15000, Error: ptr("timeout")}},
	}
	if log.TaskID != "t1" || len(log.Callbacks) != 1 || !reflect.DeepEqual(log.Callbacks[0], want) {
		t.Errorf("Callbacks: got %+v, want one callback %+v", log, want)
	}
	if _, err := c.Callbacks(ctx, "other"); !errors.Is(err, tunehook.ErrNotFound) {
		t.Errorf("Callbacks of an unknown task: got %v, want ErrNotFound", err)
	}

	got, err := c.Redeliver(ctx, "cb1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != tunehook.DeliveryPending || got.Attempts != 0 || got.NextAttemptTime == nil || *got.NextAttemptTime != 1700000200000 || got.FinishTime != nil {
		t.Errorf("Redeliver: got %+v, want a pending callback due at 1700000200000", got)
	}
	if _, err := c.Redeliver(ctx, "nope"); !errors.Is(err, tunehook.ErrNotFound) {
		t.Errorf("Redeliver of an unknown callback: got %v, want ErrNotFound", err)
	}
}

// Download fetches a media URL without the API key, and reports a missing
// file as ErrNotFound.
func TestDownload(t *testing.T) {
	t.Parallel()
	srv := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("the API key was sent with a media download")
		}
		if r.URL.Path != "/media/t1/a.wav" {
			writeEnvelope(w, r, 404, "Not found.", nil)
			return
		}
		io.WriteString(w, "RIFF....WAVE")
	})
	c := tunehook.NewClient(srv.URL, clientKey)
	var b strings.Builder
	n, err := c.Download(t.Context(), srv.URL+"/media/t1/a.wav", &b)
	if err != nil || n != 12 || b.String() != "RIFF....WAVE" {
		t.Errorf("Download: got %d bytes %q, %v", n, b.String(), err)
	}
	_, err = c.Download(t.Context(), srv.URL+"/media/t1/b.wav", io.Discard)
	if e, ok := errors.AsType[*tunehook.APIError](err); !ok || !errors.Is(err, tunehook.ErrNotFound) || e.HTTPStatus != 404 {
		t.Errorf("Download of a missing file: got %v, want ErrNotFound with HTTP 404", err)
	}
}

// refServer is a reference-like record-info of one task whose status moves
// through statuses. With longPoll it honours wait: it holds a call until
// the status differs from the one at the call's start, or wait elapses.
// Without, it ignores wait like the commercial providers.
type refServer struct {
	*httptest.Server
	longPoll bool
	held     chan struct{} // gets a value when a call starts holding

	mu       sync.Mutex
	statuses []tunehook.Status
	i        int           // the current status
	changed  chan struct{} // closed at the next change
	waits    []string      // the wait parameter of each call
	onCall   func(n int)   // called with the call count, under mu
}

func newRefServer(t *testing.T, longPoll bool, statuses ...tunehook.Status) *refServer {
	s := &refServer{longPoll: longPoll, statuses: statuses, changed: make(chan struct{}), held: make(chan struct{}, 10)}
	s.Server = newAPI(t, func(w http.ResponseWriter, r *http.Request) {
		wait := r.URL.Query().Get("wait")
		s.mu.Lock()
		s.waits = append(s.waits, wait)
		if s.onCall != nil {
			s.onCall(len(s.waits))
		}
		changed := s.changed
		s.mu.Unlock()
		if d, err := time.ParseDuration(wait + "s"); err == nil && s.longPoll && d > 0 {
			s.held <- struct{}{}
			select {
			case <-changed:
			case <-time.After(d):
			case <-r.Context().Done():
			}
		}
		s.mu.Lock()
		rec := s.record()
		s.mu.Unlock()
		writeEnvelope(w, r, 200, "success", rec)
	})
	return s
}

// advance moves the task to its next status. Callers hold no lock.
func (s *refServer) advance() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked()
}

func (s *refServer) advanceLocked() {
	if s.i < len(s.statuses)-1 {
		s.i++
		close(s.changed)
		s.changed = make(chan struct{})
	}
}

func (s *refServer) record() tunehook.RecordInfo {
	rec := tunehook.RecordInfo{TaskID: "t1", Status: s.statuses[s.i], Type: "chirp-crow", OperationType: "generate"}
	if rec.Status.Failed() {
		rec.ErrorCode, rec.ErrorMessage = ptr(501), ptr("Audio generation failed.")
	}
	return rec
}

func (s *refServer) calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.waits)
}

var successPath = []tunehook.Status{tunehook.StatusPending, tunehook.StatusTextSuccess, tunehook.StatusFirstSuccess, tunehook.StatusSuccess}

// Against a long-polling server, Wait sees each status with one call per
// change and never pauses: with an interval of an hour, any pause would
// outlast the test.
func TestWaitLongPoll(t *testing.T) {
	t.Parallel()
	srv := newRefServer(t, true, successPath...)
	go func() {
		for range len(successPath) - 1 {
			<-srv.held
			srv.advance()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var seen []tunehook.Status
	rec, err := tunehook.NewClient(srv.URL, clientKey).Wait(ctx, "t1", tunehook.WaitOptions{
		LongPoll:     10 * time.Second,
		PollInterval: time.Hour,
		OnStatus:     func(r *tunehook.RecordInfo) { seen = append(seen, r.Status) },
	})
	if err != nil || rec.Status != tunehook.StatusSuccess {
		t.Fatalf("Wait: got %+v, %v, want SUCCESS", rec, err)
	}
	if !slices.Equal(seen, successPath) {
		t.Errorf("statuses: got %v, want %v", seen, successPath)
	}
	// The first call asks for the current status at once; the others wait.
	if got, want := srv.calls(), []string{"", "10", "10", "10"}; !slices.Equal(got, want) {
		t.Errorf("wait parameters: got %q, want %q", got, want)
	}
}

// Against a server that ignores wait and answers at once, Wait spaces its
// calls by the poll interval: a few calls, not thousands, while the status
// moves on a timer.
func TestWaitWithoutLongPoll(t *testing.T) {
	t.Parallel()
	srv := newRefServer(t, false, successPath...)
	go func() {
		for range len(successPath) - 1 {
			time.Sleep(300 * time.Millisecond)
			srv.advance()
		}
	}()
	var seen []tunehook.Status
	rec, err := tunehook.NewClient(srv.URL, clientKey).Wait(t.Context(), "t1", tunehook.WaitOptions{
		PollInterval: 100 * time.Millisecond,
		OnStatus:     func(r *tunehook.RecordInfo) { seen = append(seen, r.Status) },
	})
	if err != nil || rec.Status != tunehook.StatusSuccess {
		t.Fatalf("Wait: got %+v, %v, want SUCCESS", rec, err)
	}
	if !slices.Equal(seen, successPath) {
		t.Errorf("statuses: got %v, want %v (each lasts 3 poll intervals)", seen, successPath)
	}
	// 900 ms at one call per 100 ms, plus the calls right after each
	// change; far fewer than a loop without pauses would make.
	if n := len(srv.calls()); n > 20 {
		t.Errorf("%d calls for 900 ms of task at a 100 ms interval", n)
	}
	if w := srv.calls()[1]; w != "25" {
		t.Errorf("the second call's wait: got %q, want 25 (DefaultLongPoll)", w)
	}
}

// A negative LongPoll is plain polling: no wait parameter.
func TestWaitPlainPolling(t *testing.T) {
	t.Parallel()
	srv := newRefServer(t, true, successPath...)
	srv.onCall = func(int) { srv.advanceLocked() }
	_, err := tunehook.NewClient(srv.URL, clientKey).Wait(t.Context(), "t1", tunehook.WaitOptions{LongPoll: -1, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range srv.calls() {
		if w != "" {
			t.Errorf("wait %q sent with LongPoll -1", w)
		}
	}
}

// A failed task ends the wait with its record and a *TaskError.
func TestWaitFailedTask(t *testing.T) {
	t.Parallel()
	srv := newRefServer(t, false, tunehook.StatusPending, tunehook.StatusTextSuccess, tunehook.StatusGenerateAudioFailed)
	srv.onCall = func(int) { srv.advanceLocked() }
	rec, err := tunehook.NewClient(srv.URL, clientKey).Wait(t.Context(), "t1", tunehook.WaitOptions{PollInterval: time.Millisecond})
	if rec == nil || rec.Status != tunehook.StatusGenerateAudioFailed {
		t.Fatalf("got record %+v, want GENERATE_AUDIO_FAILED", rec)
	}
	e, ok := errors.AsType[*tunehook.TaskError](err)
	if !ok || e.Code != 501 || e.TaskID != "t1" || e.Msg != "Audio generation failed." {
		t.Errorf("got %v, want a TaskError of code 501", err)
	}
}

// Temporary errors are retried; the others end the wait at once.
func TestWaitErrors(t *testing.T) {
	t.Parallel()
	t.Run("maintenance then success", func(t *testing.T) {
		t.Parallel()
		srv := newRefServer(t, false, tunehook.StatusSuccess)
		var calls atomic.Int32
		flaky := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) <= 2 {
				writeEnvelope(w, r, 455, "The system is currently undergoing maintenance. Please try again later.", nil)
				return
			}
			srv.Config.Handler.ServeHTTP(w, r)
		})
		rec, err := tunehook.NewClient(flaky.URL, clientKey).Wait(t.Context(), "t1", tunehook.WaitOptions{PollInterval: time.Millisecond})
		if err != nil || rec.Status != tunehook.StatusSuccess || calls.Load() != 3 {
			t.Errorf("got %+v, %v after %d calls, want SUCCESS after 3", rec, err, calls.Load())
		}
	})
	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		srv := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			writeEnvelope(w, r, 404, "Task not found.", nil)
		})
		_, err := tunehook.NewClient(srv.URL, clientKey).Wait(t.Context(), "t1", tunehook.WaitOptions{PollInterval: time.Millisecond})
		if !errors.Is(err, tunehook.ErrNotFound) || calls.Load() != 1 {
			t.Errorf("got %v after %d calls, want ErrNotFound after 1", err, calls.Load())
		}
	})
	t.Run("server gone", func(t *testing.T) {
		t.Parallel()
		srv := newAPI(t, func(w http.ResponseWriter, r *http.Request) {})
		srv.Close()
		_, err := tunehook.NewClient(srv.URL, clientKey).Wait(t.Context(), "t1", tunehook.WaitOptions{PollInterval: time.Millisecond})
		if err == nil {
			t.Error("got no error from a closed server")
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		srv := newRefServer(t, false, tunehook.StatusPending)
		ctx, cancel := context.WithCancel(t.Context())
		srv.onCall = func(n int) {
			if n == 3 {
				cancel()
			}
		}
		_, err := tunehook.NewClient(srv.URL, clientKey).Wait(ctx, "t1", tunehook.WaitOptions{PollInterval: time.Millisecond})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
}
