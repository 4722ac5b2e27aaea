//! A financier's webhook endpoints: create (the secret shown once), list, change, delete,
//! rotate the secret, read the delivery log, and send an event again. The events and their
//! delivery are in `crate::webhooks`. Creating, changing, deleting and rotating are audited in
//! the financier's chain, in the transaction that does them.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::SignedDuration;
use lien_store::{AuditEntry, DeliveryRecord, WebhookEndpointRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::{from_micros, micros};
use crate::commands::webhook_endpoints::{self, own_endpoint, own_financier};
use crate::domain::rfc3339;
use crate::error::{ApiError, ErrorBody};
use crate::input::new_id;
use crate::webhooks::events::EventType;
use crate::webhooks::signature::new_secret;

/// The longest a rotated secret may keep signing beside the new one (30 days), whatever the
/// settings say.
const MAX_ROTATION_OVERLAP_HOURS: u32 = 720;

/// How many endpoints a financier may have.
const MAX_ENDPOINTS: usize = 20;

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
    /// Where events are posted.
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

/// The endpoint's URL, checked: absolute, `https` (or `http` where the settings allow it, for
/// development), with a host and no credentials.
fn endpoint_url(state: &AppState, raw: &str) -> Result<String, ApiError> {
    if raw.len() > 2048 {
        return Err(ApiError::invalid("url", "is longer than 2048 characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| ApiError::invalid("url", e))?;
    let scheme_ok =
        url.scheme() == "https" || (url.scheme() == "http" && state.settings.webhook_allow_http);
    if !scheme_ok {
        return Err(ApiError::invalid("url", "must be an https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid("url", "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::invalid("url", "must not carry credentials"));
    }
    // Outside development, the server is not made to post into its own network. A name that
    // resolves to such an address is caught when it is resolved, at each delivery
    // (`webhooks::client`).
    if !state.settings.webhook_allow_http && url.host().is_some_and(|h| internal_host(&h)) {
        return Err(ApiError::invalid(
            "url",
            "must not name a loopback, private, link-local or unspecified address",
        ));
    }
    Ok(url.to_string())
}

/// Whether a URL's host names this machine or a private network by itself: `localhost`, or an
/// address that is not public (`webhooks::client::is_public`).
fn internal_host(host: &url::Host<&str>) -> bool {
    use std::net::IpAddr;
    let ip = match host {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            return name == "localhost" || name.ends_with(".localhost");
        }
        url::Host::Ipv4(v4) => IpAddr::V4(*v4),
        url::Host::Ipv6(v6) => IpAddr::V6(*v6),
    };
    !crate::webhooks::client::is_public(ip)
}

#[cfg(test)]
mod tests {
    use super::internal_host;

    fn internal(url: &str) -> bool {
        let url = url::Url::parse(url).unwrap();
        internal_host(&url.host().unwrap())
    }

    #[test]
    fn the_servers_own_networks_are_told_apart_from_the_internet() {
        for url in [
            "https://localhost/",
            "https://LOCALHOST./",
            "https://a.localhost/",
            "https://127.0.0.1:5432/",
            "https://10.1.2.3/",
            "https://172.16.0.9/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[::]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
        ] {
            assert!(internal(url), "{url}");
        }
        for url in [
            "https://hooks.example.com/lien",
            "https://203.0.113.7/",
            "https://[2001:db8::1]/",
            "https://172.32.0.1/",
        ] {
            assert!(!internal(url), "{url}");
        }
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
    actor.require(Action::ManageKeys)?;
    let financier = own_financier(&actor)?;
    let Json(req) = body?;
    let url = endpoint_url(&state, &req.url)?;
    let types = event_types(&req.event_types);
    let now_us = micros(state.clock.now());
    let record = WebhookEndpointRecord {
        id: new_id("whe")?,
        financier_id: financier.to_string(),
        url,
        event_types: types,
        secret: new_secret()?,
        previous_secret: None,
        previous_secret_until_us: None,
        created_us: now_us,
        disabled_us: None,
    };
    let audit = audit(
        &actor,
        now_us,
        "webhook_endpoint_created",
        &record,
        "null".into(),
        described(&record),
    );
    // The cap is checked in the creating transaction, so concurrent creations cannot pass it
    // together.
    state
        .store
        .create_webhook_endpoint(&record, MAX_ENDPOINTS, &chain(financier), &audit)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointCreated {
            endpoint: view(&record, now_us),
            secret: record.secret,
        }),
    ))
}

/// The event types asked for, as stored: sorted, each once.
fn event_types(requested: &[EventType]) -> Vec<String> {
    let mut types: Vec<String> = requested.iter().map(|t| t.as_str().to_string()).collect();
    types.sort();
    types.dedup();
    types
}

/// The financier's audit chain.
fn chain(financier: &str) -> String {
    crate::api_keys::chain(Some(financier))
}

/// An endpoint as its audit records describe it: never its secret, and of its URL only the
/// origin (scheme, host and port), since receivers often carry a token of their own in the
/// path or query, and the audit chain is read by more people than the financier's admins.
fn described(e: &WebhookEndpointRecord) -> String {
    serde_json::json!({
        "id": e.id,
        "url": url_origin(&e.url),
        "event_types": e.event_types,
        "disabled": e.disabled_us.is_some(),
    })
    .to_string()
}

/// `url`'s origin (`https://hooks.example.com:8443`), or nothing when it cannot be read.
fn url_origin(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// The audit record of `action` on endpoint `e` by `actor`.
fn audit(
    actor: &Actor,
    at_us: i64,
    action: &str,
    e: &WebhookEndpointRecord,
    before_json: String,
    after_json: String,
) -> AuditEntry {
    AuditEntry {
        at_us,
        actor: actor.key_id.clone(),
        action: action.into(),
        reason: format!("webhook endpoint {}", e.id),
        before_json,
        after_json,
    }
}

/// The store's answer to a change of an endpoint read a moment before. `NotFound` means it was
/// deleted in between, and is said as a missing endpoint, not as the store's default (a device).
fn endpoint_changed<T>(answer: Result<T, lien_store::StoreError>) -> Result<T, ApiError> {
    match answer {
        Err(lien_store::StoreError::NotFound) => Err(ApiError::NotFound("webhook endpoint")),
        other => Ok(other?),
    }
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
    actor.require(Action::ManageKeys)?;
    let endpoint = own_endpoint(&state, &actor, &id).await?;
    let Json(req) = body?;
    let url = endpoint_url(&state, &req.url)?;
    let types = event_types(&req.event_types);
    let now_us = micros(state.clock.now());
    let after = WebhookEndpointRecord {
        url: url.clone(),
        event_types: types.clone(),
        disabled_us: None,
        ..endpoint.clone()
    };
    let audit = audit(
        &actor,
        now_us,
        "webhook_endpoint_updated",
        &endpoint,
        described(&endpoint),
        described(&after),
    );
    let updated = endpoint_changed(
        state
            .store
            .update_webhook_endpoint(
                &endpoint.id,
                &url,
                &types,
                &chain(&endpoint.financier_id),
                &audit,
            )
            .await,
    )?;
    Ok(Json(view(&updated, now_us)))
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
    actor.require(Action::ManageKeys)?;
    let endpoint = own_endpoint(&state, &actor, &id).await?;
    let now_us = micros(state.clock.now());
    let audit = audit(
        &actor,
        now_us,
        "webhook_endpoint_deleted",
        &endpoint,
        described(&endpoint),
        "null".into(),
    );
    endpoint_changed(
        state
            .store
            .delete_webhook_endpoint(&endpoint.id, now_us, &chain(&endpoint.financier_id), &audit)
            .await,
    )?;
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
    actor.require(Action::ManageKeys)?;
    let endpoint = own_endpoint(&state, &actor, &id).await?;
    let now = state.clock.now();
    let overlap = state
        .settings
        .webhook_rotation_overlap_hours
        .clamp(1, MAX_ROTATION_OVERLAP_HOURS);
    let until = now + SignedDuration::from_hours(i64::from(overlap));
    let secret = new_secret()?;
    let audit = audit(
        &actor,
        micros(now),
        "webhook_secret_rotated",
        &endpoint,
        described(&endpoint),
        serde_json::json!({ "id": endpoint.id, "previous_secret_until": rfc3339(until) })
            .to_string(),
    );
    let rotated = endpoint_changed(
        state
            .store
            .rotate_webhook_secret(
                &endpoint.id,
                &secret,
                micros(until),
                &chain(&endpoint.financier_id),
                &audit,
            )
            .await,
    )?;
    Ok((
        StatusCode::CREATED,
        Json(EndpointCreated {
            endpoint: view(&rotated, micros(now)),
            secret,
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
    actor.require(Action::ManageKeys)?;
    let endpoint = own_endpoint(&state, &actor, &id).await?;
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
