//! Dates and times as a borrower reads them: in the plan's time zone (the borrower's), with the
//! month's name from the catalogue and the zone's abbreviation, e.g. "12 January 2026, 14:00
//! EAT". The JSON API keeps RFC 3339 in UTC; only the pages turn instants into local words.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::catalog::message;
use super::lang::Lang;

/// The catalogue's month names, January first.
const MONTHS: [&str; 12] = [
    "month-1", "month-2", "month-3", "month-4", "month-5", "month-6", "month-7", "month-8",
    "month-9", "month-10", "month-11", "month-12",
];

/// A calendar date in words: "12 January 2026".
pub fn date(lang: Lang, date: Date) -> String {
    let month = MONTHS[usize::from(date.month().unsigned_abs()).clamp(1, 12) - 1];
    message(
        lang,
        "format-date",
        &[
            ("day", &date.day().to_string()),
            ("month", &message(lang, month, &[])),
            ("year", &date.year().to_string()),
        ],
    )
}

/// An instant in `zone`, in words: "12 January 2026, 14:00 EAT".
pub fn date_time(lang: Lang, at: Timestamp, zone: &TimeZone) -> String {
    let local = at.to_zoned(zone.clone());
    message(
        lang,
        "format-date-time",
        &[
            ("date", &date(lang, local.date())),
            ("time", &local.strftime("%H:%M").to_string()),
            // The zone's abbreviation where it has one ("EAT", "IST"), else its offset.
            ("zone", &local.strftime("%Z").to_string()),
        ],
    )
}

/// A plan's time zone, from the plan's JSON as stored; UTC should it not name one (a stored
/// plan was checked when it was written, so this does not happen).
pub fn plan_zone(plan_json: &str) -> TimeZone {
    serde_json::from_str::<crate::wire::PlanJson>(plan_json)
        .ok()
        .and_then(|plan| TimeZone::get(&plan.time_zone).ok())
        .unwrap_or(TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_is_written_in_the_borrowers_zone_and_language() {
        let at: Timestamp = "2026-01-12T11:00:00Z".parse().unwrap();
        let nairobi = TimeZone::get("Africa/Nairobi").unwrap();
        assert_eq!(
            date_time(Lang::En, at, &nairobi),
            "12 January 2026, 14:00 EAT"
        );
        assert_eq!(
            date_time(Lang::Sw, at, &nairobi),
            "12 Januari 2026, saa 14:00 EAT"
        );
        let kolkata = TimeZone::get("Asia/Kolkata").unwrap();
        assert_eq!(
            date_time(Lang::Hi, at, &kolkata),
            "12 जनवरी 2026, 16:30 IST"
        );
        assert_eq!(
            date(Lang::En, "2026-12-01".parse().unwrap()),
            "1 December 2026"
        );
    }

    #[test]
    fn a_plans_zone_is_read_from_its_json() {
        let plan = r#"{"currency":"KES","time_zone":"Africa/Nairobi","installments":[]}"#;
        assert_eq!(plan_zone(plan).iana_name(), Some("Africa/Nairobi"));
        assert_eq!(plan_zone("{}"), TimeZone::UTC);
    }
}
