//! Amounts as text, for every surface that shows one or takes one from a person: the
//! server's messages and borrower pages, and the phone's screens.
//!
//! An amount is an integer count of the currency's minor units (cents, paise). Its text is that
//! count with the decimal point moved left by the currency's ISO 4217 exponent: 2 for KES, 0 for
//! JPY, 3 for BHD. Floating point never touches an amount. Text a person typed is read digit by
//! digit with checked arithmetic, so more decimals than the currency has, a minus sign, or a
//! number too large for 64 bits is refused rather than rounded, dropped or wrapped: a cent
//! rounded away is a phone locked for a debt that was paid.
//!
//! The crate is a leaf (it depends only on `iso_currency`) so that the phone's agent, which
//! does not depend on `lien-core`, writes amounts with the same code as the server.

use std::fmt;

/// The most decimal places [`format_decimal`] and [`parse_decimal`] take. ISO 4217 exponents
/// go up to 4; 18 keeps every scale within 64 bits.
pub const MAX_DIGITS: u32 = 18;

/// How an amount is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// The code, then the number as a person would type it: `KES 1250.50`, `KES -0.05`. The
    /// server's messages and pages use it.
    Plain,
    /// For a phone's screen, read at a glance: the sign before the code and the thousands
    /// grouped, `KES 1,250.50`, `-KES 0.05`.
    Grouped,
}

/// How many decimal digits the minor unit of the currency `code` has (2 for KES, 0 for JPY),
/// or `None` if `code` is not an ISO 4217 code (upper case, as the standard writes it).
pub fn minor_digits(code: &str) -> Option<u32> {
    // Currencies without a minor unit (gold, special drawing rights) count in whole units.
    iso_currency::Currency::from_code(code).map(|c| c.exponent().map_or(0, u32::from))
}

/// `minor` units of the currency `code`, laid out in `style`: `KES 1250.50` or `KES 1,250.50`.
/// A code that is not ISO 4217 is shown with its units unconverted, `XYZ 100 (minor units)`,
/// rather than with a guessed exponent.
pub fn format(minor: i64, code: &str, style: Style) -> String {
    Amount { minor, code, style }.to_string()
}

/// An amount to write with `{}`, without an intermediate string; see [`format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount<'a> {
    /// The amount in minor units.
    pub minor: i64,
    /// The currency's ISO 4217 code.
    pub code: &'a str,
    /// The layout.
    pub style: Style,
}

impl fmt::Display for Amount<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = minor_digits(self.code);
        let number = format_decimal(self.minor, digits.unwrap_or(0), self.style);
        let unconverted = if digits.is_none() {
            " (minor units)"
        } else {
            ""
        };
        match (self.style, number.strip_prefix('-')) {
            (Style::Grouped, Some(magnitude)) => {
                write!(f, "-{} {magnitude}{unconverted}", self.code)
            }
            _ => write!(f, "{} {number}{unconverted}", self.code),
        }
    }
}

/// `minor` units as a decimal number with `digits` decimal places and no currency: `1250.50`
/// ([`Style::Plain`]), `1,250.50` ([`Style::Grouped`]), `-0.05`. [`parse_decimal`] reads
/// either back.
///
/// # Panics
///
/// If `digits` is above [`MAX_DIGITS`]: a caller passes a currency's exponent, never text.
pub fn format_decimal(minor: i64, digits: u32, style: Style) -> String {
    assert!(digits <= MAX_DIGITS, "{digits} decimal places");
    let digits = digits as usize;
    let sign = if minor < 0 { "-" } else { "" };
    // The magnitude's digits, padded so that at least one stands before the point.
    let units = format!("{:0width$}", minor.unsigned_abs(), width = digits + 1);
    let (whole, fraction) = units.split_at(units.len() - digits);
    let whole = match style {
        Style::Plain => whole.to_owned(),
        Style::Grouped => group_thousands(whole),
    };
    if digits == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

/// Commas between groups of three digits, from the right.
fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Text that is not an amount, and the field it was typed into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct AmountError {
    /// The form field or parameter the text came from, e.g. `amount`.
    pub field: String,
    /// What is wrong with the text.
    pub problem: AmountProblem,
}

/// What is wrong with the text of an amount. Each variant quotes the text (trimmed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountProblem {
    /// Not a decimal number: empty, letters, a second point, a comma out of place.
    #[error("{text:?} is not an amount such as {}", example(*digits))]
    NotANumber {
        /// The text.
        text: String,
        /// The currency's decimal places, for the example.
        digits: u32,
    },
    /// A number below zero: an amount a person pays or claims has no sign.
    #[error("{text:?} is negative; give the amount without a sign")]
    Negative {
        /// The text.
        text: String,
    },
    /// More decimals than the currency's minor unit has, which would have to be rounded.
    #[error("{text:?} has too many decimals: the currency has {}", places(*digits))]
    TooManyDecimals {
        /// The text.
        text: String,
        /// The currency's decimal places.
        digits: u32,
    },
    /// More minor units than 64 bits hold.
    #[error("{text:?} is too large an amount")]
    Overflow {
        /// The text.
        text: String,
    },
}

