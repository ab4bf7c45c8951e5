package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"time"

	"github.com/tunehook/tunehook/internal/payload"
	"github.com/tunehook/tunehook/internal/task"
)

// Retry pacing of a stage that failed with a transient error: 1s after the
// first claim, doubling with every further claim of the same stage.
const (
	stageRetryMin = time.Second
	stageRetryMax = time.Minute
)

// storeTimeout bounds the store calls the Runner and the Dispatcher make
// after shutdown began, so that a database that hangs cannot hold the
// process for ever.
const storeTimeout = 10 * time.Second

// RunnerConfig configures a Runner. Store, Engine and Owner are required;
// the zero value of every other field selects its default.
type RunnerConfig struct {
	Store  task.Store
	Engine Engine
	Links  payload.Links
	// Delays are the pauses before the text, first and complete stages.
	// Delays[0] is applied by the API when it creates a task (task.RunAt);
	// the Runner applies Delays[1] after text and Delays[2] after first.
	Delays [3]time.Duration
	// Simulation honours tunehook:fail:CODE tokens in requests (see
	// task.Request.SimulatedFailure).
	Simulation bool
	// Owner is the lease owner name of this process.
	Owner string
	// Concurrency is how many stages render at once; default
	// runtime.GOMAXPROCS(0).
	Concurrency int
	// Lease is how long a claim lasts without a heartbeat; default 30s.
	// The Runner renews it every Lease/3 while a stage renders.
	Lease time.Duration
	// PollInterval bounds the sleep between claims, a backstop for missed
	// wake-ups; default 1s.
	PollInterval time.Duration
	// MaxStageAttempts is how many claims a stage gets before the task is
	// failed with code 500; default 10. Every claim counts, including one
	// cut short by a crash: a stage that keeps killing its process must
	// end, but a few restarts by an operator must not fail a task.
	MaxStageAttempts int
	// OnStage, when set, is called after every stage committed, failures
	// included: for metrics, and to wake the clients waiting for the task.
	// It must be quick and safe for concurrent use.
	OnStage func(StageEvent)
	Logger  *slog.Logger     // default: discard
	Now     func() time.Time // default: time.Now
}

// StageEvent is a stage a Runner committed.
type StageEvent struct {
	TaskID string
	// Stage is the callback the stage sent: text, first, complete, or
	// error for a failure.
	Stage task.Stage
	To    task.Status // the task's status now
	// Took is how long the stage took, from its start to its commit;
	// pauses between stages are not counted.
	Took time.Duration
}

// Runner moves tasks through their stages: it claims due tasks, has the
// Engine produce each stage, and commits the stage together with its
// callback in one store transaction, a group commit with the other stages
// that end meanwhile.
type Runner struct {
	cfg    RunnerConfig
	stages *groupCommit[task.StageCommit]
	loop   claimLoop[*task.Task]
}

// NewRunner checks cfg, fills in its defaults and returns a Runner.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("new runner: store is required")
	case cfg.Engine == nil:
		return nil, errors.New("new runner: engine is required")
	case cfg.Owner == "":
		return nil, errors.New("new runner: owner is required")
	case cfg.Concurrency < 0, cfg.Lease < 0, cfg.PollInterval < 0, cfg.MaxStageAttempts < 0:
		return nil, errors.New("new runner: concurrency, lease, poll interval and max stage attempts must not be negative")
	case slices.ContainsFunc(cfg.Delays[:], func(d time.Duration) bool { return d < 0 }):
		return nil, fmt.Errorf("new runner: negative stage delay in %v", cfg.Delays)
	}
	cfg.Concurrency = cmp.Or(cfg.Concurrency, runtime.GOMAXPROCS(0))
	cfg.Lease = cmp.Or(cfg.Lease, 30*time.Second)
	cfg.PollInterval = cmp.Or(cfg.PollInterval, time.Second)
	cfg.MaxStageAttempts = cmp.Or(cfg.MaxStageAttempts, 10)
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// The heartbeat renewed a lease at most Lease/3 before its stage
	// ended, so retrying the commit for Lease/2 stays inside it.
	r := &Runner{cfg: cfg, stages: newGroupCommit(cfg.Lease/2, cfg.Concurrency,
		func(ctx context.Context, cs []task.StageCommit) ([]error, error) {
			return cfg.Store.CommitStages(ctx, cfg.Owner, cs)
		})}
	r.loop = claimLoop[*task.Task]{
		kind:  "task",
		slots: cfg.Concurrency,
		poll:  cfg.PollInterval,
		claim: func(ctx context.Context, n int) ([]*task.Task, error) {
			return cfg.Store.ClaimTasks(ctx, cfg.Owner, n, cfg.Lease)
		},
		nextDue: cfg.Store.NextTaskDue,
		ready:   cfg.Store.TaskReady(),
		work:    r.work,
		logger:  cfg.Logger,
		now:     cfg.Now,
	}
	return r, nil
}

