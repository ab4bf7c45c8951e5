package storetest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

func testClaimCallbacks(t *testing.T, open opener) {
	st, clock := open(t)
	now := clock.Now()
	// Neither insertion nor ID order is due order.
	cbs := addCallbacks(t, st, clock,
		now.Add(time.Minute), now.Add(-time.Minute), now.Add(-5*time.Minute),
		now.Add(-2*time.Minute), now.Add(-4*time.Minute), now.Add(-3*time.Minute))
	future, c, final, b, leased, a := cbs[0], cbs[1], cbs[2], cbs[3], cbs[4], cbs[5]

	checkIDs(t, "claim of the retry lane", CallbackIDs(claimCallbacks(t, st, "other", task.LaneRetry, 10, lease)), nil)
	checkEqual(t, "claim of the final one", claimCallbacks(t, st, "other", task.LaneFirst, 1, lease), []*task.Callback{final})
	recordAttempt(t, st, "other", task.Attempt{CallbackID: final.ID, N: 1, StartedAt: now, StatusCode: 204},
		task.DeliveryDelivered, time.Time{})
	checkIDs(t, "claim of the leased one", CallbackIDs(claimCallbacks(t, st, "other", task.LaneFirst, 1, time.Hour)), []string{leased.ID})

	steps := []struct {
		limit int
		want  []*task.Callback
	}{
		{0, nil},
		{-1, nil},
		{2, []*task.Callback{a, b}},
		{10, []*task.Callback{c}},
		{10, nil},
	}
	for i, s := range steps {
		// Claims return every field.
		checkEqual(t, fmt.Sprintf("claim %d (limit %d)", i+1, s.limit), claimCallbacks(t, st, ownerA, task.LaneFirst, s.limit, lease), s.want)
	}
	clock.Advance(time.Minute)
	checkIDs(t, "claim once future is due", CallbackIDs(claimCallbacks(t, st, ownerA, task.LaneFirst, 10, lease)), []string{future.ID})
	clock.Advance(24 * time.Hour)
	// Everything but the final one, whose leases have all expired.
	checkIDs(t, "claim after every lease expired", CallbackIDs(claimCallbacks(t, st, ownerA, task.LaneFirst, 10, lease)),
		[]string{leased.ID, a.ID, b.ID, c.ID, future.ID})
}

func testCallbackLeaseExpiry(t *testing.T, open opener) {
	st, clock := open(t)
	cb := addCallbacks(t, st, clock, clock.Now())[0]
	attempt := func(n int) task.Attempt {
		return task.Attempt{CallbackID: cb.ID, N: n, StartedAt: clock.Now(), Duration: 20 * time.Millisecond, StatusCode: 200}
	}

	checkIDs(t, "first claim", CallbackIDs(claimCallbacks(t, st, ownerA, task.LaneFirst, 10, 30*time.Second)), []string{cb.ID})
	clock.Advance(29 * time.Second)
	checkIDs(t, "claim while leased", CallbackIDs(claimCallbacks(t, st, ownerB, task.LaneFirst, 10, lease)), nil)
	clock.Advance(time.Second)
	checkIDs(t, "claim after expiry", CallbackIDs(claimCallbacks(t, st, ownerB, task.LaneFirst, 10, 30*time.Second)), []string{cb.ID})

	// Owner A lost the callback: its attempt is not recorded.
	checkLeaseLost(t, "RecordAttempts by old owner",
		recordOne(t, st, ownerA, attempt(1), task.DeliveryDelivered, time.Time{}))
	checkEqual(t, "callbacks after old owner's attempt", getCallbacks(t, st, cb.TaskID), []*task.Callback{cb})

	// An expired lease is lost even when nobody claimed the callback since.
	clock.Advance(30 * time.Second)
	checkLeaseLost(t, "RecordAttempts after expiry",
		recordOne(t, st, ownerB, attempt(1), task.DeliveryDelivered, time.Time{}))
	checkIDs(t, "third claim", CallbackIDs(claimCallbacks(t, st, ownerC, task.LaneFirst, 10, lease)), []string{cb.ID})
	recordAttempt(t, st, ownerC, attempt(1), task.DeliveryDelivered, time.Time{})
	want := *cb
	want.State, want.Attempts, want.NextAttemptAt, want.FinishedAt, want.History =
		task.DeliveryDelivered, 1, time.Time{}, clock.Now(), []task.Attempt{attempt(1)}
	checkEqual(t, "callbacks after delivery", getCallbacks(t, st, cb.TaskID), []*task.Callback{&want})
}

