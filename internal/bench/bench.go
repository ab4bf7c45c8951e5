// Package bench is tunehook's load benchmark: it composes the real API,
// store, Runner and Dispatcher in one process, drives them over loopback
// HTTP, and measures submissions, callback delivery and the latency from a
// stage's commit to its callback's arrival. Each measurement is a phase with
// its own fresh store, so that phases do not disturb each other, and its own
// row in the result table.
package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// Opener opens a fresh, empty store for one phase, logging to logger, and
// returns with it the function that closes the store and deletes its data.
type Opener func(ctx context.Context, logger *slog.Logger) (st task.Store, remove func() error, err error)

// Config configures a benchmark run. Open is required; the zero value of
// every other field selects its default.
type Config struct {
	// Store names the store in the results ("sqlite", "postgres").
	Store string
	// Open opens each phase's store (see SQLite and Postgres).
	Open Opener
	// Phases are the names of the phases to run, in order; default all of
	// PhaseNames.
	Phases []string
	// Duration is how long the submit phase sends requests and the latency
	// phase submits tasks; default 10s.
	Duration time.Duration
	// Concurrency is the number of clients of the submit phase; default 32.
	Concurrency int
	// Callbacks is how many callbacks the deliver phase delivers; default
	// 20000.
	Callbacks int
	// Rate is how many tasks per second the latency phase submits; default
	// 50.
	Rate float64
	// CPUProfile, when set, is the prefix of the CPU profiles written of
	// each phase's measured part: CPUProfile + "." + phase + ".pprof".
	CPUProfile string
	// Logger gets the bench's progress, and the warnings and errors of the
	// components under test; default: discard.
	Logger *slog.Logger
}

// Results are the measurements of a run and the machine they were made on.
type Results struct {
	Machine Machine  `json:"machine"`
	Phases  []Result `json:"phases"`
}

