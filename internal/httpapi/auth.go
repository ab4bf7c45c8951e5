package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"

	"github.com/tunehook/tunehook/internal/task"
)

// ownerKey is the context key of the owner of the request's API key.
type ownerKey struct{}

// ownerFrom returns the task owner that requireKey put in ctx.
func ownerFrom(ctx context.Context) string {
	owner, _ := ctx.Value(ownerKey{}).(string)
	return owner
}

// requireKey returns a middleware that lets through only requests with
// "Authorization: Bearer <key>" for one of keys, and puts the key's owner
// (task.OwnerOf) in their context.
func requireKey(keys []string, log *slog.Logger) func(http.Handler) http.Handler {
	// Keys are compared as SHA-256 digests: every comparison then has the
	// same length, and each runs to its end against every key, so timing
	// tells neither how much of a key matched nor which key did.
	digests := make([][sha256.Size]byte, len(keys))
	for i, k := range keys {
		digests[i] = sha256.Sum256([]byte(k))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key, ok := bearerKey(r.Header.Get("Authorization"))
			if !ok {
				writeError(w, r, log, task.Errorf(task.CodeUnauthorized,
					"Authentication required: send the header Authorization: Bearer <API key>."))
				return
			}
			d := sha256.Sum256([]byte(key))
			match := 0
			for i := range digests {
				match |= subtle.ConstantTimeCompare(d[:], digests[i][:])
			}
			if match != 1 {
				writeError(w, r, log, task.Errorf(task.CodeUnauthorized, "Invalid API key."))
				return
			}
			ctx := context.WithValue(r.Context(), ownerKey{}, task.OwnerOf(key))
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// bearerKey returns the key of an Authorization header value of the Bearer
// scheme, whose name is case-insensitive (RFC 9110, 11.1).
func bearerKey(header string) (string, bool) {
	scheme, key, _ := strings.Cut(strings.TrimSpace(header), " ")
	key = strings.TrimSpace(key)
	if !strings.EqualFold(scheme, "Bearer") || key == "" {
		return "", false
	}
	return key, true
}
