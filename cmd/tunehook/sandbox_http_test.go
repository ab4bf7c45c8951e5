package main

// End-to-end tests of the sandbox and the request-level behaviours: every
// simulation token, rate limit, maintenance, long-poll, event streams,
// metrics, readiness and the --dev preset.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/pgtest"
	"github.com/tunehook/tunehook/internal/postgres"
	"github.com/tunehook/tunehook/internal/storetest"
	"github.com/tunehook/tunehook/internal/task"
)

// seedCodes are the failure codes of the seed, which tunehook:fail:CODE
// accepts.
var seedCodes = []int{400, 408, 413, 500, 501, 531}

// tokenBody is a request whose token is in field: the prompt of a
// non-custom request, or the style or title of a custom one.
func tokenBody(callbackURL, field, token string) map[string]any {
	if field == "prompt" {
		body := generateBody(callbackURL)
		body["prompt"] = "a song " + token
		return body
	}
	body := map[string]any{
		"customMode": true, "instrumental": false, "model": "V5", "callBackUrl": callbackURL,
		"prompt": "[Verse] la la", "style": "rock", "title": "Song",
	}
	body[field] = body[field].(string) + " " + token
	return body
}

// taskDeliveries returns the callbacks of taskID that rcv got, in order.
func taskDeliveries(rcv *receiver, taskID string) []delivery {
	var out []delivery
	for _, d := range rcv.deliveries() {
		if d.body.Data.TaskID == taskID {
			out = append(out, d)
		}
	}
	return out
}

// Every code of tunehook:fail:CODE, at once and @first, in the prompt, the
// style and the title: the task ends in the status of design.md's table
// with the seed's code and message in record-info and in an error callback
// with data null, after text and first for @first, and never a complete
// callback. Without simulation the tokens are ordinary text.
func TestSimulationTokens(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		rcv := newReceiver(t, nil)
		srv := startServer(t, t.TempDir(), st.with("TUNEHOOK_SIMULATION=true")...)
		type run struct {
			token      string
			code       int
			afterFirst bool
			taskID     string
		}
		var runs []*run
		fields := []string{"prompt", "style", "title"}
		for i, code := range seedCodes {
			for _, afterFirst := range []bool{false, true} {
				token := fmt.Sprintf("tunehook:fail:%d", code)
				if afterFirst {
					token += "@first"
				}
				r := &run{token: token, code: code, afterFirst: afterFirst}
				r.taskID = srv.submit(tokenBody(rcv.URL, fields[(i+len(runs))%len(fields)], token))
				runs = append(runs, r)
			}
		}
		for _, r := range runs {
			t.Run(r.token, func(t *testing.T) {
				f := task.NewFailure(r.code)
				wantStatus := tunehook.Status(f.Status())
				var ri tunehook.RecordInfo
				waitUntil(t, 30*time.Second, "the task fails", func() bool {
					ri = srv.recordInfo(r.taskID)
					return task.Status(ri.Status).Final()
				})
				if ri.Status != wantStatus || ri.ErrorCode == nil || *ri.ErrorCode != r.code || ri.ErrorMessage == nil || *ri.ErrorMessage != f.Message {
					t.Errorf("record-info: %s errorCode %v errorMessage %v, want %s %d %q", ri.Status, ri.ErrorCode, ri.ErrorMessage, wantStatus, r.code, f.Message)
				}
				wantTracks, wantTypes := -1, []tunehook.CallbackType{"error"}
				if r.afterFirst {
					wantTracks, wantTypes = 1, []tunehook.CallbackType{"text", "first", "error"}
				}
				if got := -1; ri.Response != nil {
					if got = len(ri.Response.SunoData); got != wantTracks {
						t.Errorf("record-info: %d tracks, want %d", got, wantTracks)
					}
				} else if wantTracks != -1 {
					t.Errorf("record-info: no response, want %d tracks", wantTracks)
				}
				var got []delivery
				waitUntil(t, 15*time.Second, "the error callback", func() bool {
					got = taskDeliveries(rcv, r.taskID)
					return len(got) > 0 && got[len(got)-1].body.Data.CallbackType == tunehook.CallbackError
				})
				time.Sleep(300 * time.Millisecond) // room for a stray callback
				got = taskDeliveries(rcv, r.taskID)
				var types []tunehook.CallbackType
				for _, d := range got {
					types = append(types, d.body.Data.CallbackType)
				}
				if !slices.Equal(types, wantTypes) {
					t.Errorf("callbacks %v, want %v", types, wantTypes)
				}
				last := got[len(got)-1]
				if last.body.Code != r.code || last.body.Msg != f.Message || !bytes.Contains(last.raw, []byte(`"data":null`)) {
					t.Errorf("error callback %s, want code %d msg %q data null", last.raw, r.code, f.Message)
				}
			})
		}
	})
}

