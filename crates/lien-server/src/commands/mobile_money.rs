//! Payments a provider brings (M-Pesa's C2B callbacks), and the assignment of those that
//! matched no device.
//!
//! A confirmed payment is recorded through [`record_payment`], the command behind
//! `POST /v1/devices/{id}/payments`, under the idempotency key `mpesa:<TransID>` in the
//! financier's scope, with the `TransID` as the payment's reference: the same confirmation
//! sent again is answered from the kept response and writes nothing, and its unlock token is
//! written with the payment and pushed from the store like any other. A confirmation that no
//! device can take (no device has the account number, or its plan is not in shillings, or the
//! ledger refuses it) is kept as an unmatched payment, once per `TransID`, so that confirmed
//! money is never lost.
//!
//! Assigning an unmatched payment is the same command, with the same idempotency key and the
//! same request (transaction, amount, device), then marks the row assigned. The two steps are
//! not one transaction, and need not be: an assignment cut short between them is finished by
//! the next attempt (the payment replays, the row is marked), and an attempt for another
//! device is refused by the key, so the money is recorded once, on one device.

use lien_store::{
    AuditEntry, DeviceRecord, MpesaEndpointRecord, StoreError, UnmatchedPaymentRecord,
};
use sha2::{Digest, Sha256};

use super::device_change::{Applied, IdempotencyKey};
use super::payments::record_payment;
use crate::app::AppState;
use crate::auth::{Action, Actor, Role};
use crate::clock::micros;
use crate::domain::rfc3339;
use crate::error::ApiError;
use crate::input::new_id;
use crate::providers::mpesa::{self, C2bPayment, Refused, Rejection, ValidationAnswer};
use crate::wire::PaymentRequest;

/// What became of a confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// Recorded on the device now.
    Recorded {
        /// The device.
        device_id: String,
    },
    /// Recorded or kept before: nothing changed.
    Repeated,
    /// Kept as an unmatched payment.
    Unmatched {
        /// The unmatched payment's id.
        id: String,
    },
}

/// The caller a provider's callbacks act as: an agent of the endpoint's financier, named in
/// the audit log as the provider.
fn provider_actor(endpoint: &MpesaEndpointRecord) -> Actor {
    Actor {
        key_id: format!("provider:{}", mpesa::PROVIDER),
        role: Role::FinancierAgent,
        financier_id: Some(endpoint.financier_id.clone()),
    }
}

/// The device the account number names, if it can take a payment in shillings; otherwise why
/// not, in words for the financier (`Err` of the inner result).
async fn payable_device(
    state: &AppState,
    financier_id: &str,
    account: &str,
) -> Result<Result<DeviceRecord, Refused>, ApiError> {
    let refused = |rejection, problem: String| {
        Ok(Err(Refused {
            rejection,
            message: format!("BillRefNumber: {problem}"),
        }))
    };
    if account.is_empty() {
        return refused(
            Rejection::InvalidAccount,
            "no account number was given".into(),
        );
    }
    let id = match state
        .store
        .device_id_by_contract_ref(financier_id, account)
        .await
    {
        Ok(id) => id,
        Err(StoreError::NotFound) => {
            return refused(
                Rejection::InvalidAccount,
                format!("no device has the account number {account:?}"),
            );
        }
        Err(e) => return Err(e.into()),
    };
    let device = match state.store.device(&id).await {
        Ok(device) => device,
        Err(StoreError::NotFound) => {
            return refused(
                Rejection::InvalidAccount,
                format!("no device has the account number {account:?}"),
            );
        }
        Err(e) => return Err(e.into()),
    };
    if device.decision.currency != mpesa::CURRENCY {
        return refused(
            Rejection::Other,
            format!(
                "the account is payable in {}, not in {}",
                device.decision.currency,
                mpesa::CURRENCY
            ),
        );
    }
    if device.released_us.is_some() {
        return refused(
            Rejection::InvalidAccount,
            "the account is closed: the phone is released".into(),
        );
    }
    Ok(Ok(device))
}

