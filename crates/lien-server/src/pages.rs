//! The borrower's pages: server-rendered HTML, small, without JavaScript, for a cheap phone's
//! browser. "Why is my phone locked", open and follow an appeal, check an IMEI, and "Which lock
//! is this?" (`locks`).
//!
//! Every page is in the reader's language (`lang`: English, Swahili or Hindi, from `?lang=`, a
//! cookie or `Accept-Language`), with its words from the Fluent catalogues (`catalog`), its
//! times in the borrower's zone (`time`) and its amounts grouped as on the lock screen.
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
use axum::extract::{FromRequestParts, Multipart, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, PercentEncode, utf8_percent_encode};

use crate::app::AppState;
use crate::clock::{from_micros, micros};
use crate::commands::appeals::rules::Stage;
use crate::commands::appeals::{AppealStatus, ClaimKind, find_device, public_appeal};
use crate::commands::imei_check::{ImeiStatus, check_imei};
use crate::domain::StoredKind;
use crate::error::ApiError;
use crate::routes::appeals;
use crate::routes::public::PublicClient;
use crate::wire::{DeviceStateJson, ReasonCode};

mod catalog;
mod hardship;
mod lang;
mod locks;
mod time;

pub use lang::{Lang, PageLang};

/// The pages' routes. They are not part of the JSON API or its OpenAPI document.
pub fn router(settings: &crate::config::Settings) -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/why", get(why))
        .route("/check", get(check))
        .route("/locks", get(which_lock))
        .route(
            "/appeal",
            get(appeal_form)
                .post(appeal_submit)
                .layer(crate::routes::appeal_body_limit(settings)),
        )
        .route("/appeal/status", get(appeal_status))
        .route(
            "/hardship",
            get(hardship::request_form).post(hardship::submit).layer(
                axum::extract::DefaultBodyLimit::max(hardship::MAX_FORM_BYTES),
            ),
        )
        .layer(axum::middleware::map_response(private_by_reader))
}

/// A page differs by its reader's language (cookie, `Accept-Language`) and holds their look-up:
/// no shared cache may keep it, or hand one reader's page to another.
async fn private_by_reader(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let headers = response.headers_mut();
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Cookie, Accept-Language"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}

const STYLE: &str = "body{font-family:sans-serif;max-width:34em;margin:0 auto;padding:.5em;line-height:1.4}\
input,select,textarea,button{font-size:1em;width:100%;box-sizing:border-box;margin:.2em 0 .6em}\
.box{border:1px solid #888;padding:.5em;margin:.5em 0}.err{border-color:#b00;color:#b00}\
nav a{margin-right:1em}.langs{font-size:.9em}.langs a{margin-right:.6em}";

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

/// A query longer than this is left out of the language switch's links (the switch then leads
/// to the page without its look-up); ours are far shorter.
const MAX_SWITCH_QUERY: usize = 512;

/// Who reads the page: their language, and where the page is, for the language switch.
struct Reader {
    lang: PageLang,
    /// The page's path (one of the router's).
    path: String,
    /// The page's query without `lang`, as the browser sent it (still percent-encoded).
    query: String,
    /// Whom a borrower the pages cannot help calls (`support_contact`).
    support: String,
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Reader, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or_default();
        let query = if raw.len() > MAX_SWITCH_QUERY {
            String::new()
        } else {
            raw.split('&')
                .filter(|pair| !pair.is_empty() && !pair.starts_with("lang="))
                .collect::<Vec<_>>()
                .join("&")
        };
        Ok(Reader {
            lang: PageLang::of(parts.uri.query(), &parts.headers),
            path: parts.uri.path().to_string(),
            query,
            support: state.settings.support_contact.clone(),
        })
    }
}

impl Reader {
    fn lang(&self) -> Lang {
        self.lang.lang
    }

    /// A message in the reader's language.
    fn t(&self, id: &str) -> String {
        catalog::message(self.lang(), id, &[])
    }

