package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// lease is the lease of claims whose expiry a test does not look at.
const lease = 5 * time.Minute

func testTaskRoundTrip(t *testing.T, open opener) {
	tests := []struct {
		name string
		// make returns the task to create and the task Task must return.
		make func(clock *Clock) (in, want *task.Task)
	}{
		{"pending", func(clock *Clock) (*task.Task, *task.Task) {
			in := newTask(clock, clock.Now().Add(90*time.Second))
			in.UpdatedAt = in.CreatedAt.Add(time.Millisecond)
			want := *in
			return in, &want
		}},
		{"failed at creation", func(clock *Clock) (*task.Task, *task.Task) {
			in := newTask(clock, clock.Now())
			in.Status = task.StatusCreateTaskFailed
			in.Failure = task.NewFailure(531)
			want := *in
			want.RunAt = time.Time{} // final: nothing is due
			return in, &want
		}},
		{"with text, tracks and attempts", func(clock *Clock) (*task.Task, *task.Task) {
			in := newTask(clock, clock.Now().Add(-time.Hour))
			in.Status = task.StatusFirstSuccess
			in.Text = sampleText
			in.StageAttempts = 2
			t0, t1 := newTrack(in.ID, 0, clock.Now()), newTrack(in.ID, 1, clock.Now().Add(time.Second))
			// Neither the IDs' order nor the insertion order is the
			// index order.
			t0.ID, t1.ID = "b"+t0.ID, "a"+t1.ID
			in.Tracks = []task.Track{*t1, *t0}
			want := *in
			want.Tracks = []task.Track{*t0, *t1}
			return in, &want
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, clock := open(t)
			in, want := tt.make(clock)
			createTask(t, st, in)
			checkEqual(t, "Task", getTask(t, st, in.ID), want)
		})
	}
}

func testTaskNotFound(t *testing.T, open opener) {
	st, clock := open(t)
	createTask(t, st, newTask(clock, clock.Now()))
	_, err := st.Task(t.Context(), task.NewTaskID())
	if !errors.Is(err, task.ErrNotFound) {
		t.Errorf("Task(unknown): got error %v, want %v", err, task.ErrNotFound)
	}
}

