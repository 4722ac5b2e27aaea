//! The borrower's pages: server-rendered HTML, small, without JavaScript, for a cheap phone's
//! browser. "Why is my phone locked", open and follow an appeal, check an IMEI.
//!
//! The pages are maud templates, checked when the server is compiled: every value spliced into
//! one is escaped by construction, and nothing but the constant style sheet is marked as markup.
//! Values in links are percent-encoded ([`query_value`]). The pages also forbid scripts
//! altogether with a Content-Security-Policy. The look-ups share the public rate limit.
//!
//! By IMEI, the "why" page shows the state, how to pay and whom to call, but not the amount:
//! an IMEI is written on the box and the receipt. The amount due is shown for the status code,
//! which only the lock screen shows; a code matches only while the phone may still be showing
//! it (its current token's, or one superseded within `status_code_grace_hours`), so old codes
//! do not accumulate into matches for guesses. Opening an appeal takes both the IMEI and the
//! code.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, PercentEncode, utf8_percent_encode};

use crate::app::AppState;
use crate::clock::micros;
use crate::commands::appeals::{AppealStatus, ClaimKind};
use crate::error::ApiError;
use crate::routes::appeals;
use crate::routes::public::{ImeiStatus, PublicClient, check_imei};
use crate::wire::{DeviceStateJson, ReasonCode};

/// The pages' routes. They are not part of the JSON API or its OpenAPI document.
pub fn router(settings: &crate::config::Settings) -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/why", get(why))
        .route("/check", get(check))
        .route(
            "/appeal",
            get(appeal_form)
                .post(appeal_submit)
                .layer(crate::routes::appeal_body_limit(settings)),
        )
        .route("/appeal/status", get(appeal_status))
}

const STYLE: &str = "body{font-family:sans-serif;max-width:34em;margin:0 auto;padding:.5em;line-height:1.4}\
input,select,textarea,button{font-size:1em;width:100%;box-sizing:border-box;margin:.2em 0 .6em}\
.box{border:1px solid #888;padding:.5em;margin:.5em 0}.err{border-color:#b00;color:#b00}\
nav a{margin-right:1em}";

/// What a query value may keep as it is: RFC 3986's unreserved characters. Everything else,
/// including `&`, `=`, `#` and `+`, is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A value for a link's query string (IMEIs and codes are digits; anything else is encoded).
fn query_value(text: &str) -> PercentEncode<'_> {
    utf8_percent_encode(text, QUERY_VALUE)
}

/// A whole page.
fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · Lien" }
                // A constant of ours, and raw text in a style element: not escaped.
                style { (PreEscaped(STYLE)) }
            }
            body {
                nav {
                    a href="/" { "Home" }
                    a href="/check" { "IMEI check" }
                    a href="/appeal" { "Appeal" }
                }
                h1 { (title) }
                (body)
            }
        }
    };
    html_response(
        status,
        html,
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    )
}

