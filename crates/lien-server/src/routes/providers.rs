//! Payment providers' callbacks (M-Pesa's C2B validation and confirmation), the financier's
//! endpoint for them, and the unmatched payments they leave.
//!
//! The callbacks carry no API key: the token in their path is the secret (see
//! `providers::mpesa`). Every callback costs one request of the client's provider allowance
//! (generous: Safaricom calls from a few addresses, for every payment of a paybill), checked
//! before anything is read; a callback whose token is unknown also costs one of the client's
//! public allowance, as the public endpoints do, so that tokens cannot be guessed fast (they
//! are 256 random bits besides), while a provider with a valid token is never held to it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lien_store::{MpesaEndpointRecord, UnmatchedStatus};
use serde::Deserialize;

use super::public::PublicClient;
use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::commands::mobile_money::{self, Confirmed};
use crate::error::{ApiError, ErrorBody};
use crate::providers::mpesa::{
    self, C2bCallback, ConfirmationAnswer, EndpointCreated, EndpointRequest, EndpointView,
    ValidationAnswer,
};
use crate::providers::{AssignmentRequest, UnmatchedPaymentList, UnmatchedPaymentView};

/// The most unmatched payments one list returns.
pub const MAX_UNMATCHED_LISTED: u32 = 500;

/// The endpoint a callback's token names, from an allowed source, or the answer to give
/// instead: 429 when the client is over its allowance, 404 for an unknown token, 403 for a
/// source outside the endpoint's list.
async fn endpoint(
    state: &AppState,
    client: PublicClient,
    token: &str,
) -> Result<Result<MpesaEndpointRecord, Response>, ApiError> {
    if let Err(limited) = state.provider_limit.check(client.key()) {
        return Ok(Err(limited.into_response()));
    }
    match mpesa::caller(state, token, client.0).await? {
        Some(endpoint) => Ok(Ok(endpoint)),
        None => match client.check(state) {
            Err(limited) => Ok(Err(limited.into_response())),
            Ok(()) => Err(ApiError::NotFound("endpoint")),
        },
    }
}

fn callback(body: Result<Bytes, BytesRejection>) -> Result<C2bCallback, ApiError> {
    let body = body?;
    let Json(callback) = Json::<C2bCallback>::from_bytes(&body)?;
    Ok(callback)
}

/// Daraja's validation: whether M-Pesa may take this payment.
#[utoipa::path(
    post,
    path = "/v1/providers/mpesa/{token}/validation",
    tag = "providers",
    params(("token" = String, Path, description = "The endpoint's token, `mpt_` and 43 characters, as made by `POST /v1/financiers/{id}/mpesa-endpoint`.")),
    request_body = C2bCallback,
    responses(
        (status = 200, description = "`ResultCode` `0` accepts the payment; a Daraja code (`C2B00012`: no device has this account number; `C2B00013`: an amount Lien refuses; `C2B00016`: the device is not payable in KES, or a field is malformed) rejects it, and the money stays with the borrower. Nothing is written.", body = ValidationAnswer),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 403, description = "The endpoint does not take callbacks from this address.", body = ErrorBody),
        (status = 404, description = "No endpoint has this token.", body = ErrorBody),
        (status = 422, description = "A required field is missing or not text.", body = ErrorBody),
        (status = 429, description = "Too many requests from this address; see Retry-After.", body = ErrorBody),
    )
)]
pub async fn mpesa_validation(
    State(state): State<AppState>,
    client: PublicClient,
    Path(token): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let endpoint = match endpoint(&state, client, &token).await? {
        Ok(endpoint) => endpoint,
        Err(answer) => return Ok(answer),
    };
    let callback = callback(body)?;
    let answer = mobile_money::validate(&state, &endpoint, &callback).await?;
    tracing::info!(
        financier = %endpoint.financier_id,
        result = %answer.result_code,
        "M-Pesa validation answered"
    );
    Ok(Json(answer).into_response())
}

/// Daraja's confirmation: M-Pesa took the payment.
#[utoipa::path(
    post,
    path = "/v1/providers/mpesa/{token}/confirmation",
    tag = "providers",
    params(("token" = String, Path, description = "The endpoint's token.")),
    request_body = C2bCallback,
    responses(
        (status = 200, description = "The payment is recorded on the device whose contract reference is the `BillRefNumber` (its `TransID` is the payment's reference and idempotency key, so a repeat changes nothing), or kept as an unmatched payment for the financier to assign.", body = ConfirmationAnswer),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 403, description = "The endpoint does not take callbacks from this address.", body = ErrorBody),
        (status = 404, description = "No endpoint has this token.", body = ErrorBody),
        (status = 422, description = "A field is refused (a non-positive or too precise `TransAmount`, a malformed `TransTime` or `TransID`); the message names it.", body = ErrorBody),
        (status = 429, description = "Too many requests from this address; see Retry-After.", body = ErrorBody),
    )
)]
pub async fn mpesa_confirmation(
    State(state): State<AppState>,
    client: PublicClient,
    Path(token): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let endpoint = match endpoint(&state, client, &token).await? {
        Ok(endpoint) => endpoint,
        Err(answer) => return Ok(answer),
    };
    let callback = callback(body)?;
    let outcome = mobile_money::confirm(&state, &endpoint, &callback).await?;
    match &outcome {
        Confirmed::Recorded { device_id } => {
            tracing::info!(financier = %endpoint.financier_id, device = %device_id, "M-Pesa payment recorded")
        }
        Confirmed::Repeated => {
            tracing::info!(financier = %endpoint.financier_id, "M-Pesa confirmation repeated")
        }
        Confirmed::Unmatched { id } => {
            tracing::info!(financier = %endpoint.financier_id, unmatched = %id, "M-Pesa payment kept as unmatched")
        }
    }
    Ok(Json(ConfirmationAnswer::accepted()).into_response())
}

