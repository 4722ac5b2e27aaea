//! Payments, reversals and how they settle a plan.
//!
//! Payments are applied to the oldest installment first. Only the total that is in effect at
//! an instant matters, so the standing of a plan does not depend on the order in which
//! payments were reported: two servers that learn of the same payments in different orders
//! reach the same decision.

use jiff::Timestamp;
use jiff::civil::Date;

use crate::identity::trimmed_within;
use crate::money::{Currency, Money};
use crate::plan::InstallmentPlan;

/// Why a payment log is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// A payment reference must name the payment.
    #[error("payment reference is empty")]
    EmptyReference,
    /// A payment reference is longer than any payment system's.
    #[error("payment reference has {found} characters; at most {max} are allowed")]
    ReferenceTooLong {
        /// How many characters were given.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// A payment's currency differs from the plan's.
    #[error("payment {reference} is in {found}, but the plan is in {expected}")]
    CurrencyMismatch {
        /// The payment's reference.
        reference: PaymentRef,
        /// The plan's currency.
        expected: Currency,
        /// The payment's currency.
        found: Currency,
    },
    /// A payment of zero or less is not a payment; refunds are reversals.
    #[error("payment {reference} amount must be positive, got {amount}")]
    NonPositiveAmount {
        /// The payment's reference.
        reference: PaymentRef,
        /// The amount given.
        amount: Money,
    },
    /// The same payment reference twice.
    #[error("payment {0} is recorded twice")]
    DuplicatePayment(PaymentRef),
    /// A reversal of a payment that was never recorded.
    #[error("reversal refers to payment {0}, which is not recorded")]
    UnknownPayment(PaymentRef),
    /// A payment reversed twice.
    #[error("payment {0} is reversed twice")]
    DuplicateReversal(PaymentRef),
    /// A reversal dated before the payment it reverses.
    #[error(
        "payment {reference} is reversed at {reversed_at}, before it was received at {received_at}"
    )]
    ReversalBeforePayment {
        /// The payment's reference.
        reference: PaymentRef,
        /// When it was received.
        received_at: Timestamp,
        /// When the reversal is dated.
        reversed_at: Timestamp,
    },
}

/// The financier's reference for a payment (a receipt number, a mobile-money transaction id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PaymentRef(String);

impl PaymentRef {
    /// The longest reference accepted.
    pub const MAX_LEN: usize = 128;

    /// Parses a reference: not empty, at most [`PaymentRef::MAX_LEN`] characters, trimmed.
    pub fn parse(input: &str) -> Result<PaymentRef, PaymentError> {
        let trimmed = trimmed_within(
            input,
            Self::MAX_LEN,
            PaymentError::EmptyReference,
            |found| PaymentError::ReferenceTooLong {
                found,
                max: Self::MAX_LEN,
            },
        )?;
        Ok(PaymentRef(trimmed.to_owned()))
    }

    /// The reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PaymentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Money received from the borrower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// The financier's reference, unique within a plan.
    pub reference: PaymentRef,
    /// The amount received.
    pub amount: Money,
    /// When it was received; a payment counts from this instant on.
    pub received_at: Timestamp,
}

/// A payment taken back (a chargeback, a bounced transfer): from `at` on it no longer counts,
/// and arrears it had cured come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversal {
    /// The payment reversed.
    pub reference: PaymentRef,
    /// When the reversal takes effect.
    pub at: Timestamp,
}

/// The payments and reversals of one plan, checked for consistency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentLog {
    currency: Currency,
    /// Sorted by reference so that equal logs compare equal whatever order they were built in.
    payments: Vec<(Payment, Option<Timestamp>)>,
}

impl PaymentLog {
    /// An empty log for a plan in `currency`.
    pub fn empty(currency: Currency) -> PaymentLog {
        PaymentLog {
            currency,
            payments: Vec::new(),
        }
    }

