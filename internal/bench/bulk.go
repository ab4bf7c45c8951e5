package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the "sqlite" driver; internal/sqlite registers it too

	"github.com/tunehook/tunehook/internal/payload"
	"github.com/tunehook/tunehook/internal/task"
)

// Batch describes callbacks that Opened.Load inserts in bulk, with their
// tasks, each task's tracks and, for callbacks waiting for their retry,
// their failed first attempt: rows as the Runner and the Dispatcher leave
// them. Callback c (0 <= c < Callbacks) is the text, first or complete
// callback (c%3) of task c/3, whose ID is bulkTaskID(c/3), so that a
// receiver can tell every callback by its task_id and callbackType alone.
type Batch struct {
	Callbacks int
	// Template is a finished task of the instant engine whose ID and track
	// IDs stand for every task's own in Bodies.
	Template *task.Task
	// Bodies are the template's text, first and complete callbacks.
	Bodies [callbacksPerTask]string
	// Failed makes every callback wait for its first retry: attempts 1,
	// with its failed attempt recorded at Now. Otherwise no attempt was
	// made yet.
	Failed bool
	// DueFrom and DueUntil spread the next attempts evenly: callback c is
	// due at DueFrom + (DueUntil-DueFrom)*c/Callbacks.
	DueFrom, DueUntil time.Time
	// Now is when the tasks finished.
	Now time.Time
}

// templateID stands for each task's ID in a Batch's bodies: it is as long
// as a real task ID, and no real one, all hex digits, contains it.
var templateID = strings.Repeat("t", 32)

// bulkTaskID returns the ID of task i of a Batch; the loaders' SQL makes
// the same, and bitTally reads it back.
func bulkTaskID(i int) string { return fmt.Sprintf("%032x", i) }

// bulkTrackID returns the ID of track index of task i of a Batch, shaped
// like a real one.
func bulkTrackID(i, index int) string { return fmt.Sprintf("%08x-0000-0000-0000-%012x", index, i) }

// failedAttempt is the error of a Batch's failed first attempts.
const failedAttempt = "connection refused"

// newBatch returns a Batch of n callbacks to callbackURL, not attempted
// yet and all due at now.
func newBatch(n int, callbackURL string, now time.Time) (Batch, error) {
	t := newTask(newRequest(callbackURL, "a calm piano song about the sea"), now)
	t.ID, t.Status, t.RunAt = templateID, task.StatusSuccess, time.Time{}
	var err error
	if t.Text, err = (instantEngine{}).Text(context.Background(), t, task.Request{}); err != nil {
		return Batch{}, err
	}
	for index := range task.TracksPerTask {
		tr, err := instantEngine{}.Render(context.Background(), t, task.Request{}, index)
		if err != nil {
			return Batch{}, err
		}
		tr.CreatedAt = now
		t.Tracks = append(t.Tracks, tr)
	}
	b := Batch{Callbacks: n, Template: t, DueFrom: now, DueUntil: now, Now: now}
	for i, stage := range stages {
		body, err := payload.Callback(t, stage, payload.Links{})
		if err != nil {
			return Batch{}, err
		}
		b.Bodies[i] = string(body)
	}
	return b, nil
}

// tasks returns how many tasks the batch's callbacks belong to.
func (b Batch) tasks() int { return (b.Callbacks + callbacksPerTask - 1) / callbacksPerTask }

// attempts returns the attempts made of each of the batch's callbacks.
func (b Batch) attempts() int {
	if b.Failed {
		return 1
	}
	return 0
}

// statement is one of a loader's SQL statements.
type statement struct {
	table string
	query string
	args  []any
}

// sqliteStatements are the statements that load b into SQLite. Each
// counts its rows with a recursive CTE, SQLite's generate_series; times
// are Unix milliseconds, as the store keeps them. Like postgresStatements,
// they write the shape of a successful task: three callbacks, two tracks.
func sqliteStatements(b Batch) []statement {
	const seq = `WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?1)`
	t, now := b.Template, b.Now.UnixMilli()
	stmts := []statement{
		{"tasks", seq + `
			INSERT INTO tasks (id, owner, model, param, callback_url, status, title, lyrics, tags, created_at, updated_at)
			SELECT printf('%032x', i), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10 FROM seq`,
			[]any{b.tasks(), t.Owner, t.Model, t.Param, t.CallbackURL, t.Status, t.Text.Title, t.Text.Lyrics, t.Text.Tags, now}},
		{"tracks", seq + `, tr(tid, id, idx) AS (
				SELECT printf('%032x', i / 2), printf('%08x-0000-0000-0000-%012x', i % 2, i / 2), i % 2 FROM seq)
			INSERT INTO tracks (id, task_id, idx, audio_key, image_key, duration, created_at)
			SELECT id, tid, idx, tid || '/' || id || '.wav', tid || '/' || id || '.jpeg', ?2, ?3 FROM tr`,
			[]any{b.tasks() * 2, t.Tracks[0].Duration, now}},
		{"callbacks", seq + `, cb(i, tid, tr0, tr1) AS (
				SELECT i, printf('%032x', i / 3), printf('%08x-0000-0000-0000-%012x', 0, i / 3),
					printf('%08x-0000-0000-0000-%012x', 1, i / 3) FROM seq)
			INSERT INTO callbacks (id, task_id, stage, url, body, state, attempts, next_attempt_at, created_at)
			SELECT printf('msg_%032x', i), tid, CASE i % 3 WHEN 0 THEN ?2 WHEN 1 THEN ?3 ELSE ?4 END, ?5,
				CAST(replace(replace(replace(CASE i % 3 WHEN 0 THEN ?6 WHEN 1 THEN ?7 ELSE ?8 END,
					?9, tid), ?10, tr0), ?11, tr1) AS BLOB),
				?12, ?13, ?14 + i * ?15 / ?1, ?16 FROM cb`,
			[]any{b.Callbacks, stages[0], stages[1], stages[2], t.CallbackURL, b.Bodies[0], b.Bodies[1], b.Bodies[2],
				templateID, t.Tracks[0].ID, t.Tracks[1].ID, task.DeliveryPending, b.attempts(),
				b.DueFrom.UnixMilli(), b.DueUntil.UnixMilli() - b.DueFrom.UnixMilli(), now}},
	}
	if b.Failed {
		stmts = append(stmts, statement{"attempts", seq + `
			INSERT INTO attempts (callback_id, n, started_at, duration_ms, error)
			SELECT printf('msg_%032x', i), 1, ?2, 0, ?3 FROM seq`,
			[]any{b.Callbacks, now, failedAttempt}})
	}
	return stmts
}

