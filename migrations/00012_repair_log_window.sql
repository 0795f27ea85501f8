-- The repair log's time windows are paged by (last_at, id), newest first
-- (repair/postgres List): this index serves them and the retention purge,
-- and replaces the one on last_at alone. Built concurrently.
-- +goose NO TRANSACTION
-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS repair_log_last_at_id ON repair_log (last_at, id);
DROP INDEX CONCURRENTLY IF EXISTS repair_log_last_at;

-- +goose Down
CREATE INDEX CONCURRENTLY IF NOT EXISTS repair_log_last_at ON repair_log (last_at);
DROP INDEX CONCURRENTLY IF EXISTS repair_log_last_at_id;
