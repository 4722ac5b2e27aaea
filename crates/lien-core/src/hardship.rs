//! The yearly bound on hardship pauses.
//!
//! A pause sets the schedule aside, so the policy bounds how much of a year it may cover
//! (`hardship_days_per_year`). The bound looks back a rolling 365 days from the start of the
//! new pause: the days of every pause begun in that span count, as long as each one lasted
//! (a pause ended early counts what it ran), rounded up to whole days, so two half-day pauses
//! cost two days, erring towards the bound rather than past it.

use jiff::{SignedDuration, Timestamp};

use crate::overrides::{Override, OverrideKind};
use crate::policy::LockPolicy;

/// The span the yearly bound looks back over.
pub const YEAR: SignedDuration = SignedDuration::from_hours(365 * 24);

/// Why a hardship pause is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HardshipError {
    /// A pause must last at least a day.
    #[error("a hardship pause must last at least a day")]
    TooShort,
    /// The pause would go beyond the policy's yearly bound.
    #[error(
        "a pause of {days} days would exceed hardship_days_per_year ({allowed}): {used} days are used in the last 365, {remaining} remain"
    )]
    ExceedsYearlyBound {
        /// The days asked for.
        days: u32,
        /// The policy's bound.
        allowed: u32,
        /// Days of pause begun in the 365 days before the new one.
        used: u32,
        /// What is left of the bound.
        remaining: u32,
    },
}

/// Whole days (rounded up) a span lasts; zero or less for an empty one.
fn whole_days(span: SignedDuration) -> i64 {
    let secs = span.as_secs();
    if secs <= 0 {
        0
    } else {
        (secs + 86_399) / 86_400
    }
}

/// Days of hardship pause begun in the 365 days up to `start`, or after it: each pause counts
/// from its start to its end (as ended, if ended early), in whole days rounded up.
pub fn hardship_days_used(overrides: &[Override], start: Timestamp) -> u32 {
    let since = start.checked_sub(YEAR).unwrap_or(Timestamp::MIN);
    let days: i64 = overrides
        .iter()
        .filter(|o| o.kind() == &OverrideKind::HardshipPause && o.from() > since)
        .filter_map(|o| {
            o.until()
                .map(|until| whole_days(until.duration_since(o.from())))
        })
        .sum();
    u32::try_from(days).unwrap_or(u32::MAX)
}

/// Days of hardship pause the policy still allows from `start`, given the pauses so far.
pub fn hardship_days_remaining(
    policy: &LockPolicy,
    overrides: &[Override],
    start: Timestamp,
) -> u32 {
    policy
        .settings()
        .hardship_days_per_year
        .saturating_sub(hardship_days_used(overrides, start))
}

/// Checks a pause of `days` from `start` against the policy's yearly bound.
pub fn check_hardship_pause(
    policy: &LockPolicy,
    overrides: &[Override],
    start: Timestamp,
    days: u32,
) -> Result<(), HardshipError> {
    if days == 0 {
        return Err(HardshipError::TooShort);
    }
    let allowed = policy.settings().hardship_days_per_year;
    let used = hardship_days_used(overrides, start);
    let remaining = allowed.saturating_sub(used);
    if days > remaining {
        return Err(HardshipError::ExceedsYearlyBound {
            days,
            allowed,
            used,
            remaining,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Preset;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn pause(from: &str, until: &str) -> Override {
        Override::new(OverrideKind::HardshipPause, t(from), Some(t(until))).unwrap()
    }

    /// The strict dealer's preset allows 30 days a year.
    fn policy() -> LockPolicy {
        LockPolicy::preset(Preset::StrictDealer)
    }

    #[test]
    fn pauses_of_the_last_year_count_in_whole_days() {
        let overrides = vec![
            // Begun more than a year before: does not count.
            pause("2025-01-01T00:00:00Z", "2025-01-21T00:00:00Z"),
            // Ten days.
            pause("2025-06-01T00:00:00Z", "2025-06-11T00:00:00Z"),
            // Half a day counts as one.
            pause("2025-09-01T00:00:00Z", "2025-09-01T12:00:00Z"),
            // Other overrides do not count.
            Override::new(
                OverrideKind::ProvisionalUnlock,
                t("2025-10-01T00:00:00Z"),
                Some(t("2025-12-01T00:00:00Z")),
            )
            .unwrap(),
        ];
        let start = t("2026-01-15T00:00:00Z");
        assert_eq!(hardship_days_used(&overrides, start), 11);
        assert_eq!(hardship_days_remaining(&policy(), &overrides, start), 19);
        assert_eq!(
            check_hardship_pause(&policy(), &overrides, start, 19),
            Ok(())
        );
        let err = check_hardship_pause(&policy(), &overrides, start, 20).unwrap_err();
        assert_eq!(
            err,
            HardshipError::ExceedsYearlyBound {
                days: 20,
                allowed: 30,
                used: 11,
                remaining: 19
            }
        );
        assert!(err.to_string().contains("hardship_days_per_year"), "{err}");
        assert!(err.to_string().contains("19 remain"), "{err}");
    }

    #[test]
    fn a_zero_day_pause_and_a_policy_without_pauses_are_refused() {
        let start = t("2026-01-15T00:00:00Z");
        assert_eq!(
            check_hardship_pause(&policy(), &[], start, 0),
            Err(HardshipError::TooShort)
        );
        let mut none = Preset::StrictDealer.settings();
        none.hardship_days_per_year = 0;
        let none = LockPolicy::new(none).unwrap();
        assert!(matches!(
            check_hardship_pause(&none, &[], start, 1),
            Err(HardshipError::ExceedsYearlyBound { remaining: 0, .. })
        ));
    }
}
