-- Profiles (the source of truth), their content digest computed by Postgres
-- itself, and the catch-up queue of derived-store writes that failed.
-- +goose Up
-- triad_profile_digest_v1 is digest version 1 (ingest/profile.go): the first
-- 8 bytes of SHA-256 over the jsonb text of the canonical document, as a
-- big-endian signed bigint. jsonb prints keys sorted by length then bytewise,
-- which is the order triad's Go encoder writes. Rows written by any service,
-- not only triad, get the same digest triad computes.
CREATE FUNCTION triad_profile_digest_v1(
    user_id bigint, version bigint, updated_at timestamptz,
    tags jsonb, interests jsonb, devices jsonb, behavior jsonb, props jsonb)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ('x' || left(encode(sha256(convert_to(jsonb_build_object(
        'user_id', user_id,
        'version', version,
        'updated_at', (extract(epoch FROM updated_at) * 1000000)::bigint,
        'tags', tags,
        'interests', interests,
        'devices', devices,
        'behavior', behavior,
        'props', props)::text, 'UTF8')), 'hex'), 16))::bit(64)::bigint;

CREATE TABLE profiles (
    user_id    bigint      PRIMARY KEY CHECK (user_id > 0),
    -- A write applies only when its version is newer (ingest/postgres).
    version    bigint      NOT NULL CHECK (version > 0),
    updated_at timestamptz,
    -- A tombstone keeps its version so an older, late write cannot bring
    -- the profile back; purged deleted_at + retention later.
    deleted    boolean     NOT NULL DEFAULT false,
    deleted_at timestamptz,
    tags       jsonb       NOT NULL DEFAULT '[]',
    interests  jsonb       NOT NULL DEFAULT '{}',
    devices    jsonb       NOT NULL DEFAULT '[]',
    behavior   jsonb       NOT NULL DEFAULT '[]',
    props      jsonb       NOT NULL DEFAULT '{}',
    digest     bigint      GENERATED ALWAYS AS (triad_profile_digest_v1(
                   user_id, version, updated_at, tags, interests, devices, behavior, props)) STORED
);
CREATE INDEX profiles_tombstones ON profiles (deleted_at) WHERE deleted;

-- What other services should read: live profiles only.
CREATE VIEW profiles_live AS
    SELECT user_id, version, updated_at, tags, interests, devices, behavior, props, digest
    FROM profiles WHERE NOT deleted;

-- Derived-store writes that still failed after retries. The replayer re-reads
-- the profile from Postgres (the current truth) and writes that, so one row
-- per store and user is enough; version is the newest that failed.
CREATE TABLE profile_catchup (
    store           text        NOT NULL CHECK (store IN ('redis', 'elasticsearch')),
    user_id         bigint      NOT NULL,
    version         bigint      NOT NULL,
    attempts        integer     NOT NULL DEFAULT 1,
    last_error      text        NOT NULL,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store, user_id)
);

-- +goose Down
DROP TABLE profile_catchup;
DROP VIEW profiles_live;
DROP TABLE profiles;
DROP FUNCTION triad_profile_digest_v1;
