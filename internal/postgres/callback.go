package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tunehook/tunehook/internal/task"
)

// callbackColumns are the columns scanCallback reads, in its order.
const callbackColumns = `id, task_id, stage, url, body, state, attempts, redeliveries, next_attempt_at, created_at, finished_at`

// scanCallback reads one row of callbackColumns.
func scanCallback(row pgx.Row) (*task.Callback, error) {
	var (
		c              task.Callback
		next, finished *time.Time
	)
	err := row.Scan(&c.ID, &c.TaskID, &c.Stage, &c.URL, &c.Body, &c.State, &c.Attempts, &c.Redeliveries, &next, &c.CreatedAt, &finished)
	if err != nil {
		return nil, err
	}
	c.NextAttemptAt, c.FinishedAt = fromNullTime(next), fromNullTime(finished)
	return &c, nil
}

// insertCallback stores c as a new pending callback of task taskID, due at
// c.NextAttemptAt. A second callback for the same stage of a task violates
// UNIQUE (task_id, stage).
func insertCallback(ctx context.Context, tx pgx.Tx, taskID string, c *task.Callback) error {
	_, err := tx.Exec(ctx, `INSERT INTO callbacks (id, task_id, stage, url, body, state, attempts, next_attempt_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)`,
		c.ID, taskID, c.Stage, c.URL, c.Body, task.DeliveryPending, c.NextAttemptAt, c.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert %s callback %s: %w", c.Stage, c.ID, err)
	}
	return nil
}

// claimCallbacksQueries lease the due pending callbacks of each lane, with
// SKIP LOCKED for the reasons given at claimTasksQuery. Final callbacks have
// no next_attempt_at and never match. A lane's condition is written out,
// not a parameter, so that the planner matches it to the lane's partial
// index (callbacks_due_first, callbacks_due_retry), which serves both the
// filter and the order.
var claimCallbacksQueries = map[task.Lane]string{
	task.LaneFirst: claimCallbacksQuery("attempts = 0"),
	task.LaneRetry: claimCallbacksQuery("attempts > 0"),
}

// claimCallbacksQuery returns the claim of the lane that cond selects.
func claimCallbacksQuery(cond string) string {
	return `UPDATE callbacks
	SET lease_owner = $1, lease_until = $2, lease_redelivery = redeliveries
	WHERE id IN (
		SELECT id FROM callbacks
		WHERE next_attempt_at IS NOT NULL AND ` + cond + ` AND next_attempt_at <= $3
			AND (lease_until IS NULL OR lease_until <= $3)
		ORDER BY next_attempt_at, created_at, id
		LIMIT $4
		FOR UPDATE SKIP LOCKED)
	RETURNING ` + callbackColumns
}

