package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

func redeliver(t *testing.T, st task.Store, id string) *task.Callback {
	t.Helper()
	c, err := st.RedeliverCallback(t.Context(), id)
	if err != nil {
		t.Fatalf("RedeliverCallback(%s): %v", id, err)
	}
	return c
}

func getCallback(t *testing.T, st task.Store, id string) *task.Callback {
	t.Helper()
	c, err := st.Callback(t.Context(), id)
	if err != nil {
		t.Fatalf("Callback(%s): %v", id, err)
	}
	return c
}

// testRedeliverCallback redelivers a delivered callback, lets the new
// series exhaust its retries, and redelivers it again: each series starts
// in the first lane with the whole retry schedule ahead, and the history
// keeps every attempt with its series.
func testRedeliverCallback(t *testing.T, open opener) {
	st, clock := open(t)
	cb := addCallbacks(t, st, clock, clock.Now())[0]
	var history []task.Attempt
	// attempt claims cb in lane and records an attempt of series
	// redelivery that leaves it in state.
	attempt := func(lane task.Lane, redelivery, n int, state task.DeliveryState, next time.Time) {
		t.Helper()
		checkEqual(t, "claimed series", len(claimCallbacks(t, st, ownerA, lane, 10, lease)), 1)
		a := task.Attempt{CallbackID: cb.ID, N: n, StartedAt: clock.Now(), Duration: 30 * time.Millisecond, StatusCode: 500, Error: "HTTP 500"}
		if state == task.DeliveryDelivered {
			a.StatusCode, a.Error = 200, ""
		}
		recordAttempt(t, st, ownerA, a, state, next)
		a.Redelivery = redelivery
		history = append(history, a)
	}
	attempt(task.LaneFirst, 0, 1, task.DeliveryDelivered, time.Time{})

	clock.Advance(time.Minute)
	drain(st)
	got := redeliver(t, st, cb.ID)
	want := *cb
	want.State, want.Attempts, want.Redeliveries, want.NextAttemptAt, want.History =
		task.DeliveryPending, 0, 1, clock.Now(), history
	checkEqual(t, "redelivered callback", got, &want)
	checkEqual(t, "Callback after the redelivery", getCallback(t, st, cb.ID), &want)
	waitSignal(t, "CallbackReady after the redelivery", st.CallbackReady())
	if due, err := st.NextCallbackDue(t.Context()); err != nil || !due.Equal(clock.Now()) {
		t.Errorf("NextCallbackDue: got %v, %v, want %v, nil", due, err, clock.Now())
	}
	// The new series starts over: first lane, then the retry lane.
	checkIDs(t, "retry lane's claim", CallbackIDs(claimCallbacks(t, st, ownerA, task.LaneRetry, 10, lease)), nil)
	claimed := claimCallbacks(t, st, ownerB, task.LaneFirst, 10, time.Millisecond)
	checkEqual(t, "first lane's claim", claimed, []*task.Callback{{
		ID: cb.ID, TaskID: cb.TaskID, Stage: cb.Stage, URL: cb.URL, Body: cb.Body, State: task.DeliveryPending,
		Redeliveries: 1, NextAttemptAt: clock.Now(), CreatedAt: cb.CreatedAt,
	}})
	clock.Advance(time.Millisecond) // ownerB's lease expires
	attempt(task.LaneFirst, 1, 1, task.DeliveryPending, clock.Now())
	attempt(task.LaneRetry, 1, 2, task.DeliveryExhausted, time.Time{})

	want.State, want.Attempts, want.NextAttemptAt, want.FinishedAt, want.History =
		task.DeliveryExhausted, 2, time.Time{}, clock.Now(), history
	checkEqual(t, "callbacks after the second series", getCallbacks(t, st, cb.TaskID), []*task.Callback{&want})

	clock.Advance(time.Hour)
	got = redeliver(t, st, cb.ID)
	want.State, want.Attempts, want.Redeliveries, want.NextAttemptAt, want.FinishedAt =
		task.DeliveryPending, 0, 2, clock.Now(), time.Time{}
	checkEqual(t, "callback redelivered again", got, &want)
	attempt(task.LaneFirst, 2, 1, task.DeliveryDelivered, time.Time{})
	want.State, want.Attempts, want.NextAttemptAt, want.FinishedAt, want.History =
		task.DeliveryDelivered, 1, time.Time{}, clock.Now(), history
	checkEqual(t, "callback delivered in the third series", getCallback(t, st, cb.ID), &want)

	for name, err := range map[string]error{
		"Callback":          errOf(st.Callback(t.Context(), "msg_unknown")),
		"RedeliverCallback": errOf(st.RedeliverCallback(t.Context(), "msg_unknown")),
	} {
		if !errors.Is(err, task.ErrNotFound) {
			t.Errorf("%s of an unknown callback: got error %v, want %v", name, err, task.ErrNotFound)
		}
	}
}

// errOf returns the error of a call that also returns a value.
func errOf[T any](_ T, err error) error { return err }

// testRedeliverInFlight redelivers a callback while an attempt of it is in
// flight: the attempt is recorded under the old series, and the new one
// waits for it, then goes out.
func testRedeliverInFlight(t *testing.T, open opener) {
	st, clock := open(t)
	cb := addCallbacks(t, st, clock, clock.Now())[0]
	claimCallbacks(t, st, ownerA, task.LaneFirst, 10, lease)
	clock.Advance(time.Second)
	redelivered := clock.Now()
	redeliver(t, st, cb.ID)
	checkIDs(t, "claim while the attempt is in flight", CallbackIDs(claimCallbacks(t, st, ownerB, task.LaneFirst, 10, lease)), nil)

	clock.Advance(time.Second)
	drain(st)
	a := task.Attempt{CallbackID: cb.ID, N: 1, StartedAt: redelivered, Duration: time.Second, StatusCode: 200}
	recordAttempt(t, st, ownerA, a, task.DeliveryDelivered, time.Time{})
	waitSignal(t, "CallbackReady after the attempt of the old series", st.CallbackReady())
	want := *cb
	want.Redeliveries, want.NextAttemptAt, want.History = 1, redelivered, []task.Attempt{a}
	checkEqual(t, "callback after the attempt of the old series", getCallback(t, st, cb.ID), &want)
	checkIDs(t, "claim of the new series", CallbackIDs(claimCallbacks(t, st, ownerB, task.LaneFirst, 10, lease)), []string{cb.ID})
	b := task.Attempt{CallbackID: cb.ID, N: 1, StartedAt: clock.Now(), Duration: time.Second, StatusCode: 200}
	recordAttempt(t, st, ownerB, b, task.DeliveryDelivered, time.Time{})
	b.Redelivery = 1
	want.State, want.Attempts, want.NextAttemptAt, want.FinishedAt, want.History =
		task.DeliveryDelivered, 1, time.Time{}, clock.Now(), []task.Attempt{a, b}
	checkEqual(t, "callback after the attempt of the new series", getCallback(t, st, cb.ID), &want)
}
