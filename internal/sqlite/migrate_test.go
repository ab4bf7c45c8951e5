package sqlite

import (
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/tunehook/tunehook/internal/task"
)

// TestMigrateRedeliveryDownUp takes a database with attempts of two series
// down to before redelivery existed and up again: the automatic series
// survives both ways, the manual one is dropped going down.
func TestMigrateRedeliveryDownUp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tunehook.db")
	s := openStore(t, path, fixedNow)
	_, cb := failTask(t, s)
	attempt := func(status int, state task.DeliveryState) task.Attempt {
		t.Helper()
		if got, err := s.ClaimCallbacks(ctx, "d", task.LaneFirst, 1, time.Hour); err != nil || len(got) != 1 {
			t.Fatalf("ClaimCallbacks: got %d, %v, want 1", len(got), err)
		}
		a := task.Attempt{CallbackID: cb.ID, N: 1, StartedAt: fixedNow(), StatusCode: status}
		results, err := s.RecordAttempts(ctx, "d", []task.AttemptRecord{{Attempt: a, State: state}})
		if err := errors.Join(append(results, err)...); err != nil {
			t.Fatal(err)
		}
		return a
	}
	automatic := attempt(200, task.DeliveryDelivered)
	if _, err := s.RedeliverCallback(ctx, cb.ID); err != nil {
		t.Fatal(err)
	}
	attempt(200, task.DeliveryDelivered)
	closeStore(t, s)

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, dir, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 2); err != nil {
		t.Fatalf("migrate down to 2: %v", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM attempts`).Scan(&n); err != nil || n != 1 {
		t.Errorf("attempts at version 2: got %d, %v, want the automatic one", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, path, fixedNow)
	defer closeStore(t, s)
	got, err := s.Callback(ctx, cb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.History) != 1 || got.History[0].Redelivery != 0 || got.History[0].StatusCode != automatic.StatusCode || got.Redeliveries != 0 {
		t.Errorf("callback after down and up: got %+v, want the automatic attempt only", got)
	}
}
