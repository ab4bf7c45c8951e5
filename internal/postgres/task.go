package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tunehook/tunehook/internal/task"
)

// taskColumns are the columns scanTask reads, in its order.
const taskColumns = `id, owner, model, param, callback_url, status, title, lyrics, tags,
	error_code, error_message, run_at, stage_attempts, created_at, updated_at`

// scanTask reads one row of taskColumns.
func scanTask(row pgx.Row, more ...any) (*task.Task, error) {
	var (
		t     task.Task
		code  *int
		msg   *string
		runAt *time.Time
	)
	err := row.Scan(append([]any{&t.ID, &t.Owner, &t.Model, &t.Param, &t.CallbackURL, &t.Status,
		&t.Text.Title, &t.Text.Lyrics, &t.Text.Tags, &code, &msg, &runAt, &t.StageAttempts, &t.CreatedAt, &t.UpdatedAt}, more...)...)
	if err != nil {
		return nil, err
	}
	if code != nil {
		t.Failure = &task.Failure{Code: *code}
		if msg != nil {
			t.Failure.Message = *msg
		}
	}
	t.RunAt = fromNullTime(runAt)
	return &t, nil
}

// runAt returns the run_at a task with status s and next stage due at t is
// stored with: NULL once final, which takes it out of the queue.
func runAt(s task.Status, t time.Time) *time.Time {
	if s.Final() {
		return nil
	}
	return &t
}

// failureColumns returns f as the error_code and error_message columns.
func failureColumns(f *task.Failure) (*int, *string) {
	if f == nil {
		return nil, nil
	}
	return &f.Code, &f.Message
}

// CreateTask stores t as a new task with its text, failure and tracks, due
// at t.RunAt (never, when t.Status is final), and wakes every instance when
// it is due some day.
func (s *Store) CreateTask(ctx context.Context, t *task.Task) error {
	_, err := s.Submit(ctx, task.Submission{Task: t})
	return err
}

// insertTask stores t with its tracks and charged cost in one batch on b:
// a transaction, or a connection, on which the batch is a transaction of
// its own, in one round trip. The caller wakes the instances once it has
// committed.
func insertTask(ctx context.Context, b batchSender, t *task.Task, cost int) error {
	code, msg := failureColumns(t.Failure)
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO tasks (`+taskColumns+`, cost)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		t.ID, t.Owner, t.Model, t.Param, t.CallbackURL, t.Status, t.Text.Title, t.Text.Lyrics, t.Text.Tags,
		code, msg, runAt(t.Status, t.RunAt), t.StageAttempts, t.CreatedAt, t.UpdatedAt, cost)
	for _, tr := range t.Tracks {
		queueTrack(batch, t.ID, tr)
	}
	return b.SendBatch(ctx, batch).Close()
}