    /// A message in the reader's language, with its values.
    fn t_with(&self, id: &str, args: &[(&str, &str)]) -> String {
        catalog::message(self.lang(), id, args)
    }

    /// A link to one of the pages, keeping the reader's language.
    fn link(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}lang={}", self.lang().code())
    }

    /// This page in another language.
    fn switch_link(&self, lang: Lang) -> String {
        let sep = if self.query.is_empty() { "" } else { "&" };
        format!("{}?{}{sep}lang={}", self.path, self.query, lang.code())
    }

    /// An instant in the borrower's zone, in the reader's words.
    fn date_time(&self, at: Timestamp, zone: &TimeZone) -> String {
        time::date_time(self.lang(), at, zone)
    }
}

/// A whole page, in the reader's language, with the language switch; a language chosen with
/// the switch is remembered in a cookie.
fn page(reader: &Reader, status: StatusCode, title: &str, body: Markup) -> Response {
    let html = html! {
        (DOCTYPE)
        html lang=(reader.lang().code()) {
            head {
                meta charset="UTF-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · Lien" }
                // A constant of ours, and raw text in a style element: not escaped.
                style { (PreEscaped(STYLE)) }
            }
            body {
                nav {
                    a href=(reader.link("/")) { (reader.t("nav-home")) }
                    a href=(reader.link("/check")) { (reader.t("nav-check")) }
                    a href=(reader.link("/appeal")) { (reader.t("nav-appeal")) }
                    a href=(reader.link("/locks")) { (reader.t("nav-locks")) }
                }
                p class="langs" id="languages" {
                    (reader.t("lang-label")) " "
                    @for lang in Lang::ALL {
                        @if lang == reader.lang() {
                            strong lang=(lang.code()) { (lang.own_name()) } " "
                        } @else {
                            a href=(reader.switch_link(lang)) hreflang=(lang.code()) lang=(lang.code()) {
                                (lang.own_name())
                            } " "
                        }
                    }
                }
                h1 { (title) }
                (body)
            }
        }
    };
    let mut response = html_response(
        status,
        html,
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    );
    if let Some(cookie) = reader.lang.cookie() {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
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

/// An error as a page: the message names the field; a 5xx says nothing internal. A message
/// about a field is the server's own (in English, naming the field); the common failures are
/// in the reader's language.
fn error_page(reader: &Reader, err: ApiError, title: &str, form: Markup) -> Response {
    if let ApiError::Internal(e) = &err {
        tracing::error!(error = format!("{e:#}"), "page failed");
    }
    let message = match &err {
        ApiError::Internal(_) => reader.t("error-internal"),
        ApiError::NotFound(what) => reader.t(not_found_id(what)),
        ApiError::RateLimited {
            what,
            retry_after_secs,
        } => reader.t_with(
            rate_limited_id(what),
            &[
                ("seconds", &retry_after_secs.to_string()),
                ("support", &reader.support),
            ],
        ),
        other => other.to_string(),
    };
    let mut response = page(
        reader,
        err.status(),
        title,
        html! {
            p class="box err" id="error" { (message) }
            (form)
        },
    );
    err.tell_when(&mut response);
    response
}

/// The catalogue's words for what was too much.
fn rate_limited_id(what: &str) -> &'static str {
    match what {
        crate::commands::appeals::rules::TOO_MANY_PROOFS => "error-too-many-proofs",
        crate::commands::appeals::rules::TOO_MANY_CODE_LOOKUPS => "error-too-many-code-lookups",
        _ => "error-rate-limited",
    }
}

/// The catalogue's words for what a look-up did not find.
fn not_found_id(what: &str) -> &'static str {
    match what {
        "phone with this IMEI and status code" => "error-no-phone-with-code",
        "status code" => "error-no-status-code",
        "financed device with this IMEI" => "error-no-financed-imei",
        "appeal" => "error-no-appeal",
        _ => "error-not-found",
    }
}

