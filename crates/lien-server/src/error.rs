//! The one error type of the HTTP API, and how each variant is answered.
//!
//! Clients get a status and a JSON body `{"error": code, "message": text}` whose text names
//! the problem (the field, the IMEI, the header). A 5xx says nothing internal: the cause goes
//! to the log.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lien_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: bad JSON, a missing header.
    #[error("{0}")]
    BadRequest(String),
    /// A field has a value Lien refuses; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// No API key, or an unknown one, or a device signature that does not verify.
    #[error("{0}")]
    Unauthorized(String),
    /// The key is valid but its role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing, or not the caller's: the two are deliberately indistinguishable.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request clashes with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the route reads.
    #[error("{0}")]
    TooLarge(String),
    /// The client took too long to send its request.
    #[error("{0}")]
    Timeout(String),
    /// Too many requests of this kind for now; the client may try again after
    /// `retry_after_secs` (sent as `Retry-After`).
    #[error("{what}; try again in {retry_after_secs} seconds")]
    RateLimited {
        /// What was too much, e.g. "too many requests from your address".
        what: String,
        /// When to come back.
        retry_after_secs: u64,
    },
    /// This server cannot serve the request, though another might (an appeal document kept
    /// by the server that received it); the message says why, naming nothing internal.
    #[error("{0}")]
    Unavailable(String),
    /// Something broke on our side; the source is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `bad_request`, `invalid`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `too_large`, `timeout`, `rate_limited`, `busy`, `unavailable` or `internal`.
    pub error: String,
    /// What went wrong, naming the field or header; says nothing internal on a 5xx.
    pub message: String,
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Invalid(_) => "invalid",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge(_) => "too_large",
            ApiError::Timeout(_) => "timeout",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// Shorthand for a 422 that names `field`.
    pub fn invalid(field: &str, problem: impl std::fmt::Display) -> ApiError {
        ApiError::Invalid(format!("{field}: {problem}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(err) = &self {
            tracing::error!(error = format!("{err:#}"), "request failed");
        }
        let body = ErrorBody {
            error: self.code().to_string(),
            message: self.to_string(),
        };
        let mut response = (self.status(), Json(body)).into_response();
        self.tell_when(&mut response);
        response
    }
}

impl ApiError {
    /// Adds `Retry-After` to `response` when this error says when to come back (a page that
    /// shows the error answers with it too).
    pub fn tell_when(&self, response: &mut Response) {
        if let ApiError::RateLimited {
            retry_after_secs, ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
    }
}

/// The store's errors, mapped to the API's in this one place.
impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound => ApiError::NotFound("device"),
            StoreError::Conflict(what) => ApiError::Conflict(what),
            StoreError::IdempotencyConflict => {
                ApiError::Conflict("this Idempotency-Key is already used".into())
            }
            StoreError::VersionConflict { device_id } => ApiError::Conflict(format!(
                "device {device_id} was written while this change was decided; try again"
            )),
            // A closure's refusal comes back typed through `DevicesExt::update_device_with`;
            // one that reaches here is a change the server built and the store would not take.
            StoreError::Refused(inner) => ApiError::Internal(anyhow::anyhow!(inner)),
            unavailable @ StoreError::Unavailable(_) => {
                tracing::warn!(error = %anyhow::Error::new(unavailable), "database unavailable");
                ApiError::Unavailable(
                    "the database is unavailable; try again shortly (with the same \
                     Idempotency-Key, where the request has one)"
                        .into(),
                )
            }
            other @ (StoreError::UnsupportedUrl(_)
            | StoreError::InUse(_)
            | StoreError::Backend(_)) => ApiError::Internal(anyhow::Error::new(other)),
        }
    }
}

/// Rejections of axum's extractors (bad JSON, wrong types, bad query) become 400s or 422s
/// with serde's message, which names the field and what was expected.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
        use axum::extract::rejection::JsonRejection::*;
        match rejection {
            JsonDataError(e) => ApiError::Invalid(e.body_text()),
            JsonSyntaxError(e) => ApiError::BadRequest(e.body_text()),
            BytesRejection(e) => e.into(),
            MissingJsonContentType(e) => ApiError::BadRequest(e.body_text()),
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

/// A body that could not be read: over the route's limit (413), or cut off.
impl ApiError {
    /// A body that could not be read because it came too slowly (see `crate::deadline`): a 408
    /// with the deadline's own words; `None` for any other failure.
    pub fn from_body_error(error: &(dyn std::error::Error + 'static)) -> Option<ApiError> {
        let mut cause = Some(error);
        while let Some(err) = cause {
            let text = err.to_string();
            if let Some(at) = text.find(crate::deadline::BODY_TOO_SLOW) {
                return Some(ApiError::Timeout(text[at..].to_string()));
            }
            cause = err.source();
        }
        None
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
        if let Some(timeout) = ApiError::from_body_error(&rejection) {
            return timeout;
        }
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge("the body is larger than this endpoint accepts".into())
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
    }
}
