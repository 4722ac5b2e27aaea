-- Lien's first schema, PostgreSQL dialect. Times are Unix microseconds (BIGINT, *_us),
-- money is integer minor units beside an ISO 4217 code.

CREATE TABLE financiers (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    contact      TEXT NOT NULL,
    payment_link TEXT,
    created_us   BIGINT NOT NULL
);

-- API keys are stored as the SHA-256 of the key; the key itself is shown once.
CREATE TABLE api_keys (
    key_hash     BYTEA PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    financier_id TEXT REFERENCES financiers(id),
    label        TEXT NOT NULL,
    created_us   BIGINT NOT NULL
);

CREATE TABLE devices (
    id                 TEXT PRIMARY KEY,
    financier_id       TEXT NOT NULL REFERENCES financiers(id),
    contract_ref       TEXT NOT NULL,
    imei1              TEXT NOT NULL,
    imei2              TEXT,
    serial             TEXT NOT NULL,
    model              TEXT NOT NULL,
    plan_json          TEXT NOT NULL,
    policy_json        TEXT NOT NULL,
    enrolled_us        BIGINT NOT NULL,
    state              TEXT NOT NULL,
    decision_json      TEXT NOT NULL,
    amount_due_minor   BIGINT NOT NULL,
    currency           TEXT NOT NULL,
    next_eval_us       BIGINT,
    claimed_until_us   BIGINT,
    binding_generation BIGINT NOT NULL DEFAULT 0,
    device_key         BYTEA,
    bound_us           BIGINT,
    token_sequence     BIGINT NOT NULL DEFAULT 0,
    token_state        TEXT,
    token_issued_us    BIGINT,
    token_lease_end_us BIGINT,
    token              BYTEA,
    applied_sequence   BIGINT,
    last_seen_us       BIGINT,
    ocra_counter       BIGINT NOT NULL DEFAULT 0,
    released_us        BIGINT,
    UNIQUE (financier_id, contract_ref)
);
CREATE INDEX devices_next_eval ON devices (next_eval_us) WHERE next_eval_us IS NOT NULL;
CREATE INDEX devices_financier ON devices (financier_id, id);

-- An IMEI has a row here while a financier holds a claim on the phone; the primary key is
-- what refuses a second financier, and the row goes when the release becomes final.
CREATE TABLE device_imeis (
    imei      TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id)
);

CREATE TABLE payments (
    device_id    TEXT NOT NULL REFERENCES devices(id),
    reference    TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    received_us  BIGINT NOT NULL,
    recorded_us  BIGINT NOT NULL,
    PRIMARY KEY (device_id, reference)
);

CREATE TABLE reversals (
    device_id   TEXT NOT NULL REFERENCES devices(id),
    reference   TEXT NOT NULL,
    at_us       BIGINT NOT NULL,
    recorded_us BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (device_id, reference)
);

CREATE TABLE overrides (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    TEXT NOT NULL REFERENCES devices(id),
    kind         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    from_us      BIGINT NOT NULL,
    until_us     BIGINT,
    cancelled_us BIGINT,
    actor        TEXT NOT NULL,
    created_us   BIGINT NOT NULL
);
CREATE INDEX overrides_device ON overrides (device_id);

-- Every token ever signed, so that support can look up the status code a phone shows.
CREATE TABLE tokens (
    device_id   TEXT NOT NULL REFERENCES devices(id),
    sequence    BIGINT NOT NULL,
    state       TEXT NOT NULL,
    issued_us   BIGINT NOT NULL,
    status_code TEXT NOT NULL,
    token       BYTEA NOT NULL,
    PRIMARY KEY (device_id, sequence)
);
CREATE INDEX tokens_status_code ON tokens (status_code);

CREATE TABLE device_events (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    at_us     BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL
);

-- Append-only; (chain, seq) as the key means two writers can never fork a chain.
CREATE TABLE audit (
    chain       TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    at_us       BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    before_json TEXT NOT NULL,
    after_json  TEXT NOT NULL,
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL,
    PRIMARY KEY (chain, seq)
);

CREATE TABLE idempotency (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    status       BIGINT NOT NULL,
    body         TEXT NOT NULL,
    created_us   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