// ClaimCallbacks leases up to limit due pending callbacks of lane to owner,
// earliest due first.
func (s *Store) ClaimCallbacks(ctx context.Context, owner string, lane task.Lane, limit int, lease time.Duration) ([]*task.Callback, error) {
	query, ok := claimCallbacksQueries[lane]
	if !ok {
		return nil, fmt.Errorf("claim callbacks for %s: unknown lane %q", owner, lane)
	}
	// PostgreSQL refuses a negative LIMIT.
	if limit <= 0 {
		return nil, nil
	}
	now := s.now()
	var cbs []*task.Callback
	err := s.withConn(ctx, func(c *pgxpool.Conn) error {
		rows, err := c.Query(ctx, query, owner, now.Add(lease), now, limit)
		if err != nil {
			return err
		}
		cbs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*task.Callback, error) { return scanCallback(row) })
		return err
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
// while it stays pending, in which case it wakes every instance. The
// attempt is filed under the series the callback was claimed in; if the
// callback was redelivered since, the new series is left as it is.
func (s *Store) RecordAttempt(ctx context.Context, owner string, a task.Attempt, state task.DeliveryState, next time.Time) error {
	now := s.now()
	var nextAt, finishedAt *time.Time
	switch state {
	case task.DeliveryPending:
		nextAt = &next
	case task.DeliveryDelivered, task.DeliveryExhausted:
		finishedAt = &now
	default:
		return fmt.Errorf("record attempt %d of callback %s: unknown delivery state %q", a.N, a.CallbackID, state)
	}
	// A zero status code means no response arrived: NULL says so.
	var status *int
	if a.StatusCode != 0 {
		status = &a.StatusCode
	}
	var pending bool
	err := s.write(ctx, func(tx pgx.Tx) error {
		// Every expression of SET reads the row as it was: the CASEs ask
		// whether the attempt's series is still the current one.
		var redelivery int
		err := tx.QueryRow(ctx, `UPDATE callbacks SET
				state = CASE WHEN redeliveries = lease_redelivery THEN $1 ELSE state END,
				attempts = CASE WHEN redeliveries = lease_redelivery THEN $2 ELSE attempts END,
				next_attempt_at = CASE WHEN redeliveries = lease_redelivery THEN $3 ELSE next_attempt_at END,
				finished_at = CASE WHEN redeliveries = lease_redelivery THEN $4 ELSE finished_at END,
				lease_owner = NULL, lease_until = NULL
			WHERE id = $5 AND lease_owner = $6 AND lease_until > $7
			RETURNING lease_redelivery, next_attempt_at IS NOT NULL`,
			state, a.N, nextAt, finishedAt, a.CallbackID, owner, now).Scan(&redelivery, &pending)
		if errors.Is(err, pgx.ErrNoRows) {
			return task.ErrLeaseLost
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO attempts (callback_id, redelivery, n, started_at, duration_ms, status_code, error, response)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			a.CallbackID, redelivery, a.N, a.StartedAt, a.Duration.Milliseconds(), status, validText(a.Error), a.Response)
		if err != nil {
			return err
		}
		if !pending {
			return nil
		}
		return s.notify(ctx, tx, wakeCallback)
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
// due at until, attempts unchanged, and wakes every instance.
func (s *Store) DeferCallback(ctx context.Context, owner, callbackID string, until time.Time) error {
	if until.IsZero() {
		return fmt.Errorf("defer callback %s: no time to defer it to", callbackID)
	}
	err := s.write(ctx, func(tx pgx.Tx) error {
		err := fenced(tx.Exec(ctx, `UPDATE callbacks
			SET next_attempt_at = $1, lease_owner = NULL, lease_until = NULL
			WHERE id = $2 AND next_attempt_at IS NOT NULL AND lease_owner = $3 AND lease_until > $4`,
			until, callbackID, owner, s.now()))
		if err != nil {
			return err
		}
		return s.notify(ctx, tx, wakeCallback)
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
	(SELECT next_attempt_at AS due FROM callbacks
		WHERE next_attempt_at IS NOT NULL AND attempts = 0 AND lease_until IS NULL
		ORDER BY next_attempt_at LIMIT 1)
	UNION ALL
	(SELECT next_attempt_at FROM callbacks
		WHERE next_attempt_at IS NOT NULL AND attempts > 0 AND lease_until IS NULL
		ORDER BY next_attempt_at LIMIT 1)
	UNION ALL
	SELECT min(greatest(next_attempt_at, lease_until)) FROM callbacks
		WHERE lease_until IS NOT NULL AND next_attempt_at IS NOT NULL) AS heads`

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

// CallbackReady signals after this instance inserted or deferred a
// callback or recorded an attempt that left it pending, and after another
// instance did.
func (s *Store) CallbackReady() <-chan struct{} { return s.callbackReady }

// Callbacks returns the callbacks of a task in the order they were created,
// callbacks created at the same instant in stage order, each with its
// attempts in the order they were made.
func (s *Store) Callbacks(ctx context.Context, taskID string) ([]*task.Callback, error) {
	var cbs []*task.Callback
	err := s.read(ctx, func(tx pgx.Tx) error {
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
	err := s.read(ctx, func(tx pgx.Tx) error {
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
// and wakes every instance. A lease in force stays: the attempt in flight
// is recorded under its own series, and frees the callback.
func (s *Store) RedeliverCallback(ctx context.Context, id string) (*task.Callback, error) {
	var c *task.Callback
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE callbacks
			SET state = $1, attempts = 0, redeliveries = redeliveries + 1, next_attempt_at = $2, finished_at = NULL
			WHERE id = $3`,
			task.DeliveryPending, s.now(), id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return task.ErrNotFound
		}
		if c, err = loadCallback(ctx, tx, id); err != nil {
			return err
		}
		return s.notify(ctx, tx, wakeCallback)
	})
	if err != nil {
		return nil, fmt.Errorf("redeliver callback %s: %w", id, err)
	}
	s.callbackReady.Notify()
	return c, nil
}

// loadCallback returns callback id with its attempts, or task.ErrNotFound.
func loadCallback(ctx context.Context, tx pgx.Tx, id string) (*task.Callback, error) {
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
func loadCallbacks(ctx context.Context, tx pgx.Tx, column, value string) ([]*task.Callback, error) {
	rows, err := tx.Query(ctx, `SELECT `+callbackColumns+` FROM callbacks WHERE `+column+` = $1
		ORDER BY created_at,
			CASE stage WHEN 'text' THEN 0 WHEN 'first' THEN 1 WHEN 'complete' THEN 2 ELSE 3 END`, value)
	if err != nil {
		return nil, err
	}
	cbs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*task.Callback, error) { return scanCallback(row) })
	if err != nil {
		return nil, err
	}
	return cbs, loadHistory(ctx, tx, column, value, cbs)
}

// loadHistory appends the attempts of cbs, the callbacks whose column is
// value, to their History, ordered by series and n.
func loadHistory(ctx context.Context, tx pgx.Tx, column, value string, cbs []*task.Callback) error {
	if len(cbs) == 0 {
		return nil
	}
	byID := make(map[string]*task.Callback, len(cbs))
	for _, c := range cbs {
		byID[c.ID] = c
	}
	rows, err := tx.Query(ctx, `SELECT a.callback_id, a.redelivery, a.n, a.started_at, a.duration_ms, a.status_code, a.error, a.response
		FROM attempts a JOIN callbacks c ON c.id = a.callback_id
		WHERE c.`+column+` = $1 ORDER BY a.callback_id, a.redelivery, a.n`, value)
	if err != nil {
		return fmt.Errorf("load attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			a          task.Attempt
			durationMS int64
			status     *int
		)
		if err := rows.Scan(&a.CallbackID, &a.Redelivery, &a.N, &a.StartedAt, &durationMS, &status, &a.Error, &a.Response); err != nil {
			return fmt.Errorf("load attempts: %w", err)
		}
		a.Duration = time.Duration(durationMS) * time.Millisecond
		if status != nil {
			a.StatusCode = *status
		}
		c := byID[a.CallbackID]
		c.History = append(c.History, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load attempts: %w", err)
	}
	return nil
}
