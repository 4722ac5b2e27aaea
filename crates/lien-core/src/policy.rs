//! Lock policies: when a late borrower is reminded, restricted or locked, and what protects them.
//!
//! A policy is checked once, when it is built, so that the decision function never meets a
//! policy that would restrict before its own notices are served.

use jiff::civil::Time;

use crate::money::Money;

/// How far a device is restricted. Ordered from least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Restriction {
    /// Some functions are limited (new app installs, factory reset, developer options);
    /// calls, messages and the payment app work.
    Restricted,
    /// The lock screen covers the phone; emergency calls and the payment app still work.
    Locked,
}

/// A formal reminder, available from a day past due and served when it reaches the borrower
/// (see [`PolicySettings::notice_fallback_days`]), after which the borrower has `cure_days`
/// to pay before any restriction may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    /// The day past due (1 = the day after the due date) from which the notice is shown. A
    /// later notice is shown no earlier than the end of the cure period of the one before it.
    pub at_days_past_due: u32,
    /// Days the borrower has to pay after the notice was served (to the same local time)
    /// before a restriction may start.
    pub cure_days: u32,
}

/// One step of graduated enforcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escalation {
    /// The earliest day past due on which this step may start.
    pub at_days_past_due: u32,
    /// What the step does to the phone.
    pub restriction: Restriction,
}

/// A daily window of local time in which the schedule starts no new restriction, so nobody
/// loses their phone at night; a financier's explicit manual lock is not delayed. It may wrap
/// midnight (`21:00` to `07:00`); a start skipped by a daylight-saving gap opens when the gap ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Local time the window opens.
    pub start: Time,
    /// Local time the window closes; a restriction due in the window starts then.
    pub end: Time,
}

impl QuietHours {
    /// Whether local time `t` falls in the window.
    pub fn contains(&self, t: Time) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

/// What happens when a plan is paid in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PayoffRelease {
    /// The device is released without anyone asking, after the server's cancel window: the
    /// borrower owns the phone once it is paid for, and the window leaves the financier time
    /// to stop it if the payment that completed the plan does not clear.
    #[default]
    Automatic,
    /// The financier releases the device by hand (it holds other claims, or checks the
    /// payoff in its own books first).
    ByHand,
}

/// What a SIM change the phone reports does, until the financier accepts it.
///
/// Lenders watch SIM changes because a phone moved to another SIM is often a phone sold on,
/// or a borrower who can no longer be reached; a new SIM is also what an honest borrower buys
/// after losing the old one. So the strongest rule still starts with a notice and leaves time
/// to call the financier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SimChangeRule {
    /// Nothing happens (the change is recorded and audited only).
    #[default]
    Ignore,
    /// The phone shows a reminder to contact the financier; nothing is restricted.
    Remind,
    /// A reminder first, then restricted `after_days` local days later (never in the quiet
    /// hours), unless the financier has accepted the change.
    Restrict {
        /// Days between the notice and the restriction.
        after_days: u32,
    },
}

/// How fast a payment must reach the phone, and what the borrower is owed when it does not.
/// The decision function does not read it: the server measures each unlock against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnlockPromise {
    /// Minutes from the payment's recording to the phone's acknowledgement of the token that
    /// lifts its restriction.
    pub within_minutes: u32,
    /// Owed to the borrower for each started day by which an unlock is later than the promise;
    /// `None`: nothing. In the policy's own currency, as a regulator writes it (rupees a day);
    /// a plan in another currency is reported late without a figure.
    pub compensation_per_day: Option<Money>,
}

