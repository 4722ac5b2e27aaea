//! A financier's webhook endpoints over the API: create (the secret shown once), list, change,
//! delete, rotate the secret, read the delivery log, and send an event again. The rules are in
//! `commands::webhook_endpoints`; the events and their delivery in `crate::webhooks`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lien_store::{DeliveryRecord, WebhookEndpointRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::Actor;
use crate::clock::{from_micros, micros};
use crate::commands::webhook_endpoints;
use crate::domain::rfc3339;
use crate::error::{ApiError, ErrorBody};
use crate::webhooks::events::EventType;

/// How many deliveries the log shows.
const LOG_LIMIT: u32 = 500;

/// A new endpoint, or an endpoint's new URL and event types.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    /// Where to post events: an `https` URL.
    pub url: String,
    /// The event types to send; all when absent or empty.
    #[serde(default)]
    pub event_types: Vec<EventType>,
}

/// An endpoint, without its secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointView {
    /// Id, `whe_` and hex.
    pub id: String,
    /// Where events are posted: the whole URL to a role that manages the financier's secrets
    /// (a financier admin), to any other only its origin, as the path or query may carry the
    /// receiver's own token.
    pub url: String,
    /// The event types sent there; empty for all.
    pub event_types: Vec<String>,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When it was disabled because the receiver answered 410 Gone, if it was.
    pub disabled_at: Option<String>,
    /// Until when the secret before the last rotation still signs, if it does.
    pub previous_secret_until: Option<String>,
}

/// An endpoint with its signing secret, shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointCreated {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// The signing secret (`whsec_` and base64), as Standard Webhooks libraries take it. Shown
    /// only now; Lien keeps it to sign with.
    pub secret: String,
}

/// The caller's endpoints.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndpointList {
    /// Oldest first.
    pub endpoints: Vec<EndpointView>,
}

/// One event's delivery to an endpoint.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    /// The event's id (its `webhook-id`).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// `pending`, `delivered` or `failed` (given up).
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// When it is tried next, while pending.
    pub next_attempt_at: Option<String>,
    /// When it was last tried.
    pub last_attempt_at: Option<String>,
    /// The HTTP status of the receiver's last answer, if it answered.
    pub last_response_status: Option<i64>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When the receiver took it.
    pub delivered_at: Option<String>,
}

/// An endpoint's delivery log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    /// Newest event first, at most 500.
    pub deliveries: Vec<DeliveryView>,
}

fn view(e: &WebhookEndpointRecord, now_us: i64) -> EndpointView {
    EndpointView {
        id: e.id.clone(),
        url: e.url.clone(),
        event_types: e.event_types.clone(),
        created_at: rfc3339(from_micros(e.created_us)),
        disabled_at: e.disabled_us.map(|us| rfc3339(from_micros(us))),
        previous_secret_until: e
            .previous_secret_until_us
            .filter(|until| *until > now_us)
            .map(|us| rfc3339(from_micros(us))),
    }
}

fn delivery_view(d: DeliveryRecord) -> DeliveryView {
    let at = |us: i64| rfc3339(from_micros(us));
    DeliveryView {
        event_id: d.event_id,
        event_type: d.event_type,
        status: d.status.as_str().to_string(),
        attempts: d.attempts,
        next_attempt_at: (d.status == lien_store::DeliveryStatus::Pending)
            .then(|| at(d.next_attempt_us)),
        last_attempt_at: d.last_attempt_us.map(at),
        last_response_status: d.last_status,
        last_error: d.last_error,
        delivered_at: d.delivered_us.map(at),
    }
}

/// Creates an endpoint.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints",
    tag = "webhooks",
    security(("api_key" = [])),
    request_body = EndpointRequest,
    responses(
        (status = 201, description = "The endpoint, with its signing secret shown this once. Events are posted to it as Standard Webhooks: headers `webhook-id`, `webhook-timestamp` and `webhook-signature`; the body's `data` carries the device's `sequence`.", body = EndpointCreated),
        (status = 403, description = "Not a financier's key, or its role may not manage the financier's secrets.", body = ErrorBody),
        (status = 409, description = "The financier has as many endpoints as it may.", body = ErrorBody),
        (status = 422, description = "The URL is not an https URL, or an event type is unknown.", body = ErrorBody),
    )
)]
pub async fn create_endpoint(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Json<EndpointRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<EndpointCreated>), ApiError> {
    // Who may comes before what was sent.
    webhook_endpoints::managed_financier(&actor)?;
    let Json(req) = body?;
    let record = webhook_endpoints::create(&state, &actor, &req.url, &req.event_types).await?;
    let now_us = micros(state.clock.now());
    Ok((
        StatusCode::CREATED,
        Json(EndpointCreated {
            endpoint: view(&record, now_us),
            secret: record.secret,
        }),
    ))
}