// testConcurrentCallbackClaims claims both lanes at once, each with
// several claimers: every callback is claimed once, in its own lane.
func testConcurrentCallbackClaims(t *testing.T, open opener) {
	const callbacks, claimers = 100, 8 // per lane
	st, clock := open(t)
	dues := make([]time.Time, callbacks)
	for i := range dues {
		dues[i] = clock.Now().Add(-time.Duration(i) * time.Millisecond)
	}
	inLane := map[task.Lane][]*task.Callback{
		task.LaneRetry: addRetries(t, st, clock, dues...),
		task.LaneFirst: addCallbacks(t, st, clock, dues...),
	}
	var (
		wg        sync.WaitGroup
		claimedBy = make(map[task.Lane]map[string]string)
		mu        sync.Mutex
	)
	for lane := range inLane {
		wg.Go(func() {
			got := claimConcurrently(t, claimers, func(owner string, limit int) ([]string, error) {
				got, err := st.ClaimCallbacks(t.Context(), string(lane)+"-"+owner, lane, limit, time.Hour)
				return CallbackIDs(got), err
			})
			mu.Lock()
			defer mu.Unlock()
			claimedBy[lane] = got
		})
	}
	wg.Wait()
	for lane, cbs := range inLane {
		got := slices.Sorted(maps.Keys(claimedBy[lane]))
		checkIDs(t, fmt.Sprintf("callbacks claimed in the %s lane", lane), got, CallbackIDs(cbs))
	}
}

func testRecordAttempt(t *testing.T, open opener) {
	tests := []struct {
		name    string
		attempt task.Attempt
		state   task.DeliveryState
		next    time.Duration // from the end of the attempt to the next; pending only
	}{
		{
			name:    "failed, retried later",
			attempt: task.Attempt{StatusCode: 503, Error: "server answered 503 Service Unavailable", Response: []byte("busy, try later")},
			state:   task.DeliveryPending, next: time.Minute,
		},
		{
			name:    "delivered",
			attempt: task.Attempt{StatusCode: 200, Response: []byte(`{"status":"received"}`)},
			state:   task.DeliveryDelivered,
		},
		{
			name:    "exhausted without a response",
			attempt: task.Attempt{Error: "dial tcp 203.0.113.7:443: connect: connection refused"},
			state:   task.DeliveryExhausted,
		},
		{
			name:    "binary response",
			attempt: task.Attempt{StatusCode: 500, Error: "server answered 500", Response: []byte{0, 1, 2, 0xff, 0xfe, 'o', 'k', 0}},
			state:   task.DeliveryPending, next: 5 * time.Minute,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, clock := open(t)
			cb := addCallbacks(t, st, clock, clock.Now())[0]
			clock.Advance(2 * time.Second)
			claimCallbacks(t, st, ownerA, task.LaneFirst, 1, lease)
			a := tt.attempt
			a.CallbackID, a.N, a.StartedAt, a.Duration = cb.ID, 1, clock.Now(), 1234*time.Millisecond
			clock.Advance(a.Duration)
			var next time.Time
			if tt.state == task.DeliveryPending {
				next = clock.Now().Add(tt.next)
			}
			recordAttempt(t, st, ownerA, a, tt.state, next)

			want := *cb
			want.State, want.Attempts, want.NextAttemptAt, want.History = tt.state, 1, next, []task.Attempt{a}
			if tt.state != task.DeliveryPending {
				want.FinishedAt = clock.Now()
			}
			checkEqual(t, "callbacks", getCallbacks(t, st, cb.TaskID), []*task.Callback{&want})

			// The zero time for final callbacks: nothing is due.
			if got, err := st.NextCallbackDue(t.Context()); err != nil || !got.Equal(next) {
				t.Errorf("NextCallbackDue: got %v, %v, want %v, nil", got, err, next)
			}
			checkIDs(t, "claim right after the attempt", CallbackIDs(claimCallbacks(t, st, ownerB, task.LaneRetry, 10, lease)), nil)
			if tt.state == task.DeliveryPending {
				clock.Advance(tt.next - time.Millisecond)
				checkIDs(t, "claim just before next", CallbackIDs(claimCallbacks(t, st, ownerB, task.LaneRetry, 10, lease)), nil)
				clock.Advance(time.Millisecond)
				// Attempted once, it has left the first lane.
				checkIDs(t, "first lane's claim at next", CallbackIDs(claimCallbacks(t, st, ownerB, task.LaneFirst, 10, lease)), nil)
				checkIDs(t, "retry lane's claim at next", CallbackIDs(claimCallbacks(t, st, ownerB, task.LaneRetry, 10, lease)), []string{cb.ID})
			} else {
				clock.Advance(24 * time.Hour)
				for _, lane := range []task.Lane{task.LaneFirst, task.LaneRetry} {
					checkIDs(t, fmt.Sprintf("%s lane's claim of a final callback", lane),
						CallbackIDs(claimCallbacks(t, st, ownerB, lane, 10, lease)), nil)
				}
			}
		})
	}
}

