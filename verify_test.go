package tunehook_test

import (
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
)

var (
	signedAt = time.Unix(1700000000, 0)
	newKey   = []byte("new-key")
	oldKey   = []byte("old-key")
)

const signedBody = `{"code":200,"msg":"Text generation completed successfully.","data":{"callbackType":"text","task_id":"task123","data":[]}}`

var standardHeaders = []string{tunehook.HeaderWebhookID, tunehook.HeaderWebhookTimestamp, tunehook.HeaderWebhookSignature}

// signed returns the headers SignKeys sets for signedBody at signedAt,
// without the headers named in drop.
func signed(keys [][]byte, drop ...string) http.Header {
	return signedAtTime(keys, signedAt, drop...)
}

func signedAtTime(keys [][]byte, ts time.Time, drop ...string) http.Header {
	h := http.Header{}
	tunehook.SignKeys(h, keys, "msg_2fac", "task123", ts, []byte(signedBody))
	for _, name := range drop {
		h.Del(name)
		delete(h, name)
	}
	return h
}

// with returns h with header name set to value, as SignKeys sets names.
func with(h http.Header, name, value string) http.Header {
	h.Del(name)
	h[name] = []string{value}
	return h
}

func TestVerify(t *testing.T) {
	t.Parallel()
	legacyOnly := standardHeaders
	tests := []struct {
		name       string
		header     http.Header
		body       string // default signedBody
		keys       [][]byte
		now        time.Time // default signedAt
		opts       tunehook.VerifyOptions
		wantScheme tunehook.Scheme
		wantErr    error
	}{
		{name: "standard", header: signed([][]byte{newKey}), keys: [][]byte{newKey}, wantScheme: tunehook.SchemeStandard},
		{name: "legacy", header: signed([][]byte{newKey}, legacyOnly...), keys: [][]byte{newKey}, wantScheme: tunehook.SchemeLegacy},
		{name: "standard preferred over a broken legacy signature", header: with(signed([][]byte{newKey}), tunehook.HeaderSignature, "bogus"),
			keys: [][]byte{newKey}, wantScheme: tunehook.SchemeStandard},

		{name: "rotation: receiver knows the old key", header: signed([][]byte{newKey, oldKey}), keys: [][]byte{oldKey}, wantScheme: tunehook.SchemeStandard},
		{name: "rotation: receiver knows the new key", header: signed([][]byte{newKey, oldKey}), keys: [][]byte{newKey}, wantScheme: tunehook.SchemeStandard},
		{name: "rotation: receiver knows both", header: signed([][]byte{newKey, oldKey}), keys: [][]byte{oldKey, newKey}, wantScheme: tunehook.SchemeStandard},
		{name: "rotation: sender still on the old key", header: signed([][]byte{oldKey}), keys: [][]byte{newKey, oldKey}, wantScheme: tunehook.SchemeStandard},
		{name: "rotation legacy: the new key", header: signed([][]byte{newKey, oldKey}, legacyOnly...), keys: [][]byte{newKey}, wantScheme: tunehook.SchemeLegacy},
		{name: "rotation legacy: the old key is not in the legacy header", header: signed([][]byte{newKey, oldKey}, legacyOnly...), keys: [][]byte{oldKey},
			wantScheme: tunehook.SchemeLegacy, wantErr: tunehook.ErrBadSignature},

		{name: "standard: tampered body", header: signed([][]byte{newKey}), body: strings.Replace(signedBody, "text", "complete", 1),
			keys: [][]byte{newKey}, wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrBadSignature},
		{name: "standard: tampered id", header: with(signed([][]byte{newKey}), tunehook.HeaderWebhookID, "msg_other"),
			keys: [][]byte{newKey}, wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrBadSignature},
		// The legacy scheme's weakness, kept visible: the body is not signed,
		// only its task id.
		{name: "legacy: tampered body, same task", header: signed([][]byte{newKey}, legacyOnly...), body: strings.Replace(signedBody, "text", "complete", 1),
			keys: [][]byte{newKey}, wantScheme: tunehook.SchemeLegacy},
		{name: "legacy: tampered task id", header: signed([][]byte{newKey}, legacyOnly...), body: strings.Replace(signedBody, "task123", "task124", 1),
			keys: [][]byte{newKey}, wantScheme: tunehook.SchemeLegacy, wantErr: tunehook.ErrBadSignature},
		{name: "legacy: body without a task id", header: signed([][]byte{newKey}, legacyOnly...), body: `{"code":200}`,
			keys: [][]byte{newKey}, wantScheme: tunehook.SchemeLegacy, wantErr: tunehook.ErrBadSignature},
		{name: "standard: wrong key", header: signed([][]byte{newKey}), keys: [][]byte{[]byte("wrong")}, wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrBadSignature},
		{name: "legacy: wrong key", header: signed([][]byte{newKey}, legacyOnly...), keys: [][]byte{[]byte("wrong")}, wantScheme: tunehook.SchemeLegacy, wantErr: tunehook.ErrBadSignature},
		{name: "whsec key used raw", header: signed([][]byte{tunehook.SigningKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")}),
			keys: [][]byte{[]byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")}, wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrBadSignature},

		{name: "at the tolerance, past", header: signed([][]byte{newKey}), keys: [][]byte{newKey}, now: signedAt.Add(tunehook.DefaultTolerance), wantScheme: tunehook.SchemeStandard},
		{name: "at the tolerance, future", header: signed([][]byte{newKey}), keys: [][]byte{newKey}, now: signedAt.Add(-tunehook.DefaultTolerance), wantScheme: tunehook.SchemeStandard},
		{name: "standard: stale", header: signed([][]byte{newKey}), keys: [][]byte{newKey}, now: signedAt.Add(tunehook.DefaultTolerance + time.Second),
			wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrStaleTimestamp},
		{name: "standard: future", header: signed([][]byte{newKey}), keys: [][]byte{newKey}, now: signedAt.Add(-tunehook.DefaultTolerance - time.Second),
			wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrFutureTimestamp},
		{name: "legacy: stale", header: signed([][]byte{newKey}, legacyOnly...), keys: [][]byte{newKey}, now: signedAt.Add(time.Hour),
			wantScheme: tunehook.SchemeLegacy, wantErr: tunehook.ErrStaleTimestamp},
		{name: "legacy: future", header: signed([][]byte{newKey}, legacyOnly...), keys: [][]byte{newKey}, now: signedAt.Add(-time.Hour),
			wantScheme: tunehook.SchemeLegacy, wantErr: tunehook.ErrFutureTimestamp},
		{name: "custom tolerance", header: signed([][]byte{newKey}), keys: [][]byte{newKey}, now: signedAt.Add(2 * time.Minute),
			opts: tunehook.VerifyOptions{Tolerance: time.Minute}, wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrStaleTimestamp},
		// Durations saturate: timestamps at the ends of int64 must not wrap
		// around into the window.
		{name: "timestamp at the end of time", header: signedAtTime([][]byte{newKey}, time.Unix(math.MaxInt64, 0)), keys: [][]byte{newKey},
			wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrFutureTimestamp},
		{name: "timestamp at the start of time", header: signedAtTime([][]byte{newKey}, time.Unix(math.MinInt64, 0)), keys: [][]byte{newKey},
			wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrStaleTimestamp},

		{name: "timestamp not a number", header: with(signed([][]byte{newKey}), tunehook.HeaderWebhookTimestamp, "yesterday"), keys: [][]byte{newKey},
			wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrMalformedHeader},
		{name: "timestamp in milliseconds is stale", header: with(signed([][]byte{newKey}), tunehook.HeaderWebhookTimestamp, "1700000000000"), keys: [][]byte{newKey},
			wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrBadSignature},
		{name: "signature without version", header: with(signed([][]byte{newKey}), tunehook.HeaderWebhookSignature, "c2lnbmF0dXJl"), keys: [][]byte{newKey},
			wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrMalformedHeader},
		{name: "signature with an empty version", header: with(signed([][]byte{newKey}), tunehook.HeaderWebhookSignature, ",c2ln"), keys: [][]byte{newKey},
			wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrMalformedHeader},
		{name: "no v1 signature", header: with(signed([][]byte{newKey}), tunehook.HeaderWebhookSignature, "v1a,c2ln v2,c2ln"), keys: [][]byte{newKey},
			wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrBadSignature},
		{name: "other versions next to v1", header: with(signed([][]byte{newKey}), tunehook.HeaderWebhookSignature,
			"v1a,c2ln "+signed([][]byte{newKey})[tunehook.HeaderWebhookSignature][0]+" v2,c2ln"),
			keys: [][]byte{newKey}, wantScheme: tunehook.SchemeStandard},
		{name: "id missing", header: signed([][]byte{newKey}, tunehook.HeaderWebhookID), keys: [][]byte{newKey},
			wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrMalformedHeader},
		{name: "signature empty", header: with(signed([][]byte{newKey}), tunehook.HeaderWebhookSignature, ""), keys: [][]byte{newKey},
			wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrMalformedHeader},
		{name: "legacy timestamp missing", header: signed([][]byte{newKey}, append(legacyOnly, tunehook.HeaderTimestamp)...), keys: [][]byte{newKey},
			wantScheme: tunehook.SchemeLegacy, wantErr: tunehook.ErrMalformedHeader},

		{name: "unsigned", header: http.Header{"Content-Type": {"application/json"}}, keys: [][]byte{newKey}, wantErr: tunehook.ErrNoSignature},
		{name: "legacy refused", header: signed([][]byte{newKey}, legacyOnly...), keys: [][]byte{newKey},
			opts: tunehook.VerifyOptions{RequireStandard: true}, wantErr: tunehook.ErrNoSignature},
		{name: "standard when required", header: signed([][]byte{newKey}), keys: [][]byte{newKey},
			opts: tunehook.VerifyOptions{RequireStandard: true}, wantScheme: tunehook.SchemeStandard},
		{name: "no keys", header: signed([][]byte{newKey}), wantScheme: tunehook.SchemeStandard, wantErr: tunehook.ErrNoKeys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := tt.body
			if body == "" {
				body = signedBody
			}
			now := tt.now
			if now.IsZero() {
				now = signedAt
			}
			opts := tt.opts
			opts.Now = func() time.Time { return now }
			scheme, err := tunehook.Verify(tt.header, []byte(body), tt.keys, opts)
			if scheme != tt.wantScheme {
				t.Errorf("got scheme %q, want %q", scheme, tt.wantScheme)
			}
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("got error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// A server receives header names canonicalised ("Webhook-Id"), not as
// SignKeys sets them; Verify finds both.
func TestVerifyOverHTTP(t *testing.T) {
	t.Parallel()
	type result struct {
		scheme tunehook.Scheme
		err    error
	}
	results := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		scheme, err := tunehook.Verify(r.Header, body, [][]byte{oldKey}, tunehook.VerifyOptions{})
		results <- result{scheme, err}
	}))
	defer srv.Close()

	body := []byte(signedBody)
	req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(signedBody))
	if err != nil {
		t.Fatal(err)
	}
	tunehook.SignKeys(req.Header, [][]byte{newKey, oldKey}, "msg_http", "task123", time.Now(), body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := <-results; got.scheme != tunehook.SchemeStandard || got.err != nil {
		t.Errorf("got %q, %v; want %q, nil", got.scheme, got.err, tunehook.SchemeStandard)
	}
}
