package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/pgtest"
	"github.com/tunehook/tunehook/internal/storetest"
	"github.com/tunehook/tunehook/internal/task"
)

// TestClaimRace claims the same work from three instances at once, eight
// goroutines each: every item must be claimed exactly once.
func TestClaimRace(t *testing.T) {
	t.Parallel()
	const items, instances, claimers = 200, 3, 8
	tests := []struct {
		name string
		// add stores the items and returns their IDs.
		add   func(t *testing.T, s *Store) []string
		claim func(ctx context.Context, s *Store, owner string, limit int) ([]string, error)
	}{
		{"tasks", func(t *testing.T, s *Store) []string {
			return storetest.TaskIDs(createTasks(t, s, items))
		}, func(ctx context.Context, s *Store, owner string, limit int) ([]string, error) {
			tasks, err := s.ClaimTasks(ctx, owner, limit, time.Hour)
			return storetest.TaskIDs(tasks), err
		}},
		{"first attempts", func(t *testing.T, s *Store) []string {
			return storetest.CallbackIDs(failTasks(t, s, items))
		}, func(ctx context.Context, s *Store, owner string, limit int) ([]string, error) {
			cbs, err := s.ClaimCallbacks(ctx, owner, task.LaneFirst, limit, time.Hour)
			return storetest.CallbackIDs(cbs), err
		}},
		{"retries", func(t *testing.T, s *Store) []string {
			return storetest.CallbackIDs(retryCallbacks(t, s, items))
		}, func(ctx context.Context, s *Store, owner string, limit int) ([]string, error) {
			cbs, err := s.ClaimCallbacks(ctx, owner, task.LaneRetry, limit, time.Hour)
			return storetest.CallbackIDs(cbs), err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dsn := pgtest.URL(t)
			stores := make([]*Store, instances)
			for i := range stores {
				stores[i] = openStore(t, dsn, fixedNow)
			}
			ids := tt.add(t, stores[0])

			var (
				mu     sync.Mutex
				claims = make(map[string][]string) // ID -> owners
				wg     sync.WaitGroup
			)
			for i, s := range stores {
				for j := range claimers {
					owner, limit := fmt.Sprintf("instance-%d-claimer-%d", i, j), 1+j%5
					wg.Go(func() {
						for {
							got, err := tt.claim(t.Context(), s, owner, limit)
							if err != nil {
								t.Errorf("claim by %s: %v", owner, err)
								return
							}
							if len(got) == 0 {
								return
							}
							mu.Lock()
							for _, id := range got {
								claims[id] = append(claims[id], owner)
							}
							mu.Unlock()
						}
					})
				}
			}
			wg.Wait()
			for _, id := range ids {
				if owners := claims[id]; len(owners) != 1 {
					t.Errorf("%s: got claimed by %v, want by exactly one owner", id, owners)
				}
			}
			if len(claims) != len(ids) {
				t.Errorf("got %d items claimed, want %d", len(claims), len(ids))
			}
		})
	}
}

// TestClaimSkipsLocked holds the row of one due item locked in a
// transaction of its own: a claim must hand out the others at once instead
// of waiting for that lock.
func TestClaimSkipsLocked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		table string
		// add stores three items due now and returns their IDs.
		add   func(t *testing.T, s *Store) []string
		claim func(ctx context.Context, s *Store) ([]string, error)
	}{
		{"tasks", "tasks", func(t *testing.T, s *Store) []string {
			return storetest.TaskIDs(createTasks(t, s, 3))
		}, func(ctx context.Context, s *Store) ([]string, error) {
			tasks, err := s.ClaimTasks(ctx, "claimer", 10, time.Hour)
			return storetest.TaskIDs(tasks), err
		}},
		{"callbacks", "callbacks", func(t *testing.T, s *Store) []string {
			return storetest.CallbackIDs(failTasks(t, s, 3))
		}, func(ctx context.Context, s *Store) ([]string, error) {
			cbs, err := s.ClaimCallbacks(ctx, "claimer", task.LaneFirst, 10, time.Hour)
			return storetest.CallbackIDs(cbs), err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dsn := pgtest.URL(t)
			s := openStore(t, dsn, fixedNow)
			ids := tt.add(t, s)
			// Items due at the same time are claimed in ID order.
			slices.Sort(ids)
			locked := ids[1]

			tx, err := connect(t, dsn).Begin(t.Context())
			if err != nil {
				t.Fatalf("begin: %v", err)
			}
			defer tx.Rollback(context.Background())
			if _, err := tx.Exec(t.Context(), `SELECT id FROM `+tt.table+` WHERE id = $1 FOR UPDATE`, locked); err != nil {
				t.Fatalf("lock %s: %v", locked, err)
			}

			// A claim that waited for the lock would run into this
			// deadline: the lock is held until the test ends.
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			got, err := tt.claim(ctx, s)
			if err != nil {
				t.Fatalf("claim beside a locked row: %v", err)
			}
			if want := []string{ids[0], ids[2]}; !slices.Equal(got, want) {
				t.Errorf("claim beside locked %s: got %v, want %v", locked, got, want)
			}
		})
	}
}

