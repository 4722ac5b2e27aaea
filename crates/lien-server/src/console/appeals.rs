//! Appeals in the console: the queue with each appeal's deadline, one appeal with its document
//! viewable in the browser, and the answer (for the roles that answer appeals).

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Person, SignedForm, error_box, error_page, page, when};
use crate::app::AppState;
use crate::auth::Action;
use crate::clock::micros;
use crate::commands::appeals::{self, Answer, AppealStatus, Verdict};
use crate::error::ApiError;
use crate::routes::appeals::{AppealView, appeal_view};

/// The queue's filter.
#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    #[serde(default)]
    status: Option<String>,
}

/// The appeals queue: open ones by default, soonest deadline first.
pub async fn queue(
    State(state): State<AppState>,
    person: Person,
    query: Result<Query<QueueQuery>, QueryRejection>,
) -> Response {
    let me = &person.0;
    let wanted = query
        .ok()
        .and_then(|Query(q)| q.status)
        .unwrap_or_else(|| "open".to_string());
    let status = match wanted.as_str() {
        "all" => None,
        other => match AppealStatus::parse(other) {
            Some(s) => Some(s),
            None => {
                let err = ApiError::invalid("status", "one of open, accepted, rejected, all");
                return error_page(Some(me), err);
            }
        },
    };
    let views = match listed(&state, &me.actor, status, None, 1000).await {
        Ok(views) => views,
        Err(err) => return error_page(Some(me), err),
    };
    let body = html! {
        p {
            @for (value, label) in [("open", "Open"), ("accepted", "Accepted"), ("rejected", "Rejected"), ("all", "All")] {
                @if value == wanted { strong { (label) } } @else { a href={ "/console/appeals?status=" (value) } { (label) } }
                " "
            }
        }
        (appeals_table(&views))
    };
    page(StatusCode::OK, Some(me), "Appeals", body)
}

/// The actor's appeals (of one device, or all), as the pages show them.
pub(super) async fn listed(
    state: &AppState,
    actor: &crate::auth::Actor,
    status: Option<AppealStatus>,
    device_id: Option<String>,
    limit: u32,
) -> Result<Vec<AppealView>, ApiError> {
    let now_us = micros(state.clock.now());
    appeals::list_appeals(state, actor, status, device_id, limit)
        .await?
        .iter()
        .map(|a| appeal_view(a, now_us))
        .collect()
}

/// A table of appeals, each a link to its page.
pub(super) fn appeals_table(views: &[AppealView]) -> Markup {
    html! {
        @if views.is_empty() { p id="none" { "No appeals." } }
        @else {
            div class="scroll" {
                table id="appeals" {
                    thead { tr { th { "Reference" } th { "Claim" } th { "Opened" } th { "Answer by" } th { "Status" } } }
                    tbody { @for a in views {
                        tr {
                            td { a href={ "/console/appeals/" (a.reference) } { (a.reference) } }
                            td { (a.claim.as_str()) }
                            td { (when(&a.opened_at)) }
                            td { (when(&a.deadline)) }
                            td { (a.status.as_str()) }
                        }
                    } }
                }
            }
        }
    }
}

/// One appeal, with its document and the answer form.
pub async fn show(
    State(state): State<AppState>,
    person: Person,
    Path(reference): Path<String>,
    query: Result<Query<ShowQuery>, QueryRejection>,
) -> Response {
    let answered = query.is_ok_and(|Query(q)| q.answered.is_some());
    render(&state, &person, &reference, answered, None, &HashMap::new()).await
}

/// An appeal page's query: `answered` after an answer was recorded.
#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    answered: Option<String>,
}

