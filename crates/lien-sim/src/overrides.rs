//! The run's side of what borrowers, support and the financier do besides paying (issue 21):
//! appeals and their answers, manual locks and their lifting, SIM changes and their acceptance.
//!
//! Each goes through the commands layer as its caller would: an appeal as the borrower's page
//! sends it (the form read by `routes::appeals::checked_request`, then
//! `commands::appeals::open_appeal`), with the IMEI and the status code read off the phone's
//! own screen; answers by support; locks, unlocks and acceptances by the financier. The
//! oracle learns only what the server granted, from each command's result: an appeal's dispute
//! freeze from its opening, the provisional unlock its record promises from the deadline, both
//! ended by the answer; a manual lock from the lock to the unlock; a SIM change from the phone's
//! new card to the acceptance the server took.

use std::collections::HashMap;

use jiff::Timestamp;
use lien_server::app::AppState;
use lien_server::auth::Actor;
use lien_server::clock::from_micros;
use lien_server::commands::appeals::{self, Answer, ClaimKind, Verdict};
use lien_server::commands::{overrides, sim_change};
use lien_server::error::ApiError;
use lien_server::routes::appeals::{AppealForm, Upload, checked_request};
use lien_server::wire::{LockRequest, SimChangeAcceptRequest, UnlockRequest};

use crate::phone::SimPhone;
use crate::run::{Counts, Truth};

/// An appeal the server opened, until support answers it.
#[derive(Debug, Clone)]
pub struct OpenAppeal {
    /// Its reference, to answer it by (drawn by the server: never printed, so that the report
    /// stays the seed's).
    reference: String,
    /// What it claims.
    claim: ClaimKind,
    /// Its payment reference, for a payment claim.
    payment_reference: Option<String>,
    /// Where its dispute freeze is in [`Truth::freezes`].
    freeze: usize,
    /// Where the provisional unlock its record promises from the deadline is in
    /// [`Truth::reprieves`] and [`Truth::unlocks`], if it promises one.
    unlock: Option<(usize, usize)>,
    /// The response deadline.
    deadline: Timestamp,
}

/// How the appeals went.
#[derive(Debug, Default, Clone)]
pub struct AppealCounts {
    /// Opened: payment claims, ownership claims, wrong-lock claims.
    pub opened: (u64, u64, u64),
    /// Payment appeals whose record promises a provisional unlock from the deadline.
    pub unlock_promised: u64,
    /// Not opened because the phone showed no status code to type (a normal screen).
    pub no_code: u64,
    /// Refused by the server (a superseded status code, one already open, the cool-down).
    pub refused: u64,
    /// Answered: accepted, rejected.
    pub answered: (u64, u64),
}

/// How the financier's locks and the SIM changes went.
#[derive(Debug, Default, Clone)]
pub struct FinancierCounts {
    /// Manual locks placed, lifted (an unlock with nothing to lift is refused and not counted).
    pub manual_locks: (u64, u64),
    /// New SIM cards in phones.
    pub sim_changes: u64,
    /// SIM changes accepted, and acceptances refused (nothing reported to accept yet: the
    /// phone was offline, or its policy ignores SIM changes).
    pub sim_accepted: (u64, u64),
}

/// The borrower opens an appeal about their phone from the borrower's page.
pub async fn appeal(
    state: &AppState,
    phone: &SimPhone,
    currency: &str,
    claim: ClaimKind,
    truth: &mut Truth,
    counts: &mut Counts,
    now: Timestamp,
) {
    let Some(status_code) = phone.status_code() else {
        counts.appeals.no_code += 1;
        truth.log.push((
            now,
            "appeal not opened: the phone shows no status code".into(),
        ));
        return;
    };
    let imei = phone.imei();
    let payment_reference = format!("RCPT-{}-{}", &imei[8..], now.as_second());
    let form = appeal_form(
        imei,
        &status_code,
        claim,
        &payment_reference,
        phone.amount_due(),
        currency,
        now,
    );
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let opened = match checked_request(form, today, state.settings.appeal_upload_max_bytes) {
        Ok(request) => appeals::open_appeal(state, request).await,
        Err(e) => Err(e),
    };
    let opened = match opened {
        Ok(opened) => opened,
        Err(e) => {
            counts.appeals.refused += 1;
            // The form is the page's own: a field it refuses is the simulation's mistake.
            if matches!(e, ApiError::Invalid(_)) {
                counts.refusals += 1;
                counts.refused.insert(e.to_string());
            }
            truth
                .log
                .push((now, format!("appeal ({}) refused: {e}", claim.as_str())));
            return;
        }
    };
    let record = &opened.record;
    let deadline = from_micros(record.deadline_us);
    truth.freezes.push((now, None));
    let unlock = record.unlock_until_us.map(|until| {
        let span = (deadline, from_micros(until));
        truth.reprieves.push(span);
        truth.unlocks.push(span);
        (truth.reprieves.len() - 1, truth.unlocks.len() - 1)
    });
    let slot = match claim {
        ClaimKind::Paid => &mut counts.appeals.opened.0,
        ClaimKind::Owner => &mut counts.appeals.opened.1,
        ClaimKind::WrongLock => &mut counts.appeals.opened.2,
    };
    *slot += 1;
    counts.appeals.unlock_promised += u64::from(unlock.is_some());
    truth.log.push((
        now,
        format!(
            "appeal ({}) opened: dispute freeze; {}",
            claim.as_str(),
            match (record.unlock_until_us, &opened.unlock_withheld) {
                (Some(until), _) => format!(
                    "unless answered by {deadline}, unlocked until {}",
                    from_micros(until)
                ),
                (None, Some(why)) => format!("no provisional unlock: {why}"),
                (None, None) => "no provisional unlock (not a payment claim)".into(),
            }
        ),
    ));
    truth.open_appeal = Some(OpenAppeal {
        reference: record.reference.clone(),
        claim,
        payment_reference: Some(payment_reference).filter(|_| claim == ClaimKind::Paid),
        freeze: truth.freezes.len() - 1,
        unlock,
        deadline,
    });
}