// Without simulation, the tokens are ordinary text: the task succeeds at
// the usual pace.
func TestSimulationOff(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir(), "TUNEHOOK_SIMULATION=false")
	taskID := srv.submit(tokenBody(rcv.URL, "prompt", "tunehook:fail:501 tunehook:slow"))
	start := time.Now()
	waitUntil(t, 30*time.Second, "the task succeeds", func() bool { return srv.recordInfo(taskID).Status == tunehook.StatusSuccess })
	// Stretched, the pauses alone would take 5s.
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("the task took %v, want the normal pace (the token ignored)", took)
	}
}

// tunehook:slow stretches every pause tenfold: 100ms, 200ms and 200ms
// become 1s, 2s and 2s; the task then succeeds as usual. Only lower bounds
// are checked: nothing can make a pause shorter.
func TestSlowToken(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		rcv := newReceiver(t, nil)
		srv := startServer(t, t.TempDir(), st.with("TUNEHOOK_SIMULATION=true")...)
		start := time.Now()
		taskID := srv.submit(tokenBody(rcv.URL, "style", "tunehook:slow"))
		waitUntil(t, 40*time.Second, "the slow task succeeds", func() bool { return srv.recordInfo(taskID).Status == tunehook.StatusSuccess })
		waitUntil(t, 10*time.Second, "the complete callback", func() bool { return rcv.count(tunehook.CallbackComplete) == 1 })
		got := taskDeliveries(rcv, taskID)
		var types []tunehook.CallbackType
		for _, d := range got {
			types = append(types, d.body.Data.CallbackType)
		}
		if !slices.Equal(types, []tunehook.CallbackType{"text", "first", "complete"}) {
			t.Fatalf("callbacks %v, want text, first, complete", types)
		}
		for i, min := range []time.Duration{time.Second, 3 * time.Second, 5 * time.Second} {
			if at := got[i].at.Sub(start); at < min {
				t.Errorf("%s callback %v after submit, want at least %v", types[i], at, min)
			}
		}
	})
}

