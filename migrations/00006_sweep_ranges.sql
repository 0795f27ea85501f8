-- Sweeps spread over replicas: a sweep is cut into key ranges, each
-- claimed by one replica at a time (under an etcd lease) with its own
-- progress, so a killed replica's range is resumed by another from its
-- cursor; segment-digest and record modes; the dataset version a sweep
-- compares (a switch supersedes it); stuck detection; schedules.
-- +goose Up
ALTER TABLE sweeps DROP CONSTRAINT sweeps_mode_check;
UPDATE sweeps SET mode = 'records' WHERE mode NOT IN ('records', 'digest', 'auto');
ALTER TABLE sweeps ALTER COLUMN mode SET DEFAULT 'auto';
ALTER TABLE sweeps ADD CONSTRAINT sweeps_mode_check CHECK (mode IN ('records', 'digest', 'auto'));
ALTER TABLE sweeps DROP CONSTRAINT sweeps_state_check;
ALTER TABLE sweeps ADD CONSTRAINT sweeps_state_check CHECK (state IN ('running', 'paused', 'cancelled', 'done', 'failed', 'superseded'));
ALTER TABLE sweeps
    ADD COLUMN rate            integer NOT NULL DEFAULT 0 CHECK (rate >= 0),
    ADD COLUMN dataset_version integer NOT NULL DEFAULT 0,
    ADD COLUMN schedule        text,
    ADD COLUMN supersedes      bigint REFERENCES sweeps (id) ON DELETE SET NULL,
    ADD COLUMN planned         boolean NOT NULL DEFAULT false,
    ADD COLUMN ranges          integer NOT NULL DEFAULT 0,
    ADD COLUMN ranges_done     integer NOT NULL DEFAULT 0,
    ADD COLUMN dirty           integer NOT NULL DEFAULT 0,
    ADD COLUMN stuck           boolean NOT NULL DEFAULT false;
-- A single runner's cursor, owner and heartbeat gave way to ranges.
ALTER TABLE sweeps DROP COLUMN cursor, DROP COLUMN owner, DROP COLUMN heartbeat_at;

CREATE TABLE sweep_ranges (
    sweep_id    bigint      NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    lo          bigint      NOT NULL, -- exclusive
    hi          bigint      NOT NULL, -- inclusive
    state       text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done')),
    owner       text,
    attempts    integer     NOT NULL DEFAULT 0,
    cursor      bigint      NOT NULL, -- the upper bound of the last finished batch
    mode        text,
    segments    integer     NOT NULL DEFAULT 0,
    dirty       integer     NOT NULL DEFAULT 0,
    records     bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (sweep_id, lo)
);
CREATE INDEX sweep_ranges_open ON sweep_ranges (sweep_id) WHERE state <> 'done';

-- When each schedule last started a sweep (the leader's scheduler).
CREATE TABLE sweep_schedules (
    name       text        PRIMARY KEY,
    last_start timestamptz NOT NULL,
    last_sweep bigint
);

-- +goose Down
DROP TABLE sweep_schedules;
DROP TABLE sweep_ranges;
ALTER TABLE sweeps ADD COLUMN cursor bigint NOT NULL DEFAULT 0, ADD COLUMN owner text NOT NULL DEFAULT '',
    ADD COLUMN heartbeat_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE sweeps DROP COLUMN rate, DROP COLUMN dataset_version, DROP COLUMN schedule, DROP COLUMN supersedes,
    DROP COLUMN planned, DROP COLUMN ranges, DROP COLUMN ranges_done, DROP COLUMN dirty, DROP COLUMN stuck;
DELETE FROM sweeps WHERE state = 'superseded';
ALTER TABLE sweeps DROP CONSTRAINT sweeps_state_check;
ALTER TABLE sweeps ADD CONSTRAINT sweeps_state_check CHECK (state IN ('running', 'paused', 'cancelled', 'done', 'failed'));
ALTER TABLE sweeps DROP CONSTRAINT sweeps_mode_check;
UPDATE sweeps SET mode = 'records';
ALTER TABLE sweeps ALTER COLUMN mode SET DEFAULT 'records';
ALTER TABLE sweeps ADD CONSTRAINT sweeps_mode_check CHECK (mode IN ('records'));
