//! The signed status token: what the server tells a phone it must do.
//!
//! A token is a COSE_Sign1 message (RFC 9052) signed with Ed25519 (EdDSA). The protected header
//! carries the algorithm and the key id, so both are covered by the signature; the payload is a
//! CBOR map of [`StatusClaims`]. The phone accepts a token only if it is signed by a key it has
//! pinned, names the phone, and has a sequence number at least the highest it has seen, so an
//! old "unlocked" token replayed later cannot undo a lock.

use std::time::Duration;

use coset::{CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a token is refused, or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a tagged COSE_Sign1 message with a CBOR claims payload.
    #[error("token is malformed: {0}")]
    Malformed(String),
    /// Signed with something other than EdDSA, or with no algorithm at all.
    #[error("token is not signed with EdDSA")]
    WrongAlgorithm,
    /// The key id is not one of the pinned keys.
    #[error("token is signed by key {0}, which is not pinned on this device")]
    UnknownKey(String),
    /// The signature does not verify (strictly) under the pinned key.
    #[error("token signature is invalid")]
    BadSignature,
    /// The token is for another device.
    #[error("token is for device {found}, not this device ({expected})")]
    WrongDevice {
        /// The device this verifier is for.
        expected: String,
        /// The device named in the token.
        found: String,
    },
    /// The token is older than one already accepted.
    #[error("token sequence {found} is lower than {highest_seen}, the highest already accepted")]
    SequenceRegressed {
        /// The highest sequence accepted so far.
        highest_seen: u64,
        /// The token's sequence.
        found: u64,
    },
    /// The claims contradict themselves.
    #[error("token claims are invalid: {0}")]
    InvalidClaims(&'static str),
}

impl TokenError {
    /// A stable short code for the error, used in the test vectors and in reports from phones.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "malformed",
            TokenError::WrongAlgorithm => "wrong-algorithm",
            TokenError::UnknownKey(_) => "unknown-key",
            TokenError::BadSignature => "bad-signature",
            TokenError::WrongDevice { .. } => "wrong-device",
            TokenError::SequenceRegressed { .. } => "sequence-regressed",
            TokenError::InvalidClaims(_) => "invalid-claims",
        }
    }
}

/// A key id: the first 8 bytes of the SHA-256 of the Ed25519 public key, in lower-case hex.
/// Derived from the key, so a phone can check that a pinned key and its id belong together.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// The id of `key`.
    pub fn of(key: &VerifyingKey) -> KeyId {
        let digest = Sha256::digest(key.as_bytes());
        KeyId(hex::encode(&digest[..8]))
    }

    /// The id as hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The state the phone must enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TokenState {
    /// Good standing.
    Active,
    /// Show a reminder; restrict nothing.
    Reminder,
    /// Apply the listed restrictions.
    Restricted,
    /// Show the lock screen.
    Locked,
    /// The financier has no more claim: lift everything and stop checking in.
    Released,
}

impl TokenState {
    /// Every state, mildest first.
    pub const ALL: [TokenState; 5] = [
        TokenState::Active,
        TokenState::Reminder,
        TokenState::Restricted,
        TokenState::Locked,
        TokenState::Released,
    ];

    /// The state's name, as the token's claims carry it (and the server stores it).
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Reminder => "reminder",
            TokenState::Restricted => "restricted",
            TokenState::Locked => "locked",
            TokenState::Released => "released",
        }
    }
}

impl std::fmt::Display for TokenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`TokenState`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a token state (active, reminder, restricted, locked or released)")]
pub struct UnknownTokenState(pub String);

impl std::str::FromStr for TokenState {
    type Err = UnknownTokenState;

    fn from_str(name: &str) -> Result<TokenState, UnknownTokenState> {
        TokenState::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| UnknownTokenState(name.to_string()))
    }
}

/// A function the phone limits. Emergency calls and the payment app are never among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceRestriction {
    /// The lock screen covers the phone.
    LockScreen,
    /// No new apps may be installed.
    AppInstalls,
    /// No factory reset from settings or recovery.
    FactoryReset,
    /// No USB debugging or developer options.
    Debugging,
    /// No booting into safe mode.
    SafeMode,
}

/// An amount as it travels: integer minor units and an ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMoney {
    /// Minor units (cents, paise).
    pub minor: i64,
    /// ISO 4217 code, e.g. `KES`.
    pub currency: String,
}

/// What the phone shows the borrower, so the lock screen always says why and how to get out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreenText {
    /// Why the phone is in its state, in the borrower's words.
    pub reason: String,
    /// What to pay to return to good standing.
    pub amount_due: Option<WireMoney>,
    /// The financier's public name.
    pub financier_name: String,
    /// How to reach the financier (phone number, address).
    pub financier_contact: String,
    /// Where to pay.
    pub payment_link: Option<String>,
}

/// How long the token holds for a phone that cannot reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Unix seconds after which a phone that has had no newer token locks itself.
    pub ends_at: i64,
    /// Unix seconds from which the phone warns that it must go online.
    pub warn_from: i64,
}

