//! Device identity: IMEI numbers (with their Luhn check digit) and serial numbers.
//!
//! The IMEI is how a financier names a device at the point of sale and how the server
//! finds it again after a factory reset, so a mistyped IMEI must be refused at the door
//! rather than enrolling a phone that will never check in.

use std::fmt;

/// Why a string is not an IMEI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImeiError {
    /// Nothing but spaces and dashes was given.
    #[error("IMEI is empty")]
    Empty,
    /// A character other than a digit, a space or a dash.
    #[error(
        "IMEI contains {found:?} at position {position}; only digits, spaces and dashes are allowed"
    )]
    InvalidCharacter {
        /// The offending character.
        found: char,
        /// Its 1-based position in the input, as a person would count.
        position: usize,
    },
    /// The number of digits is not 15 (or 16 for an IMEISV).
    #[error("IMEI has {found} digits; an IMEI has 15 (14 digits and a check digit)")]
    WrongLength {
        /// How many digits the input had.
        found: usize,
    },
    /// An IMEISV was expected, but the input did not have 16 digits.
    #[error(
        "IMEISV has {found} digits; an IMEISV has 16 (14 digits and a 2-digit software version)"
    )]
    WrongImeisvLength {
        /// How many digits the input had.
        found: usize,
    },
    /// The last digit does not match the Luhn check of the first 14.
    #[error(
        "IMEI check digit is {found}, but the first 14 digits require {expected}: the number is mistyped"
    )]
    CheckDigit {
        /// The check digit the first 14 digits call for.
        expected: u8,
        /// The check digit that was given.
        found: u8,
    },
}

/// A 15-digit International Mobile Equipment Identity whose check digit is correct.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Imei(String);

impl Imei {
    /// Parses an IMEI as people write it: 15 digits, optionally grouped with spaces or dashes
    /// (`35-209900-176148-1`), with a correct Luhn check digit.
    pub fn parse(input: &str) -> Result<Imei, ImeiError> {
        let digits = digits_of(input, 15, |found| ImeiError::WrongLength { found })?;
        let expected = luhn_check_digit(&digits[..14]);
        let found = digits[14];
        if expected != found {
            return Err(ImeiError::CheckDigit { expected, found });
        }
        Ok(Imei(digits.iter().map(|d| char::from(b'0' + d)).collect()))
    }

    /// Converts a 16-digit IMEISV (14 identity digits and a 2-digit software version, which
    /// is what many phones report) to the IMEI of the same device.
    pub fn from_imeisv(input: &str) -> Result<Imei, ImeiError> {
        let digits = digits_of(input, 16, |found| ImeiError::WrongImeisvLength { found })?;
        let check = luhn_check_digit(&digits[..14]);
        Ok(Imei(
            digits[..14]
                .iter()
                .chain(std::iter::once(&check))
                .map(|d| char::from(b'0' + d))
                .collect(),
        ))
    }

    /// The 15 digits, without separators.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Type Allocation Code: the first 8 digits, which name the maker and model.
    pub fn tac(&self) -> &str {
        &self.0[..8]
    }
}

impl fmt::Display for Imei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Keeps the digits, skipping the separators people use, and refuses anything else; there must
/// be `len` of them, or `wrong_length` says how many there were.
fn digits_of(
    input: &str,
    len: usize,
    wrong_length: fn(usize) -> ImeiError,
) -> Result<Vec<u8>, ImeiError> {
    let mut digits = Vec::with_capacity(16);
    for (index, ch) in input.chars().enumerate() {
        match ch {
            '0'..='9' => digits.push(ch as u8 - b'0'),
            ' ' | '-' => {}
            _ => {
                return Err(ImeiError::InvalidCharacter {
                    found: ch,
                    position: index + 1,
                });
            }
        }
    }
    if digits.is_empty() {
        return Err(ImeiError::Empty);
    }
    if digits.len() != len {
        return Err(wrong_length(digits.len()));
    }
    Ok(digits)
}

/// `input` without surrounding whitespace, refused with `empty` if nothing is left and with
/// `too_long` (given the count) if more than `max` characters are.
pub(crate) fn trimmed_within<E>(
    input: &str,
    max: usize,
    empty: E,
    too_long: impl FnOnce(usize) -> E,
) -> Result<&str, E> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(empty);
    }
    let count = trimmed.chars().count();
    if count > max {
        return Err(too_long(count));
    }
    Ok(trimmed)
}

/// The Luhn check digit for the given digits: counting from the right, every other digit
/// starting with the rightmost is doubled, as 3GPP TS 23.003 specifies for the IMEI.
fn luhn_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let doubled = d * 2;
                doubled / 10 + doubled % 10
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Why a string is not a serial number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    /// The serial number is empty.
    #[error("serial number is empty")]
    Empty,
    /// Longer than any maker's serial number.
    #[error("serial number has {found} characters; at most {max} are allowed")]
    TooLong {
        /// How many characters were given.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// Whitespace, control characters or non-ASCII.
    #[error(
        "serial number contains {found:?} at position {position}; only printable ASCII without spaces is allowed"
    )]
    InvalidCharacter {
        /// The offending character.
        found: char,
        /// Its 1-based position.
        position: usize,
    },
}

/// A device maker's serial number: printable ASCII without spaces, 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SerialNumber(String);

impl SerialNumber {
    /// The longest serial number accepted.
    pub const MAX_LEN: usize = 64;