/// The settings of a policy, as a financier writes them. Turned into a [`LockPolicy`] by
/// [`LockPolicy::new`], which checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySettings {
    /// Days after a due date during which a late installment has no effect at all.
    pub grace_days: u32,
    /// No restriction before this many days past due, whatever the escalations say.
    pub min_days_past_due: u32,
    /// No restriction while arrears are below this percentage of the plan's largest installment.
    /// It is measured against a fixed yardstick so that paying more can never tip a device
    /// over the threshold, and as a percentage so that one preset works in any currency.
    pub min_arrears_percent: u8,
    /// Formal reminders; every one must be served and its cure period over before any restriction.
    pub notices: Vec<Notice>,
    /// Graduated steps, by increasing day and severity. Empty means remind only, never restrict.
    pub escalations: Vec<Escalation>,
    /// How long a phone that cannot reach the server stays usable before it locks itself.
    pub lease_days: u32,
    /// How many days before the lease ends the phone warns that it must go online.
    pub lease_warning_days: u32,
    /// When no new restriction starts.
    pub quiet_hours: Option<QuietHours>,
    /// Whether a device whose plan is paid in full is released automatically or by hand.
    /// The decision function does not read it: it governs the release the server schedules.
    pub release_at_payoff: PayoffRelease,
    /// How fast a payment must unlock the phone, and the compensation when it does not.
    pub unlock_promise: Option<UnlockPromise>,
    // Emergency use (issue 20). The decision function does not read these either: the status
    // token carries them, and the phone grants the window itself, offline, from the lock or
    // restricted screen.
    /// Hours the borrower may use a locked or restricted phone as if in good standing, once
    /// per period, without any network. 0: no emergency use.
    pub emergency_use_hours: u32,
    /// At most one emergency window in this many days (counted from a window's start).
    pub emergency_use_every_days: u32,
    // Fair to the borrower (issue 20): hardship pauses and restructuring.
    /// The most days of hardship pause a device may have in any year (the pauses begun in the
    /// 365 days before a new one, with it). A pause that would go beyond is refused.
    pub hardship_days_per_year: u32,
    /// A borrower's request for a pause of at most this many days is granted at once, without
    /// waiting for the financier (0: every request waits for an answer).
    pub hardship_auto_grant_days: u32,
    /// The most a restructured schedule may add to what remains owed, as a percentage of it
    /// (a fee for rescheduling); 0 means the new schedule asks exactly what remains.
    pub restructure_max_fee_percent: u8,
    /// Whether the platform's support staff may restructure a plan, beside the financier.
    pub restructure_by_support: bool,

    // Fair notice (issue 20): a notice counts only once it reached the borrower, and the
    // borrower hears of a payment before it falls due.
    /// How a notice is served to a phone that has never been seen (no attested hello, no
    /// check-in): `Some(n)` serves it `n` days after it became available, `None` never, so such
    /// a device is never restricted by the schedule.
    ///
    /// A notice normally counts as served only when the phone acknowledges a token that shows
    /// it, and its cure period runs from then. A phone that was never set up cannot show
    /// anything, so the financier is told that the notice is available (its webhook and its own
    /// channels: a letter, a text message, a call) and has these days to reach the borrower.
    /// A phone that was seen and then kept offline needs no fallback: its lease ends and it
    /// locks itself, with warnings, whatever the server decides.
    pub notice_fallback_days: Option<u32>,
    /// How many days before an installment falls due the phone shows a reminder naming the
    /// amount and the date (0: none). The reminder stays through the grace period.
    pub remind_days_before: u32,
    /// What a SIM change reported by the phone does until the financier accepts it.
    pub sim_change: SimChangeRule,
}

impl PolicySettings {
    /// The most days of hardship pause a policy may allow in a year.
    pub const MAX_HARDSHIP_DAYS_PER_YEAR: u32 = 365;
    /// The highest restructuring fee a policy may allow, in percent of what remains.
    pub const MAX_RESTRUCTURE_FEE_PERCENT: u8 = 25;