fn limited_page(reader: &Reader, limited: crate::rate_limit::Limited) -> Response {
    let err = limited.error("too many requests from your address");
    error_page(reader, err, &reader.t("error-wait-title"), html! {})
}

/// A look-up form; it carries the reader's language, so the answer comes in it.
fn lookup_form(
    lang: Lang,
    action: &str,
    name: &str,
    label: &str,
    value: &str,
    button: &str,
) -> Markup {
    html! {
        form method="get" action=(action) {
            input type="hidden" name="lang" value=(lang.code());
            label for=(name) { (label) }
            input id=(name) name=(name) value=(value) inputmode="text" autocomplete="off" required;
            button type="submit" { (button) }
        }
    }
}

fn why_form(reader: &Reader, value: &str) -> Markup {
    lookup_form(
        reader.lang(),
        "/why",
        "q",
        &reader.t("why-label"),
        value,
        &reader.t("why-button"),
    )
}

fn check_form(reader: &Reader, value: &str) -> Markup {
    lookup_form(
        reader.lang(),
        "/check",
        "imei",
        &reader.t("check-label"),
        value,
        &reader.t("check-button"),
    )
}

fn follow_form(reader: &Reader, value: &str) -> Markup {
    lookup_form(
        reader.lang(),
        "/appeal/status",
        "reference",
        &reader.t("follow-label"),
        value,
        &reader.t("follow-button"),
    )
}

/// The link to "Which lock is this?", for a phone that may be locked by something else.
fn other_lock(reader: &Reader) -> Markup {
    html! {
        p id="other_lock" {
            (reader.t("imei-other-lock")) " "
            a href=(reader.link("/locks")) { (reader.t("locks-title")) }
        }
    }
}

async fn index(reader: Reader) -> Response {
    page(
        &reader,
        StatusCode::OK,
        &reader.t("index-title"),
        html! {
            h2 { (reader.t("why-title")) }
            (why_form(&reader, ""))
            h2 { (reader.t("check-title")) }
            (check_form(&reader, ""))
            h2 { (reader.t("index-appeals")) }
            p {
                a href=(reader.link("/appeal")) { (reader.t("index-appeal-link")) }
                " " (reader.t("index-appeal-text"))
            }
            (follow_form(&reader, ""))
            (other_lock(&reader))
        },
    )
}

