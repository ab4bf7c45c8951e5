package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/httpapi"
	"github.com/tunehook/tunehook/internal/media"
	"github.com/tunehook/tunehook/internal/payload"
)

// api is the real HTTP API on a loopback listener, with a client for it.
type api struct {
	url    string // of POST /api/v1/generate
	body   []byte // a valid generate request
	client *http.Client
	close  func() error
}

// startAPI serves the real API on e's store. No stage runs: the text stage
// is an hour away and no Runner is started. The client keeps up to conns
// idle keep-alive connections.
func startAPI(e *env, conns int) (_ *api, err error) {
	dir, err := os.MkdirTemp("", "tunehook-bench-media-")
	if err != nil {
		return nil, fmt.Errorf("create media dir: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	mediaStore, err := media.NewDir(dir)
	if err != nil {
		return nil, err
	}
	ln, err := listen()
	if err != nil {
		return nil, err
	}
	base := "http://" + ln.Addr().String()
	h, err := httpapi.NewServer(httpapi.Config{
		Store:     e.store,
		Media:     mediaStore,
		Links:     payload.Links{PublicURL: base},
		Keys:      []string{benchKey},
		TextDelay: time.Hour,
		Logger:    e.logger,
	})
	if err != nil {
		return nil, errors.Join(err, ln.Close())
	}
	body, err := json.Marshal(newRequest("https://receiver.example/callback", "a calm piano song about the sea"))
	if err != nil {
		return nil, errors.Join(err, ln.Close())
	}
	shutdown := serve(ln, h)
	transport := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
	}
	return &api{
		url:    base + "/api/v1/generate",
		body:   body,
		client: &http.Client{Transport: transport},
		close: func() error {
			transport.CloseIdleConnections()
			err := shutdown()
			if err != nil {
				err = fmt.Errorf("shut down api: %w", err)
			}
			return errors.Join(err, os.RemoveAll(dir))
		},
	}, nil
}

// measureSubmit measures POST /api/v1/generate in a closed loop:
// Concurrency clients send requests over loopback keep-alive connections
// to the real API for Duration, each as soon as its last is answered.
func measureSubmit(ctx context.Context, e *env) (_ Result, err error) {
	a, err := startAPI(e, e.cfg.Concurrency)
	if err != nil {
		return Result{}, err
	}
	defer func() { err = errors.Join(err, a.close()) }()

	stopProfile, err := e.profile()
	if err != nil {
		return Result{}, err
	}
	// Every client keeps its own latencies and errors: no lock between
	// the clients, so that the bench measures the server, not itself.
	latencies := make([][]time.Duration, e.cfg.Concurrency)
	failures := make([]int, e.cfg.Concurrency)
	firstErrs := make([]error, e.cfg.Concurrency)
	begin := time.Now()
	end := begin.Add(e.cfg.Duration)
	var wg sync.WaitGroup
	for i := range e.cfg.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(end) {
				t0 := time.Now()
				if err := a.submit(ctx); err != nil {
					failures[i]++
					if firstErrs[i] == nil {
						firstErrs[i] = err
					}
					continue
				}
				latencies[i] = append(latencies[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if err := stopProfile(); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	return submitted(Result{
		Variant: fmt.Sprintf("closed loop, %d clients", e.cfg.Concurrency),
		What:    fmt.Sprintf("POST /api/v1/generate over loopback, %d keep-alive clients, each sending when answered", e.cfg.Concurrency),
	}, elapsed, slices.Concat(latencies...), sum(failures), cmp.Or(firstErrs...))
}

// measureSubmitRate measures POST /api/v1/generate in an open loop:
// requests are sent at SubmitRate per second for Duration on a fixed
// schedule, each from its own goroutine, so that a slow answer never
// holds back the next request. A request's latency runs from the moment
// it was scheduled, not sent: a generator that falls behind adds its delay
// to the latencies instead of hiding it (coordinated omission).
func measureSubmitRate(ctx context.Context, e *env) (_ Result, err error) {
	rate := e.cfg.SubmitRate
	n := max(1, int(rate*e.cfg.Duration.Seconds()))
	// Idle connections for a second's worth of requests: more than can be
	// in flight unless answers take a second.
	a, err := startAPI(e, int(rate))
	if err != nil {
		return Result{}, err
	}
	defer func() { err = errors.Join(err, a.close()) }()

	// A second at the rate first, not measured: the clients' and the
	// store's connections are opened, and their statements prepared, on
	// demand, which is the start's cost, not the rate's.
	warm := max(1, int(rate))
	warmErrs := make([]error, warm)
	pace(ctx, warm, rate, time.Now(), func(i int, _ time.Time) { warmErrs[i] = a.submit(ctx) })
	if err := cmp.Or(ctx.Err(), errors.Join(warmErrs...)); err != nil {
		return Result{}, fmt.Errorf("warm up: %w", err)
	}

	stopProfile, err := e.profile()
	if err != nil {
		return Result{}, err
	}
	latencies := make([]time.Duration, n)
	errs := make([]error, n)
	var inFlight, peak atomic.Int64
	begin := time.Now()
	pace(ctx, n, rate, begin, func(i int, due time.Time) {
		raise(&peak, inFlight.Add(1))
		errs[i] = a.submit(ctx)
		latencies[i] = time.Since(due)
		inFlight.Add(-1)
	})
	elapsed := time.Since(begin)
	if err := stopProfile(); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	var answered []time.Duration
	failed := 0
	var firstErr error
	for i, err := range errs {
		if err != nil {
			failed++
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		answered = append(answered, latencies[i])
	}
	return submitted(Result{
		Variant: fmt.Sprintf("open loop, %g/s", rate),
		What: fmt.Sprintf("POST /api/v1/generate over loopback at %g requests/s on a fixed schedule, latency from the scheduled time, "+
			"after a second at that rate not measured; at most %d in flight", rate, peak.Load()),
	}, elapsed, answered, failed, firstErr)
}

// submitted fills r in with the outcome of a submit phase: the latencies
// of the answered requests and the failed ones. More than one failed
// request in a thousand fails the phase.
func submitted(r Result, elapsed time.Duration, latencies []time.Duration, failed int, firstErr error) (Result, error) {
	r.Count, r.Errors, r.Elapsed = len(latencies), failed, elapsed
	r.PerSecond = float64(len(latencies)) / elapsed.Seconds()
	r.Latency = summarize(latencies)
	if total := len(latencies) + failed; failed*1000 > total {
		return r, fmt.Errorf("%d of %d requests failed, more than 0.1%%; one of them: %w", failed, total, firstErr)
	}
	return r, nil
}

// raise raises peak to n if n is greater.
func raise(peak *atomic.Int64, n int64) {
	for {
		m := peak.Load()
		if n <= m || peak.CompareAndSwap(m, n) {
			return
		}
	}
}

// sum returns the sum of ns.
func sum(ns []int) int {
	s := 0
	for _, n := range ns {
		s += n
	}
	return s
}

// submit posts one generate request and checks that its answer is a
// created task: HTTP 200 with code 200 and a task ID in the envelope.
func (a *api) submit(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(a.body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+benchKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read to the end, so that the connection is reused.
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	var created tunehook.Envelope[tunehook.TaskCreated]
	if err := json.Unmarshal(answer, &created); err != nil {
		return fmt.Errorf("HTTP %d: decode answer: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || created.Code != http.StatusOK || created.Data.TaskID == "" {
		return fmt.Errorf("HTTP %d, code %d: %s", resp.StatusCode, created.Code, created.Msg)
	}
	return nil
}
