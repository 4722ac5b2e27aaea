//! Webhooks to financiers: their endpoints, the outbox of events and the deliveries.
//!
//! An event is written to the outbox by the transaction of the change it describes (the
//! `outbox` of a [`crate::DeviceChange`], or an unmatched payment's), so a committed change
//! always has its events and a rolled-back one has none: a crash can neither lose an event nor
//! invent one. Delivery is later and apart: [`Webhooks::fan_out_events`] makes one delivery per
//! event and endpoint that wants it, and [`Webhooks::claim_deliveries`] hands due deliveries to
//! one server at a time (a claim with an expiry, so a server that dies mid-delivery only delays
//! the event). A device's deliveries to an endpoint are claimed one at a time, oldest first, so
//! its events arrive in order; a retry holds back the device's later events, not other devices'.
//!
//! A claim names its holder, and only the holder's outcome is recorded: a server whose claim
//! ran out and was taken over by another cannot overwrite what the other recorded. An endpoint
//! has at most a few deliveries claimed at once ([`Claim::per_endpoint`]), so a receiver that
//! hangs holds that many of a server's attempts, not all of them; and a financier's endpoints
//! together at most [`Claim::per_financier`], so one financier with many hanging endpoints
//! cannot take every attempt either.

use async_trait::async_trait;

use crate::{AuditEntry, StoreError};

/// An event to write with a change, in the change's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Stable id, `msg_` and hex: the `webhook-id` every delivery of it carries.
    pub id: String,
    /// Its type, e.g. `payment.applied`.
    pub event_type: String,
    /// The event's data, as JSON.
    pub payload: String,
    /// When it happened, Unix microseconds.
    pub created_us: i64,
}

/// An event as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The event.
    pub event: OutboxEvent,
    /// The financier it is for.
    pub financier_id: String,
    /// The device it is about, if any.
    pub device_id: Option<String>,
    /// The device's version after the change that wrote the event (every device write moves
    /// it by one), so a receiver can order a device's events; `None` for no device.
    pub sequence: Option<i64>,
}

/// A financier's webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpointRecord {
    /// Stable id, `whe_` and hex.
    pub id: String,
    /// Its owner.
    pub financier_id: String,
    /// Where events are posted.
    pub url: String,
    /// The event types sent there; empty for all.
    pub event_types: Vec<String>,
    /// The signing secret, `whsec_` and base64: kept in clear, as signing needs it.
    pub secret: String,
    /// The secret before the last rotation, which signs too until `previous_secret_until_us`.
    pub previous_secret: Option<String>,
    /// When the previous secret stops signing.
    pub previous_secret_until_us: Option<i64>,
    /// When it was created, Unix microseconds.
    pub created_us: i64,
    /// When it was disabled (the receiver answered 410 Gone).
    pub disabled_us: Option<i64>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Still to be made, or to be tried again.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: retries ran out, or the endpoint is gone.
    Failed,
}

impl DeliveryStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// The status with this stored name.
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One event to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The endpoint.
    pub endpoint_id: String,
    /// The event.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// When it is next tried (pending only).
    pub next_attempt_us: i64,
    /// When it was last tried.
    pub last_attempt_us: Option<i64>,
    /// The HTTP status of the last answer, if one came.
    pub last_status: Option<i64>,
    /// Why the last attempt failed, in words, if it did.
    pub last_error: Option<String>,
    /// When the receiver took it.
    pub delivered_us: Option<i64>,
}

/// A delivery claimed by this server: the event and the endpoint to send it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The event.
    pub event: StoredEvent,
    /// The endpoint.
    pub endpoint: WebhookEndpointRecord,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// A request for due deliveries (see [`Webhooks::claim_deliveries`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    /// Now, Unix microseconds: deliveries due by then, and claims that ran out by then.
    pub now_us: i64,
    /// When the claims run out.
    pub until_us: i64,
    /// How many deliveries at most.
    pub limit: u32,
    /// How many deliveries of one endpoint may be claimed at once, counting those still
    /// claimed from before.
    pub per_endpoint: u32,
    /// How many deliveries to one financier's endpoints may be claimed at once, counting those
    /// still claimed from before.
    pub per_financier: u32,
    /// Who claims: only this holder's outcome is recorded (see [`Webhooks::finish_delivery`]).
    pub holder: &'a str,
}

