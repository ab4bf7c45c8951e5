package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-audio/wav"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/httpapi"
)

// A task runs through its stages; the receiver gets text, first and complete
// exactly once each, in the seed's format; polling sees every status; the
// media are real audio and images.
func TestGenerateEndToEnd(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		rcv := newReceiver(t, nil)
		// Signed, so that the signature headers are checked against the webhooks.
		srv := startServer(t, t.TempDir(), st.with("TUNEHOOK_SYNTH_DELAYS=600ms,600ms,600ms", "TUNEHOOK_WEBHOOK_HMAC_KEY=e2e-signing-key")...)
		body := generateBody(rcv.URL + "/suno-callback")
		taskID := srv.submit(body)

		// Poll faster than the stages advance and keep each status seen.
		var statuses []tunehook.Status
		var final tunehook.RecordInfo
		waitUntil(t, 30*time.Second, "the task succeeds", func() bool {
			ri := srv.recordInfo(taskID)
			if len(statuses) == 0 || statuses[len(statuses)-1] != ri.Status {
				statuses = append(statuses, ri.Status)
				checkRecordInfoStage(t, ri)
			}
			final = ri
			return ri.Status == tunehook.StatusSuccess
		})
		wantStatuses := []tunehook.Status{tunehook.StatusPending, tunehook.StatusTextSuccess, tunehook.StatusFirstSuccess, tunehook.StatusSuccess}
		if !slices.Equal(statuses, wantStatuses) {
			t.Errorf("statuses seen: got %v, want %v", statuses, wantStatuses)
		}

		waitUntil(t, 10*time.Second, "the complete callback arrives", func() bool { return rcv.count(tunehook.CallbackComplete) == 1 })
		time.Sleep(1500 * time.Millisecond) // room for a duplicate to show up
		got := rcv.deliveries()
		var types []tunehook.CallbackType
		for _, d := range got {
			types = append(types, d.body.Data.CallbackType)
		}
		if want := []tunehook.CallbackType{"text", "first", "complete"}; !slices.Equal(types, want) {
			t.Fatalf("callbacks: got %v, want %v exactly once each", types, want)
		}
		for _, d := range got {
			checkCallback(t, d, taskID)
		}
		first, complete := got[1].body.Data.Data, got[2].body.Data.Data
		if first[0] != complete[0] {
			t.Errorf("first's track and complete's first track differ:\n%+v\n%+v", first[0], complete[0])
		}
		if complete[0].ID == complete[1].ID || complete[0].AudioURL == complete[1].AudioURL {
			t.Errorf("the two tracks are not distinct: %+v", complete)
		}

		// record-info agrees with the callbacks and keeps the request.
		if final.Response == nil || len(final.Response.SunoData) != 2 {
			t.Fatalf("record-info at SUCCESS: got %+v, want 2 tracks", final.Response)
		}
		for i, tr := range final.Response.SunoData {
			cb := complete[i]
			if tr.ID != cb.ID || tr.AudioURL != cb.AudioURL || tr.StreamAudioURL != cb.StreamAudioURL || tr.ImageURL != cb.ImageURL ||
				tr.Prompt != cb.Prompt || tr.ModelName != cb.ModelName || tr.Title != cb.Title || tr.Tags != cb.Tags || tr.Duration != cb.Duration {
				t.Errorf("record-info track %d %+v does not match the callback's %+v", i, tr, cb)
			}
			if got := time.UnixMilli(tr.CreateTime).UTC().Format(tunehook.CreateTimeLayout); got != cb.CreateTime {
				t.Errorf("track %d createTime: record-info %s, callback %s", i, got, cb.CreateTime)
			}
		}
		var param map[string]any
		if err := json.Unmarshal([]byte(final.Param), &param); err != nil {
			t.Fatalf("param is not a JSON string: %v", err)
		}
		if !reflect.DeepEqual(param, body) {
			t.Errorf("param: got %v, want the request %v", param, body)
		}
		if final.Type != "chirp-crow" || final.OperationType != "generate" || final.ErrorCode != nil || final.ErrorMessage != nil {
			t.Errorf("record-info: type %q operationType %q errorCode %v errorMessage %v", final.Type, final.OperationType, final.ErrorCode, final.ErrorMessage)
		}
		if age := time.Since(time.UnixMilli(final.CreateTime)); age < 0 || age > time.Minute {
			t.Errorf("record-info createTime %d is not epoch milliseconds of now", final.CreateTime)
		}

		for _, tr := range complete {
			checkMedia(t, tr)
		}
	})
}

