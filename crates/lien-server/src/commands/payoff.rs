//! Release at payoff: a device whose plan is paid in full is released after the cancel window
//! without anyone asking, unless its policy says the financier releases by hand.
//!
//! The rule lives here once, in [`follow_payoff`], and `device_change::completed` applies it to
//! every change that adds a payment or a reversal, whichever command built it (a payment, an
//! accepted payment appeal, a reversal, a payment provider's callback), so no path that moves
//! the ledger can leave it out. What "paid in full" means is `lien-core`'s
//! (`PaymentLog::pays_off`); the rule acts only where a change crosses it:
//!
//! - A change that takes the plan from owing something to paid in full schedules the release
//!   exactly as `overrides::release` does (a release override from the end of
//!   `release_cancel_hours`, audited `release_requested`), if the policy's `release_at_payoff`
//!   is automatic, the device is not released and no release is pending.
//! - A change that takes the plan back out of paid in full (a reversal) cancels an automatic
//!   release still pending, audited `release_cancelled`: the borrower has not paid after all,
//!   and the window exists for this. A release the financier asked for by hand stands: it was
//!   an explicit act, which they can cancel themselves. Once final, a release stays final.
//!
//! Who vouches for the money matters, because a release is final: the payoff schedules the
//! release only when the payment comes from someone who may release the phone anyway (a
//! financier admin) or from a payment provider's confirmation (money the provider holds).
//! A payoff typed in by an agent, or by an agent accepting a borrower's payment appeal, would
//! otherwise let a role that cannot release free a phone for good with a payment it then
//! reverses after the window; it is recorded (`paid_in_full`) and the release waits for a
//! financier admin. The command says which (`Mutation::releases_at_payoff`).
//!
//! An automatic release is told apart by its actor, `payoff:<payment reference>`. Because the
//! rule follows crossings, a payment after the payoff (an overpayment) does not bring back a
//! release the financier cancelled; a reversal followed by a new payment that pays the plan
//! off again schedules a new one.

use jiff::{SignedDuration, Timestamp};
use lien_core::PayoffRelease;
use lien_store::{DeviceChange, DeviceSnapshot, OverrideRecord, OverrideUpdate};

use super::device_change::with_inputs;
use crate::clock::{from_micros, micros};
use crate::domain::{Inputs, StoredKind, rfc3339};
use crate::error::ApiError;

/// The actor of a release the payoff scheduled; the payment's reference follows it.
const PAYOFF_ACTOR: &str = "payoff:";

/// Whether a release override is one the payoff scheduled, not one the financier asked for.
pub fn is_automatic(release: &OverrideRecord) -> bool {
    release.actor.starts_with(PAYOFF_ACTOR)
}

/// What [`follow_payoff`] added to a change, for its own audit record.
pub struct PayoffStep {
    /// The audit action: `release_requested` or `release_cancelled`, as the release commands
    /// write them.
    pub action: &'static str,
    /// Why, for the history.
    pub reason: String,
}

/// Adds to `change` what the payoff rule asks of it (see the module's comment): the release
/// scheduled from `now + window` if `may_schedule`, or an automatic release cancelled. Returns
/// what it did, to audit, or `None` when the change does not cross "paid in full".
pub fn follow_payoff(
    snapshot: &DeviceSnapshot,
    change: &mut DeviceChange,
    window: SignedDuration,
    now: Timestamp,
    may_schedule: bool,
) -> Result<Option<PayoffStep>, ApiError> {
    if change.payment.is_none() && change.reversal.is_none() {
        return Ok(None);
    }
    if snapshot.device.released_us.is_some() {
        return Ok(None);
    }
    let before = Inputs::of(snapshot)?;
    let after = Inputs::of(&with_inputs(snapshot, change))?;
    let was_paid_off = before.payments.pays_off(&before.plan);
    let is_paid_off = after.payments.pays_off(&after.plan);
    let now_us = micros(now);
    let releases = || {
        snapshot.overrides.iter().filter(|o| {
            StoredKind::of(&o.kind) == Some(StoredKind::Release) && o.cancelled_us.is_none()
        })
    };

    if !was_paid_off && is_paid_off {
        if after.policy.settings().release_at_payoff == PayoffRelease::ByHand
            || releases().next().is_some()
        {
            return Ok(None);
        }
        let reference = change.payment.as_ref().map_or("", |p| p.reference.as_str());
        if !may_schedule {
            return Ok(Some(PayoffStep {
                action: "paid_in_full",
                reason: format!(
                    "paid in full by payment {reference}, recorded by a role that cannot release \
                     the phone: a financier admin releases it"
                ),
            }));
        }
        let from = now + window;
        let reason = format!(
            "paid in full by payment {reference}: released at {} unless cancelled before",
            rfc3339(from)
        );
        let release = OverrideRecord {
            id: 0,
            kind: StoredKind::Release.as_str().to_string(),
            reason: reason.clone(),
            from_us: micros(from),
            until_us: None,
            cancelled_us: None,
            actor: format!("{PAYOFF_ACTOR}{reference}"),
            created_us: now_us,
        };
        if change.new_override.is_none() {
            change.new_override = Some(release);
        } else {
            change.more_overrides.push(release);
        }
        return Ok(Some(PayoffStep {
            action: "release_requested",
            reason,
        }));
    }

    if was_paid_off && !is_paid_off {
        let Some(automatic) = releases().find(|o| o.from_us > now_us && is_automatic(o)) else {
            return Ok(None);
        };
        change.override_updates.push(OverrideUpdate {
            id: automatic.id,
            until_us: None,
            cancelled_us: Some(now_us),
        });
        let reversed = change
            .reversal
            .as_ref()
            .map_or("", |r| r.reference.as_str());
        return Ok(Some(PayoffStep {
            action: "release_cancelled",
            reason: format!(
                "payment {reversed} reversed: the plan is no longer paid in full, so the \
                 automatic release due at {} is cancelled",
                rfc3339(from_micros(automatic.from_us))
            ),
        }));
    }
    Ok(None)
}