// testRecordAttempts records attempts in batches: each record is fenced
// by its own lease, a lost one skipped without failing the others, and a
// batch that fails as a whole records nothing.
func testRecordAttempts(t *testing.T, open opener) {
	st, clock := open(t)
	now := clock.Now()
	cbs := addCallbacks(t, st, clock, now.Add(-4*time.Second), now.Add(-3*time.Second), now.Add(-2*time.Second), now.Add(-time.Second))
	theirs, delivered, retried, exhausted := cbs[0], cbs[1], cbs[2], cbs[3]
	checkIDs(t, "claim by B", CallbackIDs(claimCallbacks(t, st, ownerB, task.LaneFirst, 1, lease)), []string{theirs.ID})
	checkIDs(t, "claim by A", CallbackIDs(claimCallbacks(t, st, ownerA, task.LaneFirst, 10, lease)),
		[]string{delivered.ID, retried.ID, exhausted.ID})

	if results, err := st.RecordAttempts(t.Context(), ownerA, nil); err != nil || len(results) != 0 {
		t.Errorf("RecordAttempts of no attempt: got %v, %v, want no result and no error", results, err)
	}
	attempt := func(cb *task.Callback, status int, failure string) task.Attempt {
		return task.Attempt{CallbackID: cb.ID, N: 1, StartedAt: clock.Now(), Duration: 40 * time.Millisecond, StatusCode: status, Error: failure}
	}
	ok := task.AttemptRecord{Attempt: attempt(delivered, 200, ""), State: task.DeliveryDelivered}
	// A batch with a record it cannot store fails as a whole.
	bad := task.AttemptRecord{Attempt: attempt(retried, 500, "HTTP 500"), State: "lost"}
	if _, err := st.RecordAttempts(t.Context(), ownerA, []task.AttemptRecord{ok, bad}); err == nil || errors.Is(err, task.ErrLeaseLost) {
		t.Errorf("RecordAttempts with an unknown state: got error %v, want one that is not %v", err, task.ErrLeaseLost)
	}
	checkEqual(t, "callbacks after the failed batch", getCallbacks(t, st, delivered.TaskID), []*task.Callback{delivered})

	drain(st)
	next := clock.Now().Add(time.Minute)
	records := []task.AttemptRecord{
		ok,
		{Attempt: attempt(theirs, 200, ""), State: task.DeliveryDelivered},
		{Attempt: attempt(retried, 503, "HTTP 503"), State: task.DeliveryPending, Next: next},
		// Its lease is freed by the first record of the batch.
		{Attempt: attempt(delivered, 200, ""), State: task.DeliveryDelivered},
		{Attempt: attempt(exhausted, 0, "connection refused"), State: task.DeliveryExhausted},
	}
	results, err := st.RecordAttempts(t.Context(), ownerA, records)
	if err != nil {
		t.Fatalf("RecordAttempts: %v", err)
	}
	if len(results) != len(records) {
		t.Fatalf("RecordAttempts of %d attempts: got %d results", len(records), len(results))
	}
	for i, lost := range []bool{false, true, false, true, false} {
		if lost {
			checkLeaseLost(t, fmt.Sprintf("result %d", i), results[i])
		} else if results[i] != nil {
			t.Errorf("result %d: got %v, want nil", i, results[i])
		}
	}
	waitSignal(t, "CallbackReady after a batch that left a callback pending", st.CallbackReady())

	want := func(cb *task.Callback, r task.AttemptRecord) *task.Callback {
		w := *cb
		w.State, w.Attempts, w.NextAttemptAt, w.History = r.State, 1, r.Next, []task.Attempt{r.Attempt}
		if r.State != task.DeliveryPending {
			w.FinishedAt = clock.Now()
		}
		return &w
	}
	checkEqual(t, "delivered callback", getCallbacks(t, st, delivered.TaskID), []*task.Callback{want(delivered, records[0])})
	checkEqual(t, "callback of another owner", getCallbacks(t, st, theirs.TaskID), []*task.Callback{theirs})
	checkEqual(t, "retried callback", getCallbacks(t, st, retried.TaskID), []*task.Callback{want(retried, records[2])})
	checkEqual(t, "exhausted callback", getCallbacks(t, st, exhausted.TaskID), []*task.Callback{want(exhausted, records[4])})
	// B's lease was untouched by A's batch.
	recordAttempt(t, st, ownerB, records[1].Attempt, task.DeliveryDelivered, time.Time{})
}

