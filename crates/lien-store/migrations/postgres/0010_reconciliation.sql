-- Payment providers other than M-Pesa (a bank, another mobile-money operator) that call Lien
-- with payments signed per Standard Webhooks, and the message ids they have used.
--
-- A financier names each of its providers; the name is the provider's in unmatched payments and
-- in idempotency keys (`<name>:<reference>`). The signing secret is not stored: it is derived
-- from the server's root key, the provider's id and `secret_salt` (random, replaced to rotate),
-- so that a copy of the database signs nothing.
CREATE TABLE payment_providers (
    id           TEXT PRIMARY KEY,
    financier_id TEXT NOT NULL REFERENCES financiers(id),
    name         TEXT NOT NULL,
    secret_salt  BYTEA NOT NULL,
    created_us   BIGINT NOT NULL,
    UNIQUE (financier_id, name)
);

-- The `webhook-id`s a provider's accepted messages carried, kept while a message with that id
-- could still be inside the timestamp tolerance, so that a replay is refused. `message_us` is
-- the message's own `webhook-timestamp`; rows far older than the tolerance are deleted as new
-- ones arrive.
CREATE TABLE webhook_messages (
    provider_id TEXT NOT NULL REFERENCES payment_providers(id),
    webhook_id  TEXT NOT NULL,
    message_us  BIGINT NOT NULL,
    PRIMARY KEY (provider_id, webhook_id)
);

-- Payments are matched to a provider's statement by reference within the financier's devices.
CREATE INDEX payments_by_reference ON payments (reference);
