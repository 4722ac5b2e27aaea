//! No text Lien stores may hold a NUL character: PostgreSQL's text cannot, SQLite's can, and the
//! two backends must answer alike. So a NUL is refused at the edge, before any handler runs,
//! with an error that names the field: in the path, in a query parameter, in a JSON body, in a
//! URL-encoded form (the console's and the borrower's pages).
//!
//! Multipart forms and CSV files (whose bodies are larger) check their own fields (see `routes::appeals::read_form` and the bulk
//! enrollment), and the phone's endpoints check their few text fields themselves, so that the
//! check-in path does not read its body twice.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode;

use crate::error::ApiError;

/// The problem every refusal states.
pub const NUL_PROBLEM: &str = "contains a NUL character (\\u0000), which Lien does not store";

/// Refuses a request whose path, query or JSON body holds a NUL character.
pub async fn refuse_nul(request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/v1/device/") {
        return next.run(request).await;
    }
    if let Err(refused) = check_uri(request.uri()) {
        return refused.into_response();
    }
    // Every body but a form or a CSV is looked at, whatever its declared type: some handlers
    // parse JSON from any body, and axum's own extractor takes `Application/JSON` or
    // `application/x+json` as well. A body that is not JSON passes as it came.
    let has_own_checks = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.starts_with("multipart/") || v.starts_with("text/csv")
        });
    if has_own_checks || request.uri().path() == "/v1/devices/bulk" {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // The JSON API's limit: a larger body would be refused by the handler anyway.
    let bytes = match to_bytes(body, crate::routes::MAX_API_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(e) => {
            return ApiError::from_body_error(&e)
                .unwrap_or_else(|| {
                    ApiError::TooLarge("the body is larger than this endpoint accepts".into())
                })
                .into_response();
        }
    };
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    // Looked at as JSON whatever it is labelled (a JSON body sent as a form must not pass), and
    // as a form too when it says it is one.
    let with_nul = json_field_with_nul(&bytes)
        .or_else(|| is_form.then(|| form_field_with_nul(&bytes)).flatten());
    if let Some(field) = with_nul {
        return ApiError::invalid(&field, NUL_PROBLEM).into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A NUL in the path (`%00`) or in a query parameter, named.
fn check_uri(uri: &axum::http::Uri) -> Result<(), ApiError> {
    // `%00` is the only way a NUL can be in a URI: raw control characters are refused by the
    // HTTP parser, and `%00` always decodes to NUL.
    if uri.path().contains("%00") {
        return Err(ApiError::BadRequest(format!("the path {NUL_PROBLEM}")));
    }
    if let Some(name) = uri
        .query()
        .and_then(|query| form_field_with_nul(query.as_bytes()))
    {
        return Err(ApiError::invalid(&name, NUL_PROBLEM));
    }
    Ok(())
}

/// The name of the first field of URL-encoded `pairs` (a query, or a form's body) whose name or
/// value holds a NUL, written `%00` or sent as a raw byte; `None` if none does.
fn form_field_with_nul(pairs: &[u8]) -> Option<String> {
    pairs.split(|&b| b == b'&').find_map(|pair| {
        percent_decode(pair).any(|b| b == 0).then(|| {
            let name = pair.split(|&b| b == b'=').next().unwrap_or(pair);
            let name: Vec<u8> = percent_decode(name).filter(|&b| b != 0).collect();
            String::from_utf8_lossy(&name).replace('+', " ")
        })
    })
}

/// The dotted path of the first string (or object key) in `body` that holds a NUL; `None` if
/// there is none. A body that spells a NUL but does not read as JSON is named `body`: a typed
/// reader skips the fields it does not know without reading them whole, so an unreadable field
/// beside a NUL must not let the NUL through.
pub fn json_field_with_nul(body: &[u8]) -> Option<String> {
    // The only spelling of NUL in JSON text; the common case costs one scan.
    if !body.windows(6).any(|w| w == b"\\u0000") {
        return None;
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => find(&value, String::new()),
        Err(_) => Some("body".to_string()),
    }
}

/// Reads `body` as JSON of type `T`, whatever it is labelled, refusing a NUL first. The edge
/// leaves bodies labelled multipart or CSV to their handlers; a handler that reads JSON from
/// any body reads it through here.
pub fn json_without_nul<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if let Some(field) = json_field_with_nul(body) {
        return Err(ApiError::invalid(&field, NUL_PROBLEM));
    }
    let axum::Json(value) = axum::Json::<T>::from_bytes(body)?;
    Ok(value)
}

fn find(value: &serde_json::Value, at: String) -> Option<String> {
    let here = |at: String| {
        if at.is_empty() {
            "body".to_string()
        } else {
            at
        }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(here(at)),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find(item, format!("{}[{i}]", here(at.clone())))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(name, item)| {
            let path = if at.is_empty() {
                name.clone()
            } else {
                format!("{at}.{name}")
            };
            if name.contains('\0') {
                Some(path.replace('\0', ""))
            } else {
                find(item, path)
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_holding_a_nul_is_named() {
        let at = |s: &str| json_field_with_nul(s.as_bytes());
        assert_eq!(at(r#"{"name":"a\u0000b"}"#).as_deref(), Some("name"));
        assert_eq!(
            at(r#"{"plan":{"installments":[{"due":"x"},{"due":"\u0000"}]}}"#).as_deref(),
            Some("plan.installments[1].due")
        );
        assert_eq!(at(r#"{"a\u0000":1}"#).as_deref(), Some("a"));
        assert_eq!(at(r#"{"name":"fine"}"#), None);
        // An escaped backslash followed by `u0000` is six ordinary characters, not a NUL.
        assert_eq!(at(r#"{"name":"\\u0000"}"#), None);
        assert_eq!(
            at(r#"{"name":"a\u0000","other":1e400}"#).as_deref(),
            Some("body"),
            "a NUL beside a field only a typed reader would skip"
        );
        assert_eq!(at("not json"), None);
    }

    #[test]
    fn a_nul_in_a_form_field_is_named() {
        let at = |s: &[u8]| form_field_with_nul(s);
        assert_eq!(at(b"csrf=x&message=a%00b").as_deref(), Some("message"));
        assert_eq!(at(b"csrf=x&note=a\0b").as_deref(), Some("note"));
        assert_eq!(at(b"csrf=x&ab%00c=1").as_deref(), Some("abc"));
        assert_eq!(
            at(b"csrf=x&message=a+b%2500"),
            None,
            "an escaped percent sign"
        );
        assert_eq!(at(b""), None);
    }

    #[test]
    fn a_nul_in_a_query_parameter_is_named() {
        let uri: axum::http::Uri = "/v1/devices?limit=5&cursor=ab%00c".parse().unwrap();
        let err = check_uri(&uri).unwrap_err();
        assert!(
            err.to_string().starts_with("cursor: contains a NUL"),
            "{err}"
        );
        let uri: axum::http::Uri = "/v1/devices/dev%00x".parse().unwrap();
        assert!(check_uri(&uri).is_err());
        let uri: axum::http::Uri = "/v1/devices?cursor=%2500".parse().unwrap();
        assert!(
            check_uri(&uri).is_ok(),
            "an escaped percent sign is not a NUL"
        );
    }
}
