package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// callbackColumns are the columns scanCallback reads, in its order.
const callbackColumns = `id, task_id, stage, url, body, state, attempts, redeliveries, next_attempt_at, created_at, finished_at`

// scanCallback reads one row of callbackColumns.
func scanCallback(row interface{ Scan(...any) error }) (*task.Callback, error) {
	var (
		c              task.Callback
		next, finished sql.NullInt64
		created        int64
	)
	err := row.Scan(&c.ID, &c.TaskID, &c.Stage, &c.URL, &c.Body, &c.State, &c.Attempts, &c.Redeliveries, &next, &created, &finished)
	if err != nil {
		return nil, err
	}
	c.NextAttemptAt, c.CreatedAt, c.FinishedAt = fromNullMS(next), fromMS(created), fromNullMS(finished)
	return &c, nil
}

// insertCallback stores c as a new pending callback of task taskID, due at
// c.NextAttemptAt. A second callback for the same stage of a task violates
// UNIQUE (task_id, stage).
func insertCallback(ctx context.Context, tx *sql.Tx, taskID string, c *task.Callback) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO callbacks (id, task_id, stage, url, body, state, attempts, next_attempt_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)`,
		c.ID, taskID, c.Stage, c.URL, c.Body, task.DeliveryPending, ms(c.NextAttemptAt), ms(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("insert %s callback %s: %w", c.Stage, c.ID, err)
	}
	return nil
}

// lanes are the conditions that put a pending callback in each lane; each
// matches the partial index of its lane, so that a claim reads its lane's
// head in order.
var lanes = map[task.Lane]string{
	task.LaneFirst: "attempts = 0",
	task.LaneRetry: "attempts > 0",
}

// ClaimCallbacks leases up to limit due pending callbacks of lane to owner,
// earliest due first. Final callbacks have no next_attempt_at and never
// match.
func (s *Store) ClaimCallbacks(ctx context.Context, owner string, lane task.Lane, limit int, lease time.Duration) ([]*task.Callback, error) {
	cond, ok := lanes[lane]
	if !ok {
		return nil, fmt.Errorf("claim callbacks for %s: unknown lane %q", owner, lane)
	}
	// SQLite reads a negative LIMIT as no limit at all.
	if limit <= 0 {
		return nil, nil
	}
	now := s.now()
	var cbs []*task.Callback
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE callbacks
			SET lease_owner = ?, lease_until = ?, lease_redelivery = redeliveries
			WHERE id IN (
				SELECT id FROM callbacks
				WHERE next_attempt_at IS NOT NULL AND `+cond+` AND next_attempt_at <= ?
					AND (lease_until IS NULL OR lease_until <= ?)
				ORDER BY next_attempt_at, created_at, id
				LIMIT ?)
			RETURNING `+callbackColumns,
			owner, ms(now.Add(lease)), ms(now), ms(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanCallback(rows)
			if err != nil {
				return err
			}
			cbs = append(cbs, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim %s callbacks for %s: %w", lane, owner, err)
	}
	// RETURNING has no order of its own; restore the claim's.
	slices.SortFunc(cbs, task.CallbackClaimOrder)
	return cbs, nil
}

