package task

import (
	"errors"
	"fmt"
)

// Codes of the API's envelope that tunehook answers with.
const (
	CodeOK           = 200
	CodeInvalid      = 400
	CodeUnauthorized = 401
	CodeNotFound     = 404
	CodeTooLarge     = 413
	CodeInternal     = 500
)

// Error is an error a client is shown: a code of the API's envelope and a
// short English message that names the field at fault.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Message) }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sentinel errors of the Store.
var (
	// ErrNotFound means the task or callback does not exist.
	ErrNotFound = errors.New("not found")
	// ErrLeaseLost means the caller no longer holds the lease it acts under:
	// it expired and someone else may have claimed the work, or the work
	// moved on. The caller must drop what it was doing.
	ErrLeaseLost = errors.New("lease lost")
	// ErrLocked means another process holds the database (SQLite only).
	ErrLocked = errors.New("database in use by another process")
	// ErrStorageFull means the database could not write for want of disk
	// space. Nothing was written; the same write can succeed once space
	// returns.
	ErrStorageFull = errors.New("storage full")
)

// Codes of the request-level behaviours of the providers' service, which
// tunehook reproduces on request.
const (
	// CodeRateLimited answers a key that submits too often.
	CodeRateLimited = 430
	// CodeMaintenance answers every API call while the server is in
	// maintenance mode.
	CodeMaintenance = 455
)

// CodeUnavailable answers a readiness probe while the database does not.
const CodeUnavailable = 503
