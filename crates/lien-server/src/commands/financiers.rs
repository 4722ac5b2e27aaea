//! A financier's public profile: the name, contact and payment link borrowers see on lock
//! screens and pages. Changed by its own admins (or a platform admin), audited in its chain.

use lien_store::{AuditEntry, Financier, StoreError};

use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::micros;
use crate::error::ApiError;
use crate::input::{new_id, payment_link, required_text};
use crate::wire::{FinancierView, NewFinancier};

/// The financier as the API and the console show it.
pub fn view(f: Financier) -> FinancierView {
    FinancierView {
        id: f.id,
        name: f.name,
        contact: f.contact,
        payment_link: f.payment_link,
    }
}

/// A financier's profile as typed, checked: a name of at most 80 characters, a contact of at
/// most 120, and a payment link that is an `https` URL if there is one.
pub fn checked(id: String, profile: &NewFinancier, created_us: i64) -> Result<Financier, ApiError> {
    Ok(Financier {
        id,
        name: required_text("name", &profile.name, 80)?,
        contact: required_text("contact", &profile.contact, 120)?,
        payment_link: profile
            .payment_link
            .as_deref()
            .filter(|l| !l.trim().is_empty())
            .map(payment_link)
            .transpose()?,
        created_us,
    })
}

/// Stores a new financier, audited `financier_created` in its chain: by `actor` (an API key's
/// id, or the tool that made it) for `reason`, with the profile as it was made.
pub async fn create(
    state: &AppState,
    financier: &Financier,
    actor: &str,
    reason: String,
) -> Result<(), ApiError> {
    let audit = AuditEntry {
        at_us: financier.created_us,
        actor: actor.to_string(),
        action: "financier_created".into(),
        reason,
        before_json: "null".into(),
        after_json: serde_json::to_string(&view(financier.clone()))
            .map_err(|e| ApiError::Internal(e.into()))?,
    };
    state.store.create_financier(financier, &audit).await?;
    Ok(())
}

/// A new financier made by a platform admin, from its profile as typed.
pub async fn create_new(
    state: &AppState,
    actor: &Actor,
    profile: &NewFinancier,
) -> Result<FinancierView, ApiError> {
    actor.require(Action::ManageFinanciers)?;
    let financier = checked(new_id("fin")?, profile, micros(state.clock.now()))?;
    let reason = format!("financier {} created", financier.id);
    create(state, &financier, &actor.key_id, reason).await?;
    Ok(view(financier))
}

/// The financiers the actor sees: every one for the platform's keys, its own for a
/// financier's.
pub async fn visible(state: &AppState, actor: &Actor) -> Result<Vec<FinancierView>, ApiError> {
    actor.require(Action::Read)?;
    let all = state.store.financiers().await?;
    Ok(all
        .into_iter()
        .filter(|f| actor.sees_financier(&f.id))
        .map(view)
        .collect())
}

/// Changes the financier's profile, as one of its admins or a platform admin. The phones show
/// the new one with their next token.
pub async fn update_profile(
    state: &AppState,
    actor: &Actor,
    id: &str,
    profile: &NewFinancier,
) -> Result<FinancierView, ApiError> {
    actor.require(Action::ManageKeys)?;
    let before = crate::commands::visible_financier(state, actor, id).await?;
    let after = checked(before.id.clone(), profile, before.created_us)?;
    let json = |f: &Financier| {
        serde_json::to_string(&view(f.clone())).map_err(|e| ApiError::Internal(e.into()))
    };
    let audit = AuditEntry {
        at_us: micros(state.clock.now()),
        actor: actor.key_id.clone(),
        action: "financier_updated".into(),
        reason: format!("financier {} profile changed", after.id),
        before_json: json(&before)?,
        after_json: json(&after)?,
    };
    match state.store.update_financier(&after, &audit).await {
        Err(StoreError::NotFound) => Err(ApiError::NotFound("financier")),
        other => other.map_err(ApiError::from),
    }?;
    Ok(view(after))
}
