// Package httpapi serves tunehook's HTTP API: the Suno-style task API under
// /api/v1 (answers are envelopes with HTTP status 200), the media files
// results link to, the health check, and the API's OpenAPI document
// (openapi.json, served at /openapi.json).
package httpapi

import (
	"cmp"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/tunehook/tunehook/internal/media"
	"github.com/tunehook/tunehook/internal/payload"
	"github.com/tunehook/tunehook/internal/task"
)

// Config is what the API needs.
type Config struct {
	Store task.Store
	Media media.Store
	Links payload.Links
	// Keys are the accepted bearer keys; at least one.
	Keys []string
	// TextDelay is the pause before a new task's text stage: the task's
	// first RunAt is now+TextDelay.
	TextDelay time.Duration
	// CheckCallbackURL, when set, vets each new task's callBackUrl once it
	// is valid (safedial.Policy.CheckURL); a task whose URL it refuses is
	// answered with code 400 and the error's reason.
	CheckCallbackURL func(string) error
	// IdempotencyTTL is how long an Idempotency-Key is kept; default 24h.
	IdempotencyTTL time.Duration
	// Credits, when set, charges every task to its API key's balance; nil
	// means unlimited.
	Credits *Credits
	// RateLimit caps the submits of each key (POST /api/v1/generate; other
	// calls do not count); the zero value means no limit.
	RateLimit RateLimit
	// Maintenance answers every /api/v1/ call with code 455.
	Maintenance bool
	// Changes, when set, wakes the requests waiting for a task (record-info
	// with wait, event streams) as soon as this process's Runner commits a
	// stage. They also read their task every WaitPoll, which finds the
	// changes made by other instances.
	Changes *Changes
	// WaitPoll is how often a waiting request reads its task; default
	// 250ms.
	WaitPoll time.Duration
	// MaxWaiters bounds the requests waiting at once, long-polls and event
	// streams together; one more is answered with code 430. Default 1000.
	MaxWaiters int
	// KeepAlive is the pause between the comment lines that keep an event
	// stream alive; default 15s.
	KeepAlive time.Duration
	// Stop, when closed, ends every wait: long-polls answer at once and
	// event streams end, so that http.Server.Shutdown, which waits for
	// them, can finish (close it with RegisterOnShutdown). nil: never.
	Stop <-chan struct{}
	// Metrics, when set, serves GET /metrics.
	Metrics http.Handler
	Logger  *slog.Logger     // default: discard
	Now     func() time.Time // default: time.Now
}

// NewServer returns the handler of the whole API, or an error when cfg
// lacks something it needs.
func NewServer(cfg Config) (http.Handler, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("httpapi: no task store")
	case cfg.Media == nil:
		return nil, errors.New("httpapi: no media store")
	case len(cfg.Keys) == 0:
		return nil, errors.New("httpapi: no API key")
	case cfg.TextDelay < 0:
		return nil, errors.New("httpapi: negative text delay")
	case cfg.IdempotencyTTL < 0:
		return nil, errors.New("httpapi: negative idempotency key time to live")
	case cfg.Credits != nil && (cfg.Credits.Initial < 0 || cfg.Credits.PerTask < 1):
		return nil, errors.New("httpapi: credits need a starting balance of 0 or more and a cost per task of 1 or more")
	case cfg.RateLimit.Requests < 0 || cfg.RateLimit.Per < 0:
		return nil, errors.New("httpapi: negative rate limit")
	case cfg.WaitPoll < 0 || cfg.MaxWaiters < 0 || cfg.KeepAlive < 0:
		return nil, errors.New("httpapi: negative wait poll, waiter count or keep-alive")
	}
	for _, k := range cfg.Keys {
		if k == "" {
			return nil, errors.New("httpapi: empty API key")
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.IdempotencyTTL = cmp.Or(cfg.IdempotencyTTL, defaultIdempotencyTTL)
	cfg.WaitPoll = cmp.Or(cfg.WaitPoll, 250*time.Millisecond)
	cfg.MaxWaiters = cmp.Or(cfg.MaxWaiters, 1000)
	cfg.KeepAlive = cmp.Or(cfg.KeepAlive, 15*time.Second)
	mux := http.NewServeMux()
	addRoutes(mux, cfg)
	var h http.Handler = mux
	if cfg.Maintenance {
		h = maintenance(h, cfg.Logger)
	}
	return recoverPanics(h, cfg.Logger), nil
}

// recoverPanics answers a request whose handler panicked with a generic 500
// and logs the panic with its stack. net/http would recover too, but it
// drops the connection without an answer, which clients report as a network
// error instead of a server error.
func recoverPanics(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v) // the handler asked net/http to abort the response
			}
			log.ErrorContext(r.Context(), "handler panicked", "method", r.Method, "path", r.URL.Path,
				"panic", v, "stack", string(debug.Stack()))
			writeEnvelope(w, r, task.CodeInternal, msgInternal, nil)
		}()
		next.ServeHTTP(w, r)
	})
}
