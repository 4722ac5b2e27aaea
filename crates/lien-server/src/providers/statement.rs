//! A provider's statement, as a financier uploads it for a reconciliation, and the report a
//! reconciliation answers with (the matching itself is `commands::reconciliation`).
//!
//! **The CSV.** A header line, then one payment per line. Columns are found by name (case and
//! surrounding spaces ignored, in any order; other columns are ignored, as statements carry
//! balances and descriptions):
//!
//! | column           | content                                                                 |
//! |------------------|-------------------------------------------------------------------------|
//! | `transaction_id` | the provider's transaction id (M-Pesa's receipt number)                  |
//! | `account`        | the account the payer named: the device's contract reference            |
//! | `amount`         | a positive decimal, e.g. `1000.00`                                      |
//! | `currency`       | ISO 4217; may be left out for M-Pesa, whose statements are all in KES   |
//! | `paid_at`        | RFC 3339, or M-Pesa's `YYYYMMDDHHMMSS` (read in Africa/Nairobi)          |
//!
//! Every line must fall within the period reconciled (`from` included, `to` not), so that what
//! Lien alone has is judged against the whole of the provider's record for it. A transaction id
//! may appear twice only with the same values. A line Lien refuses is a 422 naming the line and
//! the column, and nothing is applied.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::generic::{parse_account, parse_money, parse_reference};
use crate::domain::parse_instant;
use crate::error::ApiError;

/// The most lines one statement may have: a busy paybill's day, many times over.
pub const MAX_STATEMENT_LINES: usize = 20_000;

/// The longest period one reconciliation covers.
pub const MAX_PERIOD_DAYS: i64 = 31;

/// The columns a statement must have (`currency` aside, for M-Pesa).
const COLUMNS: [&str; 5] = ["transaction_id", "account", "amount", "currency", "paid_at"];

/// One line of a statement, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLine {
    /// The line's number in the file, the header being line 1.
    pub line: u64,
    /// The provider's transaction id.
    pub reference: String,
    /// The account named.
    pub account: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// When the provider took it.
    pub paid_at: Timestamp,
}

fn at_line(line: u64, err: ApiError) -> ApiError {
    match err {
        ApiError::Invalid(message) => ApiError::Invalid(format!("line {line}, {message}")),
        other => other,
    }
}

/// Reads a statement of the period `[from, to)`. `default_currency` stands in for a missing
/// `currency` column (M-Pesa's KES); without one the column is required.
pub fn read_statement(
    body: &[u8],
    from: Timestamp,
    to: Timestamp,
    default_currency: Option<&str>,
) -> Result<Vec<StatementLine>, ApiError> {
    let (mut reader, headers) = crate::input::csv_reader(body)?;
    let column = |name: &str| {
        headers
            .iter()
            .position(|header| header.eq_ignore_ascii_case(name))
    };
    let mut positions = HashMap::new();
    for name in COLUMNS {
        match column(name) {
            Some(i) => {
                positions.insert(name, i);
            }
            None if name == "currency" && default_currency.is_some() => {}
            None => {
                return Err(ApiError::invalid(
                    "header",
                    format!(
                        "the column {name} is missing (the columns are {})",
                        COLUMNS.join(", ")
                    ),
                ));
            }
        }
    }
    let mut lines: Vec<StatementLine> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| ApiError::BadRequest(format!("CSV: {e}")))?;
        let line = record.position().map_or(0, |p| p.line());
        if lines.len() == MAX_STATEMENT_LINES {
            return Err(ApiError::invalid(
                "statement",
                format!("has more than {MAX_STATEMENT_LINES} lines; reconcile a shorter period"),
            ));
        }
        let field = |name: &str| {
            positions
                .get(name)
                .and_then(|&i| record.get(i))
                .unwrap_or("")
        };
        if let Some(name) = COLUMNS.iter().find(|name| field(name).contains('\0')) {
            return Err(at_line(
                line,
                ApiError::invalid(name, crate::no_nul::NUL_PROBLEM),
            ));
        }
        let read = || -> Result<StatementLine, ApiError> {
            let reference = parse_reference("transaction_id", field("transaction_id"))?;
            let account = parse_account("account", field("account"))?;
            let currency = match (field("currency"), default_currency) {
                ("", Some(default)) => default,
                (given, _) => given,
            };
            let (amount_minor, currency) =
                parse_money("amount", field("amount"), "currency", currency)?;
            let paid_at = parse_paid_at(field("paid_at"))?;
            if paid_at < from || paid_at >= to {
                return Err(ApiError::invalid(
                    "paid_at",
                    format!("{paid_at} is outside the period reconciled ({from} to {to})"),
                ));
            }
            Ok(StatementLine {
                line,
                reference,
                account,
                amount_minor,
                currency,
                paid_at,
            })
        };
        let read = read().map_err(|e| at_line(line, e))?;
        match seen.get(&read.reference) {
            Some(&i) => {
                let first = &lines[i];
                let same = first.account == read.account
                    && first.amount_minor == read.amount_minor
                    && first.currency == read.currency
                    && first.paid_at == read.paid_at;
                if !same {
                    return Err(at_line(
                        line,
                        ApiError::invalid(
                            "transaction_id",
                            format!("appears on line {} too, with other values", first.line),
                        ),
                    ));
                }
            }
            None => {
                seen.insert(read.reference.clone(), lines.len());
                lines.push(read);
            }
        }
    }
    Ok(lines)
}

