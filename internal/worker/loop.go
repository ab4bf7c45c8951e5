package worker

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Backoff of the claim loop while the store fails (the database is away):
// soon enough to resume quickly, slow enough not to flood the log.
const (
	storeRetryMin = 100 * time.Millisecond
	storeRetryMax = 5 * time.Second
)

// Pacing of claims. A claim is a durable transaction, so claims are
// batched under load: the loop waits for a quarter of its slots to be free,
// but takes no more than maxClaim at once, which keeps each claim's
// transaction short. Slots held by attempts that hang free no batch for as
// long as the attempts last, so the loop also claims fewer slots than a
// batch, after a pause since its last claim: signalPause when the store
// signalled new work, which keeps the wait of a fresh item short, and the
// longer backlogPause for work known to be due already, which keeps the
// claims of a backlog batched while the slots turn over one at a time.
const (
	maxClaim     = 256
	signalPause  = 2 * time.Millisecond
	backlogPause = 25 * time.Millisecond
)

// claimLoop is the scheduling the Runner and the Dispatcher share: claim due
// work up to the free slots, hand every item to its own goroutine, and in
// between sleep until the store signals new work, a slot frees, or the next
// item falls due. Its goroutines are owned by run, which waits for them.
type claimLoop[T any] struct {
	kind  string // "task" or "callback", for logs
	slots int
	poll  time.Duration
	// claim claims up to n due items: the loop's one lane, unless lanes
	// is set.
	claim   func(ctx context.Context, n int) ([]T, error)
	lanes   []lane[T]
	nextDue func(ctx context.Context) (time.Time, error)
	ready   <-chan struct{}
	work    func(ctx context.Context, item T)
	logger  *slog.Logger
	now     func() time.Time
}

// lane is a queue the loop claims from. Every claim takes the lanes in
// order, each up to its share of the slots, so that an earlier lane's work
// never waits behind a later one's, and a later lane with a smaller share
// cannot take the slots from an earlier one.
type lane[T any] struct {
	share int // the most slots the lane's items hold at once
	claim func(ctx context.Context, n int) ([]T, error)
}

// slotCount is what a claimLoop holds: items in progress, in all and per
// lane.
type slotCount struct {
	total int
	lanes []int
	// capped marks the lanes that held their whole share at the last
	// claim: the work due then may be theirs, and one of their slots
	// freeing makes it claimable.
	capped []bool
}

