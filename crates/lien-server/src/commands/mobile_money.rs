//! Payments a provider brings (M-Pesa's C2B callbacks, other providers' signed callbacks, the
//! lines a reconciliation finds missing), and the assignment of those that matched no device.
//!
//! A confirmed payment is recorded through [`record_payment`], the command behind
//! `POST /v1/devices/{id}/payments`, under the idempotency key `provider:<provider>:<reference>`
//! (`provider:mpesa:<TransID>` for M-Pesa; a client may not use the prefix) in the
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

use jiff::Timestamp;
use lien_store::{
    AuditEntry, DeviceRecord, MpesaEndpointRecord, PaymentProviderRecord, StoreError,
    UnmatchedPaymentRecord,
};
use sha2::{Digest, Sha256};

use super::device_change::{Applied, IdempotencyKey};
use super::payments::record_payment;
use crate::app::AppState;
use crate::auth::{Action, Actor, PROVIDER_ACTOR_PREFIX, Role};
use crate::clock::micros;
use crate::domain::rfc3339;
use crate::error::ApiError;
use crate::input::new_id;
use crate::providers::generic;
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

/// The caller a provider's callbacks act as: an agent of the financier, named in the audit
/// log as the provider.
pub fn provider_actor(financier_id: &str, provider: &str) -> Actor {
    Actor {
        key_id: format!("{PROVIDER_ACTOR_PREFIX}{provider}"),
        role: Role::FinancierAgent,
        financier_id: Some(financier_id.to_string()),
    }
}

