//! The JSON of the financier API. The phone's side of the wire is in
//! [`lien_proto::device_api`], shared with the agent.
//!
//! These types are the boundary: they derive serde and OpenAPI schemas, and
//! [`crate::domain`] converts them to `lien-core`'s types explicitly, refusing bad values
//! with messages that name the field.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Role;

/// A new financier.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFinancier {
    /// Public name, shown on lock screens.
    pub name: String,
    /// Phone number or address for borrowers, shown on lock screens.
    pub contact: String,
    /// Where borrowers pay.
    #[serde(default)]
    pub payment_link: Option<String>,
}

/// A financier.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FinancierView {
    /// Id, `fin_` and hex.
    pub id: String,
    /// Public name.
    pub name: String,
    /// Contact for borrowers.
    pub contact: String,
    /// Where borrowers pay.
    pub payment_link: Option<String>,
}

/// A request for a new API key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// `financier-admin` or `financier-agent` for a financier's key
    /// (`/v1/financiers/{id}/api-keys`); `support` or `platform-admin` for a platform key
    /// (`/v1/api-keys`).
    pub role: Role,
    /// What the key is for.
    pub label: String,
    /// When the key stops working, RFC 3339 (e.g. `2026-12-31T23:59:59Z`): in the future and at
    /// most 5 years ahead. Without it the key works until it is revoked.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A new API key, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyCreated {
    /// Public id, as it appears in the audit log.
    pub id: String,
    /// The key itself. Lien keeps only its hash.
    pub key: String,
    /// Its role.
    pub role: Role,
    /// Its financier.
    pub financier_id: Option<String>,
    /// When it stops working; `null`: not until it is revoked.
    pub expires_at: Option<String>,
}

/// Whether a key works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyStatus {
    /// It works.
    Active,
    /// Its expiry has passed.
    Expired,
    /// It was revoked.
    Revoked,
}

/// An API key as listed: never the key itself, which Lien does not keep.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyView {
    /// Public id: `key_` and the first 12 hex digits of the key's SHA-256, so a holder can
    /// tell which entry is theirs. It is what the audit log records as the actor.
    pub id: String,
    /// What the key is for.
    pub label: String,
    /// Its role.
    pub role: Role,
    /// Its financier; `null` for the platform's keys.
    pub financier_id: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When it stops working; `null`: not until it is revoked.
    pub expires_at: Option<String>,
    /// When it was last used, to about a minute; `null`: never.
    pub last_used_at: Option<String>,
    /// When it was revoked; `null`: it was not.
    pub revoked_at: Option<String>,
    /// Whether it works now.
    pub status: ApiKeyStatus,
}

/// An amount: integer minor units and an ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyJson {
    /// Minor units (cents, paise).
    pub minor: i64,
    /// ISO 4217 code, e.g. `KES`.
    pub currency: String,
}

/// One installment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallmentJson {
    /// Due date in the plan's time zone, `YYYY-MM-DD`.
    pub due: String,
    /// Amount in minor units, in the plan's currency.
    pub amount_minor: i64,
}

/// An installment plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanJson {
    /// ISO 4217 code of every amount.
    pub currency: String,
    /// IANA time zone of the borrower, e.g. `Africa/Nairobi`: due dates end at its midnight.
    pub time_zone: String,
    /// Paid at the point of sale, minor units.
    #[serde(default)]
    pub down_payment_minor: i64,
    /// The installments, in date order.
    pub installments: Vec<InstallmentJson>,
}

/// A notice the borrower must get before any restriction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoticeJson {
    /// Days past due at which it is served.
    pub at_days_past_due: u32,
    /// Days the borrower then has to pay before anything harsher.
    pub cure_days: u32,
}

// `lien_core::Restriction` at the boundary; `crate::domain` converts it.
/// What an escalation does to the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestrictionJson {
    /// Some functions are limited.
    Restricted,
    /// The lock screen covers the phone.
    Locked,
}

/// A step of escalation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationJson {
    /// Days past due from which it applies.
    pub at_days_past_due: u32,
    /// `restricted` or `locked`.
    pub restriction: RestrictionJson,
}

/// Local hours in which no restriction starts, e.g. `21:00` to `07:00`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursJson {
    /// Start, `HH:MM`.
    pub start: String,
    /// End, `HH:MM`.
    pub end: String,
}

