// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema of the database named by TUNEHOOK_TEST_DATABASE_URL, dropped when
// the test ends. Without that variable, the tests that ask for one skip.
package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/pgschema"
)

// EnvURL is the environment variable that names the test database, such as
// postgres://postgres@127.0.0.1:5432/tunehook_test?sslmode=disable.
const EnvURL = "TUNEHOOK_TEST_DATABASE_URL"

// cleanupTimeout bounds dropping a test's schema. DROP waits for the locks
// of transactions still open on the schema's tables; a test that leaves one
// open fails instead of hanging.
const cleanupTimeout = 10 * time.Second

// URL returns a connection URL for a fresh, empty schema of the database
// named by TUNEHOOK_TEST_DATABASE_URL, dropped when t ends; it skips t
// when the variable is unset. Whatever connects with the URL, the tunehook
// binary included, works in that schema only (see pgschema.New).
func URL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		t.Skip("set " + EnvURL + " to run the PostgreSQL tests")
	}
	u, drop, err := pgschema.New(t.Context(), base, "t_")
	if err != nil {
		t.Fatalf("%s: %v", EnvURL, err)
	}
	t.Cleanup(func() {
		// t.Context is cancelled by the time cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := drop(ctx); err != nil {
			t.Errorf("%s: %v", EnvURL, err)
		}
	})
	return u
}
