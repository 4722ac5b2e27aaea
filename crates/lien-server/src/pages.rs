//! The borrower's pages: server-rendered HTML, small, without JavaScript, for a cheap phone's
//! browser. "Why is my phone locked", open and follow an appeal, check an IMEI.
//!
//! Every value that reaches a page goes through [`esc`]; the pages also forbid scripts
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

use crate::app::AppState;
use crate::clock::micros;
use crate::error::ApiError;
use crate::routes::appeals::{self, format_amount};
use crate::routes::public::{PublicClient, check_imei};

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

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:34em;margin:0 auto;padding:.5em;line-height:1.4}\
input,select,textarea,button{font-size:1em;width:100%;box-sizing:border-box;margin:.2em 0 .6em}\
.box{border:1px solid #888;padding:.5em;margin:.5em 0}.err{border-color:#b00;color:#b00}\
nav a{margin-right:1em}";

/// A whole page.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} · Lien</title><style>{STYLE}</style></head><body>\
         <nav><a href=\"/\">Home</a><a href=\"/check\">IMEI check</a><a href=\"/appeal\">Appeal</a></nav>\
         <h1>{title}</h1>{body}</body></html>",
        title = esc(title)
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// An error as a page: the message names the field; a 5xx says nothing internal.
fn error_page(err: ApiError, title: &str, form: &str) -> Response {
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
        &format!(
            "<p class=\"box err\" id=\"error\">{}</p>{form}",
            esc(&message)
        ),
    )
}

fn limited_page(limited: crate::rate_limit::Limited) -> Response {
    let mut response = page(
        StatusCode::TOO_MANY_REQUESTS,
        "Please wait",
        &format!(
            "<p class=\"box err\" id=\"error\">Too many requests from your connection. Try again in {} seconds.</p>",
            limited.retry_after_secs
        ),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(limited.retry_after_secs),
    );
    response
}

fn lookup_form(action: &str, name: &str, label: &str, value: &str, button: &str) -> String {
    format!(
        "<form method=\"get\" action=\"{action}\"><label for=\"{name}\">{label}</label>\
         <input id=\"{name}\" name=\"{name}\" value=\"{}\" inputmode=\"text\" autocomplete=\"off\" required>\
         <button type=\"submit\">{button}</button></form>",
        esc(value)
    )
}

fn why_form(value: &str) -> String {
    lookup_form(
        "/why",
        "q",
        "IMEI (dial *#06#) or the status code on the lock screen",
        value,
        "Why is my phone locked?",
    )
}

fn check_form(value: &str) -> String {
    lookup_form("/check", "imei", "IMEI (dial *#06#)", value, "Check")
}

fn follow_form(value: &str) -> String {
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
        &format!(
            "<h2>Why is my phone locked?</h2>{}<h2>Is this phone financed?</h2>{}\
             <h2>Appeals</h2><p><a href=\"/appeal\">Open an appeal</a> if you paid and are still locked, \
             if you own this phone, or if the lock is wrong.</p>{}",
            why_form(""),
            check_form(""),
            follow_form("")
        ),
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
        return page(StatusCode::OK, title, &why_form(""));
    };
    if let Err(limited) = client.check(&state) {
        return limited_page(limited);
    }
    match why_body(&state, &q).await {
        Ok(body) => page(StatusCode::OK, title, &format!("{body}{}", why_form(&q))),
        Err(e) => error_page(e, title, &why_form(&q)),
    }
}

async fn why_body(state: &AppState, q: &str) -> Result<String, ApiError> {
    let device = appeals::find_device(state, q).await?;
    let view = crate::domain::stored_view(&device.decision)?;
    let financier = state.store.financier(&device.enrolled.financier_id).await?;
    let by_code = q.trim().len() == 8 && q.trim().bytes().all(|b| b.is_ascii_digit());
    let state_words = match view.state.as_str() {
        "active" => "Not locked: payments are up to date.",
        "reminder" => "Not locked: a payment reminder is showing.",
        "restricted" => "Some functions are limited.",
        "locked" => "Locked. Emergency calls still work.",
        "released" => "Released: the phone is yours.",
        _ => "",
    };
    let amount = if view.amount_due.minor > 0 {
        if by_code {
            format!(
                "<p>Amount due now: <strong id=\"amount\">{}</strong></p>",
                esc(&format_amount(
                    view.amount_due.minor,
                    &view.amount_due.currency
                ))
            )
        } else {
            "<p>To see the amount due, enter the status code shown on the lock screen instead of the IMEI.</p>".into()
        }
    } else {
        String::new()
    };
    let pay = match &financier.payment_link {
        Some(link) if view.state != "released" => format!(
            "<p>How to pay: <a href=\"{0}\" rel=\"noreferrer\">{0}</a>. The phone unlocks within seconds of a payment that brings you up to date.</p>",
            esc(link)
        ),
        _ => String::new(),
    };
    Ok(format!(
        "<div class=\"box\" id=\"result\"><p><strong id=\"state\">{}</strong></p><p>{}</p>{amount}{pay}\
         <p>Whom to call: {} — {}. Platform support: {}.</p></div>\
         <p>Paid and still locked? <a href=\"/appeal?q={}\">Open an appeal</a>.</p>",
        esc(state_words),
        esc(&public_reason(&view.reason)),
        esc(&financier.name),
        esc(&financier.contact),
        esc(&state.settings.support_contact),
        esc(&url_component(q.trim())),
    ))
}