/// Answers a validation: accepted only for a payment Lien would record on a device of the
/// endpoint's financier. Writes nothing.
pub async fn validate(
    state: &AppState,
    endpoint: &MpesaEndpointRecord,
    callback: &mpesa::C2bCallback,
) -> Result<ValidationAnswer, ApiError> {
    let payment = match C2bPayment::parse(callback) {
        Ok(payment) => payment,
        Err(refused) => return Ok(refused.answer()),
    };
    Ok(
        match payable_device(state, &endpoint.financier_id, &payment.account).await? {
            Ok(_) => ValidationAnswer::accepted(),
            Err(refused) => refused.answer(),
        },
    )
}

/// The idempotency key and request hash a provider payment is recorded under: the same for
/// the confirmation and for an assignment to the same device, different for another device.
fn provider_key(trans_id: &str, amount_minor: i64, device_id: &str) -> IdempotencyKey {
    let mut hash = Sha256::new();
    hash.update(
        format!(
            "{}\n{trans_id}\n{amount_minor}\n{device_id}",
            mpesa::PROVIDER
        )
        .as_bytes(),
    );
    IdempotencyKey {
        key: format!("{}:{trans_id}", mpesa::PROVIDER),
        request_hash: hash.finalize().to_vec(),
    }
}

fn payment_request(payment: &C2bPayment) -> PaymentRequest {
    PaymentRequest {
        reference: payment.trans_id.clone(),
        amount_minor: payment.amount_minor,
        currency: mpesa::CURRENCY.into(),
        received_at: Some(rfc3339(payment.received_at)),
    }
}

/// Takes a confirmation: records the payment on its device, or keeps it as unmatched.
pub async fn confirm(
    state: &AppState,
    endpoint: &MpesaEndpointRecord,
    callback: &mpesa::C2bCallback,
) -> Result<Confirmed, ApiError> {
    let payment = C2bPayment::parse_confirmed(callback).map_err(Refused::into_api_error)?;
    let financier_id = &endpoint.financier_id;
    // A transaction kept as unmatched stays there, even if its account was enrolled since: the
    // financier assigns it, so that it is never recorded twice.
    if state
        .store
        .unmatched_payment_by_ref(financier_id, mpesa::PROVIDER, &payment.trans_id)
        .await?
        .is_some()
    {
        return Ok(Confirmed::Repeated);
    }
    let actor = provider_actor(endpoint);
    let matched = if payment.account_complete {
        payable_device(state, financier_id, &payment.account).await?
    } else {
        Err(Refused {
            rejection: Rejection::InvalidAccount,
            message: format!(
                "BillRefNumber: longer than any account number ({} characters kept)",
                mpesa::MAX_ACCOUNT_CHARS
            ),
        })
    };
    let reason = match matched {
        Ok(device) => {
            let device_id = device.enrolled.id;
            let key = provider_key(&payment.trans_id, payment.amount_minor, &device_id);
            match record_payment(state, &actor, &device_id, key, payment_request(&payment)).await {
                Ok(Applied::Fresh(_)) => return Ok(Confirmed::Recorded { device_id }),
                Ok(Applied::Replayed { .. }) => return Ok(Confirmed::Repeated),
                // The reference is on the device already (the financier recorded it by hand),
                // or the key was used for this transaction with another amount: recorded once.
                Err(ApiError::Conflict(message)) => {
                    tracing::warn!(
                        trans_id = %payment.trans_id,
                        device = %device_id,
                        %message,
                        "an M-Pesa confirmation repeats a recorded payment"
                    );
                    return Ok(Confirmed::Repeated);
                }
                // The ledger refused it (a time ahead of the clock, say): kept for the
                // financier, with the reason.
                Err(ApiError::Invalid(message)) => message,
                Err(ApiError::NotFound(_)) => {
                    format!("BillRefNumber: the device {device_id} is gone")
                }
                Err(other) => return Err(other),
            }
        }
        Err(refused) => refused.message,
    };
    let now = state.clock.now();
    let record = UnmatchedPaymentRecord {
        id: new_id("unm")?,
        financier_id: financier_id.clone(),
        provider: mpesa::PROVIDER.into(),
        provider_ref: payment.trans_id.clone(),
        account: payment.account.clone(),
        amount_minor: payment.amount_minor,
        currency: mpesa::CURRENCY.into(),
        received_us: micros(payment.received_at),
        payer_hash: payment.payer_hash(&state.secrets.payer_key(financier_id)),
        reason,
        recorded_us: micros(now),
        assigned_device_id: None,
        assigned_us: None,
        assigned_by: None,
    };
    let audit = AuditEntry {
        at_us: micros(now),
        actor: actor.key_id.clone(),
        action: "unmatched_payment".into(),
        reason: record.reason.clone(),
        before_json: "null".into(),
        after_json: serde_json::json!({
            "id": record.id,
            "provider": record.provider,
            "reference": record.provider_ref,
            "amount_minor": record.amount_minor,
            "currency": record.currency,
        })
        .to_string(),
    };
    // Written with the row, and only if the row is new: a repeated callback tells no one again.
    let event = crate::webhooks::events::unmatched(&record, now)?;
    let (kept, new) = state
        .store
        .add_unmatched_payment(
            &record,
            &crate::api_keys::chain(Some(financier_id)),
            &audit,
            Some(&event),
        )
        .await?;
    Ok(if new {
        Confirmed::Unmatched { id: kept.id }
    } else {
        Confirmed::Repeated
    })
}

