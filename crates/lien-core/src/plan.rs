//! Installment plans: what a borrower owes and when, in the plan's time zone.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::calendar;
use crate::money::{Currency, Money};

/// Why an installment plan is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A plan needs at least one installment.
    #[error("the plan has no installments")]
    NoInstallments,
    /// Installments must be listed by strictly increasing due date.
    #[error(
        "installment {index} is due on {due}, which is not after installment {previous_index} due on {previous}; list installments in date order, one per date"
    )]
    NotInDateOrder {
        /// 1-based position of the offending installment.
        index: usize,
        /// Its due date.
        due: Date,
        /// 1-based position of the installment before it.
        previous_index: usize,
        /// That installment's due date.
        previous: Date,
    },
    /// Every amount of a plan is in one currency.
    #[error("installment {index} is in {found}, but the plan is in {expected}")]
    MixedCurrencies {
        /// 1-based position of the offending installment (0 for the down payment).
        index: usize,
        /// The plan's currency.
        expected: Currency,
        /// The currency found.
        found: Currency,
    },
    /// An installment of zero or less is not an installment.
    #[error("installment {index} amount must be positive, got {amount}")]
    NonPositiveAmount {
        /// 1-based position of the offending installment.
        index: usize,
        /// The amount given.
        amount: Money,
    },
    /// A down payment cannot be negative.
    #[error("down payment cannot be negative, got {0}")]
    NegativeDownPayment(Money),
    /// The plan's total does not fit in 64-bit minor units.
    #[error("the plan's total amount overflows")]
    TotalOverflow,
    /// More installments than any plan has.
    #[error("the plan has {0} installments; at most {max}", max = InstallmentPlan::MAX_INSTALLMENTS)]
    TooManyInstallments(usize),
    /// A due date outside the years a plan can name.
    #[error(
        "installment {index} is due on {due}; due dates must be in the years {first} to {last}",
        first = InstallmentPlan::FIRST_YEAR,
        last = InstallmentPlan::LAST_YEAR
    )]
    DueOutOfRange {
        /// 1-based position of the installment.
        index: usize,
        /// Its due date.
        due: Date,
    },
}

/// One scheduled payment: an amount due on a local date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installment {
    /// The local date on which it is due; it is late from the start of the next day.
    pub due: Date,
    /// The amount due.
    pub amount: Money,
}

/// A financed phone's contract: a down payment and dated installments, all in one currency,
/// in the time zone where the borrower lives.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallmentPlan {
    time_zone: TimeZone,
    down_payment: Money,
    installments: Vec<Installment>,
    financed: Money,
}

impl InstallmentPlan {
    /// The most installments a plan may have: fifty years of monthly payments.
    pub const MAX_INSTALLMENTS: usize = 600;
    /// The first year a due date may fall in.
    pub const FIRST_YEAR: i16 = 1970;
    /// The last year a due date may fall in: far enough from jiff's last representable date
    /// (9999-12-31) that every date the decision adds days to stays representable.
    pub const LAST_YEAR: i16 = 2199;

    /// Builds a plan, refusing installments out of date order, in two currencies or of no amount.
    ///
    /// The down payment is collected at the point of sale before the phone leaves the shop, so it
    /// is part of the contract price but never in arrears; a zero down payment is allowed.
    pub fn new(
        time_zone: TimeZone,
        down_payment: Money,
        installments: Vec<Installment>,
    ) -> Result<InstallmentPlan, PlanError> {
        let currency = down_payment.currency();
        if down_payment.minor() < 0 {
            return Err(PlanError::NegativeDownPayment(down_payment));
        }
        if installments.is_empty() {
            return Err(PlanError::NoInstallments);
        }
        if installments.len() > Self::MAX_INSTALLMENTS {
            return Err(PlanError::TooManyInstallments(installments.len()));
        }
        if let Some((i, late)) = installments
            .iter()
            .enumerate()
            .find(|(_, inst)| !(Self::FIRST_YEAR..=Self::LAST_YEAR).contains(&inst.due.year()))
        {
            return Err(PlanError::DueOutOfRange {
                index: i + 1,
                due: late.due,
            });
        }
        let mut financed = Money::zero(currency);
        for (i, installment) in installments.iter().enumerate() {
            let index = i + 1;
            if installment.amount.currency() != currency {
                return Err(PlanError::MixedCurrencies {
                    index,
                    expected: currency,
                    found: installment.amount.currency(),
                });
            }
            if !installment.amount.is_positive() {
                return Err(PlanError::NonPositiveAmount {
                    index,
                    amount: installment.amount,
                });
            }
            if i > 0 && installments[i - 1].due >= installment.due {
                return Err(PlanError::NotInDateOrder {
                    index,
                    due: installment.due,
                    previous_index: i,
                    previous: installments[i - 1].due,
                });
            }
            financed = financed
                .checked_add(installment.amount)
                .map_err(|_| PlanError::TotalOverflow)?;
        }
        down_payment
            .checked_add(financed)
            .map_err(|_| PlanError::TotalOverflow)?;
        Ok(InstallmentPlan {
            time_zone,
            down_payment,
            installments,
            financed,
        })
    }

