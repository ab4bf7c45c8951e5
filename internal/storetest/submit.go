package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// keyTTL is the idempotency keys' time to live in the suite.
const keyTTL = 24 * time.Hour

// keyed returns a submission of tk under idempotency key with hash.
func keyed(tk *task.Task, key, hash string) task.Submission {
	return task.Submission{Task: tk, IdempotencyKey: key, RequestHash: hash, IdempotencyTTL: keyTTL}
}

// ownedTask returns a new task of owner, due now.
func ownedTask(clock *Clock, owner string) *task.Task {
	tk := newTask(clock, clock.Now())
	tk.Owner = task.OwnerOf(owner)
	return tk
}

func submit(t *testing.T, st task.Store, sub task.Submission) task.Submitted {
	t.Helper()
	got, err := st.Submit(t.Context(), sub)
	if err != nil {
		t.Fatalf("Submit(%s, key %q): %v", sub.Task.ID, sub.IdempotencyKey, err)
	}
	return got
}

// checkSubmitted reports when a submission did not create its own task.
func checkSubmitted(t *testing.T, st task.Store, name string, got task.Submitted, tk *task.Task) {
	t.Helper()
	checkEqual(t, name, got, task.Submitted{TaskID: tk.ID})
	checkEqual(t, name+": the task", getTask(t, st, tk.ID), tk)
}

// checkAbsent reports when task id exists.
func checkAbsent(t *testing.T, st task.Store, name, id string) {
	t.Helper()
	if _, err := st.Task(t.Context(), id); !errors.Is(err, task.ErrNotFound) {
		t.Errorf("%s: Task(%s): got error %v, want %v", name, id, err, task.ErrNotFound)
	}
}

func checkCredits(t *testing.T, st task.Store, owner string, initial, want int) {
	t.Helper()
	got, err := st.Credits(t.Context(), task.OwnerOf(owner), initial)
	if err != nil || got != want {
		t.Errorf("Credits(%s, %d): got %d, %v, want %d, nil", owner, initial, got, err, want)
	}
}

func testSubmitIdempotent(t *testing.T, open opener) {
	st, clock := open(t)
	first := ownedTask(clock, "alice")
	checkSubmitted(t, st, "first use of the key", submit(t, st, keyed(first, "key-1", "hash-a")), first)

	retry := ownedTask(clock, "alice")
	checkEqual(t, "same key, same request", submit(t, st, keyed(retry, "key-1", "hash-a")),
		task.Submitted{TaskID: first.ID, Replayed: true})
	checkAbsent(t, st, "the replayed submission's task", retry.ID)

	other := ownedTask(clock, "alice")
	if _, err := st.Submit(t.Context(), keyed(other, "key-1", "hash-b")); !errors.Is(err, task.ErrIdempotencyConflict) {
		t.Errorf("same key, another request: got error %v, want %v", err, task.ErrIdempotencyConflict)
	}
	checkAbsent(t, st, "the conflicting submission's task", other.ID)

	// Keys are per owner.
	bobs := ownedTask(clock, "bob")
	checkSubmitted(t, st, "another owner's use of the key", submit(t, st, keyed(bobs, "key-1", "hash-b")), bobs)
	// Without a key, every submission is a task of its own.
	for i := range 2 {
		tk := ownedTask(clock, "alice")
		checkSubmitted(t, st, "submission without a key "+string(rune('1'+i)), submit(t, st, task.Submission{Task: tk}), tk)
	}

	// The key is kept for its whole time to live, counted from its first
	// use, and free after.
	clock.Advance(keyTTL)
	late := ownedTask(clock, "alice")
	checkEqual(t, "same request at the end of the time to live", submit(t, st, keyed(late, "key-1", "hash-a")),
		task.Submitted{TaskID: first.ID, Replayed: true})
	clock.Advance(time.Millisecond)
	reused := ownedTask(clock, "alice")
	checkSubmitted(t, st, "another request once the key expired", submit(t, st, keyed(reused, "key-1", "hash-b")), reused)
	again := ownedTask(clock, "alice")
	checkEqual(t, "the reused key's request again", submit(t, st, keyed(again, "key-1", "hash-b")),
		task.Submitted{TaskID: reused.ID, Replayed: true})
}

// testSubmitConcurrentKey submits one request under one key from many
// goroutines at once, as a client retrying a timed-out submit from several
// threads might: one task, and every submission gets it.
func testSubmitConcurrentKey(t *testing.T, open opener) {
	const submitters = 20
	st, clock := open(t)
	results := make([]task.Submitted, submitters)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range submitters {
		tk := ownedTask(clock, "alice")
		wg.Go(func() {
			<-start
			got, err := st.Submit(t.Context(), keyed(tk, "retried", "hash-a"))
			if err != nil {
				t.Errorf("submitter %d: %v", i, err)
			}
			results[i] = got
		})
	}
	close(start)
	wg.Wait()
	created := 0
	for i, r := range results {
		if r.TaskID != results[0].TaskID {
			t.Errorf("submitter %d got task %s, submitter 0 got %s: want one task", i, r.TaskID, results[0].TaskID)
		}
		if !r.Replayed {
			created++
		}
	}
	if created != 1 {
		t.Errorf("got %d submissions that created a task, want 1", created)
	}
	checkIDs(t, "tasks in the queue", TaskIDs(claimTasks(t, st, ownerA, 2*submitters, lease)), []string{results[0].TaskID})
}

