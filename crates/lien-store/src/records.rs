//! The rows the store keeps, as plain data.
//!
//! The store does not know the domain: a plan is JSON the server wrote, a state is the
//! server's word for it. What the store guarantees is that each change is applied whole
//! or not at all, and that the audit chain is never forked.

/// A financier: a lender, dealer or carrier, and the tenant its devices belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Financier {
    /// Stable id, `fin_` and hex.
    pub id: String,
    /// Public name, shown on the lock screen.
    pub name: String,
    /// How a borrower reaches the financier, shown on the lock screen.
    pub contact: String,
    /// Where a borrower pays, shown on the lock screen.
    pub payment_link: Option<String>,
    /// When it was created, Unix microseconds.
    pub created_us: i64,
}

/// An API key as stored: its hash, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// SHA-256 of the key.
    pub key_hash: Vec<u8>,
    /// Public id of the key, safe to log.
    pub id: String,
    /// The role's name.
    pub role: String,
    /// The financier the key acts for; `None` for platform roles.
    pub financier_id: Option<String>,
    /// What the key is for, in its creator's words.
    pub label: String,
    /// When it was created.
    pub created_us: i64,
    /// When it stops working; `None`: never.
    pub expires_us: Option<i64>,
    /// When it was revoked; `None`: it was not.
    pub revoked_us: Option<i64>,
    /// When it was last used, to about a minute (see [`crate::Tenants::touch_api_key`]);
    /// `None`: never.
    pub last_used_us: Option<i64>,
}

/// The stored decision: what the scheduler and the device list filter on, plus the
/// server's full account of it as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRecord {
    /// The state's name.
    pub state: String,
    /// The server's serialized decision (reason, amounts, next restriction).
    pub json: String,
    /// Amount due now, minor units.
    pub amount_due_minor: i64,
    /// Currency of every amount of the device.
    pub currency: String,
    /// The due date (`YYYY-MM-DD`, the plan's local date) of the oldest late unpaid
    /// installment, whatever the state's reason; `None` when nothing is late.
    pub overdue_since: Option<String>,
}

/// A signed status token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The per-device sequence number inside the token.
    pub sequence: i64,
    /// The state the token carries.
    pub state: String,
    /// When it was signed.
    pub issued_us: i64,
    /// When its lease ends; `None` for a released device.
    pub lease_end_us: Option<i64>,
    /// The short code the lock screen shows for this token.
    pub status_code: String,
    /// The COSE_Sign1 bytes.
    pub bytes: Vec<u8>,
}

/// A device as enrolled, before anything else is known of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// Stable id, `dev_` and hex.
    pub id: String,
    /// Owner.
    pub financier_id: String,
    /// The financier's own reference for the contract, unique per financier.
    pub contract_ref: String,
    /// First IMEI.
    pub imei1: String,
    /// Second IMEI of a dual-SIM phone.
    pub imei2: Option<String>,
    /// Serial number.
    pub serial: String,
    /// Model name.
    pub model: String,
    /// The installment plan, as the server's JSON.
    pub plan_json: String,
    /// The lock policy, as the server's JSON.
    pub policy_json: String,
    /// When it was enrolled.
    pub enrolled_us: i64,
}

/// The phone's key and credential generation after a hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Counts hellos; the device credential is derived from it, so a re-bind revokes the old one.
    pub generation: i64,
    /// The device's public key, as sent in its hello.
    pub device_key: Vec<u8>,
    /// When it was bound.
    pub bound_us: i64,
}

/// A device with everything the server keeps on its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The enrollment.
    pub enrolled: NewDevice,
    /// The current decision.
    pub decision: DecisionRecord,
    /// When the decision must next be evaluated, if ever.
    pub next_eval_us: Option<i64>,
    /// The current binding; `None` until the phone's first hello.
    pub binding: Option<Binding>,
    /// The current token.
    pub token: Option<TokenRecord>,
    /// The highest token sequence the phone says it applied.
    pub applied_sequence: Option<i64>,
    /// The last check-in.
    pub last_seen_us: Option<i64>,
    /// The last OCRA counter used for an offline unlock code.
    pub ocra_counter: i64,
    /// The highest request counter accepted from the phone under its current binding.
    pub checkin_counter: i64,
    /// When the release became final.
    pub released_us: Option<i64>,
    /// How many times the row was written: a change decided on this record is written only
    /// while it is unchanged (see [`crate::Devices::write_decided`]).
    pub version: i64,
}

/// A payment as received from the financier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    /// The financier's reference, unique per device.
    pub reference: String,
    /// Minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// When the money was received.
    pub received_us: i64,
    /// When Lien was told.
    pub recorded_us: i64,
    /// When the phone first reported holding the token this payment's change issued (or a
    /// later one); `None` until it has, or when the payment issued no token. Set by the store
    /// from [`DeviceChange::acknowledged_us`]; a new payment leaves it `None`.
    pub acknowledged_us: Option<i64>,
}

