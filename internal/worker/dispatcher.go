package worker

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/safedial"
	"github.com/tunehook/tunehook/internal/task"
)

// What the Dispatcher reads of a receiver's answer: at most readLimit bytes,
// of which the first keepLimit are stored with the attempt. A longer answer
// is cut, and its connection dropped rather than drained.
const (
	readLimit = 64 << 10
	keepLimit = 1 << 10
)

// defaultRetryDelays is the seed's schedule: retried 3 times, after 1, 5
// and 15 minutes.
var defaultRetryDelays = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute}

// Deferral of a callback whose answering host is at its cap: due again
// when the host is expected to have room, but no sooner than deferMin and
// no later than deferMax.
const (
	deferMin = 250 * time.Millisecond
	deferMax = 5 * time.Second
)

// maxRetryAfter caps the pause a receiver can ask for with Retry-After: a
// wrong header must not hold its callbacks for days.
const maxRetryAfter = time.Hour

// DispatcherConfig configures a Dispatcher. Store and Owner are required;
// the zero value of every other field selects its default.
type DispatcherConfig struct {
	Store task.Store
	// Timeout bounds one attempt, from connecting to the last byte read;
	// default 15s.
	Timeout time.Duration
	// RetryDelays are the pauses before each retry; their number is the
	// number of retries. nil selects 1m, 5m, 15m; an empty non-nil slice
	// means no retries.
	RetryDelays []time.Duration
	// SigningKeys sign callbacks (see tunehook.SignKeys): the current key
	// first, then the keys being rotated out. Every key signs the Standard
	// Webhooks header, so that receivers holding any one of them verify
	// during a rotation; X-Webhook-Signature has room for one signature and
	// carries the first key's only. Empty: callbacks are sent unsigned.
	SigningKeys [][]byte
	// Targets says which addresses callbacks may reach, checked at dial
	// time for every address a host name resolves to. The zero Policy
	// refuses loopback, private, link-local and every other address that
	// is not public: set AllowPrivate, or Allow, to reach them (tests on
	// loopback do). Unused when Transport is set.
	Targets safedial.Policy
	// Transport sends the callbacks; nil selects Targets.Transport, tuned
	// to Concurrency and PerHost, which ignores proxy settings. A
	// Transport set here replaces the Targets check: keeping callbacks
	// off private networks is then its job.
	Transport http.RoundTripper
	// Owner is the lease owner name of this process.
	Owner string
	// Concurrency is how many callbacks the Dispatcher holds at once:
	// attempts in flight, and callbacks claimed and waiting for their
	// host; default 4096. Retries hold at most half of them, so that first
	// attempts always find room. An attempt in flight costs three
	// goroutines and a connection with its buffers, about 40 KiB of memory
	// without TLS (1,000 attempts hanging on loopback added 45 MiB of RSS,
	// the receiving side included), and no CPU while it waits for an
	// answer; a slot unused costs nothing. A thousand receivers that never
	// answer hang an attempt each, for about 40 MiB, and leave three
	// thousand slots to the receivers that answer: with 1,024 slots, the 24
	// left were too few for a healthy stream on PostgreSQL, whose claims
	// and commits each take a round trip. Each attempt holds a file
	// descriptor; Go raises the soft limit on them to the hard one at
	// start, and an attempt that cannot have one fails and is retried.
	Concurrency int
	// PerHost caps the attempts in flight to one host (the host:port of
	// the callback URL), so that a slow receiver with a large backlog
	// cannot take every slot; default 256. Most deployments send every
	// callback to one receiver, whose attempts take longer as the CPU
	// fills: with a cap of 64 the deliver bench left the receiver waiting
	// (6,600–8,300 callbacks/s on PostgreSQL, 6,700–7,000 on SQLite, with
	// callbacks deferred for a host that answered in milliseconds), with
	// 256 it made 10,200–10,900 and 9,400–9,500, and 512 did no better.
	// A host that has not answered yet, or did not answer its last
	// attempt, gets one attempt at a time: a receiver that hangs holds one
	// slot. A callback claimed for a host at its cap waits for its turn
	// if the host should get to it within a quarter of LeaseMargin, going
	// by the speed of its attempts; otherwise, or if its turn does not
	// come in that time, it is handed back to the store, unattempted: due
	// again once the host should have room (250 ms to 5 s), or once the
	// attempt of a host that does not answer has timed out.
	PerHost int
	// LeaseMargin is added to Timeout to lease a callback, so that a lease
	// always outlives its attempt; default 15s.
	LeaseMargin time.Duration
	// PollInterval bounds the sleep between claims; default 1s.
	PollInterval time.Duration
	Logger       *slog.Logger     // default: discard
	Now          func() time.Time // default: time.Now
	// Jitter returns a number in [0, 1); a retry or a deferral waits its
	// delay d plus d*0.1*Jitter(). Default: math/rand/v2.Float64.
	Jitter func() float64
	// OnAttempt, when set, is called after every attempt made, once it is
	// recorded (or its recording failed): for metrics. It must be quick
	// and safe for concurrent use.
	OnAttempt func(AttemptEvent)
}

