// Package postgres is the task.Store for several tunehook instances sharing
// one PostgreSQL database (pgx v5): tasks, tracks, callbacks and their
// attempts, which are also the work queue of every instance's runners and
// dispatchers. Claims take rows with FOR UPDATE SKIP LOCKED, so instances
// never hand out the same work twice and never wait behind each other, and
// LISTEN/NOTIFY wakes the other instances when work appears.
//
// Everything lives in the connection's current schema (the first schema of
// its search_path), so one database can hold several independent
// deployments, or the throwaway schemas of parallel tests.
//
// Time comes from each instance's clock (Options.Now), as with SQLite, not
// from the database's now(): leases are written and checked with it. The
// instances sharing a database must therefore keep their clocks
// synchronised (NTP); leases have seconds of margin, so the usual
// milliseconds of skew are harmless, but an instance whose clock runs
// minutes ahead would take over leases that have not expired.
package postgres

import (
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jackc/pgxlisten"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/tunehook/tunehook/internal/task"
)

var _ task.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

const (
	// connectTimeout bounds a connection attempt when the URL sets no
	// connect_timeout: without one, a database host that drops packets
	// would hang every call that needs a new connection until the kernel
	// gives up, minutes later.
	connectTimeout = 5 * time.Second
	// reconnectDelay is the listener's pause between connection attempts
	// while the database is away. Wake-ups missed meanwhile are made up for
	// when it reconnects, and claims poll as a backstop anyway.
	reconnectDelay = time.Second
	// appName is the application_name of the pool's connections when the
	// URL sets none; the listener's is this name plus listenSuffix. They
	// tell an operator's pg_stat_activity which connections are tunehook's.
	appName      = "tunehook"
	listenSuffix = "-listen"
	// maxIdentifier is PostgreSQL's limit on names, channel names included
	// (NAMEDATALEN - 1 bytes).
	maxIdentifier = 63
)

// The payloads of wake-up notifications: what kind of work appeared.
const (
	wakeTask     = "task"
	wakeCallback = "callback"
)

// Options tunes a Store; the zero value is valid.
type Options struct {
	Now    func() time.Time // default time.Now; the conformance suite passes a controllable clock
	Logger *slog.Logger     // default: discard
}

// Store is the PostgreSQL task.Store. Its methods run on a connection pool
// that reconnects by itself after the database was away; a dedicated
// connection outside the pool listens for the wake-ups of other instances.
type Store struct {
	pool          *pgxpool.Pool
	now           func() time.Time
	logger        *slog.Logger
	channel       string // the NOTIFY channel of the instances sharing the schema
	taskReady     task.Signal
	callbackReady task.Signal
	// taskNotice and callbackNotice hold the wake-ups to send to the other
	// instances (see sendNotices).
	taskNotice     task.Signal
	callbackNotice task.Signal
	cursors        claimCursors
	stopListening  context.CancelFunc
	listenerDone   chan struct{}
	noticesDone    chan struct{}
}

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string, as pgx reads them), applies the embedded migrations
// under an advisory lock, so that instances starting together migrate one
// after the other, and starts listening for the wake-ups of other
// instances. It fails within about 5 s, naming the database's address, when
// the database cannot be reached.
//
// The URL's pool settings (pool_max_conns, ...) apply. The connections of
// the pool introduce themselves with the URL's application_name, "tunehook"
// by default, and the listener's with that name and "-listen", so that an
// operator can tell instances apart in pg_stat_activity.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := parseConfig(url)
	if err != nil {
		return nil, err
	}
	s := &Store{
		now:            opts.Now,
		logger:         cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		taskReady:      task.NewSignal(),
		callbackReady:  task.NewSignal(),
		taskNotice:     task.NewSignal(),
		callbackNotice: task.NewSignal(),
		listenerDone:   make(chan struct{}),
		noticesDone:    make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	schema, err := migrate(ctx, cfg.ConnConfig, s.logger)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", address(cfg.ConnConfig), err)
	}
	s.channel = channelName(schema)
	cfg.AfterConnect = scanTimesInUTC
	// The listener's config is copied before the pool takes cfg over.
	listenCfg := cfg.ConnConfig.Copy()
	listenCfg.RuntimeParams["application_name"] += listenSuffix
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", address(cfg.ConnConfig), err)
	}
	// The listener and the notifier live as long as the Store, not as
	// long as ctx, which may only cover starting up; they keep ctx's
	// values for logging.
	listenCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stopListening = stop
	go func() {
		defer close(s.listenerDone)
		s.listen(listenCtx, listenCfg)
	}()
	go func() {
		defer close(s.noticesDone)
		s.sendNotices(listenCtx)
	}()
	return s, nil
}

