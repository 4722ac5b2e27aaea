//! OCRA, the OATH Challenge-Response Algorithm of RFC 6287.
//!
//! A suite string such as `OCRA-1:HOTP-SHA256-8:C-QN08` fixes the HMAC hash,
//! the length of the decimal response and which inputs take part.
//! [`OcraSuite::parse`] turns the string into an [`OcraSuite`];
//! [`OcraSuite::respond`] computes a response and [`OcraSuite::verify`]
//! checks one in constant time.
//!
//! The HMAC is computed over this message (RFC 6287 section 5.1), where each
//! of C, P, S and T is present only if the suite names it:
//!
//! ```text
//! suite string (ASCII) | 0x00 | C | Q | P | S | T
//! ```
//!
//! - C: the counter, 8 bytes big-endian.
//! - Q: the challenge as 128 bytes; in mutual challenge-response it is two
//!   challenges, one after the other. It is first written as hexadecimal
//!   digits (a numeric challenge as its value in hexadecimal without leading
//!   zeros, an alphanumeric one as the hexadecimal of its ASCII bytes, a hex
//!   one as given), and those digits are then right-padded with `0` digits to
//!   256. An odd number of digits therefore ends in the high half of a byte:
//!   `22222222` is `0x153158E` and is sent as `15 31 58 E0 00 ...`.
//! - P: the hash of the PIN, as many bytes as the suite's PIN hash produces.
//! - S: the session information, left-padded with zero bytes to the length
//!   the suite names.
//! - T: the number of time steps since the Unix epoch, 8 bytes big-endian.
//!
//! The response is the RFC 4226 dynamic truncation of the HMAC, reduced
//! modulo 10^digits and left-padded with zeros.
//!
//! Parsing is strict so that a suite always prints back exactly as it was
//! written: the suite string itself goes into the HMAC, so two spellings of
//! "the same" suite would give different responses. A few deliberate
//! restrictions apply: a response length of 0 (the untruncated HMAC, which
//! RFC 6287 allows) is refused because Lien only deals in typed decimal
//! codes, alphanumeric challenges are limited to ASCII letters and digits,
//! and an empty key is refused.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

/// The shortest challenge RFC 6287 allows, whatever the suite's maximum.
const MIN_CHALLENGE_LEN: usize = 4;

/// The challenge is always padded to this many bytes in the HMAC message.
const CHALLENGE_BLOCK_LEN: usize = 128;

/// Why an OCRA suite could not be parsed or a response could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcraError {
    /// The suite is not three `:`-separated parts.
    #[error(
        "OCRA suite {0:?} must have three ':'-separated parts: algorithm, crypto function and data input"
    )]
    SuiteShape(String),
    /// The algorithm part is not `OCRA-1`, the only version RFC 6287 defines.
    #[error("unsupported OCRA algorithm {0:?}: only \"OCRA-1\" is defined")]
    Version(String),
    /// The crypto function is not of the form `HOTP-<hash>-<digits>`.
    #[error("crypto function {0:?} must look like \"HOTP-SHA1-6\"")]
    CryptoFunction(String),
    /// The crypto function names a hash other than SHA1, SHA256 or SHA512.
    #[error("unsupported hash {0:?} in the crypto function: expected SHA1, SHA256 or SHA512")]
    Hash(String),
    /// The response length is not a number from 4 to 10.
    #[error(
        "response length {0:?} must be a number from 4 to 10 without leading zeros \
         (0, the untruncated HMAC, is not supported)"
    )]
    Digits(String),
    /// The data input has no `Q` component, which RFC 6287 makes mandatory.
    #[error("data input {0:?} has no challenge (Q) component")]
    MissingChallengeSpec(String),
    /// A `Q` component is not `QA`, `QN` or `QH` followed by a length from 04 to 64.
    #[error("challenge component {0:?} must be QA, QN or QH followed by two digits from 04 to 64")]
    ChallengeSpec(String),
    /// A `P` component names a hash other than SHA1, SHA256 or SHA512.
    #[error("PIN component {0:?} must be PSHA1, PSHA256 or PSHA512")]
    PasswordSpec(String),
    /// An `S` component is not `S` alone or `S` followed by three digits from 001 to 999.
    #[error("session component {0:?} must be S or S followed by three digits from 001 to 999")]
    SessionSpec(String),
    /// A `T` component is not `T` alone or `T` followed by 1-59S, 1-59M or 1-48H.
    #[error("timestamp component {0:?} must be T or T followed by 1-59S, 1-59M or 1-48H")]
    TimeStepSpec(String),
    /// A data input component is not one of C, Q, P, S and T.
    #[error("unknown data input component {0:?}: expected C, Q.., P.., S.. or T..")]
    UnknownDataInput(String),
    /// A data input component is repeated or comes after one it should precede.
    #[error("data input component {0:?} is repeated or out of order: the order is C-Q-P-S-T")]
    DataInputOrder(String),
    /// The key is empty, which would make every response predictable.
    #[error("the OCRA key is empty")]
    EmptyKey,
    /// The suite uses an input that the caller did not supply.
    #[error("the suite requires a {0} but none was given")]
    MissingInput(&'static str),
    /// The caller supplied an input that the suite does not use.
    #[error("a {0} was given but the suite does not use one")]
    UnexpectedInput(&'static str),
    /// The challenge is shorter than the 4 characters RFC 6287 requires.
    #[error("the challenge has {0} characters, fewer than the minimum of 4")]
    ChallengeTooShort(usize),
    /// The challenge is longer than the suite allows.
    #[error("the challenge has {len} characters, more than the suite's maximum of {max}")]
    ChallengeTooLong {
        /// The length of the challenge given.
        len: usize,
        /// The maximum length the suite allows.
        max: usize,
    },
    /// The challenge contains a character its format does not allow.
    #[error("the challenge contains {found:?}, which {format} challenges do not allow")]
    ChallengeCharacter {
        /// The first offending character.
        found: char,
        /// The challenge format of the suite.
        format: ChallengeFormat,
    },
    /// The PIN hash does not have the length of the suite's PIN hash function.
    #[error("the PIN hash is {actual} bytes, but a {hash} hash is {expected} bytes")]
    PasswordHashLength {
        /// The suite's PIN hash function.
        hash: HashAlgorithm,
        /// The output length of that function.
        expected: usize,
        /// The length of the hash given.
        actual: usize,
    },
    /// The session information is longer than the suite allows.
    #[error("the session information is {actual} bytes, more than the suite's {max}")]
    SessionTooLong {
        /// The length of the session information given.
        actual: usize,
        /// The length the suite names.
        max: usize,
    },
}

/// A hash function named by a suite, for the HMAC or for the PIN hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-1, 20-byte output.
    Sha1,
    /// SHA-256, 32-byte output.
    Sha256,
    /// SHA-512, 64-byte output.
    Sha512,
}