// AttemptEvent is a callback attempt a Dispatcher made.
type AttemptEvent struct {
	TaskID     string
	CallbackID string
	Stage      task.Stage
	// State is the callback's state after the attempt: delivered,
	// exhausted, or pending when the attempt failed and a retry follows.
	State      task.DeliveryState
	StatusCode int // 0 when no answer arrived
	Took       time.Duration
}

// Dispatcher delivers callbacks: it claims due ones, POSTs each to its URL,
// and records the attempt, which either delivers the callback, schedules
// its next retry or exhausts it.
type Dispatcher struct {
	cfg    DispatcherConfig
	client *http.Client
	hosts  *hostLimiter
	rec    *recorder
	loop   claimLoop[*task.Callback]
}

// NewDispatcher checks cfg, fills in its defaults and returns a Dispatcher.
func NewDispatcher(cfg DispatcherConfig) (*Dispatcher, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("new dispatcher: store is required")
	case cfg.Owner == "":
		return nil, errors.New("new dispatcher: owner is required")
	case cfg.Timeout < 0, cfg.Concurrency < 0, cfg.PerHost < 0, cfg.LeaseMargin < 0, cfg.PollInterval < 0:
		return nil, errors.New("new dispatcher: timeout, concurrency, per-host cap, lease margin and poll interval must not be negative")
	case slices.ContainsFunc(cfg.RetryDelays, func(d time.Duration) bool { return d < 0 }):
		return nil, fmt.Errorf("new dispatcher: negative retry delay in %v", cfg.RetryDelays)
	case slices.ContainsFunc(cfg.SigningKeys, func(k []byte) bool { return len(k) == 0 }):
		return nil, errors.New("new dispatcher: empty signing key")
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, 15*time.Second)
	if cfg.RetryDelays == nil {
		cfg.RetryDelays = defaultRetryDelays
	}
	cfg.RetryDelays = slices.Clone(cfg.RetryDelays)
	cfg.SigningKeys = slices.Clone(cfg.SigningKeys)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 4096)
	cfg.PerHost = cmp.Or(cfg.PerHost, 64)
	cfg.LeaseMargin = cmp.Or(cfg.LeaseMargin, 15*time.Second)
	cfg.PollInterval = cmp.Or(cfg.PollInterval, time.Second)
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	if cfg.Transport == nil {
		cfg.Transport = cfg.Targets.Transport(safedial.TransportOptions{Conns: cfg.Concurrency, PerHost: cfg.PerHost})
	}
	d := &Dispatcher{
		cfg: cfg,
		client: &http.Client{
			Transport: cfg.Transport,
			// A receiver must answer at its callBackUrl; following a
			// redirect would also let it point tunehook anywhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		hosts: &hostLimiter{
			perHost: cfg.PerHost,
			// A callback waiting for its host holds its lease: it must
			// start early enough for the attempt and its recording
			// (within LeaseMargin/2) to end before the lease does.
			hold:     cfg.LeaseMargin / 4,
			timeout:  cfg.Timeout,
			maxQueue: cfg.Concurrency,
			now:      cfg.Now,
			hosts:    make(map[string]*hostState),
			pruneAt:  minPruneAt,
		},
		// An attempt is recorded while its lease lasts, through a
		// database restart if need be: an attempt that is not recorded is
		// made again, and a delivered one would reach the receiver twice.
		// The lease outlives the attempt by LeaseMargin; half of it stays
		// on the safe side.
		rec: newRecorder(cfg.Store, cfg.Owner, cfg.LeaseMargin/2, cfg.Concurrency),
	}
	lease := cfg.Timeout + cfg.LeaseMargin
	claimer := func(lane task.Lane) func(context.Context, int) ([]*task.Callback, error) {
		return func(ctx context.Context, n int) ([]*task.Callback, error) {
			return cfg.Store.ClaimCallbacks(ctx, cfg.Owner, lane, n, lease)
		}
	}
	d.loop = claimLoop[*task.Callback]{
		kind:  "callback",
		slots: cfg.Concurrency,
		poll:  cfg.PollInterval,
		lanes: []lane[*task.Callback]{
			{share: cfg.Concurrency, claim: claimer(task.LaneFirst)},
			{share: max(cfg.Concurrency/2, 1), claim: claimer(task.LaneRetry)},
		},
		nextDue: cfg.Store.NextCallbackDue,
		ready:   cfg.Store.CallbackReady(),
		work:    d.deliver,
		logger:  cfg.Logger,
		now:     cfg.Now,
	}
	return d, nil
}