/// `1000`, `1000.00`: a round amount with the currency's decimal places.
fn example(digits: u32) -> String {
    if digits == 0 {
        "1000".into()
    } else {
        format!("1000.{}", "0".repeat(digits as usize))
    }
}

fn places(digits: u32) -> String {
    match digits {
        0 => "no decimal places".into(),
        1 => "1 decimal place".into(),
        n => format!("{n} decimal places"),
    }
}

/// Reads an amount a person typed in the `field` of a form into minor units of a currency with
/// `digits` decimal places: `1000`, `1000.5`, `1,000.50` are 100,000, 100,050 and 100,050 cents.
///
/// Surrounding spaces are ignored. Commas may separate groups of digits before the point as
/// people write them, by thousands (`1,000,000`) or the Indian way (`10,00,000`): every group
/// after the first has two or three digits and the last has three, so that a decimal comma
/// (`1,5`) is refused rather than read as fifteen. Refused: no digits before the point, a sign
/// (a minus is [`AmountProblem::Negative`]), more decimals than `digits`, and more than
/// `i64::MAX` minor units. Zero is an amount; a caller that needs more says so.
///
/// # Panics
///
/// If `digits` is above [`MAX_DIGITS`]: a caller passes a currency's exponent, never text.
pub fn parse_decimal(field: &str, text: &str, digits: u32) -> Result<i64, AmountError> {
    assert!(digits <= MAX_DIGITS, "{digits} decimal places");
    let text = text.trim();
    let fail = |problem| AmountError {
        field: field.to_owned(),
        problem,
    };
    let not_a_number = || {
        fail(AmountProblem::NotANumber {
            text: text.to_owned(),
            digits,
        })
    };
    match text.strip_prefix('-') {
        Some(magnitude) => match read_magnitude(magnitude, digits) {
            Err(Unreadable::NotANumber) => Err(not_a_number()),
            _ => Err(fail(AmountProblem::Negative {
                text: text.to_owned(),
            })),
        },
        None => read_magnitude(text, digits).map_err(|e| match e {
            Unreadable::NotANumber => not_a_number(),
            Unreadable::TooManyDecimals => fail(AmountProblem::TooManyDecimals {
                text: text.to_owned(),
                digits,
            }),
            Unreadable::Overflow => fail(AmountProblem::Overflow {
                text: text.to_owned(),
            }),
        }),
    }
}

enum Unreadable {
    NotANumber,
    TooManyDecimals,
    Overflow,
}