// Migrate applies the embedded migrations to the database at url, under
// the same advisory lock as Open, and returns.
func Migrate(ctx context.Context, url string, logger *slog.Logger) error {
	cfg, err := parseConfig(url)
	if err != nil {
		return err
	}
	if _, err := migrate(ctx, cfg.ConnConfig, cmp.Or(logger, slog.New(slog.DiscardHandler))); err != nil {
		return fmt.Errorf("migrate %s: %w", address(cfg.ConnConfig), err)
	}
	return nil
}

// parseConfig reads url into a pool configuration with tunehook's
// defaults: a connect timeout and an application_name. A connect_timeout of
// 0 in the URL, which asks for none, gets the default too.
func parseConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors hide the password.
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	cc := cfg.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = connectTimeout
	}
	// A connection that stops answering fails its liveness check instead
	// of holding up the caller that acquired it.
	if cfg.PingTimeout == 0 {
		cfg.PingTimeout = connectTimeout
	}
	if cc.RuntimeParams["application_name"] == "" {
		cc.RuntimeParams["application_name"] = appName
	}
	// Every query of the store reads through an index, but the planner
	// only knows so from the tables' statistics, which autovacuum gathers
	// some time after a table has grown, and never when it is off: until
	// then it plans sequential scans, and a statement planned on an empty
	// table keeps its plan. Read whole, the tables made each claim and each
	// look for due work cost more the longer tunehook ran (with autovacuum
	// off, the latency bench's p99 at 90 % of 3,000 callbacks/s was 9.3 s
	// instead of 21 ms).
	// Planning with sequential scans priced out makes the index paths
	// independent of the statistics.
	//
	// Every statement of the store touches a few rows; without statistics
	// the planner guessed otherwise and gathered parallel workers for a
	// scan of an index's dead entries, whose start-up alone cost more than
	// the query should, on CPUs the store's other work needed.
	//
	// The URL may set either back.
	for name, value := range plannerDefaults {
		if _, ok := cc.RuntimeParams[name]; !ok {
			cc.RuntimeParams[name] = value
		}
	}
	// pgx's default, 4 connections on a 2-core machine, made the Runner's
	// stage commits, the Dispatcher's claims and group commits and the
	// API's queries wait for each other; PostgreSQL flushes the WAL of
	// concurrent commits together, so more of them at once cost little.
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	return cfg, nil
}

// plannerDefaults are the planner settings of tunehook's connections,
// unless the URL sets them.
var plannerDefaults = map[string]string{
	"enable_seqscan":                  "off",
	"max_parallel_workers_per_gather": "0",
}

// defaultMaxConns is the size of the connection pool of an instance whose
// URL sets no pool_max_conns.
const defaultMaxConns = 16

// address names the database of cc in errors: host, port and database,
// never the credentials.
func address(cc *pgx.ConnConfig) string {
	return "postgres " + net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))) + "/" + cc.Database
}

// migrate applies the embedded migrations to the current schema of the
// connections of cc and returns that schema. goose needs a database/sql
// handle, which lives only for the migration.
func migrate(ctx context.Context, cc *pgx.ConnConfig, logger *slog.Logger) (string, error) {
	db := stdlib.OpenDB(*cc)
	defer db.Close()
	// The first query connects: its error is the one that says why the
	// database cannot be reached.
	var (
		schema     *string
		searchPath string
	)
	err := db.QueryRowContext(ctx, `SELECT current_schema(), current_setting('search_path')`).Scan(&schema, &searchPath)
	if err != nil {
		return "", fmt.Errorf("connect: %w", err)
	}
	if schema == nil {
		return "", fmt.Errorf("no schema to work in: none of search_path %q exists", searchPath)
	}
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(migrationLockID(*schema)),
		// Migrating an empty schema takes milliseconds: poll often, for up
		// to 5 minutes.
		lock.WithLockTimeout(1, 300),
	)
	if err != nil {
		return "", fmt.Errorf("migrate: %w", err)
	}
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return "", err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, dir,
		goose.WithDisableGlobalRegistry(true), goose.WithSlog(logger), goose.WithSessionLocker(locker))
	if err != nil {
		return "", fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return "", fmt.Errorf("migrate: %w", err)
	}
	return *schema, nil
}

