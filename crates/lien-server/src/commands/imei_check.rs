//! The public IMEI check: whether a phone is financed, for a buyer, a repair shop or a carrier.
//! The route (`routes::public`) and the page both answer through [`check_imei`].
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
//! Every caller charges one request of the client's rate limit first: IMEIs are enumerable.

use lien_core::Imei;
use lien_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::clock::{from_micros, micros};
use crate::error::ApiError;
use crate::wire::DeviceStateJson;

/// A released phone is shown as released for this long, then as clear.
pub const RELEASE_SHOWN_DAYS: i64 = 365;

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