// RecordAttempt stores attempt a of a callback under owner's unexpired
// lease, frees the lease and moves the callback to state, due again at next
// while it stays pending, in which case it signals CallbackReady. The
// attempt is filed under the series the callback was claimed in; if the
// callback was redelivered since, the new series is left as it is.
func (s *Store) RecordAttempt(ctx context.Context, owner string, a task.Attempt, state task.DeliveryState, next time.Time) error {
	now := s.now()
	var nextAt, finishedAt sql.NullInt64
	switch state {
	case task.DeliveryPending:
		nextAt = sql.NullInt64{Int64: ms(next), Valid: true}
	case task.DeliveryDelivered, task.DeliveryExhausted:
		finishedAt = sql.NullInt64{Int64: ms(now), Valid: true}
	default:
		return fmt.Errorf("record attempt %d of callback %s: unknown delivery state %q", a.N, a.CallbackID, state)
	}
	// A zero status code means no response arrived: NULL says so.
	status := sql.NullInt64{Int64: int64(a.StatusCode), Valid: a.StatusCode != 0}
	var pending bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		// Every expression of SET reads the row as it was: same is whether
		// the attempt's series is still the current one.
		var redelivery int
		err := tx.QueryRowContext(ctx, `UPDATE callbacks SET
				state = CASE WHEN redeliveries = lease_redelivery THEN ? ELSE state END,
				attempts = CASE WHEN redeliveries = lease_redelivery THEN ? ELSE attempts END,
				next_attempt_at = CASE WHEN redeliveries = lease_redelivery THEN ? ELSE next_attempt_at END,
				finished_at = CASE WHEN redeliveries = lease_redelivery THEN ? ELSE finished_at END,
				lease_owner = NULL, lease_until = NULL
			WHERE id = ? AND lease_owner = ? AND lease_until > ?
			RETURNING lease_redelivery, next_attempt_at IS NOT NULL`,
			state, a.N, nextAt, finishedAt, a.CallbackID, owner, ms(now)).Scan(&redelivery, &pending)
		if errors.Is(err, sql.ErrNoRows) {
			return task.ErrLeaseLost
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO attempts (callback_id, redelivery, n, started_at, duration_ms, status_code, error, response)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			a.CallbackID, redelivery, a.N, ms(a.StartedAt), a.Duration.Milliseconds(), status, a.Error, a.Response)
		return err
	})
	if err != nil {
		return fmt.Errorf("record attempt %d of callback %s: %w", a.N, a.CallbackID, err)
	}
	// A final callback makes nothing due; signalling it would only wake
	// the dispatcher for nothing after every delivery.
	if pending {
		s.callbackReady.Notify()
	}
	return nil
}

// DeferCallback frees owner's unexpired lease on a callback and makes it
// due at until, attempts unchanged, and signals CallbackReady.
func (s *Store) DeferCallback(ctx context.Context, owner, callbackID string, until time.Time) error {
	if until.IsZero() {
		return fmt.Errorf("defer callback %s: no time to defer it to", callbackID)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		return fenced(tx.ExecContext(ctx, `UPDATE callbacks
			SET next_attempt_at = ?, lease_owner = NULL, lease_until = NULL
			WHERE id = ? AND next_attempt_at IS NOT NULL AND lease_owner = ? AND lease_until > ?`,
			ms(until), callbackID, owner, ms(s.now())))
	})
	if err != nil {
		return fmt.Errorf("defer callback %s: %w", callbackID, err)
	}
	s.callbackReady.Notify()
	return nil
}

// nextCallbackDueQuery finds the earliest claimable time among three
// groups, each read through an index: the unleased head of each lane (its
// due time; the leased callbacks at a lane's head are skipped, and there
// are no more of them than attempts in flight), and the leased callbacks
// (their lease's expiry, or their due time if later). Reading the lanes'
// heads instead of every pending callback keeps it cheap however large the
// backlog of retries.
const nextCallbackDueQuery = `SELECT min(due) FROM (
	SELECT * FROM (SELECT next_attempt_at AS due FROM callbacks
		WHERE next_attempt_at IS NOT NULL AND attempts = 0 AND lease_until IS NULL
		ORDER BY next_attempt_at LIMIT 1)
	UNION ALL
	SELECT * FROM (SELECT next_attempt_at FROM callbacks
		WHERE next_attempt_at IS NOT NULL AND attempts > 0 AND lease_until IS NULL
		ORDER BY next_attempt_at LIMIT 1)
	UNION ALL
	SELECT min(max(next_attempt_at, lease_until)) FROM callbacks
		WHERE lease_until IS NOT NULL AND next_attempt_at IS NOT NULL)`

// NextCallbackDue returns when the earliest pending callback of either lane
// can be claimed: at its next attempt, or when its lease expires if that is
// later (see NextTaskDue).
func (s *Store) NextCallbackDue(ctx context.Context) (time.Time, error) {
	next, err := s.nextDue(ctx, nextCallbackDueQuery)
	if err != nil {
		return time.Time{}, fmt.Errorf("next callback due: %w", err)
	}
	return next, nil
}

