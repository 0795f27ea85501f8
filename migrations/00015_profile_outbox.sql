-- The outbox of the profile pipeline (issue 16): the Postgres upsert of a
-- batch records, in its own statement and so its own transaction, which
-- derived writes it owes (Redis, Elasticsearch, the archive). The writer
-- deletes the entry once every write reached its store or the catch-up
-- log; an entry left behind by a writer that crashed is moved to the
-- catch-up log by any running triad after ingest.outbox_grace.
-- +goose Up
CREATE TABLE profile_outbox (
    id         bigserial   PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    stores     text[]      NOT NULL,
    user_ids   bigint[]    NOT NULL,
    versions   bigint[]    NOT NULL
);
-- The archive is owed writes too: a failed append is recorded per row.
ALTER TABLE profile_catchup DROP CONSTRAINT profile_catchup_store_check,
    ADD CONSTRAINT profile_catchup_store_check CHECK (store IN ('redis', 'elasticsearch', 'archive'));

-- +goose Down
DELETE FROM profile_catchup WHERE store = 'archive';
ALTER TABLE profile_catchup DROP CONSTRAINT profile_catchup_store_check,
    ADD CONSTRAINT profile_catchup_store_check CHECK (store IN ('redis', 'elasticsearch'));
DROP TABLE profile_outbox;
