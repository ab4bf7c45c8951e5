package worker

import (
	"context"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// maxGroup is the most writes one group commit holds: under load, as many
// as are queued during a commit, which keeps each transaction short.
const maxGroup = 256

// recorder makes the writes of a Dispatcher under its leases in group
// commits: the attempts it records and the callbacks it defers. A durable
// commit costs a disk flush (SQLite) or a round trip and a WAL flush
// (PostgreSQL), whatever it holds, and a commit per attempt would cap
// delivery at a few thousand per second; the writes would also queue one by
// one for the store, behind each other. The recorder commits whatever
// writes are queued at once, the attempts in one Store.RecordAttempts and
// the deferrals in one Store.DeferCallbacks: a write that finds it idle is
// committed alone and without delay, while under load the writes queued
// during one commit make up the next.
type recorder struct {
	store task.Store
	owner string
	// within bounds how long a write is retried (see persist), from when
	// it was queued.
	within time.Duration
	queue  chan write
}

// write is an attempt to record or a callback to defer, waiting for its
// commit; exactly one of record and deferral is set.
type write struct {
	record   *task.AttemptRecord
	deferral *task.Deferral
	queued   time.Time
	done     chan error // gets the write's result, buffered
}

// newRecorder returns a recorder of owner's writes to store, for at most
// slots writes waiting at once.
func newRecorder(store task.Store, owner string, within time.Duration, slots int) *recorder {
	return &recorder{store: store, owner: owner, within: within, queue: make(chan write, slots)}
}

// record records attempt rec with the next group commit; see wait.
func (r *recorder) record(rec task.AttemptRecord) error {
	return r.wait(write{record: &rec})
}

// deferCallback defers a callback with the next group commit; see wait.
func (r *recorder) deferCallback(d task.Deferral) error {
	return r.wait(write{deferral: &d})
}

// wait queues w and waits for its commit. It returns nil once w is
// stored, an error wrapping task.ErrLeaseLost when the lease on its
// callback was lost, or the store's error when w could not be stored
// within the recorder's time. It needs run to be running.
func (r *recorder) wait(w write) error {
	w.queued, w.done = time.Now(), make(chan error, 1)
	r.queue <- w
	return <-w.done
}

// run commits the writes queued until stop is closed, which must wait
// until no write is left waiting. Commits go on after ctx is cancelled, as
// persist describes: the attempts of a shutdown are recorded.
func (r *recorder) run(ctx context.Context, stop <-chan struct{}) {
	group := make([]write, 0, maxGroup)
	for {
		select {
		case w := <-r.queue:
			group = append(group[:0], w)
		case <-stop:
			return
		}
	fill:
		for len(group) < maxGroup {
			select {
			case w := <-r.queue:
				group = append(group, w)
			default:
				break fill
			}
		}
		r.commit(ctx, group)
	}
}

// commit stores group: its attempts first, whose records are the more
// urgent (an attempt not recorded is made again), then its deferrals.
func (r *recorder) commit(ctx context.Context, group []write) {
	var (
		records   []task.AttemptRecord
		deferrals []task.Deferral
		recW      []write
		defW      []write
	)
	for _, w := range group {
		if w.record != nil {
			records, recW = append(records, *w.record), append(recW, w)
		} else {
			deferrals, defW = append(deferrals, *w.deferral), append(defW, w)
		}
	}
	r.transact(ctx, recW, func(ctx context.Context) ([]error, error) {
		return r.store.RecordAttempts(ctx, r.owner, records)
	})
	r.transact(ctx, defW, func(ctx context.Context) ([]error, error) {
		return r.store.DeferCallbacks(ctx, r.owner, deferrals)
	})
}

// transact runs op, one transaction of the writes ws, retried through a
// database restart for as long as the oldest of them may be, and hands
// every write its result.
func (r *recorder) transact(ctx context.Context, ws []write, op func(context.Context) ([]error, error)) {
	if len(ws) == 0 {
		return
	}
	var results []error
	err := persist(ctx, r.within-time.Since(ws[0].queued), func(ctx context.Context) error {
		var err error
		results, err = op(ctx)
		return err
	})
	for i, w := range ws {
		if err != nil {
			w.done <- err
		} else {
			w.done <- results[i]
		}
	}
}
