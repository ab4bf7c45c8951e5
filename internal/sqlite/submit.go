package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/tunehook/tunehook/internal/task"
)

// pruneBatch bounds the expired idempotency keys one submission deletes.
// Each submission adds one key at most, so the expired ones cannot pile
// up, and no submission pays for a long backlog.
const pruneBatch = 100

// Submit stores sub.Task with the use of its idempotency key and the
// charge of its cost, all or nothing, in the next group commit (see
// submissions). The submissions of a group run one after the other, so
// concurrent submissions with one key are serialised: the first creates
// the task, the others find its key.
func (s *Store) Submit(ctx context.Context, sub task.Submission) (task.Submitted, error) {
	out, err := s.submit(ctx, sub)
	if err != nil {
		return task.Submitted{}, fmt.Errorf("submit task %s: %w", sub.Task.ID, err)
	}
	return out, nil
}

// submissions makes group commits of submissions. Each submission used
// to be a transaction of its own, and every commit syncs the disk: the
// writer connection took about 1,450 submissions per second, and at 1,000
// per second a submission waited up to 56 ms (p99) for its turn. The
// submissions that queue while one group commits make up the next group,
// committed by one of them, the leader: the first to find no leader, or
// the one the last leader handed over to, so that no submitter commits
// groups for others for longer than one group.
type submissions struct {
	mu      sync.Mutex
	queue   []*submission
	leading bool
}

// submission is a Submit waiting for its group commit.
type submission struct {
	ctx  context.Context
	sub  task.Submission
	out  task.Submitted
	err  error
	lead chan struct{} // closed when it is to commit the queue
	done chan struct{} // closed when out and err are set
}

// submit queues sub and waits for its group commit, which it makes when
// it leads.
func (s *Store) submit(ctx context.Context, sub task.Submission) (task.Submitted, error) {
	q := &s.submissions
	p := &submission{ctx: ctx, sub: sub, lead: make(chan struct{}), done: make(chan struct{})}
	q.mu.Lock()
	q.queue = append(q.queue, p)
	leads := !q.leading
	q.leading = true
	q.mu.Unlock()
	if !leads {
		select {
		case <-p.done:
			return p.out, p.err
		case <-p.lead:
		}
	}
	q.mu.Lock()
	group := q.queue
	q.queue = nil
	q.mu.Unlock()
	s.commitSubmissions(group)
	q.mu.Lock()
	if len(q.queue) > 0 {
		close(q.queue[0].lead)
	} else {
		q.leading = false
	}
	q.mu.Unlock()
	return p.out, p.err
}

// commitSubmissions stores group in one transaction, each submission all
// or nothing within it (a savepoint each), and hands every submission its
// result. The transaction is not cancelled with the leader's request: it
// holds the others too. A submission whose own request was cancelled
// while it queued is skipped.
func (s *Store) commitSubmissions(group []*submission) {
	ctx := context.WithoutCancel(group[0].ctx)
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, p := range group {
			if p.err = p.ctx.Err(); p.err != nil {
				continue
			}
			if _, err := tx.ExecContext(ctx, `SAVEPOINT submission`); err != nil {
				return err
			}
			p.out, p.err = s.submitIn(ctx, tx, p.sub)
			if p.err != nil {
				p.err = storageFull(p.err)
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO submission`); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE submission`); err != nil {
				return err
			}
		}
		return nil
	})
	created := false
	for _, p := range group {
		if err != nil {
			p.out, p.err = task.Submitted{}, err
		}
		created = created || (p.err == nil && !p.out.Replayed)
		close(p.done)
	}
	if created {
		s.taskReady.Notify()
	}
}

// submitIn stores sub.Task in tx, with the use of its idempotency key and
// the charge of its cost.
func (s *Store) submitIn(ctx context.Context, tx *sql.Tx, sub task.Submission) (task.Submitted, error) {
	t := sub.Task
	if sub.IdempotencyKey != "" {
		id, err := useKey(ctx, tx, sub)
		if err != nil {
			return task.Submitted{}, err
		}
		if id != t.ID {
			return task.Submitted{TaskID: id, Replayed: true}, nil
		}
	}
	if sub.Cost > 0 {
		if err := charge(ctx, tx, t.Owner, sub.Cost, sub.Credits); err != nil {
			return task.Submitted{}, err
		}
	}
	return task.Submitted{TaskID: t.ID}, s.insertTask(ctx, tx, t, sub.Cost)
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
