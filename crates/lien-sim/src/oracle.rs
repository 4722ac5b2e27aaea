//! The oracle: from a borrower's ground truth alone, when their phone may be restricted or
//! locked, and how far.
//!
//! It is written from the policy's words, not from `lien_core::decide` (which it never calls,
//! nor any of its helpers): the settings of the preset are read as data, and the rule is
//! re-stated here, as issue 20 states it:
//!
//! - the arrears at an instant are what fell late (an installment is late from the local
//!   midnight after its due date) minus what the server had been told was paid by then, net of
//!   chargebacks; days past due count from the due date of the oldest installment the payments
//!   do not cover, day `n` starting at local midnight `n` days after it;
//! - an episode of arrears starts when something falls late with nothing late before, and ends
//!   when nothing is late; each notice of the policy becomes available on its day past due
//!   (never before the previous notice's cure period has ended), and is *served* when the
//!   borrower's phone first begins to show a newly received screen with the arrears at or
//!   after that (read from the phone's own record, not from the server: a screen still on
//!   display from before cannot tell of a notice that did not exist when it came); its cure
//!   period ends `cure_days` local days after, at the same local time;
//! - a step of the policy may restrict only from its day past due, the policy's minimum, the
//!   end of the grace period and every notice's cure period, and only while the arrears reach
//!   the policy's percentage of the largest installment; never under a hardship pause or a
//!   provisional unlock, never before enrollment;
//! - a SIM change, under a policy that restricts for one, allows a restriction (no lock) from
//!   `after_days` local days after the phone first began to show a newly received screen
//!   telling of it, at the same local time, until the financier accepts it; under the other
//!   rules it allows nothing;
//! - under a dispute freeze (an appeal open) the phone may get better but not worse: nothing
//!   more than was allowed just before the appeal opened, nor than the schedule has allowed
//!   since (a cap that only falls; a pause or provisional unlock frees the phone while it
//!   lasts without lowering the cap, so the lock that stood before the appeal may come back
//!   when the appeal's provisional unlock ends);
//! - inside the quiet hours nothing may be more restrictive than the least the rule allowed
//!   since just before the window opened (so a device enrolled inside them stays free until
//!   they end);
//! - a manual lock allows a lock while it stands, whatever the schedule, the freeze or the
//!   quiet hours say, as an explicit act with a reason; only a provisional unlock sets it
//!   aside while it lasts (a hardship pause frees the phone from the schedule, not from the
//!   financier's explicit lock: `lien_core::decide`'s documented precedence, and DESIGN.md's
//!   "or by an explicit, audited action with a reason").
//! - once the device's release is final (the payoff's, as the payment's command returned it),
//!   nothing may be restricted, whatever override stands.
//!
//! Each choice it must make where the words leave room leans towards the server (a notice
//! served at the first screen, not at the phone's acknowledgement of it; the earliest availability
//! in the episode): a wrongful minute it reports is one no reading of the rule allows.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use std::collections::BTreeSet;

use lien_core::{PolicySettings, SimChangeRule};

/// The instant `date` at local `time` in `tz`.
pub fn local(tz: &TimeZone, date: Date, time: Time) -> Timestamp {
    tz.to_ambiguous_timestamp(date.to_datetime(time))
        .compatible()
        .expect("dates in range")
}

fn midnight(tz: &TimeZone, date: Date) -> Timestamp {
    local(tz, date, Time::midnight())
}

/// The same local time `days` later.
fn add_local_days(tz: &TimeZone, at: Timestamp, days: u32) -> Timestamp {
    let dt = tz.to_datetime(at);
    let later = dt.date() + i64::from(days).days();
    local(tz, later, dt.time())
}