    /// Checks payments and reversals, in any order, against each other and the plan's currency.
    pub fn new(
        currency: Currency,
        payments: impl IntoIterator<Item = Payment>,
        reversals: impl IntoIterator<Item = Reversal>,
    ) -> Result<PaymentLog, PaymentError> {
        let mut entries: Vec<(Payment, Option<Timestamp>)> = Vec::new();
        for payment in payments {
            if payment.amount.currency() != currency {
                return Err(PaymentError::CurrencyMismatch {
                    reference: payment.reference,
                    expected: currency,
                    found: payment.amount.currency(),
                });
            }
            if !payment.amount.is_positive() {
                return Err(PaymentError::NonPositiveAmount {
                    reference: payment.reference,
                    amount: payment.amount,
                });
            }
            entries.push((payment, None));
        }
        entries.sort_by(|a, b| a.0.reference.cmp(&b.0.reference));
        if let Some(pair) = entries
            .windows(2)
            .find(|w| w[0].0.reference == w[1].0.reference)
        {
            return Err(PaymentError::DuplicatePayment(pair[0].0.reference.clone()));
        }
        for reversal in reversals {
            let index = entries
                .binary_search_by(|e| e.0.reference.cmp(&reversal.reference))
                .map_err(|_| PaymentError::UnknownPayment(reversal.reference.clone()))?;
            let (payment, reversed_at) = &mut entries[index];
            if reversed_at.is_some() {
                return Err(PaymentError::DuplicateReversal(reversal.reference));
            }
            if reversal.at < payment.received_at {
                return Err(PaymentError::ReversalBeforePayment {
                    reference: reversal.reference,
                    received_at: payment.received_at,
                    reversed_at: reversal.at,
                });
            }
            *reversed_at = Some(reversal.at);
        }
        Ok(PaymentLog {
            currency,
            payments: entries,
        })
    }

    /// The log with one more payment, checked as [`PaymentLog::new`] checks every payment:
    /// in the log's currency, positive, its reference not already recorded.
    pub fn with_payment(&self, payment: Payment) -> Result<PaymentLog, PaymentError> {
        let (payments, reversals) = self.entries();
        PaymentLog::new(
            self.currency,
            payments.into_iter().chain(std::iter::once(payment)),
            reversals,
        )
    }

    /// The log with one more reversal, checked as [`PaymentLog::new`] checks every reversal:
    /// of a recorded payment, once, not dated before the payment was received.
    pub fn with_reversal(&self, reversal: Reversal) -> Result<PaymentLog, PaymentError> {
        let (payments, reversals) = self.entries();
        PaymentLog::new(
            self.currency,
            payments,
            reversals.into_iter().chain(std::iter::once(reversal)),
        )
    }

    /// The payments and reversals the log was built from.
    fn entries(&self) -> (Vec<Payment>, Vec<Reversal>) {
        let payments = self.payments.iter().map(|(p, _)| p.clone()).collect();
        let reversals = self
            .payments
            .iter()
            .filter_map(|(p, at)| {
                at.map(|at| Reversal {
                    reference: p.reference.clone(),
                    at,
                })
            })
            .collect();
        (payments, reversals)
    }

    /// The log's currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The total in effect at `now`: received by then and not reversed by then.
    /// Summed in 128 bits so that no sequence of valid payments can overflow.
    pub fn paid_at(&self, now: Timestamp) -> i128 {
        self.payments
            .iter()
            .filter(|(p, reversed)| p.received_at <= now && reversed.is_none_or(|r| r > now))
            .map(|(p, _)| i128::from(p.amount.minor()))
            .sum()
    }

    /// Whether the payments pay `plan` off: once every payment and reversal recorded is in
    /// effect, nothing of the plan is outstanding (the [`crate::Decision`]'s `outstanding` is
    /// zero, and its reason, when nothing overrides it, [`crate::Reason::PaidInFull`]). It looks
    /// past the dates of the entries, so a receipt dated a little ahead pays a plan off as soon
    /// as it is recorded, and a reversal dated a little ahead takes the payoff back at once.
    pub fn pays_off(&self, plan: &InstallmentPlan) -> bool {
        let paid = self
            .effective_instants()
            .max()
            .map_or(0, |last| self.paid_at(last));
        // What is outstanding counts every installment, late or not, so the date is immaterial.
        Standing::settle(plan, paid, Date::MIN).outstanding == 0
    }

    /// Every instant at which a payment or a reversal takes effect.
    pub fn effective_instants(&self) -> impl Iterator<Item = Timestamp> + '_ {
        self.payments
            .iter()
            .flat_map(|(p, reversed)| std::iter::once(p.received_at).chain(*reversed))
    }
}

