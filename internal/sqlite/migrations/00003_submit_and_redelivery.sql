-- +goose Up
-- Idempotent submits: a key is an owner's, and names the task its first
-- request created. The foreign key is checked at commit, because the key is
-- taken before the task is inserted: taking it first is what makes a
-- concurrent retry wait or replay instead of creating a second task.
-- idempotency_keys_created finds the expired keys to prune.
CREATE TABLE idempotency_keys (
    owner        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    task_id      TEXT    NOT NULL REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (owner, key)
) STRICT;

CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Credits: an owner's row appears with its first costly submission.
-- tasks.cost is what the task was charged, refunded if it fails with 531.
CREATE TABLE credits (
    owner   TEXT    NOT NULL PRIMARY KEY,
    balance INTEGER NOT NULL
) STRICT;

ALTER TABLE tasks ADD COLUMN cost INTEGER NOT NULL DEFAULT 0;

-- Redelivery starts a new attempt series: callbacks.attempts counts the
-- attempts of the current series (it keeps choosing the lane and the retry
-- delay), callbacks.redeliveries numbers the series (0: automatic), and
-- callbacks.lease_redelivery is the series a claim was made in, so that an
-- attempt recorded after a redelivery is filed under its own series.
ALTER TABLE callbacks ADD COLUMN redeliveries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE callbacks ADD COLUMN lease_redelivery INTEGER NOT NULL DEFAULT 0;

-- attempts gains its series in its key; SQLite changes a primary key only
-- by rebuilding the table.
CREATE TABLE attempts_by_series (
    callback_id TEXT    NOT NULL REFERENCES callbacks (id),
    redelivery  INTEGER NOT NULL DEFAULT 0,
    n           INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status_code INTEGER, -- NULL when no response arrived
    error       TEXT    NOT NULL DEFAULT '',
    response    BLOB,
    PRIMARY KEY (callback_id, redelivery, n)
) STRICT;
INSERT INTO attempts_by_series (callback_id, n, started_at, duration_ms, status_code, error, response)
    SELECT callback_id, n, started_at, duration_ms, status_code, error, response FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_by_series RENAME TO attempts;

-- +goose Down
CREATE TABLE attempts_by_n (
    callback_id TEXT    NOT NULL REFERENCES callbacks (id),
    n           INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status_code INTEGER,
    error       TEXT    NOT NULL DEFAULT '',
    response    BLOB,
    PRIMARY KEY (callback_id, n)
) STRICT;
INSERT INTO attempts_by_n SELECT callback_id, n, started_at, duration_ms, status_code, error, response
    FROM attempts WHERE redelivery = 0;
DROP TABLE attempts;
ALTER TABLE attempts_by_n RENAME TO attempts;
ALTER TABLE callbacks DROP COLUMN lease_redelivery;
ALTER TABLE callbacks DROP COLUMN redeliveries;
ALTER TABLE tasks DROP COLUMN cost;
DROP TABLE credits;
DROP TABLE idempotency_keys;
