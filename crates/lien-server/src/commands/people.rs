//! The console's people: invitations, accepting one, signing in and out, and the session a
//! request carries.
//!
//! **Who may invite whom.** A platform admin invites anyone: the platform's own staff
//! (platform admins, support) and a financier's admins and agents. A financier admin invites
//! their own financier's admins and agents. Nobody else invites. An invitation is a link with a
//! 256-bit token, good for [`INVITATION_DAYS`] and once; there is no mail server in Lien, so
//! the link is shown to the inviter (and returned by the API) to pass on.
//!
//! **Passwords** are hashed with argon2id at OWASP's recommended cost (19 MiB, two passes), on
//! tokio's blocking threads so that a sign-in never stalls other requests. Signing in with an
//! address nobody has costs the same hash, so the answer's timing does not tell which addresses
//! exist, and both mistakes give the same message. Sign-ins are rate-limited per client address
//! and per e-mail address (see `AppState::sign_in_limit`).
//!
//! **Sessions** are a random 256-bit cookie, stored as its SHA-256. A session ends when its
//! person signs out, after [`IDLE_MINUTES`] without use, after [`SESSION_HOURS`] whatever the
//! use, or when the person is disabled. Each session has its own CSRF token that every form
//! carries. A person acts as an [`Actor`] whose id is the person's (`per_...`), so the audit
//! records name them exactly as they name an API key.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::SignedDuration;
use lien_store::{AuditEntry, InvitationRecord, PersonRecord, SessionRecord, StoreError};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::auth::{Action, Actor, Role, hash_key};
use crate::clock::micros;
use crate::error::ApiError;
use crate::input::new_id;

/// How long an invitation link works.
pub const INVITATION_DAYS: i64 = 7;
/// How long a session lasts without use.
pub const IDLE_MINUTES: i64 = 30;
/// How long a session lasts at most.
pub const SESSION_HOURS: i64 = 12;
/// How often a session's use is written: at most once a minute.
const TOUCH_EVERY_US: i64 = 60_000_000;

/// The shortest password taken.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password taken (the hash reads all of it).
pub const MAX_PASSWORD_CHARS: usize = 128;
/// The longest name taken.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest e-mail address taken (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// What to invite: someone's address and role, and the financier a financier role works for.
#[derive(Debug, Clone)]
pub struct Invitation {
    /// Their e-mail address, as typed.
    pub email: String,
    /// The role they will have.
    pub role: Role,
    /// The financier, for a financier role.
    pub financier_id: Option<String>,
}

/// A new invitation: the person (without a password yet) and the token of their link.
#[derive(Debug, Clone)]
pub struct Invited {
    /// The person.
    pub person: PersonRecord,
    /// The secret in the link, shown once.
    pub token: String,
    /// When the link stops working, Unix microseconds.
    pub expires_us: i64,
}

/// A session just opened: the cookie's value (shown once) and the session.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The session cookie's value.
    pub cookie: String,
    /// The session.
    pub session: SessionRecord,
    /// Whose.
    pub person: PersonRecord,
}

/// A signed-in request: the person, their session and the actor they act as.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The person.
    pub person: PersonRecord,
    /// The session.
    pub session: SessionRecord,
    /// The person as an actor (their id, role and financier).
    pub actor: Actor,
}

impl SignedIn {
    /// Whether `offered` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, offered: &str) -> bool {
        bool::from(self.session.csrf.as_bytes().ct_eq(offered.as_bytes()))
    }
}

