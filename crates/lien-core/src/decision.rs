//! The decision function: the one place that says what state a financed device is in.
//!
//! `decide` is pure and total. It reads its inputs and the instant `now` it is given, and
//! returns the state, the reason, the money figures the lock screen shows, and the next
//! instant at which the answer can change, so a server schedules a re-evaluation exactly then
//! instead of scanning every plan.

use jiff::Timestamp;
use jiff::civil::Date;

use crate::calendar;
use crate::delivery::{Delivery, notice_steps};
use crate::ledger::{PaymentLog, Standing};
use crate::money::Money;
use crate::overrides::{Override, OverrideKind};
use crate::plan::InstallmentPlan;
use crate::policy::{LockPolicy, PolicySettings, QuietHours, Restriction, SimChangeRule};

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
    /// An installment falls due soon (the policy's reminder before the due date).
    DueSoon {
        /// Its due date.
        due: Date,
        /// What is left to pay of it.
        amount: Money,
    },
    /// Every installment is paid; the financier can release the device.
    PaidInFull,
    /// The phone reported a new SIM card at `since`, which the financier has not accepted;
    /// the policy's SIM-change rule applies.
    SimChanged {
        /// When the change was reported.
        since: Timestamp,
    },
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
    /// The due date of the oldest installment that is late and unpaid, whatever the state's
    /// reason (a manual lock can hide it); `None` when nothing is late or the device is
    /// released. How old the arrears are, for a financier's reports.
    pub overdue_since: Option<Date>,
    /// How many of the policy's notices have been served for the current arrears.
    pub notices_served: usize,
    /// When each of them was served (acknowledged by the phone, or by the policy's fallback
    /// for a phone never seen), in the policy's order: the server keeps these.
    pub notices_served_at: Vec<Timestamp>,
    /// The notice the borrower must be shown now: available and not yet served.
    pub pending_notice: Option<PendingNotice>,
    /// When the next restriction will start if nothing is paid, for the reminder screen.
    pub next_restriction: Option<(Timestamp, DeviceState)>,
    /// The SIM change in effect, if the policy answers it.
    pub sim_change: Option<SimChangeStatus>,
    /// The next instant at which the decision can change without a new input; `None` when it
    /// never will (a released device, or a plan with nothing left to fall due).
    pub next_change: Option<Timestamp>,
}

/// A SIM change the phone reported and the financier has not accepted, under a policy that
/// answers it: the server says so on the screen, whatever else the screen says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimChangeStatus {
    /// When the phone reported it.
    pub since: Timestamp,
    /// Whether the phone has acknowledged a screen telling of it (`Delivery::sim_change_served`).
    pub served: bool,
    /// When it restricts the phone, under a restricting rule once served; `None` otherwise.
    pub restricts_at: Option<Timestamp>,
    /// Whether that time has come: the rule restricts the phone now.
    pub restricting: bool,
}

/// A notice that is shown and waits to be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingNotice {
    /// Its position in the policy's notices (0 for the first).
    pub index: usize,
    /// The days the borrower will have to pay once it is served.
    pub cure_days: u32,
}

/// Decides the state of a device at `now`.
///
/// Precedence, strongest first: release (final), provisional unlock, manual lock, then the
/// schedule under the policy, capped by a hardship pause (at most a reminder), a dispute freeze
/// (never worse than the decision just before the freeze began) and the quiet hours (no new
/// restriction starts inside them: never worse than the mildest the device has been since just
/// before they began). Both caps start from the last instant before the freeze or the window,
/// so nothing dated at its first instant (a chargeback stamped on the hour, an escalation at
/// midnight, a pause that ends as the window opens) gets past them.
/// Payments and overrides dated after `now` are not yet in effect; their instants are
/// candidates for `next_change`.
///
/// No restriction comes before every notice of the policy was served and its cure period
/// ended; `delivery` says when notices were served (see [`crate::delivery`] for the rule).
pub fn decide(
    plan: &InstallmentPlan,
    payments: &PaymentLog,
    overrides: &[Override],
    policy: &LockPolicy,
    delivery: &Delivery,
    now: Timestamp,
) -> Decision {
    let inputs = Inputs {
        plan,
        payments,
        overrides,
        policy,
        delivery,
    };
    decide_within(inputs, now, LOOKBACK_DEPTH)
}

