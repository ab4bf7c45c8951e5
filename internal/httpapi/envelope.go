package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/task"
)

// msgInternal is all a client learns of an internal error; the error itself
// goes to the log.
const msgInternal = "Internal server error; please try again."

// msgStorageFull answers a write the database refused for want of disk
// space: nothing was stored, and the client may try again later.
const msgStorageFull = "The server is out of storage space; nothing was stored. Please try again later."

// writeError answers err as an envelope with data null. A *task.Error is
// shown to the client as it is; any other error is logged with log (which
// carries the task_id when the caller knows it) and answered as a 500,
// which says so when the storage is full and is generic otherwise.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	e, ok := errors.AsType[*task.Error](err)
	if !ok && errors.Is(err, task.ErrStorageFull) {
		log.ErrorContext(r.Context(), "storage full", "method", r.Method, "path", r.URL.Path, "error", err)
		e, ok = &task.Error{Code: task.CodeInternal, Message: msgStorageFull}, true
	}
	if !ok {
		log.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "error", err)
		e = &task.Error{Code: task.CodeInternal, Message: msgInternal}
	}
	writeEnvelope(w, r, e.Code, e.Message, nil)
}

// writeEnvelope writes {"code","msg","data"}. Under /api/, the compatible
// API, the HTTP status is 200 whatever the code, because clients of the
// providers read the code from the body and many of their HTTP libraries
// throw on a non-2xx status before the body is read. Elsewhere the code is
// also the HTTP status.
func writeEnvelope(w http.ResponseWriter, r *http.Request, code int, msg string, data any) {
	status := code
	if strings.HasPrefix(r.URL.Path, "/api/") {
		status = http.StatusOK
	}
	writeJSON(w, status, tunehook.Envelope[any]{Code: code, Msg: msg, Data: data})
}

// writeJSON writes v, which must be marshallable, with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the SDK's wire types get here, so this is a bug (a NaN
		// duration, say); recoverPanics answers it with a logged 500.
		panic("httpapi: marshal answer: " + err.Error())
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // a client gone away is not ours to report
}