// testStagesRoundTrip takes a task through text and first to a failure and
// checks after every commit what Task, ClaimTasks and Callbacks return.
func testStagesRoundTrip(t *testing.T, open opener) {
	st, clock := open(t)
	ctx := t.Context()
	tk := newTask(clock, clock.Now())
	createTask(t, st, tk)
	want := *tk

	want.StageAttempts = 1
	checkEqual(t, "claimed", claimTask(t, st, ownerA, tk.ID, lease), &want)
	clock.Advance(3 * time.Second)
	text := sampleText
	cbText := newCallback(clock, tk.ID, task.StageText, clock.Now())
	commit(t, st, ownerA, task.StageCommit{
		TaskID: tk.ID, From: task.StatusPending, To: task.StatusTextSuccess,
		Text: &text, RunAt: clock.Now().Add(10 * time.Second), Callback: cbText,
	})
	want.Status, want.Text, want.RunAt, want.StageAttempts, want.UpdatedAt =
		task.StatusTextSuccess, text, clock.Now().Add(10*time.Second), 0, clock.Now()
	checkEqual(t, "after text", getTask(t, st, tk.ID), &want)
	checkEqual(t, "callbacks after text", getCallbacks(t, st, tk.ID), []*task.Callback{cbText})

	// The lease is free: the next stage is not due yet, and once it is,
	// another owner claims it well before owner A's lease would have
	// expired.
	checkIDs(t, "claim before run_at", TaskIDs(claimTasks(t, st, ownerB, 10, lease)), nil)
	clock.Advance(10 * time.Second)
	want.StageAttempts = 1
	checkEqual(t, "claimed for first", claimTask(t, st, ownerB, tk.ID, lease), &want)

	track := newTrack(tk.ID, 0, clock.Now())
	cbFirst := newCallback(clock, tk.ID, task.StageFirst, clock.Now())
	commit(t, st, ownerB, task.StageCommit{
		TaskID: tk.ID, From: task.StatusTextSuccess, To: task.StatusFirstSuccess,
		Track: track, RunAt: clock.Now(), Callback: cbFirst,
	})
	want.Status, want.Tracks, want.RunAt, want.StageAttempts, want.UpdatedAt =
		task.StatusFirstSuccess, []task.Track{*track}, clock.Now(), 0, clock.Now()
	checkEqual(t, "after first", getTask(t, st, tk.ID), &want)

	// A claimed task carries everything Task returns.
	clock.Advance(time.Second)
	want.StageAttempts = 1
	checkEqual(t, "claimed for complete", claimTask(t, st, ownerA, tk.ID, lease), &want)

	failure := task.NewFailure(501)
	cbError := newCallback(clock, tk.ID, task.StageError, clock.Now())
	commit(t, st, ownerA, task.StageCommit{
		TaskID: tk.ID, From: task.StatusFirstSuccess, To: failure.Status(),
		Failure: failure, RunAt: clock.Now(), Callback: cbError,
	})
	want.Status, want.Failure, want.RunAt, want.StageAttempts, want.UpdatedAt =
		failure.Status(), failure, time.Time{}, 0, clock.Now()
	checkEqual(t, "after failure", getTask(t, st, tk.ID), &want)
	checkEqual(t, "callbacks after failure", getCallbacks(t, st, tk.ID), []*task.Callback{cbText, cbFirst, cbError})

	// Final tasks are never claimed again.
	clock.Advance(24 * time.Hour)
	checkIDs(t, "claim after final", TaskIDs(claimTasks(t, st, ownerA, 10, lease)), nil)
	if next, err := st.NextTaskDue(ctx); err != nil || !next.IsZero() {
		t.Errorf("NextTaskDue after final: got %v, %v, want zero time, nil", next, err)
	}
}

func testClaimTasks(t *testing.T, open opener) {
	st, clock := open(t)
	now := clock.Now()
	final := newTask(clock, now.Add(-5*time.Minute))
	final.Status, final.Failure = task.StatusCreateTaskFailed, task.NewFailure(500)
	leased := newTask(clock, now.Add(-4*time.Minute))
	a := newTask(clock, now.Add(-3*time.Minute))
	b := newTask(clock, now.Add(-2*time.Minute))
	c := newTask(clock, now.Add(-time.Minute))
	future := newTask(clock, now.Add(time.Minute))
	// Neither insertion nor ID order is due order.
	for i, tk := range []*task.Task{future, c, final, b, leased, a} {
		tk.ID = fmt.Sprintf("%d-%s", i, tk.ID)
	}
	// A claimed task comes with its tracks, and only its own.
	a.Status, a.Tracks = task.StatusFirstSuccess, []task.Track{*newTrack(a.ID, 0, now)}
	for _, tk := range []*task.Task{future, c, final, b, leased, a} {
		createTask(t, st, tk)
	}

	checkIDs(t, "claim of the oldest", TaskIDs(claimTasks(t, st, "other", 1, time.Hour)), []string{leased.ID})
	steps := []struct {
		limit int
		want  []*task.Task
	}{
		{0, nil},
		{-1, nil},
		{2, []*task.Task{a, b}},
		{10, []*task.Task{c}},
		{10, nil},
	}
	for i, s := range steps {
		got := claimTasks(t, st, ownerA, s.limit, lease)
		checkIDs(t, fmt.Sprintf("claim %d (limit %d)", i+1, s.limit), TaskIDs(got), TaskIDs(s.want))
		for j, tk := range got {
			if tk.StageAttempts != 1 {
				t.Errorf("claimed task %s: got StageAttempts %d, want 1", tk.ID, tk.StageAttempts)
			}
			if j < len(s.want) {
				checkEqual(t, "tracks of claimed task "+tk.ID, tk.Tracks, s.want[j].Tracks)
			}
		}
	}
	clock.Advance(time.Minute)
	checkIDs(t, "claim once future is due", TaskIDs(claimTasks(t, st, ownerA, 10, lease)), []string{future.ID})
}

