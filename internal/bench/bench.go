// Package bench is tunehook's load benchmark: it composes the real API,
// store, Runner and Dispatcher in one process, drives them over loopback
// HTTP, and measures them against the machine's own ceiling: a plain HTTP
// client and receiver. Each measurement is a phase with its own fresh
// store, so that phases do not disturb each other, and its own rows in the
// result table.
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

// Opener opens a fresh, empty store for one phase, logging to logger.
type Opener func(ctx context.Context, logger *slog.Logger) (*Opened, error)

// Opened is a phase's store, with what the bench does to it beside the
// Store API.
type Opened struct {
	Store task.Store
	// Remove closes Store and deletes its data.
	Remove func() error
	// Load inserts the callbacks of b with one SQL statement per table:
	// through the Store API a million callbacks would take most of an
	// hour.
	Load func(ctx context.Context, b Batch) error
}

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
	// Duration is how long each timed measurement runs: each ceiling
	// level, each submit phase, each latency level and the isolation
	// phase's healthy stream; default 10s.
	Duration time.Duration
	// Concurrency is the number of clients of the closed-loop submit
	// phase; default 32.
	Concurrency int
	// SubmitRate is how many requests per second the open-loop submit
	// phase sends; default 1000.
	SubmitRate float64
	// Callbacks is how many callbacks the deliver phase, and each depth of
	// the pipeline phase, delivers; default 20000.
	Callbacks int
	// MaxRate is the maximum load, in callbacks per second, of which the
	// latency levels and the isolation phase's stream are fractions;
	// default: what the pipeline phase measured earlier in the same run.
	MaxRate float64
	// Stages is how many stages the Runner of the pipeline, latency and
	// isolation phases runs at once. By default the pipeline phase
	// measures each of stageDepths and the later phases use the fastest
	// (the first of them if the pipeline phase does not run). The Runner
	// and its instant engine only make the load there; its production
	// default, one stage per CPU for rendering, would claim one task per
	// transaction and fall behind.
	Stages int
	// Hanging is how many receivers of the isolation phase accept
	// connections and never answer; default 1000.
	Hanging int
	// HangingCallbacks is how many callbacks each hanging receiver gets: 1
	// (a task that fails at once) or 3 (a task that succeeds); default 3.
	HangingCallbacks int
	// Timeout is the Dispatcher's attempt timeout in the isolation phase;
	// default 15s, the Dispatcher's own.
	Timeout time.Duration
	// Backlog is how many callbacks the backlog phase schedules for retry;
	// default 1,000,000.
	Backlog int
	// Storm is how many callbacks fail their first attempt in the storm
	// phase; default 20,000.
	Storm int
	// StormDelays are the retry delays of the storm phase, the production
	// schedule scaled down so that the phase stays short; default 2s, 4s,
	// 8s.
	StormDelays []time.Duration
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