    /// The largest day a grace period, notice, escalation or minimum may name: ten years past
    /// due, beyond any real plan. Bounds keep every date the decision computes representable.
    pub const MAX_DAYS_PAST_DUE: u32 = 3650;
    /// The longest cure period of a notice, in days.
    pub const MAX_CURE_DAYS: u32 = 365;
    /// The longest offline lease, in days: a phone that has not been online for a year.
    pub const MAX_LEASE_DAYS: u32 = 365;
    /// The most notices a policy may list.
    pub const MAX_NOTICES: usize = 16;
    /// The most escalations a policy may list.
    pub const MAX_ESCALATIONS: usize = 8;
    /// The longest unlock promise, in minutes: a week.
    pub const MAX_UNLOCK_MINUTES: u32 = 7 * 24 * 60;
    /// The longest emergency window, in hours: three days.
    pub const MAX_EMERGENCY_USE_HOURS: u32 = 72;
    /// The longest period between emergency windows, in days.
    pub const MAX_EMERGENCY_USE_EVERY_DAYS: u32 = 365;
    /// The longest a reminder may come before its due date, in days: one monthly period.
    pub const MAX_REMIND_DAYS_BEFORE: u32 = 31;
    /// The longest wait between a SIM change's notice and its restriction, in days.
    pub const MAX_SIM_CHANGE_DAYS: u32 = 90;

    /// Each bounded number with its field name and bound, for the checks and the error.
    fn bounded(&self) -> Vec<(String, u64, u64)> {
        let days = u64::from(Self::MAX_DAYS_PAST_DUE);
        let mut numbers = vec![
            ("grace_days".to_string(), u64::from(self.grace_days), days),
            (
                "min_days_past_due".to_string(),
                u64::from(self.min_days_past_due),
                days,
            ),
            (
                "lease_days".to_string(),
                u64::from(self.lease_days),
                u64::from(Self::MAX_LEASE_DAYS),
            ),
            (
                "emergency_use_hours".to_string(),
                u64::from(self.emergency_use_hours),
                u64::from(Self::MAX_EMERGENCY_USE_HOURS),
            ),
            (
                "emergency_use_every_days".to_string(),
                u64::from(self.emergency_use_every_days),
                u64::from(Self::MAX_EMERGENCY_USE_EVERY_DAYS),
            ),
            (
                "hardship_days_per_year".to_string(),
                u64::from(self.hardship_days_per_year),
                u64::from(Self::MAX_HARDSHIP_DAYS_PER_YEAR),
            ),
            (
                "hardship_auto_grant_days".to_string(),
                u64::from(self.hardship_auto_grant_days),
                u64::from(self.hardship_days_per_year),
            ),
            (
                "sim_change.after_days".to_string(),
                match self.sim_change {
                    SimChangeRule::Restrict { after_days } => u64::from(after_days),
                    _ => 0,
                },
                u64::from(Self::MAX_SIM_CHANGE_DAYS),
            ),
            (
                "restructure_max_fee_percent".to_string(),
                u64::from(self.restructure_max_fee_percent),
                u64::from(Self::MAX_RESTRUCTURE_FEE_PERCENT),
            ),
            (
                "notices".to_string(),
                self.notices.len() as u64,
                Self::MAX_NOTICES as u64,
            ),
            (
                "escalations".to_string(),
                self.escalations.len() as u64,
                Self::MAX_ESCALATIONS as u64,
            ),
        ];
        if let Some(fallback) = self.notice_fallback_days {
            numbers.push((
                "notice_fallback_days".to_string(),
                u64::from(fallback),
                u64::from(Self::MAX_CURE_DAYS),
            ));
        }
        numbers.push((
            "remind_days_before".to_string(),
            u64::from(self.remind_days_before),
            u64::from(Self::MAX_REMIND_DAYS_BEFORE),
        ));
        for (i, n) in self.notices.iter().enumerate() {
            numbers.push((
                format!("notices[{i}].at_days_past_due"),
                u64::from(n.at_days_past_due),
                days,
            ));
            numbers.push((
                format!("notices[{i}].cure_days"),
                u64::from(n.cure_days),
                u64::from(Self::MAX_CURE_DAYS),
            ));
        }
        for (i, e) in self.escalations.iter().enumerate() {
            numbers.push((
                format!("escalations[{i}].at_days_past_due"),
                u64::from(e.at_days_past_due),
                days,
            ));
        }
        if let Some(promise) = &self.unlock_promise {
            numbers.push((
                "unlock_promise.within_minutes".to_string(),
                u64::from(promise.within_minutes),
                u64::from(Self::MAX_UNLOCK_MINUTES),
            ));
        }
        numbers
    }
}

