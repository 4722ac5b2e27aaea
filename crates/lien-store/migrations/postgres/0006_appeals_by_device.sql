-- Opening an appeal reads the device's latest appeal (is one open? was the last one rejected
-- within the cool-down?); this index serves that read and the appeal list filtered by device.
CREATE INDEX appeals_device ON appeals (device_id, opened_us);