// checkRecordInfoStage checks what record-info shows at each status.
func checkRecordInfoStage(t *testing.T, ri tunehook.RecordInfo) {
	t.Helper()
	want := map[tunehook.Status]int{tunehook.StatusTextSuccess: 0, tunehook.StatusFirstSuccess: 1, tunehook.StatusSuccess: 2}
	switch n, ok := want[ri.Status]; {
	case ri.Status == tunehook.StatusPending:
		if ri.Response != nil {
			t.Errorf("PENDING: got response %+v, want null", ri.Response)
		}
	case ok:
		if ri.Response == nil || ri.Response.TaskID != ri.TaskID || ri.Response.SunoData == nil || len(ri.Response.SunoData) != n {
			t.Errorf("%s: got response %+v, want %d tracks", ri.Status, ri.Response, n)
		}
	default:
		t.Errorf("unexpected status %s", ri.Status)
	}
}

// callbackItemKeys are the item fields of the seed, exactly.
var callbackItemKeys = []string{"audio_url", "createTime", "duration", "id", "image_url", "model_name", "prompt", "stream_audio_url", "tags", "title"}

// checkCallback checks one callback against the seed's format.
func checkCallback(t *testing.T, d delivery, taskID string) {
	t.Helper()
	ct := d.body.Data.CallbackType
	if got := d.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", ct, got)
	}
	if got := d.header.Get("User-Agent"); got != "tunehook/"+tunehook.Version {
		t.Errorf("%s: User-Agent %q, want tunehook/%s", ct, got, tunehook.Version)
	}
	if d.body.Code != 200 || d.body.Msg == "" || d.body.Data.TaskID != taskID {
		t.Errorf("%s: code %d msg %q task_id %q, want 200, a message and %s", ct, d.body.Code, d.body.Msg, d.body.Data.TaskID, taskID)
	}
	// The raw shape: {code, msg, data:{callbackType, task_id, data:[...]}}.
	var raw struct {
		Code *int
		Msg  *string
		Data map[string]json.RawMessage
	}
	if err := json.Unmarshal(d.raw, &raw); err != nil || raw.Code == nil || raw.Msg == nil {
		t.Fatalf("%s: body %s lacks code or msg", ct, d.raw)
	}
	if keys := sortedKeys(raw.Data); !slices.Equal(keys, []string{"callbackType", "data", "task_id"}) {
		t.Errorf("%s: data keys %v, want callbackType, data, task_id", ct, keys)
	}
	var items []map[string]any
	if err := json.Unmarshal(raw.Data["data"], &items); err != nil || items == nil {
		t.Fatalf("%s: data.data is %s, want an array", ct, raw.Data["data"])
	}
	want := map[tunehook.CallbackType]int{"text": 0, "first": 1, "complete": 2}[ct]
	if len(items) != want {
		t.Errorf("%s: %d items, want %d", ct, len(items), want)
	}
	for _, it := range items {
		if keys := sortedKeys(it); !slices.Equal(keys, callbackItemKeys) {
			t.Errorf("%s: item keys %v, want %v", ct, keys, callbackItemKeys)
		}
	}
	for _, tr := range d.body.Data.Data {
		if tr.ID == "" || tr.AudioURL == "" || tr.StreamAudioURL == "" || tr.ImageURL == "" || tr.Prompt == "" || tr.Title == "" || tr.Tags == "" {
			t.Errorf("%s: empty field in %+v", ct, tr)
		}
		if tr.ModelName != "chirp-crow" {
			t.Errorf("%s: model_name %q, want chirp-crow for V5", ct, tr.ModelName)
		}
		if ts, err := time.Parse(tunehook.CreateTimeLayout, tr.CreateTime); err != nil || time.Since(ts) > time.Minute || time.Since(ts) < -time.Second {
			t.Errorf("%s: createTime %q is not YYYY-MM-DD HH:MM:SS of now (UTC): %v", ct, tr.CreateTime, err)
		}
		if tr.Duration != 4 {
			t.Errorf("%s: duration %v, want the configured 4", ct, tr.Duration)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkMedia downloads a track's audio, stream and cover and measures them.
func checkMedia(t *testing.T, tr tunehook.CallbackTrack) {
	t.Helper()
	audio, header := download(t, tr.AudioURL, "")
	if got := header.Get("Content-Type"); got != "audio/wav" {
		t.Errorf("audio Content-Type %q, want audio/wav", got)
	}
	if got := header.Get("Content-Length"); got != fmt.Sprint(len(audio)) {
		t.Errorf("audio Content-Length %s, want %d", got, len(audio))
	}
	seconds, rms := measureWAV(t, audio)
	if math.Abs(seconds-tr.Duration) > 0.005 {
		t.Errorf("audio lasts %.4fs, duration says %v", seconds, tr.Duration)
	}
	if rms < 0.01 {
		t.Errorf("audio RMS %.5f of full scale: silence", rms)
	}
	stream, _ := download(t, tr.StreamAudioURL, "")
	if !bytes.Equal(stream, audio) {
		t.Errorf("stream_audio_url serves %d bytes that differ from audio_url's %d", len(stream), len(audio))
	}
	part, header := download(t, tr.AudioURL, "bytes=100-199")
	if !bytes.Equal(part, audio[100:200]) || header.Get("Content-Range") != fmt.Sprintf("bytes 100-199/%d", len(audio)) {
		t.Errorf("range request: got %d bytes, Content-Range %q", len(part), header.Get("Content-Range"))
	}
	img, header := download(t, tr.ImageURL, "")
	if got := header.Get("Content-Type"); got != "image/jpeg" {
		t.Errorf("image Content-Type %q, want image/jpeg", got)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("cover is not a JPEG: %v", err)
	}
	if cfg.Width < 512 || cfg.Height < 512 {
		t.Errorf("cover is %dx%d, want at least 512x512", cfg.Width, cfg.Height)
	}
}

func download(t *testing.T, url, rangeHeader string) ([]byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := http.StatusOK
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
		want = http.StatusPartialContent
	}
	resp, b, err := exchange(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: HTTP %d, want %d", url, resp.StatusCode, want)
	}
	return b, resp.Header
}

// measureWAV decodes a WAV file with an independent decoder and returns its
// length in seconds and its RMS level as a fraction of full scale.
func measureWAV(t *testing.T, b []byte) (seconds, rms float64) {
	t.Helper()
	dec := wav.NewDecoder(bytes.NewReader(b))
	buf, err := dec.FullPCMBuffer()
	if err != nil {
		t.Fatalf("decode WAV: %v", err)
	}
	if dec.SampleRate != 44100 || dec.NumChans != 2 || dec.BitDepth != 16 {
		t.Errorf("WAV format %d Hz, %d channels, %d bits; want 44100, 2, 16", dec.SampleRate, dec.NumChans, dec.BitDepth)
	}
	var sum float64
	for _, s := range buf.Data {
		v := float64(s) / 32768
		sum += v * v
	}
	frames := len(buf.Data) / int(dec.NumChans)
	return float64(frames) / float64(dec.SampleRate), math.Sqrt(sum / float64(len(buf.Data)))
}

// A simulated failure ends the task with an error callback in the seed's
// format and the failure in record-info; "@first" fails after first.
func TestFailedTask(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		tests := []struct {
			prompt     string
			wantTypes  []tunehook.CallbackType
			wantCode   int
			wantStatus tunehook.Status
		}{
			{"a song tunehook:fail:501", []tunehook.CallbackType{"error"}, 501, tunehook.StatusGenerateAudioFailed},
			{"a song tunehook:fail:400@first", []tunehook.CallbackType{"text", "first", "error"}, 400, tunehook.StatusSensitiveWordError},
		}
		rcv := newReceiver(t, nil)
		srv := startServer(t, t.TempDir(), st.with("TUNEHOOK_SIMULATION=true")...)
		for _, tt := range tests {
			t.Run(tt.prompt, func(t *testing.T) {
				body := generateBody(rcv.URL)
				body["prompt"] = tt.prompt
				taskID := srv.submit(body)
				var ri tunehook.RecordInfo
				waitUntil(t, 20*time.Second, "the task fails", func() bool {
					ri = srv.recordInfo(taskID)
					return ri.Status == tt.wantStatus
				})
				if ri.ErrorCode == nil || *ri.ErrorCode != tt.wantCode || ri.ErrorMessage == nil || *ri.ErrorMessage == "" {
					t.Errorf("record-info errorCode %v errorMessage %v, want %d and a message", ri.ErrorCode, ri.ErrorMessage, tt.wantCode)
				}
				var got []delivery
				waitUntil(t, 10*time.Second, "the error callback arrives", func() bool {
					got = nil
					for _, d := range rcv.deliveries() {
						if d.body.Data.TaskID == taskID {
							got = append(got, d)
						}
					}
					return len(got) > 0 && got[len(got)-1].body.Data.CallbackType == tunehook.CallbackError
				})
				var types []tunehook.CallbackType
				for _, d := range got {
					types = append(types, d.body.Data.CallbackType)
				}
				if !slices.Equal(types, tt.wantTypes) {
					t.Errorf("callbacks: got %v, want %v", types, tt.wantTypes)
				}
				last := got[len(got)-1]
				if last.body.Code != tt.wantCode || !last.body.Failed() || last.body.Msg != *ri.ErrorMessage {
					t.Errorf("error callback: code %d msg %q, want %d %q", last.body.Code, last.body.Msg, tt.wantCode, *ri.ErrorMessage)
				}
				if !bytes.Contains(last.raw, []byte(`"data":null`)) || !bytes.Contains(last.raw, []byte(`"callbackType":"error"`)) {
					t.Errorf("error callback body %s, want data.data null", last.raw)
				}
			})
		}
	})
}