/// Why policy settings are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Notices must be listed by strictly increasing day.
    #[error("notices must be in increasing order of days past due (notice {index})")]
    NoticesOutOfOrder {
        /// 1-based position of the offending notice.
        index: usize,
    },
    /// Escalations must be listed by strictly increasing day.
    #[error("escalations must be in increasing order of days past due (escalation {index})")]
    EscalationsOutOfOrder {
        /// 1-based position of the offending escalation.
        index: usize,
    },
    /// A later escalation may not be milder than an earlier one.
    #[error("escalation {index} is milder than the one before it")]
    EscalationsDeescalate {
        /// 1-based position of the offending escalation.
        index: usize,
    },
    /// A notice or escalation inside the grace period would defeat the grace period.
    #[error("{what} is at day {day}, inside the {grace_days}-day grace period")]
    InsideGrace {
        /// Which setting.
        what: String,
        /// Its day.
        day: u32,
        /// The grace period.
        grace_days: u32,
    },
    /// A percentage above 100.
    #[error("min_arrears_percent is {0}; it must be between 0 and 100")]
    ArrearsPercentOutOfRange(u8),
    /// A lease must last at least a day.
    #[error("lease_days must be at least 1")]
    LeaseTooShort,
    /// The warning must start after the lease does.
    #[error("lease_warning_days ({warning}) must be less than lease_days ({lease})")]
    WarningNotShorterThanLease {
        /// The warning days.
        warning: u32,
        /// The lease days.
        lease: u32,
    },
    /// An unlock promised in no time at all cannot be kept, and a compensation must be owed.
    #[error("{0}")]
    UnlockPromise(&'static str),
    /// An emergency window must fit in its period, or it could be taken back to back.
    #[error(
        "emergency_use_every_days ({every_days}) must be longer than an emergency_use_hours \
         ({hours}) window"
    )]
    EmergencyWindowNotShorterThanPeriod {
        /// The window, in hours.
        hours: u32,
        /// The period, in days.
        every_days: u32,
    },
    /// A window from a time to the same time is meaningless.
    #[error("quiet hours start and end at the same time")]
    EmptyQuietHours,
    /// A number beyond its documented bound (see [`PolicySettings::BOUNDS`]).
    #[error("{field} is {value}; it must be at most {max}")]
    OutOfBounds {
        /// The setting, as named in the JSON (`notices[2].cure_days`).
        field: String,
        /// Its value.
        value: u64,
        /// Its bound.
        max: u64,
    },
}

/// A checked lock policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockPolicy {
    settings: PolicySettings,
}