/// Invites someone, as `actor` at the server's now: checks who may invite whom, the address and
/// the financier; stores the person and the invitation, audited.
pub async fn invite(
    state: &AppState,
    actor: &Actor,
    invitation: Invitation,
) -> Result<Invited, ApiError> {
    let email = normalised_email(&invitation.email)?;
    let financier_id = match (invitation.role.is_financier_role(), invitation.financier_id) {
        (true, Some(f)) if !f.trim().is_empty() => Some(f.trim().to_string()),
        (true, _) => match &actor.financier_id {
            Some(own) => Some(own.clone()),
            None => {
                return Err(ApiError::invalid(
                    "financier",
                    "is required for a financier's role",
                ));
            }
        },
        (false, None) => None,
        (false, Some(f)) if f.trim().is_empty() => None,
        (false, Some(_)) => {
            return Err(ApiError::invalid(
                "financier",
                "is only for a financier's roles (financier-admin, financier-agent)",
            ));
        }
    };
    match actor.role {
        Role::PlatformAdmin => {}
        Role::FinancierAdmin if invitation.role.is_financier_role() => {}
        Role::FinancierAdmin => {
            return Err(ApiError::Forbidden(format!(
                "a financier admin invites only their own admins and agents, not {}",
                invitation.role.name()
            )));
        }
        other => {
            return Err(ApiError::Forbidden(format!(
                "the {} role may not invite people",
                other.name()
            )));
        }
    }
    if let Some(financier) = &financier_id {
        // Another financier's, like a missing one, is "not found".
        crate::commands::visible_financier(state, actor, financier).await?;
    }
    let now_us = micros(state.clock.now());
    let token = format!("inv_{}", random_token()?);
    let expires_us = now_us + SignedDuration::from_hours(24 * INVITATION_DAYS).as_micros() as i64;
    // Someone invited before who has not set a password (a link lost or expired) is sent a new
    // link, if the inviter may see them and asks for the same role: the old links stop.
    match state.store.person_by_email(&email).await {
        Ok(pending)
            if pending.password_hash.is_none()
                && pending.disabled_us.is_none()
                && pending.role == invitation.role.name()
                && pending.financier_id == financier_id
                && actor
                    .financier_id
                    .as_ref()
                    .is_none_or(|own| pending.financier_id.as_ref() == Some(own)) =>
        {
            return reinvite(state, actor, pending, token, now_us, expires_us).await;
        }
        Ok(_) => {
            return Err(ApiError::Conflict(
                "someone with this e-mail address is already invited".into(),
            ));
        }
        Err(StoreError::NotFound) => {}
        Err(err) => return Err(err.into()),
    }
    let person = PersonRecord {
        id: new_id("per")?,
        email,
        name: String::new(),
        role: invitation.role.name().to_string(),
        financier_id,
        password_hash: None,
        invited_by: actor.key_id.clone(),
        created_us: now_us,
        disabled_us: None,
    };
    let (record, audit, chain) =
        invitation_of(actor, &person, &token, now_us, expires_us, "person_invited");
    state.store.invite(&person, &record, &chain, &audit).await?;
    tracing::info!(person = %person.id, role = %person.role, by = %actor.key_id, "person invited");
    Ok(Invited {
        person,
        token,
        expires_us,
    })
}

/// The invitation of `person` with `token`, its audit record of `action` by `actor`, and the
/// audit chain it goes in (the person's financier's, or the platform's).
fn invitation_of(
    actor: &Actor,
    person: &PersonRecord,
    token: &str,
    now_us: i64,
    expires_us: i64,
    action: &str,
) -> (InvitationRecord, AuditEntry, String) {
    let record = InvitationRecord {
        token_hash: hash_key(token),
        person_id: person.id.clone(),
        created_us: now_us,
        expires_us,
        accepted_us: None,
    };
    let audit = AuditEntry {
        at_us: now_us,
        actor: actor.key_id.clone(),
        action: action.into(),
        reason: format!("person {}", person.id),
        before_json: "null".into(),
        after_json: described(person),
    };
    let chain = crate::api_keys::chain(person.financier_id.as_deref());
    (record, audit, chain)
}

/// A new link for someone invited before who has not accepted.
async fn reinvite(
    state: &AppState,
    actor: &Actor,
    person: PersonRecord,
    token: String,
    now_us: i64,
    expires_us: i64,
) -> Result<Invited, ApiError> {
    let (record, audit, chain) = invitation_of(
        actor,
        &person,
        &token,
        now_us,
        expires_us,
        "person_reinvited",
    );
    match state.store.reinvite(&record, &chain, &audit).await {
        Err(StoreError::NotFound) => Err(ApiError::Conflict(
            "someone with this e-mail address is already invited".into(),
        )),
        other => other.map_err(ApiError::from),
    }?;
    Ok(Invited {
        person,
        token,
        expires_us,
    })
}

