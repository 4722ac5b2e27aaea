//! The decision function: the one place that says what state a financed device is in.
//!
//! `decide` is pure and total. It reads its inputs and the instant `now` it is given, and
//! returns the state, the reason, the money figures the lock screen shows, and the next
//! instant at which the answer can change, so a server schedules a re-evaluation exactly then
//! instead of scanning every plan.

use jiff::Timestamp;
use jiff::civil::Date;

use crate::calendar;
use crate::ledger::{PaymentLog, Standing};
use crate::money::Money;
use crate::overrides::{Override, OverrideKind};
use crate::plan::InstallmentPlan;
use crate::policy::{LockPolicy, QuietHours, Restriction};

/// What the phone does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// Good standing: the phone works normally.
    Active,
    /// Late: the phone works and shows a reminder.
    Reminder,
    /// Some functions are limited.
    Restricted,
    /// The lock screen covers the phone (emergency calls and the payment app still work).
    Locked,
    /// The financier has no more claim: nothing is enforced, ever again.
    Released,
}

impl DeviceState {
    /// How much the state restricts the borrower: 0 for active and released, 3 for locked.
    pub fn severity(self) -> u8 {
        match self {
            DeviceState::Active | DeviceState::Released => 0,
            DeviceState::Reminder => 1,
            DeviceState::Restricted => 2,
            DeviceState::Locked => 3,
        }
    }

    fn from_restriction(restriction: Restriction) -> DeviceState {
        match restriction {
            Restriction::Restricted => DeviceState::Restricted,
            Restriction::Locked => DeviceState::Locked,
        }
    }
}

/// Why the device is in its state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Nothing is late.
    GoodStanding,
    /// Every installment is paid; the financier can release the device.
    PaidInFull,
    /// An installment due on `since` is late and unpaid.
    Overdue {
        /// The due date of the oldest late installment; days past due are counted from it.
        since: Date,
    },
    /// The financier locked the phone by hand.
    ManualLock {
        /// The financier's words, shown on the phone.
        reason: String,
    },
    /// The phone is unlocked for a while whatever is owed (an appeal, an emergency).
    ProvisionalUnlock {
        /// When the provisional unlock ends.
        until: Timestamp,
    },
    /// Restrictions are paused for hardship.
    HardshipPause {
        /// When the pause ends.
        until: Timestamp,
    },
    /// A dispute is open: nothing gets worse until it is settled.
    DisputeFreeze,
    /// The financier released the device.
    Released,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What the phone does.
    pub state: DeviceState,
    /// Why.
    pub reason: Reason,
    /// Late and unpaid: paying this brings the device back to good standing.
    pub amount_due: Money,
    /// Everything still unpaid, late or not.
    pub outstanding: Money,
    /// Paid beyond the plan's total.
    pub credit: Money,
    /// How many of the policy's notices have been served for the current arrears.
    pub notices_served: usize,
    /// When the next restriction will start if nothing is paid, for the reminder screen.
    pub next_restriction: Option<(Timestamp, DeviceState)>,
    /// The next instant at which the decision can change without a new input; `None` when it
    /// never will (a released device, or a plan with nothing left to fall due).
    pub next_change: Option<Timestamp>,
}

/// Decides the state of a device at `now`.
///
/// Precedence, strongest first: release (final), provisional unlock, manual lock, then the
/// schedule under the policy, capped by a hardship pause (at most a reminder), a dispute freeze
/// (never worse than the decision when the freeze began) and the quiet hours (no new
/// restriction starts inside them). Payments and overrides dated after `now` are not yet in
/// effect; their instants are candidates for `next_change`.
pub fn decide(
    plan: &InstallmentPlan,
    payments: &PaymentLog,
    overrides: &[Override],
    policy: &LockPolicy,
    now: Timestamp,
) -> Decision {
    decide_within(plan, payments, overrides, policy, now, LOOKBACK_DEPTH)
}

/// How many earlier decisions one decision may consult (for freezes and quiet hours). Each
/// look-back goes to a strictly earlier instant or drops a freeze, so real inputs need a handful;
/// past the limit the answer is capped at a reminder, which can only err towards the borrower.
const LOOKBACK_DEPTH: u8 = 16;

