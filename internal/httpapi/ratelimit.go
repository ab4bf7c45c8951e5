package httpapi

import (
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// RateLimit caps how many tasks one API key may submit: at most Requests
// in any window of Per. The zero value means no limit.
type RateLimit struct {
	Requests int
	Per      time.Duration
}

// msgRateLimited is the providers' message for code 430.
const msgRateLimited = "Your call frequency is too high. Please try again later."

// limitRate returns a middleware that answers a submit over limit with
// code 430 and a Retry-After header (whole seconds); it must run after
// requireKey, which names the key's owner. Submits refused do not count
// against the key, so a client that retries too early is not locked out
// for longer.
//
// The count lives in this process: behind a load balancer, each instance
// allows a key its own Requests per Per.
func limitRate(limit RateLimit, now func() time.Time, log *slog.Logger) func(http.Handler) http.Handler {
	if limit.Requests <= 0 || limit.Per <= 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	l := &rateLimiter{limit: limit, now: now, keys: map[string]*window{}}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if wait := l.take(ownerFrom(r.Context())); wait > 0 {
				secs := int(math.Ceil(wait.Seconds()))
				w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
				writeError(w, r, log, task.Errorf(task.CodeRateLimited, msgRateLimited))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// rateLimiter is a sliding window log per key owner: the times of the last
// Requests submits it accepted. A submit is accepted when the oldest of
// them is at least Per old, which allows exactly Requests in any window of
// Per (a token bucket would allow up to twice as many in some windows).
// Its memory is bounded: one window per API key, Requests times each.
type rateLimiter struct {
	limit RateLimit
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*window
}

// window is a ring of the times of a key's last accepted submits; next is
// the oldest once the ring is full.
type window struct {
	times []time.Time
	next  int
}

// take counts a submit of owner and returns 0, or returns how long until
// owner may submit again without counting it.
func (l *rateLimiter) take(owner string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.keys[owner]
	if w == nil {
		w = &window{times: make([]time.Time, 0, l.limit.Requests)}
		l.keys[owner] = w
	}
	if len(w.times) < l.limit.Requests {
		w.times = append(w.times, now)
		return 0
	}
	if wait := w.times[w.next].Add(l.limit.Per).Sub(now); wait > 0 {
		return wait
	}
	w.times[w.next] = now
	w.next = (w.next + 1) % len(w.times)
	return 0
}