/// Disables a person, as an admin who may see them: they cannot sign in again, their sessions
/// end and their open invitations stop working. Nobody disables themselves (an admin would
/// lock themselves out by a slip).
pub async fn disable(
    state: &AppState,
    actor: &Actor,
    person_id: &str,
) -> Result<PersonRecord, ApiError> {
    actor.require(Action::ManageKeys)?;
    let person = match state.store.person(person_id).await {
        Ok(person) => person,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("person")),
        Err(err) => return Err(err.into()),
    };
    let visible = match &actor.financier_id {
        Some(own) => person.financier_id.as_ref() == Some(own),
        None => actor.role == Role::PlatformAdmin,
    };
    if !visible {
        return Err(ApiError::NotFound("person"));
    }
    if person.id == actor.key_id {
        return Err(ApiError::Conflict(
            "you cannot disable yourself; ask another admin".into(),
        ));
    }
    let now_us = micros(state.clock.now());
    let audit = AuditEntry {
        at_us: now_us,
        actor: actor.key_id.clone(),
        action: "person_disabled".into(),
        reason: format!("person {}", person.id),
        before_json: described(&person),
        after_json: "null".into(),
    };
    let chain = crate::api_keys::chain(person.financier_id.as_deref());
    let disabled = state
        .store
        .disable_person(&person.id, now_us, &chain, &audit)
        .await?;
    tracing::info!(person = %person.id, by = %actor.key_id, "person disabled");
    Ok(disabled)
}

/// The person an invitation link is for, if it still works.
pub async fn invitation(state: &AppState, token: &str) -> Result<PersonRecord, ApiError> {
    let now_us = micros(state.clock.now());
    match state.store.invitation(&hash_key(token)).await {
        Ok((invitation, person))
            if invitation.accepted_us.is_none()
                && invitation.expires_us > now_us
                && person.disabled_us.is_none() =>
        {
            Ok(person)
        }
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::NotFound("invitation")),
        Err(err) => Err(err.into()),
    }
}

/// Accepts an invitation: checks the name and password, hashes the password, and opens the
/// person's first session. The link then stops working.
pub async fn accept(
    state: &AppState,
    token: &str,
    name: &str,
    password: &str,
    repeated: &str,
) -> Result<Opened, ApiError> {
    let person = invitation(state, token).await?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::invalid(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    check_password(password)?;
    if password != repeated {
        return Err(ApiError::invalid(
            "password_again",
            "is not the same as the password",
        ));
    }
    let hash = hash_password(state, password.to_string()).await?;
    let (cookie, session) = new_session(state, &person.id)?;
    let audit = AuditEntry {
        at_us: session.created_us,
        actor: person.id.clone(),
        action: "invitation_accepted".into(),
        reason: format!("person {}", person.id),
        before_json: "null".into(),
        after_json: "null".into(),
    };
    let chain = crate::api_keys::chain(person.financier_id.as_deref());
    let person = match state
        .store
        .accept_invitation(&hash_key(token), name, &hash, &session, &chain, &audit)
        .await
    {
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("invitation")),
        other => other?,
    };
    Ok(Opened {
        cookie,
        session,
        person,
    })
}

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The address or the password is wrong (which one is not said).
    #[error("the e-mail address or the password is wrong")]
    Wrong,
    /// The address, or this client, tried too often; the seconds to wait.
    #[error("too many sign-in attempts; try again in {0} seconds")]
    TooMany(u64),
    /// Something broke on our side.
    #[error(transparent)]
    Failed(#[from] ApiError),
}

