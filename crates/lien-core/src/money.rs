//! Money as integer minor units of one ISO 4217 currency.
//!
//! Floating point never touches an amount: a cent lost in rounding is a phone locked
//! for a debt that was paid.

use std::fmt;

/// Why an amount or a sum of amounts cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The code is not an ISO 4217 currency.
    #[error("{0:?} is not an ISO 4217 currency code (e.g. KES, INR, USD)")]
    UnknownCurrency(String),
    /// Two amounts in different currencies were combined.
    #[error("cannot combine {left} and {right} amounts")]
    CurrencyMismatch {
        /// The currency of the left operand.
        left: Currency,
        /// The currency of the right operand.
        right: Currency,
    },
    /// The result does not fit in 64-bit minor units.
    #[error("amount overflows")]
    Overflow,
}

/// An ISO 4217 currency, e.g. KES or INR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// Looks up an alphabetic ISO 4217 code; the code must be upper case, as the standard writes it.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        iso_currency::Currency::from_code(code)
            .map(Currency)
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_owned()))
    }

    /// The three-letter code.
    pub fn code(&self) -> &'static str {
        self.0.code()
    }

    /// How many decimal digits the minor unit has (2 for KES, 0 for JPY).
    pub fn minor_digits(&self) -> u32 {
        // The code is ISO 4217 by construction, so the look-up finds it.
        lien_money::minor_digits(self.code()).unwrap_or(0)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount in integer minor units (cents, paise) of one currency. It may be negative
/// (a balance), but amounts that people pay are checked to be positive where they are taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// An amount of `minor` units of `currency`.
    pub fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// Nothing, in `currency`.
    pub fn zero(currency: Currency) -> Money {
        Money::new(0, currency)
    }

    /// The amount in minor units.
    pub fn minor(&self) -> i64 {
        self.minor
    }

    /// Reads an amount a person typed in the `field` of a form, e.g. `1,000.50`, refusing a
    /// sign, more decimals than the currency has, and overflow (see
    /// [`lien_money::parse_decimal`]). Zero is an amount; a payment is checked to be positive
    /// where it is taken in.
    pub fn parse_decimal(
        field: &str,
        text: &str,
        currency: Currency,
    ) -> Result<Money, lien_money::AmountError> {
        lien_money::parse_decimal(field, text, currency.minor_digits())
            .map(|minor| Money::new(minor, currency))
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Whether the amount is above zero.
    pub fn is_positive(&self) -> bool {
        self.minor > 0
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.minor == 0
    }

    /// The sum, refusing mixed currencies and overflow.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.combine(other, i64::checked_add)
    }

    /// The difference, refusing mixed currencies and overflow.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.combine(other, i64::checked_sub)
    }

    /// `op` on the two amounts, refusing mixed currencies and overflow.
    fn combine(self, other: Money, op: fn(i64, i64) -> Option<i64>) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        op(self.minor, other.minor)
            .map(|minor| Money::new(minor, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }
}

impl fmt::Display for Money {
    /// Shows the code and the amount in major units, e.g. `KES 1250.50` or `JPY 300`
    /// (`lien_money`'s plain style, as the server's messages and pages write amounts).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        lien_money::Amount {
            minor: self.minor,
            code: self.currency.code(),
            style: lien_money::Style::Plain,
        }
        .fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kes() -> Currency {
        Currency::parse("KES").unwrap()
    }

    #[test]
    fn unknown_and_lower_case_codes_are_refused() {
        assert_eq!(
            Currency::parse("XYZ"),
            Err(MoneyError::UnknownCurrency("XYZ".into()))
        );
        assert!(Currency::parse("kes").is_err());
        assert_eq!(kes().minor_digits(), 2);
        assert_eq!(Currency::parse("JPY").unwrap().minor_digits(), 0);
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies_and_overflow() {
        let inr = Currency::parse("INR").unwrap();
        let a = Money::new(100, kes());
        assert_eq!(
            a.checked_add(Money::new(50, kes())),
            Ok(Money::new(150, kes()))
        );
        assert_eq!(
            a.checked_sub(Money::new(150, kes())),
            Ok(Money::new(-50, kes()))
        );
        assert_eq!(
            a.checked_add(Money::new(1, inr)),
            Err(MoneyError::CurrencyMismatch {
                left: kes(),
                right: inr
            })
        );
        assert_eq!(
            Money::new(i64::MAX, kes()).checked_add(Money::new(1, kes())),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::new(i64::MIN, kes()).checked_sub(Money::new(1, kes())),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn displays_in_major_units() {
        assert_eq!(Money::new(125_050, kes()).to_string(), "KES 1250.50");
        assert_eq!(Money::new(-5, kes()).to_string(), "KES -0.05");
        assert_eq!(
            Money::new(300, Currency::parse("JPY").unwrap()).to_string(),
            "JPY 300"
        );
        assert_eq!(
            Money::new(1, Currency::parse("BHD").unwrap()).to_string(),
            "BHD 0.001"
        );
    }

    #[test]
    fn typed_amounts_are_read_in_the_currency_minor_units() {
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(
            Money::parse_decimal("amount", "1,000.5", kes()),
            Ok(Money::new(100_050, kes()))
        );
        assert_eq!(
            Money::parse_decimal("amount", "1,300", jpy),
            Ok(Money::new(1_300, jpy))
        );
        let refused = Money::parse_decimal("amount", "13.5", jpy).unwrap_err();
        assert_eq!(refused.field, "amount");
        assert!(matches!(
            refused.problem,
            lien_money::AmountProblem::TooManyDecimals { digits: 0, .. }
        ));
    }
}
