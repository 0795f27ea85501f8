-- The repair log: every repair a run planned or made, per record and store,
-- with the state before and after. A repeated repair of the same drift (the
-- same record, store, class, action and before/after state, in a real or a
-- dry run) is one entry whose attempts count goes up (dedupe_key).
-- +goose Up
CREATE TABLE repair_runs (
    id          bigserial   PRIMARY KEY,
    trigger     text        NOT NULL CHECK (trigger IN ('schedule', 'api', 'ui', 'cli')),
    actor       text        NOT NULL,
    entity      text        NOT NULL,
    dry_run     boolean     NOT NULL DEFAULT false,
    budget      integer     CHECK (budget IS NULL OR budget >= 0),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    planned     integer     NOT NULL DEFAULT 0,
    repaired    integer     NOT NULL DEFAULT 0,
    noop        integer     NOT NULL DEFAULT 0,
    conflicts   integer     NOT NULL DEFAULT 0,
    failed      integer     NOT NULL DEFAULT 0,
    skipped     integer     NOT NULL DEFAULT 0,
    error       text
);
CREATE INDEX repair_runs_started ON repair_runs (started_at);

CREATE TABLE repair_log (
    id             bigserial   PRIMARY KEY,
    run_id         bigint      NOT NULL REFERENCES repair_runs (id) ON DELETE CASCADE,
    entity         text        NOT NULL,
    key            text        NOT NULL,
    store          text        NOT NULL,
    class          text        NOT NULL,
    action         text        NOT NULL CHECK (action IN ('write', 'delete', 'none')),
    priority       text        NOT NULL CHECK (priority IN ('high', 'medium', 'low')),
    before_version bigint,
    before_digest  bigint,
    after_version  bigint,
    after_digest   bigint,
    outcome        text        NOT NULL CHECK (outcome IN ('planned', 'repaired', 'noop', 'conflict', 'failed', 'skipped')),
    error          text,
    attempts       integer     NOT NULL DEFAULT 1,
    first_at       timestamptz NOT NULL DEFAULT now(),
    last_at        timestamptz NOT NULL DEFAULT now(),
    dedupe_key     text        NOT NULL UNIQUE
);
CREATE INDEX repair_log_record ON repair_log (entity, key, id);
CREATE INDEX repair_log_run ON repair_log (run_id, id);
CREATE INDEX repair_log_last_at ON repair_log (last_at);

-- +goose Down
DROP TABLE repair_log;
DROP TABLE repair_runs;
