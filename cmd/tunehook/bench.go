package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	// Imported under another name: bench is this command.
	benchmark "github.com/tunehook/tunehook/internal/bench"
)

// bench runs the load benchmark (package internal/bench) on SQLite, or on
// PostgreSQL when a database URL is given, and prints its table.
func bench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tunehook bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The variable is read after parsing, not made the flag's default: -h
	// would print it, password included.
	databaseURL := fs.String("database-url", "",
		"`postgres://...` URL of a PostgreSQL database to measure, in fresh schemas dropped afterwards (default env TUNEHOOK_DATABASE_URL; empty: SQLite in a temporary directory)")
	phases := fs.String("phases", strings.Join(benchmark.PhaseNames(), ","), "comma-separated `phases` to run")
	duration := fs.Duration("duration", 10*time.Second, "how long the submit and latency phases run")
	concurrency := fs.Int("concurrency", 32, "`clients` of the submit phase")
	callbacks := fs.Int("callbacks", 20000, "callbacks the deliver phase delivers")
	rate := fs.Float64("rate", 50, "tasks per second the latency phase submits")
	asJSON := fs.Bool("json", false, "print the results as JSON too")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of each phase's measured part to `prefix`.PHASE.pprof")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage // the flag set has shown the error and the usage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "database-url" })
	if !given {
		*databaseURL = getenv("TUNEHOOK_DATABASE_URL")
	}
	if *duration <= 0 || *concurrency <= 0 || *callbacks <= 0 || *rate <= 0 {
		return errors.New("bench: --duration, --concurrency, --callbacks and --rate must be positive")
	}

	cfg := benchmark.Config{
		Store:       "sqlite",
		Open:        benchmark.SQLite(""),
		Duration:    *duration,
		Concurrency: *concurrency,
		Callbacks:   *callbacks,
		Rate:        *rate,
		CPUProfile:  *cpuProfile,
		Logger:      slog.New(slog.NewTextHandler(stderr, nil)),
	}
	for p := range strings.SplitSeq(*phases, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Phases = append(cfg.Phases, p)
		}
	}
	if *databaseURL != "" {
		u, err := url.Parse(*databaseURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return errors.New("bench: --database-url: want a postgres:// or postgresql:// URL, or nothing for SQLite")
		}
		cfg.Store, cfg.Open = "postgres", benchmark.Postgres(*databaseURL)
	}

	res, err := benchmark.Run(ctx, cfg)
	if len(res.Phases) > 0 {
		if terr := res.WriteTable(stdout); terr != nil {
			return errors.Join(err, terr)
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(res); jerr != nil {
				return errors.Join(err, jerr)
			}
		}
	}
	return err
}
