-- How many times each device's row was written. The scheduler decides a group of devices on
-- snapshots read outside the write transaction, then writes each decision only if the device's
-- version is still the one it read: any write in between (a payment, an override) moves it.
ALTER TABLE devices ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
