//! People who sign in to the console, their invitations and their sessions.
//!
//! A person is invited (by a platform admin, or a financier admin for their own staff) with a
//! role, and exists from then on without a password; accepting the invitation sets the name and
//! password and opens the first session, in one transaction, and only once. A session is found
//! by the hash of its cookie and ends when revoked, after its absolute lifetime, or after it has
//! been idle too long (the server decides the last two from `last_seen_us` and `expires_us`).
//!
//! Secrets are never stored: invitation tokens and session ids as their SHA-256, passwords as
//! the caller's slow hash.

use async_trait::async_trait;

use crate::{AuditEntry, StoreError};

/// A person of the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRecord {
    /// `per_` and random characters: recorded as the actor of what they do.
    pub id: String,
    /// Lower-cased e-mail address, unique.
    pub email: String,
    /// The name they gave (empty until the invitation is accepted).
    pub name: String,
    /// Their role's name (`platform-admin`, `support`, `financier-admin`, `financier-agent`).
    pub role: String,
    /// The financier a financier role works for.
    pub financier_id: Option<String>,
    /// The password's hash (a PHC string), once the invitation is accepted.
    pub password_hash: Option<String>,
    /// Who invited them (a person's or an API key's id).
    pub invited_by: String,
    /// When they were invited.
    pub created_us: i64,
    /// When they were disabled, if they were: no sign-in, no session.
    pub disabled_us: Option<i64>,
}

/// An invitation to set a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRecord {
    /// SHA-256 of the token in the link.
    pub token_hash: Vec<u8>,
    /// Whom it invites.
    pub person_id: String,
    /// When it was made.
    pub created_us: i64,
    /// When it stops working.
    pub expires_us: i64,
    /// When it was accepted, if it was.
    pub accepted_us: Option<i64>,
}

/// A signed-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the session cookie's value.
    pub id_hash: Vec<u8>,
    /// Whose session.
    pub person_id: String,
    /// The token the session's forms carry (CSRF).
    pub csrf: String,
    /// When it was opened.
    pub created_us: i64,
    /// When it was last used (written at most about once a minute).
    pub last_seen_us: i64,
    /// Its absolute end.
    pub expires_us: i64,
    /// When it was revoked (signed out), if it was.
    pub revoked_us: Option<i64>,
}

/// The console's people, invitations and sessions.
#[async_trait]
pub trait People: Send + Sync {
    /// Stores `person` (without a password) and `invitation`, audited in `chain`, in one
    /// transaction; [`StoreError::Conflict`] when a person has this e-mail address.
    async fn invite(
        &self,
        person: &PersonRecord,
        invitation: &InvitationRecord,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// The invitation with this token hash and the person it invites.
    async fn invitation(
        &self,
        token_hash: &[u8],
    ) -> Result<(InvitationRecord, PersonRecord), StoreError>;
    /// Accepts the invitation at `session.created_us`: sets the person's name and password
    /// hash, and opens `session`, audited in `chain`, in one transaction. [`StoreError::NotFound`]
    /// unless the invitation exists, is not accepted, has not expired and its person is not
    /// disabled: a link works once.
    async fn accept_invitation(
        &self,
        token_hash: &[u8],
        name: &str,
        password_hash: &str,
        session: &SessionRecord,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<PersonRecord, StoreError>;
    /// Sends a person who has not yet accepted an invitation a new one: their earlier links
    /// stop working, and `invitation` is stored, audited in `chain`, in one transaction.
    /// [`StoreError::NotFound`] unless the person exists, has no password and is not disabled.
    async fn reinvite(
        &self,
        invitation: &InvitationRecord,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// Disables the person at `at_us`: no sign-in from then on, every session of theirs ended
    /// and every open invitation withdrawn, audited in `chain`, in one transaction. Disabling
    /// a disabled person changes nothing. [`StoreError::NotFound`] when there is no such person.
    async fn disable_person(
        &self,
        person_id: &str,
        at_us: i64,
        chain: &str,
        audit: &AuditEntry,
    ) -> Result<PersonRecord, StoreError>;
    /// The person with this id.
    async fn person(&self, id: &str) -> Result<PersonRecord, StoreError>;
    /// The person with this (lower-cased) e-mail address.
    async fn person_by_email(&self, email: &str) -> Result<PersonRecord, StoreError>;
    /// A financier's people (`Some`), or everyone (`None`), oldest first.
    async fn people(&self, financier_id: Option<&str>) -> Result<Vec<PersonRecord>, StoreError>;
    /// Opens a session.
    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// The session with this id hash and its person.
    async fn session(&self, id_hash: &[u8]) -> Result<(SessionRecord, PersonRecord), StoreError>;
    /// Records the session's use at `at_us`.
    async fn touch_session(&self, id_hash: &[u8], at_us: i64) -> Result<(), StoreError>;
    /// Ends the session at `at_us` (signing out); ending an ended one changes nothing.
    async fn revoke_session(&self, id_hash: &[u8], at_us: i64) -> Result<(), StoreError>;
}
