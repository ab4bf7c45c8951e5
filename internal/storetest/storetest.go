// Package storetest is the conformance suite of task.Store: the semantics
// every store (SQLite, PostgreSQL) must have, written against the interface
// alone. A store's tests call Run with a function that opens a fresh, empty
// store reading time from the suite's Clock.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// Clock is a controllable clock shared by a store under test and the code
// that uses it. Run starts every Clock at a fixed, millisecond-aligned
// instant; it moves only when Advance is called.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that stands at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// start is where every Clock of the suite begins.
var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// opener opens a fresh store and its clock for one test.
type opener func(t *testing.T) (task.Store, *Clock)

// Run runs the conformance suite; open returns a fresh, empty store that
// reads time from clock.Now. Every sub-test opens its own store and runs in
// parallel with the others.
func Run(t *testing.T, open func(t *testing.T, clock *Clock) task.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, open opener)
	}{
		{"TaskRoundTrip", testTaskRoundTrip},
		{"TaskNotFound", testTaskNotFound},
		{"StagesRoundTrip", testStagesRoundTrip},
		{"ClaimTasks", testClaimTasks},
		{"TaskLeaseExpiry", testTaskLeaseExpiry},
		{"ConcurrentTaskClaims", testConcurrentTaskClaims},
		{"CommitStageStaleFrom", testCommitStageStaleFrom},
		{"CommitStageInsertFails", testCommitStageInsertFails},
		{"CommitStages", testCommitStages},
		{"ReleaseTask", testReleaseTask},
		{"NextTaskDue", testNextTaskDue},
		{"ReadySignals", testReadySignals},
		{"ClaimCallbacks", testClaimCallbacks},
		{"CallbackLanes", testCallbackLanes},
		{"DeferCallback", testDeferCallback},
		{"DeferCallbacks", testDeferCallbacks},
		{"CallbackLeaseExpiry", testCallbackLeaseExpiry},
		{"ConcurrentCallbackClaims", testConcurrentCallbackClaims},
		{"RecordAttempt", testRecordAttempt},
		{"RecordAttempts", testRecordAttempts},
		{"AttemptHistory", testAttemptHistory},
		{"NextCallbackDue", testNextCallbackDue},
		{"CallbacksOrder", testCallbacksOrder},
		{"CallbacksIndependent", testCallbacksIndependent},
		{"SubmitIdempotent", testSubmitIdempotent},
		{"SubmitConcurrentKey", testSubmitConcurrentKey},
		{"SubmitCredits", testSubmitCredits},
		{"SubmitConcurrentCredits", testSubmitConcurrentCredits},
		{"Refund", testRefund},
		{"RedeliverCallback", testRedeliverCallback},
		{"RedeliverInFlight", testRedeliverInFlight},
		{"Stats", testStats},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, func(t *testing.T) (task.Store, *Clock) {
				t.Helper()
				clock := NewClock(start)
				return open(t, clock), clock
			})
		})
	}
}

// Owners of leases in the suite.
const (
	ownerA = "runner-a"
	ownerB = "runner-b"
	ownerC = "runner-c"
)