// testDeferCallbacks defers callbacks in a batch: each is fenced by its
// own lease, a lost one skipped without failing the others.
func testDeferCallbacks(t *testing.T, open opener) {
	st, clock := open(t)
	now := clock.Now()
	cbs := addCallbacks(t, st, clock, now.Add(-3*time.Second), now.Add(-2*time.Second), now.Add(-time.Second))
	theirs, soon, later := cbs[0], cbs[1], cbs[2]
	checkIDs(t, "claim by B", CallbackIDs(claimCallbacks(t, st, ownerB, task.LaneFirst, 1, lease)), []string{theirs.ID})
	checkIDs(t, "claim by A", CallbackIDs(claimCallbacks(t, st, ownerA, task.LaneFirst, 10, lease)), []string{soon.ID, later.ID})

	deferrals := []task.Deferral{
		{CallbackID: later.ID, Until: now.Add(2 * time.Minute)},
		{CallbackID: theirs.ID, Until: now.Add(time.Minute)},
		{CallbackID: soon.ID, Until: now.Add(time.Minute)},
		// Its lease is freed by the first deferral of the batch.
		{CallbackID: later.ID, Until: now.Add(time.Minute)},
	}
	drain(st)
	results, err := st.DeferCallbacks(t.Context(), ownerA, deferrals)
	if err != nil {
		t.Fatalf("DeferCallbacks: %v", err)
	}
	if len(results) != len(deferrals) {
		t.Fatalf("DeferCallbacks of %d callbacks: got %d results", len(deferrals), len(results))
	}
	for i, lost := range []bool{false, true, false, true} {
		if lost {
			checkLeaseLost(t, fmt.Sprintf("result %d", i), results[i])
		} else if results[i] != nil {
			t.Errorf("result %d: got %v, want nil", i, results[i])
		}
	}
	waitSignal(t, "CallbackReady after deferrals", st.CallbackReady())
	if results, err := st.DeferCallbacks(t.Context(), ownerA, nil); err != nil || len(results) != 0 {
		t.Errorf("DeferCallbacks of no callback: got %v, %v, want no result and no error", results, err)
	}

	clock.Advance(time.Minute)
	// theirs is still B's, later due a minute after soon.
	checkIDs(t, "claim a minute later", CallbackIDs(claimCallbacks(t, st, ownerC, task.LaneFirst, 10, lease)), []string{soon.ID})
	clock.Advance(time.Minute)
	checkIDs(t, "claim two minutes later", CallbackIDs(claimCallbacks(t, st, ownerC, task.LaneFirst, 10, lease)), []string{later.ID})
}