// rawGet sends a GET with key and returns the response, body read.
func rawGet(t *testing.T, u, key string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := (&http.Client{Timeout: 40 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// A key submits TUNEHOOK_RATE_LIMIT tasks, then gets code 430 with
// Retry-After; polling and other keys are not limited.
func TestRateLimitEndToEnd(t *testing.T) {
	t.Parallel()
	const otherKey = "other-key-9876543210"
	srv := startServer(t, t.TempDir(), "TUNEHOOK_RATE_LIMIT=3/1m", "TUNEHOOK_API_KEYS="+testKey+","+otherKey)
	var ids []string
	for range 3 {
		ids = append(ids, srv.submit(generateBody("https://example.com/cb")))
	}
	b, err := json.Marshal(generateBody("https://example.com/cb"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/generate", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var env tunehook.Envelope[json.RawMessage]
	err = json.NewDecoder(resp.Body).Decode(&env)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || env.Code != 430 || env.Msg != "Your call frequency is too high. Please try again later." {
		t.Errorf("fourth submit: HTTP %d code %d msg %q (%v), want HTTP 200 code 430 and the providers' message", resp.StatusCode, env.Code, env.Msg, err)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q, want 1 to 60 seconds", resp.Header.Get("Retry-After"))
	}
	for _, id := range ids {
		srv.recordInfo(id)
	}
	if env := srv.api("POST", "/api/v1/generate", otherKey, generateBody("https://example.com/cb"), nil); env.Code != 200 {
		t.Errorf("another key: code %d %q, want 200", env.Code, env.Msg)
	}
}

// In maintenance every /api/v1 call answers 455; health, readiness and
// metrics keep working.
func TestMaintenanceEndToEnd(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), "TUNEHOOK_MAINTENANCE=true")
	const msg = "The system is currently undergoing maintenance. Please try again later."
	for _, c := range []struct{ method, path string }{
		{"POST", "/api/v1/generate"},
		{"GET", "/api/v1/generate/record-info?taskId=x"},
		{"GET", "/api/v1/generate/events?taskId=x"},
	} {
		if env := srv.api(c.method, c.path, testKey, generateBody("https://example.com/cb"), nil); env.Code != 455 || env.Msg != msg {
			t.Errorf("%s %s: code %d %q, want 455 %q", c.method, c.path, env.Code, env.Msg, msg)
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if resp, _ := rawGet(t, srv.URL+p, ""); resp.StatusCode != 200 {
			t.Errorf("GET %s: %d, want 200", p, resp.StatusCode)
		}
	}
}

// longPoll calls record-info with wait and returns the record and how long
// the answer took.
func longPoll(t *testing.T, srv *server, taskID, wait string) (tunehook.RecordInfo, time.Duration) {
	t.Helper()
	start := time.Now()
	var ri tunehook.RecordInfo
	env := srv.api("GET", "/api/v1/generate/record-info?taskId="+taskID+"&wait="+wait, testKey, nil, &ri)
	if env.Code != 200 {
		t.Fatalf("record-info wait=%s: code %d %q", wait, env.Code, env.Msg)
	}
	return ri, time.Since(start)
}

// A long-poll answers when the status changes, long before its wait is
// over, and with the unchanged record when the wait ends first.
func TestLongPoll(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		srv := startServer(t, t.TempDir(), st.with("TUNEHOOK_SYNTH_DELAYS=1500ms,1h,1h")...)
		taskID := srv.submit(generateBody("https://example.com/cb"))
		ri, took := longPoll(t, srv, taskID, "30")
		if ri.Status != tunehook.StatusTextSuccess || took > 20*time.Second {
			t.Errorf("got %s after %v, want TEXT_SUCCESS as soon as the text stage commits", ri.Status, took)
		}
		ri, took = longPoll(t, srv, taskID, "1s")
		if ri.Status != tunehook.StatusTextSuccess || took < time.Second {
			t.Errorf("got %s after %v, want the unchanged TEXT_SUCCESS once the wait of 1s is over", ri.Status, took)
		}
	})
}

// On PostgreSQL a waiting request sees a change made by another instance,
// which cannot wake it: here a store of the test's own, whose clock runs
// two hours ahead, so that it may claim a task the server will not touch
// for an hour, and commits its text stage.
func TestLongPollOtherInstance(t *testing.T) {
	t.Parallel()
	db := pgtest.URL(t)
	srv := startServer(t, t.TempDir(), "TUNEHOOK_DATABASE_URL="+db, "TUNEHOOK_SYNTH_DELAYS=1h,1h,1h")
	taskID := srv.submit(generateBody("https://example.com/cb"))
	other, err := postgres.Open(t.Context(), db, postgres.Options{Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })

	polled := make(chan tunehook.RecordInfo, 1)
	go func() {
		var ri tunehook.RecordInfo
		env, _, err := call("GET", srv.URL+"/api/v1/generate/record-info?wait=30&taskId="+taskID, testKey, nil)
		if err == nil && env.Code == 200 {
			json.Unmarshal(env.Data, &ri)
		}
		polled <- ri
	}()
	events := openStream(t, srv, taskID)
	events.wantStatuses(t, tunehook.StatusPending)
	time.Sleep(300 * time.Millisecond) // the long-poll has read its task by now

	claimed, err := other.ClaimTasks(t.Context(), "other-instance", 1, time.Minute)
	if err != nil || len(claimed) != 1 || claimed[0].ID != taskID {
		t.Fatalf("claim: %v, %v; want the task", claimed, err)
	}
	now := time.Now()
	err = storetest.CommitStage(t.Context(), other, "other-instance", task.StageCommit{
		TaskID: taskID, From: task.StatusPending, To: task.StatusTextSuccess, Text: &task.Text{Title: "T", Tags: "rock"},
		RunAt: now.Add(time.Hour),
		Callback: &task.Callback{ID: task.NewCallbackID(), TaskID: taskID, Stage: task.StageText, URL: "https://example.com/cb",
			Body: []byte(`{}`), State: task.DeliveryPending, NextAttemptAt: now.Add(time.Hour), CreatedAt: now},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ri := <-polled:
		if ri.Status != tunehook.StatusTextSuccess {
			t.Errorf("long-poll got %q, want TEXT_SUCCESS", ri.Status)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the long-poll did not see the other instance's change")
	}
	events.wantStatuses(t, tunehook.StatusTextSuccess)
}

// stream is an open event stream of the API.
type stream struct {
	resp *http.Response
	r    *bufio.Reader
}

// openStream opens the event stream of taskID.
func openStream(t *testing.T, srv *server, taskID string) *stream {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/generate/events?taskId="+taskID, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: HTTP %d %s, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return &stream{resp: resp, r: bufio.NewReader(resp.Body)}
}

// streamEvent is one event of a stream.
type streamEvent struct {
	name, id string
	data     []byte
}

// next returns the next event, skipping comments; ok is false when the
// stream ended. The read is bounded by the test's own timeouts.
func (s *stream) next(t *testing.T) (ev streamEvent, ok bool) {
	t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return ev, false
		}
		line = strings.TrimSuffix(line, "\n")
		switch field, value, _ := strings.Cut(line, ": "); field {
		case "":
			if line == "" && ev.name != "" {
				return ev, true
			}
		case "event":
			ev.name = value
		case "id":
			ev.id = value
		case "data":
			ev.data = []byte(value)
		}
	}
}

// wantStatuses reads one status event per status and checks each event's
// id and data, then returns the records.
func (s *stream) wantStatuses(t *testing.T, statuses ...tunehook.Status) []tunehook.RecordInfo {
	t.Helper()
	var out []tunehook.RecordInfo
	for _, want := range statuses {
		ev, ok := s.next(t)
		var ri tunehook.RecordInfo
		if ok {
			if err := json.Unmarshal(ev.data, &ri); err != nil {
				t.Fatalf("event data %s: %v", ev.data, err)
			}
		}
		if !ok || ev.name != "status" || ev.id != string(want) || ri.Status != want {
			t.Fatalf("got event %q id %q data %s (open %v), want status %s", ev.name, ev.id, ev.data, ok, want)
		}
		out = append(out, ri)
	}
	return out
}

// wantEnd reads the end event and the end of the stream.
func (s *stream) wantEnd(t *testing.T) {
	t.Helper()
	if ev, ok := s.next(t); !ok || ev.name != "end" || string(ev.data) != "{}" {
		t.Errorf("got event %q data %s (open %v), want end {}", ev.name, ev.data, ok)
	}
	if ev, ok := s.next(t); ok {
		t.Errorf("got event %q after end, want the stream closed", ev.name)
	}
}

// An event stream sends every status in order, each with its record, and
// ends after the final one: for a success and for a failure after first.
func TestEventStream(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		rcv := newReceiver(t, nil)
		srv := startServer(t, t.TempDir(), st.with("TUNEHOOK_SIMULATION=true", "TUNEHOOK_SYNTH_DELAYS=2s,100ms,100ms")...)
		ok := openStream(t, srv, srv.submit(generateBody(rcv.URL)))
		failing := openStream(t, srv, srv.submit(tokenBody(rcv.URL, "title", "tunehook:fail:413@first")))

		records := ok.wantStatuses(t, tunehook.StatusPending, tunehook.StatusTextSuccess, tunehook.StatusFirstSuccess, tunehook.StatusSuccess)
		ok.wantEnd(t)
		for i, ri := range records {
			checkRecordInfoStage(t, ri)
			if i == 3 && ri.Response.SunoData[0] != records[2].Response.SunoData[0] {
				t.Errorf("first track at SUCCESS %+v differs from FIRST_SUCCESS's %+v", ri.Response.SunoData[0], records[2].Response.SunoData[0])
			}
		}
		records = failing.wantStatuses(t, tunehook.StatusPending, tunehook.StatusTextSuccess, tunehook.StatusFirstSuccess, tunehook.StatusGenerateAudioFailed)
		failing.wantEnd(t)
		if last := records[3]; last.ErrorCode == nil || *last.ErrorCode != 413 || last.Response == nil || len(last.Response.SunoData) != 1 {
			t.Errorf("final record %+v, want errorCode 413 and the first track", last)
		}
		if records[2].ErrorCode != nil {
			t.Errorf("FIRST_SUCCESS record has errorCode %v, want none", *records[2].ErrorCode)
		}
	})
}

