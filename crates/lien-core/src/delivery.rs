//! What reached the phone: the facts about delivery that the decision needs besides the plan,
//! the payments, the overrides and the policy.
//!
//! A notice counts only once it was served, and its cure period runs from then (issue 20). The
//! server knows when a phone acknowledged a token that showed a notice; `decide` cannot, so it
//! is told, as it is told of payments. The rule that turns those facts into service instants
//! is here, in one place, so that the decision and the tests read the same one:
//!
//! - notice `k` becomes *available* on its day past due, and never before the cure period of
//!   notice `k - 1` has ended (a second notice is a last warning, not a duplicate);
//! - it is *served* at the instant recorded for it (never before it was available), or, for a
//!   phone never seen, by the policy's fallback, [`PolicySettings::notice_fallback_days`]
//!   after it became available or the device was enrolled, whichever is later;
//! - its cure period ends `cure_days` local days after it was served, at the same local time.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::calendar;
use crate::policy::PolicySettings;

/// Delivery facts about one device, kept by the server and given to [`crate::decide`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// When the device was enrolled. Before it nothing was enforced, so the quiet hours treat
    /// a device enrolled inside them as one that was in good standing when they began.
    pub enrolled_at: Option<Timestamp>,
    /// When each of the policy's notices was served in the current arrears episode, in the
    /// policy's order (`notices_served[k]` for notice `k`). A new episode (paid up, then late
    /// again) starts with none.
    pub notices_served: Vec<Timestamp>,
    /// The phone has never been seen (no attested hello, no check-in): its notices are served
    /// by the policy's fallback rule.
    pub never_seen: bool,
    /// When the phone acknowledged a screen telling of the SIM change now in effect; a
    /// restricting SIM-change rule counts its days from then.
    pub sim_change_served: Option<Timestamp>,
}

/// One notice of the current episode, as the delivery rule places it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoticeStep {
    /// From when the phone shows it.
    pub(crate) available: Timestamp,
    /// When it is, or will be, served; `None` when nothing will serve it without a new input.
    pub(crate) served: Option<Timestamp>,
    /// When its cure period ends, if it is served.
    pub(crate) cure_ends: Option<Timestamp>,
}

/// Places the policy's notices for an episode whose `n`-th day past due starts at `day(n)`,
/// serving each with `serve(k, available)`. Stops after the first notice that will not be
/// served, as the next is not available before this one is.
pub(crate) fn notice_steps(
    settings: &PolicySettings,
    tz: &TimeZone,
    day: impl Fn(u32) -> Timestamp,
    serve: impl Fn(usize, Timestamp) -> Option<Timestamp>,
) -> Vec<NoticeStep> {
    let mut steps = Vec::with_capacity(settings.notices.len());
    let mut previous_cure_ends = Timestamp::MIN;
    for (k, notice) in settings.notices.iter().enumerate() {
        let available = day(notice.at_days_past_due).max(previous_cure_ends);
        let served = serve(k, available).map(|s| s.max(available));
        let cure_ends = served.map(|s| calendar::add_local_days(tz, s, notice.cure_days));
        steps.push(NoticeStep {
            available,
            served,
            cure_ends,
        });
        match cure_ends {
            Some(end) => previous_cure_ends = end,
            None => break,
        }
    }
    steps
}

impl Delivery {
    /// The instant notice `k`, available from `available`, is served under `settings`.
    pub(crate) fn serves(
        &self,
        settings: &PolicySettings,
        tz: &TimeZone,
        k: usize,
        available: Timestamp,
    ) -> Option<Timestamp> {
        match self.notices_served.get(k) {
            Some(&at) => Some(at),
            // The financier's own channels can reach the borrower only once it has enrolled
            // the device: for a plan enrolled already overdue, the fallback's days run from
            // the enrollment, or it would count a notice as served before anyone gave it.
            None if self.never_seen => settings.notice_fallback_days.map(|days| {
                let from = self.enrolled_at.map_or(available, |e| e.max(available));
                calendar::add_local_days(tz, from, days)
            }),
            None => None,
        }
    }
}
