-- The console's overview and filters: a financier's devices by state, in id order (the list's
-- paging), and its payments by when they were recorded (payments today).
CREATE INDEX devices_financier_state ON devices (financier_id, state, id);
CREATE INDEX payments_by_recorded ON payments (recorded_us);
