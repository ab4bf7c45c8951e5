package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/tunehook/tunehook/internal/config"
	"github.com/tunehook/tunehook/internal/postgres"
)

// migrate brings the database's schema up to date and returns. It takes the
// settings of serve; only the database ones matter. serve migrates at start
// too (under an advisory lock on PostgreSQL); this is for operators who
// migrate before they roll out new instances.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load("tunehook migrate", args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if cfg.DatabaseURL != "" {
		if err := postgres.Migrate(ctx, cfg.DatabaseURL, logger); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "PostgreSQL %s: schema up to date\n", redacted(cfg.DatabaseURL))
		return nil
	}
	// Opening the SQLite store migrates it.
	store, name, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if err := store.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: schema up to date\n", name)
	return nil
}