/// What came of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Delivered, with the receiver's status.
    Delivered(u16),
    /// Failed; tried again at `next_attempt_us`, or given up on when `None`.
    Failed {
        /// The receiver's status, if it answered.
        status: Option<u16>,
        /// Why, in words.
        error: String,
        /// When to try again; `None` gives up.
        next_attempt_us: Option<i64>,
    },
    /// The receiver answered 410 Gone: the endpoint is disabled, its deliveries given up.
    Gone,
}

/// Webhook endpoints, the outbox and deliveries.
#[async_trait]
pub trait Webhooks: Send + Sync {
    /// Stores a new endpoint, audited in `chain`, unless its financier has `max` endpoints
    /// (not deleted) already: then [`StoreError::Conflict`]. The count and the insert are one
    /// transaction, under a lock of the financier's row on PostgreSQL, so concurrent creations
    /// cannot pass the cap together.
    async fn create_webhook_endpoint(
        &self,
        endpoint: &WebhookEndpointRecord,
        max: usize,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// Changes an endpoint's URL and event types and enables it again (after a 410 Gone),
    /// audited in `chain`; returns it as it now stands.
    async fn update_webhook_endpoint(
        &self,
        id: &str,
        url: &str,
        event_types: &[String],
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<WebhookEndpointRecord, StoreError>;
    /// One endpoint (not deleted).
    async fn webhook_endpoint(&self, id: &str) -> Result<WebhookEndpointRecord, StoreError>;
    /// The financier's endpoints (not deleted), oldest first.
    async fn webhook_endpoints(
        &self,
        financier_id: &str,
    ) -> Result<Vec<WebhookEndpointRecord>, StoreError>;
    /// Deletes an endpoint, audited in `chain`: nothing more is sent there, its secrets are
    /// wiped; its log stays until it is pruned.
    async fn delete_webhook_endpoint(
        &self,
        id: &str,
        at_us: i64,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// Replaces the endpoint's secret, audited in `chain`; the old one signs too until
    /// `previous_until_us`.
    async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret: &str,
        previous_until_us: i64,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<WebhookEndpointRecord, StoreError>;
    /// Makes the deliveries of up to `limit` events not yet fanned out, oldest first, one per
    /// endpoint of the event's financier that wants its type; returns how many events.
    async fn fan_out_events(&self, limit: u32) -> Result<usize, StoreError>;
    /// Claims up to `claim.limit` deliveries due at `claim.now_us` for `claim.holder`:
    /// pending, of an endpoint neither disabled nor deleted, unclaimed (or their claim ran
    /// out), the oldest pending one of their device at their endpoint, and no more per
    /// endpoint than `claim.per_endpoint`, nor per financier than `claim.per_financier`, with
    /// those still claimed.
    async fn claim_deliveries(&self, claim: Claim<'_>) -> Result<Vec<ClaimedDelivery>, StoreError>;
    /// Records an attempt's outcome and ends the claim, if `holder` still holds it; returns
    /// whether it did. A holder whose claim was taken over records nothing.
    async fn finish_delivery(
        &self,
        endpoint_id: &str,
        event_id: &str,
        holder: &str,
        at_us: i64,
        outcome: &AttemptOutcome,
    ) -> Result<bool, StoreError>;
    /// Housekeeping, in one transaction of at most `limit` events: forgets the previous
    /// secrets whose overlap ended by `now_us`, and deletes events created before
    /// `before_us` with their deliveries, unless one of those is still pending at an endpoint
    /// that can take it. Returns how many events were deleted.
    async fn prune_webhooks(
        &self,
        now_us: i64,
        before_us: i64,
        limit: u32,
    ) -> Result<usize, StoreError>;
    /// The endpoint's deliveries, newest first, at most `limit`.
    async fn webhook_deliveries(
        &self,
        endpoint_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// Sends an event to the endpoint again, at `now_us`, whatever became of it; refused with
    /// [`StoreError::Conflict`] while an attempt holds it (see [`Webhooks::claim_deliveries`]).
    async fn redeliver(
        &self,
        endpoint_id: &str,
        event_id: &str,
        now_us: i64,
    ) -> Result<DeliveryRecord, StoreError>;
    /// The outbox's events of the financier, oldest first (for support and tests).
    async fn outbox_events(&self, financier_id: &str) -> Result<Vec<StoredEvent>, StoreError>;
}
