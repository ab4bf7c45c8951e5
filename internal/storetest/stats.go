package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// testStats follows the counts and lags of Stats as callbacks are delivered
// and exhausted and tasks wait, are claimed and fall due.
func testStats(t *testing.T, open opener) {
	st, clock := open(t)
	check := func(step string, want task.Stats) {
		t.Helper()
		got, err := st.Stats(t.Context())
		if err != nil {
			t.Fatalf("%s: Stats: %v", step, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", step, got, want)
		}
	}
	if err := st.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	check("empty", task.Stats{Tasks: map[task.Status]int{}, Callbacks: map[task.DeliveryState]int{}})

	cbs := addCallbacks(t, st, clock, clock.Now(), clock.Now())
	clock.Advance(10 * time.Second)
	failed := map[task.Status]int{task.StatusGenerateAudioFailed: 2}
	check("two callbacks due for 10s", task.Stats{
		Tasks:       failed,
		Callbacks:   map[task.DeliveryState]int{task.DeliveryPending: 2},
		CallbackLag: 10 * time.Second,
	})
	claimCallbacks(t, st, ownerA, task.LaneFirst, 10, lease)
	check("callbacks in flight", task.Stats{Tasks: failed, Callbacks: map[task.DeliveryState]int{task.DeliveryPending: 2}})
	recordAttempt(t, st, ownerA, task.Attempt{CallbackID: cbs[0].ID, N: 1, StartedAt: clock.Now(), StatusCode: 200}, task.DeliveryDelivered, time.Time{})
	recordAttempt(t, st, ownerA, task.Attempt{CallbackID: cbs[1].ID, N: 1, StartedAt: clock.Now(), StatusCode: 500, Error: "HTTP 500"},
		task.DeliveryExhausted, time.Time{})
	finals := map[task.DeliveryState]int{task.DeliveryDelivered: 1, task.DeliveryExhausted: 1}
	check("callbacks final", task.Stats{Tasks: failed, Callbacks: finals})

	due := newTask(clock, clock.Now())
	createTask(t, st, due)
	createTask(t, st, newTask(clock, clock.Now().Add(time.Minute)))
	refused := newTask(clock, clock.Now())
	refused.Status, refused.Failure = task.StatusCreateTaskFailed, task.NewFailure(531)
	createTask(t, st, refused)
	clock.Advance(30 * time.Second)
	tasks := map[task.Status]int{task.StatusGenerateAudioFailed: 2, task.StatusPending: 2, task.StatusCreateTaskFailed: 1}
	check("a task due for 30s", task.Stats{Tasks: tasks, Callbacks: finals, TaskLag: 30 * time.Second})
	claimTask(t, st, ownerA, due.ID, lease)
	check("the due task claimed", task.Stats{Tasks: tasks, Callbacks: finals})
	clock.Advance(time.Minute)
	check("the other task due for 30s", task.Stats{Tasks: tasks, Callbacks: finals, TaskLag: 30 * time.Second})
}
