//! Emergency use: the window of use the policy gives a borrower whose phone is locked or
//! restricted, taken on the phone itself, with no network.
//!
//! The invariant: a phone takes at most one window per period, however it is rebooted, reset
//! or has its clock moved, and whether or not it is online. Three things make that hold:
//!
//! - **A clock the borrower cannot move.** The period is measured on a *trusted clock*: a
//!   lower bound on the server's time, raised only by times the server signed (a token's
//!   issue time, a contact proof's time) and advanced by the monotonic time the agent counts
//!   while it runs. The wall clock never enters it, and neither does the unsigned `server_time`
//!   of a check-in answer, which a fake network could set to next month. Time while the phone
//!   is off is not counted, so the clock may run behind: a window then comes later than it
//!   could, never sooner.
//! - **A record that survives.** The start of the last window taken and the trusted clock are
//!   kept in the protected record, which survives a factory reset, and in the rollback slot's
//!   anchor, which survives a reflash; a running window counts its own monotonic time, so a
//!   reboot neither ends nor extends it.
//! - **The server's memory.** The window is reported at the next check-in (an `emergency_use`
//!   event whose detail is its start on the trusted clock); the server records it, audited,
//!   and names the last window in every token after (`EmergencyAllowance::last_used_at`). A
//!   phone that lost its record altogether (a reflash with no rollback slot) learns it again
//!   with its first token.
//!
//! While a window runs, the phone works as if in good standing; only the factory-reset block
//! stays, as the phone is still financed. A newer token does not end it: the report itself makes
//! the server sign one.

use std::time::Duration;

use lien_proto::EmergencyAllowance;
use serde::{Deserialize, Serialize};

/// The emergency-use bookkeeping, in the protected record and the anchor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EmergencyRecord {
    /// The trusted clock: a lower bound on the server's time, Unix milliseconds; `None` until
    /// the agent has held a token.
    pub trusted_ms: Option<i64>,
    /// The start of the last window this phone took, Unix seconds on the trusted clock.
    pub last_started_at: Option<i64>,
    /// Whether the server has acknowledged that window (a check-in that carried it answered).
    pub reported: bool,
    /// The window running, if any.
    pub window: Option<EmergencyWindow>,
}

/// A window being used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EmergencyWindow {
    /// Monotonic time since it started.
    pub elapsed_ms: u64,
    /// How long it lasts.
    pub length_ms: u64,
    /// The wall clock at its end as it read when the window started: for the screen only.
    pub until_wall: i64,
}

/// Why a window cannot be taken now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The token offers no emergency use.
    NotOffered,
    /// A window started less than a period ago: the next may start after `wait`.
    TooSoon {
        /// Time left, on the trusted clock.
        wait: Duration,
    },
}

impl EmergencyRecord {
    /// Counts `delta` of monotonic time on the trusted clock and on a running window.
    pub fn advance(&mut self, delta: Duration) {
        let ms = delta.as_millis().min(i64::MAX as u128) as i64;
        if let Some(t) = &mut self.trusted_ms {
            *t = t.saturating_add(ms);
        }
        if let Some(w) = &mut self.window {
            w.elapsed_ms = w.elapsed_ms.saturating_add(ms as u64);
            if w.elapsed_ms >= w.length_ms {
                self.window = None;
            }
        }
    }

    /// A time the server signed (Unix seconds): the trusted clock is at least that.
    pub fn observe_signed_time(&mut self, unix: i64) {
        let ms = unix.saturating_mul(1000);
        self.trusted_ms = Some(self.trusted_ms.map_or(ms, |t| t.max(ms)));
    }

    /// Time left on the running window.
    pub fn active(&self) -> Option<Duration> {
        self.window
            .as_ref()
            .filter(|w| w.elapsed_ms < w.length_ms)
            .map(|w| Duration::from_millis(w.length_ms - w.elapsed_ms))
    }

    /// Whether a window may start now under `allowance`.
    pub fn check(&self, allowance: Option<&EmergencyAllowance>) -> Result<(), Refusal> {
        let allowance = allowance
            .filter(|a| a.hours > 0 && a.every_days > 0)
            .ok_or(Refusal::NotOffered)?;
        let Some(trusted_ms) = self.trusted_ms else {
            return Err(Refusal::NotOffered);
        };
        let last = self.last_started_at.max(allowance.last_used_at);
        if let Some(last) = last {
            let period_ms = allowance.period().as_millis() as i64;
            let next_ms = last.saturating_mul(1000).saturating_add(period_ms);
            if trusted_ms < next_ms {
                return Err(Refusal::TooSoon {
                    wait: Duration::from_millis((next_ms - trusted_ms) as u64),
                });
            }
        }
        Ok(())
    }

    /// Starts a window under `allowance` at wall-clock time `wall` (for the screen), and
    /// returns its start on the trusted clock, which the server is told.
    pub fn take(
        &mut self,
        allowance: Option<&EmergencyAllowance>,
        wall: i64,
    ) -> Result<i64, Refusal> {
        self.check(allowance)?;
        let allowance = allowance.expect("checked");
        let started = self.trusted_ms.expect("checked").div_euclid(1000);
        let length = allowance.window();
        self.last_started_at = Some(started);
        self.reported = false;
        self.window = Some(EmergencyWindow {
            elapsed_ms: 0,
            length_ms: length.as_millis() as u64,
            until_wall: wall.saturating_add(length.as_secs() as i64),
        });
        Ok(started)
    }

