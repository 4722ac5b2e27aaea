//! Hardship pauses and restructuring (issue 20): the financier's routes on a device, and the
//! borrower's request from the public pages. Each extracts, calls the command
//! (`commands::hardship`, `commands::restructure`) and serializes.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::devices::{KeyedRequest, required_key};
use super::{JsonText, applied_json, json_text};
use crate::app::AppState;
use crate::auth::Actor;
use crate::commands::hardship::{self, BorrowerRequest, RequestOutcome};
use crate::commands::restructure;
use crate::domain::rfc3339;
use crate::error::{ApiError, ErrorBody};
use crate::wire::{
    DeviceView, HardshipAnswerRequest, HardshipEndRequest, HardshipPauseRequest, RestructureRequest,
};

/// What a borrower's request may weigh: an IMEI, a code, a number and 500 characters.
pub const MAX_REQUEST_BODY_BYTES: usize = 4 * 1024;

/// `POST /v1/devices/{id}/hardship-pauses`: pause restrictions for a borrower in hardship.
#[utoipa::path(
    post,
    path = "/v1/devices/{id}/hardship-pauses",
    tag = "devices",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "The device's id, `dev_` and hex."),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional: a retry with the same key and request gets the first answer."),
    ),
    request_body = HardshipPauseRequest,
    responses(
        (status = 200, description = "The device as it now stands; `hardship_pause_until` says until when nothing is restricted. A waiting request of the borrower's is answered by it.", body = DeviceView),
        (status = 403, description = "The role may not do this.", body = ErrorBody),
        (status = 404, description = "No such device, or not the caller's: the two are indistinguishable.", body = ErrorBody),
        (status = 409, description = "The device is released, or a pause is already in effect.", body = ErrorBody),
        (status = 422, description = "A field is refused (both or neither of `days` and `until`, a length out of range), or the pause would exceed the policy's `hardship_days_per_year` (the message says how many days remain).", body = ErrorBody),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    request: KeyedRequest,
) -> Result<JsonText, ApiError> {
    let Json(req) = Json::<HardshipPauseRequest>::from_bytes(&request.body)?;
    applied_json(hardship::pause(&state, &actor, &id, request.key, req).await?)
}

/// `POST /v1/devices/{id}/hardship-pauses/end`: end the pause in effect before its time.
#[utoipa::path(
    post,
    path = "/v1/devices/{id}/hardship-pauses/end",
    tag = "devices",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The device's id, `dev_` and hex.")),
    request_body = HardshipEndRequest,
    responses(
        (status = 200, description = "The device as it now stands, decided under its schedule again.", body = DeviceView),
        (status = 403, description = "The role may not do this: ending a pause restricts the phone again, so only a role that may lock (a financier admin) does it.", body = ErrorBody),
        (status = 404, description = "No such device, or not the caller's.", body = ErrorBody),
        (status = 409, description = "The device is released, or has no pause to end.", body = ErrorBody),
    )
)]
pub async fn end_pause(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: Result<Json<HardshipEndRequest>, JsonRejection>,
) -> Result<JsonText, ApiError> {
    let Json(req) = body?;
    applied_json(hardship::end_pause(&state, &actor, &id, req).await?)
}

/// `POST /v1/devices/{id}/hardship-request/decision`: grant or refuse the borrower's request.
#[utoipa::path(
    post,
    path = "/v1/devices/{id}/hardship-request/decision",
    tag = "devices",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The device's id, `dev_` and hex.")),
    request_body = HardshipAnswerRequest,
    responses(
        (status = 200, description = "The device as it now stands.", body = DeviceView),
        (status = 404, description = "No such device, or not the caller's.", body = ErrorBody),
        (status = 409, description = "The device is released, no request is waiting, or a pause is already in effect.", body = ErrorBody),
        (status = 422, description = "A field is refused (a refusal needs a reason), or the pause would exceed the policy's `hardship_days_per_year`.", body = ErrorBody),
    )
)]
pub async fn answer_request(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: Result<Json<HardshipAnswerRequest>, JsonRejection>,
) -> Result<JsonText, ApiError> {
    let Json(req) = body?;
    applied_json(hardship::answer_request(&state, &actor, &id, req).await?)
}

