package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tunehook/tunehook/internal/safedial"
	"github.com/tunehook/tunehook/internal/task"
	"github.com/tunehook/tunehook/internal/worker"
)

// dispatcherConfig returns what every phase's Dispatcher starts from: the
// store, callbacks signed (so that the Dispatcher pays for the HMACs it
// pays for in production), and the production's checking dialer, allowed
// to reach the bench's receivers on loopback. A phase sets what it needs
// besides; the rest are the Dispatcher's defaults.
func dispatcherConfig(store task.Store, logger *slog.Logger) worker.DispatcherConfig {
	return worker.DispatcherConfig{
		Store:       store,
		SigningKeys: [][]byte{[]byte("tunehook-bench-signing-key")},
		Targets:     safedial.Policy{AllowPrivate: true},
		Owner:       "bench-dispatcher",
		Logger:      logger,
	}
}

// loadConcurrency is how many stages the Runner that loads the deliver
// phase's backlog runs at once: enough to overlap the round trips of a
// database server.
const loadConcurrency = 16

// measureDelivery measures how fast the real Dispatcher, with its default
// settings, empties a backlog of Callbacks pending callbacks into a
// loopback receiver. The clock runs from the Dispatcher's start until the
// receiver has every callback and the store has recorded every attempt.
// The rate is the maximum that the latency and isolation phases load
// fractions of, and is compared with the ceiling.
func measureDelivery(ctx context.Context, e *env) (_ Result, err error) {
	n := e.cfg.Callbacks
	rcv, err := startReceiver(n, mapTally{}, nil)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if serr := rcv.shutdown(); serr != nil {
			err = errors.Join(err, fmt.Errorf("shut down receiver: %w", serr))
		}
	}()
	loadStart := time.Now()
	if err := preload(ctx, e, rcv.url, n); err != nil {
		return Result{}, fmt.Errorf("load %d callbacks: %w", n, err)
	}
	loaded := time.Since(loadStart)
	e.cfg.Logger.InfoContext(ctx, "callbacks loaded", "phase", e.phase, "callbacks", n, "took", loaded)

	d, err := worker.NewDispatcher(dispatcherConfig(e.store, e.logger))
	if err != nil {
		return Result{}, err
	}
	stopProfile, err := e.profile()
	if err != nil {
		return Result{}, err
	}
	begin := time.Now()
	stop := start(ctx, d.Run)
	defer func() {
		if serr := stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("dispatcher: %w", serr))
		}
	}()
	err = rcv.wait(ctx)
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
	r, err := rcv.throughput(elapsed)
	r.What = fmt.Sprintf("a backlog of %d signed callbacks (%d B on average) to a loopback receiver; dispatcher defaults; "+
		"made through the Store by the Runner at %.0f callbacks/s",
		n, rcv.meanBody(), float64(n)/loaded.Seconds())
	e.run.deliver = r.PerSecond
	r.Ratio, r.What = e.run.ofCeiling(r.PerSecond, r.What)
	return r, err
}

// recorded waits until the store has recorded the attempts of every
// callback the receiver has, which follow its answers by a transaction.
func recorded(ctx context.Context, st task.Store) error {
	ctx, cancel := context.WithTimeout(ctx, stallLimit)
	defer cancel()
	if err := drained(ctx, st.NextCallbackDue, time.Millisecond); err != nil {
		return fmt.Errorf("wait for the attempts to be recorded: %w", err)
	}
	return nil
}

// preload makes n callbacks pending in e's store, with real bodies: tasks
// that succeed leave callbacksPerTask callbacks each, and the remainder is
// made of tasks that fail at once (a simulation token), with an error
// callback each.
// The real Runner runs them with the instant engine, and returns once every
// task is final; no Dispatcher runs yet.
func preload(ctx context.Context, e *env, callbackURL string, n int) error {
	now := time.Now()
	ok := n / callbacksPerTask
	for i := range ok + n%callbacksPerTask {
		prompt := "a calm piano song about the sea"
		if i >= ok {
			prompt += " tunehook:fail:501"
		}
		if err := e.store.CreateTask(ctx, newTask(newRequest(callbackURL, prompt), now)); err != nil {
			return err
		}
	}
	r, err := worker.NewRunner(worker.RunnerConfig{
		Store:       e.store,
		Engine:      instantEngine{},
		Simulation:  true,
		Owner:       "bench-loader",
		Concurrency: loadConcurrency,
		Logger:      e.logger,
	})
	if err != nil {
		return err
	}
	stop := start(ctx, r.Run)
	err = drained(ctx, e.store.NextTaskDue, 10*time.Millisecond)
	return errors.Join(err, stop())
}
