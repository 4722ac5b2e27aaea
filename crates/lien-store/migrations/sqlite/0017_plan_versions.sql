-- Earlier installment plans (issue 20): a restructuring replaces the plan on the device's row
-- and keeps the plan it replaced here, with when, by whom and why, so the device's history
-- shows every schedule it was held to. Written only with the change that replaced the plan.
CREATE TABLE plan_versions (
    device_id     TEXT NOT NULL REFERENCES devices(id),
    version       INTEGER NOT NULL,
    plan_json     TEXT NOT NULL,
    superseded_us INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    reason        TEXT NOT NULL,
    PRIMARY KEY (device_id, version)
);
