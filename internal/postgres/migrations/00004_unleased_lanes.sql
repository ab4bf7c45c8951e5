-- +goose Up
-- The lanes' indexes hold the callbacks that wait, not those in flight: a
-- claim leases the callbacks at the head of its lane, which stay there
-- until their attempts are recorded, and every later claim, and
-- NextCallbackDue, had to walk past them (a thousand hanging attempts are
-- a thousand rows at the head of the first lane). A claimed callback
-- leaves its lane's index now, and comes back when its lease is freed; a
-- lease that expires unfreed (its owner died) is found through
-- callbacks_leased instead.
--
-- As in 00002, the indexes are built inside the migration's transaction,
-- which blocks writes to callbacks for about a second per million pending
-- callbacks, once.
DROP INDEX callbacks_due_first;
DROP INDEX callbacks_due_retry;
CREATE INDEX callbacks_due_first ON callbacks (next_attempt_at, created_at, id)
    WHERE next_attempt_at IS NOT NULL AND attempts = 0 AND lease_until IS NULL;
CREATE INDEX callbacks_due_retry ON callbacks (next_attempt_at, created_at, id)
    WHERE next_attempt_at IS NOT NULL AND attempts > 0 AND lease_until IS NULL;

-- +goose Down
DROP INDEX callbacks_due_retry;
DROP INDEX callbacks_due_first;
CREATE INDEX callbacks_due_first ON callbacks (next_attempt_at, created_at, id)
    WHERE next_attempt_at IS NOT NULL AND attempts = 0;
CREATE INDEX callbacks_due_retry ON callbacks (next_attempt_at, created_at, id)
    WHERE next_attempt_at IS NOT NULL AND attempts > 0;
