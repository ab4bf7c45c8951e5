package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tunehook/tunehook/internal/payload"
	"github.com/tunehook/tunehook/internal/task"
)

// handleRecordInfo serves GET /api/v1/generate/record-info?taskId=ID: the
// task's status and the tracks finished so far, for the key that created it.
//
// With wait (up to 30 s), a long-poll: it answers as soon as the task's
// status differs from its status when the request arrived, or when wait
// has passed (then with the task unchanged). A task in a final status never
// changes, so it is answered at once.
func handleRecordInfo(store task.Store, links payload.Links, waits *waiters, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSpace(r.URL.Query().Get("taskId"))
		wait, err := parseWait(r.URL.Query().Get("wait"))
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		t, err := ownTask(r.Context(), store, id)
		if err != nil {
			writeError(w, r, log.With("task_id", id), err)
			return
		}
		if wait > 0 && !t.Status.Final() {
			if !waits.acquire() {
				writeBusy(w, r, log)
				return
			}
			timer := time.NewTimer(wait)
			t, err = waits.until(r.Context(), id, t.Status, timer.C)
			timer.Stop()
			waits.release()
			if r.Context().Err() != nil {
				return // the client left: no one to answer
			}
			if err != nil {
				writeError(w, r, log.With("task_id", id), fmt.Errorf("load task %s: %w", id, err))
				return
			}
		}
		writeEnvelope(w, r, task.CodeOK, "success", payload.RecordInfo(t, links))
	})
}

// ownTask returns task id when it belongs to the key of the request whose
// context ctx is. An empty id, an unknown task and another key's task are
// client errors.
func ownTask(ctx context.Context, store task.Store, id string) (*task.Task, error) {
	if id == "" {
		return nil, task.Errorf(task.CodeInvalid, "Please enter taskId.")
	}
	t, err := store.Task(ctx, id)
	// Another key's task answers exactly like a missing one, so that a key
	// cannot learn which task IDs exist.
	if errors.Is(err, task.ErrNotFound) || (err == nil && t.Owner != ownerFrom(ctx)) {
		return nil, task.Errorf(task.CodeNotFound, "Task not found.")
	}
	if err != nil {
		return nil, fmt.Errorf("load task %s: %w", id, err)
	}
	return t, nil
}
