//! From stored rows to `lien-core`'s types and back, and the evaluation every change ends with.
//!
//! [`evaluate`] is pure: given a device's snapshot and the time, it returns the decision to
//! store, when to look again, and a newly signed token when the phone's instructions changed
//! or its lease needs renewing. Handlers and the scheduler all go through it, so a payment and
//! a timed lock produce tokens in exactly the same way.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use lien_core::{
    Currency, Decision, Delivery, DeviceState, Escalation, Installment, InstallmentPlan,
    LockPolicy, Money, Notice, Override, OverrideKind, Payment, PaymentLog, PaymentRef,
    PayoffRelease, PendingNotice, PolicySettings, Preset, QuietHours, Reason, Restriction,
    Reversal, SimChangeRule, UnlockPromise, decide,
};
use lien_proto::{
    DeviceRestriction, EmergencyAllowance, Lease, ScreenText, StatusClaims, TokenSigner,
    TokenState, WireMoney, status_code,
};
use lien_store::{DecisionRecord, DeviceSnapshot, OverrideRecord, TokenRecord};
use serde::{Deserialize, Serialize};

use crate::clock::{from_micros, micros};
use crate::error::ApiError;
use crate::wire::{
    DecisionView, DeviceStateJson, EscalationJson, MoneyJson, NoticeJson, PlanJson, PolicyJson,
    PolicySettingsJson, QuietHoursJson, ReasonCode, ReasonView, ReleaseAtPayoff, RestrictionJson,
    SimChangeJson, UnlockPromiseJson,
};

/// A stored override's kind. The stored word is [`StoredKind::as_str`]; `message` is Lien's
/// own: a reminder text shown for a while, which the decision function does not see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoredKind {
    /// A lock by hand, with its reason.
    ManualLock,
    /// An unlock for a while, whatever the schedule says.
    ProvisionalUnlock,
    /// Nothing beyond a reminder for a while.
    HardshipPause,
    /// No escalation while a dispute is open.
    DisputeFreeze,
    /// The financier's claim ends (from the end of the cancel window).
    Release,
    /// A reminder message on the phone.
    Message,
    /// An emergency window the phone reported it took (from its start, for its length): the
    /// decision function does not see it; the next token names the latest one's start, so
    /// that no later state of the phone can take another too soon.
    EmergencyUse,
    /// A borrower's request for a hardship pause, waiting for the financier's answer (its end
    /// is the end of the pause asked for); an answer cancels it. The decision does not see it.
    HardshipRequest,
    /// A SIM change the phone reported, from the report until the financier accepts it.
    SimChange,
}

impl StoredKind {
    /// Every kind.
    pub const ALL: [StoredKind; 9] = [
        StoredKind::ManualLock,
        StoredKind::ProvisionalUnlock,
        StoredKind::HardshipPause,
        StoredKind::DisputeFreeze,
        StoredKind::Release,
        StoredKind::Message,
        StoredKind::EmergencyUse,
        StoredKind::HardshipRequest,
        StoredKind::SimChange,
    ];

    /// The word stored in the override's row.
    pub const fn as_str(self) -> &'static str {
        match self {
            StoredKind::ManualLock => "manual_lock",
            StoredKind::ProvisionalUnlock => "provisional_unlock",
            StoredKind::HardshipPause => "hardship_pause",
            StoredKind::DisputeFreeze => "dispute_freeze",
            StoredKind::Release => "release",
            StoredKind::Message => "message",
            StoredKind::EmergencyUse => "emergency_use",
            StoredKind::HardshipRequest => "hardship_request",
            StoredKind::SimChange => "sim_change",
        }
    }

    /// The kind a stored word names, if any: for filters, to which an unknown word is simply
    /// not the kind sought.
    pub fn of(word: &str) -> Option<StoredKind> {
        word.parse().ok()
    }
}

/// A stored word that is not a [`StoredKind`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown override kind {0:?}")]
pub struct UnknownKind(pub String);

impl std::str::FromStr for StoredKind {
    type Err = UnknownKind;

    fn from_str(word: &str) -> Result<StoredKind, UnknownKind> {
        StoredKind::ALL
            .into_iter()
            .find(|k| k.as_str() == word)
            .ok_or_else(|| UnknownKind(word.to_string()))
    }
}