// Run delivers callbacks until ctx is cancelled. Attempts in flight are
// finished and recorded, not cut (which would send them again), so Run
// returns at most Timeout after ctx is cancelled.
//
// Two group commits of attempts run at once: while one waits for its
// transaction, the attempts that end meanwhile are recorded by the other.
// PostgreSQL runs them side by side (each record is its callback's own
// row, under its own lease), which delivered about a tenth more per
// second in the deliver bench; on SQLite the second waits for the one
// writer, as a single one would.
func (d *Dispatcher) Run(ctx context.Context) error {
	return runCommitting(ctx, d.loop.run, d.rec.attempts.run, d.rec.attempts.run, d.rec.deferrals.run)
}

// deliver makes one attempt of cb, when its host has room for it, and
// records it; otherwise it hands cb back to the store for later.
func (d *Dispatcher) deliver(ctx context.Context, cb *task.Callback) {
	host := hostKey(cb.URL)
	if ok, delay := d.hosts.acquire(ctx, host); !ok {
		d.postpone(ctx, cb, host, delay)
		return
	}
	// Detached from ctx: shutdown lets the attempt finish.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Timeout)
	a, retryAfter := d.attempt(actx, cb)
	cancel()
	d.hosts.release(host, a.Duration, a.StatusCode != 0)

	state, next := d.outcome(a, retryAfter)
	err := d.rec.record(task.AttemptRecord{Attempt: a, State: state, Next: next})
	if d.cfg.OnAttempt != nil {
		d.cfg.OnAttempt(AttemptEvent{TaskID: cb.TaskID, CallbackID: cb.ID, Stage: cb.Stage, State: state, StatusCode: a.StatusCode, Took: a.Duration})
	}

	log := d.cfg.Logger
	attrs := []any{
		"task_id", cb.TaskID, "callback_id", cb.ID, "stage", cb.Stage, "host", host, "attempt", a.N,
		"status_code", a.StatusCode, "took", a.Duration,
	}
	switch {
	case errors.Is(err, task.ErrLeaseLost):
		// The lease expired before the attempt was recorded and another
		// instance may have sent it again: the receiver can see a duplicate.
		log.WarnContext(ctx, "callback lease lost", append(attrs, "error", a.Error, "record_error", err)...)
	case err != nil:
		// Unrecorded, the attempt is made again once the lease expires.
		log.ErrorContext(ctx, "callback attempt not recorded", append(attrs, "error", a.Error, "record_error", err)...)
	case state == task.DeliveryDelivered:
		log.InfoContext(ctx, "callback delivered", attrs...)
	case state == task.DeliveryPending:
		log.WarnContext(ctx, "callback attempt failed", append(attrs, "error", a.Error, "next_attempt_at", next)...)
	default:
		log.ErrorContext(ctx, "callback exhausted", append(attrs, "error", a.Error)...)
	}
}

