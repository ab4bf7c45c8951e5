package task

import (
	"cmp"
	"context"
	"strings"
	"time"
)

// DeliveryState is where a callback stands.
type DeliveryState string

// A callback is pending until an attempt succeeds (delivered) or its last
// retry fails (exhausted). Both are final.
const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryExhausted DeliveryState = "exhausted"
)

// Callback is one stage's notification to a task's callBackUrl, with its own
// retry schedule.
type Callback struct {
	ID     string // also the webhook-id it is signed with, stable across retries
	TaskID string
	Stage  Stage
	URL    string
	// Body is the JSON sent, fixed when the stage commits so that every
	// attempt sends the same bytes.
	Body  []byte
	State DeliveryState
	// Attempts counts the attempts recorded in the current series: the
	// automatic one, or the series of the last redelivery (see
	// Store.RedeliverCallback). It picks the callback's lane and its next
	// retry delay.
	Attempts int
	// Redeliveries counts the manual redeliveries: the current series is
	// the automatic one while it is 0.
	Redeliveries  int
	NextAttemptAt time.Time // zero once final
	CreatedAt     time.Time
	FinishedAt    time.Time // when it became delivered or exhausted
	History       []Attempt // filled by Store.Callbacks, Callback and RedeliverCallback only
}

// Attempt is one POST of a callback and what came of it.
type Attempt struct {
	CallbackID string
	N          int // in its series: 1 for the first attempt, 2 for the first retry, ...
	// Redelivery is the series of the attempt: 0 for the automatic one, k
	// for the attempts of the k-th redelivery. The store sets it: an
	// attempt belongs to the series its callback was claimed in.
	Redelivery int
	StartedAt  time.Time
	Duration   time.Duration
	StatusCode int    // 0 when no response arrived
	Error      string // empty when the attempt succeeded
	Response   []byte // the first bytes of the answer
}

// Manual reports whether the attempt was made for a redelivery.
func (a Attempt) Manual() bool { return a.Redelivery > 0 }

// StageCommit is the outcome of one stage of a task, applied by
// Store.CommitStages in one transaction together with the callback it sends.
type StageCommit struct {
	TaskID string
	From   Status // the status the task must still have: a fence against committing a stage twice
	To     Status
	Text   *Text  // set by the text stage
	Track  *Track // the track the stage finished, if any
	// Failure is set when the stage failed the task; To is then its status.
	Failure *Failure
	// RunAt is when the next stage is due; ignored when To is final.
	RunAt    time.Time
	Callback *Callback
}

// Store persists tasks and callbacks and is the work queue of both. Every
// method is one domain operation in its own transaction. Implementations
// must pass the suite in internal/storetest.
//
// Work is handed out under leases: a claim belongs to its owner until the
// lease expires; an owner that dies simply lets it expire, and the work
// becomes claimable again. Methods that act under a lease return
// ErrLeaseLost when the owner no longer holds it.
type Store interface {
	// CreateTask stores t as a new task, due at t.RunAt, which must be set.
	CreateTask(ctx context.Context, t *Task) error
	// Submit creates s.Task as CreateTask does, in one transaction with the
	// use of its idempotency key and the charge of its cost (see
	// Submission). It fails with ErrIdempotencyConflict or
	// ErrInsufficientCredits, creating nothing, when the key or the balance
	// forbid it.
	Submit(ctx context.Context, s Submission) (Submitted, error)
	// Credits returns owner's balance, or initial when none of its
	// submissions has cost anything yet.
	Credits(ctx context.Context, owner string, initial int) (int, error)
	// Task returns the task with its tracks, or ErrNotFound.
	Task(ctx context.Context, id string) (*Task, error)

	// ClaimTasks leases up to limit tasks whose next stage is due and whose
	// lease is free or expired to owner for lease, oldest due first, and
	// counts the claim in StageAttempts.
	ClaimTasks(ctx context.Context, owner string, limit int, lease time.Duration) ([]*Task, error)
	// ExtendTaskLease renews owner's lease on a task (a heartbeat), or
	// returns ErrLeaseLost.
	ExtendTaskLease(ctx context.Context, taskID, owner string, lease time.Duration) error
	// CommitStages commits stages of tasks leased by owner, in order and in
	// one transaction, a group commit: for each StageCommit c, it applies c
	// to its task, inserts c.Track and c.Callback (filed under c.TaskID; the
	// callback as pending with no attempts), and frees the lease. When
	// c.Failure is Refunded, the task's cost goes back to its owner's
	// balance. A commit whose lease owner no longer holds, or whose task's
	// status is no longer c.From, changes nothing; it is not an error of the
	// batch. The result has an entry per commit, in order: nil once
	// committed, or an error wrapping ErrLeaseLost. err concerns the whole
	// batch (a database error), and then nothing was committed.
	CommitStages(ctx context.Context, owner string, commits []StageCommit) (results []error, err error)
	// ReleaseTask frees owner's lease and makes the task due at runAt,
	// without changing its stage: for work handed back at shutdown or
	// postponed after a transient error. The released claim still counts in
	// StageAttempts. It returns ErrLeaseLost when owner holds no lease.
	ReleaseTask(ctx context.Context, taskID, owner string, runAt time.Time) error
	// NextTaskDue returns when the earliest unfinished task can be claimed
	// (its RunAt, or its lease's expiry if that is later), or the zero time
	// when there is none.
	NextTaskDue(ctx context.Context) (time.Time, error)
	// TaskReady signals, without blocking its sender, that a task may have
	// become due: a task was created, a stage committed, a lease released.
	TaskReady() <-chan struct{}

	// ClaimCallbacks leases up to limit pending callbacks of lane whose next
	// attempt is due to owner for lease, earliest due first. LaneFirst
	// holds the callbacks without an attempt yet, LaneRetry those with at
	// least one, so that a burst of retries cannot hold back first
	// attempts. An unknown lane is an error.
	ClaimCallbacks(ctx context.Context, owner string, lane Lane, limit int, lease time.Duration) ([]*Callback, error)
	// RecordAttempts stores the attempts of callbacks leased by owner, in
	// order and in one transaction, a group commit: for each record, its
	// Attempt, and it frees the callback's lease and moves it to its State.
	// An attempt of a callback redelivered while it was leased is stored
	// in the series it was made in and leaves the new series as it is.
	// A record whose lease owner no longer holds changes nothing; it is not
	// an error of the batch. The result has an entry per record, in order:
	// nil once recorded, or an error wrapping ErrLeaseLost. err concerns the
	// whole batch (a record with an unknown state, a database error), and
	// then nothing was recorded.
	RecordAttempts(ctx context.Context, owner string, records []AttemptRecord) (results []error, err error)
	// DeferCallbacks hands callbacks leased by owner back without an
	// attempt, in order and in one transaction: for each deferral, it frees
	// the callback's lease and makes it due at Until, which must be set,
	// with its attempts unchanged. Its results are those of RecordAttempts:
	// an entry per deferral, nil or an error wrapping ErrLeaseLost, and err
	// for the whole batch, of which nothing was then stored.
	DeferCallbacks(ctx context.Context, owner string, deferrals []Deferral) (results []error, err error)
	// NextCallbackDue returns when the earliest pending callback of either
	// lane can be claimed (its NextAttemptAt, or its lease's expiry if that
	// is later), or the zero time when there is none.
	NextCallbackDue(ctx context.Context) (time.Time, error)
	// CallbackReady signals, without blocking its sender, that a callback
	// may have become due: one was inserted or deferred, or an attempt
	// failed and left it pending.
	CallbackReady() <-chan struct{}
	// Callbacks returns the callbacks of a task, oldest first, each with
	// its History of attempts; none (not ErrNotFound) for an unknown task.
	Callbacks(ctx context.Context, taskID string) ([]*Callback, error)
	// Callback returns one callback with its History, or ErrNotFound.
	Callback(ctx context.Context, id string) (*Callback, error)
	// RedeliverCallback starts a new attempt series of a callback, whatever
	// its state: pending, due now, no attempts in the series, Redeliveries
	// one more; the history stays. A callback with an attempt in flight
	// is claimable again once that attempt is recorded. It returns the
	// callback as it now is, or ErrNotFound.
	RedeliverCallback(ctx context.Context, id string) (*Callback, error)

	// Stats counts the tasks and callbacks in the store, for metrics read
	// at scrape time: every instance sharing a database reports the same.
	Stats(ctx context.Context) (Stats, error)
	// Ping checks that the database answers, for readiness probes.
	Ping(ctx context.Context) error

	// Close releases the store's resources.
	Close() error
}

