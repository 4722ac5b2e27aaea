//! Holds each phone's timeline against the oracle and counts.
//!
//! Per device, over the run, segment by segment (the instants at which either the phone's
//! screen or the oracle's answer changes):
//!
//! - **wrongful**: the phone restricted beyond what the oracle allows, where the restriction
//!   did not start under the oracle's allowance (it began, or grew, while not allowed), and a
//!   lease lock that came sooner than half a lease after the phone's last answer (the server
//!   renews a token's lease when half of it is gone, so an honest lease lasts that long);
//! - **after a cure**: a restriction that was allowed and no longer is (a payment, a pause, a
//!   provisional unlock). Until the phone's first answer from the server after the cure it is
//!   the network's doing (offline, or a phone without push waiting for its check-in); from that
//!   answer on it is **late unlock minutes**. The time from the cure to the phone's unlock is a
//!   sample of payment-to-unlock, by how the phone was connected when the cure came;
//! - **missed enforcement**: the oracle has allowed a restriction for longer than the policy's
//!   lease and a day, and the phone is still open (the server never told it, and its lease did
//!   not end either).

use std::fmt::Write as _;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use lien_core::PolicySettings;

use crate::oracle::{self, Allowed, Case, minutes};
use crate::phone::{Look, SimPhone};
use crate::run::{Truth, look_at, online_at};
use crate::scenario::Borrower;

/// How the phone was connected when a cure came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Online, with a push channel.
    Push,
    /// Online, hearing at its check-ins only.
    CheckinOnly,
    /// Off the network.
    Offline,
}

/// One device's figures.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// Wrongful restriction minutes (token restrictions).
    pub wrongful: i64,
    /// The same, by what the oracle said held the phone below the restriction.
    pub wrongful_by: std::collections::BTreeMap<oracle::Why, i64>,
    /// Wrongful minutes of lease locks that came too soon.
    pub wrongful_lease: i64,
    /// Minutes restricted after a cure, after the phone had heard from the server.
    pub late_unlock: i64,
    /// Minutes restricted after a cure, before the phone could hear of it.
    pub waiting: i64,
    /// Minutes open while a restriction had been allowed for longer than a lease and a day.
    pub missed: i64,
    /// Payment-to-unlock samples, in minutes, by link.
    pub unlocks: Vec<(Link, i64)>,
    /// Restrictions lifted by a pause or a provisional unlock.
    pub override_unlocks: u64,
    /// Cures still not reaching the phone at the end of the run.
    pub unresolved: u64,
    /// Minutes restricted or locked by a token, and locked by the lease.
    pub restricted: i64,
    /// Minutes locked by the lease.
    pub lease_locked: i64,
}

struct Carry {
    cure: Timestamp,
    /// The screen the phone kept: a different one (a lease lock replaced by a signed lock) is
    /// a new restriction, judged afresh.
    look: Look,
    severity: u8,
    heard: Option<Timestamp>,
    link: Link,
    payment: bool,
}

/// The oracle's answer for one device.
pub fn oracle_for(
    borrower: &Borrower,
    settings: &PolicySettings,
    tz: &TimeZone,
    truth: &Truth,
    phone: &SimPhone,
    start: Timestamp,
    end: Timestamp,
) -> Allowed {
    oracle::allowed(&Case {
        settings,
        tz,
        installments: &borrower.installments,
        enrolled: start,
        end,
        money: &truth.money,
        reprieves: &truth.reprieves,
        unlocks: &truth.unlocks,
        freezes: &truth.freezes,
        manual_locks: &truth.manual_locks,
        sim_changes: &truth.sim_changes,
        arrears_screens: &phone.arrears_screens,
        sim_screens: &phone.sim_screens,
        released: truth.release,
    })
}