// SIGTERM ends open event streams and long-polls: the server exits
// cleanly, without waiting them out.
func TestShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir(), "TUNEHOOK_SYNTH_DELAYS=1h,1h,1h")
	taskID := srv.submit(generateBody("https://example.com/cb"))
	events := openStream(t, srv, taskID)
	events.wantStatuses(t, tunehook.StatusPending)
	go call("GET", srv.URL+"/api/v1/generate/record-info?wait=30&taskId="+taskID, testKey, nil)
	time.Sleep(200 * time.Millisecond)
	srv.stop(4 * time.Second) // under the 5s grace that Shutdown would otherwise wait out
	if srv.waitErr != nil {
		t.Errorf("exit: %v, want a clean exit\n%s", srv.waitErr, srv.stderr)
	}
	if _, ok := events.next(t); ok {
		t.Error("the stream went on after shutdown")
	}
}

// metricLines returns the lines of a scrape of /metrics, without a key.
func metricLines(t *testing.T, srv *server) map[string]bool {
	t.Helper()
	resp, b := rawGet(t, srv.URL+"/metrics", "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	lines := map[string]bool{}
	for l := range strings.SplitSeq(string(b), "\n") {
		lines[l] = true
	}
	return lines
}

// After a task ran, /metrics shows it in every family.
func TestMetricsEndToEnd(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		rcv := newReceiver(t, nil)
		srv := startServer(t, t.TempDir(), st.with()...)
		srv.submit(generateBody(rcv.URL))
		waitUntil(t, 30*time.Second, "the complete callback", func() bool { return rcv.count(tunehook.CallbackComplete) == 1 })
		want := []string{
			`tunehook_tasks{status="SUCCESS"} 1`,
			`tunehook_tasks{status="PENDING"} 0`,
			`tunehook_callbacks{state="delivered"} 3`,
			`tunehook_callbacks{state="pending"} 0`,
			`tunehook_callbacks{state="exhausted"} 0`,
			`tunehook_callback_attempts_total{outcome="delivered"} 3`,
			`tunehook_callback_attempts_total{outcome="failed"} 0`,
			`tunehook_callback_attempt_duration_seconds_count 3`,
			`tunehook_stage_duration_seconds_count{stage="text"} 1`,
			`tunehook_stage_duration_seconds_count{stage="first"} 1`,
			`tunehook_stage_duration_seconds_count{stage="complete"} 1`,
			`tunehook_queue_lag_seconds{queue="tasks"} 0`,
			`tunehook_queue_lag_seconds{queue="callbacks"} 0`,
		}
		// The last attempt is recorded a moment after the receiver saw it.
		var missing []string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			lines := metricLines(t, srv)
			missing = slices.DeleteFunc(slices.Clone(want), func(w string) bool { return lines[w] })
			if len(missing) == 0 {
				return
			}
		}
		t.Errorf("no lines %q in /metrics", missing)
	})
}

