//! Offline unlock: a one-time code read out by the financier or support unlocks a phone that
//! cannot reach the server.
//!
//! The lock screen shows an 8-digit random challenge, kept (in protected storage) until a code
//! for it is accepted. The code is the OCRA response (RFC 6287, the suite from the hello) to that
//! challenge under the device's offline key and a counter. The server counts the codes it
//! issues; the agent accepts the next counter after the last one it accepted, or one of the few
//! after it, because support may have issued codes this phone never saw. An accepted counter is
//! never accepted again, so a code works once. Wrong codes are throttled: a few free tries, then
//! waits that double, counted on the monotonic clock and persisted so a reboot does not reset
//! them.

use std::time::Duration;

use lien_proto::ocra::{OcraInput, OcraSuite};

use crate::entropy::{Entropy, EntropyError};
use crate::state::{UnlockRecord, UnlockWindow};

/// How codes are checked and throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnlockRules {
    /// How far past the last accepted counter a code may be.
    pub look_ahead: u64,
    /// Wrong codes allowed before the first wait.
    pub free_tries: u32,
    /// The first wait; each further wrong code doubles it.
    pub first_wait: Duration,
    /// The longest wait.
    pub max_wait: Duration,
    /// How long an accepted code unlocks, unless a newer token comes first.
    pub unlock_for: Duration,
}

impl Default for UnlockRules {
    fn default() -> UnlockRules {
        UnlockRules {
            look_ahead: 10,
            free_tries: 5,
            first_wait: Duration::from_secs(60),
            max_wait: Duration::from_secs(24 * 3600),
            // The server's default for the offline-unlock route.
            unlock_for: Duration::from_secs(48 * 3600),
        }
    }
}

/// What happened to a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeOutcome {
    /// The code is right: the phone is unlocked for this long, or until a newer token.
    Accepted {
        /// How long the unlock lasts at most.
        unlocked_for: Duration,
    },
    /// The code is wrong (or already used).
    Wrong {
        /// How long to wait before the next try, if the throttle now applies.
        wait: Option<Duration>,
        /// Tries left before waits start.
        tries_left: u32,
    },
    /// Too many wrong codes: try again after this long. The code was not checked.
    Throttled {
        /// Time left to wait.
        wait: Duration,
    },
    /// Not 8 digits: not counted as a try.
    Malformed,
    /// Nothing to unlock: the phone is not locked or restricted.
    NothingToUnlock,
    /// The code could not be recorded as used, so it was not applied; try again.
    NotSaved,
}

/// A fresh 8-digit challenge.
pub(crate) fn new_challenge(entropy: &mut dyn Entropy) -> Result<String, EntropyError> {
    let mut bytes = [0u8; 8];
    entropy.fill(&mut bytes)?;
    Ok(format!("{:08}", u64::from_le_bytes(bytes) % 100_000_000))
}

/// Time left before another code may be tried.
pub(crate) fn wait_left(record: &UnlockRecord, rules: &UnlockRules) -> Option<Duration> {
    let over = record.failures.checked_sub(rules.free_tries)?;
    let wait = rules
        .first_wait
        .checked_mul(2u32.saturating_pow(over))
        .unwrap_or(rules.max_wait)
        .min(rules.max_wait);
    wait.checked_sub(Duration::from_millis(record.since_failure_ms))
        .filter(|left| !left.is_zero())
}

/// Counts monotonic time on the throttle and the unlock window; ends a window that ran out.
pub(crate) fn advance(record: &mut UnlockRecord, delta: Duration) {
    let ms = delta.as_millis().min(u128::from(u64::MAX)) as u64;
    record.since_failure_ms = record.since_failure_ms.saturating_add(ms);
    if let Some(window) = &mut record.window {
        window.elapsed_ms = window.elapsed_ms.saturating_add(ms);
        if window.elapsed_ms >= window.length_ms {
            record.window = None;
        }
    }
}

/// The unlock's time left, if one is in effect.
pub(crate) fn active(record: &UnlockRecord) -> Option<Duration> {
    record
        .window
        .as_ref()
        .map(|w| Duration::from_millis(w.length_ms.saturating_sub(w.elapsed_ms)))
}