/// Measures one device.
pub fn measure(
    settings: &PolicySettings,
    allowed: &Allowed,
    truth: &Truth,
    phone: &SimPhone,
    start: Timestamp,
    end: Timestamp,
) -> Figures {
    let mut f = Figures::default();
    let mut points: Vec<Timestamp> = vec![start, end];
    points.extend(allowed.iter().map(|(t, _, _)| *t));
    points.extend(phone.timeline.iter().map(|(t, _)| *t));
    points.retain(|t| *t >= start && *t <= end);
    points.sort_unstable();
    points.dedup();

    let half_lease = SignedDuration::from_hours(12 * i64::from(settings.lease_days));
    let patience = SignedDuration::from_hours(24 * i64::from(settings.lease_days) + 24);
    let premature: Vec<Timestamp> = phone
        .lease_locks
        .iter()
        .filter(|(at, last)| last.is_some_and(|c| *at < c + half_lease))
        .map(|(at, _)| *at)
        .collect();
    let heard_after = |t: Timestamp| {
        let i = phone.contacts.partition_point(|c| *c < t);
        phone.contacts.get(i).copied()
    };

    let mut justified = 0u8;
    let mut carry: Option<Carry> = None;
    let mut allowed_since: Option<Timestamp> = None;
    let mut lease_started: Option<Timestamp> = None;
    let mut wrong_cause: Option<oracle::Why> = None;
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a >= b {
            continue;
        }
        let look = look_at(&phone.timeline, a);
        let severity = look.severity();
        let (allow, why) = oracle::why_at(allowed, a);
        let span = minutes(a, b);
        if allow >= 2 {
            allowed_since.get_or_insert(a);
        } else {
            allowed_since = None;
        }
        if look == Look::LeaseLocked {
            lease_started.get_or_insert(a);
        } else {
            lease_started = None;
        }
        if severity >= 2 {
            f.restricted += span;
            if look == Look::LeaseLocked {
                f.lease_locked += span;
            }
        }

        if severity < 2 || allow >= severity {
            wrong_cause = None;
        }
        if severity < 2 {
            if let Some(c) = carry.take() {
                record_unlock(&mut f, &c, a);
            } else if justified >= 2 && allow < justified {
                // Cured and unlocked at the same instant.
                let c = Carry {
                    cure: a,
                    look,
                    severity: justified,
                    heard: None,
                    link: link_at(truth, phone, a),
                    payment: truth.money.iter().any(|(t, m)| *t == a && *m > 0),
                };
                record_unlock(&mut f, &c, a);
            }
            justified = 0;
            if let Some(since) = allowed_since {
                let overdue = since + patience;
                if b > overdue {
                    f.missed += minutes(a.max(overdue), b);
                }
            }
            continue;
        }
        if allow >= severity {
            justified = severity;
            carry = None;
            continue;
        }
        // Restricted beyond the allowance: whatever allowance the restriction had is gone,
        // so what follows a cure is judged afresh.
        let had_allowance = justified;
        justified = 0;
        if look == Look::LeaseLocked {
            let began = lease_started.unwrap_or(a);
            if premature.contains(&began) {
                f.wrongful_lease += span;
                continue;
            }
            // An honest lease lock on a phone that is owed nothing now: it lifts when the
            // phone reaches the server.
            if carry.as_ref().is_some_and(|c| c.look != look) {
                carry = None;
            }
            let c = carry.get_or_insert_with(|| Carry {
                cure: a,
                look,
                severity,
                heard: heard_after(a),
                link: Link::Offline,
                payment: false,
            });
            split_carry(&mut f, c, a, b);
            continue;
        }
        if carry.as_ref().is_some_and(|c| c.look != look) {
            carry = None;
        }
        if let Some(c) = carry.as_mut()
            && severity <= c.severity
        {
            split_carry(&mut f, c, a, b);
            continue;
        }
        if had_allowance >= severity {
            let link = link_at(truth, phone, a);
            let payment = truth.money.iter().any(|(t, m)| *t == a && *m > 0);
            let c = carry.insert(Carry {
                cure: a,
                look,
                severity,
                heard: heard_after(a),
                link,
                payment,
            });
            split_carry(&mut f, c, a, b);
            continue;
        }
        f.wrongful += span;
        // A wrongful restriction is put down to what held the phone when it began, however
        // it went on (paid off while the phone still waits for its check-in, say).
        let cause = *wrong_cause.get_or_insert(why);
        *f.wrongful_by.entry(cause).or_default() += span;
    }
    if carry.is_some() {
        f.unresolved += 1;
    }
    f
}

