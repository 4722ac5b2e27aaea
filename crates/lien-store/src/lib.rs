//! Lien's storage: narrow traits, composed into one [`Store`], and one SQL implementation
//! that runs on SQLite (embedded, the default) and on PostgreSQL (for many servers).
//!
//! Every change to a device goes through [`Devices::update_device`]: the store reads the
//! device's [`DeviceSnapshot`] under the device's lock, the caller turns it into a
//! [`DeviceChange`] with pure code, and the store applies the whole change (payment,
//! decision, token, audit record, idempotency response) in one transaction. That one path
//! is what makes "the new token is written with the payment" and "every state change is
//! audited" hold by construction.

pub mod appeals;
pub mod audit;
pub mod mobile_money;
pub mod people;
pub mod plans;
mod records;
pub mod reports;
mod sql;
pub mod webhooks;

use async_trait::async_trait;

pub use appeals::{
    AppealFilter, AppealRecord, AppealWrite, Appeals, AttachmentRecord, Attachments, ImeiHistory,
};
pub use mobile_money::{
    MobileMoney, MpesaEndpointRecord, PaymentProviderRecord, RecordedPaymentRecord,
    StatementHoldings, StatementQuery, UnmatchedFilter, UnmatchedPaymentRecord, UnmatchedStatus,
};
pub use people::{InvitationRecord, People, PersonRecord, SessionRecord};
pub use plans::{PlanHistory, PlanVersionRecord};
pub use records::*;
pub use reports::{ActivityCursor, DayLocks, DayPayments, PaymentAcks, Reports, UnlockPayment};
pub use sql::SqlStore;
pub use webhooks::{
    AttemptOutcome, Claim, ClaimedDelivery, DeliveryRecord, DeliveryStatus, OutboxEvent,
    StoredEvent, WebhookEndpointRecord, Webhooks,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names a backend Lien does not have.
    #[error("{0}")]
    UnsupportedUrl(String),
    /// Another process is serving this SQLite database; the text names its lock file.
    #[error("{0}")]
    InUse(String),
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// The write would break a uniqueness rule or another rule the store keeps (a token
    /// sequence not above the current one, the last platform admin key); the text says which,
    /// for the caller's message.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A response is already kept for this `Idempotency-Key` in this scope: a retry that raced
    /// the first request. The caller answers with the kept response (or refuses a different
    /// request under the same key).
    #[error("conflict: this Idempotency-Key is already used")]
    IdempotencyConflict,
    /// The device was written after the change was decided on an earlier read
    /// ([`Devices::write_decided`]): the change must be decided again.
    #[error("conflict: device {device_id} was written after its change was decided")]
    VersionConflict {
        /// The device left unchanged.
        device_id: String,
    },
    /// The caller's closure refused the change; its error is passed back untouched. Callers
    /// with an error type of their own use [`DevicesExt::update_device_with`], which hands it
    /// back typed.
    #[error("change refused")]
    Refused(Box<dyn std::error::Error + Send + Sync>),
    /// The database failed. The source is for logs only.
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database cannot be reached now: no connection came within the pool's wait, or the
    /// connection broke. A write may or may not have been made; the same request (under the
    /// same idempotency key) may succeed shortly. The source is for logs only.
    #[error("storage backend unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The caller's part of a device change: pure code from snapshot to change.
pub type ChangeFn = Box<
    dyn FnOnce(&DeviceSnapshot) -> Result<DeviceChange, Box<dyn std::error::Error + Send + Sync>>
        + Send,
>;

/// Why [`DevicesExt::update_device_with`] wrote nothing: the caller's closure refused the change
/// with its own error, or the store failed or refused.
#[derive(Debug)]
pub enum UpdateError<E> {
    /// The closure's own error, as it returned it.
    Refused(E),
    /// The store's.
    Store(StoreError),
}

/// A typed form of [`Devices::update_device`], for every `Devices` (the store's trait object
/// included): the closure returns the change with a value of its own, or an error of its own
/// type, and both come back to the caller as they were, with no boxing or downcast. The trait
/// method stays object-safe (it takes a boxed closure with a boxed error); this wrapper keeps
/// the closure's outcome beside the call and hands it back once the store has answered.
#[async_trait]
pub trait DevicesExt: Devices {
    /// Reads the snapshot under the device's lock, asks `change` what to do, applies it, and
    /// returns the stored row with the closure's value.
    async fn update_device_with<T, E, F>(
        &self,
        id: &str,
        change: F,
    ) -> Result<(DeviceRecord, T), UpdateError<E>>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&DeviceSnapshot) -> Result<(DeviceChange, T), E> + Send + 'static,
    {
        let (boxed, slot) = keep_outcome(change);
        let stored = self.update_device(id, boxed).await;
        typed_outcome(stored, &slot)
    }

    /// [`update_device_with`](DevicesExt::update_device_with) for several distinct devices in
    /// one transaction ([`Devices::update_devices`]): each device's result in the order given,
    /// the closure's value or its own error, or the store's refusal of that device.
    async fn update_devices_with<T, E, F>(
        &self,
        changes: Vec<(String, F)>,
    ) -> Result<Vec<Result<T, UpdateError<E>>>, StoreError>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&DeviceSnapshot) -> Result<(DeviceChange, T), E> + Send + 'static,
    {
        let mut slots = Vec::with_capacity(changes.len());
        let boxed = changes
            .into_iter()
            .map(|(id, change)| {
                let (boxed, slot) = keep_outcome(change);
                slots.push(slot);
                (id, boxed)
            })
            .collect();
        let results = self.update_devices(boxed).await?;
        Ok(results
            .into_iter()
            .zip(&slots)
            .map(|(stored, slot)| typed_outcome(stored, slot).map(|((), value)| value))
            .collect())
    }
}

