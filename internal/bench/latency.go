package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tunehook/tunehook/internal/task"
	"github.com/tunehook/tunehook/internal/worker"
)

// levels are the loads of the latency phase, as fractions of the maximum
// load (see measurePipeline); the first is also the isolation phase's
// load, and its p99 the unloaded p99 that phase compares with.
var levels = []float64{0.1, 0.5, 0.9}

// measureLatency measures the time from a stage's commit to its callback's
// arrival at a loopback receiver at each of the levels of the maximum
// load, one after the other on the phase's store: tasks are created
// through the Store, as the API creates them, for Duration; the real
// Runner, as deep as the pipeline phase's fastest, runs their stages with
// the instant engine and the real Dispatcher, with its defaults, delivers
// their callbacks.
func measureLatency(ctx context.Context, e *env) ([]Result, error) {
	stopProfile, err := e.profile()
	if err != nil {
		return nil, err
	}
	var rows []Result
	for i, level := range levels {
		r, err := measureLevel(ctx, e, level)
		if r.Count > 0 || r.Errors > 0 {
			rows = append(rows, r)
		}
		if err != nil {
			return rows, errors.Join(err, stopProfile())
		}
		if i == 0 {
			e.run.unloadedP99 = r.Latency.P99
		}
	}
	return rows, stopProfile()
}

// measureLevel measures the latency at level of the maximum rate.
func measureLevel(ctx context.Context, e *env, level float64) (_ Result, err error) {
	p, err := startPipeline(ctx, e, e.run.stages, 0, e.logger)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if serr := p.stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("workers: %w", serr))
		}
	}()
	return p.stream(ctx, e, level)
}

// pipeline is the Runner and the Dispatcher of a streaming phase, which
// work on the phase's store through an observer.
type pipeline struct {
	obs  *observer
	stop func() error
}

// startPipeline starts a Runner of stages at once and a Dispatcher with
// its defaults, except for timeout, when it is not 0. Simulation is on, so
// that a task can fail at once and send one callback only.
func startPipeline(ctx context.Context, e *env, stages int, timeout time.Duration, logger *slog.Logger) (*pipeline, error) {
	obs := &observer{Store: e.store, commits: make(map[string]commitNote), records: make(map[string][]recordNote)}
	runner, err := worker.NewRunner(worker.RunnerConfig{
		Store:       obs,
		Engine:      instantEngine{},
		Simulation:  true,
		Owner:       "bench-runner",
		Concurrency: stages,
		Logger:      logger,
	})
	if err != nil {
		return nil, err
	}
	cfg := dispatcherConfig(obs, logger)
	cfg.Timeout = timeout
	dispatcher, err := worker.NewDispatcher(cfg)
	if err != nil {
		return nil, err
	}
	stopRunner := start(ctx, runner.Run)
	stopDispatcher := start(ctx, dispatcher.Run)
	return &pipeline{obs: obs, stop: func() error { return errors.Join(stopRunner(), stopDispatcher()) }}, nil
}

// stream creates tasks whose callbacks go to a receiver of their own, at
// level of the maximum rate for Duration, and waits until the receiver has
// every callback and the store has recorded its attempt. Every callback
// must be delivered at its first attempt. The row's latencies run from
// the moment a stage's commit began to its callback's arrival.
func (p *pipeline) stream(ctx context.Context, e *env, level float64) (_ Result, err error) {
	cps := level * e.run.maxRate
	rate := cps / callbacksPerTask
	tasks := max(1, int(rate*e.cfg.Duration.Seconds()))
	want := tasks * callbacksPerTask
	rcv, err := startReceiver(want, mapTally{}, nil)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if serr := rcv.shutdown(); serr != nil {
			err = errors.Join(err, fmt.Errorf("shut down receiver: %w", serr))
		}
	}()
	begin := time.Now()
	ids, created, err := createPaced(ctx, e.store, rcv.url, tasks, rate, begin)
	if err == nil {
		err = rcv.wait(ctx)
	}
	if err == nil {
		err = p.obs.recorded(ctx, ids)
	}
	elapsed := time.Since(begin)
	if err != nil {
		return Result{}, err
	}

	errs, err := rcv.check()
	latencies := make([]time.Duration, 0, want)
	arrived := rcv.arrived()
	late, unmatched := 0, 0
	p.obs.mu.Lock()
	for id, c := range p.obs.commits {
		if !ids[c.key.taskID] {
			continue
		}
		if recs := p.obs.records[id]; len(recs) != 1 || recs[0].n != 1 || recs[0].state != task.DeliveryDelivered {
			late++
		}
		at, ok := arrived[c.key]
		if !ok {
			unmatched++
			continue
		}
		latencies = append(latencies, at.Sub(c.at))
	}
	p.obs.mu.Unlock()
	if late > 0 {
		errs += late
		err = errors.Join(err, fmt.Errorf("%d of %d callbacks not delivered at their first attempt", late, want))
	}
	if unmatched > 0 {
		errs += unmatched
		err = errors.Join(err, fmt.Errorf("%d callbacks committed that did not arrive", unmatched))
	}
	return Result{
		Variant: fmt.Sprintf("%g%%", level*100),
		Count:   len(latencies),
		Errors:  errs,
		Elapsed: elapsed,
		Latency: summarize(latencies),
		What: fmt.Sprintf("stage commit to arrival at %g%% of %.0f callbacks/s: %.0f tasks/s asked, %.0f created, "+
			"%.0f callbacks/s made and delivered over the row's time; instant engine, rendering not included",
			level*100, e.run.maxRate, rate, float64(tasks)/created.Seconds(), float64(len(latencies))/elapsed.Seconds()),
	}, err
}