/// The emergency use a financed phone may take offline: a window of `hours` in which it works
/// as if in good standing, at most once every `every_days`. Added after the first version of
/// the claims, so it is optional: a token without it offers none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyAllowance {
    /// How long one window lasts, in hours (at least 1).
    pub hours: u32,
    /// At most one window in this many days (at least 1, and longer than a window).
    pub every_days: u32,
    /// Unix seconds at which the last window this server knows of started, so that a phone
    /// that lost its own record (a reflash, a new binding) cannot take another too soon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
}

impl EmergencyAllowance {
    /// One window's length.
    pub fn window(&self) -> Duration {
        Duration::from_secs(u64::from(self.hours) * 3600)
    }

    /// The time from the start of one window to the earliest start of the next.
    pub fn period(&self) -> Duration {
        Duration::from_secs(u64::from(self.every_days) * 86_400)
    }
}

/// The claims of a status token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusClaims {
    /// The device the token is for.
    pub device_id: String,
    /// Per-device, increasing with every newly signed token.
    pub sequence: u64,
    /// What to enforce.
    pub state: TokenState,
    /// Which functions to limit.
    pub restrictions: Vec<DeviceRestriction>,
    /// What to show.
    pub screen: ScreenText,
    /// Unix seconds at which the server signed the token.
    pub issued_at: i64,
    /// The offline lease; absent only for a released device, whose token never expires.
    pub lease: Option<Lease>,
    /// The emergency use the phone may take offline; absent when the policy offers none (and
    /// in tokens from before it existed, which therefore encode exactly as they did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<EmergencyAllowance>,
}

/// Where a phone stands on its lease, given the time elapsed since it accepted the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    /// Within the lease, before the warning period.
    Valid,
    /// Within the warning period: tell the borrower to go online.
    Warning {
        /// Time left before the phone locks itself.
        remaining: Duration,
    },
    /// The lease is over: lock with the reason "offline too long".
    Expired,
    /// A released device's token never expires.
    Unlimited,
}

impl StatusClaims {
    /// The lease position after `elapsed` time since the token was accepted.
    ///
    /// The phone measures `elapsed` with a monotonic clock, never the wall clock, which the
    /// user can set; the lease is therefore read as durations from `issued_at`.
    pub fn lease_status(&self, elapsed: Duration) -> LeaseStatus {
        let Some(lease) = self.lease else {
            return LeaseStatus::Unlimited;
        };
        let length =
            Duration::from_secs(lease.ends_at.saturating_sub(self.issued_at).max(0) as u64);
        let warn_after =
            Duration::from_secs(lease.warn_from.saturating_sub(self.issued_at).max(0) as u64);
        if elapsed >= length {
            LeaseStatus::Expired
        } else if elapsed >= warn_after {
            LeaseStatus::Warning {
                remaining: length - elapsed,
            }
        } else {
            LeaseStatus::Valid
        }
    }

    /// Checks that the claims agree with themselves: a released token has no lease and no
    /// restrictions, any other has a lease that ends after it is issued.
    fn check(&self) -> Result<(), TokenError> {
        match (self.state, self.lease) {
            (TokenState::Released, Some(_)) => {
                Err(TokenError::InvalidClaims("a released token has no lease"))
            }
            (TokenState::Released, None) if !self.restrictions.is_empty() => Err(
                TokenError::InvalidClaims("a released token restricts nothing"),
            ),
            (TokenState::Released, None) => Ok(()),
            (_, None) => Err(TokenError::InvalidClaims(
                "only a released token has no lease",
            )),
            (_, Some(lease))
                if lease.ends_at <= self.issued_at
                    || lease.warn_from < self.issued_at
                    || lease.warn_from > lease.ends_at =>
            {
                Err(TokenError::InvalidClaims(
                    "the lease must end after issue, with the warning in between",
                ))
            }
            _ => self.check_emergency(),
        }
    }

    /// An emergency allowance names a window of at least an hour that fits in its period.
    fn check_emergency(&self) -> Result<(), TokenError> {
        match self.emergency {
            Some(e) if e.hours == 0 || e.every_days == 0 || e.window() >= e.period() => Err(
                TokenError::InvalidClaims("an emergency window must be shorter than its period"),
            ),
            _ => Ok(()),
        }
    }
}

/// Signs tokens with the server's Ed25519 key.
pub struct TokenSigner {
    key: SigningKey,
    kid: KeyId,
}

impl TokenSigner {
    /// A signer for `key`.
    pub fn new(key: SigningKey) -> TokenSigner {
        let kid = KeyId::of(&key.verifying_key());
        TokenSigner { key, kid }
    }

    /// The key id placed in every token.
    pub fn key_id(&self) -> &KeyId {
        &self.kid
    }

    /// The public key phones pin.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs `claims` into a tagged COSE_Sign1 message. Ed25519 is deterministic, so the same
    /// claims and key always give the same bytes.
    pub fn sign(&self, claims: &StatusClaims) -> Vec<u8> {
        self.sign_cbor(claims, None)
    }

