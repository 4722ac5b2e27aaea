//! Reconciliation: a provider's statement for a period against the payments Lien has from it,
//! so that a callback lost in transit is recovered the same day.
//!
//! Lien's side is every payment on the financier's devices recorded under the provider's
//! idempotency key (`<provider>:<reference>`: by its callback, an assignment or an earlier
//! reconciliation) and received in the period, and every unmatched payment of the provider
//! received in it. Each line of the statement is looked up by transaction id there, then (for
//! one recorded outside the period, or by hand) among all the financier's payments and
//! unmatched payments. A line found with the same account, amount and currency is matched; one
//! found with another is reported as mismatched and changes nothing (which side is right is for
//! the financier to find out: a reversal or a payment by hand settles it); one not found is
//! missing, and is taken exactly as its callback would have been (`mobile_money::take_payment`:
//! recorded on its device under the same idempotency key, or kept as unmatched). Lien's
//! payments the statement lacks are reported.
//!
//! Running the same statement again therefore changes nothing: the missing lines are now
//! recorded or kept, under the keys a late callback would also hit, and match.
//!
//! The run itself is not stored. The report is a function of the statement and of the payments,
//! which the audit log already records one by one (each applied line with the actor
//! `reconciliation:<key id>`); the financier keeps its statements, and reconciling one again
//! reproduces the report.

use std::collections::HashMap;

use lien_store::{RecordedPaymentRecord, StoreError, UnmatchedPaymentRecord};

use super::mobile_money::{Confirmed, ProviderPayment, provider_key_prefix, take_payment};
use crate::app::AppState;
use crate::auth::{Action, Actor, Role};
use crate::clock::{from_micros, micros};
use crate::domain::rfc3339;
use crate::error::ApiError;
use crate::providers::mpesa;
use crate::providers::statement::{
    LienOnlyPayment, MismatchedField, MismatchedPayment, MissingOutcome, MissingPayment,
    PaymentSide, ReconciliationCounts, ReconciliationReport, StatementLine, read_statement,
};

/// What Lien has for a transaction id.
enum Held {
    Recorded(RecordedPaymentRecord),
    Unmatched(UnmatchedPaymentRecord),
}

impl Held {
    fn side(&self) -> PaymentSide {
        match self {
            Held::Recorded(p) => PaymentSide {
                account: p.contract_ref.clone(),
                amount_minor: p.amount_minor,
                currency: p.currency.clone(),
                device_id: Some(p.device_id.clone()),
                unmatched_id: None,
            },
            Held::Unmatched(u) => PaymentSide {
                account: u.account.clone(),
                amount_minor: u.amount_minor,
                currency: u.currency.clone(),
                device_id: u.assigned_device_id.clone(),
                unmatched_id: Some(u.id.clone()),
            },
        }
    }

    fn received_us(&self) -> i64 {
        match self {
            Held::Recorded(p) => p.received_us,
            Held::Unmatched(u) => u.received_us,
        }
    }
}

/// The provider a reconciliation names: M-Pesa, or one of the financier's own.
async fn provider_name(
    state: &AppState,
    financier_id: &str,
    provider: &str,
) -> Result<String, ApiError> {
    let provider = provider.trim();
    if provider == mpesa::PROVIDER {
        return Ok(provider.to_string());
    }
    match state
        .store
        .payment_provider_by_name(financier_id, provider)
        .await
    {
        Ok(found) => Ok(found.name),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("payment provider")),
        Err(e) => Err(e.into()),
    }
}