async fn which_lock(reader: Reader) -> Response {
    page(
        &reader,
        StatusCode::OK,
        &reader.t("locks-title"),
        locks::body(reader.lang(), &reader.link("/check")),
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
    reader: Reader,
    Query(query): Query<Q>,
) -> Response {
    let title = reader.t("why-title");
    let Some(q) = query.q.filter(|q| !q.trim().is_empty()) else {
        return page(&reader, StatusCode::OK, &title, why_form(&reader, ""));
    };
    if let Err(limited) = client.check(&state) {
        return limited_page(&reader, limited);
    }
    match why_body(&state, &reader, &q).await {
        Ok(body) => page(
            &reader,
            StatusCode::OK,
            &title,
            html! { (body) (why_form(&reader, &q)) },
        ),
        Err(e) => error_page(&reader, e, &title, why_form(&reader, &q)),
    }
}

async fn why_body(state: &AppState, reader: &Reader, q: &str) -> Result<Markup, ApiError> {
    let device = find_device(state, q).await?;
    let view = crate::domain::stored_view(&device.decision)?;
    let financier = state.store.financier(&device.enrolled.financier_id).await?;
    let zone = time::plan_zone(&device.enrolled.plan_json);
    let now = state.clock.now();
    let by_code = q.trim().len() == 8 && q.trim().bytes().all(|b| b.is_ascii_digit());
    let state_words = reader.t(match view.state {
        DeviceStateJson::Active => "state-active",
        DeviceStateJson::Reminder => "state-reminder",
        DeviceStateJson::Restricted => "state-restricted",
        DeviceStateJson::Locked => "state-locked",
        DeviceStateJson::Released => "state-released",
    });
    let reason = reason_words(state, reader, &device, &view, &zone).await?;
    // The same grouped amount the lock screen shows.
    let amount_due = lien_money::Amount {
        minor: view.amount_due.minor,
        code: &view.amount_due.currency,
        style: lien_money::Style::Grouped,
    };
    // What comes next if nothing is paid: like the amount, only for the lock screen's code.
    let next = view
        .next_restriction_at
        .as_deref()
        .and_then(|at| at.parse::<Timestamp>().ok())
        .zip(view.next_restriction_state)
        .filter(|_| by_code)
        .map(|(at, next)| {
            let id = match next {
                DeviceStateJson::Locked => "why-next-locked",
                DeviceStateJson::Restricted => "why-next-restricted",
                _ => "why-next-reminder",
            };
            reader.t_with(id, &[("time", &reader.date_time(at, &zone))])
        });
    let payment_link = financier
        .payment_link
        .as_deref()
        .filter(|_| view.state != DeviceStateJson::Released);
    Ok(html! {
        div class="box" id="result" {
            p { strong id="state" { (state_words) } }
            p id="reason" { (reason) }
            p id="as_of" { (reader.t_with("why-as-of", &[("time", &reader.date_time(now, &zone))])) }
            @if view.amount_due.minor > 0 {
                @if by_code {
                    p { (reader.t("why-amount-due")) " " strong id="amount" { (amount_due) } }
                } @else {
                    p { (reader.t("why-amount-by-code")) }
                }
            }
            @if let Some(next) = next {
                p id="next" { (next) }
            }
            @if let Some(link) = payment_link {
                p {
                    (reader.t("why-how-to-pay")) " " a href=(link) rel="noreferrer" { (link) }
                    " " (reader.t("why-unlocks-fast"))
                }
            }
            p {
                (reader.t("why-whom-to-call")) " " (financier.name) " — " (financier.contact) ". "
                (reader.t("why-platform-support")) " " (state.settings.support_contact)
            }
        }
        p {
            (reader.t("why-paid-still-locked")) " "
            a href=(reader.link(&format!("/appeal?q={}", query_value(q.trim())))) {
                (reader.t("why-open-appeal"))
            }
        }
        @if view.state != DeviceStateJson::Released {
            p {
                (reader.t("why-cannot-pay")) " "
                a id="ask_pause" href=(reader.link(&format!("/hardship?q={}", query_value(q.trim())))) {
                    (reader.t("why-ask-pause"))
                }
            }
        }
        (other_lock(reader))
    })
}

/// The reason in the reader's language, from the reason's code and its figures (the due date,
/// the end of an unlock or a pause), never from the server's English text. A manual lock's
/// message is not shown: the financier wrote it for the phone's holder and it may name them,
/// while this page shows anyone who knows the IMEI.
async fn reason_words(
    state: &AppState,
    reader: &Reader,
    device: &lien_store::DeviceRecord,
    view: &crate::wire::DecisionView,
    zone: &TimeZone,
) -> Result<String, ApiError> {
    let for_a_while = |kind: StoredKind, dated: &'static str, open: &'static str| async move {
        let until = override_end(state, &device.enrolled.id, kind).await?;
        Ok::<_, ApiError>(match until {
            Some(until) => reader.t_with(dated, &[("time", &reader.date_time(until, zone))]),
            None => reader.t(open),
        })
    };
    Ok(match view.reason.code {
        ReasonCode::GoodStanding => reader.t("reason-good-standing"),
        ReasonCode::PaidInFull => reader.t("reason-paid-in-full"),
        // The amount is for the lock screen's code only, like the amount due.
        ReasonCode::DueSoon => match view.reason.due_on.as_deref().map(str::parse) {
            Some(Ok(due)) => reader.t_with(
                "reason-due-soon",
                &[("date", &time::date(reader.lang(), due))],
            ),
            _ => reader.t("reason-good-standing"),
        },
        ReasonCode::ManualLock => reader.t("reason-manual-lock"),
        ReasonCode::DisputeFreeze => reader.t("reason-dispute-freeze"),
        ReasonCode::Released => reader.t("reason-released"),
        ReasonCode::SimChanged => reader.t("reason-sim-changed"),
        ReasonCode::Overdue => {
            let id = match view.state {
                DeviceStateJson::Locked => "reason-overdue-locked",
                DeviceStateJson::Restricted => "reason-overdue-restricted",
                _ => "reason-overdue",
            };
            let since = device.decision.overdue_since.as_deref();
            match since.and_then(|d| d.parse::<jiff::civil::Date>().ok()) {
                Some(due) => reader.t_with(id, &[("date", &time::date(reader.lang(), due))]),
                // Every overdue decision names its oldest late due date; should one not, the
                // state's own words above say enough.
                None => String::new(),
            }
        }
        ReasonCode::ProvisionalUnlock => {
            for_a_while(
                StoredKind::ProvisionalUnlock,
                "reason-provisional-unlock",
                "reason-provisional-unlock-open",
            )
            .await?
        }
        ReasonCode::HardshipPause => {
            for_a_while(
                StoredKind::HardshipPause,
                "reason-hardship-pause",
                "reason-hardship-pause-open",
            )
            .await?
        }
    })
}

/// When the device's override of `kind` in force now ends (the latest, if several are).
async fn override_end(
    state: &AppState,
    device_id: &str,
    kind: StoredKind,
) -> Result<Option<Timestamp>, ApiError> {
    let now_us = micros(state.clock.now());
    let snapshot = state.store.snapshot(device_id).await?;
    Ok(snapshot
        .overrides
        .iter()
        .filter(|o| o.kind == kind.as_str() && o.cancelled_us.is_none() && o.from_us <= now_us)
        .filter_map(|o| o.until_us)
        .filter(|until| *until > now_us)
        .max()
        .map(from_micros))
}

async fn check(
    State(state): State<AppState>,
    client: PublicClient,
    reader: Reader,
    Query(query): Query<Q>,
) -> Response {
    let title = reader.t("check-title");
    let Some(imei) = query.imei.filter(|q| !q.trim().is_empty()) else {
        return page(
            &reader,
            StatusCode::OK,
            &title,
            html! { (check_form(&reader, "")) (other_lock(&reader)) },
        );
    };
    if let Err(limited) = client.check(&state) {
        return limited_page(&reader, limited);
    }
    match check_imei(&state, &imei).await {
        Ok(answer) => {
            let status_words = reader.t(match answer.status {
                ImeiStatus::Clear => "imei-clear",
                ImeiStatus::FinancedGoodStanding => "imei-financed",
                ImeiStatus::Locked => "imei-locked",
                ImeiStatus::Released => "imei-released",
                ImeiStatus::Unknown => "imei-unknown",
            });
            let financier_name = answer.financier.as_ref().map(|f| f.name.as_str());
            let says = match (answer.status, financier_name) {
                (ImeiStatus::Clear, _) => reader.t("imei-says-clear"),
                (ImeiStatus::FinancedGoodStanding, Some(name)) => {
                    reader.t_with("imei-says-financed", &[("financier", name)])
                }
                (ImeiStatus::Locked, Some(name)) => {
                    reader.t_with("imei-says-locked", &[("financier", name)])
                }
                (ImeiStatus::Released, Some(_)) => reader.t("imei-says-released"),
                (ImeiStatus::Released, None) => reader.t("imei-says-released-earlier"),
                (ImeiStatus::Unknown, _) => reader.t("imei-says-unknown"),
                // A financed answer always names its financier.
                _ => answer.message.clone(),
            };
            // The day the claim ended (UTC, as the JSON answer gives it).
            let released_on = answer
                .released_on
                .as_deref()
                .and_then(|d| d.parse::<jiff::civil::Date>().ok())
                .map(|d| time::date(reader.lang(), d));
            let body = html! {
                div class="box" id="result" {
                    p { strong id="status" data-status=(answer.status.as_str()) { (status_words) } }
                    p id="says" { (says) }
                    @if let Some(on) = &released_on {
                        p { (reader.t_with("imei-released-on", &[("date", on)])) }
                    }
                    @if let Some(f) = &answer.financier {
                        p { (reader.t("imei-financier")) " " (f.name) " — " (f.contact) }
                    }
                    p { (reader.t("why-platform-support")) " " (answer.support_contact) }
                }
                (other_lock(&reader))
                (check_form(&reader, &imei))
            };
            page(&reader, StatusCode::OK, &title, body)
        }
        Err(e) => error_page(&reader, e, &title, check_form(&reader, &imei)),
    }
}

/// The catalogue's words for each claim an appeal can make.
fn claim_label(claim: ClaimKind) -> &'static str {
    match claim {
        ClaimKind::Paid => "appeal-claim-paid",
        ClaimKind::Owner => "appeal-claim-owner",
        ClaimKind::WrongLock => "appeal-claim-wrong-lock",
    }
}

