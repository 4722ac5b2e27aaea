//! Who is calling, and what their role lets them do.
//!
//! Financier API calls carry `Authorization: Bearer <API key>`. Keys are random, shown once,
//! and stored as their SHA-256, which is enough for 256-bit random secrets (a slow password
//! hash protects guessable passwords, which these are not).
//!
//! Every request reads its key from the store: nothing is cached, so a key revoked (or expired)
//! is refused at once by every server on the database. The read is one primary-key look-up; the
//! only write is the key's last use, at most once a minute per key ([`LAST_USED_EVERY_US`]).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lien_store::{DeviceRecord, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::clock::{from_micros, micros};
use crate::domain::rfc3339;
use crate::error::ApiError;

/// How often a key's last use is written: at most once a minute per key.
pub const LAST_USED_EVERY_US: i64 = 60_000_000;

/// A role, fixed when its key is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the platform: creates financiers, their keys and the platform's own keys, and may
    /// change any device's lock policy.
    PlatformAdmin,
    /// Runs one financier: everything on its own devices.
    FinancierAdmin,
    /// Works for one financier: reads its devices and records payments; never locks.
    FinancierAgent,
    /// The platform's support staff: reads every device, grants provisional unlocks and
    /// answers appeals (the borrower's claim is reviewed by the operator as well as by the
    /// financier). Accepting a payment appeal records the payment the borrower proved, in
    /// support's name, up to what is due (curing the arrears, never advancing the plan); it
    /// never schedules a release, which only a financier's admin vouches for.
    Support,
}

impl Role {
    /// The name stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform-admin",
            Role::FinancierAdmin => "financier-admin",
            Role::FinancierAgent => "financier-agent",
            Role::Support => "support",
        }
    }

    /// The role named `name`.
    pub fn from_name(name: &str) -> Option<Role> {
        [
            Role::PlatformAdmin,
            Role::FinancierAdmin,
            Role::FinancierAgent,
            Role::Support,
        ]
        .into_iter()
        .find(|r| r.name() == name)
    }

    /// Whether the role belongs to a financier (and is confined to its devices).
    pub fn is_financier_role(self) -> bool {
        matches!(self, Role::FinancierAdmin | Role::FinancierAgent)
    }
}

/// What a request wants to do, for the role check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create and list financiers.
    ManageFinanciers,
    /// Create, list and revoke API keys of a financier.
    ManageKeys,
    /// Create, list and revoke platform-wide API keys (support, platform admin): they see
    /// every financier.
    ManagePlatformKeys,
    /// Change a device's lock policy.
    ChangePolicy,
    /// Read devices, histories, status codes.
    Read,
    /// Enroll devices.
    Enroll,
    /// Record and reverse payments.
    RecordPayment,
    /// Lock by hand, send reminder messages, release.
    Lock,
    /// Lift a manual lock.
    Unlock,
    /// Grant a provisional unlock or an offline unlock code.
    ProvisionalUnlock,
    /// Answer a borrower's appeal (accepting a payment appeal records the payment).
    AnswerAppeal,
    /// Reconcile a provider's statement: its missing lines are recorded as the provider's own
    /// payments, under the provider's idempotency keys and vouched for at payoff as a provider's
    /// are, so only a role that may release a phone anyway may vouch for a statement. An agent
    /// records the cash it takes one payment at a time instead.
    Reconcile,
    /// Pause restrictions for a borrower in hardship, answer a borrower's request for one: it
    /// only ever spares the phone, so whoever answers appeals may do it. Ending a pause early
    /// restricts again, so it takes `Lock`.
    HardshipPause,
    /// Reschedule what remains of a plan. Support may too where the device's policy says so
    /// (`restructure_by_support`), which the command checks on the device.
    Restructure,
}

impl Role {
    /// Whether this role may do `action` at all (the tenant check comes on top).
    pub fn may(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::PlatformAdmin => matches!(
                action,
                ManageFinanciers | ManageKeys | ManagePlatformKeys | Read | ChangePolicy
            ),
            Role::FinancierAdmin => !matches!(action, ManageFinanciers | ManagePlatformKeys),
            Role::FinancierAgent => {
                matches!(action, Read | RecordPayment | AnswerAppeal | HardshipPause)
            }
            Role::Support => matches!(
                action,
                Read | ProvisionalUnlock | AnswerAppeal | HardshipPause
            ),
        }
    }
}

/// The start of the audit name of a payment provider acting for a financier (`provider:mpesa`);
/// API key ids start `key_`, so neither can pass for the other.
pub const PROVIDER_ACTOR_PREFIX: &str = "provider:";

/// The caller of a financier API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The key's public id, recorded in the audit log.
    pub key_id: String,
    /// The key's role.
    pub role: Role,
    /// The financier a financier role acts for.
    pub financier_id: Option<String>,
}

impl Actor {
    /// Whether this caller is a payment provider's confirmation rather than a person's key.
    pub fn is_payment_provider(&self) -> bool {
        self.key_id.starts_with(PROVIDER_ACTOR_PREFIX)
    }

