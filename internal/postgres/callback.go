package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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

// queueCallback queues the insert of c as a new pending callback of task
// taskID, due at c.NextAttemptAt. A second callback for the same stage of
// a task violates UNIQUE (task_id, stage).
func queueCallback(b *pgx.Batch, taskID string, c *task.Callback) {
	b.Queue(`INSERT INTO callbacks (id, task_id, stage, url, body, state, attempts, next_attempt_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)`,
		c.ID, taskID, c.Stage, c.URL, c.Body, task.DeliveryPending, c.NextAttemptAt, c.CreatedAt)
}

// claimCallbacksQueries lease the due pending callbacks of each lane,
// with SKIP LOCKED for the reasons given at claimTasksQuery. Final
// callbacks have no next_attempt_at and never match. A lane's due
// callbacks are those of its partial index (callbacks_due_first,
// callbacks_due_retry), which holds the unleased ones in claim order, and
// those whose lease expired unfreed, found through callbacks_leased, which
// holds the leased ones in the order they become claimable: the callbacks
// in flight are at its end, and no claim walks past them. A
// lane's condition is written out, not a parameter, so that the planner
// matches it to the lane's index.
var claimCallbacksQueries = map[task.Lane]string{
	task.LaneFirst: claimCallbacksQuery("attempts = 0", ""),
	task.LaneRetry: claimCallbacksQuery("attempts > 0", ""),
}

// claimCallbacksAfterQueries are claimCallbacksQueries that read a lane's
// index from a cursor on ($5, $6, $7: the due time, creation time and ID
// of the last callback an earlier claim took): see claimCursors.
var claimCallbacksAfterQueries = map[task.Lane]string{
	task.LaneFirst: claimCallbacksQuery("attempts = 0", afterCursor),
	task.LaneRetry: claimCallbacksQuery("attempts > 0", afterCursor),
}

// afterCursor is the condition on unleased callbacks of
// claimCallbacksAfterQueries, in the order of the lanes' indexes.
const afterCursor = ` AND (next_attempt_at, created_at, id) > ($5, $6, $7)`