/// The appeal form. `today` (the server's date) is the date paid it suggests: a borrower who
/// paid and is still locked has usually paid in the last day or two, and the browser's date
/// picker starts from it.
fn appeal_form_html(
    lang: Lang,
    values: &HashMap<String, String>,
    max_bytes: u64,
    today: jiff::civil::Date,
) -> Markup {
    let t = |id: &str| catalog::message(lang, id, &[]);
    let v = |name: &str| values.get(name).map(String::as_str).unwrap_or("");
    let claim = values.get("claim").map(String::as_str).unwrap_or("paid");
    let paid_on = values
        .get("paid_on")
        .cloned()
        .unwrap_or_else(|| today.to_string());
    let limit = appeals::mib(max_bytes);
    html! {
        form method="post" action={ "/appeal?lang=" (lang.code()) } enctype="multipart/form-data" {
            p { (t("appeal-numbers-hint")) }
            label for="imei" { (t("appeal-imei-label")) }
            input id="imei" name="imei" value=(v("imei")) inputmode="numeric" autocomplete="off" required;
            label for="status_code" { (t("appeal-code-label")) }
            input id="status_code" name="status_code" value=(v("status_code")) inputmode="numeric" autocomplete="off" required;
            label for="claim" { (t("appeal-claim-label")) }
            select id="claim" name="claim" {
                @for kind in ClaimKind::ALL {
                    option value=(kind.as_str()) selected[claim == kind.as_str()] { (t(claim_label(*kind))) }
                }
            }
            label for="contact" { (t("appeal-contact-label")) }
            input id="contact" name="contact" value=(v("contact")) required;
            fieldset {
                legend { (t("appeal-if-paid")) }
                label for="payment_reference" { (t("appeal-reference-label")) }
                input id="payment_reference" name="payment_reference" value=(v("payment_reference"));
                label for="paid_on" { (t("appeal-paid-on-label")) }
                input id="paid_on" name="paid_on" type="date" value=(paid_on);
                label for="amount" { (t("appeal-amount-label")) }
                input id="amount" name="amount" value=(v("amount")) inputmode="decimal";
                label for="currency" { (t("appeal-currency-label")) }
                input id="currency" name="currency" value=(v("currency"));
            }
            label for="receipt" {
                (catalog::message(lang, "appeal-receipt-label", &[("limit", &limit.to_string())]))
            }
            input id="receipt" name="receipt" type="file" accept="application/pdf,image/jpeg,image/png";
            label for="statement" { (t("appeal-statement-label")) }
            textarea id="statement" name="statement" rows="3" { (v("statement")) }
            button id="submit" type="submit" { (t("appeal-send")) }
        }
    }
}