// Run claims and runs stages until ctx is cancelled. Stages in progress are
// then handed back to the store, due at once, so that a restart picks them
// up; Run returns nil after they are.
func (r *Runner) Run(ctx context.Context) error {
	return runCommitting(ctx, r.loop.run, r.stages.run)
}

// work runs the next stage of a claimed task and handles its outcome.
func (r *Runner) work(ctx context.Context, t *task.Task) {
	start := r.cfg.Now()
	err := r.advance(ctx, t)
	if f, ok := errors.AsType[*task.Failure](err); ok {
		err = r.fail(ctx, t, f, start)
	}
	log := r.cfg.Logger
	switch {
	case err == nil:
	case errors.Is(err, task.ErrLeaseLost):
		// Someone else holds the task now; whatever this stage made is
		// dropped, the new holder redoes it.
		log.WarnContext(ctx, "task lease lost", "task_id", t.ID, "status", t.Status, "error", err)
	case ctx.Err() != nil:
		// Shutdown: due at once, so that a restart picks it up.
		if err := r.release(ctx, t, r.cfg.Now()); err != nil {
			log.ErrorContext(ctx, "task hand back failed", "task_id", t.ID, "status", t.Status, "error", err)
			return
		}
		log.InfoContext(ctx, "task handed back", "task_id", t.ID, "status", t.Status)
	default:
		retryAt := r.cfg.Now().Add(backoff(stageRetryMin, stageRetryMax, t.StageAttempts))
		attrs := []any{"task_id", t.ID, "status", t.Status, "stage_attempts", t.StageAttempts, "error", err}
		if rerr := r.release(ctx, t, retryAt); rerr != nil {
			// The lease expires and the task becomes claimable anyway.
			attrs = append(attrs, "release_error", rerr)
		} else {
			attrs = append(attrs, "retry_at", retryAt)
		}
		log.ErrorContext(ctx, "stage error", attrs...)
	}
}

// release hands t back to the store, due at runAt. It runs on after
// shutdown began, so it must not use ctx's cancellation.
func (r *Runner) release(ctx context.Context, t *task.Task, runAt time.Time) error {
	err := persist(ctx, r.cfg.Lease/2, func(ctx context.Context) error {
		return r.cfg.Store.ReleaseTask(ctx, t.ID, r.cfg.Owner, runAt)
	})
	if err != nil {
		return fmt.Errorf("release task %s: %w", t.ID, err)
	}
	return nil
}

// stageOrder numbers the successful stages: Delays[i] precedes stage i, and
// stage i > 0 renders track i-1.
var stageOrder = map[task.Stage]int{task.StageText: 0, task.StageFirst: 1, task.StageComplete: 2}

// advance runs the next stage of t and commits it. A *task.Failure it
// returns has not been committed yet.
func (r *Runner) advance(ctx context.Context, t *task.Task) error {
	start := r.cfg.Now()
	req, err := t.Request()
	if err != nil {
		// A task whose request cannot be read will never run; tell the
		// client instead of retrying.
		r.cfg.Logger.ErrorContext(ctx, "task request unreadable", "task_id", t.ID, "error", err)
		return task.NewFailure(task.CodeInternal)
	}
	if t.StageAttempts > r.cfg.MaxStageAttempts {
		f := task.NewFailure(task.CodeInternal)
		f.Message = "Generation failed repeatedly. Please try again."
		return f
	}
	stage, to, ok := task.NextStage(t.Status)
	if !ok {
		return fmt.Errorf("task %s: claimed in final status %s", t.ID, t.Status)
	}
	slow := r.cfg.Simulation && req.Slow()
	if due := t.CreatedAt.Add(task.SlowFactor * r.cfg.Delays[0]); slow && stage == task.StageText && start.Before(due) {
		// The API made the task due after the normal pause: stretch it
		// here, where the simulation is known.
		return r.postpone(ctx, t, due)
	}
	if r.cfg.Simulation {
		if f, at, ok := req.SimulatedFailure(); ok && at == stage {
			return f
		}
	}

	next := *t
	next.Status = to
	c := task.StageCommit{TaskID: t.ID, From: t.Status, To: to}
	err = r.withHeartbeat(ctx, t.ID, func(ctx context.Context) error {
		switch stage {
		case task.StageText:
			text, err := r.cfg.Engine.Text(ctx, t, req)
			if err != nil {
				return fmt.Errorf("task %s: write text: %w", t.ID, err)
			}
			next.Text, c.Text = text, &text
		default:
			index := stageOrder[stage] - 1
			track, err := r.cfg.Engine.Render(ctx, t, req, index)
			if err != nil {
				return fmt.Errorf("task %s: render track %d: %w", t.ID, index, err)
			}
			track.CreatedAt = r.cfg.Now()
			next.Tracks, c.Track = append(slices.Clip(t.Tracks), track), &track
		}
		return nil
	})
	if err != nil {
		return err
	}

	now := r.cfg.Now()
	if i := stageOrder[stage] + 1; i < len(r.cfg.Delays) {
		pause := r.cfg.Delays[i]
		if slow {
			pause *= task.SlowFactor
		}
		c.RunAt = now.Add(pause)
	}
	if c.Callback, err = r.callback(&next, stage, now); err != nil {
		return err
	}
	if err := r.commit(c); err != nil {
		return err
	}
	r.cfg.Logger.InfoContext(ctx, "task stage done", "task_id", t.ID, "stage", stage, "status", to, "took", now.Sub(start))
	r.observe(StageEvent{TaskID: t.ID, Stage: stage, To: to, Took: now.Sub(start)})
	return nil
}

