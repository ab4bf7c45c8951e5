package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// taskColumns are the columns scanTask reads, in its order.
const taskColumns = `id, owner, model, param, callback_url, status, title, lyrics, tags,
	error_code, error_message, run_at, stage_attempts, created_at, updated_at`

// scanTask reads one row of taskColumns.
func scanTask(row interface{ Scan(...any) error }) (*task.Task, error) {
	var (
		t                task.Task
		code             sql.NullInt64
		msg              sql.NullString
		runAt            sql.NullInt64
		created, updated int64
	)
	err := row.Scan(&t.ID, &t.Owner, &t.Model, &t.Param, &t.CallbackURL, &t.Status,
		&t.Text.Title, &t.Text.Lyrics, &t.Text.Tags, &code, &msg, &runAt, &t.StageAttempts, &created, &updated)
	if err != nil {
		return nil, err
	}
	if code.Valid {
		t.Failure = &task.Failure{Code: int(code.Int64), Message: msg.String}
	}
	t.RunAt, t.CreatedAt, t.UpdatedAt = fromNullMS(runAt), fromMS(created), fromMS(updated)
	return &t, nil
}

// runAt returns the run_at a task with status s and next stage due at t is
// stored with: NULL once final, which takes it out of the queue.
func runAt(s task.Status, t time.Time) sql.NullInt64 {
	if s.Final() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: ms(t), Valid: true}
}

// failureColumns returns f as the error_code and error_message columns.
func failureColumns(f *task.Failure) (sql.NullInt64, sql.NullString) {
	if f == nil {
		return sql.NullInt64{}, sql.NullString{}
	}
	return sql.NullInt64{Int64: int64(f.Code), Valid: true}, sql.NullString{String: f.Message, Valid: true}
}

// CreateTask stores t as a new task with its text, failure and tracks, due
// at t.RunAt (never, when t.Status is final), in the next group commit of
// submissions.
func (s *Store) CreateTask(ctx context.Context, t *task.Task) error {
	if _, err := s.submit(ctx, task.Submission{Task: t}); err != nil {
		return fmt.Errorf("create task %s: %w", t.ID, err)
	}
	return nil
}

// insertTaskQuery inserts a task.
const insertTaskQuery = `INSERT INTO tasks (` + taskColumns + `, cost)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// insertTask stores t with its tracks, charged cost, in tx, a transaction
// of the writer.
func (s *Store) insertTask(ctx context.Context, tx *sql.Tx, t *task.Task, cost int) error {
	code, msg := failureColumns(t.Failure)
	_, err := s.stmt(ctx, tx, insertTaskQuery).ExecContext(ctx,
		t.ID, t.Owner, t.Model, t.Param, t.CallbackURL, t.Status, t.Text.Title, t.Text.Lyrics, t.Text.Tags,
		code, msg, runAt(t.Status, t.RunAt), t.StageAttempts, ms(t.CreatedAt), ms(t.UpdatedAt), cost)
	if err != nil {
		return err
	}
	for _, tr := range t.Tracks {
		if err := s.insertTrack(ctx, tx, t.ID, tr); err != nil {
			return err
		}
	}
	return nil
}

// insertTrackQuery inserts a track.
const insertTrackQuery = `INSERT INTO tracks (id, task_id, idx, audio_key, image_key, duration, created_at)
	VALUES (?, ?, ?, ?, ?, ?, ?)`

// insertTrack stores tr as a track of task taskID in tx, a transaction of
// the writer.
func (s *Store) insertTrack(ctx context.Context, tx *sql.Tx, taskID string, tr task.Track) error {
	_, err := s.stmt(ctx, tx, insertTrackQuery).ExecContext(ctx,
		tr.ID, taskID, tr.Index, tr.AudioKey, tr.ImageKey, tr.Duration, ms(tr.CreatedAt))
	if err != nil {
		return fmt.Errorf("insert track %d: %w", tr.Index, err)
	}
	return nil
}

// loadTracks sets the Tracks of tasks, ordered by index.
func loadTracks(ctx context.Context, tx *sql.Tx, tasks []*task.Task) error {
	if len(tasks) == 0 {
		return nil
	}
	byID := make(map[string]*task.Task, len(tasks))
	args := make([]any, len(tasks))
	for i, t := range tasks {
		byID[t.ID] = t
		args[i] = t.ID
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, task_id, idx, audio_key, image_key, duration, created_at
		FROM tracks WHERE task_id IN (`+placeholders(len(args))+`) ORDER BY task_id, idx`, args...)
	if err != nil {
		return fmt.Errorf("load tracks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			tr      task.Track
			created int64
		)
		if err := rows.Scan(&tr.ID, &tr.TaskID, &tr.Index, &tr.AudioKey, &tr.ImageKey, &tr.Duration, &created); err != nil {
			return fmt.Errorf("load tracks: %w", err)
		}
		tr.CreatedAt = fromMS(created)
		t := byID[tr.TaskID]
		t.Tracks = append(t.Tracks, tr)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load tracks: %w", err)
	}
	return nil
}

