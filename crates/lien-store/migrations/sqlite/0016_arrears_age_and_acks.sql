-- How old a device's arrears are: the due date (YYYY-MM-DD, the plan's local date) of its
-- oldest late unpaid installment, for the console's arrears by age. Devices already in
-- arrears are re-evaluated at the scheduler's next pass, which records it: they fall due now
-- (the migration's time), not at the epoch, so the scheduler's lag stays true.
ALTER TABLE devices ADD COLUMN overdue_since TEXT;
UPDATE devices SET next_eval_us = CAST(strftime('%s', 'now') AS INTEGER) * 1000000
WHERE amount_due_minor > 0 AND released_us IS NULL
  AND (next_eval_us IS NULL OR next_eval_us > CAST(strftime('%s', 'now') AS INTEGER) * 1000000);
-- How fast a payment reached the phone: the token sequence the payment's change issued (none
-- when it left the phone's token as it was), and when the phone first reported holding that
-- token or a later one.
ALTER TABLE payments ADD COLUMN token_sequence INTEGER;
ALTER TABLE payments ADD COLUMN acked_us INTEGER;
-- Locks and unlocks by day: each change of the state a device's token carries, written with
-- the token, so that a day's counts read its changes only, not every token (lease renewals
-- outnumber them). The tokens already issued give the changes before this migration.
CREATE TABLE token_transitions (
    device_id    TEXT NOT NULL REFERENCES devices(id),
    financier_id TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    from_state   TEXT,
    to_state     TEXT NOT NULL,
    at_us        INTEGER NOT NULL,
    PRIMARY KEY (device_id, sequence)
);
CREATE INDEX token_transitions_by_financier ON token_transitions (financier_id, at_us);
CREATE INDEX token_transitions_by_time ON token_transitions (at_us);
INSERT INTO token_transitions (device_id, financier_id, sequence, from_state, to_state, at_us)
SELECT t.device_id, d.financier_id, t.sequence, b.state, t.state, t.issued_us
FROM tokens t
JOIN devices d ON d.id = t.device_id
LEFT JOIN tokens b ON b.device_id = t.device_id AND b.sequence = t.sequence - 1
WHERE b.state IS NULL OR b.state <> t.state;
-- The overview's arrears (what is owed, by age): only the devices in arrears, read from the
-- index alone rather than from every device's row.
CREATE INDEX devices_in_arrears ON devices (financier_id, currency, overdue_since, amount_due_minor, released_us)
WHERE amount_due_minor > 0 AND released_us IS NULL;
-- The device list filtered by policy, in id order (its paging), however rare the policy.
CREATE INDEX devices_financier_policy ON devices (financier_id, policy_json, id);
