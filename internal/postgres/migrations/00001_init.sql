-- +goose Up
-- Every name is unqualified: the tables live in the connection's current
-- schema (the first of its search_path), so that one database can hold
-- several tunehooks, or the isolated schemas of parallel tests.
--
-- Times are timestamptz, written from the Go clock of the instance (see
-- package postgres), never from now(). NULL stands for "none" where that is
-- meaningful, and the queue queries rely on it:
--   tasks.run_at is NULL exactly when the task is final, and
--   callbacks.next_attempt_at is NULL exactly when the callback is final,
-- so "due" is a single comparison on an indexed column and final rows drop
-- out of the partial indexes.

CREATE TABLE tasks (
    id             text        PRIMARY KEY,
    owner          text        NOT NULL,
    model          text        NOT NULL,
    param          text        NOT NULL, -- text, not jsonb: record-info shows it byte for byte
    callback_url   text        NOT NULL,
    status         text        NOT NULL,
    title          text        NOT NULL DEFAULT '',
    lyrics         text        NOT NULL DEFAULT '',
    tags           text        NOT NULL DEFAULT '',
    error_code     integer,
    error_message  text,
    run_at         timestamptz,
    lease_owner    text,
    lease_until    timestamptz,
    stage_attempts integer     NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- The claim's order, over unfinished tasks only.
CREATE INDEX tasks_due ON tasks (run_at, created_at, id) WHERE run_at IS NOT NULL;

CREATE TABLE tracks (
    id         text             PRIMARY KEY,
    task_id    text             NOT NULL REFERENCES tasks (id),
    idx        integer          NOT NULL,
    audio_key  text             NOT NULL,
    image_key  text             NOT NULL,
    duration   double precision NOT NULL,
    created_at timestamptz      NOT NULL,
    UNIQUE (task_id, idx)
);

CREATE TABLE callbacks (
    id              text        PRIMARY KEY,
    task_id         text        NOT NULL REFERENCES tasks (id),
    stage           text        NOT NULL,
    url             text        NOT NULL,
    body            bytea       NOT NULL,
    state           text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    lease_owner     text,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    UNIQUE (task_id, stage)
);

-- The claim's order, over pending callbacks only.
CREATE INDEX callbacks_due ON callbacks (next_attempt_at, created_at, id) WHERE next_attempt_at IS NOT NULL;

CREATE TABLE attempts (
    callback_id text        NOT NULL REFERENCES callbacks (id),
    n           integer     NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_ms bigint      NOT NULL,
    status_code integer, -- NULL when no response arrived
    error       text        NOT NULL DEFAULT '',
    response    bytea,
    PRIMARY KEY (callback_id, n)
);

-- +goose Down
DROP TABLE attempts;
DROP TABLE callbacks;
DROP TABLE tracks;
DROP TABLE tasks;
