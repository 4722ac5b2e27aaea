-- Mobile-money callbacks (M-Pesa C2B through Daraja) and the payments they bring that match no
-- device.
--
-- A financier has at most one M-Pesa endpoint: the callback URLs carry a random token, stored
-- here as its SHA-256 (the token itself is shown once, when it is created or rotated, as API
-- keys are). `allowed_sources` is a JSON array of networks (CIDR) the callbacks may come from;
-- an empty array allows any source.
CREATE TABLE mpesa_endpoints (
    financier_id    TEXT PRIMARY KEY REFERENCES financiers(id),
    token_hash      BYTEA NOT NULL UNIQUE,
    allowed_sources TEXT NOT NULL,
    created_us      BIGINT NOT NULL
);

-- A payment a provider confirmed whose account number matched none of the financier's devices
-- (or one that could not take it): kept until the financier assigns it to a device, so that no
-- confirmed money is lost. `provider_ref` is the provider's transaction id (M-Pesa's TransID),
-- unique per financier and provider, so a repeated callback adds nothing. `payer_hash` is a
-- keyed hash (HMAC) of the payer's phone number, never the number; names are not kept.
CREATE TABLE unmatched_payments (
    id                 TEXT PRIMARY KEY,
    financier_id       TEXT NOT NULL REFERENCES financiers(id),
    provider           TEXT NOT NULL,
    provider_ref       TEXT NOT NULL,
    account            TEXT NOT NULL,
    amount_minor       BIGINT NOT NULL,
    currency           TEXT NOT NULL,
    received_us        BIGINT NOT NULL,
    payer_hash         BYTEA,
    reason             TEXT NOT NULL,
    recorded_us        BIGINT NOT NULL,
    assigned_device_id TEXT REFERENCES devices(id),
    assigned_us        BIGINT,
    assigned_by        TEXT,
    UNIQUE (financier_id, provider, provider_ref)
);
CREATE INDEX unmatched_payments_by_financier ON unmatched_payments (financier_id, recorded_us);
