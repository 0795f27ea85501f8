-- Spans received over OTLP (issue 6). The table is partitioned by day of
-- start time: triad creates each day's partition before it writes to it
-- and retention drops whole partitions (no row-by-row deletes, no ILM).
-- Spans with a start time outside any day partition (a clock years off)
-- land in spans_default, which retention trims by row.
-- Resources (a service's attributes: service.name, sdk, host, process)
-- repeat on every span of a process, so they are stored once, by hash.
-- +goose Up
CREATE TABLE span_resources (
    id         bigint      PRIMARY KEY, -- a hash of the attributes
    service    text        NOT NULL,
    attributes jsonb       NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE spans (
    trace_id       bytea       NOT NULL CHECK (length(trace_id) = 16),
    span_id        bytea       NOT NULL CHECK (length(span_id) = 8),
    parent_span_id bytea, -- null: a root
    start_time     timestamptz NOT NULL, -- the partition key (microseconds)
    start_ns       bigint      NOT NULL, -- exact, Unix nanoseconds
    duration_ns    bigint      NOT NULL,
    service        text        NOT NULL,
    name           text        NOT NULL,
    kind           smallint    NOT NULL,
    status_code    smallint    NOT NULL,
    status_message text,
    resource_id    bigint      NOT NULL,
    scope_name     text,
    scope_version  text,
    trace_state    text,
    flags          bigint      NOT NULL DEFAULT 0,
    attributes     jsonb,
    events         jsonb,
    links          jsonb,
    dropped        integer[] -- attributes, events, links the sender dropped
) PARTITION BY RANGE (start_time);
CREATE TABLE spans_default PARTITION OF spans DEFAULT;
CREATE INDEX spans_trace ON spans (trace_id);
CREATE INDEX spans_service_time ON spans (service, start_time);
CREATE INDEX spans_time ON spans (start_time);

-- +goose Down
DROP TABLE spans;
DROP TABLE span_resources;