fn decide_within(
    plan: &InstallmentPlan,
    payments: &PaymentLog,
    overrides: &[Override],
    policy: &LockPolicy,
    now: Timestamp,
    depth: u8,
) -> Decision {
    let mut next = NextChange::after(now);
    let currency = plan.currency();
    let money = |minor: i128| Money::new(i64::try_from(minor).unwrap_or(i64::MAX), currency);

    let standing = Standing::settle(
        plan,
        payments.paid_at(now),
        calendar::local_date(plan.time_zone(), now),
    );
    let mut decision = Decision {
        state: DeviceState::Active,
        reason: Reason::GoodStanding,
        amount_due: money(standing.arrears),
        outstanding: money(standing.outstanding),
        credit: money(standing.credit),
        notices_served: 0,
        next_restriction: None,
        next_change: None,
    };

    if overrides
        .iter()
        .any(|o| o.kind() == &OverrideKind::Release && o.from() <= now)
    {
        decision.state = DeviceState::Released;
        decision.reason = Reason::Released;
        return decision;
    }

    for o in overrides {
        next.consider(o.from());
        if let Some(until) = o.until() {
            next.consider(until);
        }
    }
    payments.effective_instants().for_each(|t| next.consider(t));

    let scheduled = schedule(plan, &standing, policy, now, &mut next);
    decision.notices_served = scheduled.notices_served;
    decision.next_restriction = scheduled.next_restriction;
    decision.state = scheduled.state;
    decision.reason = scheduled.reason;

    let in_effect = |wanted: fn(&OverrideKind) -> bool| {
        overrides
            .iter()
            .filter(move |o| wanted(o.kind()) && o.in_effect(now))
    };

    // Of several provisional unlocks, the one that lasts longest is the one the borrower sees.
    if let Some(until) = in_effect(|k| k == &OverrideKind::ProvisionalUnlock)
        .filter_map(Override::until)
        .max()
    {
        decision.state = DeviceState::Active;
        decision.reason = Reason::ProvisionalUnlock { until };
        decision.next_restriction = None;
        decision.next_change = next.earliest;
        return decision;
    }

    // Of several manual locks, the earliest one's reason is shown, so the order in which they
    // were reported does not matter. A manual lock is an explicit, audited act: quiet hours and
    // freezes, which restrain the schedule, do not delay it.
    if let Some(lock) = in_effect(|k| matches!(k, OverrideKind::ManualLock { .. }))
        .min_by_key(|o| (o.from(), o.kind().clone()))
        && let OverrideKind::ManualLock { reason } = lock.kind()
    {
        decision.state = DeviceState::Locked;
        decision.reason = Reason::ManualLock {
            reason: reason.clone(),
        };
        decision.next_restriction = None;
        decision.next_change = next.earliest;
        return decision;
    }

    if let Some(until) = in_effect(|k| k == &OverrideKind::HardshipPause)
        .filter_map(Override::until)
        .max()
        && decision.state.severity() >= DeviceState::Reminder.severity()
    {
        decision.state = DeviceState::Reminder;
        decision.reason = Reason::HardshipPause { until };
        decision.next_restriction = None;
    }

    // A freeze holds the device at the whole decision when the freeze began (quiet hours, pauses
    // and unlocks included), recomputed from the inputs as they stood then, so the freeze needs
    // no stored snapshot. That decision is taken without this freeze and any opened with it.
    for freeze in in_effect(|k| k == &OverrideKind::DisputeFreeze) {
        let earlier: Vec<Override> = overrides
            .iter()
            .filter(|o| o.kind() != &OverrideKind::DisputeFreeze || o.from() < freeze.from())
            .cloned()
            .collect();
        let at_start = look_back(plan, payments, &earlier, policy, freeze.from(), depth);
        if at_start.severity() < decision.state.severity() {
            decision.state = at_start;
            decision.reason = Reason::DisputeFreeze;
        }
        decision.next_restriction = None;
    }

    // No new restriction starts in the quiet hours: inside the window the device may not be
    // worse than the whole decision when the window opened, with the inputs in effect then.
    // This covers due dates falling at night, arrears that come back at night (a chargeback),
    // and pauses or provisional unlocks that end at night.
    if let Some(quiet) = policy.settings().quiet_hours
        && decision.state.severity() > DeviceState::Reminder.severity()
        && let Some((opened, closes)) = quiet_window_around(quiet, plan.time_zone(), now)
        && opened < now
    {
        let at_opening = look_back(plan, payments, overrides, policy, opened, depth);
        if at_opening.severity() < decision.state.severity() {
            // Only a cap that holds the state down ends with the window; the reminder screen
            // says what happens then.
            next.consider(closes);
            decision.next_restriction = Some((closes, decision.state));
            decision.state = if at_opening.severity() < DeviceState::Reminder.severity() {
                DeviceState::Reminder
            } else {
                at_opening
            };
        }
    }
    decision.next_change = next.earliest;
    decision
}

/// The state of the whole decision at an earlier instant `at`, spending one unit of the
/// look-back budget; once it is spent, a reminder, which can only err towards the borrower.
fn look_back(
    plan: &InstallmentPlan,
    payments: &PaymentLog,
    overrides: &[Override],
    policy: &LockPolicy,
    at: Timestamp,
    depth: u8,
) -> DeviceState {
    match depth.checked_sub(1) {
        Some(depth) => decide_within(plan, payments, overrides, policy, at, depth).state,
        None => DeviceState::Reminder,
    }
}