// readyz returns the HTTP status and the envelope of /readyz.
func readyz(t *testing.T, srv *server) (int, tunehook.Envelope[json.RawMessage]) {
	t.Helper()
	resp, b := rawGet(t, srv.URL+"/readyz", "")
	var env tunehook.Envelope[json.RawMessage]
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("readyz body %s: %v", b, err)
	}
	return resp.StatusCode, env
}

// /readyz follows the database: 200 while PostgreSQL answers, 503 within
// about a second once it is away, 200 again when it is back.
func TestReadyz(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, t.TempDir())
		if status, env := readyz(t, srv); status != 200 || env.Code != 200 {
			t.Errorf("got %d %+v, want 200", status, env)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		u, err := url.Parse(pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		proxy := newTCPProxy(t, u.Host)
		u.Host = proxy.addr()
		srv := startServer(t, t.TempDir(), "TUNEHOOK_DATABASE_URL="+u.String())
		if status, env := readyz(t, srv); status != 200 || env.Code != 200 || env.Msg != "ready" {
			t.Errorf("database up: got %d %+v, want 200 ready", status, env)
		}
		proxy.cut()
		start := time.Now()
		status, env := readyz(t, srv)
		if status != 503 || env.Code != 503 || env.Msg != "The database is not reachable." || string(env.Data) != "null" {
			t.Errorf("database away: got %d %+v, want 503 and the envelope", status, env)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("readyz took %v with the database away, want about a second at most", took)
		}
		proxy.restore()
		waitUntil(t, 15*time.Second, "readyz is 200 again", func() bool {
			status, _ := readyz(t, srv)
			return status == 200
		})
	})
}

