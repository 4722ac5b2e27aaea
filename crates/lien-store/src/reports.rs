//! What the console's reports read: a financier's activity (the audit records of its devices
//! and of the financier itself) in a period, a page at a time, its payments, locks and unlocks
//! by day, and how fast payments reached the phones.

use async_trait::async_trait;

use crate::{AuditRecord, StoreError};

/// Where a page of activity starts: after this record (its time, chain and place in it).
pub type ActivityCursor = (i64, String, i64);

/// One day's payments in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayPayments {
    /// The day, counted from the period's start (0 for its first day).
    pub day: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// How many payments were recorded that day.
    pub count: i64,
    /// Their sum in minor units (saturating).
    pub amount_minor: i64,
}

/// One day's locks and unlocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayLocks {
    /// The day, counted from the period's start (0 for its first day).
    pub day: i64,
    /// Tokens issued that day that lock a phone that was not locked.
    pub locks: i64,
    /// Tokens issued that day that leave the lock.
    pub unlocks: i64,
}

/// How fast the payments recorded in a period reached their phones: from the payment's
/// recording to the phone's report that it holds the token the payment issued.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaymentAcks {
    /// Payments whose token the phone has acknowledged.
    pub acknowledged: i64,
    /// Payments that issued a token the phone has not acknowledged yet.
    pub waiting: i64,
    /// The median time to acknowledgement, microseconds (`None` without any).
    pub median_us: Option<i64>,
    /// The 99th percentile (the nearest rank), microseconds.
    pub p99_us: Option<i64>,
}

/// A payment that lifted its phone's restriction (its change issued a token that left the
/// restricted or locked state), with when the phone acknowledged that token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlockPayment {
    /// The device.
    pub device_id: String,
    /// The device's policy, as the server stored it (its unlock promise is in it).
    pub policy_json: String,
    /// The payment's reference.
    pub reference: String,
    /// Its amount, minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// When Lien recorded it.
    pub recorded_us: i64,
    /// When the phone first reported holding its token or a later one; `None`: not yet.
    pub acked_us: Option<i64>,
}

/// The reports' reads.
#[async_trait]
pub trait Reports: Send + Sync {
    /// The audit records of `financier_id`'s devices and of the financier itself (`None`:
    /// every chain) made in `[from_us, to_us)`, by time, after `after`, at most `limit`.
    async fn activity(
        &self,
        financier_id: Option<&str>,
        from_us: i64,
        to_us: i64,
        after: Option<&ActivityCursor>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// The payments recorded on `financier_id`'s devices (`None`: every device) in
    /// `[from_us, to_us)`, by day from `from_us` and currency.
    async fn payments_by_day(
        &self,
        financier_id: Option<&str>,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<DayPayments>, StoreError>;
    /// The locks and unlocks of `financier_id`'s devices (`None`: every device) in
    /// `[from_us, to_us)`, by day from `from_us`; days without any are left out.
    async fn locks_by_day(
        &self,
        financier_id: Option<&str>,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<DayLocks>, StoreError>;
    /// How fast the payments recorded on `financier_id`'s devices (`None`: every device) in
    /// `[from_us, to_us)` reached their phones.
    async fn payment_acks(
        &self,
        financier_id: Option<&str>,
        from_us: i64,
        to_us: i64,
    ) -> Result<PaymentAcks, StoreError>;
    /// The payments recorded on `financier_id`'s devices (`None`: every device) in
    /// `[from_us, to_us)` that lifted a restriction and reached the phone more than
    /// `slower_than_us` after they were recorded, or have not reached it by `now_us` and are
    /// that old: by recording time, at most `limit`.
    async fn slow_unlocks(
        &self,
        financier_id: Option<&str>,
        period: (i64, i64),
        slower_than_us: i64,
        now_us: i64,
        limit: u32,
    ) -> Result<Vec<UnlockPayment>, StoreError>;
}