// postpone hands cb back to the store unattempted, due after delay and its
// jitter: its host has no room for it, or shutdown began (delay 0: due at
// once, for whoever runs next).
func (d *Dispatcher) postpone(ctx context.Context, cb *task.Callback, host string, delay time.Duration) {
	until := d.cfg.Now().Add(d.jittered(delay))
	err := d.rec.deferCallback(task.Deferral{CallbackID: cb.ID, Until: until})
	attrs := []any{"task_id", cb.TaskID, "callback_id", cb.ID, "stage", cb.Stage, "host", host}
	if err != nil {
		// Nothing is lost: the callback is claimed again once its lease
		// expires.
		d.cfg.Logger.WarnContext(ctx, "callback deferral not recorded", append(attrs, "error", err)...)
		return
	}
	// At debug level: a host at its cap can have its callbacks deferred by
	// the thousand.
	d.cfg.Logger.DebugContext(ctx, "callback deferred", append(attrs, "until", until)...)
}

// outcome returns the state a callback moves to after attempt a, and when
// it is due again if it stays pending: after the retry's delay with its
// jitter, or after retryAfter, the pause the receiver asked for, if that
// is longer.
func (d *Dispatcher) outcome(a task.Attempt, retryAfter time.Duration) (task.DeliveryState, time.Time) {
	if a.Error == "" {
		return task.DeliveryDelivered, time.Time{}
	}
	if a.N > len(d.cfg.RetryDelays) {
		return task.DeliveryExhausted, time.Time{}
	}
	return task.DeliveryPending, d.cfg.Now().Add(max(d.jittered(d.cfg.RetryDelays[a.N-1]), retryAfter))
}

// jittered returns delay plus up to a tenth of it, at random, so that
// callbacks that failed or were deferred together do not come back
// together.
func (d *Dispatcher) jittered(delay time.Duration) time.Duration {
	return delay + time.Duration(float64(delay)*0.1*d.cfg.Jitter())
}

// attempt POSTs cb once. An empty Error in the result means success;
// retryAfter is the pause a 429 or 503 answer asked for, if any.
func (d *Dispatcher) attempt(ctx context.Context, cb *task.Callback) (a task.Attempt, retryAfter time.Duration) {
	a = task.Attempt{CallbackID: cb.ID, N: cb.Attempts + 1, StartedAt: d.cfg.Now()}
	defer func() { a.Duration = d.cfg.Now().Sub(a.StartedAt) }()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cb.URL, bytes.NewReader(cb.Body))
	if err != nil {
		a.Error = fmt.Sprintf("invalid callback URL: %v", err)
		return a, 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tunehook/"+tunehook.Version)
	tunehook.SignKeys(req.Header, d.cfg.SigningKeys, cb.ID, cb.TaskID, a.StartedAt, cb.Body)
	resp, err := d.client.Do(req)
	if err != nil {
		a.Error = describeError(err, d.cfg.Timeout)
		return a, 0
	}
	// Closing before EOF drops the connection instead of draining an
	// answer that is too long.
	defer resp.Body.Close()
	a.StatusCode = resp.StatusCode
	// A read error (the timeout in the middle of the answer) changes
	// nothing: the status line already decided the attempt.
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, readLimit+1))
	a.Response = answer[:min(len(answer), keepLimit)]

	switch code := resp.StatusCode; {
	case code >= 200 && code <= 299:
		// The receiver took the callback; an answer cut short does not
		// undo that, and failing the attempt would only send it again.
	case code >= 300 && code <= 399:
		a.Error = fmt.Sprintf("redirect not followed: %d", code)
		if loc := resp.Header.Get("Location"); loc != "" {
			a.Error += " to " + loc
		}
	default:
		a.Error = fmt.Sprintf("HTTP %d", code)
		if wait, ok := parseRetryAfter(resp, d.cfg.Now()); ok {
			a.Error += fmt.Sprintf(" (Retry-After %ds)", wait/time.Second)
			retryAfter = wait
		}
	}
	return a, retryAfter
}

// parseRetryAfter returns the pause a 429 or 503 answer asks for with its
// Retry-After header, in delta-seconds or as an HTTP date, in whole
// seconds (rounded up) and at most maxRetryAfter. ok is false for other
// answers, and when the header is missing or does not parse: it is
// advice, and advice that cannot be read is ignored.
func parseRetryAfter(resp *http.Response, now time.Time) (wait time.Duration, ok bool) {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0, false
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		// Capped before the conversion, which could overflow.
		return time.Duration(min(secs, uint64(maxRetryAfter/time.Second))) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	secs := math.Ceil(max(at.Sub(now), 0).Seconds())
	return min(time.Duration(secs)*time.Second, maxRetryAfter), true
}