func testTaskLeaseExpiry(t *testing.T, open opener) {
	st, clock := open(t)
	ctx := t.Context()
	tk := newTask(clock, clock.Now())
	createTask(t, st, tk)
	claimTask(t, st, ownerA, tk.ID, 30*time.Second)
	checkIDs(t, "claim while leased", TaskIDs(claimTasks(t, st, ownerB, 10, lease)), nil)

	// A heartbeat at 20s moves the expiry from 30s to 50s.
	clock.Advance(20 * time.Second)
	if err := st.ExtendTaskLease(ctx, tk.ID, ownerA, 30*time.Second); err != nil {
		t.Fatalf("ExtendTaskLease by holder: %v", err)
	}
	clock.Advance(29 * time.Second)
	checkIDs(t, "claim before extended expiry", TaskIDs(claimTasks(t, st, ownerB, 10, lease)), nil)
	clock.Advance(time.Second)
	if got := claimTask(t, st, ownerB, tk.ID, 30*time.Second); got.StageAttempts != 2 {
		t.Errorf("second claim: got StageAttempts %d, want 2", got.StageAttempts)
	}

	// Owner A lost the task: everything it tries fails and changes nothing.
	before := getTask(t, st, tk.ID)
	text := sampleText
	checkLeaseLost(t, "ExtendTaskLease by old owner", st.ExtendTaskLease(ctx, tk.ID, ownerA, time.Hour))
	checkLeaseLost(t, "CommitStage by old owner", CommitStage(ctx, st, ownerA, task.StageCommit{
		TaskID: tk.ID, From: task.StatusPending, To: task.StatusTextSuccess, Text: &text, RunAt: clock.Now(),
		Callback: newCallback(clock, tk.ID, task.StageText, clock.Now()),
	}))
	checkLeaseLost(t, "ReleaseTask by old owner", st.ReleaseTask(ctx, tk.ID, ownerA, clock.Now()))
	checkEqual(t, "task after old owner's attempts", getTask(t, st, tk.ID), before)
	checkEqual(t, "callbacks after old owner's attempts", getCallbacks(t, st, tk.ID), []*task.Callback(nil))

	// An expired lease is lost even when nobody claimed the task since.
	clock.Advance(30 * time.Second)
	checkLeaseLost(t, "ExtendTaskLease after expiry", st.ExtendTaskLease(ctx, tk.ID, ownerB, time.Hour))
	checkLeaseLost(t, "CommitStage after expiry", CommitStage(ctx, st, ownerB, task.StageCommit{
		TaskID: tk.ID, From: task.StatusPending, To: task.StatusTextSuccess, Text: &text, RunAt: clock.Now(),
	}))
	if got := claimTask(t, st, ownerC, tk.ID, lease); got.StageAttempts != 3 {
		t.Errorf("third claim: got StageAttempts %d, want 3", got.StageAttempts)
	}
	commit(t, st, ownerC, task.StageCommit{
		TaskID: tk.ID, From: task.StatusPending, To: task.StatusTextSuccess, Text: &text, RunAt: clock.Now(),
	})
}

func testConcurrentTaskClaims(t *testing.T, open opener) {
	const tasks, claimers = 200, 16
	st, clock := open(t)
	for range tasks {
		createTask(t, st, newTask(clock, clock.Now()))
	}
	claimedBy := claimConcurrently(t, claimers, func(owner string, limit int) ([]string, error) {
		got, err := st.ClaimTasks(t.Context(), owner, limit, time.Hour)
		return TaskIDs(got), err
	})
	if len(claimedBy) != tasks {
		t.Errorf("got %d tasks claimed, want %d", len(claimedBy), tasks)
	}
}