// claimCallbacksQuery returns the claim of the lane that cond selects,
// taking the unleased callbacks that after (empty, or afterCursor) also
// selects. The rows that each group locks but the claim's limit leaves
// out stay locked until it commits: another claim skips them meanwhile,
// and takes them at its next turn. The IDs picked are handed to the
// update as an array, which it looks up by primary key; joined instead, a
// small table may be read whole.
func claimCallbacksQuery(cond, after string) string {
	return `WITH free AS (
		SELECT id, next_attempt_at, created_at FROM callbacks
		WHERE next_attempt_at IS NOT NULL AND ` + cond + ` AND lease_until IS NULL AND next_attempt_at <= $3` + after + `
		ORDER BY next_attempt_at, created_at, id
		LIMIT $4
		FOR UPDATE SKIP LOCKED),
	expired AS (
		SELECT id, next_attempt_at, created_at FROM callbacks
		WHERE lease_until IS NOT NULL AND next_attempt_at IS NOT NULL AND ` + cond + `
			AND greatest(next_attempt_at, lease_until) <= $3
		ORDER BY greatest(next_attempt_at, lease_until)
		LIMIT $4
		FOR UPDATE SKIP LOCKED),
	picked AS (
		SELECT id FROM (SELECT * FROM free UNION ALL SELECT * FROM expired) AS due
		ORDER BY next_attempt_at, created_at, id
		LIMIT $4)
	UPDATE callbacks
	SET lease_owner = $1, lease_until = $2, lease_redelivery = redeliveries
	WHERE id = ANY (ARRAY(SELECT id FROM picked))
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
	var (
		cbs       []*task.Callback
		err       error
		fromStart = true
	)
	if last, ok := s.cursors.from(lane, time.Now()); ok {
		fromStart = false
		cbs, err = s.claimCallbacks(ctx, claimCallbacksAfterQueries[lane], owner, now.Add(lease), now, limit,
			last.NextAttemptAt, last.CreatedAt, last.ID)
	}
	if err == nil && len(cbs) < limit {
		// No cursor, or it ran out: the rest from the start.
		more, ferr := s.claimCallbacks(ctx, query, owner, now.Add(lease), now, limit-len(cbs))
		switch {
		case ferr == nil:
			cbs, fromStart = append(cbs, more...), true
		case len(cbs) == 0:
			err = ferr
		default:
			// What the cursor's claim took is leased: handed out, not
			// left until its lease expires.
			s.logger.WarnContext(ctx, "claim callbacks from the start", "lane", lane, "owner", owner, "error", ferr)
		}
	}
	if err != nil {
		s.cursors.drop(lane)
		return nil, fmt.Errorf("claim %s callbacks for %s: %w", lane, owner, err)
	}
	// RETURNING has no order of its own; restore the claim's.
	slices.SortFunc(cbs, task.CallbackClaimOrder)
	s.cursors.claimed(lane, cbs, limit, fromStart, time.Now())
	return cbs, nil
}

// claimCallbacks runs query, a claim of claimCallbacksQueries or
// claimCallbacksAfterQueries, with args, and returns what it claimed.
func (s *Store) claimCallbacks(ctx context.Context, query string, args ...any) ([]*task.Callback, error) {
	var cbs []*task.Callback
	err := s.send(ctx, func(c *pgxpool.Conn) error {
		rows, err := c.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		cbs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*task.Callback, error) { return scanCallback(row) })
		return err
	})
	return cbs, err
}

// fullScanEvery is how often a lane's claim reads its index from the
// start although a cursor is set: see claimCursors.
const fullScanEvery = time.Second

// claimCursors keep, per lane, where this instance's last claim ended in
// the lane's index, so that the next claim under a backlog reads on from
// there. A claim leases the callbacks it takes, and their entries leave
// the lane's partial index only when VACUUM removes them: a claim that
// reads the index from the start walks every entry claimed since the
// last vacuum. In a backlog of 600,000 retries, 370,000 into its drain,
// that was 3,400 index pages and 13 ms per claim of 256.
//
// A claim reads from the cursor only when the last one took all it asked
// for (a backlog: more is due after the cursor) and a claim from the start
// ran within fullScanEvery; if the cursor runs out, the same claim reads
// the rest from the start. Entries before the cursor that are due and not
// leased are those the earlier claim skipped because another instance's
// claim had locked them, those handed back since with a due time behind
// the cursor, and those whose due time, given by another instance's
// clock, fell behind it: a claim from the start takes them at most
// fullScanEvery later.
type claimCursors struct {
	every time.Duration // 0: fullScanEvery
	mu    sync.Mutex
	lanes map[task.Lane]*claimCursor
}

// claimCursor is a lane's cursor: the last callback claimed, in claim
// order, and when a claim last read the lane's index from the start.
type claimCursor struct {
	last     *task.Callback // nil: the next claim reads from the start
	fullScan time.Time
}

// from returns where a claim of lane at now reads from: after last, when
// ok.
func (c *claimCursors) from(lane task.Lane, now time.Time) (last *task.Callback, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.lanes[lane]
	if cur == nil || cur.last == nil || now.Sub(cur.fullScan) >= cmp.Or(c.every, fullScanEvery) {
		return nil, false
	}
	return cur.last, true
}

// claimed notes a claim of lane at now that asked for limit callbacks and
// took cbs, in claim order, from the start of the lane's index if
// fromStart.
func (c *claimCursors) claimed(lane task.Lane, cbs []*task.Callback, limit int, fromStart bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lanes == nil {
		c.lanes = make(map[task.Lane]*claimCursor)
	}
	cur := c.lanes[lane]
	if cur == nil {
		cur = &claimCursor{}
		c.lanes[lane] = cur
	}
	if fromStart {
		cur.fullScan = now
	}
	cur.last = nil
	if len(cbs) == limit {
		cur.last = cbs[len(cbs)-1]
	}
}

// drop makes the next claim of lane read from the start.
func (c *claimCursors) drop(lane task.Lane) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.lanes[lane]; cur != nil {
		cur.last = nil
	}
}

// recordAttemptsQuery records a batch of attempts, given as arrays of
// their fields, each under the owner's unexpired lease on its callback: it
// frees the lease and moves the callback to its new state, and stores the
// attempt only if that update found the lease, so that the statement
// answers a row for each attempt recorded, telling whether its callback is
// still pending. An attempt is filed under the series its callback was
// claimed in; every expression of SET reads the row as it was, and the
// CASEs leave a series begun by a redelivery since the claim as it is.
// One statement for the batch rather than one per attempt saves
// PostgreSQL a statement's overhead per attempt.
const recordAttemptsQuery = `WITH r AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::timestamptz[], $5::timestamptz[],
		$6::timestamptz[], $7::bigint[], $8::integer[], $9::text[], $10::bytea[])
	AS r (id, state, n, next_attempt_at, finished_at, started_at, duration_ms, status_code, error, response)),
