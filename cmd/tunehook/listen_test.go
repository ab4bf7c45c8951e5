package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
)

// startListen runs listen in-process on a free port with args and env, and
// returns its URL and its output. It is stopped at the end of the test.
func startListen(t *testing.T, env map[string]string, args ...string) (string, *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- listen(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), func(k string) string { return env[k] }, out, errOut)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("listen returned %v", err)
		}
	})
	first := regexp.MustCompile(`^listening on (http://\S+)\n`)
	var url string
	waitUntil(t, 5*time.Second, "listen prints its address", func() bool {
		m := first.FindStringSubmatch(out.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	})
	return url, out
}

// postCallback POSTs body with header to url and checks that listen
// answers 200.
func postCallback(t *testing.T, url string, header http.Header, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/suno-callback", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(answer)) != `{"status":"received"}` {
		t.Fatalf("got %d %s, want 200 received", resp.StatusCode, answer)
	}
}

// lastBlock returns the last callback block of out.
func lastBlock(out *lockedBuffer) string {
	s := out.String()
	return s[strings.LastIndex(s, "\n--- "):]
}

const listenComplete = `{"code":200,"msg":"All generated successfully.","data":{"callbackType":"complete","task_id":"2fac9f72","data":[` +
	`{"id":"8551662c","audio_url":"http://x/a1.wav","stream_audio_url":"http://x/s1","image_url":"http://x/i1.jpeg","prompt":"[Verse]","model_name":"chirp-crow","title":"Iron Man","tags":"rock","createTime":"2025-01-01 00:00:00","duration":198.44},` +
	`{"id":"bd151873","audio_url":"http://x/a2.wav","stream_audio_url":"http://x/s2","image_url":"http://x/i2.jpeg","prompt":"[Verse]","model_name":"chirp-crow","title":"Iron Man (take 2)","tags":"rock","createTime":"2025-01-01 00:01:00","duration":228.28}]}}`

func signedHeader(secret, id, taskID, body string) http.Header {
	h := http.Header{}
	tunehook.Sign(h, tunehook.SigningKey(secret), id, taskID, time.Now(), []byte(body))
	return h
}

func TestListen(t *testing.T) {
	t.Parallel()
	type forwarded struct {
		header http.Header
		body   string
	}
	var mu sync.Mutex
	var got []forwarded
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, forwarded{r.Header.Clone(), string(body)})
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer target.Close()

	const newSecret, oldSecret = "new-secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	url, out := startListen(t, nil, "--key", newSecret, "--key", oldSecret, "--forward-to", target.URL+"/app/callback")
	if !strings.Contains(out.String(), "verifying signatures with 2 keys\nforwarding callbacks to "+target.URL+"/app/callback\n") {
		t.Errorf("got header lines %q, want the keys and the forward target", out.String())
	}

	legacyOnly := signedHeader(newSecret, "msg_l", "2fac9f72", listenComplete)
	for _, name := range []string{tunehook.HeaderWebhookID, tunehook.HeaderWebhookTimestamp, tunehook.HeaderWebhookSignature} {
		delete(legacyOnly, name)
	}
	failed := `{"code":501,"msg":"Audio generation failed.","data":{"callbackType":"error","task_id":"5b7e01ac","data":null}}`
	tests := []struct {
		name   string
		header http.Header
		body   string
		want   []string
	}{
		{"complete, signed with the old key", signedHeader(oldSecret, "msg_c", "2fac9f72", listenComplete), listenComplete, []string{
			"POST /suno-callback\n",
			"stage:      complete\n",
			"code:       200 All generated successfully.\n",
			"task:       2fac9f72\n",
			`track 1:    "Iron Man"  198.44 s  id 8551662c  model chirp-crow  created 2025-01-01 00:00:00` + "\n",
			"            audio  http://x/a1.wav\n            stream http://x/s1\n            image  http://x/i1.jpeg\n",
			`track 2:    "Iron Man (take 2)"  228.28 s  id bd151873`,
			"            audio  http://x/a2.wav\n",
			"webhook-id: msg_c\n",
			"signature:  verified (standard webhooks)\n",
			"forward:    202 Accepted\n",
		}},
		{"legacy signature", legacyOnly, listenComplete, []string{"signature:  verified (x-webhook-signature, which does not cover the body)\n"}},
		{"unsigned", nil, listenComplete, []string{"stage:      complete\n", "signature:  INVALID: no signature\n"}},
		{"tampered", signedHeader(newSecret, "msg_t", "2fac9f72", listenComplete), strings.Replace(listenComplete, "Iron Man", "Tin Man", 1),
			[]string{`track 1:    "Tin Man"`, "signature:  INVALID: webhook-signature: signature does not match\n"}},
		{"failure", signedHeader(newSecret, "msg_e", "5b7e01ac", failed), failed, []string{
			"stage:      error\n",
			"code:       501 FAILED (audio generation failed): Audio generation failed.\n",
			"task:       5b7e01ac\n",
			"signature:  verified (standard webhooks)\n",
		}},
		{"not a callback", nil, `{"code":200}`, []string{"INVALID:    invalid callback: no data\n", `body:       "{\"code\":200}"` + "\n"}},
	}
	// One after the other: each block is checked as the last one.
	for _, tt := range tests {
		postCallback(t, url, tt.header, tt.body)
		block := lastBlock(out)
		for _, w := range tt.want {
			if !strings.Contains(block, w) {
				t.Errorf("%s: block\n%s\nwant it to contain %q", tt.name, block, w)
			}
		}
	}

	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(tests) {
		t.Fatalf("got %d forwards, want %d", len(got), len(tests))
	}
	for i, tt := range tests {
		if got[i].body != tt.body {
			t.Errorf("%s: forwarded body %q, want %q", tt.name, got[i].body, tt.body)
		}
		for name, values := range tt.header {
			// The test's names are as SignKeys sets them, lower-case; the
			// target's are canonical.
			if g, w := got[i].header.Get(name), strings.Join(values, ","); g != w {
				t.Errorf("%s: forwarded %s %q, want %q", tt.name, name, g, w)
			}
		}
		if ct := got[i].header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: forwarded Content-Type %q, want application/json", tt.name, ct)
		}
	}
}

