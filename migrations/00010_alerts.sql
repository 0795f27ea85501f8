-- Alert webhooks: endpoints, the state of each alert (so a new leader
-- neither re-pages nor forgets what fired), and the delivery outbox that
-- is also the delivery log.
-- +goose Up
CREATE TABLE alert_webhooks (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    url        text        NOT NULL,
    format     text        NOT NULL CHECK (format IN ('alertmanager', 'json')),
    -- The HMAC-SHA256 key of the signature header; never shown after
    -- creation (receivers need it, so it is stored, not hashed).
    secret     text        NOT NULL,
    -- Rule names this endpoint receives; empty: every rule.
    rules      text[]      NOT NULL DEFAULT '{}',
    send_resolved boolean  NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text        NOT NULL
);

-- One row per alert instance (rule + labels). active_since: the condition
-- first held; fired_at: it held for the rule's "for" (NULL while pending);
-- resolved_at: it stopped holding (NULL while active).
CREATE TABLE alerts (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint  text        NOT NULL,
    rule         text        NOT NULL,
    labels       jsonb       NOT NULL,
    annotations  jsonb       NOT NULL,
    value        double precision NOT NULL,
    active_since timestamptz NOT NULL,
    fired_at     timestamptz,
    resolved_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- At most one active instance per fingerprint.
CREATE UNIQUE INDEX alerts_active ON alerts (fingerprint) WHERE resolved_at IS NULL;
CREATE INDEX alerts_recent ON alerts (id DESC);

CREATE TABLE alert_deliveries (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id   bigint      NOT NULL REFERENCES alert_webhooks (id) ON DELETE CASCADE,
    group_key    text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    -- A digest of the firing alerts sent (fingerprints and fire times): a
    -- group is sent again when it changes.
    firing_hash  text        NOT NULL,
    -- The same notification (endpoint, group, alert states, repeat slot)
    -- is enqueued once, whichever replica computes it.
    dedupe_key   text        NOT NULL UNIQUE,
    payload      bytea       NOT NULL,
    state        text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'expired')),
    attempts     integer     NOT NULL DEFAULT 0,
    next_at      timestamptz NOT NULL DEFAULT now(),
    last_status  integer,
    last_error   text,
    test         boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX alert_deliveries_webhook ON alert_deliveries (webhook_id, group_key, id DESC);

-- +goose Down
DROP TABLE alert_deliveries;
DROP TABLE alerts;
DROP TABLE alert_webhooks;