/// Checks `code` against the challenge; updates `record` (the caller persists it, and applies
/// nothing if that fails). `against_sequence` is the held token's sequence.
pub(crate) fn try_code(
    record: &mut UnlockRecord,
    rules: &UnlockRules,
    suite: &OcraSuite,
    key: &[u8],
    code: &str,
    against_sequence: u64,
) -> CodeOutcome {
    let code = code.trim();
    if code.len() != 8 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return CodeOutcome::Malformed;
    }
    if let Some(wait) = wait_left(record, rules) {
        return CodeOutcome::Throttled { wait };
    }
    let Some(challenge) = record.challenge.clone() else {
        return CodeOutcome::NothingToUnlock;
    };
    let matched = (1..=rules.look_ahead).find_map(|ahead| {
        let counter = record.counter.checked_add(ahead)?;
        let input = OcraInput {
            counter: Some(counter),
            challenge: &challenge,
            ..OcraInput::default()
        };
        suite
            .verify(key, input, code)
            .ok()
            .filter(|ok| *ok)
            .map(|_| counter)
    });
    match matched {
        Some(counter) => {
            record.counter = counter;
            record.challenge = None;
            record.failures = 0;
            record.since_failure_ms = 0;
            record.window = Some(UnlockWindow {
                elapsed_ms: 0,
                length_ms: rules.unlock_for.as_millis().min(u128::from(u64::MAX)) as u64,
                against_sequence,
            });
            CodeOutcome::Accepted {
                unlocked_for: rules.unlock_for,
            }
        }
        None => {
            record.failures = record.failures.saturating_add(1);
            record.since_failure_ms = 0;
            CodeOutcome::Wrong {
                wait: wait_left(record, rules),
                tries_left: rules.free_tries.saturating_sub(record.failures),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = "OCRA-1:HOTP-SHA256-8:C-QN08";
    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn code(counter: u64, challenge: &str) -> String {
        OcraSuite::parse(SUITE)
            .unwrap()
            .respond(
                KEY,
                OcraInput {
                    counter: Some(counter),
                    challenge,
                    ..OcraInput::default()
                },
            )
            .unwrap()
    }

    fn locked() -> UnlockRecord {
        UnlockRecord {
            challenge: Some("12345678".into()),
            ..UnlockRecord::default()
        }
    }

    fn attempt(record: &mut UnlockRecord, code: &str) -> CodeOutcome {
        let suite = OcraSuite::parse(SUITE).unwrap();
        try_code(record, &UnlockRules::default(), &suite, KEY, code, 7)
    }

    #[test]
    fn a_code_works_once_and_within_the_look_ahead_only() {
        let mut record = locked();
        // Support issued codes 1 and 2 that never reached this phone; code 3 still works.
        let third = code(3, "12345678");
        assert!(matches!(
            attempt(&mut record, &third),
            CodeOutcome::Accepted { .. }
        ));
        assert_eq!(record.counter, 3);
        assert_eq!(record.window.as_ref().unwrap().against_sequence, 7);
        // Used: the challenge is gone, and even for the same challenge the counter is spent.
        record.challenge = Some("12345678".into());
        assert!(matches!(
            attempt(&mut record, &third),
            CodeOutcome::Wrong { .. }
        ));
        assert!(matches!(
            attempt(&mut record, &code(3 + 11, "12345678")),
            CodeOutcome::Wrong { .. }
        ));
        assert!(matches!(
            attempt(&mut record, &code(3 + 10, "12345678")),
            CodeOutcome::Accepted { .. }
        ));
    }

    #[test]
    fn wrong_codes_are_throttled_with_doubling_waits() {
        let mut record = locked();
        for left in (0..5).rev() {
            let outcome = attempt(&mut record, "00000000");
            let expected_wait = (left == 0).then(|| Duration::from_secs(60));
            assert_eq!(
                outcome,
                CodeOutcome::Wrong {
                    wait: expected_wait,
                    tries_left: left
                }
            );
        }
        let right = code(1, "12345678");
        // Throttled: even the right code is not looked at.
        assert_eq!(
            attempt(&mut record, &right),
            CodeOutcome::Throttled {
                wait: Duration::from_secs(60)
            }
        );
        advance(&mut record, Duration::from_secs(60));
        assert_eq!(
            attempt(&mut record, "00000000"),
            CodeOutcome::Wrong {
                wait: Some(Duration::from_secs(120)),
                tries_left: 0
            }
        );
        advance(&mut record, Duration::from_secs(119));
        assert!(matches!(
            attempt(&mut record, &right),
            CodeOutcome::Throttled { .. }
        ));
        advance(&mut record, Duration::from_secs(1));
        assert!(matches!(
            attempt(&mut record, &right),
            CodeOutcome::Accepted { .. }
        ));
        assert_eq!(record.failures, 0);
        assert_eq!(attempt(&mut record, "1234"), CodeOutcome::Malformed);
    }

    #[test]
    fn waits_stop_doubling_at_the_cap() {
        let record = UnlockRecord {
            failures: 80,
            ..locked()
        };
        assert_eq!(
            wait_left(&record, &UnlockRules::default()),
            Some(Duration::from_secs(24 * 3600))
        );
    }

    #[test]
    fn an_unlock_ends_when_its_time_is_used() {
        let mut record = locked();
        attempt(&mut record, &code(1, "12345678"));
        advance(&mut record, Duration::from_secs(47 * 3600));
        assert_eq!(active(&record), Some(Duration::from_secs(3600)));
        advance(&mut record, Duration::from_secs(3600));
        assert_eq!(active(&record), None);
    }
}