// Keys: none or a wrong one is refused; another key's task does not exist;
// the OpenAPI document needs none.
func TestAuthAndErrors(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		const otherKey = "other-key-9876543210"
		srv := startServer(t, t.TempDir(), st.with("TUNEHOOK_API_KEYS="+testKey+","+otherKey)...)
		taskID := srv.submit(generateBody("https://example.com/cb"))

		tests := []struct {
			name, method, path, key string
			body                    any
			wantCode                int
			wantMsg                 string
		}{
			{"no key", "GET", "/api/v1/generate/record-info?taskId=" + taskID, "", nil, 401, ""},
			{"wrong key", "GET", "/api/v1/generate/record-info?taskId=" + taskID, "nope-nope-nope", nil, 401, ""},
			{"another key's task", "GET", "/api/v1/generate/record-info?taskId=" + taskID, otherKey, nil, 404, ""},
			{"unknown task", "GET", "/api/v1/generate/record-info?taskId=ffffffffffffffffffffffffffffffff", testKey, nil, 404, ""},
			{"missing callBackUrl", "POST", "/api/v1/generate", testKey, map[string]any{"customMode": false, "instrumental": false, "model": "V5", "prompt": "x"}, 400, "Please enter callBackUrl."},
			{"unknown model", "POST", "/api/v1/generate", testKey, map[string]any{"customMode": false, "instrumental": false, "model": "V9", "prompt": "x", "callBackUrl": "https://example.com/"}, 400, ""},
			{"unknown path", "GET", "/api/v1/nothing-here", testKey, nil, 404, ""},
		}
		for _, tt := range tests {
			env := srv.api(tt.method, tt.path, tt.key, tt.body, nil)
			if env.Code != tt.wantCode || (tt.wantMsg != "" && env.Msg != tt.wantMsg) || env.Msg == "" {
				t.Errorf("%s: got code %d msg %q, want %d %q", tt.name, env.Code, env.Msg, tt.wantCode, tt.wantMsg)
			}
		}
		if got := srv.recordInfo(taskID); got.TaskID != taskID {
			t.Errorf("the owner cannot read its task: %+v", got)
		}

		// The document every answer is checked against is the one the
		// binary serves, without a key.
		req, err := http.NewRequest("GET", srv.URL+"/openapi.json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, doc, err := exchange(req)
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(doc, httpapi.OpenAPIDocument()) {
			t.Errorf("GET /openapi.json: %v; want HTTP 200 and the document of internal/httpapi", err)
		}
	})
}

