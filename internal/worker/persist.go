package worker

import (
	"context"
	"errors"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// Pacing of a store write that persist retries: a database restart takes
// a second or two, so the first retries come quickly.
const (
	persistRetryMin = 100 * time.Millisecond
	persistRetryMax = 2 * time.Second
)

// persist runs op, a store write made under a lease, until it succeeds,
// the lease is lost, or within has passed. Finished work (a rendered stage,
// a delivered attempt) is worth keeping through a database restart: given
// up, the stage would be rendered again and the callback sent again once
// the lease expired. Each try gets at most storeTimeout; the tries go on
// after shutdown began, but no new try starts once ctx is cancelled, so a
// database that stays away cannot hold the process.
func persist(ctx context.Context, within time.Duration, op func(context.Context) error) error {
	deadline := time.Now().Add(within)
	for failures := 1; ; failures++ {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		err := op(tctx)
		cancel()
		wait := backoff(persistRetryMin, persistRetryMax, failures)
		if err == nil || errors.Is(err, task.ErrLeaseLost) || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
	}
}
