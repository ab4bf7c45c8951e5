-- +goose Up
-- Times are INTEGER unix milliseconds (UTC). NULL stands for "none" where
-- that is meaningful, and the queue queries rely on it:
--   tasks.run_at is NULL exactly when the task is final, and
--   callbacks.next_attempt_at is NULL exactly when the callback is final,
-- so "due" is a single comparison on an indexed column and final rows drop
-- out of the partial indexes.

CREATE TABLE tasks (
    id             TEXT    NOT NULL PRIMARY KEY,
    owner          TEXT    NOT NULL,
    model          TEXT    NOT NULL,
    param          TEXT    NOT NULL,
    callback_url   TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    title          TEXT    NOT NULL DEFAULT '',
    lyrics         TEXT    NOT NULL DEFAULT '',
    tags           TEXT    NOT NULL DEFAULT '',
    error_code     INTEGER,
    error_message  TEXT,
    run_at         INTEGER,
    lease_owner    TEXT,
    lease_until    INTEGER,
    stage_attempts INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX tasks_due ON tasks (run_at, created_at) WHERE run_at IS NOT NULL;

CREATE TABLE tracks (
    id         TEXT    NOT NULL PRIMARY KEY,
    task_id    TEXT    NOT NULL REFERENCES tasks (id),
    idx        INTEGER NOT NULL,
    audio_key  TEXT    NOT NULL,
    image_key  TEXT    NOT NULL,
    duration   REAL    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (task_id, idx)
) STRICT;

CREATE TABLE callbacks (
    id              TEXT    NOT NULL PRIMARY KEY,
    task_id         TEXT    NOT NULL REFERENCES tasks (id),
    stage           TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    body            BLOB    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_owner     TEXT,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    UNIQUE (task_id, stage)
) STRICT;

CREATE INDEX callbacks_due ON callbacks (next_attempt_at, created_at) WHERE next_attempt_at IS NOT NULL;

CREATE TABLE attempts (
    callback_id TEXT    NOT NULL REFERENCES callbacks (id),
    n           INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status_code INTEGER, -- NULL when no response arrived
    error       TEXT    NOT NULL DEFAULT '',
    response    BLOB,
    PRIMARY KEY (callback_id, n)
) STRICT;

-- +goose Down
DROP TABLE attempts;
DROP TABLE callbacks;
DROP TABLE tracks;
DROP TABLE tasks;