// queueTrack queues the insert of tr as a track of task taskID.
func queueTrack(b *pgx.Batch, taskID string, tr task.Track) {
	b.Queue(`INSERT INTO tracks (id, task_id, idx, audio_key, image_key, duration, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		tr.ID, taskID, tr.Index, tr.AudioKey, tr.ImageKey, tr.Duration, tr.CreatedAt)
}

// loadTracksQuery reads the tracks of the tasks whose IDs are $1.
const loadTracksQuery = `SELECT id, task_id, idx, audio_key, image_key, duration, created_at
	FROM tracks WHERE task_id = ANY($1) ORDER BY task_id, idx`

// loadTracks sets the Tracks of tasks, ordered by index.
func loadTracks(ctx context.Context, tx pgx.Tx, tasks []*task.Task) error {
	if len(tasks) == 0 {
		return nil
	}
	byID := make(map[string]*task.Task, len(tasks))
	ids := make([]string, len(tasks))
	for i, t := range tasks {
		byID[t.ID] = t
		ids[i] = t.ID
	}
	rows, err := tx.Query(ctx, loadTracksQuery, ids)
	if err != nil {
		return fmt.Errorf("load tracks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tr task.Track
		if err := rows.Scan(&tr.ID, &tr.TaskID, &tr.Index, &tr.AudioKey, &tr.ImageKey, &tr.Duration, &tr.CreatedAt); err != nil {
			return fmt.Errorf("load tracks: %w", err)
		}
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
	err := s.read(ctx, func(tx pgx.Tx) error {
		var err error
		t, err = scanTask(tx.QueryRow(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id = $1`, id))
		if errors.Is(err, pgx.ErrNoRows) {
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

// claimTasksQuery leases the due tasks and reads them with their tracks,
// a row per track (or one with NULL track columns for a task without one),
// in claim order. FOR UPDATE SKIP LOCKED makes concurrent claims, of this
// instance or another, take disjoint sets of rows, and never wait for each
// other: a row another transaction holds is skipped. Final tasks have no
// run_at and never match; the partial index tasks_due serves both the
// filter and the order. One statement, in a transaction of its own, is one
// round trip.
const claimTasksQuery = `WITH claimed AS (
		UPDATE tasks
		SET lease_owner = $1, lease_until = $2, stage_attempts = stage_attempts + 1
		WHERE id IN (
			SELECT id FROM tasks
			WHERE run_at IS NOT NULL AND run_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
			ORDER BY run_at, created_at, id
			LIMIT $4
			FOR UPDATE SKIP LOCKED)
		RETURNING ` + taskColumns + `)
	SELECT claimed.*, tracks.id, tracks.idx, tracks.audio_key, tracks.image_key, tracks.duration, tracks.created_at
	FROM claimed LEFT JOIN tracks ON tracks.task_id = claimed.id
	ORDER BY claimed.run_at, claimed.created_at, claimed.id, tracks.idx`

// ClaimTasks leases up to limit due tasks to owner, oldest due first.
func (s *Store) ClaimTasks(ctx context.Context, owner string, limit int, lease time.Duration) ([]*task.Task, error) {
	// PostgreSQL refuses a negative LIMIT.
	if limit <= 0 {
		return nil, nil
	}
	now := s.now()
	var tasks []*task.Task
	err := s.send(ctx, func(c *pgxpool.Conn) error {
		tasks = nil
		rows, err := c.Query(ctx, claimTasksQuery, owner, now.Add(lease), now, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				trackID, audio, image *string
				index                 *int
				duration              *float64
				created               *time.Time
			)
			t, err := scanTask(rows, &trackID, &index, &audio, &image, &duration, &created)
			if err != nil {
				return err
			}
			if n := len(tasks); n == 0 || tasks[n-1].ID != t.ID {
				tasks = append(tasks, t)
			}
			if trackID != nil {
				t := tasks[len(tasks)-1]
				t.Tracks = append(t.Tracks, task.Track{ID: *trackID, TaskID: t.ID, Index: *index,
					AudioKey: *audio, ImageKey: *image, Duration: *duration, CreatedAt: *created})
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim tasks for %s: %w", owner, err)
	}
	return tasks, nil
}

// ExtendTaskLease renews owner's unexpired lease on a task.
func (s *Store) ExtendTaskLease(ctx context.Context, taskID, owner string, lease time.Duration) error {
	now := s.now()
	err := s.withConn(ctx, func(c *pgxpool.Conn) error {
		return fenced(c.Exec(ctx, `UPDATE tasks SET lease_until = $1
			WHERE id = $2 AND lease_owner = $3 AND lease_until > $4`,
			now.Add(lease), taskID, owner, now))
	})
	if err != nil {
		return fmt.Errorf("extend lease of task %s: %w", taskID, err)
	}
	return nil
}

// commitStageQuery applies a stage to its task, fenced on the owner's
// unexpired lease and on the status the stage started from.
const commitStageQuery = `UPDATE tasks SET status = $1,
		title = coalesce($2, title), lyrics = coalesce($3, lyrics), tags = coalesce($4, tags),
		error_code = coalesce($5, error_code), error_message = coalesce($6, error_message),
		run_at = $7, lease_owner = NULL, lease_until = NULL, stage_attempts = 0, updated_at = $8
	WHERE id = $9 AND lease_owner = $10 AND lease_until > $8 AND status = $11`

// CommitStages applies commits in one transaction of two round trips: the
// fenced updates of the tasks in one batch, then the tracks, refunds and
// callbacks of the commits whose fence held in another. A failing insert
// undoes the whole batch, notifications included.
func (s *Store) CommitStages(ctx context.Context, owner string, commits []task.StageCommit) ([]error, error) {
	if len(commits) == 0 {
		return nil, nil
	}
	now := s.now()
	updates := &pgx.Batch{}
	for _, c := range commits {
		// NULL keeps the stored value: coalesce in the update.
		var title, lyrics, tags *string
		if c.Text != nil {
			title, lyrics, tags = &c.Text.Title, &c.Text.Lyrics, &c.Text.Tags
		}
		code, msg := failureColumns(c.Failure)
		updates.Queue(commitStageQuery, c.To, title, lyrics, tags, code, msg, runAt(c.To, c.RunAt), now, c.TaskID, owner, c.From)
	}
	results := make([]error, len(commits))
	due, callbacks := false, false
	err := s.write(ctx, func(tx pgx.Tx) error {
		// Afresh on every try: s.write tries again on a new connection
		// when the first one died, after a rollback.
		clear(results)
		due, callbacks = false, false
		err := sendFenced(ctx, tx, updates, results, func(i int) string {
			return fmt.Sprintf("commit task %s from %s", commits[i].TaskID, commits[i].From)
		})
		if err != nil {
			return err
		}
		inserts := &pgx.Batch{}
		for i, c := range commits {
			if results[i] != nil {
				continue
			}
			due = due || !c.To.Final()
			if c.Track != nil {
				queueTrack(inserts, c.TaskID, *c.Track)
			}
			if c.Failure != nil && c.Failure.Refunded() {
				queueRefund(inserts, c.TaskID)
			}
			if c.Callback != nil {
				queueCallback(inserts, c.TaskID, c.Callback)
				callbacks = true
			}
		}
		return tx.SendBatch(ctx, inserts).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("commit %d stages: %w", len(commits), err)
	}
	s.wakeTasks(due)
	if callbacks {
		s.wakeCallbacks()
	}
	return results, nil
}

// ReleaseTask frees owner's unexpired lease and makes the task due at runAt.
func (s *Store) ReleaseTask(ctx context.Context, taskID, owner string, runAt time.Time) error {
	now := s.now()
	err := s.write(ctx, func(tx pgx.Tx) error {
		return fenced(tx.Exec(ctx, `UPDATE tasks SET run_at = $1, lease_owner = NULL, lease_until = NULL
			WHERE id = $2 AND lease_owner = $3 AND lease_until > $4`,
			runAt, taskID, owner, now))
	})
	if err != nil {
		return fmt.Errorf("release task %s: %w", taskID, err)
	}
	s.wakeTasks(true)
	return nil
}

// nextTaskDueQuery finds the earliest claimable time among two groups,
// each read through an index: the first unleased task in tasks_due (its
// run_at), and the head of tasks_leased (a lease's expiry, or the task's
// run_at if later). Counting leased tasks as due at their run_at
// would wake a claim loop for nothing, again and again, while the task is
// being worked on; reading every unfinished task would cost as much as the
// backlog is long.
const nextTaskDueQuery = `SELECT min(due) FROM (
	(SELECT run_at AS due FROM tasks
		WHERE run_at IS NOT NULL AND lease_until IS NULL
		ORDER BY run_at LIMIT 1)
	UNION ALL
	(SELECT greatest(run_at, lease_until) FROM tasks
		WHERE lease_until IS NOT NULL AND run_at IS NOT NULL
		ORDER BY greatest(run_at, lease_until) LIMIT 1)) AS heads`

// NextTaskDue returns when the earliest unfinished task can be claimed: at
// its run_at, or when its lease expires if that is later.
func (s *Store) NextTaskDue(ctx context.Context) (time.Time, error) {
	next, err := s.nextDue(ctx, nextTaskDueQuery)
	if err != nil {
		return time.Time{}, fmt.Errorf("next task due: %w", err)
	}
	return next, nil
}

// nextDue runs a query for one nullable time.
func (s *Store) nextDue(ctx context.Context, query string) (time.Time, error) {
	var next *time.Time
	err := s.withConn(ctx, func(c *pgxpool.Conn) error { return c.QueryRow(ctx, query).Scan(&next) })
	if err != nil {
		return time.Time{}, err
	}
	return fromNullTime(next), nil
}

// TaskReady signals after this instance created a task, committed a stage
// or released a lease, and after another instance made a task due.
func (s *Store) TaskReady() <-chan struct{} { return s.taskReady }