/// Where a typed closure's outcome waits while the store runs it.
type OutcomeSlot<T, E> = std::sync::Arc<std::sync::Mutex<Option<Result<T, E>>>>;

/// Boxes a typed closure for the object-safe store: the box hands the store the change, or a
/// [`ClosureRefused`] marker, and keeps the closure's value or error in the slot.
fn keep_outcome<T, E, F>(change: F) -> (ChangeFn, OutcomeSlot<T, E>)
where
    T: Send + 'static,
    E: Send + 'static,
    F: FnOnce(&DeviceSnapshot) -> Result<(DeviceChange, T), E> + Send + 'static,
{
    let outcome: OutcomeSlot<T, E> = std::sync::Arc::new(std::sync::Mutex::new(None));
    let slot = outcome.clone();
    let boxed: ChangeFn = Box::new(move |snapshot: &DeviceSnapshot| {
        let (result, change) = match change(snapshot) {
            Ok((change, value)) => (Ok(value), Ok(change)),
            Err(e) => (Err(e), Err(ClosureRefused.into())),
        };
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
        change
    });
    (boxed, outcome)
}

/// The store's answer joined with the closure's outcome: the closure's own error when it
/// refused, the store's when the store refused or failed.
fn typed_outcome<R, T, E>(
    stored: Result<R, StoreError>,
    slot: &OutcomeSlot<T, E>,
) -> Result<(R, T), UpdateError<E>> {
    let kept = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    match (stored, kept) {
        (Ok(record), Some(Ok(value))) => Ok((record, value)),
        (Err(StoreError::Refused(_)), Some(Err(e))) => Err(UpdateError::Refused(e)),
        (Err(e), _) => Err(UpdateError::Store(e)),
        (Ok(_), _) => Err(UpdateError::Store(StoreError::Backend(
            "a device was written without its change's outcome".into(),
        ))),
    }
}

impl<D: Devices + ?Sized> DevicesExt for D {}

/// What [`DevicesExt::update_device_with`] hands the store when its closure refuses: the
/// closure's own error stays with the caller.
#[derive(Debug, thiserror::Error)]
#[error("the change was refused by its caller")]
struct ClosureRefused;

