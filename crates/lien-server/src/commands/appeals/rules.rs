//! The appeal rules, as functions of what was read: who may open an appeal (the holder of the
//! phone, shown by its current status code; not while one is open, nor during the cool-down
//! after a rejection; not about a released phone), the response deadline and the provisional
//! unlock a payment appeal earns, where an appeal stands, and what opening and answering one
//! change on the device. None of them reads the store or the clock: the handlers read, pass
//! `now` in, and write what these return.

use jiff::Timestamp;
use jiff::civil::Date;
use lien_core::Money;
use lien_store::{
    AppealRecord, AppealWrite, DeviceChange, DeviceSnapshot, OverrideRecord, PaymentRecord,
};
use subtle::ConstantTimeEq;

use super::{AppealStatus, ClaimKind, OpenedAppeal};
use crate::app::AppState;
use crate::clock::{from_micros, micros};
use crate::commands::Mutation;
use crate::commands::end_or_cancel;
use crate::domain::{StoredKind, rfc3339};
use crate::error::ApiError;
use crate::wire::PolicyJson;

/// Status codes of tokens superseded before this instant no longer match on the public pages
/// or for appeals (`status_code_grace_hours` ago).
pub fn superseded_cutoff_us(state: &AppState) -> i64 {
    micros(state.clock.now()) - i64::from(state.settings.status_code_grace_hours) * 3_600_000_000
}

/// The one answer to an appellant who did not prove holding the phone, whatever was wrong: an
/// IMEI no financier claims, a phone not set up yet, a wrong or superseded code. It says neither
/// whether the IMEI is financed nor which of the two did not match.
pub fn not_proven() -> ApiError {
    ApiError::NotFound("phone with this IMEI and status code")
}

/// What a holder's proof refused for the phone's own limit says was too much: the pages find
/// their words by it.
pub const TOO_MANY_PROOFS: &str = "too many status codes were tried for this phone";

/// What a look-up by status code refused for the server's limit says (see `find_device`).
pub const TOO_MANY_CODE_LOOKUPS: &str =
    "too many look-ups by status code on this server; enter the IMEI instead";

/// Whether `code` is one of the status codes the phone may be showing (`shown`): compared with
/// each in constant time, and with all of them, so the time taken says nothing about which
/// came close.
pub fn status_code_matches(shown: &[String], code: &str) -> bool {
    let mut matched = subtle::Choice::from(0);
    for candidate in shown {
        matched |= candidate.as_bytes().ct_eq(code.as_bytes());
    }
    bool::from(matched)
}

/// Why a new appeal about a device may not open, given the device's newest appeal (`latest`):
/// one is open, or the last was rejected less than `cooldown_us` ago. Told only to an
/// appellant who proved holding the phone, so the references it names reach no stranger.
pub fn history_refusal(
    latest: Option<&AppealRecord>,
    now_us: i64,
    cooldown_us: i64,
) -> Result<(), ApiError> {
    let Some(last) = latest else {
        return Ok(());
    };
    let status = AppealStatus::stored(&last.status)?;
    if status == AppealStatus::Open {
        return Err(ApiError::Conflict(format!(
            "appeal {} about this phone is already open; follow it with its reference",
            last.reference
        )));
    }
    if status == AppealStatus::Rejected
        && let Some(decided_us) = last.decided_us
        && now_us < decided_us + cooldown_us
    {
        return Err(ApiError::Conflict(format!(
            "appeal {} about this phone was rejected at {}; a new appeal can be opened from {}",
            last.reference,
            rfc3339(from_micros(decided_us)),
            rfc3339(from_micros(decided_us + cooldown_us))
        )));
    }
    Ok(())
}

/// Why a payment appeal will not unlock the phone at its deadline, or `None` if it will. The
/// provisional unlock stands in for recording the claimed payment while the financier is
/// silent, so it is granted only where recording it would lift the arrears: something is due
/// now, the claimed amount (in the plan's currency, checked before) covers it, and the payment
/// reference is not one already recorded. The receipt was checked as a whole document of a
/// plausible size before, and the appellant proved holding the phone.
pub fn unlock_withheld(
    snapshot: &DeviceSnapshot,
    appeal: &AppealRecord,
    now: Timestamp,
) -> Result<Option<String>, ApiError> {
    let due = amount_due_now(snapshot, now)?;
    if !due.is_positive() {
        return Ok(Some(
            "nothing is overdue on this phone now, so there is no lock for a payment to lift"
                .into(),
        ));
    }
    if let Some(reference) = &appeal.payment_reference
        && snapshot.payments.iter().any(|p| &p.reference == reference)
    {
        return Ok(Some(format!(
            "payment {reference} is already recorded on this phone's account"
        )));
    }
    let claimed = appeal.amount_minor.unwrap_or(0);
    if claimed < due.minor() {
        return Ok(Some(format!(
            "the amount claimed ({}) does not cover the {due} due now",
            Money::new(claimed, due.currency()),
        )));
    }
    Ok(None)
}

