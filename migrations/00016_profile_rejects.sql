-- Profiles a derived store refused for good (issue 16): Elasticsearch's
-- 400 for a document outside its mapping's limits, say. Such a write is
-- never retried (it would fail the same way) and never marks the store
-- down; the record waits here, with the store's reason (its error type and
-- field, never the value), until a newer version is written or an operator
-- clears it.
-- +goose Up
CREATE TABLE profile_rejects (
    store       text        NOT NULL,
    user_id     bigint      NOT NULL,
    version     bigint      NOT NULL,
    reason      text        NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store, user_id)
);

-- +goose Down
DROP TABLE profile_rejects;
