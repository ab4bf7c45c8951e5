package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/tunehook/tunehook/internal/safedial"
	"github.com/tunehook/tunehook/internal/task"
)

// validBody is a valid generate request, fields in a client's order and
// with a field tunehook does not know.
const validBody = `{"prompt":"a calm song about the sea","model":"V5","callBackUrl":"https://example.com/cb",` +
	`"instrumental":false,"customMode":false,"styleWeight":0.5,"clientRef":"r-1"}`

// createTask submits body with key and returns the new task's ID.
func (s *testServer) createTask(t *testing.T, key, body string) string {
	t.Helper()
	e := decodeEnvelope(t, s.do(t, http.MethodPost, "/api/v1/generate", key, []byte(body)), http.StatusOK)
	if e.Code != task.CodeOK || e.Msg != "success" {
		t.Fatalf("got code %d msg %q, want 200 success", e.Code, e.Msg)
	}
	var data struct {
		TaskID string `json:"taskId"`
	}
	if err := json.Unmarshal(e.Data, &data); err != nil {
		t.Fatal(err)
	}
	return data.TaskID
}

func TestTaskCreate(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	start := s.clock.Now()
	id := s.createTask(t, testKey, validBody)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("got taskId %q, want 32 hex digits", id)
	}

	got, err := s.store.Task(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	req, err := task.ParseRequest([]byte(validBody))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"ID", got.ID, id},
		{"Owner", got.Owner, task.OwnerOf(testKey)},
		{"Model", got.Model, task.Model("V5")},
		{"Param", got.Param, req.Param()},
		{"CallbackURL", got.CallbackURL, "https://example.com/cb"},
		{"Status", got.Status, task.StatusPending},
		{"Tracks", len(got.Tracks), 0},
		{"Failure", got.Failure == nil, true},
		{"RunAt", got.RunAt.Equal(start.Add(testTextDelay)), true},
		{"CreatedAt", got.CreatedAt.Equal(start), true},
		{"UpdatedAt", got.UpdatedAt.Equal(start), true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	if strings.Contains(got.Param, "clientRef") {
		t.Errorf("got param %s, want unknown fields dropped", got.Param)
	}
	if log := s.log.String(); !strings.Contains(log, "task created") || !strings.Contains(log, "task_id="+id) {
		t.Errorf("got log %q, want a task created line with its task_id", log)
	}

	// Each request makes a new task.
	if again := s.createTask(t, testKey, validBody); again == id {
		t.Errorf("got taskId %s twice, want a new task per request", id)
	}
}

// bodyOfSize returns a request whose prompt pads it to exactly n bytes.
func bodyOfSize(t *testing.T, n int) []byte {
	t.Helper()
	const head = `{"customMode":false,"instrumental":false,"model":"V5","callBackUrl":"https://example.com/cb","prompt":"`
	const tail = `"}`
	b := []byte(head + strings.Repeat("a", n-len(head)-len(tail)) + tail)
	if len(b) != n || !json.Valid(b) {
		t.Fatalf("got a body of %d bytes, want %d bytes of JSON", len(b), n)
	}
	return b
}

// Every class of client error comes back as an envelope with HTTP 200.
func TestTaskCreateErrors(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tests := []struct {
		name     string
		body     []byte
		wantCode int
		wantMsg  string
	}{
		{"malformed JSON", []byte(`{"model":"V5",`), task.CodeInvalid, "not valid JSON"},
		{"empty body", nil, task.CodeInvalid, "empty"},
		{"array", []byte(`[]`), task.CodeInvalid, "JSON object"},
		{"wrong type", []byte(`{"customMode":"yes"}`), task.CodeInvalid, "customMode"},
		{"missing callBackUrl", []byte(`{"customMode":false,"instrumental":false,"model":"V5","prompt":"a song"}`),
			task.CodeInvalid, "Please enter callBackUrl."},
		{"prompt over its limit", []byte(`{"customMode":false,"instrumental":false,"model":"V5","callBackUrl":"https://example.com/cb","prompt":"` +
			strings.Repeat("x", 501) + `"}`), task.CodeTooLarge, "prompt"},
		// At the cap the body is read, and the prompt is what is too long.
		{"body of 1 MiB", bodyOfSize(t, 1<<20), task.CodeTooLarge, "prompt is too long"},
		{"body over 1 MiB", bodyOfSize(t, 1<<20+1), task.CodeTooLarge, "The request body is larger than 1 MiB."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := s.do(t, http.MethodPost, "/api/v1/generate", testKey, tt.body)
			wantError(t, a, http.StatusOK, tt.wantCode, tt.wantMsg)
		})
	}
}

