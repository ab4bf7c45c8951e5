package httpapi

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/safedial"
	"github.com/tunehook/tunehook/internal/task"
)

// maxBodyBytes caps request bodies: the longest valid request (5000
// characters of lyrics, 1000 of style, ...) is far below it even in 4-byte
// characters and with JSON escapes.
const maxBodyBytes = 1 << 20

// handleTaskCreate serves POST /api/v1/generate: it validates the request,
// vets its callBackUrl with checkURL (when set) and stores a PENDING task
// whose text stage is due after textDelay.
func handleTaskCreate(store task.Store, textDelay time.Duration, checkURL func(string) error, now func() time.Time, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			writeError(w, r, log, bodyError(err))
			return
		}
		req, err := task.ParseRequest(body)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		if checkURL != nil {
			if err := checkURL(req.CallBackURL); err != nil {
				writeError(w, r, log, callbackURLError(err))
				return
			}
		}
		owner := ownerFrom(r.Context())
		at := now()
		t := &task.Task{
			ID:          task.NewTaskID(),
			Owner:       owner,
			Model:       req.Model,
			Param:       req.Param(),
			CallbackURL: req.CallBackURL,
			Status:      task.StatusPending,
			RunAt:       at.Add(textDelay),
			CreatedAt:   at,
			UpdatedAt:   at,
		}
		if err := store.CreateTask(r.Context(), t); err != nil {
			writeError(w, r, log.With("task_id", t.ID), fmt.Errorf("create task %s: %w", t.ID, err))
			return
		}
		// A prefix of the owner tells keys apart in the log without
		// making the log a lookup table of owners.
		log.InfoContext(r.Context(), "task created", "task_id", t.ID, "model", t.Model, "owner", owner[:8])
		writeEnvelope(w, r, task.CodeOK, "success", tunehook.TaskCreated{TaskID: t.ID})
	})
}

// callbackURLError is the client error for a callBackUrl that checkURL
// refused. The operator's side of a refusal (which setting lifts it) stays
// out of it.
func callbackURLError(err error) *task.Error {
	if e, ok := errors.AsType[*safedial.RefusedError](err); ok {
		return task.Errorf(task.CodeInvalid, "callBackUrl points to %s, %s; callbacks must reach a public address.", e.Addr, e.Kind)
	}
	return task.Errorf(task.CodeInvalid, "callBackUrl is not accepted: %v.", err)
}

// bodyError is the client error for a request body that could not be read.
func bodyError(err error) *task.Error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return task.Errorf(task.CodeTooLarge, "The request body is larger than 1 MiB.")
	}
	return task.Errorf(task.CodeInvalid, "The request body could not be read.")
}