// Task returns the task with its tracks, or an error wrapping
// task.ErrNotFound.
func (s *Store) Task(ctx context.Context, id string) (*task.Task, error) {
	var t *task.Task
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanTask(tx.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return task.ErrNotFound
		}
		if err != nil {
			return err
		}
		return loadTracks(ctx, tx, []*task.Task{t})
	})
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", id, err)
	}
	return t, nil
}

// claimTasksQuery leases the due tasks: ?1 is the owner, ?2 the lease's
// end, ?3 and ?4 now, ?5 the limit. Final tasks have no run_at and never
// match.
const claimTasksQuery = `UPDATE tasks
	SET lease_owner = ?, lease_until = ?, stage_attempts = stage_attempts + 1
	WHERE id IN (
		SELECT id FROM tasks
		WHERE run_at IS NOT NULL AND run_at <= ? AND (lease_until IS NULL OR lease_until <= ?)
		ORDER BY run_at, created_at, id
		LIMIT ?)
	RETURNING ` + taskColumns

// ClaimTasks leases up to limit due tasks to owner, oldest due first.
func (s *Store) ClaimTasks(ctx context.Context, owner string, limit int, lease time.Duration) ([]*task.Task, error) {
	// SQLite reads a negative LIMIT as no limit at all.
	if limit <= 0 {
		return nil, nil
	}
	now := s.now()
	var tasks []*task.Task
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := s.stmt(ctx, tx, claimTasksQuery).QueryContext(ctx,
			owner, ms(now.Add(lease)), ms(now), ms(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTask(rows)
			if err != nil {
				return err
			}
			tasks = append(tasks, t)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return loadTracks(ctx, tx, tasks)
	})
	if err != nil {
		return nil, fmt.Errorf("claim tasks for %s: %w", owner, err)
	}
	// RETURNING has no order of its own; restore the claim's.
	slices.SortFunc(tasks, task.TaskClaimOrder)
	return tasks, nil
}

// ExtendTaskLease renews owner's unexpired lease on a task.
func (s *Store) ExtendTaskLease(ctx context.Context, taskID, owner string, lease time.Duration) error {
	now := s.now()
	err := fenced(s.w.ExecContext(ctx, `UPDATE tasks SET lease_until = ?
		WHERE id = ? AND lease_owner = ? AND lease_until > ?`,
		ms(now.Add(lease)), taskID, owner, ms(now)))
	if err != nil {
		return fmt.Errorf("extend lease of task %s: %w", taskID, err)
	}
	return nil
}