/// Changes an endpoint's URL and event types.
#[utoipa::path(
    put,
    path = "/v1/webhook-endpoints/{id}",
    tag = "webhooks",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id.")),
    request_body = EndpointRequest,
    responses(
        (status = 200, description = "The endpoint as it now stands, enabled again if a 410 Gone had disabled it. Its secret is unchanged; events not yet delivered go to the new URL.", body = EndpointView),
        (status = 403, description = "Not a financier's key, or its role may not manage the financier's secrets.", body = ErrorBody),
        (status = 404, description = "No such endpoint, or not the caller's.", body = ErrorBody),
        (status = 422, description = "The URL is not an https URL, or an event type is unknown.", body = ErrorBody),
    )
)]
pub async fn update_endpoint(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    body: Result<Json<EndpointRequest>, JsonRejection>,
) -> Result<Json<EndpointView>, ApiError> {
    let endpoint = webhook_endpoints::own_endpoint_to_manage(&state, &actor, &id).await?;
    let Json(req) = body?;
    let updated =
        webhook_endpoints::update(&state, &actor, endpoint, &req.url, &req.event_types).await?;
    Ok(Json(view(&updated, micros(state.clock.now()))))
}

/// Lists the caller's endpoints.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints",
    tag = "webhooks",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The caller's endpoints, without their secrets.", body = EndpointList),
        (status = 403, description = "Not a financier's key, or its role may not read.", body = ErrorBody),
    )
)]
pub async fn list_endpoints(
    State(state): State<AppState>,
    actor: Actor,
) -> Result<Json<EndpointList>, ApiError> {
    let now_us = micros(state.clock.now());
    let endpoints = webhook_endpoints::list(&state, &actor).await?;
    Ok(Json(EndpointList {
        endpoints: endpoints.iter().map(|e| view(e, now_us)).collect(),
    }))
}

/// Deletes an endpoint.
#[utoipa::path(
    delete,
    path = "/v1/webhook-endpoints/{id}",
    tag = "webhooks",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id.")),
    responses(
        (status = 204, description = "Deleted: nothing more is sent there."),
        (status = 403, description = "Not a financier's key, or its role may not manage the financier's secrets.", body = ErrorBody),
        (status = 404, description = "No such endpoint, or not the caller's.", body = ErrorBody),
    )
)]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    webhook_endpoints::delete(&state, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates an endpoint's secret.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/secret",
    tag = "webhooks",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id.")),
    responses(
        (status = 201, description = "The new secret, shown this once. Until `previous_secret_until` (24 hours by default, the server's `webhook_rotation_overlap_hours`) every delivery carries two signatures, one under each secret, so the receiver can switch at its own pace; after it, only the new secret signs.", body = EndpointCreated),
        (status = 403, description = "Not a financier's key, or its role may not manage the financier's secrets.", body = ErrorBody),
        (status = 404, description = "No such endpoint, or not the caller's.", body = ErrorBody),
    )
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<EndpointCreated>), ApiError> {
    let rotated = webhook_endpoints::rotate(&state, &actor, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointCreated {
            endpoint: view(&rotated, micros(state.clock.now())),
            secret: rotated.secret,
        }),
    ))
}

/// The endpoint's delivery log.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}/deliveries",
    tag = "webhooks",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "The endpoint's id.")),
    responses(
        (status = 200, description = "Each event's delivery to the endpoint, newest first, with the receiver's last response status.", body = DeliveryList),
        (status = 403, description = "Not a financier's key, or its role may not read.", body = ErrorBody),
        (status = 404, description = "No such endpoint, or not the caller's.", body = ErrorBody),
    )
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<DeliveryList>, ApiError> {
    let (_, deliveries) = webhook_endpoints::deliveries(&state, &actor, &id, LOG_LIMIT).await?;
    Ok(Json(DeliveryList {
        deliveries: deliveries.into_iter().map(delivery_view).collect(),
    }))
}

/// Sends an event to the endpoint again.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/deliveries/{event_id}/redeliver",
    tag = "webhooks",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "The endpoint's id."),
        ("event_id" = String, Path, description = "The event's id (`webhook-id`)."),
    ),
    responses(
        (status = 202, description = "The event is sent again now, with the same `webhook-id`, whatever became of it before.", body = DeliveryView),
        (status = 403, description = "Not a financier's key, or its role may not manage the financier's secrets.", body = ErrorBody),
        (status = 404, description = "No such endpoint or delivery, or not the caller's.", body = ErrorBody),
        (status = 409, description = "The event is being sent to the endpoint right now; its outcome will be in the delivery log within a minute. Nothing changed.", body = ErrorBody),
        (status = 429, description = "The financier asked for more than 120 redeliveries a minute (after 60 at once); see Retry-After. Nothing changed.", body = ErrorBody),
    )
)]
pub async fn redeliver(
    State(state): State<AppState>,
    actor: Actor,
    Path((id, event_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let endpoint = webhook_endpoints::own_endpoint_to_manage(&state, &actor, &id).await?;
    if let Err(limited) = state.redelivery_limit.check(endpoint.financier_id.clone()) {
        return Ok(limited.respond("too many redeliveries for this financier"));
    }
    let delivery = match state
        .store
        .redeliver(&endpoint.id, &event_id, micros(state.clock.now()))
        .await
    {
        Err(lien_store::StoreError::NotFound) => return Err(ApiError::NotFound("delivery")),
        other => other?,
    };
    Ok((StatusCode::ACCEPTED, Json(delivery_view(delivery))).into_response())
}