/// What a decision is made from; the look-backs decide again from the same.
#[derive(Clone, Copy)]
struct Inputs<'a> {
    plan: &'a InstallmentPlan,
    payments: &'a PaymentLog,
    overrides: &'a [Override],
    policy: &'a LockPolicy,
    delivery: &'a Delivery,
}

/// How deep decisions may consult earlier ones (for freezes and quiet hours). Each look-back
/// goes to instants strictly before the one it serves, so real inputs need a handful; past the
/// limit the answer is capped at a reminder, which can only err towards the borrower.
const LOOKBACK_DEPTH: u8 = 16;

/// Everything `decide` does but the quiet hours' cap.
fn decide_before_quiet_hours(inputs: Inputs<'_>, now: Timestamp, depth: u8) -> Decision {
    let Inputs {
        plan,
        payments,
        overrides,
        policy,
        delivery,
    } = inputs;
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
        overdue_since: standing.oldest_late,
        notices_served: 0,
        notices_served_at: Vec::new(),
        pending_notice: None,
        next_restriction: None,
        sim_change: None,
        next_change: None,
    };

    if overrides
        .iter()
        .any(|o| o.kind() == &OverrideKind::Release && o.from() <= now)
    {
        decision.state = DeviceState::Released;
        decision.reason = Reason::Released;
        decision.overdue_since = None;
        return decision;
    }

    for o in overrides {
        next.consider(o.from());
        if let Some(until) = o.until() {
            next.consider(until);
        }
    }
    payments.effective_instants().for_each(|t| next.consider(t));

    let scheduled = schedule(plan, &standing, policy, delivery, now, &mut next);
    decision.notices_served = scheduled.notices_served_at.len();
    decision.notices_served_at = scheduled.notices_served_at;
    decision.pending_notice = scheduled.pending_notice;
    decision.next_restriction = scheduled.next_restriction;
    decision.state = scheduled.state;
    decision.reason = scheduled.reason;

    // A SIM change not yet accepted applies the policy's rule, unless the arrears already ask
    // as much; the server tells of it on the screen either way (`Decision::sim_change`).
    if let Some(sim) = sim_change(
        policy.settings(),
        plan.time_zone(),
        overrides,
        delivery,
        now,
        &mut next,
    ) {
        decision.sim_change = Some(sim.status);
        if sim.state.severity() > decision.state.severity() {
            decision.state = sim.state;
            // An arrears notice still waits to be served: the SIM change's screen tells it
            // too, so the arrears go on toward their own restriction behind this one.
            decision.reason = Reason::SimChanged {
                since: sim.status.since,
            };
        }
        let restriction = sim.status.restricts_at.filter(|at| *at > now);
        decision.next_restriction = [
            restriction.map(|at| (at, DeviceState::Restricted)),
            decision.next_restriction,
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(at, _)| *at);
    }

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
        decision.pending_notice = None;
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
        decision.pending_notice = None;
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
        decision.pending_notice = None;
    }

    // A freeze holds the device at the whole decision just before the freeze began (quiet hours,
    // pauses and unlocks included), recomputed from the inputs as they stood then, so the freeze
    // needs no stored snapshot. Taken at the last instant before it, that decision leaves out
    // this freeze, any opened with it, and whatever else is dated at its first instant.
    for freeze in in_effect(|k| k == &OverrideKind::DisputeFreeze) {
        let before_start = calendar::just_before(freeze.from());
        let held = look_back(inputs, before_start, depth);
        if held.severity() < decision.state.severity() {
            decision.state = held;
            decision.reason = Reason::DisputeFreeze;
            // The screen speaks of the dispute, not of the notice: it is not shown, so the
            // phone's acknowledgement of this token must not serve it.
            decision.pending_notice = None;
        }
        decision.next_restriction = None;
    }

    decision.next_change = next.earliest;
    decision
}