// The exact message the reference documents for a missing callBackUrl.
func TestTaskCreateMissingCallbackMessage(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	a := s.do(t, http.MethodPost, "/api/v1/generate", testKey, []byte(`{"customMode":false,"instrumental":false,"model":"V5","prompt":"a song"}`))
	if got, want := strings.TrimSpace(string(a.body)), `{"code":400,"msg":"Please enter callBackUrl.","data":null}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// bodyWithCallback is a valid request with callBackUrl u.
func bodyWithCallback(t *testing.T, u string) string {
	t.Helper()
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	return `{"customMode":false,"instrumental":false,"model":"V5","prompt":"a song","callBackUrl":` + string(b) + `}`
}

// A callBackUrl the check refuses is answered with code 400 and the
// reason; one it allows makes a task.
func TestTaskCreateChecksCallbackURL(t *testing.T) {
	t.Parallel()
	strict := newTestServer(t, func(c *Config) { c.CheckCallbackURL = safedial.Policy{}.CheckURL })
	httpsOnly := newTestServer(t, func(c *Config) { c.CheckCallbackURL = safedial.Policy{RequireHTTPS: true}.CheckURL })
	unchecked := newTestServer(t)
	tests := []struct {
		name    string
		server  *testServer
		url     string
		wantMsg string // "" when the task is created
	}{
		{"loopback", strict, "http://127.0.0.1:3000/cb",
			"callBackUrl points to 127.0.0.1, a loopback address; callbacks must reach a public address."},
		{"hex loopback", strict, "http://0x7f000001/cb",
			"callBackUrl points to 127.0.0.1, a loopback address; callbacks must reach a public address."},
		{"private", strict, "https://10.1.2.3/cb",
			"callBackUrl points to 10.1.2.3, a private address; callbacks must reach a public address."},
		{"mapped metadata", strict, "http://[::ffff:169.254.169.254]/latest",
			"callBackUrl points to ::ffff:169.254.169.254, an IPv4-mapped form of 169.254.169.254, a cloud metadata address; callbacks must reach a public address."},
		{"invalid address", strict, "http://1.2.3.4.5/cb",
			`callBackUrl is not accepted: host "1.2.3.4.5" ends in a number but is not a valid IPv4 address.`},
		{"plain http", httpsOnly, "http://example.com/cb",
			"callBackUrl is not accepted: plain http is refused, this server requires https."},
		{"public address", strict, "http://8.8.8.8/cb", ""},
		{"name", strict, "https://hooks.example.com/suno", ""},
		{"https", httpsOnly, "https://hooks.example.com/suno", ""},
		{"no check", unchecked, "http://127.0.0.1:3000/cb", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := bodyWithCallback(t, tt.url)
			if tt.wantMsg != "" {
				e := wantError(t, tt.server.do(t, http.MethodPost, "/api/v1/generate", testKey, []byte(body)), http.StatusOK, task.CodeInvalid, tt.wantMsg)
				if e.Msg != tt.wantMsg {
					t.Errorf("got msg %q, want %q", e.Msg, tt.wantMsg)
				}
				return
			}
			id := tt.server.createTask(t, testKey, body)
			got, err := tt.server.store.Task(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if got.CallbackURL != tt.url {
				t.Errorf("got callback URL %q, want %q", got.CallbackURL, tt.url)
			}
		})
	}
}
