-- The trace of each profile's last write through triad, so drift can be
-- followed to the write that produced it, and a trace to the records it
-- wrote.
--   profiles.write_trace: the trace ID of the ingest batch that wrote the
--     row; write_digest: the row's digest as that write left it. Another
--     writer that changes the row leaves write_trace behind but changes
--     the digest, so a trace is claimed only while digest = write_digest.
--   profile_write_traces: one row per traced batch, the users and versions
--     it wrote (trace → records), dropped with the spans' retention.
--   repair_log.write_trace: the primary's write trace when the entry was
--     made.
-- +goose Up
ALTER TABLE profiles ADD COLUMN write_trace bytea, ADD COLUMN write_digest bigint;

CREATE TABLE profile_write_traces (
    trace_id   bytea       NOT NULL,
    span_id    bytea       NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    user_ids   bigint[]    NOT NULL,
    versions   bigint[]    NOT NULL
);
CREATE INDEX profile_write_traces_trace ON profile_write_traces (trace_id);
CREATE INDEX profile_write_traces_written ON profile_write_traces (written_at);

ALTER TABLE repair_log ADD COLUMN write_trace bytea;

-- +goose Down
ALTER TABLE repair_log DROP COLUMN write_trace;
DROP TABLE profile_write_traces;
ALTER TABLE profiles DROP COLUMN write_trace, DROP COLUMN write_digest;