// TestWakeUpAcrossInstances checks that what one instance commits wakes
// another one's TaskReady and CallbackReady.
func TestWakeUpAcrossInstances(t *testing.T) {
	t.Parallel()
	dsn := pgtest.URL(t)
	a, b := openStore(t, dsn, fixedNow), openStore(t, dsn, fixedNow)
	waitListening(t, a)
	ctx := t.Context()

	tk := newTask()
	if err := b.CreateTask(ctx, tk); err != nil {
		t.Fatalf("CreateTask on B: %v", err)
	}
	waitSignal(t, "A's TaskReady after CreateTask on B", a.TaskReady())

	if got, err := b.ClaimTasks(ctx, "b", 1, time.Hour); err != nil || len(got) != 1 {
		t.Fatalf("ClaimTasks on B: got %d tasks, %v, want 1, nil", len(got), err)
	}
	cb := &task.Callback{
		ID: task.NewCallbackID(), Stage: task.StageText, URL: tk.CallbackURL,
		Body: []byte(`{"code":200}`), NextAttemptAt: fixedNow(), CreatedAt: fixedNow(),
	}
	err := storetest.CommitStage(ctx, b, "b", task.StageCommit{
		TaskID: tk.ID, From: task.StatusPending, To: task.StatusTextSuccess,
		Text: &task.Text{Title: "T"}, RunAt: fixedNow(), Callback: cb,
	})
	if err != nil {
		t.Fatalf("CommitStage on B: %v", err)
	}
	waitSignal(t, "A's TaskReady after CommitStage on B", a.TaskReady())
	waitSignal(t, "A's CallbackReady after CommitStage on B", a.CallbackReady())

	if got, err := b.ClaimCallbacks(ctx, "b", task.LaneFirst, 1, time.Hour); err != nil || len(got) != 1 {
		t.Fatalf("ClaimCallbacks on B: got %d callbacks, %v, want 1, nil", len(got), err)
	}
	a1 := task.Attempt{CallbackID: cb.ID, N: 1, StartedAt: fixedNow(), StatusCode: 500, Error: "HTTP 500"}
	results, err := b.RecordAttempts(ctx, "b", []task.AttemptRecord{{Attempt: a1, State: task.DeliveryPending, Next: fixedNow()}})
	if err = errors.Join(append(results, err)...); err != nil {
		t.Fatalf("RecordAttempts on B: %v", err)
	}
	waitSignal(t, "A's CallbackReady after a retry scheduled on B", a.CallbackReady())

	if got, err := b.ClaimCallbacks(ctx, "b", task.LaneRetry, 1, time.Hour); err != nil || len(got) != 1 {
		t.Fatalf("ClaimCallbacks of the retry on B: got %d callbacks, %v, want 1, nil", len(got), err)
	}
	results, err = b.DeferCallbacks(ctx, "b", []task.Deferral{{CallbackID: cb.ID, Until: fixedNow().Add(time.Second)}})
	if err = errors.Join(append(results, err)...); err != nil {
		t.Fatalf("DeferCallbacks on B: %v", err)
	}
	waitSignal(t, "A's CallbackReady after a deferral on B", a.CallbackReady())

	if got, err := b.ClaimTasks(ctx, "b", 1, time.Hour); err != nil || len(got) != 1 {
		t.Fatalf("ClaimTasks on B: got %d tasks, %v, want 1, nil", len(got), err)
	}
	if err := b.ReleaseTask(ctx, tk.ID, "b", fixedNow()); err != nil {
		t.Fatalf("ReleaseTask on B: %v", err)
	}
	waitSignal(t, "A's TaskReady after ReleaseTask on B", a.TaskReady())
}