/// `paid_at`: RFC 3339, or M-Pesa's `YYYYMMDDHHMMSS` in Nairobi time.
fn parse_paid_at(text: &str) -> Result<Timestamp, ApiError> {
    if text.len() == 14 && text.bytes().all(|b| b.is_ascii_digit()) {
        return super::mpesa::parse_trans_time(text).map_err(|_| {
            ApiError::invalid("paid_at", format!("{text:?} is not a time YYYYMMDDHHMMSS"))
        });
    }
    parse_instant("paid_at", text)
}

/// A period to reconcile, `from` included and `to` not.
pub fn parse_period(from: &str, to: &str) -> Result<(Timestamp, Timestamp), ApiError> {
    let from_at = parse_instant("from", from.trim())?;
    let to_at = parse_instant("to", to.trim())?;
    if to_at <= from_at {
        return Err(ApiError::invalid("to", "must be after from"));
    }
    if to_at.as_second() - from_at.as_second() > MAX_PERIOD_DAYS * 24 * 3600 {
        return Err(ApiError::invalid(
            "to",
            format!("the period may be at most {MAX_PERIOD_DAYS} days"),
        ));
    }
    Ok((from_at, to_at))
}

/// What became of a line Lien did not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissingOutcome {
    /// Recorded on the device its account names now.
    Recorded,
    /// No device could take it: kept as an unmatched payment.
    Unmatched,
    /// Recorded or kept by a callback that arrived meanwhile: nothing changed.
    Repeated,
}

/// A line of the statement Lien had no payment for, now applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MissingPayment {
    /// The statement's line.
    pub line: u64,
    /// The provider's transaction id.
    pub transaction_id: String,
    /// The account named.
    pub account: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// When the provider took it (RFC 3339).
    pub paid_at: String,
    /// What Lien did with it.
    pub outcome: MissingOutcome,
    /// The device it was recorded on.
    pub device_id: Option<String>,
    /// The unmatched payment it was kept as.
    pub unmatched_id: Option<String>,
}

/// A payment as one side has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaymentSide {
    /// The account: on Lien's side a recorded payment's device's contract reference.
    pub account: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// The device it is recorded on (Lien's side).
    pub device_id: Option<String>,
    /// The unmatched payment it is kept as (Lien's side).
    pub unmatched_id: Option<String>,
}

/// Which part of a payment the two sides disagree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MismatchedField {
    /// The amount.
    Amount,
    /// The currency.
    Currency,
    /// The account (the device's contract reference).
    Account,
}

