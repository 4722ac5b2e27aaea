//! Android key and ID attestation: how a phone proves at hello that it is the phone with a
//! given IMEI.
//!
//! The phone generates a key in its secure hardware and asks for it to be attested. The
//! hardware returns an X.509 chain, leaf first, whose leaf certifies the new key and carries
//! the attestation extension (OID 1.3.6.1.4.1.11129.2.1.17): a DER `KeyDescription` that holds
//! the server's challenge and, in `hardwareEnforced`, the identifiers the factory wrote into
//! the hardware (serial, IMEI, second IMEI). Lien reads exactly Android's format, so a phone
//! maker can use what its phones already produce; the server trusts whichever roots it is
//! configured with (Google's, a maker's, or a development root).
//!
//! The invariant: [`verify`] returns identifiers only from a chain that leads to a trusted
//! root, whose leaf alone carries an attestation extension, made in hardware for this exact
//! challenge. It never decides whether those identifiers are the ones expected: the server
//! compares the returned IMEI with the device record, and binds the returned public key.
//!
//! With the `attestation-mint` feature, [`DevelopmentRoot`] and [`FactoryIdentity`] produce
//! chains in the same format for the phone simulator and tests; a real phone never mints.

/// The development root's common name: anyone who finds it in a trust store knows what it is.
pub const DEVELOPMENT_ROOT_NAME: &str = "Lien DEVELOPMENT attestation root - not for production";

mod key_description;
#[cfg(feature = "attestation-mint")]
mod mint;
mod verify;

#[cfg(feature = "attestation-mint")]
pub use key_description::{AuthorizationField, KeyDescriptionFields};
#[cfg(feature = "attestation-mint")]
pub use mint::{AttestedKey, DevelopmentRoot, FactoryIdentity, MintError};
pub use verify::{
    AttestationError, Attested, MAX_CERTIFICATE_LEN, MAX_CHAIN_LEN, TrustedRoots,
    TrustedRootsError, certificate_serial, verify,
};

/// The arcs of the attestation extension's OID, 1.3.6.1.4.1.11129.2.1.17.
pub const ATTESTATION_EXTENSION_OID: [u64; 10] = [1, 3, 6, 1, 4, 1, 11129, 2, 1, 17];

/// Where the attestation was made, as the `SecurityLevel` ENUMERATED of the `KeyDescription`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityLevel {
    /// Android's own software keystore (0): it proves nothing about the phone, so is refused.
    Software,
    /// A trusted execution environment beside the main OS (1).
    TrustedEnvironment,
    /// A separate secure chip (2).
    StrongBox,
}

impl SecurityLevel {
    /// The level for an ENUMERATED value, or `None` for a value Android does not define.
    pub fn from_value(value: u32) -> Option<SecurityLevel> {
        match value {
            0 => Some(SecurityLevel::Software),
            1 => Some(SecurityLevel::TrustedEnvironment),
            2 => Some(SecurityLevel::StrongBox),
            _ => None,
        }
    }

    /// The ENUMERATED value written in a `KeyDescription`.
    pub fn value(self) -> u32 {
        match self {
            SecurityLevel::Software => 0,
            SecurityLevel::TrustedEnvironment => 1,
            SecurityLevel::StrongBox => 2,
        }
    }
}