// CommitStages applies commits in one transaction: each task's update is
// fenced on owner's unexpired lease and on its commit's From, and a
// failing insert of a track or a callback undoes the whole batch.
func (s *Store) CommitStages(ctx context.Context, owner string, commits []task.StageCommit) ([]error, error) {
	if len(commits) == 0 {
		return nil, nil
	}
	now := s.now()
	results := make([]error, len(commits))
	callbacks := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		for i, c := range commits {
			err := s.commitStage(ctx, tx, owner, c, now)
			switch {
			case errors.Is(err, task.ErrLeaseLost):
				results[i] = fmt.Errorf("commit task %s from %s: %w", c.TaskID, c.From, err)
			case err != nil:
				return fmt.Errorf("commit task %s from %s: %w", c.TaskID, c.From, err)
			default:
				callbacks = callbacks || c.Callback != nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("commit %d stages: %w", len(commits), err)
	}
	s.taskReady.Notify()
	if callbacks {
		s.callbackReady.Notify()
	}
	return results, nil
}

// commitStageQuery applies a stage to its task, fenced on the owner's
// unexpired lease and on the status the stage started from.
const commitStageQuery = `UPDATE tasks SET status = ?,
		title = coalesce(?, title), lyrics = coalesce(?, lyrics), tags = coalesce(?, tags),
		error_code = coalesce(?, error_code), error_message = coalesce(?, error_message),
		run_at = ?, lease_owner = NULL, lease_until = NULL, stage_attempts = 0, updated_at = ?
	WHERE id = ? AND lease_owner = ? AND lease_until > ? AND status = ?`

// commitStage applies c in tx, a transaction of the writer: the task's
// update, fenced, then the inserts and the refund, which are skipped when
// the fence did not hold.
func (s *Store) commitStage(ctx context.Context, tx *sql.Tx, owner string, c task.StageCommit, now time.Time) error {
	// NULL keeps the stored value: coalesce in the update below.
	var title, lyrics, tags sql.NullString
	if c.Text != nil {
		title = sql.NullString{String: c.Text.Title, Valid: true}
		lyrics = sql.NullString{String: c.Text.Lyrics, Valid: true}
		tags = sql.NullString{String: c.Text.Tags, Valid: true}
	}
	code, msg := failureColumns(c.Failure)
	err := fenced(s.stmt(ctx, tx, commitStageQuery).ExecContext(ctx,
		c.To, title, lyrics, tags, code, msg, runAt(c.To, c.RunAt), ms(now),
		c.TaskID, owner, ms(now), c.From))
	if err != nil {
		return err
	}
	if c.Track != nil {
		if err := s.insertTrack(ctx, tx, c.TaskID, *c.Track); err != nil {
			return err
		}
	}
	if c.Failure != nil && c.Failure.Refunded() {
		if err := refund(ctx, tx, c.TaskID); err != nil {
			return err
		}
	}
	if c.Callback != nil {
		return s.insertCallback(ctx, tx, c.TaskID, c.Callback)
	}
	return nil
}

// ReleaseTask frees owner's unexpired lease and makes the task due at runAt.
func (s *Store) ReleaseTask(ctx context.Context, taskID, owner string, runAt time.Time) error {
	now := s.now()
	err := fenced(s.w.ExecContext(ctx, `UPDATE tasks SET run_at = ?, lease_owner = NULL, lease_until = NULL
		WHERE id = ? AND lease_owner = ? AND lease_until > ?`,
		ms(runAt), taskID, owner, ms(now)))
	if err != nil {
		return fmt.Errorf("release task %s: %w", taskID, err)
	}
	s.taskReady.Notify()
	return nil
}

// nextTaskDueQuery finds the earliest claimable time among two groups,
// each read at the head of an index: the unleased tasks in tasks_due (their
// run_at), and the leased ones in tasks_leased (a lease's expiry, or the
// task's run_at if later).
const nextTaskDueQuery = `SELECT min(due) FROM (
	SELECT * FROM (SELECT run_at AS due FROM tasks
		WHERE run_at IS NOT NULL AND lease_until IS NULL
		ORDER BY run_at LIMIT 1)
	UNION ALL
	SELECT * FROM (SELECT max(run_at, lease_until) FROM tasks
		WHERE lease_until IS NOT NULL AND run_at IS NOT NULL
		ORDER BY max(run_at, lease_until) LIMIT 1))`

// NextTaskDue returns when the earliest unfinished task can be claimed: at
// its run_at, or when its lease expires if that is later. Counting leased
// tasks as due at their run_at would wake a claim loop for nothing, again
// and again, while the task is being worked on.
func (s *Store) NextTaskDue(ctx context.Context) (time.Time, error) {
	next, err := s.nextDue(ctx, nextTaskDueQuery)
	if err != nil {
		return time.Time{}, fmt.Errorf("next task due: %w", err)
	}
	return next, nil
}

// nextDue runs a query for one nullable time on the read pool.
func (s *Store) nextDue(ctx context.Context, query string) (time.Time, error) {
	var next sql.NullInt64
	if err := s.r.QueryRowContext(ctx, query).Scan(&next); err != nil {
		return time.Time{}, err
	}
	return fromNullMS(next), nil
}

// TaskReady signals after a task was created, a stage committed or a lease
// released.
func (s *Store) TaskReady() <-chan struct{} { return s.taskReady }