/// `POST /v1/devices/{id}/restructure`: reschedule what remains of the plan.
#[utoipa::path(
    post,
    path = "/v1/devices/{id}/restructure",
    tag = "devices",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "The device's id, `dev_` and hex."),
        ("Idempotency-Key" = String, Header, description = "Required: a retry with the same key and request gets the first answer; the same key with another request is a 409."),
    ),
    request_body = RestructureRequest,
    responses(
        (status = 200, description = "The device decided under the new schedule at once.", body = DeviceView),
        (status = 400, description = "The body is not JSON, or the Idempotency-Key is missing or malformed.", body = ErrorBody),
        (status = 403, description = "The role may not do this (support only where the policy's `restructure_by_support` allows it).", body = ErrorBody),
        (status = 404, description = "No such device, or not the caller's.", body = ErrorBody),
        (status = 409, description = "The device is released, nothing remains owed, or the key was used with a different request.", body = ErrorBody),
        (status = 422, description = "The schedule is refused, naming the field: a date in the past or not after what is paid, another currency, or a total other than what remains (more only by the fee `restructure_max_fee_percent` allows).", body = ErrorBody),
    )
)]
pub async fn restructure(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    request: KeyedRequest,
) -> Result<JsonText, ApiError> {
    let key = required_key(request.key)?;
    let Json(req) = Json::<RestructureRequest>::from_bytes(&request.body)?;
    applied_json(restructure::restructure(&state, &actor, &id, Some(key), req).await?)
}

/// A borrower's request for a hardship pause.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicHardshipRequest {
    /// The phone's IMEI, as the lock screen shows it (or dial *#06#).
    #[serde(default)]
    pub imei: Option<String>,
    /// The 8-digit status code the lock screen shows now: the proof of holding the phone.
    #[serde(default)]
    pub status_code: Option<String>,
    /// How many days of pause are needed (1 to 365).
    #[serde(default)]
    pub days: Option<u32>,
    /// Why, for the financier (at most 500 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Where a borrower's request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HardshipRequestStatus {
    /// Granted at once (the policy's `hardship_auto_grant_days`).
    Granted,
    /// Waiting for the financier's answer.
    Waiting,
}

/// The answer to a borrower's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HardshipRequestAnswer {
    /// Granted or waiting.
    pub status: HardshipRequestStatus,
    /// For a grant: the end of the pause (RFC 3339).
    pub paused_until: Option<String>,
    /// In words.
    pub message: String,
}

/// `POST /v1/public/hardship-requests`: a borrower asks for a hardship pause, without an account.
#[utoipa::path(
    post,
    path = "/v1/public/hardship-requests",
    tag = "public",
    request_body = PublicHardshipRequest,
    responses(
        (status = 201, description = "Granted at once, or waiting for the financier.", body = HardshipRequestAnswer),
        (status = 404, description = "No phone with this IMEI shows this status code: the one answer whatever did not match.", body = ErrorBody),
        (status = 409, description = "The phone is released; or, to a holder whose proof matches, a pause is already in effect. A new request replaces one still waiting for the financier.", body = ErrorBody),
        (status = 413, description = "The body is over 4 KiB.", body = ErrorBody),
        (status = 422, description = "A field is missing or wrong, or, to a holder whose proof matches, the pause would exceed the policy's `hardship_days_per_year` (the message says how many days remain); the message names the field.", body = ErrorBody),
        (status = 429, description = "Too many requests from this address, or too many status codes tried for this phone from anywhere (10 at once, then one a minute); see Retry-After.", body = ErrorBody),
    )
)]
pub async fn borrower_request(
    State(state): State<AppState>,
    limited: super::public::PublicClient,
    body: Result<Json<PublicHardshipRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    if let Err(limited) = limited.check(&state) {
        return Ok(limited.into_response());
    }
    let Json(req) = body?;
    let request = BorrowerRequest::check(
        req.imei.as_deref(),
        req.status_code.as_deref(),
        req.days,
        req.reason.as_deref(),
    )?;
    let answer = match hardship::request_pause(&state, request).await? {
        RequestOutcome::Granted { until } => HardshipRequestAnswer {
            status: HardshipRequestStatus::Granted,
            paused_until: Some(rfc3339(until)),
            message: format!(
                "Your payments are paused until {}; nothing will be locked meanwhile.",
                rfc3339(until)
            ),
        },
        RequestOutcome::Waiting => HardshipRequestAnswer {
            status: HardshipRequestStatus::Waiting,
            paused_until: None,
            message: "Your request was sent to your financier, who will answer it. Nothing \
                      changes on your phone until then."
                .into(),
        },
    };
    Ok(json_text(StatusCode::CREATED, &answer)?.into_response())
}