    /// The start to report at the next check-in, if the server has not acknowledged it.
    pub fn unreported(&self) -> Option<i64> {
        self.last_started_at.filter(|_| !self.reported)
    }

    /// The server answered a check-in that reported the window started at `started`.
    pub fn acknowledged(&mut self, started: i64) {
        if self.last_started_at == Some(started) {
            self.reported = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;
    const DAY: u64 = 86_400;
    const ISSUED: i64 = 1_800_000_000;

    fn allowance(last_used_at: Option<i64>) -> EmergencyAllowance {
        EmergencyAllowance {
            hours: 24,
            every_days: 30,
            last_used_at,
        }
    }

    fn record() -> EmergencyRecord {
        let mut r = EmergencyRecord::default();
        r.observe_signed_time(ISSUED);
        r
    }

    /// The record as the protected storage would give it back after a reboot or a reset.
    fn reloaded(r: &EmergencyRecord) -> EmergencyRecord {
        serde_json::from_slice(&serde_json::to_vec(r).unwrap()).unwrap()
    }

    #[test]
    fn a_window_runs_its_length_and_the_next_waits_for_the_period() {
        let mut r = record();
        let a = allowance(None);
        let started = r.take(Some(&a), 5_000).unwrap();
        assert_eq!(started, ISSUED);
        assert_eq!(r.active(), Some(Duration::from_secs(24 * HOUR)));
        assert_eq!(r.window.as_ref().unwrap().until_wall, 5_000 + 24 * 3600);
        r.advance(Duration::from_secs(24 * HOUR - 1));
        assert_eq!(r.active(), Some(Duration::from_secs(1)));
        r.advance(Duration::from_secs(1));
        assert_eq!(r.active(), None);
        assert_eq!(
            r.take(Some(&a), 0),
            Err(Refusal::TooSoon {
                wait: Duration::from_secs(29 * DAY)
            })
        );
        r.advance(Duration::from_secs(29 * DAY));
        assert_eq!(r.take(Some(&a), 0), Ok(ISSUED + 30 * DAY as i64));
    }

    #[test]
    fn once_per_period_survives_a_reboot_or_reset_and_ignores_the_wall_clock() {
        let mut r = record();
        let a = allowance(None);
        r.take(Some(&a), 0).unwrap();
        r.advance(Duration::from_secs(2 * HOUR));
        // A reboot: the record comes back from protected storage; the window goes on where it
        // was, and a second one is still refused.
        let mut r = reloaded(&r);
        assert_eq!(r.active(), Some(Duration::from_secs(22 * HOUR)));
        assert!(matches!(r.take(Some(&a), 0), Err(Refusal::TooSoon { .. })));
        // The wall clock moved a year ahead or back changes nothing: only `until_wall`, on
        // screen, ever read it.
        assert!(matches!(
            r.take(Some(&a), i64::from(i32::MAX)),
            Err(Refusal::TooSoon { .. })
        ));
        assert!(matches!(
            r.take(Some(&a), -365 * DAY as i64),
            Err(Refusal::TooSoon { .. })
        ));
    }

    #[test]
    fn only_signed_times_move_the_trusted_clock_forward() {
        let mut r = record();
        let a = allowance(None);
        r.take(Some(&a), 0).unwrap();
        // An older signed time (a token issued before) cannot move it back...
        r.observe_signed_time(ISSUED - 100 * DAY as i64);
        assert_eq!(r.trusted_ms, Some(ISSUED * 1000));
        // ...and a token the server signed 30 days later proves the period passed.
        r.observe_signed_time(ISSUED + 30 * DAY as i64);
        assert!(r.check(Some(&a)).is_ok());
    }

    #[test]
    fn the_servers_last_window_counts_for_a_phone_that_lost_its_own_record() {
        // A reflashed phone without a rollback slot starts with nothing; its token names the
        // window it reported before.
        let r = record();
        assert_eq!(
            r.check(Some(&allowance(Some(ISSUED - DAY as i64)))),
            Err(Refusal::TooSoon {
                wait: Duration::from_secs(29 * DAY)
            })
        );
        assert_eq!(r.check(None), Err(Refusal::NotOffered));
        assert_eq!(
            r.check(Some(&EmergencyAllowance {
                hours: 0,
                ..allowance(None)
            })),
            Err(Refusal::NotOffered)
        );
    }

    #[test]
    fn a_window_is_reported_until_acknowledged() {
        let mut r = record();
        let started = r.take(Some(&allowance(None)), 0).unwrap();
        assert_eq!(r.unreported(), Some(started));
        r.acknowledged(started - 1);
        assert_eq!(r.unreported(), Some(started));
        r.acknowledged(started);
        assert_eq!(r.unreported(), None);
        assert_eq!(reloaded(&r).unreported(), None);
    }
}
