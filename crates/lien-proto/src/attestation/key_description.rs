//! The `KeyDescription` inside the attestation extension, read (and, for minting, written)
//! with the ASN.1 crate that x509-parser re-exports, so only the schema is ours.
//!
//! ```text
//! KeyDescription ::= SEQUENCE {
//!     attestationVersion INTEGER, attestationSecurityLevel SecurityLevel,
//!     keyMintVersion INTEGER, keyMintSecurityLevel SecurityLevel,
//!     attestationChallenge OCTET STRING, uniqueId OCTET STRING,
//!     softwareEnforced AuthorizationList, hardwareEnforced AuthorizationList, ... }
//! AuthorizationList ::= SEQUENCE { ... [713] serial, [714] IMEI, [723] second IMEI ... }
//! ```
//!
//! Reading is lenient where phones differ and strict where the meaning would be in doubt.
//! Some phones write an AuthorizationList's fields out of tag order and every Android version
//! adds tags, so each list is walked element by element, the identifier tags are picked by
//! number and every other element is skipped. What is refused is DER that does not parse,
//! and, in `hardwareEnforced`, an identifier that is not an EXPLICIT OCTET STRING of printable
//! ASCII or an identifier tag that appears twice: two IMEIs leave no honest way to choose.

use x509_parser::asn1_rs::{Any, Class, Enumerated, FromDer, Integer, OctetString, Sequence};
#[cfg(feature = "attestation-mint")]
use x509_parser::asn1_rs::{Header, Length, Tag, ToDer};

use super::SecurityLevel;

/// `attestationIdSerial [713] EXPLICIT OCTET STRING`.
const TAG_SERIAL: u32 = 713;
/// `attestationIdImei [714] EXPLICIT OCTET STRING`.
const TAG_IMEI: u32 = 714;
/// `attestationIdSecondImei [723] EXPLICIT OCTET STRING`.
const TAG_SECOND_IMEI: u32 = 723;

/// What verification needs from a `KeyDescription`.
#[derive(Debug)]
pub(crate) struct KeyDescription {
    pub(crate) attestation_security_level: SecurityLevel,
    pub(crate) key_mint_security_level: SecurityLevel,
    pub(crate) challenge: Vec<u8>,
    /// Only these are attested by the hardware; `softwareEnforced` is parsed for its
    /// structure and otherwise ignored, since Android itself could write anything there.
    pub(crate) hardware_enforced: Identifiers,
}

/// The device identifiers found in one AuthorizationList.
#[derive(Debug, Default)]
pub(crate) struct Identifiers {
    pub(crate) serial: Option<String>,
    pub(crate) imei: Option<String>,
    pub(crate) second_imei: Option<String>,
}

/// Parses the DER content of the attestation extension, saying what is wrong if it fails.
pub(crate) fn parse(der: &[u8]) -> Result<KeyDescription, String> {
    let (rest, description) =
        Sequence::from_der(der).map_err(|e| format!("KeyDescription: {e}"))?;
    if !rest.is_empty() {
        return Err("bytes after the KeyDescription".into());
    }
    let mut fields: &[u8] = &description.content;
    let _: Integer = next(&mut fields, "attestationVersion")?;
    let attestation_security_level =
        security_level(next(&mut fields, "attestationSecurityLevel")?)?;
    let _: Integer = next(&mut fields, "keyMintVersion")?;
    let key_mint_security_level = security_level(next(&mut fields, "keyMintSecurityLevel")?)?;
    let challenge: OctetString = next(&mut fields, "attestationChallenge")?;
    let _: OctetString = next(&mut fields, "uniqueId")?;
    let software_enforced: Sequence = next(&mut fields, "softwareEnforced")?;
    let hardware_enforced: Sequence = next(&mut fields, "hardwareEnforced")?;
    // Fields that later attestation versions append after hardwareEnforced are not needed.
    // softwareEnforced must be well-formed DER, but nothing in it is read.
    elements(&software_enforced.content, "softwareEnforced")?;
    let hardware_enforced = elements(&hardware_enforced.content, "hardwareEnforced")?;
    Ok(KeyDescription {
        attestation_security_level,
        key_mint_security_level,
        challenge: challenge.as_ref().to_vec(),
        hardware_enforced: identifiers(&hardware_enforced, "hardwareEnforced")?,
    })
}

