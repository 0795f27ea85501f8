-- A webhook's secret can be rotated: the previous one keeps signing beside
-- the new one (two signatures per delivery) until previous_until, so
-- receivers switch over without a gap.
-- +goose Up
ALTER TABLE alert_webhooks ADD COLUMN previous_secret text, ADD COLUMN previous_until timestamptz;

-- +goose Down
ALTER TABLE alert_webhooks DROP COLUMN previous_secret, DROP COLUMN previous_until;
