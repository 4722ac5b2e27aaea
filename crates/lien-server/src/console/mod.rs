//! The console: server-rendered pages for the people who run financiers and support, under
//! `/console`.
//!
//! Every page is a maud template (values escaped by construction), works without JavaScript,
//! and is served with a Content-Security-Policy that allows no script at all. Every action goes
//! through the commands layer with the signed-in person as its actor: the console adds no rule of
//! its own, and what a role may not do through the API it may not do here.
//!
//! **Sessions and forms.** A signed-in request carries the `__Host-lien_session` cookie
//! (HttpOnly, SameSite=Strict, Secure, for this host only; browsers take Secure cookies from
//! `http://localhost` and `127.0.0.1` too). Only `console_allow_http`, for a shop's network
//! without TLS, drops `Secure` and the prefix: the settings decide, never the request. Every form that acts carries the session's CSRF token, compared
//! in constant time; the sign-in and invitation forms, before any session, carry a token that
//! must equal the `__Host-lien_form` cookie set with the form (a double submit), so another site
//! cannot sign a browser in to an account of its choosing either. A request whose session has
//! ended is sent to the sign-in page and changes nothing.

mod access;
mod actions;
pub use actions::CONSOLE_KEY_PREFIX;
mod appeals;
mod devices;
mod overview;
mod people;
mod reconcile;
mod reports;
mod settings;
mod upload;
mod webhooks;

use std::collections::HashMap;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cookie::{Cookie, SameSite};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::auth::Role;
use crate::commands::people::SignedIn;
use crate::error::ApiError;

/// Which of the console's two cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Jar {
    /// The session.
    Session,
    /// The pre-session form token (sign-in, invitation).
    Form,
}

impl Jar {
    /// The cookie's name. Over HTTPS (the default) a `__Host-` name: browsers take it only
    /// when it is `Secure`, for the whole host and no other, so a neighbouring subdomain or a
    /// plain-HTTP answer cannot plant one. With `console_allow_http`, a plain name.
    fn name(self, state: &AppState) -> &'static str {
        match (self, state.settings.console_allow_http) {
            (Jar::Session, false) => "__Host-lien_session",
            (Jar::Form, false) => "__Host-lien_form",
            (Jar::Session, true) => "lien_session",
            (Jar::Form, true) => "lien_form",
        }
    }
}

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route(
            "/console/sign-in",
            get(access::sign_in_form).post(access::sign_in),
        )
        .route("/console/sign-out", post(access::sign_out))
        .route(
            "/console/invitations/{token}",
            get(access::invitation_form).post(access::accept_invitation),
        )
        .route("/console/appeals", get(appeals::queue))
        .route("/console/appeals/{reference}", get(appeals::show))
        .route(
            "/console/appeals/{reference}/decision",
            post(appeals::decide),
        )
        .route(
            "/console/appeals/{reference}/document",
            get(appeals::document),
        )
        .route("/console/people", get(people::list).post(people::invite))
        .route("/console/people/{id}/disable", post(people::disable))
        .route("/console/reports", get(reports::show))
        .route("/console/reports/activity.csv", get(reports::activity))
        .route("/console/settings", get(settings::show))
        .route("/console/settings/profile", post(settings::save_profile))
        .route("/console/settings/keys", post(settings::create_key))
        .route(
            "/console/settings/keys/{id}/revoke",
            post(settings::revoke_key),
        )
        .route("/console/settings/unmatched/{id}", post(settings::assign))
        .route("/console/settings/webhooks", post(webhooks::create))
        .route(
            "/console/settings/webhooks/{id}/rotate",
            post(webhooks::rotate),
        )
        .route(
            "/console/settings/webhooks/{id}/delete",
            post(webhooks::delete),
        )
        .route("/console/overview", get(overview::overview))
        .route("/console/devices", get(devices::list))
        .route("/console/devices.csv", get(devices::export))
        .route(
            "/console/devices/upload",
            get(upload::form)
                .post(upload::upload)
                .layer(DefaultBodyLimit::max(crate::routes::MAX_BULK_BODY_BYTES)),
        )
        .route(
            "/console/reconcile",
            get(reconcile::form)
                .post(reconcile::reconcile)
                .layer(DefaultBodyLimit::max(crate::routes::MAX_BULK_BODY_BYTES)),
        )
        .route("/console/uploads/{id}", get(upload::progress))
        .route("/console/devices/{id}", get(devices::show))
        .route("/console/devices/{id}/{action}", post(actions::act))
}

/// `/console`: the devices for someone signed in, the sign-in page for anyone else.
async fn home(session: Session) -> Response {
    match session.0 {
        Some(_) => Redirect::to("/console/overview").into_response(),
        None => Redirect::to("/console/sign-in").into_response(),
    }
}

