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

// claimLoop is the scheduling the Runner and the Dispatcher share: claim due
// work up to the free slots, hand every item to its own goroutine, and in
// between sleep until the store signals new work, a slot frees, or the next
// item falls due. Its goroutines are owned by run, which waits for them.
type claimLoop[T any] struct {
	kind    string // "task" or "callback", for logs
	slots   int
	poll    time.Duration
	claim   func(ctx context.Context, n int) ([]T, error)
	nextDue func(ctx context.Context) (time.Time, error)
	ready   <-chan struct{}
	work    func(ctx context.Context, item T)
	logger  *slog.Logger
	now     func() time.Time
}

// run loops until ctx is cancelled, then waits for the items in progress
// and returns nil. Store errors are logged and retried, never returned: the
// loop has to outlive a database restart.
func (l *claimLoop[T]) run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Buffered to the slot count so that a finishing goroutine never
	// blocks, even after run stopped listening.
	done := make(chan struct{}, l.slots)
	busy := 0
	failures := 0 // consecutive store errors
	var retryAt time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()

	// Claims are batched under load: a claim is a durable transaction, and
	// claiming each time a single slot frees would cost one per item.
	// Waiting for a quarter of the slots keeps claims few without letting
	// the work in flight drain.
	batch := max(l.slots/4, 1)
	for {
		wait := time.Duration(-1) // negative: no timer, wait for a signal
		canClaim := busy == 0 || l.slots-busy >= batch
		if canClaim {
			if d := time.Until(retryAt); d > 0 {
				// Still backing off; a freed slot does not cut it short.
				wait = d
			} else {
				var err error
				wait, err = l.fill(ctx, &wg, done, &busy)
				if ctx.Err() != nil {
					return nil
				}
				if err != nil {
					failures++
					wait = backoff(storeRetryMin, storeRetryMax, failures)
					// Real time, not l.now: this paces a real timer, and
					// an injected clock may stand still.
					retryAt = time.Now().Add(wait)
					l.logger.ErrorContext(ctx, "claim failed", "kind", l.kind, "error", err, "retry_in", wait)
				} else {
					failures = 0
				}
			}
		}
		ready := l.ready
		if !canClaim || failures > 0 {
			// Too full to claim: only freed slots help. Failing: keep the
			// backoff rather than hammer the store on every signal.
			ready = nil
		}
		var tick <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			busy--
		case <-ready:
		case <-tick:
		}
		if wait >= 0 {
			timer.Stop()
		}
	}
}

// fill claims as many items as there are free slots and starts them. When
// it claimed fewer than it asked for, nothing more is due now, and it
// returns how long to sleep before the next item is due (at most the poll
// interval); when the slots are full it returns a negative wait.
func (l *claimLoop[T]) fill(ctx context.Context, wg *sync.WaitGroup, done chan<- struct{}, busy *int) (time.Duration, error) {
	free := l.slots - *busy
	items, err := l.claim(ctx, free)
	if err != nil {
		return 0, err
	}
	for _, it := range items {
		*busy++
		wg.Go(func() {
			defer func() { done <- struct{}{} }()
			l.work(ctx, it)
		})
	}
	if len(items) == free {
		return -1, nil
	}
	next, err := l.nextDue(ctx)
	if err != nil {
		return 0, err
	}
	if next.IsZero() {
		return l.poll, nil
	}
	return min(max(next.Sub(l.now()), 0), l.poll), nil
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
