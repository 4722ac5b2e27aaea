//! Restructuring: a new schedule for what remains of a plan.
//!
//! What is paid stays paid: the installments the payments already cover are kept as they are,
//! and one they cover in part is kept with its amount cut to what was paid of it, so that the
//! ledger (which applies payments oldest installment first) finds every kept installment paid
//! and the new installments owing exactly what remained. The new installments come after the
//! kept ones and are not due in the past; they are in the plan's currency; together they ask
//! what remained, plus at most the fee the policy allows (`restructure_max_fee_percent`), and
//! never less. The down payment and the time zone stay.

use jiff::civil::Date;

use crate::money::{Currency, Money};
use crate::plan::{Installment, InstallmentPlan, PlanError};

/// Why a new schedule is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestructureError {
    /// Nothing is owed: there is nothing to reschedule.
    #[error("nothing remains owed on the plan, so there is nothing to reschedule")]
    NothingRemains,
    /// The new schedule has no installment.
    #[error("the new schedule has no installments")]
    NoInstallments,
    /// A new installment in another currency.
    #[error("installment {index} is in {found}, but the plan is in {expected}")]
    CurrencyMismatch {
        /// 1-based position among the new installments.
        index: usize,
        /// The plan's currency.
        expected: Currency,
        /// The currency given.
        found: Currency,
    },
    /// A new installment due before today.
    #[error("installment {index} is due on {due}, which is in the past (today is {today})")]
    DueInPast {
        /// 1-based position among the new installments.
        index: usize,
        /// Its due date.
        due: Date,
        /// Today, in the plan's time zone.
        today: Date,
    },
    /// A new installment due on or before an installment that stays.
    #[error(
        "installment {index} is due on {due}, not after {kept}, the last installment already paid (or paid in part), which stays"
    )]
    DueBeforeKept {
        /// 1-based position among the new installments.
        index: usize,
        /// Its due date.
        due: Date,
        /// The due date of the last installment kept.
        kept: Date,
    },
    /// The new installments ask less than remains.
    #[error("the new installments total {proposed}, less than the {remaining} that remains owed")]
    LessThanRemains {
        /// What the new schedule asks.
        proposed: Money,
        /// What remained.
        remaining: Money,
    },
    /// The new installments ask more than remains plus the allowed fee.
    #[error(
        "the new installments total {proposed}, more than the {remaining} that remains owed plus the fee restructure_max_fee_percent allows ({max_percent}%: at most {max_fee})"
    )]
    FeeTooHigh {
        /// What the new schedule asks.
        proposed: Money,
        /// What remained.
        remaining: Money,
        /// The policy's percentage.
        max_percent: u8,
        /// The largest fee it allows here.
        max_fee: Money,
    },
    /// The plan the schedule makes is refused (too many installments, out of order...).
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// A checked restructuring: the new plan and what it changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Restructured {
    /// The plan from now on: the installments kept, then the new ones.
    pub plan: InstallmentPlan,
    /// What remained owed under the old plan.
    pub remaining: Money,
    /// What the new schedule adds to it (the fee); zero unless the policy allows one.
    pub fee: Money,
    /// How many installments of the old plan stay (the paid ones, and one paid in part).
    pub kept: usize,
}