/// Signs in with an address and a password, from `client`; opens a session.
pub async fn sign_in(
    state: &AppState,
    client: crate::rate_limit::ClientKey,
    email: &str,
    password: &str,
) -> Result<Opened, SignInError> {
    state
        .sign_in_limit
        .check(client)
        .map_err(|l| SignInError::TooMany(l.retry_after_secs))?;
    let email = email.trim().to_lowercase();
    // Nobody has a longer address or password: refused before it costs a limiter entry, a
    // look-up or a hash.
    if email.chars().count() > MAX_EMAIL_CHARS || password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(SignInError::Wrong);
    }
    state
        .sign_in_email_limit
        .check((email.clone(), client))
        .map_err(|l| SignInError::TooMany(l.retry_after_secs))?;
    state
        .sign_in_account_limit
        .check(email.clone())
        .map_err(|l| SignInError::TooMany(l.retry_after_secs))?;
    let person = match state.store.person_by_email(&email).await {
        Ok(person) => Some(person),
        Err(StoreError::NotFound) => None,
        Err(err) => return Err(ApiError::from(err).into()),
    };
    let stored = person
        .as_ref()
        .filter(|p| p.disabled_us.is_none())
        .and_then(|p| p.password_hash.clone());
    let matches = verify_password(state, password.to_string(), stored).await?;
    let Some(person) = person.filter(|_| matches) else {
        tracing::info!("console sign-in refused");
        return Err(SignInError::Wrong);
    };
    let (cookie, session) = new_session(state, &person.id)?;
    state
        .store
        .create_session(&session)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(person = %person.id, "signed in to the console");
    Ok(Opened {
        cookie,
        session,
        person,
    })
}

/// The signed-in request whose session cookie is `cookie`, if its session is still open; notes
/// its use (at most once a minute).
pub async fn signed_in(state: &AppState, cookie: &str) -> Result<Option<SignedIn>, ApiError> {
    // Only what `random_token` makes can be a session: anything else costs no database read.
    if cookie.len() != TOKEN_CHARS
        || !cookie
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Ok(None);
    }
    let id_hash = hash_key(cookie);
    let (session, person) = match state.store.session(&id_hash).await {
        Ok(found) => found,
        Err(StoreError::NotFound) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let now_us = micros(state.clock.now());
    let idle_us = SignedDuration::from_mins(IDLE_MINUTES).as_micros() as i64;
    if session.revoked_us.is_some()
        || session.expires_us <= now_us
        || now_us.saturating_sub(session.last_seen_us) >= idle_us
        || person.disabled_us.is_some()
    {
        return Ok(None);
    }
    if now_us.saturating_sub(session.last_seen_us) >= TOUCH_EVERY_US {
        // A failed write costs only the record of use (and so, at worst, an earlier idle end).
        if let Err(err) = state.store.touch_session(&id_hash, now_us).await {
            tracing::warn!(error = %err, "could not record the session's use");
        }
    }
    let role = Role::from_name(&person.role).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "stored person has unknown role {}",
            person.role
        ))
    })?;
    let actor = Actor {
        key_id: person.id.clone(),
        role,
        financier_id: person.financier_id.clone(),
    };
    Ok(Some(SignedIn {
        person,
        session,
        actor,
    }))
}

/// Ends the session whose cookie is `cookie`.
pub async fn sign_out(state: &AppState, cookie: &str) -> Result<(), ApiError> {
    let now_us = micros(state.clock.now());
    state
        .store
        .revoke_session(&hash_key(cookie), now_us)
        .await?;
    Ok(())
}

/// The people an admin may see: a financier admin their financier's, a platform admin everyone.
pub async fn people(state: &AppState, actor: &Actor) -> Result<Vec<PersonRecord>, ApiError> {
    actor.require(Action::ManageKeys)?;
    Ok(state.store.people(actor.financier_id.as_deref()).await?)
}

/// A new session for `person_id` at the server's now: its cookie value and record.
fn new_session(state: &AppState, person_id: &str) -> Result<(String, SessionRecord), ApiError> {
    let now_us = micros(state.clock.now());
    let cookie = random_token()?;
    let session = SessionRecord {
        id_hash: hash_key(&cookie),
        person_id: person_id.to_string(),
        csrf: random_token()?,
        created_us: now_us,
        last_seen_us: now_us,
        expires_us: now_us + SignedDuration::from_hours(SESSION_HOURS).as_micros() as i64,
        revoked_us: None,
    };
    Ok((cookie, session))
}

/// The length of a [`random_token`]: 32 bytes in base64url without padding.
const TOKEN_CHARS: usize = 43;

