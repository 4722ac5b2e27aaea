-- Webhook deliveries for production: claims with a holder, pruning, and the per-endpoint cap.
--
-- `claimed_by` names the delivery pass that holds the claim; an outcome is recorded only by
-- the holder, so a pass whose claim ran out and was taken over by another server cannot
-- overwrite what that server recorded.
ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT;

-- How many deliveries of an endpoint are claimed (its attempts in flight), counted at every
-- claim so that one hanging receiver holds only a few of a server's attempts.
CREATE INDEX webhook_deliveries_in_flight
    ON webhook_deliveries (endpoint_id, status, claimed_until_us);

-- Pruning deletes an event's deliveries with the event, and takes old events oldest first.
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id);
CREATE INDEX outbox_by_age ON outbox (created_us);
