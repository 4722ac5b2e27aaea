//! Minting attestation chains for development: a root that stands in for Google's or a phone
//! maker's, the identity a factory writes into one phone, and the chain that phone's hardware
//! would return for a fresh key.
//!
//! Nothing here weakens [`verify`](super::verify): a minted chain passes only because its root
//! is among the server's trusted roots, and the development root says in its name that it is
//! not for production. The hooks that mint bad chains for tests only change what is signed.

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData,
};
use serde::{Deserialize, Serialize};
use x509_parser::time::ASN1Time;

use super::key_description::{KeyDescriptionFields, is_identifier};
use super::verify::parse_certificate;
use super::{ATTESTATION_EXTENSION_OID, DEVELOPMENT_ROOT_NAME, TrustedRoots};

/// A Julian year in seconds, close enough for certificate lifetimes.
const YEAR: i64 = 31_557_600;
/// How long the development root is valid.
const ROOT_LIFETIME: i64 = 20 * YEAR;
/// How long a factory attestation certificate is valid: longer than a phone's working life.
const FACTORY_LIFETIME: i64 = 10 * YEAR;
/// How long a device key's certificate is dated for; verification ignores leaf dates.
const LEAF_LIFETIME: i64 = 10 * YEAR;

/// Why minting, or reading a minted file, failed.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The key or certificate could not be made or read.
    #[error("could not make or read a key or certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A PEM file or stored identity is not what was expected.
    #[error("{0}")]
    Malformed(String),
    /// An identifier is empty or not printable ASCII, so the hardware could not attest it.
    #[error("identifier {0:?} is empty or not printable ASCII")]
    Identifier(String),
    /// A time cannot be written in a certificate.
    #[error("unix time {0} cannot be written in a certificate")]
    Time(i64),
}

/// A development attestation root: a self-signed P-256 CA that stands in for Google's
/// attestation root, so a simulated phone can attest and a development server can verify.
#[derive(Debug)]
pub struct DevelopmentRoot {
    key: KeyPair,
    certificate: Vec<u8>,
}

impl DevelopmentRoot {
    /// A new root with a fresh key, valid for 20 years from `now` (Unix seconds), whose common
    /// name says that it is a development root, not for production.
    pub fn generate(now: i64) -> Result<DevelopmentRoot, MintError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = ca_params(DEVELOPMENT_ROOT_NAME, BasicConstraints::Unconstrained);
        set_validity(&mut params, now, now.saturating_add(ROOT_LIFETIME))?;
        let certificate = params.self_signed(&key)?.der().to_vec();
        Ok(DevelopmentRoot { key, certificate })
    }

    /// The root's key (PKCS#8 `PRIVATE KEY`) and certificate (`CERTIFICATE`) in one PEM text,
    /// for a development tool to keep in a file. Never give this file to a server: it wants
    /// [`DevelopmentRoot::certificate_pem`] only.
    pub fn to_pem(&self) -> String {
        format!(
            "{}{}",
            self.key.serialize_pem(),
            certificate_pem(&self.certificate)
        )
    }

    /// Reads what [`DevelopmentRoot::to_pem`] wrote, checking that the key is the
    /// certificate's.
    pub fn from_pem(text: &str) -> Result<DevelopmentRoot, MintError> {
        let blocks = pem::parse_many(text)
            .map_err(|e| MintError::Malformed(format!("development root PEM: {e}")))?;
        let only = |label: &str| {
            let mut matching = blocks.iter().filter(|block| block.tag() == label);
            match (matching.next(), matching.next()) {
                (Some(block), None) => Ok(block.contents()),
                _ => Err(MintError::Malformed(format!(
                    "development root PEM: expected exactly one {label} block"
                ))),
            }
        };
        let key = KeyPair::try_from(only("PRIVATE KEY")?)?;
        let certificate = only("CERTIFICATE")?.to_vec();
        check_key_matches(&key, &certificate, "development root")?;
        Ok(DevelopmentRoot { key, certificate })
    }

    /// The root certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    /// The root certificate alone in PEM: what a development server trusts.
    pub fn certificate_pem(&self) -> String {
        certificate_pem(&self.certificate)
    }

    /// A set of trusted roots holding this root alone.
    pub fn trusted_roots(&self) -> TrustedRoots {
        TrustedRoots::from_der([&self.certificate])
            .expect("a certificate made by rcgen parses with x509-parser")
    }

    /// What a phone maker's factory writes into one phone: a fresh P-256 attestation key with
    /// an intermediate CA certificate signed by this root (valid for 10 years from `now`, and
    /// allowed to sign end-entity certificates only), and the phone's identifiers.
    pub fn mint_factory_identity(
        &self,
        imei1: &str,
        imei2: Option<&str>,
        serial: &str,
        now: i64,
    ) -> Result<FactoryIdentity, MintError> {
        check_identifiers(imei1, imei2, serial)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let name = format!("Lien DEVELOPMENT factory attestation key {serial}");
        let mut params = ca_params(&name, BasicConstraints::Constrained(0));
        set_validity(&mut params, now, now.saturating_add(FACTORY_LIFETIME))?;
        let issuer = Issuer::from_ca_cert_der(&self.certificate.as_slice().into(), &self.key)?;
        let certificate = params.signed_by(&key, &issuer)?.der().to_vec();
        Ok(FactoryIdentity {
            imei1: imei1.to_owned(),
            imei2: imei2.map(str::to_owned),
            serial: serial.to_owned(),
            key,
            certificate,
            root_certificate: self.certificate.clone(),
        })
    }
}

