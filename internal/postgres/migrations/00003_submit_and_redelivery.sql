-- +goose Up
-- Idempotent submits: a key is an owner's, and names the task its first
-- request created. The foreign key is checked at commit, because the key is
-- taken before the task is inserted: taking it first is what makes a
-- concurrent retry wait (on the unique key) and then replay instead of
-- creating a second task. idempotency_keys_created finds the expired keys
-- to prune.
CREATE TABLE idempotency_keys (
    owner        text        NOT NULL,
    key          text        NOT NULL,
    request_hash text        NOT NULL,
    task_id      text        NOT NULL REFERENCES tasks (id) DEFERRABLE INITIALLY DEFERRED,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (owner, key)
);

CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Credits: an owner's row appears with its first costly submission, and is
-- shared by every instance. tasks.cost is what the task was charged,
-- refunded if it fails with 531.
CREATE TABLE credits (
    owner   text    PRIMARY KEY,
    balance integer NOT NULL
);

ALTER TABLE tasks ADD COLUMN cost integer NOT NULL DEFAULT 0;

-- Redelivery starts a new attempt series: callbacks.attempts counts the
-- attempts of the current series (it keeps choosing the lane and the retry
-- delay), callbacks.redeliveries numbers the series (0: automatic), and
-- callbacks.lease_redelivery is the series a claim was made in, so that an
-- attempt recorded after a redelivery is filed under its own series.
ALTER TABLE callbacks ADD COLUMN redeliveries integer NOT NULL DEFAULT 0;
ALTER TABLE callbacks ADD COLUMN lease_redelivery integer NOT NULL DEFAULT 0;

ALTER TABLE attempts ADD COLUMN redelivery integer NOT NULL DEFAULT 0;
ALTER TABLE attempts DROP CONSTRAINT attempts_pkey;
ALTER TABLE attempts ADD PRIMARY KEY (callback_id, redelivery, n);

-- +goose Down
DELETE FROM attempts WHERE redelivery > 0;
ALTER TABLE attempts DROP CONSTRAINT attempts_pkey;
ALTER TABLE attempts ADD PRIMARY KEY (callback_id, n);
ALTER TABLE attempts DROP COLUMN redelivery;
ALTER TABLE callbacks DROP COLUMN lease_redelivery;
ALTER TABLE callbacks DROP COLUMN redeliveries;
ALTER TABLE tasks DROP COLUMN cost;
DROP TABLE credits;
DROP TABLE idempotency_keys;