// With no keys configured, the first start generates a key, prints it once
// and keeps it; the next start accepts it without printing it.
func TestGeneratedAPIKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := startServer(t, dir, "TUNEHOOK_API_KEYS=")
	m := regexp.MustCompile(`API key:\s+(th_\S+)`).FindStringSubmatch(srv.stdout.String())
	if m == nil {
		t.Fatalf("first start printed no key:\n%s", srv.stdout)
	}
	key := m[1]
	st, err := os.Stat(filepath.Join(dir, "api-key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("api-key file: %v, mode %v; want 0600", err, st.Mode())
	}
	if env := srv.api("GET", "/api/v1/generate/record-info?taskId=x", key, nil, nil); env.Code != 404 {
		t.Errorf("generated key refused: code %d %q", env.Code, env.Msg)
	}
	srv.stop(10 * time.Second)

	again := startServer(t, dir, "TUNEHOOK_API_KEYS=")
	if strings.Contains(again.stdout.String(), key) {
		t.Errorf("second start printed the key again:\n%s", again.stdout)
	}
	if env := again.api("GET", "/api/v1/generate/record-info?taskId=x", key, nil, nil); env.Code != 404 {
		t.Errorf("kept key refused after restart: code %d %q", env.Code, env.Msg)
	}
}