/// Checks `new_installments` against `plan`, with `paid` (minor units in effect now, as
/// [`crate::PaymentLog::paid_at`] gives them) and `today` in the plan's time zone, allowing a
/// fee of at most `max_fee_percent` of what remains; returns the plan from now on.
pub fn restructure(
    plan: &InstallmentPlan,
    paid: i128,
    today: Date,
    new_installments: Vec<Installment>,
    max_fee_percent: u8,
) -> Result<Restructured, RestructureError> {
    let currency = plan.currency();
    let (standings, _credit) = crate::ledger::installments_paid(plan, paid, today);
    let mut kept: Vec<Installment> = Vec::new();
    let mut remaining: i128 = 0;
    for s in &standings {
        if s.paid.is_positive() {
            kept.push(Installment {
                due: s.due,
                amount: s.paid,
            });
        }
        remaining += i128::from(s.amount.minor() - s.paid.minor());
    }
    if remaining == 0 {
        return Err(RestructureError::NothingRemains);
    }
    if new_installments.is_empty() {
        return Err(RestructureError::NoInstallments);
    }
    let last_kept = kept.last().map(|k| k.due);
    let mut proposed: i128 = 0;
    for (i, installment) in new_installments.iter().enumerate() {
        let index = i + 1;
        if installment.amount.currency() != currency {
            return Err(RestructureError::CurrencyMismatch {
                index,
                expected: currency,
                found: installment.amount.currency(),
            });
        }
        if installment.due < today {
            return Err(RestructureError::DueInPast {
                index,
                due: installment.due,
                today,
            });
        }
        if let Some(kept) = last_kept
            && installment.due <= kept
        {
            return Err(RestructureError::DueBeforeKept {
                index,
                due: installment.due,
                kept,
            });
        }
        proposed += i128::from(installment.amount.minor());
    }
    // Both fit in 64 bits: `remaining` is part of a checked plan's total, and `proposed` is
    // checked by the plan built below before it is used as money.
    let money = |minor: i128| Money::new(i64::try_from(minor).unwrap_or(i64::MAX), currency);
    let max_fee = remaining * i128::from(max_fee_percent) / 100;
    if proposed < remaining {
        return Err(RestructureError::LessThanRemains {
            proposed: money(proposed),
            remaining: money(remaining),
        });
    }
    if proposed - remaining > max_fee {
        return Err(RestructureError::FeeTooHigh {
            proposed: money(proposed),
            remaining: money(remaining),
            max_percent: max_fee_percent,
            max_fee: money(max_fee),
        });
    }
    let kept_count = kept.len();
    let mut installments = kept;
    installments.extend(new_installments);
    let new_plan =
        InstallmentPlan::new(plan.time_zone().clone(), plan.down_payment(), installments)?;
    Ok(Restructured {
        plan: new_plan,
        remaining: money(remaining),
        fee: money(proposed - remaining),
        kept: kept_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::installments_paid;
    use jiff::civil::date;
    use jiff::tz::TimeZone;

    fn kes(minor: i64) -> Money {
        Money::new(minor, Currency::parse("KES").unwrap())
    }

    fn due(d: Date, minor: i64) -> Installment {
        Installment {
            due: d,
            amount: kes(minor),
        }
    }

    /// Three installments of 100 due on the first of January, February and March.
    fn plan() -> InstallmentPlan {
        InstallmentPlan::new(
            TimeZone::UTC,
            kes(50),
            vec![
                due(date(2026, 1, 1), 100),
                due(date(2026, 2, 1), 100),
                due(date(2026, 3, 1), 100),
            ],
        )
        .unwrap()
    }

    #[test]
    fn paid_installments_stay_and_the_new_ones_owe_exactly_what_remains() {
        // 150 paid: January is paid, February half; 150 remains.
        let today = date(2026, 2, 20);
        let r = restructure(
            &plan(),
            150,
            today,
            vec![due(date(2026, 3, 1), 75), due(date(2026, 4, 1), 75)],
            0,
        )
        .unwrap();
        assert_eq!((r.remaining, r.fee, r.kept), (kes(150), kes(0), 2));
        let dues: Vec<_> = r
            .plan
            .installments()
            .iter()
            .map(|i| (i.due, i.amount.minor()))
            .collect();
        assert_eq!(
            dues,
            [
                (date(2026, 1, 1), 100),
                (date(2026, 2, 1), 50),
                (date(2026, 3, 1), 75),
                (date(2026, 4, 1), 75),
            ]
        );
        assert_eq!(r.plan.down_payment(), kes(50));
        // Under the new plan nothing is late today, and 150 is still owed.
        let (standings, credit) = installments_paid(&r.plan, 150, today);
        assert!(standings.iter().all(|s| !s.late));
        let owed: i64 = standings
            .iter()
            .map(|s| s.amount.minor() - s.paid.minor())
            .sum();
        assert_eq!((owed, credit), (150, 0));
    }

    #[test]
    fn more_than_remains_is_refused_unless_the_policy_allows_a_fee() {
        let today = date(2026, 2, 20);
        let ask = |total: i64, percent: u8| {
            restructure(
                &plan(),
                100,
                today,
                vec![due(date(2026, 3, 15), total)],
                percent,
            )
        };
        let err = ask(201, 0).unwrap_err();
        assert!(matches!(err, RestructureError::FeeTooHigh { .. }));
        assert!(
            err.to_string().contains("restructure_max_fee_percent"),
            "{err}"
        );
        // 5% of the 200 that remains is 10.
        assert_eq!(ask(210, 5).unwrap().fee, kes(10));
        assert!(
            matches!(ask(211, 5), Err(RestructureError::FeeTooHigh { max_fee, .. }) if max_fee == kes(10))
        );
        assert!(matches!(
            ask(199, 5),
            Err(RestructureError::LessThanRemains { .. })
        ));
    }

    #[test]
    fn dates_must_follow_what_is_paid_and_not_be_past() {
        let today = date(2026, 2, 20);
        // January paid: a new installment on its date or before it cannot come after it.
        assert!(matches!(
            restructure(
                &plan(),
                100,
                date(2025, 12, 1),
                vec![due(date(2026, 1, 1), 200)],
                0
            ),
            Err(RestructureError::DueBeforeKept { index: 1, .. })
        ));
        assert!(matches!(
            restructure(&plan(), 100, today, vec![due(date(2026, 2, 19), 200)], 0),
            Err(RestructureError::DueInPast { index: 1, .. })
        ));
        // Due today is allowed: it is late only from tomorrow.
        assert!(restructure(&plan(), 100, today, vec![due(today, 200)], 0).is_ok());
        // Two on one date are refused by the plan's own check.
        assert!(matches!(
            restructure(
                &plan(),
                100,
                today,
                vec![due(date(2026, 3, 1), 100), due(date(2026, 3, 1), 100)],
                0
            ),
            Err(RestructureError::Plan(PlanError::NotInDateOrder { .. }))
        ));
    }

    #[test]
    fn another_currency_an_empty_schedule_and_a_paid_plan_are_refused() {
        let today = date(2026, 2, 20);
        let inr = Installment {
            due: date(2026, 3, 1),
            amount: Money::new(200, Currency::parse("INR").unwrap()),
        };
        assert!(matches!(
            restructure(&plan(), 100, today, vec![inr], 0),
            Err(RestructureError::CurrencyMismatch { index: 1, .. })
        ));
        assert_eq!(
            restructure(&plan(), 100, today, vec![], 0),
            Err(RestructureError::NoInstallments)
        );
        assert_eq!(
            restructure(&plan(), 300, today, vec![due(date(2026, 4, 1), 1)], 0),
            Err(RestructureError::NothingRemains)
        );
    }
}