// postgresStatements are the statements that load b into PostgreSQL, each
// counting its rows with generate_series.
func postgresStatements(b Batch) []statement {
	t := b.Template
	stmts := []statement{
		{"tasks", `
			INSERT INTO tasks (id, owner, model, param, callback_url, status, title, lyrics, tags, created_at, updated_at)
			SELECT lpad(to_hex(i), 32, '0'), $2, $3, $4, $5, $6, $7, $8, $9, $10, $10
			FROM generate_series(0, $1::bigint - 1) AS i`,
			[]any{b.tasks(), t.Owner, t.Model, t.Param, t.CallbackURL, t.Status, t.Text.Title, t.Text.Lyrics, t.Text.Tags, b.Now}},
		{"tracks", `
			INSERT INTO tracks (id, task_id, idx, audio_key, image_key, duration, created_at)
			SELECT id, tid, idx, tid || '/' || id || '.wav', tid || '/' || id || '.jpeg', $2, $3
			FROM (SELECT lpad(to_hex(i / 2), 32, '0') AS tid,
					lpad(to_hex(i % 2), 8, '0') || '-0000-0000-0000-' || lpad(to_hex(i / 2), 12, '0') AS id,
					(i % 2)::integer AS idx
				FROM generate_series(0, $1::bigint - 1) AS i) AS tr`,
			[]any{b.tasks() * 2, t.Tracks[0].Duration, b.Now}},
		{"callbacks", `
			INSERT INTO callbacks (id, task_id, stage, url, body, state, attempts, next_attempt_at, created_at)
			SELECT 'msg_' || lpad(to_hex(i), 32, '0'), tid, (ARRAY[$2::text, $3, $4])[(i % 3)::integer + 1], $5,
				convert_to(replace(replace(replace((ARRAY[$6::text, $7, $8])[(i % 3)::integer + 1],
					$9, tid), $10, tr0), $11, tr1), 'UTF8'),
				$12, $13, $14::timestamptz + (i * $15::bigint / $1::bigint) * interval '1 millisecond', $16
			FROM (SELECT i, lpad(to_hex(i / 3), 32, '0') AS tid,
					'00000000-0000-0000-0000-' || lpad(to_hex(i / 3), 12, '0') AS tr0,
					'00000001-0000-0000-0000-' || lpad(to_hex(i / 3), 12, '0') AS tr1
				FROM generate_series(0, $1::bigint - 1) AS i) AS cb`,
			[]any{b.Callbacks, stages[0], stages[1], stages[2], t.CallbackURL, b.Bodies[0], b.Bodies[1], b.Bodies[2],
				templateID, t.Tracks[0].ID, t.Tracks[1].ID, task.DeliveryPending, b.attempts(),
				b.DueFrom, b.DueUntil.Sub(b.DueFrom).Milliseconds(), b.Now}},
	}
	if b.Failed {
		stmts = append(stmts, statement{"attempts", `
			INSERT INTO attempts (callback_id, n, started_at, duration_ms, error)
			SELECT 'msg_' || lpad(to_hex(i), 32, '0'), 1, $2, 0, $3 FROM generate_series(0, $1::bigint - 1) AS i`,
			[]any{b.Callbacks, b.Now, failedAttempt}})
	}
	return stmts
}

// loadSQLite loads b into the SQLite database at path, in one transaction
// on a connection of its own beside the store's.
func loadSQLite(ctx context.Context, path string, b Batch) (err error) {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: url.Values{
		"_pragma": {"busy_timeout(5000)", "foreign_keys(1)"},
		"_txlock": {"immediate"},
	}.Encode()}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return fmt.Errorf("load batch: %w", err)
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("load batch: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, s := range sqliteStatements(b) {
		if _, err := tx.ExecContext(ctx, s.query, s.args...); err != nil {
			return fmt.Errorf("load batch: insert %s: %w", s.table, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("load batch: %w", err)
	}
	return nil
}

// loadPostgres loads b into the schema that schemaURL connects to, in one
// transaction, and then analyzes the tables: a deployment's tables grow
// over time and autovacuum keeps their statistics, which the planner
// needs to use the queue's partial indexes on a table this size.
func loadPostgres(ctx context.Context, schemaURL string, b Batch) (err error) {
	conn, err := pgx.Connect(ctx, schemaURL)
	if err != nil {
		return fmt.Errorf("load batch: %w", err)
	}
	defer func() { err = errors.Join(err, conn.Close(context.WithoutCancel(ctx))) }()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, s := range postgresStatements(b) {
			if _, err := tx.Exec(ctx, s.query, s.args...); err != nil {
				return fmt.Errorf("insert %s: %w", s.table, err)
			}
		}
		return nil
	})
	if err == nil {
		_, err = conn.Exec(ctx, "ANALYZE tasks, tracks, callbacks, attempts")
	}
	if err != nil {
		return fmt.Errorf("load batch: %w", err)
	}
	return nil
}
