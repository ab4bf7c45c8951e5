package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/tunehook/tunehook/internal/payload"
	"github.com/tunehook/tunehook/internal/task"
)

// handleRecordInfo serves GET /api/v1/generate/record-info?taskId=ID: the
// task's status and the tracks finished so far, for the key that created it.
func handleRecordInfo(store task.Store, links payload.Links, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSpace(r.URL.Query().Get("taskId"))
		if id == "" {
			writeError(w, r, log, task.Errorf(task.CodeInvalid, "Please enter taskId."))
			return
		}
		t, err := store.Task(r.Context(), id)
		// Another key's task answers exactly like a missing one, so that
		// a key cannot learn which task IDs exist.
		if errors.Is(err, task.ErrNotFound) || (err == nil && t.Owner != ownerFrom(r.Context())) {
			writeError(w, r, log, task.Errorf(task.CodeNotFound, "Task not found."))
			return
		}
		if err != nil {
			writeError(w, r, log.With("task_id", id), fmt.Errorf("load task %s: %w", id, err))
			return
		}
		writeEnvelope(w, r, task.CodeOK, "success", payload.RecordInfo(t, links))
	})
}
