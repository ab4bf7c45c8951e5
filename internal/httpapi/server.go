// Package httpapi serves tunehook's HTTP API: the Suno-style task API under
// /api/v1 (answers are envelopes with HTTP status 200), the media files
// results link to, the health check, and the API's OpenAPI document
// (openapi.json, served at /openapi.json).
package httpapi

import (
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
	Logger           *slog.Logger     // default: discard
	Now              func() time.Time // default: time.Now
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
	mux := http.NewServeMux()
	addRoutes(mux, cfg)
	return recoverPanics(mux, cfg.Logger), nil
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