    /// Parses a serial number, trimming surrounding whitespace.
    pub fn parse(input: &str) -> Result<SerialNumber, SerialError> {
        let trimmed = trimmed_within(input, Self::MAX_LEN, SerialError::Empty, |found| {
            SerialError::TooLong {
                found,
                max: Self::MAX_LEN,
            }
        })?;
        if let Some((index, found)) = trimmed
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_graphic())
        {
            return Err(SerialError::InvalidCharacter {
                found,
                position: index + 1,
            });
        }
        Ok(SerialNumber(trimmed.to_owned()))
    }

    /// The serial number as given, without surrounding whitespace.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a set of identifiers does not describe one device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// A dual-SIM phone has two distinct IMEIs; the same one twice is a data-entry mistake.
    #[error("IMEI 2 is the same as IMEI 1 ({0}); a dual-SIM phone has two different IMEIs")]
    SameImeiTwice(Imei),
}

/// The hardware identifiers of one phone: IMEI 1, IMEI 2 on dual-SIM phones, and the serial number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    imei1: Imei,
    imei2: Option<Imei>,
    serial: SerialNumber,
}

impl DeviceIdentity {
    /// Builds an identity, refusing the same IMEI given twice.
    pub fn new(
        imei1: Imei,
        imei2: Option<Imei>,
        serial: SerialNumber,
    ) -> Result<DeviceIdentity, IdentityError> {
        if imei2.as_ref() == Some(&imei1) {
            return Err(IdentityError::SameImeiTwice(imei1));
        }
        Ok(DeviceIdentity {
            imei1,
            imei2,
            serial,
        })
    }

    /// The primary IMEI.
    pub fn imei1(&self) -> &Imei {
        &self.imei1
    }

    /// The second IMEI of a dual-SIM phone.
    pub fn imei2(&self) -> Option<&Imei> {
        self.imei2.as_ref()
    }

    /// The maker's serial number.
    pub fn serial(&self) -> &SerialNumber {
        &self.serial
    }

    /// Every IMEI of the device, primary first: a device is found by any of them.
    pub fn imeis(&self) -> impl Iterator<Item = &Imei> {
        std::iter::once(&self.imei1).chain(self.imei2.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_grouped_imei_and_exposes_tac() {
        let imei = Imei::parse("35-209900-176148-1").unwrap();
        assert_eq!(imei.as_str(), "352099001761481");
        assert_eq!(imei.tac(), "35209900");
        assert_eq!(Imei::parse("35 209900 176148 1").unwrap(), imei);
        assert_eq!(imei.to_string(), "352099001761481");
    }

    #[test]
    fn each_bad_input_has_its_own_error() {
        assert_eq!(
            Imei::parse("352099001761482"),
            Err(ImeiError::CheckDigit {
                expected: 1,
                found: 2
            })
        );
        assert_eq!(
            Imei::parse("35209900176148"),
            Err(ImeiError::WrongLength { found: 14 })
        );
        assert_eq!(
            Imei::parse("35209900176148A"),
            Err(ImeiError::InvalidCharacter {
                found: 'A',
                position: 15
            })
        );
        assert_eq!(Imei::parse(""), Err(ImeiError::Empty));
        assert_eq!(Imei::parse(" - "), Err(ImeiError::Empty));
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        let msg = Imei::parse("352099001761482").unwrap_err().to_string();
        assert!(msg.contains("check digit is 2"), "{msg}");
        assert!(msg.contains("require 1"), "{msg}");
        let msg = Imei::parse("35209900176148").unwrap_err().to_string();
        assert!(msg.contains("14 digits"), "{msg}");
    }

    #[test]
    fn imeisv_converts_to_the_imei_of_the_same_device() {
        // The software version digits (here 07) are replaced by the check digit.
        let imei = Imei::from_imeisv("35209900176148 07").unwrap();
        assert_eq!(imei.as_str(), "352099001761481");
        assert_eq!(
            Imei::from_imeisv("352099001761481"),
            Err(ImeiError::WrongImeisvLength { found: 15 })
        );
    }

    #[test]
    fn known_valid_imeis_pass_the_luhn_check() {
        for imei in ["490154203237518", "356938035643809", "013440001737488"] {
            assert!(Imei::parse(imei).is_ok(), "{imei}");
        }
    }

    #[test]
    fn serial_numbers_are_printable_ascii() {
        assert_eq!(
            SerialNumber::parse(" R58M123ABC ").unwrap().as_str(),
            "R58M123ABC"
        );
        assert_eq!(SerialNumber::parse(""), Err(SerialError::Empty));
        assert!(matches!(
            SerialNumber::parse("AB CD"),
            Err(SerialError::InvalidCharacter {
                found: ' ',
                position: 3
            })
        ));
        assert!(matches!(
            SerialNumber::parse(&"X".repeat(65)),
            Err(SerialError::TooLong { found: 65, .. })
        ));
    }

    #[test]
    fn a_dual_sim_phone_has_two_different_imeis() {
        let imei = Imei::parse("490154203237518").unwrap();
        let serial = SerialNumber::parse("SN1").unwrap();
        assert_eq!(
            DeviceIdentity::new(imei.clone(), Some(imei.clone()), serial.clone()),
            Err(IdentityError::SameImeiTwice(imei.clone()))
        );
        let other = Imei::parse("356938035643809").unwrap();
        let device = DeviceIdentity::new(imei.clone(), Some(other.clone()), serial).unwrap();
        assert_eq!(device.imeis().collect::<Vec<_>>(), vec![&imei, &other]);
    }
}
