package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tunehook/tunehook/internal/worker"
)

// Memory is the process's resident memory (VmRSS) around the backlog
// phase's drain. The bench runs every component in one process, so this
// is the whole server's, the receiver's few buffers included; a
// PostgreSQL server's own memory is not.
type Memory struct {
	// Before is taken after the backlog was loaded, before the Dispatcher
	// started.
	Before int64 `json:"before_bytes"`
	// Max is the largest of the samples taken every 100 ms while the
	// Dispatcher drained the backlog.
	Max     int64 `json:"max_bytes"`
	Samples int   `json:"samples"`
}

// measureBacklog measures how the real Dispatcher, with its defaults,
// drains Backlog callbacks scheduled for retry once their receiver is back:
// they are loaded in bulk, each with a failed first attempt and its retry
// due within the last minute, and the clock runs from the Dispatcher's
// start until the receiver has every callback and the store has recorded
// every attempt. The process's memory is sampled meanwhile; the receiver
// keeps a bit per callback, so that its own memory does not grow with the
// backlog.
func measureBacklog(ctx context.Context, e *env) (_ Result, err error) {
	n := e.cfg.Backlog
	rcv, err := startReceiver(n, newBitTally(n), nil)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if serr := rcv.shutdown(); serr != nil {
			err = errors.Join(err, fmt.Errorf("shut down receiver: %w", serr))
		}
	}()
	now := time.Now()
	b, err := newBatch(n, rcv.url, now)
	if err != nil {
		return Result{}, err
	}
	b.Failed, b.DueFrom = true, now.Add(-time.Minute)
	loadStart := time.Now()
	if err := e.load(ctx, b); err != nil {
		return Result{}, err
	}
	loaded := time.Since(loadStart)
	e.cfg.Logger.InfoContext(ctx, "callbacks loaded", "phase", e.phase, "callbacks", n, "took", loaded)
	before, err := rss()
	if err != nil {
		return Result{}, err
	}

	d, err := worker.NewDispatcher(dispatcherConfig(e.store, e.logger))
	if err != nil {
		return Result{}, err
	}
	stopProfile, err := e.profile()
	if err != nil {
		return Result{}, err
	}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampled := make(chan sample, 1)
	go func() { sampled <- sampleRSS(sampleCtx, 100*time.Millisecond) }()
	begin := time.Now()
	stop := start(ctx, d.Run)
	err = rcv.wait(ctx)
	if err == nil {
		err = recorded(ctx, e.store)
	}
	elapsed := time.Since(begin)
	err = errors.Join(err, stop())
	stopSampling()
	peak := <-sampled
	if perr := stopProfile(); perr != nil {
		err = errors.Join(err, perr)
	}
	err = errors.Join(err, peak.err)
	if err != nil {
		return Result{}, err
	}
	r, err := rcv.throughput(elapsed)
	r.Variant = fmt.Sprintf("%d callbacks", n)
	r.Memory = &Memory{Before: before, Max: peak.max, Samples: peak.n}
	r.Ratio, r.What = e.run.ofDeliver(r.PerSecond, fmt.Sprintf("%d callbacks due for their first retry, loaded in %.1f s "+
		"with one INSERT per table; dispatcher defaults; process RSS %s before the drain, at most %s during it; drained",
		n, loaded.Seconds(), mebibytes(before), mebibytes(peak.max)))
	return r, err
}

// sample is the largest of n memory samples, or why sampling failed.
type sample struct {
	max int64
	n   int
	err error
}

// sampleRSS samples the process's RSS every interval until ctx ends.
func sampleRSS(ctx context.Context, interval time.Duration) sample {
	var s sample
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		m, err := rss()
		if err != nil {
			return sample{err: err}
		}
		s.max, s.n = max(s.max, m), s.n+1
		select {
		case <-ctx.Done():
			return s
		case <-tick.C:
		}
	}
}

// rss returns the process's resident set size, VmRSS of
// /proc/self/status: Linux only.
func rss() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read process memory: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		value, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read process memory: VmRSS %q: %w", value, err)
		}
		return kib << 10, nil
	}
	return 0, errors.New("read process memory: no VmRSS in /proc/self/status")
}

// mebibytes formats n bytes in MiB.
func mebibytes(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}