/// The unmatched payment `id`, if the actor may see it.
pub async fn unmatched_payment(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<UnmatchedPaymentRecord, ApiError> {
    match state.store.unmatched_payment(id).await {
        Ok(payment) if actor.sees_financier(&payment.financier_id) => Ok(payment),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::NotFound("unmatched payment")),
        Err(e) => Err(e.into()),
    }
}

/// Assigns an unmatched payment to a device of its financier: records it there through the
/// payment command (idempotent on the provider's transaction id), then marks it assigned.
/// Again for the same device changes nothing; for another device it is a conflict.
pub async fn assign_unmatched(
    state: &AppState,
    actor: &Actor,
    id: &str,
    device_id: &str,
) -> Result<UnmatchedPaymentRecord, ApiError> {
    actor.require(Action::RecordPayment)?;
    let payment = unmatched_payment(state, actor, id).await?;
    match payment.assigned_device_id.as_deref() {
        Some(assigned) if assigned == device_id => return Ok(payment),
        Some(_) => {
            return Err(ApiError::Conflict(
                "this payment is already assigned to another device".into(),
            ));
        }
        None => {}
    }
    // The device must be the payment's financier's, whoever the caller is.
    let device = match state.store.device(device_id).await {
        Ok(device) if device.enrolled.financier_id == payment.financier_id => device,
        Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::NotFound("device")),
        Err(e) => return Err(e.into()),
    };
    let key = provider_key(
        &payment.provider_ref,
        payment.amount_minor,
        &device.enrolled.id,
    );
    let request = PaymentRequest {
        reference: payment.provider_ref.clone(),
        amount_minor: payment.amount_minor,
        currency: payment.currency.clone(),
        received_at: Some(rfc3339(crate::clock::from_micros(payment.received_us))),
    };
    // Recorded in the financier's scope, where the confirmation would have recorded it.
    let scoped = Actor {
        financier_id: Some(payment.financier_id.clone()),
        ..actor.clone()
    };
    record_payment(state, &scoped, device_id, key, request).await?;
    let now = state.clock.now();
    let audit = AuditEntry {
        at_us: micros(now),
        actor: actor.key_id.clone(),
        action: "unmatched_payment_assigned".into(),
        reason: format!(
            "{} payment {} assigned to {device_id}",
            payment.provider, payment.provider_ref
        ),
        before_json: serde_json::json!({"id": payment.id, "device_id": null}).to_string(),
        after_json: serde_json::json!({"id": payment.id, "device_id": device_id}).to_string(),
    };
    Ok(state
        .store
        .assign_unmatched_payment(
            &payment.id,
            device_id,
            micros(now),
            &actor.key_id,
            &crate::api_keys::chain(Some(&payment.financier_id)),
            &audit,
        )
        .await?)
}
