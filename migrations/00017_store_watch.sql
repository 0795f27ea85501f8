-- The Redis data-loss watch's last look (run_id and marker token), kept
-- where the next leader finds it: a restart or flush that happens while
-- leadership changes hands is judged against what the last leader saw,
-- not taken as the new leader's first look.
-- +goose Up
CREATE TABLE store_watch (
    store      text        PRIMARY KEY,
    run_id     text        NOT NULL,
    token      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE store_watch;