/// 256 random bits, base64url.
pub fn random_token() -> Result<String, ApiError> {
    Ok(URL_SAFE_NO_PAD.encode(crate::secrets::random_bytes().map_err(ApiError::Internal)?))
}

/// The address as stored: trimmed and lower-cased, checked for one `@` with something on both
/// sides and nothing that is not printable.
fn normalised_email(text: &str) -> Result<String, ApiError> {
    let email = text.trim().to_lowercase();
    let valid = email.chars().count() <= MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.contains('@')
                && !domain.starts_with('.') && !domain.ends_with('.'));
    if valid {
        Ok(email)
    } else {
        Err(ApiError::invalid(
            "email",
            "is not an e-mail address (name@example.com)",
        ))
    }
}

fn check_password(password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(ApiError::invalid(
            "password",
            format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// An person as audit records describe them: never a password hash.
fn described(p: &PersonRecord) -> String {
    serde_json::json!({
        "id": p.id,
        "email": p.email,
        "role": p.role,
        "financier_id": p.financier_id,
    })
    .to_string()
}

/// argon2id with the crate's defaults: OWASP's recommended 19 MiB, two passes, one lane.
fn hasher() -> argon2::Argon2<'static> {
    argon2::Argon2::default()
}

/// How long a sign-in waits for a free hashing slot before it is told to come back.
const HASHING_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `work` (a password hash) on a blocking thread once one of the server's hashing slots
/// is free ([`AppState::password_hashing`]); a request that waits too long is told to come
/// back, so a flood of sign-ins costs at most that many hashes' memory at once.
async fn hashing<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _slot = tokio::time::timeout(HASHING_WAIT, state.password_hashing.acquire())
        .await
        .map_err(|_| {
            ApiError::Unavailable(
                "the server is busy signing people in; try again in a few seconds".into(),
            )
        })?
        .map_err(|e| ApiError::Internal(e.into()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(e.into()))
}

/// Hashes a password into a PHC string with a random salt.
async fn hash_password(state: &AppState, password: String) -> Result<String, ApiError> {
    let salt = crate::secrets::random_bytes().map_err(ApiError::Internal)?;
    hashing(state, move || hash_with_salt(&password, &salt))
        .await?
        .map_err(ApiError::Internal)
}

fn hash_with_salt(password: &str, salt: &[u8; 32]) -> anyhow::Result<String> {
    let salt =
        SaltString::encode_b64(&salt[..16]).map_err(|e| anyhow::anyhow!("password salt: {e}"))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
}

/// Whether `password` matches `stored`. Without a stored hash (nobody has the address, or
/// they have not set a password) a fixed hash is checked instead, so that the time taken does
/// not tell.
async fn verify_password(
    state: &AppState,
    password: String,
    stored: Option<String>,
) -> Result<bool, ApiError> {
    hashing(state, move || match stored {
        Some(hash) => verifies(&password, &hash),
        None => {
            // Costs what a real check costs, and never matches.
            let decoy = decoy_hash().unwrap_or_default();
            let _ = verifies(&password, &decoy);
            false
        }
    })
    .await
}

fn verifies(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a random password, made once per process, checked when there is nothing to check.
fn decoy_hash() -> Result<String, ApiError> {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(hash) = DECOY.get() {
        return Ok(hash.clone());
    }
    let salt = crate::secrets::random_bytes().map_err(ApiError::Internal)?;
    let hash = hash_with_salt(&random_token()?, &salt).map_err(ApiError::Internal)?;
    Ok(DECOY.get_or_init(|| hash).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_lower_cased_and_checked() {
        assert_eq!(
            normalised_email("  Wanjiru@Duka.example ").unwrap(),
            "wanjiru@duka.example"
        );
        for bad in [
            "",
            "duka.example",
            "@duka.example",
            "a@b",
            "a b@duka.example",
            "a@.example",
        ] {
            assert!(normalised_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let hash = hash_with_salt("correct horse battery", &[7; 32]).unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verifies("correct horse battery", &hash));
        assert!(!verifies("correct horse battery!", &hash));
        assert!(!verifies("correct horse battery", "not a hash"));
    }
}