func testCommitStageStaleFrom(t *testing.T, open opener) {
	st, clock := open(t)
	tk := newTask(clock, clock.Now())
	createTask(t, st, tk)
	claimTask(t, st, ownerA, tk.ID, lease)
	text := sampleText
	commit(t, st, ownerA, task.StageCommit{
		TaskID: tk.ID, From: task.StatusPending, To: task.StatusTextSuccess, Text: &text, RunAt: clock.Now(),
		Callback: newCallback(clock, tk.ID, task.StageText, clock.Now()),
	})
	claimTask(t, st, ownerA, tk.ID, lease)
	before, beforeCbs := getTask(t, st, tk.ID), getCallbacks(t, st, tk.ID)

	// The same stage committed again, as a runner that redid it would.
	clock.Advance(time.Second)
	other := task.Text{Title: "Other", Lyrics: "other", Tags: "other"}
	checkLeaseLost(t, "CommitStage with stale From", CommitStage(t.Context(), st, ownerA, task.StageCommit{
		TaskID: tk.ID, From: task.StatusPending, To: task.StatusTextSuccess, Text: &other, RunAt: clock.Now(),
		Callback: newCallback(clock, tk.ID, task.StageFirst, clock.Now()),
	}))
	checkEqual(t, "task", getTask(t, st, tk.ID), before)
	checkEqual(t, "callbacks", getCallbacks(t, st, tk.ID), beforeCbs)

	// The lease survived the refused commit.
	commit(t, st, ownerA, task.StageCommit{
		TaskID: tk.ID, From: task.StatusTextSuccess, To: task.StatusFirstSuccess,
		Track: newTrack(tk.ID, 0, clock.Now()), RunAt: clock.Now(),
	})
}

func testCommitStageInsertFails(t *testing.T, open opener) {
	tests := []struct {
		name string
		// spoil makes the commit of the complete stage fail, given the
		// callback of the first stage.
		spoil func(c *task.StageCommit, first *task.Callback)
	}{
		{"duplicate stage", func(c *task.StageCommit, _ *task.Callback) { c.Callback.Stage = task.StageFirst }},
		{"duplicate callback id", func(c *task.StageCommit, first *task.Callback) { c.Callback.ID = first.ID }},
		{"duplicate track index", func(c *task.StageCommit, _ *task.Callback) {
			c.Track.ID = task.TrackID(c.TaskID, 7)
			c.Track.Index = 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, clock := open(t)
			tk := newTask(clock, clock.Now())
			createTask(t, st, tk)
			text := sampleText
			claimTask(t, st, ownerA, tk.ID, lease)
			commit(t, st, ownerA, task.StageCommit{
				TaskID: tk.ID, From: task.StatusPending, To: task.StatusTextSuccess, Text: &text, RunAt: clock.Now(),
				Callback: newCallback(clock, tk.ID, task.StageText, clock.Now()),
			})
			claimTask(t, st, ownerA, tk.ID, lease)
			first := newCallback(clock, tk.ID, task.StageFirst, clock.Now())
			commit(t, st, ownerA, task.StageCommit{
				TaskID: tk.ID, From: task.StatusTextSuccess, To: task.StatusFirstSuccess,
				Track: newTrack(tk.ID, 0, clock.Now()), RunAt: clock.Now(), Callback: first,
			})
			claimTask(t, st, ownerA, tk.ID, lease)
			before, beforeCbs := getTask(t, st, tk.ID), getCallbacks(t, st, tk.ID)

			clock.Advance(time.Second)
			c := task.StageCommit{
				TaskID: tk.ID, From: task.StatusFirstSuccess, To: task.StatusSuccess,
				Track: newTrack(tk.ID, 1, clock.Now()), RunAt: clock.Now(),
				Callback: newCallback(clock, tk.ID, task.StageComplete, clock.Now()),
			}
			tt.spoil(&c, first)
			if err := CommitStage(t.Context(), st, ownerA, c); err == nil {
				t.Fatal("CommitStage: got nil error, want an error")
			}
			checkEqual(t, "task", getTask(t, st, tk.ID), before)
			checkEqual(t, "callbacks", getCallbacks(t, st, tk.ID), beforeCbs)
			// Nothing was applied, the lease included.
			if err := st.ExtendTaskLease(t.Context(), tk.ID, ownerA, lease); err != nil {
				t.Errorf("ExtendTaskLease after the failed commit: %v", err)
			}
		})
	}
}

