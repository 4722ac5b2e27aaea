//! The OpenAPI document, generated from the handlers' annotations and the wire types.
//! A copy is committed as `openapi.json` at the crate root; a test fails when they differ.
//!
//! To regenerate the copy after changing the API:
//! `LIEN_WRITE_OPENAPI=1 cargo test -p lien-server --lib openapi`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{admin, appeals, devices, ops, phone, public, push};

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lien",
        description = "Financier API and device endpoints of Lien."
    ),
    paths(
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi,
        admin::create_financier,
        admin::list_financiers,
        admin::create_api_key,
        admin::create_platform_key,
        admin::list_keys,
        admin::list_financier_keys,
        admin::revoke_key,
        devices::enroll,
        devices::list,
        devices::bulk_enroll,
        devices::status,
        devices::history,
        devices::record_payment,
        devices::reverse_payment,
        devices::lock,
        devices::unlock,
        devices::reminder,
        devices::release,
        devices::cancel_release,
        devices::offline_unlock,
        devices::change_policy,
        devices::status_code,
        phone::hello_challenge,
        phone::hello,
        phone::checkin,
        push::push,
        public::imei,
        appeals::open,
        appeals::follow,
        appeals::list,
        appeals::get_one,
        appeals::attachment,
        appeals::decide,
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
        public::ImeiCheck,
        public::PublicFinancier,
        appeals::AppealFormDoc,
        appeals::AppealOpened,
        appeals::AppealPublicView,
        appeals::AppealView,
        appeals::AttachmentView,
        appeals::AppealDecision,
    )),
    modifiers(&ApiKeyAuth, &EdgeResponses),
    tags(
        (name = "financiers", description = "Financiers and their API keys, and the platform's own keys."),
        (name = "devices", description = "Enrollment, payments, locks, release, policy changes and reads, on the caller's devices."),
        (name = "phone", description = "What the phone calls: hello at setup, then signed check-ins."),
        (name = "public", description = "Without an account: the IMEI check, and opening and following an appeal. Rate limited per client address."),
        (name = "appeals", description = "Borrowers' appeals, for the device's financier (who answers) and support (who sees all)."),
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
/// to arrive, 503 when every connection is taken, 413 where there is a body, 400 for a NUL in
/// the path, and 422 for one in a query parameter or a JSON body.
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
                add(
                    "408",
                    "The request did not arrive within `request_timeout_secs`; the connection is closed.",
                );
                add(
                    "503",
                    "Every connection the server takes (`max_connections`) is open; try again shortly.",
                );
                let parameters = operation.parameters.as_deref().unwrap_or_default();
                if parameters
                    .iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Path))
                {
                    add("400", "A path segment holds a NUL character.");
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

/// The document as pretty JSON.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the document serializes")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

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

    /// The `(method, path)` pairs of `router()`, read from its source: every `.route(PATH,
    /// get(..).post(..))` call, with the methods its method router chains.
    fn routed_operations() -> BTreeSet<(String, String)> {
        let source = include_str!("routes/mod.rs");
        let start = source
            .find("pub fn router(")
            .expect("routes/mod.rs has router()");
        let body = &source[start..];
        let body = &body[..body.find("\n}\n").expect("router() ends")];
        let mut operations = BTreeSet::new();
        for call in body.split(".route(").skip(1) {
            let mut parts = call.splitn(3, '"');
            let path = parts
                .nth(1)
                .expect("each .route( starts with its path literal");
            // The method router follows the path; a method's name inside the path is no method.
            let call = parts.next().unwrap_or_default();
            let methods = ["get", "post", "put", "patch", "delete", "head", "options"];
            let mut found = 0;
            for token in call.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
                if methods.contains(&token) {
                    operations.insert((token.to_string(), path.to_string()));
                    found += 1;
                }
            }
            assert!(found > 0, "no method found for route {path:?}");
        }
        assert!(
            operations.len() > 20,
            "parsed too few routes from routes/mod.rs: {operations:?}"
        );
        operations
    }

    fn documented_operations() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value =
            serde_json::from_str(&document()).expect("the document is JSON");
        let paths = doc["paths"].as_object().expect("the document has paths");
        paths
            .iter()
            .flat_map(|(path, item)| {
                let item = item.as_object().expect("a path item is an object");
                item.keys()
                    .filter(|k| {
                        ["get", "post", "put", "patch", "delete", "head", "options"]
                            .contains(&k.as_str())
                    })
                    .map(|method| (method.clone(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_every_documented_operation_is_routed() {
        let routed = routed_operations();
        let documented = documented_operations();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "routes without an OpenAPI operation: {undocumented:?}. Annotate each handler with \
             #[utoipa::path(...)] and add it to `paths(...)` in openapi.rs"
        );
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            unrouted.is_empty(),
            "documented operations the router does not serve: {unrouted:?}"
        );
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
                        && !path.starts_with("/v1/public/"),
                    "{method} {path}: the api_key requirement is wrong"
                );
            }
        }
    }
}
