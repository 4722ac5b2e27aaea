//! Local calendar arithmetic in a plan's time zone.
//!
//! Installments fall due on local dates and days past due are counted in local days, so a
//! borrower in Nairobi is late from midnight in Nairobi, not in UTC. A local time skipped by a
//! daylight-saving gap resolves to the instant the gap ends, the first that exists after it;
//! dates beyond the supported range saturate instead of failing, which keeps the decision
//! function total.

use jiff::civil::{Date, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Span, Timestamp};

/// The local date at instant `at`.
pub(crate) fn local_date(tz: &TimeZone, at: Timestamp) -> Date {
    tz.to_datetime(at).date()
}

/// The local time of day at instant `at`.
pub(crate) fn local_time(tz: &TimeZone, at: Timestamp) -> Time {
    tz.to_datetime(at).time()
}

/// The date `days` after `date`, saturating at the ends of the supported range.
pub(crate) fn add_days(date: Date, days: i64) -> Date {
    let saturated = if days < 0 { Date::MIN } else { Date::MAX };
    Span::new()
        .try_days(days)
        .and_then(|span| date.checked_add(span))
        .unwrap_or(saturated)
}

/// The first instant of the local day `date`.
pub(crate) fn start_of_day(tz: &TimeZone, date: Date) -> Timestamp {
    at_local(tz, date, Time::midnight())
}

/// The instant the local clock shows `time` on `date`. A time skipped by a daylight-saving gap
/// gives the instant the gap ends; a time shown twice gives the first of the two.
pub(crate) fn at_local(tz: &TimeZone, date: Date, time: Time) -> Timestamp {
    let saturated = if date.year() < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    };
    let local = date.to_datetime(time);
    let ambiguous = tz.to_ambiguous_timestamp(local);
    if let AmbiguousOffset::Gap { before, after } = ambiguous.offset() {
        // Read with the later offset, the skipped time lands before the transition; the next
        // transition from there is the end of the gap.
        let before_gap = [before, after]
            .into_iter()
            .filter_map(|offset| offset.to_timestamp(local).ok())
            .min();
        if let Some(transition) = before_gap.and_then(|t| tz.following(t).next()) {
            return transition.timestamp();
        }
    }
    ambiguous.compatible().unwrap_or(saturated)
}

/// Every instant at which the local clock shows `time` on `date`: one on most days, both when
/// daylight saving shows the time twice, and the end of the gap when it skips the time.
pub(crate) fn instants_at_local(
    tz: &TimeZone,
    date: Date,
    time: Time,
) -> impl Iterator<Item = Timestamp> {
    let local = date.to_datetime(time);
    let (first, second) = match tz.to_ambiguous_timestamp(local).offset() {
        AmbiguousOffset::Unambiguous { offset } => (offset.to_timestamp(local).ok(), None),
        AmbiguousOffset::Fold { before, after } => (
            before.to_timestamp(local).ok(),
            after.to_timestamp(local).ok(),
        ),
        AmbiguousOffset::Gap { .. } => (Some(at_local(tz, date, time)), None),
    };
    first.into_iter().chain(second)
}

/// The instants in `[from, to]` at which the zone's offset changes.
pub(crate) fn transitions_between(
    tz: &TimeZone,
    from: Timestamp,
    to: Timestamp,
) -> impl Iterator<Item = Timestamp> {
    tz.following(just_before(from))
        .map(|transition| transition.timestamp())
        .take_while(move |&t| t <= to)
}

/// The instant `days` local days after `at`, at the same local time (a time skipped by a
/// daylight-saving gap moves to the gap's end), saturating at the end of the supported range.
pub(crate) fn add_local_days(tz: &TimeZone, at: Timestamp, days: u32) -> Timestamp {
    let local = tz.to_datetime(at);
    at_local(tz, add_days(local.date(), i64::from(days)), local.time()).max(at)
}

/// The last instant before `at` (time is counted in nanoseconds), or `at` at the start of time.
pub(crate) fn just_before(at: Timestamp) -> Timestamp {
    at.checked_sub(SignedDuration::from_nanos(1)).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn a_time_skipped_by_daylight_saving_resolves_to_the_end_of_the_gap() {
        let new_york = TimeZone::get("America/New_York").unwrap();
        // On 8 March 2026 New York's clocks jump from 02:00 EST to 03:00 EDT (07:00 UTC).
        let t = at_local(&new_york, date(2026, 3, 8), Time::constant(2, 30, 0, 0));
        assert_eq!(t.to_string(), "2026-03-08T07:00:00Z");
        let t = at_local(&new_york, date(2026, 3, 9), Time::constant(2, 30, 0, 0));
        assert_eq!(t.to_string(), "2026-03-09T06:30:00Z");
    }

    #[test]
    fn day_arithmetic_saturates_instead_of_panicking() {
        assert_eq!(add_days(date(2026, 1, 1), i64::from(u32::MAX)), Date::MAX);
        assert_eq!(add_days(date(2026, 1, 1), -i64::from(u32::MAX)), Date::MIN);
        assert_eq!(add_days(date(2026, 1, 31), 1), date(2026, 2, 1));
    }
}
