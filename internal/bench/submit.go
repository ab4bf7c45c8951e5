package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/httpapi"
	"github.com/tunehook/tunehook/internal/media"
	"github.com/tunehook/tunehook/internal/payload"
)

// measureSubmit measures POST /api/v1/generate: Concurrency clients send
// requests over loopback keep-alive connections to the real API for
// Duration. No stage runs: the text stage is an hour away and no Runner is
// started. More than one failed request in a thousand fails the phase.
func measureSubmit(ctx context.Context, e *env) (_ Result, err error) {
	dir, err := os.MkdirTemp("", "tunehook-bench-media-")
	if err != nil {
		return Result{}, fmt.Errorf("create media dir: %w", err)
	}
	defer os.RemoveAll(dir)
	mediaStore, err := media.NewDir(dir)
	if err != nil {
		return Result{}, err
	}
	ln, err := listen()
	if err != nil {
		return Result{}, err
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
		ln.Close()
		return Result{}, err
	}
	shutdown := serve(ln, h)
	defer func() {
		if serr := shutdown(); serr != nil {
			err = errors.Join(err, fmt.Errorf("shut down api: %w", serr))
		}
	}()

	body, err := json.Marshal(newRequest("https://receiver.example/callback", "a calm piano song about the sea"))
	if err != nil {
		return Result{}, err
	}
	transport := &http.Transport{
		MaxIdleConns:        e.cfg.Concurrency,
		MaxIdleConnsPerHost: e.cfg.Concurrency,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	url := base + "/api/v1/generate"

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
				if err := submit(ctx, client, url, body); err != nil {
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

	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	failed := 0
	for _, n := range failures {
		failed += n
	}
	r := Result{
		Count:     len(all),
		Errors:    failed,
		Elapsed:   elapsed,
		PerSecond: float64(len(all)) / elapsed.Seconds(),
		Latency:   summarize(all),
		What:      fmt.Sprintf("POST /api/v1/generate over loopback, %d keep-alive clients", e.cfg.Concurrency),
	}
	if total := len(all) + failed; failed*1000 > total {
		i := slices.IndexFunc(firstErrs, func(err error) bool { return err != nil })
		return r, fmt.Errorf("%d of %d requests failed, more than 0.1%%; one of them: %w", failed, total, firstErrs[i])
	}
	return r, nil
}

// submit posts one generate request and checks that its answer is a
// created task: HTTP 200 with code 200 and a task ID in the envelope.
func submit(ctx context.Context, client *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+benchKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
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
