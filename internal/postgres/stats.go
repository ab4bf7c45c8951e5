package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tunehook/tunehook/internal/task"
)

// Stats counts tasks by status and callbacks by state, and measures how
// long the oldest claimable task and callback have been due. The counts
// read every row (there is no index on status or state), in one snapshot:
// fine at the rate metrics are scraped.
func (s *Store) Stats(ctx context.Context) (task.Stats, error) {
	st := task.Stats{Tasks: map[task.Status]int{}, Callbacks: map[task.DeliveryState]int{}}
	err := s.read(ctx, func(tx pgx.Tx) error {
		if err := countBy(ctx, tx, `SELECT status, count(*) FROM tasks GROUP BY status`, func(k string, n int) {
			st.Tasks[task.Status(k)] = n
		}); err != nil {
			return fmt.Errorf("count tasks: %w", err)
		}
		if err := countBy(ctx, tx, `SELECT state, count(*) FROM callbacks GROUP BY state`, func(k string, n int) {
			st.Callbacks[task.DeliveryState(k)] = n
		}); err != nil {
			return fmt.Errorf("count callbacks: %w", err)
		}
		return nil
	})
	if err != nil {
		return task.Stats{}, fmt.Errorf("stats: %w", err)
	}
	now := s.now()
	taskDue, err := s.NextTaskDue(ctx)
	if err != nil {
		return task.Stats{}, fmt.Errorf("stats: %w", err)
	}
	callbackDue, err := s.NextCallbackDue(ctx)
	if err != nil {
		return task.Stats{}, fmt.Errorf("stats: %w", err)
	}
	st.TaskLag, st.CallbackLag = task.Lag(taskDue, now), task.Lag(callbackDue, now)
	return st, nil
}

// countBy runs a query of (key, count) rows in tx and hands each row to
// add.
func countBy(ctx context.Context, tx pgx.Tx, query string, add func(key string, n int)) error {
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return err
	}
	var (
		k string
		n int
	)
	_, err = pgx.ForEachRow(rows, []any{&k, &n}, func() error {
		add(k, n)
		return nil
	})
	return err
}

// Ping checks that the database answers, on a connection of the pool.
func (s *Store) Ping(ctx context.Context) error {
	err := s.withConn(ctx, func(c *pgxpool.Conn) error { return c.Ping(ctx) })
	if err != nil {
		return fmt.Errorf("ping %s: %w", address(s.pool.Config().ConnConfig), err)
	}
	return nil
}