/// The response deadline and provisional-unlock length of a device's policy (its stored JSON):
/// a custom policy's own settings, else the server's (`default_response_hours`,
/// `default_unlock_hours`); the unlock never outlasts the policy's lease.
pub fn appeal_terms(
    policy_json: &str,
    default_response_hours: u32,
    default_unlock_hours: u32,
) -> Result<(i64, i64), ApiError> {
    let policy: PolicyJson =
        serde_json::from_str(policy_json).map_err(|e| ApiError::Internal(e.into()))?;
    let parsed = crate::domain::parse_policy(&policy)?;
    let lease_hours = i64::from(parsed.settings().lease_days) * 24;
    let (response, unlock) = match &policy {
        PolicyJson::Custom(s) => (s.appeal_response_hours, s.appeal_unlock_hours),
        PolicyJson::Preset(_) => (None, None),
    };
    let response = i64::from(response.unwrap_or(default_response_hours)).max(1);
    let unlock = i64::from(unlock.unwrap_or(default_unlock_hours)).clamp(1, lease_hours.max(1));
    Ok((response * 3_600_000_000, unlock * 3_600_000_000))
}

/// Where an appeal stands, as a value: the API words it in English ([`progress`]), the
/// borrower pages in the reader's language. Instants are microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The financier accepted it.
    Accepted,
    /// The financier rejected it.
    Rejected,
    /// Unanswered at the deadline: the phone is unlocked until `until_us`.
    UnlockedUntil {
        /// The response deadline.
        deadline_us: i64,
        /// The end of the provisional unlock.
        until_us: i64,
    },
    /// Unanswered, and the provisional unlock it earned has ended.
    UnlockEnded {
        /// The response deadline.
        deadline_us: i64,
        /// The end of the provisional unlock.
        until_us: i64,
    },
    /// Waiting for an answer; the phone is unlocked for a while if none comes by the deadline.
    WaitingWithUnlock {
        /// The response deadline.
        deadline_us: i64,
    },
    /// Waiting for an answer to a payment claim that earns no provisional unlock.
    WaitingWithoutUnlock {
        /// The response deadline.
        deadline_us: i64,
    },
    /// Waiting for an answer to a claim that is not about a payment.
    Waiting {
        /// The response deadline.
        deadline_us: i64,
    },
}

/// Where an appeal stands at `now_us`.
pub fn stage(appeal: &AppealRecord, now_us: i64) -> Stage {
    let deadline_us = appeal.deadline_us;
    match AppealStatus::parse(&appeal.status) {
        Some(AppealStatus::Accepted) => Stage::Accepted,
        Some(AppealStatus::Rejected) => Stage::Rejected,
        Some(AppealStatus::Open) | None => match appeal.unlock_until_us {
            Some(until_us) if now_us >= deadline_us && now_us < until_us => Stage::UnlockedUntil {
                deadline_us,
                until_us,
            },
            Some(until_us) if now_us >= until_us => Stage::UnlockEnded {
                deadline_us,
                until_us,
            },
            Some(_) => Stage::WaitingWithUnlock { deadline_us },
            None if ClaimKind::parse(&appeal.claim) == Some(ClaimKind::Paid) => {
                Stage::WaitingWithoutUnlock { deadline_us }
            }
            None => Stage::Waiting { deadline_us },
        },
    }
}

/// Where an appeal stands, in words the borrower understands (English, for the API).
pub fn progress(appeal: &AppealRecord, now_us: i64) -> String {
    let at = |us: i64| rfc3339(from_micros(us));
    match stage(appeal, now_us) {
        Stage::Accepted => "Accepted.".to_string(),
        Stage::Rejected => "Rejected.".to_string(),
        Stage::UnlockedUntil {
            deadline_us,
            until_us,
        } => format!(
            "Not answered by the deadline ({}): the phone is unlocked until {} \
             while the financier reviews it.",
            at(deadline_us),
            at(until_us)
        ),
        Stage::UnlockEnded {
            deadline_us,
            until_us,
        } => format!(
            "Not answered by the deadline ({}); the provisional unlock ended at {}. \
             The lock will not get worse while the appeal is open.",
            at(deadline_us),
            at(until_us)
        ),
        Stage::WaitingWithUnlock { deadline_us } => format!(
            "Waiting for the financier, who must answer by {}. If they do not, the \
             phone is unlocked for a while from then. Nothing gets worse meanwhile.",
            at(deadline_us)
        ),
        Stage::WaitingWithoutUnlock { deadline_us } => format!(
            "Waiting for the financier, who should answer by {}. Nothing gets worse \
             meanwhile. This claim does not unlock the phone at the deadline: the amount \
             claimed does not lift what is overdue, or the payment is already recorded.",
            at(deadline_us)
        ),
        Stage::Waiting { deadline_us } => format!(
            "Waiting for the financier, who should answer by {}. Nothing gets worse \
             meanwhile.",
            at(deadline_us)
        ),
    }
}