/// The reason as a public page may show it: the decision's own words, except a manual lock's
/// message, which the financier wrote for the phone's holder and may name them; the page shows
/// anyone who knows the IMEI.
fn public_reason(reason: &crate::wire::ReasonView) -> String {
    if reason.code == "manual_lock" {
        "Locked by the financier. Call them to find out why; the lock screen shows their message."
            .into()
    } else {
        reason.text.clone()
    }
}

/// Percent-encodes a query value (IMEIs and codes are digits; anything else is encoded).
fn url_component(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn check(
    State(state): State<AppState>,
    client: PublicClient,
    Query(query): Query<Q>,
) -> Response {
    let title = "Is this phone financed?";
    let Some(imei) = query.imei.filter(|q| !q.trim().is_empty()) else {
        return page(StatusCode::OK, title, &check_form(""));
    };
    if let Err(limited) = client.check(&state) {
        return limited_page(limited);
    }
    match check_imei(&state, &imei).await {
        Ok(answer) => {
            let status_words = match answer.status.as_str() {
                "clear" => "Clear",
                "financed_good_standing" => "Financed, in good standing",
                "locked" => "Financed and locked",
                "released" => "Released",
                _ => "Unknown",
            };
            let mut body = format!(
                "<div class=\"box\" id=\"result\"><p><strong id=\"status\" data-status=\"{}\">{}</strong></p><p>{}</p>",
                esc(&answer.status),
                esc(status_words),
                esc(&answer.message)
            );
            if let Some(on) = &answer.released_on {
                body.push_str(&format!("<p>Released on {}.</p>", esc(on)));
            }
            if let Some(f) = &answer.financier {
                body.push_str(&format!(
                    "<p>Financier: {} — {}.</p>",
                    esc(&f.name),
                    esc(&f.contact)
                ));
            }
            body.push_str(&format!(
                "<p>Platform support: {}.</p></div>{}",
                esc(&answer.support_contact),
                check_form(&imei)
            ));
            page(StatusCode::OK, title, &body)
        }
        Err(e) => error_page(e, title, &check_form(&imei)),
    }
}

fn appeal_form_html(values: &HashMap<String, String>, max_bytes: u64) -> String {
    let v = |name: &str| esc(values.get(name).map(String::as_str).unwrap_or(""));
    let claim = values.get("claim").map(String::as_str).unwrap_or("paid");
    let option = |value: &str, label: &str| {
        format!(
            "<option value=\"{value}\"{}>{label}</option>",
            if claim == value { " selected" } else { "" }
        )
    };
    let limit = appeals::mib(max_bytes);
    format!(
        "<form method=\"post\" action=\"/appeal\" enctype=\"multipart/form-data\">\
         <p>Both numbers are on the phone's lock screen. The status code shows that you have the \
         phone; if the phone has just changed its code, use the new one.</p>\
         <label for=\"imei\">IMEI (on the lock screen, or dial *#06#)</label>\
         <input id=\"imei\" name=\"imei\" value=\"{imei}\" inputmode=\"numeric\" autocomplete=\"off\" required>\
         <label for=\"status_code\">Status code (8 digits, on the lock screen)</label>\
         <input id=\"status_code\" name=\"status_code\" value=\"{status_code}\" inputmode=\"numeric\" autocomplete=\"off\" required>\
         <label for=\"claim\">What happened?</label>\
         <select id=\"claim\" name=\"claim\">{o1}{o2}{o3}</select>\
         <label for=\"contact\">Your phone number or e-mail, for the financier to reach you</label>\
         <input id=\"contact\" name=\"contact\" value=\"{contact}\" required>\
         <fieldset><legend>If you paid</legend>\
         <label for=\"payment_reference\">Payment reference (transaction code)</label>\
         <input id=\"payment_reference\" name=\"payment_reference\" value=\"{reference}\">\
         <label for=\"paid_on\">Date paid (YYYY-MM-DD)</label>\
         <input id=\"paid_on\" name=\"paid_on\" value=\"{paid_on}\" placeholder=\"2026-03-05\">\
         <label for=\"amount\">Amount</label><input id=\"amount\" name=\"amount\" value=\"{amount}\" inputmode=\"decimal\">\
         <label for=\"currency\">Currency (e.g. KES)</label><input id=\"currency\" name=\"currency\" value=\"{currency}\">\
         </fieldset>\
         <label for=\"receipt\">Receipt, or proof of purchase (PDF, JPEG or PNG, at most {limit})</label>\
         <input id=\"receipt\" name=\"receipt\" type=\"file\" accept=\"application/pdf,image/jpeg,image/png\">\
         <label for=\"statement\">Anything else we should know</label>\
         <textarea id=\"statement\" name=\"statement\" rows=\"3\">{statement}</textarea>\
         <button id=\"submit\" type=\"submit\">Send the appeal</button></form>",
        imei = v("imei"),
        status_code = v("status_code"),
        o1 = option("paid", "I paid and I am still locked"),
        o2 = option("owner", "I own this phone (bought second-hand)"),
        o3 = option("wrong_lock", "This lock is wrong"),
        contact = v("contact"),
        reference = v("payment_reference"),
        paid_on = v("paid_on"),
        amount = v("amount"),
        currency = v("currency"),
        statement = v("statement"),
    )
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
        &format!(
            "<p>The financier must answer by a deadline. If you paid and they do not answer in time, \
             your phone is unlocked for a while. Nothing gets worse while your appeal is open.</p>{}",
            appeal_form_html(&values, state.settings.appeal_upload_max_bytes)
        ),
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
        Err(e) => return error_page(e, title, &appeal_form_html(&HashMap::new(), max)),
    };
    let values = form.fields.clone();
    match appeals::open_appeal(&state, form).await {
        Ok(opened) => {
            let appeal = &opened.record;
            let view = appeals::progress(appeal, micros(state.clock.now()));
            let withheld = opened
                .unlock_withheld
                .as_deref()
                .map_or(String::new(), |why| {
                    format!(
                        "<p id=\"withheld\">No provisional unlock at the deadline: {}.</p>",
                        esc(why)
                    )
                });
            page(
                StatusCode::CREATED,
                "Your appeal is open",
                &format!(
                    "<div class=\"box\" id=\"result\"><p>Your reference: <strong id=\"reference\">{r}</strong></p>\
                     <p>Keep it: it is the only way to follow your appeal.</p><p>{}</p>{withheld}</div>\
                     <p><a id=\"follow\" href=\"/appeal/status?reference={r}\">Follow this appeal</a></p>",
                    esc(&view),
                    r = esc(&appeal.reference),
                ),
            )
        }
        Err(e) => error_page(e, title, &appeal_form_html(&values, max)),
    }
}

