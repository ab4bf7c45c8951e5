package tunehook_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
	_ "modernc.org/sqlite"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// openSQLite opens a SQLite database file in dir that several connections
// (and stores) can share.
func openSQLite(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "dedupe.db")+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newSQLDedupe(t *testing.T, db *sql.DB, opts tunehook.SQLDedupeOptions) *tunehook.SQLDedupe {
	t.Helper()
	s, err := tunehook.NewSQLDedupe(t.Context(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dedupeStores are the stores every DedupeStore test runs against.
var dedupeStores = []struct {
	name string
	open func(t *testing.T) tunehook.DedupeStore
}{
	{"memory", func(t *testing.T) tunehook.DedupeStore { return tunehook.NewMemoryDedupe(0) }},
	{"sql", func(t *testing.T) tunehook.DedupeStore {
		return newSQLDedupe(t, openSQLite(t, t.TempDir()), tunehook.SQLDedupeOptions{})
	}},
	{"sql with numbered placeholders", func(t *testing.T) tunehook.DedupeStore {
		return newSQLDedupe(t, openSQLite(t, t.TempDir()), tunehook.SQLDedupeOptions{
			Table:       "main.hooks_seen",
			Placeholder: func(n int) string { return fmt.Sprintf("$%d", n) },
		})
	}},
}

// The semantics every DedupeStore has: a step is an operation at a time
// and what it must answer.
func TestDedupeStore(t *testing.T) {
	t.Parallel()
	type step struct {
		op    string // claim, complete, release, done
		key   string
		at    time.Duration // now, from t0
		until time.Duration // for claim and complete, from t0
		keys  []string      // for done, besides key
		want  bool          // for claim and done
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"claim once", []step{
			{op: "claim", key: "a", until: time.Hour, want: true},
			{op: "claim", key: "a", at: time.Minute, until: time.Hour, want: false},
			{op: "claim", key: "b", until: time.Hour, want: true},
		}},
		{"done stays done", []step{
			{op: "claim", key: "a", until: time.Hour, want: true},
			{op: "complete", key: "a", until: 24 * time.Hour},
			{op: "release", key: "a"},
			{op: "claim", key: "a", at: 2 * time.Hour, until: 3 * time.Hour, want: false},
			{op: "done", key: "a", at: 2 * time.Hour, want: true},
		}},
		{"released claim is claimable", []step{
			{op: "claim", key: "a", until: time.Hour, want: true},
			{op: "done", key: "a", want: false},
			{op: "release", key: "a"},
			{op: "claim", key: "a", at: time.Second, until: time.Hour, want: true},
		}},
		{"expired claim is claimable", []step{
			{op: "claim", key: "a", until: time.Hour, want: true},
			{op: "claim", key: "a", at: time.Hour, until: 2 * time.Hour, want: true},
		}},
		{"expired done is forgotten", []step{
			{op: "complete", key: "a", until: time.Hour},
			{op: "done", key: "a", at: time.Hour - time.Second, want: true},
			{op: "done", key: "a", at: time.Hour, want: false},
			{op: "claim", key: "a", at: time.Hour, until: 2 * time.Hour, want: true},
		}},
		{"complete without claim", []step{
			{op: "complete", key: "a", until: time.Hour},
			{op: "claim", key: "a", until: time.Hour, want: false},
		}},
		{"done of several keys", []step{
			{op: "claim", key: "a", until: time.Hour, want: true},
			{op: "complete", key: "c", until: time.Hour},
			{op: "done", key: "a", keys: []string{"b"}, want: false},
			{op: "done", key: "a", keys: []string{"b", "c"}, want: true},
		}},
	}
	for _, st := range dedupeStores {
		for _, tt := range tests {
			t.Run(st.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				s := st.open(t)
				ctx := t.Context()
				for i, sp := range tt.steps {
					var got bool
					var err error
					switch sp.op {
					case "claim":
						got, err = s.Claim(ctx, sp.key, t0.Add(sp.at), t0.Add(sp.until))
					case "complete":
						err = s.Complete(ctx, sp.key, t0.Add(sp.until))
					case "release":
						err = s.Release(ctx, sp.key)
					case "done":
						got, err = s.Done(ctx, t0.Add(sp.at), append([]string{sp.key}, sp.keys...)...)
					}
					if err != nil {
						t.Fatalf("step %d (%s %s): got error %v", i, sp.op, sp.key, err)
					}
					if got != sp.want {
						t.Fatalf("step %d (%s %s): got %v, want %v", i, sp.op, sp.key, got, sp.want)
					}
				}
			})
		}
	}
}

// Of concurrent claims of one key exactly one wins, also when the
// claimers are separate stores on one database (replicas of a receiver).
func TestDedupeStoreConcurrentClaims(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, t.TempDir())
	sqlA := newSQLDedupe(t, db, tunehook.SQLDedupeOptions{})
	sqlB := newSQLDedupe(t, db, tunehook.SQLDedupeOptions{})
	mem := tunehook.NewMemoryDedupe(0)
	tests := []struct {
		name   string
		stores []tunehook.DedupeStore
	}{
		{"memory", []tunehook.DedupeStore{mem}},
		{"two sql stores", []tunehook.DedupeStore{sqlA, sqlB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const keys, claimers = 20, 8
			for k := range keys {
				var wins atomic.Int32
				var wg sync.WaitGroup
				for c := range claimers {
					s := tt.stores[c%len(tt.stores)]
					wg.Go(func() {
						ok, err := s.Claim(t.Context(), fmt.Sprintf("key-%d", k), t0, t0.Add(time.Hour))
						if err != nil {
							t.Error(err)
						}
						if ok {
							wins.Add(1)
						}
					})
				}
				wg.Wait()
				if got := wins.Load(); got != 1 {
					t.Fatalf("key-%d: got %d winning claims, want 1", k, got)
				}
			}
		})
	}
}

