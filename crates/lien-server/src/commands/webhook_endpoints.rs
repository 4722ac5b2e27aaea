//! A financier's webhook endpoints, for the API and the console alike: made (with a secret
//! shown once), changed, deleted, their secrets rotated, listed, and each one's delivery log.
//! Only a financier's own keys and people manage webhooks: the platform's roles have no
//! endpoints of their own. Making, changing, deleting and rotating are audited in the
//! financier's chain, in the transaction that does them.

use jiff::SignedDuration;
use lien_store::{AuditEntry, DeliveryRecord, WebhookEndpointRecord};

use crate::app::AppState;
use crate::auth::{Action, Actor};
use crate::clock::micros;
use crate::domain::rfc3339;
use crate::error::ApiError;
use crate::input::new_id;
use crate::webhooks::events::EventType;
use crate::webhooks::signature::new_secret;

/// The longest a rotated secret may keep signing beside the new one (30 days), whatever the
/// settings say.
const MAX_ROTATION_OVERLAP_HOURS: u32 = 720;

/// How many endpoints a financier may have.
const MAX_ENDPOINTS: usize = 20;

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

/// The actor's financier's endpoints, as the actor may read them (see [`shown_to`]): the path or
/// query of a URL often carries the receiver's own token.
pub async fn list(state: &AppState, actor: &Actor) -> Result<Vec<WebhookEndpointRecord>, ApiError> {
    actor.require(Action::Read)?;
    let financier = own_financier(actor)?;
    let endpoints = state.store.webhook_endpoints(financier).await?;
    Ok(endpoints.into_iter().map(|e| shown_to(actor, e)).collect())
}

/// The endpoint as `actor` may read it: whole for a role that manages the financier's secrets,
/// otherwise with only its URL's origin.
fn shown_to(actor: &Actor, mut endpoint: WebhookEndpointRecord) -> WebhookEndpointRecord {
    if !actor.role.may(Action::ManageKeys) {
        endpoint.url = url_origin(&endpoint.url);
    }
    endpoint
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
    Ok((shown_to(actor, endpoint), log))
}

/// The financier whose endpoints the caller may manage (make, change, delete, rotate): its
/// own, for a role that manages the financier's secrets.
pub fn managed_financier(actor: &Actor) -> Result<&str, ApiError> {
    actor.require(Action::ManageKeys)?;
    own_financier(actor)
}