impl LockPolicy {
    /// Checks the settings: notices and escalations in order and outside grace, escalations
    /// never milder than the step before, a lease longer than its warning.
    pub fn new(settings: PolicySettings) -> Result<LockPolicy, PolicyError> {
        if let Some((field, value, max)) = settings
            .bounded()
            .into_iter()
            .find(|(_, value, max)| value > max)
        {
            return Err(PolicyError::OutOfBounds { field, value, max });
        }
        let grace_days = settings.grace_days;
        for (i, pair) in settings.notices.windows(2).enumerate() {
            if pair[1].at_days_past_due <= pair[0].at_days_past_due {
                return Err(PolicyError::NoticesOutOfOrder { index: i + 2 });
            }
        }
        for (i, pair) in settings.escalations.windows(2).enumerate() {
            if pair[1].at_days_past_due <= pair[0].at_days_past_due {
                return Err(PolicyError::EscalationsOutOfOrder { index: i + 2 });
            }
            if pair[1].restriction < pair[0].restriction {
                return Err(PolicyError::EscalationsDeescalate { index: i + 2 });
            }
        }
        let days = settings
            .notices
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("notice {}", i + 1), n.at_days_past_due))
            .chain(
                settings
                    .escalations
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (format!("escalation {}", i + 1), e.at_days_past_due)),
            );
        for (what, day) in days {
            if day <= grace_days {
                return Err(PolicyError::InsideGrace {
                    what,
                    day,
                    grace_days,
                });
            }
        }
        if settings.min_arrears_percent > 100 {
            return Err(PolicyError::ArrearsPercentOutOfRange(
                settings.min_arrears_percent,
            ));
        }
        if settings.lease_days == 0 {
            return Err(PolicyError::LeaseTooShort);
        }
        if settings.lease_warning_days >= settings.lease_days {
            return Err(PolicyError::WarningNotShorterThanLease {
                warning: settings.lease_warning_days,
                lease: settings.lease_days,
            });
        }
        if settings.quiet_hours.is_some_and(|q| q.start == q.end) {
            return Err(PolicyError::EmptyQuietHours);
        }
        if let Some(promise) = &settings.unlock_promise {
            if promise.within_minutes == 0 {
                return Err(PolicyError::UnlockPromise(
                    "unlock_promise.within_minutes must be at least 1",
                ));
            }
            if promise
                .compensation_per_day
                .is_some_and(|c| !c.is_positive())
            {
                return Err(PolicyError::UnlockPromise(
                    "unlock_promise.compensation_per_day must be more than zero",
                ));
            }
        }
        let (hours, every_days) = (
            settings.emergency_use_hours,
            settings.emergency_use_every_days,
        );
        if hours > 0 && u64::from(hours) >= u64::from(every_days) * 24 {
            return Err(PolicyError::EmergencyWindowNotShorterThanPeriod { hours, every_days });
        }
        Ok(LockPolicy { settings })
    }

    /// The checked settings.
    pub fn settings(&self) -> &PolicySettings {
        &self.settings
    }

    /// A named preset.
    pub fn preset(preset: Preset) -> LockPolicy {
        // The presets are constants checked by the tests below.
        LockPolicy::new(preset.settings()).expect("presets are valid")
    }
}

/// Lien's own promise where a market sets none: a phone online is unlocked within seconds of a
/// payment (it is pushed), so an hour is late by any measure; no compensation is presumed.
const LIEN_UNLOCK_PROMISE: UnlockPromise = UnlockPromise {
    within_minutes: 60,
    compensation_per_day: None,
};
// Emergency use, the same in every preset. California's rules for disabling financed goods
// give the buyer 24 hours of emergency use after a first disablement, and PayJoy's charter
// keeps emergency calls and customer service working on a locked phone; 24 hours a month is the
// California window offered again each month, so a borrower in arrears for months still gets a
// day of use for an emergency now and then, without making the lock meaningless. As summarised
// in issue 20; check the text of the rules before relying on this.
/// The emergency window of every preset, in hours.
const EMERGENCY_USE_HOURS: u32 = 24;
/// How often a preset's emergency window may be taken, in days.
const EMERGENCY_USE_EVERY_DAYS: u32 = 30;

