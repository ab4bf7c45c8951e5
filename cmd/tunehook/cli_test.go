package main

// The client commands and tunehook demo, run as the real binary against a
// real server.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/jpeg"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
)

// cliResult is what one run of the binary produced.
type cliResult struct {
	stdout, stderr string
	code           int // the exit code
}

// runCLI runs the binary with args and env ("NAME=value", on top of the
// process's environment without its TUNEHOOK_ variables) in dir.
func runCLI(t *testing.T, dir string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TUNEHOOK_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	if exit, ok := errors.AsType[*exec.ExitError](err); ok {
		res.code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("run tunehook %v: %v", args, err)
	}
	return res
}

// clientEnv is the environment that points the client commands at srv.
func clientEnv(srv *server) []string {
	return []string{"TUNEHOOK_URL=" + srv.URL, "TUNEHOOK_API_KEY=" + testKey}
}

// checkSavedMedia checks that dir holds the two tracks of a task as WAV
// files of the given length with sound in them, and their covers as
// JPEG images.
func checkSavedMedia(t *testing.T, dir, taskID string, seconds float64) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{taskID + "-1.jpeg", taskID + "-1.wav", taskID + "-2.jpeg", taskID + "-2.wav"}
	if !slices.Equal(names, want) {
		t.Fatalf("files in %s: got %v, want %v", dir, names, want)
	}
	for _, name := range want {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Ext(name) == ".wav" {
			got, rms := measureWAV(t, b)
			if math.Abs(got-seconds) > 0.005 || rms < 0.01 {
				t.Errorf("%s: %.3f s at RMS %.4f, want %v s of sound", name, got, rms, seconds)
			}
			continue
		}
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
		if err != nil || cfg.Width < 512 || cfg.Height < 512 {
			t.Errorf("%s: %dx%d, %v; want a JPEG of at least 512x512", name, cfg.Width, cfg.Height, err)
		}
	}
}

// tunehook demo runs a sandbox, receives the three stages with verified
// signatures, saves real audio and covers, and exits 0, leaving no
// temporary data behind.
func TestDemo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	res := runCLI(t, dir, nil, "demo", "--timeout", "2m")
	if res.code != 0 {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	out := res.stdout
	m := regexp.MustCompile(`submitted task ([0-9a-f]{32})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no task in the output:\n%s", out)
	}
	taskID := m[1]
	// In the order they happen: each callback printed as it arrives.
	order := []string{
		"sandbox server on http://127.0.0.1:", "receiver on http://127.0.0.1:",
		"status PENDING", "stage:      text", "stage:      first", "stage:      complete",
		"saved tunehook-demo/" + taskID + "-1.wav", "done: 2 tracks and their covers in tunehook-demo",
	}
	at := 0
	for _, s := range order {
		i := strings.Index(out[at:], s)
		if i < 0 {
			t.Fatalf("output lacks %q after byte %d:\n%s", s, at, out)
		}
		at += i + len(s)
	}
	for _, s := range []string{"status TEXT_SUCCESS", "status FIRST_SUCCESS", "status SUCCESS"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q", s)
		}
	}
	if n := strings.Count(out, "signature:  verified (standard webhooks)"); n != 3 {
		t.Errorf("%d verified signatures, want 3:\n%s", n, out)
	}
	if n := strings.Count(out, `answered:   200 {"status":"received"}`); n != 3 {
		t.Errorf("%d callbacks received by the SDK's Receiver, want 3", n)
	}
	checkSavedMedia(t, filepath.Join(dir, "tunehook-demo"), taskID, 30)

	data := regexp.MustCompile(`data in (\S+), removed at exit`).FindStringSubmatch(out)
	if data == nil {
		t.Fatal("the output does not say where the data is")
	}
	if _, err := os.Stat(data[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the sandbox's data dir %s is still there: %v", data[1], err)
	}
}

// A failed task makes the demo exit non-zero and say why, saving nothing.
func TestDemoFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	res := runCLI(t, dir, nil, "demo", "--prompt", "a song tunehook:fail:501", "--out", "songs")
	if res.code != 1 {
		t.Fatalf("demo exited %d, want 1\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stderr, "failed: code 501 (audio generation failed)") {
		t.Errorf("stderr does not give the failure:\n%s", res.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "songs")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the output dir exists after a failure: %v", err)
	}
}

// Piped, generate --wait prints one line per status, in order, then the
// tracks, and --out saves them.
func TestGenerateWaitPiped(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir(), "TUNEHOOK_SYNTH_DELAYS=500ms,500ms,500ms")
	dir := t.TempDir()
	res := runCLI(t, dir, clientEnv(srv), "generate", "--prompt", "a calm piano song about the sea",
		"--callback-url", rcv.URL+"/cb", "--wait", "--out", "media", "--poll-interval", "100ms")
	if res.code != 0 {
		t.Fatalf("generate exited %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	if strings.ContainsAny(res.stdout, "\r\x1b") {
		t.Errorf("piped output has terminal controls: %q", res.stdout)
	}
	lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
	m := regexp.MustCompile(`^task ([0-9a-f]{32})$`).FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("first line %q, want task ID", lines[0])
	}
	taskID := m[1]
	want := []*regexp.Regexp{
		regexp.MustCompile(`^\[\.\.\.\] PENDING +\d+\.\ds  queued$`),
		regexp.MustCompile(`^\[#\.\.\] TEXT_SUCCESS +\d+\.\ds  lyrics and title written$`),
		regexp.MustCompile(`^\[##\.\] FIRST_SUCCESS +\d+\.\ds  track 1 ready: ".+", 4\.0 s$`),
		regexp.MustCompile(`^\[###\] SUCCESS +\d+\.\ds  2 tracks ready$`),
		regexp.MustCompile(`^track 1:  ".+"  4\.00 s  id \S+  model chirp-crow  tags ".*"$`),
		regexp.MustCompile(`^          audio  ` + regexp.QuoteMeta(srv.URL) + `/media/` + taskID + `/\S+\.wav$`),
	}
	if len(lines) < 1+len(want) {
		t.Fatalf("output:\n%s", res.stdout)
	}
	for i, re := range want {
		if !re.MatchString(lines[1+i]) {
			t.Errorf("line %d: got %q, want %v", 2+i, lines[1+i], re)
		}
	}
	if n := strings.Count(res.stdout, "\nsaved media/"+taskID); n != 4 {
		t.Errorf("%d saved lines, want 4:\n%s", n, res.stdout)
	}
	checkSavedMedia(t, filepath.Join(dir, "media"), taskID, 4)
	waitUntil(t, 10*time.Second, "the complete callback arrives", func() bool { return rcv.count(tunehook.CallbackComplete) == 1 })
}

// In a terminal the progress is one line, redrawn in place.
func TestProgressInTerminal(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	p := newProgress(&out, true, time.Now())
	for _, s := range []tunehook.Status{tunehook.StatusPending, tunehook.StatusTextSuccess, tunehook.StatusFirstSuccess, tunehook.StatusSuccess} {
		p.show(&tunehook.RecordInfo{TaskID: "t1", Status: s})
	}
	p.end()
	got := out.String()
	if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
		t.Errorf("got %q, want one line ended once", got)
	}
	if n := strings.Count(got, "\r\x1b[K"); n < 4 {
		t.Errorf("got %q, want each status redrawn over the line", got)
	}
	last := got[strings.LastIndex(got, "\r\x1b[K"):]
	if !strings.Contains(last, "[###] SUCCESS") {
		t.Errorf("the final line %q does not show SUCCESS", last)
	}
}

