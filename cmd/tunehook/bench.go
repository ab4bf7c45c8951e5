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
	duration := fs.Duration("duration", 10*time.Second, "how long each timed measurement runs: ceiling level, submit phase, latency level, isolation stream")
	concurrency := fs.Int("concurrency", 32, "`clients` of the closed-loop submit phase")
	submitRate := fs.Float64("submit-rate", 1000, "requests per second of the open-loop submit phase")
	callbacks := fs.Int("callbacks", 20000, "callbacks the deliver phase, and each Runner depth of the pipeline phase, delivers")
	maxRate := fs.Float64("max-rate", 0, "callbacks per second the latency levels and the isolation stream are fractions of (default: what the pipeline phase measures)")
	stages := fs.Int("stages", 0, "stages the Runner of the pipeline, latency and isolation phases runs at once (default: the pipeline phase measures 64 and 256, the later phases use the faster)")
	hanging := fs.Int("hanging", 1000, "receivers of the isolation phase that never answer")
	hangingCallbacks := fs.Int("hanging-callbacks", 3, "callbacks each hanging receiver gets: 1 or 3")
	timeout := fs.Duration("timeout", 15*time.Second, "the attempt timeout of the isolation phase")
	backlog := fs.Int("backlog", 1_000_000, "callbacks the backlog phase schedules for retry")
	storm := fs.Int("storm", 20000, "callbacks that fail their first attempt in the storm phase")
	stormDelays := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}
	fs.Func("storm-delays", "comma-separated retry `delays` of the storm phase (default 2s,4s,8s)", func(v string) error {
		stormDelays = nil
		for d := range strings.SplitSeq(v, ",") {
			delay, err := time.ParseDuration(strings.TrimSpace(d))
			if err != nil {
				return err
			}
			if delay <= 0 {
				return fmt.Errorf("delay %v is not positive", delay)
			}
			stormDelays = append(stormDelays, delay)
		}
		return nil
	})
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
	if *duration <= 0 || *concurrency <= 0 || *submitRate <= 0 || *callbacks <= 0 || *maxRate < 0 || *stages < 0 ||
		*hanging <= 0 || *timeout <= 0 || *backlog <= 0 || *storm <= 0 {
		return errors.New("bench: --duration, --concurrency, --submit-rate, --callbacks, --hanging, --timeout, --backlog and --storm must be positive, --max-rate and --stages must not be negative")
	}

	cfg := benchmark.Config{
		Store:            "sqlite",
		Open:             benchmark.SQLite(""),
		Duration:         *duration,
		Concurrency:      *concurrency,
		SubmitRate:       *submitRate,
		Callbacks:        *callbacks,
		MaxRate:          *maxRate,
		Stages:           *stages,
		Hanging:          *hanging,
		HangingCallbacks: *hangingCallbacks,
		Timeout:          *timeout,
		Backlog:          *backlog,
		Storm:            *storm,
		StormDelays:      stormDelays,
		CPUProfile:       *cpuProfile,
		Logger:           slog.New(slog.NewTextHandler(stderr, nil)),
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
