//! Amounts as the borrower reads them: "KES 1,250.00".
//!
//! The agent does not depend on `lien-core` (a phone build takes only the wire crate, this one
//! and the leaf `lien-money`), so it formats the token's integer minor units with
//! `lien-money`, the same code the server writes amounts with. Floating point never touches an
//! amount.

use lien_proto::WireMoney;

/// `minor` units of `currency`, e.g. `KES 1,250.00`, `JPY 1,300`, `-KES 5.00`. A code that is
/// not ISO 4217 is shown with its units unconverted rather than guessed at.
pub fn format_money(money: &WireMoney) -> String {
    lien_money::format(money.minor, &money.currency, lien_money::Style::Grouped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(minor: i64, currency: &str) -> String {
        format_money(&WireMoney {
            minor,
            currency: currency.into(),
        })
    }

    #[test]
    fn amounts_use_the_currency_exponent_and_group_thousands() {
        assert_eq!(fmt(125_000, "KES"), "KES 1,250.00");
        assert_eq!(fmt(5, "KES"), "KES 0.05");
        assert_eq!(fmt(130_000, "JPY"), "JPY 130,000");
        assert_eq!(fmt(1_234_567, "BHD"), "BHD 1,234.567");
        assert_eq!(fmt(-500, "INR"), "-INR 5.00");
        assert_eq!(fmt(100, "XYZ"), "XYZ 100 (minor units)");
        assert_eq!(fmt(i64::MIN, "USD"), "-USD 92,233,720,368,547,758.08");
    }
}
