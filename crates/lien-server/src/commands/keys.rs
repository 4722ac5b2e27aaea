//! API keys: issuing one for a financier or for the platform, listing the keys an actor
//! manages, and revoking one. The API's key routes and the console's settings both call these.
//!
//! A financier's key (financier-admin or financier-agent) is issued by whoever manages that
//! financier's keys; a platform key (support or platform-admin) sees every financier, so only a
//! platform admin issues one. Another financier's key, or a platform key for a financier's
//! admin, is "not found", exactly like a key that does not exist.

use lien_store::StoreError;

use crate::api_keys;
use crate::app::AppState;
use crate::auth::{Action, Actor, Role};
use crate::error::ApiError;
use crate::input::required_text;
use crate::wire::{ApiKeyCreated, ApiKeyView};

/// Issues a key with `role` for `financier_id` (`None`: a platform key), labelled, expiring at
/// `expires_at` (RFC 3339) if given. Shown once, in the answer.
pub async fn issue(
    state: &AppState,
    actor: &Actor,
    financier_id: Option<String>,
    role: Role,
    label: &str,
    expires_at: Option<&str>,
) -> Result<ApiKeyCreated, ApiError> {
    actor.require(Action::ManageKeys)?;
    match &financier_id {
        Some(financier) => {
            // Another financier's id is "not found" whatever the request says.
            crate::commands::visible_financier(state, actor, financier).await?;
            if !role.is_financier_role() {
                return Err(ApiError::invalid(
                    "role",
                    "a financier's key is financier-admin or financier-agent",
                ));
            }
        }
        None => {
            actor.require(Action::ManagePlatformKeys)?;
            if role.is_financier_role() {
                return Err(ApiError::invalid(
                    "role",
                    "a platform key is support or platform-admin; create a financier's key \
                     with POST /v1/financiers/{id}/api-keys",
                ));
            }
        }
    }
    let label = required_text("label", label, 80)?;
    let now = state.clock.now();
    let expires_us = api_keys::parse_expiry(expires_at, now)?;
    api_keys::issue(
        state.store.as_ref(),
        now,
        &actor.key_id,
        role,
        financier_id,
        label,
        expires_us,
    )
    .await
}

/// The keys of `financier_id`, or the platform's for `None`, oldest first, if the actor
/// manages them.
pub async fn list(
    state: &AppState,
    actor: &Actor,
    financier_id: Option<String>,
) -> Result<Vec<ApiKeyView>, ApiError> {
    actor.require(Action::ManageKeys)?;
    match &financier_id {
        Some(id) => {
            crate::commands::visible_financier(state, actor, id).await?;
        }
        None => actor.require(Action::ManagePlatformKeys)?,
    }
    let now = state.clock.now();
    let keys = state.store.api_keys(financier_id.as_deref()).await?;
    keys.iter().map(|k| api_keys::view(k, now)).collect()
}

/// Revokes the key with public id `id`: it stops working at once, on every server.
pub async fn revoke(state: &AppState, actor: &Actor, id: &str) -> Result<ApiKeyView, ApiError> {
    actor.require(Action::ManageKeys)?;
    let key = match state.store.api_key(id).await {
        Ok(key) => key,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("API key")),
        Err(err) => return Err(err.into()),
    };
    let manages = match &key.financier_id {
        Some(financier) => actor.sees_financier(financier),
        None => actor.role.may(Action::ManagePlatformKeys),
    };
    if !manages {
        return Err(ApiError::NotFound("API key"));
    }
    let now = state.clock.now();
    let revoked = api_keys::revoke(state.store.as_ref(), now, &actor.key_id, &key).await?;
    api_keys::view(&revoked, now)
}
