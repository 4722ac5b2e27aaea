//! The time the caller passes in: the agent never reads a clock itself.

use std::time::Duration;

/// "Now", as the platform reads it and hands it to the agent.
///
/// The two clocks serve different purposes. `mono` only moves forward while the phone is on
/// and the user cannot set it, so every duration the agent enforces (the lease, the offline
/// unlock window, the wait after wrong codes) is measured with it. `wall` is the user-settable
/// clock; the agent uses it only as a fallback for the check-in's `sent_at` before it has heard
/// the server's time in this boot, so moving it changes nothing that the agent enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Time since boot (e.g. Android's `elapsedRealtime`); restarts at zero on every boot.
    pub mono: Duration,
    /// Wall clock, Unix seconds.
    pub wall: i64,
}

/// A Unix time as `YYYY-MM-DD HH:MM UTC`, for screens. The platform may render instants in the
/// borrower's time zone instead; the model keeps the raw seconds for that.
pub fn format_utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        (secs % 3600) / 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A duration as the borrower reads it: "2 days 3 hours", "5 minutes", "40 seconds".
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    match s {
        0..60 => plural(s, "second"),
        60..3600 => plural(s.div_ceil(60), "minute"),
        3600..86_400 => {
            let (h, m) = (s / 3600, (s % 3600) / 60);
            if m == 0 {
                plural(h, "hour")
            } else {
                format!("{} {}", plural(h, "hour"), plural(m, "minute"))
            }
        }
        _ => {
            let (days, h) = (s / 86_400, (s % 86_400) / 3600);
            if h == 0 {
                plural(days, "day")
            } else {
                format!("{} {}", plural(days, "day"), plural(h, "hour"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_durations_read_as_people_write_them() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(1_770_285_600), "2026-02-05 10:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_duration(Duration::from_secs(59)), "59 seconds");
        assert_eq!(format_duration(Duration::from_secs(61)), "2 minutes");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2 hours");
        assert_eq!(
            format_duration(Duration::from_secs(3 * 86_400 + 3600)),
            "3 days 1 hour"
        );
    }
}