/// Where a plan stands on a local date, given the total paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Standing {
    /// Unpaid amounts of installments due before `today`.
    pub(crate) arrears: i128,
    /// Unpaid amounts of all installments.
    pub(crate) outstanding: i128,
    /// Payments beyond the plan's total, carried as credit.
    pub(crate) credit: i128,
    /// The due date of the oldest installment that is late and not fully paid.
    pub(crate) oldest_late: Option<Date>,
    /// The due date of the first installment not fully paid that is not late yet.
    pub(crate) next_unpaid: Option<Date>,
    /// What is left to pay of that installment, for the reminder before its due date.
    pub(crate) next_unpaid_amount: i128,
}

/// One installment as the ledger stands: what of it is paid, payments covering the
/// installments oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallmentStanding {
    /// Its due date, in the plan's time zone.
    pub due: Date,
    /// What it asks.
    pub amount: Money,
    /// What the payments cover of it.
    pub paid: Money,
    /// Whether it is late (due before the day asked about) and not fully paid.
    pub late: bool,
}

/// Each installment of `plan` with what `paid` (minor units in the plan's currency) covers of
/// it, oldest first, on the local date `today`; and what is left over as credit.
pub fn installments_paid(
    plan: &InstallmentPlan,
    paid: i128,
    today: Date,
) -> (Vec<InstallmentStanding>, i128) {
    let mut remaining = paid.max(0);
    let standings = plan
        .installments()
        .iter()
        .map(|installment| {
            let amount = installment.amount.minor();
            let covered = remaining.min(i128::from(amount));
            remaining -= covered;
            let covered = i64::try_from(covered).expect("at most an installment's amount");
            InstallmentStanding {
                due: installment.due,
                amount: installment.amount,
                paid: Money::new(covered, installment.amount.currency()),
                late: covered < amount && installment.due < today,
            }
        })
        .collect();
    (standings, remaining)
}

