package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// measureIsolation measures the latency of a healthy receiver while
// Hanging receivers hold attempts that run into the timeout: each hanging
// receiver gets a task of HangingCallbacks callbacks, all first attempts,
// and once their attempts are in flight the first latency level streams
// tasks to the healthy receiver for Duration. The Dispatcher has its
// defaults, the attempt timeout aside when Timeout is set. Its p99 is
// compared with the unloaded p99 of the latency phase's first level. The
// phase ends once the hanging attempts in flight have timed out, at most
// the timeout after they began.
func measureIsolation(ctx context.Context, e *env) (_ Result, err error) {
	n, per := e.cfg.Hanging, e.cfg.HangingCallbacks
	// A listener per hanging receiver and both ends of every attempt,
	// with room for the rest.
	if err := ensureFiles(uint64(n + 2*n*per + 1024)); err != nil {
		return Result{}, err
	}
	h, err := startHanging(n)
	if err != nil {
		return Result{}, err
	}
	defer func() { err = errors.Join(err, h.close()) }()
	p, err := startPipeline(ctx, e, e.run.stages, e.cfg.Timeout, e.quiet())
	if err != nil {
		return Result{}, err
	}
	defer func() {
		if serr := p.stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("workers: %w", serr))
		}
	}()

	prompt := "a calm piano song about the sea"
	if per == 1 {
		prompt += " tunehook:fail:501"
	}
	now := time.Now()
	for _, url := range h.urls {
		t := newTask(newRequest(url, prompt), now)
		if err := e.store.CreateTask(ctx, t); err != nil {
			return Result{}, fmt.Errorf("create task %s: %w", t.ID, err)
		}
	}
	if err := h.settle(ctx); err != nil {
		return Result{}, err
	}
	stopProfile, err := e.profile()
	if err != nil {
		return Result{}, err
	}
	atStart := h.open.Load()
	sampled := make(chan int64)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	go func() { sampled <- h.least(sampleCtx) }()
	r, err := p.stream(ctx, e, levels[0])
	stopSampling()
	least := <-sampled
	if perr := stopProfile(); perr != nil {
		err = errors.Join(err, perr)
	}
	r.Variant = fmt.Sprintf("%d hanging receivers", n)
	timeout := "the default"
	if e.cfg.Timeout > 0 {
		timeout = e.cfg.Timeout.String()
	}
	r.What = fmt.Sprintf("%s; meanwhile %d receivers that never answer got %d callbacks each (attempt timeout %s): "+
		"%d of their attempts in flight at the start, at least %d throughout",
		r.What, n, per, timeout, atStart, least)
	if r.Latency != nil && e.run.unloadedP99 > 0 {
		r.Ratio = float64(r.Latency.P99) / float64(e.run.unloadedP99)
		r.What += fmt.Sprintf("; p99 %.2fx the unloaded p99 (%s)", r.Ratio, millis(e.run.unloadedP99))
	}
	return r, err
}

// hanging are receivers that accept connections, read what comes and
// never answer: every attempt to them runs into the Dispatcher's timeout.
type hanging struct {
	urls []string
	lns  []net.Listener
	// open counts the connections open, which are the attempts in flight:
	// the Dispatcher keeps no idle connection to a receiver that never
	// answered.
	open     atomic.Int64
	accepted atomic.Int64
	wg       sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startHanging starts n hanging receivers, each on its own loopback port,
// which makes it a host of its own for the Dispatcher's per-host cap.
func startHanging(n int) (*hanging, error) {
	h := &hanging{conns: make(map[net.Conn]struct{})}
	for range n {
		ln, err := listen()
		if err != nil {
			return nil, errors.Join(err, h.close())
		}
		h.lns = append(h.lns, ln)
		h.urls = append(h.urls, "http://"+ln.Addr().String()+"/callback")
		h.wg.Go(func() { h.accept(ln) })
	}
	return h, nil
}

// accept takes ln's connections until ln is closed.
func (h *hanging) accept(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			conn.Close()
			return
		}
		h.conns[conn] = struct{}{}
		h.mu.Unlock()
		h.open.Add(1)
		h.accepted.Add(1)
		h.wg.Go(func() {
			// Until the client gives up, or close.
			_, _ = io.Copy(io.Discard, conn)
			h.open.Add(-1)
			h.mu.Lock()
			delete(h.conns, conn)
			h.mu.Unlock()
			conn.Close()
		})
	}
}

// settle waits until the hanging receivers stop getting new connections:
// every attempt the Dispatcher will start for now is in flight.
func (h *hanging) settle(ctx context.Context) error {
	const quiet = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(ctx, stallLimit)
	defer cancel()
	tick := time.NewTicker(quiet)
	defer tick.Stop()
	last := int64(-1)
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the hanging attempts: %w", ctx.Err())
		case <-tick.C:
		}
		n := h.accepted.Load()
		if n > 0 && n == last {
			return nil
		}
		last = n
	}
}

// least samples the open connections every 100 ms until ctx ends and
// returns the fewest it saw.
func (h *hanging) least(ctx context.Context) int64 {
	least := h.open.Load()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return min(least, h.open.Load())
		case <-tick.C:
			least = min(least, h.open.Load())
		}
	}
}

// close closes the listeners and the connections still open, and waits
// for their goroutines.
func (h *hanging) close() error {
	var errs []error
	for _, ln := range h.lns {
		errs = append(errs, ln.Close())
	}
	h.mu.Lock()
	h.closed = true
	for conn := range h.conns {
		conn.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
	return errors.Join(errs...)
}
