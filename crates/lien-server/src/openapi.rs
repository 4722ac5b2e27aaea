//! The OpenAPI document, generated from the handlers' annotations and the wire types.
//! A copy is committed as `openapi.json` at the crate root; a test fails when they differ.
//!
//! The document is not listed here: `routes::api` declares each route once, by its handler,
//! and gets the router and the document's paths from that one declaration. This module gives
//! what the paths do not: the info, tags and shared schemas ([`ApiDoc`]), and what every route
//! shares ([`complete`]).
//!
//! To regenerate the copy after changing the API:
//! `LIEN_WRITE_OPENAPI=1 cargo test -p lien-server --lib openapi`.

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::routes::appeals;

/// The document's frame: its info, tags and the schemas every route may name. `routes::api`
/// adds the paths, then [`complete`] what they share.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Lien",
        description = "Financier API and device endpoints of Lien."
    ),
    components(schemas(
        crate::error::ErrorBody,
        crate::wire::NewFinancier,
        crate::wire::FinancierView,
        crate::wire::NewApiKey,
        crate::wire::ApiKeyCreated,
        crate::wire::ApiKeyView,
        crate::wire::ApiKeyStatus,
        crate::wire::EnrollRequest,
        crate::wire::PaymentRequest,
        crate::wire::ReversalRequest,
        crate::wire::LockRequest,
        crate::wire::UnlockRequest,
        crate::wire::ReminderRequest,
        crate::wire::ReleaseRequest,
        crate::wire::PolicyChangeRequest,
        crate::wire::OfflineCodeRequest,
        crate::wire::OfflineCode,
        crate::wire::DeviceView,
        crate::wire::DevicePage,
        crate::wire::HistoryView,
        crate::wire::StatusCodeView,
        lien_proto::device_api::HelloChallenge,
        lien_proto::device_api::HelloRequest,
        lien_proto::device_api::HelloResponse,
        lien_proto::device_api::CheckinRequest,
        lien_proto::device_api::CheckinResponse,
        lien_proto::device_api::PushRequest,
        crate::commands::imei_check::ImeiCheck,
        crate::commands::imei_check::PublicFinancier,
        appeals::AppealFormDoc,
        appeals::AppealOpened,
        crate::commands::appeals::AppealPublicView,
        appeals::AppealView,
        appeals::AttachmentView,
        appeals::AppealDecision,
        crate::providers::mpesa::C2bCallback,
        crate::providers::mpesa::ValidationAnswer,
        crate::providers::mpesa::ConfirmationAnswer,
        crate::providers::mpesa::EndpointRequest,
        crate::providers::mpesa::EndpointCreated,
        crate::providers::mpesa::EndpointView,
        crate::providers::UnmatchedPaymentView,
        crate::providers::UnmatchedPaymentList,
        crate::providers::AssignmentRequest,
        crate::providers::generic::PaymentCallback,
        crate::providers::generic::ProviderRequest,
        crate::providers::generic::ProviderCreated,
        crate::providers::generic::ProviderView,
        crate::providers::generic::ProviderList,
        crate::routes::providers::PaymentAnswer,
        crate::routes::providers::PaymentOutcome,
        crate::providers::statement::ReconciliationReport,
        crate::providers::statement::ReconciliationCounts,
        crate::providers::statement::MissingPayment,
        crate::providers::statement::MissingOutcome,
        crate::providers::statement::MismatchedPayment,
        crate::providers::statement::MismatchedField,
        crate::providers::statement::PaymentSide,
        crate::providers::statement::LienOnlyPayment,
    )),
    tags(
        (name = "financiers", description = "Financiers and their API keys, and the platform's own keys."),
        (name = "devices", description = "Enrollment, payments, locks, release, policy changes and reads, on the caller's devices."),
        (name = "phone", description = "What the phone calls: hello at setup, then signed check-ins."),
        (name = "public", description = "Without an account: the IMEI check, and opening and following an appeal. Rate limited per client address."),
        (name = "appeals", description = "Borrowers' appeals, for the device's financier (who answers) and support (who sees all)."),
        (name = "providers", description = "Payment providers' callbacks (M-Pesa C2B through Daraja, authenticated by the token in their path; any other provider's payments signed per Standard Webhooks), the financier's endpoints and providers, the payments that matched no device, and the reconciliation of a provider's statement."),
        (name = "webhooks", description = "The financier's webhook endpoints (Standard Webhooks): events out, signed, retried for about three days, with a delivery log and redelivery."),
        (name = "people", description = "Inviting people to the console (`/console`), where they sign in with an e-mail address and a password."),
        (name = "operations", description = "Liveness, readiness, metrics and this document."),
    )
)]
pub struct ApiDoc;

