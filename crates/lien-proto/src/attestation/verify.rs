//! Verifying an attestation chain against the roots the server trusts.

use subtle::ConstantTimeEq;
use x509_parser::asn1_rs::Oid;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::key_description;
use super::{ATTESTATION_EXTENSION_OID, DEVELOPMENT_ROOT_NAME, SecurityLevel};

/// The most certificates a chain may hold. Android's are 3 or 4 long (5 with remote key
/// provisioning); the limit bounds the work an unauthenticated hello can cause.
pub const MAX_CHAIN_LEN: usize = 8;

/// The largest certificate accepted, in bytes of DER. Attestation certificates are about
/// 0.5 to 1.5 KiB; Google's RSA-4096 root is the largest at about 1.4 KiB.
pub const MAX_CERTIFICATE_LEN: usize = 8 * 1024;

/// Why a chain is refused. Each variant is one check of [`verify`], in the order made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    /// The chain holds no certificate.
    #[error("the attestation chain is empty")]
    EmptyChain,
    /// The chain holds more than [`MAX_CHAIN_LEN`] certificates.
    #[error("the attestation chain holds {length} certificates, more than {MAX_CHAIN_LEN}")]
    ChainTooLong {
        /// How many certificates it holds.
        length: usize,
    },
    /// A certificate is longer than [`MAX_CERTIFICATE_LEN`].
    #[error("certificate {index} is {length} bytes, more than {MAX_CERTIFICATE_LEN}")]
    CertificateTooLarge {
        /// Its position in the chain, the leaf being 0.
        index: usize,
        /// Its length in bytes.
        length: usize,
    },
    /// A certificate is not a single DER X.509 certificate.
    #[error("certificate {index} does not parse")]
    MalformedCertificate {
        /// Its position in the chain, the leaf being 0.
        index: usize,
    },
    /// A certificate's signature does not verify under the next certificate's key, or uses an
    /// algorithm that is not accepted (SHA-1).
    #[error("the signature of certificate {index} does not verify under certificate {}'s key", index + 1)]
    BadSignature {
        /// The position of the certificate whose signature fails, the leaf being 0.
        index: usize,
    },
    /// The last certificate is neither a trusted root nor signed by one.
    #[error("the attestation chain does not lead to a trusted root")]
    UntrustedRoot,
    /// A certificate other than the leaf is not yet or no longer valid.
    #[error("certificate {index} is outside its validity period")]
    OutsideValidity {
        /// Its position in the chain, the leaf being 0.
        index: usize,
    },
    /// The leaf has no attestation extension.
    #[error("the leaf certificate has no attestation extension")]
    NoAttestationExtension,
    /// A certificate other than the leaf has an attestation extension: the leaf was signed by
    /// an attested key rather than by the attestation hardware's own key.
    #[error("certificate {index} is not the leaf but carries an attestation extension")]
    AttestationExtensionOutsideLeaf {
        /// Its position in the chain.
        index: usize,
    },
    /// The attestation extension is not a `KeyDescription` this verifier can read.
    #[error("the KeyDescription is malformed: {0}")]
    MalformedKeyDescription(String),
    /// The key was attested by Android's software keystore, not by secure hardware.
    #[error("the key was attested in software, not in secure hardware")]
    SoftwareSecurityLevel,
    /// The attestation was made for another challenge.
    #[error("the attestation is for another challenge")]
    ChallengeMismatch,
    /// The hardware attested no IMEI (identifiers in `softwareEnforced` do not count).
    #[error("the hardware attested no IMEI")]
    NoImei,
}

impl AttestationError {
    /// A stable short code for the error, used in the test vectors and in the server's logs.
    pub fn code(&self) -> &'static str {
        match self {
            AttestationError::EmptyChain => "empty-chain",
            AttestationError::ChainTooLong { .. } => "chain-too-long",
            AttestationError::CertificateTooLarge { .. } => "certificate-too-large",
            AttestationError::MalformedCertificate { .. } => "malformed-certificate",
            AttestationError::BadSignature { .. } => "bad-signature",
            AttestationError::UntrustedRoot => "untrusted-root",
            AttestationError::OutsideValidity { .. } => "outside-validity",
            AttestationError::NoAttestationExtension => "no-attestation-extension",
            AttestationError::AttestationExtensionOutsideLeaf { .. } => {
                "attestation-extension-outside-leaf"
            }
            AttestationError::MalformedKeyDescription(_) => "malformed-key-description",
            AttestationError::SoftwareSecurityLevel => "software-security-level",
            AttestationError::ChallengeMismatch => "challenge-mismatch",
            AttestationError::NoImei => "no-imei",
        }
    }
}