// TestListenerReconnects kills the listener's connection: the listener
// connects again, and wake-ups work as before.
func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	dsn := pgtest.URL(t)
	name := uniqueName()
	a := openStore(t, withParams(t, dsn, map[string]string{"application_name": name}), fixedNow)
	b := openStore(t, dsn, fixedNow)
	waitListening(t, a)

	if n := terminate(t, dsn, name+listenSuffix); n != 1 {
		t.Fatalf("terminated %d listener connections, want 1", n)
	}
	waitListening(t, a)
	createTasks(t, b, 1)
	waitSignal(t, "A's TaskReady after CreateTask on B", a.TaskReady())
}

// TestClaimUsesIndex checks that the claims, and NextCallbackDue, can find
// due work through the partial indexes, without reading every task or
// callback ever stored.
// Sequential scans are priced out, so that the plan on an empty table is
// the one a large table gets.
func TestClaimUsesIndex(t *testing.T) {
	t.Parallel()
	dsn := pgtest.URL(t)
	openStore(t, dsn, fixedNow) // migrates
	conn := connect(t, dsn)
	claimArgs := []any{"owner", fixedNow(), fixedNow(), 10}
	tests := []struct {
		query   string
		args    []any
		indexes []string
	}{
		{claimTasksQuery, claimArgs, []string{"tasks_due"}},
		{claimCallbacksQueries[task.LaneFirst], claimArgs, []string{"callbacks_due_first"}},
		{claimCallbacksQueries[task.LaneRetry], claimArgs, []string{"callbacks_due_retry"}},
		{nextCallbackDueQuery, nil, []string{"callbacks_due_first", "callbacks_due_retry", "callbacks_leased"}},
		{nextTaskDueQuery, nil, []string{"tasks_due", "tasks_leased"}},
	}
	for _, tt := range tests {
		tx, err := conn.Begin(t.Context())
		if err != nil {
			t.Fatalf("begin: %v", err)
		}
		if _, err := tx.Exec(t.Context(), `SET LOCAL enable_seqscan = off`); err != nil {
			t.Fatalf("SET enable_seqscan: %v", err)
		}
		rows, err := tx.Query(t.Context(), `EXPLAIN `+tt.query, tt.args...)
		if err != nil {
			t.Fatalf("EXPLAIN: %v", err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatalf("EXPLAIN: %v", err)
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("EXPLAIN: %v", err)
		}
		if err := tx.Rollback(t.Context()); err != nil {
			t.Fatalf("rollback: %v", err)
		}
		// An index scan or a bitmap index scan, depending on the
		// statistics: either names the index.
		p := strings.Join(plan, "\n")
		for _, index := range tt.indexes {
			if !strings.Contains(p, " on "+index) && !strings.Contains(p, " using "+index) {
				t.Errorf("plan: got\n%s\nwant a scan of index %s", p, index)
			}
		}
	}
}

// TestClaimCursor drains a lane the way a backlog is drained, one full
// claim after another: each reads on from where the last one ended,
// passing over a callback handed back behind it, which the claim that runs
// out of callbacks after the cursor takes from the start.
func TestClaimCursor(t *testing.T) {
	t.Parallel()
	s := openStore(t, pgtest.URL(t), fixedNow)
	// The full scans that run every second must not come between these
	// claims, however slowly the test runs.
	s.cursors.every = time.Hour
	ids := storetest.CallbackIDs(failTasks(t, s, 4))
	// Callbacks due at the same time are claimed in ID order.
	slices.Sort(ids)
	claim := func(what string, want []string) {
		t.Helper()
		cbs, err := s.ClaimCallbacks(t.Context(), "claimer", task.LaneFirst, 2, time.Hour)
		if got := storetest.CallbackIDs(cbs); err != nil || !slices.Equal(got, want) {
			t.Errorf("%s: got %v, %v, want %v", what, got, err, want)
		}
	}
	claim("first claim", ids[:2])
	results, err := s.DeferCallbacks(t.Context(), "claimer", []task.Deferral{{CallbackID: ids[0], Until: fixedNow()}})
	if err = errors.Join(append(results, err)...); err != nil {
		t.Fatalf("hand %s back: %v", ids[0], err)
	}
	claim("claim after the cursor", ids[2:])
	claim("claim past the last callback", ids[:1])
}