// postpone hands t back unchanged, due at due: the text stage of a
// tunehook:slow task before its stretched pause is over. The claim it
// took counts in StageAttempts, one of MaxStageAttempts.
func (r *Runner) postpone(ctx context.Context, t *task.Task, due time.Time) error {
	if err := r.release(ctx, t, due); err != nil {
		return err
	}
	r.cfg.Logger.InfoContext(ctx, "slow task postponed", "task_id", t.ID, "due", due)
	return nil
}

// observe hands e to OnStage, when set.
func (r *Runner) observe(e StageEvent) {
	if r.cfg.OnStage != nil {
		r.cfg.OnStage(e)
	}
}

// fail commits failure f of t, whose stage began at start, with its error
// callback.
func (r *Runner) fail(ctx context.Context, t *task.Task, f *task.Failure, start time.Time) error {
	failed := *t
	failed.Status, failed.Failure = f.Status(), f
	now := r.cfg.Now()
	cb, err := r.callback(&failed, task.StageError, now)
	if err != nil {
		return err
	}
	err = r.commit(task.StageCommit{TaskID: t.ID, From: t.Status, To: f.Status(), Failure: f, Callback: cb})
	if err != nil {
		return err
	}
	r.cfg.Logger.InfoContext(ctx, "task failed", "task_id", t.ID, "code", f.Code, "message", f.Message, "status", f.Status())
	r.observe(StageEvent{TaskID: t.ID, Stage: task.StageError, To: f.Status(), Took: now.Sub(start)})
	return nil
}

// callback returns the callback of t's stage, due at once.
func (r *Runner) callback(t *task.Task, stage task.Stage, now time.Time) (*task.Callback, error) {
	body, err := payload.Callback(t, stage, r.cfg.Links)
	if err != nil {
		return nil, err
	}
	return &task.Callback{
		ID:            task.NewCallbackID(),
		TaskID:        t.ID,
		Stage:         stage,
		URL:           t.CallbackURL,
		Body:          body,
		State:         task.DeliveryPending,
		NextAttemptAt: now,
		CreatedAt:     now,
	}, nil
}

// commit stores a finished stage with the next group commit. Work that is
// done is worth keeping even when shutdown began meanwhile, or the
// database is away for a moment: the commit is retried while the lease
// lasts.
func (r *Runner) commit(c task.StageCommit) error {
	if err := r.stages.write(c); err != nil {
		return fmt.Errorf("commit task %s to %s: %w", c.TaskID, c.To, err)
	}
	return nil
}

// withHeartbeat runs stage while renewing the lease on task id every
// Lease/3. When the lease is lost, stage's context is cancelled and
// withHeartbeat returns task.ErrLeaseLost whatever stage returned: work
// done under a lost lease must not be committed.
func (r *Runner) withHeartbeat(ctx context.Context, id string, stage func(context.Context) error) error {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := make(chan struct{})
	beat := make(chan struct{})
	go func() {
		defer close(beat)
		tick := time.NewTicker(max(r.cfg.Lease/3, time.Millisecond)) // a ticker needs a positive period
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-sctx.Done():
				return
			case <-tick.C:
			}
			err := r.cfg.Store.ExtendTaskLease(sctx, id, r.cfg.Owner, r.cfg.Lease)
			switch {
			case errors.Is(err, task.ErrLeaseLost):
				cancel(fmt.Errorf("task %s: heartbeat: %w", id, err))
				return
			case err != nil && sctx.Err() == nil:
				// Maybe the database is away for a moment; the next beat
				// may get through before the lease runs out.
				r.cfg.Logger.WarnContext(ctx, "task heartbeat failed", "task_id", id, "error", err)
			}
		}
	}()
	err := stage(sctx)
	close(stop)
	<-beat
	if cause := context.Cause(sctx); errors.Is(cause, task.ErrLeaseLost) {
		return cause
	}
	return err
}
