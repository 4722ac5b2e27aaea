-- Appeals (issue 6), SQLite dialect. A borrower opens one without an account and follows it by
-- its reference, which is random and unguessable. The uploaded document is a file under the
-- data directory; the row keeps where it is, its type, size and SHA-256.

CREATE TABLE appeals (
    reference         TEXT PRIMARY KEY,
    device_id         TEXT NOT NULL REFERENCES devices(id),
    financier_id      TEXT NOT NULL REFERENCES financiers(id),
    claim             TEXT NOT NULL,
    contact           TEXT NOT NULL,
    statement         TEXT NOT NULL,
    payment_reference TEXT,
    paid_on           TEXT,
    amount_minor      INTEGER,
    currency          TEXT,
    status            TEXT NOT NULL,
    opened_us         INTEGER NOT NULL,
    deadline_us       INTEGER NOT NULL,
    unlock_until_us   INTEGER,
    decided_us        INTEGER,
    decided_by        TEXT,
    decision_reason   TEXT,
    file_path         TEXT,
    file_type         TEXT,
    file_size         INTEGER,
    file_sha256       BLOB
);
CREATE INDEX appeals_financier ON appeals (financier_id, opened_us);
-- One open appeal per device at a time: the index refuses a second.
CREATE UNIQUE INDEX appeals_one_open ON appeals (device_id) WHERE status = 'open';

-- The public IMEI check finds released devices, whose device_imeis rows are gone.
CREATE INDEX devices_imei1 ON devices (imei1);
CREATE INDEX devices_imei2 ON devices (imei2);