func testCommitStages(t *testing.T, open opener) {
	st, clock := open(t)
	ctx := t.Context()
	now := clock.Now()
	theirs, first, second := newTask(clock, now.Add(-3*time.Second)), newTask(clock, now.Add(-2*time.Second)), newTask(clock, now.Add(-time.Second))
	for _, tk := range []*task.Task{theirs, first, second} {
		createTask(t, st, tk)
	}
	checkIDs(t, "claim by B", TaskIDs(claimTasks(t, st, ownerB, 1, lease)), []string{theirs.ID})
	checkIDs(t, "claim by A", TaskIDs(claimTasks(t, st, ownerA, 10, lease)), []string{first.ID, second.ID})

	if results, err := st.CommitStages(ctx, ownerA, nil); err != nil || len(results) != 0 {
		t.Errorf("CommitStages of no commit: got %v, %v, want no result and no error", results, err)
	}
	text := sampleText
	// The next stages are due in the order of the tasks.
	textStage := func(tk *task.Task) task.StageCommit {
		return task.StageCommit{
			TaskID: tk.ID, From: task.StatusPending, To: task.StatusTextSuccess, Text: &text, RunAt: tk.RunAt,
			Callback: newCallback(clock, tk.ID, task.StageText, clock.Now()),
		}
	}
	commits := []task.StageCommit{textStage(first), textStage(theirs), textStage(second)}
	theirsBefore := getTask(t, st, theirs.ID)
	results, err := st.CommitStages(ctx, ownerA, commits)
	if err != nil || len(results) != len(commits) {
		t.Fatalf("CommitStages: got %d results, error %v; want %d results", len(results), err, len(commits))
	}
	checkLeaseLost(t, "the commit of B's task by A", results[1])
	for _, i := range []int{0, 2} {
		if results[i] != nil {
			t.Errorf("commit %d of A's batch: %v", i, results[i])
		}
		c := commits[i]
		if got := getTask(t, st, c.TaskID); got.Status != task.StatusTextSuccess || got.Text != text {
			t.Errorf("task %d after the batch: status %s, text %+v; want %s, %+v", i, got.Status, got.Text, task.StatusTextSuccess, text)
		}
		checkEqual(t, "callbacks of a committed task", getCallbacks(t, st, c.TaskID), []*task.Callback{c.Callback})
	}
	checkEqual(t, "B's task after A's batch", getTask(t, st, theirs.ID), theirsBefore)
	checkEqual(t, "callbacks of B's task", getCallbacks(t, st, theirs.ID), []*task.Callback(nil))
	if err := st.ExtendTaskLease(ctx, theirs.ID, ownerB, lease); err != nil {
		t.Errorf("B's lease after A's batch: %v", err)
	}

	// A batch with a commit that cannot be stored fails as a whole.
	checkIDs(t, "claim by A", TaskIDs(claimTasks(t, st, ownerA, 10, lease)), []string{first.ID, second.ID})
	before := []*task.Task{getTask(t, st, first.ID), getTask(t, st, second.ID)}
	clock.Advance(time.Second)
	ok := task.StageCommit{
		TaskID: first.ID, From: task.StatusTextSuccess, To: task.StatusFirstSuccess,
		Track: newTrack(first.ID, 0, clock.Now()), RunAt: clock.Now(), Callback: newCallback(clock, first.ID, task.StageFirst, clock.Now()),
	}
	spoilt := task.StageCommit{
		TaskID: second.ID, From: task.StatusTextSuccess, To: task.StatusFirstSuccess,
		Track: newTrack(second.ID, 0, clock.Now()), RunAt: clock.Now(), Callback: newCallback(clock, second.ID, task.StageFirst, clock.Now()),
	}
	spoilt.Callback.ID = commits[0].Callback.ID
	if results, err := st.CommitStages(ctx, ownerA, []task.StageCommit{ok, spoilt}); err == nil || errors.Is(err, task.ErrLeaseLost) {
		t.Errorf("CommitStages with a duplicate callback ID: got %v, %v; want an error that is not %v", results, err, task.ErrLeaseLost)
	}
	for i, tk := range []*task.Task{first, second} {
		checkEqual(t, "task after the failed batch", getTask(t, st, tk.ID), before[i])
		checkEqual(t, "callbacks after the failed batch", getCallbacks(t, st, tk.ID), []*task.Callback{commits[2*i].Callback})
		if err := st.ExtendTaskLease(ctx, tk.ID, ownerA, lease); err != nil {
			t.Errorf("A's lease after the failed batch: %v", err)
		}
	}
}

