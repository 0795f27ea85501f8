-- Reviewed repair plans: a dry run saved with an ID, reviewed, then applied
-- exactly (docs/checks.md). Each planned entry keeps the state it saw, so
-- the apply skips a record that changed since the review.
-- +goose Up
CREATE TABLE repair_plans (
    id          bigserial   PRIMARY KEY,
    entity      text        NOT NULL,
    -- what was planned: the IDs given, a sweep's findings or a repair-log filter
    source      text        NOT NULL,
    dry_run_id  bigint      REFERENCES repair_runs (id) ON DELETE SET NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    keys        integer     NOT NULL,
    entries     integer     NOT NULL,
    -- set once, when an apply claims the plan; applied_run when it ran
    applied_by  text,
    applied_at  timestamptz,
    applied_run bigint      REFERENCES repair_runs (id) ON DELETE SET NULL
);
CREATE INDEX repair_plans_created ON repair_plans (created_at);

CREATE TABLE repair_plan_entries (
    plan_id        bigint  NOT NULL REFERENCES repair_plans (id) ON DELETE CASCADE,
    seq            integer NOT NULL,
    key            text    NOT NULL,
    store          text    NOT NULL,
    class          text    NOT NULL,
    action         text    NOT NULL,
    priority       text    NOT NULL,
    before_version bigint,
    before_digest  bigint,
    before_bytes   integer,
    observed       text,
    after_version  bigint,
    after_digest   bigint,
    PRIMARY KEY (plan_id, seq)
);

-- +goose Down
DROP TABLE repair_plan_entries;
DROP TABLE repair_plans;