// newTask returns a new PENDING task created now and due at runAt.
func newTask(clock *Clock, runAt time.Time) *task.Task {
	custom, instrumental := false, false
	req := task.Request{
		CustomMode:   &custom,
		Instrumental: &instrumental,
		Model:        "V5",
		CallBackURL:  "https://receiver.example/callback?k=v",
		Prompt:       "a calm song about the sea at night",
	}
	now := clock.Now()
	return &task.Task{
		ID:          task.NewTaskID(),
		Owner:       task.OwnerOf("storetest"),
		Model:       req.Model,
		Param:       req.Param(),
		CallbackURL: req.CallBackURL,
		Status:      task.StatusPending,
		RunAt:       runAt,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
}

// newTrack returns track index of task taskID, finished at at.
func newTrack(taskID string, index int, at time.Time) *task.Track {
	id := task.TrackID(taskID, index)
	return &task.Track{
		ID:        id,
		TaskID:    taskID,
		Index:     index,
		AudioKey:  taskID + "/" + id + ".wav",
		ImageKey:  taskID + "/" + id + ".jpeg",
		Duration:  187.25 + float64(index),
		CreatedAt: at,
	}
}

// newCallback returns a pending callback of task taskID for stage, created
// now and due at due, as a store must give it back.
func newCallback(clock *Clock, taskID string, stage task.Stage, due time.Time) *task.Callback {
	return &task.Callback{
		ID:            task.NewCallbackID(),
		TaskID:        taskID,
		Stage:         stage,
		URL:           "https://receiver.example/callback?k=v",
		Body:          fmt.Appendf(nil, `{"code":200,"msg":"ok","data":{"callbackType":%q,"task_id":%q,"data":[]}}`, stage, taskID),
		State:         task.DeliveryPending,
		NextAttemptAt: due,
		CreatedAt:     clock.Now(),
	}
}

// sampleText is the text the suite's text stages write; not ASCII, so that
// encodings are exercised.
var sampleText = task.Text{
	Title:  "Tide — Ünder the Moon",
	Lyrics: "[Verse]\nSalt on the wind ♪\n[Chorus]\nHold on, hold on",
	Tags:   "ambient, calm, piano",
}

func createTask(t *testing.T, st task.Store, tk *task.Task) {
	t.Helper()
	if err := st.CreateTask(t.Context(), tk); err != nil {
		t.Fatalf("CreateTask(%s): %v", tk.ID, err)
	}
}

func getTask(t *testing.T, st task.Store, id string) *task.Task {
	t.Helper()
	tk, err := st.Task(t.Context(), id)
	if err != nil {
		t.Fatalf("Task(%s): %v", id, err)
	}
	return tk
}

func claimTasks(t *testing.T, st task.Store, owner string, limit int, lease time.Duration) []*task.Task {
	t.Helper()
	tasks, err := st.ClaimTasks(t.Context(), owner, limit, lease)
	if err != nil {
		t.Fatalf("ClaimTasks(%s, %d): %v", owner, limit, err)
	}
	return tasks
}

// claimTask claims exactly one task, the one with id.
func claimTask(t *testing.T, st task.Store, owner, id string, lease time.Duration) *task.Task {
	t.Helper()
	tasks := claimTasks(t, st, owner, 10, lease)
	if got := TaskIDs(tasks); len(got) != 1 || got[0] != id {
		t.Fatalf("ClaimTasks(%s) claimed %v, want [%s]", owner, got, id)
	}
	return tasks[0]
}

// CommitStage commits c alone through st.CommitStages and returns its
// result: nil, an error wrapping task.ErrLeaseLost, or the store's error.
func CommitStage(ctx context.Context, st task.Store, owner string, c task.StageCommit) error {
	results, err := st.CommitStages(ctx, owner, []task.StageCommit{c})
	if err != nil {
		return err
	}
	return results[0]
}

func commit(t *testing.T, st task.Store, owner string, c task.StageCommit) {
	t.Helper()
	if err := CommitStage(t.Context(), st, owner, c); err != nil {
		t.Fatalf("CommitStage(%s, %s -> %s): %v", c.TaskID, c.From, c.To, err)
	}
}

func getCallbacks(t *testing.T, st task.Store, taskID string) []*task.Callback {
	t.Helper()
	cbs, err := st.Callbacks(t.Context(), taskID)
	if err != nil {
		t.Fatalf("Callbacks(%s): %v", taskID, err)
	}
	return cbs
}

func claimCallbacks(t *testing.T, st task.Store, owner string, lane task.Lane, limit int, lease time.Duration) []*task.Callback {
	t.Helper()
	cbs, err := st.ClaimCallbacks(t.Context(), owner, lane, limit, lease)
	if err != nil {
		t.Fatalf("ClaimCallbacks(%s, %s, %d): %v", owner, lane, limit, err)
	}
	return cbs
}

// recordAttempt records a alone and fails the test unless it was.
func recordAttempt(t *testing.T, st task.Store, owner string, a task.Attempt, state task.DeliveryState, next time.Time) {
	t.Helper()
	if err := recordOne(t, st, owner, a, state, next); err != nil {
		t.Fatalf("RecordAttempts(%s, %d, %s): %v", a.CallbackID, a.N, state, err)
	}
}

// deferOne defers callback id alone and returns its result, or the
// batch's error.
func deferOne(t *testing.T, st task.Store, owner, id string, until time.Time) error {
	t.Helper()
	results, err := st.DeferCallbacks(t.Context(), owner, []task.Deferral{{CallbackID: id, Until: until}})
	if err != nil {
		return err
	}
	if len(results) != 1 {
		t.Fatalf("DeferCallbacks of one callback: got %d results", len(results))
	}
	return results[0]
}

// recordOne records a alone and returns its result, or the batch's error.
func recordOne(t *testing.T, st task.Store, owner string, a task.Attempt, state task.DeliveryState, next time.Time) error {
	t.Helper()
	results, err := st.RecordAttempts(t.Context(), owner, []task.AttemptRecord{{Attempt: a, State: state, Next: next}})
	if err != nil {
		return err
	}
	if len(results) != 1 {
		t.Fatalf("RecordAttempts of one attempt: got %d results", len(results))
	}
	return results[0]
}

// addCallbacks stores one callback per due time, each of a task of its own
// that fails at once, and returns them as the store must give them back.
// Their IDs ascend in the order of dues. It claims tasks, so the store must
// hold no other due task.
func addCallbacks(t *testing.T, st task.Store, clock *Clock, dues ...time.Time) []*task.Callback {
	t.Helper()
	var tasks []*task.Task
	for range dues {
		tk := newTask(clock, clock.Now())
		createTask(t, st, tk)
		tasks = append(tasks, tk)
	}
	if claimed := claimTasks(t, st, "fixture", len(tasks), time.Minute); len(claimed) != len(tasks) {
		t.Fatalf("fixture claimed %d tasks, want %d", len(claimed), len(tasks))
	}
	cbs := make([]*task.Callback, len(dues))
	for i, tk := range tasks {
		cbs[i] = newCallback(clock, tk.ID, task.StageError, dues[i])
		cbs[i].ID = fmt.Sprintf("msg_%04d_%s", i, cbs[i].ID)
		commit(t, st, "fixture", task.StageCommit{
			TaskID:   tk.ID,
			From:     task.StatusPending,
			To:       task.StatusGenerateAudioFailed,
			Failure:  task.NewFailure(501),
			Callback: cbs[i],
		})
	}
	return cbs
}

// addRetries stores one callback per due time whose first attempt failed,
// so that it waits in the retry lane, due at its due time, and returns them
// as ClaimCallbacks must give them back. Their IDs ascend in the order of
// dues. It claims tasks and first attempts, so the store must hold no
// other due task or first attempt.
func addRetries(t *testing.T, st task.Store, clock *Clock, dues ...time.Time) []*task.Callback {
	t.Helper()
	now := make([]time.Time, len(dues))
	for i := range now {
		now[i] = clock.Now()
	}
	cbs := addCallbacks(t, st, clock, now...)
	checkIDs(t, "fixture's claim of first attempts", CallbackIDs(claimCallbacks(t, st, "fixture", task.LaneFirst, len(cbs)+1, time.Minute)),
		CallbackIDs(cbs))
	for i, c := range cbs {
		recordAttempt(t, st, "fixture", task.Attempt{CallbackID: c.ID, N: 1, StartedAt: clock.Now(), StatusCode: 500, Error: "HTTP 500"},
			task.DeliveryPending, dues[i])
		c.Attempts, c.NextAttemptAt = 1, dues[i]
	}
	return cbs
}

// claimConcurrently runs claimers goroutines that each claim with claim,
// a few at a time, until it returns nothing, and returns who claimed each
// ID. An ID claimed twice is an error.
func claimConcurrently(t *testing.T, claimers int, claim func(owner string, limit int) ([]string, error)) map[string]string {
	t.Helper()
	var (
		mu        sync.Mutex
		claimedBy = make(map[string]string)
		wg        sync.WaitGroup
	)
	// record notes a claim and reports whether the claimer should go on:
	// a store that hands out work twice might do so for ever.
	record := func(owner string, ids []string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if prev, ok := claimedBy[id]; ok {
				t.Errorf("%s claimed by %s and %s", id, prev, owner)
				return false
			}
			claimedBy[id] = owner
		}
		return len(ids) > 0
	}
	for i := range claimers {
		owner := fmt.Sprintf("claimer-%d", i)
		wg.Go(func() {
			for {
				ids, err := claim(owner, 1+i%4)
				if err != nil {
					t.Errorf("claim by %s: %v", owner, err)
					return
				}
				if !record(owner, ids) {
					return
				}
			}
		})
	}
	wg.Wait()
	return claimedBy
}

