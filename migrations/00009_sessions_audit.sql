-- Dashboard sessions and the audit log of mutations.
-- +goose Up
-- A session is a login to the dashboard with a token: the browser holds a
-- random cookie value, only its SHA-256 is stored. It ends at expires_at,
-- at logout, or when the token that opened it is revoked or expires
-- (token_id NULL: opened with the bootstrap admin token).
CREATE TABLE ui_sessions (
    id_hash      bytea       PRIMARY KEY,
    token_id     bigint      REFERENCES api_tokens (id) ON DELETE CASCADE,
    name         text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    -- The anti-CSRF token every mutation made with this session must echo
    -- in the X-CSRF-Token header.
    csrf         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at);

-- One row per mutating API request (whatever its outcome), written after
-- the handler answered.
CREATE TABLE audit_log (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text        NOT NULL,
    token_id   bigint,
    role       text        NOT NULL,
    via        text        NOT NULL CHECK (via IN ('token', 'session', 'none')),
    method     text        NOT NULL,
    route      text        NOT NULL,
    path       text        NOT NULL,
    status     integer     NOT NULL,
    request_id text        NOT NULL,
    remote     text        NOT NULL
);
CREATE INDEX audit_log_id ON audit_log (id DESC);
CREATE INDEX audit_log_actor ON audit_log (actor, id DESC);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE ui_sessions;