/// The request's session, if it has one that is open.
pub struct Session(pub Option<SignedIn>);

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Session, Response> {
        let Some(cookie) = cookie_value(&parts.headers, Jar::Session.name(state)) else {
            return Ok(Session(None));
        };
        match crate::commands::people::signed_in(state, &cookie).await {
            Ok(found) => Ok(Session(found)),
            Err(err) => Err(error_page(None, err)),
        }
    }
}

/// A signed-in request; anyone else is sent to the sign-in page.
pub struct Person(pub SignedIn);

impl FromRequestParts<AppState> for Person {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Person, Response> {
        match Session::from_request_parts(parts, state).await?.0 {
            Some(signed_in) => Ok(Person(signed_in)),
            None => Err(Redirect::to("/console/sign-in").into_response()),
        }
    }
}

impl Person {
    /// The refusal of a form that does not carry this session's CSRF token; `None` when it does.
    pub fn csrf_refusal(&self, offered: &str) -> Option<Response> {
        (!self.0.csrf_matches(offered)).then(|| forbidden_form(Some(&self.0)))
    }
}

/// A form sent by a signed-in person with their session's token: its fields by name. Anyone
/// else is sent to the sign-in page, and a form without the token is refused with the 403 page
/// before its handler runs, so no handler can forget the check.
pub struct SignedForm {
    /// Who sent it.
    pub person: Person,
    /// Its fields (the last of a name wins).
    pub fields: HashMap<String, String>,
}

impl SignedForm {
    /// Field `name`, empty when absent.
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }

    /// The person who sent it.
    pub fn me(&self) -> &SignedIn {
        &self.person.0
    }

    /// Refuses the action unless the form's confirmation box is ticked (see [`confirmation`]).
    pub fn confirmed(&self, why: &str) -> Result<(), ApiError> {
        confirmation(&self.fields, why)
    }
}

/// Refuses an action that cannot be taken back unless its form's `confirm` box is ticked;
/// `why` tells the person what ticking it means.
fn confirmation(fields: &HashMap<String, String>, why: &str) -> Result<(), ApiError> {
    match fields.get("confirm").map(String::as_str) {
        Some("on") => Ok(()),
        _ => Err(ApiError::invalid("confirm", why)),
    }
}

impl FromRequest<AppState> for SignedForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<SignedForm, Response> {
        let (mut parts, body) = request.into_parts();
        let person = Person::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let fields = match axum::Form::<HashMap<String, String>>::from_request(request, state).await
        {
            Ok(axum::Form(fields)) => fields,
            Err(rejection) => {
                let err = ApiError::BadRequest(rejection.body_text());
                return Err(error_page(Some(&person.0), err));
            }
        };
        let form = SignedForm { person, fields };
        match form.person.csrf_refusal(form.field("csrf")) {
            Some(refused) => Err(refused),
            None => Ok(form),
        }
    }
}

/// The 429 page of a person over their allowance of reports and exports (`None`: within it),
/// with `Retry-After`.
fn over_report_limit(state: &AppState, person: &SignedIn) -> Option<Response> {
    let limited = state
        .report_limit
        .check(person.actor.key_id.clone())
        .err()?;
    let err = ApiError::Unavailable(format!(
        "too many reports and exports at once; try again in {} seconds",
        limited.retry_after_secs
    ));
    let mut response = page(
        StatusCode::TOO_MANY_REQUESTS,
        Some(person),
        "Please wait",
        html! { p class="box err" id="error" { (err.to_string()) } },
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(limited.retry_after_secs),
    );
    Some(response)
}

/// The 403 of a form without its token: nothing was done.
fn forbidden_form(person: Option<&SignedIn>) -> Response {
    error_page(
        person,
        ApiError::Forbidden(
            "This form has expired or did not come from this console. Nothing was changed; \
             open the page again and resend it."
                .into(),
        ),
    )
}

