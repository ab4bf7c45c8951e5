package worker

import (
	"context"
	"sync"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// maxGroup is the most writes one group commit holds: under load, as many
// as are queued during a commit, which keeps each transaction short.
const maxGroup = 256

// groupCommit makes writes under leases in group commits, each a batch
// that op stores in one transaction. A durable commit costs a disk flush
// (SQLite) or a round trip and a WAL flush (PostgreSQL), whatever it holds,
// and a commit per write would cap the Runner and the Dispatcher at a few
// thousand writes per second; the writes would also queue one by one for
// the store, behind each other. A groupCommit commits whatever writes are
// queued at once: a write that finds it idle is committed alone and without
// delay, while under load the writes queued during one commit make up the
// next.
type groupCommit[W any] struct {
	// op stores a batch in one transaction, as Store.RecordAttempts does:
	// a result per write, or err for the whole batch.
	op func(ctx context.Context, batch []W) (results []error, err error)
	// within bounds how long a write is retried (see persist), from when
	// it was queued.
	within time.Duration
	queue  chan queued[W]
}

// queued is a write waiting for its commit.
type queued[W any] struct {
	w      W
	queued time.Time
	done   chan error // gets the write's result, buffered
}

// runCommitting runs loop, a claim loop whose items write through the
// group commits, and the group commits beside it; it stops them once loop
// has returned, which it does once every item has its result, so that no
// write is left waiting.
func runCommitting(ctx context.Context, loop func(context.Context) error, commits ...func(context.Context, <-chan struct{})) error {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, run := range commits {
		wg.Go(func() { run(ctx, stop) })
	}
	defer wg.Wait()
	defer close(stop)
	return loop(ctx)
}

// newGroupCommit returns a groupCommit of op for at most slots writes
// waiting at once.
func newGroupCommit[W any](within time.Duration, slots int, op func(context.Context, []W) ([]error, error)) *groupCommit[W] {
	return &groupCommit[W]{op: op, within: within, queue: make(chan queued[W], slots)}
}

// write queues w and waits for its commit. It returns nil once w is
// stored, an error wrapping task.ErrLeaseLost when the lease it was made
// under was lost, or the store's error when w could not be stored within
// the groupCommit's time. It needs run to be running.
func (g *groupCommit[W]) write(w W) error {
	q := queued[W]{w: w, queued: time.Now(), done: make(chan error, 1)}
	g.queue <- q
	return <-q.done
}

// run commits the writes queued until stop is closed, which must wait
// until no write is left waiting. Commits go on after ctx is cancelled, as
// persist describes: the work of a shutdown is stored.
func (g *groupCommit[W]) run(ctx context.Context, stop <-chan struct{}) {
	group := make([]queued[W], 0, maxGroup)
	batch := make([]W, 0, maxGroup)
	for {
		select {
		case q := <-g.queue:
			group = append(group[:0], q)
		case <-stop:
			return
		}
	fill:
		for len(group) < maxGroup {
			select {
			case q := <-g.queue:
				group = append(group, q)
			default:
				break fill
			}
		}
		batch = batch[:0]
		for _, q := range group {
			batch = append(batch, q.w)
		}
		g.commit(ctx, group, batch)
	}
}

// commit runs op on batch, the writes of group, retried through a database
// restart for as long as the oldest of them may be, and hands every write
// its result.
func (g *groupCommit[W]) commit(ctx context.Context, group []queued[W], batch []W) {
	var results []error
	err := persist(ctx, g.within-time.Since(group[0].queued), func(ctx context.Context) error {
		var err error
		results, err = g.op(ctx, batch)
		return err
	})
	for i, q := range group {
		if err != nil {
			q.done <- err
		} else {
			q.done <- results[i]
		}
	}
}

// recorder makes the writes of a Dispatcher under its leases: the attempts
// it records and the callbacks it defers, each kind in group commits of
// its own.
type recorder struct {
	attempts  *groupCommit[task.AttemptRecord]
	deferrals *groupCommit[task.Deferral]
}

// newRecorder returns a recorder of owner's writes to store, retried for
// within, for at most slots writes of each kind waiting at once.
func newRecorder(store task.Store, owner string, within time.Duration, slots int) *recorder {
	return &recorder{
		attempts: newGroupCommit(within, slots, func(ctx context.Context, rs []task.AttemptRecord) ([]error, error) {
			return store.RecordAttempts(ctx, owner, rs)
		}),
		deferrals: newGroupCommit(within, slots, func(ctx context.Context, ds []task.Deferral) ([]error, error) {
			return store.DeferCallbacks(ctx, owner, ds)
		}),
	}
}

// record records attempt rec with the next group commit; see
// groupCommit.write.
func (r *recorder) record(rec task.AttemptRecord) error { return r.attempts.write(rec) }

// deferCallback defers a callback with the next group commit; see
// groupCommit.write.
func (r *recorder) deferCallback(d task.Deferral) error { return r.deferrals.write(d) }
