//! The unlock-time promise, measured: the payments that lifted a phone's restriction later than
//! the device's policy promises (`lien-core`'s `UnlockPromise`), with what the borrower is owed.
//!
//! A payment's unlock time runs from Lien's recording of it to the phone's report that it holds
//! the token the payment issued (the check-in's applied sequence), so it counts what Lien and the
//! phone's network took, not the provider's own delay in telling Lien. A payment the phone has
//! not acknowledged yet is late once it is older than the promise, and its delay still grows.

use std::collections::HashMap;

use jiff::SignedDuration;
use lien_core::{Money, UnlockPromise};
use lien_store::UnlockPayment;

use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::{from_micros, micros};
use crate::domain::parse_policy;
use crate::error::ApiError;
use crate::wire::PolicyJson;

/// The most late payments one report lists; a longer list is marked truncated.
pub const MAX_LATE_UNLOCKS: u32 = 1000;

/// One payment whose unlock broke the promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateUnlock {
    /// The payment, as stored.
    pub payment: UnlockPayment,
    /// From recording to acknowledgement, or to now when not acknowledged yet.
    pub delay: SignedDuration,
    /// The promise it broke.
    pub promise: UnlockPromise,
    /// Owed to the borrower: the promise's compensation for each started day beyond it; `None`
    /// when the policy names none, or names it in another currency than the payment's.
    pub compensation: Option<Money>,
}

/// The late unlocks of a period, and whether there were more than listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateUnlocks {
    /// By recording time.
    pub late: Vec<LateUnlock>,
    /// More payments were slow than the report read.
    pub truncated: bool,
}

/// The payments recorded on the actor's devices in `period` whose unlock broke their policy's
/// promise, at the server's now.
pub async fn late_unlocks(
    state: &AppState,
    actor: &Actor,
    period: (i64, i64),
) -> Result<LateUnlocks, ApiError> {
    actor.require(Action::Read)?;
    let now = state.clock.now();
    // No promise is shorter than a minute, so the store leaves out every faster unlock.
    let slower_than = SignedDuration::from_mins(1);
    let slow = state
        .store
        .slow_unlocks(
            actor.financier_id.as_deref(),
            period,
            slower_than.as_micros() as i64,
            micros(now),
            MAX_LATE_UNLOCKS,
        )
        .await?;
    let truncated = slow.len() >= MAX_LATE_UNLOCKS as usize;
    let mut promises: HashMap<String, Option<UnlockPromise>> = HashMap::new();
    let mut late = Vec::new();
    for payment in slow {
        let promise = match promises.get(&payment.policy_json) {
            Some(promise) => *promise,
            None => {
                let promise = promise_of(&payment.policy_json)?;
                promises.insert(payment.policy_json.clone(), promise);
                promise
            }
        };
        let Some(promise) = promise else { continue };
        let until = payment.acked_us.map_or(now, from_micros);
        let delay = until.duration_since(from_micros(payment.recorded_us));
        if let Some(compensation) = judge(&promise, delay, &payment.currency) {
            late.push(LateUnlock {
                payment,
                delay,
                promise,
                compensation,
            });
        }
    }
    Ok(LateUnlocks { late, truncated })
}

/// The unlock promise of a stored policy.
fn promise_of(policy_json: &str) -> Result<Option<UnlockPromise>, ApiError> {
    let policy: PolicyJson = serde_json::from_str(policy_json)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored policy: {e}")))?;
    Ok(parse_policy(&policy)?.settings().unlock_promise)
}

/// Whether an unlock that took `delay` broke `promise`, and if so what is owed for a payment in
/// `currency`: `None` when it was kept, `Some(None)` when broken with nothing (or nothing in
/// this currency) owed.
pub fn judge(
    promise: &UnlockPromise,
    delay: SignedDuration,
    currency: &str,
) -> Option<Option<Money>> {
    let allowed = SignedDuration::from_mins(i64::from(promise.within_minutes));
    if delay <= allowed {
        return None;
    }
    let beyond = (delay - allowed).as_secs();
    let started_days = (beyond + 86_399) / 86_400;
    Some(
        promise
            .compensation_per_day
            .filter(|per_day| per_day.currency().code() == currency)
            .map(|per_day| {
                Money::new(
                    per_day.minor().saturating_mul(started_days),
                    per_day.currency(),
                )
            }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use lien_core::Currency;

    fn india() -> UnlockPromise {
        UnlockPromise {
            within_minutes: 60,
            compensation_per_day: Some(Money::new(10_000, Currency::parse("INR").unwrap())),
        }
    }

    #[test]
    fn an_unlock_within_the_promise_owes_nothing() {
        assert_eq!(judge(&india(), SignedDuration::from_mins(60), "INR"), None);
        assert_eq!(judge(&india(), SignedDuration::from_secs(3), "INR"), None);
    }

    #[test]
    fn each_started_day_beyond_the_promise_is_owed() {
        let inr = |minor| Some(Some(Money::new(minor, Currency::parse("INR").unwrap())));
        assert_eq!(
            judge(&india(), SignedDuration::from_mins(61), "INR"),
            inr(10_000)
        );
        assert_eq!(
            judge(&india(), SignedDuration::from_hours(25), "INR"),
            inr(10_000)
        );
        assert_eq!(
            judge(
                &india(),
                SignedDuration::from_hours(25) + SignedDuration::from_secs(1),
                "INR"
            ),
            inr(20_000)
        );
    }

    #[test]
    fn a_promise_in_another_currency_is_late_without_a_figure() {
        assert_eq!(
            judge(&india(), SignedDuration::from_hours(3), "KES"),
            Some(None)
        );
    }
}
