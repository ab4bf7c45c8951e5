// Package sqlite is the embedded task.Store: tasks, tracks, callbacks and
// their attempts in one SQLite database (modernc.org/sqlite, pure Go), which
// is also the work queue of the runners and dispatchers of one process.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tunehook/tunehook/internal/task"
)

var _ task.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// readConns is the size of the read pool: WAL lets readers run beside the
// writer and beside each other, and record-info polling is read-only.
const readConns = 4

// busyTimeout is how long a connection waits for a lock before failing with
// SQLITE_BUSY. With one writer and WAL readers, locks are only contended
// during checkpoints, so this is a safety margin, not a queue.
const busyTimeout = 5 * time.Second

// Options tunes a Store; the zero value is valid.
type Options struct {
	Now    func() time.Time // default time.Now; the conformance suite passes a controllable clock
	Logger *slog.Logger     // default: discard
}

// Store is the SQLite task.Store. Every write goes through one connection,
// so write transactions never contend with each other; reads use a separate
// pool and see the last committed state.
type Store struct {
	w, r          *sql.DB
	prepared      map[string]*sql.Stmt // preparedWrites, on w
	lock          *flock.Flock
	now           func() time.Time
	logger        *slog.Logger
	taskReady     task.Signal
	callbackReady task.Signal
	submissions   submissions
}

// Open opens (creating if needed) the database file at path, applies the
// embedded migrations, and takes an exclusive lock on path+".lock" for the
// life of the Store. If another process holds the lock, Open fails with an
// error wrapping task.ErrLocked.
//
// The lock proves that no other live process uses the database, so Open
// clears every lease left in it: work a crashed process had claimed is
// claimable at once instead of after its lease expires.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	s := &Store{
		lock:          flock.New(path + ".lock"),
		now:           opts.Now,
		logger:        opts.Logger,
		taskReady:     task.NewSignal(),
		callbackReady: task.NewSignal(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	locked, err := s.lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("open %s: lock %s: %w", path, s.lock.Path(), err)
	}
	if !locked {
		return nil, fmt.Errorf("open %s: %s is locked: another tunehook is running on this data dir: %w",
			path, s.lock.Path(), task.ErrLocked)
	}
	if err := s.open(ctx, path); err != nil {
		return nil, errors.Join(fmt.Errorf("open %s: %w", path, err), s.Close())
	}
	return s, nil
}

// open connects both pools, migrates the schema and clears stale leases.
func (s *Store) open(ctx context.Context, path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	// synchronous=FULL: in WAL mode NORMAL may lose the last transactions on
	// power loss, and a committed stage is a promise that its callback will
	// be sent; FULL syncs the WAL on every commit so the promise holds.
	// _txlock=immediate takes the write lock at BEGIN. All writes of this
	// process go through one connection and the lock file keeps other
	// tunehooks out, so a plain BEGIN could not meet a competing writer
	// either; IMMEDIATE costs nothing and means that an outside writer (an
	// operator's sqlite3 shell) is waited for at BEGIN, under busy_timeout,
	// instead of failing a transaction halfway with SQLITE_BUSY.
	busy := fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds())
	s.w, err = sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {busy, "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return err
	}
	s.w.SetMaxOpenConns(1)
	// query_only makes a write through the read pool an error rather than a
	// second writer racing the first.
	s.r, err = sql.Open("sqlite", dsn(abs, url.Values{"_pragma": {busy, "query_only(1)"}}))
	if err != nil {
		return err
	}
	s.r.SetMaxOpenConns(readConns)
	s.r.SetMaxIdleConns(readConns)
	if err := s.migrate(ctx); err != nil {
		return err
	}
	if err := s.prepare(ctx); err != nil {
		return err
	}
	return s.clearLeases(ctx)
}

// preparedWrites are the statements that run for every task and every
// callback. Parsing SQL costs more than running a small statement with
// modernc.org/sqlite, which keeps no prepared statements of its own: 14 %
// of the CPU of the latency bench at 2,500 callbacks/s went to it. These
// are prepared once, on the writer connection, and Tx.StmtContext reuses
// them in the writer's transactions.
var preparedWrites = []string{
	insertTaskQuery, insertTrackQuery, insertCallbackQuery, commitStageQuery, claimTasksQuery,
	claimCallbacksQueries[task.LaneFirst], claimCallbacksQueries[task.LaneRetry],
	recordAttemptQuery, insertAttemptQuery, deferCallbackQuery,
}

