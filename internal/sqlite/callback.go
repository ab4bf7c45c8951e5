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

// insertCallbackQuery inserts a pending callback.
const insertCallbackQuery = `INSERT INTO callbacks (id, task_id, stage, url, body, state, attempts, next_attempt_at, created_at)
	VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)`

// insertCallback stores c as a new pending callback of task taskID, due at
// c.NextAttemptAt, in tx, a transaction of the writer. A second callback
// for the same stage of a task violates UNIQUE (task_id, stage).
func (s *Store) insertCallback(ctx context.Context, tx *sql.Tx, taskID string, c *task.Callback) error {
	_, err := s.stmt(ctx, tx, insertCallbackQuery).ExecContext(ctx,
		c.ID, taskID, c.Stage, c.URL, c.Body, task.DeliveryPending, ms(c.NextAttemptAt), ms(c.CreatedAt))
	if err != nil {
		return fmt.Errorf("insert %s callback %s: %w", c.Stage, c.ID, err)
	}
	return nil
}

// claimCallbacksQueries lease the due pending callbacks of each lane:
// ?1 is the owner, ?2 the lease's end, ?3 now and ?4 the limit. Final
// callbacks have no next_attempt_at and never match. A lane's due
// callbacks are those of its index (callbacks_due_first,
// callbacks_due_retry), which holds the unleased ones in claim order, and
// those whose lease expired unfreed, found through callbacks_leased, which
// holds the leased ones in the order they become claimable: the callbacks
// in flight are at its end, and no claim walks past them.
var claimCallbacksQueries = map[task.Lane]string{
	task.LaneFirst: claimCallbacksQuery("attempts = 0"),
	task.LaneRetry: claimCallbacksQuery("attempts > 0"),
}

// claimCallbacksQuery returns the claim of the lane that cond selects,
// written out so that SQLite matches it to the lane's partial index.
func claimCallbacksQuery(cond string) string {
	return `UPDATE callbacks
	SET lease_owner = ?1, lease_until = ?2, lease_redelivery = redeliveries
	WHERE id IN (
		SELECT id FROM (
			SELECT * FROM (SELECT id, next_attempt_at, created_at FROM callbacks
				WHERE next_attempt_at IS NOT NULL AND ` + cond + ` AND lease_until IS NULL AND next_attempt_at <= ?3
				ORDER BY next_attempt_at, created_at, id LIMIT ?4)
			UNION ALL
			SELECT * FROM (SELECT id, next_attempt_at, created_at FROM callbacks
				WHERE lease_until IS NOT NULL AND next_attempt_at IS NOT NULL AND ` + cond + `
					AND max(next_attempt_at, lease_until) <= ?3
				ORDER BY max(next_attempt_at, lease_until) LIMIT ?4))
		ORDER BY next_attempt_at, created_at, id LIMIT ?4)
	RETURNING ` + callbackColumns
}

