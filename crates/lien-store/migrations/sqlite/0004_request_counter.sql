-- The highest request counter a phone's check-ins and push requests carried under its current
-- binding. A request whose counter is not above it is a replay and is refused; a new binding
-- (hello) starts the count again, since its credential is new.
ALTER TABLE devices ADD COLUMN checkin_counter INTEGER NOT NULL DEFAULT 0;