/// The attestation identity of one simulated phone, as its factory provisioned it.
///
/// It serialises (with serde, e.g. to JSON) to its identifiers and three PEM texts, so a
/// simulated phone can keep it in a file; reading it back checks that the key is the
/// certificate's.
#[derive(Debug)]
pub struct FactoryIdentity {
    imei1: String,
    imei2: Option<String>,
    serial: String,
    key: KeyPair,
    certificate: Vec<u8>,
    root_certificate: Vec<u8>,
}

/// A freshly attested device key, as the phone's hardware returns it.
pub struct AttestedKey {
    /// The chain, DER, leaf first: `[leaf, factory certificate, root certificate]`.
    pub chain: Vec<Vec<u8>>,
    /// The device key, PKCS#8 DER: the phone signs with it after hello.
    pub device_key_pkcs8: Vec<u8>,
}

impl std::fmt::Debug for AttestedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestedKey")
            .field("chain", &self.chain)
            .field("device_key_pkcs8", &"[secret key elided]")
            .finish()
    }
}

impl FactoryIdentity {
    /// The phone's first IMEI.
    pub fn imei1(&self) -> &str {
        &self.imei1
    }

    /// The phone's second IMEI, if it has two SIM slots.
    pub fn imei2(&self) -> Option<&str> {
        self.imei2.as_deref()
    }

    /// The phone's serial number.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The factory's intermediate certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    /// Attests a fresh P-256 device key for `challenge` as the phone's TEE would: a leaf
    /// certificate (not a CA) dated from `now`, carrying the KeyDescription of
    /// [`KeyDescriptionFields::for_phone`], signed by the factory key.
    pub fn attest(&self, challenge: &[u8], now: i64) -> Result<AttestedKey, MintError> {
        self.attest_with(challenge, now, |_| {})
    }

    /// Like [`FactoryIdentity::attest`], but lets `edit` change the KeyDescription before it is
    /// encoded and signed: for tests that need each kind of bad attestation.
    pub fn attest_with(
        &self,
        challenge: &[u8],
        now: i64,
        edit: impl FnOnce(&mut KeyDescriptionFields),
    ) -> Result<AttestedKey, MintError> {
        let mut fields = KeyDescriptionFields::for_phone(
            challenge,
            &self.imei1,
            self.imei2.as_deref(),
            &self.serial,
        );
        edit(&mut fields);
        self.attest_with_extension(Some(&fields.to_der()), now)
    }

    /// Attests a fresh device key whose leaf carries exactly `key_description` as the
    /// attestation extension's content, or no extension at all: for tests of malformed
    /// extensions.
    pub fn attest_with_extension(
        &self,
        key_description: Option<&[u8]>,
        now: i64,
    ) -> Result<AttestedKey, MintError> {
        let device_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        // Android's own subject for Keystore keys.
        params.distinguished_name = common_name("Android Keystore Key");
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params, now, now.saturating_add(LEAF_LIFETIME))?;
        params.custom_extensions = key_description
            .map(|der| CustomExtension::from_oid_content(&ATTESTATION_EXTENSION_OID, der.to_vec()))
            .into_iter()
            .collect();
        let issuer = Issuer::from_ca_cert_der(&self.certificate.as_slice().into(), &self.key)?;
        let leaf = params.signed_by(&device_key, &issuer)?;
        Ok(AttestedKey {
            chain: vec![
                leaf.der().to_vec(),
                self.certificate.clone(),
                self.root_certificate.clone(),
            ],
            device_key_pkcs8: device_key.serialize_der(),
        })
    }
}