// migrationLockID returns the key of the advisory lock that serialises
// the migrations of schema. Advisory locks belong to the whole database, so
// the key is the schema's.
func migrationLockID(schema string) int64 {
	sum := sha256.Sum256([]byte("tunehook migrate " + schema))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// channelName returns the NOTIFY channel of the instances working in
// schema. A channel name is an identifier: PostgreSQL refuses one over 63
// bytes, so a schema name too long for it is replaced by its hash.
func channelName(schema string) string {
	if c := "tunehook." + schema; len(c) <= maxIdentifier {
		return c
	}
	sum := sha256.Sum256([]byte(schema))
	return "tunehook." + hex.EncodeToString(sum[:16])
}

// scanTimesInUTC makes conn return timestamptz values in UTC, as the
// SQLite store does, rather than in the local time zone.
func scanTimesInUTC(_ context.Context, conn *pgx.Conn) error {
	conn.TypeMap().RegisterType(&pgtype.Type{
		Name: "timestamptz", OID: pgtype.TimestamptzOID, Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
	})
	return nil
}

// listen turns the notifications on s.channel into ready signals until ctx
// is cancelled, reconnecting whenever its connection is lost.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) { return pgx.ConnectConfig(ctx, cfg) },
		LogError: func(ctx context.Context, err error) {
			if ctx.Err() == nil { // not the listener being stopped
				s.logger.WarnContext(ctx, "wake-up listener failed", "error", err, "retry_in", reconnectDelay)
			}
		},
		ReconnectDelay: reconnectDelay,
	}
	l.Handle(s.channel, wakeups{s})
	// Listen returns only once ctx is cancelled: every other error is
	// logged and followed by a reconnection.
	_ = l.Listen(ctx)
}

// wakeups is the listener's handler of s's channel.
type wakeups struct{ s *Store }

// HandleNotification signals the ready channel of the work another
// instance (or this one) made appear.
func (w wakeups) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	switch n.Payload {
	case wakeTask:
		w.s.taskReady.Notify()
	case wakeCallback:
		w.s.callbackReady.Notify()
	default:
		return fmt.Errorf("unknown wake-up %q", n.Payload)
	}
	return nil
}

// HandleBacklog runs each time the listener has (re)connected and listens:
// notifications sent while it had no connection are lost, so any work may
// have appeared meanwhile.
func (w wakeups) HandleBacklog(ctx context.Context, _ string, _ *pgx.Conn) error {
	w.s.logger.DebugContext(ctx, "wake-up listener connected", "channel", w.s.channel)
	w.s.taskReady.Notify()
	w.s.callbackReady.Notify()
	return nil
}

// Close stops the listener and the notifier, waits for them, and closes
// the pool.
func (s *Store) Close() error {
	s.stopListening()
	<-s.listenerDone
	<-s.noticesDone
	s.pool.Close()
	return nil
}

// wakeTasks tells this instance's Runner at once that a task may have
// become due, and every other instance's through sendNotices when due
// says the task is not final (a final task is never due). It is called
// after the commit that made it so, never before: a wake-up that came
// first would find nothing.
func (s *Store) wakeTasks(due bool) {
	s.taskReady.Notify()
	if due {
		s.taskNotice.Notify()
	}
}

// wakeCallbacks is wakeTasks for callbacks and the Dispatchers.
func (s *Store) wakeCallbacks() {
	s.callbackReady.Notify()
	s.callbackNotice.Notify()
}

// noticeTimeout bounds one NOTIFY of sendNotices.
const noticeTimeout = 5 * time.Second

