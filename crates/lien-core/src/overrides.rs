//! Overrides: explicit, audited inputs that set the schedule aside.
//!
//! An override is a fact with a time span, never a flag flipped on the device: "manual lock
//! from T1 until T2" stays true in the history after the lock is lifted, so any past decision
//! can be recomputed.

use jiff::Timestamp;

/// What an override does.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OverrideKind {
    /// The financier locks the phone outside the schedule; the reason is shown on the phone.
    ManualLock {
        /// Shown on the lock screen and kept in the audit log.
        reason: String,
    },
    /// The phone works normally until the override ends, whatever is owed: for an appeal under
    /// review or an emergency. It lifts a manual lock too.
    ProvisionalUnlock,
    /// The borrower is in hardship: no restriction until the override ends; reminders go on.
    HardshipPause,
    /// A dispute is open: the device may get better but not worse until it ends.
    DisputeFreeze,
    /// The financier gives up its claim on the device (paid off, or written off). Final.
    Release,
    /// The phone reported a new SIM card: the policy's SIM-change rule applies from then until
    /// the financier accepts the change (the override's end).
    SimChange,
}

/// Why an override is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// A manual lock must say why.
    #[error("a manual lock needs a reason to show on the phone")]
    MissingReason,
    /// Lock screens have little room.
    #[error("the lock reason has {found} characters; at most {max} fit on a lock screen")]
    ReasonTooLong {
        /// How many characters were given.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// Provisional unlocks and hardship pauses are bounded in time.
    #[error("a {0} must have an end time")]
    MissingEnd(&'static str),
    /// A release cannot end.
    #[error("a release is final and cannot have an end time")]
    ReleaseWithEnd,
    /// The end must come after the start.
    #[error("the override ends at {until}, which is not after its start at {from}")]
    EndsBeforeStart {
        /// Start.
        from: Timestamp,
        /// End.
        until: Timestamp,
    },
}

/// An override in effect from `from` until `until` (exclusive), or with no end yet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Override {
    kind: OverrideKind,
    from: Timestamp,
    until: Option<Timestamp>,
}

impl Override {
    /// The longest manual lock reason, so it fits on a lock screen.
    pub const MAX_REASON_LEN: usize = 200;

    /// Checks an override: a manual lock has a short reason, a provisional unlock and a hardship
    /// pause have an end, a release has none, and an end comes after the start.
    pub fn new(
        kind: OverrideKind,
        from: Timestamp,
        until: Option<Timestamp>,
    ) -> Result<Override, OverrideError> {
        match &kind {
            OverrideKind::ManualLock { reason } => {
                let count = reason.trim().chars().count();
                if count == 0 {
                    return Err(OverrideError::MissingReason);
                }
                if count > Self::MAX_REASON_LEN {
                    return Err(OverrideError::ReasonTooLong {
                        found: count,
                        max: Self::MAX_REASON_LEN,
                    });
                }
            }
            OverrideKind::ProvisionalUnlock if until.is_none() => {
                return Err(OverrideError::MissingEnd("provisional unlock"));
            }
            OverrideKind::HardshipPause if until.is_none() => {
                return Err(OverrideError::MissingEnd("hardship pause"));
            }
            OverrideKind::Release if until.is_some() => return Err(OverrideError::ReleaseWithEnd),
            _ => {}
        }
        if let Some(until) = until
            && until <= from
        {
            return Err(OverrideError::EndsBeforeStart { from, until });
        }
        Ok(Override { kind, from, until })
    }

    /// What the override does.
    pub fn kind(&self) -> &OverrideKind {
        &self.kind
    }

    /// When it starts.
    pub fn from(&self) -> Timestamp {
        self.from
    }

    /// When it ends, if it does.
    pub fn until(&self) -> Option<Timestamp> {
        self.until
    }

    /// Whether it is in effect at `now`.
    pub fn in_effect(&self, now: Timestamp) -> bool {
        self.from <= now && self.until.is_none_or(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn bounds_are_checked() {
        let from = t("2026-01-01T00:00:00Z");
        assert_eq!(
            Override::new(OverrideKind::ProvisionalUnlock, from, None),
            Err(OverrideError::MissingEnd("provisional unlock"))
        );
        assert_eq!(
            Override::new(OverrideKind::Release, from, Some(t("2026-02-01T00:00:00Z"))),
            Err(OverrideError::ReleaseWithEnd)
        );
        assert!(matches!(
            Override::new(OverrideKind::DisputeFreeze, from, Some(from)),
            Err(OverrideError::EndsBeforeStart { .. })
        ));
        assert_eq!(
            Override::new(OverrideKind::ManualLock { reason: " ".into() }, from, None),
            Err(OverrideError::MissingReason)
        );
    }

    #[test]
    fn in_effect_from_start_until_end_exclusive() {
        let o = Override::new(
            OverrideKind::HardshipPause,
            t("2026-01-01T00:00:00Z"),
            Some(t("2026-01-08T00:00:00Z")),
        )
        .unwrap();
        assert!(!o.in_effect(t("2025-12-31T23:59:59Z")));
        assert!(o.in_effect(t("2026-01-01T00:00:00Z")));
        assert!(!o.in_effect(t("2026-01-08T00:00:00Z")));
    }
}
