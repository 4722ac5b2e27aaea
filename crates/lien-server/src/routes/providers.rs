//! Payment providers' callbacks (M-Pesa's C2B validation and confirmation, other providers'
//! signed payments), the financier's endpoints and providers, the unmatched payments they
//! leave, and the reconciliation of a provider's statement.
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
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use lien_store::{MpesaEndpointRecord, UnmatchedStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::public::PublicClient;
use crate::app::AppState;
use crate::auth::Actor;
use crate::commands::mobile_money::{self, Confirmed};
use crate::commands::reconciliation;
use crate::error::{ApiError, ErrorBody};
use crate::providers::generic::{
    self, PaymentCallback, ProviderCreated, ProviderList, ProviderRequest,
};
use crate::providers::mpesa::{
    self, C2bCallback, ConfirmationAnswer, EndpointCreated, EndpointRequest, EndpointView,
    ValidationAnswer,
};
use crate::providers::statement::{ReconciliationReport, parse_period};
use crate::providers::{AssignmentRequest, UnmatchedPaymentList, UnmatchedPaymentView};

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
    crate::no_nul::json_without_nul(&body)
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
    cursor: Option<String>,
    limit: Option<u32>,
}

/// The caller's unmatched payments, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/unmatched-payments",
    tag = "providers",
    security(("api_key" = [])),
    params(
        ("status" = Option<String>, Query, description = "`open` (not assigned yet) or `assigned`; all when absent."),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page."),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Page size, 1 to 500 (default 100)."),
    ),
    responses(
        (status = 200, description = "A page of the caller's unmatched payments (every financier's for the platform's roles), newest first. Assigned payments stay listed: they are money records, never deleted.", body = UnmatchedPaymentList),
        (status = 400, description = "A query parameter is unknown or has the wrong type.", body = ErrorBody),
        (status = 403, description = "The role may not read.", body = ErrorBody),
        (status = 422, description = "`status` is neither `open` nor `assigned`, `limit` is out of range, or `cursor` is not a `next_cursor`.", body = ErrorBody),
    )
)]
pub async fn list_unmatched(
    State(state): State<AppState>,
    actor: Actor,
    query: Result<Query<UnmatchedQuery>, QueryRejection>,
) -> Result<Json<UnmatchedPaymentList>, ApiError> {
    let Query(q) = query?;
    let status = match q.status.as_deref() {
        None => UnmatchedStatus::All,
        Some("open") => UnmatchedStatus::Open,
        Some("assigned") => UnmatchedStatus::Assigned,
        Some(_) => return Err(ApiError::invalid("status", "must be open or assigned")),
    };
    let (payments, next_cursor) = mobile_money::list_unmatched(
        &state,
        &actor,
        status,
        q.cursor.as_deref(),
        q.limit.unwrap_or(mobile_money::DEFAULT_UNMATCHED_PAGE),
    )
    .await?;
    Ok(Json(UnmatchedPaymentList {
        payments: payments.iter().map(UnmatchedPaymentView::of).collect(),
        next_cursor,
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
        (status = 200, description = "The payment is recorded on the device through the payment command (as a payment whose reference is the provider's transaction id, under the provider's idempotency key) and marked assigned; again for the same device changes nothing and answers the same.", body = UnmatchedPaymentView),
        (status = 403, description = "The role may not record payments.", body = ErrorBody),
        (status = 404, description = "No such payment or device, or not the caller's.", body = ErrorBody),
        (status = 409, description = "The payment went to another device (the message names it), or its reference is already recorded on this one.", body = ErrorBody),
        (status = 422, description = "`currency`: the device's plan is in another currency than the payment. Nothing is written.", body = ErrorBody),
    )
)]
pub async fn assign_unmatched(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: Result<Json<AssignmentRequest>, JsonRejection>,
) -> Result<Json<UnmatchedPaymentView>, ApiError> {
    let Json(req) = body?;
    let assigned =
        mobile_money::assign_unmatched(&state, &actor, &id, req.device_id.trim()).await?;
    Ok(Json(UnmatchedPaymentView::of(&assigned)))
}

/// Adds a payment provider (any provider or bank other than M-Pesa) for the financier.
#[utoipa::path(
    post,
    path = "/v1/financiers/{id}/payment-providers",
    tag = "providers",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The financier's id.")),
    request_body = ProviderRequest,
    responses(
        (status = 201, description = "The provider, with its Standard Webhooks signing secret (`whsec_` and base64) shown this once, and the path it posts payments to (after this server's address).", body = ProviderCreated),
        (status = 403, description = "The role may not manage the financier's secrets.", body = ErrorBody),
        (status = 404, description = "No such financier, or not the caller's.", body = ErrorBody),
        (status = 409, description = "The financier has a provider with this name.", body = ErrorBody),
        (status = 422, description = "The name is not 1 to 32 lower-case letters, digits and `-`, or is `mpesa`.", body = ErrorBody),
    )
)]
pub async fn create_payment_provider(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: Result<Json<ProviderRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<ProviderCreated>), ApiError> {
    let Json(req) = body?;
    let created = generic::create_provider(&state, &actor, &id, req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The financier's payment providers, without their secrets.
#[utoipa::path(
    get,
    path = "/v1/financiers/{id}/payment-providers",
    tag = "providers",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The financier's id.")),
    responses(
        (status = 200, description = "The financier's providers by name, each with its callback path and when its secret was made.", body = ProviderList),
        (status = 403, description = "The role may not manage the financier's secrets.", body = ErrorBody),
        (status = 404, description = "No such financier, or not the caller's.", body = ErrorBody),
    )
)]
pub async fn list_payment_providers(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<ProviderList>, ApiError> {
    Ok(Json(generic::list_providers(&state, &actor, &id).await?))
}

/// Gives a payment provider a new signing secret.
#[utoipa::path(
    post,
    path = "/v1/financiers/{id}/payment-providers/{provider_id}/secret",
    tag = "providers",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "The financier's id."),
        ("provider_id" = String, Path, description = "The provider's id, `ppr_` and hex."),
    ),
    responses(
        (status = 201, description = "The provider with its new secret, shown this once; the old secret stops at once.", body = ProviderCreated),
        (status = 403, description = "The role may not manage the financier's secrets.", body = ErrorBody),
        (status = 404, description = "No such provider, or not the caller's.", body = ErrorBody),
    )
)]
pub async fn rotate_payment_provider_secret(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, provider_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<ProviderCreated>), ApiError> {
    let rotated = generic::rotate_secret(&state, &actor, &id, &provider_id).await?;
    Ok((StatusCode::CREATED, Json(rotated)))
}

