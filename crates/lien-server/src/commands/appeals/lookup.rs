//! What a borrower reaches without an account: the financed device they mean (by IMEI, or by
//! the status code their lock screen shows) and an appeal by its reference. The appeal routes,
//! the borrower pages and the hardship request all look up through here.

use lien_core::Imei;
use lien_store::{AppealRecord, DeviceRecord, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::rules::{progress, superseded_cutoff_us};
use super::{AppealStatus, ClaimKind};
use crate::app::AppState;
use crate::clock::{from_micros, micros};
use crate::domain::rfc3339;
use crate::error::ApiError;

/// Finds the financed device an appeal or a page is about, from an IMEI or a lock-screen
/// status code. `field` names what the borrower typed, for the message.
pub async fn find_device(state: &AppState, query: &str) -> Result<DeviceRecord, ApiError> {
    let query: String = query.chars().filter(|c| !c.is_whitespace()).collect();
    if query.len() == 8 && query.bytes().all(|b| b.is_ascii_digit()) {
        // Every look-up by code counts, hit or miss: a refused one must tell nothing.
        state
            .code_lookup_limit
            .check(())
            .map_err(|limited| limited.error(super::rules::TOO_MANY_CODE_LOOKUPS))?;
        // Only codes a phone may still be showing match: an old token's code would otherwise
        // keep matching for ever, and a large fleet's old codes fill the code space.
        let mut ids: Vec<String> = state
            .store
            .recent_tokens_by_status_code(&query, superseded_cutoff_us(state))
            .await?
            .into_iter()
            .map(|m| m.device_id)
            .collect();
        ids.sort();
        ids.dedup();
        return match ids.as_slice() {
            [id] => Ok(state.store.device(id).await?),
            [] => Err(ApiError::NotFound("status code")),
            _ => Err(ApiError::invalid(
                "status_code",
                "this code matches more than one phone; enter the IMEI instead",
            )),
        };
    }
    let imei = Imei::parse(&query).map_err(|e| {
        ApiError::invalid(
            "imei",
            format!("{e}; enter the 15-digit IMEI (dial *#06#) or the 8-digit status code from the lock screen"),
        )
    })?;
    match state.store.device_by_imei(imei.as_str()).await {
        Ok(device) => Ok(device),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("financed device with this IMEI")),
        Err(e) => Err(e.into()),
    }
}

/// An appeal as the borrower sees it, by its reference: nothing the borrower did not send,
/// and no document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppealPublicView {
    /// The reference to follow it by.
    pub reference: String,
    /// What is claimed.
    pub claim: ClaimKind,
    /// Where it stands.
    pub status: AppealStatus,
    /// Where it stands, in words.
    pub progress: String,
    /// When it was opened (RFC 3339).
    pub opened_at: String,
    /// When the financier must answer.
    pub deadline: String,
    /// For a payment appeal: until when an unanswered appeal unlocks the phone.
    pub provisional_unlock_until: Option<String>,
    /// When it was answered.
    pub decided_at: Option<String>,
    /// The financier's reason.
    pub decision_reason: Option<String>,
    /// Who decides: the financier's public name.
    pub financier_name: String,
    /// How to reach the financier.
    pub financier_contact: String,
}

/// The borrower's view of an appeal.
pub async fn public_view(state: &AppState, reference: &str) -> Result<AppealPublicView, ApiError> {
    Ok(public_appeal(state, reference).await?.0)
}

/// An appeal as its reference shows it, with the record it was read from (the borrower
/// pages word its stage and times in the reader's language and zone).
pub async fn public_appeal(
    state: &AppState,
    reference: &str,
) -> Result<(AppealPublicView, AppealRecord), ApiError> {
    let reference = reference.trim().to_ascii_uppercase();
    if !plausible_reference(&reference) {
        return Err(ApiError::invalid(
            "reference",
            "an appeal reference looks like AP-XXXX-XXXX-XXXX-XXXX-XXXX",
        ));
    }
    let a = match state.store.appeal(&reference).await {
        Ok(a) => a,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("appeal")),
        Err(e) => return Err(e.into()),
    };
    let financier = state.store.financier(&a.financier_id).await?;
    let now_us = micros(state.clock.now());
    let at = |us: i64| rfc3339(from_micros(us));
    let view = AppealPublicView {
        reference: a.reference.clone(),
        claim: ClaimKind::stored(&a.claim)?,
        status: AppealStatus::stored(&a.status)?,
        progress: progress(&a, now_us),
        opened_at: at(a.opened_us),
        deadline: at(a.deadline_us),
        provisional_unlock_until: a.unlock_until_us.map(at),
        decided_at: a.decided_us.map(at),
        decision_reason: a.decision_reason.clone(),
        financier_name: financier.name,
        financier_contact: financier.contact,
    };
    Ok((view, a))
}

/// Whether `text` looks like an appeal reference (before any look-up).
pub fn plausible_reference(text: &str) -> bool {
    text.len() == 27
        && text.starts_with("AP-")
        && text[3..]
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_uppercase() || b.is_ascii_digit())
}