async fn appeal_status(
    State(state): State<AppState>,
    client: PublicClient,
    Query(query): Query<Q>,
) -> Response {
    let title = "Your appeal";
    let Some(reference) = query.reference.filter(|q| !q.trim().is_empty()) else {
        return page(StatusCode::OK, title, &follow_form(""));
    };
    if let Err(limited) = client.check(&state) {
        return limited_page(limited);
    }
    match appeals::public_view(&state, &reference).await {
        Ok(a) => {
            let status_words = match a.status.as_str() {
                "accepted" => "Accepted",
                "rejected" => "Rejected",
                _ => "Open",
            };
            let mut body = format!(
                "<div class=\"box\" id=\"result\"><p>Reference: {}</p>\
                 <p>Status: <strong id=\"status\" data-status=\"{}\">{}</strong></p><p>{}</p>\
                 <p>Answer due by: {}</p>",
                esc(&a.reference),
                esc(&a.status),
                status_words,
                esc(&a.progress),
                esc(&a.deadline)
            );
            if let Some(reason) = &a.decision_reason
                && !reason.is_empty()
            {
                body.push_str(&format!(
                    "<p>The financier's reason: <span id=\"reason\">{}</span></p>",
                    esc(reason)
                ));
            }
            body.push_str(&format!(
                "<p>Financier: {} — {}.</p></div>{}",
                esc(&a.financier_name),
                esc(&a.financier_contact),
                follow_form(&a.reference)
            ));
            page(StatusCode::OK, title, &body)
        }
        Err(e) => error_page(e, title, &follow_form(&reference)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_that_could_open_a_tag_or_leave_an_attribute_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(url_component("35 6938/?&"), "35%206938%2F%3F%26");
    }
}