leased AS (
	UPDATE callbacks c SET
		state = CASE WHEN c.redeliveries = c.lease_redelivery THEN r.state ELSE c.state END,
		attempts = CASE WHEN c.redeliveries = c.lease_redelivery THEN r.n ELSE c.attempts END,
		next_attempt_at = CASE WHEN c.redeliveries = c.lease_redelivery THEN r.next_attempt_at ELSE c.next_attempt_at END,
		finished_at = CASE WHEN c.redeliveries = c.lease_redelivery THEN r.finished_at ELSE c.finished_at END,
		lease_owner = NULL, lease_until = NULL
	FROM r
	WHERE c.id = r.id AND c.lease_owner = $11 AND c.lease_until > $12
	RETURNING c.id, c.lease_redelivery, c.next_attempt_at IS NOT NULL AS due,
		r.n, r.started_at, r.duration_ms, r.status_code, r.error, r.response),
stored AS (
	INSERT INTO attempts (callback_id, redelivery, n, started_at, duration_ms, status_code, error, response)
	SELECT id, lease_redelivery, n, started_at, duration_ms, status_code, error, response FROM leased)
SELECT id, due FROM leased`

// attemptColumns are the records of a batch as the arrays of
// recordAttemptsQuery.
type attemptColumns struct {
	ids, states, errors []string
	ns                  []int
	nextAt, finishedAt  []*time.Time
	startedAt           []time.Time
	durations           []int64
	statuses            []*int
	responses           [][]byte
}

// RecordAttempts stores the attempts of records in one transaction, each
// under owner's unexpired lease on its callback: it frees the lease and
// moves the callback to the record's state, due again at its Next while it
// stays pending. When a recorded attempt left its callback pending, it
// wakes every instance.
func (s *Store) RecordAttempts(ctx context.Context, owner string, records []task.AttemptRecord) ([]error, error) {
	if len(records) == 0 {
		return nil, nil
	}
	now := s.now()
	var c attemptColumns
	// A callback's first record in the batch frees its lease: a later one
	// has lost it, as it would have in a statement of its own, and is not
	// sent.
	sent := make(map[string]bool, len(records))
	for _, r := range records {
		if sent[r.CallbackID] {
			continue
		}
		sent[r.CallbackID] = true
		var nextAt, finishedAt *time.Time
		switch r.State {
		case task.DeliveryPending:
			nextAt = &r.Next
		case task.DeliveryDelivered, task.DeliveryExhausted:
			finishedAt = &now
		default:
			return nil, fmt.Errorf("record attempt %d of callback %s: unknown delivery state %q", r.N, r.CallbackID, r.State)
		}
		// A zero status code means no response arrived: NULL says so.
		var status *int
		if r.StatusCode != 0 {
			status = &r.StatusCode
		}
		c.ids = append(c.ids, r.CallbackID)
		c.states = append(c.states, string(r.State))
		c.ns = append(c.ns, r.N)
		c.nextAt = append(c.nextAt, nextAt)
		c.finishedAt = append(c.finishedAt, finishedAt)
		c.startedAt = append(c.startedAt, r.StartedAt)
		c.durations = append(c.durations, r.Duration.Milliseconds())
		c.statuses = append(c.statuses, status)
		c.errors = append(c.errors, validText(r.Error))
		c.responses = append(c.responses, r.Response)
	}
	var recorded map[string]bool
	pending := false
	err := s.send(ctx, func(conn *pgxpool.Conn) error {
		rows, err := conn.Query(ctx, recordAttemptsQuery, c.ids, c.states, c.ns, c.nextAt, c.finishedAt,
			c.startedAt, c.durations, c.statuses, c.errors, c.responses, owner, now)
		if err != nil {
			return err
		}
		recorded, pending = make(map[string]bool, len(c.ids)), false
		var (
			id  string
			due bool
		)
		_, err = pgx.ForEachRow(rows, []any{&id, &due}, func() error {
			recorded[id] = true
			pending = pending || due
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("record %d attempts: %w", len(records), err)
	}
	results := make([]error, len(records))
	for i, r := range records {
		if recorded[r.CallbackID] {
			// Recorded once: the callback's later records come too late.
			recorded[r.CallbackID] = false
		} else {
			results[i] = fmt.Errorf("record attempt %d of callback %s: %w", r.N, r.CallbackID, task.ErrLeaseLost)
		}
	}
	// Final callbacks make nothing due; signalling them would only wake
	// the dispatcher for nothing after every delivery.
	if pending {
		s.wakeCallbacks()
	}
	return results, nil
}

// sendFenced runs batch, statements under a lease each, on b, and sets
// the result of each statement that found its lease lost; name(i) names
// the operation of statement i in errors.
func sendFenced(ctx context.Context, b batchSender, batch *pgx.Batch, results []error, name func(i int) string) (err error) {
	br := b.SendBatch(ctx, batch)
	defer func() {
		// Close reports the error of a failed statement again.
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	for i := range results {
		err := fenced(br.Exec())
		switch {
		case errors.Is(err, task.ErrLeaseLost):
			results[i] = fmt.Errorf("%s: %w", name(i), err)
		case err != nil:
			return fmt.Errorf("%s: %w", name(i), err)
		}
	}
	return nil
}

// deferCallbackQuery hands a callback back under the owner's unexpired
// lease.
const deferCallbackQuery = `UPDATE callbacks
	SET next_attempt_at = $1, lease_owner = NULL, lease_until = NULL
	WHERE id = $2 AND next_attempt_at IS NOT NULL AND lease_owner = $3 AND lease_until > $4`

// DeferCallbacks frees owner's unexpired lease on each callback of
// deferrals and makes it due at the deferral's Until, attempts unchanged,
// in one implicit transaction sent in one round trip, and
// wakes every instance.
func (s *Store) DeferCallbacks(ctx context.Context, owner string, deferrals []task.Deferral) ([]error, error) {
	if len(deferrals) == 0 {
		return nil, nil
	}
	now := s.now()
	batch := &pgx.Batch{}
	for _, d := range deferrals {
		if d.Until.IsZero() {
			return nil, fmt.Errorf("defer callback %s: no time to defer it to", d.CallbackID)
		}
		batch.Queue(deferCallbackQuery, d.Until, d.CallbackID, owner, now)
	}
	results := make([]error, len(deferrals))
	err := s.send(ctx, func(c *pgxpool.Conn) error {
		clear(results)
		return sendFenced(ctx, c, batch, results, func(i int) string { return "defer callback " + deferrals[i].CallbackID })
	})
	if err != nil {
		return nil, fmt.Errorf("defer %d callbacks: %w", len(deferrals), err)
	}
	s.wakeCallbacks()
	return results, nil
}

// nextCallbackDueQuery finds the earliest claimable time among three
// groups, each read through an index: the head of each lane's index,
// which holds the unleased callbacks only (its due time), and the head of
// callbacks_leased (a lease's expiry, or the callback's due time if
// later). Reading heads instead of every pending callback keeps it cheap
// however large the backlog of retries.
const nextCallbackDueQuery = `SELECT min(due) FROM (
	(SELECT next_attempt_at AS due FROM callbacks
		WHERE next_attempt_at IS NOT NULL AND attempts = 0 AND lease_until IS NULL
		ORDER BY next_attempt_at LIMIT 1)
	UNION ALL
	(SELECT next_attempt_at FROM callbacks
		WHERE next_attempt_at IS NOT NULL AND attempts > 0 AND lease_until IS NULL
		ORDER BY next_attempt_at LIMIT 1)
	UNION ALL
	(SELECT greatest(next_attempt_at, lease_until) FROM callbacks
		WHERE lease_until IS NOT NULL AND next_attempt_at IS NOT NULL
		ORDER BY greatest(next_attempt_at, lease_until) LIMIT 1)) AS heads`

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
		c, err = loadCallback(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("redeliver callback %s: %w", id, err)
	}
	s.wakeCallbacks()
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