/// What the schedule alone says.
struct Scheduled {
    state: DeviceState,
    reason: Reason,
    notices_served: usize,
    next_restriction: Option<(Timestamp, DeviceState)>,
}

/// Applies the policy to the plan's standing at `now`, and records in `next` every future
/// instant at which the schedule's answer can change.
fn schedule(
    plan: &InstallmentPlan,
    standing: &Standing,
    policy: &LockPolicy,
    now: Timestamp,
    next: &mut NextChange,
) -> Scheduled {
    // The next installment to fall late changes the amount due, and may start a new episode.
    if let Some(due) = standing.next_unpaid {
        next.consider(plan.late_from(due));
    }
    let Some(since) = standing.oldest_late else {
        let reason = if standing.outstanding == 0 {
            Reason::PaidInFull
        } else {
            Reason::GoodStanding
        };
        return Scheduled {
            state: DeviceState::Active,
            reason,
            notices_served: 0,
            next_restriction: None,
        };
    };

    let tz = plan.time_zone();
    let settings = policy.settings();
    // The start of the n-th day past due: day 1 starts at midnight after the due date.
    let day = |n: u32| calendar::start_of_day(tz, calendar::add_days(since, i64::from(n)));
    let reason = Reason::Overdue { since };

    let reminder_from = day(settings.grace_days.saturating_add(1));
    next.consider(reminder_from);
    if now < reminder_from {
        return Scheduled {
            state: DeviceState::Active,
            reason,
            notices_served: 0,
            next_restriction: None,
        };
    }

    let mut notices_served = 0;
    // No restriction before the minimum days past due, nor before every notice's cure period.
    let mut earliest_restriction = day(settings
        .min_days_past_due
        .max(settings.grace_days.saturating_add(1)));
    for notice in &settings.notices {
        let served = day(notice.at_days_past_due);
        next.consider(served);
        if served <= now {
            notices_served += 1;
        }
        earliest_restriction = earliest_restriction.max(day(notice
            .at_days_past_due
            .saturating_add(notice.cure_days)));
    }

    let mut state = DeviceState::Reminder;
    let mut next_restriction = None;
    let largest = i128::from(plan.largest_installment().minor());
    let enough_arrears =
        standing.arrears * 100 >= largest * i128::from(settings.min_arrears_percent);
    if enough_arrears {
        for escalation in &settings.escalations {
            let due = day(escalation.at_days_past_due).max(earliest_restriction);
            let starts = outside_quiet_hours(settings.quiet_hours, tz, due);
            let escalated = DeviceState::from_restriction(escalation.restriction);
            if starts <= now {
                state = escalated;
            } else {
                next.consider(starts);
                if next_restriction.is_none() && escalated != state {
                    next_restriction = Some((starts, escalated));
                }
            }
        }
    }
    Scheduled {
        state,
        reason,
        notices_served,
        next_restriction,
    }
}

/// Moves an instant that falls in the quiet hours to the end of that window.
fn outside_quiet_hours(
    quiet: Option<QuietHours>,
    tz: &jiff::tz::TimeZone,
    at: Timestamp,
) -> Timestamp {
    quiet
        .and_then(|q| quiet_window_around(q, tz, at))
        .map_or(at, |(_, closes)| closes)
}

/// If `now` falls in the quiet hours, the instants the window opened and will close.
fn quiet_window_around(
    quiet: QuietHours,
    tz: &jiff::tz::TimeZone,
    now: Timestamp,
) -> Option<(Timestamp, Timestamp)> {
    let time = calendar::local_time(tz, now);
    if !quiet.contains(time) {
        return None;
    }
    let today = calendar::local_date(tz, now);
    let wraps = quiet.start > quiet.end;
    let (open_date, close_date) = match (wraps, time >= quiet.start) {
        (true, true) => (today, calendar::add_days(today, 1)),
        (true, false) => (calendar::add_days(today, -1), today),
        (false, _) => (today, today),
    };
    // Daylight-saving shifts can move a local time across `now`; clamp so the window holds it.
    let opened = calendar::at_local(tz, open_date, quiet.start).min(now);
    let closes = calendar::at_local(tz, close_date, quiet.end).max(now);
    Some((opened, closes))
}

/// The earliest instant strictly after `now` among those considered.
struct NextChange {
    now: Timestamp,
    earliest: Option<Timestamp>,
}

impl NextChange {
    fn after(now: Timestamp) -> NextChange {
        NextChange {
            now,
            earliest: None,
        }
    }

    fn consider(&mut self, at: Timestamp) {
        if at > self.now && self.earliest.is_none_or(|e| at < e) {
            self.earliest = Some(at);
        }
    }
}