/// What the borrower's page sends for `claim`: the proof of holding the phone, a contact, the
/// claim's fields and its document (for a payment, the amount the screen asks for, or the
/// plan's first installment when it names none).
fn appeal_form(
    imei: &str,
    status_code: &str,
    claim: ClaimKind,
    payment_reference: &str,
    amount_due: Option<i64>,
    currency: &str,
    now: Timestamp,
) -> AppealForm {
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut field = |name: &str, value: String| {
        fields.insert(name.into(), value);
    };
    field("imei", imei.into());
    field("status_code", status_code.into());
    field("claim", claim.as_str().into());
    field("contact", "+254 711 000 000".into());
    let file = |name: &str| Upload {
        field: name.into(),
        file_name: format!("{name}.pdf"),
        declared_type: Some("application/pdf".into()),
        bytes: document(name),
    };
    let file = match claim {
        ClaimKind::Paid => {
            let minor = amount_due.unwrap_or(100_000);
            let digits = lien_money::minor_digits(currency).unwrap_or(0);
            field("payment_reference", payment_reference.into());
            field(
                "paid_on",
                now.to_zoned(jiff::tz::TimeZone::UTC).date().to_string(),
            );
            field("currency", currency.into());
            field(
                "amount",
                lien_money::format_decimal(minor, digits, lien_money::Style::Plain),
            );
            field("statement", "I paid by mobile money".into());
            Some(file("receipt"))
        }
        ClaimKind::Owner => {
            field("statement", "I bought this phone outright".into());
            Some(file("proof_of_purchase"))
        }
        ClaimKind::WrongLock => {
            field("statement", "I am up to date with my payments".into());
            None
        }
    };
    AppealForm::new(fields, file)
}

/// A whole PDF of a couple of kilobytes, as a mobile-money statement is: a header, an object,
/// and the cross-reference pointer and end marker at its end.
fn document(title: &str) -> Vec<u8> {
    let mut pdf = format!("%PDF-1.7\n1 0 obj\n<< /Title ({title}) >>\nendobj\n").into_bytes();
    pdf.extend(std::iter::repeat_n(b'%', 2048));
    pdf.extend_from_slice(b"\nstartxref\n0\n%%EOF\n");
    pdf
}

/// Support answers the open appeal of a device, if there is one: its freeze ends now, its
/// provisional unlock ends now (or never begins), and an accepted payment claim records the
/// payment, as much of it as support may (up to what is due), which the oracle reads from the
/// ledger by its reference.
pub async fn answer(
    state: &AppState,
    support: &Actor,
    device_id: &str,
    accept: bool,
    truth: &mut Truth,
    counts: &mut Counts,
    now: Timestamp,
) {
    let Some(open) = truth.open_appeal.take() else {
        truth
            .log
            .push((now, "support finds no open appeal to answer".into()));
        return;
    };
    let answer = Answer {
        verdict: if accept {
            Verdict::Accept
        } else {
            Verdict::Reject
        },
        reason: if accept {
            String::new()
        } else {
            "the payment is not in the provider's statement".into()
        },
        record_payment: None,
    };
    if let Err(e) = appeals::answer_appeal(state, support, &open.reference, answer).await {
        counts.refusals += 1;
        counts.refused.insert(e.to_string());
        truth
            .log
            .push((now, format!("answering the appeal failed: {e}")));
        truth.open_appeal = Some(open);
        return;
    }
    if accept {
        counts.appeals.answered.0 += 1;
    } else {
        counts.appeals.answered.1 += 1;
    }
    truth.freezes[open.freeze].1 = Some(now);
    if let Some((reprieve, unlock)) = open.unlock {
        end_span(&mut truth.reprieves, reprieve, now);
        end_span(&mut truth.unlocks, unlock, now);
    }
    let mut what = format!(
        "support {} the appeal ({})",
        if accept { "accepts" } else { "rejects" },
        open.claim.as_str()
    );
    if now < open.deadline && open.unlock.is_some() {
        what.push_str(" before its deadline: no provisional unlock");
    }
    if accept && let Some(reference) = &open.payment_reference {
        match recorded(state, device_id, reference).await {
            Some(minor) => {
                truth.money.push((now, minor));
                what.push_str(&format!("; payment {reference} of {minor} recorded"));
            }
            None => what.push_str("; no payment recorded (nothing was due)"),
        }
    }
    truth.log.push((now, what));
}

