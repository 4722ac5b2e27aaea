//! The HTTP routes. Handlers extract the request, call a command (`crate::commands`) or a
//! read, and serialize the answer; the rules live in `lien-core` and the commands.

pub(crate) mod admin;
pub mod appeals;
pub(crate) mod devices;
pub(crate) mod ops;
pub(crate) mod phone;
pub mod public;
pub(crate) mod push;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use lien_proto::device_api::{MAX_CHECKIN_BODY_BYTES, MAX_HELLO_BODY_BYTES};
pub use phone::sign_checkin;
use serde::Serialize;

use crate::app::AppState;
use crate::commands;
use crate::error::ApiError;

/// What a request body to the financier API may weigh: policies, plans and enrollments are a
/// few KiB. Routes that take more (bulk CSV, appeal uploads) or less (the phone's) say so.
pub const MAX_API_BODY_BYTES: usize = 64 * 1024;

/// The most a bulk enrollment CSV may weigh: 20,000 rows of a few hundred bytes.
pub const MAX_BULK_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What an appeal form may carry beyond its file: the text fields and the multipart framing.
pub const APPEAL_FORM_MARGIN_BYTES: u64 = 64 * 1024;

/// The body limit of the appeal forms (the JSON API's and the page's).
pub fn appeal_body_limit(settings: &crate::config::Settings) -> DefaultBodyLimit {
    let max = settings
        .appeal_upload_max_bytes
        .saturating_add(APPEAL_FORM_MARGIN_BYTES);
    DefaultBodyLimit::max(usize::try_from(max).unwrap_or(usize::MAX))
}

/// Every route of the server. Every body is limited: by default to [`MAX_API_BODY_BYTES`].
pub fn router(settings: &crate::config::Settings) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route(
            "/v1/financiers",
            post(admin::create_financier).get(admin::list_financiers),
        )
        .route(
            "/v1/financiers/{id}/api-keys",
            post(admin::create_api_key).get(admin::list_financier_keys),
        )
        .route(
            "/v1/api-keys",
            post(admin::create_platform_key).get(admin::list_keys),
        )
        .route("/v1/api-keys/{id}/revoke", post(admin::revoke_key))
        .route("/v1/devices", post(devices::enroll).get(devices::list))
        .route(
            "/v1/devices/bulk",
            post(devices::bulk_enroll).layer(DefaultBodyLimit::max(MAX_BULK_BODY_BYTES)),
        )
        .route("/v1/devices/{id}", get(devices::status))
        .route("/v1/devices/{id}/history", get(devices::history))
        .route("/v1/devices/{id}/payments", post(devices::record_payment))
        .route(
            "/v1/devices/{id}/payments/{reference}/reversal",
            post(devices::reverse_payment),
        )
        .route("/v1/devices/{id}/lock", post(devices::lock))
        .route("/v1/devices/{id}/unlock", post(devices::unlock))
        .route("/v1/devices/{id}/reminder", post(devices::reminder))
        .route(
            "/v1/devices/{id}/release",
            post(devices::release).delete(devices::cancel_release),
        )
        .route(
            "/v1/devices/{id}/offline-unlock",
            post(devices::offline_unlock),
        )
        .route("/v1/devices/{id}/policy", put(devices::change_policy))
        .route("/v1/status-codes/{code}", get(devices::status_code))
        .route("/v1/device/hello/challenge", post(phone::hello_challenge))
        .route(
            "/v1/device/hello",
            post(phone::hello).layer(DefaultBodyLimit::max(MAX_HELLO_BODY_BYTES)),
        )
        .route(
            "/v1/device/checkin",
            post(phone::checkin).layer(DefaultBodyLimit::max(MAX_CHECKIN_BODY_BYTES)),
        )
        .route("/v1/public/imei/{imei}", get(public::imei))
        .route(
            "/v1/public/appeals",
            post(appeals::open).layer(appeal_body_limit(settings)),
        )
        .route("/v1/public/appeals/{reference}", get(appeals::follow))
        .route("/v1/appeals", get(appeals::list))
        .route("/v1/appeals/{reference}", get(appeals::get_one))
        .route(
            "/v1/appeals/{reference}/attachment",
            get(appeals::attachment),
        )
        .route("/v1/appeals/{reference}/decision", post(appeals::decide))
        .route(
            "/v1/device/push",
            post(push::push).layer(DefaultBodyLimit::max(MAX_CHECKIN_BODY_BYTES)),
        )
        // The borrower's HTML pages: not part of the JSON API or its document.
        .merge(crate::pages::router(settings))
        .layer(DefaultBodyLimit::max(MAX_API_BODY_BYTES))
}

/// A response ready to send: status and JSON text.
pub struct JsonText(pub axum::http::StatusCode, pub String);

impl axum::response::IntoResponse for JsonText {
    fn into_response(self) -> axum::response::Response {
        (
            self.0,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.1,
        )
            .into_response()
    }
}

/// A command's answer as JSON text: the body made with the change, or the one kept for its
/// idempotency key, byte for byte.
pub fn applied_json<X>(
    applied: commands::Applied<commands::Changed<X>>,
) -> Result<JsonText, ApiError> {
    match applied {
        commands::Applied::Fresh(changed) => Ok(JsonText(axum::http::StatusCode::OK, changed.body)),
        commands::Applied::Replayed { status, body } => {
            let status = axum::http::StatusCode::from_u16(status)
                .map_err(|e| ApiError::Internal(e.into()))?;
            Ok(JsonText(status, body))
        }
    }
}

/// Serializes a response body.
pub fn json_text<T: Serialize>(
    status: axum::http::StatusCode,
    value: &T,
) -> Result<JsonText, ApiError> {
    serde_json::to_string(value)
        .map(|body| JsonText(status, body))
        .map_err(|e| ApiError::Internal(e.into()))
}

/// Creates a platform admin key.
pub async fn admin_key(state: &AppState) -> Result<crate::wire::ApiKeyCreated, ApiError> {
    admin::issue_key(
        state,
        "lien",
        crate::auth::Role::PlatformAdmin,
        None,
        "platform admin created at first start".into(),
    )
    .await
}
