package httpapi

import (
	"errors"
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

// submitPolicy is what decides whether a valid request becomes a task:
// its idempotency key and the credits of its API key.
type submitPolicy struct {
	idempotencyTTL time.Duration
	credits        *Credits // nil: unlimited
}

// handleTaskCreate serves POST /api/v1/generate: it validates the request,
// vets its callBackUrl with checkURL (when set) and stores a PENDING task
// whose text stage is due after textDelay, charged and keyed as policy
// says. A request with an Idempotency-Key already used with the same
// request gets that request's task back, with Idempotent-Replayed: true.
func handleTaskCreate(store task.Store, textDelay time.Duration, checkURL func(string) error, policy submitPolicy, now func() time.Time, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := idempotencyKey(r.Header)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
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
		sub := task.Submission{Task: t, IdempotencyKey: key, RequestHash: req.Hash(), IdempotencyTTL: policy.idempotencyTTL}
		if policy.credits != nil {
			sub.Cost, sub.Credits = policy.credits.PerTask, policy.credits.Initial
		}
		done, err := store.Submit(r.Context(), sub)
		if err != nil {
			writeError(w, r, log.With("task_id", t.ID), submitError(err))
			return
		}
		// A prefix of the owner tells keys apart in the log without
		// making the log a lookup table of owners.
		if done.Replayed {
			w.Header().Set("Idempotent-Replayed", "true")
			log.InfoContext(r.Context(), "task submission replayed", "task_id", done.TaskID, "owner", owner[:8])
		} else {
			log.InfoContext(r.Context(), "task created", "task_id", t.ID, "model", t.Model, "owner", owner[:8])
		}
		writeEnvelope(w, r, task.CodeOK, "success", tunehook.TaskCreated{TaskID: done.TaskID})
	})
}

// idempotencyKey returns the request's Idempotency-Key, "" when it has
// none, or a client error when it is not a valid key.
func idempotencyKey(h http.Header) (string, error) {
	values := h.Values("Idempotency-Key")
	if len(values) == 0 {
		return "", nil
	}
	if len(values) > 1 {
		return "", task.Errorf(task.CodeInvalid, "Idempotency-Key must be sent once.")
	}
	if !task.ValidIdempotencyKey(values[0]) {
		return "", task.Errorf(task.CodeInvalid, "Idempotency-Key must be 1 to %d printable ASCII characters.", task.IdempotencyKeyMax)
	}
	return values[0], nil
}

// submitError is the client error for a submission the store refused, or
// err itself when it is not the client's.
func submitError(err error) error {
	switch {
	case errors.Is(err, task.ErrIdempotencyConflict):
		return task.Errorf(task.CodeInvalid, "Idempotency-Key was already used with a different request body.")
	case errors.Is(err, task.ErrInsufficientCredits):
		return task.Errorf(task.CodeInsufficientCredits, task.MsgInsufficientCredits)
	}
	return err
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