/// What the device owes now: paying it brings it back to good standing.
fn amount_due_now(snapshot: &DeviceSnapshot, now: Timestamp) -> Result<lien_core::Money, ApiError> {
    let inputs = crate::domain::Inputs::of(snapshot)?;
    let decision = lien_core::decide(
        &inputs.plan,
        &inputs.payments,
        &inputs.overrides,
        &inputs.policy,
        // What is due does not depend on which notices reached the phone.
        &lien_core::Delivery::default(),
        now,
    );
    Ok(decision.amount_due)
}

/// How much of a claimed payment accepting an appeal records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    /// None of it.
    Nothing,
    /// All of it (a role that may record payments).
    Claimed,
    /// No more than what is due now: a role that may not record payments (support) can cure
    /// the arrears the borrower proved paying, never advance the plan; the financier records
    /// the rest, if any.
    UpToDue,
}

/// The device change that answers an appeal: ends what the appeal put in force, records the
/// claimed payment when accepting a payment appeal says so (and it is not already recorded,
/// dated when it was paid but never in the future), as much of it as `recording` allows, and
/// writes the answer.
pub fn answer_mutation(
    snapshot: &DeviceSnapshot,
    now: Timestamp,
    appeal: &AppealRecord,
    accept: bool,
    reason: String,
    recording: Recording,
    decided_by: String,
) -> Result<Mutation, ApiError> {
    let now_us = micros(now);
    let ours = format!("appeal:{}", appeal.reference);
    // End what the appeal put in force: what has begun ends now, what has not never applies.
    let override_updates = end_or_cancel(
        snapshot.overrides.iter().filter(|o| o.actor == ours),
        now_us,
    );
    let mut payment = None;
    let mut capped = false;
    if recording != Recording::Nothing
        && let (Some(reference), Some(minor), Some(currency), Some(paid_on)) = (
            &appeal.payment_reference,
            appeal.amount_minor,
            &appeal.currency,
            &appeal.paid_on,
        )
        && !snapshot.payments.iter().any(|p| &p.reference == reference)
    {
        let paid_on: Date = paid_on
            .parse()
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("stored paid_on {paid_on:?}")))?;
        let received = paid_on
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .unwrap_or(now)
            .min(now);
        let minor = match recording {
            Recording::UpToDue => minor.min(amount_due_now(snapshot, now)?.minor()),
            _ => minor,
        };
        payment = (minor > 0).then(|| PaymentRecord {
            reference: reference.clone(),
            amount_minor: minor,
            currency: currency.clone(),
            received_us: micros(received),
            recorded_us: now_us,
            acknowledged_us: None,
        });
        if recording == Recording::UpToDue && appeal.amount_minor != Some(minor) {
            capped = true;
        }
    }
    let status = if accept {
        AppealStatus::Accepted
    } else {
        AppealStatus::Rejected
    }
    .as_str();
    let mut audit_reason = format!("appeal {} {status}", appeal.reference);
    if !reason.is_empty() {
        audit_reason.push_str(&format!(": {reason}"));
    }
    if let Some(p) = &payment {
        audit_reason.push_str(&format!("; payment {} recorded", p.reference));
        if capped {
            audit_reason.push_str(" up to the amount due (the financier records the rest)");
        }
    }
    let action = if accept {
        "appeal_accepted"
    } else {
        "appeal_rejected"
    };
    let change = DeviceChange {
        payment,
        override_updates,
        appeal: Some(AppealWrite::Decide {
            reference: appeal.reference.clone(),
            status: status.into(),
            decided_us: now_us,
            decided_by,
            reason,
        }),
        ..DeviceChange::default()
    };
    Ok(Mutation::new(action, audit_reason, change))
}