func testReleaseTask(t *testing.T, open opener) {
	st, clock := open(t)
	ctx := t.Context()
	tk := newTask(clock, clock.Now())
	createTask(t, st, tk)
	claimTask(t, st, ownerA, tk.ID, lease)

	checkLeaseLost(t, "ReleaseTask by another owner", st.ReleaseTask(ctx, tk.ID, ownerB, clock.Now()))
	runAt := clock.Now().Add(5 * time.Minute)
	if err := st.ReleaseTask(ctx, tk.ID, ownerA, runAt); err != nil {
		t.Fatalf("ReleaseTask: %v", err)
	}
	checkLeaseLost(t, "second ReleaseTask", st.ReleaseTask(ctx, tk.ID, ownerA, clock.Now()))

	want := *tk
	want.RunAt, want.StageAttempts = runAt, 1
	checkEqual(t, "released task", getTask(t, st, tk.ID), &want)
	checkIDs(t, "claim before run_at", TaskIDs(claimTasks(t, st, ownerB, 10, lease)), nil)
	if next, err := st.NextTaskDue(ctx); err != nil || !next.Equal(runAt) {
		t.Errorf("NextTaskDue: got %v, %v, want %v, nil", next, err, runAt)
	}
	clock.Advance(5 * time.Minute)
	// The released claim still counts.
	if got := claimTask(t, st, ownerB, tk.ID, lease); got.StageAttempts != 2 {
		t.Errorf("claim after release: got StageAttempts %d, want 2", got.StageAttempts)
	}
}

func testNextTaskDue(t *testing.T, open opener) {
	st, clock := open(t)
	ctx := t.Context()
	now := clock.Now()
	check := func(step string, want time.Time) {
		t.Helper()
		got, err := st.NextTaskDue(ctx)
		if err != nil {
			t.Fatalf("NextTaskDue %s: %v", step, err)
		}
		if !got.Equal(want) {
			t.Errorf("NextTaskDue %s: got %v, want %v", step, got, want)
		}
	}
	check("of an empty store", time.Time{})

	final := newTask(clock, now.Add(-time.Hour))
	final.Status, final.Failure = task.StatusSensitiveWordError, task.NewFailure(400)
	createTask(t, st, final)
	check("with a final task only", time.Time{})

	later, soon, due := newTask(clock, now.Add(3*time.Minute)), newTask(clock, now.Add(time.Minute)), newTask(clock, now.Add(-time.Second))
	for _, tk := range []*task.Task{later, soon, due} {
		createTask(t, st, tk)
	}
	check("with a due task", now.Add(-time.Second))

	// A leased task becomes claimable when its lease expires.
	claimTask(t, st, ownerA, due.ID, 30*time.Second)
	check("with the due task leased", now.Add(30*time.Second))
	commit(t, st, ownerA, task.StageCommit{
		TaskID: due.ID, From: task.StatusPending, To: task.StatusGenerateAudioFailed, Failure: task.NewFailure(500),
	})
	check("with the due task final", now.Add(time.Minute))
}