// Without --wait, generate prints the task ID alone, for scripts; status
// shows the task, as text and as JSON.
func TestGenerateAndStatus(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir())
	res := runCLI(t, "", nil, "generate", "--url", srv.URL, "--api-key", testKey, "--custom", "--instrumental",
		"--style", "ambient, slow", "--title", "Tide", "--model", "V4_5", "--callback-url", rcv.URL+"/cb")
	if res.code != 0 || !regexp.MustCompile(`^[0-9a-f]{32}\n$`).MatchString(res.stdout) {
		t.Fatalf("generate: exit %d, stdout %q, stderr %q; want the task ID alone", res.code, res.stdout, res.stderr)
	}
	taskID := strings.TrimSpace(res.stdout)
	waitUntil(t, 15*time.Second, "the task succeeds", func() bool { return srv.recordInfo(taskID).Status == tunehook.StatusSuccess })

	res = runCLI(t, "", clientEnv(srv), "status", taskID)
	if res.code != 0 {
		t.Fatalf("status exited %d: %s", res.code, res.stderr)
	}
	for _, want := range []string{"task:     " + taskID + "\n", "status:   SUCCESS\n", "model:    chirp-auk (generate)\n", `track 1:  "Tide"`, `track 2:  "Tide"`, "image  " + srv.URL + "/media/"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, res.stdout)
		}
	}
	res = runCLI(t, "", clientEnv(srv), "status", "--json", taskID)
	var rec tunehook.RecordInfo
	if err := json.Unmarshal([]byte(res.stdout), &rec); err != nil || rec.TaskID != taskID || len(rec.Response.SunoData) != 2 {
		t.Errorf("status --json: %v, got %+v", err, rec)
	}
	var param map[string]any
	json.Unmarshal([]byte(rec.Param), &param)
	if param["customMode"] != true || param["instrumental"] != true || param["style"] != "ambient, slow" || param["title"] != "Tide" || param["model"] != "V4_5" {
		t.Errorf("the flags did not reach the request: param %v", param)
	}
}