/// A form's values filled in from the "why" page's look-up `q`: an 8-digit status code, or an
/// IMEI.
fn prefilled(q: Option<String>) -> HashMap<String, String> {
    let mut values = HashMap::new();
    if let Some(q) = q {
        let q = q.trim().to_string();
        let field = if q.len() == 8 && q.bytes().all(|b| b.is_ascii_digit()) {
            "status_code"
        } else {
            "imei"
        };
        values.insert(field.to_string(), q);
    }
    values
}

fn today(state: &AppState) -> jiff::civil::Date {
    state.clock.now().to_zoned(TimeZone::UTC).date()
}

async fn appeal_form(
    State(state): State<AppState>,
    reader: Reader,
    Query(query): Query<Q>,
) -> Response {
    let values = prefilled(query.q);
    let max = state.settings.appeal_upload_max_bytes;
    page(
        &reader,
        StatusCode::OK,
        &reader.t("appeal-title"),
        html! {
            p { (reader.t("appeal-intro")) }
            (appeal_form_html(reader.lang(), &values, max, today(&state)))
        },
    )
}

/// Where an appeal stands, in the reader's words, its times in the borrower's zone.
fn stage_words(reader: &Reader, stage: Stage, zone: &TimeZone) -> String {
    let at = |us: i64| reader.date_time(from_micros(us), zone);
    match stage {
        Stage::Accepted => reader.t("progress-accepted"),
        Stage::Rejected => reader.t("progress-rejected"),
        Stage::UnlockedUntil {
            deadline_us,
            until_us,
        } => reader.t_with(
            "progress-unlocked",
            &[("deadline", &at(deadline_us)), ("until", &at(until_us))],
        ),
        Stage::UnlockEnded {
            deadline_us,
            until_us,
        } => reader.t_with(
            "progress-unlock-ended",
            &[("deadline", &at(deadline_us)), ("until", &at(until_us))],
        ),
        Stage::WaitingWithUnlock { deadline_us } => {
            reader.t_with("progress-waiting-unlock", &[("deadline", &at(deadline_us))])
        }
        Stage::WaitingWithoutUnlock { deadline_us } => reader.t_with(
            "progress-waiting-no-unlock",
            &[("deadline", &at(deadline_us))],
        ),
        Stage::Waiting { deadline_us } => {
            reader.t_with("progress-waiting", &[("deadline", &at(deadline_us))])
        }
    }
}