// run loops until ctx is cancelled, then waits for the items in progress
// and returns nil. Store errors are logged and retried, never returned: the
// loop has to outlive a database restart.
func (l *claimLoop[T]) run(ctx context.Context) error {
	lanes := l.lanes
	if lanes == nil {
		lanes = []lane[T]{{share: l.slots, claim: l.claim}}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	// Buffered to the slot count so that a finishing goroutine never
	// blocks, even after run stopped listening. It carries the item's lane.
	done := make(chan int, l.slots)
	held := slotCount{lanes: make([]int, len(lanes)), capped: make([]bool, len(lanes))}
	batch := laneBatch(l.slots)
	failures := 0 // consecutive store errors
	// Real time, not l.now, for all of these: they pace a real timer, and
	// an injected clock may stand still.
	var (
		retryAt   time.Time // backing off after store errors until then
		dueAt     time.Time // when work is due next; zero: now
		lastClaim time.Time
		signalled bool // the store signalled new work since the last claim
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		now := time.Now()
		free := l.slots - held.total
		var wake time.Time // zero: no timer, wait for an event
		claim := false
		switch {
		case free == 0:
			// Only a freed slot helps.
		case now.Before(retryAt):
			// Still backing off; a freed slot does not cut it short.
			wake = retryAt
		case !signalled && now.Before(dueAt):
			wake = dueAt
		case held.total > 0 && free < batch:
			pause := backlogPause
			if signalled {
				pause = signalPause
			}
			if wake = lastClaim.Add(pause); !now.Before(wake) {
				claim = true
			}
		default:
			claim = true
		}
		if claim {
			signalled, lastClaim = false, now
			next, err := l.fill(ctx, &wg, done, lanes, &held)
			if ctx.Err() != nil {
				return nil
			}
			dueAt = next
			if err != nil {
				failures++
				wait := backoff(storeRetryMin, storeRetryMax, failures)
				retryAt, dueAt = time.Now().Add(wait), time.Time{}
				l.logger.ErrorContext(ctx, "claim failed", "kind", l.kind, "error", err, "retry_in", wait)
			} else {
				failures = 0
			}
			continue
		}
		ready := l.ready
		if free == 0 || failures > 0 {
			// Full: only freed slots help. Failing: keep the backoff
			// rather than hammer the store on every signal.
			ready = nil
		}
		var tick <-chan time.Time
		if !wake.IsZero() {
			timer.Reset(time.Until(wake))
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case i := <-done:
			held.total--
			held.lanes[i]--
			if held.capped[i] {
				dueAt, held.capped[i] = cappedWake(lanes[i].share, held.lanes[i], dueAt, lastClaim)
			}
		case <-ready:
			signalled = true
		case <-tick:
		}
		if tick != nil {
			timer.Stop()
		}
	}
}

// cappedWake returns when to claim next, instead of dueAt, now that a slot
// freed of a lane that held its whole share at the last claim and now
// holds held of its share: the lane's due work has become claimable. That
// is at once (the zero time) when a batch of the lane's slots is free,
// which ends the lane's cap; until then, a pause after the last claim lets
// more of them free, so that a lane at its share is claimed in batches
// rather than a callback at a time, although other lanes leave room.
func cappedWake(share, held int, dueAt, lastClaim time.Time) (wake time.Time, capped bool) {
	if share-held >= laneBatch(share) {
		return time.Time{}, false
	}
	if paused := lastClaim.Add(backlogPause); !dueAt.IsZero() && paused.Before(dueAt) {
		return paused, true
	}
	return dueAt, true
}

// laneBatch returns how many free slots make a batch for a lane with
// share slots, or the loop with as many: a quarter, at most maxClaim.
func laneBatch(share int) int { return min(max(share/4, 1), maxClaim) }

// fill claims from every lane up to its free slots and starts the items,
// and returns when work is due next. That is at once (the zero time) when a
// lane gave all it was asked for; otherwise nothing more was due, and it is
// when the next item falls due, at most the poll interval from now, and at
// least signalPause, so that work due but not claimable (locked by another
// instance's claim, or of a lane at its share) cannot make the loop spin.
func (l *claimLoop[T]) fill(ctx context.Context, wg *sync.WaitGroup, done chan<- int, lanes []lane[T], held *slotCount) (time.Time, error) {
	more, capped := false, false
	for i, ln := range lanes {
		free := l.slots - held.total
		if free == 0 {
			break
		}
		n := min(free, ln.share-held.lanes[i], maxClaim)
		held.capped[i] = n <= 0
		if n <= 0 {
			capped = true
			continue
		}
		items, err := ln.claim(ctx, n)
		if err != nil {
			return time.Time{}, err
		}
		for _, it := range items {
			held.total++
			held.lanes[i]++
			wg.Go(func() {
				defer func() { done <- i }()
				l.work(ctx, it)
			})
		}
		if len(items) == n {
			more = true
		}
	}
	if more {
		return time.Time{}, nil
	}
	next, err := l.nextDue(ctx)
	if err != nil {
		return time.Time{}, err
	}
	wait := l.poll
	if !next.IsZero() {
		wait = min(max(next.Sub(l.now()), signalPause), l.poll)
		if capped && wait == signalPause {
			// Most likely the capped lane's work: one of its slots
			// freeing is the wake-up, the poll a backstop for the others.
			wait = l.poll
		}
	}
	return time.Now().Add(wait), nil
}

// backoff returns base doubled for every failure after the first, capped
// at limit.
func backoff(base, limit time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
