-- Sweeps: whole-entity comparisons, their progress (a cursor over the key
-- space, so a sweep whose runner died resumes where it stopped), the keys
-- the first pass suspected (rechecked at the end) and what was confirmed.
-- +goose Up
CREATE TABLE sweeps (
    id           bigserial   PRIMARY KEY,
    entity       text        NOT NULL,
    mode         text        NOT NULL DEFAULT 'records' CHECK (mode IN ('records')),
    state        text        NOT NULL CHECK (state IN ('running', 'paused', 'cancelled', 'done', 'failed')),
    repair       boolean     NOT NULL DEFAULT false,
    dry_run      boolean     NOT NULL DEFAULT false,
    segment_size integer     NOT NULL CHECK (segment_size > 0),
    trigger      text        NOT NULL,
    actor        text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    -- The upper key bound of the last finished segment.
    cursor       bigint      NOT NULL DEFAULT 0,
    segments     integer     NOT NULL DEFAULT 0,
    records      bigint      NOT NULL DEFAULT 0,
    suspects     integer     NOT NULL DEFAULT 0,
    in_flight    integer     NOT NULL DEFAULT 0,
    findings     integer     NOT NULL DEFAULT 0,
    repaired     integer     NOT NULL DEFAULT 0,
    repair_run   bigint,
    owner        text        NOT NULL,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    error        text
);
CREATE INDEX sweeps_active ON sweeps (state) WHERE state IN ('running', 'paused');

CREATE TABLE sweep_suspects (
    sweep_id        bigint  NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    key             bigint  NOT NULL,
    primary_present boolean NOT NULL,
    primary_deleted boolean NOT NULL,
    primary_version bigint  NOT NULL,
    PRIMARY KEY (sweep_id, key)
);

CREATE TABLE sweep_findings (
    sweep_id bigint      NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    key      text        NOT NULL,
    store    text        NOT NULL,
    class    text        NOT NULL,
    found_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sweep_id, key, store)
);

-- +goose Down
DROP TABLE sweep_findings;
DROP TABLE sweep_suspects;
DROP TABLE sweeps;
