-- Sweeps verified from an index checkpoint (issue 15): per derived store,
-- how many keys the walk found for primary rows (so counts can prove a
-- cache holds no orphan), and how the orphan search went.
-- +goose Up
ALTER TABLE sweeps ADD COLUMN present bigint[] NOT NULL DEFAULT '{}', ADD COLUMN orphan_scan text;

-- +goose Down
ALTER TABLE sweeps DROP COLUMN present, DROP COLUMN orphan_scan;