/// `decide`, with `depth` units of look-back budget left.
fn decide_within(inputs: Inputs<'_>, now: Timestamp, depth: u8) -> Decision {
    let mut decision = decide_before_quiet_hours(inputs, now, depth);
    // No new restriction starts in the quiet hours: inside the window the device may be no
    // worse than the mildest it has been since just before the window opened (a reminder is
    // always allowed). This covers due dates falling at night, arrears that come back at night
    // (a chargeback), pauses or provisional unlocks that end at night, whether they began before
    // the window or inside it, and any of these at the window's first instant.
    if let Some(quiet) = inputs.policy.settings().quiet_hours
        && decision.state.severity() > DeviceState::Reminder.severity()
        && !matches!(decision.reason, Reason::ManualLock { .. })
        && let Some((opened, closes)) = quiet_window_around(quiet, inputs.plan.time_zone(), now)
    {
        let since = calendar::just_before(opened);
        // Before its enrollment the device was under no schedule: one enrolled inside the
        // window was in good standing when it opened, whatever its plan says of that time.
        let enrolled_inside = inputs.delivery.enrolled_at.is_some_and(|e| since < e);
        let mildest = if enrolled_inside {
            DeviceState::Active
        } else {
            mildest_before_quiet_hours(inputs, since, now, depth)
        };
        let held = if mildest.severity() < DeviceState::Reminder.severity() {
            DeviceState::Reminder
        } else {
            mildest
        };
        if held.severity() < decision.state.severity() {
            // Only a cap that holds the state down ends with the window; the reminder screen
            // says what happens then.
            decision.next_change = Some(decision.next_change.map_or(closes, |n| n.min(closes)));
            decision.next_restriction = Some((closes, decision.state));
            decision.state = held;
        }
    }
    decision
}

/// How many changes one quiet window may hold before its cap stops looking for the mildest of
/// them and holds the device at a reminder, which can only err towards the borrower.
const CHANGES_IN_ONE_WINDOW: usize = 64;

/// The mildest state the decision before the quiet-hours cap took at any instant from `from` up
/// to, not including, `until`. It walks the instants at which that decision changes, so it sees
/// a state however briefly it held; it spends one unit of the look-back budget.
fn mildest_before_quiet_hours(
    inputs: Inputs<'_>,
    from: Timestamp,
    until: Timestamp,
    depth: u8,
) -> DeviceState {
    let Some(depth) = depth.checked_sub(1) else {
        return DeviceState::Reminder;
    };
    let mut at = from;
    let mut mildest = DeviceState::Locked;
    for _ in 0..CHANGES_IN_ONE_WINDOW {
        let d = decide_before_quiet_hours(inputs, at, depth);
        if d.state.severity() < mildest.severity() {
            mildest = d.state;
        }
        match d.next_change {
            Some(next) if next < until => at = next,
            _ => return mildest,
        }
    }
    DeviceState::Reminder
}

/// The state of the whole decision at an earlier instant `at`, spending one unit of the
/// look-back budget; once it is spent, a reminder, which can only err towards the borrower.
fn look_back(inputs: Inputs<'_>, at: Timestamp, depth: u8) -> DeviceState {
    match depth.checked_sub(1) {
        Some(depth) => decide_within(inputs, at, depth).state,
        None => DeviceState::Reminder,
    }
}

/// What the schedule alone says.
struct Scheduled {
    state: DeviceState,
    reason: Reason,
    notices_served_at: Vec<Timestamp>,
    pending_notice: Option<PendingNotice>,
    next_restriction: Option<(Timestamp, DeviceState)>,
}

impl Scheduled {
    fn unrestricted(state: DeviceState, reason: Reason) -> Scheduled {
        Scheduled {
            state,
            reason,
            notices_served_at: Vec::new(),
            pending_notice: None,
            next_restriction: None,
        }
    }
}