/// Creates the financier's M-Pesa endpoint, or rotates its token.
#[utoipa::path(
    post,
    path = "/v1/financiers/{id}/mpesa-endpoint",
    tag = "providers",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The financier's id.")),
    request_body = EndpointRequest,
    responses(
        (status = 201, description = "The endpoint, with its token shown this once: register `validation_path` and `confirmation_path` (after this server's address) with Daraja. An endpoint made before gets a new token, and the old one stops at once.", body = EndpointCreated),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No API key, or an unknown, revoked or expired one.", body = ErrorBody),
        (status = 403, description = "The role may not manage the financier's secrets.", body = ErrorBody),
        (status = 404, description = "No such financier, or not the caller's.", body = ErrorBody),
        (status = 422, description = "An allowed source is not an address or a network, or there are too many.", body = ErrorBody),
    )
)]
pub async fn put_mpesa_endpoint(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: Result<Json<EndpointRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<EndpointCreated>), ApiError> {
    actor.require(Action::ManageKeys)?;
    let Json(req) = body?;
    let created = mpesa::put_endpoint(&state, &actor, &id, req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The financier's M-Pesa endpoint, without its token.
#[utoipa::path(
    get,
    path = "/v1/financiers/{id}/mpesa-endpoint",
    tag = "providers",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The financier's id.")),
    responses(
        (status = 200, description = "The endpoint's allowed sources and when its token was made.", body = EndpointView),
        (status = 401, description = "No API key, or an unknown, revoked or expired one.", body = ErrorBody),
        (status = 403, description = "The role may not manage the financier's secrets.", body = ErrorBody),
        (status = 404, description = "No endpoint, or not the caller's.", body = ErrorBody),
    )
)]
pub async fn get_mpesa_endpoint(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    Ok(Json(mpesa::endpoint_view(&state, &actor, &id).await?))
}

/// Filters of the unmatched payments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnmatchedQuery {
    status: Option<String>,
}

/// The caller's unmatched payments.
#[utoipa::path(
    get,
    path = "/v1/unmatched-payments",
    tag = "providers",
    security(("api_key" = [])),
    params(("status" = Option<String>, Query, description = "`open` (not assigned yet) or `assigned`; all when absent.")),
    responses(
        (status = 200, description = "The caller's unmatched payments (every financier's for the platform's roles), newest first, at most 500.", body = UnmatchedPaymentList),
        (status = 400, description = "A query parameter is unknown.", body = ErrorBody),
        (status = 401, description = "No API key, or an unknown, revoked or expired one.", body = ErrorBody),
        (status = 403, description = "The role may not read.", body = ErrorBody),
        (status = 422, description = "`status` is neither `open` nor `assigned`.", body = ErrorBody),
    )
)]
pub async fn list_unmatched(
    State(state): State<AppState>,
    actor: Actor,
    query: Result<Query<UnmatchedQuery>, QueryRejection>,
) -> Result<Json<UnmatchedPaymentList>, ApiError> {
    actor.require(Action::Read)?;
    let Query(q) = query?;
    let status = match q.status.as_deref() {
        None => UnmatchedStatus::All,
        Some("open") => UnmatchedStatus::Open,
        Some("assigned") => UnmatchedStatus::Assigned,
        Some(_) => return Err(ApiError::invalid("status", "must be open or assigned")),
    };
    let payments = state
        .store
        .unmatched_payments(actor.financier_id.as_deref(), status, MAX_UNMATCHED_LISTED)
        .await?;
    Ok(Json(UnmatchedPaymentList {
        payments: payments.iter().map(UnmatchedPaymentView::of).collect(),
    }))
}

/// Assigns an unmatched payment to one of the financier's devices.
#[utoipa::path(
    post,
    path = "/v1/unmatched-payments/{id}/assignment",
    tag = "providers",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The unmatched payment's id, `unm_` and hex.")),
    request_body = AssignmentRequest,
    responses(
        (status = 200, description = "The payment is recorded on the device (as a payment whose reference is the provider's transaction id) and marked assigned; again for the same device changes nothing.", body = UnmatchedPaymentView),
        (status = 400, description = "The body is not JSON.", body = ErrorBody),
        (status = 401, description = "No API key, or an unknown, revoked or expired one.", body = ErrorBody),
        (status = 403, description = "The role may not record payments.", body = ErrorBody),
        (status = 404, description = "No such payment or device, or not the caller's.", body = ErrorBody),
        (status = 409, description = "The payment is assigned to another device, or its reference is already recorded there.", body = ErrorBody),
        (status = 422, description = "The device cannot take the payment (its plan is in another currency).", body = ErrorBody),
    )
)]
pub async fn assign_unmatched(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: Result<Json<AssignmentRequest>, JsonRejection>,
) -> Result<Json<UnmatchedPaymentView>, ApiError> {
    actor.require(Action::RecordPayment)?;
    let Json(req) = body?;
    let assigned =
        mobile_money::assign_unmatched(&state, &actor, &id, req.device_id.trim()).await?;
    Ok(Json(UnmatchedPaymentView::of(&assigned)))
}
