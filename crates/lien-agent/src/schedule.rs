//! When the next request is due, on the monotonic clock.
//!
//! After a success the agent waits as long as the server asked, plus a random jitter so that
//! phones that went online together (after a power cut, at a network's recovery) do not stay in
//! step. After a failure it backs off exponentially, with jitter, up to a cap.

use std::time::Duration;

use crate::entropy::{Entropy, below};

/// How long a prepared request may stay unanswered before it counts as failed.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    next: Option<Duration>,
    backoff: Duration,
    first_backoff: Duration,
    max_backoff: Duration,
}

impl Schedule {
    pub fn new(first_backoff: Duration, max_backoff: Duration) -> Schedule {
        Schedule {
            next: None,
            backoff: first_backoff,
            first_backoff,
            max_backoff,
        }
    }

    /// The monotonic time at which a request is due, if any.
    pub fn next(&self) -> Option<Duration> {
        self.next
    }

    pub fn is_due(&self, mono: Duration) -> bool {
        self.next.is_some_and(|at| at <= mono)
    }

    pub fn at_once(&mut self, mono: Duration) {
        self.next = Some(mono);
    }

    pub fn stop(&mut self) {
        self.next = None;
    }

    /// A request went out: nothing more is due until its answer, or until it times out.
    pub fn sent(&mut self, mono: Duration) {
        self.next = Some(mono + ANSWER_TIMEOUT);
    }

    /// The server answered; it wants to hear from the phone again after `wait`.
    pub fn succeeded(&mut self, mono: Duration, wait: Duration, entropy: &mut dyn Entropy) {
        self.backoff = self.first_backoff;
        let spread = (wait / 10).min(Duration::from_secs(600));
        let jitter = Duration::from_millis(below(entropy, spread.as_millis() as u64 + 1));
        self.next = Some(mono + wait + jitter);
    }

    /// The request failed: try again after the backoff, which doubles up to the cap.
    pub fn failed(&mut self, mono: Duration, entropy: &mut dyn Entropy) {
        let wait = self.backoff;
        let jitter = Duration::from_millis(below(entropy, (wait / 4).as_millis() as u64 + 1));
        self.next = Some(mono + wait + jitter);
        self.backoff = (self.backoff * 2).min(self.max_backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn failures_back_off_to_the_cap_and_a_success_resets_it() {
        let mut rng = SeededEntropy::new(1);
        let mut s = Schedule::new(Duration::from_secs(30), Duration::from_secs(3600));
        let t0 = Duration::from_secs(1000);
        let mut waits = vec![];
        for _ in 0..9 {
            s.failed(t0, &mut rng);
            waits.push((s.next().unwrap() - t0).as_secs());
        }
        let floors = [30, 60, 120, 240, 480, 960, 1920, 3600, 3600];
        for (wait, floor) in waits.iter().zip(floors) {
            assert!(*wait >= floor && *wait <= floor + floor / 4, "{waits:?}");
        }
        s.succeeded(t0, Duration::from_secs(6 * 3600), &mut rng);
        let next = (s.next().unwrap() - t0).as_secs();
        assert!((6 * 3600..=6 * 3600 + 600).contains(&next), "{next}");
        s.failed(t0, &mut rng);
        assert!((s.next().unwrap() - t0).as_secs() < 40);
        assert!(!s.is_due(t0));
        s.at_once(t0);
        assert!(s.is_due(t0));
    }
}