// tunehook serve --dev: a temporary data dir, removed at exit; a key and
// ready-to-paste curl lines in the banner; simulation on and private
// callbacks allowed, so that a local receiver gets a simulated failure.
func TestDevSmoke(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	rcv := newReceiver(t, nil)
	srv := startServerArgs(t, "", []string{"--dev"}, "TMPDIR="+tmp,
		// Nothing of the test environment but the address: the preset
		// decides.
		"TUNEHOOK_DATA_DIR=", "TUNEHOOK_API_KEYS=", "TUNEHOOK_ALLOW_PRIVATE_CALLBACKS=", "TUNEHOOK_SYNTH_DELAYS=",
		"TUNEHOOK_SYNTH_DURATION=", "TUNEHOOK_CALLBACK_TIMEOUT=", "TUNEHOOK_CALLBACK_RETRY_DELAYS=", "TUNEHOOK_RATE_LIMIT=")
	banner := srv.stdout.String()
	m := regexp.MustCompile(`API key:\s+(th_\S+)`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("no key in the banner:\n%s", banner)
	}
	key := m[1]
	for _, want := range []string{"curl -s " + srv.URL + "/api/v1/generate -H \"Authorization: Bearer " + key + "\"",
		"record-info?taskId=TASK_ID&wait=30", "tunehook:fail:", "tunehook:slow", "temporary", tmp} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	body := generateBody(rcv.URL)
	body["prompt"] = "a song tunehook:fail:500"
	var created tunehook.TaskCreated
	if env := srv.api("POST", "/api/v1/generate", key, body, &created); env.Code != 200 {
		t.Fatalf("submit with the printed key: code %d %q", env.Code, env.Msg)
	}
	waitUntil(t, 20*time.Second, "the error callback reaches the local receiver", func() bool {
		got := taskDeliveries(rcv, created.TaskID)
		return len(got) == 1 && got[0].body.Code == 500
	})
	if entries, err := os.ReadDir(tmp); err != nil || len(entries) != 1 {
		t.Fatalf("TMPDIR holds %v (%v), want the one data dir", entries, err)
	}
	srv.stop(10 * time.Second)
	if entries, err := os.ReadDir(tmp); err != nil || len(entries) != 0 {
		t.Errorf("TMPDIR holds %v (%v) after exit, want the data dir removed", entries, err)
	}
}