/// What the oracle reads of one borrower.
pub struct Case<'a> {
    /// The policy as the financier chose it.
    pub settings: &'a PolicySettings,
    /// The plan's time zone.
    pub tz: &'a TimeZone,
    /// Due dates and amounts.
    pub installments: &'a [(Date, i64)],
    /// Enrollment.
    pub enrolled: Timestamp,
    /// The end of the run.
    pub end: Timestamp,
    /// Money the server was told of, at the instant it was told: payments positive, their
    /// chargebacks negative; each payment once, however many callbacks carried it.
    pub money: &'a [(Timestamp, i64)],
    /// Spans in which nothing may be restricted (hardship pauses, provisional unlocks).
    pub reprieves: &'a [(Timestamp, Timestamp)],
    /// Of them, the provisional unlocks: they lift a manual lock too.
    pub unlocks: &'a [(Timestamp, Timestamp)],
    /// Dispute freezes, from an appeal's opening to its answer (`None`: still open).
    pub freezes: &'a [(Timestamp, Option<Timestamp>)],
    /// Manual locks, from the lock to the unlock (`None`: still in force).
    pub manual_locks: &'a [(Timestamp, Option<Timestamp>)],
    /// SIM changes, from the new card in the phone to the financier's acceptance (`None`:
    /// never accepted).
    pub sim_changes: &'a [(Timestamp, Option<Timestamp>)],
    /// Each instant the phone began to show a newly received screen with the arrears.
    pub arrears_screens: &'a [Timestamp],
    /// Each instant the phone began to show a newly received screen telling of a SIM change.
    pub sim_screens: &'a [Timestamp],
    /// When the device's release became final, if it did: released is final, and frees the
    /// phone from every override too.
    pub released: Option<Timestamp>,
}

/// What holds a phone below what the schedule alone would allow, for the report's breakdown
/// of wrongful minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Why {
    /// Nothing holds it: the schedule (arrears, days past due, thresholds) says this much.
    Schedule,
    /// A notice of the episode not yet served (shown on the phone), or its cure period.
    Notice,
    /// A hardship pause or a provisional unlock.
    Reprieve,
    /// The quiet hours.
    Quiet,
    /// A dispute freeze: no worse than before it, nor than since.
    Freeze,
    /// Nothing holds it, and a manual lock allows more than the schedule.
    ManualLock,
}

impl Why {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Why::Schedule => "the schedule",
            Why::Notice => "a notice not yet shown or its cure period",
            Why::Reprieve => "a pause or provisional unlock",
            Why::Quiet => "the quiet hours",
            Why::Freeze => "a dispute freeze",
            Why::ManualLock => "a manual lock",
        }
    }
}

/// The oracle's answer: from each instant, the most severe restriction allowed (0: none,
/// 2: restricted, 3: locked), until the next, and what holds it there.
pub type Allowed = Vec<(Timestamp, u8, Why)>;

