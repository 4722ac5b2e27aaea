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
-- Locks and unlocks by day: the tokens issued in a period.
CREATE INDEX tokens_by_issued ON tokens (issued_us);
