package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// ceilingClients are the concurrencies the ceiling is measured at: the
// Dispatcher's per-host cap (every callback of the deliver phase goes to
// one receiver), its in-flight cap before isolation, and its in-flight cap
// since.
var ceilingClients = []int{32, 64, 1024}

// measureCeiling measures what this machine can do without tunehook: a
// plain net/http client POSTs a callback body to a receiver like the
// bench's own (it reads and decodes the JSON, and answers 200), over
// loopback keep-alive connections, at each of ceilingClients for
// Duration. Nothing is stored. The best rate is the ceiling that the
// deliver and backlog phases are compared with.
func measureCeiling(ctx context.Context, e *env) (_ []Result, err error) {
	ln, err := listen()
	if err != nil {
		return nil, err
	}
	var bad atomic.Int64
	shutdown := serve(ln, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, _, err := decodeCallback(req.Body); err != nil {
			bad.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer func() {
		if serr := shutdown(); serr != nil {
			err = errors.Join(err, fmt.Errorf("shut down receiver: %w", serr))
		}
	}()
	batch, err := newBatch(1, "http://"+ln.Addr().String()+"/callback", time.Now())
	if err != nil {
		return nil, err
	}
	// The first stage's body: one track, the size of an average callback.
	body := []byte(strings.ReplaceAll(batch.Bodies[1], templateID, task.NewTaskID()))
	url := batch.Template.CallbackURL

	stopProfile, err := e.profile()
	if err != nil {
		return nil, err
	}
	var rows []Result
	best := -1
	for _, clients := range ceilingClients {
		r, err := postFor(ctx, url, body, clients, e.cfg.Duration)
		if err != nil {
			return rows, errors.Join(err, stopProfile())
		}
		r.Variant = fmt.Sprintf("%d clients", clients)
		r.What = fmt.Sprintf("plain net/http client to a loopback receiver that decodes the JSON, %d B body, "+
			"%d keep-alive clients; nothing stored", len(body), clients)
		rows = append(rows, r)
		if best < 0 || r.PerSecond > rows[best].PerSecond {
			best = len(rows) - 1
		}
	}
	if err := stopProfile(); err != nil {
		return rows, err
	}
	rows[best].What += "; the ceiling: the best of the " + fmt.Sprint(len(rows)) + " rows"
	e.run.ceiling = rows[best].PerSecond
	if n := bad.Load(); n > 0 {
		return rows, fmt.Errorf("receiver got %d bodies that are not a callback", n)
	}
	return rows, nil
}

// postFor POSTs body to url from clients goroutines for d and counts the
// 200 answers.
func postFor(ctx context.Context, url string, body []byte, clients int, d time.Duration) (Result, error) {
	transport := &http.Transport{
		MaxIdleConns:        clients,
		MaxIdleConnsPerHost: clients,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	var ok, failed atomic.Int64
	var firstErr error
	var once sync.Once
	begin := time.Now()
	end := begin.Add(d)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(end) {
				if err := post(ctx, client, url, body); err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	r := Result{
		Count:     int(ok.Load()),
		Errors:    int(failed.Load()),
		Elapsed:   elapsed,
		PerSecond: float64(ok.Load()) / elapsed.Seconds(),
	}
	if total := ok.Load() + failed.Load(); failed.Load()*1000 > total {
		return r, fmt.Errorf("%d of %d requests failed, more than 0.1%%; the first: %w", failed.Load(), total, firstErr)
	}
	return r, nil
}

// post sends one callback body and wants 200 back.
func post(ctx context.Context, client *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read to the end, so that the connection is reused.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}