/// The value of cookie `name` in the request, if it has one.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// A `Set-Cookie` for one of the console's cookies; `None` removes it. `Secure` unless
/// `console_allow_http` is set: decided by the settings alone, never by the request (a proxy
/// that sends `Host: localhost` must not make every session cookie travel in clear).
fn set_cookie(state: &AppState, jar: Jar, value: Option<&str>) -> HeaderValue {
    let mut cookie = Cookie::build((jar.name(state), value.unwrap_or("").to_string()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(!state.settings.console_allow_http);
    if value.is_none() {
        cookie = cookie.max_age(cookie::time::Duration::ZERO);
    }
    HeaderValue::from_str(&cookie.build().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a pre-session form's token equals its cookie's.
fn form_token_matches(state: &AppState, headers: &HeaderMap, offered: &str) -> bool {
    cookie_value(headers, Jar::Form.name(state)).is_some_and(|expected| {
        !offered.is_empty() && bool::from(expected.as_bytes().ct_eq(offered.as_bytes()))
    })
}

const STYLE: &str = "body{font-family:sans-serif;max-width:60em;margin:0 auto;padding:.5em;line-height:1.4}\
input,select,button{font-size:1em;box-sizing:border-box;margin:.2em 0 .6em}\
form.stack input:not([type=checkbox]),form.stack select{width:100%}form.inline{display:inline}\
fieldset label{display:inline-block;margin-right:1em}tr.late{color:#b00}\
.box{border:1px solid #888;padding:.5em;margin:.5em 0}.err{border-color:#b00;color:#b00}\
.ok{border-color:#070}\
nav{display:flex;flex-wrap:wrap;gap:1em;align-items:center;border-bottom:1px solid #888;padding-bottom:.3em}\
nav form{margin-left:auto}nav button{margin:0}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25em .4em;border-bottom:1px solid #ccc}\
.scroll{overflow-x:auto}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}dt{font-weight:bold}dd{margin:0}\
code{word-break:break-all}";

/// A whole console page, with the navigation of `person`'s role when signed in.
fn page(status: StatusCode, person: Option<&SignedIn>, title: &str, body: Markup) -> Response {
    whole_page(status, person, title, None, body)
}

/// A page that reloads itself every `seconds` (a job's progress), with no script.
fn page_refreshing(person: &SignedIn, title: &str, seconds: u32, body: Markup) -> Response {
    whole_page(StatusCode::OK, Some(person), title, Some(seconds), body)
}

fn whole_page(
    status: StatusCode,
    person: Option<&SignedIn>,
    title: &str,
    refresh_secs: Option<u32>,
    body: Markup,
) -> Response {
    let html = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                @if let Some(seconds) = refresh_secs { meta http-equiv="refresh" content=(seconds); }
                title { (title) " · Lien console" }
                // A constant of ours, and raw text in a style element: not escaped.
                style { (PreEscaped(STYLE)) }
            }
            body {
                @if let Some(p) = person {
                    nav {
                        a href="/console/overview" { "Overview" }
                        a href="/console/devices" { "Devices" }
                        a href="/console/appeals" { "Appeals" }
                        @if matches!(p.actor.role, Role::PlatformAdmin | Role::FinancierAdmin) {
                            a href="/console/people" { "People" }
                        }
                        a href="/console/reports" { "Reports" }
                        @if p.actor.role.may(crate::auth::Action::Reconcile) {
                            a href="/console/reconcile" { "Reconcile" }
                        }
                        a href="/console/settings" { "Settings" }
                        span { (p.person.name) " · " (p.person.role) }
                        form method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(p.session.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                h1 { (title) }
                (body)
            }
        }
    };
    let mut response = crate::pages::html_response(
        status,
        html,
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
    );
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// An error as a page: the message names the field; a 5xx says nothing internal.
fn error_page(person: Option<&SignedIn>, err: ApiError) -> Response {
    if let ApiError::Internal(e) = &err {
        tracing::error!(error = format!("{e:#}"), "console page failed");
    }
    let message = match &err {
        ApiError::Internal(_) => "Something went wrong on our side. Please try again later.".into(),
        ApiError::NotFound(what) => format!("No such {what}, or not yours to see."),
        other => other.to_string(),
    };
    let title = match err.status() {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        s if s.is_server_error() => "Something went wrong",
        _ => "Please check",
    };
    page(
        err.status(),
        person,
        title,
        html! { p class="box err" id="error" { (message) } },
    )
}

/// The error box shown above a form sent back with what was typed.
fn error_box(err: &ApiError) -> Markup {
    let message = match err {
        ApiError::Internal(_) => "Something went wrong on our side. Please try again later.".into(),
        other => other.to_string(),
    };
    html! { p class="box err" id="error" role="alert" { (message) } }
}

/// A UTC instant as people read it (`2026-02-05 07:30 UTC`), from RFC 3339 text.
fn when(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(at) => at.strftime("%Y-%m-%d %H:%M UTC").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

/// A span of time in microseconds, as a person reads it: "180 ms", "4.2 s", "12 min",
/// "3 h 5 min", "2 d 4 h".
fn took(us: i64) -> String {
    let us = us.max(0);
    let (seconds, minutes) = (us / 1_000_000, us / 60_000_000);
    match us {
        0..1_000_000 => format!("{} ms", us / 1_000),
        1_000_000..60_000_000 => format!("{}.{} s", seconds, us % 1_000_000 / 100_000),
        60_000_000..3_600_000_000 => format!("{minutes} min"),
        3_600_000_000..86_400_000_000 => format!("{} h {} min", minutes / 60, minutes % 60),
        _ => format!("{} d {} h", minutes / 1_440, minutes % 1_440 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::took;

    #[test]
    fn spans_read_in_the_unit_that_suits_them() {
        let shown: Vec<String> = [
            -5,
            180_000,
            4_250_000,
            12 * 60_000_000 + 5_000_000,
            (3 * 60 + 5) * 60_000_000,
            (2 * 24 + 4) * 3_600_000_000,
        ]
        .into_iter()
        .map(took)
        .collect();
        assert_eq!(
            shown,
            ["0 ms", "180 ms", "4.2 s", "12 min", "3 h 5 min", "2 d 4 h"]
        );
    }
}