// createPaced creates n tasks whose callbacks go to callbackURL, at rate
// per second from begin on, each in its own goroutine as the API would,
// and returns their IDs and how long creating them took, to the end of
// the last creation.
func createPaced(ctx context.Context, st task.Store, callbackURL string, n int, rate float64, begin time.Time) (map[string]bool, time.Duration, error) {
	req := newRequest(callbackURL, "a calm piano song about the sea")
	created := make([]string, n)
	errs := make([]error, n)
	var mu sync.Mutex
	var last time.Time
	pace(ctx, n, rate, begin, func(i int, _ time.Time) {
		t := newTask(req, time.Now())
		if errs[i] = st.CreateTask(ctx, t); errs[i] != nil {
			errs[i] = fmt.Errorf("create task %s: %w", t.ID, errs[i])
			return
		}
		created[i] = t.ID
		mu.Lock()
		last = time.Now()
		mu.Unlock()
	})
	if err := cmp.Or(ctx.Err(), cmp.Or(errs...)); err != nil {
		return nil, 0, err
	}
	ids := make(map[string]bool, n)
	for _, id := range created {
		ids[id] = true
	}
	return ids, last.Sub(begin), nil
}

// observer is the store of the Runner and the Dispatcher of the phases
// that follow callbacks: it notes when each stage's commit began, at the
// clock's full resolution (a callback's CreatedAt is set before its
// stage waits for a group commit, and SQLite keeps it in milliseconds),
// and every attempt recorded.
type observer struct {
	task.Store

	mu      sync.Mutex
	commits map[string]commitNote   // by callback ID
	records map[string][]recordNote // by callback ID, in order
}

// commitNote is a stage's commit, as an observer saw it.
type commitNote struct {
	key callbackKey
	at  time.Time // when the commit began
}

// recordNote is a recorded attempt, as an observer saw it.
type recordNote struct {
	n     int
	state task.DeliveryState
	ended time.Time // when the attempt ended, on the Dispatcher's clock
	next  time.Time // when the next attempt is due, if pending
}

// CommitStages commits cs and notes the callbacks committed, with when
// the commit began: the latency of a callback runs from the transaction
// that makes it durable, including that transaction's time, but not the
// wait of its stage for a group commit, which is the Runner's cost of
// making the stage.
func (o *observer) CommitStages(ctx context.Context, owner string, cs []task.StageCommit) ([]error, error) {
	begin := time.Now()
	results, err := o.Store.CommitStages(ctx, owner, cs)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, c := range cs {
		if results[i] == nil && c.Callback != nil {
			o.commits[c.Callback.ID] = commitNote{callbackKey{c.TaskID, c.Callback.Stage}, begin}
		}
	}
	return results, nil
}

// RecordAttempts records rs and notes the attempts recorded.
func (o *observer) RecordAttempts(ctx context.Context, owner string, rs []task.AttemptRecord) ([]error, error) {
	results, err := o.Store.RecordAttempts(ctx, owner, rs)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, r := range rs {
		if results[i] == nil {
			o.records[r.CallbackID] = append(o.records[r.CallbackID], recordNote{r.N, r.State, r.StartedAt.Add(r.Duration), r.Next})
		}
	}
	return results, nil
}

// recorded waits until an attempt of every callback committed for the
// tasks ids has been recorded, which follows its arrival by a transaction.
func (o *observer) recorded(ctx context.Context, ids map[string]bool) error {
	ctx, cancel := context.WithTimeout(ctx, stallLimit)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		missing := 0
		o.mu.Lock()
		for id, c := range o.commits {
			if ids[c.key.taskID] && len(o.records[id]) == 0 {
				missing++
			}
		}
		o.mu.Unlock()
		if missing == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d attempts to be recorded: %w", missing, ctx.Err())
		case <-tick.C:
		}
	}
}