// Keys come from TUNEHOOK_WEBHOOK_HMAC_KEY when no --key is given; with no
// key at all signatures are reported, not checked.
func TestListenKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		header     http.Header
		wantHeader string
		wantSig    string
	}{
		{"env, second key", map[string]string{"TUNEHOOK_WEBHOOK_HMAC_KEY": "one, two"}, nil, signedHeader("two", "msg_1", "2fac9f72", listenComplete),
			"verifying signatures with 2 keys", "verified (standard webhooks)"},
		{"flag wins over env", map[string]string{"TUNEHOOK_WEBHOOK_HMAC_KEY": "two"}, []string{"--key", "one"}, signedHeader("two", "msg_1", "2fac9f72", listenComplete),
			"verifying signatures with 1 key", "INVALID: webhook-signature: signature does not match"},
		{"no key, signed", nil, nil, signedHeader("two", "msg_1", "2fac9f72", listenComplete),
			"signatures are not checked", "signed (standard webhooks), not checked: no --key"},
		{"no key, unsigned", nil, nil, nil, "signatures are not checked", "unsigned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, out := startListen(t, tt.env, tt.args...)
			if !strings.Contains(out.String(), tt.wantHeader) {
				t.Errorf("got %q, want it to contain %q", out.String(), tt.wantHeader)
			}
			postCallback(t, url, tt.header, listenComplete)
			if block := lastBlock(out); !strings.Contains(block, "signature:  "+tt.wantSig+"\n") {
				t.Errorf("got block\n%s\nwant signature %q", block, tt.wantSig)
			}
		})
	}
}

// A forward that fails is reported, and the callback is still answered 200.
func TestListenForwardFails(t *testing.T) {
	t.Parallel()
	target := httptest.NewServer(http.NotFoundHandler())
	target.Close() // nothing listens there any more
	url, out := startListen(t, nil, "--forward-to", target.URL)
	postCallback(t, url, nil, listenComplete)
	if block := lastBlock(out); !strings.Contains(block, "forward:    FAILED: ") || !strings.Contains(block, "connection refused") {
		t.Errorf("got block\n%s\nwant the forward's failure", block)
	}
}

func TestListenBadArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--forward-to", "ftp://example.com/x"}, `--forward-to "ftp://example.com/x" is not an http or https URL`},
		{[]string{"--forward-to", "localhost:3001"}, "is not an http or https URL"},
		{[]string{"--addr", "127.0.0.1:-1"}, "listen: "},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--key", ""}, "usage"},
		{[]string{"--nope"}, "usage"},
	}
	for _, tt := range tests {
		err := listen(t.Context(), tt.args, func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: got %v, want an error with %q", tt.args, err, tt.wantErr)
		}
		if tt.wantErr == "usage" && !errors.Is(err, errUsage) {
			t.Errorf("%q: got %v, want errUsage", tt.args, err)
		}
	}
}

// The end-to-end check of signing: the real server signs its callbacks
// and listen, through the SDK, verifies every one of them. During a key
// rotation the server signs with both keys, and a receiver holding either
// one verifies.
func TestListenVerifiesTheServer(t *testing.T) {
	t.Parallel()
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	tests := []struct {
		name       string
		serverKeys string   // TUNEHOOK_WEBHOOK_HMAC_KEY
		listenKeys []string // one listen per key, each holding that key only
	}{
		{"one key", secret, []string{secret}},
		{"rotation", "new-key," + secret, []string{secret, "new-key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, t.TempDir(), "TUNEHOOK_WEBHOOK_HMAC_KEY="+tt.serverKeys)
			for _, key := range tt.listenKeys {
				url, out := startListen(t, nil, "--key", key)
				taskID := srv.submit(generateBody(url + "/suno-callback"))
				waitUntil(t, 20*time.Second, "the complete callback arrives", func() bool {
					return strings.Contains(out.String(), "stage:      complete\n")
				})
				blocks := strings.Split(out.String(), "\n--- ")[1:]
				if len(blocks) != 3 {
					t.Fatalf("listen with key %q: got %d blocks, want 3 (text, first, complete):\n%s", key, len(blocks), out)
				}
				for i, stage := range []string{"text", "first", "complete"} {
					for _, want := range []string{"stage:      " + stage + "\n", "task:       " + taskID + "\n", "signature:  verified (standard webhooks)\n"} {
						if !strings.Contains(blocks[i], want) {
							t.Errorf("listen with key %q, block %d:\n%s\nwant it to contain %q", key, i+1, blocks[i], want)
						}
					}
				}
			}
		})
	}
}
