//! The public IMEI check: whether a phone is financed, for a buyer, a repair shop or a carrier.
//!
//! It says one of five things and nothing personal: no amounts, no contract reference, no
//! device id. For a financed phone it names the financier and its public contact, so the buyer
//! knows whom to ask.
//!
//! - `clear`: the IMEI is valid and no financier on Lien holds a claim on it (never financed
//!   here, or released more than [`RELEASE_SHOWN_DAYS`] days ago);
//! - `financed_good_standing`: a financier holds a claim and the phone is not restricted
//!   (including a phone enrolled but not yet switched on, and one with a payment reminder);
//! - `locked`: a financier holds a claim and the phone is restricted or locked;
//! - `released`: the financier's claim ended (paid off or released) on the date given, within
//!   the last [`RELEASE_SHOWN_DAYS`] days;
//! - `unknown`: this is not a valid IMEI (wrong length or check digit), so Lien cannot say.
//!
//! Every answer costs one request of the client's rate limit; IMEIs are enumerable.

use std::net::IpAddr;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use lien_core::Imei;
use lien_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::client_addr::client_ip;
use crate::clock::{from_micros, micros};
use crate::error::{ApiError, ErrorBody};
use crate::rate_limit::{ClientKey, Limited};
use crate::wire::DeviceStateJson;

/// A released phone is shown as released for this long, then as clear.
pub const RELEASE_SHOWN_DAYS: i64 = 365;

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

/// The financier as the public may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PublicFinancier {
    /// Public name.
    pub name: String,
    /// Public contact.
    pub contact: String,
}

/// What the IMEI check says of a phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImeiStatus {
    /// No financier on Lien holds a claim on it.
    Clear,
    /// A financier holds a claim and the phone is not restricted.
    FinancedGoodStanding,
    /// A financier holds a claim and the phone is restricted or locked.
    Locked,
    /// The financier's claim ended recently.
    Released,
    /// Not a valid IMEI.
    Unknown,
}

impl ImeiStatus {
    /// The status's name, as in the JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            ImeiStatus::Clear => "clear",
            ImeiStatus::FinancedGoodStanding => "financed_good_standing",
            ImeiStatus::Locked => "locked",
            ImeiStatus::Released => "released",
            ImeiStatus::Unknown => "unknown",
        }
    }
}

/// The answer of the IMEI check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImeiCheck {
    /// The IMEI as asked.
    pub imei: String,
    /// `clear`, `financed_good_standing`, `locked`, `released` or `unknown`.
    pub status: ImeiStatus,
    /// The answer in words.
    pub message: String,
    /// For `released`: the date the claim ended (YYYY-MM-DD, UTC).
    pub released_on: Option<String>,
    /// For a financed phone: whom to ask.
    pub financier: Option<PublicFinancier>,
    /// The platform's support.
    pub support_contact: String,
}

/// Checks an IMEI.
pub async fn check_imei(state: &AppState, text: &str) -> Result<ImeiCheck, ApiError> {
    let text = text.trim();
    let mut answer = ImeiCheck {
        imei: text.chars().take(20).collect(),
        status: ImeiStatus::Unknown,
        message: String::new(),
        released_on: None,
        financier: None,
        support_contact: state.settings.support_contact.clone(),
    };
    let imei = match Imei::parse(text) {
        Ok(imei) => imei,
        Err(e) => {
            answer.status = ImeiStatus::Unknown;
            answer.message = format!(
                "This is not a valid IMEI ({e}), so Lien cannot say. Dial *#06# on the phone to see its IMEI."
            );
            return Ok(answer);
        }
    };
    answer.imei = imei.as_str().to_string();
    match state.store.device_by_imei(imei.as_str()).await {
        Ok(device) => {
            let financier = state.store.financier(&device.enrolled.financier_id).await?;
            let device_state: DeviceStateJson = device
                .decision
                .state
                .parse()
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored decision: {e}")))?;
            if device_state == DeviceStateJson::Released {
                let at = device.released_us.unwrap_or(micros(state.clock.now()));
                answer.status = ImeiStatus::Released;
                answer.released_on = Some(date(at));
                answer.message = "The financier's claim on this phone has ended.".into();
            } else if device_state.is_restricted() {
                answer.status = ImeiStatus::Locked;
                answer.message = format!(
                    "This phone is financed and currently restricted or locked by {}. Ask them before buying or repairing it.",
                    financier.name
                );
            } else {
                answer.status = ImeiStatus::FinancedGoodStanding;
                answer.message = format!(
                    "This phone is financed by {} and in good standing. Their claim on it remains until it is paid off.",
                    financier.name
                );
            }
            answer.financier = Some(PublicFinancier {
                name: financier.name,
                contact: financier.contact,
            });
        }
        Err(StoreError::NotFound) => {
            let now_us = micros(state.clock.now());
            match state.store.last_release(imei.as_str()).await? {
                Some(at) if now_us - at < RELEASE_SHOWN_DAYS * 86_400_000_000 => {
                    answer.status = ImeiStatus::Released;
                    answer.released_on = Some(date(at));
                    answer.message =
                        "This phone was financed; the financier's claim on it has ended.".into();
                }
                _ => {
                    answer.status = ImeiStatus::Clear;
                    answer.message = "No financier on Lien holds a claim on this phone.".into();
                }
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(answer)
}

fn date(us: i64) -> String {
    from_micros(us)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string()
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
