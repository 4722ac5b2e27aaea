//! The OpenAPI document, generated from the handlers' annotations and the wire types.
//! A copy is committed as `openapi.json` at the crate root; a test fails when they differ.

use utoipa::OpenApi;

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lien",
        description = "Financier API and device endpoints of Lien."
    ),
    components(schemas(
        crate::wire::NewFinancier,
        crate::wire::FinancierView,
        crate::wire::NewApiKey,
        crate::wire::ApiKeyCreated,
        crate::wire::EnrollRequest,
        crate::wire::PaymentRequest,
        crate::wire::ReversalRequest,
        crate::wire::LockRequest,
        crate::wire::UnlockRequest,
        crate::wire::ReminderRequest,
        crate::wire::ReleaseRequest,
        crate::wire::OfflineCodeRequest,
        crate::wire::OfflineCode,
        crate::wire::DeviceView,
        crate::wire::DevicePage,
        crate::wire::HistoryView,
        crate::wire::StatusCodeView,
        crate::wire::HelloRequest,
        crate::wire::HelloResponse,
        crate::wire::CheckinRequest,
        crate::wire::CheckinResponse,
    ))
)]
pub struct ApiDoc;

/// The document as pretty JSON.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the document serializes")
}