/// A span ended at `now`: cut short if it has begun, empty (it never applied) if not.
fn end_span(spans: &mut [(Timestamp, Timestamp)], i: usize, now: Timestamp) {
    let (from, until) = spans[i];
    spans[i] = (from, until.min(now.max(from)));
}

/// The amount the ledger holds for the payment `reference` of the device.
async fn recorded(state: &AppState, device_id: &str, reference: &str) -> Option<i64> {
    let snapshot = state.store.snapshot(device_id).await.ok()?;
    snapshot
        .payments
        .iter()
        .find(|p| p.reference == reference)
        .map(|p| p.amount_minor)
}

/// What the financier does to a phone by its API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinancierAct {
    /// Locks it by hand, with a message for its screen and a note for its history.
    Lock,
    /// Lifts its manual lock.
    Unlock,
    /// Accepts its SIM change, having heard from the borrower.
    AcceptSimChange,
}

impl FinancierAct {
    fn name(self) -> &'static str {
        match self {
            FinancierAct::Lock => "manual lock",
            FinancierAct::Unlock => "manual unlock",
            FinancierAct::AcceptSimChange => "SIM change accepted",
        }
    }
}

/// The financier acts on a device; the oracle learns of a lock, an unlock or an acceptance
/// only once the server has taken it.
pub async fn financier_act(
    state: &AppState,
    admin: &Actor,
    device_id: &str,
    act: FinancierAct,
    truth: &mut Truth,
    counts: &mut Counts,
    now: Timestamp,
) {
    let result = match act {
        FinancierAct::Lock => {
            let req = LockRequest {
                message: "Please call us about your account.".into(),
                note: Some("the borrower does not answer our calls".into()),
            };
            overrides::lock(state, admin, device_id, req)
                .await
                .map(drop)
        }
        FinancierAct::Unlock => {
            let req = UnlockRequest {
                reason: "the borrower called".into(),
                provisional_hours: None,
            };
            overrides::unlock(state, admin, device_id, req)
                .await
                .map(drop)
        }
        FinancierAct::AcceptSimChange => {
            let req = SimChangeAcceptRequest {
                reason: "the borrower called with the new number".into(),
            };
            sim_change::accept(state, admin, device_id, req)
                .await
                .map(drop)
        }
    };
    let f = &mut counts.financier;
    match (act, result) {
        (FinancierAct::Lock, Ok(())) => {
            f.manual_locks.0 += 1;
            truth.manual_locks.push((now, None));
        }
        (FinancierAct::Unlock, Ok(())) => {
            f.manual_locks.1 += 1;
            end_open(&mut truth.manual_locks, now);
        }
        (FinancierAct::AcceptSimChange, Ok(())) => {
            f.sim_accepted.0 += 1;
            end_open(&mut truth.sim_changes, now);
        }
        (_, Err(e)) => {
            // Expected: an unlock or an acceptance with nothing to end (the phone has not
            // reported its card yet, its policy ignores new cards), a lock on a released phone.
            if act == FinancierAct::AcceptSimChange {
                f.sim_accepted.1 += 1;
            }
            truth
                .log
                .push((now, format!("{} refused: {e}", act.name())));
            return;
        }
    }
    truth.log.push((now, act.name().into()));
}

/// Ends every span of `spans` still open, at `now`.
fn end_open(spans: &mut [(Timestamp, Option<Timestamp>)], now: Timestamp) {
    for span in spans.iter_mut().filter(|s| s.1.is_none()) {
        span.1 = Some(now);
    }
}

/// A new SIM card in the phone (the run wakes it, so that it reports the card at once if it
/// can). The oracle counts from here, as no screen can tell of the change before.
pub fn sim_change(phone: &mut SimPhone, truth: &mut Truth, counts: &mut Counts, now: Timestamp) {
    counts.financier.sim_changes += 1;
    phone.change_sim();
    if truth.sim_changes.last().is_none_or(|s| s.1.is_some()) {
        truth.sim_changes.push((now, None));
    }
    truth.log.push((now, "new SIM card".into()));
}
