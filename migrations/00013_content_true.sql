-- Content-true consistency (issue 15):
-- * every run that touched a repair-log entry is kept (a repeated repair
--   stays one entry with its attempts, and filtering by run shows it);
-- * entries name the fields that differed and why a corrupt copy is not a
--   valid record;
-- * sweeps may run in the label-only quick mode, say whether their figures
--   are content-true, and carry the index checkpoint they verify from;
-- * the index checkpoint each entity's last clean content-true sweep
--   proved (documents not written since are unchanged);
-- * a range that failed for a store reason backs off and shows its error.
-- +goose Up
CREATE TABLE repair_log_runs (
    entry_id bigint NOT NULL REFERENCES repair_log (id) ON DELETE CASCADE,
    run_id   bigint NOT NULL,
    PRIMARY KEY (entry_id, run_id)
);
CREATE INDEX repair_log_runs_run ON repair_log_runs (run_id, entry_id);
INSERT INTO repair_log_runs (entry_id, run_id) SELECT id, run_id FROM repair_log;

-- run_id stays the entry's first run; last_run_id is the latest.
ALTER TABLE repair_log ADD COLUMN fields text[], ADD COLUMN observed text, ADD COLUMN last_run_id bigint;

ALTER TABLE sweeps DROP CONSTRAINT sweeps_mode_check;
ALTER TABLE sweeps ADD CONSTRAINT sweeps_mode_check CHECK (mode IN ('records', 'digest', 'auto', 'labels'));
ALTER TABLE sweeps ADD COLUMN content_true boolean NOT NULL DEFAULT true,
    ADD COLUMN checkpoint jsonb;
-- Sweeps before this migration compared stored labels only.
UPDATE sweeps SET content_true = false;

CREATE TABLE sweep_checkpoints (
    entity      text        NOT NULL,
    store       text        NOT NULL,
    index_name  text        NOT NULL,
    index_uuid  text        NOT NULL,
    seq_no      bigint      NOT NULL,
    sweep_id    bigint      NOT NULL,
    verified_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (entity, store)
);

ALTER TABLE sweep_ranges ADD COLUMN last_error text, ADD COLUMN retry_at timestamptz, ADD COLUMN failures integer NOT NULL DEFAULT 0;

-- Repairs the read path queues for values it could not decode.
ALTER TABLE repair_runs DROP CONSTRAINT repair_runs_trigger_check;
ALTER TABLE repair_runs ADD CONSTRAINT repair_runs_trigger_check CHECK (trigger IN ('schedule', 'api', 'ui', 'cli', 'read_path'));

-- +goose Down
ALTER TABLE repair_runs DROP CONSTRAINT repair_runs_trigger_check;
UPDATE repair_runs SET trigger = 'api' WHERE trigger = 'read_path';
ALTER TABLE repair_runs ADD CONSTRAINT repair_runs_trigger_check CHECK (trigger IN ('schedule', 'api', 'ui', 'cli'));
ALTER TABLE sweep_ranges DROP COLUMN last_error, DROP COLUMN retry_at, DROP COLUMN failures;
DROP TABLE sweep_checkpoints;
ALTER TABLE sweeps DROP COLUMN content_true, DROP COLUMN checkpoint;
DELETE FROM sweeps WHERE mode = 'labels';
ALTER TABLE sweeps DROP CONSTRAINT sweeps_mode_check;
ALTER TABLE sweeps ADD CONSTRAINT sweeps_mode_check CHECK (mode IN ('records', 'digest', 'auto'));
ALTER TABLE repair_log DROP COLUMN fields, DROP COLUMN observed, DROP COLUMN last_run_id;
DROP TABLE repair_log_runs;
