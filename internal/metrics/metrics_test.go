package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/metrics"
	"github.com/tunehook/tunehook/internal/sqlite"
	"github.com/tunehook/tunehook/internal/task"
	"github.com/tunehook/tunehook/internal/worker"
)

// scrape returns the text of one scrape of m.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got HTTP %d: %s", resp.StatusCode, b)
	}
	return string(b)
}

// wantLines checks that every line of want is a line of text.
func wantLines(t *testing.T, text string, want ...string) {
	t.Helper()
	lines := map[string]bool{}
	for l := range strings.SplitSeq(text, "\n") {
		lines[l] = true
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("no line %q in the scrape", w)
		}
	}
}

func openStore(t *testing.T, now func() time.Time) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"), sqlite.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The store's counts are read at every scrape; the workers' events are
// counted as they come.
func TestMetrics(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	st := openStore(t, func() time.Time { return now })
	m := metrics.New(st, slog.New(slog.DiscardHandler))

	wantLines(t, scrape(t, m),
		`tunehook_tasks{status="PENDING"} 0`,
		`tunehook_callbacks{state="exhausted"} 0`,
		`tunehook_queue_lag_seconds{queue="tasks"} 0`,
		`tunehook_callback_attempts_total{outcome="delivered"} 0`,
		`tunehook_stage_duration_seconds_count{stage="text"} 0`,
	)

	for range 2 {
		tk := &task.Task{ID: task.NewTaskID(), Owner: "o", Model: "V5", Param: "{}", CallbackURL: "https://example.com/cb",
			Status: task.StatusPending, RunAt: t0, CreatedAt: t0, UpdatedAt: t0}
		if err := st.CreateTask(t.Context(), tk); err != nil {
			t.Fatal(err)
		}
	}
	now = t0.Add(1500 * time.Millisecond)
	m.ObserveStage(worker.StageEvent{Stage: task.StageText, To: task.StatusTextSuccess, Took: 20 * time.Millisecond})
	m.ObserveStage(worker.StageEvent{Stage: task.StageFirst, To: task.StatusFirstSuccess, Took: 3 * time.Second})
	for _, s := range []task.DeliveryState{task.DeliveryPending, task.DeliveryPending, task.DeliveryExhausted, task.DeliveryDelivered} {
		m.ObserveAttempt(worker.AttemptEvent{State: s, Took: 40 * time.Millisecond})
	}
	wantLines(t, scrape(t, m),
		`tunehook_tasks{status="PENDING"} 2`,
		`tunehook_tasks{status="SUCCESS"} 0`,
		`tunehook_queue_lag_seconds{queue="tasks"} 1.5`,
		`tunehook_queue_lag_seconds{queue="callbacks"} 0`,
		`tunehook_stage_duration_seconds_count{stage="text"} 1`,
		`tunehook_stage_duration_seconds_count{stage="first"} 1`,
		`tunehook_stage_duration_seconds_bucket{stage="first",le="2.5"} 0`,
		`tunehook_stage_duration_seconds_bucket{stage="first",le="5"} 1`,
		`tunehook_callback_attempts_total{outcome="failed"} 2`,
		`tunehook_callback_attempts_total{outcome="exhausted"} 1`,
		`tunehook_callback_attempts_total{outcome="delivered"} 1`,
		`tunehook_callback_attempt_duration_seconds_count 4`,
		`tunehook_callback_attempt_duration_seconds_bucket{le="0.05"} 4`,
	)
}

// brokenStore is a store whose Stats fails.
type brokenStore struct{ task.Store }

func (brokenStore) Stats(context.Context) (task.Stats, error) {
	return task.Stats{}, errors.New("database away")
}

// When the store cannot be read, the process's own metrics are still
// served and the error logged.
func TestMetricsStoreAway(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	m := metrics.New(brokenStore{openStore(t, nil)}, slog.New(slog.NewTextHandler(&log, nil)))
	m.ObserveAttempt(worker.AttemptEvent{State: task.DeliveryDelivered})
	text := scrape(t, m)
	wantLines(t, text, `tunehook_callback_attempts_total{outcome="delivered"} 1`)
	if strings.Contains(text, "tunehook_tasks") {
		t.Errorf("got tunehook_tasks in the scrape, want it left out:\n%s", text)
	}
	if !strings.Contains(log.String(), "database away") {
		t.Errorf("got log %q, want the store's error", log.String())
	}
}
