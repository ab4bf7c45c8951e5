package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tunehook/tunehook/internal/task"
)

// /readyz answers 200 while the database answers, 503 when it does not;
// neither needs a key.
func TestReady(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	e := decodeEnvelope(t, s.do(t, http.MethodGet, "/readyz", "", nil), http.StatusOK)
	if e.Code != task.CodeOK || e.Msg != "ready" || string(e.Data) != "null" {
		t.Errorf("got %d %q %s, want 200 ready null", e.Code, e.Msg, e.Data)
	}

	down := newTestServer(t, func(c *Config) { c.Store = faultyStore{Store: c.Store, err: errors.New("connection refused")} })
	wantError(t, down.do(t, http.MethodGet, "/readyz", "", nil), http.StatusServiceUnavailable, task.CodeUnavailable, "The database is not reachable.")
	if log := down.log.String(); !strings.Contains(log, "not ready") || !strings.Contains(log, "connection refused") {
		t.Errorf("got log %q, want the reason logged", log)
	}
}

// /metrics is served, without a key, by the handler the Config names.
func TestMetricsRoute(t *testing.T) {
	t.Parallel()
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("tunehook_up 1\n")) })
	s := newTestServer(t, func(c *Config) { c.Metrics = metrics })
	if a := s.do(t, http.MethodGet, "/metrics", "", nil); a.status != http.StatusOK || string(a.body) != "tunehook_up 1\n" {
		t.Errorf("got %d %q, want the metrics handler's answer", a.status, a.body)
	}
}
