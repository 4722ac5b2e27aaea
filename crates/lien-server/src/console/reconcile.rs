//! Statement reconciliation from the console: a financier's admin uploads the provider's
//! statement for a period and sees what Lien lacked (now applied), what differs and what the
//! statement lacks. Through the same commands as `POST /v1/reconciliations`, with the same
//! limits (one run per financier at a time, a rate per financier, 8 MiB).

use std::collections::HashMap;

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::upload::signed_upload;
use super::{Person, error_box, error_page, page, when};
use crate::app::AppState;
use crate::auth::Action;
use crate::commands::people::SignedIn;
use crate::commands::reconciliation;
use crate::error::ApiError;
use crate::providers::statement::{MismatchedField, MissingOutcome, ReconciliationReport};

/// The reconciliation form.
pub async fn form(State(state): State<AppState>, person: Person) -> Response {
    let me = &person.0;
    if let Err(err) = me.actor.require(Action::Reconcile) {
        return error_page(Some(me), err);
    }
    let today = state.clock.now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let typed = HashMap::from([
        ("from".to_string(), today.to_string()),
        ("to".to_string(), today.to_string()),
    ]);
    let body = reconcile_form(me, None, &typed);
    page(StatusCode::OK, Some(me), "Reconcile a statement", body)
}

fn reconcile_form(
    me: &SignedIn,
    error: Option<&ApiError>,
    typed: &HashMap<String, String>,
) -> Markup {
    let typed = |name: &str| typed.get(name).cloned().unwrap_or_default();
    let provider = Some(typed("provider"))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "mpesa".to_string());
    html! {
        p { "Upload the statement your payment provider gives you for a period (CSV with the columns "
            code { "transaction_id,account,amount,currency,paid_at" }
            ", in any order; M-Pesa's may leave out the currency). Lien records the transactions it \
             never heard of on their devices (unlocking them at once), keeps those whose account \
             matches no device among the unmatched payments, and lists what differs: nothing else \
             is changed. The same statement again applies nothing more." }
        @if let Some(err) = error { (error_box(err)) }
        form class="stack" method="post" action="/console/reconcile" enctype="multipart/form-data" id="reconcile-form" {
            input type="hidden" name="csrf" value=(me.session.csrf);
            label for="provider" { "Provider (" code { "mpesa" } ", or the name of one of yours)" }
            input id="provider" name="provider" value=(provider) maxlength="64" required;
            label for="from" { "From (UTC date, included)" }
            input id="from" name="from" value=(typed("from")) size="10" required;
            label for="to" { "To (UTC date, included; at most 31 days in all)" }
            input id="to" name="to" value=(typed("to")) size="10" required;
            label for="file" { "Statement (CSV, at most 8 MiB)" }
            input id="file" name="file" type="file" accept=".csv,text/csv" required;
            button type="submit" { "Reconcile" }
        }
    }
}

/// The period of two typed dates, both included, as RFC 3339 instants (`to` excluded).
fn period(from: &str, to: &str) -> Result<(String, String), ApiError> {
    let date = |field: &str, text: &str| {
        text.trim()
            .parse::<jiff::civil::Date>()
            .map_err(|_| ApiError::invalid(field, "a date, YYYY-MM-DD"))
    };
    let (from, to) = (date("from", from)?, date("to", to)?);
    let after = to
        .tomorrow()
        .map_err(|_| ApiError::invalid("to", "is the last date there is"))?;
    Ok((format!("{from}T00:00:00Z"), format!("{after}T00:00:00Z")))
}

