package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// defaultIdempotencyTTL is how long Idempotency-Keys are kept by default:
// the least the API promises.
const defaultIdempotencyTTL = 24 * time.Hour

// Credits is the credit policy: every API key starts with Initial credits,
// and each task it creates costs PerTask, given back if the task fails
// with 531. Balances live in the store, shared by every instance on it.
type Credits struct {
	Initial int
	PerTask int // at least 1
}

// handleCredit serves GET /api/v1/generate/credit: the balance of the
// request's key, or task.UnlimitedCredits when credits is nil.
func handleCredit(store task.Store, credits *Credits, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if credits == nil {
			writeEnvelope(w, r, task.CodeOK, "success", task.UnlimitedCredits)
			return
		}
		balance, err := store.Credits(r.Context(), ownerFrom(r.Context()), credits.Initial)
		if err != nil {
			writeError(w, r, log, fmt.Errorf("read credits: %w", err))
			return
		}
		writeEnvelope(w, r, task.CodeOK, "success", balance)
	})
}
