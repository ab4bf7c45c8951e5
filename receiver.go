package tunehook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Defaults of ReceiverOptions.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultConcurrency  = 8
	DefaultQueueSize    = 1000
	DefaultTimeout      = time.Minute
	DefaultDedupeTTL    = 24 * time.Hour
)

// defaultRetryDelays are ReceiverOptions.RetryDelays when it is nil. (Not
// exported: a slice can be changed by whoever holds it.)
var defaultRetryDelays = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}

// ReceiverOptions tunes NewReceiver. The zero value accepts unsigned
// callbacks and remembers them in memory. A number or duration that is not
// positive means its default.
type ReceiverOptions struct {
	// Keys verify the signatures (see Verify); a request that fails is
	// answered 401. Nil accepts every request, signed or not.
	Keys [][]byte
	// Verify tunes the verification; its Now defaults to the Now below.
	Verify VerifyOptions
	// Store remembers the processed callbacks; nil means a new
	// MemoryDedupe of DefaultDedupeSize.
	Store DedupeStore
	// DedupeTTL is how long a processed callback is remembered: a
	// duplicate or a stale stage that arrives later is processed as new.
	// Zero means DefaultDedupeTTL; keep it above the sender's whole retry
	// schedule (21 minutes for the seed's).
	DedupeTTL time.Duration
	// Concurrency is how many calls of the function run at once; zero
	// means DefaultConcurrency.
	Concurrency int
	// QueueSize bounds the callbacks accepted but not finished; beyond it
	// the receiver answers 503, so that the sender retries later. Zero
	// means DefaultQueueSize.
	QueueSize int
	// Timeout bounds one call of the function, through its context; zero
	// means DefaultTimeout.
	Timeout time.Duration
	// RetryDelays are the pauses before the retries of a call that failed:
	// its length is the number of retries. Nil means 1s, 5s and 30s; an
	// empty, non-nil slice means no retries.
	RetryDelays []time.Duration
	// MaxBodyBytes caps the body; a larger one is answered 413. Zero means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives what happens to each callback; nil discards it.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Receiver is an http.Handler that receives callbacks the way the seed's
// best practices ask: it verifies them, answers at once, and processes them
// afterwards, each once, in stage order.
//
// For each POST it reads the body (413 beyond MaxBodyBytes), verifies the
// signature when Keys are set (401 with the reason), parses the callback
// (400 when it is not one, see ParseCallback) and claims its key in the
// Store: the webhook-id header when present, else task_id + callbackType.
// It then answers 200 {"status":"received"}, or 200 {"status":"duplicate"}
// when the key was claimed or processed already, so that the sender stops
// retrying either way. It answers 503 when its queue is full or it is
// shutting down, and 500 when the Store fails: the sender retries those.
//
// After answering it calls the function with the callback, in a context
// bounded by Timeout, with at most Concurrency calls at once, retrying a
// call that returns an error (or panics) after each of RetryDelays.
// Callbacks of one task are processed one at a time in arrival order, and a
// stage that is not after the furthest stage already processed for its task
// (text < first < complete; complete and error are final) is stale: it is
// acknowledged and logged, never passed to the function. So a complete that
// arrives before first is processed, and the late first is skipped; a task
// never moves backwards.
//
// The function therefore sees each callback at least once, never twice at
// the same time for one key, and never again once a call succeeded, as long
// as the Store remembers it (DedupeTTL). A callback whose processing failed
// for good (every retry failed) is released: a later duplicate from the
// sender is processed again. Ordering and stale detection hold within one
// Receiver; replicas sharing a SQLDedupe never process one key twice at the
// same time, but may process two stages of a task concurrently.
type Receiver struct {
	fn    func(ctx context.Context, cb *Callback) error
	opts  ReceiverOptions
	lease time.Duration // how long a claim lasts: a job's whole processing

	// ctx is the processing's, cancelled when Shutdown gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{} // one slot per call of fn that may run

	mu      sync.Mutex
	pending map[string][]job // per task, the jobs not started yet; a key exists while its drain runs
	queued  int              // jobs accepted and not finished
	closing bool
	wg      sync.WaitGroup // the drains
}

// job is one accepted callback.
type job struct {
	key string // its key in the Store
	cb  *Callback
}

// NewReceiver returns a Receiver that passes each accepted callback to fn.
// fn must honour its context: Shutdown cancels it when it stops waiting.
func NewReceiver(fn func(ctx context.Context, cb *Callback) error, opts ReceiverOptions) *Receiver {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Verify.Now == nil {
		opts.Verify.Now = opts.Now
	}
	if opts.Store == nil {
		opts.Store = NewMemoryDedupe(0)
	}
	opts.DedupeTTL = positiveOr(opts.DedupeTTL, DefaultDedupeTTL)
	opts.Concurrency = positiveOr(opts.Concurrency, DefaultConcurrency)
	opts.QueueSize = positiveOr(opts.QueueSize, DefaultQueueSize)
	opts.Timeout = positiveOr(opts.Timeout, DefaultTimeout)
	opts.MaxBodyBytes = positiveOr(opts.MaxBodyBytes, DefaultMaxBodyBytes)
	if opts.RetryDelays == nil {
		opts.RetryDelays = defaultRetryDelays
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}

	// A claim must outlast the processing it guards, or a replica sharing
	// the Store could start a duplicate meanwhile. (Within one Receiver a
	// duplicate claimed after a lease ran out queues behind the original
	// and is then found stale.) A minute covers the time in the queue.
	lease := time.Duration(len(opts.RetryDelays)+1)*opts.Timeout + time.Minute
	for _, d := range opts.RetryDelays {
		lease += d
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Receiver{
		fn:      fn,
		opts:    opts,
		lease:   lease,
		ctx:     ctx,
		cancel:  cancel,
		sem:     make(chan struct{}, opts.Concurrency),
		pending: map[string][]job{},
	}
}

// positiveOr returns v, or def when v is not positive.
func positiveOr[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// ServeHTTP receives one callback; see Receiver.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.mu.Lock()
	closing := r.closing
	r.mu.Unlock()
	if closing {
		http.Error(w, "receiver shutting down", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.opts.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, fmt.Sprintf("body larger than %d bytes", r.opts.MaxBodyBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx := req.Context()
	if len(r.opts.Keys) > 0 {
		if _, err := Verify(req.Header, body, r.opts.Keys, r.opts.Verify); err != nil {
			r.opts.Logger.WarnContext(ctx, "callback refused", "error", err, "remote_addr", req.RemoteAddr)
			http.Error(w, "invalid signature: "+err.Error(), http.StatusUnauthorized)
			return
		}
	}
	cb, err := ParseCallback(body)
	if err != nil {
		r.opts.Logger.WarnContext(ctx, "callback refused", "error", err, "remote_addr", req.RemoteAddr)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	log := r.opts.Logger.With("task_id", cb.Data.TaskID, "callback_type", cb.Data.CallbackType)
	key := stageKey(cb.Data.TaskID, cb.Data.CallbackType)
	if id, ok := header(req.Header, HeaderWebhookID); ok && id != "" {
		key = dedupeKey("id:" + id)
	}
	now := r.opts.Now()
	claimed, err := r.opts.Store.Claim(ctx, key, now, now.Add(r.lease))
	if err != nil {
		log.ErrorContext(ctx, "callback not claimed", "error", err)
		http.Error(w, "dedupe store unavailable", http.StatusInternalServerError)
		return
	}
	if !claimed {
		log.InfoContext(ctx, "duplicate callback acknowledged", "dedupe_key", key)
		writeStatus(w, "duplicate")
		return
	}
	if reason := r.enqueue(job{key: key, cb: cb}); reason != "" {
		r.release(log, key)
		http.Error(w, reason, http.StatusServiceUnavailable)
		return
	}
	log.DebugContext(ctx, "callback accepted", "dedupe_key", key)
	writeStatus(w, "received")
}

func writeStatus(w http.ResponseWriter, status string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"status":%q}`+"\n", status)
}

// stageKey is the Store key of a task's stage: the key of a delivery
// without a webhook id, and the mark that the stage has been processed.
func stageKey(taskID string, t CallbackType) string {
	return dedupeKey("stage:" + taskID + ":" + string(t))
}

// dedupeKey keeps key within MaxDedupeKeyLen, hashing longer ones.
func dedupeKey(key string) string {
	if len(key) <= MaxDedupeKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// enqueue queues j behind the other jobs of its task, starting the task's
// drain if none runs. It returns why it refused j, or "".
func (r *Receiver) enqueue(j job) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closing:
		return "receiver shutting down"
	case r.queued >= r.opts.QueueSize:
		return "receiver busy"
	}
	r.queued++
	q, draining := r.pending[j.cb.Data.TaskID]
	r.pending[j.cb.Data.TaskID] = append(q, j)
	if !draining {
		r.wg.Go(func() { r.drain(j.cb.Data.TaskID) })
	}
	return ""
}

// drain processes the jobs of one task, one at a time, until none is left.
func (r *Receiver) drain(taskID string) {
	for {
		r.mu.Lock()
		q := r.pending[taskID]
		if len(q) == 0 {
			delete(r.pending, taskID)
			r.mu.Unlock()
			return
		}
		j := q[0]
		r.pending[taskID] = q[1:]
		r.mu.Unlock()

		r.process(j)

		r.mu.Lock()
		r.queued--
		r.mu.Unlock()
	}
}

// process runs one job: skipped when stale, else fn with retries.
func (r *Receiver) process(j job) {
	cb := j.cb
	log := r.opts.Logger.With("task_id", cb.Data.TaskID, "callback_type", cb.Data.CallbackType)
	for attempt := 0; ; attempt++ {
		stale, err := r.attempt(j)
		switch {
		case err == nil && stale:
			log.InfoContext(r.ctx, "stale callback skipped")
			r.complete(log, j.key)
			return
		case err == nil:
			if stage := stageKey(cb.Data.TaskID, cb.Data.CallbackType); stage != j.key {
				r.complete(log, stage)
			}
			r.complete(log, j.key)
			return
		case r.ctx.Err() != nil:
			log.WarnContext(r.ctx, "callback processing abandoned at shutdown", "attempt", attempt+1, "error", err)
			r.release(log, j.key)
			return
		case attempt == len(r.opts.RetryDelays):
			log.ErrorContext(r.ctx, "callback processing failed", "attempt", attempt+1, "error", err)
			r.release(log, j.key)
			return
		}
		delay := r.opts.RetryDelays[attempt]
		log.WarnContext(r.ctx, "callback processing failed, will retry", "attempt", attempt+1, "retry_in", delay, "error", err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
		}
	}
}

// attempt takes one of the Concurrency slots, then checks whether the job
// has become stale and, if not, calls fn. The slot is not held during the
// pauses between attempts.
func (r *Receiver) attempt(j job) (stale bool, err error) {
	select {
	case r.sem <- struct{}{}:
	case <-r.ctx.Done():
		return false, r.ctx.Err()
	}
	defer func() { <-r.sem }()
	stale, err = r.opts.Store.Done(r.ctx, r.opts.Now(), laterStageKeys(j.cb)...)
	if err != nil || stale {
		return stale, err
	}
	return false, r.call(r.ctx, j.cb)
}

// laterStageKeys are the Store keys of the stages that make cb stale once
// one of them has been processed: its own and every one after it.
func laterStageKeys(cb *Callback) []string {
	var keys []string
	for _, t := range []CallbackType{CallbackText, CallbackFirst, CallbackComplete, CallbackError} {
		if t.rank() >= cb.Data.CallbackType.rank() {
			keys = append(keys, stageKey(cb.Data.TaskID, t))
		}
	}
	return keys
}

// call runs fn once, within Timeout, turning a panic into an error.
func (r *Receiver) call(ctx context.Context, cb *Callback) (err error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return r.fn(ctx, cb)
}

// complete marks key processed. A failure is logged only: the callback
// has been processed, and at worst a duplicate is processed again.
func (r *Receiver) complete(log *slog.Logger, key string) {
	until := r.opts.Now().Add(r.opts.DedupeTTL)
	if err := r.opts.Store.Complete(context.WithoutCancel(r.ctx), key, until); err != nil {
		log.ErrorContext(r.ctx, "callback not marked processed", "dedupe_key", key, "error", err)
	}
}

// release forgets the claim of key, so that a duplicate is processed
// again. It runs also at shutdown, when r.ctx is cancelled already.
func (r *Receiver) release(log *slog.Logger, key string) {
	if err := r.opts.Store.Release(context.WithoutCancel(r.ctx), key); err != nil {
		log.ErrorContext(r.ctx, "callback claim not released", "dedupe_key", key, "error", err)
	}
}

// Shutdown stops accepting callbacks (they are answered 503, so the sender
// retries them later) and waits until the accepted ones are processed. If
// ctx ends first it cancels the processing (queued callbacks and pending
// retries are released, calls in progress see their context cancelled)
// and returns ctx's error without waiting further.
func (r *Receiver) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	defer r.cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