/// An HTML page as a response: its type, `csp` as its Content-Security-Policy, and no type
/// sniffing. The borrower's pages and the console both answer this way.
pub fn html_response(status: StatusCode, html: Markup, csp: &'static str) -> Response {
    let mut response = (status, html.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// An error as a page: the message names the field; a 5xx says nothing internal.
fn error_page(err: ApiError, title: &str, form: Markup) -> Response {
    if let ApiError::Internal(e) = &err {
        tracing::error!(error = format!("{e:#}"), "page failed");
    }
    let message = match &err {
        ApiError::Internal(_) => "Something went wrong on our side. Please try again later.".into(),
        ApiError::NotFound(what) => format!("No {what} found. Check the number and try again."),
        other => other.to_string(),
    };
    page(
        err.status(),
        title,
        html! {
            p class="box err" id="error" { (message) }
            (form)
        },
    )
}

fn limited_page(limited: crate::rate_limit::Limited) -> Response {
    let mut response = page(
        StatusCode::TOO_MANY_REQUESTS,
        "Please wait",
        html! {
            p class="box err" id="error" {
                "Too many requests from your connection. Try again in "
                (limited.retry_after_secs) " seconds."
            }
        },
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(limited.retry_after_secs),
    );
    response
}

fn lookup_form(action: &str, name: &str, label: &str, value: &str, button: &str) -> Markup {
    html! {
        form method="get" action=(action) {
            label for=(name) { (label) }
            input id=(name) name=(name) value=(value) inputmode="text" autocomplete="off" required;
            button type="submit" { (button) }
        }
    }
}

fn why_form(value: &str) -> Markup {
    lookup_form(
        "/why",
        "q",
        "IMEI (dial *#06#) or the status code on the lock screen",
        value,
        "Why is my phone locked?",
    )
}

fn check_form(value: &str) -> Markup {
    lookup_form("/check", "imei", "IMEI (dial *#06#)", value, "Check")
}

fn follow_form(value: &str) -> Markup {
    lookup_form(
        "/appeal/status",
        "reference",
        "Appeal reference (AP-…)",
        value,
        "Follow my appeal",
    )
}

async fn index() -> Response {
    page(
        StatusCode::OK,
        "Financed phones",
        html! {
            h2 { "Why is my phone locked?" }
            (why_form(""))
            h2 { "Is this phone financed?" }
            (check_form(""))
            h2 { "Appeals" }
            p {
                a href="/appeal" { "Open an appeal" }
                " if you paid and are still locked, if you own this phone, or if the lock is wrong."
            }
            (follow_form(""))
        },
    )
}

/// Query of the look-up pages.
#[derive(Debug, Default, serde::Deserialize)]
struct Q {
    q: Option<String>,
    imei: Option<String>,
    reference: Option<String>,
}

async fn why(
    State(state): State<AppState>,
    client: PublicClient,
    Query(query): Query<Q>,
) -> Response {
    let title = "Why is my phone locked?";
    let Some(q) = query.q.filter(|q| !q.trim().is_empty()) else {
        return page(StatusCode::OK, title, why_form(""));
    };
    if let Err(limited) = client.check(&state) {
        return limited_page(limited);
    }
    match why_body(&state, &q).await {
        Ok(body) => page(StatusCode::OK, title, html! { (body) (why_form(&q)) }),
        Err(e) => error_page(e, title, why_form(&q)),
    }
}

async fn why_body(state: &AppState, q: &str) -> Result<Markup, ApiError> {
    let device = appeals::find_device(state, q).await?;
    let view = crate::domain::stored_view(&device.decision)?;
    let financier = state.store.financier(&device.enrolled.financier_id).await?;
    let by_code = q.trim().len() == 8 && q.trim().bytes().all(|b| b.is_ascii_digit());
    let state_words = match view.state {
        DeviceStateJson::Active => "Not locked: payments are up to date.",
        DeviceStateJson::Reminder => "Not locked: a payment reminder is showing.",
        DeviceStateJson::Restricted => "Some functions are limited.",
        DeviceStateJson::Locked => "Locked. Emergency calls still work.",
        DeviceStateJson::Released => "Released: the phone is yours.",
    };
    let amount_due = lien_money::Amount {
        minor: view.amount_due.minor,
        code: &view.amount_due.currency,
        style: lien_money::Style::Plain,
    };
    let payment_link = financier
        .payment_link
        .as_deref()
        .filter(|_| view.state != DeviceStateJson::Released);
    Ok(html! {
        div class="box" id="result" {
            p { strong id="state" { (state_words) } }
            p { (public_reason(&view.reason)) }
            @if view.amount_due.minor > 0 {
                @if by_code {
                    p { "Amount due now: " strong id="amount" { (amount_due) } }
                } @else {
                    p {
                        "To see the amount due, enter the status code shown on the lock screen \
                         instead of the IMEI."
                    }
                }
            }
            @if let Some(link) = payment_link {
                p {
                    "How to pay: " a href=(link) rel="noreferrer" { (link) }
                    ". The phone unlocks within seconds of a payment that brings you up to date."
                }
            }
            p {
                "Whom to call: " (financier.name) " — " (financier.contact)
                ". Platform support: " (state.settings.support_contact) "."
            }
        }
        p {
            "Paid and still locked? "
            a href={ "/appeal?q=" (query_value(q.trim())) } { "Open an appeal" }
            "."
        }
    })
}

/// The reason as a public page may show it: the decision's own words, except a manual lock's
/// message, which the financier wrote for the phone's holder and may name them; the page shows
/// anyone who knows the IMEI.
fn public_reason(reason: &crate::wire::ReasonView) -> String {
    if reason.code == ReasonCode::ManualLock {
        "Locked by the financier. Call them to find out why; the lock screen shows their message."
            .into()
    } else {
        reason.text.clone()
    }
}

async fn check(
    State(state): State<AppState>,
    client: PublicClient,
    Query(query): Query<Q>,
) -> Response {
    let title = "Is this phone financed?";
    let Some(imei) = query.imei.filter(|q| !q.trim().is_empty()) else {
        return page(StatusCode::OK, title, check_form(""));
    };
    if let Err(limited) = client.check(&state) {
        return limited_page(limited);
    }
    match check_imei(&state, &imei).await {
        Ok(answer) => {
            let status_words = match answer.status {
                ImeiStatus::Clear => "Clear",
                ImeiStatus::FinancedGoodStanding => "Financed, in good standing",
                ImeiStatus::Locked => "Financed and locked",
                ImeiStatus::Released => "Released",
                ImeiStatus::Unknown => "Unknown",
            };
            let body = html! {
                div class="box" id="result" {
                    p { strong id="status" data-status=(answer.status.as_str()) { (status_words) } }
                    p { (answer.message) }
                    @if let Some(on) = &answer.released_on {
                        p { "Released on " (on) "." }
                    }
                    @if let Some(f) = &answer.financier {
                        p { "Financier: " (f.name) " — " (f.contact) "." }
                    }
                    p { "Platform support: " (answer.support_contact) "." }
                }
                (check_form(&imei))
            };
            page(StatusCode::OK, title, body)
        }
        Err(e) => error_page(e, title, check_form(&imei)),
    }
}

/// What the borrower reads for each claim an appeal can make.
fn claim_label(claim: ClaimKind) -> &'static str {
    match claim {
        ClaimKind::Paid => "I paid and I am still locked",
        ClaimKind::Owner => "I own this phone (bought second-hand)",
        ClaimKind::WrongLock => "This lock is wrong",
    }
}

fn appeal_form_html(values: &HashMap<String, String>, max_bytes: u64) -> Markup {
    let v = |name: &str| values.get(name).map(String::as_str).unwrap_or("");
    let claim = values.get("claim").map(String::as_str).unwrap_or("paid");
    let limit = appeals::mib(max_bytes);
    html! {
        form method="post" action="/appeal" enctype="multipart/form-data" {
            p {
                "Both numbers are on the phone's lock screen. The status code shows that you have \
                 the phone; if the phone has just changed its code, use the new one."
            }
            label for="imei" { "IMEI (on the lock screen, or dial *#06#)" }
            input id="imei" name="imei" value=(v("imei")) inputmode="numeric" autocomplete="off" required;
            label for="status_code" { "Status code (8 digits, on the lock screen)" }
            input id="status_code" name="status_code" value=(v("status_code")) inputmode="numeric" autocomplete="off" required;
            label for="claim" { "What happened?" }
            select id="claim" name="claim" {
                @for kind in ClaimKind::ALL {
                    option value=(kind.as_str()) selected[claim == kind.as_str()] { (claim_label(*kind)) }
                }
            }
            label for="contact" { "Your phone number or e-mail, for the financier to reach you" }
            input id="contact" name="contact" value=(v("contact")) required;
            fieldset {
                legend { "If you paid" }
                label for="payment_reference" { "Payment reference (transaction code)" }
                input id="payment_reference" name="payment_reference" value=(v("payment_reference"));
                label for="paid_on" { "Date paid (YYYY-MM-DD)" }
                input id="paid_on" name="paid_on" value=(v("paid_on")) placeholder="2026-03-05";
                label for="amount" { "Amount" }
                input id="amount" name="amount" value=(v("amount")) inputmode="decimal";
                label for="currency" { "Currency (e.g. KES)" }
                input id="currency" name="currency" value=(v("currency"));
            }
            label for="receipt" {
                "Receipt, or proof of purchase (PDF, JPEG or PNG, at most " (limit) ")"
            }
            input id="receipt" name="receipt" type="file" accept="application/pdf,image/jpeg,image/png";
            label for="statement" { "Anything else we should know" }
            textarea id="statement" name="statement" rows="3" { (v("statement")) }
            button id="submit" type="submit" { "Send the appeal" }
        }
    }
}

async fn appeal_form(State(state): State<AppState>, Query(query): Query<Q>) -> Response {
    let mut values = HashMap::new();
    if let Some(q) = query.q {
        // From the "why" page: an 8-digit status code, or an IMEI.
        let q = q.trim().to_string();
        let field = if q.len() == 8 && q.bytes().all(|b| b.is_ascii_digit()) {
            "status_code"
        } else {
            "imei"
        };
        values.insert(field.to_string(), q);
    }
    page(
        StatusCode::OK,
        "Open an appeal",
        html! {
            p {
                "The financier must answer by a deadline. If you paid and they do not answer in \
                 time, your phone is unlocked for a while. Nothing gets worse while your appeal \
                 is open."
            }
            (appeal_form_html(&values, state.settings.appeal_upload_max_bytes))
        },
    )
}

async fn appeal_submit(
    State(state): State<AppState>,
    client: PublicClient,
    multipart: Multipart,
) -> Response {
    let title = "Open an appeal";
    let max = state.settings.appeal_upload_max_bytes;
    if let Err(limited) = client.check(&state) {
        return limited_page(limited);
    }
    let form = match appeals::read_form(multipart, max).await {
        Ok(form) => form,
        Err(e) => return error_page(e, title, appeal_form_html(&HashMap::new(), max)),
    };
    let values = form.fields.clone();
    match appeals::open_appeal(&state, form).await {
        Ok(opened) => {
            let appeal = &opened.record;
            let view = crate::commands::appeals::rules::progress(appeal, micros(state.clock.now()));
            page(
                StatusCode::CREATED,
                "Your appeal is open",
                html! {
                    div class="box" id="result" {
                        p { "Your reference: " strong id="reference" { (appeal.reference) } }
                        p { "Keep it: it is the only way to follow your appeal." }
                        p { (view) }
                        @if let Some(why) = &opened.unlock_withheld {
                            p id="withheld" {
                                "No provisional unlock at the deadline: " (why) "."
                            }
                        }
                    }
                    p {
                        a id="follow"
                            href={ "/appeal/status?reference=" (query_value(&appeal.reference)) }
                            { "Follow this appeal" }
                    }
                },
            )
        }
        Err(e) => error_page(e, title, appeal_form_html(&values, max)),
    }
}

async fn appeal_status(
    State(state): State<AppState>,
    client: PublicClient,
    Query(query): Query<Q>,
) -> Response {
    let title = "Your appeal";
    let Some(reference) = query.reference.filter(|q| !q.trim().is_empty()) else {
        return page(StatusCode::OK, title, follow_form(""));
    };
    if let Err(limited) = client.check(&state) {
        return limited_page(limited);
    }
    match appeals::public_view(&state, &reference).await {
        Ok(a) => {
            let status_words = match a.status {
                AppealStatus::Accepted => "Accepted",
                AppealStatus::Rejected => "Rejected",
                AppealStatus::Open => "Open",
            };
            let reason = a.decision_reason.as_deref().filter(|r| !r.is_empty());
            let body = html! {
                div class="box" id="result" {
                    p { "Reference: " (a.reference) }
                    p { "Status: " strong id="status" data-status=(a.status.as_str()) { (status_words) } }
                    p { (a.progress) }
                    p { "Answer due by: " (a.deadline) }
                    @if let Some(reason) = reason {
                        p { "The financier's reason: " span id="reason" { (reason) } }
                    }
                    p { "Financier: " (a.financier_name) " — " (a.financier_contact) "." }
                }
                (follow_form(&a.reference))
            };
            page(StatusCode::OK, title, body)
        }
        Err(e) => error_page(e, title, follow_form(&reference)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_that_could_open_a_tag_or_leave_an_attribute_is_escaped() {
        let hostile = "\"><script>alert('x')</script> & \"q\"";
        let form = lookup_form("/why", "q", "<b>label</b>", hostile, "Go").into_string();
        assert!(
            form.contains(
                "value=\"&quot;&gt;&lt;script&gt;alert('x')&lt;/script&gt; &amp; &quot;q&quot;\""
            ),
            "{form}"
        );
        assert!(form.contains("&lt;b&gt;label&lt;/b&gt;"), "{form}");
        assert!(!form.contains("<script") && !form.contains("<b>"), "{form}");
        let values = HashMap::from([("statement".to_string(), "</textarea><p>".to_string())]);
        let appeal = appeal_form_html(&values, 1 << 20).into_string();
        assert!(
            appeal.contains("&lt;/textarea&gt;&lt;p&gt;</textarea>"),
            "{appeal}"
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_value("35 6938/?&").to_string(), "35%206938%2F%3F%26");
        assert_eq!(query_value("AP-01_x.~").to_string(), "AP-01_x.~");
        assert_eq!(query_value("a+b=c#d").to_string(), "a%2Bb%3Dc%23d");
    }
}
