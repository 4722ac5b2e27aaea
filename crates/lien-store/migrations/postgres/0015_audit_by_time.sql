-- The console's activity report: a financier's audit records in a period, read in the order
-- of (time, chain, place in the chain), a page at a time.
CREATE INDEX audit_by_time ON audit (at_us, chain, seq);