impl HashAlgorithm {
    /// The output length in bytes, which is also the length of a PIN hash.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    fn hmac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => hmac::<Hmac<Sha1>>(key, message),
            Self::Sha256 => hmac::<Hmac<Sha256>>(key, message),
            Self::Sha512 => hmac::<Hmac<Sha512>>(key, message),
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn hmac<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC hashes long keys and pads short ones, so no key length is refused.
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The characters a challenge may contain, from the `QA`/`QN`/`QH` component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeFormat {
    /// `QA`: ASCII letters and digits, sent as their ASCII bytes.
    Alphanumeric,
    /// `QN`: decimal digits, sent as the hexadecimal form of their value.
    Numeric,
    /// `QH`: hexadecimal digits, sent as given.
    Hex,
}

impl fmt::Display for ChallengeFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Alphanumeric => "alphanumeric",
            Self::Numeric => "numeric",
            Self::Hex => "hexadecimal",
        })
    }
}

/// The time-step size of a `T` component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeStep {
    /// `T<n>S`: steps of 1 to 59 seconds.
    Seconds(u8),
    /// `T<n>M`: steps of 1 to 59 minutes; a bare `T` means one minute.
    Minutes(u8),
    /// `T<n>H`: steps of 1 to 48 hours.
    Hours(u8),
}

impl TimeStep {
    /// The length of one step in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Self::Seconds(n) => u64::from(n),
            Self::Minutes(n) => u64::from(n) * 60,
            Self::Hours(n) => u64::from(n) * 3600,
        }
    }

    /// The number of whole steps since the Unix epoch at `unix_seconds`,
    /// which is what [`OcraInput::timestamp`] expects.
    pub fn steps_at(self, unix_seconds: u64) -> u64 {
        // A parsed suite never has a zero-length step; a hand-built one is
        // treated as one second so that this cannot divide by zero.
        unix_seconds / self.seconds().max(1)
    }
}

/// A parsed OCRA suite such as `OCRA-1:HOTP-SHA256-8:C-QN08`.
///
/// It displays, serializes and is fed to the HMAC exactly as it was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OcraSuite {
    text: String,
    hash: HashAlgorithm,
    digits: u8,
    counter: bool,
    challenge_format: ChallengeFormat,
    challenge_max_len: usize,
    password_hash: Option<HashAlgorithm>,
    session_len: Option<usize>,
    time_step: Option<TimeStep>,
}

/// The inputs to one OCRA computation.
///
/// Fill in exactly the fields the suite uses and leave the others `None`,
/// for example `OcraInput { counter: Some(7), challenge: "12345678", ..Default::default() }`.
#[derive(Clone, Copy, Default)]
pub struct OcraInput<'a> {
    /// The counter, for suites with `C`.
    pub counter: Option<u64>,
    /// The challenge as typed or displayed, in the suite's format.
    pub challenge: &'a str,
    /// The second challenge of mutual challenge-response (RFC 6287 section
    /// 7.3), appended to the first; each must fit the suite's `Qxx` on its
    /// own. The server answers its client's challenge followed by its own,
    /// the client the server's followed by its own.
    pub second_challenge: Option<&'a str>,
    /// The hash of the PIN with the suite's `P` hash, for suites with `P`.
    pub password_hash: Option<&'a [u8]>,
    /// The session information, for suites with `S`; at most the suite's
    /// length, and left-padded with zero bytes to it.
    pub session: Option<&'a [u8]>,
    /// The number of time steps since the Unix epoch, for suites with `T`;
    /// see [`TimeStep::steps_at`].
    pub timestamp: Option<u64>,
}

impl fmt::Debug for OcraInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The PIN hash stands in for the PIN, so it stays out of logs.
        f.debug_struct("OcraInput")
            .field("counter", &self.counter)
            .field("challenge", &self.challenge)
            .field("second_challenge", &self.second_challenge)
            .field("password_hash", &self.password_hash.map(|_| "<redacted>"))
            .field("session", &self.session)
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

