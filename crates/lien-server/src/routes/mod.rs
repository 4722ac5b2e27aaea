//! The HTTP routes. Handlers extract the request, call a command (`crate::commands`) or a
//! read, and serialize the answer; the rules live in `lien-core` and the commands.

pub(crate) mod admin;
pub mod appeals;
pub(crate) mod devices;
pub(crate) mod hardship;
pub(crate) mod ops;
pub(crate) mod people;
pub(crate) mod phone;
pub(crate) mod providers;
pub mod public;
pub(crate) mod push;
pub(crate) mod reports;
pub(crate) mod sim_change;
pub(crate) mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use lien_proto::device_api::{MAX_CHECKIN_BODY_BYTES, MAX_HELLO_BODY_BYTES};
pub use phone::sign_checkin;
use serde::Serialize;
use utoipa::OpenApi as _;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt as _};
use utoipa_axum::routes;

use crate::app::AppState;
use crate::commands;
use crate::error::ApiError;
use crate::providers::generic::MAX_CALLBACK_BODY_BYTES as GENERIC_CALLBACK_BODY_BYTES;
use crate::providers::mpesa::MAX_CALLBACK_BODY_BYTES;

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

/// The JSON API: its router and its OpenAPI document, from one declaration per handler.
///
/// Each handler's `#[utoipa::path]` names its method and path once; `routes!` serves the handler
/// there and adds the operation to the document, so a route cannot be served undocumented nor
/// documented unserved. Add a route only with `.routes(routes!(..))`, never `.route(..)` (the
/// tests in `openapi` hold to it). Only handlers that share a path go in one `routes!`, which
/// serves all it names at every path they name. Per-route body limits are layered on the
/// declaration.
pub fn api(settings: &crate::config::Settings) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, document) = OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi))
        .routes(routes!(admin::create_financier, admin::list_financiers))
        .routes(routes!(admin::create_api_key, admin::list_financier_keys))
        .routes(routes!(admin::create_platform_key, admin::list_keys))
        .routes(routes!(admin::revoke_key))
        .routes(routes!(devices::enroll, devices::list))
        .routes(routes!(devices::bulk_enroll).layer(DefaultBodyLimit::max(MAX_BULK_BODY_BYTES)))
        .routes(routes!(devices::status))
        .routes(routes!(devices::history))
        .routes(routes!(devices::record_payment))
        .routes(routes!(devices::reverse_payment))
        .routes(routes!(devices::lock))
        .routes(routes!(devices::unlock))
        .routes(routes!(devices::reminder))
        .routes(routes!(devices::release, devices::cancel_release))
        .routes(routes!(devices::offline_unlock))
        .routes(routes!(devices::change_policy))
        .routes(routes!(devices::status_code))
        .routes(routes!(hardship::pause))
        .routes(routes!(hardship::end_pause))
        .routes(routes!(hardship::answer_request))
        .routes(routes!(hardship::restructure))
        .routes(routes!(sim_change::accept))
        .routes(
            routes!(hardship::borrower_request)
                .layer(DefaultBodyLimit::max(hardship::MAX_REQUEST_BODY_BYTES)),
        )
        .routes(routes!(phone::hello_challenge))
        .routes(routes!(phone::hello).layer(DefaultBodyLimit::max(MAX_HELLO_BODY_BYTES)))
        .routes(routes!(phone::checkin).layer(DefaultBodyLimit::max(MAX_CHECKIN_BODY_BYTES)))
        .routes(routes!(public::imei))
        .routes(routes!(appeals::open).layer(appeal_body_limit(settings)))
        .routes(routes!(appeals::follow))
        .routes(routes!(appeals::list))
        .routes(routes!(appeals::get_one))
        .routes(routes!(appeals::attachment))
        .routes(routes!(appeals::decide))
        .routes(routes!(push::push).layer(DefaultBodyLimit::max(MAX_CHECKIN_BODY_BYTES)))
        .routes(
            routes!(providers::mpesa_validation)
                .layer(DefaultBodyLimit::max(MAX_CALLBACK_BODY_BYTES)),
        )
        .routes(
            routes!(providers::mpesa_confirmation)
                .layer(DefaultBodyLimit::max(MAX_CALLBACK_BODY_BYTES)),
        )
        .routes(routes!(
            providers::put_mpesa_endpoint,
            providers::get_mpesa_endpoint
        ))
        .routes(routes!(providers::list_unmatched))
        .routes(routes!(providers::assign_unmatched))
        .routes(routes!(
            providers::create_payment_provider,
            providers::list_payment_providers
        ))
        .routes(routes!(providers::rotate_payment_provider_secret))
        .routes(
            routes!(providers::generic_payment)
                .layer(DefaultBodyLimit::max(GENERIC_CALLBACK_BODY_BYTES)),
        )
        .routes(routes!(providers::reconcile).layer(DefaultBodyLimit::max(MAX_BULK_BODY_BYTES)))
        .routes(routes!(webhooks::create_endpoint, webhooks::list_endpoints))
        .routes(routes!(
            webhooks::delete_endpoint,
            webhooks::update_endpoint
        ))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::redeliver))
        .routes(routes!(reports::late_unlocks))
        .routes(routes!(people::invite))
        .routes(routes!(admin::update_financier))
        .split_for_parts();
    (router, crate::openapi::complete(document))
}

/// Every route of the server: the JSON API, which serves its own document at `/openapi.json`,
/// and the borrower's pages. Every body is limited: by default to [`MAX_API_BODY_BYTES`].
pub fn router(settings: &crate::config::Settings) -> Router<AppState> {
    let (api, document) = api(settings);
    api.layer(Extension(crate::openapi::Document::new(&document)))
        // The borrower's HTML pages: not part of the JSON API or its document.
        .merge(crate::pages::router(settings))
        // The console for financiers and support: HTML too, behind its own sign-in.
        .merge(crate::console::router())
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