/// Reconciles the financier's statement `body` (CSV, see `providers::statement`) from
/// `provider` for `[from, to)`: applies the missing lines and reports them, the mismatched ones
/// and Lien's payments the statement lacks.
pub async fn reconcile(
    state: &AppState,
    actor: &Actor,
    financier_id: &str,
    provider: &str,
    (from, to): (jiff::Timestamp, jiff::Timestamp),
    body: &[u8],
) -> Result<ReconciliationReport, ApiError> {
    actor.require(Action::RecordPayment)?;
    crate::commands::visible_financier(state, actor, financier_id).await?;
    let provider = provider_name(state, financier_id, provider).await?;
    let default_currency = (provider == mpesa::PROVIDER).then_some(mpesa::CURRENCY);
    let lines = read_statement(body, from, to, default_currency)?;

    let (from_us, to_us) = (micros(from), micros(to));
    let mut held: HashMap<String, Held> = HashMap::new();
    for payment in state
        .store
        .provider_payments(
            financier_id,
            &provider_key_prefix(&provider),
            from_us,
            to_us,
        )
        .await?
    {
        held.entry(payment.reference.clone())
            .or_insert(Held::Recorded(payment));
    }
    for kept in state
        .store
        .unmatched_payments_between(financier_id, &provider, from_us, to_us)
        .await?
    {
        // An assigned one is on its device, under the provider's key: found above if it was
        // received in the period, as it was.
        if kept.assigned_device_id.is_none() {
            held.entry(kept.provider_ref.clone())
                .or_insert(Held::Unmatched(kept));
        }
    }

    let applying = Actor {
        key_id: format!("reconciliation:{}", actor.key_id),
        role: Role::FinancierAgent,
        financier_id: Some(financier_id.to_string()),
    };
    let mut matched = 0;
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    for line in &lines {
        let found = match held.remove(&line.reference) {
            Some(found) => Some(found),
            None => elsewhere(state, financier_id, &provider, &line.reference).await?,
        };
        match found {
            Some(found) => {
                let lien = found.side();
                let fields = differences(line, &lien);
                if fields.is_empty() {
                    matched += 1;
                } else {
                    mismatched.push(MismatchedPayment {
                        line: line.line,
                        transaction_id: line.reference.clone(),
                        fields,
                        statement: PaymentSide {
                            account: line.account.clone(),
                            amount_minor: line.amount_minor,
                            currency: line.currency.clone(),
                            device_id: None,
                            unmatched_id: None,
                        },
                        lien,
                    });
                }
            }
            None => missing.push(apply(state, &applying, financier_id, &provider, line).await?),
        }
    }
    let mut lien_only: Vec<LienOnlyPayment> = held
        .into_iter()
        .map(|(reference, found)| LienOnlyPayment {
            transaction_id: reference,
            received_at: rfc3339(from_micros(found.received_us())),
            lien: found.side(),
        })
        .collect();
    lien_only.sort_by(|a, b| {
        (&a.received_at, &a.transaction_id).cmp(&(&b.received_at, &b.transaction_id))
    });
    let report = ReconciliationReport {
        financier_id: financier_id.to_string(),
        provider,
        from: rfc3339(from),
        to: rfc3339(to),
        counts: ReconciliationCounts {
            statement: lines.len(),
            matched,
            missing: missing.len(),
            mismatched: mismatched.len(),
            lien_only: lien_only.len(),
        },
        missing,
        mismatched,
        lien_only,
    };
    tracing::info!(
        financier = %report.financier_id,
        provider = %report.provider,
        counts = ?report.counts,
        "statement reconciled"
    );
    Ok(report)
}

/// A transaction Lien has outside the period's provider payments: recorded by hand or at
/// another time, or kept as unmatched and since assigned.
async fn elsewhere(
    state: &AppState,
    financier_id: &str,
    provider: &str,
    reference: &str,
) -> Result<Option<Held>, ApiError> {
    if let Some(recorded) = state
        .store
        .payments_by_reference(financier_id, reference)
        .await?
        .into_iter()
        .next()
    {
        return Ok(Some(Held::Recorded(recorded)));
    }
    Ok(state
        .store
        .unmatched_payment_by_ref(financier_id, provider, reference)
        .await?
        .map(Held::Unmatched))
}

fn differences(line: &StatementLine, lien: &PaymentSide) -> Vec<MismatchedField> {
    let mut fields = Vec::new();
    if line.amount_minor != lien.amount_minor {
        fields.push(MismatchedField::Amount);
    }
    if line.currency != lien.currency {
        fields.push(MismatchedField::Currency);
    }
    if line.account != lien.account {
        fields.push(MismatchedField::Account);
    }
    fields
}

/// Takes a missing line as its callback would have been taken.
async fn apply(
    state: &AppState,
    actor: &Actor,
    financier_id: &str,
    provider: &str,
    line: &StatementLine,
) -> Result<MissingPayment, ApiError> {
    let payment = ProviderPayment {
        provider: provider.to_string(),
        reference: line.reference.clone(),
        account: line.account.clone(),
        account_complete: true,
        account_field: "account",
        amount_minor: line.amount_minor,
        currency: line.currency.clone(),
        received_at: line.paid_at,
        payer_hash: None,
    };
    let (outcome, device_id, unmatched_id) =
        match take_payment(state, actor, financier_id, &payment).await? {
            Confirmed::Recorded { device_id } => (MissingOutcome::Recorded, Some(device_id), None),
            Confirmed::Unmatched { id } => (MissingOutcome::Unmatched, None, Some(id)),
            Confirmed::Repeated => (MissingOutcome::Repeated, None, None),
        };
    Ok(MissingPayment {
        line: line.line,
        transaction_id: line.reference.clone(),
        account: line.account.clone(),
        amount_minor: line.amount_minor,
        currency: line.currency.clone(),
        paid_at: rfc3339(line.paid_at),
        outcome,
        device_id,
        unmatched_id,
    })
}