/// The data input components parsed from the third part of a suite.
struct DataInput {
    counter: bool,
    challenge: Option<(ChallengeFormat, usize)>,
    password_hash: Option<HashAlgorithm>,
    session_len: Option<usize>,
    time_step: Option<TimeStep>,
}

impl OcraSuite {
    /// Parses a suite string such as `OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1`.
    ///
    /// Only canonical spellings are accepted (upper case, components in the
    /// order C-Q-P-S-T, no leading zeros except in the fixed-width `Qxx` and
    /// `Snnn`), because the suite string is part of the HMAC input.
    pub fn parse(suite: &str) -> Result<Self, OcraError> {
        let mut parts = suite.split(':');
        let (Some(algorithm), Some(crypto), Some(data), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OcraError::SuiteShape(suite.to_owned()));
        };
        if algorithm != "OCRA-1" {
            return Err(OcraError::Version(algorithm.to_owned()));
        }
        let (hash, digits) = parse_crypto_function(crypto)?;
        let input = parse_data_input(data)?;
        let Some((challenge_format, challenge_max_len)) = input.challenge else {
            return Err(OcraError::MissingChallengeSpec(data.to_owned()));
        };
        Ok(Self {
            text: suite.to_owned(),
            hash,
            digits,
            counter: input.counter,
            challenge_format,
            challenge_max_len,
            password_hash: input.password_hash,
            session_len: input.session_len,
            time_step: input.time_step,
        })
    }

    /// The hash used for the HMAC.
    pub fn hash(&self) -> HashAlgorithm {
        self.hash
    }

    /// The number of decimal digits in a response, 4 to 10.
    ///
    /// Ten digits are accepted but slightly biased, because truncation
    /// yields a 31-bit number (RFC 6287 erratum 3730); nine or fewer are not.
    pub fn digits(&self) -> u8 {
        self.digits
    }

    /// Whether the suite uses a counter (`C`).
    pub fn uses_counter(&self) -> bool {
        self.counter
    }

    /// The challenge format (`QA`, `QN` or `QH`).
    pub fn challenge_format(&self) -> ChallengeFormat {
        self.challenge_format
    }

    /// The longest challenge the suite allows, 4 to 64 characters.
    pub fn challenge_max_len(&self) -> usize {
        self.challenge_max_len
    }

    /// The hash applied to the PIN, if the suite uses one (`P`).
    pub fn password_hash(&self) -> Option<HashAlgorithm> {
        self.password_hash
    }

    /// The length in bytes of the session information, if the suite uses it (`S`).
    pub fn session_len(&self) -> Option<usize> {
        self.session_len
    }

    /// The time-step size, if the suite uses a timestamp (`T`).
    pub fn time_step(&self) -> Option<TimeStep> {
        self.time_step
    }

    /// The exact bytes that are HMACed, RFC 6287's DataInput.
    ///
    /// [`OcraSuite::respond`] uses this; it is public so that another
    /// implementation can be debugged against it byte by byte.
    pub fn data_input(&self, input: OcraInput<'_>) -> Result<Vec<u8>, OcraError> {
        let challenge = self.challenge_block(&input)?;
        let mut message = Vec::with_capacity(
            self.text.len()
                + 1
                + 8
                + CHALLENGE_BLOCK_LEN
                + self.password_hash.map_or(0, HashAlgorithm::output_len)
                + self.session_len.unwrap_or(0)
                + 8,
        );
        message.extend_from_slice(self.text.as_bytes());
        message.push(0);

        match (self.counter, input.counter) {
            (true, Some(counter)) => message.extend_from_slice(&counter.to_be_bytes()),
            (true, None) => return Err(OcraError::MissingInput("counter")),
            (false, Some(_)) => return Err(OcraError::UnexpectedInput("counter")),
            (false, None) => {}
        }

        message.extend_from_slice(&challenge);

        match (self.password_hash, input.password_hash) {
            (Some(hash), Some(given)) => {
                if given.len() != hash.output_len() {
                    return Err(OcraError::PasswordHashLength {
                        hash,
                        expected: hash.output_len(),
                        actual: given.len(),
                    });
                }
                message.extend_from_slice(given);
            }
            (Some(_), None) => return Err(OcraError::MissingInput("PIN hash")),
            (None, Some(_)) => return Err(OcraError::UnexpectedInput("PIN hash")),
            (None, None) => {}
        }

        match (self.session_len, input.session) {
            (Some(max), Some(session)) => {
                if session.len() > max {
                    return Err(OcraError::SessionTooLong {
                        actual: session.len(),
                        max,
                    });
                }
                // The reference implementation left-pads the session's hex
                // string with zeros, which is left-padding with zero bytes.
                message.resize(message.len() + max - session.len(), 0);
                message.extend_from_slice(session);
            }
            (Some(_), None) => return Err(OcraError::MissingInput("session information")),
            (None, Some(_)) => return Err(OcraError::UnexpectedInput("session information")),
            (None, None) => {}
        }

        match (self.time_step, input.timestamp) {
            (Some(_), Some(steps)) => message.extend_from_slice(&steps.to_be_bytes()),
            (Some(_), None) => return Err(OcraError::MissingInput("timestamp")),
            (None, Some(_)) => return Err(OcraError::UnexpectedInput("timestamp")),
            (None, None) => {}
        }

        Ok(message)
    }

    /// Computes the response: `digits()` decimal digits, zero-padded.
    ///
    /// Fails if the key is empty, an input the suite uses is missing, an
    /// input it does not use is given, or an input has the wrong form.
    pub fn respond(&self, key: &[u8], input: OcraInput<'_>) -> Result<String, OcraError> {
        if key.is_empty() {
            return Err(OcraError::EmptyKey);
        }
        let message = self.data_input(input)?;
        let mac = self.hash.hmac(key, &message);
        Ok(truncate(&mac, self.digits))
    }

    /// Checks a response in constant time.
    ///
    /// Returns `Ok(false)` for a wrong response (including one of the wrong
    /// length) and an error only when the inputs themselves are unusable,
    /// as for [`OcraSuite::respond`].
    pub fn verify(
        &self,
        key: &[u8],
        input: OcraInput<'_>,
        response: &str,
    ) -> Result<bool, OcraError> {
        let expected = self.respond(key, input)?;
        // `ct_eq` on slices of different lengths answers "unequal" at once: the length is
        // fixed by the suite and so is not secret; the digits are compared in constant time.
        Ok(bool::from(expected.as_bytes().ct_eq(response.as_bytes())))
    }

    /// Encodes the challenge, or both challenges, as the 128-byte Q block.
    fn challenge_block(
        &self,
        input: &OcraInput<'_>,
    ) -> Result<[u8; CHALLENGE_BLOCK_LEN], OcraError> {
        self.check_challenge(input.challenge)?;
        let joined;
        let challenge = match input.second_challenge {
            Some(second) => {
                self.check_challenge(second)?;
                joined = format!("{}{second}", input.challenge);
                &joined
            }
            None => input.challenge,
        };
        // The hexadecimal digits of the challenge, one per element, before
        // they are right-padded with zero digits.
        let nibbles: Vec<u8> = match self.challenge_format {
            ChallengeFormat::Numeric => decimal_to_nibbles(challenge),
            ChallengeFormat::Alphanumeric => {
                challenge.bytes().flat_map(|b| [b >> 4, b & 0x0f]).collect()
            }
            // Every character was checked to be a hex digit, so none is dropped.
            ChallengeFormat::Hex => challenge
                .chars()
                .filter_map(|c| c.to_digit(16))
                .map(|d| d as u8)
                .collect(),
        };
        // Two challenges of at most 64 characters give at most 256 digits
        // (two alphanumeric ones), so they always fit.
        let mut block = [0u8; CHALLENGE_BLOCK_LEN];
        for (i, nibble) in nibbles.iter().enumerate() {
            let shift = if i % 2 == 0 { 4 } else { 0 };
            block[i / 2] |= nibble << shift;
        }
        Ok(block)
    }

    /// Checks one challenge against the suite's format and length limits.
    fn check_challenge(&self, challenge: &str) -> Result<(), OcraError> {
        let format = self.challenge_format;
        let allowed = match format {
            ChallengeFormat::Numeric => char::is_ascii_digit,
            ChallengeFormat::Alphanumeric => char::is_ascii_alphanumeric,
            ChallengeFormat::Hex => char::is_ascii_hexdigit,
        };
        if let Some(found) = challenge.chars().find(|c| !allowed(c)) {
            return Err(OcraError::ChallengeCharacter { found, format });
        }
        // Only ASCII is left, so bytes and characters agree.
        let len = challenge.len();
        if len < MIN_CHALLENGE_LEN {
            Err(OcraError::ChallengeTooShort(len))
        } else if len > self.challenge_max_len {
            Err(OcraError::ChallengeTooLong {
                len,
                max: self.challenge_max_len,
            })
        } else {
            Ok(())
        }
    }
}

