package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tunehook/tunehook/internal/pgtest"
)

// TestRunSQLite runs every phase on SQLite with tiny parameters: a smoke
// test that keeps the bench working, not a measurement.
func TestRunSQLite(t *testing.T) {
	t.Parallel()
	profile := filepath.Join(t.TempDir(), "cpu")
	cfg := Config{
		Store:       "sqlite",
		Open:        SQLite(t.TempDir()),
		Duration:    300 * time.Millisecond,
		Concurrency: 4,
		Callbacks:   200,
		Rate:        20,
		CPUProfile:  profile,
		Logger:      slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkResults(t, res, "sqlite", 200, 3*6)

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
func TestRunPostgres(t *testing.T) {
	t.Parallel()
	databaseURL := os.Getenv(pgtest.EnvURL)
	if databaseURL == "" {
		t.Skip("set " + pgtest.EnvURL + " to run the PostgreSQL tests")
	}
	before := benchSchemas(t, databaseURL)
	res, err := Run(t.Context(), Config{
		Store:       "postgres",
		Open:        Postgres(databaseURL),
		Duration:    300 * time.Millisecond,
		Concurrency: 4,
		Callbacks:   200,
		Rate:        20,
		Logger:      slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	checkResults(t, res, "postgres", 200, 3*6)
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

// checkResults checks that res holds one sane row per phase, in order: no
// errors, counts as asked (callbacks delivered, latencies taken), positive
// times and rates, and that its table and JSON show them.
func checkResults(t *testing.T, res Results, store string, callbacks, latencies int) {
	t.Helper()
	var phases []string
	for _, r := range res.Phases {
		phases = append(phases, r.Phase)
		if r.Store != store {
			t.Errorf("%s: got store %q, want %q", r.Phase, r.Store, store)
		}
		if r.Errors != 0 {
			t.Errorf("%s: got %d errors, want 0", r.Phase, r.Errors)
		}
		if r.Elapsed <= 0 {
			t.Errorf("%s: got elapsed %v, want > 0", r.Phase, r.Elapsed)
		}
		if r.What == "" {
			t.Errorf("%s: got no description, want one", r.Phase)
		}
		switch r.Phase {
		case "submit":
			if r.Count <= 0 || r.PerSecond <= 0 {
				t.Errorf("submit: got count %d and %v/s, want both > 0", r.Count, r.PerSecond)
			}
			checkLatency(t, r)
		case "deliver":
			if r.Count != callbacks || r.PerSecond <= 0 {
				t.Errorf("deliver: got count %d and %v/s, want %d and > 0", r.Count, r.PerSecond, callbacks)
			}
		case "latency":
			if r.Count != latencies {
				t.Errorf("latency: got count %d, want %d", r.Count, latencies)
			}
			checkLatency(t, r)
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
	for _, name := range phases {
		if !strings.Contains(table.String(), "| "+name+" | "+store+" |") {
			t.Errorf("got table\n%s\nwant a row for %s on %s", table.String(), name, store)
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
	if len(back.Phases) != len(res.Phases) || *back.Phases[0].Latency != *res.Phases[0].Latency {
		t.Errorf("got %s from JSON, want %+v back", b, res)
	}
}

// checkLatency checks that r's latencies are positive and ordered.
func checkLatency(t *testing.T, r Result) {
	t.Helper()
	l := r.Latency
	if l == nil {
		t.Errorf("%s: got no latency, want one", r.Phase)
		return
	}
	if l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max {
		t.Errorf("%s: got p50 %v, p99 %v, max %v, want 0 < p50 <= p99 <= max", r.Phase, l.P50, l.P99, l.Max)
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
		{"negative rate", Config{Open: open, Rate: -1}, "must not be negative"},
		{"unknown phase", Config{Open: open, Phases: []string{"submit", "storm"}}, `unknown phase "storm"`},
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
