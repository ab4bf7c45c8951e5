package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/task"
)

// stallLimit is how long a phase waits without progress before it gives
// up: a failed attempt is retried only after a minute, so a callback that
// has not arrived by then will not arrive in time to measure.
const stallLimit = 30 * time.Second

// listen opens a listener on a free loopback port.
func listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	return ln, nil
}

// serve serves h on ln until the returned function closes the server.
// Close, not Shutdown: a phase stops its server once its clients are done,
// and Shutdown would wait seconds for the connections a client dialed but
// never used.
func serve(ln net.Listener, h http.Handler) (shutdown func() error) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	return func() error {
		err := srv.Close()
		if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return err
	}
}

// callbackKey identifies a callback as a receiver de-duplicates it.
type callbackKey struct {
	taskID string
	stage  task.Stage
}

// decodeCallback reads a callback body, as a receiver does, and returns
// its key and its size in bytes.
func decodeCallback(body io.Reader) (callbackKey, int, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return callbackKey{}, len(b), err
	}
	var cb tunehook.Callback
	if err := json.Unmarshal(b, &cb); err != nil {
		return callbackKey{}, len(b), err
	}
	if cb.Data.TaskID == "" {
		return callbackKey{}, len(b), errors.New("no task_id")
	}
	return callbackKey{cb.Data.TaskID, task.Stage(cb.Data.CallbackType)}, len(b), nil
}

// tally notes which callbacks arrived. Its methods are called under the
// receiver's lock.
type tally interface {
	// add notes that key arrived at at and reports whether it had arrived
	// before; ok is false for a key the tally cannot hold.
	add(key callbackKey, at time.Time) (seen, ok bool)
	// len returns how many different callbacks arrived.
	len() int
	// times returns when each callback first arrived, or nil if the tally
	// does not keep times.
	times() map[callbackKey]time.Time
}

// mapTally keeps every callback's first arrival time.
type mapTally map[callbackKey]time.Time

func (m mapTally) add(key callbackKey, at time.Time) (seen, ok bool) {
	if _, seen = m[key]; !seen {
		m[key] = at
	}
	return seen, true
}

func (m mapTally) len() int { return len(m) }

func (m mapTally) times() map[callbackKey]time.Time { return maps.Clone(m) }

// bitTally keeps one bit per callback of the tasks that bulkTaskID
// numbers: enough to find duplicates and misses among a million callbacks
// without the map's hundred bytes per callback, which would show in the
// process memory the backlog phase measures.
type bitTally struct {
	bits  []uint64
	n     int // callbacks it can hold
	count int
}

func newBitTally(n int) *bitTally { return &bitTally{bits: make([]uint64, (n+63)/64), n: n} }

func (b *bitTally) add(key callbackKey, _ time.Time) (seen, ok bool) {
	i, err := strconv.ParseUint(key.taskID, 16, 64)
	stage := slices.Index(stages[:], key.stage)
	if err != nil || stage < 0 || i >= uint64(b.n) {
		return false, false
	}
	c := int(i)*callbacksPerTask + stage
	if c >= b.n {
		return false, false
	}
	word, bit := c/64, uint64(1)<<(c%64)
	if seen = b.bits[word]&bit != 0; !seen {
		b.bits[word] |= bit
		b.count++
	}
	return seen, true
}

func (b *bitTally) len() int { return b.count }

func (b *bitTally) times() map[callbackKey]time.Time { return nil }

// receiver is the callback receiver of the bench: a plain net/http server
// on loopback that notes each callback, keyed by task_id and callbackType
// as the seed tells receivers to de-duplicate, and answers 200 at once.
type receiver struct {
	url      string
	shutdown func() error
	want     int           // different callbacks expected
	done     chan struct{} // closed once want different callbacks arrived

	mu       sync.Mutex
	arrivals tally
	// refused, when set, are the callbacks answered 503 once: the storm's
	// receiver is down at each callback's first attempt.
	refused  tally
	requests int // every request, duplicates and bad bodies included
	refusals int // requests answered 503
	bad      int // bodies that are not a callback
	bytes    int // of every body
}