    /// Whether money this caller records may, by paying the plan off, schedule the release: a
    /// role that may release anyway, or a provider that holds the money.
    pub fn vouches_for_payoff(&self) -> bool {
        self.role.may(Action::Lock) || self.is_payment_provider()
    }

    /// Refuses the request unless the role may do `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if self.role.may(action) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "the {} role may not do this ({action:?})",
                self.role.name()
            )))
        }
    }

    /// Whether the caller may see devices of `financier_id`. A financier role sees only its own.
    pub fn sees_financier(&self, financier_id: &str) -> bool {
        match &self.financier_id {
            Some(own) => own == financier_id,
            None => true,
        }
    }

    /// The device, if the caller may see it; another financier's device is "not found",
    /// exactly like one that does not exist.
    pub fn visible(&self, device: DeviceRecord) -> Result<DeviceRecord, ApiError> {
        if self.sees_financier(&device.enrolled.financier_id) {
            Ok(device)
        } else {
            Err(ApiError::NotFound("device"))
        }
    }

    /// Whose idempotency keys these are.
    pub fn idempotency_scope(&self) -> String {
        self.financier_id
            .clone()
            .unwrap_or_else(|| "platform".to_string())
    }
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Actor, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthorized("missing Authorization header: use Bearer <API key>".into())
            })?;
        let key = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized("Authorization header must be Bearer <API key>".into())
            })?;
        let record = match state.store.api_key_by_hash(&hash_key(key.trim())).await {
            Ok(record) => record,
            Err(StoreError::NotFound) => {
                return Err(ApiError::Unauthorized("unknown API key".into()));
            }
            Err(err) => return Err(err.into()),
        };
        let now_us = micros(state.clock.now());
        if let Some(at) = record.revoked_us {
            return Err(ApiError::Unauthorized(format!(
                "API key {} was revoked at {}",
                record.id,
                rfc3339(from_micros(at))
            )));
        }
        if let Some(until) = record.expires_us
            && until <= now_us
        {
            return Err(ApiError::Unauthorized(format!(
                "API key {} expired at {}",
                record.id,
                rfc3339(from_micros(until))
            )));
        }
        if record
            .last_used_us
            .is_none_or(|at| now_us.saturating_sub(at) >= LAST_USED_EVERY_US)
        {
            // Several requests in the same minute may each write it; the store keeps the
            // latest. A failed write costs only the record of use, never the request.
            if let Err(err) = state.store.touch_api_key(&record.id, now_us).await {
                tracing::warn!(error = %err, key = %record.id, "could not record the key's last use");
            }
        }
        let role = Role::from_name(&record.role).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "stored key has unknown role {}",
                record.role
            ))
        })?;
        Ok(Actor {
            key_id: record.id,
            role,
            financier_id: record.financier_id,
        })
    }
}

/// A new API key: `lien_` and 43 characters of base64url randomness.
pub fn new_api_key() -> anyhow::Result<String> {
    Ok(format!(
        "lien_{}",
        URL_SAFE_NO_PAD.encode(crate::secrets::random_bytes()?)
    ))
}

/// What is stored for a key.
pub fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// The public id of a key: safe to log and show.
pub fn key_id(key_hash: &[u8]) -> String {
    format!("key_{}", hex::encode(&key_hash[..6]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_record_payments_but_never_lock() {
        assert!(Role::FinancierAgent.may(Action::RecordPayment));
        assert!(!Role::FinancierAgent.may(Action::Lock));
        assert!(!Role::FinancierAgent.may(Action::ProvisionalUnlock));
    }

    #[test]
    fn only_financier_admins_reconcile_statements() {
        assert!(Role::FinancierAdmin.may(Action::Reconcile));
        for role in [Role::FinancierAgent, Role::Support, Role::PlatformAdmin] {
            assert!(!role.may(Action::Reconcile), "{role:?}");
        }
    }

    #[test]
    fn support_reads_unlocks_provisionally_and_answers_appeals_only() {
        assert!(Role::Support.may(Action::Read));
        assert!(Role::Support.may(Action::ProvisionalUnlock));
        assert!(Role::Support.may(Action::AnswerAppeal));
        assert!(!Role::Support.may(Action::Lock));
        assert!(!Role::Support.may(Action::RecordPayment));
    }

    #[test]
    fn only_platform_admins_create_platform_keys() {
        assert!(Role::PlatformAdmin.may(Action::ManagePlatformKeys));
        for role in [Role::FinancierAdmin, Role::FinancierAgent, Role::Support] {
            assert!(!role.may(Action::ManagePlatformKeys), "{role:?}");
        }
    }

    #[test]
    fn policy_changes_are_for_admins_only() {
        assert!(Role::PlatformAdmin.may(Action::ChangePolicy));
        assert!(Role::FinancierAdmin.may(Action::ChangePolicy));
        assert!(!Role::FinancierAgent.may(Action::ChangePolicy));
        assert!(!Role::Support.may(Action::ChangePolicy));
    }

    #[test]
    fn role_names_round_trip() {
        for role in [
            Role::PlatformAdmin,
            Role::FinancierAdmin,
            Role::FinancierAgent,
            Role::Support,
        ] {
            assert_eq!(Role::from_name(role.name()), Some(role));
        }
    }
}