/// Reads the next element of `input` as a `T` and moves `input` past it.
fn next<'a, T: FromDer<'a>>(input: &mut &'a [u8], field: &str) -> Result<T, String> {
    let (rest, value) = T::from_der(input).map_err(|e| format!("{field}: {e}"))?;
    *input = rest;
    Ok(value)
}

fn security_level(value: Enumerated) -> Result<SecurityLevel, String> {
    SecurityLevel::from_value(value.0).ok_or_else(|| format!("unknown security level {}", value.0))
}

/// Every element of an AuthorizationList's content, refusing DER that does not parse.
fn elements<'a>(mut list: &'a [u8], name: &str) -> Result<Vec<Any<'a>>, String> {
    let mut elements = Vec::new();
    while !list.is_empty() {
        elements.push(next(&mut list, name)?);
    }
    Ok(elements)
}

/// Picks the identifiers out of an AuthorizationList's elements, wherever they are.
fn identifiers(elements: &[Any], name: &str) -> Result<Identifiers, String> {
    let mut found = Identifiers::default();
    for element in elements {
        if element.class() != Class::ContextSpecific {
            continue;
        }
        let (slot, field) = match element.tag().0 {
            TAG_SERIAL => (&mut found.serial, "attestationIdSerial"),
            TAG_IMEI => (&mut found.imei, "attestationIdImei"),
            TAG_SECOND_IMEI => (&mut found.second_imei, "attestationIdSecondImei"),
            _ => continue,
        };
        if slot.is_some() {
            return Err(format!("{name}: {field} appears twice"));
        }
        *slot = Some(identifier(element).map_err(|e| format!("{name}: {field}: {e}"))?);
    }
    Ok(found)
}

/// The text of an `[n] EXPLICIT OCTET STRING` identifier.
fn identifier(element: &Any) -> Result<String, String> {
    if !element.header.is_constructed() {
        return Err("not EXPLICIT (the tag must wrap an OCTET STRING)".into());
    }
    let (rest, octets) = OctetString::from_der(element.data).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err("bytes after the OCTET STRING".into());
    }
    if !is_printable_ascii(octets.as_ref()) {
        return Err("not printable ASCII".into());
    }
    Ok(String::from_utf8_lossy(octets.as_ref()).into_owned())
}

/// Whether `bytes` are an identifier's: at least one byte, all printable ASCII.
fn is_printable_ascii(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|b| (b' '..=b'~').contains(b))
}

/// Whether `text` can be written as an identifier that [`parse`] reads back unchanged.
#[cfg(feature = "attestation-mint")]
pub(crate) fn is_identifier(text: &str) -> bool {
    is_printable_ascii(text.as_bytes())
}

/// The fields of a `KeyDescription` as a phone's hardware writes them, for minting.
///
/// [`FactoryIdentity::attest_with`](super::FactoryIdentity::attest_with) hands these to the
/// caller before encoding, so that a test can mint each kind of bad attestation; the lists are
/// encoded in the order given, which lets a test put tags out of order.
#[cfg(feature = "attestation-mint")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDescriptionFields {
    /// `attestationVersion`: 300 for KeyMint 3 (Android 14).
    pub attestation_version: u32,
    /// `attestationSecurityLevel`.
    pub attestation_security_level: SecurityLevel,
    /// `keyMintVersion`.
    pub key_mint_version: u32,
    /// `keyMintSecurityLevel`.
    pub key_mint_security_level: SecurityLevel,
    /// `attestationChallenge`: the server's challenge.
    pub attestation_challenge: Vec<u8>,
    /// `uniqueId`: empty unless the app asked for one, which Lien does not.
    pub unique_id: Vec<u8>,
    /// `softwareEnforced`, in encoding order.
    pub software_enforced: Vec<AuthorizationField>,
    /// `hardwareEnforced`, in encoding order.
    pub hardware_enforced: Vec<AuthorizationField>,
}