/// A custom lock policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySettingsJson {
    /// Days after a due date before anything happens.
    pub grace_days: u32,
    /// No restriction before this many days past due.
    pub min_days_past_due: u32,
    /// No restriction while arrears are below this percentage of the largest installment.
    pub min_arrears_percent: u8,
    /// Notices, in order.
    #[serde(default)]
    pub notices: Vec<NoticeJson>,
    /// Escalations, in order.
    #[serde(default)]
    pub escalations: Vec<EscalationJson>,
    /// Days a phone may stay offline before it locks itself.
    pub lease_days: u32,
    /// Days before the lease ends from which the phone warns.
    pub lease_warning_days: u32,
    /// Hours in which no restriction starts.
    #[serde(default)]
    pub quiet_hours: Option<QuietHoursJson>,
    /// Hours the financier has to answer a borrower's appeal (default: the server's setting).
    #[serde(default)]
    pub appeal_response_hours: Option<u32>,
    /// Hours of provisional unlock an unanswered payment appeal grants (default: the server's
    /// setting); never more than the lease.
    #[serde(default)]
    pub appeal_unlock_hours: Option<u32>,
    /// What happens when the plan is paid in full: `automatic` (the default) or `by_hand`.
    #[serde(default)]
    pub release_at_payoff: ReleaseAtPayoff,
    /// How fast a payment must unlock the phone, and what is owed when it does not (the
    /// late-unlocks report measures it); none by default.
    #[serde(default)]
    pub unlock_promise: Option<UnlockPromiseJson>,
    // Emergency use. Defaults of 0 keep policies stored before these fields existed loading,
    // as offering none.
    /// Hours the borrower may use a locked or restricted phone, offline, once per period
    /// (at most 72; 0, the default: none).
    #[serde(default)]
    pub emergency_use_hours: u32,
    /// At most one emergency window in this many days (at most 365; longer than a window).
    #[serde(default)]
    pub emergency_use_every_days: u32,
    // Fair to the borrower (issue 20): hardship pauses and restructuring. Defaults let the
    // policies stored before these fields load as they were, with a month of pauses a year.
    /// The most days of hardship pause a device may have in any 365 days (default 30, at most
    /// 365); a pause that would go beyond is refused.
    #[serde(default = "default_hardship_days_per_year")]
    pub hardship_days_per_year: u32,
    /// A borrower's request for a pause of at most this many days is granted at once (default
    /// 0: every request waits for the financier); at most `hardship_days_per_year`.
    #[serde(default)]
    pub hardship_auto_grant_days: u32,
    /// The most a restructured schedule may add to what remains owed, in percent of it
    /// (default 0: exactly what remains; at most 25).
    #[serde(default)]
    pub restructure_max_fee_percent: u8,
    /// Whether the platform's support staff may restructure (default false: the financier's
    /// admin only).
    #[serde(default)]
    pub restructure_by_support: bool,
    // Fair notice (issue 20). Both absent from policies stored before them: such a policy
    // never serves a notice to a phone never seen, and reminds only once a payment is late.
    /// Days after a notice is first shown until it counts as served for a phone never seen
    /// (the financier reaches the borrower by its own channels meanwhile); absent: never. A
    /// phone that was seen serves a notice by acknowledging the token that shows it.
    #[serde(default)]
    pub notice_fallback_days: Option<u32>,
    /// Days before a due date from which the phone shows a reminder (0: none).
    #[serde(default)]
    pub remind_days_before: u32,
    /// What a SIM change the phone reports does until the financier accepts it (`POST
    /// /v1/devices/{id}/sim-change/accept`): absent from policies stored before it, `ignore`.
    #[serde(default)]
    pub sim_change: SimChangeJson,
}

/// The SIM-change rule: `{"action": "ignore"}` (the default: recorded only), `{"action":
/// "remind"}` (the phone reminds the borrower to contact the financier), or `{"action":
/// "restrict", "after_days": 2}` (a reminder, then restricted that many days later, never in
/// the quiet hours; at most 90).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum SimChangeJson {
    /// Recorded only.
    #[default]
    Ignore,
    /// A reminder, nothing restricted.
    Remind,
    /// A reminder, then restricted.
    Restrict {
        /// Days from the change to the restriction.
        after_days: u32,
    },
}

/// The yearly hardship days of a policy that does not say (stored before issue 20).
fn default_hardship_days_per_year() -> u32 {
    30
}