/// The device change that opens an appeal, decided under the device's lock: the appeal row,
/// its dispute freeze from now and, for a payment appeal that passes [`unlock_withheld`], a
/// provisional unlock of `unlock_us` from the deadline. A released phone has nobody to appeal
/// to. Returns the change to make and the appeal as it will be written.
pub fn open_mutation(
    snapshot: &DeviceSnapshot,
    record: AppealRecord,
    unlock_us: i64,
    now: Timestamp,
) -> Result<(Mutation, OpenedAppeal), ApiError> {
    if snapshot.device.released_us.is_some() {
        return Err(ApiError::Conflict(
            "this phone is released: no financier holds a claim on it".into(),
        ));
    }
    let mut record = record;
    let mut unlock_withheld_because = None;
    if ClaimKind::stored(&record.claim)? == ClaimKind::Paid {
        match unlock_withheld(snapshot, &record, now)? {
            None => record.unlock_until_us = Some(record.deadline_us + unlock_us),
            Some(why) => unlock_withheld_because = Some(why),
        }
    }
    let r = &record;
    let actor = format!("appeal:{}", r.reference);
    let freeze = OverrideRecord {
        id: 0,
        kind: StoredKind::DisputeFreeze.as_str().into(),
        reason: format!("appeal {} is under review", r.reference),
        from_us: r.opened_us,
        until_us: None,
        cancelled_us: None,
        actor: actor.clone(),
        created_us: r.opened_us,
    };
    let unlock = r.unlock_until_us.map(|until| OverrideRecord {
        id: 0,
        kind: StoredKind::ProvisionalUnlock.as_str().into(),
        reason: format!("appeal {} was not answered by its deadline", r.reference),
        from_us: r.deadline_us,
        until_us: Some(until),
        cancelled_us: None,
        actor,
        created_us: r.opened_us,
    });
    let mut reason = format!(
        "appeal {} ({}) opened; the financier must answer by {}",
        r.reference,
        r.claim,
        rfc3339(from_micros(r.deadline_us))
    );
    if let Some(until) = r.unlock_until_us {
        reason.push_str(&format!(
            ", or the phone is unlocked from then until {}",
            rfc3339(from_micros(until))
        ));
    }
    if let Some(why) = &unlock_withheld_because {
        reason.push_str(&format!("; no provisional unlock: {why}"));
    }
    let change = DeviceChange {
        new_override: Some(freeze),
        more_overrides: unlock.into_iter().collect(),
        appeal: Some(AppealWrite::Open(Box::new(record.clone()))),
        ..DeviceChange::default()
    };
    let mutation = Mutation {
        response: Some(serde_json::Value::Null),
        ..Mutation::new("appeal_opened", reason, change)
    };
    let opened = OpenedAppeal {
        record,
        unlock_withheld: unlock_withheld_because,
    };
    Ok((mutation, opened))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn appeal(status: &str, decided_us: Option<i64>) -> AppealRecord {
        AppealRecord {
            reference: "AP-2345-6789-ABCD-EFGH-JKLM".into(),
            device_id: "dev".into(),
            financier_id: "fin".into(),
            claim: "paid".into(),
            contact: "+254700000000".into(),
            statement: String::new(),
            payment_reference: Some("QX12".into()),
            paid_on: Some("2026-01-01".into()),
            amount_minor: Some(100_000),
            currency: Some("KES".into()),
            status: status.into(),
            opened_us: 0,
            deadline_us: 72 * HOUR,
            unlock_until_us: Some(240 * HOUR),
            decided_us,
            decided_by: None,
            decision_reason: None,
            attachment: None,
        }
    }

    #[test]
    fn one_open_appeal_at_a_time_and_a_cool_down_after_a_rejection() {
        assert!(history_refusal(None, 0, 72 * HOUR).is_ok());
        let open = history_refusal(Some(&appeal("open", None)), HOUR, 72 * HOUR).unwrap_err();
        assert!(open.to_string().contains("is already open"), "{open}");
        let rejected = appeal("rejected", Some(10 * HOUR));
        let cooling = history_refusal(Some(&rejected), 20 * HOUR, 72 * HOUR).unwrap_err();
        assert!(
            cooling
                .to_string()
                .contains("a new appeal can be opened from"),
            "{cooling}"
        );
        assert!(history_refusal(Some(&rejected), 82 * HOUR, 72 * HOUR).is_ok());
        // An accepted appeal leaves no cool-down.
        let accepted = appeal("accepted", Some(10 * HOUR));
        assert!(history_refusal(Some(&accepted), 11 * HOUR, 72 * HOUR).is_ok());
    }

    #[test]
    fn a_status_code_matches_only_one_the_phone_may_show() {
        let shown = vec!["12345678".to_string(), "87654321".to_string()];
        assert!(status_code_matches(&shown, "87654321"));
        assert!(!status_code_matches(&shown, "12345679"));
        assert!(!status_code_matches(&[], "12345678"));
    }

    #[test]
    fn progress_follows_the_deadline_and_the_provisional_unlock() {
        let a = appeal("open", None);
        assert!(progress(&a, HOUR).starts_with("Waiting for the financier, who must answer"));
        assert!(progress(&a, 100 * HOUR).contains("the phone is unlocked until"));
        assert!(progress(&a, 300 * HOUR).contains("the provisional unlock ended"));
        let withheld = AppealRecord {
            unlock_until_us: None,
            ..appeal("open", None)
        };
        assert!(progress(&withheld, HOUR).contains("does not unlock the phone"));
        assert_eq!(
            progress(&appeal("accepted", Some(HOUR)), 2 * HOUR),
            "Accepted."
        );
    }
}
