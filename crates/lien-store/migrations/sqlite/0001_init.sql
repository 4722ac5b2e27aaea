-- Lien's first schema, SQLite dialect. Times are Unix microseconds (INTEGER, *_us),
-- money is integer minor units beside an ISO 4217 code.

CREATE TABLE financiers (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    contact      TEXT NOT NULL,
    payment_link TEXT,
    created_us   INTEGER NOT NULL
);

-- API keys are stored as the SHA-256 of the key; the key itself is shown once.
CREATE TABLE api_keys (
    key_hash     BLOB PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    financier_id TEXT REFERENCES financiers(id),
    label        TEXT NOT NULL,
    created_us   INTEGER NOT NULL
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
    enrolled_us        INTEGER NOT NULL,
    state              TEXT NOT NULL,
    decision_json      TEXT NOT NULL,
    amount_due_minor   INTEGER NOT NULL,
    currency           TEXT NOT NULL,
    next_eval_us       INTEGER,
    claimed_until_us   INTEGER,
    binding_generation INTEGER NOT NULL DEFAULT 0,
    device_key         BLOB,
    bound_us           INTEGER,
    token_sequence     INTEGER NOT NULL DEFAULT 0,
    token_state        TEXT,
    token_issued_us    INTEGER,
    token_lease_end_us INTEGER,
    token              BLOB,
    applied_sequence   INTEGER,
    last_seen_us       INTEGER,
    ocra_counter       INTEGER NOT NULL DEFAULT 0,
    released_us        INTEGER,
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
    amount_minor INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    received_us  INTEGER NOT NULL,
    recorded_us  INTEGER NOT NULL,
    PRIMARY KEY (device_id, reference)
);

CREATE TABLE reversals (
    device_id   TEXT NOT NULL REFERENCES devices(id),
    reference   TEXT NOT NULL,
    at_us       INTEGER NOT NULL,
    recorded_us INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (device_id, reference)
);

CREATE TABLE overrides (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    TEXT NOT NULL REFERENCES devices(id),
    kind         TEXT NOT NULL,
    reason       TEXT NOT NULL,
    from_us      INTEGER NOT NULL,
    until_us     INTEGER,
    cancelled_us INTEGER,
    actor        TEXT NOT NULL,
    created_us   INTEGER NOT NULL
);
CREATE INDEX overrides_device ON overrides (device_id);

-- Every token ever signed, so that support can look up the status code a phone shows.
CREATE TABLE tokens (
    device_id   TEXT NOT NULL REFERENCES devices(id),
    sequence    INTEGER NOT NULL,
    state       TEXT NOT NULL,
    issued_us   INTEGER NOT NULL,
    status_code TEXT NOT NULL,
    token       BLOB NOT NULL,
    PRIMARY KEY (device_id, sequence)
);
CREATE INDEX tokens_status_code ON tokens (status_code);

CREATE TABLE device_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL REFERENCES devices(id),
    at_us     INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL
);

-- Append-only; (chain, seq) as the key means two writers can never fork a chain.
CREATE TABLE audit (
    chain       TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    at_us       INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    before_json TEXT NOT NULL,
    after_json  TEXT NOT NULL,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL,
    PRIMARY KEY (chain, seq)
);

CREATE TABLE idempotency (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_us   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);
