package main

// The end-to-end harness: the real binary, spawned and killed; real HTTP
// receivers; a small client of the API.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/httpapi"
	"github.com/tunehook/tunehook/internal/openapitest"
	"github.com/tunehook/tunehook/internal/pgtest"
)

// binary is the tunehook binary built once for all end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tunehook-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tunehook")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build tunehook: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testKey = "test-key-0123456789"

// baseEnv is the environment every test server starts with: fast stages,
// short tracks, a scaled retry schedule, and no rate limit (tests submit
// hundreds of tasks in a burst). Tests override entries.
var baseEnv = map[string]string{
	"TUNEHOOK_RATE_LIMIT":              "off",
	"TUNEHOOK_ADDR":                    "127.0.0.1:0",
	"TUNEHOOK_API_KEYS":                testKey,
	"TUNEHOOK_ALLOW_PRIVATE_CALLBACKS": "true",
	"TUNEHOOK_SYNTH_DELAYS":            "100ms,200ms,200ms",
	"TUNEHOOK_SYNTH_DURATION":          "4s",
	"TUNEHOOK_CALLBACK_TIMEOUT":        "2s",
	"TUNEHOOK_CALLBACK_RETRY_DELAYS":   "1s,2s,3s",
}

// store names the database test servers run on, as the environment entries
// that select it: none for SQLite in the data dir, the URL of a fresh
// PostgreSQL schema otherwise.
type store struct {
	name string
	env  []string
}

// with returns the store's environment followed by overrides, for
// startServer.
func (s store) with(overrides ...string) []string {
	return append(slices.Clone(s.env), overrides...)
}

// eachStore runs test as parallel subtests on SQLite and on PostgreSQL. The
// PostgreSQL one skips, saying why, when TUNEHOOK_TEST_DATABASE_URL is unset.
func eachStore(t *testing.T, test func(t *testing.T, st store)) {
	t.Helper()
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := store{name: name}
			if name == "postgres" {
				st.env = []string{"TUNEHOOK_DATABASE_URL=" + pgtest.URL(t)}
			}
			test(t, st)
		})
	}
}

// server is one running tunehook process.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	URL     string
	dataDir string
	stdout  *lockedBuffer
	stderr  *lockedBuffer
	done    chan struct{} // closed when the process has exited
	waitErr error
}

// startServer spawns tunehook serve on dataDir with baseEnv and the given
// overrides ("NAME=value"; "NAME=" removes a setting), and waits until it
// answers /healthz.
func startServer(t *testing.T, dataDir string, overrides ...string) *server {
	t.Helper()
	return startServerArgs(t, dataDir, nil, overrides...)
}