// Result is what one phase measured: a row of the table. A phase that
// measures at several settings has a row for each.
type Result struct {
	Phase string `json:"phase"`
	// Variant tells the rows of one phase apart: "64 clients", "50%".
	Variant string `json:"variant,omitempty"`
	Store   string `json:"store"`
	// Count is how many things the phase measured: requests answered,
	// callbacks delivered, latencies taken.
	Count int `json:"count"`
	// Errors counts failed requests, duplicate, missing or late
	// callbacks.
	Errors  int           `json:"errors"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// PerSecond is Count per second of Elapsed, for the phases that measure
	// throughput; 0 for the others.
	PerSecond float64 `json:"per_second,omitempty"`
	// Ratio compares the row with another measurement of the run: the
	// deliver row's rate with the ceiling, the backlog row's with the
	// deliver row's, the isolation row's p99 with the unloaded p99 of the
	// first latency level; 0 when that measurement is not in the run.
	Ratio   float64  `json:"ratio,omitempty"`
	Latency *Latency `json:"latency,omitempty"`
	// Memory is the backlog phase's process memory.
	Memory *Memory `json:"memory,omitempty"`
	// Storm is the storm phase's retries over time.
	Storm *Storm `json:"storm,omitempty"`
	// Steal is the fraction of the machine's CPU time that its hypervisor
	// gave to other machines during the phase, loading included: on a
	// shared virtual machine it explains much of the spread between
	// runs.
	Steal float64 `json:"steal"`
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
// used by nothing else, and returns the rows it measured; their Phase and
// Store are filled in by Run.
type phase struct {
	name string
	run  func(ctx context.Context, e *env) ([]Result, error)
	// rated phases load the system at fractions of its maximum load.
	rated bool
}

// phases are every measurement, in their default order: each one after
// the measurements it refers to.
var phases = []phase{
	{name: "ceiling", run: measureCeiling},
	{name: "submit", run: one(measureSubmit)},
	{name: "submit-rate", run: one(measureSubmitRate)},
	{name: "deliver", run: one(measureDelivery)},
	{name: "pipeline", run: measurePipeline},
	{name: "latency", run: measureLatency, rated: true},
	{name: "isolation", run: one(measureIsolation), rated: true},
	{name: "backlog", run: one(measureBacklog)},
	{name: "storm", run: one(measureStorm)},
}

// one adapts a phase that measures one row.
func one(run func(ctx context.Context, e *env) (Result, error)) func(context.Context, *env) ([]Result, error) {
	return func(ctx context.Context, e *env) ([]Result, error) {
		r, err := run(ctx, e)
		if r.Count == 0 && r.Errors == 0 {
			return nil, err
		}
		return []Result{r}, err
	}
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
	// load is the store's bulk loader.
	load func(ctx context.Context, b Batch) error
	// logger is the components' logger: it passes on warnings and errors
	// only.
	logger *slog.Logger
	// run is what the earlier phases of the run measured.
	run *measured
}

// measured holds what later phases compare with; zero where the phase
// that measures it did not run.
type measured struct {
	ceiling float64 // requests per second, at the best concurrency
	deliver float64 // callbacks per second
	// maxRate is the rate, in callbacks per second, that the latency
	// levels are fractions of: Config.MaxRate, or else what the pipeline
	// phase measured.
	maxRate     float64
	unloadedP99 time.Duration // of the first latency level
	// stages is the depth of the Runner of the streaming phases:
	// Config.Stages, or the fastest the pipeline phase measured.
	stages int
}

// ofCeiling returns rate as a fraction of the ceiling, and what with that
// fraction said; 0 and what unchanged if the ceiling was not measured.
func (m *measured) ofCeiling(rate float64, what string) (float64, string) {
	if m.ceiling <= 0 {
		return 0, what
	}
	ratio := rate / m.ceiling
	return ratio, fmt.Sprintf("%s; %.1f%% of the ceiling (%.0f/s)", what, 100*ratio, m.ceiling)
}

// ofDeliver returns rate as a multiple of the deliver phase's, and what
// with that multiple said; 0 and what unchanged if the deliver phase did
// not run.
func (m *measured) ofDeliver(rate float64, what string) (float64, string) {
	if m.deliver <= 0 {
		return 0, what
	}
	ratio := rate / m.deliver
	return ratio, fmt.Sprintf("%s; at %.2fx the deliver phase's rate", what, ratio)
}

// Run runs the phases of cfg one after another and returns their results.
// It stops at the first phase that fails, and then returns the results so
// far, including the failed phase's rows if it measured anything.
func Run(ctx context.Context, cfg Config) (Results, error) {
	cfg, run, err := cfg.check()
	if err != nil {
		return Results{}, err
	}
	res := Results{Machine: detectMachine()}
	m := &measured{maxRate: cfg.MaxRate, stages: cmp.Or(cfg.Stages, stageDepths[0])}
	for _, p := range run {
		cfg.Logger.InfoContext(ctx, "phase started", "phase", p.name, "store", cfg.Store)
		if p.rated && m.maxRate <= 0 {
			return res, fmt.Errorf("%s phase on %s: no maximum rate: run the pipeline phase before it, or give the rate", p.name, cfg.Store)
		}
		rows, err := runPhase(ctx, cfg, p, m)
		res.Phases = append(res.Phases, rows...)
		if err != nil {
			return res, fmt.Errorf("%s phase on %s: %w", p.name, cfg.Store, err)
		}
		for _, r := range rows {
			cfg.Logger.InfoContext(ctx, "phase done", "phase", p.name, "variant", r.Variant, "store", cfg.Store,
				"count", r.Count, "elapsed", r.Elapsed, "per_second", r.PerSecond)
		}
	}
	return res, nil
}

// defaultStormDelays scale the production schedule (1m, 5m, 15m) down to
// seconds.
var defaultStormDelays = []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second}

// check validates cfg, fills in its defaults and returns the phases it
// selects.
func (cfg Config) check() (Config, []phase, error) {
	switch {
	case cfg.Open == nil:
		return cfg, nil, errors.New("bench: no store opener")
	case cfg.Duration < 0, cfg.Concurrency < 0, cfg.SubmitRate < 0, cfg.Callbacks < 0, cfg.MaxRate < 0, cfg.Stages < 0,
		cfg.Hanging < 0, cfg.Timeout < 0, cfg.Backlog < 0, cfg.Storm < 0,
		slices.ContainsFunc(cfg.StormDelays, func(d time.Duration) bool { return d <= 0 }):
		return cfg, nil, errors.New("bench: durations, counts and rates must not be negative, storm delays must be positive")
	case cfg.HangingCallbacks != 0 && cfg.HangingCallbacks != 1 && cfg.HangingCallbacks != callbacksPerTask:
		return cfg, nil, fmt.Errorf("bench: hanging callbacks must be 1 or %d, not %d", callbacksPerTask, cfg.HangingCallbacks)
	}
	cfg.Store = cmp.Or(cfg.Store, "store")
	cfg.Duration = cmp.Or(cfg.Duration, 10*time.Second)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 32)
	cfg.SubmitRate = cmp.Or(cfg.SubmitRate, 1000)
	cfg.Callbacks = cmp.Or(cfg.Callbacks, 20000)
	cfg.Hanging = cmp.Or(cfg.Hanging, 1000)
	cfg.HangingCallbacks = cmp.Or(cfg.HangingCallbacks, callbacksPerTask)
	cfg.Backlog = cmp.Or(cfg.Backlog, 1_000_000)
	cfg.Storm = cmp.Or(cfg.Storm, 20000)
	if len(cfg.StormDelays) == 0 {
		cfg.StormDelays = defaultStormDelays
	}
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
func runPhase(ctx context.Context, cfg Config, p phase, m *measured) (rows []Result, err error) {
	logger := slog.New(atLeast{cfg.Logger.Handler(), slog.LevelWarn})
	o, err := cfg.Open(ctx, logger)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if rerr := o.Remove(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove store: %w", rerr))
		}
	}()
	before, measured := readCPUTimes()
	rows, err = p.run(ctx, &env{cfg: cfg, phase: p.name, store: o.Store, load: o.Load, logger: logger, run: m})
	after, ok := readCPUTimes()
	for i := range rows {
		rows[i].Phase, rows[i].Store = p.name, cfg.Store
		if measured && ok {
			rows[i].Steal = before.stolen(after)
			rows[i].What += fmt.Sprintf("; CPU time stolen by the hypervisor during the phase: %.1f%%", 100*rows[i].Steal)
		}
	}
	return rows, err
}

// withFreshStore runs measure with a copy of e on a fresh store of its
// own, which it removes afterwards: for a phase that measures several
// settings, each on the empty store that the phase's first one has.
func (e *env) withFreshStore(ctx context.Context, measure func(e *env) error) (err error) {
	o, err := e.cfg.Open(ctx, e.logger)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if rerr := o.Remove(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove store: %w", rerr))
		}
	}()
	fresh := *e
	fresh.store, fresh.load = o.Store, o.Load
	return measure(&fresh)
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

// pace calls do n times, at rate per second from begin on, each call in
// its own goroutine: an open loop, in which a slow call never delays the
// next one. do gets the time its call was due. pace returns once every
// call has returned; it starts none after ctx ends.
func pace(ctx context.Context, n int, rate float64, begin time.Time, do func(i int, due time.Time)) {
	interval := time.Duration(float64(time.Second) / rate)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range n {
		due := begin.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		wg.Go(func() { do(i, due) })
	}
}

// quiet returns the components' logger for a phase that fails attempts on
// purpose: errors only, since every failed attempt is a warning.
func (e *env) quiet() *slog.Logger {
	return slog.New(atLeast{e.cfg.Logger.Handler(), slog.LevelError})
}

// atLeast is a slog.Handler that passes on records of level min and above:
// the components log every task and callback at Info, which would flood
// the output and spend some of the time under measurement.
type atLeast struct {
	h   slog.Handler
	min slog.Level
}

func (a atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= a.min && a.h.Enabled(ctx, l)
}

func (a atLeast) Handle(ctx context.Context, r slog.Record) error { return a.h.Handle(ctx, r) }

func (a atLeast) WithAttrs(as []slog.Attr) slog.Handler { return atLeast{a.h.WithAttrs(as), a.min} }

func (a atLeast) WithGroup(name string) slog.Handler { return atLeast{a.h.WithGroup(name), a.min} }
