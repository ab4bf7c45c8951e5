package task

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"time"
)

// CodeInsufficientCredits is the envelope code of a submission refused for
// want of credits, as the providers answer it.
const CodeInsufficientCredits = 429

// MsgInsufficientCredits is the providers' message for
// CodeInsufficientCredits.
const MsgInsufficientCredits = "The current credits are insufficient. Please top up."

// UnlimitedCredits is the balance GET /api/v1/generate/credit reports when
// credits are off: the largest int32, which clients of the providers can
// hold in any integer type.
const UnlimitedCredits = math.MaxInt32

// IdempotencyKeyMax is the longest Idempotency-Key accepted, in bytes.
const IdempotencyKeyMax = 255

// Errors of Store.Submit.
var (
	// ErrIdempotencyConflict means the submission's idempotency key was
	// used, within its time to live, with another request.
	ErrIdempotencyConflict = errors.New("idempotency key already used with another request")
	// ErrInsufficientCredits means the owner's balance is below the task's
	// cost.
	ErrInsufficientCredits = errors.New("insufficient credits")
)

// Submission is a new task together with the conditions of its creation,
// which Store.Submit applies in one transaction with the insert: no
// concurrent retry can create a second task, and no concurrent submission
// can spend a credit twice.
type Submission struct {
	// Task is the new task, as for Store.CreateTask.
	Task *Task
	// IdempotencyKey, when set, makes the submission idempotent for the
	// task's owner: a later submission with the same key and the same
	// RequestHash gets this task back instead of a new one, and one with
	// another RequestHash fails with ErrIdempotencyConflict.
	IdempotencyKey string
	// RequestHash identifies the request made under IdempotencyKey; see
	// Request.Hash.
	RequestHash string
	// IdempotencyTTL is how long a key is kept: a key first used longer
	// than that before Task.CreatedAt is free again. Each submission with a
	// key deletes some expired keys, so they do not pile up.
	IdempotencyTTL time.Duration
	// Cost is charged to the owner's balance; 0 charges nothing (credits
	// are off). A task that fails with a refunding failure (see
	// Failure.Refunded) gets its cost back when the failure is committed.
	Cost int
	// Credits is the balance an owner starts with, the first time one of
	// its submissions costs something.
	Credits int
}

// Submitted is what came of a Submission.
type Submitted struct {
	TaskID string
	// Replayed is set when the idempotency key had been used with the same
	// request: TaskID is that request's task, and nothing was created or
	// charged.
	Replayed bool
}

// Hash identifies r for idempotency: the SHA-256 of its canonical JSON
// (Param). Two bodies that differ only in whitespace, in the order of their
// fields or in fields tunehook ignores are the same request; any difference
// in what the task would do is another.
func (r Request) Hash() string {
	sum := sha256.Sum256([]byte(r.Param()))
	return hex.EncodeToString(sum[:])
}

// ValidIdempotencyKey reports whether k can be an Idempotency-Key: 1 to
// IdempotencyKeyMax printable ASCII characters (spaces included).
func ValidIdempotencyKey(k string) bool {
	if k == "" || len(k) > IdempotencyKeyMax {
		return false
	}
	for i := range len(k) {
		if k[i] < ' ' || k[i] > '~' {
			return false
		}
	}
	return true
}