func testReadySignals(t *testing.T, open opener) {
	// claimed stores a task and claims it.
	claimed := func(t *testing.T, st task.Store, clock *Clock) *task.Task {
		t.Helper()
		tk := newTask(clock, clock.Now())
		createTask(t, st, tk)
		claimTask(t, st, ownerA, tk.ID, lease)
		return tk
	}
	tests := []struct {
		name                     string
		act                      func(t *testing.T, st task.Store, clock *Clock)
		taskReady, callbackReady bool // which signals must fire
	}{
		{"CreateTask", func(t *testing.T, st task.Store, clock *Clock) {
			createTask(t, st, newTask(clock, clock.Now()))
		}, true, false},
		{"CreateTask unread", func(t *testing.T, st task.Store, clock *Clock) {
			// Nobody reads the signals: sending must not block.
			for range 5 {
				createTask(t, st, newTask(clock, clock.Now()))
			}
		}, true, false},
		{"CommitStage with callback", func(t *testing.T, st task.Store, clock *Clock) {
			tk := claimed(t, st, clock)
			drain(st)
			commit(t, st, ownerA, task.StageCommit{
				TaskID: tk.ID, From: task.StatusPending, To: task.StatusTextSuccess, Text: &sampleText, RunAt: clock.Now(),
				Callback: newCallback(clock, tk.ID, task.StageText, clock.Now()),
			})
		}, true, true},
		{"CommitStage without callback", func(t *testing.T, st task.Store, clock *Clock) {
			tk := claimed(t, st, clock)
			drain(st)
			commit(t, st, ownerA, task.StageCommit{
				TaskID: tk.ID, From: task.StatusPending, To: task.StatusTextSuccess, Text: &sampleText, RunAt: clock.Now(),
			})
		}, true, false},
		{"ReleaseTask", func(t *testing.T, st task.Store, clock *Clock) {
			tk := claimed(t, st, clock)
			drain(st)
			if err := st.ReleaseTask(t.Context(), tk.ID, ownerA, clock.Now()); err != nil {
				t.Fatalf("ReleaseTask: %v", err)
			}
		}, true, false},
		{"RecordAttempt failed", func(t *testing.T, st task.Store, clock *Clock) {
			cb := addCallbacks(t, st, clock, clock.Now())[0]
			claimCallbacks(t, st, ownerA, task.LaneFirst, 1, lease)
			drain(st)
			recordAttempt(t, st, ownerA, task.Attempt{CallbackID: cb.ID, N: 1, StartedAt: clock.Now(), StatusCode: 503, Error: "HTTP 503"},
				task.DeliveryPending, clock.Now().Add(time.Minute))
		}, false, true},
		{"DeferCallback", func(t *testing.T, st task.Store, clock *Clock) {
			cb := addCallbacks(t, st, clock, clock.Now())[0]
			claimCallbacks(t, st, ownerA, task.LaneFirst, 1, lease)
			drain(st)
			if err := deferOne(t, st, ownerA, cb.ID, clock.Now().Add(time.Second)); err != nil {
				t.Fatalf("DeferCallbacks: %v", err)
			}
		}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, clock := open(t)
			drain(st)
			tt.act(t, st, clock)
			if tt.taskReady {
				waitSignal(t, "TaskReady", st.TaskReady())
			}
			if tt.callbackReady {
				waitSignal(t, "CallbackReady", st.CallbackReady())
			}
		})
	}
}

// signalWait bounds the wait for a ready signal. Stores may deliver them
// asynchronously (PostgreSQL's LISTEN), so the suite waits instead of
// polling once; a correct store signals long before.
const signalWait = 10 * time.Second

func waitSignal(t *testing.T, name string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(signalWait):
		t.Errorf("%s: got no signal within %v, want one", name, signalWait)
	}
}

// drain empties both ready channels, so that a later signal is known to
// come from what follows.
func drain(st task.Store) {
	for _, ch := range []<-chan struct{}{st.TaskReady(), st.CallbackReady()} {
		for empty := false; !empty; {
			select {
			case <-ch:
			default:
				empty = true
			}
		}
	}
}
