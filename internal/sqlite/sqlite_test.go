package sqlite

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/storetest"
	"github.com/tunehook/tunehook/internal/task"
)

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) task.Store {
		t.Helper()
		s := openStore(t, filepath.Join(t.TempDir(), "tunehook.db"), clock.Now)
		t.Cleanup(func() { closeStore(t, s) })
		return s
	})
}

// fixedNow is the clock of the SQLite-specific tests: they look at leases,
// never at their expiry, so time stands still.
func fixedNow() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

func openStore(t testing.TB, path string, now func() time.Time) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, Options{Now: now})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func closeStore(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// newTask returns a pending task due now.
func newTask() *task.Task {
	now := fixedNow()
	return &task.Task{
		ID: task.NewTaskID(), Owner: task.OwnerOf("k"), Model: "V5", Param: `{"model":"V5"}`,
		CallbackURL: "https://receiver.example/cb", Status: task.StatusPending,
		RunAt: now, CreatedAt: now, UpdatedAt: now,
	}
}

// failTask stores a task that failed at once, with its pending callback,
// and returns both. It claims a task, so s must hold no other due task.
func failTask(t testing.TB, s *Store) (*task.Task, *task.Callback) {
	t.Helper()
	ctx, now := t.Context(), fixedNow()
	tk := newTask()
	if err := s.CreateTask(ctx, tk); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	if got, err := s.ClaimTasks(ctx, "fixture", 1, time.Hour); err != nil || len(got) != 1 {
		t.Fatalf("ClaimTasks: got %d tasks, %v, want 1, nil", len(got), err)
	}
	cb := &task.Callback{
		ID: task.NewCallbackID(), TaskID: tk.ID, Stage: task.StageError, URL: tk.CallbackURL,
		Body: []byte(`{"code":501}`), State: task.DeliveryPending, NextAttemptAt: now, CreatedAt: now,
	}
	err := storetest.CommitStage(ctx, s, "fixture", task.StageCommit{
		TaskID: tk.ID, From: task.StatusPending, To: task.StatusGenerateAudioFailed,
		Failure: task.NewFailure(501), Callback: cb,
	})
	if err != nil {
		t.Fatalf("CommitStage: %v", err)
	}
	return tk, cb
}

func TestOpenLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tunehook.db")
	first := openStore(t, path, fixedNow)

	_, err := Open(t.Context(), path, Options{})
	if !errors.Is(err, task.ErrLocked) {
		t.Fatalf("second Open: got error %v, want %v", err, task.ErrLocked)
	}
	for _, want := range []string{path + ".lock", "another tunehook is running on this data dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("second Open: got error %q, want it to contain %q", err, want)
		}
	}

	closeStore(t, first)
	closeStore(t, openStore(t, path, fixedNow))
}

// TestReopen closes a store with work under lease, as a crash would leave
// it, and checks what the next Open finds.
func TestReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tunehook.db")
	s := openStore(t, path, fixedNow)
	failed, cb := failTask(t, s)
	pending := newTask()
	if err := s.CreateTask(ctx, pending); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	if got, err := s.ClaimTasks(ctx, "crashed", 10, time.Hour); err != nil || len(got) != 1 {
		t.Fatalf("ClaimTasks: got %d tasks, %v, want 1, nil", len(got), err)
	}
	if got, err := s.ClaimCallbacks(ctx, "crashed", task.LaneFirst, 10, time.Hour); err != nil || len(got) != 1 {
		t.Fatalf("ClaimCallbacks: got %d callbacks, %v, want 1, nil", len(got), err)
	}
	wantFailed, err := s.Task(ctx, failed.ID)
	if err != nil {
		t.Fatalf("Task: %v", err)
	}
	wantVersions := migrationRows(t, s)
	closeStore(t, s)

	s = openStore(t, path, fixedNow)
	defer closeStore(t, s)
	t.Run("leases cleared", func(t *testing.T) {
		// The clock has not moved: only clearing frees the leases.
		tasks, err := s.ClaimTasks(ctx, "next", 10, time.Hour)
		if err != nil || len(tasks) != 1 || tasks[0].ID != pending.ID {
			t.Errorf("ClaimTasks: got %v, %v, want [%s], nil", storetest.TaskIDs(tasks), err, pending.ID)
		}
		cbs, err := s.ClaimCallbacks(ctx, "next", task.LaneFirst, 10, time.Hour)
		if err != nil || len(cbs) != 1 || cbs[0].ID != cb.ID {
			t.Errorf("ClaimCallbacks: got %v, %v, want [%s], nil", storetest.CallbackIDs(cbs), err, cb.ID)
		}
	})
	t.Run("data kept", func(t *testing.T) {
		got, err := s.Task(ctx, failed.ID)
		if err != nil {
			t.Fatalf("Task: %v", err)
		}
		if got.Status != wantFailed.Status || *got.Failure != *wantFailed.Failure || !got.UpdatedAt.Equal(wantFailed.UpdatedAt) {
			t.Errorf("Task: got %+v, want %+v", got, wantFailed)
		}
		cbs, err := s.Callbacks(ctx, failed.ID)
		if err != nil || len(cbs) != 1 || string(cbs[0].Body) != string(cb.Body) {
			t.Errorf("Callbacks: got %v, %v, want one with body %s", cbs, err, cb.Body)
		}
	})
	t.Run("migrations not reapplied", func(t *testing.T) {
		if got := migrationRows(t, s); got != wantVersions {
			t.Errorf("goose_db_version rows: got %d, want %d", got, wantVersions)
		}
	})
}