/// The hexadecimal digits of a decimal number without leading zeros, which
/// is how the reference implementation sends a numeric challenge (Java's
/// `new BigInteger(q, 10).toString(16)`); zero gives no digits at all, which
/// pads to the same block as a single `0`.
fn decimal_to_nibbles(decimal: &str) -> Vec<u8> {
    // Big-endian base-256 digits; 64 decimal digits need at most 27 bytes.
    let mut bytes: Vec<u8> = Vec::new();
    for digit in decimal.bytes() {
        let mut carry = u16::from(digit - b'0');
        for byte in bytes.iter_mut().rev() {
            let value = u16::from(*byte) * 10 + carry;
            *byte = (value & 0xff) as u8;
            carry = value >> 8;
        }
        if carry > 0 {
            bytes.insert(0, carry as u8);
        }
    }
    let nibbles = bytes.iter().flat_map(|b| [b >> 4, b & 0x0f]);
    nibbles.skip_while(|&n| n == 0).collect()
}

/// RFC 4226 dynamic truncation, reduced to `digits` decimal digits.
fn truncate(mac: &[u8], digits: u8) -> String {
    // Every supported HMAC is at least 20 bytes, so offset + 3 <= 18 is in range.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let code = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    let code = u64::from(code) % 10u64.pow(u32::from(digits));
    format!("{code:0width$}", width = usize::from(digits))
}