// A new SQLDedupe on the same database (the receiver restarted) knows what
// the old one processed, and lets in-progress claims run out.
func TestSQLDedupeRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	before := newSQLDedupe(t, openSQLite(t, dir), tunehook.SQLDedupeOptions{})
	if ok, err := before.Claim(ctx, "processed", t0, t0.Add(time.Hour)); !ok || err != nil {
		t.Fatalf("claim: got %v, %v", ok, err)
	}
	if err := before.Complete(ctx, "processed", t0.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ok, err := before.Claim(ctx, "in progress", t0, t0.Add(time.Hour)); !ok || err != nil {
		t.Fatalf("claim: got %v, %v", ok, err)
	}

	after := newSQLDedupe(t, openSQLite(t, dir), tunehook.SQLDedupeOptions{})
	tests := []struct {
		key  string
		at   time.Duration
		want bool
	}{
		{"processed", time.Minute, false},
		{"in progress", time.Minute, false},
		{"in progress", time.Hour, true}, // the lease of the dead process ran out
		{"new", time.Minute, true},
	}
	for _, tt := range tests {
		if got, err := after.Claim(ctx, tt.key, t0.Add(tt.at), t0.Add(tt.at+time.Hour)); got != tt.want || err != nil {
			t.Errorf("claim %q at +%v after the restart: got %v, %v; want %v", tt.key, tt.at, got, err, tt.want)
		}
	}
	if done, err := after.Done(ctx, t0.Add(time.Minute), "processed"); !done || err != nil {
		t.Errorf("done after the restart: got %v, %v; want true", done, err)
	}
}

// Expired rows are deleted as claims go by, so the table does not grow
// without bound.
func TestSQLDedupePrunes(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, t.TempDir())
	s := newSQLDedupe(t, db, tunehook.SQLDedupeOptions{})
	ctx := t.Context()
	for i := range 10 {
		if err := s.Complete(ctx, fmt.Sprintf("old-%d", i), t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Claim(ctx, "first", t0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "later", t0.Add(2*time.Hour), t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+tunehook.DefaultDedupeTable).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("got %d rows, want 1 (only the live claim)", n)
	}
}

func TestSQLDedupeRefusesBadTableNames(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, t.TempDir())
	for _, name := range []string{"x; DROP TABLE y", "a.b.c", "1abc", `"quoted"`} {
		if _, err := tunehook.NewSQLDedupe(t.Context(), db, tunehook.SQLDedupeOptions{Table: name}); err == nil {
			t.Errorf("table %q: got no error, want one", name)
		}
	}
}

// A full MemoryDedupe forgets the least recently used key first.
func TestMemoryDedupeEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m := tunehook.NewMemoryDedupe(2)
	for _, k := range []string{"a", "b"} {
		if err := m.Complete(ctx, k, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// Touch a, so that b is the least recently used when c arrives.
	if ok, _ := m.Claim(ctx, "a", t0, t0.Add(time.Hour)); ok {
		t.Fatal("claim of a done key: got true")
	}
	if err := m.Complete(ctx, "c", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		key  string
		want bool
	}{{"a", true}, {"b", false}, {"c", true}} {
		if got, _ := m.Done(ctx, t0, tt.key); got != tt.want {
			t.Errorf("done %q: got %v, want %v", tt.key, got, tt.want)
		}
	}
}
