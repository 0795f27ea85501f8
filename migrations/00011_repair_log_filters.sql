-- Indexes for the repair log's filters, so a filtered page of a log of
-- millions of entries is an index range, not a scan (docs/BENCHMARKS.md,
-- the repair-log page): by key alone (the dashboard's key filter has no
-- entity), by outcome and by class, each newest first. Built concurrently:
-- writers to the log are not blocked while a large log is indexed.
-- +goose NO TRANSACTION
-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS repair_log_key ON repair_log (key, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS repair_log_outcome ON repair_log (outcome, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS repair_log_class ON repair_log (class, id);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS repair_log_class;
DROP INDEX CONCURRENTLY IF EXISTS repair_log_outcome;
DROP INDEX CONCURRENTLY IF EXISTS repair_log_key;