/// The caller's endpoint `id`, if the caller may manage the financier's secrets.
pub async fn own_endpoint_to_manage(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<WebhookEndpointRecord, ApiError> {
    actor.require(Action::ManageKeys)?;
    own_endpoint(state, actor, id).await
}

/// Makes an endpoint for the actor's financier; the record returned carries the signing
/// secret, to be shown this once.
pub async fn create(
    state: &AppState,
    actor: &Actor,
    url: &str,
    types: &[EventType],
) -> Result<WebhookEndpointRecord, ApiError> {
    let financier = managed_financier(actor)?;
    let url = endpoint_url(state, url)?;
    let now_us = micros(state.clock.now());
    let record = WebhookEndpointRecord {
        id: new_id("whe")?,
        financier_id: financier.to_string(),
        url,
        event_types: event_types(types),
        secret: new_secret()?,
        previous_secret: None,
        previous_secret_until_us: None,
        created_us: now_us,
        disabled_us: None,
    };
    let audit = audit(
        actor,
        now_us,
        "webhook_endpoint_created",
        &record,
        "null".into(),
        described(&record),
    );
    // The cap is checked in the creating transaction, so concurrent creations cannot pass it
    // together.
    state
        .store
        .create_webhook_endpoint(&record, MAX_ENDPOINTS, &chain(financier), &audit)
        .await?;
    Ok(record)
}

/// Changes `endpoint`'s URL and event types (enabling it again if a 410 Gone had disabled it);
/// its secret stays.
pub async fn update(
    state: &AppState,
    actor: &Actor,
    endpoint: WebhookEndpointRecord,
    url: &str,
    types: &[EventType],
) -> Result<WebhookEndpointRecord, ApiError> {
    actor.require(Action::ManageKeys)?;
    let url = endpoint_url(state, url)?;
    let types = event_types(types);
    let now_us = micros(state.clock.now());
    let after = WebhookEndpointRecord {
        url: url.clone(),
        event_types: types.clone(),
        disabled_us: None,
        ..endpoint.clone()
    };
    let audit = audit(
        actor,
        now_us,
        "webhook_endpoint_updated",
        &endpoint,
        described(&endpoint),
        described(&after),
    );
    endpoint_changed(
        state
            .store
            .update_webhook_endpoint(
                &endpoint.id,
                &url,
                &types,
                &chain(&endpoint.financier_id),
                &audit,
            )
            .await,
    )
}

/// Deletes the actor's endpoint `id`: nothing more is sent there.
pub async fn delete(state: &AppState, actor: &Actor, id: &str) -> Result<(), ApiError> {
    let endpoint = own_endpoint_to_manage(state, actor, id).await?;
    let now_us = micros(state.clock.now());
    let audit = audit(
        actor,
        now_us,
        "webhook_endpoint_deleted",
        &endpoint,
        described(&endpoint),
        "null".into(),
    );
    endpoint_changed(
        state
            .store
            .delete_webhook_endpoint(&endpoint.id, now_us, &chain(&endpoint.financier_id), &audit)
            .await,
    )
}

/// Gives the actor's endpoint `id` a new secret; the old one keeps signing beside it for the
/// settings' overlap. The record returned carries the new secret, to be shown this once.
pub async fn rotate(
    state: &AppState,
    actor: &Actor,
    id: &str,
) -> Result<WebhookEndpointRecord, ApiError> {
    let endpoint = own_endpoint_to_manage(state, actor, id).await?;
    let now = state.clock.now();
    let overlap = state
        .settings
        .webhook_rotation_overlap_hours
        .clamp(1, MAX_ROTATION_OVERLAP_HOURS);
    let until = now + SignedDuration::from_hours(i64::from(overlap));
    let secret = new_secret()?;
    let audit = audit(
        actor,
        micros(now),
        "webhook_secret_rotated",
        &endpoint,
        described(&endpoint),
        serde_json::json!({ "id": endpoint.id, "previous_secret_until": rfc3339(until) })
            .to_string(),
    );
    let rotated = endpoint_changed(
        state
            .store
            .rotate_webhook_secret(
                &endpoint.id,
                &secret,
                micros(until),
                &chain(&endpoint.financier_id),
                &audit,
            )
            .await,
    )?;
    Ok(WebhookEndpointRecord { secret, ..rotated })
}

/// The endpoint's URL, checked: absolute, `https` (or `http` where the settings allow it, for
/// development), with a host and no credentials.
fn endpoint_url(state: &AppState, raw: &str) -> Result<String, ApiError> {
    if raw.len() > 2048 {
        return Err(ApiError::invalid("url", "is longer than 2048 characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| ApiError::invalid("url", e))?;
    let scheme_ok =
        url.scheme() == "https" || (url.scheme() == "http" && state.settings.webhook_allow_http);
    if !scheme_ok {
        return Err(ApiError::invalid("url", "must be an https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid("url", "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::invalid("url", "must not carry credentials"));
    }
    // Outside development, the server is not made to post into its own network. A name that
    // resolves to such an address is caught when it is resolved, at each delivery
    // (`webhooks::client`).
    if !state.settings.webhook_allow_http && url.host().is_some_and(|h| internal_host(&h)) {
        return Err(ApiError::invalid(
            "url",
            "must not name a loopback, private, link-local or unspecified address",
        ));
    }
    Ok(url.to_string())
}

/// Whether a URL's host names this machine or a private network by itself: `localhost`, or an
/// address that is not public (`webhooks::client::is_public`).
fn internal_host(host: &url::Host<&str>) -> bool {
    use std::net::IpAddr;
    let ip = match host {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            return name == "localhost" || name.ends_with(".localhost");
        }
        url::Host::Ipv4(v4) => IpAddr::V4(*v4),
        url::Host::Ipv6(v6) => IpAddr::V6(*v6),
    };
    !crate::webhooks::client::is_public(ip)
}

/// The event types asked for, as stored: sorted, each once.
fn event_types(requested: &[EventType]) -> Vec<String> {
    let mut types: Vec<String> = requested.iter().map(|t| t.as_str().to_string()).collect();
    types.sort();
    types.dedup();
    types
}

/// The financier's audit chain.
fn chain(financier: &str) -> String {
    crate::api_keys::chain(Some(financier))
}

/// An endpoint as its audit records describe it: never its secret, and of its URL only the
/// origin (scheme, host and port), since receivers often carry a token of their own in the
/// path or query, and the audit chain is read by more people than the financier's admins.
fn described(e: &WebhookEndpointRecord) -> String {
    serde_json::json!({
        "id": e.id,
        "url": url_origin(&e.url),
        "event_types": e.event_types,
        "disabled": e.disabled_us.is_some(),
    })
    .to_string()
}

/// `url`'s origin (`https://hooks.example.com:8443`), or nothing when it cannot be read.
fn url_origin(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// The audit record of `action` on endpoint `e` by `actor`.
fn audit(
    actor: &Actor,
    at_us: i64,
    action: &str,
    e: &WebhookEndpointRecord,
    before_json: String,
    after_json: String,
) -> AuditEntry {
    AuditEntry {
        at_us,
        actor: actor.key_id.clone(),
        action: action.into(),
        reason: format!("webhook endpoint {}", e.id),
        before_json,
        after_json,
    }
}

/// The store's answer to a change of an endpoint read a moment before. `NotFound` means it was
/// deleted in between, and is said as a missing endpoint, not as the store's default (a device).
fn endpoint_changed<T>(answer: Result<T, lien_store::StoreError>) -> Result<T, ApiError> {
    match answer {
        Err(lien_store::StoreError::NotFound) => Err(ApiError::NotFound("webhook endpoint")),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::internal_host;

    fn internal(url: &str) -> bool {
        let url = url::Url::parse(url).unwrap();
        internal_host(&url.host().unwrap())
    }

    #[test]
    fn the_servers_own_networks_are_told_apart_from_the_internet() {
        for url in [
            "https://localhost/",
            "https://LOCALHOST./",
            "https://a.localhost/",
            "https://127.0.0.1:5432/",
            "https://10.1.2.3/",
            "https://172.16.0.9/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[::]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
        ] {
            assert!(internal(url), "{url}");
        }
        for url in [
            "https://hooks.example.com/lien",
            "https://203.0.113.7/",
            "https://[2001:db8::1]/",
            "https://172.32.0.1/",
        ] {
            assert!(!internal(url), "{url}");
        }
    }
}