/// An unsigned decimal in minor units.
fn read_magnitude(text: &str, digits: u32) -> Result<i64, Unreadable> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let groups: Vec<&str> = whole.split(',').collect();
    let grouped_well = match groups.as_slice() {
        [only] => !only.is_empty(),
        [first, middle @ .., last] => {
            (1..=3).contains(&first.len())
                && middle.iter().all(|g| (2..=3).contains(&g.len()))
                && last.len() == 3
        }
        [] => false,
    };
    if !grouped_well || !groups.iter().all(|g| all_digits(g)) || !all_digits(fraction) {
        return Err(Unreadable::NotANumber);
    }
    if fraction.len() > digits as usize {
        return Err(Unreadable::TooManyDecimals);
    }
    let padding = std::iter::repeat_n(b'0', digits as usize - fraction.len());
    whole
        .bytes()
        .filter(|b| *b != b',')
        .chain(fraction.bytes())
        .chain(padding)
        .try_fold(0_i64, |sum, b| {
            sum.checked_mul(10)?.checked_add(i64::from(b - b'0'))
        })
        .ok_or(Unreadable::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_is_the_code_then_the_number_as_typed() {
        assert_eq!(format(125_050, "KES", Style::Plain), "KES 1250.50");
        assert_eq!(format(100_050, "KES", Style::Plain), "KES 1000.50");
        assert_eq!(format(-5, "KES", Style::Plain), "KES -0.05");
        assert_eq!(format(300, "JPY", Style::Plain), "JPY 300");
        assert_eq!(format(1, "BHD", Style::Plain), "BHD 0.001");
        assert_eq!(format(12_345, "CLF", Style::Plain), "CLF 1.2345");
        assert_eq!(format(100, "XYZ", Style::Plain), "XYZ 100 (minor units)");
    }

    #[test]
    fn grouped_puts_the_sign_first_and_groups_thousands() {
        let grouped = |minor, code| format(minor, code, Style::Grouped);
        assert_eq!(grouped(125_000, "KES"), "KES 1,250.00");
        assert_eq!(grouped(5, "KES"), "KES 0.05");
        assert_eq!(grouped(130_000, "JPY"), "JPY 130,000");
        assert_eq!(grouped(1_234_567, "BHD"), "BHD 1,234.567");
        assert_eq!(grouped(-500, "INR"), "-INR 5.00");
        assert_eq!(grouped(100, "XYZ"), "XYZ 100 (minor units)");
        assert_eq!(grouped(-1_000, "XYZ"), "-XYZ 1,000 (minor units)");
        assert_eq!(grouped(i64::MIN, "USD"), "-USD 92,233,720,368,547,758.08");
        assert_eq!(
            Amount {
                minor: 99,
                code: "KES",
                style: Style::Grouped
            }
            .to_string(),
            "KES 0.99"
        );
    }

    #[test]
    fn typed_amounts_are_read_into_minor_units() {
        let kes = |text| parse_decimal("amount", text, 2);
        assert_eq!(kes("1000"), Ok(100_000));
        assert_eq!(kes(" 1000.5 "), Ok(100_050));
        assert_eq!(kes("1,000.5"), Ok(100_050));
        assert_eq!(kes("1000."), Ok(100_000));
        assert_eq!(kes("0"), Ok(0));
        assert_eq!(kes("0.07"), Ok(7));
        assert_eq!(kes("10,00,000"), Ok(100_000_000));
        assert_eq!(kes("92233720368547758.07"), Ok(i64::MAX));
        assert_eq!(parse_decimal("amount", "1,300", 0), Ok(1_300));
        assert_eq!(parse_decimal("amount", "1.234", 3), Ok(1_234));
    }

    #[test]
    fn refusals_name_the_field_and_say_what_is_wrong() {
        let kes = |text| parse_decimal("amount", text, 2).unwrap_err();
        for text in [
            "", " ", "abc", ".5", "1.2.3", "1,0", "1,5", ",100", "1,000,", "1,,000", "+5", "1e3",
            "1 000", "1.0,0", "١٢",
        ] {
            assert!(
                matches!(kes(text).problem, AmountProblem::NotANumber { .. }),
                "{text:?}: {:?}",
                kes(text)
            );
        }
        assert_eq!(
            kes("abc").to_string(),
            "amount: \"abc\" is not an amount such as 1000.00"
        );
        assert_eq!(
            kes("-3").to_string(),
            "amount: \"-3\" is negative; give the amount without a sign"
        );
        assert!(matches!(kes("-0").problem, AmountProblem::Negative { .. }));
        assert!(matches!(
            kes("-x").problem,
            AmountProblem::NotANumber { .. }
        ));
        assert_eq!(
            kes("10.001").to_string(),
            "amount: \"10.001\" has too many decimals: the currency has 2 decimal places"
        );
        assert_eq!(
            parse_decimal("paid", "5.5", 0).unwrap_err().to_string(),
            "paid: \"5.5\" has too many decimals: the currency has no decimal places"
        );
        assert_eq!(
            kes("92233720368547758.08").to_string(),
            "amount: \"92233720368547758.08\" is too large an amount"
        );
        assert!(matches!(
            kes("99999999999999999999999999").problem,
            AmountProblem::Overflow { .. }
        ));
    }

    #[test]
    fn every_iso_exponent_is_within_bounds() {
        for (code, digits) in [("JPY", 0), ("KES", 2), ("BHD", 3), ("CLF", 4)] {
            assert_eq!(minor_digits(code), Some(digits), "{code}");
        }
        assert_eq!(minor_digits("XAU"), Some(0), "gold has no minor unit");
        assert_eq!(minor_digits("kes"), None);
        assert_eq!(minor_digits("XYZ"), None);
    }

    fn style() -> impl Strategy<Value = Style> {
        prop_oneof![Just(Style::Plain), Just(Style::Grouped)]
    }

    /// A currency for each ISO 4217 exponent (0, 2, 3 and 4), with the exponent.
    fn currency() -> impl Strategy<Value = (&'static str, u32)> {
        prop_oneof![
            Just(("JPY", 0)),
            Just(("KES", 2)),
            Just(("BHD", 3)),
            Just(("CLF", 4)),
        ]
    }

    proptest! {
        #[test]
        fn a_formatted_amount_reads_back_to_itself(
            minor in 0..=i64::MAX,
            (code, digits) in currency(),
            style in style(),
        ) {
            let text = format(minor, code, style);
            let number = text.strip_prefix(code).and_then(|t| t.strip_prefix(' ')).unwrap();
            prop_assert_eq!(parse_decimal("amount", number, digits), Ok(minor), "{}", text);
        }

        #[test]
        fn every_number_of_places_reads_back(
            minor in 0..=i64::MAX,
            digits in 0..=MAX_DIGITS,
            style in style(),
        ) {
            let text = format_decimal(minor, digits, style);
            prop_assert_eq!(parse_decimal("amount", &text, digits), Ok(minor), "{}", text);
        }

        #[test]
        fn a_negative_amount_is_refused_as_negative(
            minor in i64::MIN..0,
            (_, digits) in currency(),
            style in style(),
        ) {
            let text = format_decimal(minor, digits, style);
            let problem = parse_decimal("amount", &text, digits).unwrap_err().problem;
            prop_assert!(matches!(problem, AmountProblem::Negative { .. }), "{}", text);
        }

        #[test]
        fn one_decimal_more_than_the_currency_has_is_refused(
            minor in 0..=i64::MAX,
            (_, digits) in currency(),
            extra in 0..10_u8,
        ) {
            let mut text = format_decimal(minor, digits, Style::Plain);
            if digits == 0 {
                text.push('.');
            }
            text.push(char::from(b'0' + extra));
            let problem = parse_decimal("amount", &text, digits).unwrap_err().problem;
            prop_assert!(matches!(problem, AmountProblem::TooManyDecimals { .. }), "{}", text);
        }

        #[test]
        fn whatever_is_typed_is_refused_or_read_exactly(
            text in "[ 0-9,.+-]{0,24}",
            (_, digits) in currency(),
        ) {
            match parse_decimal("amount", &text, digits) {
                Ok(minor) => {
                    prop_assert!(minor >= 0);
                    // What was accepted is the canonical text, up to commas, spaces and
                    // trailing zeros of the fraction.
                    let canonical = format_decimal(minor, digits, Style::Plain);
                    let typed: String = text.trim().chars().filter(|c| *c != ',').collect();
                    let typed = typed.trim_end_matches('.');
                    let value = |t: &str| {
                        let (whole, fraction) = t.split_once('.').unwrap_or((t, ""));
                        let whole = whole.trim_start_matches('0').to_owned();
                        (whole, format!("{fraction:0<width$}", width = digits as usize))
                    };
                    prop_assert_eq!(value(typed), value(&canonical), "{:?}", text);
                }
                Err(e) => prop_assert_eq!(e.field, "amount"),
            }
        }
    }
}