/// A decimal number with no sign, no leading zeros and at most two digits.
fn small_number(text: &str) -> Option<u8> {
    let canonical = matches!(text.len(), 1 | 2)
        && text.bytes().all(|b| b.is_ascii_digit())
        && !(text.len() > 1 && text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

fn parse_crypto_function(crypto: &str) -> Result<(HashAlgorithm, u8), OcraError> {
    let Some((hash, digits)) = crypto
        .strip_prefix("HOTP-")
        .and_then(|rest| rest.split_once('-'))
    else {
        return Err(OcraError::CryptoFunction(crypto.to_owned()));
    };
    let hash = HashAlgorithm::from_name(hash).ok_or_else(|| OcraError::Hash(hash.to_owned()))?;
    let digits = small_number(digits)
        .filter(|d| (4..=10).contains(d))
        .ok_or_else(|| OcraError::Digits(digits.to_owned()))?;
    Ok((hash, digits))
}

fn parse_data_input(data: &str) -> Result<DataInput, OcraError> {
    let mut input = DataInput {
        counter: false,
        challenge: None,
        password_hash: None,
        session_len: None,
        time_step: None,
    };
    let mut last_rank = None;
    for component in data.split('-') {
        let Some(kind) = component.chars().next() else {
            return Err(OcraError::UnknownDataInput(component.to_owned()));
        };
        let rank = match kind {
            'C' => 0,
            'Q' => 1,
            'P' => 2,
            'S' => 3,
            'T' => 4,
            _ => return Err(OcraError::UnknownDataInput(component.to_owned())),
        };
        if last_rank.is_some_and(|last| rank <= last) {
            return Err(OcraError::DataInputOrder(component.to_owned()));
        }
        last_rank = Some(rank);
        // The first character is ASCII, so slicing after it is safe.
        let rest = &component[1..];
        match kind {
            'C' if rest.is_empty() => input.counter = true,
            'C' => return Err(OcraError::UnknownDataInput(component.to_owned())),
            'Q' => input.challenge = Some(parse_challenge_spec(component, rest)?),
            'P' => {
                let hash = HashAlgorithm::from_name(rest)
                    .ok_or_else(|| OcraError::PasswordSpec(component.to_owned()))?;
                input.password_hash = Some(hash);
            }
            'S' => input.session_len = Some(parse_session_spec(component, rest)?),
            _ => input.time_step = Some(parse_time_step(component, rest)?),
        }
    }
    Ok(input)
}

fn parse_challenge_spec(
    component: &str,
    rest: &str,
) -> Result<(ChallengeFormat, usize), OcraError> {
    let refuse = || OcraError::ChallengeSpec(component.to_owned());
    let mut chars = rest.chars();
    let format = match chars.next() {
        Some('A') => ChallengeFormat::Alphanumeric,
        Some('N') => ChallengeFormat::Numeric,
        Some('H') => ChallengeFormat::Hex,
        _ => return Err(refuse()),
    };
    // The length is always two digits, as in QN08.
    let len = chars.as_str();
    if len.len() != 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    let max: usize = len.parse().map_err(|_| refuse())?;
    if !(MIN_CHALLENGE_LEN..=64).contains(&max) {
        return Err(refuse());
    }
    Ok((format, max))
}

fn parse_session_spec(component: &str, rest: &str) -> Result<usize, OcraError> {
    // RFC 6287 gives S064 as the default, so a bare S means 64 bytes.
    if rest.is_empty() {
        return Ok(64);
    }
    if rest.len() != 3 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OcraError::SessionSpec(component.to_owned()));
    }
    match rest.parse() {
        Ok(len) if len > 0 => Ok(len),
        _ => Err(OcraError::SessionSpec(component.to_owned())),
    }
}

fn parse_time_step(component: &str, rest: &str) -> Result<TimeStep, OcraError> {
    // RFC 6287 gives one minute as the default step, so a bare T means T1M.
    if rest.is_empty() {
        return Ok(TimeStep::Minutes(1));
    }
    let refuse = || OcraError::TimeStepSpec(component.to_owned());
    // Hours run to 48 rather than 59; RFC 6287's "[0-48]H" is corrected to
    // "[1-48]H" by verified erratum 3729.
    // The unit is one ASCII letter; a suite from outside may end in any character, so the split
    // is checked rather than assumed to fall on a character boundary (found by fuzzing).
    let (count, unit) = rest.split_at_checked(rest.len() - 1).ok_or_else(refuse)?;
    let count = small_number(count).filter(|&n| n >= 1).ok_or_else(refuse)?;
    match unit {
        "S" if count <= 59 => Ok(TimeStep::Seconds(count)),
        "M" if count <= 59 => Ok(TimeStep::Minutes(count)),
        "H" if count <= 48 => Ok(TimeStep::Hours(count)),
        _ => Err(refuse()),
    }
}

impl fmt::Display for OcraSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for OcraSuite {
    type Err = OcraError;

    fn from_str(suite: &str) -> Result<Self, Self::Err> {
        Self::parse(suite)
    }
}

impl TryFrom<String> for OcraSuite {
    type Error = OcraError;

    fn try_from(suite: String) -> Result<Self, Self::Error> {
        Self::parse(&suite)
    }
}

impl From<OcraSuite> for String {
    fn from(suite: OcraSuite) -> Self {
        suite.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED32: &[u8] = b"12345678901234567890123456789012";

    fn suite(text: &str) -> OcraSuite {
        OcraSuite::parse(text).expect("valid suite")
    }

    fn challenge(text: &str) -> OcraInput<'_> {
        OcraInput {
            challenge: text,
            ..OcraInput::default()
        }
    }

