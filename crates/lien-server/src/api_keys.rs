//! API keys as things that happen: created, listed, revoked. The JSON API (`routes::admin`),
//! the first start and `lien admin-key` all go through these functions, so a key made or
//! revoked from the command line is audited exactly like one made or revoked over HTTP.
//!
//! A key is checked against the store on every request (`auth`), with no cache in between,
//! so a revocation or an expiry holds at once on every server sharing the database.

use jiff::{SignedDuration, Timestamp};
use lien_store::{ApiKeyRecord, AuditEntry, Store, StoreError};

use crate::auth::{Role, hash_key, key_id, new_api_key};
use crate::clock::{from_micros, micros};
use crate::domain::{parse_instant, rfc3339};
use crate::error::ApiError;
use crate::wire::{ApiKeyCreated, ApiKeyStatus, ApiKeyView};

/// The furthest ahead a key's expiry may be set: 5 years.
pub const MAX_LIFETIME_DAYS: i64 = 5 * 365 + 1;

/// The audit chain a key's creation and revocation are recorded in: its financier's, or the
/// platform's.
pub fn chain(financier_id: Option<&str>) -> String {
    financier_id.map_or_else(|| "platform".to_string(), |f| format!("financier:{f}"))
}

/// The `expires_at` of a new key, checked: in the future, and at most [`MAX_LIFETIME_DAYS`]
/// ahead of `now`.
pub fn parse_expiry(text: Option<&str>, now: Timestamp) -> Result<Option<i64>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let at = parse_instant("expires_at", text.trim())?;
    if at <= now {
        return Err(ApiError::invalid("expires_at", "must be in the future"));
    }
    let latest = now
        .checked_add(SignedDuration::from_hours(24 * MAX_LIFETIME_DAYS))
        .unwrap_or(Timestamp::MAX);
    if at > latest {
        return Err(ApiError::invalid(
            "expires_at",
            format!("must be at most {MAX_LIFETIME_DAYS} days (5 years) ahead"),
        ));
    }
    Ok(Some(micros(at)))
}

/// Creates a key, stores its hash and audits its creation in its chain, as `actor`.
pub async fn issue(
    store: &dyn Store,
    now: Timestamp,
    actor: &str,
    role: Role,
    financier_id: Option<String>,
    label: String,
    expires_us: Option<i64>,
) -> Result<ApiKeyCreated, ApiError> {
    let key = new_api_key().map_err(ApiError::Internal)?;
    let key_hash = hash_key(&key);
    let now_us = micros(now);
    let record = ApiKeyRecord {
        id: key_id(&key_hash),
        key_hash,
        role: role.name().to_string(),
        financier_id: financier_id.clone(),
        label: label.clone(),
        created_us: now_us,
        expires_us,
        revoked_us: None,
        last_used_us: None,
    };
    let expires_at = expires_us.map(|us| rfc3339(from_micros(us)));
    let audit = AuditEntry {
        at_us: now_us,
        actor: actor.to_string(),
        action: "api_key_created".into(),
        reason: label,
        before_json: "null".into(),
        after_json: serde_json::json!({
            "key_id": record.id,
            "role": role.name(),
            "expires_at": expires_at,
        })
        .to_string(),
    };
    store
        .create_api_key(&record, &chain(financier_id.as_deref()), &audit)
        .await?;
    Ok(ApiKeyCreated {
        id: record.id,
        key,
        role,
        financier_id,
        expires_at,
    })
}

/// Revokes `key` as `actor`, audited in its chain; a key revoked already is left as it was.
/// Refused (409) for the last active platform admin key, so that nobody locks the platform out.
pub async fn revoke(
    store: &dyn Store,
    now: Timestamp,
    actor: &str,
    key: &ApiKeyRecord,
) -> Result<ApiKeyRecord, ApiError> {
    let now_us = micros(now);
    let audit = AuditEntry {
        at_us: now_us,
        actor: actor.to_string(),
        action: "api_key_revoked".into(),
        reason: format!("API key {} ({}) revoked", key.id, key.label),
        before_json: serde_json::json!({"key_id": key.id, "revoked": false}).to_string(),
        after_json: serde_json::json!({"key_id": key.id, "revoked": true}).to_string(),
    };
    match store
        .revoke_api_key(&key.id, now_us, &chain(key.financier_id.as_deref()), &audit)
        .await
    {
        Ok(revoked) => Ok(revoked),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("API key")),
        Err(err) => Err(err.into()),
    }
}

/// Whether `key` works at `now_us`.
pub fn status(key: &ApiKeyRecord, now_us: i64) -> ApiKeyStatus {
    if key.revoked_us.is_some() {
        ApiKeyStatus::Revoked
    } else if key.expires_us.is_some_and(|until| until <= now_us) {
        ApiKeyStatus::Expired
    } else {
        ApiKeyStatus::Active
    }
}

/// A key as listed: everything but its hash.
pub fn view(key: &ApiKeyRecord, now: Timestamp) -> Result<ApiKeyView, ApiError> {
    let role = Role::from_name(&key.role).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("stored key has unknown role {}", key.role))
    })?;
    let at = |us: Option<i64>| us.map(|us| rfc3339(from_micros(us)));
    Ok(ApiKeyView {
        id: key.id.clone(),
        label: key.label.clone(),
        role,
        financier_id: key.financier_id.clone(),
        created_at: rfc3339(from_micros(key.created_us)),
        expires_at: at(key.expires_us),
        last_used_at: at(key.last_used_us),
        revoked_at: at(key.revoked_us),
        status: status(key, micros(now)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-10T09:00:00Z".parse().unwrap()
    }

    #[test]
    fn an_expiry_is_in_the_future_and_within_five_years() {
        assert_eq!(parse_expiry(None, now()).unwrap(), None);
        assert_eq!(
            parse_expiry(Some("2026-02-01T00:00:00Z"), now()).unwrap(),
            Some(micros("2026-02-01T00:00:00Z".parse().unwrap()))
        );
        for (text, problem) in [
            ("2026-01-10T09:00:00Z", "in the future"),
            ("2025-12-31T00:00:00Z", "in the future"),
            ("2031-02-01T00:00:00Z", "at most 1826 days"),
            ("next week", "RFC 3339"),
        ] {
            let err = parse_expiry(Some(text), now()).unwrap_err().to_string();
            assert!(err.starts_with("expires_at: "), "{err}");
            assert!(err.contains(problem), "{text}: {err}");
        }
    }

    #[test]
    fn revoked_beats_expired_beats_active() {
        let mut key = ApiKeyRecord {
            key_hash: vec![0; 32],
            id: "key_0".into(),
            role: "support".into(),
            financier_id: None,
            label: "desk".into(),
            created_us: 0,
            expires_us: Some(100),
            revoked_us: None,
            last_used_us: None,
        };
        assert_eq!(status(&key, 99), ApiKeyStatus::Active);
        assert_eq!(status(&key, 100), ApiKeyStatus::Expired);
        key.revoked_us = Some(50);
        assert_eq!(status(&key, 99), ApiKeyStatus::Revoked);
    }
}
