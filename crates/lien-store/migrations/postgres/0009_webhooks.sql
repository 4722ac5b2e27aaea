-- Webhooks to financiers (Standard Webhooks): endpoints, the outbox, deliveries.
--
-- An endpoint's signing secret is kept in clear: the server must sign with it on every delivery
-- (HMAC needs the key itself), so unlike API keys it cannot be kept as a hash. It is shown to the
-- financier once, when the endpoint is made or the secret rotated. During a rotation the previous
-- secret signs too, until `previous_secret_until_us`. `event_types` is a space-separated list of
-- the event types sent there; empty for every type. An endpoint answered with 410 Gone is disabled
-- (`disabled_us`) and gets nothing more.
CREATE TABLE webhook_endpoints (
    id                      TEXT PRIMARY KEY,
    financier_id            TEXT NOT NULL REFERENCES financiers(id),
    url                     TEXT NOT NULL,
    event_types             TEXT NOT NULL,
    secret                  TEXT NOT NULL,
    previous_secret         TEXT,
    previous_secret_until_us BIGINT,
    created_us              BIGINT NOT NULL,
    disabled_us             BIGINT,
    deleted_us              BIGINT
);
CREATE INDEX webhook_endpoints_by_financier ON webhook_endpoints (financier_id);

-- Events, written in the transaction of the change they describe, so that a committed change
-- always has its events and a change rolled back has none. `seq` orders them as they were
-- committed; `sequence` is the device's version after the change (NULL for an event about no
-- device). `fanned_out` is set once the event's deliveries are made for the endpoints that
-- want it.
CREATE TABLE outbox (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    financier_id TEXT NOT NULL,
    device_id    TEXT,
    sequence     BIGINT,
    event_type   TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_us   BIGINT NOT NULL,
    fanned_out   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX outbox_to_fan_out ON outbox (fanned_out, seq);

-- One event to one endpoint. `status` is pending, delivered or failed (given up);
-- `claimed_until_us` is a delivering server's claim, so that several servers deliver each event
-- once. `device_id` and `seq` are the event's, so that a device's events go out in order.
CREATE TABLE webhook_deliveries (
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id),
    event_id         TEXT NOT NULL REFERENCES outbox(id),
    seq              BIGINT NOT NULL,
    device_id        TEXT,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_us  BIGINT NOT NULL,
    claimed_until_us BIGINT NOT NULL DEFAULT 0,
    last_attempt_us  BIGINT,
    last_status      BIGINT,
    last_error       TEXT,
    delivered_us     BIGINT,
    PRIMARY KEY (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_us);
CREATE INDEX webhook_deliveries_by_device ON webhook_deliveries (endpoint_id, device_id, seq);
