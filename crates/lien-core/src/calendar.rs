//! Local calendar arithmetic in a plan's time zone.
//!
//! Installments fall due on local dates and days past due are counted in local days, so a
//! borrower in Nairobi is late from midnight in Nairobi, not in UTC. Daylight-saving gaps
//! resolve to the first instant that exists, and dates beyond the supported range saturate
//! instead of failing, which keeps the decision function total.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

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
    date.checked_add(Span::new().days(days))
        .unwrap_or(if days < 0 { Date::MIN } else { Date::MAX })
}

/// The first instant of the local day `date`.
pub(crate) fn start_of_day(tz: &TimeZone, date: Date) -> Timestamp {
    at_local(tz, date, Time::midnight())
}

/// The instant the local clock shows `time` on `date`; in a daylight-saving gap the
/// first instant after it.
pub(crate) fn at_local(tz: &TimeZone, date: Date, time: Time) -> Timestamp {
    tz.to_ambiguous_timestamp(date.to_datetime(time))
        .compatible()
        .unwrap_or(if date.year() < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
}