// describeError turns a failed request into a short class and detail for
// the attempt's record, such as "connection refused".
func describeError(err error, timeout time.Duration) string {
	var (
		netErr   net.Error
		dnsErr   *net.DNSError
		certErr  *tls.CertificateVerificationError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return fmt.Sprintf("timeout after %v", timeout)
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return fmt.Sprintf("DNS lookup failed: no such host %s", dnsErr.Name)
		}
		return fmt.Sprintf("DNS lookup failed: %v", dnsErr.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "server closed the connection without answering"
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &alertErr):
		return fmt.Sprintf("TLS error: %v", unwrapURLError(err))
	}
	return unwrapURLError(err).Error()
}

// unwrapURLError drops the `Post "URL": ` prefix of client errors: the URL
// is recorded with the callback already.
func unwrapURLError(err error) error {
	if u, ok := errors.AsType[*url.Error](err); ok {
		return u.Err
	}
	return err
}

// hostKey returns the host the per-host cap counts a callback URL under:
// its host:port, lower-cased, with the scheme's default port made explicit,
// so that every spelling of one receiver shares one cap. A URL that does
// not parse is a key of its own; its attempt fails at once anyway.
func hostKey(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" { // url.Parse lower-cases the scheme
			port = "443"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// hostLimiter caps the attempts in flight to each host. A host gets
// perHost attempts at once while it answers; a host that has not answered
// yet, or whose last attempt got no answer (a timeout, a refused or reset
// connection), gets one at a time, a probe: a receiver that hangs holds one
// slot of the Dispatcher, not perHost.
//
// A callback whose host has no attempt free waits in the host's queue for
// one, briefly, if the queue has room; otherwise it is deferred. An
// answering host's queue has room for as many callbacks as the host
// finishes in hold, going by the average duration of its attempts (Little's
// law): a fast receiver keeps enough claimed callbacks queued to stay busy
// between two claims, while a slow one cannot hold many slots with
// callbacks that wait. hold is as long as a callback's lease lets it wait
// (a quarter of the lease margin, 3.75 s by default): a shorter one
// turned callbacks away that would have had their turn in time. With a
// hold of 1 s, the deliver bench's receiver, whose attempts took longer
// while the backlog's first claims were written and its connections
// opened, had hundreds of callbacks deferred although it answered all
// along: a write each, a claim again, and a tail of half a second or more
// at the end, 6,600–7,000 callbacks/s on SQLite instead of 9,200–9,600.
type hostLimiter struct {
	perHost  int
	hold     time.Duration // the longest wait for an answering host
	timeout  time.Duration // of an attempt
	maxQueue int
	now      func() time.Time

	mu      sync.Mutex
	hosts   map[string]*hostState
	pruneAt int // prune hosts when there are as many
}

// hostState is what a hostLimiter knows of a host.
type hostState struct {
	inFlight int
	// queue holds a channel per callback waiting, oldest first; closing
	// one hands its callback an attempt.
	queue []chan struct{}
	// answering is set while the last attempt that ended got an answer.
	answering bool
	avg       time.Duration // moving average of the attempts' durations; 0: none ended yet
	lastStart time.Time     // of the last attempt started
	idleSince time.Time     // when inFlight last fell to 0
}

// Bounds of a hostLimiter's memory: hosts idle for hostMemory are
// forgotten (they start over as probed), checked whenever the number of
// hosts known has doubled, from minPruneAt on.
const (
	hostMemory = time.Minute
	minPruneAt = 1024
)

// probeHold is how long after a probe began a callback may wait for it: a
// receiver that answers at all answers its first attempt in much less,
// while the callbacks of one that hangs must not hold slots for long; those
// that come later are deferred at once.
const probeHold = 200 * time.Millisecond

// acquire takes an attempt of host for a callback: at once if the host has
// one free, or after a wait in the host's queue. If not, it returns false
// and how long to defer the callback: see deferral; 0 when ctx was
// cancelled while the callback waited, for it to be handed back due at
// once.
func (l *hostLimiter) acquire(ctx context.Context, host string) (ok bool, deferFor time.Duration) {
	l.mu.Lock()
	now := l.now()
	h := l.host(host, now)
	if h.inFlight < l.limit(h) && len(h.queue) == 0 {
		l.start(h, now)
		l.mu.Unlock()
		return true, 0
	}
	hold := l.hold
	if !h.answering {
		// Until probeHold after the probe began: a probe that has not
		// been answered by then is not worth waiting for, and a callback
		// waiting for it would hold a slot for nothing.
		hold = min(hold, h.lastStart.Add(probeHold).Sub(now))
	}
	if hold <= 0 || len(h.queue) >= l.queueLimit(h, hold) {
		defer l.mu.Unlock()
		return false, l.deferral(h, now)
	}
	turn := make(chan struct{})
	h.queue = append(h.queue, turn)
	l.mu.Unlock()

	timer := time.NewTimer(hold)
	defer timer.Stop()
	select {
	case <-turn:
		return true, 0
	case <-timer.C:
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now = l.now()
	select {
	case <-turn:
		// Handed an attempt while giving up.
		if ctx.Err() == nil {
			return true, 0
		}
		l.vacate(h, now)
	default:
		h.queue = slices.DeleteFunc(h.queue, func(c chan struct{}) bool { return c == turn })
	}
	if ctx.Err() != nil {
		return false, 0
	}
	return false, l.deferral(h, now)
}

// release ends an attempt to host that took took; answered tells whether
// the receiver answered it.
func (l *hostLimiter) release(host string, took time.Duration, answered bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hosts[host]
	if h.avg == 0 {
		h.avg = max(took, time.Nanosecond)
	} else {
		// A moving average over about the last eight attempts: it
		// follows a host that slows down or recovers within a few.
		h.avg += (took - h.avg) / 8
	}
	h.answering = answered
	l.vacate(h, l.now())
}

// host returns the state of host, new if need be; l.mu is held.
func (l *hostLimiter) host(host string, now time.Time) *hostState {
	if h := l.hosts[host]; h != nil {
		return h
	}
	if len(l.hosts) >= l.pruneAt {
		for k, h := range l.hosts {
			if h.inFlight == 0 && now.Sub(h.idleSince) >= hostMemory {
				delete(l.hosts, k)
			}
		}
		l.pruneAt = max(2*len(l.hosts), minPruneAt)
	}
	h := &hostState{}
	l.hosts[host] = h
	return h
}

// limit returns how many attempts host h may have in flight.
func (l *hostLimiter) limit(h *hostState) int {
	if h.answering {
		return l.perHost
	}
	return 1
}

// start counts an attempt to h in; l.mu is held.
func (l *hostLimiter) start(h *hostState, now time.Time) {
	h.inFlight++
	h.lastStart = now
}

// vacate frees an attempt of h and hands the attempts free to the
// callbacks in its queue; l.mu is held.
func (l *hostLimiter) vacate(h *hostState, now time.Time) {
	h.inFlight--
	for h.inFlight < l.limit(h) && len(h.queue) > 0 {
		close(h.queue[0])
		h.queue = h.queue[1:]
		l.start(h, now)
	}
	if h.inFlight == 0 {
		h.idleSince = now
	}
}

// queueLimit returns how many callbacks may wait up to hold for host h;
// l.mu is held. Until an attempt to h has ended, nothing is known of its
// speed, and it gets the benefit of the doubt: its callbacks wait rather
// than be deferred, which costs a write each.
func (l *hostLimiter) queueLimit(h *hostState, hold time.Duration) int {
	if h.avg == 0 {
		return l.maxQueue
	}
	n := int64(l.limit(h)) * int64(hold) / int64(max(h.avg, time.Millisecond))
	return int(min(n, int64(l.maxQueue)))
}

// deferral returns how long to defer a callback of h that found no room;
// l.mu is held. A host being probed has room once the probe ends: at the
// latest when it times out, which is when the callback comes back, so that
// the callbacks of a receiver that hangs are deferred once per probe
// rather than every few seconds. An answering host has room once the
// attempts in flight and the callbacks queued are done, going by the
// average duration of its attempts: deferred for that long, a callback
// neither comes back to a host still full, which would cost another
// deferral, nor long after the host went idle.
func (l *hostLimiter) deferral(h *hostState, now time.Time) time.Duration {
	if !h.answering {
		return max(h.lastStart.Add(l.timeout).Sub(now), deferMin)
	}
	drain := time.Duration(int64(h.inFlight+len(h.queue)) * int64(h.avg) / int64(l.limit(h)))
	return min(max(drain, deferMin), deferMax)
}
