//! `lien policy`: shows the lock policy presets, so that a financier can see exactly when a
//! late borrower is reminded, restricted or locked before choosing one.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use lien_core::{PayoffRelease, Preset, Restriction};

/// Arguments of `lien policy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A preset to show in full; without it, every preset is listed.
    name: Option<String>,
}

/// Lists the presets, or shows the named one.
pub fn run(args: &Args) -> Result<()> {
    let out = match &args.name {
        None => list(),
        Some(name) => show(name)?,
    };
    print!("{out}");
    Ok(())
}

/// One line per preset: its name and summary.
fn list() -> String {
    let width = Preset::ALL
        .iter()
        .map(|p| p.name().len())
        .max()
        .unwrap_or(0);
    Preset::ALL
        .iter()
        .map(|p| format!("{:width$}  {}\n", p.name(), p.summary()))
        .collect()
}

/// Every setting of the named preset.
fn show(name: &str) -> Result<String> {
    // The name is checked here rather than by clap's `possible_values`, because clap exits
    // with status 2 on a bad value and Lien's commands fail with status 1.
    let Some(preset) = Preset::from_name(name) else {
        let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
        bail!(
            "unknown policy {name:?}; the presets are {}",
            names.join(", ")
        );
    };
    let s = preset.settings();

    // Writing to a String cannot fail, so the results of `writeln!` are ignored.
    let mut out = String::new();
    let _ = writeln!(out, "{}: {}", preset.name(), preset.summary());
    let _ = writeln!(out, "grace period:           {}", days(s.grace_days));
    let _ = writeln!(out, "minimum days past due:  {}", s.min_days_past_due);
    let _ = writeln!(
        out,
        "minimum arrears:        {}% of the largest installment",
        s.min_arrears_percent
    );
    if s.notices.is_empty() {
        let _ = writeln!(out, "notices:                none");
    } else {
        let _ = writeln!(out, "notices:");
        for notice in &s.notices {
            let _ = writeln!(
                out,
                "  day {}, then {} to pay",
                notice.at_days_past_due,
                days(notice.cure_days)
            );
        }
    }
    if s.escalations.is_empty() {
        let _ = writeln!(out, "escalations:            none (reminders only)");
    } else {
        let _ = writeln!(out, "escalations:");
        for step in &s.escalations {
            let _ = writeln!(
                out,
                "  day {}: {}",
                step.at_days_past_due,
                restriction(step.restriction)
            );
        }
    }
    let _ = writeln!(
        out,
        "offline lease:          {}, with a warning {} before it ends",
        days(s.lease_days),
        days(s.lease_warning_days)
    );
    let quiet = match s.quiet_hours {
        Some(q) => format!(
            "{:02}:{:02}-{:02}:{:02}",
            q.start.hour(),
            q.start.minute(),
            q.end.hour(),
            q.end.minute()
        ),
        None => "none".to_owned(),
    };
    let _ = writeln!(out, "quiet hours:            {quiet}");
    let payoff = match s.release_at_payoff {
        PayoffRelease::Automatic => "automatic, after the server's cancel window",
        PayoffRelease::ByHand => "by hand, by the financier",
    };
    let _ = writeln!(out, "release at payoff:      {payoff}");
    let emergency = if s.emergency_use_hours == 0 {
        "none".to_owned()
    } else {
        format!(
            "{} hours, at most once every {}, even offline",
            s.emergency_use_hours,
            days(s.emergency_use_every_days)
        )
    };
    let _ = writeln!(out, "emergency use:          {emergency}");
    Ok(out)
}

/// "1 day", "7 days".
fn days(n: u32) -> String {
    if n == 1 {
        "1 day".to_owned()
    } else {
        format!("{n} days")
    }
}

/// What a restriction means for the borrower, as the core documents it.
fn restriction(r: Restriction) -> &'static str {
    match r {
        Restriction::Restricted => {
            "restricted (no new apps, factory reset or developer options; calls, messages and payments work)"
        }
        Restriction::Locked => {
            "locked (lock screen; emergency calls and the payment app still work)"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_preset() {
        let out = list();
        for preset in Preset::ALL {
            assert!(out.contains(preset.name()), "{out}");
        }
        assert_eq!(out.lines().count(), Preset::ALL.len());
    }

    #[test]
    fn shows_the_india_draft() {
        let out = show("india-draft").unwrap();
        assert!(out.contains("minimum days past due:  90\n"), "{out}");
        assert!(out.contains("  day 60, then 21 days to pay\n"), "{out}");
        assert!(out.contains("  day 81, then 7 days to pay\n"), "{out}");
        assert!(out.contains("  day 90: locked"), "{out}");
        assert!(
            out.contains("quiet hours:            19:00-08:00\n"),
            "{out}"
        );
        assert!(out.contains("release at payoff:      automatic"), "{out}");
    }

    #[test]
    fn an_unknown_name_lists_the_presets() {
        let err = show("lenient").unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown policy \"lenient\"; the presets are strict-dealer, kenya, india-draft"
        );
    }
}