/// Applies the policy to the plan's standing at `now`, and records in `next` every future
/// instant at which the schedule's answer can change.
fn schedule(
    plan: &InstallmentPlan,
    standing: &Standing,
    policy: &LockPolicy,
    delivery: &Delivery,
    now: Timestamp,
    next: &mut NextChange,
) -> Scheduled {
    // The next installment to fall late changes the amount due, and may start a new episode.
    if let Some(due) = standing.next_unpaid {
        next.consider(plan.late_from(due));
    }
    let tz = plan.time_zone();
    let settings = policy.settings();
    let largest = i128::from(plan.largest_installment().minor());
    let enough_arrears =
        |arrears: i128| arrears * 100 >= largest * i128::from(settings.min_arrears_percent);
    let reminds_before = settings.remind_days_before > 0;

    let Some(since) = standing.oldest_late else {
        let reason = if standing.outstanding == 0 {
            Reason::PaidInFull
        } else {
            Reason::GoodStanding
        };
        // The reminder before the next due date names the amount, the date, and what happens
        // if it is not paid: the earliest restriction, as if every notice were served as soon
        // as it is shown (the borrower's phone is online and acknowledges it).
        if let Some(due) = standing.next_unpaid
            && reminds_before
        {
            let from = calendar::start_of_day(
                tz,
                calendar::add_days(due, -i64::from(settings.remind_days_before)),
            );
            next.consider(from);
            if from <= now {
                let amount = Money::new(
                    i64::try_from(standing.next_unpaid_amount).unwrap_or(i64::MAX),
                    plan.currency(),
                );
                let next_restriction = if enough_arrears(standing.next_unpaid_amount) {
                    projected_restriction(settings, tz, due, |_, available| Some(available))
                } else {
                    None
                };
                return Scheduled {
                    next_restriction,
                    ..Scheduled::unrestricted(
                        DeviceState::Reminder,
                        Reason::DueSoon { due, amount },
                    )
                };
            }
        }
        return Scheduled::unrestricted(DeviceState::Active, reason);
    };

    // The start of the n-th day past due: day 1 starts at midnight after the due date.
    let day = |n: u32| calendar::start_of_day(tz, calendar::add_days(since, i64::from(n)));
    let reason = Reason::Overdue { since };
    let serves = |k: usize, available: Timestamp| delivery.serves(settings, tz, k, available);
    // What happens if nothing is paid, for the reminder screen, while no notice is waiting to
    // be served (a waiting notice says how long the borrower has once it is).
    let projection = || {
        if enough_arrears(standing.arrears) {
            projected_restriction(settings, tz, since, |k, available| {
                serves(k, available).or(Some(available))
            })
        } else {
            None
        }
    };

    let reminder_from = day(settings.grace_days.saturating_add(1));
    next.consider(reminder_from);
    if now < reminder_from {
        // The grace period: no effect, but a policy that reminds before due dates keeps
        // reminding (so that paying never turns the phone from active to a reminder).
        return if reminds_before {
            Scheduled {
                next_restriction: projection(),
                ..Scheduled::unrestricted(DeviceState::Reminder, reason)
            }
        } else {
            Scheduled::unrestricted(DeviceState::Active, reason)
        };
    }

    // No restriction before the minimum days past due, nor before every notice was served
    // and its cure period over.
    let mut earliest_restriction = day(settings
        .min_days_past_due
        .max(settings.grace_days.saturating_add(1)));
    let mut notices_served_at = Vec::new();
    let mut pending_notice = None;
    let mut all_served = true;
    for (index, step) in notice_steps(settings, tz, day, serves)
        .into_iter()
        .enumerate()
    {
        next.consider(step.available);
        match (step.served, step.cure_ends) {
            (Some(served), Some(cure_ends)) if served <= now => {
                notices_served_at.push(served);
                earliest_restriction = earliest_restriction.max(cure_ends);
            }
            (served, _) => {
                if let Some(served) = served {
                    next.consider(served);
                }
                if step.available <= now {
                    pending_notice = Some(PendingNotice {
                        index,
                        cure_days: settings.notices[index].cure_days,
                    });
                }
                all_served = false;
                break;
            }
        }
    }

    let mut state = DeviceState::Reminder;
    let mut next_restriction = None;
    if all_served && enough_arrears(standing.arrears) {
        for (due, starts, escalated) in escalations(settings, tz, day, earliest_restriction) {
            // Due, it holds, even in the quiet hours: their cap (`decide_within`) keeps it from
            // starting there, but a phone already held at least this hard when they began
            // stays so (a payment at night that leaves a younger installment due does not free
            // the phone until morning).
            if due <= now {
                state = escalated;
            } else {
                // The decision changes when it falls due; what the phone shows of it is when it
                // can start.
                next.consider(due);
                if next_restriction.is_none() && escalated != state {
                    next_restriction = Some((starts, escalated));
                }
            }
        }
    } else if !all_served && pending_notice.is_none() {
        next_restriction = projection();
    }
    Scheduled {
        state,
        reason,
        notices_served_at,
        pending_notice,
        next_restriction,
    }
}