impl Standing {
    /// Applies `paid` to the installments oldest first, on the local date `today`.
    pub(crate) fn settle(plan: &InstallmentPlan, paid: i128, today: Date) -> Standing {
        let (installments, credit) = installments_paid(plan, paid, today);
        let mut standing = Standing {
            arrears: 0,
            outstanding: 0,
            credit,
            oldest_late: None,
            next_unpaid: None,
            next_unpaid_amount: 0,
        };
        for installment in installments {
            let unpaid = i128::from(installment.amount.minor() - installment.paid.minor());
            if unpaid == 0 {
                continue;
            }
            standing.outstanding += unpaid;
            if installment.late {
                standing.arrears += unpaid;
                standing.oldest_late.get_or_insert(installment.due);
            } else if standing.next_unpaid.is_none() {
                standing.next_unpaid = Some(installment.due);
                standing.next_unpaid_amount = unpaid;
            }
        }
        standing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Installment;
    use jiff::civil::date;
    use jiff::tz::TimeZone;

    fn kes(minor: i64) -> Money {
        Money::new(minor, Currency::parse("KES").unwrap())
    }

    fn pay(reference: &str, minor: i64, at: &str) -> Payment {
        Payment {
            reference: PaymentRef::parse(reference).unwrap(),
            amount: kes(minor),
            received_at: at.parse().unwrap(),
        }
    }

    fn reverse(reference: &str, at: &str) -> Reversal {
        Reversal {
            reference: PaymentRef::parse(reference).unwrap(),
            at: at.parse().unwrap(),
        }
    }

    fn plan() -> InstallmentPlan {
        InstallmentPlan::new(
            TimeZone::UTC,
            kes(0),
            vec![
                Installment {
                    due: date(2026, 1, 1),
                    amount: kes(100),
                },
                Installment {
                    due: date(2026, 2, 1),
                    amount: kes(100),
                },
                Installment {
                    due: date(2026, 3, 1),
                    amount: kes(100),
                },
            ],
        )
        .unwrap()
    }

    #[test]
    fn partial_payment_leaves_the_oldest_installment_late() {
        let s = Standing::settle(&plan(), 150, date(2026, 2, 15));
        assert_eq!(s.arrears, 50);
        assert_eq!(s.outstanding, 150);
        assert_eq!(s.oldest_late, Some(date(2026, 2, 1)));
        assert_eq!(s.next_unpaid, Some(date(2026, 3, 1)));
        assert_eq!(s.credit, 0);
    }

    #[test]
    fn each_installment_shows_what_covers_it_oldest_first() {
        let (installments, credit) = installments_paid(&plan(), 150, date(2026, 2, 15));
        let shown: Vec<_> = installments
            .iter()
            .map(|i| (i.due.to_string(), i.paid.minor(), i.late))
            .collect();
        assert_eq!(
            shown,
            [
                ("2026-01-01".to_string(), 100, false),
                ("2026-02-01".to_string(), 50, true),
                ("2026-03-01".to_string(), 0, false),
            ]
        );
        assert_eq!(credit, 0);
    }

    #[test]
    fn overpayment_is_carried_as_credit() {
        let s = Standing::settle(&plan(), 350, date(2026, 2, 15));
        assert_eq!((s.arrears, s.outstanding, s.credit), (0, 0, 50));
        assert_eq!(s.oldest_late, None);
    }

    #[test]
    fn a_reversal_brings_arrears_back_from_its_instant() {
        let log = PaymentLog::new(
            kes(0).currency(),
            [pay("MP-1", 100, "2026-01-01T10:00:00Z")],
            [reverse("MP-1", "2026-01-20T00:00:00Z")],
        )
        .unwrap();
        assert_eq!(log.paid_at("2026-01-19T00:00:00Z".parse().unwrap()), 100);
        assert_eq!(log.paid_at("2026-01-20T00:00:00Z".parse().unwrap()), 0);
        assert_eq!(log.paid_at("2025-12-31T00:00:00Z".parse().unwrap()), 0);
    }

    #[test]
    fn a_plan_is_paid_off_by_everything_recorded_and_no_longer_once_reversed() {
        let currency = kes(0).currency();
        let log = |payments: Vec<Payment>, reversals: Vec<Reversal>| {
            PaymentLog::new(currency, payments, reversals).unwrap()
        };
        assert!(!PaymentLog::empty(currency).pays_off(&plan()));
        let part = pay("MP-1", 200, "2026-01-01T10:00:00Z");
        assert!(!log(vec![part.clone()], vec![]).pays_off(&plan()));
        // The rest, dated after any instant a caller might ask about, still pays it off.
        let rest = pay("MP-2", 150, "2030-01-01T00:00:00Z");
        let paid = log(vec![part.clone(), rest.clone()], vec![]);
        assert!(paid.pays_off(&plan()));
        let reversed = log(
            vec![part, rest],
            vec![reverse("MP-2", "2030-01-02T00:00:00Z")],
        );
        assert!(!reversed.pays_off(&plan()));
    }

    #[test]
    fn inconsistent_logs_are_refused() {
        let currency = kes(0).currency();
        assert_eq!(
            PaymentLog::new(
                currency,
                [
                    pay("A", 1, "2026-01-01T00:00:00Z"),
                    pay("A", 2, "2026-01-02T00:00:00Z")
                ],
                []
            ),
            Err(PaymentError::DuplicatePayment(
                PaymentRef::parse("A").unwrap()
            ))
        );
        assert_eq!(
            PaymentLog::new(currency, [], [reverse("B", "2026-01-01T00:00:00Z")]),
            Err(PaymentError::UnknownPayment(
                PaymentRef::parse("B").unwrap()
            ))
        );
        assert!(matches!(
            PaymentLog::new(
                currency,
                [pay("A", 1, "2026-01-02T00:00:00Z")],
                [reverse("A", "2026-01-01T00:00:00Z")]
            ),
            Err(PaymentError::ReversalBeforePayment { .. })
        ));
        assert!(matches!(
            PaymentLog::new(
                currency,
                [pay("A", 1, "2026-01-02T00:00:00Z")],
                [
                    reverse("A", "2026-01-03T00:00:00Z"),
                    reverse("A", "2026-01-04T00:00:00Z")
                ]
            ),
            Err(PaymentError::DuplicateReversal(_))
        ));
        assert!(matches!(
            PaymentLog::new(currency, [pay("A", 0, "2026-01-02T00:00:00Z")], []),
            Err(PaymentError::NonPositiveAmount { .. })
        ));
        let inr = Money::new(5, Currency::parse("INR").unwrap());
        let mut foreign = pay("A", 5, "2026-01-02T00:00:00Z");
        foreign.amount = inr;
        assert!(matches!(
            PaymentLog::new(currency, [foreign], []),
            Err(PaymentError::CurrencyMismatch { .. })
        ));
        assert_eq!(PaymentRef::parse("  "), Err(PaymentError::EmptyReference));
    }
}
