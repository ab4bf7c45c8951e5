package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// creators is how many tasks the pipeline phase creates at once before
// its clock starts: enough to overlap the round trips of a database
// server.
const creators = 32

// stageDepths are the Runner depths the pipeline phase measures, unless
// Config.Stages sets one: a deeper Runner commits larger groups, which
// makes more callbacks per second on one store and fewer on another.
var stageDepths = []int{64, 256}

// measurePipeline measures the most callbacks per second that the Runner
// and the Dispatcher make and deliver together: the maximum load, which
// the latency levels are fractions of. It measures each Runner depth of
// stageDepths (or Config.Stages), each on a fresh store, and the later
// phases run with the fastest.
func measurePipeline(ctx context.Context, e *env) ([]Result, error) {
	depths := stageDepths
	if e.cfg.Stages > 0 {
		depths = []int{e.cfg.Stages}
	}
	stopProfile, err := e.profile()
	if err != nil {
		return nil, err
	}
	var rows []Result
	best := -1
	for i, depth := range depths {
		var r Result
		if i == 0 {
			r, err = measureDepth(ctx, e, depth)
		} else {
			err = e.withFreshStore(ctx, func(e *env) error {
				r, err = measureDepth(ctx, e, depth)
				return err
			})
		}
		if r.Count > 0 || r.Errors > 0 {
			rows = append(rows, r)
		}
		if err != nil {
			return rows, errors.Join(err, stopProfile())
		}
		if best < 0 || r.PerSecond > rows[best].PerSecond {
			best = len(rows) - 1
		}
	}
	rows[best].What += "; the maximum load: the fastest of the rows"
	e.run.stages = depths[best]
	if e.cfg.MaxRate == 0 {
		e.run.maxRate = rows[best].PerSecond
	}
	return rows, stopProfile()
}

// measureDepth measures the pipeline with a Runner of depth stages at
// once. Tasks for Callbacks callbacks are created through the Store first,
// not timed; then the real Runner, with the instant engine, runs them and
// the real Dispatcher, with its defaults, delivers their callbacks. The
// clock runs until the receiver has every callback and the store has
// recorded every attempt. Each callback's stage was committed in the
// phase, so the rate includes the commits that the latency levels measure
// from, but not the tasks' creation, which a latency level adds on top of
// its share of this rate.
func measureDepth(ctx context.Context, e *env, depth int) (_ Result, err error) {
	tasks := max(1, e.cfg.Callbacks/callbacksPerTask)
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
	ids, err := createTasks(ctx, e, rcv.url, tasks)
	if err != nil {
		return Result{}, err
	}
	p, err := startPipeline(ctx, e, depth, 0, e.logger)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if serr := p.stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("workers: %w", serr))
		}
	}()
	begin := time.Now()
	err = rcv.wait(ctx)
	if err == nil {
		err = p.obs.recorded(ctx, ids)
	}
	elapsed := time.Since(begin)
	if err != nil {
		return Result{}, err
	}
	r, err := rcv.throughput(elapsed)
	r.Variant = fmt.Sprintf("%d stages", depth)
	r.Ratio, r.What = e.run.ofDeliver(r.PerSecond, fmt.Sprintf("%d tasks created, then run by the Runner (%d stages at once, "+
		"instant engine) and their %d callbacks delivered by the Dispatcher (defaults), every stage commit and attempt durable",
		tasks, depth, want))
	return r, err
}

// createTasks creates n tasks whose callbacks go to callbackURL, creators
// at a time, and returns their IDs.
func createTasks(ctx context.Context, e *env, callbackURL string, n int) (map[string]bool, error) {
	req := newRequest(callbackURL, "a calm piano song about the sea")
	created := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, creators)
	for c := range creators {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n && errs[c] == nil; i = int(next.Add(1)) - 1 {
				t := newTask(req, time.Now())
				if errs[c] = e.store.CreateTask(ctx, t); errs[c] != nil {
					errs[c] = fmt.Errorf("create task %s: %w", t.ID, errs[c])
				}
				created[i] = t.ID
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ids := make(map[string]bool, n)
	for _, id := range created {
		ids[id] = true
	}
	return ids, nil
}