func testSubmitCredits(t *testing.T, open opener) {
	st, clock := open(t)
	costly := func(owner string, credits int) (task.Submission, *task.Task) {
		tk := ownedTask(clock, owner)
		return task.Submission{Task: tk, Cost: 10, Credits: credits}, tk
	}
	checkCredits(t, st, "alice", 25, 25)
	for _, want := range []int{15, 5} {
		sub, tk := costly("alice", 25)
		checkSubmitted(t, st, "charged submission", submit(t, st, sub), tk)
		checkCredits(t, st, "alice", 25, want)
	}
	sub, tk := costly("alice", 25)
	if _, err := st.Submit(t.Context(), sub); !errors.Is(err, task.ErrInsufficientCredits) {
		t.Errorf("submission over the balance: got error %v, want %v", err, task.ErrInsufficientCredits)
	}
	checkAbsent(t, st, "the refused submission's task", tk.ID)
	checkCredits(t, st, "alice", 25, 5)
	// Free submissions are not charged, whatever the balance.
	free := ownedTask(clock, "alice")
	checkSubmitted(t, st, "free submission", submit(t, st, task.Submission{Task: free}), free)
	checkCredits(t, st, "alice", 25, 5)

	// A replay is not charged again.
	sub, tk = costly("bob", 100)
	sub.IdempotencyKey, sub.RequestHash, sub.IdempotencyTTL = "k", "hash-a", keyTTL
	checkSubmitted(t, st, "keyed charged submission", submit(t, st, sub), tk)
	replay := sub
	replay.Task = ownedTask(clock, "bob")
	checkEqual(t, "replay", submit(t, st, replay), task.Submitted{TaskID: tk.ID, Replayed: true})
	checkCredits(t, st, "bob", 100, 90)

	// A refused submission does not take its key: another request under
	// it is refused for credits too, not as a conflict.
	sub, _ = costly("carol", 5)
	sub.IdempotencyKey, sub.RequestHash, sub.IdempotencyTTL = "k", "hash-a", keyTTL
	other := sub
	other.Task, other.RequestHash = ownedTask(clock, "carol"), "hash-b"
	for _, s := range []task.Submission{sub, other} {
		if _, err := st.Submit(t.Context(), s); !errors.Is(err, task.ErrInsufficientCredits) {
			t.Errorf("submission of %s over the balance: got error %v, want %v", s.RequestHash, err, task.ErrInsufficientCredits)
		}
	}
	checkCredits(t, st, "carol", 5, 5)
}

// testRefund fails charged tasks with 531, which refunds, and 501, which
// does not.
func testRefund(t *testing.T, open opener) {
	st, clock := open(t)
	tests := []struct {
		owner string
		code  int
		cost  int
		want  int
	}{
		{"alice", 531, 10, 30},
		{"bob", 501, 10, 20},
		{"carol", 531, 0, 20}, // created while credits were off: nothing to refund
	}
	// Carol has paid for another task, which is not due yet.
	paid := ownedTask(clock, "carol")
	paid.RunAt = clock.Now().Add(time.Hour)
	submit(t, st, task.Submission{Task: paid, Cost: 10, Credits: 30})
	for _, tt := range tests {
		tk := ownedTask(clock, tt.owner)
		submit(t, st, task.Submission{Task: tk, Cost: tt.cost, Credits: 30})
		claimTask(t, st, ownerA, tk.ID, lease)
		f := task.NewFailure(tt.code)
		commit(t, st, ownerA, task.StageCommit{
			TaskID: tk.ID, From: task.StatusPending, To: f.Status(), Failure: f,
			Callback: newCallback(clock, tk.ID, task.StageError, clock.Now()),
		})
		checkCredits(t, st, tt.owner, 30, tt.want)
	}
}

// testSubmitConcurrentCredits charges one balance from many goroutines at
// once: exactly as many tasks as the balance pays for, never more.
func testSubmitConcurrentCredits(t *testing.T, open opener) {
	const submitters, initial, cost = 30, 100, 10
	st, clock := open(t)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted []string
		refused  int
	)
	start := make(chan struct{})
	for i := range submitters {
		tk := ownedTask(clock, "alice")
		wg.Go(func() {
			<-start
			got, err := st.Submit(t.Context(), task.Submission{Task: tk, Cost: cost, Credits: initial})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, task.ErrInsufficientCredits):
				refused++
			case err != nil:
				t.Errorf("submitter %d: %v", i, err)
			default:
				accepted = append(accepted, got.TaskID)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(accepted) != initial/cost || refused != submitters-initial/cost {
		t.Errorf("got %d accepted and %d refused, want %d and %d", len(accepted), refused, initial/cost, submitters-initial/cost)
	}
	checkCredits(t, st, "alice", initial, 0)
	if got := claimTasks(t, st, ownerA, 2*submitters, lease); len(got) != len(accepted) {
		t.Errorf("got %d tasks in the queue, want %d", len(got), len(accepted))
	}
}