// testAttemptHistory delivers a callback at the third attempt and checks
// the history of all three.
func testAttemptHistory(t *testing.T, open opener) {
	st, clock := open(t)
	cb := addCallbacks(t, st, clock, clock.Now())[0]
	type step struct {
		a     task.Attempt
		state task.DeliveryState
		pause time.Duration // before the next attempt
	}
	steps := []step{
		{task.Attempt{N: 1, Duration: 15 * time.Second, Error: "no answer within 15s"}, task.DeliveryPending, time.Minute},
		{task.Attempt{N: 2, Duration: 87 * time.Millisecond, StatusCode: 404, Error: "server answered 404 Not Found",
			Response: []byte("404 page not found\n")}, task.DeliveryPending, 5 * time.Minute},
		{task.Attempt{N: 3, Duration: 3 * time.Millisecond, StatusCode: 202, Response: []byte("{}")}, task.DeliveryDelivered, 0},
	}
	var history []task.Attempt
	for _, s := range steps {
		lane := task.LaneRetry
		if s.a.N == 1 {
			lane = task.LaneFirst
		}
		checkIDs(t, fmt.Sprintf("claim for attempt %d", s.a.N), CallbackIDs(claimCallbacks(t, st, ownerA, lane, 10, time.Minute)), []string{cb.ID})
		s.a.CallbackID, s.a.StartedAt = cb.ID, clock.Now()
		clock.Advance(s.a.Duration)
		var next time.Time
		if s.state == task.DeliveryPending {
			next = clock.Now().Add(s.pause)
		}
		recordAttempt(t, st, ownerA, s.a, s.state, next)
		history = append(history, s.a)
		clock.Advance(s.pause)
	}
	want := *cb
	want.State, want.Attempts, want.NextAttemptAt, want.FinishedAt, want.History =
		task.DeliveryDelivered, 3, time.Time{}, clock.Now(), history
	checkEqual(t, "callbacks", getCallbacks(t, st, cb.TaskID), []*task.Callback{&want})
}

func testNextCallbackDue(t *testing.T, open opener) {
	st, clock := open(t)
	ctx := t.Context()
	now := clock.Now()
	check := func(step string, want time.Time) {
		t.Helper()
		got, err := st.NextCallbackDue(ctx)
		if err != nil {
			t.Fatalf("NextCallbackDue %s: %v", step, err)
		}
		if !got.Equal(want) {
			t.Errorf("NextCallbackDue %s: got %v, want %v", step, got, want)
		}
	}
	check("of an empty store", time.Time{})

	final := addCallbacks(t, st, clock, now.Add(-time.Hour))[0]
	claimCallbacks(t, st, ownerA, task.LaneFirst, 1, lease)
	recordAttempt(t, st, ownerA, task.Attempt{CallbackID: final.ID, N: 1, StartedAt: now, Error: "refused"},
		task.DeliveryExhausted, time.Time{})
	check("with a final callback only", time.Time{})

	cbs := addCallbacks(t, st, clock, now.Add(3*time.Minute), now.Add(time.Minute), now.Add(-time.Second))
	check("with a due callback", now.Add(-time.Second))

	// A leased callback becomes claimable when its lease expires.
	checkIDs(t, "claim", CallbackIDs(claimCallbacks(t, st, ownerA, task.LaneFirst, 10, 30*time.Second)), []string{cbs[2].ID})
	check("with the due callback leased", now.Add(30*time.Second))
	recordAttempt(t, st, ownerA, task.Attempt{CallbackID: cbs[2].ID, N: 1, StartedAt: now, StatusCode: 200},
		task.DeliveryDelivered, time.Time{})
	check("with the due callback delivered", now.Add(time.Minute))
}

// testCallbacksOrder commits a task's callbacks in an order that differs
// from both their creation and their stage order.
func testCallbacksOrder(t *testing.T, open opener) {
	st, clock := open(t)
	tk := newTask(clock, clock.Now())
	createTask(t, st, tk)
	checkEqual(t, "callbacks of a task without any", getCallbacks(t, st, tk.ID), []*task.Callback(nil))

	later := newCallback(clock, tk.ID, task.StageComplete, clock.Now())
	later.CreatedAt = clock.Now().Add(2 * time.Second)
	first := newCallback(clock, tk.ID, task.StageFirst, clock.Now())
	text := newCallback(clock, tk.ID, task.StageText, clock.Now())
	// Neither the IDs' order nor the insertion order is the one wanted.
	later.ID, first.ID, text.ID = "msg_a"+later.ID, "msg_b"+first.ID, "msg_c"+text.ID
	commits := []task.StageCommit{
		{From: task.StatusPending, To: task.StatusTextSuccess, Text: &sampleText, Callback: later},
		{From: task.StatusTextSuccess, To: task.StatusFirstSuccess, Track: newTrack(tk.ID, 0, clock.Now()), Callback: first},
		{From: task.StatusFirstSuccess, To: task.StatusSuccess, Track: newTrack(tk.ID, 1, clock.Now()), Callback: text},
	}
	for _, c := range commits {
		c.TaskID, c.RunAt = tk.ID, clock.Now()
		claimTask(t, st, ownerA, tk.ID, lease)
		commit(t, st, ownerA, c)
	}
	// Oldest first; created at the same time, in stage order.
	checkEqual(t, "callbacks", getCallbacks(t, st, tk.ID), []*task.Callback{text, first, later})
}

