-- +goose Up
-- The leased indexes held lease_until, and the next-due queries took the
-- minimum of greatest(due time, lease_until) over every row they found:
-- a bitmap scan that visits the heap for each entry, dead ones included,
-- since a bitmap scan never marks an index entry dead. Every claim leaves
-- such an entry behind, and until VACUUM comes (never, with autovacuum
-- off) they piled up: NextCallbackDue took 28 ms in the deliver bench.
-- Indexed by the moment a leased row becomes claimable, the next-due
-- queries and the claims of expired leases read the index in order and
-- stop at the first live row; a plain index scan marks the dead entries
-- it passes, and later scans skip them.
DROP INDEX tasks_leased;
CREATE INDEX tasks_leased ON tasks (greatest(run_at, lease_until))
    WHERE lease_until IS NOT NULL AND run_at IS NOT NULL;
DROP INDEX callbacks_leased;
CREATE INDEX callbacks_leased ON callbacks (greatest(next_attempt_at, lease_until))
    WHERE lease_until IS NOT NULL AND next_attempt_at IS NOT NULL;

-- +goose Down
DROP INDEX callbacks_leased;
CREATE INDEX callbacks_leased ON callbacks (lease_until) WHERE lease_until IS NOT NULL;
DROP INDEX tasks_leased;
CREATE INDEX tasks_leased ON tasks (lease_until) WHERE lease_until IS NOT NULL;