/// A transaction both sides have, with different values: reported, not changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MismatchedPayment {
    /// The statement's line.
    pub line: u64,
    /// The provider's transaction id.
    pub transaction_id: String,
    /// What differs.
    pub fields: Vec<MismatchedField>,
    /// The statement's values.
    pub statement: PaymentSide,
    /// Lien's.
    pub lien: PaymentSide,
}

/// A payment Lien has from the provider in the period that the statement lacks: reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LienOnlyPayment {
    /// The provider's transaction id.
    pub transaction_id: String,
    /// When the provider said it took it (RFC 3339).
    pub received_at: String,
    /// Lien's values.
    pub lien: PaymentSide,
}

/// How many of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReconciliationCounts {
    /// Distinct transactions in the statement.
    pub statement: usize,
    /// Those Lien has with the same values.
    pub matched: usize,
    /// Those Lien lacked, applied now.
    pub missing: usize,
    /// Those Lien has with other values.
    pub mismatched: usize,
    /// Lien's payments from the provider in the period that the statement lacks.
    pub lien_only: usize,
}

/// A reconciliation's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReconciliationReport {
    /// The financier.
    pub financier_id: String,
    /// The provider: `mpesa` or one of the financier's.
    pub provider: String,
    /// The period's start (RFC 3339), included.
    pub from: String,
    /// Its end, excluded.
    pub to: String,
    /// How many of each.
    pub counts: ReconciliationCounts,
    /// The statement's lines Lien lacked, in the statement's order.
    pub missing: Vec<MissingPayment>,
    /// The transactions whose values differ, in the statement's order.
    pub mismatched: Vec<MismatchedPayment>,
    /// Lien's payments the statement lacks, oldest first.
    pub lien_only: Vec<LienOnlyPayment>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period() -> (Timestamp, Timestamp) {
        parse_period("2026-02-05T00:00:00+03:00", "2026-02-06T00:00:00+03:00").unwrap()
    }

    #[test]
    fn a_statement_is_read_by_column_name() {
        let (from, to) = period();
        let body = "Paid_At , transaction_id,account,amount,note\n\
                    20260205103000,RKA1,C-1001,1000.00,x\n\
                    2026-02-05T08:00:00Z,RKA2,C-1002,5,y\n\
                    20260205103000,RKA1,C-1001,1000.00,again\n";
        let lines = read_statement(body.as_bytes(), from, to, Some("KES")).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].reference, "RKA1");
        assert_eq!(lines[0].amount_minor, 100_000);
        assert_eq!(lines[0].currency, "KES");
        assert_eq!(lines[0].paid_at, "2026-02-05T07:30:00Z".parse().unwrap());
        assert_eq!(lines[1].line, 3);
        // Without M-Pesa's default, the currency column is required.
        let err = read_statement(body.as_bytes(), from, to, None).unwrap_err();
        assert!(err.to_string().contains("currency"), "{err}");
    }

    #[test]
    fn a_bad_line_is_named() {
        let (from, to) = period();
        let refused = |line: &str| {
            let body = format!("transaction_id,account,amount,currency,paid_at\n{line}\n");
            read_statement(body.as_bytes(), from, to, None)
                .unwrap_err()
                .to_string()
        };
        assert!(refused("RKA1,C-1,-5,KES,2026-02-05T08:00:00Z").starts_with("line 2, amount"));
        assert!(refused("RKA1,C-1,5,KES,2026-02-07T08:00:00Z").starts_with("line 2, paid_at"));
        assert!(
            refused("RK A1,C-1,5,KES,2026-02-05T08:00:00Z").starts_with("line 2, transaction_id")
        );
        let twice = "transaction_id,account,amount,currency,paid_at\n\
                     RKA1,C-1,5,KES,2026-02-05T08:00:00Z\n\
                     RKA1,C-1,6,KES,2026-02-05T08:00:00Z\n";
        let err = read_statement(twice.as_bytes(), from, to, None).unwrap_err();
        assert!(
            err.to_string().starts_with("line 3, transaction_id"),
            "{err}"
        );
        assert!(parse_period("2026-02-06T00:00:00Z", "2026-02-05T00:00:00Z").is_err());
        assert!(parse_period("2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z").is_err());
    }
}