// Result is what one phase measured: a row of the table.
type Result struct {
	Phase string `json:"phase"`
	Store string `json:"store"`
	// Count is how many things the phase measured: requests answered,
	// callbacks delivered, latencies taken.
	Count int `json:"count"`
	// Errors counts failed requests, duplicate or missing callbacks.
	Errors  int           `json:"errors"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// PerSecond is Count per second of Elapsed, for the phases that measure
	// throughput; 0 for the others.
	PerSecond float64  `json:"per_second,omitempty"`
	Latency   *Latency `json:"latency,omitempty"`
	// What says what was measured, and how.
	What string `json:"what"`
}

// Latency summarizes a set of durations by exact order statistics.
type Latency struct {
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// phase is one measurement. run measures on e's store, which is fresh and
// used by nothing else, and returns the row it measured; the row's Phase and
// Store are filled in by Run.
type phase struct {
	name string
	run  func(ctx context.Context, e *env) (Result, error)
}

// phases are every measurement, in their default order.
var phases = []phase{
	{"submit", measureSubmit},
	{"deliver", measureDelivery},
	{"latency", measureLatency},
}

// PhaseNames returns the names of the phases, in their default order.
func PhaseNames() []string {
	names := make([]string, len(phases))
	for i, p := range phases {
		names[i] = p.name
	}
	return names
}

// env is what a phase works with.
type env struct {
	cfg   Config
	phase string
	store task.Store
	// logger is the components' logger: it passes on warnings and errors
	// only.
	logger *slog.Logger
}

// Run runs the phases of cfg one after another and returns their results.
// It stops at the first phase that fails, and then returns the results so
// far, including the failed phase's row if it measured anything.
func Run(ctx context.Context, cfg Config) (Results, error) {
	cfg, run, err := cfg.check()
	if err != nil {
		return Results{}, err
	}
	res := Results{Machine: detectMachine()}
	for _, p := range run {
		cfg.Logger.InfoContext(ctx, "phase started", "phase", p.name, "store", cfg.Store)
		r, err := runPhase(ctx, cfg, p)
		if r.Count > 0 || r.Errors > 0 {
			res.Phases = append(res.Phases, r)
		}
		if err != nil {
			return res, fmt.Errorf("%s phase on %s: %w", p.name, cfg.Store, err)
		}
		cfg.Logger.InfoContext(ctx, "phase done", "phase", p.name, "store", cfg.Store,
			"count", r.Count, "elapsed", r.Elapsed, "per_second", r.PerSecond)
	}
	return res, nil
}

// check validates cfg, fills in its defaults and returns the phases it
// selects.
func (cfg Config) check() (Config, []phase, error) {
	switch {
	case cfg.Open == nil:
		return cfg, nil, errors.New("bench: no store opener")
	case cfg.Duration < 0, cfg.Concurrency < 0, cfg.Callbacks < 0, cfg.Rate < 0:
		return cfg, nil, errors.New("bench: duration, concurrency, callbacks and rate must not be negative")
	}
	cfg.Store = cmp.Or(cfg.Store, "store")
	cfg.Duration = cmp.Or(cfg.Duration, 10*time.Second)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 32)
	cfg.Callbacks = cmp.Or(cfg.Callbacks, 20000)
	cfg.Rate = cmp.Or(cfg.Rate, 50)
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	if len(cfg.Phases) == 0 {
		cfg.Phases = PhaseNames()
	}
	var run []phase
	for _, name := range cfg.Phases {
		i := slices.IndexFunc(phases, func(p phase) bool { return p.name == name })
		if i < 0 {
			return cfg, nil, fmt.Errorf("bench: unknown phase %q; the phases are %s", name, strings.Join(PhaseNames(), ", "))
		}
		run = append(run, phases[i])
	}
	return cfg, run, nil
}

// runPhase runs p on a store of its own, which it removes afterwards.
func runPhase(ctx context.Context, cfg Config, p phase) (r Result, err error) {
	logger := slog.New(warnOnly{cfg.Logger.Handler()})
	st, remove, err := cfg.Open(ctx, logger)
	if err != nil {
		return Result{}, fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if rerr := remove(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove store: %w", rerr))
		}
	}()
	r, err = p.run(ctx, &env{cfg: cfg, phase: p.name, store: st, logger: logger})
	r.Phase, r.Store = p.name, cfg.Store
	return r, err
}

// profile starts the CPU profile of the phase's measured part, if one is
// asked for; the returned function stops it.
func (e *env) profile() (stop func() error, err error) {
	if e.cfg.CPUProfile == "" {
		return func() error { return nil }, nil
	}
	name := e.cfg.CPUProfile + "." + e.phase + ".pprof"
	f, err := os.Create(name)
	if err != nil {
		return nil, fmt.Errorf("create cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(fmt.Errorf("start cpu profile: %w", err), f.Close())
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("write cpu profile %s: %w", name, err)
		}
		return nil
	}, nil
}

// summarize returns the exact median, 99th percentile (nearest rank) and
// maximum of ds, which it sorts; nil for no durations.
func summarize(ds []time.Duration) *Latency {
	if len(ds) == 0 {
		return nil
	}
	slices.Sort(ds)
	rank := func(percent int) time.Duration {
		// Nearest rank: the smallest value that at least percent % of the
		// values do not exceed; in integers, so that no rounding moves it.
		return ds[(len(ds)*percent+99)/100-1]
	}
	return &Latency{P50: rank(50), P99: rank(99), Max: ds[len(ds)-1]}
}

// start runs a component's Run in its own goroutine until the returned stop
// is called; stop cancels it, waits for Run to return and returns its
// error. Calling stop again returns the same error.
func start(ctx context.Context, run func(context.Context) error) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	return sync.OnceValue(func() error {
		cancel()
		return <-done
	})
}

// warnOnly is a slog.Handler that passes on warnings and errors only: the
// components log every task and callback at Info, which would flood the
// output and spend some of the time under measurement.
type warnOnly struct{ h slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.h.Enabled(ctx, l)
}

func (w warnOnly) Handle(ctx context.Context, r slog.Record) error { return w.h.Handle(ctx, r) }

func (w warnOnly) WithAttrs(as []slog.Attr) slog.Handler { return warnOnly{w.h.WithAttrs(as)} }

func (w warnOnly) WithGroup(name string) slog.Handler { return warnOnly{w.h.WithGroup(name)} }