/// The plan a financier sent, checked.
pub fn parse_plan(plan: &PlanJson) -> Result<InstallmentPlan, ApiError> {
    let currency = parse_currency("plan.currency", &plan.currency)?;
    let tz = TimeZone::get(&plan.time_zone).map_err(|_| {
        ApiError::invalid(
            "plan.time_zone",
            format!("unknown time zone {:?}", plan.time_zone),
        )
    })?;
    let installments = plan
        .installments
        .iter()
        .enumerate()
        .map(|(i, inst)| {
            let due: Date = inst.due.parse().map_err(|_| {
                ApiError::invalid(
                    &format!("plan.installments[{i}].due"),
                    format!("{:?} is not a date in the form YYYY-MM-DD", inst.due),
                )
            })?;
            Ok(Installment {
                due,
                amount: Money::new(inst.amount_minor, currency),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    InstallmentPlan::new(
        tz,
        Money::new(plan.down_payment_minor, currency),
        installments,
    )
    .map_err(|e| ApiError::invalid("plan", e))
}

/// The longest an appeal's answer may take, or its provisional unlock last, in hours: 30 days.
pub const MAX_APPEAL_HOURS: u32 = 30 * 24;

/// The policy a financier chose, checked.
pub fn parse_policy(policy: &PolicyJson) -> Result<LockPolicy, ApiError> {
    match policy {
        PolicyJson::Preset(name) => {
            Preset::from_name(name)
                .map(LockPolicy::preset)
                .ok_or_else(|| {
                    let names: Vec<_> = Preset::ALL.iter().map(|p| p.name()).collect();
                    ApiError::invalid(
                        "policy.preset",
                        format!(
                            "unknown preset {name:?}; the presets are {}",
                            names.join(", ")
                        ),
                    )
                })
        }
        PolicyJson::Custom(s) => {
            for (field, hours) in [
                ("appeal_response_hours", s.appeal_response_hours),
                ("appeal_unlock_hours", s.appeal_unlock_hours),
            ] {
                if let Some(hours) = hours
                    && !(1..=MAX_APPEAL_HOURS).contains(&hours)
                {
                    return Err(ApiError::invalid(
                        &format!("policy.custom.{field}"),
                        format!("is {hours}; it must be between 1 and {MAX_APPEAL_HOURS}"),
                    ));
                }
            }
            LockPolicy::new(custom_settings(s)?).map_err(|e| ApiError::invalid("policy.custom", e))
        }
    }
}

fn custom_settings(s: &PolicySettingsJson) -> Result<PolicySettings, ApiError> {
    let escalations = s
        .escalations
        .iter()
        .map(|e| Escalation {
            at_days_past_due: e.at_days_past_due,
            restriction: match e.restriction {
                RestrictionJson::Restricted => Restriction::Restricted,
                RestrictionJson::Locked => Restriction::Locked,
            },
        })
        .collect();
    let quiet_hours = match &s.quiet_hours {
        None => None,
        Some(q) => Some(QuietHours {
            start: parse_time("policy.custom.quiet_hours.start", &q.start)?,
            end: parse_time("policy.custom.quiet_hours.end", &q.end)?,
        }),
    };
    Ok(PolicySettings {
        grace_days: s.grace_days,
        min_days_past_due: s.min_days_past_due,
        min_arrears_percent: s.min_arrears_percent,
        notices: s
            .notices
            .iter()
            .map(|n| Notice {
                at_days_past_due: n.at_days_past_due,
                cure_days: n.cure_days,
            })
            .collect(),
        escalations,
        lease_days: s.lease_days,
        lease_warning_days: s.lease_warning_days,
        quiet_hours,
        release_at_payoff: match s.release_at_payoff {
            ReleaseAtPayoff::Automatic => PayoffRelease::Automatic,
            ReleaseAtPayoff::ByHand => PayoffRelease::ByHand,
        },
        unlock_promise: match &s.unlock_promise {
            None => None,
            Some(p) => Some(UnlockPromise {
                within_minutes: p.within_minutes,
                compensation_per_day: match &p.compensation_per_day {
                    None => None,
                    Some(m) => Some(Money::new(
                        m.minor,
                        parse_currency(
                            "policy.custom.unlock_promise.compensation_per_day.currency",
                            &m.currency,
                        )?,
                    )),
                },
            }),
        },
        emergency_use_hours: s.emergency_use_hours,
        emergency_use_every_days: s.emergency_use_every_days,
        hardship_days_per_year: s.hardship_days_per_year,
        hardship_auto_grant_days: s.hardship_auto_grant_days,
        restructure_max_fee_percent: s.restructure_max_fee_percent,
        restructure_by_support: s.restructure_by_support,
        notice_fallback_days: s.notice_fallback_days,
        remind_days_before: s.remind_days_before,
        sim_change: match s.sim_change {
            SimChangeJson::Ignore => SimChangeRule::Ignore,
            SimChangeJson::Remind => SimChangeRule::Remind,
            SimChangeJson::Restrict { after_days } => SimChangeRule::Restrict { after_days },
        },
    })
}

/// The settings as the API takes them: the inverse of the custom policy's reading, so that a
/// client holding `lien-core` settings (the simulation) sends exactly what the server will read.
/// The appeal hours are not part of the settings, so they are left to the server's defaults.
pub fn settings_json(s: &PolicySettings) -> PolicySettingsJson {
    PolicySettingsJson {
        grace_days: s.grace_days,
        min_days_past_due: s.min_days_past_due,
        min_arrears_percent: s.min_arrears_percent,
        notices: s
            .notices
            .iter()
            .map(|n| NoticeJson {
                at_days_past_due: n.at_days_past_due,
                cure_days: n.cure_days,
            })
            .collect(),
        escalations: s
            .escalations
            .iter()
            .map(|e| EscalationJson {
                at_days_past_due: e.at_days_past_due,
                restriction: match e.restriction {
                    Restriction::Restricted => RestrictionJson::Restricted,
                    Restriction::Locked => RestrictionJson::Locked,
                },
            })
            .collect(),
        lease_days: s.lease_days,
        lease_warning_days: s.lease_warning_days,
        quiet_hours: s.quiet_hours.map(|q| QuietHoursJson {
            start: q.start.strftime("%H:%M").to_string(),
            end: q.end.strftime("%H:%M").to_string(),
        }),
        appeal_response_hours: None,
        appeal_unlock_hours: None,
        release_at_payoff: match s.release_at_payoff {
            PayoffRelease::Automatic => ReleaseAtPayoff::Automatic,
            PayoffRelease::ByHand => ReleaseAtPayoff::ByHand,
        },
        unlock_promise: s.unlock_promise.map(|p| UnlockPromiseJson {
            within_minutes: p.within_minutes,
            compensation_per_day: p.compensation_per_day.map(money),
        }),
        emergency_use_hours: s.emergency_use_hours,
        emergency_use_every_days: s.emergency_use_every_days,
        hardship_days_per_year: s.hardship_days_per_year,
        hardship_auto_grant_days: s.hardship_auto_grant_days,
        restructure_max_fee_percent: s.restructure_max_fee_percent,
        restructure_by_support: s.restructure_by_support,
        notice_fallback_days: s.notice_fallback_days,
        remind_days_before: s.remind_days_before,
        sim_change: match s.sim_change {
            SimChangeRule::Ignore => SimChangeJson::Ignore,
            SimChangeRule::Remind => SimChangeJson::Remind,
            SimChangeRule::Restrict { after_days } => SimChangeJson::Restrict { after_days },
        },
    }
}

fn parse_time(field: &str, text: &str) -> Result<Time, ApiError> {
    Time::strptime("%H:%M", text)
        .map_err(|_| ApiError::invalid(field, format!("{text:?} is not a time in the form HH:MM")))
}

/// A currency code, checked against ISO 4217.
pub fn parse_currency(field: &str, code: &str) -> Result<Currency, ApiError> {
    Currency::parse(code).map_err(|e| ApiError::invalid(field, e))
}

/// An RFC 3339 instant.
pub fn parse_instant(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    text.parse().map_err(|_| {
        ApiError::invalid(
            field,
            format!("{text:?} is not an RFC 3339 time such as 2026-01-31T09:00:00Z"),
        )
    })
}

/// Renders an instant for clients, to the second below it. Never rounded up: a time read back
/// from this text (a provider's payment, dated to the millisecond) must not land in the future,
/// where the ledger would not count it yet and the phone would wait for the scheduler's next pass.
pub fn rfc3339(t: Timestamp) -> String {
    let second = jiff::TimestampRound::new()
        .smallest(jiff::Unit::Second)
        .mode(jiff::RoundMode::Trunc);
    t.round(second).unwrap_or(t).to_string()
}

/// Whether an override takes part in the decision now: not cancelled, and a kind the core knows.
fn core_override(o: &OverrideRecord) -> Result<Option<Override>, ApiError> {
    if o.cancelled_us.is_some() {
        return Ok(None);
    }
    let stored: StoredKind = o
        .kind
        .parse()
        .map_err(|e| internal(format!("stored override {}: {e}", o.id)))?;
    let kind = match stored {
        StoredKind::ManualLock => OverrideKind::ManualLock {
            reason: o.reason.clone(),
        },
        StoredKind::ProvisionalUnlock => OverrideKind::ProvisionalUnlock,
        StoredKind::HardshipPause => OverrideKind::HardshipPause,
        StoredKind::DisputeFreeze => OverrideKind::DisputeFreeze,
        StoredKind::Release => OverrideKind::Release,
        StoredKind::SimChange => OverrideKind::SimChange,
        StoredKind::Message | StoredKind::EmergencyUse | StoredKind::HardshipRequest => {
            return Ok(None);
        }
    };
    Override::new(kind, from_micros(o.from_us), o.until_us.map(from_micros))
        .map(Some)
        .map_err(|e| internal(format!("stored override {} is invalid: {e}", o.id)))
}

fn internal(message: String) -> ApiError {
    ApiError::Internal(anyhow::anyhow!(message))
}

/// The stored plan, payments, overrides and policy as the core's inputs.
pub struct Inputs {
    /// The plan.
    pub plan: InstallmentPlan,
    /// Payments and reversals.
    pub payments: PaymentLog,
    /// Overrides in force or to come.
    pub overrides: Vec<Override>,
    /// The policy.
    pub policy: LockPolicy,
}

/// The device's stored policy, checked.
pub fn stored_policy(snapshot: &DeviceSnapshot) -> Result<LockPolicy, ApiError> {
    let policy_json: PolicyJson = serde_json::from_str(&snapshot.device.enrolled.policy_json)
        .map_err(|e| internal(format!("stored policy: {e}")))?;
    parse_policy(&policy_json)
}

impl Inputs {
    /// Reads the inputs out of a snapshot. Payments and overrides were checked when they were
    /// recorded (against a snapshot with them added), so a failure here is the caller's input
    /// when called on a changed snapshot, and a bug otherwise.
    pub fn of(snapshot: &DeviceSnapshot) -> Result<Inputs, ApiError> {
        let plan_json: PlanJson = serde_json::from_str(&snapshot.device.enrolled.plan_json)
            .map_err(|e| internal(format!("stored plan: {e}")))?;
        let policy_json: PolicyJson = serde_json::from_str(&snapshot.device.enrolled.policy_json)
            .map_err(|e| internal(format!("stored policy: {e}")))?;
        let plan = parse_plan(&plan_json)?;
        let policy = parse_policy(&policy_json)?;
        let currency = plan.currency();
        let payments = snapshot
            .payments
            .iter()
            .map(|p| {
                Ok(Payment {
                    reference: PaymentRef::parse(&p.reference)
                        .map_err(|e| ApiError::invalid("reference", e))?,
                    amount: Money::new(p.amount_minor, parse_currency("currency", &p.currency)?),
                    received_at: from_micros(p.received_us),
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let reversals = snapshot
            .reversals
            .iter()
            .map(|r| {
                Ok(Reversal {
                    reference: PaymentRef::parse(&r.reference)
                        .map_err(|e| ApiError::invalid("reference", e))?,
                    at: from_micros(r.at_us),
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let payments = PaymentLog::new(currency, payments, reversals)
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        let overrides = snapshot
            .overrides
            .iter()
            .filter_map(|o| core_override(o).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Inputs {
            plan,
            payments,
            overrides,
            policy,
        })
    }
}

fn money(m: Money) -> MoneyJson {
    MoneyJson {
        minor: m.minor(),
        currency: m.currency().code().to_string(),
    }
}

impl From<DeviceState> for DeviceStateJson {
    fn from(state: DeviceState) -> DeviceStateJson {
        match state {
            DeviceState::Active => DeviceStateJson::Active,
            DeviceState::Reminder => DeviceStateJson::Reminder,
            DeviceState::Restricted => DeviceStateJson::Restricted,
            DeviceState::Locked => DeviceStateJson::Locked,
            DeviceState::Released => DeviceStateJson::Released,
        }
    }
}

/// An amount as the borrower reads it, in the one money format (`lien-money`).
fn amount_text(m: Money) -> String {
    lien_money::format(m.minor(), m.currency().code(), lien_money::Style::Grouped)
}

/// A date as the borrower reads it: `6 March 2026`.
fn date_text(d: Date) -> String {
    d.strftime("%-d %B %Y").to_string()
}

/// An instant as the borrower reads it, in the plan's time zone: `6 March 2026 at 07:00`.
fn when_text(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%-d %B %Y at %H:%M")
        .to_string()
}

/// What happens next if `amount` is not paid, from the decision's next restriction:
/// `Locked on 6 March 2026 at 07:00 unless KES 500.00 is paid.`
fn what_happens(decision: &Decision, amount: Money, tz: &TimeZone) -> Option<String> {
    let (at, state) = decision.next_restriction?;
    let what = match state {
        DeviceState::Locked => "Locked",
        DeviceState::Restricted => "Restricted",
        _ => return None,
    };
    Some(format!(
        "{what} on {} unless {} is paid.",
        when_text(at, tz),
        amount_text(amount)
    ))
}

/// What the screen says of a SIM change the financier has not accepted.
fn sim_change_text(sim: &lien_core::SimChangeStatus, tz: &TimeZone) -> String {
    sentences(
        "A new SIM card was put in this phone. Please contact your financier.".to_string(),
        match sim.restricts_at {
            Some(_) if sim.restricting => Some(
                "Some functions are limited until the financier has heard from you.".to_string(),
            ),
            Some(at) => Some(format!(
                "Some functions will be limited on {} unless the financier has heard from you.",
                when_text(at, tz)
            )),
            None => None,
        },
    )
}

/// `first`, followed by `then` when there is one.
fn sentences(first: String, then: Option<String>) -> String {
    match then {
        Some(then) => format!("{first} {then}"),
        None => first,
    }
}

/// The reason in words the borrower understands, for the lock screen and the financier. Every
/// reminder and restricted screen says what will happen and when, in the plan's time zone.
fn reason_view(decision: &Decision, tz: &TimeZone) -> ReasonView {
    let due = decision.amount_due;
    let (code, text) = match &decision.reason {
        Reason::GoodStanding => (
            ReasonCode::GoodStanding,
            "Your payments are up to date.".to_string(),
        ),
        Reason::PaidInFull => (
            ReasonCode::PaidInFull,
            "Paid in full. Thank you.".to_string(),
        ),
        Reason::DueSoon { due, amount } => (
            ReasonCode::DueSoon,
            sentences(
                format!("{} is due on {}.", amount_text(*amount), date_text(*due)),
                what_happens(decision, *amount, tz),
            ),
        ),
        Reason::Overdue { since } => (
            ReasonCode::Overdue,
            match (decision.state, decision.pending_notice) {
                (DeviceState::Locked, _) => {
                    format!(
                        "This device is locked due to an overdue installment payment (due {}).",
                        date_text(*since)
                    )
                }
                (DeviceState::Restricted, _) => sentences(
                    format!(
                        "Some functions are limited due to an overdue installment payment (due {}).",
                        date_text(*since)
                    ),
                    what_happens(decision, due, tz),
                ),
                _ => arrears_text(decision, *since, tz),
            },
        ),
        Reason::ManualLock { reason } => (ReasonCode::ManualLock, reason.clone()),
        Reason::ProvisionalUnlock { until } => (
            ReasonCode::ProvisionalUnlock,
            format!("Unlocked for now, until {}.", rfc3339(*until)),
        ),
        Reason::HardshipPause { until } => (
            ReasonCode::HardshipPause,
            format!(
                "Payments are paused until {}; nothing will be locked meanwhile.",
                rfc3339(*until)
            ),
        ),
        Reason::DisputeFreeze => (
            ReasonCode::DisputeFreeze,
            "A dispute is under review; nothing further will be restricted meanwhile.".to_string(),
        ),
        Reason::Released => (
            ReasonCode::Released,
            "This device is released: it is yours.".to_string(),
        ),
        // A restriction for the SIM card does not hide the arrears, nor a notice that waits.
        Reason::SimChanged { .. } => (
            ReasonCode::SimChanged,
            decision
                .overdue_since
                .map(|since| arrears_text(decision, since, tz))
                .unwrap_or_default(),
        ),
    };
    // A SIM change is told on every screen that reminds or restricts, whatever its reason.
    let text = match (&decision.sim_change, decision.state) {
        (Some(sim), DeviceState::Reminder | DeviceState::Restricted | DeviceState::Locked) => {
            let told = sim_change_text(sim, tz);
            if text.is_empty() {
                told
            } else {
                format!("{text} {told}")
            }
        }
        _ => text,
    };
    let due_on = match &decision.reason {
        Reason::DueSoon { due, .. } => Some(due.to_string()),
        _ => None,
    };
    ReasonView { code, text, due_on }
}

/// What a screen that neither restricts nor locks for them says of arrears since `since`: the
/// notice that waits to be served, or else the amount overdue and what comes next.
fn arrears_text(decision: &Decision, since: Date, tz: &TimeZone) -> String {
    let due = decision.amount_due;
    match decision.pending_notice {
        Some(notice) => notice_text(due, since, notice),
        None => sentences(
            format!(
                "An installment payment of {} is overdue (due {}).",
                amount_text(due),
                date_text(since)
            ),
            what_happens(decision, due, tz),
        ),
    }
}

/// The notice of arrears, as the screen shows it until the phone acknowledges it.
fn notice_text(due: Money, since: Date, notice: PendingNotice) -> String {
    format!(
        "Notice: {} is overdue (due {}). If it is not paid within {} of this notice, the phone \
         may be restricted or locked.",
        amount_text(due),
        date_text(since),
        match notice.cure_days {
            1 => "1 day".to_string(),
            n => format!("{n} days"),
        }
    )
}

/// The decision as clients see it; dates on the screen are in the plan's time zone `tz`.
pub fn decision_view(decision: &Decision, tz: &TimeZone) -> DecisionView {
    DecisionView {
        state: decision.state.into(),
        reason: reason_view(decision, tz),
        amount_due: money(decision.amount_due),
        outstanding: money(decision.outstanding),
        credit: money(decision.credit),
        notices_served: decision.notices_served,
        notice_pending: decision.pending_notice.is_some(),
        next_restriction_at: decision.next_restriction.map(|(t, _)| rfc3339(t)),
        next_restriction_state: decision.next_restriction.map(|(_, s)| s.into()),
        next_change_at: decision.next_change.map(rfc3339),
    }
}

/// What is stored in the device row's decision column: the view, and what the current token
/// tells the phone, to know when a new token is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDecision {
    /// The decision.
    pub view: DecisionView,
    /// The token's instructions (state, restrictions, screen) as JSON; equal means no new token.
    pub token_basis: String,
    /// The notices of the current arrears episode: an input of the next decision, kept here
    /// because they are facts about tokens, like `token_basis`. Absent from decisions stored
    /// before notices had to be served: none served then.
    #[serde(default)]
    pub notices: NoticeLog,
}

/// Which notices of the current arrears episode were served, and which token first showed
/// the one that waits.
///
/// A notice is served when the phone acknowledges (`applied_sequence`) a token at or above the
/// one that first showed it: the check-in that reports it takes the decision again at once
/// (`commands::phone::record_report`), so the cure period runs from the acknowledgement and
/// its end is scheduled. A phone never seen is served by the policy's fallback, which the
/// decision's `next_change` brings; the instant is recorded here when it passes, so a phone
/// seen later does not take it back. The log empties when nothing is late: a new episode
/// starts its notices afresh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeLog {
    /// When each notice was served, in the policy's order (microseconds).
    #[serde(default)]
    pub served_us: Vec<i64>,
    /// The notice the phone is shown and has not acknowledged yet.
    #[serde(default)]
    pub shown: Option<ShownNotice>,
    /// The screen telling of the SIM change in effect: shown and served as a notice is.
    #[serde(default)]
    pub sim: Option<SimNotice>,
}

/// What the phone was told of one SIM change (the `sim_change` override starting `since_us`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimNotice {
    /// The change's report (the override's start), which ties this record to it.
    pub since_us: i64,
    /// The first token sequence whose screen told of it.
    pub shown_sequence: Option<i64>,
    /// When the phone acknowledged that token.
    pub served_us: Option<i64>,
}

impl SimNotice {
    fn acknowledges(&self, applied: Option<i64>) -> bool {
        self.served_us.is_none()
            && self
                .shown_sequence
                .is_some_and(|shown| applied.is_some_and(|a| a >= shown))
    }
}

/// The SIM change the phone reported and the financier has not accepted, if any.
pub fn open_sim_change(snapshot: &DeviceSnapshot) -> Option<&OverrideRecord> {
    snapshot.overrides.iter().find(|o| {
        StoredKind::of(&o.kind) == Some(StoredKind::SimChange)
            && o.cancelled_us.is_none()
            && o.until_us.is_none()
    })
}

/// A notice on the phone's screen, waiting to be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShownNotice {
    /// Its position in the policy's notices.
    pub index: usize,
    /// The first token sequence that showed it.
    pub sequence: i64,
}

impl NoticeLog {
    /// The log stored with the device's decision (empty if none).
    pub fn of(snapshot: &DeviceSnapshot) -> NoticeLog {
        let json = &snapshot.device.decision.json;
        let Ok(stored) = serde_json::from_str::<StoredDecision>(json) else {
            return NoticeLog::default();
        };
        // A decision stored before notices had to be served (no `notices` in it) counted its
        // notices as served when it decided them: they stay served, at the instant each became
        // available (the decision places an earlier instant there), so that an upgrade does not
        // turn every restricted phone back into one waiting for a notice.
        let legacy = !json.contains("\"notices\":");
        if legacy && stored.view.notices_served > 0 {
            return NoticeLog {
                served_us: vec![0; stored.view.notices_served],
                ..NoticeLog::default()
            };
        }
        stored.notices
    }

    /// Whether a phone that applied the token `applied` has acknowledged the notice shown, or
    /// the screen telling of its SIM change.
    pub fn acknowledges(&self, applied: Option<i64>) -> bool {
        self.acknowledges_notice(applied) || self.sim.is_some_and(|sim| sim.acknowledges(applied))
    }

    fn acknowledges_notice(&self, applied: Option<i64>) -> bool {
        self.shown.is_some_and(|shown| {
            shown.index == self.served_us.len() && applied.is_some_and(|a| a >= shown.sequence)
        })
    }

    /// The log with what `applied` acknowledges served at `now_us`.
    fn acknowledged(mut self, applied: Option<i64>, now_us: i64) -> NoticeLog {
        if self.acknowledges_notice(applied) {
            self.served_us.push(now_us);
            self.shown = None;
        }
        if let Some(sim) = self.sim.as_mut()
            && sim.acknowledges(applied)
        {
            sim.served_us = Some(now_us);
        }
        self
    }
}

/// The result of evaluating a device.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// For clients and the audit log.
    pub view: DecisionView,
    /// For the device row.
    pub record: DecisionRecord,
    /// When to evaluate again.
    pub next_eval_us: Option<i64>,
    /// A newly signed token, if one is needed.
    pub token: Option<TokenRecord>,
}

/// The restrictions each state asks of the phone. Emergency calls and the payment app are
/// never restricted; a factory reset stays blocked while the phone is financed at all.
fn restrictions(state: TokenState) -> Vec<DeviceRestriction> {
    use DeviceRestriction::*;
    match state {
        TokenState::Active | TokenState::Reminder => vec![FactoryReset],
        TokenState::Restricted => vec![AppInstalls, FactoryReset, Debugging, SafeMode],
        TokenState::Locked => vec![LockScreen, AppInstalls, FactoryReset, Debugging, SafeMode],
        TokenState::Released => vec![],
    }
}

fn token_state(state: DeviceState) -> TokenState {
    match state {
        DeviceState::Active => TokenState::Active,
        DeviceState::Reminder => TokenState::Reminder,
        DeviceState::Restricted => TokenState::Restricted,
        DeviceState::Locked => TokenState::Locked,
        DeviceState::Released => TokenState::Released,
    }
}

/// The latest reminder message in effect at `now`.
fn message_at(snapshot: &DeviceSnapshot, now: i64) -> Option<&OverrideRecord> {
    snapshot
        .overrides
        .iter()
        .filter(|o| StoredKind::of(&o.kind) == Some(StoredKind::Message))
        .filter(|o| o.cancelled_us.is_none())
        .filter(|o| o.from_us <= now && o.until_us.is_none_or(|u| now < u))
        .max_by_key(|o| o.id)
}

/// The start of the latest emergency window the device reported, Unix seconds.
pub fn last_emergency_use(snapshot: &DeviceSnapshot) -> Option<i64> {
    snapshot
        .overrides
        .iter()
        .filter(|o| StoredKind::of(&o.kind) == Some(StoredKind::EmergencyUse))
        .map(|o| o.from_us.div_euclid(1_000_000))
        .max()
}

/// The emergency use a token offers under `settings`: none for a released device or a policy
/// without it.
fn emergency_allowance(
    snapshot: &DeviceSnapshot,
    settings: &PolicySettings,
    state: TokenState,
) -> Option<EmergencyAllowance> {
    (state != TokenState::Released && settings.emergency_use_hours > 0).then(|| {
        EmergencyAllowance {
            hours: settings.emergency_use_hours,
            every_days: settings.emergency_use_every_days,
            last_used_at: last_emergency_use(snapshot),
        }
    })
}

/// Evaluates a device at `now`: decision, next evaluation, and a new token when needed.
pub fn evaluate(
    snapshot: &DeviceSnapshot,
    now: Timestamp,
    signer: &TokenSigner,
) -> Result<Evaluation, ApiError> {
    let inputs = Inputs::of(snapshot)?;
    let now_us = micros(now);
    let device = &snapshot.device;
    let notices = NoticeLog::of(snapshot).acknowledged(device.applied_sequence, now_us);
    let open_sim = open_sim_change(snapshot).map(|o| o.from_us);
    let delivery = Delivery {
        enrolled_at: Some(from_micros(device.enrolled.enrolled_us)),
        notices_served: notices.served_us.iter().copied().map(from_micros).collect(),
        never_seen: device.binding.is_none() && device.applied_sequence.is_none(),
        sim_change_served: notices
            .sim
            .filter(|sim| Some(sim.since_us) == open_sim)
            .and_then(|sim| sim.served_us)
            .map(from_micros),
    };
    let decision = decide(
        &inputs.plan,
        &inputs.payments,
        &inputs.overrides,
        &inputs.policy,
        &delivery,
        now,
    );
    let view = decision_view(&decision, inputs.plan.time_zone());

    let mut state = token_state(decision.state);
    let mut reason = view.reason.text.clone();
    let message = message_at(snapshot, now_us);
    if let Some(m) = message
        && matches!(state, TokenState::Active | TokenState::Reminder)
    {
        state = TokenState::Reminder;
        reason = m.reason.clone();
    }
    // A notice counts as shown only when the screen shows the decision's words about the
    // arrears, not a message nor another reason's (a SIM change's restriction tells the notice
    // first, see `reason_view`).
    let words_on_screen = reason == view.reason.text;
    let notice_on_screen = words_on_screen
        && matches!(
            decision.reason,
            Reason::Overdue { .. } | Reason::SimChanged { .. }
        );
    // The SIM change is told on every reminder or restricted screen the decision's words make.
    let sim_on_screen = words_on_screen
        && matches!(
            decision.state,
            DeviceState::Reminder | DeviceState::Restricted | DeviceState::Locked
        );
    let financier = &snapshot.financier;
    let screen = ScreenText {
        reason,
        amount_due: decision.amount_due.is_positive().then(|| WireMoney {
            minor: decision.amount_due.minor(),
            currency: decision.amount_due.currency().code().to_string(),
        }),
        financier_name: financier.name.clone(),
        financier_contact: financier.contact.clone(),
        payment_link: financier.payment_link.clone(),
    };
    let restrictions = restrictions(state);
    let settings = inputs.policy.settings();
    let emergency = emergency_allowance(snapshot, settings, state);
    // Without emergency use the basis is written as before the allowance existed, so that
    // devices under such policies are not all signed a new token for nothing.
    let token_basis = match &emergency {
        None => serde_json::to_string(&(state, &restrictions, &screen)),
        Some(allowance) => serde_json::to_string(&(state, &restrictions, &screen, allowance)),
    }
    .map_err(|e| internal(format!("token basis: {e}")))?;

    let stored: Option<StoredDecision> = serde_json::from_str(&device.decision.json).ok();
    let lease_length = SignedDuration::from_hours(24 * i64::from(settings.lease_days));
    let current = snapshot.device.token.as_ref();
    // A lease is renewed at half its length, so a phone that checks in on schedule never
    // comes near its warning period.
    let renew_at = current
        .filter(|t| t.lease_end_us.is_some())
        .map(|t| t.issued_us + lease_length.as_micros() as i64 / 2);
    let needs_token = match current {
        None => true,
        Some(_) => {
            stored.as_ref().is_none_or(|s| s.token_basis != token_basis)
                || renew_at.is_some_and(|r| r <= now_us)
        }
    };
    let token = if needs_token {
        let issued_at = now.as_second();
        let lease = (state != TokenState::Released).then(|| Lease {
            ends_at: issued_at + lease_length.as_secs(),
            warn_from: issued_at + lease_length.as_secs()
                - 86_400 * i64::from(settings.lease_warning_days),
        });
        let claims = StatusClaims {
            device_id: snapshot.device.enrolled.id.clone(),
            sequence: current.map_or(1, |t| t.sequence as u64 + 1),
            state,
            restrictions: restrictions.clone(),
            screen,
            issued_at,
            lease,
            emergency,
        };
        let bytes = signer.sign(&claims);
        Some(TokenRecord {
            sequence: claims.sequence as i64,
            state: state.as_str().to_string(),
            issued_us: issued_at * 1_000_000,
            lease_end_us: lease.map(|l| l.ends_at * 1_000_000),
            status_code: status_code(&bytes),
            bytes,
        })
    } else {
        None
    };
    let notices = next_notice_log(
        &decision,
        notices,
        (notice_on_screen, sim_on_screen),
        token.as_ref().or(current).map_or(0, |t| t.sequence),
    );

    // Look again at the earliest of: the decision's own next change, the end of the
    // message, the start of a pending release, and the lease renewal of the newest token.
    let lease_renewal = match &token {
        Some(t) if t.lease_end_us.is_some() => {
            Some(t.issued_us + lease_length.as_micros() as i64 / 2)
        }
        Some(_) => None,
        None => renew_at,
    };
    let pending_release = snapshot
        .overrides
        .iter()
        .filter(|o| StoredKind::of(&o.kind) == Some(StoredKind::Release))
        .filter(|o| o.cancelled_us.is_none() && o.from_us > now_us)
        .map(|o| o.from_us)
        .min();
    let next_eval_us = [
        decision.next_change.map(micros),
        message.and_then(|m| m.until_us),
        pending_release,
        lease_renewal,
    ]
    .into_iter()
    .flatten()
    .min();

    let record = DecisionRecord {
        state: view.state.as_str().to_string(),
        json: serde_json::to_string(&StoredDecision {
            view: view.clone(),
            token_basis,
            notices,
        })
        .map_err(|e| internal(format!("decision: {e}")))?,
        amount_due_minor: decision.amount_due.minor(),
        currency: decision.amount_due.currency().code().to_string(),
        overdue_since: decision.overdue_since.map(|d| d.to_string()),
    };
    Ok(Evaluation {
        view,
        record,
        next_eval_us,
        token,
    })
}

/// The notice log to keep after `decision`: the notices it counts as served (acknowledged or
/// by the fallback), and the one it shows, with the first token sequence that showed it, if
/// the screen shows it (`on_screen`: no message in its place); empty once nothing is late.
fn next_notice_log(
    decision: &Decision,
    log: NoticeLog,
    (on_screen, sim_on_screen): (bool, bool),
    token_sequence: i64,
) -> NoticeLog {
    let sim = decision.sim_change.map(|status| {
        let since_us = micros(status.since);
        let same = log.sim.filter(|sim| sim.since_us == since_us);
        SimNotice {
            since_us,
            shown_sequence: same
                .and_then(|sim| sim.shown_sequence)
                .or(sim_on_screen.then_some(token_sequence)),
            served_us: same.and_then(|sim| sim.served_us),
        }
    });
    if decision.overdue_since.is_none() {
        return NoticeLog {
            sim,
            ..NoticeLog::default()
        };
    }
    let shown = decision
        .pending_notice
        .filter(|_| on_screen)
        .map(|pending| ShownNotice {
            index: pending.index,
            sequence: match log.shown {
                Some(shown) if shown.index == pending.index => shown.sequence,
                _ => token_sequence,
            },
        });
    NoticeLog {
        served_us: decision
            .notices_served_at
            .iter()
            .copied()
            .map(micros)
            .collect(),
        shown,
        sim,
    }
}

/// The stored decision's view.
pub fn stored_view(record: &DecisionRecord) -> Result<DecisionView, ApiError> {
    serde_json::from_str::<StoredDecision>(&record.json)
        .map(|s| s.view)
        .map_err(|e| internal(format!("stored decision: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_presets_settings_read_back_as_the_api_sends_them() {
        for preset in Preset::ALL {
            let settings = preset.settings();
            let mut sent = settings_json(&settings);
            // Through JSON, as a client sends them.
            sent = serde_json::from_value(serde_json::to_value(&sent).unwrap()).unwrap();
            let read = custom_settings(&sent).unwrap();
            assert_eq!(read, settings, "{}", preset.name());
        }
        // Quiet hours, a promise with compensation and a restricting SIM rule are among them.
        let all: Vec<_> = Preset::ALL.iter().map(|p| p.settings()).collect();
        assert!(all.iter().any(|s| s.quiet_hours.is_some()));
        assert!(all.iter().any(|s| {
            s.unlock_promise
                .is_some_and(|p| p.compensation_per_day.is_some())
        }));
        assert!(
            all.iter()
                .any(|s| matches!(s.sim_change, SimChangeRule::Restrict { .. }))
        );
    }

    #[test]
    fn a_time_is_rendered_to_the_second_below_it_never_above() {
        let paid: Timestamp = "2026-03-01T09:00:00.700Z".parse().unwrap();
        assert_eq!(rfc3339(paid), "2026-03-01T09:00:00Z");
        let whole: Timestamp = "2026-03-01T09:00:00Z".parse().unwrap();
        assert_eq!(rfc3339(whole), "2026-03-01T09:00:00Z");
    }

    #[test]
    fn a_stored_kind_is_read_back_by_its_word() {
        for kind in StoredKind::ALL {
            assert_eq!(kind.as_str().parse::<StoredKind>(), Ok(kind));
            assert_eq!(StoredKind::of(kind.as_str()), Some(kind));
        }
        assert_eq!(
            "reminder".parse::<StoredKind>(),
            Err(UnknownKind("reminder".into()))
        );
        assert_eq!(StoredKind::of("reminder"), None);
    }
}