    /// Signs `payload`, encoded as CBOR, into a tagged COSE_Sign1 message with this key's id
    /// and, if given, a content type in the protected header (so that one kind of signed
    /// message can never be taken for another).
    pub(crate) fn sign_cbor<T: Serialize>(
        &self,
        payload: &T,
        content_type: Option<&str>,
    ) -> Vec<u8> {
        let mut bytes = Vec::new();
        ciborium::into_writer(payload, &mut bytes)
            .expect("signed payloads are plain data and always encode to CBOR");
        let mut protected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .key_id(self.kid.as_str().as_bytes().to_vec());
        if let Some(content_type) = content_type {
            protected = protected.content_type(content_type.to_string());
        }
        CoseSign1Builder::new()
            .protected(protected.build())
            .payload(bytes)
            .create_signature(&[], |data| self.key.sign(data).to_bytes().to_vec())
            .build()
            .to_tagged_vec()
            .expect("a COSE_Sign1 built here always encodes")
    }
}

/// The server keys a phone trusts, fixed at manufacture or at first hello.
#[derive(Debug, Clone, Default)]
pub struct PinnedKeys {
    keys: Vec<(KeyId, VerifyingKey)>,
}

impl PinnedKeys {
    /// Pins `keys`; several are allowed so that the server can rotate its key.
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> PinnedKeys {
        PinnedKeys {
            keys: keys.into_iter().map(|k| (KeyId::of(&k), k)).collect(),
        }
    }

    /// Verifies a token for `device_id`, refusing one whose sequence is below `highest_seen`.
    ///
    /// Every check is made before any claim is trusted: the envelope, the algorithm, the pinned
    /// key, the strict Ed25519 signature (no malleable or small-order encodings), then the
    /// device, the sequence and the consistency of the claims.
    pub fn verify(
        &self,
        token: &[u8],
        device_id: &str,
        highest_seen: u64,
    ) -> Result<StatusClaims, TokenError> {
        let claims: StatusClaims = self.open(token, None)?;
        if claims.device_id != device_id {
            return Err(TokenError::WrongDevice {
                expected: device_id.to_owned(),
                found: claims.device_id,
            });
        }
        if claims.sequence < highest_seen {
            return Err(TokenError::SequenceRegressed {
                highest_seen,
                found: claims.sequence,
            });
        }
        claims.check()?;
        Ok(claims)
    }

    /// Opens a signed message: the envelope, the algorithm, the content type (`None`: there
    /// must be none), the pinned key and the strict Ed25519 signature, in that order, before
    /// the payload is decoded.
    pub(crate) fn open<T: for<'de> Deserialize<'de>>(
        &self,
        message: &[u8],
        content_type: Option<&str>,
    ) -> Result<T, TokenError> {
        let sign1 = CoseSign1::from_tagged_slice(message)
            .map_err(|e| TokenError::Malformed(e.to_string()))?;
        let header = &sign1.protected.header;
        if header.alg != Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA)) {
            return Err(TokenError::WrongAlgorithm);
        }
        let found_type = match &header.content_type {
            Some(coset::ContentType::Text(text)) => Some(text.as_str()),
            Some(_) => return Err(TokenError::Malformed("unknown content type".into())),
            None => None,
        };
        if found_type != content_type {
            return Err(TokenError::Malformed(format!(
                "content type {found_type:?}, expected {content_type:?}"
            )));
        }
        let kid = String::from_utf8_lossy(&header.key_id).into_owned();
        let (_, key) = self
            .keys
            .iter()
            .find(|(id, _)| id.as_str() == kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
        sign1.verify_signature(&[], |signature, data| {
            let signature =
                Signature::from_slice(signature).map_err(|_| TokenError::BadSignature)?;
            key.verify_strict(data, &signature)
                .map_err(|_| TokenError::BadSignature)
        })?;
        let payload = sign1
            .payload
            .as_deref()
            .ok_or_else(|| TokenError::Malformed("no payload".into()))?;
        ciborium::from_reader(payload).map_err(|e| TokenError::Malformed(e.to_string()))
    }
}

/// The short code a lock screen shows for the token it holds: 8 decimal digits from the
/// SHA-256 of the token's exact bytes. Support looks it up to see which token (state and
/// sequence) the phone is acting on; it proves nothing by itself and needs no secret.
pub fn status_code(token: &[u8]) -> String {
    let digest = Sha256::digest(token);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    format!("{:08}", u64::from_be_bytes(first) % 100_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server stores a token's state by [`TokenState::as_str`]: the same word the claims
    /// carry.
    #[test]
    fn a_token_state_is_named_as_in_the_claims_and_read_back_by_its_name() {
        for state in TokenState::ALL {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
            assert_eq!(state.as_str().parse::<TokenState>(), Ok(state));
        }
        assert!("unlocked".parse::<TokenState>().is_err());
    }
}
