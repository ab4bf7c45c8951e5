package pgtest_test

import (
	"context"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tunehook/tunehook/internal/pgtest"
)

// TestURL checks that a connection made with the URL works in the fresh
// schema only, that pgxpool reads the URL too, and that the schema is gone
// once its test ends.
func TestURL(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var schema string
	t.Run("in use", func(t *testing.T) {
		dsn := pgtest.URL(t)
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("parse %s: %v", dsn, err)
		}
		schema = u.Query().Get("search_path")
		if schema == "" {
			t.Fatalf("URL %s: got no search_path, want one", dsn)
		}
		if other := pgtest.URL(t); other == dsn {
			t.Errorf("second URL: got %s again, want another schema", other)
		}

		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(context.Background())
		var current *string
		if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&current); err != nil {
			t.Fatalf("current_schema: %v", err)
		}
		if current == nil || *current != schema {
			t.Errorf("current_schema(): got %v, want %s", current, schema)
		}
		var tables int
		err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()`).Scan(&tables)
		if err != nil {
			t.Fatalf("count tables: %v", err)
		}
		if tables != 0 {
			t.Errorf("tables in the fresh schema: got %d, want 0", tables)
		}
		// Left for the cleanup to drop with the schema.
		if _, err := conn.Exec(ctx, `CREATE TABLE t (id int)`); err != nil {
			t.Fatalf("create table: %v", err)
		}

		cfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			t.Fatalf("pgxpool.ParseConfig: %v", err)
		}
		if got := cfg.ConnConfig.RuntimeParams["search_path"]; got != schema {
			t.Errorf("pgxpool's search_path: got %q, want %q", got, schema)
		}
	})
	if schema == "" {
		t.SkipNow() // so was "in use"
	}

	conn, err := pgx.Connect(ctx, os.Getenv(pgtest.EnvURL))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists)
	if err != nil {
		t.Fatalf("look for %s: %v", schema, err)
	}
	if exists {
		t.Errorf("schema %s after its test ended: got it, want it dropped", schema)
	}
}

// TestURLSkips checks that without the variable a test is skipped, not
// failed. It sets the environment, so it cannot run in parallel.
func TestURLSkips(t *testing.T) {
	t.Setenv(pgtest.EnvURL, "")
	var reached bool
	t.Run("without database", func(t *testing.T) {
		pgtest.URL(t)
		reached = true
	})
	if !reached {
		return // skipped, as wanted; t.Run reports it
	}
	t.Error("URL without " + pgtest.EnvURL + ": got a URL, want the test skipped")
}
