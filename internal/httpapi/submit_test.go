package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tunehook/tunehook/internal/task"
)

// submitKeyed submits body with key and an Idempotency-Key header per
// value in idem (none when idem is empty).
func (s *testServer) submitKeyed(t *testing.T, key, body string, idem ...string) answer {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + key}}
	if len(idem) > 0 {
		h["Idempotency-Key"] = idem
	}
	return s.doHeader(t, http.MethodPost, "/api/v1/generate", h, []byte(body))
}

// taskIDOf returns the taskId of a successful submission.
func taskIDOf(t *testing.T, a answer) string {
	t.Helper()
	e := decodeEnvelope(t, a, http.StatusOK)
	if e.Code != task.CodeOK {
		t.Fatalf("got code %d msg %q, want 200", e.Code, e.Msg)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(string(e.Data), `{"taskId":"`), `"}`)
	if len(id) != 32 {
		t.Fatalf("got data %s, want a taskId", e.Data)
	}
	return id
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	first := s.submitKeyed(t, testKey, validBody, "order-42")
	id := taskIDOf(t, first)
	if h := first.header.Get("Idempotent-Replayed"); h != "" {
		t.Errorf("first use: got Idempotent-Replayed %q, want none", h)
	}

	// The same request, written differently: other whitespace, another
	// order of fields, an ignored field changed.
	respelled := "{\n  \"customMode\": false, \"instrumental\": false, \"model\": \"V5\",\n" +
		"  \"prompt\": \"a calm song about the sea\", \"callBackUrl\": \"https://example.com/cb\",\n" +
		"  \"styleWeight\": 0.50, \"clientRef\": \"r-2\"\n}\n"
	for name, body := range map[string]string{"same body": validBody, "same request respelled": respelled} {
		a := s.submitKeyed(t, testKey, body, "order-42")
		if got := taskIDOf(t, a); got != id {
			t.Errorf("%s: got taskId %s, want %s", name, got, id)
		}
		if h := a.header.Get("Idempotent-Replayed"); h != "true" {
			t.Errorf("%s: got Idempotent-Replayed %q, want true", name, h)
		}
	}

	other := strings.Replace(validBody, "the sea", "the mountains", 1)
	a := s.submitKeyed(t, testKey, other, "order-42")
	if got, want := strings.TrimSpace(string(a.body)),
		`{"code":400,"msg":"Idempotency-Key was already used with a different request body.","data":null}`; got != want {
		t.Errorf("another body under the key: got %s, want %s", got, want)
	}

	// Keys are per API key, and a new key is a new task.
	for name, a := range map[string]answer{
		"another API key": s.submitKeyed(t, otherKey, other, "order-42"),
		"another key":     s.submitKeyed(t, testKey, other, "order-43"),
		"no key":          s.submitKeyed(t, testKey, validBody),
	} {
		if got := taskIDOf(t, a); got == id {
			t.Errorf("%s: got the keyed task %s, want a new one", name, id)
		}
	}

	// An invalid request does not use the key up.
	wantError(t, s.submitKeyed(t, testKey, `{"model":"V5"}`, "order-44"), http.StatusOK, task.CodeInvalid, "callBackUrl")
	if a := s.submitKeyed(t, testKey, other, "order-44"); a.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("key after an invalid request: got a replay, want a new task")
	}
}

func TestIdempotencyKeyInvalid(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	const msg = "Idempotency-Key must be 1 to 255 printable ASCII characters."
	tests := []struct {
		name string
		keys []string
		msg  string
	}{
		{"empty", []string{""}, msg},
		{"too long", []string{strings.Repeat("k", 256)}, msg},
		{"not ASCII", []string{"clé-1"}, msg},
		{"control character", []string{"a\tb"}, msg},
		{"sent twice", []string{"a", "b"}, "Idempotency-Key must be sent once."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := s.submitKeyed(t, testKey, validBody, tt.keys...)
			e := wantError(t, a, http.StatusOK, task.CodeInvalid, tt.msg)
			if e.Msg != tt.msg {
				t.Errorf("got msg %q, want %q", e.Msg, tt.msg)
			}
		})
	}
	// The longest key and a space are fine.
	for _, k := range []string{strings.Repeat("k", 255), "order 42 ~!"} {
		taskIDOf(t, s.submitKeyed(t, testKey, validBody, k))
	}
}

// credit returns the raw data of GET /api/v1/generate/credit for key.
func (s *testServer) credit(t *testing.T, key string) string {
	t.Helper()
	e := decodeEnvelope(t, s.do(t, http.MethodGet, "/api/v1/generate/credit", key, nil), http.StatusOK)
	if e.Code != task.CodeOK || e.Msg != "success" {
		t.Fatalf("credit: got code %d msg %q, want 200 success", e.Code, e.Msg)
	}
	return string(e.Data)
}

func TestCreditsOff(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for range 3 {
		taskIDOf(t, s.submitKeyed(t, testKey, validBody))
	}
	if got := s.credit(t, testKey); got != "2147483647" {
		t.Errorf("got credit %s with credits off, want 2147483647", got)
	}
}

func TestCredits(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *Config) { c.Credits = &Credits{Initial: 25, PerTask: 10} })
	if got := s.credit(t, testKey); got != "25" {
		t.Errorf("got credit %s before any task, want 25", got)
	}
	for _, want := range []string{"15", "5"} {
		taskIDOf(t, s.submitKeyed(t, testKey, validBody))
		if got := s.credit(t, testKey); got != want {
			t.Errorf("got credit %s, want %s", got, want)
		}
	}
	a := s.submitKeyed(t, testKey, validBody)
	if got, want := strings.TrimSpace(string(a.body)),
		`{"code":429,"msg":"The current credits are insufficient. Please top up.","data":null}`; got != want {
		t.Errorf("submission over the balance: got %s, want %s", got, want)
	}
	if got := s.credit(t, testKey); got != "5" {
		t.Errorf("got credit %s after a refused submission, want 5", got)
	}
	// Balances are per API key.
	if got := s.credit(t, otherKey); got != "25" {
		t.Errorf("got the other key's credit %s, want 25", got)
	}
	wantError(t, s.do(t, http.MethodGet, "/api/v1/generate/credit", "", nil), http.StatusOK, task.CodeUnauthorized, "Authentication required")
}

func TestCreditsConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []*Credits{{Initial: -1, PerTask: 10}, {Initial: 10, PerTask: 0}} {
		cfg := Config{Store: faultyStore{}, Media: &trackingMedia{}, Keys: []string{testKey}, Credits: c}
		if _, err := NewServer(cfg); err == nil {
			t.Errorf("NewServer with credits %+v: got no error, want one", *c)
		}
	}
}