// migrationRows counts goose's records of applied migrations.
func migrationRows(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM goose_db_version`).Scan(&n); err != nil {
		t.Fatalf("count migrations: %v", err)
	}
	return n
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "tunehook.db"), fixedNow)
	defer closeStore(t, s)
	tests := []struct {
		pool   string
		pragma string
		want   string
	}{
		{"writer", "journal_mode", "wal"},
		{"writer", "synchronous", "2"}, // FULL
		{"writer", "foreign_keys", "1"},
		{"writer", "busy_timeout", "5000"},
		{"reader", "journal_mode", "wal"},
		{"reader", "query_only", "1"},
		{"reader", "busy_timeout", "5000"},
	}
	for _, tt := range tests {
		db := s.w
		if tt.pool == "reader" {
			db = s.r
		}
		var got string
		if err := db.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("%s: PRAGMA %s: %v", tt.pool, tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("%s: PRAGMA %s: got %s, want %s", tt.pool, tt.pragma, got, tt.want)
		}
	}
	if _, err := s.r.ExecContext(t.Context(), `DELETE FROM tasks`); err == nil {
		t.Error("write through the read pool: got nil error, want one")
	}
}

// TestOpenPath checks that characters with a meaning in URIs stay part of
// the database's path.
func TestOpenPath(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data ?#%20&x=1")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tune hook.db")
	closeStore(t, openStore(t, path, fixedNow))
	for _, p := range []string{path, path + ".lock"} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("stat %s: %v", p, err)
		}
	}
}

func BenchmarkCommitStage(b *testing.B) {
	s := openStore(b, filepath.Join(b.TempDir(), "tunehook.db"), fixedNow)
	defer closeStore(b, s)
	ctx, now := b.Context(), fixedNow()
	text := task.Text{Title: "Title", Lyrics: strings.Repeat("la ", 400), Tags: "pop"}
	body := []byte(strings.Repeat("x", 1500)) // about a callback's size
	for b.Loop() {
		b.StopTimer()
		tk := newTask()
		if err := s.CreateTask(ctx, tk); err != nil {
			b.Fatal(err)
		}
		if got, err := s.ClaimTasks(ctx, "bench", 1, time.Minute); err != nil || len(got) != 1 {
			b.Fatalf("ClaimTasks: got %d tasks, %v", len(got), err)
		}
		b.StartTimer()
		err := storetest.CommitStage(ctx, s, "bench", task.StageCommit{
			TaskID: tk.ID, From: task.StatusPending, To: task.StatusTextSuccess, Text: &text, RunAt: now.Add(time.Hour),
			Callback: &task.Callback{ID: task.NewCallbackID(), Stage: task.StageText, URL: tk.CallbackURL,
				Body: body, NextAttemptAt: now.Add(time.Hour), CreatedAt: now},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClaimRecordCallback(b *testing.B) {
	s := openStore(b, filepath.Join(b.TempDir(), "tunehook.db"), fixedNow)
	defer closeStore(b, s)
	ctx, now := b.Context(), fixedNow()
	response := []byte(`{"status":"received"}`)
	for b.Loop() {
		b.StopTimer()
		failTask(b, s)
		b.StartTimer()
		cbs, err := s.ClaimCallbacks(ctx, "bench", task.LaneFirst, 1, time.Minute)
		if err != nil || len(cbs) != 1 {
			b.Fatalf("ClaimCallbacks: got %d callbacks, %v", len(cbs), err)
		}
		a := task.Attempt{CallbackID: cbs[0].ID, N: 1, StartedAt: now, Duration: 40 * time.Millisecond, StatusCode: 200, Response: response}
		results, err := s.RecordAttempts(ctx, "bench", []task.AttemptRecord{{Attempt: a, State: task.DeliveryDelivered}})
		if err = errors.Join(append(results, err)...); err != nil {
			b.Fatal(err)
		}
	}
}

// TestIndexPlans checks that the looks for due work read the heads of the
// indexes in their order, however many tasks wait and callbacks are in
// flight: the leased rows through the indexes made for them, with no sort
// of their own.
func TestIndexPlans(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "tunehook.db"), fixedNow)
	defer closeStore(t, s)
	tests := []struct {
		name, query string
		indexes     []string
	}{
		{"next task due", nextTaskDueQuery, []string{"tasks_due", "tasks_leased"}},
		{"next callback due", nextCallbackDueQuery, []string{"callbacks_due_first", "callbacks_due_retry", "callbacks_leased"}},
	}
	for _, tt := range tests {
		rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+tt.query)
		if err != nil {
			t.Fatalf("%s: EXPLAIN: %v", tt.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatalf("%s: EXPLAIN: %v", tt.name, err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: EXPLAIN: %v", tt.name, err)
		}
		p := strings.Join(plan, "\n")
		for _, index := range tt.indexes {
			if !regexp.MustCompile(`USING (COVERING )?INDEX ` + index + `\b`).MatchString(p) {
				t.Errorf("%s: plan\n%s\ndoes not read index %s", tt.name, p, index)
			}
		}
		if strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("%s: plan\n%s\nsorts rows instead of reading an index in order", tt.name, p)
		}
	}
}
