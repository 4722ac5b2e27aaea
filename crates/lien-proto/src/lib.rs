//! Lien's wire formats: the signed status token a phone verifies offline, and the one-time
//! codes that unlock a phone with no connection. With the `attestation` feature, the
//! `attestation` module verifies the Android key attestation a phone presents at hello (and,
//! with `attestation-mint`, mints development chains in the same format).
//!
//! Everything here is shared by the server and the phone, and is pinned down by test vectors
//! in `vectors/` that a phone-side implementation in another language can check itself against.

#[cfg(feature = "attestation")]
pub mod attestation;
pub mod device_api;
pub mod hello;
pub mod ocra;
pub mod token;

pub mod contact;

pub use token::{
    DeviceRestriction, EmergencyAllowance, KeyId, Lease, LeaseStatus, PinnedKeys, ScreenText,
    StatusClaims, TokenError, TokenSigner, TokenState, UnknownTokenState, WireMoney, status_code,
};