// sendNotices sends the wake-ups of this instance's commits to every
// instance with NOTIFY until ctx is cancelled.
//
// NOTIFY is sent after the commit, on its own, not inside the transaction
// that made the work due: PostgreSQL serialises the commits of every
// transaction that notified on one lock, the WAL flush included, which
// held stage commits to a few hundred per second and put them in a queue.
// Wake-ups coalesce: the commits made while one NOTIFY is sent are
// announced together by the next. A wake-up that is lost (the process dies
// between a commit and its NOTIFY, or the database is away) delays the
// other instances by their poll interval at most: the poll is the
// backstop, and this instance signalled itself already.
func (s *Store) sendNotices(ctx context.Context) {
	for {
		var kind string
		select {
		case <-ctx.Done():
			return
		case <-s.taskNotice:
			kind = wakeTask
		case <-s.callbackNotice:
			kind = wakeCallback
		}
		nctx, cancel := context.WithTimeout(ctx, noticeTimeout)
		_, err := s.pool.Exec(nctx, `SELECT pg_notify($1, $2)`, s.channel, kind)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.logger.DebugContext(ctx, "wake-up not sent to the other instances", "kind", kind, "error", err)
		}
	}
}

// withConn runs fn, one method's work, on a connection of the pool.
//
// A connection can die while idle in the pool: the database restarted, or
// an operator ended the session. The pool pings only connections idle for
// over a second, so without more care every connection it held would fail
// one call after each restart. When fn's connection turns out to be closed,
// withConn therefore closes the pool's other connections too, which are
// likely as dead, and runs fn once more on a new one. Running it again is
// safe: every method is one transaction whose writes are fenced by a lease
// or keyed by an ID, so if the connection died after its commit went
// through, the second run fails on the fence or the key instead of
// applying anything twice.
func (s *Store) withConn(ctx context.Context, fn func(*pgxpool.Conn) error) error {
	for try := 1; ; try++ {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		err = fn(conn)
		dead := conn.Conn().IsClosed()
		conn.Release()
		if err == nil || !dead || try == 2 || ctx.Err() != nil {
			return err
		}
		s.logger.WarnContext(ctx, "database connection lost; trying again on a new one", "error", err)
		s.pool.Reset()
	}
}

// sqlStateDiskFull is PostgreSQL's disk_full error code.
const sqlStateDiskFull = "53100"

// write runs fn in a transaction and commits it when fn succeeds. A disk
// too full for the write is reported as task.ErrStorageFull.
func (s *Store) write(ctx context.Context, fn func(pgx.Tx) error) error {
	return storageError(s.withConn(ctx, func(c *pgxpool.Conn) error { return pgx.BeginFunc(ctx, c, fn) }))
}

// send runs fn, writes that are a transaction of their own, on a
// connection: one statement, or one batch, which PostgreSQL runs as an
// implicit transaction whose statements commit or fail together, in one
// round trip where write takes three. A disk too full for the write is
// reported as task.ErrStorageFull.
func (s *Store) send(ctx context.Context, fn func(*pgxpool.Conn) error) error {
	return storageError(s.withConn(ctx, fn))
}

// storageError returns err, as task.ErrStorageFull when the disk was too
// full for a write.
func storageError(err error) error {
	if e, ok := errors.AsType[*pgconn.PgError](err); ok && e.Code == sqlStateDiskFull {
		return fmt.Errorf("%w: %w", task.ErrStorageFull, err)
	}
	return err
}

// batchSender runs a batch: a transaction, or a connection, on which the
// batch is a transaction of its own (see send).
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// read runs fn in a read-only transaction with one snapshot, so that the
// queries of one method see the same state.
func (s *Store) read(ctx context.Context, fn func(pgx.Tx) error) error {
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	return s.withConn(ctx, func(c *pgxpool.Conn) error { return pgx.BeginTxFunc(ctx, c, opts, fn) })
}

// fenced turns an update that matched no row into task.ErrLeaseLost: the
// WHERE clause of every update under a lease names the owner and requires
// an unexpired lease.
func fenced(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return task.ErrLeaseLost
	}
	return nil
}

// nullTime returns t for a nullable column: nil (NULL) for the zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// fromNullTime is the inverse of nullTime.
func fromNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// validText returns s as a text column can hold it: PostgreSQL's text
// refuses NUL bytes and invalid UTF-8, which SQLite would store as given.
// It is for diagnostics built from what remote servers sent, which must
// not make a write fail.
func validText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