// AttemptRecord is an attempt of a callback for Store.RecordAttempts, with
// what becomes of the callback: delivered, exhausted, or pending again
// until Next, which is ignored in a final State.
type AttemptRecord struct {
	Attempt
	State DeliveryState
	Next  time.Time
}

// Deferral is a callback handed back unattempted, for
// Store.DeferCallbacks, and when it is due again.
type Deferral struct {
	CallbackID string
	Until      time.Time
}

// Lane is one of the two queues that pending callbacks wait in.
type Lane string

// The lanes: a callback is in LaneFirst until its first attempt is
// recorded, then in LaneRetry.
const (
	LaneFirst Lane = "first"
	LaneRetry Lane = "retry"
)

// Signal is what a Store's TaskReady and CallbackReady channels are made
// of: it holds at most one pending wake-up, and notifying never blocks,
// since one pending wake-up is as good as many.
type Signal chan struct{}

// NewSignal returns a Signal with no wake-up pending.
func NewSignal() Signal { return make(Signal, 1) }

// Notify leaves a wake-up pending, unless one is already.
func (s Signal) Notify() {
	select {
	case s <- struct{}{}:
	default:
	}
}

// TaskClaimOrder orders tasks as ClaimTasks hands them out: earliest due
// first, then oldest, then by ID.
func TaskClaimOrder(a, b *Task) int {
	return cmp.Or(a.RunAt.Compare(b.RunAt), a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
}

// CallbackClaimOrder orders callbacks as ClaimCallbacks hands them out:
// earliest due first, then oldest, then by ID.
func CallbackClaimOrder(a, b *Callback) int {
	return cmp.Or(a.NextAttemptAt.Compare(b.NextAttemptAt), a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
}

// Stats is what Store.Stats counts, as of the store's clock.
type Stats struct {
	// Tasks counts the tasks by status; a status no task has is absent.
	Tasks map[Status]int
	// Callbacks counts the callbacks by delivery state; a state no
	// callback has is absent.
	Callbacks map[DeliveryState]int
	// TaskLag is how long the task that has waited longest for a runner
	// has been due: due and not leased (or its lease expired); 0 when none
	// waits.
	TaskLag time.Duration
	// CallbackLag is the same for pending callbacks and the dispatcher.
	CallbackLag time.Duration
}

// Lag returns how long work due at due has waited at now: 0 when due is
// zero (nothing waits) or still ahead.
func Lag(due, now time.Time) time.Duration {
	if due.IsZero() || due.After(now) {
		return 0
	}
	return now.Sub(due)
}
