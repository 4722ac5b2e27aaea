//! The public routes: the IMEI check (its rule in `commands::imei_check`), answered for any
//! caller within the per-address rate limit that [`PublicClient`] keys.

use std::net::IpAddr;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::client_addr::client_ip;
use crate::commands::imei_check::{ImeiCheck, check_imei};
use crate::error::{ApiError, ErrorBody};
use crate::rate_limit::{ClientKey, Limited};

/// The caller of a public endpoint, by IP address (behind a trusted proxy, the one it
/// forwards; see [`crate::client_addr`]), for the rate limit.
#[derive(Debug, Clone, Copy)]
pub struct PublicClient(pub IpAddr);

impl PublicClient {
    /// Whom the limits count: the address, or its IPv6 /64.
    pub fn key(&self) -> ClientKey {
        ClientKey::from(self.0)
    }

    /// Takes one request from the client's allowance.
    pub fn check(&self, state: &AppState) -> Result<(), Limited> {
        state.public_limit.check(self.key())
    }
}

impl FromRequestParts<AppState> for PublicClient {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<PublicClient, Self::Rejection> {
        Ok(PublicClient(client_ip(
            &parts.extensions,
            &parts.headers,
            &state.settings.trusted_proxies,
        )))
    }
}

/// Whether a phone is financed: clear, financed in good standing, locked, released or unknown.
#[utoipa::path(
    get,
    path = "/v1/public/imei/{imei}",
    tag = "public",
    params(("imei" = String, Path, description = "The 15-digit IMEI (dial *#06#).")),
    responses(
        (status = 200, description = "The answer; an invalid IMEI is `unknown`.", body = ImeiCheck),
        (status = 429, description = "Too many requests from this address; see Retry-After.", body = ErrorBody),
    )
)]
pub async fn imei(
    State(state): State<AppState>,
    client: PublicClient,
    Path(imei): Path<String>,
) -> Result<Response, ApiError> {
    if let Err(limited) = client.check(&state) {
        return Ok(limited.into_response());
    }
    Ok(axum::Json(check_imei(&state, &imei).await?).into_response())
}