/// Adds the `api_key` scheme the financier endpoints require: `Authorization: Bearer <API key>`.
struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key, `lien_` and 43 characters, shown once when it is created.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The `metrics_token` of the server's settings."))
                    .build(),
            ),
        );
    }
}

/// Adds the answers the server's edge gives on every route (see `app` and `no_nul`), so that
/// each operation lists them without each handler repeating them: 408 for a request too slow
/// to arrive, 503 when every connection is taken, 413 where there is a body, 400 for a body that
/// is not JSON or a NUL in the path, and 422 for a refused field (a NUL in a query parameter or a
/// JSON body, a value out of bounds); and, where an API key is
/// required, 401 and 403 (a handler states its own where it has more to say).
struct EdgeResponses;

impl Modify for EdgeResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{RefOr, Response, ResponseBuilder};
        let error = |description: &str| -> RefOr<Response> {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        utoipa::openapi::ContentBuilder::new()
                            .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let answers = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    answers
                        .entry(status.to_string())
                        .or_insert_with(|| error(description));
                };
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add("401", "No API key, or an unknown, revoked or expired one.");
                    add("403", "The role may not do this.");
                }
                add(
                    "408",
                    "The request did not arrive within `request_timeout_secs`; the connection is closed.",
                );
                add(
                    "503",
                    "Every connection the server takes (`max_connections`) is open; try again shortly.",
                );
                let json_body = operation
                    .request_body
                    .as_ref()
                    .is_some_and(|b| b.content.contains_key("application/json"));
                let parameters = operation.parameters.as_deref().unwrap_or_default();
                let path_parameters = parameters
                    .iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Path));
                match (json_body, path_parameters) {
                    (true, true) => add(
                        "400",
                        "The body is not JSON, or a path segment holds a NUL character.",
                    ),
                    (true, false) => add("400", "The body is not JSON."),
                    (false, true) => add("400", "A path segment holds a NUL character."),
                    (false, false) => {}
                }
                let has_body = operation.request_body.is_some();
                if has_body {
                    add(
                        "413",
                        "The body is larger than this endpoint accepts (64 KiB for JSON unless stated).",
                    );
                }
                if has_body
                    || parameters
                        .iter()
                        .any(|p| matches!(p.parameter_in, ParameterIn::Query))
                {
                    add(
                        "422",
                        "A field is refused (a NUL character, a value out of bounds); the message names it.",
                    );
                }
            }
        }
    }
}

/// Adds what every route shares, once the routes have added their paths: the security
/// schemes and the answers of the server's edge.
pub fn complete(mut document: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    ApiKeyAuth.modify(&mut document);
    EdgeResponses.modify(&mut document);
    document
}

/// The document as pretty JSON.
fn to_json(document: &utoipa::openapi::OpenApi) -> String {
    document.to_pretty_json().expect("the document serializes")
}

/// The document `/openapi.json` serves: that of the router serving it, made into JSON once,
/// when the router is built (see `routes::router`), and shared by every request.
#[derive(Clone)]
pub struct Document(Bytes);

impl Document {
    /// The JSON text of `document`.
    pub fn new(document: &utoipa::openapi::OpenApi) -> Document {
        Document(Bytes::from(to_json(document)))
    }
}

impl IntoResponse for Document {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

/// The document of the JSON API (`routes::api`), as pretty JSON: what `/openapi.json` serves.
/// No setting changes it.
pub fn document() -> String {
    to_json(&crate::routes::api(&crate::config::Settings::default()).1)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::extract::{MatchedPath, Request};
    use axum::http::StatusCode;
    use axum::middleware::{self, Next};
    use tower::ServiceExt as _;

    use super::*;
    use crate::app::AppState;
    use crate::clock::SystemClock;
    use crate::config::Settings;
    use crate::secrets::Secrets;

    /// The committed copy, at the crate root.
    const COMMITTED: &str = include_str!("../openapi.json");

    /// Set to write the generated document over the committed copy instead of comparing.
    const WRITE_VAR: &str = "LIEN_WRITE_OPENAPI";

    #[test]
    fn committed_openapi_json_matches_the_code() {
        // The committed file ends with a newline, as editors and `git diff` expect.
        let generated = format!("{}\n", document());
        if std::env::var_os(WRITE_VAR).is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
            std::fs::write(path, &generated).expect("writing openapi.json");
            return;
        }
        assert!(
            generated == COMMITTED,
            "crates/lien-server/openapi.json is out of date with the handlers' annotations.\n\
             Regenerate it with `{WRITE_VAR}=1 cargo test -p lien-server --lib openapi`, \
             review the diff and commit it."
        );
    }

    /// What `note_matched_path` puts on a response: the route the request matched.
    #[derive(Clone)]
    struct Matched(String);

    async fn note_matched_path(request: Request, next: Next) -> Response {
        let matched = request
            .extensions()
            .get::<MatchedPath>()
            .map(|path| Matched(path.as_str().to_owned()));
        let mut response = next.run(request).await;
        if let Some(matched) = matched {
            response.extensions_mut().insert(matched);
        }
        response
    }

