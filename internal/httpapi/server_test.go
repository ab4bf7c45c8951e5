package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tunehook/tunehook/internal/media"
	"github.com/tunehook/tunehook/internal/payload"
	"github.com/tunehook/tunehook/internal/sqlite"
	"github.com/tunehook/tunehook/internal/storetest"
	"github.com/tunehook/tunehook/internal/task"
)

// The keys the test server accepts.
const (
	testKey  = "th_test_key_one"
	otherKey = "th_test_key_two"
)

// testLinks makes the media URLs of results; tests request their paths
// from the test server.
var testLinks = payload.Links{PublicURL: "https://music.example.com"}

// testTextDelay is the server's TextDelay in tests.
const testTextDelay = 7 * time.Second

// syncBuffer is a log destination that the server's goroutines write while
// the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is the whole API on a real SQLite store and media directory.
type testServer struct {
	url      string
	store    task.Store
	media    *media.Dir
	mediaDir string           // inside dir
	dir      string           // the test's temporary directory
	clock    *storetest.Clock // the time of the API and of the store, moved by the test
	log      *syncBuffer
}

// newTestServer starts the API; each option may change its Config, say to
// wrap the store.
func newTestServer(t *testing.T, options ...func(*Config)) *testServer {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	clock := storetest.NewClock(time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC))
	store, err := sqlite.Open(ctx, filepath.Join(dir, "db"), sqlite.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	mediaDir := filepath.Join(dir, "media")
	ms, err := media.NewDir(mediaDir)
	if err != nil {
		t.Fatal(err)
	}
	tracked := &trackingMedia{Store: ms}
	// Registered before the server's Close, so it runs after it, when
	// every handler has returned.
	t.Cleanup(func() {
		if n := tracked.open.Load(); n != 0 {
			t.Errorf("got %d media objects left open, want 0", n)
		}
	})
	cfg := Config{
		Store:     store,
		Media:     tracked,
		Links:     testLinks,
		Keys:      []string{testKey, otherKey},
		TextDelay: testTextDelay,
		Now:       clock.Now,
	}
	for _, o := range options {
		o(&cfg)
	}
	log := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(log, t.Output()), nil))
	h, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ts := &testServer{url: srv.URL, store: store, media: ms, mediaDir: mediaDir, dir: dir, clock: clock, log: log}
	return ts
}

// trackingMedia is a media.Store that counts the objects open through it.
type trackingMedia struct {
	media.Store
	open atomic.Int64
}

func (m *trackingMedia) Open(ctx context.Context, key string) (*media.Object, error) {
	obj, err := m.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	m.open.Add(1)
	return &media.Object{ReadSeekCloser: trackedObject{obj.ReadSeekCloser, &m.open}, Size: obj.Size, ModTime: obj.ModTime}, nil
}

type trackedObject struct {
	io.ReadSeekCloser
	open *atomic.Int64
}

func (o trackedObject) Close() error {
	o.open.Add(-1)
	return o.ReadSeekCloser.Close()
}

// answer is an HTTP response, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to the test server; key, when not empty, goes in a
// Bearer Authorization header. Redirects are followed. Every answer is
// checked against the OpenAPI document: a mismatch fails the test.
func (s *testServer) do(t *testing.T, method, path, key string, body []byte) answer {
	t.Helper()
	h := http.Header{}
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	return s.doHeader(t, method, path, h, body)
}