#[cfg(feature = "attestation-mint")]
impl KeyDescriptionFields {
    /// What a phone's TEE attests for a key made with ID attestation: version 300, both
    /// levels TrustedEnvironment, the challenge, an empty uniqueId, nothing in
    /// `softwareEnforced`, and the serial, IMEI and second IMEI (if any) in `hardwareEnforced`.
    pub fn for_phone(
        challenge: &[u8],
        imei1: &str,
        imei2: Option<&str>,
        serial: &str,
    ) -> KeyDescriptionFields {
        let mut hardware_enforced = vec![
            AuthorizationField::octets(AuthorizationField::SERIAL, serial.as_bytes()),
            AuthorizationField::octets(AuthorizationField::IMEI, imei1.as_bytes()),
        ];
        if let Some(imei2) = imei2 {
            hardware_enforced.push(AuthorizationField::octets(
                AuthorizationField::SECOND_IMEI,
                imei2.as_bytes(),
            ));
        }
        KeyDescriptionFields {
            attestation_version: 300,
            attestation_security_level: SecurityLevel::TrustedEnvironment,
            key_mint_version: 300,
            key_mint_security_level: SecurityLevel::TrustedEnvironment,
            attestation_challenge: challenge.to_vec(),
            unique_id: Vec::new(),
            software_enforced: Vec::new(),
            hardware_enforced,
        }
    }

    /// The DER `KeyDescription`: the content of the attestation extension.
    pub fn to_der(&self) -> Vec<u8> {
        let mut content = Vec::new();
        write(&self.attestation_version, &mut content);
        write(
            &Enumerated::new(self.attestation_security_level.value()),
            &mut content,
        );
        write(&self.key_mint_version, &mut content);
        write(
            &Enumerated::new(self.key_mint_security_level.value()),
            &mut content,
        );
        write(&OctetString::new(&self.attestation_challenge), &mut content);
        write(&OctetString::new(&self.unique_id), &mut content);
        write(&authorization_list(&self.software_enforced), &mut content);
        write(&authorization_list(&self.hardware_enforced), &mut content);
        let mut der = Vec::new();
        write(&Sequence::new(content.into()), &mut der);
        der
    }
}

/// One field of an AuthorizationList: `[tag] EXPLICIT` around the DER of its value.
#[cfg(feature = "attestation-mint")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationField {
    /// The context-specific tag number, e.g. [`AuthorizationField::IMEI`].
    pub tag: u32,
    /// The DER of the tagged value.
    pub value_der: Vec<u8>,
}

#[cfg(feature = "attestation-mint")]
impl AuthorizationField {
    /// The tag of `attestationIdSerial`.
    pub const SERIAL: u32 = TAG_SERIAL;
    /// The tag of `attestationIdImei`.
    pub const IMEI: u32 = TAG_IMEI;
    /// The tag of `attestationIdSecondImei`.
    pub const SECOND_IMEI: u32 = TAG_SECOND_IMEI;

    /// `[tag] EXPLICIT OCTET STRING`, the form of every identifier.
    pub fn octets(tag: u32, value: &[u8]) -> AuthorizationField {
        let mut value_der = Vec::new();
        write(&OctetString::new(value), &mut value_der);
        AuthorizationField { tag, value_der }
    }

    /// `[tag] EXPLICIT INTEGER`, the form of many other fields (e.g. `[702]` origin), for
    /// tests that need tags the verifier must skip.
    pub fn integer(tag: u32, value: u64) -> AuthorizationField {
        let mut value_der = Vec::new();
        write(&value, &mut value_der);
        AuthorizationField { tag, value_der }
    }
}

#[cfg(feature = "attestation-mint")]
fn authorization_list(fields: &[AuthorizationField]) -> Sequence<'static> {
    let mut content = Vec::new();
    for field in fields {
        let header = Header::new(
            Class::ContextSpecific,
            true,
            Tag(field.tag),
            Length::Definite(field.value_der.len()),
        );
        write(&Any::new(header, &field.value_der), &mut content);
    }
    Sequence::new(content.into())
}

#[cfg(feature = "attestation-mint")]
fn write<T: ToDer>(value: &T, out: &mut Vec<u8>) {
    value
        .write_der(out)
        .expect("DER of these values always writes into a Vec");
}
