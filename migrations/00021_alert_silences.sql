-- Silences: alerts whose labels match are not notified while a silence is
-- active (starts_at <= now < ends_at). Expired silences are kept and
-- listed; expire_noticed_at is when the leader noticed the expiry (once).
-- +goose Up
CREATE TABLE alert_silences (
    id                bigserial   PRIMARY KEY,
    matchers          jsonb       NOT NULL,
    comment           text        NOT NULL,
    created_by        text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    starts_at         timestamptz NOT NULL,
    ends_at           timestamptz NOT NULL CHECK (ends_at > starts_at),
    expired_by        text,
    expire_noticed_at timestamptz
);
CREATE INDEX alert_silences_ends ON alert_silences (ends_at);

-- +goose Down
DROP TABLE alert_silences;
