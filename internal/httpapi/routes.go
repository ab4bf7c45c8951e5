package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/tunehook/tunehook/internal/task"
)

// addRoutes registers every route of the API; it is the API's table of
// contents. Patterns with a method also answer HEAD for GET.
func addRoutes(mux *http.ServeMux, cfg Config) {
	auth := requireKey(cfg.Keys, cfg.Logger)
	limit := limitRate(cfg.RateLimit, cfg.Now, cfg.Logger)
	waits := &waiters{store: cfg.Store, changes: cfg.Changes, poll: cfg.WaitPoll, slots: make(chan struct{}, cfg.MaxWaiters), stop: cfg.Stop}

	submit := submitPolicy{idempotencyTTL: cfg.IdempotencyTTL, credits: cfg.Credits}
	mux.Handle("POST /api/v1/generate", auth(limit(handleTaskCreate(cfg.Store, cfg.TextDelay, cfg.CheckCallbackURL, submit, cfg.Now, cfg.Logger))))
	mux.Handle("GET /api/v1/generate/record-info", auth(handleRecordInfo(cfg.Store, cfg.Links, waits, cfg.Logger)))
	mux.Handle("GET /api/v1/generate/events", auth(handleEvents(cfg.Store, cfg.Links, waits, cfg.KeepAlive, cfg.Logger)))
	mux.Handle("GET /api/v1/generate/credit", auth(handleCredit(cfg.Store, cfg.Credits, cfg.Logger)))
	mux.Handle("GET /api/v1/callbacks", auth(handleCallbackList(cfg.Store, cfg.Logger)))
	mux.Handle("POST /api/v1/callbacks/{id}/redeliver", auth(handleRedeliver(cfg.Store, cfg.Logger)))

	mux.Handle("GET /media/{key...}", handleMedia(cfg.Media, cfg.Logger))
	mux.Handle("GET /stream/{taskID}/{trackID}", handleStream(cfg.Store, cfg.Media, cfg.Logger))
	mux.Handle("GET /healthz", handleHealth())
	// No key on these: they are meant for a private port or network.
	mux.Handle("GET /readyz", handleReady(cfg.Store, cfg.Logger))
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	mux.Handle("GET /openapi.json", handleOpenAPI())

	// Everything else, including a known path with another method: the
	// reference answers 404 for both, never 405.
	mux.Handle("/", handleNotFound(cfg.Logger))
}

// handleNotFound answers every request no route matches with an envelope
// of code 404: HTTP 200 under /api/, HTTP 404 elsewhere (see writeEnvelope).
func handleNotFound(log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, log, task.Errorf(task.CodeNotFound, "Not found: %s %s", r.Method, r.URL.Path))
	})
}
