-- +goose Up
-- NextTaskDue read every unfinished task, and NextCallbackDue every
-- leased callback, to take the least of their due times: the former cost
-- as much as the backlog of tasks was long, the latter as many attempts
-- as were in flight (a thousand hanging receivers are a thousand rows),
-- for every look for due work. Indexed by the moment a leased row becomes
-- claimable, both read the head of an index instead, as the claims of
-- expired leases do.
CREATE INDEX tasks_leased ON tasks (max(run_at, lease_until))
    WHERE lease_until IS NOT NULL AND run_at IS NOT NULL;
DROP INDEX callbacks_leased;
CREATE INDEX callbacks_leased ON callbacks (max(next_attempt_at, lease_until))
    WHERE lease_until IS NOT NULL AND next_attempt_at IS NOT NULL;

-- +goose Down
DROP INDEX callbacks_leased;
CREATE INDEX callbacks_leased ON callbacks (lease_until) WHERE lease_until IS NOT NULL;
DROP INDEX tasks_leased;