/// Decides the allowed severity over the whole run.
pub fn allowed(case: &Case<'_>) -> Allowed {
    let s = case.settings;
    let tz = case.tz;
    let late_from: Vec<Timestamp> = case
        .installments
        .iter()
        .map(|(due, _)| midnight(tz, *due + 1.days()))
        .collect();
    let largest = case.installments.iter().map(|(_, a)| *a).max().unwrap_or(0);
    // Arrears count when arrears * 100 >= largest * percent.
    let percent = i128::from(s.min_arrears_percent);
    let largest = i128::from(largest);
    let floor_day = s.min_days_past_due.max(s.grace_days + 1);

    // The instants at which anything the rule reads can change, but for the notices', which
    // are found as the walk goes.
    let mut points: Vec<Timestamp> = vec![case.enrolled, case.end];
    points.extend(late_from.iter().copied());
    points.extend(case.money.iter().map(|(t, _)| *t));
    for (from, until) in case.reprieves {
        points.push(*from);
        points.push(*until);
    }
    for spans in [case.freezes, case.manual_locks, case.sim_changes] {
        for (from, until) in spans {
            points.push(*from);
            points.extend(*until);
        }
    }
    points.extend(case.sim_screens.iter().copied());
    points.extend(case.released);
    let mut days: Vec<u32> = vec![floor_day, s.grace_days + 1];
    days.extend(s.escalations.iter().map(|e| e.at_days_past_due));
    days.extend(s.notices.iter().map(|n| n.at_days_past_due));
    for (due, _) in case.installments {
        for n in &days {
            points.push(midnight(tz, *due + i64::from(*n).days()));
        }
    }
    let windows = quiet_windows(s, tz, case.enrolled, case.end);
    for (open, close) in &windows {
        points.push(*open);
        points.push(*close);
    }
    points.extend(case.arrears_screens.iter().copied());
    points.retain(|t| *t >= case.enrolled && *t <= case.end);
    points.sort_unstable();
    points.dedup();

    let mut extra: BTreeSet<Timestamp> = BTreeSet::new();
    let mut out: Allowed = Vec::new();
    let mut episode: Option<Episode> = None;
    // What was allowed just before the instant at hand, but for the quiet hours' cap: where
    // a freeze or a quiet window's cap starts.
    let mut previous = 0u8;
    let mut window: Option<usize> = None;
    let mut cap = 0u8;
    let mut freeze: Option<usize> = None;
    let mut freeze_cap = 0u8;
    let mut next_static = 0;
    loop {
        // The next point: a static one or one found on the way.
        let from_static = points.get(next_static).copied();
        let from_extra = extra.first().copied();
        let t = match (from_static, from_extra) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => break,
        };
        if from_static == Some(t) {
            next_static += 1;
        }
        if from_extra == Some(t) {
            extra.pop_first();
        }
        if t >= case.end {
            break;
        }
        if case.released.is_some_and(|r| t >= r) {
            if out.last().map(|(_, a, _)| *a) != Some(0) {
                out.push((t, 0, Why::Schedule));
            }
            break;
        }

        // The standing at `t`.
        let paid: i128 = case
            .money
            .iter()
            .filter(|(at, _)| *at <= t)
            .map(|(_, m)| i128::from(*m))
            .sum();
        let mut cumulative = 0i128;
        let mut late = 0i128;
        let mut since = None;
        for (k, (due, amount)) in case.installments.iter().enumerate() {
            cumulative += i128::from(*amount);
            if late_from[k] <= t {
                late = cumulative;
                if since.is_none() && cumulative > paid {
                    since = Some(*due);
                }
            }
        }
        let arrears = (late - paid).max(0);

        // What the arrears allow (`sched`), and what they would with every notice served and
        // cured (`scheduled`), under no pause or provisional unlock.
        let (sched, scheduled) = match since {
            None => {
                episode = None;
                (0, 0)
            }
            Some(since) => {
                let ep = episode.get_or_insert_with(|| Episode::new(since, t));
                let day = |n: u32| midnight(tz, since + i64::from(n).days());
                let first_day = |n: u32| midnight(tz, ep.since + i64::from(n).days());
                // Notices: each served at the first screen with the arrears from when it is
                // available.
                let mut cured_from = Some(Timestamp::MIN);
                let mut previous_cure = Timestamp::MIN;
                for (k, notice) in s.notices.iter().enumerate() {
                    let available = first_day(notice.at_days_past_due)
                        .max(previous_cure)
                        .max(ep.began);
                    if ep.served.len() <= k {
                        match first_shown(case.arrears_screens, available) {
                            Some(served) => ep.served.push(served),
                            None => break,
                        }
                    }
                    let served = ep.served[k];
                    let cure_ends = add_local_days(tz, served, notice.cure_days);
                    for p in [available, served, cure_ends] {
                        if p > t {
                            extra.insert(p);
                        }
                    }
                    previous_cure = cure_ends;
                    cured_from = cured_from.map(|c: Timestamp| c.max(cure_ends));
                }
                if ep.served.len() < s.notices.len() {
                    cured_from = None;
                }
                let mut scheduled = 0;
                let mut raw = 0;
                if arrears > 0 && arrears * 100 >= largest * percent {
                    for e in &s.escalations {
                        let severity = match e.restriction {
                            lien_core::Restriction::Restricted => 2,
                            lien_core::Restriction::Locked => 3,
                        };
                        let due = day(e.at_days_past_due.max(floor_day));
                        if due <= t {
                            scheduled = scheduled.max(severity);
                        }
                        let Some(cured) = cured_from else { continue };
                        let starts = due.max(cured);
                        if starts > t {
                            extra.insert(starts);
                        } else {
                            raw = raw.max(severity);
                        }
                    }
                }
                (raw, scheduled)
            }
        };
        let (sim, sim_scheduled) = sim_change(case, t, &mut extra);
        let sched = sched.max(sim);
        let scheduled = scheduled.max(sim_scheduled);
        let reprieve = in_span(case.reprieves, t);
        let raw = if reprieve { 0 } else { sched };
        let why = if raw >= scheduled {
            Why::Schedule
        } else if reprieve {
            Why::Reprieve
        } else {
            Why::Notice
        };

        // A manual lock stands until it is lifted; a provisional unlock sets it aside while
        // it lasts. Neither the freeze nor the quiet hours cap it: it is an explicit, audited
        // act.
        let lock_stands = in_open_span(case.manual_locks, t).is_some();
        let manual = if lock_stands && !in_span(case.unlocks, t) {
            3
        } else {
            0
        };

        // The dispute freeze's cap: what was allowed just before the freeze began, falling
        // as the schedule (or a manual lock) allows less, never rising. A pause or
        // provisional unlock lowers what is allowed while it lasts, not the cap: the lock
        // that stood before the appeal comes back when its provisional unlock ends ("the
        // lock will not get worse while the appeal is open", as the appeal's page says).
        let frozen = match in_open_span(case.freezes, t) {
            Some(f) => {
                if freeze != Some(f) {
                    freeze = Some(f);
                    freeze_cap = previous;
                }
                freeze_cap = freeze_cap.min(sched.max(if lock_stands { 3 } else { 0 }));
                raw.min(freeze_cap)
            }
            None => {
                freeze = None;
                raw
            }
        };

        // The quiet hours' cap: no more than the least allowed since just before the window
        // opened (a manual lock counts, as it is what the phone showed).
        let combined = frozen.max(manual);
        let inside = windows
            .iter()
            .position(|(open, close)| *open <= t && t < *close);
        let scheduled_allowed = match inside {
            Some(w) => {
                if window != Some(w) {
                    window = Some(w);
                    cap = previous;
                }
                cap = cap.min(combined);
                frozen.min(cap)
            }
            None => {
                window = None;
                frozen
            }
        };
        previous = combined;
        let allowed = scheduled_allowed.max(manual);
        let why = if manual > scheduled_allowed {
            Why::ManualLock
        } else if scheduled_allowed < frozen {
            Why::Quiet
        } else if frozen < raw {
            Why::Freeze
        } else {
            why
        };
        if out.last().map(|(_, a, w)| (*a, *w)) != Some((allowed, why)) {
            out.push((t, allowed, why));
        }
    }
    if out.is_empty() {
        out.push((case.enrolled, 0, Why::Schedule));
    }
    out
}

