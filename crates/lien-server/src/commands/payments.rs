//! Payments and reversals. The ledger's rules (the plan's currency, a positive amount, one
//! payment per reference, a reversal of a recorded payment, once, not before it was received)
//! are `lien-core`'s: the command adds the new entry to the device's log and lets
//! `PaymentLog::new` accept or refuse it. The server's own rules are the bounds the ledger
//! cannot know: the largest amount it accepts and the clock's tolerance for dates ahead.

use jiff::SignedDuration;
use lien_core::{Money, Payment, PaymentError, PaymentLog, PaymentRef, Reversal};
use lien_store::{DeviceChange, DeviceSnapshot, PaymentRecord, ReversalRecord};

use super::device_change::{Applied, Changed, IdempotencyKey, Mutation, change_device};
use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::micros;
use crate::domain::{Inputs, parse_currency, parse_instant};
use crate::error::ApiError;
use crate::input::required_text;
use crate::wire::{PaymentRequest, ReversalRequest};

/// The largest payment, in minor units: a thousand trillion, far above any phone's price in any
/// currency, and small enough that the ledger's sums cannot overflow.
pub const MAX_PAYMENT_MINOR: i64 = 1_000_000_000_000_000;

/// How far ahead of the server's clock a date may be (a payment's receipt, a reversal): the
/// clocks of a payment provider and of the server differ a little. Further ahead, it would
/// count for nothing until then (and a reversal would block the real one as "already
/// reversed").
const CLOCK_TOLERANCE: SignedDuration = SignedDuration::from_mins(5);

/// Records a payment, under its idempotency key.
pub async fn record_payment(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    key: IdempotencyKey,
    req: PaymentRequest,
) -> Result<Applied<Changed<()>>, ApiError> {
    actor.require(Action::RecordPayment)?;
    let releases_at_payoff = actor.vouches_for_payoff();
    change_device(state, actor, device_id, Some(key), move |snapshot, now| {
        let currency = parse_currency("currency", &req.currency)?;
        if req.amount_minor > MAX_PAYMENT_MINOR {
            return Err(ApiError::invalid(
                "amount_minor",
                format!("must be at most {MAX_PAYMENT_MINOR}"),
            ));
        }
        let reference =
            PaymentRef::parse(&req.reference).map_err(|e| ApiError::invalid("reference", e))?;
        let received_at = match &req.received_at {
            Some(t) => parse_instant("received_at", t)?,
            None => now,
        };
        let payment = Payment {
            reference: reference.clone(),
            amount: Money::new(req.amount_minor, currency),
            received_at,
        };
        ledger(snapshot, |log| log.with_payment(payment))?;
        if received_at > now + CLOCK_TOLERANCE {
            return Err(ApiError::invalid("received_at", "is in the future"));
        }
        let reason = format!(
            "payment {} of {} {}",
            reference.as_str(),
            req.amount_minor,
            currency.code()
        );
        let change = DeviceChange {
            payment: Some(PaymentRecord {
                reference: reference.as_str().to_string(),
                amount_minor: req.amount_minor,
                currency: currency.code().to_string(),
                received_us: micros(received_at),
                recorded_us: micros(now),
                acknowledged_us: None,
            }),
            ..DeviceChange::default()
        };
        let mutation = Mutation {
            releases_at_payoff,
            ..Mutation::new("payment", reason, change)
        };
        Ok((mutation, ()))
    })
    .await
}

/// Reverses a recorded payment, under its idempotency key.
pub async fn reverse_payment(
    state: &AppState,
    actor: &Actor,
    device_id: &str,
    reference: String,
    key: IdempotencyKey,
    req: ReversalRequest,
) -> Result<Applied<Changed<()>>, ApiError> {
    actor.require(Action::RecordPayment)?;
    change_device(state, actor, device_id, Some(key), move |snapshot, now| {
        // A reference the ledger could not hold is no recorded payment's.
        let parsed = PaymentRef::parse(&reference).map_err(|_| ApiError::NotFound("payment"))?;
        // Stored as the ledger reads it, so the history names the payment as it was recorded.
        let reference = parsed.as_str().to_string();
        let at = match &req.at {
            Some(t) => parse_instant("at", t)?,
            None => now,
        };
        ledger(snapshot, |log| {
            log.with_reversal(Reversal {
                reference: parsed,
                at,
            })
        })?;
        if at > now + CLOCK_TOLERANCE {
            return Err(ApiError::invalid("at", "is in the future"));
        }
        let change = DeviceChange {
            reversal: Some(ReversalRecord {
                reference: reference.clone(),
                at_us: micros(at),
                recorded_us: micros(now),
                reason: req.reason.clone(),
            }),
            ..DeviceChange::default()
        };
        let reason = required_text("reason", &req.reason, 200)?;
        let mutation = Mutation::new("reversal", reason, change);
        Ok((mutation, ()))
    })
    .await
}

/// The device's payment log with a payment or a reversal added by `add`, as `lien-core`
/// accepts it, or its refusal in the API's words (the field, or the conflict, it names).
fn ledger(
    snapshot: &DeviceSnapshot,
    add: impl FnOnce(&PaymentLog) -> Result<PaymentLog, PaymentError>,
) -> Result<PaymentLog, ApiError> {
    let inputs = Inputs::of(snapshot)?;
    add(&inputs.payments).map_err(|e| match e {
        PaymentError::CurrencyMismatch {
            found, expected, ..
        } => ApiError::invalid(
            "currency",
            format!(
                "the plan is in {}; this payment is in {}",
                expected.code(),
                found.code()
            ),
        ),
        PaymentError::NonPositiveAmount { .. } => {
            ApiError::invalid("amount_minor", "must be positive")
        }
        PaymentError::DuplicatePayment(reference) => ApiError::Conflict(format!(
            "a payment with reference {:?} is already recorded for this device",
            reference.as_str()
        )),
        PaymentError::UnknownPayment(_) => ApiError::NotFound("payment"),
        PaymentError::DuplicateReversal(reference) => ApiError::Conflict(format!(
            "payment {:?} is already reversed",
            reference.as_str()
        )),
        PaymentError::ReversalBeforePayment { .. } => {
            ApiError::invalid("at", "is before the payment was received")
        }
        other => ApiError::Invalid(other.to_string()),
    })
}