// TaskIDs returns the IDs of tasks, in order, for messages and comparisons.
func TaskIDs(tasks []*task.Task) []string {
	ids := make([]string, len(tasks))
	for i, tk := range tasks {
		ids[i] = tk.ID
	}
	return ids
}

// CallbackIDs returns the IDs of cbs, in order.
func CallbackIDs(cbs []*task.Callback) []string {
	ids := make([]string, len(cbs))
	for i, c := range cbs {
		ids[i] = c.ID
	}
	return ids
}

// checkEqual reports every field in which got differs from want.
func checkEqual[T any](t *testing.T, name string, got, want T) {
	t.Helper()
	for _, d := range diff(name, reflect.ValueOf(got), reflect.ValueOf(want)) {
		t.Error(d)
	}
}

// checkIDs reports when got and want differ.
func checkIDs(t *testing.T, name string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %v, want %v", name, got, want)
	}
}

// checkLeaseLost reports when err is not task.ErrLeaseLost.
func checkLeaseLost(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, task.ErrLeaseLost) {
		t.Errorf("%s: got error %v, want %v", op, err, task.ErrLeaseLost)
	}
}

var timeType = reflect.TypeFor[time.Time]()

// diff returns a line for every difference between got and want below
// path. Times are compared with Equal, so the location does not matter;
// byte slices by content, so nil equals empty.
func diff(path string, got, want reflect.Value) []string {
	mismatch := func() []string {
		return []string{fmt.Sprintf("%s: got %+v, want %+v", path, got.Interface(), want.Interface())}
	}
	if got.Type() == timeType {
		if !got.Interface().(time.Time).Equal(want.Interface().(time.Time)) {
			return mismatch()
		}
		return nil
	}
	switch got.Kind() {
	case reflect.Pointer:
		if got.IsNil() || want.IsNil() {
			if got.IsNil() != want.IsNil() {
				return mismatch()
			}
			return nil
		}
		return diff(path, got.Elem(), want.Elem())
	case reflect.Struct:
		var out []string
		for i := range got.NumField() {
			out = append(out, diff(path+"."+got.Type().Field(i).Name, got.Field(i), want.Field(i))...)
		}
		return out
	case reflect.Slice:
		if got.Type().Elem().Kind() == reflect.Uint8 {
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				return []string{fmt.Sprintf("%s: got %q, want %q", path, got.Bytes(), want.Bytes())}
			}
			return nil
		}
		if got.Len() != want.Len() {
			return []string{fmt.Sprintf("%s: got %d elements, want %d", path, got.Len(), want.Len())}
		}
		var out []string
		for i := range got.Len() {
			out = append(out, diff(fmt.Sprintf("%s[%d]", path, i), got.Index(i), want.Index(i))...)
		}
		return out
	}
	if got.Interface() != want.Interface() {
		return mismatch()
	}
	return nil
}