/// Whether `t` is inside one of `spans`.
fn in_span(spans: &[(Timestamp, Timestamp)], t: Timestamp) -> bool {
    spans.iter().any(|(a, b)| *a <= t && t < *b)
}

/// Which of `spans` (an end of `None`: open to the end of the run) holds `t`, if any.
fn in_open_span(spans: &[(Timestamp, Option<Timestamp>)], t: Timestamp) -> Option<usize> {
    spans
        .iter()
        .position(|(a, b)| *a <= t && b.is_none_or(|b| t < b))
}

/// What a SIM change allows at `t`, and what it would once told: under a restricting rule, a
/// restriction from `after_days` local days after the phone first began to show a newly
/// received screen telling of the change, at the same local time, until the financier accepts
/// it; nothing under the other rules.
fn sim_change(case: &Case<'_>, t: Timestamp, extra: &mut BTreeSet<Timestamp>) -> (u8, u8) {
    let SimChangeRule::Restrict { after_days } = case.settings.sim_change else {
        return (0, 0);
    };
    let Some(i) = in_open_span(case.sim_changes, t) else {
        return (0, 0);
    };
    let Some(told) = first_shown(case.sim_screens, case.sim_changes[i].0) else {
        return (0, 2);
    };
    let starts = add_local_days(case.tz, told, after_days);
    if starts > t {
        extra.insert(starts);
        (0, 2)
    } else {
        (2, 2)
    }
}

/// One episode of arrears, as the walk knows it.
struct Episode {
    /// The oldest late due date when it began.
    since: Date,
    /// When it began: a notice is served by a screen shown in the episode, not before.
    began: Timestamp,
    /// When each notice was served.
    served: Vec<Timestamp>,
}

impl Episode {
    fn new(since: Date, began: Timestamp) -> Episode {
        Episode {
            since,
            began,
            served: Vec::new(),
        }
    }
}

/// The first instant at or after `from` at which the phone began to show a new screen with
/// the arrears.
fn first_shown(arrears_screens: &[Timestamp], from: Timestamp) -> Option<Timestamp> {
    let at = arrears_screens.partition_point(|t| *t < from);
    arrears_screens.get(at).copied()
}

/// The quiet windows that meet the run, in order.
fn quiet_windows(
    s: &PolicySettings,
    tz: &TimeZone,
    from: Timestamp,
    to: Timestamp,
) -> Vec<(Timestamp, Timestamp)> {
    let Some(q) = s.quiet_hours else {
        return Vec::new();
    };
    let first = tz.to_datetime(from).date() - 1.days();
    let last = tz.to_datetime(to).date() + 1.days();
    let mut windows = Vec::new();
    let mut date = first;
    while date <= last {
        let open = local(tz, date, q.start);
        let close_date = if q.start < q.end {
            date
        } else {
            date + 1.days()
        };
        let close = local(tz, close_date, q.end);
        windows.push((open, close));
        date += 1.days();
    }
    windows
}

/// The allowed severity at `t`.
pub fn at(allowed: &Allowed, t: Timestamp) -> u8 {
    why_at(allowed, t).0
}