/// How fast a payment must reach the phone: minutes from the payment's recording to the
/// phone's acknowledgement of the token that lifts its restriction, and an optional
/// compensation for each started day beyond that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockPromiseJson {
    /// Minutes, from 1 to 10,080 (a week).
    pub within_minutes: u32,
    /// Owed for each started day of delay beyond the promise, e.g. INR 10000 minor units.
    #[serde(default)]
    pub compensation_per_day: Option<MoneyJson>,
}

/// Whether a device whose plan is paid in full is released without a call. `automatic`: the
/// payment that completes the plan schedules the release, final after the server's
/// `release_cancel_hours` unless cancelled (`DELETE /v1/devices/{id}/release`) or the payment
/// reversed meanwhile. `by_hand`: only the financier's `POST /v1/devices/{id}/release` does.
/// Every preset is `automatic`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseAtPayoff {
    /// Released after the cancel window, with no call.
    #[default]
    Automatic,
    /// Released only when the financier asks.
    ByHand,
}

/// A policy: a preset by name, or custom settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PolicyJson {
    /// `strict-dealer`, `kenya` or `india-draft`.
    Preset(String),
    /// Settings of the financier's own.
    Custom(PolicySettingsJson),
}

/// An enrollment at the point of sale. No personal data is needed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The financier's own contract reference, unique per financier.
    pub contract_ref: String,
    /// First IMEI (15 digits, Luhn-checked; a 16-digit IMEISV is accepted).
    pub imei1: String,
    /// Second IMEI of a dual-SIM phone.
    #[serde(default)]
    pub imei2: Option<String>,
    /// Serial number.
    pub serial: String,
    /// Model name.
    pub model: String,
    /// The plan.
    pub plan: PlanJson,
    /// The policy.
    pub policy: PolicyJson,
}

/// A payment received by the financier.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// The financier's reference, unique per device.
    pub reference: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 code; must be the plan's.
    pub currency: String,
    /// When the money was received (RFC 3339); default: now.
    #[serde(default)]
    pub received_at: Option<String>,
}

/// A reversal of a payment (chargeback, bounced transfer).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReversalRequest {
    /// Why.
    pub reason: String,
    /// When it took effect (RFC 3339); default: now.
    #[serde(default)]
    pub at: Option<String>,
}

/// A manual lock.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LockRequest {
    /// Shown on the phone's lock screen, to its holder only (never on a public page); at most
    /// 200 characters. Say whom to call; leave out anything personal.
    pub message: String,
    /// For the financier's eyes only: kept in the device's history, never sent to the phone
    /// or shown publicly; at most 500 characters.
    #[serde(default)]
    pub note: Option<String>,
}

/// Lifting locks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    /// Why; recorded in the audit log.
    pub reason: String,
    /// Also unlock a phone the schedule restricts, for this many hours (a provisional unlock).
    #[serde(default)]
    pub provisional_hours: Option<u32>,
}

/// A reminder shown on the phone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReminderRequest {
    /// The message.
    pub message: String,
    /// How many days it stays on the phone (default 3).
    #[serde(default)]
    pub days: Option<u32>,
}

/// A release at payoff or by the financier's choice.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Why.
    pub reason: String,
}

/// A new lock policy for an enrolled device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyChangeRequest {
    /// The policy, in the shape the enrollment takes.
    pub policy: PolicyJson,
    /// Why; recorded in the audit log.
    pub reason: String,
}

/// A request for an offline unlock code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfflineCodeRequest {
    /// The 8-digit challenge the borrower reads off the lock screen.
    pub challenge: String,
    /// Why; recorded in the audit log.
    pub reason: String,
    /// How long the phone stays unlocked, in hours (default 48, at most 168).
    #[serde(default)]
    pub hours: Option<u32>,
}

/// The one-time response to read to the borrower.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OfflineCode {
    /// 8 digits.
    pub response: String,
    /// The OCRA counter it was made with.
    pub counter: i64,
    /// Until when the server keeps the phone unlocked too (RFC 3339).
    pub unlocked_until: String,
}

// `lien_core::DeviceState` at the boundary (`crate::domain` converts it). The store keeps it
// as `as_str`'s word, read back with `str::parse`.
/// A device's state, as its decision gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStateJson {
    /// Good standing.
    Active,
    /// A payment reminder shows; nothing is restricted.
    Reminder,
    /// Some functions are limited.
    Restricted,
    /// The lock screen covers the phone.
    Locked,
    /// The financier's claim has ended.
    Released,
}

impl DeviceStateJson {
    /// Every state, mildest first.
    pub const ALL: [DeviceStateJson; 5] = [
        DeviceStateJson::Active,
        DeviceStateJson::Reminder,
        DeviceStateJson::Restricted,
        DeviceStateJson::Locked,
        DeviceStateJson::Released,
    ];

