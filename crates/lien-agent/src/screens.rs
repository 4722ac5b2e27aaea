//! What the borrower sees, as a model the platform renders in its own UI toolkit and
//! language. Each screen carries everything it needs; [`std::fmt::Display`] renders a plain
//! text version (the simulator's, and a fallback for a platform without its own).
//!
//! The lock screen always shows the way out: how much to pay, where and to whom, the actions
//! (check again, enter a code, emergency call) and the challenge for an offline code.

use std::fmt;
use std::time::Duration;

use lien_proto::{DeviceRestriction, WireMoney};

use crate::money::format_money;
use crate::time::{format_duration, format_utc};

/// The lock screen's title for a lock because of arrears.
pub const OVERDUE_TITLE: &str = "This device is locked due to an overdue installment payment";
/// The lock screen's title when the lease ran out.
pub const OFFLINE_TITLE: &str = "This device is locked: offline too long";
/// The notice on a lock or restricted screen while the agent enforces the last verified token
/// because its saved state failed its checks ([`crate::Mode::Recovering`]).
pub const RECOVERING_NOTICE: &str = "This phone's saved state could not be verified, so it keeps \
     its last verified status. Connect to the internet and tap Check again to restore it.";

/// What is on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// The phone is usable; a banner may say something about it.
    Normal {
        /// A note over the normal screens, if any.
        banner: Option<Banner>,
    },
    /// A reminder: nothing is limited yet.
    Reminder(Box<ReminderScreen>),
    /// Some functions are limited; the phone is otherwise usable.
    Restricted(Box<RestrictedScreen>),
    /// The lock screen.
    Locked(Box<LockScreen>),
}

/// A note shown over the normal screens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Banner {
    /// Not yet set up: the agent is waiting to reach the server for the first time.
    SettingUp,
    /// The lease is running out: go online within `remaining`.
    GoOnline {
        /// Time left (whole minutes) before the phone locks itself.
        remaining: Duration,
    },
    /// Unlocked by an offline code for at most `remaining`.
    UnlockedByCode {
        /// Time left (whole minutes).
        remaining: Duration,
    },
    /// Paid off and released: the financier has no more claim on the phone.
    Released,
    /// The borrower took the policy's emergency use: the phone works until `until`.
    EmergencyUse {
        /// The wall-clock time it ends (Unix seconds), as the phone's clock read when it began.
        until: i64,
        /// Time left (whole minutes).
        remaining: Duration,
    },
}

/// What every screen about the financing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    /// Why, in the financier's words from the signed token.
    pub reason: String,
    /// What to pay to return to good standing.
    pub amount_due: Option<WireMoney>,
    /// The financier.
    pub financier_name: String,
    /// How to reach the financier.
    pub financier_contact: String,
    /// Where to pay.
    pub payment_link: Option<String>,
    /// The phone's first IMEI.
    pub imei: String,
    /// The 8-digit code support looks up to see which token this phone holds.
    pub status_code: String,
    /// The server's time at the last successful check-in (Unix seconds).
    pub last_sync: Option<i64>,
}

/// A button on the lock screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Check in with the server now.
    CheckAgain,
    /// Type an offline unlock code.
    EnterCode,
    /// Call an emergency number: always present.
    EmergencyCall,
    /// Take the policy's emergency use: present when the held token offers it.
    EmergencyUse,
}

/// The reminder screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderScreen {
    /// What is due and to whom.
    pub details: Details,
    /// The lease is running out, if it is.
    pub go_online_within: Option<Duration>,
}

/// The screen for a restricted phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictedScreen {
    /// What is due and to whom.
    pub details: Details,
    /// What is limited.
    pub limited: Vec<DeviceRestriction>,
    /// The challenge for an offline code.
    pub challenge: Option<String>,
    /// The result of the last action (a wrong code, a failed check).
    pub notice: Option<String>,
    /// The buttons.
    pub actions: Vec<Action>,
}

/// Why the phone is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockCause {
    /// The server's signed token says so.
    Token,
    /// The lease ran out: the phone has not reached the server for too long.
    OfflineTooLong,
}

/// The lock screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockScreen {
    /// Why it is locked.
    pub cause: LockCause,
    /// The headline.
    pub title: String,
    /// What is due and to whom.
    pub details: Details,
    /// The challenge for an offline code.
    pub challenge: Option<String>,
    /// The result of the last action (a wrong code, a failed check).
    pub notice: Option<String>,
    /// The buttons: check again, enter code, emergency call.
    pub actions: Vec<Action>,
}

/// What the financier can and cannot do on this phone, for the borrower to read at any time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransparencyScreen {
    /// Who holds the claim, if anyone.
    pub financier_name: Option<String>,
    /// The phone's standing, in words.
    pub standing: String,
    /// What the financier can do.
    pub can: Vec<String>,
    /// What the financier cannot do.
    pub cannot: Vec<String>,
}

/// The lock screen's buttons.
pub(crate) fn lock_actions() -> Vec<Action> {
    vec![Action::CheckAgain, Action::EnterCode, Action::EmergencyCall]
}

/// Rounds a countdown up to whole minutes, so the screen model changes once a minute, not on
/// every tick.
pub(crate) fn minutes(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs().div_ceil(60) * 60)
}

