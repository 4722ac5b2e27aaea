//! Liveness, readiness, metrics and the OpenAPI document.

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

use crate::app::AppState;
use crate::error::{ApiError, ErrorBody};

/// Alive: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process answers: `ok`.", body = String, content_type = "text/plain"))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready: the database answers too.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers too: `ready`.", body = String, content_type = "text/plain"),
        (status = 503, description = "The database does not answer.", body = String, content_type = "text/plain"),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    // A load balancer asks often and wants an answer soon: a database that does not answer
    // within this is not ready, whatever the pool would have waited.
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);
    match tokio::time::timeout(PATIENCE, state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "database not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
        Err(_) => {
            tracing::warn!("database did not answer within {PATIENCE:?}");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// Prometheus text, for a scraper that shows the configured `metrics_token`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(("metrics_token" = [])),
    responses(
        (
            status = 200,
            description = "The server's metrics in the OpenMetrics text format, for Prometheus.",
            body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"
        ),
        (status = 401, description = "The `metrics_token` is missing or wrong.", body = ErrorBody),
        (status = 404, description = "No `metrics_token` is set: metrics are served only on `metrics_listen`, if set.", body = ErrorBody),
    )
)]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // An empty token (`LIEN_METRICS_TOKEN=`) would match a request without one: it is no token.
    let Some(token) = state
        .settings
        .metrics_token
        .as_ref()
        .filter(|t| !t.is_empty())
    else {
        return ApiError::NotFound("metrics (set metrics_token or metrics_listen)").into_response();
    };
    let shown = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Digests are compared, so that the comparison's time says nothing of the token's length.
    let digest = |text: &str| sha2::Sha256::digest(text.as_bytes());
    if !bool::from(digest(shown).as_slice().ct_eq(digest(token).as_slice())) {
        return ApiError::Unauthorized("metrics need the metrics token as a Bearer token".into())
            .into_response();
    }
    metrics_text(&state)
}

/// The metrics, without asking for a token: what the separate `metrics_listen` address serves.
pub async fn open_metrics(State(state): State<AppState>) -> Response {
    metrics_text(&state)
}

fn metrics_text(state: &AppState) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The OpenAPI document of the financier API and the device endpoints.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This document.", body = Object, content_type = "application/json"))
)]
pub async fn openapi(Extension(document): Extension<crate::openapi::Document>) -> Response {
    document.into_response()
}