    /// The state's name, in the JSON and in the store's rows.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceStateJson::Active => "active",
            DeviceStateJson::Reminder => "reminder",
            DeviceStateJson::Restricted => "restricted",
            DeviceStateJson::Locked => "locked",
            DeviceStateJson::Released => "released",
        }
    }

    /// Whether the phone is restricted or locked.
    pub fn is_restricted(self) -> bool {
        matches!(self, DeviceStateJson::Restricted | DeviceStateJson::Locked)
    }
}

/// A name that is not a [`DeviceStateJson`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not one of active, reminder, restricted, locked, released")]
pub struct UnknownState(pub String);

impl std::str::FromStr for DeviceStateJson {
    type Err = UnknownState;

    fn from_str(name: &str) -> Result<DeviceStateJson, UnknownState> {
        DeviceStateJson::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| UnknownState(name.to_string()))
    }
}

// `lien_core::Reason` without its details; `crate::domain` converts it.
/// Why a device is in its state, in a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// The payments are up to date.
    GoodStanding,
    /// Everything is paid.
    PaidInFull,
    /// An installment is overdue.
    Overdue,
    /// An installment falls due soon.
    DueSoon,
    /// The financier locked the phone by hand.
    ManualLock,
    /// Unlocked for a while, whatever the schedule says.
    ProvisionalUnlock,
    /// Payments are paused; nothing beyond a reminder.
    HardshipPause,
    /// A dispute is open; nothing further is restricted.
    DisputeFreeze,
    /// The financier's claim has ended.
    Released,
    /// The phone reported a new SIM card the financier has not accepted.
    SimChanged,
}

/// Why a device is in its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReasonView {
    /// `good_standing`, `paid_in_full`, `overdue`, `due_soon`, `manual_lock`, `provisional_unlock`,
    /// `hardship_pause`, `dispute_freeze`, `released` or `sim_changed`.
    pub code: ReasonCode,
    /// In the borrower's words, as on the lock screen.
    pub text: String,
    /// For `due_soon`: the date the installment falls due (`YYYY-MM-DD`, the plan's date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_on: Option<String>,
}

/// The decision about a device at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    /// `active`, `reminder`, `restricted`, `locked` or `released`.
    pub state: DeviceStateJson,
    /// Why.
    pub reason: ReasonView,
    /// What to pay now to be in good standing.
    pub amount_due: MoneyJson,
    /// What remains of the whole plan.
    pub outstanding: MoneyJson,
    /// Paid beyond the plan.
    pub credit: MoneyJson,
    /// Notices served so far for the current arrears: acknowledged by the phone, or by the
    /// policy's fallback for a phone never seen.
    pub notices_served: usize,
    /// A notice is shown and waits for the phone to acknowledge it; its cure period starts
    /// then.
    #[serde(default)]
    pub notice_pending: bool,
    /// The next restriction the schedule holds, if the arrears stay unpaid (RFC 3339).
    pub next_restriction_at: Option<String>,
    /// The state it would bring.
    pub next_restriction_state: Option<DeviceStateJson>,
    /// When this decision next changes by itself (RFC 3339).
    pub next_change_at: Option<String>,
}

/// A device as the financier sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceView {
    /// Id, `dev_` and hex.
    pub id: String,
    /// The financier's reference.
    pub contract_ref: String,
    /// First IMEI.
    pub imei1: String,
    /// Second IMEI.
    pub imei2: Option<String>,
    /// Serial.
    pub serial: String,
    /// Model.
    pub model: String,
    /// True until the phone's first hello.
    pub pending: bool,
    /// The decision.
    pub decision: DecisionView,
    /// The last check-in (RFC 3339).
    pub last_check_in: Option<String>,
    /// The sequence of the newest token signed for the phone.
    pub token_sequence: i64,
    /// The newest sequence the phone said it applied.
    pub applied_sequence: Option<i64>,
    /// When a pending release (asked for, or scheduled by the payment that paid the plan off)
    /// becomes final (RFC 3339), while it can still be cancelled.
    pub release_final_at: Option<String>,
    /// The end of the hardship pause in effect or granted (RFC 3339): nothing is restricted
    /// until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardship_pause_until: Option<String>,
    /// The borrower's request for a hardship pause, while it waits for an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardship_request: Option<HardshipRequestView>,
    /// Every schedule the device was held to, oldest first, the one in force last (only in
    /// `GET /v1/devices/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plans: Option<Vec<PlanVersionView>>,
}