/// Why a set of trusted roots could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustedRootsError {
    /// No root was given: a verifier that trusts nothing is a configuration mistake.
    #[error("no trusted root was given")]
    NoRoots,
    /// A root is not a single DER X.509 certificate.
    #[error("trusted root {index} does not parse as a certificate")]
    MalformedCertificate {
        /// Its position among the roots given.
        index: usize,
    },
    /// The PEM text is malformed, or holds a block other than a certificate (such as the
    /// private key of a development root, which a server must never hold).
    #[error("trusted roots PEM: {0}")]
    Pem(String),
}

/// The attestation roots a server trusts, each known by its SubjectPublicKeyInfo.
///
/// Roots are matched by their exact public key, as Google advises, not by name or by the
/// bytes of a particular certificate, so a root re-issued with the same key still matches.
#[derive(Debug, Clone)]
pub struct TrustedRoots {
    /// The DER SubjectPublicKeyInfo of each root.
    keys: Vec<Vec<u8>>,
}

impl TrustedRoots {
    /// Trusts the roots in `certificates`, each DER; refuses one that does not parse.
    pub fn from_der<C: AsRef<[u8]>>(
        certificates: impl IntoIterator<Item = C>,
    ) -> Result<TrustedRoots, TrustedRootsError> {
        let keys = certificates
            .into_iter()
            .enumerate()
            .map(|(index, der)| {
                parse_certificate(der.as_ref())
                    .map(|root| root.public_key().raw.to_vec())
                    .ok_or(TrustedRootsError::MalformedCertificate { index })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(TrustedRootsError::NoRoots);
        }
        Ok(TrustedRoots { keys })
    }

    /// Trusts every `CERTIFICATE` block of `pem`; refuses any other block, so a file that
    /// also holds a private key is not silently accepted.
    pub fn from_pem(pem: &str) -> Result<TrustedRoots, TrustedRootsError> {
        let blocks = Pem::iter_from_buffer(pem.as_bytes())
            .map(|block| {
                let block = block.map_err(|e| TrustedRootsError::Pem(e.to_string()))?;
                if block.label != "CERTIFICATE" {
                    return Err(TrustedRootsError::Pem(format!(
                        "a {} block where only CERTIFICATE blocks belong",
                        block.label
                    )));
                }
                Ok(block.contents)
            })
            .collect::<Result<Vec<_>, _>>()?;
        TrustedRoots::from_der(blocks)
    }

    /// Whether any certificate in `pem` is a Lien development root, by the name every one
    /// carries: a production server must not trust one, since whoever holds its key (any
    /// development data directory) can mint an attestation for any IMEI.
    pub fn pem_holds_development_root(pem: &str) -> bool {
        Pem::iter_from_buffer(pem.as_bytes())
            .filter_map(Result::ok)
            .filter_map(|block| {
                parse_certificate(&block.contents).map(|certificate| {
                    certificate
                        .subject()
                        .to_string()
                        .contains(DEVELOPMENT_ROOT_NAME)
                })
            })
            .any(|development| development)
    }

    /// Whether `certificate` is signed by a trusted root, or (only if `may_be_root`) is one,
    /// known by its key. The leaf may never be taken for a root by its key: a lone certificate
    /// that merely carries a root's public key has had no signature checked at all, and anyone
    /// can write one.
    fn anchor(&self, certificate: &X509Certificate, may_be_root: bool) -> bool {
        let key = certificate.public_key().raw;
        self.keys.iter().any(|root| {
            (may_be_root && root.as_slice() == key)
                || SubjectPublicKeyInfo::from_der(root)
                    .is_ok_and(|(_, root)| signed_by(certificate, &root))
        })
    }
}

/// What a verified attestation proves: the phone's hardware identifiers and the key it made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    /// The IMEI from `hardwareEnforced` (`attestationIdImei`, tag 714), as attested; the
    /// server checks its form and compares it with the device record.
    pub imei1: String,
    /// The second IMEI of a dual-SIM phone (`attestationIdSecondImei`, tag 723).
    pub imei2: Option<String>,
    /// The serial number (`attestationIdSerial`, tag 713).
    pub serial: Option<String>,
    /// Where the attestation was made: TrustedEnvironment or StrongBox.
    pub security_level: SecurityLevel,
    /// The leaf's DER SubjectPublicKeyInfo: the device key the server binds to the phone.
    pub public_key_spki: Vec<u8>,
    /// Every certificate's serial number, leaf first, as Google's attestation status list
    /// names them (see [`certificate_serial`]): the server refuses a chain holding a revoked one.
    pub certificate_serials: Vec<String>,
}