/// The time zone of the device an appeal is about (its plan's).
async fn appeal_zone(
    state: &AppState,
    appeal: &lien_store::AppealRecord,
) -> Result<TimeZone, ApiError> {
    let device = state.store.device(&appeal.device_id).await?;
    Ok(time::plan_zone(&device.enrolled.plan_json))
}

async fn appeal_submit(
    State(state): State<AppState>,
    client: PublicClient,
    reader: Reader,
    multipart: Multipart,
) -> Response {
    let title = reader.t("appeal-title");
    let max = state.settings.appeal_upload_max_bytes;
    let lang = reader.lang();
    if let Err(limited) = client.check(&state) {
        return limited_page(&reader, limited);
    }
    let form = match appeals::read_form(&state, multipart).await {
        Ok(form) => form,
        Err(e) => {
            let form = appeal_form_html(lang, &HashMap::new(), max, today(&state));
            return error_page(&reader, e, &title, form);
        }
    };
    let values = form.fields.clone();
    let opened = match appeals::open_appeal(&state, form).await {
        Ok(opened) => opened,
        Err(e) => {
            let form = appeal_form_html(lang, &values, max, today(&state));
            return error_page(&reader, e, &title, form);
        }
    };
    let appeal = &opened.record;
    let zone = match appeal_zone(&state, appeal).await {
        Ok(zone) => zone,
        Err(e) => {
            // The appeal is open: say so, only without the borrower's zone.
            tracing::error!(error = %e, "the appealed device's zone");
            TimeZone::UTC
        }
    };
    let stage = crate::commands::appeals::rules::stage(appeal, micros(state.clock.now()));
    let follow = reader.link(&format!(
        "/appeal/status?reference={}",
        query_value(&appeal.reference)
    ));
    page(
        &reader,
        StatusCode::CREATED,
        &reader.t("appeal-opened-title"),
        html! {
            div class="box" id="result" {
                p { (reader.t("appeal-your-reference")) " " strong id="reference" { (appeal.reference) } }
                p { (reader.t("appeal-keep-reference")) }
                p id="progress" { (stage_words(&reader, stage, &zone)) }
                @if let Some(why) = &opened.unlock_withheld {
                    p id="withheld" { (reader.t_with("appeal-withheld", &[("why", why)])) }
                }
            }
            p { a id="follow" href=(follow) { (reader.t("appeal-follow")) } }
        },
    )
}

