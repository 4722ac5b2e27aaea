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
//!
//! **Who vouches.** A missing line is recorded under the provider's own idempotency key, where
//! its late callback would land, and as money the provider holds: a payoff it causes schedules
//! the release, as a provider's callback does. So only a financier admin, who may release a
//! phone anyway, may reconcile ([`Action::Reconcile`]); the lines are applied with the admin's
//! standing under the actor `reconciliation:<key id>`. An agent is refused (403) before anything
//! is read: it could otherwise plant a provider's key for a transaction that never was, and
//! the provider's real payment under that id would then be taken for a repeat.
//!
//! **Cost.** A statement has up to `MAX_STATEMENT_LINES` lines. What Lien holds for it is read
//! in one snapshot on a reader (`MobileMoney::statement_holdings`: the period's provider
//! payments and unmatched payments, then only the references found in neither, a few hundred
//! at a time), so a statement Lien already has costs a handful of queries; each missing line
//! costs one payment, through the same transaction as any other. Runs are bounded per server:
//! one at a time per financier and [`MAX_RUNNING`] in all ([`Running`]), and a per-financier
//! rate (`AppState::reconciliation_limit`); a refused run is a 429 with `Retry-After` and reads
//! nothing. With several servers each keeps its own bounds, which still bound the whole.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::response::Response;
use lien_store::{RecordedPaymentRecord, StatementQuery, StoreError, UnmatchedPaymentRecord};

use super::mobile_money::{Confirmed, ProviderPayment, provider_key_prefix, take_payment};
use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::{from_micros, micros};
use crate::domain::rfc3339;
use crate::error::ApiError;
use crate::providers::mpesa;
use crate::providers::statement::{
    LienOnlyPayment, MismatchedField, MismatchedPayment, MissingOutcome, MissingPayment,
    PaymentSide, ReconciliationCounts, ReconciliationReport, StatementLine, read_statement,
};
use crate::rate_limit::Limited;

/// The most reconciliations one server runs at once, over all financiers.
pub const MAX_RUNNING: usize = 4;

/// How long a client refused because a run is going on is asked to wait, in seconds.
const RUNNING_RETRY_AFTER_SECS: u64 = 10;

/// The reconciliations running on this server, by financier (see the module's comment).
#[derive(Debug, Default)]
pub struct Running(Arc<Mutex<HashSet<String>>>);

impl Running {
    /// Claims the financier's turn, or says why not.
    pub fn start(&self, financier_id: &str) -> Result<RunningGuard, &'static str> {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if running.contains(financier_id) {
            return Err("a reconciliation for this financier is running already");
        }
        if running.len() >= MAX_RUNNING {
            return Err("this server is running as many reconciliations as it takes at once");
        }
        running.insert(financier_id.to_string());
        Ok(RunningGuard {
            running: self.0.clone(),
            financier_id: financier_id.to_string(),
        })
    }
}

/// A financier's turn: ends when dropped, however the run ends (a client that goes away
/// drops the request's future, and the guard with it).
#[derive(Debug)]
pub struct RunningGuard {
    running: Arc<Mutex<HashSet<String>>>,
    financier_id: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.financier_id);
    }
}

/// A reconciliation allowed to run: the caller may vouch for the financier's statements, and
/// the financier has its turn.
#[derive(Debug)]
pub struct Admitted {
    actor: Actor,
    financier_id: String,
    _turn: RunningGuard,
}

/// Why a reconciliation must wait: the 429 to answer, with `Retry-After`.
#[derive(Debug)]
pub struct Busy {
    limited: Limited,
    what: &'static str,
}

impl Busy {
    /// The 429.
    pub fn respond(self) -> Response {
        self.limited.respond(self.what)
    }

    /// Why, and when to try again, in words.
    pub fn explain(&self) -> String {
        format!(
            "{}; try again in {} seconds",
            self.what, self.limited.retry_after_secs
        )
    }
}

