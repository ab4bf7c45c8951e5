package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/tunehook/tunehook/internal/task"
	"github.com/tunehook/tunehook/internal/worker"
)

// measureLatency measures the time from a stage's commit to its callback's
// arrival at a loopback receiver, at a fixed, moderate load: tasks are
// created through the Store, as the API creates them, at Rate per second
// for Duration; the real Runner runs their stages at once with the instant
// engine and the real Dispatcher delivers their callbacks. Afterwards every
// callback must be delivered at its first attempt, as the store records it.
func measureLatency(ctx context.Context, e *env) (_ Result, err error) {
	tasks := max(1, int(e.cfg.Rate*e.cfg.Duration.Seconds()))
	want := tasks * callbacksPerTask
	rcv, err := startReceiver(want)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if serr := rcv.shutdown(); serr != nil {
			err = errors.Join(err, fmt.Errorf("shut down receiver: %w", serr))
		}
	}()
	clock := &commitClock{Store: e.store, at: make(map[callbackKey]time.Time, want)}
	runner, err := worker.NewRunner(worker.RunnerConfig{
		Store:  clock,
		Engine: instantEngine{},
		Owner:  "bench-runner",
		Logger: e.logger,
	})
	if err != nil {
		return Result{}, err
	}
	dispatcher, err := worker.NewDispatcher(worker.DispatcherConfig{
		Store:      e.store,
		SigningKey: signingKey,
		Owner:      "bench-dispatcher",
		Logger:     e.logger,
	})
	if err != nil {
		return Result{}, err
	}
	stopRunner := start(ctx, runner.Run)
	stopDispatcher := start(ctx, dispatcher.Run)
	defer func() {
		if serr := errors.Join(stopRunner(), stopDispatcher()); serr != nil {
			err = errors.Join(err, fmt.Errorf("workers: %w", serr))
		}
	}()

	stopProfile, err := e.profile()
	if err != nil {
		return Result{}, err
	}
	begin := time.Now()
	ids, err := submitPaced(ctx, e.store, rcv.url, tasks, e.cfg.Rate, begin)
	if err == nil {
		err = rcv.wait(ctx)
	}
	if err == nil {
		err = recorded(ctx, e.store)
	}
	elapsed := time.Since(begin)
	if perr := stopProfile(); perr != nil {
		err = errors.Join(err, perr)
	}
	if err != nil {
		return Result{}, err
	}

	errs, err := rcv.check()
	undelivered, verr := undeliveredAtFirst(ctx, e.store, ids)
	if verr != nil {
		return Result{}, verr
	}
	if undelivered > 0 {
		errs += undelivered
		err = errors.Join(err, fmt.Errorf("%d of %d callbacks not delivered at their first attempt", undelivered, want))
	}
	committed := clock.times()
	latencies := make([]time.Duration, 0, want)
	unmatched := 0
	for key, arrived := range rcv.arrived() {
		at, ok := committed[key]
		if !ok {
			unmatched++
			continue
		}
		latencies = append(latencies, arrived.Sub(at))
	}
	if unmatched > 0 {
		errs += unmatched
		err = errors.Join(err, fmt.Errorf("%d callbacks arrived that no stage commit of the runner made", unmatched))
	}
	return Result{
		Count:   len(latencies),
		Errors:  errs,
		Elapsed: elapsed,
		Latency: summarize(latencies),
		What: fmt.Sprintf("stage commit to arrival, %g tasks/s (%g callbacks/s); instant engine, rendering not included",
			e.cfg.Rate, callbacksPerTask*e.cfg.Rate),
	}, err
}

// submitPaced creates n tasks whose callbacks go to callbackURL, at rate
// per second from begin on, and returns their IDs. The schedule is fixed:
// a late creation does not delay the ones after it.
func submitPaced(ctx context.Context, st task.Store, callbackURL string, n int, rate float64, begin time.Time) ([]string, error) {
	interval := time.Duration(float64(time.Second) / rate)
	req := newRequest(callbackURL, "a calm piano song about the sea")
	ids := make([]string, 0, n)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := range n {
		timer.Reset(time.Until(begin.Add(time.Duration(i) * interval)))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
		}
		t := newTask(req, time.Now())
		if err := st.CreateTask(ctx, t); err != nil {
			return nil, fmt.Errorf("create task %s: %w", t.ID, err)
		}
		ids = append(ids, t.ID)
	}
	return ids, nil
}

// undeliveredAtFirst counts the callbacks of the tasks ids that the store
// does not show delivered at their first attempt, the missing ones of a
// task with fewer than callbacksPerTask included.
func undeliveredAtFirst(ctx context.Context, st task.Store, ids []string) (undelivered int, err error) {
	for _, id := range ids {
		cbs, err := st.Callbacks(ctx, id)
		if err != nil {
			return 0, fmt.Errorf("read callbacks of task %s: %w", id, err)
		}
		undelivered += max(callbacksPerTask-len(cbs), 0)
		for _, cb := range cbs {
			if cb.State != task.DeliveryDelivered || cb.Attempts != 1 {
				undelivered++
			}
		}
	}
	return undelivered, nil
}

// commitClock is the Runner's store in the latency phase: it notes when
// the commit of each stage begins, which is when the stage's callback is
// created, at the clock's full resolution. The stores keep CreatedAt more
// coarsely (SQLite in milliseconds), too coarsely for latencies of a few
// milliseconds.
type commitClock struct {
	task.Store

	mu sync.Mutex
	at map[callbackKey]time.Time
}

// CommitStage commits c and notes when it began.
func (c *commitClock) CommitStage(ctx context.Context, owner string, sc task.StageCommit) error {
	begin := time.Now()
	if err := c.Store.CommitStage(ctx, owner, sc); err != nil {
		return err
	}
	if sc.Callback != nil {
		c.mu.Lock()
		c.at[callbackKey{sc.TaskID, sc.Callback.Stage}] = begin
		c.mu.Unlock()
	}
	return nil
}

// times returns when each stage's commit began, by callback.
func (c *commitClock) times() map[callbackKey]time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.at)
}
