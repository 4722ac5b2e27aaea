-- Unmatched payments are listed newest first, a page at a time after the previous page's last
-- (recorded_us, id), for one financier or, for the platform's roles, for all; open ones (not
-- yet assigned) are what a financier works through. None is ever deleted: an assigned payment
-- is a money record, so the lists must stay cheap however many accumulate.
DROP INDEX unmatched_payments_by_financier;
CREATE INDEX unmatched_payments_by_financier ON unmatched_payments (financier_id, recorded_us, id);
CREATE INDEX unmatched_payments_open ON unmatched_payments (financier_id, recorded_us, id)
    WHERE assigned_device_id IS NULL;
CREATE INDEX unmatched_payments_by_time ON unmatched_payments (recorded_us, id);

-- A reconciliation reads a provider's payments of a period: its unmatched payments by the time
-- they were received, and the payments on the financier's devices received in it (joined to
-- their devices and idempotency keys), rather than every payment the financier ever had.
CREATE INDEX unmatched_payments_received ON unmatched_payments (financier_id, provider, received_us);
CREATE INDEX payments_by_received ON payments (received_us);