async fn render(
    state: &AppState,
    person: &Person,
    reference: &str,
    answered: bool,
    error: Option<ApiError>,
    typed: &HashMap<String, String>,
) -> Response {
    let me = &person.0;
    let appeal = match appeals::visible_appeal(state, &me.actor, reference).await {
        Ok(appeal) => appeal,
        Err(err) => return error_page(Some(me), err),
    };
    let a = match appeal_view(&appeal, micros(state.clock.now())) {
        Ok(view) => view,
        Err(err) => return error_page(Some(me), err),
    };
    let document = format!("/console/appeals/{}/document", a.reference);
    let typed = |name: &str| typed.get(name).cloned().unwrap_or_default();
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status);
    let body = html! {
        @if answered && a.status != AppealStatus::Open { p id="done" class="box ok" { "Answer recorded. The borrower sees it on the appeal's page." } }
        dl id="appeal" {
            dt { "Status" } dd id="status" { strong { (a.status.as_str()) } " — " (a.progress) }
            dt { "Device" } dd { a href={ "/console/devices/" (a.device_id) } { (a.device_id) } }
            dt { "Claim" } dd { (a.claim.as_str()) }
            dt { "Borrower's words" } dd { (a.statement) }
            dt { "Contact" } dd { (a.contact) }
            @if let Some(r) = &a.payment_reference { dt { "Payment reference" } dd { (r) } }
            @if let Some(d) = &a.paid_on { dt { "Paid on" } dd { (d) } }
            @if let Some(m) = &a.amount {
                dt { "Amount" } dd { (lien_money::format(m.minor, &m.currency, lien_money::Style::Grouped)) }
            }
            dt { "Opened" } dd { (when(&a.opened_at)) }
            dt { "Answer by" } dd { (when(&a.deadline)) }
            @if let Some(until) = &a.provisional_unlock_until { dt { "Unlocked until" } dd { (when(until)) } }
            @if let Some(at) = &a.decided_at {
                dt { "Answered" } dd { (when(at)) @if let Some(by) = &a.decided_by { " by " (by) } }
            }
            @if let Some(why) = &a.decision_reason { dt { "Answer" } dd id="decision-reason" { (why) } }
        }
        @if let Some(file) = &a.attachment {
            h2 { "Document" }
            p { (file.media_type) ", " (file.size) " bytes, SHA-256 " code { (file.sha256) } }
            @if file.media_type.starts_with("image/") {
                p { img id="document" src=(document) alt="The borrower's document" style="max-width:100%"; }
            }
            p { a href=(document) id="document-link" { "Open the document" } }
        }
        @if a.status == AppealStatus::Open && me.actor.role.may(Action::AnswerAppeal) {
            h2 { "Answer" }
            @if let Some(err) = &error { (error_box(err)) }
            form class="stack" method="post" action={ "/console/appeals/" (a.reference) "/decision" } id="answer-form" {
                input type="hidden" name="csrf" value=(me.session.csrf);
                label for="reason" { "Reason (the borrower reads it; required to reject)" }
                input id="reason" name="reason" value=(typed("reason")) maxlength="500";
                label { input type="checkbox" name="record_payment" checked; " When accepting a payment claim, record the payment" }
                button type="submit" name="decision" value="accept" id="accept" { "Accept" }
                " "
                button type="submit" name="decision" value="reject" id="reject" { "Reject" }
            }
        }
    };
    page(status, Some(me), &format!("Appeal {}", a.reference), body)
}

/// Answers an appeal.
pub async fn decide(
    State(state): State<AppState>,
    Path(reference): Path<String>,
    form: SignedForm,
) -> Response {
    let (person, fields) = (&form.person, &form.fields);
    let field = |name: &str| form.field(name);
    let verdict = match field("decision") {
        "accept" => Verdict::Accept,
        "reject" => Verdict::Reject,
        _ => {
            let err = ApiError::invalid("decision", "accept or reject");
            return render(&state, person, &reference, false, Some(err), fields).await;
        }
    };
    let answer = Answer {
        verdict,
        reason: field("reason").to_string(),
        record_payment: Some(field("record_payment") == "on"),
    };
    match appeals::answer_appeal(&state, &person.0.actor, &reference, answer).await {
        Ok(_) => Redirect::to(&format!("/console/appeals/{reference}?answered=1")).into_response(),
        Err(err @ (ApiError::NotFound(_) | ApiError::Forbidden(_) | ApiError::Internal(_))) => {
            error_page(Some(&person.0), err)
        }
        Err(err) => render(&state, person, &reference, false, Some(err), fields).await,
    }
}

/// The appeal's document: an image to view in the browser, a PDF to download, served only as
/// the three kinds an upload can be (recognised from its content when it was taken), nosniff
/// and sandboxed so that nothing in it runs.
pub async fn document(
    State(state): State<AppState>,
    person: Person,
    Path(reference): Path<String>,
) -> Response {
    let (_, file, bytes) = match appeals::attachment(&state, &person.0.actor, &reference).await {
        Ok(found) => found,
        Err(err) => return error_page(Some(&person.0), err),
    };
    let media_type: &'static str = match file.media_type.as_str() {
        "image/png" => "image/png",
        "image/jpeg" => "image/jpeg",
        "application/pdf" => "application/pdf",
        _ => "application/octet-stream",
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    // A PDF opens in the browser's own viewer, where no CSP applies: it is downloaded instead.
    let disposition = if media_type.starts_with("image/") {
        "inline"
    } else {
        "attachment"
    };
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(disposition),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
        ),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}