// A bad setting stops the server at start with a message naming it.
func TestBadConfigExits(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "TUNEHOOK_DATA_DIR="+t.TempDir(), "TUNEHOOK_CALLBACK_RETRY_DELAYS=1m,soon")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
		t.Fatalf("exit code %d (%v), want 1", code, err)
	}
	if !strings.Contains(string(out), "TUNEHOOK_CALLBACK_RETRY_DELAYS") || !strings.Contains(string(out), `"soon"`) {
		t.Errorf("message does not name the setting and value:\n%s", out)
	}
}

// Two servers on one SQLite data dir would hand out the same work twice;
// the second refuses to start and says why.
func TestSecondInstanceRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	startServer(t, dir)
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "TUNEHOOK_DATA_DIR="+dir, "TUNEHOOK_ADDR=127.0.0.1:0", "TUNEHOOK_API_KEYS="+testKey)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another") {
		t.Errorf("second instance: %v\n%s\nwant a refusal that names the other instance", err, out)
	}
}

// Without TUNEHOOK_ALLOW_PRIVATE_CALLBACKS, a callback to a private target
// is refused: a literal address at submit, a name that resolves to one when
// the callback is sent (the receiver never hears of it).
func TestPrivateCallbacksRefused(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir(), "TUNEHOOK_ALLOW_PRIVATE_CALLBACKS=false", "TUNEHOOK_CALLBACK_RETRY_DELAYS=none")
	for _, target := range []string{rcv.URL, "http://2130706433/cb", "http://[::ffff:127.0.0.1]/cb", "http://0x7f.1/cb", "http://169.254.169.254/latest/meta-data"} {
		env := srv.api("POST", "/api/v1/generate", testKey, generateBody(target), nil)
		if env.Code != 400 || !strings.Contains(env.Msg, "callBackUrl") {
			t.Errorf("callBackUrl %s: code %d %q, want 400 naming callBackUrl", target, env.Code, env.Msg)
		}
	}
	u, err := url.Parse(rcv.URL)
	if err != nil {
		t.Fatal(err)
	}
	byName := "http://localhost:" + u.Port() + "/cb"
	taskID := srv.submit(generateBody(byName))
	waitUntil(t, 20*time.Second, "the text callback is refused at dial time", func() bool {
		return countLogLines(srv.stderr.String(), "callback exhausted", "task_id="+taskID, "stage=text", "refused") == 1
	})
	if n := len(rcv.deliveries()); n != 0 {
		t.Errorf("the private receiver got %d callbacks, want none", n)
	}
}

// TUNEHOOK_CALLBACK_PER_HOST reaches the dispatcher: a receiver that takes
// its time never has more attempts at once than the cap, and has that many
// once it has answered (before, it is probed one attempt at a time).
func TestCallbackPerHostCap(t *testing.T) {
	t.Parallel()
	const perHost, tasks = 2, 6
	rcv := newReceiver(t, func(delivery, int) int {
		time.Sleep(150 * time.Millisecond)
		return http.StatusOK
	})
	srv := startServer(t, t.TempDir(), "TUNEHOOK_CALLBACK_PER_HOST="+strconv.Itoa(perHost), "TUNEHOOK_SYNTH_DELAYS=50ms,50ms,50ms")
	for range tasks {
		srv.submit(generateBody(rcv.URL))
	}
	waitUntil(t, 30*time.Second, "every callback arrives", func() bool {
		got := rcv.deliveries()
		return len(got) == 3*tasks && !slices.ContainsFunc(got, func(d delivery) bool { return d.done.IsZero() })
	})
	if got := maxOverlap(rcv.deliveries()); got != perHost {
		t.Errorf("at most %d callbacks were in progress at once, want the cap, %d", got, perHost)
	}
}

// maxOverlap returns the most deliveries that were in progress at once.
func maxOverlap(got []delivery) int {
	most := 0
	for _, d := range got {
		n := 0
		for _, o := range got {
			if !o.at.After(d.at) && o.done.After(d.at) {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}