    /// The server's routes (`routes::router`, which `app::router` wraps in its middleware), each
    /// response noting the route the request matched.
    async fn served_router(dir: &std::path::Path) -> axum::Router {
        let settings = Settings {
            data_dir: dir.to_path_buf(),
            ..Settings::default()
        };
        let store = crate::open_store(&settings).await.unwrap();
        let secrets = Secrets::load_or_create(dir).unwrap();
        let state = AppState::new(store, Arc::new(SystemClock), secrets, settings.clone());
        crate::routes::router(&settings)
            .layer(middleware::from_fn(note_matched_path))
            .with_state(state)
    }

    /// The document the server serves lists exactly what that server serves: each of its
    /// operations reaches its route with its method (the handler may then refuse the request,
    /// as it does here without a key or body, but never with the router's 404 or 405), and every
    /// other method on a documented path is answered 405. Both come from `routes::api`, one
    /// `routes!` per handler, so this holds by construction; the test keeps it so, and
    /// `routes_are_added_only_through_the_routes_macro` keeps routes on undocumented paths out.
    #[tokio::test]
    async fn the_served_document_lists_exactly_the_served_operations() {
        let dir = tempfile::tempdir().unwrap();
        let app = served_router(dir.path()).await;
        let send = |method: &str, uri: &str| {
            let request = Request::builder()
                .method(method)
                .uri(uri)
                .body(Body::empty())
                .unwrap();
            app.clone().oneshot(request)
        };

        let response = send("GET", "/openapi.json").await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let served = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&served).unwrap(),
            document(),
            "/openapi.json serves the document of `routes::api`, whatever the settings"
        );

        let served: serde_json::Value = serde_json::from_slice(&served).unwrap();
        let paths = served["paths"].as_object().unwrap();
        let mut operations = 0;
        for (template, item) in paths {
            // Each path parameter given a value no route spells literally.
            let uri = template
                .split('/')
                .map(|part| if part.starts_with('{') { "p1" } else { part })
                .collect::<Vec<_>>()
                .join("/");
            for method in ["get", "post", "put", "delete", "patch"] {
                let response = send(&method.to_uppercase(), &uri).await.unwrap();
                let status = response.status();
                if item.get(method).is_none() {
                    assert_eq!(
                        status,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {template} is served but not documented"
                    );
                    continue;
                }
                operations += 1;
                let matched = response.extensions().get::<Matched>().map(|m| m.0.as_str());
                assert_eq!(
                    matched,
                    Some(template.as_str()),
                    "{method} {uri}, documented as {template}, reached another route"
                );
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {template} is documented but not served"
                );
            }
        }
        // The financier API, the phone's, the public and the operations endpoints: 37 today.
        assert!(
            operations > 30,
            "too few documented operations: {operations}"
        );
    }

    /// `routes::api` and `routes::router` add no route behind the document's back: no route
    /// is added but through `routes!`, and the only routers merged in are the HTML ones (the
    /// borrower's pages and the console), which are not part of the JSON API.
    #[test]
    fn routes_are_added_only_through_the_routes_macro() {
        let source = include_str!("routes/mod.rs");
        for function in ["pub fn api(", "pub fn router("] {
            let start = source
                .find(function)
                .expect("routes/mod.rs has the function");
            let body = &source[start..];
            let body = &body[..body.find("\n}\n").expect("the function ends")];
            for call in [
                ".route(",
                ".route_service(",
                ".nest(",
                ".nest_service(",
                ".fallback",
            ] {
                assert!(
                    !body.contains(call),
                    "`{function}..)` calls `{call}`: declare the route with \
                     `.routes(routes!(handler))` in `routes::api`, so that it is documented"
                );
            }
            let merges: Vec<_> = body.match_indices(".merge(").collect();
            let html = body.matches(".merge(crate::pages::router(").count()
                + body.matches(".merge(crate::console::router(").count();
            assert_eq!(
                merges.len(),
                html,
                "`{function}..)` merges a router other than the pages' and the console's"
            );
        }
    }

    #[test]
    fn financier_endpoints_require_the_api_key_and_the_phone_endpoints_do_not() {
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        assert_eq!(
            doc["components"]["securitySchemes"]["api_key"]["scheme"],
            "bearer"
        );
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let secured = operation["security"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r.get("api_key").is_some()));
                assert_eq!(
                    secured,
                    path.starts_with("/v1/")
                        && !path.starts_with("/v1/device/")
                        && !path.starts_with("/v1/public/")
                        // Authenticated by the token in the path: the provider has no API key.
                        && !path.starts_with("/v1/providers/"),
                    "{method} {path}: the api_key requirement is wrong"
                );
            }
        }
    }
}