/// What an unaccepted SIM change asks for at `now` under the policy's rule.
struct SimChangeEffect {
    state: DeviceState,
    status: SimChangeStatus,
}

/// The effect of the earliest SIM change in effect at `now` (reported, not yet accepted), if
/// the policy's rule gives it one. Like an arrears notice, a restricting rule counts its days
/// only from when the phone acknowledged a screen telling of the change (`delivery`), and a
/// restriction never starts in the quiet hours.
fn sim_change(
    settings: &PolicySettings,
    tz: &jiff::tz::TimeZone,
    overrides: &[Override],
    delivery: &Delivery,
    now: Timestamp,
    next: &mut NextChange,
) -> Option<SimChangeEffect> {
    let since = overrides
        .iter()
        .filter(|o| o.kind() == &OverrideKind::SimChange && o.in_effect(now))
        .map(Override::from)
        .min()?;
    let served = delivery.sim_change_served.map(|s| s.max(since));
    let restricts_at = match settings.sim_change {
        SimChangeRule::Ignore => return None,
        SimChangeRule::Remind => None,
        SimChangeRule::Restrict { after_days } => served.map(|served| {
            let due = calendar::add_local_days(tz, served, after_days);
            outside_quiet_hours(settings.quiet_hours, tz, due)
        }),
    };
    let state = match restricts_at {
        Some(at) if at <= now => DeviceState::Restricted,
        Some(at) => {
            next.consider(at);
            DeviceState::Reminder
        }
        None => DeviceState::Reminder,
    };
    Some(SimChangeEffect {
        state,
        status: SimChangeStatus {
            since,
            served: served.is_some(),
            restricts_at,
            restricting: state == DeviceState::Restricted,
        },
    })
}

/// Each escalation of an episode whose `n`-th day past due starts at `day(n)`, given the
/// earliest instant a restriction may start: when it is due, when it can start (never in the
/// quiet hours), and the state it asks for.
fn escalations(
    settings: &PolicySettings,
    tz: &jiff::tz::TimeZone,
    day: impl Fn(u32) -> Timestamp,
    earliest_restriction: Timestamp,
) -> impl Iterator<Item = (Timestamp, Timestamp, DeviceState)> {
    settings.escalations.iter().map(move |escalation| {
        let due = day(escalation.at_days_past_due).max(earliest_restriction);
        (
            due,
            outside_quiet_hours(settings.quiet_hours, tz, due),
            DeviceState::from_restriction(escalation.restriction),
        )
    })
}