/// How a [`FactoryIdentity`] is stored.
#[derive(Serialize, Deserialize)]
struct FactoryIdentityFile {
    imei1: String,
    imei2: Option<String>,
    serial: String,
    /// The factory attestation key, PKCS#8 PEM.
    key_pem: String,
    /// The factory's intermediate certificate, PEM.
    certificate_pem: String,
    /// The root certificate that signed it, PEM.
    root_certificate_pem: String,
}

impl Serialize for FactoryIdentity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        FactoryIdentityFile {
            imei1: self.imei1.clone(),
            imei2: self.imei2.clone(),
            serial: self.serial.clone(),
            key_pem: self.key.serialize_pem(),
            certificate_pem: certificate_pem(&self.certificate),
            root_certificate_pem: certificate_pem(&self.root_certificate),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for FactoryIdentity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let file = FactoryIdentityFile::deserialize(deserializer)?;
        FactoryIdentity::try_from(file).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<FactoryIdentityFile> for FactoryIdentity {
    type Error = MintError;

    fn try_from(file: FactoryIdentityFile) -> Result<FactoryIdentity, MintError> {
        check_identifiers(&file.imei1, file.imei2.as_deref(), &file.serial)?;
        let key = KeyPair::from_pem(&file.key_pem)?;
        let certificate = certificate_der(&file.certificate_pem)?;
        check_key_matches(&key, &certificate, "factory identity")?;
        Ok(FactoryIdentity {
            imei1: file.imei1,
            imei2: file.imei2,
            serial: file.serial,
            key,
            certificate,
            root_certificate: certificate_der(&file.root_certificate_pem)?,
        })
    }
}

/// Refuses identifiers that [`verify`](super::verify) would not read back unchanged.
fn check_identifiers(imei1: &str, imei2: Option<&str>, serial: &str) -> Result<(), MintError> {
    match [Some(imei1), imei2, Some(serial)]
        .into_iter()
        .flatten()
        .find(|id| !is_identifier(id))
    {
        Some(bad) => Err(MintError::Identifier(bad.to_owned())),
        None => Ok(()),
    }
}

/// Parameters for a CA certificate named `name`, allowed to sign certificates only.
fn ca_params(name: &str, constraints: BasicConstraints) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(name);
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn common_name(name: &str) -> DistinguishedName {
    let mut distinguished_name = DistinguishedName::new();
    distinguished_name.push(DnType::CommonName, name);
    distinguished_name
}

/// Dates `params` from `from` to `until`, both Unix seconds.
fn set_validity(params: &mut CertificateParams, from: i64, until: i64) -> Result<(), MintError> {
    let at = |secs| {
        ASN1Time::from_timestamp(secs)
            .map(|t| t.to_datetime())
            .map_err(|_| MintError::Time(secs))
    };
    params.not_before = at(from)?;
    params.not_after = at(until)?;
    Ok(())
}

fn certificate_pem(der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der), config)
}

/// The DER of the single `CERTIFICATE` block in `text`.
fn certificate_der(text: &str) -> Result<Vec<u8>, MintError> {
    let block = pem::parse(text).map_err(|e| MintError::Malformed(format!("certificate: {e}")))?;
    if block.tag() != "CERTIFICATE" {
        return Err(MintError::Malformed(format!(
            "a {} block where a CERTIFICATE belongs",
            block.tag()
        )));
    }
    Ok(block.into_contents())
}

/// Refuses a key that is not the one `certificate` certifies, so a file whose key and
/// certificate were mixed up fails when read rather than when a server refuses its chains.
fn check_key_matches(key: &KeyPair, certificate: &[u8], what: &str) -> Result<(), MintError> {
    let parsed = parse_certificate(certificate)
        .ok_or_else(|| MintError::Malformed(format!("{what}: the certificate does not parse")))?;
    if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(MintError::Malformed(format!(
            "{what}: the key is not the certificate's"
        )));
    }
    Ok(())
}