/// Financiers and their API keys.
#[async_trait]
pub trait Tenants: Send + Sync {
    /// Creates a financier, with an audit record in the platform chain.
    async fn create_financier(
        &self,
        financier: &Financier,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// One financier.
    async fn financier(&self, id: &str) -> Result<Financier, StoreError>;
    /// Changes a financier's public name, contact and payment link (its id and creation stay),
    /// audited in its own chain, in one transaction; [`StoreError::NotFound`] when there is no
    /// such financier.
    async fn update_financier(
        &self,
        financier: &Financier,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// All financiers, by id.
    async fn financiers(&self) -> Result<Vec<Financier>, StoreError>;
    /// Stores an API key's hash, audited in `chain`.
    async fn create_api_key(
        &self,
        key: &ApiKeyRecord,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// The key with this hash, revoked and expired ones included (the caller says why it
    /// refuses them).
    async fn api_key_by_hash(&self, key_hash: &[u8]) -> Result<ApiKeyRecord, StoreError>;
    /// Whether any platform admin key exists, revoked and expired ones included (the first
    /// start creates one; `lien admin-key create` makes another).
    async fn has_platform_admin(&self) -> Result<bool, StoreError>;
    /// The key with this public id.
    async fn api_key(&self, id: &str) -> Result<ApiKeyRecord, StoreError>;
    /// The keys of `financier_id`, or the platform's own keys (support and platform admins)
    /// for `None`, revoked and expired ones included, oldest first.
    async fn api_keys(&self, financier_id: Option<&str>) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Revokes the key `id` at `at_us`, audited in `chain`, and returns it as it now stands. A
    /// key revoked already is returned as it is, with no second audit record. Refused with
    /// [`StoreError::Conflict`] when it is the last platform admin key that is neither revoked
    /// nor expired at `at_us`: the check and the revocation are one transaction, so two
    /// revocations at once cannot both pass it and leave the platform without an admin.
    async fn revoke_api_key(
        &self,
        id: &str,
        at_us: i64,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<ApiKeyRecord, StoreError>;
    /// Records that the key `id` was used at `at_us` (never moving the time back). Callers
    /// write this about once a minute per key, not on every request.
    async fn touch_api_key(&self, id: &str, at_us: i64) -> Result<(), StoreError>;
}

/// Devices, their ledgers and their tokens.
#[async_trait]
pub trait Devices: Send + Sync {
    /// Enrolls a device with its first decision and token. Refused with
    /// [`StoreError::Conflict`] when an IMEI is claimed or the contract reference is taken.
    async fn enroll(
        &self,
        device: &NewDevice,
        change: DeviceChange,
    ) -> Result<DeviceRecord, StoreError>;
    /// Enrolls several devices in one transaction, all or none, as an import of a financier's
    /// book does: refused as a whole, with [`StoreError::Conflict`], when any IMEI or contract
    /// reference is taken. The stored rows are not read back.
    async fn enroll_all(
        &self,
        enrollments: Vec<(NewDevice, DeviceChange)>,
    ) -> Result<(), StoreError>;
    /// One device.
    async fn device(&self, id: &str) -> Result<DeviceRecord, StoreError>;
    /// The device that holds a claim on this IMEI.
    async fn device_by_imei(&self, imei: &str) -> Result<DeviceRecord, StoreError>;
    /// The portfolio of a financier (`Some`) or of every financier (`None`): devices by state,
    /// overdue, not seen since `not_seen_since_us`, and payments recorded since
    /// `payments_since_us`. Counted by the database, never by loading devices.
    async fn portfolio(
        &self,
        financier_id: Option<&str>,
        not_seen_since_us: i64,
        payments_since_us: i64,
        age_cutoffs: &[String; 3],
    ) -> Result<Portfolio, StoreError>;
    /// Devices matching the filter, by id.
    async fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<DeviceRecord>, StoreError>;
    /// Reads the snapshot under the device's lock, asks `change` what to do, applies it.
    async fn update_device(&self, id: &str, change: ChangeFn) -> Result<DeviceRecord, StoreError>;
    /// [`Devices::update_device`] for several distinct devices in one transaction, so that a
    /// batch costs one commit (one `fsync` on SQLite) and a few statements per table instead of
    /// a dozen statements per device. A device whose change is refused, or breaks a rule the
    /// store checks before writing (a token sequence not above the current one), is left
    /// unchanged and the others are written; its result says why. A database error while
    /// writing fails the whole batch and writes nothing. The results are in the order of
    /// `changes`; the stored rows are not read back.
    async fn update_devices(
        &self,
        changes: Vec<(String, ChangeFn)>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError>;
    /// The snapshots of `ids` as they stand, read without taking any write lock, in the order
    /// of `ids`; devices that do not exist are left out. With [`Devices::write_decided`] they
    /// let a caller decide many devices while another group's write is under way.
    async fn snapshots(&self, ids: &[String]) -> Result<Vec<DeviceSnapshot>, StoreError>;
    /// Writes changes decided on devices read earlier (each with the [`DeviceRecord`] it was
    /// decided on), in one transaction, as [`Devices::update_devices`] does. A device written
    /// since it was read (its version moved) is left as it is, with [`StoreError::Conflict`]:
    /// its change was decided on what is no longer true, and must be decided again.
    async fn write_decided(
        &self,
        decided: Vec<(DeviceRecord, DeviceChange)>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError>;
    /// The one-row read behind a check-in.
    async fn checkin_view(&self, id: &str) -> Result<CheckinView, StoreError>;
    /// Writes a batch of last-seen times and raises the devices' request counters (never
    /// lowers either).
    async fn touch_last_seen(&self, seen: &[Seen]) -> Result<(), StoreError>;
    /// Tokens whose status code is `code`.
    async fn tokens_by_status_code(&self, code: &str) -> Result<Vec<StatusCodeMatch>, StoreError>;
    /// Tokens whose status code is `code` and that a phone may still be showing: each device's
    /// current token, and tokens superseded (the device's next token issued) at or after
    /// `superseded_since_us`. The public pages and appeals match codes through this, so that
    /// the codes of a large fleet's old tokens do not pile up into matches for random guesses.
    async fn recent_tokens_by_status_code(
        &self,
        code: &str,
        superseded_since_us: i64,
    ) -> Result<Vec<StatusCodeMatch>, StoreError>;
    /// The status codes the device's phone may be showing, newest first: its current token's,
    /// and those of its tokens superseded at or after `superseded_since_us`. Empty for a
    /// device that has no token yet.
    async fn recent_status_codes(
        &self,
        device_id: &str,
        superseded_since_us: i64,
    ) -> Result<Vec<String>, StoreError>;
    /// A device's payments, reversals and overrides.
    async fn snapshot(&self, id: &str) -> Result<DeviceSnapshot, StoreError>;
}

/// The scheduler's view: devices whose decision is due.
#[async_trait]
pub trait Schedule: Send + Sync {
    /// Claims up to `limit` devices due at `now` until `claim_until`, so that another
    /// server (or another pass) does not evaluate them too. A claim ends when the device is
    /// next updated. PostgreSQL keeps claims in the devices' rows; SQLite, which one process
    /// serves, in memory.
    async fn claim_due(
        &self,
        now_us: i64,
        claim_until_us: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// The earliest evaluation time of any device, for the scheduler's sleep.
    async fn next_due(&self) -> Result<Option<i64>, StoreError>;
}

/// The audit log.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// A whole chain, in order.
    async fn audit_chain(&self, chain: &str) -> Result<Vec<AuditRecord>, StoreError>;
}

/// Responses kept for idempotency keys.
#[async_trait]
pub trait Idempotency: Send + Sync {
    /// The response kept for `key` in `scope`.
    async fn idempotent_response(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotentResponse>, StoreError>;
}

/// Everything the server needs from storage.
#[async_trait]
pub trait Store:
    Tenants
    + Devices
    + Schedule
    + AuditLog
    + Idempotency
    + Appeals
    + ImeiHistory
    + Attachments
    + MobileMoney
    + Webhooks
    + People
    + Reports
    + PlanHistory
{
    /// Whether the database answers, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Which backend this is: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Subscribes to committed changes of a device's token or binding, from this process and,
    /// on PostgreSQL, from every server on the database (`LISTEN`/`NOTIFY`). A subscriber that
    /// falls behind gets `RecvError::Lagged` and should resynchronise as on
    /// [`DeviceFeed::Resync`].
    fn device_changes(&self) -> tokio::sync::broadcast::Receiver<DeviceFeed>;
}