/// Verifies an attestation `chain` (DER certificates, leaf first) for `challenge` at `now`
/// (Unix seconds), and returns what it attests.
///
/// The checks are made in this order, the first failure giving the error:
/// 1. the chain holds 1 to [`MAX_CHAIN_LEN`] certificates ([`AttestationError::EmptyChain`],
///    [`AttestationError::ChainTooLong`]);
/// 2. each is at most [`MAX_CERTIFICATE_LEN`] bytes and parses as one DER certificate with
///    nothing after it ([`AttestationError::CertificateTooLarge`],
///    [`AttestationError::MalformedCertificate`]);
/// 3. each certificate's signature verifies under the key of the one after it, from the leaf
///    up, SHA-1 being refused ([`AttestationError::BadSignature`]);
/// 4. the last certificate has the key of a trusted root, or its signature verifies under one
///    ([`AttestationError::UntrustedRoot`]); a leaf alone must be signed by one, since a
///    certificate that only carries a root's key proves nothing;
/// 5. every certificate but the leaf is valid at `now` ([`AttestationError::OutsideValidity`]).
///    The leaf's dates are not checked: Android writes fixed or app-chosen dates there
///    (by default 1970 to 2048), and a phone's clock may be wrong when it makes the key;
/// 6. the leaf carries the attestation extension and no other certificate does
///    ([`AttestationError::NoAttestationExtension`],
///    [`AttestationError::AttestationExtensionOutsideLeaf`]). Any app can have a key of its own
///    attested and then sign a forged leaf with it; that key's certificate carries an
///    extension, so the forgery is refused. Chains extended with an Android 12 ATTEST_KEY
///    look the same and are refused too: Lien's agent does not use one;
/// 7. the extension is a readable `KeyDescription` ([`AttestationError::MalformedKeyDescription`]);
/// 8. both security levels are TrustedEnvironment or StrongBox
///    ([`AttestationError::SoftwareSecurityLevel`]);
/// 9. the attested challenge equals `challenge`, compared in constant time
///    ([`AttestationError::ChallengeMismatch`]);
/// 10. `hardwareEnforced` holds an IMEI ([`AttestationError::NoImei`]).
///
/// Revocation (Google's status list) is not checked here: it needs the network, so it is the
/// server's to fetch and apply to [`Attested::certificate_serials`].
pub fn verify(
    chain: &[Vec<u8>],
    roots: &TrustedRoots,
    challenge: &[u8],
    now: i64,
) -> Result<Attested, AttestationError> {
    if chain.is_empty() {
        return Err(AttestationError::EmptyChain);
    }
    if chain.len() > MAX_CHAIN_LEN {
        return Err(AttestationError::ChainTooLong {
            length: chain.len(),
        });
    }
    let certificates = chain
        .iter()
        .enumerate()
        .map(|(index, der)| {
            if der.len() > MAX_CERTIFICATE_LEN {
                return Err(AttestationError::CertificateTooLarge {
                    index,
                    length: der.len(),
                });
            }
            parse_certificate(der).ok_or(AttestationError::MalformedCertificate { index })
        })
        .collect::<Result<Vec<_>, _>>()?;

    for (index, pair) in certificates.windows(2).enumerate() {
        if !signed_by(&pair[0], pair[1].public_key()) {
            return Err(AttestationError::BadSignature { index });
        }
    }
    let (leaf, issuers) = certificates
        .split_first()
        .expect("the chain was checked to be non-empty");
    let (top, top_is_issuer) = match issuers.last() {
        Some(issuer) => (issuer, true),
        None => (leaf, false),
    };
    if !roots.anchor(top, top_is_issuer) {
        return Err(AttestationError::UntrustedRoot);
    }

    // A `now` too far out to be a certificate time is outside every validity period.
    let at = ASN1Time::from_timestamp(now).ok();
    for (index, certificate) in certificates.iter().enumerate().skip(1) {
        if !at.is_some_and(|at| certificate.validity().is_valid_at(at)) {
            return Err(AttestationError::OutsideValidity { index });
        }
    }

    let oid = Oid::from(&ATTESTATION_EXTENSION_OID).expect("the attestation OID is well-formed");
    let extension = leaf
        .get_extension_unique(&oid)
        .map_err(|_| {
            AttestationError::MalformedKeyDescription("two attestation extensions".into())
        })?
        .ok_or(AttestationError::NoAttestationExtension)?;
    if let Some(index) = issuers
        .iter()
        .position(|certificate| certificate.iter_extensions().any(|e| e.oid == oid))
    {
        return Err(AttestationError::AttestationExtensionOutsideLeaf { index: index + 1 });
    }

    let description = key_description::parse(extension.value)
        .map_err(AttestationError::MalformedKeyDescription)?;
    if description.attestation_security_level == SecurityLevel::Software
        || description.key_mint_security_level == SecurityLevel::Software
    {
        return Err(AttestationError::SoftwareSecurityLevel);
    }
    if !bool::from(description.challenge.ct_eq(challenge)) {
        return Err(AttestationError::ChallengeMismatch);
    }
    let identifiers = description.hardware_enforced;
    Ok(Attested {
        imei1: identifiers.imei.ok_or(AttestationError::NoImei)?,
        imei2: identifiers.second_imei,
        serial: identifiers.serial,
        security_level: description.attestation_security_level,
        public_key_spki: leaf.public_key().raw.to_vec(),
        certificate_serials: certificates.iter().map(serial_of).collect(),
    })
}