// startReceiver starts a receiver that notes arrivals in arrivals and
// expects want different callbacks. With refused set, it answers each
// callback's first request with 503, noted there, and takes it only when
// it comes again.
func startReceiver(want int, arrivals, refused tally) (*receiver, error) {
	ln, err := listen()
	if err != nil {
		return nil, err
	}
	r := &receiver{
		url:      "http://" + ln.Addr().String() + "/callback",
		want:     want,
		done:     make(chan struct{}),
		arrivals: arrivals,
		refused:  refused,
	}
	r.shutdown = serve(ln, r)
	return r, nil
}

// ServeHTTP takes one callback.
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	key, size, err := decodeCallback(req.Body)
	status := http.StatusOK
	r.mu.Lock()
	r.requests++
	r.bytes += size
	if err == nil && r.refused != nil {
		seen, ok := r.refused.add(key, at)
		switch {
		case !ok:
			err = errors.New("unknown callback")
		case !seen:
			r.refusals++
			status = http.StatusServiceUnavailable
		}
	}
	if err == nil && status == http.StatusOK {
		seen, ok := r.arrivals.add(key, at)
		switch {
		case !ok:
			err = errors.New("unknown callback")
		case !seen && r.arrivals.len() == r.want:
			close(r.done)
		}
	}
	if err != nil {
		r.bad++
	}
	r.mu.Unlock()
	// A bad body is answered 200 too: a retry a minute later would not
	// help the measurement, and the count of bad bodies fails the phase.
	w.WriteHeader(status)
}

// counts returns the different callbacks taken, all requests, and the bad
// bodies seen so far.
func (r *receiver) counts() (unique, requests, bad int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.arrivals.len(), r.requests, r.bad
}

// wait waits until every expected callback arrived. It fails when ctx ends
// or when no new callback arrived for stallLimit.
func (r *receiver) wait(ctx context.Context) error {
	tick := time.NewTicker(stallLimit)
	defer tick.Stop()
	last := -1
	for {
		select {
		case <-r.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		n, _, _ := r.counts()
		if n == last {
			return fmt.Errorf("callbacks stalled at %d of %d", n, r.want)
		}
		last = n
	}
}

// arrived returns when each callback first arrived, or nil if the
// receiver's tally keeps no times.
func (r *receiver) arrived() map[callbackKey]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.arrivals.times()
}

// meanBody returns the mean size of the bodies received, in bytes.
func (r *receiver) meanBody() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.requests == 0 {
		return 0
	}
	return r.bytes / r.requests
}

// check returns an error when a callback arrived twice, not at all, or
// with a body that is not a callback; errs counts them.
func (r *receiver) check() (errs int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	unique := r.arrivals.len()
	dups := r.requests - unique - r.bad - r.refusals
	missing := r.want - unique
	if dups == 0 && missing == 0 && r.bad == 0 {
		return 0, nil
	}
	return dups + missing + r.bad, fmt.Errorf("receiver got %d of %d callbacks, %d duplicates, %d bad bodies",
		unique, r.want, dups, r.bad)
}

// throughput returns the row of a phase that timed its receiver getting
// every callback in elapsed: the callbacks it got, per second, and its
// errors, with check's error.
func (r *receiver) throughput(elapsed time.Duration) (Result, error) {
	errs, err := r.check()
	unique, _, _ := r.counts()
	return Result{Count: unique, Errors: errs, Elapsed: elapsed, PerSecond: float64(unique) / elapsed.Seconds()}, err
}

// drained waits until next, a store's NextTaskDue or NextCallbackDue,
// reports no unfinished work, asking every poll.
func drained(ctx context.Context, next func(context.Context) (time.Time, error), poll time.Duration) error {
	for {
		due, err := next(ctx)
		if err != nil {
			return err
		}
		if due.IsZero() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}