/// A borrower's request for a hardship pause, waiting for the financier's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HardshipRequestView {
    /// When the borrower asked (RFC 3339).
    pub requested_at: String,
    /// How many days the borrower asked for.
    pub days: u32,
    /// The borrower's words.
    pub reason: String,
}

/// One schedule of a device: an earlier plan a restructuring replaced, or the one in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanVersionView {
    /// 1 for the plan enrolled with, then one more per restructuring.
    pub version: i64,
    /// Whether this is the plan in force.
    pub in_force: bool,
    /// The plan.
    pub plan: PlanJson,
    /// When it was replaced (RFC 3339), for an earlier plan.
    pub superseded_at: Option<String>,
    /// Who replaced it.
    pub superseded_by: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

/// How long a hardship pause lasts: `days` from now, or `until` an instant. Exactly one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HardshipPauseRequest {
    /// Days from now (1 to 365).
    #[serde(default)]
    pub days: Option<u32>,
    /// The end (RFC 3339), in the future, at most 365 days ahead.
    #[serde(default)]
    pub until: Option<String>,
    /// Why; recorded in the audit log (at most 200 characters).
    pub reason: String,
}

/// Ending a hardship pause before its time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HardshipEndRequest {
    /// Why; recorded in the audit log (at most 200 characters).
    pub reason: String,
}

/// Accepting the SIM change a phone reported.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimChangeAcceptRequest {
    /// Why, e.g. "the borrower called with the new number"; recorded in the audit log (at most
    /// 200 characters).
    pub reason: String,
}

/// The financier's answer to a borrower's request for a hardship pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HardshipVerdict {
    /// Grant a pause (of `days`, or the days asked for).
    Grant,
    /// Refuse it; the reason says why.
    Refuse,
}

/// The answer to a borrower's request for a hardship pause.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HardshipAnswerRequest {
    /// Grant or refuse.
    pub decision: HardshipVerdict,
    /// For a grant: the pause's length in days (default: what the borrower asked for).
    #[serde(default)]
    pub days: Option<u32>,
    /// Why; recorded in the audit log; required to refuse (at most 200 characters).
    #[serde(default)]
    pub reason: String,
}

/// A new schedule for what remains of a plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestructureRequest {
    /// The new installments for what remains, in date order, in the plan's currency, due
    /// today or later and after the last installment already paid. Together they ask exactly
    /// what remains owed, plus at most the fee the policy's `restructure_max_fee_percent`
    /// allows. The installments already paid stay (one paid in part stays with what was paid).
    pub installments: Vec<InstallmentJson>,
    /// The currency of the amounts, if given: it must be the plan's.
    #[serde(default)]
    pub currency: Option<String>,
    /// Why; recorded in the audit log (at most 200 characters).
    pub reason: String,
}

/// A page of devices.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DevicePage {
    /// The devices.
    pub devices: Vec<DeviceView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One audit record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    /// Position in the device's chain.
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Why.
    pub reason: String,
    /// Before, as JSON.
    pub before: serde_json::Value,
    /// After, as JSON.
    pub after: serde_json::Value,
    /// Hex SHA-256 of the previous record.
    pub prev_hash: String,
    /// Hex SHA-256 of this record.
    pub hash: String,
}

/// A device's history: its audit chain, and whether the chain is intact.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryView {
    /// The records, oldest first.
    pub records: Vec<AuditView>,
    /// Whether every hash links up.
    pub chain_intact: bool,
}

/// What a status code shows support.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatusCodeView {
    /// The device.
    pub device_id: String,
    /// The token sequence the phone holds.
    pub sequence: i64,
    /// The state that token carries.
    pub state: lien_proto::TokenState,
    /// When it was signed (RFC 3339).
    pub issued_at: String,
    /// The device's current decision, to compare.
    pub current: DecisionView,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store keeps a state by [`DeviceStateJson::as_str`], and filters on it: the same word
    /// as in the JSON.
    #[test]
    fn a_state_is_named_as_in_the_json_and_read_back_by_its_name() {
        for state in DeviceStateJson::ALL {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
            assert_eq!(state.as_str().parse::<DeviceStateJson>(), Ok(state));
        }
        assert_eq!(
            "asleep".parse::<DeviceStateJson>(),
            Err(UnknownState("asleep".into()))
        );
    }
}
