//! A financier's webhook endpoints as its people and keys read them: the endpoints, and each
//! one's delivery log. (Making, changing and rotating them are the API's, in
//! `routes::webhooks`.) Only a financier's own keys and people manage webhooks: the platform's
//! roles have no endpoints of their own.

use lien_store::{DeliveryRecord, WebhookEndpointRecord};

use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::error::ApiError;

/// The financier a caller manages webhooks for: only a financier's own keys do.
pub fn own_financier(actor: &Actor) -> Result<&str, ApiError> {
    actor.financier_id.as_deref().ok_or_else(|| {
        ApiError::Forbidden("webhook endpoints are managed with a financier's API key".into())
    })
}

/// The caller's endpoint `id`; another financier's is not found.
pub async fn own_endpoint(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<WebhookEndpointRecord, ApiError> {
    let financier = own_financier(actor)?;
    match state.store.webhook_endpoint(id).await {
        Ok(e) if e.financier_id == financier => Ok(e),
        Ok(_) | Err(lien_store::StoreError::NotFound) => {
            Err(ApiError::NotFound("webhook endpoint"))
        }
        Err(e) => Err(e.into()),
    }
}

/// The actor's financier's endpoints.
pub async fn list(state: &AppState, actor: &Actor) -> Result<Vec<WebhookEndpointRecord>, ApiError> {
    actor.require(Action::Read)?;
    let financier = own_financier(actor)?;
    Ok(state.store.webhook_endpoints(financier).await?)
}

/// The endpoint's latest deliveries, newest first, at most `limit`.
pub async fn deliveries(
    state: &AppState,
    actor: &Actor,
    id: &str,
    limit: u32,
) -> Result<(WebhookEndpointRecord, Vec<DeliveryRecord>), ApiError> {
    actor.require(Action::Read)?;
    let endpoint = own_endpoint(state, actor, id).await?;
    let log = state.store.webhook_deliveries(&endpoint.id, limit).await?;
    Ok((endpoint, log))
}
