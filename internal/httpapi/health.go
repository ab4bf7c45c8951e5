package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// handleHealth serves GET /healthz: 200 once the server serves requests.
func handleHealth() http.Handler {
	type health struct {
		Status string `json:"status"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, health{Status: "ok"})
	})
}

// readyTimeout is how long /readyz waits for the database: a database
// slower than this to answer a ping is as good as away for clients.
const readyTimeout = time.Second

// handleReady serves GET /readyz: an envelope of code 200 when the
// database answers a ping within readyTimeout, else of code 503, both also
// the HTTP status, for a load balancer to take the instance out of
// rotation while its database is away.
func handleReady(store task.Store, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := store.Ping(ctx); err != nil {
			log.WarnContext(r.Context(), "not ready", "error", err)
			writeEnvelope(w, r, task.CodeUnavailable, "The database is not reachable.", nil)
			return
		}
		writeEnvelope(w, r, task.CodeOK, "ready", nil)
	})
}
