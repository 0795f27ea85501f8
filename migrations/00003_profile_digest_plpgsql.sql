-- The same digest version 1, computed about 2.5 times faster: the canonical
-- document is concatenated from the fields' jsonb text in jsonb key order
-- (the bytes jsonb_build_object(...)::text produced), in PL/pgSQL, whose
-- expression fast path is cheaper per row than the SQL-function executor a
-- generated column goes through. Measured with \copy of 200k loadgen rows:
-- no digest 2.9 s, 00002's function 8.5 s, this one 5.2 s; the digests of
-- all 200k rows were identical. Stored digests do not change.
-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION triad_profile_digest_v1(
    user_id bigint, version bigint, updated_at timestamptz,
    tags jsonb, interests jsonb, devices jsonb, behavior jsonb, props jsonb)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    RETURN ('x' || left(encode(sha256(convert_to(
        '{"tags": ' || tags::text ||
        ', "props": ' || props::text ||
        ', "devices": ' || devices::text ||
        ', "user_id": ' || user_id ||
        ', "version": ' || version ||
        ', "behavior": ' || behavior::text ||
        ', "interests": ' || interests::text ||
        ', "updated_at": ' || coalesce(((extract(epoch FROM updated_at) * 1000000)::bigint)::text, 'null') ||
        '}', 'UTF8')), 'hex'), 16))::bit(64)::bigint;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION triad_profile_digest_v1(
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
-- +goose StatementEnd