/// The first restriction of an episode that began with the installment due on `since`, if
/// nothing is paid and notice `k`, available at `a`, is served at `serve(k, a)`.
fn projected_restriction(
    settings: &PolicySettings,
    tz: &jiff::tz::TimeZone,
    since: Date,
    serve: impl Fn(usize, Timestamp) -> Option<Timestamp>,
) -> Option<(Timestamp, DeviceState)> {
    let day = |n: u32| calendar::start_of_day(tz, calendar::add_days(since, i64::from(n)));
    let steps = notice_steps(settings, tz, day, serve);
    let earliest = steps.iter().try_fold(
        day(settings
            .min_days_past_due
            .max(settings.grace_days.saturating_add(1))),
        |earliest, step| step.cure_ends.map(|end| earliest.max(end)),
    )?;
    escalations(settings, tz, day, earliest)
        .next()
        .map(|(_, starts, state)| (starts, state))
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

/// If `now` falls in the quiet hours, the instant this stretch of them began (the last at or
/// before `now` at which the local clock entered the window) and the instant it ends (the
/// first after `now` at which the clock leaves it).
///
/// The clock enters and leaves the window where it shows the window's start or end, or where
/// daylight saving moves it across an edge: a skipped start opens the window when the gap ends,
/// and an hour shown twice can leave the window and enter it again, so the start time on
/// today's date is not always where this stretch began. A window is shorter than a day plus a daylight-saving shift, so two days either
/// side of `now` hold both of its ends.
fn quiet_window_around(
    quiet: QuietHours,
    tz: &jiff::tz::TimeZone,
    now: Timestamp,
) -> Option<(Timestamp, Timestamp)> {
    let inside = |t: Timestamp| quiet.contains(calendar::local_time(tz, t));
    if !inside(now) {
        return None;
    }
    let today = calendar::local_date(tz, now);
    let two_days = jiff::SignedDuration::from_hours(48);
    let edges = |time| {
        (-2..=2)
            .flat_map(move |days| {
                calendar::instants_at_local(tz, calendar::add_days(today, days), time)
            })
            .chain(calendar::transitions_between(
                tz,
                now.saturating_sub(two_days).unwrap_or(Timestamp::MIN),
                now.saturating_add(two_days).unwrap_or(Timestamp::MAX),
            ))
    };
    let opened = edges(quiet.start)
        .filter(|&t| t <= now && inside(t) && !inside(calendar::just_before(t)))
        .max();
    let closes = edges(quiet.end)
        .filter(|&t| t > now && !inside(t) && inside(calendar::just_before(t)))
        .min();
    // Only at the ends of the supported range can an edge be missing; a window without a start
    // opens now, and one without an end never ends, both erring towards the borrower.
    Some((opened.unwrap_or(now), closes.unwrap_or(Timestamp::MAX)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use jiff::civil::Time;
    use jiff::tz::TimeZone;
    use proptest::prelude::*;

    const ZONES: [&str; 7] = [
        "UTC",
        "Africa/Nairobi",
        "America/Santiago",
        "Australia/Lord_Howe",
        "Australia/Sydney",
        "America/New_York",
        "Europe/London",
    ];

    const MINUTE: SignedDuration = SignedDuration::from_secs(60);

    fn quiet_hours() -> impl Strategy<Value = QuietHours> {
        let time = (0i8..24, prop::sample::select(vec![0i8, 15, 30, 45]))
            .prop_map(|(h, m)| Time::constant(h, m, 0, 0));
        (time.clone(), time)
            .prop_filter("a window has two ends", |(start, end)| start != end)
            .prop_map(|(start, end)| QuietHours { start, end })
    }

    /// A zone, and an instant within a day and a half of one of its clock changes in 2026 (any
    /// instant at all in a zone that never changes).
    fn zone_and_instant() -> impl Strategy<Value = (TimeZone, Timestamp)> {
        (
            0..ZONES.len(),
            0usize..2,
            prop_oneof![1 => Just(0i64), 4 => -129_600i64..129_600],
            0i32..1_000_000_000,
        )
            .prop_map(|(zone, which, seconds, nanos)| {
                let tz = TimeZone::get(ZONES[zone]).unwrap();
                let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
                let anchor = tz
                    .following(start)
                    .nth(which)
                    .map_or(start, |change| change.timestamp());
                let nanos = if seconds == 0 { 0 } else { nanos };
                let at = anchor + SignedDuration::new(seconds, nanos);
                (tz, at)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// The window found is exactly the stretch of quiet hours around `now`: the clock is in
        /// the quiet hours at every instant from its opening to its close, and at neither the
        /// instant before the opening nor the close.
        #[test]
        fn the_quiet_window_is_the_whole_stretch_around_now(
            quiet in quiet_hours(),
            (tz, now) in zone_and_instant(),
        ) {
            let inside = |t: Timestamp| quiet.contains(calendar::local_time(&tz, t));
            let Some((opened, closes)) = quiet_window_around(quiet, &tz, now) else {
                prop_assert!(!inside(now));
                return Ok(());
            };
            prop_assert!(opened <= now && now < closes, "{opened} {now} {closes}");
            prop_assert!(inside(opened) && !inside(calendar::just_before(opened)));
            prop_assert!(!inside(closes) && inside(calendar::just_before(closes)));
            // Clock changes and the windows' edges fall on whole minutes, so the clock stays in
            // or out of the window for a whole minute at a time: checking each minute suffices.
            let mut minute = Timestamp::from_second(opened.as_second() - opened.as_second() % 60)
                .unwrap();
            while minute < closes {
                if minute >= opened {
                    prop_assert!(inside(minute), "left the window at {minute}");
                }
                minute += MINUTE;
            }
        }
    }
}
