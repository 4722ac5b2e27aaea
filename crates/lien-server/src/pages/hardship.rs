//! The borrower's request for a hardship pause, as a page (issue 20): the same command and
//! proof as `POST /v1/public/hardship-requests` (the IMEI and the status code the phone's
//! screen shows), the same rate limit per client and the same 4 KiB bound, in the reader's
//! language. A refusal names its field and keeps what was typed; a request that does not prove
//! the phone gets the one answer every failed proof gets.

use std::collections::HashMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::{Reader, catalog, error_page, limited_page, page, time};
use crate::app::AppState;
use crate::commands::hardship::{self, BorrowerRequest, MAX_BORROWER_REASON, RequestOutcome};
use crate::error::ApiError;
use crate::routes::public::PublicClient;

/// The most a request form may weigh, as the JSON request.
pub const MAX_FORM_BYTES: usize = crate::routes::hardship::MAX_REQUEST_BODY_BYTES;

/// The form, with what was typed.
fn form(reader: &Reader, values: &HashMap<String, String>) -> Markup {
    let t = |id: &str| catalog::message(reader.lang(), id, &[]);
    let v = |name: &str| values.get(name).map(String::as_str).unwrap_or("");
    html! {
        form method="post" action={ "/hardship?lang=" (reader.lang().code()) } {
            p { (t("appeal-numbers-hint")) }
            label for="imei" { (t("appeal-imei-label")) }
            input id="imei" name="imei" value=(v("imei")) inputmode="numeric" autocomplete="off" required;
            label for="status_code" { (t("appeal-code-label")) }
            input id="status_code" name="status_code" value=(v("status_code")) inputmode="numeric" autocomplete="off" required;
            label for="days" { (t("hardship-days-label")) }
            input id="days" name="days" value=(v("days")) inputmode="numeric" required;
            label for="reason" { (t("hardship-reason-label")) }
            textarea id="reason" name="reason" rows="3" maxlength=(MAX_BORROWER_REASON) required { (v("reason")) }
            button id="submit" type="submit" { (t("hardship-send")) }
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct FromWhy {
    q: Option<String>,
}

/// `GET /hardship`: the form, with the status code or IMEI of the "why" page filled in.
pub(super) async fn request_form(reader: Reader, Query(from): Query<FromWhy>) -> Response {
    let values = super::prefilled(from.q);
    page(
        &reader,
        StatusCode::OK,
        &reader.t("hardship-title"),
        html! {
            p { (reader.t("hardship-intro")) }
            (form(&reader, &values))
        },
    )
}

/// `POST /hardship`: sends the request; the page says whether the pause is granted at once or
/// waits for the financier.
pub(super) async fn submit(
    State(state): State<AppState>,
    client: PublicClient,
    reader: Reader,
    body: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let title = reader.t("hardship-title");
    if let Err(limited) = client.check(&state) {
        return limited_page(&reader, limited);
    }
    let values = match body {
        Ok(Form(values)) => values,
        Err(e) => {
            let e = ApiError::invalid("form", e.body_text());
            return error_page(&reader, e, &title, form(&reader, &HashMap::new()));
        }
    };
    match request(&state, &reader, &values).await {
        Ok(answer) => page(&reader, StatusCode::CREATED, &title, answer),
        Err(e) => error_page(&reader, e, &title, form(&reader, &values)),
    }
}

async fn request(
    state: &AppState,
    reader: &Reader,
    values: &HashMap<String, String>,
) -> Result<Markup, ApiError> {
    let field = |name: &str| values.get(name).map(String::as_str);
    let days = match field("days").map(str::trim).filter(|d| !d.is_empty()) {
        None => None,
        Some(d) => Some(
            d.parse::<u32>()
                .map_err(|_| ApiError::invalid("days", "a whole number of days, such as 7"))?,
        ),
    };
    let request =
        BorrowerRequest::check(field("imei"), field("status_code"), days, field("reason"))?;
    let imei = request.imei.as_str().to_string();
    let outcome = hardship::request_pause(state, request).await?;
    Ok(match outcome {
        RequestOutcome::Granted { until } => {
            // The pause is granted: a look-up that fails now only costs the borrower's zone.
            let zone = match crate::commands::appeals::find_device(state, &imei).await {
                Ok(device) => time::plan_zone(&device.enrolled.plan_json),
                Err(_) => jiff::tz::TimeZone::UTC,
            };
            let until = reader.date_time(until, &zone);
            html! {
                p class="box ok" id="result" { (reader.t_with("hardship-granted", &[("time", &until)])) }
            }
        }
        RequestOutcome::Waiting => html! {
            p class="box ok" id="result" { (reader.t("hardship-waiting")) }
        },
    })
}
