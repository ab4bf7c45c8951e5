package httpapi

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/tunehook/tunehook/internal/task"
)

// msgMaintenance is the providers' message for code 455.
const msgMaintenance = "The system is currently undergoing maintenance. Please try again later."

// maintenance answers every call of the task API, /api/v1/..., with code
// 455, before authentication; health, readiness, metrics and media go on
// working.
func maintenance(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/v1/") {
			writeError(w, r, log, task.Errorf(task.CodeMaintenance, msgMaintenance))
			return
		}
		next.ServeHTTP(w, r)
	})
}
