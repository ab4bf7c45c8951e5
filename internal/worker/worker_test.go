package worker_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/sqlite"
	"github.com/tunehook/tunehook/internal/task"
)

// waitLimit guards every wait of these tests against a hang; it is no
// timing assertion, conditions are normally met in milliseconds.
const waitLimit = 20 * time.Second

// openStore opens a fresh SQLite store in a temporary directory; now is its
// clock (nil: time.Now).
func openStore(t *testing.T, now func() time.Time) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "tunehook.db"), sqlite.Options{Now: now, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// testLogger logs to the test's output, so a failing test shows what the
// workers did.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// boolPtr returns a pointer to b, for the request's optional booleans.
func boolPtr(b bool) *bool { return &b }

// newRequest returns a valid non-custom request with prompt.
func newRequest(prompt string) task.Request {
	return task.Request{
		CustomMode:   boolPtr(false),
		Instrumental: boolPtr(false),
		Model:        "V5",
		CallBackURL:  "http://receiver.example/callback",
		Prompt:       prompt,
	}
}

// createTask stores a new PENDING task with param as its request, due at
// runAt.
func createTask(t *testing.T, st task.Store, param string, runAt time.Time) *task.Task {
	t.Helper()
	tk := &task.Task{
		ID:          task.NewTaskID(),
		Owner:       task.OwnerOf("test-key"),
		Model:       "V5",
		Param:       param,
		CallbackURL: "http://receiver.example/callback",
		Status:      task.StatusPending,
		RunAt:       runAt,
		CreatedAt:   runAt,
		UpdatedAt:   runAt,
	}
	if err := st.CreateTask(t.Context(), tk); err != nil {
		t.Fatalf("create task: %v", err)
	}
	return tk
}

// start runs a worker's Run until the test ends; the returned stop cancels
// it and waits for Run to return.
func start(t *testing.T, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(waitLimit):
				t.Errorf("Run did not return within %v of cancel", waitLimit)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing the test when it does not
// within waitLimit; what names the condition in that failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// taskOf reads a task, failing the test on error.
func taskOf(t *testing.T, st task.Store, id string) *task.Task {
	t.Helper()
	tk, err := st.Task(t.Context(), id)
	if err != nil {
		t.Fatalf("read task %s: %v", id, err)
	}
	return tk
}

// callbacksOf reads the callbacks of a task, failing the test on error.
func callbacksOf(t *testing.T, st task.Store, id string) []*task.Callback {
	t.Helper()
	cbs, err := st.Callbacks(t.Context(), id)
	if err != nil {
		t.Fatalf("read callbacks of %s: %v", id, err)
	}
	return cbs
}