async fn appeal_status(
    State(state): State<AppState>,
    client: PublicClient,
    reader: Reader,
    Query(query): Query<Q>,
) -> Response {
    let title = reader.t("appeal-status-title");
    let Some(reference) = query.reference.filter(|q| !q.trim().is_empty()) else {
        return page(&reader, StatusCode::OK, &title, follow_form(&reader, ""));
    };
    if let Err(limited) = client.check(&state) {
        return limited_page(&reader, limited);
    }
    let found = match public_appeal(&state, &reference).await {
        Ok(found) => found,
        Err(e) => return error_page(&reader, e, &title, follow_form(&reader, &reference)),
    };
    let (a, record) = found;
    let zone = match appeal_zone(&state, &record).await {
        Ok(zone) => zone,
        Err(e) => return error_page(&reader, e, &title, follow_form(&reader, &reference)),
    };
    let status_words = reader.t(match a.status {
        AppealStatus::Accepted => "appeal-accepted",
        AppealStatus::Rejected => "appeal-rejected",
        AppealStatus::Open => "appeal-open",
    });
    let stage = crate::commands::appeals::rules::stage(&record, micros(state.clock.now()));
    let deadline = reader.date_time(from_micros(record.deadline_us), &zone);
    let reason = a.decision_reason.as_deref().filter(|r| !r.is_empty());
    let body = html! {
        div class="box" id="result" {
            p { (reader.t("appeal-reference")) " " (a.reference) }
            p { (reader.t("appeal-status")) " " strong id="status" data-status=(a.status.as_str()) { (status_words) } }
            p id="progress" { (stage_words(&reader, stage, &zone)) }
            p id="deadline" { (reader.t_with("appeal-due-by", &[("time", &deadline)])) }
            @if let Some(reason) = reason {
                p { (reader.t("appeal-financier-reason")) " " span id="reason" { (reason) } }
            }
            p { (reader.t("appeal-financier")) " " (a.financier_name) " — " (a.financier_contact) }
        }
        (follow_form(&reader, &a.reference))
    };
    page(&reader, StatusCode::OK, &title, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_that_could_open_a_tag_or_leave_an_attribute_is_escaped() {
        let hostile = "\"><script>alert('x')</script> & \"q\"";
        let form = lookup_form(Lang::En, "/why", "q", "<b>label</b>", hostile, "Go").into_string();
        assert!(
            form.contains(
                "value=\"&quot;&gt;&lt;script&gt;alert('x')&lt;/script&gt; &amp; &quot;q&quot;\""
            ),
            "{form}"
        );
        assert!(form.contains("&lt;b&gt;label&lt;/b&gt;"), "{form}");
        assert!(!form.contains("<script") && !form.contains("<b>"), "{form}");
        let values = HashMap::from([("statement".to_string(), "</textarea><p>".to_string())]);
        let today = "2026-03-05".parse().unwrap();
        let appeal = appeal_form_html(Lang::Sw, &values, 1 << 20, today).into_string();
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
