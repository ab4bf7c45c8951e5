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

// handleCallbackList serves GET /api/v1/callbacks?taskId=ID: the delivery
// log of a task of the request's key.
func handleCallbackList(store task.Store, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSpace(r.URL.Query().Get("taskId"))
		if id == "" {
			writeError(w, r, log, task.Errorf(task.CodeInvalid, "Please enter taskId."))
			return
		}
		log := log.With("task_id", id)
		_, err := ownedTask(r, store, id)
		if errors.Is(err, task.ErrNotFound) {
			writeError(w, r, log, task.Errorf(task.CodeNotFound, "Task not found."))
			return
		}
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		cbs, err := store.Callbacks(r.Context(), id)
		if err != nil {
			writeError(w, r, log, fmt.Errorf("load callbacks of task %s: %w", id, err))
			return
		}
		writeEnvelope(w, r, task.CodeOK, "success", payload.DeliveryLog(id, cbs))
	})
}

// handleRedeliver serves POST /api/v1/callbacks/{id}/redeliver: a new
// attempt series of a callback of a task of the request's key, due now.
// The task's owner owns its callbacks; another key's callback answers
// like a missing one.
func handleRedeliver(store task.Store, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		log := log.With("callback_id", id)
		cb, err := store.Callback(r.Context(), id)
		if err == nil {
			_, err = ownedTask(r, store, cb.TaskID)
		}
		if errors.Is(err, task.ErrNotFound) {
			writeError(w, r, log, task.Errorf(task.CodeNotFound, "Callback not found."))
			return
		}
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		log = log.With("task_id", cb.TaskID)
		cb, err = store.RedeliverCallback(r.Context(), id)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		log.InfoContext(r.Context(), "callback redelivered", "stage", cb.Stage, "redeliveries", cb.Redeliveries)
		writeEnvelope(w, r, task.CodeOK, "success", payload.CallbackRecord(cb))
	})
}

// ownedTask returns task id when it belongs to the request's key, or an
// error wrapping task.ErrNotFound: another key's task is treated exactly
// like a missing one, so that a key cannot learn which task IDs exist.
func ownedTask(r *http.Request, store task.Store, id string) (*task.Task, error) {
	t, err := store.Task(r.Context(), id)
	if err == nil && t.Owner != ownerFrom(r.Context()) {
		return nil, fmt.Errorf("task %s belongs to another key: %w", id, task.ErrNotFound)
	}
	return t, err
}