    #[test]
    fn parses_every_component() {
        let s = suite("OCRA-1:HOTP-SHA512-10:C-QH64-PSHA256-S128-T30S");
        assert_eq!(s.hash(), HashAlgorithm::Sha512);
        assert_eq!(s.digits(), 10);
        assert!(s.uses_counter());
        assert_eq!(s.challenge_format(), ChallengeFormat::Hex);
        assert_eq!(s.challenge_max_len(), 64);
        assert_eq!(s.password_hash(), Some(HashAlgorithm::Sha256));
        assert_eq!(s.session_len(), Some(128));
        assert_eq!(s.time_step(), Some(TimeStep::Seconds(30)));
        assert_eq!(s.time_step().map(TimeStep::seconds), Some(30));
    }

    #[test]
    fn displays_and_serializes_as_written() {
        for text in [
            "OCRA-1:HOTP-SHA1-6:QN08",
            "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
            "OCRA-1:HOTP-SHA512-4:QA64-S-T",
            "OCRA-1:HOTP-SHA256-7:QH10-S512-T48H",
        ] {
            let s = suite(text);
            assert_eq!(s.to_string(), text);
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("{text:?}"));
            assert_eq!(serde_json::from_str::<OcraSuite>(&json).unwrap(), s);
        }
        assert!(serde_json::from_str::<OcraSuite>("\"OCRA-2:HOTP-SHA1-6:QN08\"").is_err());
    }

    #[test]
    fn bare_session_and_time_use_rfc_defaults() {
        let s = suite("OCRA-1:HOTP-SHA1-6:QN08-S-T");
        assert_eq!(s.session_len(), Some(64));
        assert_eq!(s.time_step(), Some(TimeStep::Minutes(1)));
        assert_eq!(
            TimeStep::Minutes(1).steps_at(0x132d0b6 * 60 + 59),
            0x132d0b6
        );
        assert_eq!(TimeStep::Hours(24).seconds(), 86_400);
    }

    #[test]
    fn malformed_suites_name_what_is_wrong() {
        let cases: &[(&str, OcraError)] = &[
            (
                "OCRA-1:HOTP-SHA1-6",
                OcraError::SuiteShape("OCRA-1:HOTP-SHA1-6".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN08:X",
                OcraError::SuiteShape("OCRA-1:HOTP-SHA1-6:QN08:X".into()),
            ),
            (
                "OCRA-2:HOTP-SHA1-6:QN08",
                OcraError::Version("OCRA-2".into()),
            ),
            (
                "ocra-1:HOTP-SHA1-6:QN08",
                OcraError::Version("ocra-1".into()),
            ),
            (
                "OCRA-1:TOTP-SHA1-6:QN08",
                OcraError::CryptoFunction("TOTP-SHA1-6".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1:QN08",
                OcraError::CryptoFunction("HOTP-SHA1".into()),
            ),
            ("OCRA-1:HOTP-MD5-6:QN08", OcraError::Hash("MD5".into())),
            ("OCRA-1:HOTP-sha1-6:QN08", OcraError::Hash("sha1".into())),
            ("OCRA-1:HOTP-SHA1-0:QN08", OcraError::Digits("0".into())),
            ("OCRA-1:HOTP-SHA1-3:QN08", OcraError::Digits("3".into())),
            ("OCRA-1:HOTP-SHA1-11:QN08", OcraError::Digits("11".into())),
            ("OCRA-1:HOTP-SHA1-06:QN08", OcraError::Digits("06".into())),
            ("OCRA-1:HOTP-SHA1-x:QN08", OcraError::Digits("x".into())),
            (
                "OCRA-1:HOTP-SHA1-6:C-PSHA1",
                OcraError::MissingChallengeSpec("C-PSHA1".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QX08",
                OcraError::ChallengeSpec("QX08".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN03",
                OcraError::ChallengeSpec("QN03".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN65",
                OcraError::ChallengeSpec("QN65".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN8",
                OcraError::ChallengeSpec("QN8".into()),
            ),
            ("OCRA-1:HOTP-SHA1-6:Q", OcraError::ChallengeSpec("Q".into())),
            (
                "OCRA-1:HOTP-SHA1-6:QN08-PMD5",
                OcraError::PasswordSpec("PMD5".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN08-S64",
                OcraError::SessionSpec("S64".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN08-S000",
                OcraError::SessionSpec("S000".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN08-T60M",
                OcraError::TimeStepSpec("T60M".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN08-T0H",
                OcraError::TimeStepSpec("T0H".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN08-T49H",
                OcraError::TimeStepSpec("T49H".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN08-T01M",
                OcraError::TimeStepSpec("T01M".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN08-T1D",
                OcraError::TimeStepSpec("T1D".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN08-T1\u{5b7}",
                OcraError::TimeStepSpec("T1\u{5b7}".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN08-X",
                OcraError::UnknownDataInput("X".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN08-",
                OcraError::UnknownDataInput(String::new()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:CX-QN08",
                OcraError::UnknownDataInput("CX".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN08-C",
                OcraError::DataInputOrder("C".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN08-QA08",
                OcraError::DataInputOrder("QA08".into()),
            ),
            (
                "OCRA-1:HOTP-SHA1-6:QN08-T1M-PSHA1",
                OcraError::DataInputOrder("PSHA1".into()),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(OcraSuite::parse(text).as_ref(), Err(expected), "{text}");
        }
    }

    #[test]
    fn numeric_challenge_is_hex_left_aligned() {
        let s = suite("OCRA-1:HOTP-SHA1-6:QN08");
        let message = s.data_input(challenge("22222222")).unwrap();
        let q = &message[s.to_string().len() + 1..];
        assert_eq!(q.len(), 128);
        assert_eq!(&q[..4], &[0x15, 0x31, 0x58, 0xe0]);
        assert!(q[4..].iter().all(|&b| b == 0));
        // Leading zeros of the decimal number do not shift the digits.
        let padded = s.data_input(challenge("00012345")).unwrap();
        assert_eq!(&padded[padded.len() - 128..][..3], &[0x30, 0x39, 0x00]);
    }

    #[test]
    fn decimal_conversion_handles_long_challenges() {
        let nibbles = decimal_to_nibbles(&"9".repeat(64));
        // 10^64 - 1 needs 213 bits, that is 54 hexadecimal digits.
        assert_eq!(nibbles.len(), 54);
        assert!(decimal_to_nibbles("0000").is_empty());
        assert_eq!(decimal_to_nibbles("4096"), vec![1, 0, 0, 0]);
    }

    #[test]
    fn message_has_every_input_in_order() {
        let s = suite("OCRA-1:HOTP-SHA1-6:C-QH04-PSHA1-S004-T1M");
        let pin = [0xaa; 20];
        let message = s
            .data_input(OcraInput {
                counter: Some(0x0102),
                challenge: "abc",
                second_challenge: None,
                password_hash: Some(&pin),
                session: Some(&[7, 8]),
                timestamp: Some(0x0304),
            })
            .unwrap_err();
        assert_eq!(message, OcraError::ChallengeTooShort(3));

        let message = s
            .data_input(OcraInput {
                counter: Some(0x0102),
                challenge: "aBc1",
                second_challenge: None,
                password_hash: Some(&pin),
                session: Some(&[7, 8]),
                timestamp: Some(0x0304),
            })
            .unwrap();
        let mut expected = s.to_string().into_bytes();
        expected.push(0);
        expected.extend([0, 0, 0, 0, 0, 0, 1, 2]);
        expected.extend([0xab, 0xc1]);
        expected.extend([0; 126]);
        expected.extend(pin);
        expected.extend([0, 0, 7, 8]);
        expected.extend([0, 0, 0, 0, 0, 0, 3, 4]);
        assert_eq!(message, expected);
    }

    #[test]
    fn missing_and_unexpected_inputs_are_refused() {
        let with_all = suite("OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1-S064-T1M");
        let pin = [0u8; 20];
        let full = OcraInput {
            counter: Some(1),
            challenge: "12345678",
            second_challenge: None,
            password_hash: Some(&pin),
            session: Some(b"session"),
            timestamp: Some(1),
        };
        assert!(with_all.respond(SEED32, full).is_ok());
        let cases = [
            (
                OcraInput {
                    counter: None,
                    ..full
                },
                "counter",
            ),
            (
                OcraInput {
                    password_hash: None,
                    ..full
                },
                "PIN hash",
            ),
            (
                OcraInput {
                    session: None,
                    ..full
                },
                "session information",
            ),
            (
                OcraInput {
                    timestamp: None,
                    ..full
                },
                "timestamp",
            ),
        ];
        for (input, name) in cases {
            assert_eq!(
                with_all.respond(SEED32, input),
                Err(OcraError::MissingInput(name))
            );
        }

        let bare = suite("OCRA-1:HOTP-SHA256-8:QN08");
        let cases = [
            (
                OcraInput {
                    counter: Some(1),
                    ..challenge("12345678")
                },
                "counter",
            ),
            (
                OcraInput {
                    password_hash: Some(&pin),
                    ..challenge("12345678")
                },
                "PIN hash",
            ),
            (
                OcraInput {
                    session: Some(b"s"),
                    ..challenge("12345678")
                },
                "session information",
            ),
            (
                OcraInput {
                    timestamp: Some(1),
                    ..challenge("12345678")
                },
                "timestamp",
            ),
        ];
        for (input, name) in cases {
            assert_eq!(
                bare.respond(SEED32, input),
                Err(OcraError::UnexpectedInput(name))
            );
        }
    }

    #[test]
    fn bad_challenges_are_refused() {
        use ChallengeFormat::{Alphanumeric, Hex, Numeric};
        let character = |found, format| OcraError::ChallengeCharacter { found, format };
        // Each suite is "OCRA-1:HOTP-SHA256-8:" and the challenge format given here.
        let cases = [
            ("QN08", "1234567a", character('a', Numeric)),
            ("QN08", "-1234567", character('-', Numeric)),
            (
                "QN08",
                "123456789",
                OcraError::ChallengeTooLong { len: 9, max: 8 },
            ),
            ("QN08", "123", OcraError::ChallengeTooShort(3)),
            ("QN08", "", OcraError::ChallengeTooShort(0)),
            ("QA08", "SIG 1000", character(' ', Alphanumeric)),
            ("QA08", "SIGé", character('é', Alphanumeric)),
            ("QH08", "0123456g", character('g', Hex)),
            (
                "QH08",
                "0123456789",
                OcraError::ChallengeTooLong { len: 10, max: 8 },
            ),
        ];
        for (format, text, refusal) in cases {
            let s = suite(&format!("OCRA-1:HOTP-SHA256-8:{format}"));
            assert_eq!(
                s.respond(SEED32, challenge(text)),
                Err(refusal),
                "{format} {text:?}"
            );
        }

        let numeric = suite("OCRA-1:HOTP-SHA256-8:QN08");
        assert!(numeric.respond(SEED32, challenge("1234")).is_ok());
        // Hex digits are case-insensitive because they denote the same bytes.
        let hex = suite("OCRA-1:HOTP-SHA256-8:QH08");
        assert_eq!(
            hex.respond(SEED32, challenge("ABCDEF01")),
            hex.respond(SEED32, challenge("abcdef01"))
        );
    }

    #[test]
    fn mutual_challenges_are_checked_one_by_one() {
        let s = suite("OCRA-1:HOTP-SHA256-8:QA08");
        let both = OcraInput {
            second_challenge: Some("SRV11110"),
            ..challenge("CLI22220")
        };
        // RFC 6287 Appendix C.2, server computation.
        assert_eq!(s.respond(SEED32, both).unwrap(), "28247970");
        assert_eq!(
            s.respond(SEED32, challenge("CLI22220SRV11110")),
            Err(OcraError::ChallengeTooLong { len: 16, max: 8 })
        );
        let long_second = OcraInput {
            second_challenge: Some("SRV111100"),
            ..both
        };
        assert_eq!(
            s.respond(SEED32, long_second),
            Err(OcraError::ChallengeTooLong { len: 9, max: 8 })
        );
        let short_second = OcraInput {
            second_challenge: Some("SRV"),
            ..both
        };
        assert_eq!(
            s.respond(SEED32, short_second),
            Err(OcraError::ChallengeTooShort(3))
        );

        // The numeric form converts the two challenges as one number.
        let numeric = suite("OCRA-1:HOTP-SHA1-6:QN04");
        let joined = numeric
            .data_input(OcraInput {
                second_challenge: Some("0000"),
                ..challenge("0001")
            })
            .unwrap();
        assert_eq!(&joined[joined.len() - 128..][..3], &[0x27, 0x10, 0x00]);
    }

    #[test]
    fn wrong_pin_hash_length_and_long_session_are_refused() {
        let s = suite("OCRA-1:HOTP-SHA256-8:QN08-PSHA256-S004");
        let short = [0u8; 20];
        assert_eq!(
            s.respond(
                SEED32,
                OcraInput {
                    password_hash: Some(&short),
                    session: Some(b"abcd"),
                    ..challenge("12345678")
                }
            ),
            Err(OcraError::PasswordHashLength {
                hash: HashAlgorithm::Sha256,
                expected: 32,
                actual: 20
            })
        );
        let right = [0u8; 32];
        assert_eq!(
            s.respond(
                SEED32,
                OcraInput {
                    password_hash: Some(&right),
                    session: Some(b"abcde"),
                    ..challenge("12345678")
                }
            ),
            Err(OcraError::SessionTooLong { actual: 5, max: 4 })
        );
    }

    #[test]
    fn empty_key_is_refused() {
        let s = suite("OCRA-1:HOTP-SHA1-6:QN08");
        assert_eq!(
            s.respond(&[], challenge("12345678")),
            Err(OcraError::EmptyKey)
        );
    }

    #[test]
    fn verify_accepts_only_the_exact_response() {
        let s = suite("OCRA-1:HOTP-SHA256-8:C-QN08");
        let input = OcraInput {
            counter: Some(3),
            ..challenge("87654321")
        };
        let response = s.respond(SEED32, input).unwrap();
        assert_eq!(response.len(), 8);
        assert_eq!(s.verify(SEED32, input, &response), Ok(true));
        assert_eq!(s.verify(SEED32, input, &response[..7]), Ok(false));
        assert_eq!(s.verify(SEED32, input, ""), Ok(false));
        assert_eq!(s.verify(SEED32, input, &format!("{response}0")), Ok(false));
        let other = OcraInput {
            counter: Some(4),
            ..input
        };
        assert_eq!(s.verify(SEED32, other, &response), Ok(false));
        assert_eq!(
            s.verify(SEED32, challenge("87654321"), &response),
            Err(OcraError::MissingInput("counter"))
        );
    }

    #[test]
    fn responses_are_zero_padded() {
        // The RFC vector OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1 with C=9 starts with a zero.
        let s = suite("OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1");
        let pin = hex::decode("7110eda4d09e062aa5e4a390b0a572ac0d2c0220").unwrap();
        let input = OcraInput {
            counter: Some(9),
            password_hash: Some(&pin),
            ..challenge("12345678")
        };
        assert_eq!(s.respond(SEED32, input).unwrap(), "08522129");
    }

    #[test]
    fn debug_output_hides_the_pin_hash() {
        let pin = [0x5a; 20];
        let input = OcraInput {
            password_hash: Some(&pin),
            ..challenge("1234")
        };
        let debug = format!("{input:?}");
        assert!(debug.contains("<redacted>"));
        // Debug would print the byte 0x5a as 90.
        assert!(!debug.contains("90"), "{debug}");
    }
}