/// A DER certificate's serial number as Google's attestation status list writes it: lower-case
/// hex without leading zeros. `None` if `der` is not one certificate.
pub fn certificate_serial(der: &[u8]) -> Option<String> {
    parse_certificate(der).as_ref().map(serial_of)
}

fn serial_of(certificate: &X509Certificate) -> String {
    signed_hex(certificate.raw_serial())
}

/// A DER INTEGER's content octets as Java's `BigInteger.toString(16)` writes the number, which
/// Google's list is written with: lower-case hex without leading zeros, and for a negative one
/// (first bit set: RFC 5280 forbids it, some factories wrote it) `-` and its magnitude.
/// x509-parser's own `serial` reads the octets as unsigned, which would miss those.
fn signed_hex(octets: &[u8]) -> String {
    use x509_parser::num_bigint::BigUint;
    let unsigned = BigUint::from_bytes_be(octets);
    if octets.first().is_some_and(|b| b & 0x80 != 0) {
        let whole = BigUint::from(1u8) << (8 * octets.len());
        format!("-{}", (whole - unsigned).to_str_radix(16))
    } else {
        unsigned.to_str_radix(16)
    }
}

/// Parses one DER certificate, refusing bytes after it.
pub(crate) fn parse_certificate(der: &[u8]) -> Option<X509Certificate<'_>> {
    match X509Certificate::from_der(der) {
        Ok(([], certificate)) => Some(certificate),
        _ => None,
    }
}

/// Whether `certificate`'s signature verifies under `key`. SHA-1 is refused: attestation
/// chains are signed with SHA-256 or stronger, and a SHA-1 collision would let one signed
/// certificate stand for another.
fn signed_by(certificate: &X509Certificate, key: &SubjectPublicKeyInfo) -> bool {
    let algorithm = &certificate.signature_algorithm.algorithm;
    if *algorithm == OID_PKCS1_SHA1WITHRSA || *algorithm == OID_SHA1_WITH_RSA {
        return false;
    }
    certificate.verify_signature(Some(key)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::signed_hex;

    #[test]
    fn serials_are_written_as_javas_big_integer_writes_them() {
        assert_eq!(signed_hex(&[0x00, 0xab, 0x01]), "ab01", "no leading zeros");
        assert_eq!(signed_hex(&[0x2c, 0x8c]), "2c8c");
        assert_eq!(signed_hex(&[0x00]), "0");
        assert_eq!(signed_hex(&[0xff]), "-1");
        assert_eq!(signed_hex(&[0xff, 0x01]), "-ff");
        assert_eq!(signed_hex(&[0x80, 0x00]), "-8000");
    }
}