// testCallbacksIndependent checks that each stage's callback has its own
// lease and schedule: a text callback in trouble does not hold back first.
func testCallbacksIndependent(t *testing.T, open opener) {
	st, clock := open(t)
	tk := newTask(clock, clock.Now())
	createTask(t, st, tk)
	claimTask(t, st, ownerA, tk.ID, lease)
	text := newCallback(clock, tk.ID, task.StageText, clock.Now())
	commit(t, st, ownerA, task.StageCommit{
		TaskID: tk.ID, From: task.StatusPending, To: task.StatusTextSuccess, Text: &sampleText, RunAt: clock.Now(), Callback: text,
	})
	clock.Advance(time.Second)
	claimTask(t, st, ownerA, tk.ID, lease)
	first := newCallback(clock, tk.ID, task.StageFirst, clock.Now())
	commit(t, st, ownerA, task.StageCommit{
		TaskID: tk.ID, From: task.StatusTextSuccess, To: task.StatusFirstSuccess,
		Track: newTrack(tk.ID, 0, clock.Now()), RunAt: clock.Now(), Callback: first,
	})

	checkIDs(t, "claim by A", CallbackIDs(claimCallbacks(t, st, ownerA, task.LaneFirst, 1, lease)), []string{text.ID})
	checkIDs(t, "claim by B", CallbackIDs(claimCallbacks(t, st, ownerB, task.LaneFirst, 1, lease)), []string{first.ID})
	retry := clock.Now().Add(time.Minute)
	textAttempt := task.Attempt{CallbackID: text.ID, N: 1, StartedAt: clock.Now(), StatusCode: 500, Error: "server answered 500"}
	recordAttempt(t, st, ownerA, textAttempt, task.DeliveryPending, retry)
	firstAttempt := task.Attempt{CallbackID: first.ID, N: 1, StartedAt: clock.Now(), StatusCode: 200}
	recordAttempt(t, st, ownerB, firstAttempt, task.DeliveryDelivered, time.Time{})

	wantText, wantFirst := *text, *first
	wantText.Attempts, wantText.NextAttemptAt, wantText.History = 1, retry, []task.Attempt{textAttempt}
	wantFirst.State, wantFirst.Attempts, wantFirst.NextAttemptAt, wantFirst.FinishedAt, wantFirst.History =
		task.DeliveryDelivered, 1, time.Time{}, clock.Now(), []task.Attempt{firstAttempt}
	checkEqual(t, "callbacks", getCallbacks(t, st, tk.ID), []*task.Callback{&wantText, &wantFirst})
}

// testCallbackLanes checks that a callback waits in the first lane until
// an attempt is recorded and in the retry lane after, that each lane is
// claimed in due order, and that NextCallbackDue looks at both.
func testCallbackLanes(t *testing.T, open opener) {
	st, clock := open(t)
	now := clock.Now()
	nextDue := func(step string, want time.Time) {
		t.Helper()
		got, err := st.NextCallbackDue(t.Context())
		if err != nil || !got.Equal(want) {
			t.Errorf("NextCallbackDue %s: got %v, %v, want %v, nil", step, got, err, want)
		}
	}
	// Retries first: the fixture claims first attempts. In neither lane is
	// the IDs' order the due order.
	retries := addRetries(t, st, clock, now.Add(-2*time.Minute), now.Add(2*time.Minute), now.Add(-4*time.Minute))
	firsts := addCallbacks(t, st, clock, now.Add(-time.Minute), now.Add(time.Minute), now.Add(-3*time.Minute))
	nextDue("with both lanes due", now.Add(-4*time.Minute))

	checkEqual(t, "claim of the retry lane", claimCallbacks(t, st, ownerA, task.LaneRetry, 10, lease),
		[]*task.Callback{retries[2], retries[0]})
	// The retry lane's heads are leased: the first lane's head is next.
	nextDue("with the due retries leased", now.Add(-3*time.Minute))
	checkEqual(t, "claim of the first lane", claimCallbacks(t, st, ownerA, task.LaneFirst, 10, lease),
		[]*task.Callback{firsts[2], firsts[0]})
	nextDue("with everything due leased", now.Add(time.Minute))

	clock.Advance(90 * time.Second)
	checkIDs(t, "retry lane once its first lane's future one is due", CallbackIDs(claimCallbacks(t, st, ownerB, task.LaneRetry, 10, lease)), nil)
	nextDue("with the future first attempt due", now.Add(time.Minute))
	checkIDs(t, "first lane once its future one is due", CallbackIDs(claimCallbacks(t, st, ownerB, task.LaneFirst, 10, lease)),
		[]string{firsts[1].ID})
	nextDue("with only the future retry unleased", now.Add(2*time.Minute))

	if _, err := st.ClaimCallbacks(t.Context(), ownerB, task.Lane("express"), 10, lease); err == nil {
		t.Error("ClaimCallbacks of an unknown lane: got no error, want one")
	}
}

