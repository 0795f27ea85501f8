-- Orders: the second entity the consistency engine checks (repair.entities
-- lists it by default; `triad loadgen --entity order` writes it). Its Redis
-- copy is a JSON string (order:{id}) and its index is `orders`; triad
-- computes its digest from the row (repair/table.go), keeping the engine
-- free of profile-specific code.
-- +goose Up
CREATE TABLE orders (
    order_id    bigint      PRIMARY KEY CHECK (order_id > 0),
    version     bigint      NOT NULL CHECK (version > 0),
    user_id     bigint      NOT NULL,
    status      text        NOT NULL,
    total_cents bigint      NOT NULL,
    currency    text        NOT NULL,
    items       jsonb       NOT NULL DEFAULT '[]',
    updated_at  timestamptz NOT NULL,
    deleted     boolean     NOT NULL DEFAULT false
);
CREATE INDEX orders_user ON orders (user_id);

-- +goose Down
DROP TABLE orders;
