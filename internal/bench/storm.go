package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tunehook/tunehook/internal/task"
	"github.com/tunehook/tunehook/internal/worker"
)

// stormBucket is the width of the storm phase's histograms.
const stormBucket = 100 * time.Millisecond

// Storm is what the storm phase saw of the retries over time, each in
// buckets of 100 ms from its first event on.
type Storm struct {
	// Arrivals are the retries as the receiver took them.
	Arrivals Histogram `json:"arrivals"`
	// Scheduled are the times the retries were due, as the Dispatcher
	// scheduled them: delay plus jitter after the failed attempt.
	Scheduled Histogram `json:"scheduled"`
	// ZeroJitter are the times the retries would have been due without
	// jitter, computed from the failed attempts' ends.
	ZeroJitter Histogram `json:"zero_jitter"`
}

// Histogram counts events in buckets of time.
type Histogram struct {
	Bucket time.Duration `json:"bucket_ns"`
	Counts []int         `json:"counts"`
}

// newHistogram counts ts in buckets of width from the earliest on.
func newHistogram(ts []time.Time, width time.Duration) Histogram {
	h := Histogram{Bucket: width}
	if len(ts) == 0 {
		return h
	}
	origin := slices.MinFunc(ts, time.Time.Compare)
	for _, t := range ts {
		i := int(t.Sub(origin) / width)
		if i >= len(h.Counts) {
			h.Counts = append(h.Counts, make([]int, i+1-len(h.Counts))...)
		}
		h.Counts[i]++
	}
	return h
}

// Peak returns the count of the fullest bucket.
func (h Histogram) Peak() int {
	if len(h.Counts) == 0 {
		return 0
	}
	return slices.Max(h.Counts)
}

// Mean returns the mean count per bucket, from the first event to the
// last.
func (h Histogram) Mean() float64 {
	if len(h.Counts) == 0 {
		return 0
	}
	return float64(sum(h.Counts)) / float64(len(h.Counts))
}

// String summarizes h as its peak and mean.
func (h Histogram) String() string {
	return fmt.Sprintf("peak %d, mean %.1f per %v over %.1f s", h.Peak(), h.Mean(), h.Bucket,
		(time.Duration(len(h.Counts)) * h.Bucket).Seconds())
}

// measureStorm measures how the retries of callbacks that failed together
// spread out: Storm callbacks, loaded in bulk and all due, go to a
// receiver that is down at each one's first attempt (503, without
// Retry-After) and back before its first retry, one of StormDelays later
// plus the Dispatcher's jitter. Every callback must arrive exactly once,
// at its first retry.
func measureStorm(ctx context.Context, e *env) (_ Result, err error) {
	n := e.cfg.Storm
	rcv, err := startReceiver(n, mapTally{}, mapTally{})
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if serr := rcv.shutdown(); serr != nil {
			err = errors.Join(err, fmt.Errorf("shut down receiver: %w", serr))
		}
	}()
	b, err := newBatch(n, rcv.url, time.Now())
	if err != nil {
		return Result{}, err
	}
	if err := e.load(ctx, b); err != nil {
		return Result{}, err
	}

	obs := &observer{Store: e.store, records: make(map[string][]recordNote, n)}
	cfg := dispatcherConfig(obs, e.quiet())
	cfg.RetryDelays = e.cfg.StormDelays
	d, err := worker.NewDispatcher(cfg)
	if err != nil {
		return Result{}, err
	}
	stopProfile, err := e.profile()
	if err != nil {
		return Result{}, err
	}
	begin := time.Now()
	stop := start(ctx, d.Run)
	err = rcv.wait(ctx)
	if err == nil {
		err = recorded(ctx, e.store)
	}
	elapsed := time.Since(begin)
	err = errors.Join(err, stop())
	if perr := stopProfile(); perr != nil {
		err = errors.Join(err, perr)
	}
	if err != nil {
		return Result{}, err
	}

	r, err := rcv.throughput(elapsed)
	delay := e.cfg.StormDelays[0]
	var scheduled, zeroJitter []time.Time
	wrong := 0
	for _, recs := range obs.records {
		if len(recs) != 2 || recs[0].n != 1 || recs[0].state != task.DeliveryPending ||
			recs[1].n != 2 || recs[1].state != task.DeliveryDelivered {
			wrong++
			continue
		}
		scheduled = append(scheduled, recs[0].next)
		zeroJitter = append(zeroJitter, recs[0].ended.Add(delay))
	}
	if missing := n - len(obs.records); wrong > 0 || missing > 0 {
		r.Errors += wrong + missing
		err = errors.Join(err, fmt.Errorf("%d of %d callbacks not delivered at their first retry, %d never attempted",
			wrong, n, missing))
	}
	var arrivals []time.Time
	for _, at := range rcv.arrived() {
		arrivals = append(arrivals, at)
	}
	s := &Storm{
		Arrivals:   newHistogram(arrivals, stormBucket),
		Scheduled:  newHistogram(scheduled, stormBucket),
		ZeroJitter: newHistogram(zeroJitter, stormBucket),
	}
	r.Storm = s
	r.What = fmt.Sprintf("%d callbacks refused (503) at their first attempt, taken at their retry %v later (+ up to 10%% jitter); "+
		"retries arrived: %v; due as scheduled: %v; due without jitter (computed): %v",
		n, delay, s.Arrivals, s.Scheduled, s.ZeroJitter)
	return r, err
}