/// The allowed severity at `t`, and what holds it there.
pub fn why_at(allowed: &Allowed, t: Timestamp) -> (u8, Why) {
    let i = allowed.partition_point(|(from, _, _)| *from <= t);
    if i == 0 {
        (0, Why::Schedule)
    } else {
        (allowed[i - 1].1, allowed[i - 1].2)
    }
}

/// How long, in whole minutes (rounded up), from `a` to `b`.
pub fn minutes(a: Timestamp, b: Timestamp) -> i64 {
    let d: SignedDuration = b.duration_since(a);
    (d.as_secs() + 59).div_euclid(60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use lien_core::Preset;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// A Kenya plan of one installment due 10 January, never paid, on a phone that shows the
    /// reminder at 09:00 local on the 11th (06:00 UTC).
    fn kenya(arrears_screens: &[Timestamp], reprieves: &[(Timestamp, Timestamp)]) -> Allowed {
        kenya_with(arrears_screens, reprieves, &[], &[], &[])
    }

    #[test]
    fn the_cure_period_runs_from_the_screen_and_the_lock_waits_for_the_quiet_hours_to_end() {
        let shown = [at("2027-01-11T06:00:00Z")];
        let allowed = kenya(&shown, &[]);
        // Day 4 starts at midnight on the 14th, but the notice was served at 09:00 on the
        // 11th: three local days later is 09:00 on the 14th (06:00 UTC), outside quiet hours.
        assert_eq!(super::at(&allowed, at("2027-01-14T05:59:00Z")), 0);
        assert_eq!(super::at(&allowed, at("2027-01-14T06:00:00Z")), 3);
    }

    #[test]
    fn a_phone_that_never_showed_the_notice_may_not_be_locked() {
        let allowed = kenya(&[], &[]);
        assert_eq!(super::at(&allowed, at("2027-01-31T12:00:00Z")), 0);
    }

    #[test]
    fn a_screen_received_before_the_notice_existed_does_not_serve_it() {
        // The phone got a token showing arrears on the 9th (of an earlier episode, say), kept
        // it on screen, and received nothing newer.
        let allowed = kenya(&[at("2027-01-09T06:00:00Z")], &[]);
        assert_eq!(super::at(&allowed, at("2027-01-31T12:00:00Z")), 0);
        // A new one on the 20th serves it: locked three local days later.
        let allowed = kenya(
            &[at("2027-01-09T06:00:00Z"), at("2027-01-20T06:00:00Z")],
            &[],
        );
        assert_eq!(super::at(&allowed, at("2027-01-23T05:59:00Z")), 0);
        assert_eq!(super::at(&allowed, at("2027-01-23T06:00:00Z")), 3);
    }

    #[test]
    fn a_pause_frees_the_phone_and_its_end_in_the_quiet_hours_waits_for_the_morning() {
        let shown = [at("2027-01-11T06:00:00Z")];
        // Paused from the 15th at 09:00 local to the 18th at 22:00 local (19:00 UTC).
        let pause = [(at("2027-01-15T06:00:00Z"), at("2027-01-18T19:00:00Z"))];
        let allowed = kenya(&shown, &pause);
        assert_eq!(super::at(&allowed, at("2027-01-15T05:00:00Z")), 3);
        assert_eq!(super::at(&allowed, at("2027-01-16T12:00:00Z")), 0);
        // 22:00 is inside the quiet hours (20:00 to 07:00): locked again only at 07:00.
        assert_eq!(super::at(&allowed, at("2027-01-18T20:00:00Z")), 0);
        assert_eq!(super::at(&allowed, at("2027-01-19T04:00:00Z")), 3);
    }

    /// The same Kenya plan with the screens and overrides given.
    fn kenya_with(
        arrears_screens: &[Timestamp],
        reprieves: &[(Timestamp, Timestamp)],
        unlocks: &[(Timestamp, Timestamp)],
        freezes: &[(Timestamp, Option<Timestamp>)],
        manual_locks: &[(Timestamp, Option<Timestamp>)],
    ) -> Allowed {
        let settings = Preset::Kenya.settings();
        let tz = TimeZone::get("Africa/Nairobi").unwrap();
        allowed(&Case {
            settings: &settings,
            tz: &tz,
            installments: &[(date(2027, 1, 10), 100_000)],
            enrolled: at("2027-01-01T09:00:00Z"),
            end: at("2027-02-01T00:00:00Z"),
            money: &[],
            reprieves,
            unlocks,
            freezes,
            manual_locks,
            sim_changes: &[],
            arrears_screens,
            sim_screens: &[],
            released: None,
        })
    }

    /// The reminder shown at 09:00 local on the 11th.
    const SHOWN: &str = "2027-01-11T06:00:00Z";

    #[test]
    fn an_appeal_opened_before_the_lock_holds_it_off_and_one_opened_after_keeps_it() {
        // Opened on the 13th, before the lock of the 14th, answered on the 20th.
        let freeze = [(at("2027-01-13T06:00:00Z"), Some(at("2027-01-20T06:00:00Z")))];
        let allowed = kenya_with(&[at(SHOWN)], &[], &[], &freeze, &[]);
        assert_eq!(super::at(&allowed, at("2027-01-15T12:00:00Z")), 0);
        assert_eq!(
            why_at(&allowed, at("2027-01-15T12:00:00Z")),
            (0, Why::Freeze)
        );
        assert_eq!(super::at(&allowed, at("2027-01-20T06:00:00Z")), 3);
        // Opened on the 15th, locked already: the lock stays, and comes back after the
        // appeal's provisional unlock (the 18th to the 19th) while the appeal is open.
        let freeze = [(at("2027-01-15T06:00:00Z"), None)];
        let unlock = [(at("2027-01-18T06:00:00Z"), at("2027-01-19T06:00:00Z"))];
        let allowed = kenya_with(&[at(SHOWN)], &unlock, &unlock, &freeze, &[]);
        assert_eq!(super::at(&allowed, at("2027-01-16T12:00:00Z")), 3);
        assert_eq!(super::at(&allowed, at("2027-01-18T12:00:00Z")), 0);
        assert_eq!(super::at(&allowed, at("2027-01-19T06:00:00Z")), 3);
    }

    #[test]
    fn a_manual_lock_holds_in_the_quiet_hours_and_a_pause_but_not_a_provisional_unlock() {
        // Locked by hand on the 2nd at 23:00 local (20:00 UTC), inside the quiet hours, with
        // nothing owed; a pause from the 3rd, a provisional unlock on the 5th; lifted the 6th.
        let lock = [(at("2027-01-02T20:00:00Z"), Some(at("2027-01-06T06:00:00Z")))];
        let pause = (at("2027-01-03T06:00:00Z"), at("2027-01-04T06:00:00Z"));
        let unlock = (at("2027-01-05T06:00:00Z"), at("2027-01-05T12:00:00Z"));
        let allowed = kenya_with(&[at(SHOWN)], &[pause, unlock], &[unlock], &[], &lock);
        assert_eq!(
            why_at(&allowed, at("2027-01-02T20:00:00Z")),
            (3, Why::ManualLock)
        );
        assert_eq!(super::at(&allowed, at("2027-01-03T12:00:00Z")), 3);
        assert_eq!(super::at(&allowed, at("2027-01-05T08:00:00Z")), 0);
        assert_eq!(super::at(&allowed, at("2027-01-05T12:00:00Z")), 3);
        assert_eq!(super::at(&allowed, at("2027-01-06T06:00:00Z")), 0);
    }

    #[test]
    fn a_sim_change_restricts_only_days_after_a_screen_told_of_it_and_until_accepted() {
        // Strict dealer (restrict 2 days after), nothing owed: the card changed on the 2nd,
        // the phone showed the news on the 3rd at 10:00 local (15:00 UTC), accepted the 9th.
        let settings = Preset::StrictDealer.settings();
        let tz = TimeZone::get("America/New_York").unwrap();
        let told = [at("2027-01-03T15:00:00Z")];
        let allowed = allowed(&Case {
            settings: &settings,
            tz: &tz,
            installments: &[(date(2027, 2, 10), 100_000)],
            enrolled: at("2027-01-01T15:00:00Z"),
            end: at("2027-02-01T00:00:00Z"),
            money: &[],
            reprieves: &[],
            unlocks: &[],
            freezes: &[],
            manual_locks: &[],
            sim_changes: &[(at("2027-01-02T15:00:00Z"), Some(at("2027-01-09T15:00:00Z")))],
            arrears_screens: &[],
            sim_screens: &told,
            released: None,
        });
        assert_eq!(
            why_at(&allowed, at("2027-01-05T14:59:00Z")),
            (0, Why::Notice)
        );
        assert_eq!(super::at(&allowed, at("2027-01-05T15:00:00Z")), 2);
        assert_eq!(super::at(&allowed, at("2027-01-09T15:00:00Z")), 0);
    }
}