/// What a signed payment became.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentOutcome {
    /// Recorded on the device whose contract reference is the account.
    Recorded,
    /// This reference was recorded or kept before: nothing changed.
    Repeated,
    /// No device could take it: kept as an unmatched payment for the financier to assign.
    Unmatched,
}

/// The answer to a signed payment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentAnswer {
    /// What became of it.
    pub outcome: PaymentOutcome,
}

/// A payment from one of the financier's providers, signed per Standard Webhooks.
#[utoipa::path(
    post,
    path = "/v1/providers/generic/{provider_id}/payments",
    tag = "providers",
    params(
        ("provider_id" = String, Path, description = "The provider's id, `ppr_` and hex, as made by `POST /v1/financiers/{id}/payment-providers`."),
        ("webhook-id" = String, Header, description = "The message's id; a message whose id was accepted before is refused."),
        ("webhook-timestamp" = String, Header, description = "When the message was signed, in Unix seconds; at most five minutes from the server's clock."),
        ("webhook-signature" = String, Header, description = "Space-separated `v1,<base64>` entries, one of them the HMAC-SHA256 under the provider's secret (the base64 after `whsec_`, decoded) of `<webhook-id>.<webhook-timestamp>.<body>`."),
    ),
    request_body = PaymentCallback,
    responses(
        (status = 200, description = "The payment is recorded on the device whose contract reference is `account` (its `reference` is the payment's reference and, as `provider:<provider name>:<reference>`, idempotency key, so the same payment in a new message changes nothing), or kept as an unmatched payment.", body = PaymentAnswer),
        (status = 401, description = "A header is missing, the timestamp is not within five minutes, or no signature matches; the message names the header. Nothing is written.", body = ErrorBody),
        (status = 404, description = "No provider has this id.", body = ErrorBody),
        (status = 409, description = "A message with this `webhook-id` was accepted already (a replay). Nothing is written.", body = ErrorBody),
        (status = 413, description = "The body is over 4 KiB.", body = ErrorBody),
        (status = 422, description = "A field is refused; the message names it.", body = ErrorBody),
        (status = 429, description = "Too many requests from this address; see Retry-After.", body = ErrorBody),
    )
)]
pub async fn generic_payment(
    State(state): State<AppState>,
    client: PublicClient,
    Path(provider_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if let Err(limited) = state.provider_limit.check(client.key()) {
        return Ok(limited.into_response());
    }
    // An unknown provider or a bad signature also costs the client's public allowance, as the
    // public endpoints do, so that neither ids nor secrets can be tried fast.
    let Some(provider) = generic::provider(&state, &provider_id).await? else {
        return match client.check(&state) {
            Err(limited) => Ok(limited.into_response()),
            Ok(()) => Err(ApiError::NotFound("payment provider")),
        };
    };
    let body = body?;
    let secret = generic::secret(&state, &provider);
    let message = match generic::verify(&secret, &headers, &body, state.clock.now()) {
        Ok(message) => message,
        Err(refused) => {
            return match client.check(&state) {
                Err(limited) => Ok(limited.into_response()),
                Ok(()) => Err(refused),
            };
        }
    };
    let callback: PaymentCallback = crate::no_nul::json_without_nul(&body)?;
    let outcome = match mobile_money::signed_payment(&state, &provider, &message, &callback).await?
    {
        Confirmed::Recorded { device_id } => {
            tracing::info!(financier = %provider.financier_id, provider = %provider.name, device = %device_id, "provider payment recorded");
            PaymentOutcome::Recorded
        }
        Confirmed::Repeated => PaymentOutcome::Repeated,
        Confirmed::Unmatched { id } => {
            tracing::info!(financier = %provider.financier_id, provider = %provider.name, unmatched = %id, "provider payment kept as unmatched");
            PaymentOutcome::Unmatched
        }
    };
    Ok(Json(PaymentAnswer { outcome }).into_response())
}

/// The period and provider of a reconciliation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileQuery {
    provider: String,
    from: String,
    to: String,
    financier: Option<String>,
}

