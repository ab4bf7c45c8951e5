package tunehook

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
)

// DefaultDedupeTable is the table a SQLDedupe keeps its keys in unless told
// otherwise.
const DefaultDedupeTable = "tunehook_dedupe"

// pruneEvery is how often a SQLDedupe deletes the rows that have expired:
// often enough to bound the table, rarely enough to cost nothing per
// callback.
const pruneEvery = time.Minute

// SQLDedupeOptions tunes NewSQLDedupe. The zero value suits SQLite and
// MySQL.
type SQLDedupeOptions struct {
	// Table is the table's name, optionally schema-qualified ("hooks.seen");
	// empty means DefaultDedupeTable.
	Table string
	// Placeholder returns the n-th (from 1) bind parameter of the driver's
	// SQL; nil means "?". PostgreSQL drivers need
	// func(n int) string { return "$" + strconv.Itoa(n) }.
	Placeholder func(n int) string
}

// SQLDedupe is a DedupeStore in a SQL database, through database/sql and
// any driver: processed callbacks stay processed across restarts, and
// receivers that share the database share their keys. Its SQL is portable
// (no upserts): one table with a primary key, plain INSERT, UPDATE, DELETE
// and SELECT. It is safe for concurrent use.
type SQLDedupe struct {
	db                                    *sql.DB
	selectKey, insertKey, deleteExpired   string
	completeKey, releaseKey, pruneExpired string
	placeholder                           func(n int) string
	table                                 string

	mu        sync.Mutex
	lastPrune time.Time
}

// tableName is what SQLDedupeOptions.Table may hold: identifiers only, since
// it is written into the SQL.
var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// NewSQLDedupe returns a SQLDedupe on db, creating its table if it does not
// exist yet.
func NewSQLDedupe(ctx context.Context, db *sql.DB, opts SQLDedupeOptions) (*SQLDedupe, error) {
	table := opts.Table
	if table == "" {
		table = DefaultDedupeTable
	}
	if !tableName.MatchString(table) {
		return nil, fmt.Errorf("dedupe table %q: not a plain identifier", table)
	}
	ph := opts.Placeholder
	if ph == nil {
		ph = func(int) string { return "?" }
	}
	// Expiry is kept in Unix milliseconds: every database has a 64-bit
	// integer, not every one a comparable timestamp type.
	create := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
	dedupe_key VARCHAR(%d) NOT NULL PRIMARY KEY,
	done SMALLINT NOT NULL,
	expires_at BIGINT NOT NULL
)`, table, MaxDedupeKeyLen)
	if _, err := db.ExecContext(ctx, create); err != nil {
		return nil, fmt.Errorf("create dedupe table %s: %w", table, err)
	}
	s := &SQLDedupe{db: db, placeholder: ph, table: table}
	s.selectKey = s.sql(`SELECT expires_at FROM %s WHERE dedupe_key = ?`)
	s.insertKey = s.sql(`INSERT INTO %s (dedupe_key, done, expires_at) VALUES (?, ?, ?)`)
	s.deleteExpired = s.sql(`DELETE FROM %s WHERE dedupe_key = ? AND expires_at <= ?`)
	s.completeKey = s.sql(`UPDATE %s SET done = 1, expires_at = ? WHERE dedupe_key = ?`)
	s.releaseKey = s.sql(`DELETE FROM %s WHERE dedupe_key = ? AND done = 0`)
	s.pruneExpired = s.sql(`DELETE FROM %s WHERE expires_at <= ?`)
	return s, nil
}

// sql writes the table's name into query and numbers its placeholders.
func (s *SQLDedupe) sql(query string) string {
	query = fmt.Sprintf(query, s.table)
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString(s.placeholder(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Claim implements DedupeStore.
func (s *SQLDedupe) Claim(ctx context.Context, key string, now, until time.Time) (bool, error) {
	if err := s.prune(ctx, now); err != nil {
		return false, err
	}
	held, err := s.held(ctx, key, now)
	if err != nil || held {
		return false, err
	}
	// The row is absent or expired: remove an expired one, then insert. Of
	// concurrent claimers the primary key lets one insert; the others fail
	// and find the winner's row. (An upsert would say this in one
	// statement, but in a different dialect for every database.)
	if _, err := s.db.ExecContext(ctx, s.deleteExpired, key, now.UnixMilli()); err != nil {
		return false, fmt.Errorf("claim %s: %w", key, err)
	}
	if _, insertErr := s.db.ExecContext(ctx, s.insertKey, key, 0, until.UnixMilli()); insertErr != nil {
		held, err := s.held(ctx, key, now)
		if err != nil || !held {
			return false, fmt.Errorf("claim %s: %w", key, errors.Join(insertErr, err))
		}
		return false, nil
	}
	return true, nil
}

// held reports whether key has a row that has not expired at now.
func (s *SQLDedupe) held(ctx context.Context, key string, now time.Time) (bool, error) {
	var expires int64
	switch err := s.db.QueryRowContext(ctx, s.selectKey, key).Scan(&expires); {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("look up %s: %w", key, err)
	}
	return expires > now.UnixMilli(), nil
}

// Complete implements DedupeStore.
func (s *SQLDedupe) Complete(ctx context.Context, key string, until time.Time) error {
	res, err := s.db.ExecContext(ctx, s.completeKey, until.UnixMilli(), key)
	if err != nil {
		return fmt.Errorf("complete %s: %w", key, err)
	}
	// MySQL counts changed rows, not matched ones, so 0 may also mean the
	// row already holds these values; the insert then fails and the update
	// below is harmless.
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, s.insertKey, key, 1, until.UnixMilli()); err == nil {
		return nil
	}
	// Someone inserted the row meanwhile (a claim): update it.
	if _, err := s.db.ExecContext(ctx, s.completeKey, until.UnixMilli(), key); err != nil {
		return fmt.Errorf("complete %s: %w", key, err)
	}
	return nil
}

// Release implements DedupeStore.
func (s *SQLDedupe) Release(ctx context.Context, key string) error {
	if _, err := s.db.ExecContext(ctx, s.releaseKey, key); err != nil {
		return fmt.Errorf("release %s: %w", key, err)
	}
	return nil
}

// Done implements DedupeStore.
func (s *SQLDedupe) Done(ctx context.Context, now time.Time, keys ...string) (bool, error) {
	if len(keys) == 0 {
		return false, nil
	}
	// Few keys (a stage and the ones after it): one query for all.
	query := s.sql(`SELECT COUNT(*) FROM %s WHERE done = 1 AND expires_at > ? AND dedupe_key IN (?` +
		strings.Repeat(", ?", len(keys)-1) + `)`)
	args := make([]any, 0, len(keys)+1)
	args = append(args, now.UnixMilli())
	for _, k := range keys {
		args = append(args, k)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return false, fmt.Errorf("look up %s: %w", strings.Join(keys, ", "), err)
	}
	return n > 0, nil
}

// prune deletes the expired rows, at most once per pruneEvery.
func (s *SQLDedupe) prune(ctx context.Context, now time.Time) error {
	s.mu.Lock()
	due := now.Sub(s.lastPrune) >= pruneEvery
	if due {
		s.lastPrune = now
	}
	s.mu.Unlock()
	if !due {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, s.pruneExpired, now.UnixMilli()); err != nil {
		return fmt.Errorf("prune %s: %w", s.table, err)
	}
	return nil
}