// startServerArgs is startServer with flags after "tunehook serve".
func startServerArgs(t *testing.T, dataDir string, args []string, overrides ...string) *server {
	t.Helper()
	env := map[string]string{"TUNEHOOK_DATA_DIR": dataDir}
	for k, v := range baseEnv {
		env[k] = v
	}
	for _, o := range overrides {
		k, v, _ := strings.Cut(o, "=")
		env[k] = v
	}
	cmd := exec.Command(binary, append([]string{"serve"}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TUNEHOOK_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		if v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	s := &server{t: t, cmd: cmd, dataDir: dataDir, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		// The banner comes in one write, so one read holds all of it: a
		// test that has the URL can read the whole banner.
		listening := regexp.MustCompile(`listening on (http://\S+)\n`)
		buf := make([]byte, 64<<10)
		sent := false
		for {
			n, err := out.Read(buf)
			s.stdout.Write(buf[:n])
			if m := listening.FindStringSubmatch(s.stdout.String()); m != nil && !sent {
				urls <- m[1]
				sent = true
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("tunehook stdout:\n%s\ntunehook stderr:\n%s", s.stdout, s.stderr)
		}
	})
	select {
	case s.URL = <-urls:
	case <-s.done:
		t.Fatalf("tunehook exited before serving: %v\nstderr:\n%s", s.waitErr, s.stderr)
	case <-time.After(15 * time.Second):
		t.Fatalf("tunehook did not start in 15s\nstderr:\n%s", s.stderr)
	}
	waitUntil(t, 10*time.Second, "healthz answers 200", func() bool { return healthy(t, s.URL) })
	return s
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// stop sends SIGTERM and returns how long the process took to exit, failing
// the test if it does not exit within limit.
func (s *server) stop(limit time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(limit):
		s.t.Fatalf("tunehook did not exit within %v of SIGTERM", limit)
	}
	return time.Since(start)
}

// apiContract is the validator of the OpenAPI document the binary serves
// (internal/httpapi/openapi.json), loaded once.
var apiContract = sync.OnceValues(func() (*openapitest.Validator, error) {
	return openapitest.New(httpapi.OpenAPIDocument())
})

// errContract is wrapped by the error of an answer or a callback that
// breaks the OpenAPI document.
var errContract = errors.New("breaks openapi.json")

// exchange sends req and returns the answer with its body read whole. The
// answer is checked against the OpenAPI document; a mismatch is an error
// wrapping errContract (resp and body are returned with it). Every request
// the tests send to a server goes through here.
func exchange(req *http.Request) (*http.Response, []byte, error) {
	v, err := apiContract()
	if err != nil {
		return nil, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if err := v.Response(req, resp.StatusCode, resp.Header, body); err != nil {
		return resp, body, fmt.Errorf("%w: %w", errContract, err)
	}
	return resp, body, nil
}

// call sends one request to the API with key and decodes the envelope of
// the answer, returning the HTTP status too. An answer that breaks the
// OpenAPI document is an error wrapping errContract.
func call(method, url, key string, body any) (tunehook.Envelope[json.RawMessage], int, error) {
	var env tunehook.Envelope[json.RawMessage]
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return env, 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return env, 0, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, b, err := exchange(req)
	if err != nil {
		if resp != nil {
			return env, resp.StatusCode, err
		}
		return env, 0, err
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return env, resp.StatusCode, fmt.Errorf("decode envelope: %w", err)
	}
	return env, resp.StatusCode, nil
}

// healthy reports whether the server at base answers /healthz with 200; an
// answer that breaks the OpenAPI document fails t.
func healthy(t *testing.T, base string) bool {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, _, err := exchange(req)
	if errors.Is(err, errContract) {
		t.Fatal(err)
	}
	return err == nil && resp.StatusCode == http.StatusOK
}

// api calls the API with key and decodes the envelope's data into data,
// failing the test if the call fails or the HTTP status is not 200.
func (s *server) api(method, path, key string, body any, data any) tunehook.Envelope[json.RawMessage] {
	s.t.Helper()
	env, status, err := call(method, s.URL+path, key, body)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	if status != http.StatusOK {
		s.t.Fatalf("%s %s: HTTP %d, want 200 (the code is in the envelope)", method, path, status)
	}
	if data != nil && env.Code == 200 {
		if err := json.Unmarshal(env.Data, data); err != nil {
			s.t.Fatalf("%s %s: decode data: %v", method, path, err)
		}
	}
	return env
}

// submit creates a task and returns its ID.
func (s *server) submit(body map[string]any) string {
	s.t.Helper()
	var created tunehook.TaskCreated
	env := s.api("POST", "/api/v1/generate", testKey, body, &created)
	if env.Code != 200 || env.Msg != "success" || created.TaskID == "" {
		s.t.Fatalf("submit: got code %d msg %q task %q, want 200 success and a task id", env.Code, env.Msg, created.TaskID)
	}
	return created.TaskID
}

// recordInfo polls the task once.
func (s *server) recordInfo(taskID string) tunehook.RecordInfo {
	s.t.Helper()
	var ri tunehook.RecordInfo
	env := s.api("GET", "/api/v1/generate/record-info?taskId="+taskID, testKey, nil, &ri)
	if env.Code != 200 {
		s.t.Fatalf("record-info %s: code %d %q", taskID, env.Code, env.Msg)
	}
	return ri
}

// checkStagesOnce reports a task whose stages were not each committed
// exactly once. A stage's commit creates its callback in the same
// transaction, so the delivery log holds one callback per committed stage:
// a stage generated twice would show as two.
func (s *server) checkStagesOnce(taskID string, stages []tunehook.CallbackType) {
	s.t.Helper()
	var log tunehook.DeliveryLog
	if env := s.api("GET", "/api/v1/callbacks?taskId="+taskID, testKey, nil, &log); env.Code != 200 {
		s.t.Fatalf("callbacks of %s: code %d %q", taskID, env.Code, env.Msg)
	}
	n := map[tunehook.CallbackType]int{}
	for _, c := range log.Callbacks {
		n[c.CallbackType]++
	}
	for _, stage := range stages {
		if n[stage] != 1 {
			s.t.Errorf("task %s stage %s committed %d times, want 1", taskID, stage, n[stage])
		}
	}
}

// generateBody is a valid non-custom request to callbackURL.
func generateBody(callbackURL string) map[string]any {
	return map[string]any{
		"customMode":   false,
		"instrumental": false,
		"model":        "V5",
		"prompt":       "an upbeat rock song about night city lights",
		"callBackUrl":  callbackURL,
	}
}

// delivery is one callback POST a receiver got.
type delivery struct {
	at     time.Time // when the request arrived
	done   time.Time // when it was answered; zero while in progress
	header http.Header
	raw    []byte
	body   tunehook.Callback
}

// receiver is a real HTTP server that records every callback and answers
// with the status respond picks (200 when respond is nil). A callback that
// breaks the webhooks of the OpenAPI document fails the test.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []delivery
	respond func(d delivery, n int) int // n counts this callbackType's deliveries, from 1
}

func newReceiver(t *testing.T, respond func(d delivery, n int) int) *receiver {
	t.Helper()
	contract, err := apiContract()
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{respond: respond}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		d := delivery{at: time.Now(), header: req.Header.Clone(), raw: raw}
		if err := json.Unmarshal(raw, &d.body); err != nil {
			t.Errorf("callback is not JSON: %v: %s", err, raw)
		}
		if err := contract.Callback(req.Header, raw); err != nil {
			t.Errorf("callback: %v", err)
		}
		r.mu.Lock()
		i := len(r.got)
		r.got = append(r.got, d)
		n := len(r.byType(d.body.Data.CallbackType))
		r.mu.Unlock()
		status := http.StatusOK
		if r.respond != nil {
			status = r.respond(d, n)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"status":"received"}`)
		r.mu.Lock()
		r.got[i].done = time.Now()
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) byType(ct tunehook.CallbackType) []delivery {
	var out []delivery
	for _, d := range r.got {
		if d.body.Data.CallbackType == ct {
			out = append(out, d)
		}
	}
	return out
}

// deliveries returns a copy of what arrived so far.
func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// count returns how many callbacks of type ct arrived.
func (r *receiver) count(ct tunehook.CallbackType) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byType(ct))
}

// duplicateCount counts the deliveries that repeat a task's stage.
func duplicateCount(got []delivery) int {
	n, seen := 0, map[string]bool{}
	for _, d := range got {
		key := d.body.Data.TaskID + "/" + string(d.body.Data.CallbackType)
		if seen[key] {
			n++
		}
		seen[key] = true
	}
	return n
}

// recordSlack is how long after its answer an attempt may still be
// unrecorded: a process killed within it makes the attempt again.
const recordSlack = 250 * time.Millisecond

// inFlightAt counts the deliveries that a kill at one of the instants could
// have left unrecorded: in progress then, or answered just before. Only
// they may arrive twice.
func inFlightAt(got []delivery, kills []time.Time) int {
	n := 0
	for _, d := range got {
		for _, k := range kills {
			if !d.at.After(k) && (d.done.IsZero() || d.done.After(k.Add(-recordSlack))) {
				n++
				break
			}
		}
	}
	return n
}

// waitUntil polls cond every 20ms until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