/// Reconciles a provider's statement for a period against the payments Lien has from it.
#[utoipa::path(
    post,
    path = "/v1/reconciliations",
    tag = "providers",
    security(("api_key" = [])),
    params(
        ("provider" = String, Query, description = "`mpesa`, or the name of one of the financier's payment providers."),
        ("from" = String, Query, description = "The period's start, RFC 3339, included."),
        ("to" = String, Query, description = "The period's end, RFC 3339, excluded; at most 31 days after `from`."),
        ("financier" = Option<String>, Query, description = "The financier, for the platform's roles; a financier's key reconciles its own."),
    ),
    request_body(content = String, content_type = "text/csv", description = "The provider's statement: a header line naming the columns `transaction_id`, `account` (the device's contract reference), `amount` (a decimal, e.g. `1000.00`), `currency` (ISO 4217; may be left out for M-Pesa) and `paid_at` (RFC 3339, or M-Pesa's `YYYYMMDDHHMMSS` in Nairobi time), in any order, other columns ignored; every line within the period. At most 20000 lines."),
    responses(
        (status = 200, description = "The report: the statement's transactions Lien lacked (`missing`, now recorded on their devices through the payment command under the provider's idempotency key, or kept as unmatched), those whose account, amount or currency differ (`mismatched`, not changed), and Lien's payments from the provider in the period that the statement lacks (`lien_only`). The same statement again applies nothing more.", body = ReconciliationReport),
        (status = 400, description = "The CSV cannot be read, or a query parameter is unknown or missing.", body = ErrorBody),
        (status = 403, description = "The role may not reconcile: only a financier admin vouches for a provider's statement, whose missing lines are recorded as the provider's own payments.", body = ErrorBody),
        (status = 404, description = "No such financier or payment provider, or not the caller's.", body = ErrorBody),
        (status = 413, description = "The statement is over 8 MiB.", body = ErrorBody),
        (status = 422, description = "The period, a column or a line is refused, or the statement has more than 20000 lines; the message names the line and the column. Nothing is applied.", body = ErrorBody),
        (status = 429, description = "A reconciliation for the financier is running on this server (one at a time), the server runs as many as it takes, or the financier is over its allowance (2 a minute after 10 at once); see Retry-After. Nothing is read.", body = ErrorBody),
    )
)]
pub async fn reconcile(
    State(state): State<AppState>,
    actor: Actor,
    query: Result<Query<ReconcileQuery>, QueryRejection>,
    // The body is read only once the run is admitted: a refused caller (a role that may
    // not reconcile, a financier over its rate) costs no 8 MiB buffer.
    request: Request,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let financier_id = match (&actor.financier_id, q.financier) {
        (Some(own), Some(chosen)) if *own != chosen => {
            return Err(ApiError::NotFound("financier"));
        }
        (Some(own), _) => own.clone(),
        (None, Some(chosen)) => chosen,
        (None, None) => {
            return Err(ApiError::invalid(
                "financier",
                "is required for the platform's roles",
            ));
        }
    };
    let run = match reconciliation::admit(&state, &actor, &financier_id).await? {
        Ok(run) => run,
        Err(busy) => return Ok(busy.respond()),
    };
    let period = parse_period(&q.from, &q.to)?;
    let body = Bytes::from_request(request, &state).await?;
    let report = reconciliation::reconcile(&state, &run, &q.provider, period, &body).await?;
    Ok(Json(report).into_response())
}
