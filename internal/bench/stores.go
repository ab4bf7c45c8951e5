package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tunehook/tunehook/internal/pgschema"
	"github.com/tunehook/tunehook/internal/postgres"
	"github.com/tunehook/tunehook/internal/sqlite"
)

// SQLite returns an Opener that opens each phase's store as a SQLite
// database in a fresh directory under dir (the system's temporary
// directory when dir is empty), removed with it.
func SQLite(dir string) Opener {
	return func(ctx context.Context, logger *slog.Logger) (*Opened, error) {
		tmp, err := os.MkdirTemp(dir, "tunehook-bench-")
		if err != nil {
			return nil, fmt.Errorf("create sqlite dir: %w", err)
		}
		path := filepath.Join(tmp, "tunehook.db")
		st, err := sqlite.Open(ctx, path, sqlite.Options{Logger: logger})
		if err != nil {
			return nil, errors.Join(err, os.RemoveAll(tmp))
		}
		return &Opened{
			Store:  st,
			Remove: func() error { return errors.Join(st.Close(), os.RemoveAll(tmp)) },
			Load:   func(ctx context.Context, b Batch) error { return loadSQLite(ctx, path, b) },
		}, nil
	}
}

// schemaPrefix starts the name of every schema Postgres creates; a bench
// killed before it could drop its schemas leaves them under this name.
const schemaPrefix = "tunehook_bench_"

// dropTimeout bounds dropping a phase's schema, which runs even after the
// bench was interrupted.
const dropTimeout = 30 * time.Second

// Postgres returns an Opener that gives each phase a fresh schema of the
// PostgreSQL database at databaseURL, named schemaPrefix and random hex
// digits, and dropped with the store: the bench never touches the tables of
// a deployment in the same database.
func Postgres(databaseURL string) Opener {
	return func(ctx context.Context, logger *slog.Logger) (*Opened, error) {
		schemaURL, dropSchema, err := pgschema.New(ctx, databaseURL, schemaPrefix)
		if err != nil {
			return nil, err
		}
		drop := func() error {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dropTimeout)
			defer cancel()
			return dropSchema(ctx)
		}
		st, err := postgres.Open(ctx, schemaURL, postgres.Options{Logger: logger})
		if err != nil {
			return nil, errors.Join(err, drop())
		}
		return &Opened{
			Store:  st,
			Remove: func() error { return errors.Join(st.Close(), drop()) },
			Load:   func(ctx context.Context, b Batch) error { return loadPostgres(ctx, schemaURL, b) },
		}, nil
	}
}
