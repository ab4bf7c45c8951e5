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
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"syscall"
	"time"

	"github.com/tunehook/tunehook"
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
	// SigningKey signs callbacks (see tunehook.Sign); nil sends them
	// unsigned.
	SigningKey []byte
	// Transport sends the callbacks; nil selects a tuned *http.Transport
	// that ignores proxy settings.
	Transport http.RoundTripper
	// Owner is the lease owner name of this process.
	Owner string
	// Concurrency is how many attempts are in flight at once; default 64.
	Concurrency int
	// LeaseMargin is added to Timeout to lease a callback, so that a lease
	// always outlives its attempt; default 15s.
	LeaseMargin time.Duration
	// PollInterval bounds the sleep between claims; default 1s.
	PollInterval time.Duration
	Logger       *slog.Logger     // default: discard
	Now          func() time.Time // default: time.Now
	// Jitter returns a number in [0, 1); a retry waits its delay d plus
	// d*0.1*Jitter(). Default: math/rand/v2.Float64.
	Jitter func() float64
}

// Dispatcher delivers callbacks: it claims due ones, POSTs each to its URL,
// and records the attempt, which either delivers the callback, schedules
// its next retry or exhausts it.
type Dispatcher struct {
	cfg    DispatcherConfig
	client *http.Client
	loop   claimLoop[*task.Callback]
}

// NewDispatcher checks cfg, fills in its defaults and returns a Dispatcher.
func NewDispatcher(cfg DispatcherConfig) (*Dispatcher, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("new dispatcher: store is required")
	case cfg.Owner == "":
		return nil, errors.New("new dispatcher: owner is required")
	case cfg.Timeout < 0, cfg.Concurrency < 0, cfg.LeaseMargin < 0, cfg.PollInterval < 0:
		return nil, errors.New("new dispatcher: timeout, concurrency, lease margin and poll interval must not be negative")
	case slices.ContainsFunc(cfg.RetryDelays, func(d time.Duration) bool { return d < 0 }):
		return nil, fmt.Errorf("new dispatcher: negative retry delay in %v", cfg.RetryDelays)
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, 15*time.Second)
	if cfg.RetryDelays == nil {
		cfg.RetryDelays = defaultRetryDelays
	}
	cfg.RetryDelays = slices.Clone(cfg.RetryDelays)
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 64)
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
		cfg.Transport = newTransport(cfg.Concurrency)
	}
	d := &Dispatcher{
		cfg: cfg,
		client: &http.Client{
			Transport: cfg.Transport,
			// A receiver must answer at its callBackUrl; following a
			// redirect would also let it point tunehook anywhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	lease := cfg.Timeout + cfg.LeaseMargin
	d.loop = claimLoop[*task.Callback]{
		kind:  "callback",
		slots: cfg.Concurrency,
		poll:  cfg.PollInterval,
		claim: func(ctx context.Context, n int) ([]*task.Callback, error) {
			return cfg.Store.ClaimCallbacks(ctx, cfg.Owner, n, lease)
		},
		nextDue: cfg.Store.NextCallbackDue,
		ready:   cfg.Store.CallbackReady(),
		work:    d.deliver,
		logger:  cfg.Logger,
		now:     cfg.Now,
	}
	return d, nil
}

// newTransport returns the default transport: no proxy from the
// environment (callbacks go straight to their receiver), and enough idle
// connections per host for a receiver that gets every callback.
func newTransport(conns int) *http.Transport {
	return &http.Transport{
		DialContext:            (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           2 * conns,
		MaxIdleConnsPerHost:    conns,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: readLimit,
	}
}

// Run delivers callbacks until ctx is cancelled. Attempts in flight are
// finished and recorded, not cut (which would send them again), so Run
// returns at most Timeout after ctx is cancelled.
func (d *Dispatcher) Run(ctx context.Context) error { return d.loop.run(ctx) }

// deliver makes one attempt of cb and records it.
func (d *Dispatcher) deliver(ctx context.Context, cb *task.Callback) {
	// Detached from ctx: shutdown lets the attempt finish.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Timeout)
	a := d.attempt(actx, cb)
	cancel()

	state, next := d.outcome(a)
	// Recorded while the lease lasts, through a database restart if need
	// be: an attempt that is not recorded is made again, and a delivered
	// one would reach the receiver twice. The lease outlives the attempt
	// by LeaseMargin; half of it stays on the safe side.
	err := persist(ctx, d.cfg.LeaseMargin/2, func(ctx context.Context) error {
		return d.cfg.Store.RecordAttempt(ctx, d.cfg.Owner, a, state, next)
	})

	log := d.cfg.Logger
	attrs := []any{
		"task_id", cb.TaskID, "callback_id", cb.ID, "stage", cb.Stage, "attempt", a.N,
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

// outcome returns the state a callback moves to after attempt a, and when
// it is due again if it stays pending.
func (d *Dispatcher) outcome(a task.Attempt) (task.DeliveryState, time.Time) {
	if a.Error == "" {
		return task.DeliveryDelivered, time.Time{}
	}
	if a.N > len(d.cfg.RetryDelays) {
		return task.DeliveryExhausted, time.Time{}
	}
	delay := d.cfg.RetryDelays[a.N-1]
	jitter := time.Duration(float64(delay) * 0.1 * d.cfg.Jitter())
	return task.DeliveryPending, d.cfg.Now().Add(delay + jitter)
}

// attempt POSTs cb once. An empty Error in the result means success.
func (d *Dispatcher) attempt(ctx context.Context, cb *task.Callback) (a task.Attempt) {
	a = task.Attempt{CallbackID: cb.ID, N: cb.Attempts + 1, StartedAt: d.cfg.Now()}
	defer func() { a.Duration = d.cfg.Now().Sub(a.StartedAt) }()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cb.URL, bytes.NewReader(cb.Body))
	if err != nil {
		a.Error = fmt.Sprintf("invalid callback URL: %v", err)
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tunehook/"+tunehook.Version)
	if d.cfg.SigningKey != nil {
		tunehook.Sign(req.Header, d.cfg.SigningKey, cb.ID, cb.TaskID, a.StartedAt, cb.Body)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		a.Error = describeError(err, d.cfg.Timeout)
		return a
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
	}
	return a
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