func (s *testServer) doHeader(t *testing.T, method, path string, h http.Header, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(req.Header, h)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := apiValidator(t).Response(req, resp.StatusCode, resp.Header, b); err != nil {
		t.Errorf("the answer breaks openapi.json: %v", err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// envelope is the answer of the API, its data kept raw.
type envelope struct {
	Code int             `json:"code"`
	Msg  string          `json:"msg"`
	Data json.RawMessage `json:"data"`
}

// decodeEnvelope checks that a is a JSON envelope with HTTP status
// wantStatus, exactly the members code, msg and data, and returns it.
func decodeEnvelope(t *testing.T, a answer, wantStatus int) envelope {
	t.Helper()
	if a.status != wantStatus {
		t.Errorf("got HTTP status %d, want %d (body %s)", a.status, wantStatus, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", ct)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(a.body, &members); err != nil {
		t.Fatalf("got body %q, want a JSON object: %v", a.body, err)
	}
	if got := slices.Sorted(maps.Keys(members)); !slices.Equal(got, []string{"code", "data", "msg"}) {
		t.Errorf("got members %v, want code, data, msg", got)
	}
	var e envelope
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("got body %s: %v", a.body, err)
	}
	return e
}

// wantError checks that a is an error envelope with data null.
func wantError(t *testing.T, a answer, wantStatus, wantCode int, wantMsg string) envelope {
	t.Helper()
	e := decodeEnvelope(t, a, wantStatus)
	if e.Code != wantCode || !strings.Contains(e.Msg, wantMsg) {
		t.Errorf("got code %d msg %q, want code %d msg containing %q", e.Code, e.Msg, wantCode, wantMsg)
	}
	if string(e.Data) != "null" {
		t.Errorf("got data %s, want null", e.Data)
	}
	return e
}

func TestHealth(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	a := s.do(t, http.MethodGet, "/healthz", "", nil)
	if a.status != http.StatusOK || strings.TrimSpace(string(a.body)) != `{"status":"ok"}` {
		t.Errorf("got %d %s, want 200 {\"status\":\"ok\"}", a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", ct)
	}
}

// Unknown paths and methods answer 404 envelopes: with HTTP 200 in the
// compatible API, with HTTP 404 elsewhere.
func TestNotFound(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tests := []struct {
		method, path string
		key          string
		wantStatus   int
		wantMsg      string
	}{
		{http.MethodGet, "/api/v1/nothing", testKey, http.StatusOK, "GET /api/v1/nothing"},
		{http.MethodGet, "/api/v1/nothing", "", http.StatusOK, "GET /api/v1/nothing"},
		{http.MethodGet, "/api/v1/generate", testKey, http.StatusOK, "GET /api/v1/generate"},
		{http.MethodPut, "/api/v1/generate", testKey, http.StatusOK, "PUT /api/v1/generate"},
		{http.MethodPost, "/api/v1/generate/record-info", testKey, http.StatusOK, "POST /api/v1/generate/record-info"},
		{http.MethodDelete, "/api/v1/generate/record-info", testKey, http.StatusOK, "DELETE"},
		{http.MethodGet, "/api/v1/generate/", testKey, http.StatusOK, "Not found"},
		{http.MethodGet, "/api/", "", http.StatusOK, "Not found"},
		{http.MethodGet, "/", "", http.StatusNotFound, "GET /"},
		{http.MethodGet, "/api", "", http.StatusNotFound, "GET /api"},
		{http.MethodGet, "/nothing", "", http.StatusNotFound, "GET /nothing"},
		{http.MethodPost, "/healthz", "", http.StatusNotFound, "POST /healthz"},
		{http.MethodPost, "/media/a.wav", "", http.StatusNotFound, "POST /media/a.wav"},
		{http.MethodGet, "/stream/only-a-task", "", http.StatusNotFound, "Not found"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			a := s.do(t, tt.method, tt.path, tt.key, nil)
			wantError(t, a, tt.wantStatus, task.CodeNotFound, tt.wantMsg)
		})
	}
}

// Odd requests get well-formed envelopes, and the server lives on.
func TestOddRequests(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	paths := []string{
		"/api/v1/%ff%fe",
		"/api/v1/generate/record-info?taskId=%ff%fe%00",
		"/api/v1/generate/record-info?taskId=%zz",
		"/api/v1/generate/record-info?taskId;=x&&&=",
		"/api/v1/generate/record-info?" + strings.Repeat("taskId=a&", 2000),
		"/%c0%af/%2e%2e",
		"/stream/%ff/%00",
	}
	for _, p := range paths {
		a := s.do(t, http.MethodGet, p, testKey, nil)
		if !json.Valid(a.body) || !utf8.Valid(a.body) {
			t.Errorf("GET %s: got body %q, want valid JSON in UTF-8", p, a.body)
		}
	}
	if a := s.do(t, http.MethodGet, "/healthz", "", nil); a.status != http.StatusOK {
		t.Errorf("got /healthz %d after odd requests, want 200", a.status)
	}
}

// faultyStore is a task.Store whose reads and creations fail: with err, or
// with a panic when panicking.
type faultyStore struct {
	task.Store
	err       error
	panicking bool
}

func (f faultyStore) fail() error {
	if f.panicking {
		panic("faulty store: " + f.err.Error())
	}
	return f.err
}

func (f faultyStore) Task(context.Context, string) (*task.Task, error) { return nil, f.fail() }
func (f faultyStore) Submit(context.Context, task.Submission) (task.Submitted, error) {
	return task.Submitted{}, f.fail()
}
func (f faultyStore) Credits(context.Context, string, int) (int, error) { return 0, f.fail() }
func (f faultyStore) Callback(context.Context, string) (*task.Callback, error) {
	return nil, f.fail()
}
func (f faultyStore) CreateTask(context.Context, *task.Task) error { return f.fail() }
func (f faultyStore) Ping(context.Context) error                   { return f.fail() }

// Internal errors and panics answer a generic 500 (HTTP 200 in the
// compatible API); the log, not the client, gets the details, and the
// server keeps serving.
func TestInternalErrors(t *testing.T) {
	t.Parallel()
	secret := errors.New("disk on fire at /var/lib/tunehook")
	for _, panicking := range []bool{false, true} {
		name := map[bool]string{false: "error", true: "panic"}[panicking]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, func(c *Config) {
				c.Store = faultyStore{Store: c.Store, err: secret, panicking: panicking}
				c.Credits = &Credits{Initial: 100, PerTask: 10}
			})
			requests := []struct {
				method, path string
				body         []byte
				wantStatus   int
			}{
				{http.MethodGet, "/api/v1/generate/record-info?taskId=abc123", nil, http.StatusOK},
				{http.MethodPost, "/api/v1/generate", []byte(validBody), http.StatusOK},
				{http.MethodGet, "/api/v1/generate/credit", nil, http.StatusOK},
				{http.MethodGet, "/api/v1/callbacks?taskId=abc123", nil, http.StatusOK},
				{http.MethodPost, "/api/v1/callbacks/msg_abc123/redeliver", nil, http.StatusOK},
				{http.MethodGet, "/stream/abc123/def456", nil, http.StatusInternalServerError},
			}
			for _, r := range requests {
				a := s.do(t, r.method, r.path, testKey, r.body)
				wantError(t, a, r.wantStatus, task.CodeInternal, "Internal server error; please try again.")
				if strings.Contains(string(a.body), "fire") {
					t.Errorf("%s %s: got body %s, want the internal error kept from the client", r.method, r.path, a.body)
				}
			}
			if a := s.do(t, http.MethodGet, "/healthz", "", nil); a.status != http.StatusOK {
				t.Errorf("got /healthz %d after the failures, want 200", a.status)
			}
			log := s.log.String()
			if n := strings.Count(log, "disk on fire"); n != len(requests) {
				t.Errorf("got the error %d times in the log, want once per request:\n%s", n, log)
			}
			// An error is logged where the task is known; a panic, from
			// the middleware, with its stack instead.
			if want := map[bool]string{false: "task_id=abc123", true: "goroutine"}[panicking]; !strings.Contains(log, want) {
				t.Errorf("got log %q, want %q in it", log, want)
			}
		})
	}
}

func TestNewServerConfig(t *testing.T) {
	t.Parallel()
	ms, err := media.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := faultyStore{}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"valid", Config{Store: store, Media: ms, Keys: []string{"k"}}, ""},
		{"no store", Config{Media: ms, Keys: []string{"k"}}, "store"},
		{"no media", Config{Store: store, Keys: []string{"k"}}, "media"},
		{"no key", Config{Store: store, Media: ms}, "key"},
		{"empty key", Config{Store: store, Media: ms, Keys: []string{"k", ""}}, "key"},
		{"negative delay", Config{Store: store, Media: ms, Keys: []string{"k"}, TextDelay: -time.Second}, "delay"},
		{"negative rate limit", Config{Store: store, Media: ms, Keys: []string{"k"}, RateLimit: RateLimit{Requests: -1, Per: time.Second}}, "rate limit"},
		{"negative waiters", Config{Store: store, Media: ms, Keys: []string{"k"}, MaxWaiters: -1}, "waiter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := NewServer(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || h == nil {
					t.Errorf("got (%v, %v), want a handler", h, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want one about %q", err, tt.wantErr)
			}
		})
	}
}
