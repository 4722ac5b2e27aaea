//! The offline lease: how long the held token keeps a phone usable without the server.
//!
//! The agent counts the time elapsed since the token was issued with the monotonic clock it is
//! given, never the wall clock, which the borrower can set. The count is persisted, so it
//! survives a reboot, but time while the phone is powered off is not counted: a phone that is
//! switched off for a week and then on again has lost none of its lease. That errs towards the
//! borrower, and a phone that is off is of no use to anyone anyway.

use std::time::Duration;

use lien_proto::{LeaseStatus, StatusClaims};

/// Time elapsed on the held token's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseClock {
    elapsed: Duration,
}

impl LeaseClock {
    /// A clock that has already counted `elapsed`.
    pub fn with_elapsed(elapsed: Duration) -> LeaseClock {
        LeaseClock { elapsed }
    }

    /// The time counted so far.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Counts `delta` of monotonic time.
    pub fn advance(&mut self, delta: Duration) {
        self.elapsed = self.elapsed.saturating_add(delta);
    }

    /// Starts counting for a newly accepted token.
    ///
    /// With the server's time (a check-in answer), the token is as old as the server says, so an
    /// old token delivered late does not get a fresh lease. Without it (a hello, which carries no
    /// time), it starts at zero; the agent checks in right after a hello to learn the time.
    pub fn start(&mut self, claims: &StatusClaims, server_time: Option<i64>) {
        self.elapsed = server_time.map_or(Duration::ZERO, |t| age(claims, t));
    }

    /// The server confirmed the token already held. The answer is not signed, so its time can
    /// only make the token older, never younger: a replayed answer cannot extend the lease.
    pub fn confirm(&mut self, claims: &StatusClaims, server_time: i64) {
        self.elapsed = self.elapsed.max(age(claims, server_time));
    }

    /// The server signed a contact proof for the check-in just sent, answering with the token
    /// held (see `lien_proto::contact`): it was reached now, so the lease counts from now. Only
    /// a proof bound to the request's own counter may do this; an unsigned answer only
    /// [`confirm`](LeaseClock::confirm)s.
    pub fn contact(&mut self) {
        self.elapsed = Duration::ZERO;
    }

    /// Where the lease stands for `claims`.
    pub fn status(&self, claims: &StatusClaims) -> LeaseStatus {
        claims.lease_status(self.elapsed)
    }
}

fn age(claims: &StatusClaims, server_time: i64) -> Duration {
    Duration::from_secs(server_time.saturating_sub(claims.issued_at).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lien_proto::{Lease, ScreenText, TokenState};

    const DAY: u64 = 86_400;

    fn claims(issued_at: i64) -> StatusClaims {
        StatusClaims {
            device_id: "d".into(),
            sequence: 1,
            state: TokenState::Active,
            restrictions: vec![],
            screen: ScreenText {
                reason: String::new(),
                amount_due: None,
                financier_name: String::new(),
                financier_contact: String::new(),
                payment_link: None,
            },
            issued_at,
            lease: Some(Lease {
                ends_at: issued_at + 10 * DAY as i64,
                warn_from: issued_at + 7 * DAY as i64,
            }),
            emergency: None,
        }
    }

    #[test]
    fn warns_then_expires_on_monotonic_time() {
        let token = claims(1_000_000);
        let mut lease = LeaseClock::default();
        lease.start(&token, None);
        lease.advance(Duration::from_secs(7 * DAY - 1));
        assert_eq!(lease.status(&token), LeaseStatus::Valid);
        lease.advance(Duration::from_secs(1));
        assert_eq!(
            lease.status(&token),
            LeaseStatus::Warning {
                remaining: Duration::from_secs(3 * DAY)
            }
        );
        lease.advance(Duration::from_secs(3 * DAY));
        assert_eq!(lease.status(&token), LeaseStatus::Expired);
    }

    #[test]
    fn an_old_token_delivered_late_gets_no_fresh_lease() {
        let token = claims(1_000_000);
        let mut lease = LeaseClock::default();
        lease.start(&token, Some(1_000_000 + 9 * DAY as i64));
        assert!(matches!(lease.status(&token), LeaseStatus::Warning { .. }));
        lease.start(&token, Some(1_000_000 + 11 * DAY as i64));
        assert_eq!(lease.status(&token), LeaseStatus::Expired);
    }

    #[test]
    fn a_replayed_answer_cannot_make_the_held_token_younger() {
        let token = claims(1_000_000);
        let mut lease = LeaseClock::default();
        lease.start(&token, Some(1_000_000));
        lease.advance(Duration::from_secs(8 * DAY));
        lease.confirm(&token, 1_000_000);
        assert_eq!(lease.elapsed(), Duration::from_secs(8 * DAY));
        lease.confirm(&token, 1_000_000 + 9 * DAY as i64);
        assert_eq!(lease.elapsed(), Duration::from_secs(9 * DAY));
        // A server time before the issue time counts as zero, not as a negative age.
        lease.start(&token, Some(0));
        assert_eq!(lease.elapsed(), Duration::ZERO);
    }
}
