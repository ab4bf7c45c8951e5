package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tunehook/tunehook/internal/task"
)

// pruneBatch bounds the expired idempotency keys one submission deletes.
// Each submission adds one key at most, so the expired ones cannot pile
// up, and no submission pays for a long backlog.
const pruneBatch = 100

// Submit stores sub.Task in one transaction with the use of its
// idempotency key and the charge of its cost. The writer connection runs
// one transaction at a time, so concurrent submissions with one key are
// serialised: the first creates the task, the others find its key.
func (s *Store) Submit(ctx context.Context, sub task.Submission) (task.Submitted, error) {
	t := sub.Task
	out := task.Submitted{TaskID: t.ID}
	err := s.write(ctx, func(tx *sql.Tx) error {
		if sub.IdempotencyKey != "" {
			id, err := useKey(ctx, tx, sub)
			if err != nil {
				return err
			}
			if id != t.ID {
				out = task.Submitted{TaskID: id, Replayed: true}
				return nil
			}
		}
		if sub.Cost > 0 {
			if err := charge(ctx, tx, t.Owner, sub.Cost, sub.Credits); err != nil {
				return err
			}
		}
		return s.insertTask(ctx, tx, t, sub.Cost)
	})
	if err != nil {
		return task.Submitted{}, fmt.Errorf("submit task %s: %w", t.ID, err)
	}
	if !out.Replayed {
		s.taskReady.Notify()
	}
	return out, nil
}

// useKey takes sub's idempotency key for sub.Task, or finds the task that
// holds it, and returns the ID of the key's task: sub.Task's when the key
// was free (never used, or expired), or the earlier task's for the same
// request. The same key for another request is task.ErrIdempotencyConflict.
// It also prunes some expired keys.
func useKey(ctx context.Context, tx *sql.Tx, sub task.Submission) (string, error) {
	t := sub.Task
	expired := ms(t.CreatedAt.Add(-sub.IdempotencyTTL))
	if _, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE rowid IN (
		SELECT rowid FROM idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT ?)`,
		expired, pruneBatch); err != nil {
		return "", fmt.Errorf("prune idempotency keys: %w", err)
	}
	var id, hash string
	err := tx.QueryRowContext(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, task_id, created_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (owner, key) DO UPDATE
			SET request_hash = excluded.request_hash, task_id = excluded.task_id, created_at = excluded.created_at
			WHERE idempotency_keys.created_at < ?
		RETURNING task_id`,
		t.Owner, sub.IdempotencyKey, sub.RequestHash, t.ID, ms(t.CreatedAt), expired).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("use idempotency key: %w", err)
	}
	// The key is held, unexpired.
	err = tx.QueryRowContext(ctx, `SELECT task_id, request_hash FROM idempotency_keys WHERE owner = ? AND key = ?`,
		t.Owner, sub.IdempotencyKey).Scan(&id, &hash)
	if err != nil {
		return "", fmt.Errorf("read idempotency key: %w", err)
	}
	if hash != sub.RequestHash {
		return "", task.ErrIdempotencyConflict
	}
	return id, nil
}

// charge takes cost from owner's balance, which starts at initial, or
// returns task.ErrInsufficientCredits.
func charge(ctx context.Context, tx *sql.Tx, owner string, cost, initial int) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO credits (owner, balance) VALUES (?, ?) ON CONFLICT (owner) DO NOTHING`,
		owner, initial); err != nil {
		return fmt.Errorf("open balance: %w", err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE credits SET balance = balance - ? WHERE owner = ? AND balance >= ?`,
		cost, owner, cost)
	if err != nil {
		return fmt.Errorf("charge: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("charge: %w", err)
	}
	if n == 0 {
		return task.ErrInsufficientCredits
	}
	return nil
}

// refund gives task taskID's cost back to its owner.
func refund(ctx context.Context, tx *sql.Tx, taskID string) error {
	_, err := tx.ExecContext(ctx, `UPDATE credits SET balance = balance + t.cost
		FROM (SELECT owner, cost FROM tasks WHERE id = ?) AS t
		WHERE credits.owner = t.owner AND t.cost > 0`, taskID)
	if err != nil {
		return fmt.Errorf("refund: %w", err)
	}
	return nil
}

// Credits returns owner's balance, or initial when it has none yet.
func (s *Store) Credits(ctx context.Context, owner string, initial int) (int, error) {
	var balance int
	err := s.r.QueryRowContext(ctx, `SELECT balance FROM credits WHERE owner = ?`, owner).Scan(&balance)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return initial, nil
	case err != nil:
		return 0, fmt.Errorf("credits: %w", err)
	}
	return balance, nil
}
