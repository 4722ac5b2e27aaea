//! The simulated phone's two clocks.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::time::Now;

/// A phone's monotonic and wall clocks, either fully manual (tests: nothing moves unless told)
/// or following the real clocks with offsets (the interactive simulator and fleets).
#[derive(Debug, Clone)]
pub struct SimClock {
    kind: Kind,
    /// Added to the monotonic reading by [`SimClock::advance`].
    mono_shift: Duration,
    /// Added to the wall reading by [`SimClock::advance`] and [`SimClock::shift_wall`].
    wall_shift: i64,
}

#[derive(Debug, Clone)]
enum Kind {
    Manual { wall_at_boot: i64 },
    Real { boot: Instant },
}

impl SimClock {
    /// Manual clocks: the wall clock starts at `wall` (Unix seconds), the monotonic one at zero.
    pub fn manual(wall: i64) -> SimClock {
        SimClock {
            kind: Kind::Manual { wall_at_boot: wall },
            mono_shift: Duration::ZERO,
            wall_shift: 0,
        }
    }

    /// The real clocks, from now.
    pub fn real() -> SimClock {
        SimClock {
            kind: Kind::Real {
                boot: Instant::now(),
            },
            mono_shift: Duration::ZERO,
            wall_shift: 0,
        }
    }

    /// What the phone reads now.
    pub fn now(&self) -> Now {
        match &self.kind {
            Kind::Manual { wall_at_boot } => Now {
                mono: self.mono_shift,
                wall: wall_at_boot + self.wall_shift,
            },
            Kind::Real { boot } => {
                let wall = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                Now {
                    mono: boot.elapsed() + self.mono_shift,
                    wall: wall + self.wall_shift,
                }
            }
        }
    }

    /// Time passes for the phone: both clocks move forward by `by`.
    pub fn advance(&mut self, by: Duration) {
        self.mono_shift += by;
        self.wall_shift = self.wall_shift.saturating_add(by.as_secs() as i64);
    }

    /// The borrower sets the wall clock `by` seconds forward (or back, if negative).
    pub fn shift_wall(&mut self, by: i64) {
        self.wall_shift = self.wall_shift.saturating_add(by);
    }

    /// A reboot: the monotonic clock starts again at zero, the wall clock goes on.
    pub fn reboot(&mut self) {
        let wall = self.now().wall;
        match &mut self.kind {
            Kind::Manual { wall_at_boot } => {
                *wall_at_boot = wall;
                self.wall_shift = 0;
            }
            Kind::Real { boot } => *boot = Instant::now(),
        }
        self.mono_shift = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reboot_restarts_only_the_monotonic_clock() {
        let mut clock = SimClock::manual(1_000);
        clock.advance(Duration::from_secs(60));
        clock.shift_wall(-500);
        assert_eq!(
            clock.now(),
            Now {
                mono: Duration::from_secs(60),
                wall: 560
            }
        );
        clock.reboot();
        assert_eq!(
            clock.now(),
            Now {
                mono: Duration::ZERO,
                wall: 560
            }
        );
    }
}