// prepare prepares preparedWrites on the writer. It runs before any
// transaction: while one holds the writer's only connection, preparing on
// the pool would wait for it for ever.
func (s *Store) prepare(ctx context.Context) error {
	s.prepared = make(map[string]*sql.Stmt, len(preparedWrites))
	for _, q := range preparedWrites {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		s.prepared[q] = st
	}
	return nil
}

// stmt returns query, one of preparedWrites, for tx, a transaction of the
// writer.
func (s *Store) stmt(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	st, ok := s.prepared[query]
	if !ok {
		panic("sqlite: statement not in preparedWrites: " + query)
	}
	return tx.StmtContext(ctx, st)
}

// dsn returns the modernc.org/sqlite data source name of the database file
// at abs with the driver's params; it runs the _pragma ones on every new
// connection of a pool. The path is escaped so that '?', '#' and '%' in it
// stay part of it.
func dsn(abs string, params url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: params.Encode()}
	return u.String()
}

// migrate applies the embedded migrations through a goose Provider, which
// keeps its state in the provider rather than in goose's globals.
func (s *Store) migrate(ctx context.Context) error {
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.w, dir,
		goose.WithDisableGlobalRegistry(true), goose.WithSlog(s.logger))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// clearLeases frees every lease in the database. Leases only exist on
// unfinished work, so the partial indexes find them.
func (s *Store) clearLeases(ctx context.Context) error {
	var tasks, callbacks int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tasks SET lease_owner = NULL, lease_until = NULL
			WHERE run_at IS NOT NULL AND lease_owner IS NOT NULL`)
		if err != nil {
			return err
		}
		if tasks, err = res.RowsAffected(); err != nil {
			return err
		}
		res, err = tx.ExecContext(ctx, `UPDATE callbacks SET lease_owner = NULL, lease_until = NULL
			WHERE lease_until IS NOT NULL`)
		if err != nil {
			return err
		}
		callbacks, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("clear leases: %w", err)
	}
	if tasks > 0 || callbacks > 0 {
		s.logger.InfoContext(ctx, "leases of a previous run cleared", "tasks", tasks, "callbacks", callbacks)
	}
	return nil
}

// Close closes the database and releases the lock.
func (s *Store) Close() error {
	var errs []error
	for _, st := range s.prepared {
		errs = append(errs, st.Close())
	}
	for _, db := range []*sql.DB{s.r, s.w} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	// Unlocking last: the lock must cover the database until it is closed.
	if err := s.lock.Unlock(); err != nil {
		errs = append(errs, fmt.Errorf("unlock %s: %w", s.lock.Path(), err))
	}
	return errors.Join(errs...)
}

// write runs fn in a transaction on the writer connection and commits it
// when fn succeeds. A disk too full for the write is reported as
// task.ErrStorageFull.
func (s *Store) write(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return storageFull(err)
	}
	if err := fn(tx); err != nil {
		// ErrTxDone: a cancelled ctx already rolled the transaction back.
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			return storageFull(errors.Join(err, fmt.Errorf("rollback: %w", rbErr)))
		}
		return storageFull(err)
	}
	return storageFull(tx.Commit())
}

// storageFull marks err with task.ErrStorageFull when SQLite failed for
// want of disk space (SQLITE_FULL, in any of its extended codes).
func storageFull(err error) error {
	if e, ok := errors.AsType[*sqlite.Error](err); ok && e.Code()&0xff == sqlite3.SQLITE_FULL {
		return fmt.Errorf("%w: %w", task.ErrStorageFull, err)
	}
	return err
}

// read runs fn in a read-only transaction of the read pool, so that the
// queries of one method see a single snapshot.
func (s *Store) read(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	// Nothing to keep: rolling back only ends the snapshot.
	defer tx.Rollback()
	return fn(tx)
}

// fenced turns an update that matched no row into task.ErrLeaseLost: the
// WHERE clause of every update under a lease names the owner and requires
// an unexpired lease.
func fenced(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return task.ErrLeaseLost
	}
	return nil
}

// placeholders returns n comma-separated parameter markers for an IN list.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// ms returns t as stored: unix milliseconds. The zero time round-trips
// through it, so only columns where "none" means something use NULL.
func ms(t time.Time) int64 { return t.UnixMilli() }

// nullMS returns t as stored in a nullable column: NULL for the zero time.
func nullMS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: ms(t), Valid: true}
}

// fromMS is the inverse of ms, in UTC.
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// fromNullMS is the inverse of nullMS.
func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}