/// The device the account number names, if it can take a payment in `currency`; otherwise
/// why not, in words for the financier naming `field` (`Err` of the inner result).
async fn payable_device(
    state: &AppState,
    financier_id: &str,
    account: &str,
    currency: &str,
    field: &str,
) -> Result<Result<DeviceRecord, Refused>, ApiError> {
    let refused = |rejection, problem: String| {
        Ok(Err(Refused {
            rejection,
            message: format!("{field}: {problem}"),
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
                // Not quoted: borrowers often type their phone number, and this reason goes to
                // the audit chain, which is never erased; the row keeps what was typed.
                "no device has this account number".to_string(),
            );
        }
        Err(e) => return Err(e.into()),
    };
    let device = match state.store.device(&id).await {
        Ok(device) => device,
        Err(StoreError::NotFound) => {
            return refused(
                Rejection::InvalidAccount,
                // Not quoted: borrowers often type their phone number, and this reason goes to
                // the audit chain, which is never erased; the row keeps what was typed.
                "no device has this account number".to_string(),
            );
        }
        Err(e) => return Err(e.into()),
    };
    if device.decision.currency != currency {
        return refused(
            Rejection::Other,
            format!(
                "the account is payable in {}, not in {currency}",
                device.decision.currency,
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
        match payable_device(
            state,
            &endpoint.financier_id,
            &payment.account,
            mpesa::CURRENCY,
            ACCOUNT_FIELD_MPESA,
        )
        .await?
        {
            Ok(_) => ValidationAnswer::accepted(),
            Err(refused) => refused.answer(),
        },
    )
}

/// The name M-Pesa gives the account number.
const ACCOUNT_FIELD_MPESA: &str = "BillRefNumber";

/// The idempotency key and request hash a provider payment is recorded under: the same for
/// the callback, an assignment and a reconciliation for the same device, different for another
/// device.
/// The start of the idempotency keys payment providers use in a financier's scope
/// (`provider:<name>:<reference>`); the API refuses a client's key that starts with it, so no
/// client can take a provider transaction's key.
pub const PROVIDER_KEY_PREFIX: &str = "provider:";

/// What every idempotency key of `provider`'s payments starts with; the reference follows.
pub fn provider_key_prefix(provider: &str) -> String {
    format!("{PROVIDER_KEY_PREFIX}{provider}:")
}

fn provider_key(
    provider: &str,
    reference: &str,
    amount_minor: i64,
    device_id: &str,
) -> IdempotencyKey {
    let mut hash = Sha256::new();
    hash.update(format!("{provider}\n{reference}\n{amount_minor}\n{device_id}").as_bytes());
    IdempotencyKey {
        key: format!("{}{reference}", provider_key_prefix(provider)),
        request_hash: hash.finalize().to_vec(),
    }
}

/// A payment a provider reports (a callback, a line of its statement), checked: what
/// [`take_payment`] records on a device or keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPayment {
    /// The provider's name: `mpesa`, or one the financier gave.
    pub provider: String,
    /// The provider's transaction id: the payment's reference.
    pub reference: String,
    /// The account number: a contract reference.
    pub account: String,
    /// False if the account number was cut to length: then it matches no device.
    pub account_complete: bool,
    /// What the provider calls the account, for the financier's reading of a refusal.
    pub account_field: &'static str,
    /// Amount in minor units, positive.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// When the provider took it.
    pub received_at: Timestamp,
    /// A keyed hash of the payer's number, when the provider sent one.
    pub payer_hash: Option<Vec<u8>>,
}

/// Takes a confirmation: records the payment on its device, or keeps it as unmatched.
pub async fn confirm(
    state: &AppState,
    endpoint: &MpesaEndpointRecord,
    callback: &mpesa::C2bCallback,
) -> Result<Confirmed, ApiError> {
    let payment = C2bPayment::parse_confirmed(callback).map_err(Refused::into_api_error)?;
    let financier_id = &endpoint.financier_id;
    let taken = ProviderPayment {
        provider: mpesa::PROVIDER.into(),
        reference: payment.trans_id.clone(),
        account: payment.account.clone(),
        account_complete: payment.account_complete,
        account_field: ACCOUNT_FIELD_MPESA,
        amount_minor: payment.amount_minor,
        currency: mpesa::CURRENCY.into(),
        received_at: payment.received_at,
        payer_hash: payment.payer_hash(&state.secrets.payer_key(financier_id)),
    };
    let actor = provider_actor(financier_id, mpesa::PROVIDER);
    take_payment(state, &actor, financier_id, &taken).await
}

/// Records a provider's payment on the device its account names, through [`record_payment`]
/// under the key `<provider>:<reference>` in the financier's scope, or keeps it as unmatched
/// (once per reference) when no device can take it. `actor` is who the audit log names.
pub async fn take_payment(
    state: &AppState,
    actor: &Actor,
    financier_id: &str,
    payment: &ProviderPayment,
) -> Result<Confirmed, ApiError> {
    let provider = payment.provider.as_str();
    // A transaction kept as unmatched stays there, even if its account was enrolled since: the
    // financier assigns it, so that it is never recorded twice.
    if state
        .store
        .unmatched_payment_by_ref(financier_id, provider, &payment.reference)
        .await?
        .is_some()
    {
        return Ok(Confirmed::Repeated);
    }
    let field = payment.account_field;
    let matched = if payment.account_complete {
        payable_device(
            state,
            financier_id,
            &payment.account,
            &payment.currency,
            field,
        )
        .await?
    } else {
        Err(Refused {
            rejection: Rejection::InvalidAccount,
            message: format!(
                "{field}: longer than any account number ({} characters kept)",
                payment.account.chars().count()
            ),
        })
    };
    let reason = match matched {
        Ok(device) => {
            let device_id = device.enrolled.id;
            let key = provider_key(
                provider,
                &payment.reference,
                payment.amount_minor,
                &device_id,
            );
            let request = PaymentRequest {
                reference: payment.reference.clone(),
                amount_minor: payment.amount_minor,
                currency: payment.currency.clone(),
                received_at: Some(rfc3339(payment.received_at)),
            };
            // Recorded in the financier's scope, where every provider payment is keyed.
            let scoped = Actor {
                financier_id: Some(financier_id.to_string()),
                ..actor.clone()
            };
            match record_payment(state, &scoped, &device_id, key, request).await {
                Ok(Applied::Fresh(_)) => return Ok(Confirmed::Recorded { device_id }),
                Ok(Applied::Replayed { .. }) => return Ok(Confirmed::Repeated),
                // The reference is on the device already (the financier recorded it by hand,
                // perhaps with another amount), or the key was used for this transaction with
                // another amount: kept for the financier to look at, never dropped unseen.
                Err(ApiError::Conflict(message)) => {
                    let field = if provider == mpesa::PROVIDER {
                        "TransID"
                    } else {
                        "reference"
                    };
                    format!("{field}: conflicts with what device {device_id} has: {message}")
                }
                // The ledger refused it (a time ahead of the clock, say): kept for the
                // financier, with the reason.
                Err(ApiError::Invalid(message)) => message,
                Err(ApiError::NotFound(_)) => {
                    format!("{field}: the device {device_id} is gone")
                }
                Err(other) => return Err(other),
            }
        }
        Err(refused) => refused.message,
    };
    let now = state.clock.now();
    let record = UnmatchedPaymentRecord {
        id: new_id("unm")?,
        financier_id: financier_id.to_string(),
        provider: provider.into(),
        provider_ref: payment.reference.clone(),
        account: payment.account.clone(),
        amount_minor: payment.amount_minor,
        currency: payment.currency.clone(),
        received_us: micros(payment.received_at),
        payer_hash: payment.payer_hash.clone(),
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

/// The 409 for an unmatched payment that went to `device_id`, not to the one asked for.
fn assigned_elsewhere(device_id: &str) -> ApiError {
    ApiError::Conflict(format!(
        "device_id: this payment is already assigned to device {device_id}"
    ))
}

/// Assigns an unmatched payment to a device of its financier: records it there through the
/// payment command (idempotent on the provider's transaction id), then marks it assigned.
/// Again for the same device changes nothing and answers the same; for another device it is
/// a conflict naming the device the money went to. A device whose plan is in another currency
/// is refused, naming `currency`, before anything is written.
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
        Some(assigned) => return Err(assigned_elsewhere(assigned)),
        None => {}
    }
    // The device must be the payment's financier's, whoever the caller is.
    let device = match state.store.device(device_id).await {
        Ok(device) if device.enrolled.financier_id == payment.financier_id => device,
        Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::NotFound("device")),
        Err(e) => return Err(e.into()),
    };
    // The ledger refuses it too, under the device's lock; said here first in the words of
    // an assignment, where the request has no currency of its own to correct.
    if device.decision.currency != payment.currency {
        return Err(ApiError::invalid(
            "currency",
            format!(
                "the payment is in {}; device {device_id}'s plan is in {}",
                payment.currency, device.decision.currency
            ),
        ));
    }
    let key = provider_key(
        &payment.provider,
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
    match record_payment(state, &scoped, device_id, key, request).await {
        Ok(_) => {}
        // Another assignment to another device got there first (the provider's key is taken
        // for another request): name where the money went, once that assignment has marked
        // the row; until then its own message says what clashed.
        Err(ApiError::Conflict(message)) => {
            return Err(match state.store.unmatched_payment(&payment.id).await {
                Ok(now) => match now.assigned_device_id.as_deref() {
                    Some(assigned) if assigned != device_id => assigned_elsewhere(assigned),
                    _ => ApiError::Conflict(message),
                },
                Err(_) => ApiError::Conflict(message),
            });
        }
        Err(other) => return Err(other),
    }
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
    match state
        .store
        .assign_unmatched_payment(
            &payment.id,
            device_id,
            micros(now),
            &actor.key_id,
            &crate::api_keys::chain(Some(&payment.financier_id)),
            &audit,
        )
        .await
    {
        Ok(assigned) => Ok(assigned),
        Err(StoreError::Conflict(message)) => {
            Err(ApiError::Conflict(format!("device_id: {message}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Takes a payment a provider signed (see `providers::generic`), whose signature and
/// timestamp the handler has checked: refused (409) if its `webhook-id` was accepted before,
/// otherwise recorded on its device or kept as unmatched, and only then its `webhook-id`
/// remembered, so that a message Lien failed to take may be sent again.
pub async fn signed_payment(
    state: &AppState,
    provider: &PaymentProviderRecord,
    message: &generic::Verified,
    callback: &generic::PaymentCallback,
) -> Result<Confirmed, ApiError> {
    if state.store.webhook_seen(&provider.id, &message.id).await? {
        return Err(ApiError::Conflict(
            "webhook-id: this message was received already".into(),
        ));
    }
    let payment = callback.parse()?;
    let taken = ProviderPayment {
        provider: provider.name.clone(),
        reference: payment.reference,
        account: payment.account,
        account_complete: true,
        account_field: "account",
        amount_minor: payment.amount_minor,
        currency: payment.currency,
        received_at: payment.paid_at,
        payer_hash: None,
    };
    let actor = provider_actor(&provider.financier_id, &provider.name);
    let outcome = take_payment(state, &actor, &provider.financier_id, &taken).await?;
    // Kept while a message with its timestamp could still pass the check (older ones are
    // refused by their timestamp alone), with the tolerance again as a margin.
    let forget_before = state.clock.now().as_second() - 2 * generic::TOLERANCE_SECS;
    state
        .store
        .remember_webhook(
            &provider.id,
            &message.id,
            micros(message.timestamp),
            forget_before.saturating_mul(1_000_000),
        )
        .await?;
    Ok(outcome)
}

/// Unmatched payments per page when none is asked for.
pub const DEFAULT_UNMATCHED_PAGE: u32 = 100;
/// The largest page of unmatched payments.
pub const MAX_UNMATCHED_PAGE: u32 = 500;

/// The actor's unmatched payments (a platform role's: every financier's) with `status`, a page
/// of `limit` after `cursor` (the previous page's), and the next page's cursor if there is one.
pub async fn list_unmatched(
    state: &AppState,
    actor: &Actor,
    status: lien_store::UnmatchedStatus,
    cursor: Option<&str>,
    limit: u32,
) -> Result<(Vec<UnmatchedPaymentRecord>, Option<String>), ApiError> {
    actor.require(Action::Read)?;
    if !(1..=MAX_UNMATCHED_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_UNMATCHED_PAGE}"),
        ));
    }
    let after = cursor.map(parse_unmatched_cursor).transpose()?;
    let mut payments = state
        .store
        .unmatched_payments(&lien_store::UnmatchedFilter {
            financier_id: actor.financier_id.clone(),
            status,
            after,
            limit: limit + 1,
        })
        .await?;
    let next_cursor = if payments.len() > limit as usize {
        payments.truncate(limit as usize);
        payments.last().map(unmatched_cursor)
    } else {
        None
    };
    Ok((payments, next_cursor))
}

/// The `next_cursor` after `last`: when Lien kept it and its id, the order the list is in.
fn unmatched_cursor(last: &lien_store::UnmatchedPaymentRecord) -> String {
    format!("{}.{}", last.recorded_us, last.id)
}

/// Reads a `next_cursor` back.
fn parse_unmatched_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let refused = || ApiError::invalid("cursor", "is not a next_cursor of this list");
    let (us, id) = cursor.split_once('.').ok_or_else(refused)?;
    let us = us.parse::<i64>().map_err(|_| refused())?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(refused());
    }
    Ok((us, id.to_string()))
}