    /// The time zone in which due dates and quiet hours are read.
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// The plan's currency.
    pub fn currency(&self) -> Currency {
        self.down_payment.currency()
    }

    /// The down payment taken at the point of sale.
    pub fn down_payment(&self) -> Money {
        self.down_payment
    }

    /// The installments, by due date.
    pub fn installments(&self) -> &[Installment] {
        &self.installments
    }

    /// The sum of the installments: what is paid through Lien.
    pub fn financed(&self) -> Money {
        self.financed
    }

    /// Down payment plus installments.
    pub fn contract_price(&self) -> Money {
        // Checked at construction.
        Money::new(
            self.down_payment.minor() + self.financed.minor(),
            self.currency(),
        )
    }

    /// The largest installment, the yardstick for the policy's minimum arrears.
    pub fn largest_installment(&self) -> Money {
        self.installments
            .iter()
            .map(|i| i.amount)
            .max_by_key(|m| m.minor())
            .unwrap_or(Money::zero(self.currency()))
    }

    /// The instant an installment due on `due` becomes late: the start of the next local day.
    pub fn late_from(&self, due: Date) -> Timestamp {
        calendar::start_of_day(&self.time_zone, calendar::add_days(due, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn kes(minor: i64) -> Money {
        Money::new(minor, Currency::parse("KES").unwrap())
    }

    /// A plan in Nairobi with this down payment and these (due date, amount) installments.
    fn nairobi_plan(
        down_payment: Money,
        installments: &[(Date, Money)],
    ) -> Result<InstallmentPlan, PlanError> {
        InstallmentPlan::new(
            TimeZone::get("Africa/Nairobi").unwrap(),
            down_payment,
            installments
                .iter()
                .map(|&(due, amount)| Installment { due, amount })
                .collect(),
        )
    }

    #[test]
    fn refuses_installments_out_of_order() {
        let err = nairobi_plan(
            kes(0),
            &[(date(2026, 2, 1), kes(100)), (date(2026, 1, 1), kes(100))],
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::NotInDateOrder { index: 2, .. }));
        assert!(err.to_string().contains("date order"), "{err}");
    }

    #[test]
    fn refuses_two_installments_on_one_date() {
        let err = nairobi_plan(
            kes(0),
            &[(date(2026, 1, 1), kes(100)), (date(2026, 1, 1), kes(100))],
        );
        assert!(matches!(
            err,
            Err(PlanError::NotInDateOrder { index: 2, .. })
        ));
    }

    #[test]
    fn refuses_two_currencies() {
        let inr = Money::new(100, Currency::parse("INR").unwrap());
        let err = nairobi_plan(
            kes(0),
            &[(date(2026, 1, 1), kes(100)), (date(2026, 2, 1), inr)],
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::MixedCurrencies { index: 2, .. }));
        assert_eq!(
            err.to_string(),
            "installment 2 is in INR, but the plan is in KES"
        );
    }

    #[test]
    fn refuses_non_positive_amounts_and_empty_plans() {
        for amount in [0, -1] {
            let err = nairobi_plan(kes(0), &[(date(2026, 1, 1), kes(amount))]);
            assert!(matches!(
                err,
                Err(PlanError::NonPositiveAmount { index: 1, .. })
            ));
        }
        assert_eq!(nairobi_plan(kes(0), &[]), Err(PlanError::NoInstallments));
        assert!(matches!(
            nairobi_plan(kes(-1), &[(date(2026, 1, 1), kes(1))]),
            Err(PlanError::NegativeDownPayment(_))
        ));
    }

    #[test]
    fn totals_and_late_instant_follow_the_local_calendar() {
        let plan = nairobi_plan(
            kes(5_000),
            &[
                (date(2026, 1, 31), kes(1_000)),
                (date(2026, 2, 28), kes(1_500)),
            ],
        )
        .unwrap();
        assert_eq!(plan.financed(), kes(2_500));
        assert_eq!(plan.contract_price(), kes(7_500));
        assert_eq!(plan.largest_installment(), kes(1_500));
        // Midnight in Nairobi (UTC+3) is 21:00 UTC the day before.
        assert_eq!(
            plan.late_from(date(2026, 1, 31)).to_string(),
            "2026-01-31T21:00:00Z"
        );
    }
}
