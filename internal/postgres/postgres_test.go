package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tunehook/tunehook/internal/pgtest"
	"github.com/tunehook/tunehook/internal/storetest"
	"github.com/tunehook/tunehook/internal/task"
)

func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) task.Store {
		t.Helper()
		return openStore(t, pgtest.URL(t), clock.Now)
	})
}

// fixedNow is the clock of the PostgreSQL-specific tests: they look at
// leases, never at their expiry, so time stands still.
func fixedNow() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

// signalWait bounds the wait for a wake-up: one normally arrives within
// milliseconds, and the listener reconnects within about a second.
const signalWait = 10 * time.Second

// openStore opens a Store on the database at dsn, closed when t ends.
func openStore(t testing.TB, dsn string, now func() time.Time) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn, Options{Now: now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// withParams returns dsn with its query parameters set to params.
func withParams(t testing.TB, dsn string, params map[string]string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", dsn, err)
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// uniqueName returns an application_name no other test uses, so that a
// test can find its own store's connections in pg_stat_activity.
func uniqueName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "tunehook-test-" + hex.EncodeToString(b)
}

// connect opens a connection of the test's own to the database at dsn.
func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// terminate ends the server processes of the connections named
// application_name and returns how many there were.
func terminate(t testing.TB, dsn, applicationName string) int {
	t.Helper()
	var n int
	err := connect(t, dsn).QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1`,
		applicationName).Scan(&n)
	if err != nil {
		t.Fatalf("terminate %s: %v", applicationName, err)
	}
	return n
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

// createTasks stores n tasks due now and returns them.
func createTasks(t testing.TB, s *Store, n int) []*task.Task {
	t.Helper()
	tasks := make([]*task.Task, n)
	for i := range tasks {
		tasks[i] = newTask()
		if err := s.CreateTask(t.Context(), tasks[i]); err != nil {
			t.Fatalf("CreateTask: %v", err)
		}
	}
	return tasks
}

// errorCallback returns the pending callback of a task that failed.
func errorCallback(tk *task.Task) *task.Callback {
	now := fixedNow()
	return &task.Callback{
		ID: task.NewCallbackID(), TaskID: tk.ID, Stage: task.StageError, URL: tk.CallbackURL,
		Body: []byte(`{"code":501}`), State: task.DeliveryPending, NextAttemptAt: now, CreatedAt: now,
	}
}

// failTasks stores n tasks that failed at once, each with its pending
// callback due now, and returns the callbacks. It claims tasks, so s must
// hold no other due task.
func failTasks(t testing.TB, s *Store, n int) []*task.Callback {
	t.Helper()
	ctx := t.Context()
	createTasks(t, s, n)
	tasks, err := s.ClaimTasks(ctx, "fixture", n, time.Hour)
	if err != nil || len(tasks) != n {
		t.Fatalf("ClaimTasks: got %d tasks, %v, want %d, nil", len(tasks), err, n)
	}
	cbs := make([]*task.Callback, n)
	for i, tk := range tasks {
		cbs[i] = errorCallback(tk)
		err := storetest.CommitStage(ctx, s, "fixture", task.StageCommit{
			TaskID: tk.ID, From: task.StatusPending, To: task.StatusGenerateAudioFailed,
			Failure: task.NewFailure(501), Callback: cbs[i],
		})
		if err != nil {
			t.Fatalf("CommitStage: %v", err)
		}
	}
	return cbs
}

// retryCallbacks stores n callbacks whose first attempt failed, due again
// now: they wait in the retry lane.
func retryCallbacks(t testing.TB, s *Store, n int) []*task.Callback {
	t.Helper()
	ctx := t.Context()
	failTasks(t, s, n)
	cbs, err := s.ClaimCallbacks(ctx, "fixture", task.LaneFirst, n, time.Hour)
	if err != nil || len(cbs) != n {
		t.Fatalf("ClaimCallbacks: got %d callbacks, %v, want %d, nil", len(cbs), err, n)
	}
	records := make([]task.AttemptRecord, n)
	for i, c := range cbs {
		a := task.Attempt{CallbackID: c.ID, N: 1, StartedAt: fixedNow(), StatusCode: 503, Error: "HTTP 503"}
		records[i] = task.AttemptRecord{Attempt: a, State: task.DeliveryPending, Next: fixedNow()}
	}
	results, err := s.RecordAttempts(ctx, "fixture", records)
	if err = errors.Join(append(results, err)...); err != nil {
		t.Fatalf("RecordAttempts: %v", err)
	}
	return cbs
}

func waitSignal(t testing.TB, name string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(signalWait):
		t.Fatalf("%s: got no signal within %v, want one", name, signalWait)
	}
}

// drain empties both ready channels of s, so that a later signal is known
// to come from what follows.
func drain(s *Store) {
	for _, ch := range []<-chan struct{}{s.taskReady, s.callbackReady} {
		select {
		case <-ch:
		default:
		}
	}
}

// waitListening waits until the listener of s listens. It signals both
// channels once it does, and nothing else signals CallbackReady while the
// test leaves s alone.
func waitListening(t testing.TB, s *Store) {
	t.Helper()
	waitSignal(t, "CallbackReady of the listener's connection", s.CallbackReady())
	drain(s)
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	// silent completes TCP handshakes (the kernel does, up to its backlog)
	// but never answers, as a host behind a firewall that drops packets
	// would: only the connect timeout ends the wait.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() }) // after the parallel sub-tests
	tests := []struct {
		name string
		addr string
	}{
		{"refused", "127.0.0.1:1"},
		{"silent", silent.Addr().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Far beyond the connect timeout: reaching it is a hang.
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			s, err := Open(ctx, "postgres://tunehook:secret@"+tt.addr+"/tunehook?sslmode=disable", Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open: got nil error, want one")
			}
			if ctx.Err() != nil {
				t.Fatalf("Open: hung until the test's deadline (%v)", err)
			}
			if !strings.Contains(err.Error(), tt.addr) {
				t.Errorf("Open: got error %q, want it to name %s", err, tt.addr)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("Open: got error %q, want it without the password", err)
			}
		})
	}
}

// migrationRows counts goose's records of applied migrations in the schema
// of dsn, by version.
func migrationRows(t testing.TB, dsn string) map[int64]int {
	t.Helper()
	rows, err := connect(t, dsn).Query(t.Context(), `SELECT version_id FROM goose_db_version`)
	if err != nil {
		t.Fatalf("read goose_db_version: %v", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatalf("read goose_db_version: %v", err)
	}
	counts := make(map[int64]int)
	for _, v := range versions {
		counts[v]++
	}
	return counts
}

// appliedOnce reports every migration of migrations/ that is not recorded
// exactly once.
func appliedOnce(t *testing.T, got map[int64]int) {
	t.Helper()
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: got %v, %v", files, err)
	}
	for _, f := range files {
		// A migration's version is its file name's number, which need
		// not follow the previous one's.
		number, _, _ := strings.Cut(path.Base(f), "_")
		v, err := strconv.ParseInt(number, 10, 64)
		if err != nil {
			t.Fatalf("migration file %s: no version: %v", f, err)
		}
		if got[v] != 1 {
			t.Errorf("migration %d: got applied %d times, want once", v, got[v])
		}
	}
	// goose records version 0 when it starts.
	if len(got) != len(files)+1 || got[0] != 1 {
		t.Errorf("goose_db_version: got versions %v, want 0 and one per file of %v", got, files)
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	dsn := pgtest.URL(t)
	for i := range 2 {
		if err := Migrate(t.Context(), dsn, nil); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
		appliedOnce(t, migrationRows(t, dsn))
	}
	openStore(t, dsn, fixedNow)
	appliedOnce(t, migrationRows(t, dsn))
}

// TestConcurrentOpen starts several instances at once on an empty schema:
// the advisory lock lets one migrate while the others wait.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	const instances = 5
	dsn := pgtest.URL(t)
	var wg sync.WaitGroup
	for i := range instances {
		wg.Go(func() {
			s, err := Open(t.Context(), dsn, Options{})
			if err != nil {
				t.Errorf("Open #%d: %v", i, err)
				return
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close #%d: %v", i, err)
			}
		})
	}
	wg.Wait()
	appliedOnce(t, migrationRows(t, dsn))
}

// TestMigrationLock holds the advisory lock of a schema's migrations: an
// Open must wait for it before it migrates.
func TestMigrationLock(t *testing.T) {
	t.Parallel()
	dsn, name := pgtest.URL(t), uniqueName()
	ctx := t.Context()
	conn := connect(t, dsn)
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatalf("current_schema: %v", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockID(schema)); err != nil {
		t.Fatalf("lock: %v", err)
	}

	opened := make(chan error, 1)
	go func() {
		s, err := Open(ctx, withParams(t, dsn, map[string]string{"application_name": name}), Options{})
		if err == nil {
			err = s.Close()
		}
		opened <- err
	}()
	// Once Open has asked for the lock, nothing but its release lets it
	// go on.
	for asked := false; !asked; {
		err := conn.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_stat_activity
			WHERE application_name = $1 AND query LIKE '%pg_try_advisory_lock%'`, name).Scan(&asked)
		if err != nil {
			t.Fatalf("watch Open: %v", err)
		}
		select {
		case err := <-opened:
			t.Fatalf("Open returned (error %v) while the migration lock was held", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if got := migrationRows(t, dsn); len(got) > 1 {
		t.Errorf("goose_db_version while the lock is held: got versions %v, want none applied", got)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, migrationLockID(schema)); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
	case <-time.After(signalWait):
		t.Fatalf("Open: still waiting %v after the lock was released", signalWait)
	}
	appliedOnce(t, migrationRows(t, dsn))
}

func TestOpenMissingSchema(t *testing.T) {
	t.Parallel()
	dsn := withParams(t, pgtest.URL(t), map[string]string{"search_path": "no_such_schema"})
	s, err := Open(t.Context(), dsn, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open: got nil error, want one")
	}
	if want := "search_path"; !strings.Contains(err.Error(), want) {
		t.Errorf("Open: got error %q, want it to mention %s", err, want)
	}
}

func TestChannelName(t *testing.T) {
	t.Parallel()
	longest := strings.Repeat("s", maxIdentifier-len("tunehook."))
	tests := []struct {
		schema string
		want   string // empty: a hash, checked below
	}{
		{"public", "tunehook.public"},
		{"Mixed Case", "tunehook.Mixed Case"},
		{longest, "tunehook." + longest},
		{longest + "a", ""},
		{longest + "b", ""},
	}
	seen := make(map[string]string)
	for _, tt := range tests {
		got := channelName(tt.schema)
		if tt.want != "" && got != tt.want {
			t.Errorf("channelName(%q): got %q, want %q", tt.schema, got, tt.want)
		}
		if len(got) > maxIdentifier {
			t.Errorf("channelName(%q): got %q, %d bytes, want at most %d", tt.schema, got, len(got), maxIdentifier)
		}
		if prev, ok := seen[got]; ok {
			t.Errorf("channelName(%q): got %q, the channel of %q too", tt.schema, got, prev)
		}
		seen[got] = tt.schema
	}
}

// TestAttemptErrorText records an attempt whose error quotes what a
// receiver sent: bytes PostgreSQL's text refuses must not lose the attempt.
func TestAttemptErrorText(t *testing.T) {
	t.Parallel()
	s := openStore(t, pgtest.URL(t), fixedNow)
	ctx := t.Context()
	cb := failTasks(t, s, 1)[0]
	if got, err := s.ClaimCallbacks(ctx, "dispatcher", task.LaneFirst, 1, time.Hour); err != nil || len(got) != 1 {
		t.Fatalf("ClaimCallbacks: got %d callbacks, %v, want 1, nil", len(got), err)
	}
	a := task.Attempt{CallbackID: cb.ID, N: 1, StartedAt: fixedNow(), StatusCode: 302,
		Error: "redirect not followed: 302 to /caf\xe9\x00"}
	results, err := s.RecordAttempts(ctx, "dispatcher", []task.AttemptRecord{{Attempt: a, State: task.DeliveryPending, Next: fixedNow().Add(time.Minute)}})
	if err = errors.Join(append(results, err)...); err != nil {
		t.Fatalf("RecordAttempts: %v", err)
	}
	cbs, err := s.Callbacks(ctx, cb.TaskID)
	if err != nil || len(cbs) != 1 || len(cbs[0].History) != 1 {
		t.Fatalf("Callbacks: got %v, %v, want one callback with one attempt", cbs, err)
	}
	if got, want := cbs[0].History[0].Error, "redirect not followed: 302 to /caf\uFFFD\uFFFD"; got != want {
		t.Errorf("attempt's error: got %q, want %q", got, want)
	}
}

func BenchmarkCommitStage(b *testing.B) {
	s := openStore(b, pgtest.URL(b), fixedNow)
	ctx, now := b.Context(), fixedNow()
	text := task.Text{Title: "Title", Lyrics: strings.Repeat("la ", 400), Tags: "pop"}
	body := []byte(strings.Repeat("x", 1500)) // about a callback's size
	for b.Loop() {
		b.StopTimer()
		tk := createTasks(b, s, 1)[0]
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
	s := openStore(b, pgtest.URL(b), fixedNow)
	ctx, now := b.Context(), fixedNow()
	response := []byte(`{"status":"received"}`)
	for b.Loop() {
		b.StopTimer()
		failTasks(b, s, 1)
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

// The store's queries that run for every claim and every look for due work
// read through indexes on tables without statistics, as they are before
// autovacuum has analyzed them (or for ever, with autovacuum off), without
// parallel workers; a URL that sets the planner's settings is obeyed.
func TestIndexPlans(t *testing.T) {
	t.Parallel()
	dsn := pgtest.URL(t)
	s := openStore(t, dsn, fixedNow)
	// Enough rows that reading a table whole is not free, few enough that
	// only statistics, which nothing gathers here, would say so.
	createTasks(t, s, 200)
	now := fixedNow()
	queries := map[string][]any{
		"claim tasks":                     {claimTasksQuery, "o", now, now, 10},
		"claim first lane":                {claimCallbacksQueries[task.LaneFirst], "o", now, now, 10},
		"claim retry lane":                {claimCallbacksQueries[task.LaneRetry], "o", now, now, 10},
		"claim first lane after a cursor": {claimCallbacksAfterQueries[task.LaneFirst], "o", now, now, 10, now, now, "msg_0"},
		"claim retry lane after a cursor": {claimCallbacksAfterQueries[task.LaneRetry], "o", now, now, 10, now, now, "msg_0"},
		"next callback due":               {nextCallbackDueQuery},
		"next task due":                   {nextTaskDueQuery},
		"load tracks":                     {loadTracksQuery, []string{"a", "b"}},
		"record attempts": {recordAttemptsQuery, []string{"a"}, []string{"delivered"}, []int{1}, []*time.Time{nil},
			[]*time.Time{&now}, []time.Time{now}, []int64{1}, []*int{nil}, []string{""}, [][]byte{nil}, "o", now},
	}
	// The heads of the leased indexes are read in order, stopping at the
	// first live entry: a bitmap scan would visit every dead entry's row.
	ordered := map[string]string{
		"next callback due": "callbacks_leased",
		"next task due":     "tasks_leased",
	}
	// A claim after a cursor starts its lane's index there, not at the
	// start: the row comparison is a condition of the index scan.
	fromCursor := map[string]string{
		"claim first lane after a cursor": "callbacks_due_first",
		"claim retry lane after a cursor": "callbacks_due_retry",
	}
	for name, q := range queries {
		plan := explain(t, s, q[0].(string), q[1:]...)
		if index := fromCursor[name]; index != "" && !startsAtCursor(plan, index) {
			t.Errorf("%s does not start %s at the cursor:\n%s", name, index, plan)
		}
		if strings.Contains(plan, "Seq Scan") {
			t.Errorf("%s reads a table whole:\n%s", name, plan)
		}
		if strings.Contains(plan, "Gather") {
			t.Errorf("%s starts parallel workers:\n%s", name, plan)
		}
		if index := ordered[name]; index != "" && !readsHead(plan, index) {
			t.Errorf("%s does not read the head of %s:\n%s", name, index, plan)
		}
	}

	overrides := map[string]string{"enable_seqscan": "on", "max_parallel_workers_per_gather": "2"}
	own := openStore(t, withParams(t, dsn, overrides), fixedNow)
	for name, want := range overrides {
		var setting string
		err := own.withConn(t.Context(), func(c *pgxpool.Conn) error {
			return c.QueryRow(t.Context(), `SHOW `+name).Scan(&setting)
		})
		if err != nil || setting != want {
			t.Errorf("%s with the URL's %s: got %q, %v", name, want, setting, err)
		}
	}
}

// readsHead tells whether plan reads index in order up to a limit: an
// index scan right under a Limit node.
func readsHead(plan, index string) bool {
	lines := strings.Split(plan, "\n")
	for i := 1; i < len(lines); i++ {
		if strings.Contains(lines[i], "Scan using "+index+" ") && strings.Contains(lines[i-1], "->  Limit") {
			return true
		}
	}
	return false
}

// startsAtCursor tells whether plan scans index with the cursor's row
// comparison as an index condition.
func startsAtCursor(plan, index string) bool {
	lines := strings.Split(plan, "\n")
	for i := 0; i+1 < len(lines); i++ {
		if strings.Contains(lines[i], "Scan using "+index+" ") && strings.Contains(lines[i+1], "Index Cond:") &&
			strings.Contains(lines[i+1], "ROW(next_attempt_at, created_at, id) > ROW(") {
			return true
		}
	}
	return false
}

// explain returns the plan of query with args on one of s's connections.
func explain(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	var lines []string
	err := s.withConn(t.Context(), func(c *pgxpool.Conn) error {
		rows, err := c.Query(t.Context(), "EXPLAIN "+query, args...)
		if err != nil {
			return err
		}
		lines, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	return strings.Join(lines, "\n")
}