// testDeferCallback hands callbacks of both lanes back unattempted: the
// lease is freed at once and fenced like an attempt's, the attempts stay
// as they were, and the callback is claimable again, in its lane, at the
// time it was deferred to.
func testDeferCallback(t *testing.T, open opener) {
	tests := []struct {
		name string
		lane task.Lane
	}{
		{"first attempt", task.LaneFirst},
		{"retry", task.LaneRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, clock := open(t)
			var cb *task.Callback
			if tt.lane == task.LaneFirst {
				cb = addCallbacks(t, st, clock, clock.Now())[0]
			} else {
				cb = addRetries(t, st, clock, clock.Now())[0]
			}
			want := getCallbacks(t, st, cb.TaskID)
			checkIDs(t, "claim by A", CallbackIDs(claimCallbacks(t, st, ownerA, tt.lane, 10, time.Minute)), []string{cb.ID})
			// Sooner than the lease would expire: a lease still held would
			// show in NextCallbackDue and keep B from claiming.
			until := clock.Now().Add(10 * time.Second)

			checkLeaseLost(t, "DeferCallbacks by B", deferOne(t, st, ownerB, cb.ID, until))
			if err := deferOne(t, st, ownerA, cb.ID, time.Time{}); err == nil || errors.Is(err, task.ErrLeaseLost) {
				t.Errorf("DeferCallbacks to the zero time: got error %v, want one that is not %v", err, task.ErrLeaseLost)
			}
			if err := deferOne(t, st, ownerA, cb.ID, until); err != nil {
				t.Fatalf("DeferCallbacks by A: %v", err)
			}
			checkLeaseLost(t, "DeferCallbacks by A again", deferOne(t, st, ownerA, cb.ID, until))

			want[0].NextAttemptAt = until
			checkEqual(t, "callbacks after the deferral", getCallbacks(t, st, cb.TaskID), want)
			if got, err := st.NextCallbackDue(t.Context()); err != nil || !got.Equal(until) {
				t.Errorf("NextCallbackDue: got %v, %v, want %v, nil", got, err, until)
			}
			clock.Advance(until.Sub(clock.Now()) - time.Millisecond)
			checkIDs(t, "claim by B just before", CallbackIDs(claimCallbacks(t, st, ownerB, tt.lane, 10, time.Minute)), nil)
			clock.Advance(time.Millisecond)
			for _, lane := range []task.Lane{task.LaneFirst, task.LaneRetry} {
				var wantIDs []string
				if lane == tt.lane {
					wantIDs = []string{cb.ID}
				}
				checkIDs(t, fmt.Sprintf("claim of the %s lane by B at the time deferred to", lane),
					CallbackIDs(claimCallbacks(t, st, ownerB, lane, 10, time.Minute)), wantIDs)
			}

			// B's lease expires unused: it can defer no more.
			clock.Advance(time.Minute)
			checkLeaseLost(t, "DeferCallbacks after B's lease expired", deferOne(t, st, ownerB, cb.ID, clock.Now()))
			// Nor can anyone defer a final callback.
			claimCallbacks(t, st, ownerC, tt.lane, 10, time.Minute)
			a := task.Attempt{CallbackID: cb.ID, N: cb.Attempts + 1, StartedAt: clock.Now(), StatusCode: 200}
			recordAttempt(t, st, ownerC, a, task.DeliveryDelivered, time.Time{})
			checkLeaseLost(t, "DeferCallbacks of a delivered callback", deferOne(t, st, ownerC, cb.ID, clock.Now()))
			if got := getCallbacks(t, st, cb.TaskID)[0]; got.State != task.DeliveryDelivered || got.Attempts != a.N {
				t.Errorf("callback after delivery: %s after %d attempts, want %s after %d", got.State, got.Attempts, task.DeliveryDelivered, a.N)
			}
		})
	}
}
