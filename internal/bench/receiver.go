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

// receiver is the callback receiver of the bench: a plain net/http server
// on loopback that answers 200 at once and notes when each callback first
// arrived, keyed by task_id and callbackType, as the seed tells receivers
// to de-duplicate.
type receiver struct {
	url      string
	shutdown func() error
	want     int           // unique callbacks expected
	done     chan struct{} // closed once want unique callbacks arrived

	mu       sync.Mutex
	arrivals map[callbackKey]time.Time
	requests int // every request, duplicates and bad bodies included
	bad      int // bodies that are not a callback
	bytes    int // of every body
}

// startReceiver starts a receiver that expects want unique callbacks.
func startReceiver(want int) (*receiver, error) {
	ln, err := listen()
	if err != nil {
		return nil, err
	}
	r := &receiver{
		url:      "http://" + ln.Addr().String() + "/callback",
		want:     want,
		done:     make(chan struct{}),
		arrivals: make(map[callbackKey]time.Time, want),
	}
	r.shutdown = serve(ln, r)
	return r, nil
}

// ServeHTTP takes one callback.
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(req.Body)
	var cb tunehook.Callback
	if err == nil {
		err = json.Unmarshal(body, &cb)
	}
	r.mu.Lock()
	r.requests++
	r.bytes += len(body)
	key := callbackKey{cb.Data.TaskID, task.Stage(cb.Data.CallbackType)}
	switch _, dup := r.arrivals[key]; {
	case err != nil || key.taskID == "":
		r.bad++
	case dup:
	default:
		r.arrivals[key] = at
		if len(r.arrivals) == r.want {
			close(r.done)
		}
	}
	r.mu.Unlock()
	// Answered 200 even for a bad body: a retry a minute later would not
	// help the measurement, and the count of bad bodies fails the phase.
	w.WriteHeader(http.StatusOK)
}

// counts returns the unique callbacks, all requests, and the bad bodies
// seen so far.
func (r *receiver) counts() (unique, requests, bad int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.arrivals), r.requests, r.bad
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

// arrived returns when each callback first arrived.
func (r *receiver) arrived() map[callbackKey]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.arrivals)
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
// with a body that is not a callback; errors counts them.
func (r *receiver) check() (errs int, err error) {
	unique, requests, bad := r.counts()
	dups := requests - unique - bad
	missing := r.want - unique
	if dups == 0 && missing == 0 && bad == 0 {
		return 0, nil
	}
	return dups + missing + bad, fmt.Errorf("receiver got %d of %d callbacks, %d duplicates, %d bad bodies",
		unique, r.want, dups, bad)
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