/// Admits a reconciliation of `financier_id`'s statement by `actor`: refused (403) unless the
/// role may vouch for statements, not found for another financier's, and told to wait (the
/// inner `Err`) while over the financier's rate or while a run is going on.
pub async fn admit(
    state: &AppState,
    actor: &Actor,
    financier_id: &str,
) -> Result<Result<Admitted, Busy>, ApiError> {
    if !actor.role.may(Action::Reconcile) {
        return Err(ApiError::Forbidden(format!(
            "the {} role may not reconcile statements: their missing lines are recorded as the \
             provider's own payments, which only a financier admin vouches for; record a \
             payment with POST /v1/devices/{{id}}/payments",
            actor.role.name()
        )));
    }
    crate::commands::visible_financier(state, actor, financier_id).await?;
    if let Err(limited) = state.reconciliation_limit.check(financier_id.to_string()) {
        return Ok(Err(Busy {
            limited,
            what: "too many reconciliations for this financier",
        }));
    }
    match state.reconciliations.start(financier_id) {
        Ok(turn) => Ok(Ok(Admitted {
            actor: actor.clone(),
            financier_id: financier_id.to_string(),
            _turn: turn,
        })),
        Err(what) => Ok(Err(Busy {
            limited: Limited {
                retry_after_secs: RUNNING_RETRY_AFTER_SECS,
            },
            what,
        })),
    }
}

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
    run: &Admitted,
    provider: &str,
    (from, to): (jiff::Timestamp, jiff::Timestamp),
    body: &[u8],
) -> Result<ReconciliationReport, ApiError> {
    let financier_id = run.financier_id.as_str();
    let provider = provider_name(state, financier_id, provider).await?;
    let default_currency = (provider == mpesa::PROVIDER).then_some(mpesa::CURRENCY);
    let lines = read_statement(body, from, to, default_currency)?;

    let references: Vec<String> = lines.iter().map(|l| l.reference.clone()).collect();
    let key_prefix = provider_key_prefix(&provider);
    let holdings = state
        .store
        .statement_holdings(&StatementQuery {
            financier_id,
            provider: &provider,
            key_prefix: &key_prefix,
            from_us: micros(from),
            to_us: micros(to),
            references: &references,
        })
        .await?;
    let mut held: HashMap<String, Held> = HashMap::new();
    for payment in holdings.recorded {
        held.entry(payment.reference.clone())
            .or_insert(Held::Recorded(payment));
    }
    // Found outside the period's own: recorded by hand or at another time (the first device
    // by id, as the store orders them), or kept as unmatched at another time, or assigned.
    let mut elsewhere: HashMap<String, Held> = HashMap::new();
    for kept in holdings.unmatched {
        // An assigned one is on its device, under the provider's key: found above if it was
        // received in the period, as it was.
        if kept.assigned_device_id.is_none() {
            held.entry(kept.provider_ref.clone())
                .or_insert(Held::Unmatched(kept));
        } else {
            elsewhere
                .entry(kept.provider_ref.clone())
                .or_insert(Held::Unmatched(kept));
        }
    }
    for payment in holdings.recorded_elsewhere {
        // A payment on a device comes before an unmatched payment of the same reference.
        elsewhere.insert(payment.reference.clone(), Held::Recorded(payment));
    }
    for kept in holdings.unmatched_elsewhere {
        elsewhere
            .entry(kept.provider_ref.clone())
            .or_insert(Held::Unmatched(kept));
    }

    // The lines are applied with the admitted admin's standing, so that a payoff they cause
    // schedules the release as the provider's callback would have.
    let applying = Actor {
        key_id: format!("reconciliation:{}", run.actor.key_id),
        role: run.actor.role,
        financier_id: Some(financier_id.to_string()),
    };
    let mut matched = 0;
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    for line in &lines {
        let found = held
            .remove(&line.reference)
            .or_else(|| elsewhere.remove(&line.reference));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_run_per_financier_and_a_few_in_all() {
        let running = Running::default();
        let first = running.start("fin_1").unwrap();
        assert!(
            running
                .start("fin_1")
                .unwrap_err()
                .contains("running already")
        );
        let others: Vec<RunningGuard> = (2..=MAX_RUNNING)
            .map(|i| running.start(&format!("fin_{i}")).unwrap())
            .collect();
        assert!(running.start("fin_9").unwrap_err().contains("as many"));
        // A run's end, however it ends, frees its financier's turn and a place.
        drop(first);
        let again = running.start("fin_1").unwrap();
        drop(others);
        drop(again);
        assert!(running.start("fin_9").is_ok());
    }
}