fn link_at(truth: &Truth, phone: &SimPhone, at: Timestamp) -> Link {
    if !online_at(&truth.online, at) {
        Link::Offline
    } else if phone.push {
        Link::Push
    } else {
        Link::CheckinOnly
    }
}

fn split_carry(f: &mut Figures, c: &Carry, a: Timestamp, b: Timestamp) {
    match c.heard {
        Some(h) if h < b => {
            if h > a {
                f.waiting += minutes(a, h);
            }
            f.late_unlock += minutes(a.max(h), b);
        }
        _ => f.waiting += minutes(a, b),
    }
}

fn record_unlock(f: &mut Figures, c: &Carry, at: Timestamp) {
    if c.payment {
        f.unlocks.push((c.link, minutes(c.cure, at)));
    } else {
        f.override_unlocks += 1;
    }
}

/// A device's story, for a wrongful minute: what happened, what the phone showed and what
/// the oracle allowed, in order.
pub struct Story<'a> {
    /// The run's seed.
    pub seed: u64,
    /// The device.
    pub device: u32,
    /// Its borrower.
    pub borrower: &'a Borrower,
    /// The plan's time zone.
    pub tz: &'a TimeZone,
    /// What the oracle allowed.
    pub allowed: &'a Allowed,
    /// What happened.
    pub truth: &'a Truth,
    /// The phone.
    pub phone: &'a SimPhone,
    /// Its figures.
    pub figures: &'a Figures,
}

/// Renders a [`Story`].
pub fn timeline(story: &Story<'_>) -> String {
    let Story {
        seed,
        device,
        borrower,
        tz,
        allowed,
        truth,
        phone,
        figures,
    } = *story;
    let mut lines: Vec<(Timestamp, u8, String)> = Vec::new();
    for (t, what) in &truth.log {
        lines.push((*t, 0, what.clone()));
    }
    for (t, look) in &phone.timeline {
        lines.push((*t, 1, format!("phone shows: {}", look.name())));
    }
    for (t, a, why) in allowed.iter() {
        let what = match a {
            0 => "nothing",
            2 => "restricted",
            _ => "locked",
        };
        lines.push((*t, 2, format!("oracle allows: {what} ({})", why.name())));
    }
    lines.sort_by_key(|x| (x.0, x.1));
    let mut out = String::new();
    let identity = crate::run::identity(device);
    let _ = writeln!(
        out,
        "timeline: seed {seed}, device {device} (IMEI {}), {} wrongful minutes ({} by lease), \
         {} late unlock minutes, preset {}, {}, {}",
        identity.imei1,
        figures.wrongful + figures.wrongful_lease,
        figures.wrongful_lease,
        figures.late_unlock,
        borrower.preset.name(),
        borrower.time_zone,
        if phone.push { "push" } else { "check-ins only" },
    );
    if !figures.wrongful_by.is_empty() {
        let by: Vec<String> = figures
            .wrongful_by
            .iter()
            .map(|(why, m)| format!("{} {m}", why.name()))
            .collect();
        let _ = writeln!(out, "  wrongful minutes held by: {}", by.join(", "));
    }
    let plan: Vec<String> = borrower
        .installments
        .iter()
        .map(|(d, a)| format!("{d} {a}"))
        .collect();
    let _ = writeln!(out, "  plan ({}): {}", borrower.currency, plan.join(", "));
    for (t, _, what) in lines {
        let local = tz.to_datetime(t);
        let _ = writeln!(out, "  {t}  (local {local:.0})  {what}");
    }
    out
}
