package httpapi

import (
	"net/http"
	"testing"

	"github.com/tunehook/tunehook/internal/task"
)

// In maintenance, every /api/v1/ call answers code 455 whatever its key;
// health, readiness and media are served as usual.
func TestMaintenance(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *Config) { c.Maintenance = true })
	for _, r := range []struct{ method, path, key, body string }{
		{http.MethodPost, "/api/v1/generate", testKey, validBody},
		{http.MethodPost, "/api/v1/generate", "", validBody},
		{http.MethodGet, "/api/v1/generate/record-info?taskId=abc", testKey, ""},
		{http.MethodGet, "/api/v1/generate/record-info?taskId=abc&wait=30", testKey, ""},
		{http.MethodGet, "/api/v1/generate/events?taskId=abc", testKey, ""},
		{http.MethodGet, "/api/v1/nothing", "wrong-key", ""},
	} {
		a := s.do(t, r.method, r.path, r.key, []byte(r.body))
		e := wantError(t, a, http.StatusOK, task.CodeMaintenance, msgMaintenance)
		if e.Msg != msgMaintenance {
			t.Errorf("%s %s: got msg %q, want exactly %q", r.method, r.path, e.Msg, msgMaintenance)
		}
	}
	for _, r := range []struct {
		path       string
		wantStatus int
	}{
		{"/healthz", http.StatusOK},
		{"/readyz", http.StatusOK},
		{"/media/none.wav", http.StatusNotFound},
	} {
		if a := s.do(t, http.MethodGet, r.path, "", nil); a.status != r.wantStatus {
			t.Errorf("GET %s: got %d, want %d", r.path, a.status, r.wantStatus)
		}
	}
}