/// A reversal (chargeback) of an earlier payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalRecord {
    /// The reversed payment's reference.
    pub reference: String,
    /// When the reversal took effect.
    pub at_us: i64,
    /// When Lien was told.
    pub recorded_us: i64,
    /// Why.
    pub reason: String,
}

/// An override: manual lock, provisional unlock, hardship pause, dispute freeze or release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRecord {
    /// Assigned by the store; 0 in a new override.
    pub id: i64,
    /// The kind's name.
    pub kind: String,
    /// Why, as the actor gave it.
    pub reason: String,
    /// Start.
    pub from_us: i64,
    /// End, if it has one.
    pub until_us: Option<i64>,
    /// When it was cancelled (it then never applied).
    pub cancelled_us: Option<i64>,
    /// Who created it.
    pub actor: String,
    /// When.
    pub created_us: i64,
}

/// A change to an existing override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideUpdate {
    /// Which override.
    pub id: i64,
    /// A new end.
    pub until_us: Option<i64>,
    /// Cancelled at.
    pub cancelled_us: Option<i64>,
}

/// Something the phone reported: a SIM change, a tamper attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEvent {
    /// When the server received it.
    pub at_us: i64,
    /// What kind of event.
    pub kind: String,
    /// Free text from the phone.
    pub detail: String,
}

/// One audit record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at_us: i64,
    /// Who: an API key id, `device`, or `scheduler`.
    pub actor: String,
    /// What happened, e.g. `payment`.
    pub action: String,
    /// Why.
    pub reason: String,
    /// State before, JSON.
    pub before_json: String,
    /// State after, JSON.
    pub after_json: String,
}

/// An audit record as stored, with its place in its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The chain: a device id, or `financier:<id>`, or `platform`.
    pub chain: String,
    /// Position in the chain, from 1.
    pub seq: i64,
    /// The record.
    pub entry: AuditEntry,
    /// Hash of the previous record (32 zero bytes for the first).
    pub prev_hash: Vec<u8>,
    /// Hash of this record; see [`crate::audit::chain_hash`].
    pub hash: Vec<u8>,
}

/// A response kept for an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentResponse {
    /// Whose key space: the financier id or `platform`.
    pub scope: String,
    /// The client's key.
    pub key: String,
    /// SHA-256 of the request (method, path and body).
    pub request_hash: Vec<u8>,
    /// HTTP status.
    pub status: u16,
    /// Response body.
    pub body: String,
}

/// Everything a device's decision depends on, read under the device's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSnapshot {
    /// The device row.
    pub device: DeviceRecord,
    /// Its financier.
    pub financier: Financier,
    /// All payments, in the order recorded.
    pub payments: Vec<PaymentRecord>,
    /// All reversals.
    pub reversals: Vec<ReversalRecord>,
    /// All overrides, cancelled ones included.
    pub overrides: Vec<OverrideRecord>,
}

/// What one change does to a device, all applied in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceChange {
    /// A new payment.
    pub payment: Option<PaymentRecord>,
    /// A new reversal.
    pub reversal: Option<ReversalRecord>,
    /// A new override.
    pub new_override: Option<OverrideRecord>,
    /// Further new overrides, inserted after `new_override` (an appeal adds two).
    pub more_overrides: Vec<OverrideRecord>,
    /// Changes to existing overrides.
    pub override_updates: Vec<OverrideUpdate>,
    /// A new policy.
    pub policy_json: Option<String>,
    /// A new installment plan (a restructuring); the plan it replaces is kept as
    /// `superseded_plan`, in the same transaction.
    pub plan_json: Option<String>,
    /// The plan a restructuring replaced, to keep among the device's earlier plans.
    pub superseded_plan: Option<crate::plans::PlanVersionRecord>,
    /// The decision after the change; `None` leaves it as it was.
    pub decision: Option<DecisionRecord>,
    /// The next evaluation time; always written (clearing a scheduler's claim).
    pub next_eval_us: Option<i64>,
    /// A newly signed token; its sequence must be above the current one.
    pub token: Option<TokenRecord>,
    /// A new binding from a hello; the store sets the generation to one above the current.
    pub binding: Option<(Vec<u8>, i64)>,
    /// The OCRA counter after issuing an offline code.
    pub ocra_counter: Option<i64>,
    /// The highest request counter accepted from the phone, when a check-in writes.
    pub checkin_counter: Option<i64>,
    /// The release became final at this time: the device's IMEIs are free again.
    pub released_us: Option<i64>,
    /// Events the phone reported.
    pub events: Vec<DeviceEvent>,
    /// The token sequence the phone reported it applied.
    pub applied_sequence: Option<i64>,
    /// When the phone reported `applied_sequence`: the payments whose tokens it covers are
    /// marked acknowledged at this time, if they were not already.
    pub acknowledged_us: Option<i64>,
    /// Audit records for the device's chain.
    pub audit: Vec<AuditEntry>,
    /// The response to keep for the request's `Idempotency-Key`.
    pub idempotency: Option<IdempotentResponse>,
    /// An appeal opened or answered.
    pub appeal: Option<crate::AppealWrite>,
    /// Events for the financier's webhooks, written to the outbox with the change; the store
    /// gives each the device's version after the change as its sequence.
    pub outbox: Vec<crate::OutboxEvent>,
}

