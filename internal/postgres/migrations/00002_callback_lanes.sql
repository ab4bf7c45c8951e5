-- +goose Up
-- Pending callbacks wait in two lanes, claimed separately so that a burst
-- of due retries cannot hold back first attempts: attempts = 0 (the first
-- lane) and attempts > 0 (the retry lane). Each lane has its own partial
-- index in claim order, which replaces the one index of both;
-- NextCallbackDue reads the head of each.
--
-- callbacks_leased holds the callbacks in flight only (every lease is
-- freed when an attempt is recorded or the callback deferred), so that
-- NextCallbackDue reads a few rows instead of the whole backlog.
--
-- The indexes are built inside the migration's transaction, which blocks
-- writes to callbacks while it runs: a second or so per million pending
-- callbacks, once, when an instance of this version first starts.
DROP INDEX callbacks_due;
CREATE INDEX callbacks_due_first ON callbacks (next_attempt_at, created_at, id)
    WHERE next_attempt_at IS NOT NULL AND attempts = 0;
CREATE INDEX callbacks_due_retry ON callbacks (next_attempt_at, created_at, id)
    WHERE next_attempt_at IS NOT NULL AND attempts > 0;
CREATE INDEX callbacks_leased ON callbacks (lease_until) WHERE lease_until IS NOT NULL;

-- +goose Down
DROP INDEX callbacks_leased;
DROP INDEX callbacks_due_retry;
DROP INDEX callbacks_due_first;
CREATE INDEX callbacks_due ON callbacks (next_attempt_at, created_at, id) WHERE next_attempt_at IS NOT NULL;
