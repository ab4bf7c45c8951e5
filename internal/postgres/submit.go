package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tunehook/tunehook/internal/task"
)

// pruneBatch bounds the expired idempotency keys one submission deletes.
// Each submission adds one key at most, so the expired ones cannot pile
// up, and no submission pays for a long backlog.
const pruneBatch = 100

// Submit stores sub.Task in one transaction with the use of its
// idempotency key and the charge of its cost. Concurrent submissions with
// one key, from any instance, meet on the key's primary key: the first
// inserts it, the others wait for its transaction and then find the key
// (or take it, if the first rolled back). Concurrent charges meet on the
// owner's balance row, which the conditional update locks.
func (s *Store) Submit(ctx context.Context, sub task.Submission) (task.Submitted, error) {
	t := sub.Task
	out := task.Submitted{TaskID: t.ID}
	if sub.IdempotencyKey == "" && sub.Cost == 0 {
		// Nothing to read or charge first: the inserts are the
		// transaction, in one round trip.
		err := s.send(ctx, func(c *pgxpool.Conn) error { return insertTask(ctx, c, t, 0) })
		return s.submitted(t, out, err)
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		out = task.Submitted{TaskID: t.ID}
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
		return insertTask(ctx, tx, t, sub.Cost)
	})
	return s.submitted(t, out, err)
}

// submitted returns the outcome of the submission of t: out, or err, the
// error of its transaction. A created task wakes the instances.
func (s *Store) submitted(t *task.Task, out task.Submitted, err error) (task.Submitted, error) {
	if err != nil {
		return task.Submitted{}, fmt.Errorf("submit task %s: %w", t.ID, err)
	}
	if !out.Replayed {
		s.wakeTasks(!t.Status.Final())
	}
	return out, nil
}

// useKey takes sub's idempotency key for sub.Task, or finds the task that
// holds it, and returns the ID of the key's task: sub.Task's when the key
// was free (never used, or expired), or the earlier task's for the same
// request. The same key for another request is task.ErrIdempotencyConflict.
// It also prunes some expired keys, skipping those another transaction
// holds rather than waiting for them.
func useKey(ctx context.Context, tx pgx.Tx, sub task.Submission) (string, error) {
	t := sub.Task
	expired := t.CreatedAt.Add(-sub.IdempotencyTTL)
	if _, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE (owner, key) IN (
		SELECT owner, key FROM idempotency_keys WHERE created_at < $1
		ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
		expired, pruneBatch); err != nil {
		return "", fmt.Errorf("prune idempotency keys: %w", err)
	}
	var id, hash string
	err := tx.QueryRow(ctx, `INSERT INTO idempotency_keys (owner, key, request_hash, task_id, created_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (owner, key) DO UPDATE
			SET request_hash = excluded.request_hash, task_id = excluded.task_id, created_at = excluded.created_at
			WHERE idempotency_keys.created_at < $6
		RETURNING task_id`,
		t.Owner, sub.IdempotencyKey, sub.RequestHash, t.ID, t.CreatedAt, expired).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("use idempotency key: %w", err)
	}
	// The key is held, unexpired, by a committed transaction: the insert
	// waited for it if it was in progress, and this statement's snapshot,
	// taken after, sees it.
	err = tx.QueryRow(ctx, `SELECT task_id, request_hash FROM idempotency_keys WHERE owner = $1 AND key = $2`,
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
// returns task.ErrInsufficientCredits. The update locks the balance's row
// and checks it again once a concurrent charge has committed, so no two
// charges spend the same credits.
func charge(ctx context.Context, tx pgx.Tx, owner string, cost, initial int) error {
	if _, err := tx.Exec(ctx, `INSERT INTO credits (owner, balance) VALUES ($1, $2) ON CONFLICT (owner) DO NOTHING`,
		owner, initial); err != nil {
		return fmt.Errorf("open balance: %w", err)
	}
	tag, err := tx.Exec(ctx, `UPDATE credits SET balance = balance - $1 WHERE owner = $2 AND balance >= $1`, cost, owner)
	if err != nil {
		return fmt.Errorf("charge: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return task.ErrInsufficientCredits
	}
	return nil
}

// queueRefund queues the return of task taskID's cost to its owner.
func queueRefund(b *pgx.Batch, taskID string) {
	b.Queue(`UPDATE credits c SET balance = c.balance + t.cost
		FROM tasks t WHERE t.id = $1 AND c.owner = t.owner AND t.cost > 0`, taskID)
}

// Credits returns owner's balance, or initial when it has none yet.
func (s *Store) Credits(ctx context.Context, owner string, initial int) (int, error) {
	balance := initial
	err := s.withConn(ctx, func(c *pgxpool.Conn) error {
		err := c.QueryRow(ctx, `SELECT balance FROM credits WHERE owner = $1`, owner).Scan(&balance)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("credits: %w", err)
	}
	return balance, nil
}