// ClaimCallbacks leases up to limit due pending callbacks of lane to owner,
// earliest due first.
func (s *Store) ClaimCallbacks(ctx context.Context, owner string, lane task.Lane, limit int, lease time.Duration) ([]*task.Callback, error) {
	query, ok := claimCallbacksQueries[lane]
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
		rows, err := s.stmt(ctx, tx, query).QueryContext(ctx, owner, ms(now.Add(lease)), ms(now), limit)
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

// recordAttemptQuery ends an attempt under the owner's unexpired lease,
// moving the callback on when the attempt's series is still the current
// one. Every expression of SET reads the row as it was: the CASEs ask
// whether the series is the current one.
const recordAttemptQuery = `UPDATE callbacks SET
		state = CASE WHEN redeliveries = lease_redelivery THEN ?1 ELSE state END,
		attempts = CASE WHEN redeliveries = lease_redelivery THEN ?2 ELSE attempts END,
		next_attempt_at = CASE WHEN redeliveries = lease_redelivery THEN ?3 ELSE next_attempt_at END,
		finished_at = CASE WHEN redeliveries = lease_redelivery THEN ?4 ELSE finished_at END,
		lease_owner = NULL, lease_until = NULL
	WHERE id = ?5 AND lease_owner = ?6 AND lease_until > ?7
	RETURNING lease_redelivery, next_attempt_at IS NOT NULL`

// insertAttemptQuery stores an attempt.
const insertAttemptQuery = `INSERT INTO attempts (callback_id, redelivery, n, started_at, duration_ms, status_code, error, response)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

// RecordAttempts stores the attempts of records in one transaction, each
// under owner's unexpired lease on its callback: it frees the lease and
// moves the callback to the record's state, due again at its Next while it
// stays pending. Each attempt is filed under the series its callback was
// claimed in; a callback redelivered since keeps its new series as it is.
// It signals CallbackReady when a recorded attempt left its callback
// pending.
func (s *Store) RecordAttempts(ctx context.Context, owner string, records []task.AttemptRecord) ([]error, error) {
	if len(records) == 0 {
		return nil, nil
	}
	now := s.now()
	outcomes := make([]attemptOutcome, len(records))
	for i, r := range records {
		o, err := outcomeOf(r, now)
		if err != nil {
			return nil, err
		}
		outcomes[i] = o
	}
	results := make([]error, len(records))
	pending := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		update, insert := s.stmt(ctx, tx, recordAttemptQuery), s.stmt(ctx, tx, insertAttemptQuery)
		for i, r := range records {
			o := outcomes[i]
			var redelivery int
			var due bool
			err := update.QueryRowContext(ctx, r.State, r.N, o.next, o.finished, r.CallbackID, owner, ms(now)).Scan(&redelivery, &due)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				results[i] = fmt.Errorf("record attempt %d of callback %s: %w", r.N, r.CallbackID, task.ErrLeaseLost)
				continue
			case err != nil:
				return fmt.Errorf("attempt %d of callback %s: %w", r.N, r.CallbackID, err)
			}
			_, err = insert.ExecContext(ctx, r.CallbackID, redelivery, r.N, ms(r.StartedAt), r.Duration.Milliseconds(), o.status, r.Error, r.Response)
			if err != nil {
				return fmt.Errorf("attempt %d of callback %s: %w", r.N, r.CallbackID, err)
			}
			pending = pending || due
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record %d attempts: %w", len(records), err)
	}
	// Final callbacks make nothing due; signalling them would only wake
	// the dispatcher for nothing after every delivery.
	if pending {
		s.callbackReady.Notify()
	}
	return results, nil
}

// attemptOutcome is what an AttemptRecord writes besides its attempt, as
// stored.
type attemptOutcome struct {
	next, finished sql.NullInt64
	// status is NULL for a zero status code: no response arrived.
	status sql.NullInt64
}

// outcomeOf returns the columns record r writes at now, or an error for an
// unknown state.
func outcomeOf(r task.AttemptRecord, now time.Time) (attemptOutcome, error) {
	o := attemptOutcome{status: sql.NullInt64{Int64: int64(r.StatusCode), Valid: r.StatusCode != 0}}
	switch r.State {
	case task.DeliveryPending:
		o.next = sql.NullInt64{Int64: ms(r.Next), Valid: true}
	case task.DeliveryDelivered, task.DeliveryExhausted:
		o.finished = sql.NullInt64{Int64: ms(now), Valid: true}
	default:
		return attemptOutcome{}, fmt.Errorf("record attempt %d of callback %s: unknown delivery state %q", r.N, r.CallbackID, r.State)
	}
	return o, nil
}

// deferCallbackQuery hands a callback back under the owner's unexpired
// lease.
const deferCallbackQuery = `UPDATE callbacks
	SET next_attempt_at = ?, lease_owner = NULL, lease_until = NULL
	WHERE id = ? AND next_attempt_at IS NOT NULL AND lease_owner = ? AND lease_until > ?`

// DeferCallbacks frees owner's unexpired lease on each callback of
// deferrals and makes it due at the deferral's Until, attempts unchanged,
// in one transaction, and signals CallbackReady.
func (s *Store) DeferCallbacks(ctx context.Context, owner string, deferrals []task.Deferral) ([]error, error) {
	if len(deferrals) == 0 {
		return nil, nil
	}
	for _, d := range deferrals {
		if d.Until.IsZero() {
			return nil, fmt.Errorf("defer callback %s: no time to defer it to", d.CallbackID)
		}
	}
	now := s.now()
	results := make([]error, len(deferrals))
	err := s.write(ctx, func(tx *sql.Tx) error {
		update := s.stmt(ctx, tx, deferCallbackQuery)
		for i, d := range deferrals {
			err := fenced(update.ExecContext(ctx, ms(d.Until), d.CallbackID, owner, ms(now)))
			switch {
			case errors.Is(err, task.ErrLeaseLost):
				results[i] = fmt.Errorf("defer callback %s: %w", d.CallbackID, err)
			case err != nil:
				return fmt.Errorf("callback %s: %w", d.CallbackID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("defer %d callbacks: %w", len(deferrals), err)
	}
	s.callbackReady.Notify()
	return results, nil
}

// nextCallbackDueQuery finds the earliest claimable time among three
// groups, each read through an index: the head of each lane's index,
// which holds the unleased callbacks only (its due time), and the head of
// callbacks_leased (a lease's expiry, or the callback's due time if
// later). Reading heads instead of every pending or leased callback keeps
// it cheap however large the backlog of retries, or the attempts in
// flight.
const nextCallbackDueQuery = `SELECT min(due) FROM (
	SELECT * FROM (SELECT next_attempt_at AS due FROM callbacks
		WHERE next_attempt_at IS NOT NULL AND attempts = 0 AND lease_until IS NULL
		ORDER BY next_attempt_at LIMIT 1)
	UNION ALL
	SELECT * FROM (SELECT next_attempt_at FROM callbacks
		WHERE next_attempt_at IS NOT NULL AND attempts > 0 AND lease_until IS NULL
		ORDER BY next_attempt_at LIMIT 1)
	UNION ALL
	SELECT * FROM (SELECT max(next_attempt_at, lease_until) FROM callbacks
		WHERE lease_until IS NOT NULL AND next_attempt_at IS NOT NULL
		ORDER BY max(next_attempt_at, lease_until) LIMIT 1))`

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
