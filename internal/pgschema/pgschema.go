// Package pgschema makes fresh PostgreSQL schemas for tests and benchmarks
// that must not touch anything else in their database.
package pgschema

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"
)

// New creates a schema named prefix and random hex digits in the
// database at databaseURL, for tests and benchmarks that must not touch
// anything else in it. It returns the URL that works in the schema alone
// (databaseURL with the runtime parameter search_path, which pgx sends to
// the server when it connects) and a function that drops the schema with
// everything in it.
func New(ctx context.Context, databaseURL, prefix string) (schemaURL string, drop func(context.Context) error, err error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, errors.New("new schema: want a postgres:// or postgresql:// URL")
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	schema := prefix + hex.EncodeToString(b)
	if err := execOnce(ctx, databaseURL, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop = func(ctx context.Context) error { return execOnce(ctx, databaseURL, "DROP SCHEMA "+schema+" CASCADE") }
	return u.String(), drop, nil
}

// execOnce runs one statement on a connection of its own.
func execOnce(ctx context.Context, databaseURL, sql string) error {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}