/// Reconciles the uploaded statement; shows the report.
pub async fn reconcile(State(state): State<AppState>, person: Person, form: Multipart) -> Response {
    let me = &person.0;
    let Some(financier_id) = me.actor.financier_id.clone() else {
        let err = ApiError::Forbidden("statements are reconciled by a financier's admin".into());
        return error_page(Some(me), err);
    };
    // The form's token first; then who may, and whose turn it is, before a byte of the
    // statement is read.
    let signed = match signed_upload(&person, form).await {
        Ok(signed) => signed,
        Err(refused) => return refused,
    };
    let run = match reconciliation::admit(&state, &me.actor, &financier_id).await {
        Ok(Ok(run)) => run,
        Ok(Err(busy)) => {
            let err = ApiError::Unavailable(busy.explain());
            return page(
                StatusCode::TOO_MANY_REQUESTS,
                Some(me),
                "Reconcile a statement",
                reconcile_form(me, Some(&err), &HashMap::new()),
            );
        }
        Err(err) => return error_page(Some(me), err),
    };
    let upload = match signed.read().await {
        Ok(upload) => upload,
        Err((status, err)) => {
            let body = reconcile_form(me, Some(&err), &HashMap::new());
            return page(status, Some(me), "Reconcile a statement", body);
        }
    };
    let field = |name: &str| upload.fields.get(name).map(String::as_str).unwrap_or("");
    let outcome = async {
        let (from, to) = period(field("from"), field("to"))?;
        let period = crate::providers::statement::parse_period(&from, &to)?;
        let file = upload
            .file
            .as_deref()
            .filter(|f| !f.is_empty())
            .ok_or_else(|| ApiError::invalid("file", "choose the statement's CSV file"))?;
        reconciliation::reconcile(&state, &run, field("provider"), period, file).await
    };
    match outcome.await {
        Ok(report) => page(
            StatusCode::OK,
            Some(me),
            "Reconciliation",
            report_page(&report),
        ),
        Err(err @ (ApiError::Forbidden(_) | ApiError::Internal(_))) => error_page(Some(me), err),
        Err(err) => {
            let body = reconcile_form(me, Some(&err), &upload.fields);
            page(err.status(), Some(me), "Reconcile a statement", body)
        }
    }
}

fn money(minor: i64, currency: &str) -> String {
    lien_money::format(minor, currency, lien_money::Style::Grouped)
}

fn device_link(device_id: Option<&String>, account: &str) -> Markup {
    html! {
        @match device_id {
            Some(id) => a href={ "/console/devices/" (id) } { (account) },
            None => (account),
        }
    }
}

fn report_page(r: &ReconciliationReport) -> Markup {
    let c = &r.counts;
    html! {
        p class={ "box " @if c.mismatched == 0 && c.lien_only == 0 { "ok" } @else { "err" } } id="summary" {
            (r.provider) ", " (when(&r.from)) " to " (when(&r.to)) ": "
            (c.statement) " transactions on the statement, " (c.matched) " matched, "
            (c.missing) " missing from Lien (now applied), " (c.mismatched) " different, "
            (c.lien_only) " only in Lien."
        }
        h2 { "Missing from Lien" }
        @if r.missing.is_empty() { p { "None." } }
        @else {
            div class="scroll" { table id="missing" {
                thead { tr { th { "Line" } th { "Transaction" } th { "Account" } th { "Amount" } th { "Paid" } th { "Now" } } }
                tbody { @for m in &r.missing {
                    tr {
                        td { (m.line) } td { (m.transaction_id) }
                        td { (device_link(m.device_id.as_ref(), &m.account)) }
                        td { (money(m.amount_minor, &m.currency)) } td { (when(&m.paid_at)) }
                        td { (match m.outcome {
                            MissingOutcome::Recorded => "recorded on the device",
                            MissingOutcome::Unmatched => "kept as unmatched (no such account)",
                            MissingOutcome::Repeated => "arrived meanwhile; nothing changed",
                        }) }
                    }
                } }
            } }
        }
        h2 { "Different" }
        @if r.mismatched.is_empty() { p { "None." } }
        @else {
            div class="scroll" { table id="mismatched" {
                thead { tr { th { "Line" } th { "Transaction" } th { "Differs in" } th { "Statement" } th { "Lien" } } }
                tbody { @for m in &r.mismatched {
                    tr {
                        td { (m.line) } td { (m.transaction_id) }
                        td { (m.fields.iter().map(|f| match f {
                            MismatchedField::Amount => "amount",
                            MismatchedField::Currency => "currency",
                            MismatchedField::Account => "account",
                        }).collect::<Vec<_>>().join(", ")) }
                        td { (m.statement.account) ", " (money(m.statement.amount_minor, &m.statement.currency)) }
                        td { (device_link(m.lien.device_id.as_ref(), &m.lien.account)) ", "
                             (money(m.lien.amount_minor, &m.lien.currency)) }
                    }
                } }
            } }
        }
        h2 { "Only in Lien" }
        @if r.lien_only.is_empty() { p { "None." } }
        @else {
            div class="scroll" { table id="lien-only" {
                thead { tr { th { "Transaction" } th { "Received" } th { "Account" } th { "Amount" } } }
                tbody { @for l in &r.lien_only {
                    tr {
                        td { (l.transaction_id) } td { (when(&l.received_at)) }
                        td { (device_link(l.lien.device_id.as_ref(), &l.lien.account)) }
                        td { (money(l.lien.amount_minor, &l.lien.currency)) }
                    }
                } }
            } }
        }
        p { a href="/console/reconcile" { "Reconcile another statement" } }
    }
}