/// The transparency screen for a financed phone (or a free one when `financier` is `None`).
pub(crate) fn transparency(
    financier: Option<&str>,
    standing: &str,
    lease: Option<Duration>,
) -> TransparencyScreen {
    let Some(name) = financier else {
        return TransparencyScreen {
            financier_name: None,
            standing: standing.to_string(),
            can: vec![],
            cannot: vec!["No financier has any claim on this phone.".into()],
        };
    };
    let mut can = vec![
        format!("{name} can show payment reminders on this phone."),
        format!(
            "{name} can limit app installs, factory reset, debugging and safe mode, or lock this \
             phone, when a payment is overdue as your contract and its policy allow, or by a \
             recorded decision with a stated reason."
        ),
        "Every restriction needs an instruction signed by the Lien server; the phone checks \
         the signature itself."
            .to_string(),
        format!("{name} can unlock this phone remotely or give you a one-time unlock code."),
    ];
    if let Some(lease) = lease {
        can.push(format!(
            "This phone locks itself if it cannot reach the server for {}; it warns you first.",
            format_duration(lease)
        ));
    }
    TransparencyScreen {
        financier_name: Some(name.to_string()),
        standing: standing.to_string(),
        can,
        cannot: vec![
            format!("{name} cannot block emergency calls or the payment app."),
            format!(
                "{name} cannot read your messages, photos, contacts, calls, browsing or location."
            ),
            format!("{name} cannot delete or change your data."),
            format!("{name} cannot lock this phone after it is paid off and released."),
        ],
    }
}

impl Details {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.reason)?;
        if let Some(amount) = &self.amount_due {
            writeln!(f, "Amount due: {}", format_money(amount))?;
        }
        writeln!(
            f,
            "Financier: {} ({})",
            self.financier_name, self.financier_contact
        )?;
        if let Some(link) = &self.payment_link {
            writeln!(f, "Pay at: {link}")?;
        }
        writeln!(f, "IMEI: {}", self.imei)?;
        writeln!(f, "Status code: {}", self.status_code)?;
        match self.last_sync {
            Some(t) => writeln!(f, "Last sync: {}", format_utc(t)),
            None => writeln!(f, "Last sync: never"),
        }
    }
}

fn write_actions(
    f: &mut fmt::Formatter<'_>,
    challenge: &Option<String>,
    notice: &Option<String>,
    actions: &[Action],
) -> fmt::Result {
    if let Some(challenge) = challenge {
        writeln!(f, "Unlock challenge: {challenge}")?;
    }
    if let Some(notice) = notice {
        writeln!(f, "! {notice}")?;
    }
    let names: Vec<&str> = actions
        .iter()
        .map(|a| match a {
            Action::CheckAgain => "[Check again]",
            Action::EnterCode => "[Enter code]",
            Action::EmergencyCall => "[Emergency call]",
            Action::EmergencyUse => "[Emergency use]",
        })
        .collect();
    writeln!(f, "{}", names.join(" "))
}

/// `HH:MM UTC` of a Unix time.
fn clock_time(unix: i64) -> String {
    let full = format_utc(unix);
    full.split_once(' ')
        .map_or(full.clone(), |(_, time)| time.to_string())
}

fn restriction_name(r: DeviceRestriction) -> &'static str {
    match r {
        DeviceRestriction::LockScreen => "lock screen",
        DeviceRestriction::AppInstalls => "app installs",
        DeviceRestriction::FactoryReset => "factory reset",
        DeviceRestriction::Debugging => "debugging",
        DeviceRestriction::SafeMode => "safe mode",
    }
}

impl fmt::Display for Screen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Screen::Normal { banner } => {
                writeln!(f, "== Home ==")?;
                match banner {
                    None => Ok(()),
                    Some(Banner::SettingUp) => {
                        writeln!(f, "Setting up: connecting to the server.")
                    }
                    Some(Banner::GoOnline { remaining }) => writeln!(
                        f,
                        "Connect to the internet within {}, or this device will lock.",
                        format_duration(*remaining)
                    ),
                    Some(Banner::UnlockedByCode { remaining }) => writeln!(
                        f,
                        "Unlocked with a code for up to {}.",
                        format_duration(*remaining)
                    ),
                    Some(Banner::Released) => {
                        writeln!(f, "This device is paid off and released: it is yours.")
                    }
                    Some(Banner::EmergencyUse { until, remaining }) => writeln!(
                        f,
                        "Emergency use until {} ({} left). The phone locks again after it.",
                        clock_time(*until),
                        format_duration(*remaining)
                    ),
                }
            }
            Screen::Reminder(r) => {
                writeln!(f, "== Payment reminder ==")?;
                r.details.write(f)?;
                if let Some(left) = r.go_online_within {
                    writeln!(
                        f,
                        "Connect to the internet within {}, or this device will lock.",
                        format_duration(left)
                    )?;
                }
                Ok(())
            }
            Screen::Restricted(r) => {
                writeln!(f, "== Some functions are limited ==")?;
                r.details.write(f)?;
                let limited: Vec<&str> = r.limited.iter().map(|x| restriction_name(*x)).collect();
                writeln!(f, "Limited: {}", limited.join(", "))?;
                write_actions(f, &r.challenge, &r.notice, &r.actions)
            }
            Screen::Locked(l) => {
                writeln!(f, "== {} ==", l.title)?;
                l.details.write(f)?;
                writeln!(f, "Emergency calls and the payment app remain available.")?;
                write_actions(f, &l.challenge, &l.notice, &l.actions)
            }
        }
    }
}

impl fmt::Display for TransparencyScreen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "== What your financier can and cannot do ==")?;
        writeln!(f, "Standing: {}", self.standing)?;
        for line in &self.can {
            writeln!(f, "+ {line}")?;
        }
        for line in &self.cannot {
            writeln!(f, "- {line}")?;
        }
        Ok(())
    }
}