// CallbackReady signals after a callback was inserted or deferred, or an
// attempt left it pending.
func (s *Store) CallbackReady() <-chan struct{} { return s.callbackReady }

// Callbacks returns the callbacks of a task in the order they were created,
// callbacks created at the same millisecond in stage order, each with its
// attempts in the order they were made.
func (s *Store) Callbacks(ctx context.Context, taskID string) ([]*task.Callback, error) {
	var cbs []*task.Callback
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		cbs, err = loadCallbacks(ctx, tx, "task_id", taskID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("callbacks of task %s: %w", taskID, err)
	}
	return cbs, nil
}

// Callback returns one callback with its attempts, or an error wrapping
// task.ErrNotFound.
func (s *Store) Callback(ctx context.Context, id string) (*task.Callback, error) {
	var c *task.Callback
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = loadCallback(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("callback %s: %w", id, err)
	}
	return c, nil
}

// RedeliverCallback starts a new attempt series of a callback, due now,
// and signals CallbackReady. A lease in force stays: the attempt in flight
// is recorded under its own series, and frees the callback.
func (s *Store) RedeliverCallback(ctx context.Context, id string) (*task.Callback, error) {
	var c *task.Callback
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE callbacks
			SET state = ?, attempts = 0, redeliveries = redeliveries + 1, next_attempt_at = ?, finished_at = NULL
			WHERE id = ?`,
			task.DeliveryPending, ms(s.now()), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, task.ErrNotFound)
		}
		c, err = loadCallback(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("redeliver callback %s: %w", id, err)
	}
	s.callbackReady.Notify()
	return c, nil
}

// loadCallback returns callback id with its attempts, or task.ErrNotFound.
func loadCallback(ctx context.Context, tx *sql.Tx, id string) (*task.Callback, error) {
	cbs, err := loadCallbacks(ctx, tx, "id", id)
	if err != nil {
		return nil, err
	}
	if len(cbs) == 0 {
		return nil, task.ErrNotFound
	}
	return cbs[0], nil
}

// loadCallbacks returns the callbacks whose column (id or task_id) is
// value, in the order Callbacks gives them, each with its attempts.
func loadCallbacks(ctx context.Context, tx *sql.Tx, column, value string) ([]*task.Callback, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+callbackColumns+` FROM callbacks WHERE `+column+` = ?
		ORDER BY created_at,
			CASE stage WHEN 'text' THEN 0 WHEN 'first' THEN 1 WHEN 'complete' THEN 2 ELSE 3 END`, value)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cbs []*task.Callback
	byID := make(map[string]*task.Callback)
	for rows.Next() {
		c, err := scanCallback(rows)
		if err != nil {
			return nil, err
		}
		cbs = append(cbs, c)
		byID[c.ID] = c
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return cbs, loadHistory(ctx, tx, column, value, byID)
}

// loadHistory appends the attempts of the callbacks whose column is value
// to their History, ordered by series and n.
func loadHistory(ctx context.Context, tx *sql.Tx, column, value string, byID map[string]*task.Callback) error {
	rows, err := tx.QueryContext(ctx, `SELECT a.callback_id, a.redelivery, a.n, a.started_at, a.duration_ms, a.status_code, a.error, a.response
		FROM attempts a JOIN callbacks c ON c.id = a.callback_id
		WHERE c.`+column+` = ? ORDER BY a.callback_id, a.redelivery, a.n`, value)
	if err != nil {
		return fmt.Errorf("load attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			a                   task.Attempt
			started, durationMS int64
			status              sql.NullInt64
		)
		if err := rows.Scan(&a.CallbackID, &a.Redelivery, &a.N, &started, &durationMS, &status, &a.Error, &a.Response); err != nil {
			return fmt.Errorf("load attempts: %w", err)
		}
		a.StartedAt, a.Duration, a.StatusCode = fromMS(started), time.Duration(durationMS)*time.Millisecond, int(status.Int64)
		c := byID[a.CallbackID]
		c.History = append(c.History, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load attempts: %w", err)
	}
	return nil
}