/// Ready-made policies for common markets. Each one's settings say where they come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// A dealer that locks quickly: reminder the day after, restrict on day 2, lock on day 3.
    StrictDealer,
    /// Kenya-style pay-as-you-go financing: lock at 4 days past due.
    Kenya,
    /// The Indian draft rules: nothing before 90 days past due, two notices first.
    IndiaDraft,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 3] = [Preset::StrictDealer, Preset::Kenya, Preset::IndiaDraft];

    /// The name used in configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::StrictDealer => "strict-dealer",
            Preset::Kenya => "kenya",
            Preset::IndiaDraft => "india-draft",
        }
    }

    /// Finds a preset by name.
    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// One line on what the preset does.
    pub fn summary(self) -> &'static str {
        match self {
            Preset::StrictDealer => {
                "reminder on day 1, restricted on day 2, locked on day 3; no locks 21:00-07:00"
            }
            Preset::Kenya => "reminder on day 1, locked on day 4; no locks 20:00-07:00",
            Preset::IndiaDraft => {
                "notice on day 60 (21 days to cure), second notice on day 81 (7 days), locked from day 90; no locks 19:00-08:00"
            }
        }
    }

    /// The settings of the preset.
    pub fn settings(self) -> PolicySettings {
        let hours = |start: i8, end: i8| {
            Some(QuietHours {
                start: Time::constant(start, 0, 0, 0),
                end: Time::constant(end, 0, 0, 0),
            })
        };
        match self {
            // A small dealer financing its own stock, as Lien's brief describes the strictest
            // real-world practice: the phone is the only collateral and the dealer cannot chase
            // debts, so it escalates within days. The quiet hours are our own floor of decency.
            Preset::StrictDealer => PolicySettings {
                grace_days: 0,
                min_days_past_due: 2,
                min_arrears_percent: 1,
                notices: vec![Notice {
                    at_days_past_due: 1,
                    cure_days: 1,
                }],
                escalations: vec![
                    Escalation {
                        at_days_past_due: 2,
                        restriction: Restriction::Restricted,
                    },
                    Escalation {
                        at_days_past_due: 3,
                        restriction: Restriction::Locked,
                    },
                ],
                lease_days: 7,
                lease_warning_days: 2,
                quiet_hours: hours(21, 7),
                release_at_payoff: PayoffRelease::Automatic,
                unlock_promise: Some(LIEN_UNLOCK_PROMISE),
                emergency_use_hours: EMERGENCY_USE_HOURS,
                emergency_use_every_days: EMERGENCY_USE_EVERY_DAYS,
                // A month of pauses a year, none granted without the dealer looking, and
                // no fee for rescheduling: our own floor, as no rule binds a small dealer.
                hardship_days_per_year: 30,
                hardship_auto_grant_days: 0,
                restructure_max_fee_percent: 0,
                restructure_by_support: false,
                // The dealer sells over the counter and calls its customers itself: two days
                // to reach a borrower whose phone was never switched on.
                notice_fallback_days: Some(2),
                // California's rules for remote disabling devices want warnings 5 and 10 days
                // ahead and a final one 48 hours before; a dealer paid weekly reminds 3 days
                // ahead, which covers the final warning.
                remind_days_before: 3,
                // The phone is the dealer's only collateral: a new SIM is a notice, and two
                // days later a restriction unless the borrower has called the dealer.
                sim_change: SimChangeRule::Restrict { after_days: 2 },
            },
            // Kenyan pay-as-you-go phone financing locks a phone a few days after a missed
            // payment and unlocks it when the borrower pays by mobile money; Lien's brief
            // (issue 2) fixes the lock at 4 days past due. Leases are short because these
            // plans are paid daily or weekly and phones are online most of the time.
            Preset::Kenya => PolicySettings {
                grace_days: 0,
                min_days_past_due: 4,
                min_arrears_percent: 10,
                notices: vec![Notice {
                    at_days_past_due: 1,
                    cure_days: 3,
                }],
                escalations: vec![Escalation {
                    at_days_past_due: 4,
                    restriction: Restriction::Locked,
                }],
                lease_days: 10,
                lease_warning_days: 3,
                quiet_hours: hours(20, 7),
                release_at_payoff: PayoffRelease::Automatic,
                unlock_promise: Some(LIEN_UNLOCK_PROMISE),
                emergency_use_hours: EMERGENCY_USE_HOURS,
                emergency_use_every_days: EMERGENCY_USE_EVERY_DAYS,
                // Pay-as-you-go plans are paid daily or weekly: a borrower who loses a week's
                // income may pause a week at once by asking from the phone, up to a month a
                // year. No fee for rescheduling (our own choice; issue 20).
                hardship_days_per_year: 30,
                hardship_auto_grant_days: 7,
                restructure_max_fee_percent: 0,
                restructure_by_support: false,
                // Pay-as-you-go financiers text their customers; three days (the cure period)
                // to reach one whose phone was never switched on.
                notice_fallback_days: Some(3),
                // A reminder three days ahead: more than California's final 48 hours, and
                // short enough for daily or weekly plans not to remind all the time.
                remind_days_before: 3,
                // Prepaid SIMs change often in Kenya; a reminder to tell the financier the
                // new number is enough (our own choice).
                sim_change: SimChangeRule::Remind,
            },
            // The Reserve Bank of India's draft on the use of device locks in consumer loans,
            // as summarised in Lien's brief (issue 2): no restriction before 90 days past due,
            // a notice at 60 days with 21 days to cure, and a second notice with 7 days to cure
            // (served here on day 81, when the first cure period ends). The quiet hours follow
            // the RBI's fair practices for recovery, which forbid contacting borrowers before
            // 08:00 or after 19:00. Check the final text of the rules before relying on this.
            Preset::IndiaDraft => PolicySettings {
                grace_days: 0,
                min_days_past_due: 90,
                min_arrears_percent: 100,
                notices: vec![
                    Notice {
                        at_days_past_due: 60,
                        cure_days: 21,
                    },
                    Notice {
                        at_days_past_due: 81,
                        cure_days: 7,
                    },
                ],
                escalations: vec![Escalation {
                    at_days_past_due: 90,
                    restriction: Restriction::Locked,
                }],
                lease_days: 30,
                lease_warning_days: 7,
                quiet_hours: hours(19, 8),
                release_at_payoff: PayoffRelease::Automatic,
                // The draft asks that a device be restored within an hour of payment and that
                // the borrower be compensated for any delay. It names no figure; this follows
                // the RBI's turnaround-time framework for failed digital payments (2019),
                // which pays INR 100 for each day of delay. Check the final text.
                unlock_promise: Some(UnlockPromise {
                    within_minutes: 60,
                    compensation_per_day: Some(Money::new(
                        10_000, // INR 100.00
                        crate::money::Currency::parse("INR").expect("INR is ISO 4217"),
                    )),
                }),
                emergency_use_hours: EMERGENCY_USE_HOURS,
                emergency_use_every_days: EMERGENCY_USE_EVERY_DAYS,
                // The RBI's fair practices expect lenders to consider restructuring for
                // borrowers in genuine difficulty and forbid hidden charges: up to 90 days of
                // pause a year, a fortnight granted on request, no fee for rescheduling, and
                // the platform's support may reschedule too. Our reading; check the final
                // rules before relying on it.
                hardship_days_per_year: 90,
                hardship_auto_grant_days: 14,
                restructure_max_fee_percent: 0,
                restructure_by_support: true,
                // The draft wants the notice to reach the borrower; a phone never switched on
                // gets it by the lender's letter, for which we allow a week.
                notice_fallback_days: Some(7),
                // Monthly plans: ten days ahead, as California's earliest warning.
                remind_days_before: 10,
                // The draft ties restriction to default only: a SIM change restricts nothing.
                sim_change: SimChangeRule::Ignore,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_valid_and_named() {
        for preset in Preset::ALL {
            assert!(LockPolicy::new(preset.settings()).is_ok(), "{preset:?}");
            assert_eq!(Preset::from_name(preset.name()), Some(preset));
        }
        assert_eq!(Preset::from_name("lenient"), None);
    }

    #[test]
    fn india_draft_never_restricts_before_day_90() {
        let s = Preset::IndiaDraft.settings();
        assert_eq!(s.min_days_past_due, 90);
        assert!(s.escalations.iter().all(|e| e.at_days_past_due >= 90));
        assert_eq!(s.notices[0].at_days_past_due + s.notices[0].cure_days, 81);
    }

    /// The strict-dealer preset's settings changed by `f`, checked.
    fn strict_dealer_with(f: &dyn Fn(&mut PolicySettings)) -> Result<LockPolicy, PolicyError> {
        let mut s = Preset::StrictDealer.settings();
        f(&mut s);
        LockPolicy::new(s)
    }

    #[test]
    fn refuses_settings_that_contradict_themselves() {
        assert_eq!(
            strict_dealer_with(&|s| s.escalations.reverse()),
            Err(PolicyError::EscalationsOutOfOrder { index: 2 })
        );
        // Two restricted steps in a row are fine; a lock followed by a milder step is not.
        assert!(
            strict_dealer_with(&|s| s.escalations[1].restriction = Restriction::Restricted).is_ok()
        );
        assert_eq!(
            strict_dealer_with(&|s| {
                s.escalations[0].restriction = Restriction::Locked;
                s.escalations[1].restriction = Restriction::Restricted;
            }),
            Err(PolicyError::EscalationsDeescalate { index: 2 })
        );
        let err = strict_dealer_with(&|s| s.grace_days = 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "notice 1 is at day 1, inside the 2-day grace period"
        );
        assert_eq!(
            strict_dealer_with(&|s| s.min_arrears_percent = 101),
            Err(PolicyError::ArrearsPercentOutOfRange(101))
        );
        assert_eq!(
            strict_dealer_with(&|s| s.lease_days = 0),
            Err(PolicyError::LeaseTooShort)
        );
        assert!(matches!(
            strict_dealer_with(&|s| s.lease_warning_days = 7),
            Err(PolicyError::WarningNotShorterThanLease { .. })
        ));
    }

    #[test]
    fn refuses_numbers_past_their_bounds_naming_them() {
        assert_eq!(
            strict_dealer_with(&|s| s.lease_days = u32::MAX)
                .unwrap_err()
                .to_string(),
            "lease_days is 4294967295; it must be at most 365"
        );
        assert!(strict_dealer_with(&|s| s.lease_days = PolicySettings::MAX_LEASE_DAYS).is_ok());
        assert_eq!(
            strict_dealer_with(&|s| s.notices[0].cure_days = 366)
                .unwrap_err()
                .to_string(),
            "notices[0].cure_days is 366; it must be at most 365"
        );
        assert_eq!(
            strict_dealer_with(&|s| s.escalations[1].at_days_past_due = 3651)
                .unwrap_err()
                .to_string(),
            "escalations[1].at_days_past_due is 3651; it must be at most 3650"
        );
        assert!(matches!(
            strict_dealer_with(&|s| s.notices = (1..=17).map(|d| Notice { at_days_past_due: d, cure_days: 1 }).collect()),
            Err(PolicyError::OutOfBounds { field, .. }) if field == "notices"
        ));
    }

    #[test]
    fn an_emergency_window_is_bounded_and_fits_in_its_period() {
        assert_eq!(Preset::Kenya.settings().emergency_use_hours, 24);
        assert!(strict_dealer_with(&|s| s.emergency_use_hours = 0).is_ok());
        assert!(
            strict_dealer_with(&|s| {
                s.emergency_use_hours = 0;
                s.emergency_use_every_days = 0;
            })
            .is_ok()
        );
        assert_eq!(
            strict_dealer_with(&|s| {
                s.emergency_use_hours = 24;
                s.emergency_use_every_days = 1;
            }),
            Err(PolicyError::EmergencyWindowNotShorterThanPeriod {
                hours: 24,
                every_days: 1
            })
        );
        assert!(
            strict_dealer_with(&|s| {
                s.emergency_use_hours = 23;
                s.emergency_use_every_days = 1;
            })
            .is_ok()
        );
        assert_eq!(
            strict_dealer_with(&|s| s.emergency_use_hours = 73)
                .unwrap_err()
                .to_string(),
            "emergency_use_hours is 73; it must be at most 72"
        );
        assert_eq!(
            strict_dealer_with(&|s| s.emergency_use_every_days = 366)
                .unwrap_err()
                .to_string(),
            "emergency_use_every_days is 366; it must be at most 365"
        );
    }

    #[test]
    fn quiet_hours_may_wrap_midnight() {
        let night = QuietHours {
            start: Time::constant(21, 0, 0, 0),
            end: Time::constant(7, 0, 0, 0),
        };
        assert!(night.contains(Time::constant(23, 0, 0, 0)));
        assert!(night.contains(Time::constant(6, 59, 0, 0)));
        assert!(!night.contains(Time::constant(7, 0, 0, 0)));
        assert!(!night.contains(Time::constant(12, 0, 0, 0)));
        let lunch = QuietHours {
            start: Time::constant(12, 0, 0, 0),
            end: Time::constant(14, 0, 0, 0),
        };
        assert!(lunch.contains(Time::constant(13, 0, 0, 0)));
        assert!(!lunch.contains(Time::constant(14, 0, 0, 0)));
    }
}