// The client commands' errors: exit code 1 and the server's message, or
// exit code 2 and the usage for a bad command line.
func TestClientCommandErrors(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir(), "TUNEHOOK_SIMULATION=true")
	env := clientEnv(srv)
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		want     string
	}{
		{"no callback URL", env, []string{"generate", "--prompt", "a song"}, 1, "--callback-url is required"},
		{"no key", []string{"TUNEHOOK_URL=" + srv.URL}, []string{"status", "t1"}, 1, "no API key: pass --api-key or set TUNEHOOK_API_KEY"},
		{"wrong key", []string{"TUNEHOOK_URL=" + srv.URL, "TUNEHOOK_API_KEY=wrong"}, []string{"status", "t1"}, 1, "code 401 (unauthorized): Invalid API key."},
		{"invalid request", env, []string{"generate", "--callback-url", "https://example.com/cb"}, 1, "code 400 (invalid parameters): Please enter prompt"},
		{"too long", env, []string{"generate", "--custom", "--style", "x", "--title", strings.Repeat("t", 101), "--instrumental", "--callback-url", "https://example.com/cb"}, 1, "code 413 (field too long): title is too long"},
		{"failed task", env, []string{"generate", "--prompt", "a song tunehook:fail:531", "--callback-url", rcv.URL, "--wait", "--poll-interval", "100ms"}, 1, "failed: code 531 (generation failed, credits refunded: try again)"},
		{"unknown task", env, []string{"status", "0123456789abcdef0123456789abcdef"}, 1, "code 404 (not found): Task not found."},
		{"bad URL", []string{"TUNEHOOK_URL=ftp://x", "TUNEHOOK_API_KEY=k"}, []string{"status", "t1"}, 1, `--url "ftp://x" is not an http or https URL`},
		{"server down", []string{"TUNEHOOK_URL=http://127.0.0.1:1", "TUNEHOOK_API_KEY=k"}, []string{"status", "t1"}, 1, "connection refused"},
		{"no task", env, []string{"status"}, 2, "want 1 argument(s), got 0"},
		{"no callback", env, []string{"redeliver"}, 2, "Usage: tunehook redeliver"},
		{"unknown flag", env, []string{"generate", "--nope"}, 2, "flag provided but not defined: -nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, "", tt.env, tt.args...)
			if res.code != tt.wantCode || !strings.Contains(res.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", res.code, res.stderr, tt.wantCode, tt.want)
			}
		})
	}
}

// callbacks shows the delivery log as a table; redeliver starts a manual
// series that the log then shows. These use GET /api/v1/callbacks and POST
// /api/v1/callbacks/{id}/redeliver of the contract.
func TestCallbacksAndRedeliver(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir())
	taskID := srv.submit(generateBody(rcv.URL + "/cb"))
	waitUntil(t, 15*time.Second, "the complete callback arrives", func() bool { return rcv.count(tunehook.CallbackComplete) == 1 })
	client := tunehook.NewClient(srv.URL, testKey)
	var log *tunehook.DeliveryLog
	waitUntil(t, 10*time.Second, "the log shows three delivered callbacks", func() bool {
		var err error
		log, err = client.Callbacks(t.Context(), taskID)
		if err != nil {
			t.Fatalf("Callbacks: %v", err)
		}
		return len(log.Callbacks) == 3 && !slices.ContainsFunc(log.Callbacks, func(cb tunehook.CallbackRecord) bool {
			return cb.State != tunehook.DeliveryDelivered
		})
	})

	res := runCLI(t, "", clientEnv(srv), "callbacks", taskID)
	if res.code != 0 {
		t.Fatalf("callbacks exited %d: %s", res.code, res.stderr)
	}
	lines := strings.Split(res.stdout, "\n")
	if lines[0] != "task "+taskID+": 3 callbacks" || !regexp.MustCompile(`^CALLBACK +TYPE +STATE +ATTEMPTS +CREATED +NEXT / FINISHED +URL$`).MatchString(lines[1]) {
		t.Fatalf("header:\n%s", res.stdout)
	}
	for i, ct := range []string{"text", "first", "complete"} {
		row := regexp.MustCompile(`^` + regexp.QuoteMeta(log.Callbacks[i].ID) + ` +` + ct + ` +delivered +1 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC +finished \S+ \S+ UTC +` + regexp.QuoteMeta(rcv.URL+"/cb") + `$`)
		attempt := regexp.MustCompile(`^  #1 \d\d:\d\d:\d\d\.\d{3}  \S+  HTTP 200  "\{\\"status\\":\\"received\\"\}"`)
		if !row.MatchString(lines[2+2*i]) || !attempt.MatchString(lines[3+2*i]) {
			t.Errorf("%s: got\n%s\n%s", ct, lines[2+2*i], lines[3+2*i])
		}
	}

	complete := log.Callbacks[2]
	res = runCLI(t, "", clientEnv(srv), "redeliver", complete.ID)
	if res.code != 0 || !strings.Contains(res.stdout, "callback "+complete.ID+" (complete of task "+taskID+")") {
		t.Fatalf("redeliver: exit %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	waitUntil(t, 10*time.Second, "the complete callback arrives again", func() bool { return rcv.count(tunehook.CallbackComplete) == 2 })
	waitUntil(t, 10*time.Second, "the log shows the manual attempt", func() bool {
		res = runCLI(t, "", clientEnv(srv), "callbacks", taskID)
		return strings.Contains(res.stdout, "#2 (manual, series 2) ")
	})

	res = runCLI(t, "", clientEnv(srv), "redeliver", "no-such-callback")
	if res.code != 1 || !strings.Contains(res.stderr, "code 404") {
		t.Errorf("redeliver of an unknown callback: exit %d, stderr %q; want 1 and code 404", res.code, res.stderr)
	}
}