/// What the check-in path reads: one row, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinView {
    /// Owner.
    pub financier_id: String,
    /// Credential generation; 0 if never bound.
    pub binding_generation: i64,
    /// The current token.
    pub token: Option<Vec<u8>>,
    /// Its sequence.
    pub token_sequence: i64,
    /// What the phone last said it applied.
    pub applied_sequence: Option<i64>,
    /// The highest request counter accepted under this binding.
    pub checkin_counter: i64,
}

/// A phone seen at a check-in or push request, for [`crate::Devices::touch_last_seen`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The device.
    pub device_id: String,
    /// When.
    pub at_us: i64,
    /// The binding the request was signed under.
    pub binding_generation: i64,
    /// The request's counter; it raises the device's only under that same binding, so a late
    /// write cannot carry an old binding's count over to a new one.
    pub counter: i64,
}

/// Filters of the device list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Only this financier's devices; `None` for platform-wide readers.
    pub financier_id: Option<String>,
    /// Only devices in this state.
    pub state: Option<String>,
    /// Only devices with an amount due.
    pub overdue: bool,
    /// Only devices not seen since this time (never seen included).
    pub not_seen_since_us: Option<i64>,
    /// Only devices whose stored policy (the server's JSON, as written) matches.
    pub policy_json: Option<TextMatch>,
    /// Only ids after this one (the cursor).
    pub after_id: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// A match on a stored text: equal to one, or to none of several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextMatch {
    /// Equal to this.
    Is(String),
    /// Equal to none of these.
    NoneOf(Vec<String>),
}

/// A token found by its status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCodeMatch {
    /// The device.
    pub device_id: String,
    /// Its financier.
    pub financier_id: String,
    /// The token's sequence.
    pub sequence: i64,
    /// The token's state.
    pub state: String,
    /// When it was signed.
    pub issued_us: i64,
}

/// A message of [`Store::device_changes`](crate::Store::device_changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceFeed {
    /// This device's token or binding changed, and the change is committed.
    Changed(String),
    /// Changes may have been missed (a lost `LISTEN` connection): read again every device
    /// you care about.
    Resync,
}

/// A financier's portfolio at a glance (or the whole platform's), for the console's overview.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Portfolio {
    /// Devices by state (`active`, `reminder`, `restricted`, `locked`, `released`).
    pub by_state: Vec<(String, i64)>,
    /// Devices with an amount due, and that amount, by currency.
    pub overdue: Vec<(String, i64, i64)>,
    /// Devices not seen since the time asked (never seen included).
    pub not_seen: i64,
    /// Payments recorded since the time asked, and their amount, by currency.
    pub payments: Vec<(String, i64, i64)>,
    /// Devices with an amount due by how long overdue, youngest first.
    pub arrears_by_age: Vec<ArrearsByAge>,
}

/// How long a group of devices has been overdue, for [`Portfolio::arrears_by_age`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ArrearsAge {
    /// Overdue since on or after the first cut-off asked (1 to 30 days past due).
    UpToFirst,
    /// Since on or after the second cut-off.
    UpToSecond,
    /// Since on or after the third.
    UpToThird,
    /// Older than the third cut-off.
    Older,
    /// Not recorded yet (a device last evaluated before Lien recorded it).
    Unknown,
}

impl ArrearsAge {
    /// In the order the store numbers them.
    pub const ALL: [ArrearsAge; 5] = [
        ArrearsAge::UpToFirst,
        ArrearsAge::UpToSecond,
        ArrearsAge::UpToThird,
        ArrearsAge::Older,
        ArrearsAge::Unknown,
    ];
}

/// Devices overdue for about as long, in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrearsByAge {
    /// How long.
    pub age: ArrearsAge,
    /// ISO 4217 code.
    pub currency: String,
    /// How many devices.
    pub devices: i64,
    /// What they owe now, minor units (saturating).
    pub amount_minor: i64,
}
