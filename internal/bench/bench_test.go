package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/pgtest"
	"github.com/tunehook/tunehook/internal/task"
)

// tiny is a run of every phase with tiny parameters: a smoke test that
// keeps the bench working, not a measurement.
func tiny(t *testing.T, store string, open Opener) Config {
	t.Helper()
	return Config{
		Store:            store,
		Open:             open,
		Duration:         300 * time.Millisecond,
		Concurrency:      4,
		SubmitRate:       200,
		Callbacks:        200,
		Hanging:          20,
		HangingCallbacks: 3,
		Timeout:          time.Second,
		Backlog:          2000,
		Storm:            300,
		StormDelays:      []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond},
		Logger:           slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

// TestRunSQLite runs every phase on SQLite.
func TestRunSQLite(t *testing.T) {
	t.Parallel()
	profile := filepath.Join(t.TempDir(), "cpu")
	cfg := tiny(t, "sqlite", SQLite(t.TempDir()))
	cfg.CPUProfile = profile
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkResults(t, res, cfg)

	for _, name := range PhaseNames() {
		st, err := os.Stat(profile + "." + name + ".pprof")
		if err != nil {
			t.Errorf("cpu profile of %s: %v", name, err)
		} else if st.Size() == 0 {
			t.Errorf("cpu profile of %s: got an empty file, want a profile", name)
		}
	}
}

// TestRunPostgres runs every phase on PostgreSQL, when the test database
// is configured, and checks that the bench drops the schemas it creates.
// It does not run in parallel: the schemas of the tests that do (TestLoad)
// would come and go while it compares.
func TestRunPostgres(t *testing.T) {
	databaseURL := os.Getenv(pgtest.EnvURL)
	if databaseURL == "" {
		t.Skip("set " + pgtest.EnvURL + " to run the PostgreSQL tests")
	}
	before := benchSchemas(t, databaseURL)
	cfg := tiny(t, "postgres", Postgres(databaseURL))
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkResults(t, res, cfg)
	for _, s := range benchSchemas(t, databaseURL) {
		if !slices.Contains(before, s) {
			t.Errorf("got schema %s left behind, want every bench schema dropped", s)
		}
	}
}

// benchSchemas returns the names of the bench's schemas in the database.
func benchSchemas(t *testing.T, databaseURL string) []string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), databaseURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)`, schemaPrefix)
	if err != nil {
		t.Fatalf("list schemas: %v", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("list schemas: %v", err)
	}
	return names
}

// checkResults checks that res holds sane rows for every phase of cfg, in
// order: no errors, counts as asked, positive times and rates, the ratios
// to earlier phases, and that its table and JSON show them.
func checkResults(t *testing.T, res Results, cfg Config) {
	t.Helper()
	var phases []string
	for _, r := range res.Phases {
		if len(phases) == 0 || phases[len(phases)-1] != r.Phase {
			phases = append(phases, r.Phase)
		}
		name := strings.TrimSpace(r.Phase + " " + r.Variant)
		if r.Store != cfg.Store {
			t.Errorf("%s: got store %q, want %q", name, r.Store, cfg.Store)
		}
		if r.Errors != 0 {
			t.Errorf("%s: got %d errors, want 0", name, r.Errors)
		}
		if r.Count <= 0 || r.Elapsed <= 0 {
			t.Errorf("%s: got count %d and elapsed %v, want both > 0", name, r.Count, r.Elapsed)
		}
		if r.What == "" {
			t.Errorf("%s: got no description, want one", name)
		}
		if r.Steal < 0 || r.Steal > 1 {
			t.Errorf("%s: got %v of the CPU time stolen, want a fraction", name, r.Steal)
		}
		switch r.Phase {
		case "ceiling", "submit":
			checkRate(t, name, r)
		case "submit-rate":
			if want := int(cfg.SubmitRate * cfg.Duration.Seconds()); r.Count != want {
				t.Errorf("%s: got count %d, want %d", name, r.Count, want)
			}
			checkRate(t, name, r)
			checkLatency(t, name, r)
		case "deliver":
			if r.Count != cfg.Callbacks || r.Ratio <= 0 {
				t.Errorf("%s: got count %d and ratio %v, want %d and > 0", name, r.Count, r.Ratio, cfg.Callbacks)
			}
			checkRate(t, name, r)
		case "pipeline":
			if want := cfg.Callbacks / callbacksPerTask * callbacksPerTask; r.Count != want || r.Ratio <= 0 {
				t.Errorf("%s: got count %d and ratio %v, want %d and > 0", name, r.Count, r.Ratio, want)
			}
			checkRate(t, name, r)
		case "latency":
			if r.Count%callbacksPerTask != 0 {
				t.Errorf("%s: got %d latencies, want %d per task", name, r.Count, callbacksPerTask)
			}
			checkLatency(t, name, r)
		case "isolation":
			if r.Ratio <= 0 {
				t.Errorf("%s: got ratio %v, want > 0", name, r.Ratio)
			}
			checkLatency(t, name, r)
		case "backlog":
			if r.Count != cfg.Backlog || r.Ratio <= 0 {
				t.Errorf("%s: got count %d and ratio %v, want %d and > 0", name, r.Count, r.Ratio, cfg.Backlog)
			}
			if m := r.Memory; m == nil || m.Before <= 0 || m.Max <= 0 || m.Samples <= 0 {
				t.Errorf("%s: got memory %+v, want RSS before and during the drain", name, m)
			}
			checkRate(t, name, r)
		case "storm":
			if r.Count != cfg.Storm {
				t.Errorf("%s: got count %d, want %d", name, r.Count, cfg.Storm)
			}
			if s := r.Storm; s == nil {
				t.Errorf("%s: got no histograms, want three", name)
			} else {
				for what, h := range map[string]Histogram{"arrivals": s.Arrivals, "scheduled": s.Scheduled, "zero jitter": s.ZeroJitter} {
					if got := sum(h.Counts); got != cfg.Storm || h.Peak() < 1 {
						t.Errorf("%s: %s: got %d retries, peak %d, want %d and >= 1", name, what, got, h.Peak(), cfg.Storm)
					}
				}
			}
		}
	}
	variants := func(phase string) []string {
		var vs []string
		for _, r := range res.Phases {
			if r.Phase == phase {
				vs = append(vs, r.Variant)
			}
		}
		return vs
	}
	if got, want := variants("ceiling"), []string{"32 clients", "64 clients", "1024 clients"}; !slices.Equal(got, want) {
		t.Errorf("got ceiling rows %q, want %q", got, want)
	}
	if got, want := variants("pipeline"), []string{"64 stages", "256 stages"}; !slices.Equal(got, want) {
		t.Errorf("got pipeline rows %q, want %q", got, want)
	}
	if got, want := variants("latency"), []string{"10%", "50%", "90%"}; !slices.Equal(got, want) {
		t.Errorf("got latency rows %q, want %q", got, want)
	}
	// The latency levels are fractions of the fastest pipeline row.
	var fastest float64
	for _, r := range res.Phases {
		if r.Phase == "pipeline" {
			fastest = max(fastest, r.PerSecond)
		}
	}
	for _, r := range res.Phases {
		if want := fmt.Sprintf("%% of %.0f callbacks/s", fastest); r.Phase == "latency" && !strings.Contains(r.What, want) {
			t.Errorf("latency %s: got %q, want a level of the fastest pipeline row (%q)", r.Variant, r.What, want)
		}
	}
	if want := PhaseNames(); !slices.Equal(phases, want) {
		t.Fatalf("got phases %v, want %v", phases, want)
	}
	if res.Machine.CPUs <= 0 || res.Machine.GOMAXPROCS <= 0 || res.Machine.GoVersion == "" {
		t.Errorf("got machine %+v, want CPUs, GOMAXPROCS and the Go version", res.Machine)
	}

	var table bytes.Buffer
	if err := res.WriteTable(&table); err != nil {
		t.Fatalf("write table: %v", err)
	}
	for _, r := range res.Phases {
		if row := fmt.Sprintf("| %s | %s | %s |", r.Phase, r.Store, cmp.Or(r.Variant, "-")); !strings.Contains(table.String(), row) {
			t.Errorf("got table\n%s\nwant a row starting %s", table.String(), row)
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatalf("marshal results: %v", err)
	}
	var back Results
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal results: %v", err)
	}
	if len(back.Phases) != len(res.Phases) {
		t.Fatalf("got %d rows from JSON, want %d", len(back.Phases), len(res.Phases))
	}
	for i, r := range res.Phases {
		got := back.Phases[i]
		if got.Phase != r.Phase || got.Variant != r.Variant || got.Count != r.Count || got.Ratio != r.Ratio ||
			(r.Latency != nil && *got.Latency != *r.Latency) || (r.Memory != nil && *got.Memory != *r.Memory) ||
			(r.Storm != nil && !slices.Equal(got.Storm.Arrivals.Counts, r.Storm.Arrivals.Counts)) {
			t.Errorf("got %+v from JSON, want %+v", got, r)
		}
	}
}

// checkRate checks that r has a positive rate.
func checkRate(t *testing.T, name string, r Result) {
	t.Helper()
	if r.PerSecond <= 0 {
		t.Errorf("%s: got %v/s, want > 0", name, r.PerSecond)
	}
}

// checkLatency checks that r's latencies are positive and ordered.
func checkLatency(t *testing.T, name string, r Result) {
	t.Helper()
	l := r.Latency
	if l == nil {
		t.Errorf("%s: got no latency, want one", name)
		return
	}
	if l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
		t.Errorf("%s: got p50 %v, p99 %v, max %v, want 0 < p50 <= p99 <= max", name, l.P50, l.P99, l.Max)
	}
}

// TestLoad loads batches into every store the tests can reach and reads
// them back through the Store API: the bulk SQL must write the rows the
// Runner and the Dispatcher would have.
func TestLoad(t *testing.T) {
	t.Parallel()
	opens := map[string]Opener{"sqlite": SQLite(t.TempDir())}
	if databaseURL := os.Getenv(pgtest.EnvURL); databaseURL != "" {
		opens["postgres"] = Postgres(databaseURL)
	}
	for store, open := range opens {
		for _, failed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s failed=%v", store, failed), func(t *testing.T) {
				t.Parallel()
				o, err := open(t.Context(), slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				t.Cleanup(func() {
					if err := o.Remove(); err != nil {
						t.Errorf("remove: %v", err)
					}
				})
				checkLoad(t, o, failed)
			})
		}
	}
}

// checkLoad loads 7 callbacks (two whole tasks and the text of a third)
// into o and checks them.
func checkLoad(t *testing.T, o *Opened, failed bool) {
	t.Helper()
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	b, err := newBatch(7, "http://127.0.0.1:9/callback", now)
	if err != nil {
		t.Fatalf("new batch: %v", err)
	}
	b.Failed, b.DueFrom, b.DueUntil = failed, now.Add(-7*time.Second), now
	if err := o.Load(ctx, b); err != nil {
		t.Fatalf("load: %v", err)
	}
	due, err := o.Store.NextCallbackDue(ctx)
	if err != nil {
		t.Fatalf("next callback due: %v", err)
	}
	if !due.Equal(b.DueFrom) {
		t.Errorf("got next callback due at %v, want %v", due, b.DueFrom)
	}
	for i, want := range []int{3, 3, 1} {
		id := bulkTaskID(i)
		tk, err := o.Store.Task(ctx, id)
		if err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
		if tk.Status != task.StatusSuccess || tk.Text != b.Template.Text || len(tk.Tracks) != task.TracksPerTask ||
			tk.Tracks[1].ID != bulkTrackID(i, 1) || tk.Tracks[1].AudioKey != id+"/"+bulkTrackID(i, 1)+".wav" {
			t.Errorf("task %d: got %+v, want a successful task with the template's text and tracks of its own", i, tk)
		}
		cbs, err := o.Store.Callbacks(ctx, id)
		if err != nil {
			t.Fatalf("callbacks of task %d: %v", i, err)
		}
		if len(cbs) != want {
			t.Fatalf("task %d: got %d callbacks, want %d", i, len(cbs), want)
		}
		for k, cb := range cbs {
			c := i*callbacksPerTask + k
			wantDue := b.DueFrom.Add(7 * time.Second * time.Duration(c) / 7)
			if cb.ID != fmt.Sprintf("msg_%032x", c) || cb.Stage != stages[k] || cb.State != task.DeliveryPending ||
				cb.Attempts != b.attempts() || !cb.NextAttemptAt.Equal(wantDue) || cb.URL != b.Template.CallbackURL {
				t.Errorf("callback %d: got %s %s %s, %d attempts, due %v, to %s; want %s, due %v",
					c, cb.ID, cb.Stage, cb.State, cb.Attempts, cb.NextAttemptAt, cb.URL, stages[k], wantDue)
			}
			if len(cb.History) != b.attempts() || (failed && (cb.History[0].N != 1 || cb.History[0].Error != failedAttempt)) {
				t.Errorf("callback %d: got history %+v, want %d failed attempts", c, cb.History, b.attempts())
			}
			var body tunehook.Callback
			if err := json.Unmarshal(cb.Body, &body); err != nil {
				t.Fatalf("callback %d: decode body: %v", c, err)
			}
			if body.Data.TaskID != id || string(body.Data.CallbackType) != string(stages[k]) || len(body.Data.Data) != k {
				t.Errorf("callback %d: got body %s, want the %s callback of task %s", c, cb.Body, stages[k], id)
			}
			for j, tr := range body.Data.Data {
				if tr.ID != bulkTrackID(i, j) || !strings.Contains(tr.AudioURL, id+"/"+tr.ID) {
					t.Errorf("callback %d: got track %s at %s, want %s of task %s", c, tr.ID, tr.AudioURL, bulkTrackID(i, j), id)
				}
			}
		}
	}
}

// TestCPUTimes reads this machine's CPU times and computes the share
// stolen between two readings.
func TestCPUTimes(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc/stat")
	}
	if got, ok := readCPUTimes(); !ok || got.total == 0 || got.steal > got.total {
		t.Errorf("readCPUTimes: got %+v, %v; want a total of ticks and its stolen part", got, ok)
	}
	for _, tt := range []struct {
		before, after cpuTimes
		want          float64
	}{
		{cpuTimes{total: 100, steal: 10}, cpuTimes{total: 300, steal: 30}, 0.1},
		{cpuTimes{total: 100, steal: 10}, cpuTimes{total: 100, steal: 10}, 0},
	} {
		if got := tt.before.stolen(tt.after); got != tt.want {
			t.Errorf("%+v to %+v: got %v stolen, want %v", tt.before, tt.after, got, tt.want)
		}
	}
}

func TestBitTally(t *testing.T) {
	t.Parallel()
	at := time.Now()
	b := newBitTally(7) // tasks 0 and 1 whole, the text of task 2
	tests := []struct {
		key      callbackKey
		seen, ok bool
	}{
		{callbackKey{bulkTaskID(0), task.StageText}, false, true},
		{callbackKey{bulkTaskID(1), task.StageComplete}, false, true},
		{callbackKey{bulkTaskID(0), task.StageText}, true, true},
		{callbackKey{bulkTaskID(2), task.StageText}, false, true},
		{callbackKey{bulkTaskID(2), task.StageFirst}, false, false},
		{callbackKey{bulkTaskID(0), task.StageError}, false, false},
		{callbackKey{"not hex", task.StageText}, false, false},
		{callbackKey{"ffffffffffffffff", task.StageText}, false, false},
		{callbackKey{task.NewTaskID(), task.StageText}, false, false},
		{callbackKey{bulkTaskID(1), task.StageComplete}, true, true},
	}
	for i, tt := range tests {
		if seen, ok := b.add(tt.key, at); seen != tt.seen || ok != tt.ok {
			t.Errorf("add %d %v: got seen %v, ok %v, want %v, %v", i, tt.key, seen, ok, tt.seen, tt.ok)
		}
	}
	if got := b.len(); got != 3 {
		t.Errorf("got %d callbacks, want 3", got)
	}
}

func TestHistogram(t *testing.T) {
	t.Parallel()
	origin := time.Now()
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, origin.Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	tests := []struct {
		name   string
		in     []time.Time
		counts []int
		peak   int
		mean   float64
	}{
		{"none", nil, nil, 0, 0},
		{"one", at(500), []int{1}, 1, 1},
		{"spread", at(250, 0, 99, 100, 450), []int{2, 1, 1, 0, 1}, 2, 1},
		{"herd", at(10, 20, 30, 40, 310), []int{4, 0, 0, 1}, 4, 1.25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHistogram(tt.in, 100*time.Millisecond)
			if !slices.Equal(h.Counts, tt.counts) || h.Peak() != tt.peak || h.Mean() != tt.mean {
				t.Errorf("got counts %v, peak %d, mean %v, want %v, %d, %v", h.Counts, h.Peak(), h.Mean(), tt.counts, tt.peak, tt.mean)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	ms := func(ns ...int) []time.Duration {
		var ds []time.Duration
		for _, n := range ns {
			ds = append(ds, time.Duration(n)*time.Millisecond)
		}
		return ds
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100 down to 1: summarize sorts
	}
	tests := []struct {
		name string
		in   []time.Duration
		want *Latency
	}{
		{"none", nil, nil},
		{"one", ms(7), &Latency{P50: 7 * time.Millisecond, P99: 7 * time.Millisecond, Max: 7 * time.Millisecond}},
		{"two", ms(9, 1), &Latency{P50: 1 * time.Millisecond, P99: 9 * time.Millisecond, Max: 9 * time.Millisecond}},
		{"hundred", ms(hundred...), &Latency{P50: 50 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}},
		{"hundred and one", ms(append(hundred, 1000)...), &Latency{P50: 51 * time.Millisecond, P99: 100 * time.Millisecond, Max: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := summarize(tt.in)
			if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	open := SQLite(t.TempDir())
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no opener", Config{}, "no store opener"},
		{"negative duration", Config{Open: open, Duration: -time.Second}, "must not be negative"},
		{"negative rate", Config{Open: open, MaxRate: -1}, "must not be negative"},
		{"zero storm delay", Config{Open: open, StormDelays: []time.Duration{time.Second, 0}}, "must be positive"},
		{"two hanging callbacks", Config{Open: open, HangingCallbacks: 2}, "must be 1 or 3, not 2"},
		{"unknown phase", Config{Open: open, Phases: []string{"submit", "thunder"}}, `unknown phase "thunder"`},
		{"no maximum rate", Config{Open: open, Phases: []string{"latency"}}, "no maximum rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Run(t.Context(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
