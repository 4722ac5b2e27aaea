//! The portfolio and everything that will happen to it, drawn from one seed before the run.
//!
//! Each borrower gets a preset, a plan in its time zone and a way of paying; each phone its
//! spells offline, clock changes and resets; the server its restarts. All of it comes from one
//! `fastrand` generator seeded with the run's seed, consumed in a fixed order, so one seed is
//! one run. The events are what the world does; how the server answers them is the run's.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use lien_core::Preset;
use lien_server::commands::appeals::ClaimKind;

/// What happens at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A payment's callback reaches the server (perhaps late, perhaps again): the money was
    /// received at `received`. A duplicate carries the same reference; `same_key` says whether
    /// the provider retried under the first callback's idempotency key.
    Pay {
        /// The payment's reference, unique per payment.
        reference: String,
        /// Minor units.
        amount: i64,
        /// When the borrower paid.
        received: Timestamp,
        /// Whether this callback repeats one sent before.
        duplicate: bool,
        /// Whether a repeat carries the first callback's idempotency key.
        same_key: bool,
    },
    /// A chargeback of a payment.
    Reverse {
        /// The payment's reference.
        reference: String,
    },
    /// The financier grants a hardship pause.
    Hardship {
        /// Its length.
        days: u32,
    },
    /// Support grants a provisional unlock on an appeal.
    ProvisionalUnlock {
        /// Its length.
        hours: u32,
    },
    /// The borrower opens an appeal on the borrower's page, typing the IMEI and the status
    /// code the phone shows.
    Appeal {
        /// What they claim.
        claim: ClaimKind,
    },
    /// Support answers the borrower's open appeal.
    AnswerAppeal {
        /// Accept (else reject).
        accept: bool,
    },
    /// The financier locks the phone by hand, with a message for its screen.
    ManualLock,
    /// The financier lifts its manual lock.
    ManualUnlock,
    /// A new SIM card goes into the phone, which reports it.
    SimChange,
    /// The financier accepts the SIM change, having heard from the borrower.
    AcceptSimChange,
    /// The phone leaves the network.
    Offline,
    /// The phone is back on the network.
    Online,
    /// The borrower moves the phone's wall clock.
    ShiftWallClock {
        /// Seconds (negative: back).
        by: i64,
    },
    /// The borrower factory-resets the phone.
    FactoryReset,
    /// The server stops and starts again on the same store.
    Restart,
}

/// An action at an instant, for a device (ignored by [`Action::Restart`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When.
    pub at: Timestamp,
    /// Which device (index into the portfolio).
    pub device: u32,
    /// What.
    pub action: Action,
}

/// How a borrower pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Habit {
    /// Before or on each due date.
    OnTime,
    /// Days after each due date.
    Late,
    /// Half late, the rest later still.
    Partial,
    /// On time, then never again.
    Defaults,
    /// On time, then everything at once.
    PaysOff,
    /// Each installment one of the above at random.
    Mixed,
}

impl Habit {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Habit::OnTime => "on time",
            Habit::Late => "late",
            Habit::Partial => "partial",
            Habit::Defaults => "defaults",
            Habit::PaysOff => "pays off",
            Habit::Mixed => "mixed",
        }
    }

    /// Every habit, in report order.
    pub const ALL: [Habit; 6] = [
        Habit::OnTime,
        Habit::Late,
        Habit::Partial,
        Habit::Defaults,
        Habit::PaysOff,
        Habit::Mixed,
    ];
}

/// One borrower and their phone.
#[derive(Debug, Clone)]
pub struct Borrower {
    /// The preset their financier enrolled them on.
    pub preset: Preset,
    /// The plan's time zone.
    pub time_zone: &'static str,
    /// The plan's currency.
    pub currency: &'static str,
    /// The installments: due date and minor units.
    pub installments: Vec<(Date, i64)>,
    /// How they pay.
    pub habit: Habit,
    /// Whether the phone keeps a push channel.
    pub push: bool,
}

/// The portfolio and its events.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// When the run starts (every device is enrolled then).
    pub start: Timestamp,
    /// When it ends.
    pub end: Timestamp,
    /// The borrowers, by device index.
    pub borrowers: Vec<Borrower>,
    /// What happens, in order of time (ties in the order drawn).
    pub events: Vec<Event>,
}

/// The run's first instant: 18:30 UTC, inside the quiet hours of Nairobi (21:30) and Kolkata
/// (00:00), so that overdue enrollments meet the rule that quiet hours hold for them too.
pub fn start_instant() -> Timestamp {
    "2027-01-04T18:30:00Z".parse().expect("a valid instant")
}

/// Draws the portfolio of `devices` over `days` from `seed`.
pub fn draw(seed: u64, devices: u32, days: u32) -> Scenario {
    let mut rng = fastrand::Rng::with_seed(seed);
    let start = start_instant();
    let end = start + SignedDuration::from_hours(24 * i64::from(days));
    let mut events = Vec::new();
    let mut borrowers = Vec::with_capacity(devices as usize);
    for device in 0..devices {
        let borrower = draw_borrower(&mut rng, start);
        draw_payments(&mut rng, device, &borrower, start, end, &mut events);
        draw_overrides(&mut rng, device, &borrower, start, end, &mut events);
        draw_disputes(&mut rng, device, &borrower, start, &mut events);
        draw_financier_acts(&mut rng, device, start, end, &mut events);
        draw_phone(&mut rng, device, start, end, &mut events);
        borrowers.push(borrower);
    }
    let restarts = 2 + days / 20;
    for _ in 0..restarts {
        let at = between(&mut rng, start, end);
        events.push(Event {
            at,
            device: u32::MAX,
            action: Action::Restart,
        });
    }
    // Stable: ties keep the order in which they were drawn.
    events.retain(|e| e.at > start && e.at < end);
    events.sort_by_key(|e| e.at);
    Scenario {
        start,
        end,
        borrowers,
        events,
    }
}

fn draw_borrower(rng: &mut fastrand::Rng, start: Timestamp) -> Borrower {
    let (preset, time_zone, currency) = match rng.u32(0..100) {
        0..60 => (Preset::Kenya, "Africa/Nairobi", "KES"),
        60..85 => (Preset::StrictDealer, "America/New_York", "USD"),
        _ => (Preset::IndiaDraft, "Asia/Kolkata", "INR"),
    };
    let tz = TimeZone::get(time_zone).expect("a bundled time zone");
    let today = tz.to_datetime(start).date();
    let count = rng.usize(3..=6);
    let every: i64 = match preset {
        Preset::Kenya => *choose(rng, &[7, 14]),
        Preset::StrictDealer => *choose(rng, &[14, 30]),
        Preset::IndiaDraft => 30,
    };
    // One in seven enrolled with an installment already late.
    let first: i64 = if rng.u32(0..7) == 0 {
        -rng.i64(1..=25)
    } else {
        rng.i64(1..=30)
    };
    let installments = (0..count as i64)
        .map(|k| {
            let due = today + (first + k * every).days();
            (due, rng.i64(5..=30) * 10_000)
        })
        .collect();
    let habit = match rng.u32(0..100) {
        0..35 => Habit::OnTime,
        35..60 => Habit::Late,
        60..70 => Habit::Partial,
        70..80 => Habit::Defaults,
        80..87 => Habit::PaysOff,
        _ => Habit::Mixed,
    };
    Borrower {
        preset,
        time_zone,
        currency,
        installments,
        habit,
        push: rng.u32(0..4) != 0,
    }
}

/// The instant `date` at `hour`:`minute` in `tz`.
fn local(tz: &TimeZone, date: Date, hour: i8, minute: i8) -> Timestamp {
    tz.to_ambiguous_timestamp(date.to_datetime(Time::constant(hour, minute, 0, 0)))
        .compatible()
        .expect("a date in range")
}

fn draw_payments(
    rng: &mut fastrand::Rng,
    device: u32,
    b: &Borrower,
    start: Timestamp,
    end: Timestamp,
    events: &mut Vec<Event>,
) {
    let tz = TimeZone::get(b.time_zone).expect("a bundled time zone");
    let stop = rng.usize(0..b.installments.len());
    let mut number = 0;
    let mut reference = |rng: &mut fastrand::Rng| {
        number += 1;
        format!("sim-{device}-{number}-{:04x}", rng.u16(..))
    };
    let mut pay = |rng: &mut fastrand::Rng, events: &mut Vec<Event>, day: Date, amount: i64| {
        let at = local(&tz, day, rng.i8(6..=21), rng.i8(0..60))
            .max(start + SignedDuration::from_mins(1));
        let r = reference(rng);
        send_payment(rng, device, r, amount, at, end, events);
    };
    for (k, &(due, amount)) in b.installments.iter().enumerate() {
        let habit = match b.habit {
            Habit::Mixed => *choose(rng, &[Habit::OnTime, Habit::Late, Habit::Partial]),
            Habit::Defaults if k >= stop => return,
            Habit::Defaults => Habit::OnTime,
            Habit::PaysOff if k == stop => {
                let rest: i64 = b.installments[k..].iter().map(|(_, a)| a).sum();
                let day = due - rng.i64(0..=10).days();
                pay(rng, events, day, rest);
                return;
            }
            Habit::PaysOff => Habit::OnTime,
            other => other,
        };
        match habit {
            Habit::Late => {
                let day = due + rng.i64(1..=10).days();
                pay(rng, events, day, amount);
            }
            Habit::Partial => {
                let half = amount / 2;
                let first = due + rng.i64(0..=5).days();
                pay(rng, events, first, half);
                let second = first + rng.i64(1..=6).days();
                pay(rng, events, second, amount - half);
            }
            _ => {
                let day = due - rng.i64(0..=3).days();
                pay(rng, events, day, amount);
            }
        }
    }
}

/// A payment's callbacks: on time or late, sometimes twice; sometimes charged back and paid
/// again.
fn send_payment(
    rng: &mut fastrand::Rng,
    device: u32,
    reference: String,
    amount: i64,
    received: Timestamp,
    end: Timestamp,
    events: &mut Vec<Event>,
) {
    let arrives = match rng.u32(0..100) {
        0..80 => received,
        _ => received + SignedDuration::from_mins(rng.i64(5..=48 * 60)),
    };
    events.push(Event {
        at: arrives,
        device,
        action: Action::Pay {
            reference: reference.clone(),
            amount,
            received,
            duplicate: false,
            same_key: false,
        },
    });
    if rng.u32(0..100) < 5 {
        events.push(Event {
            at: arrives + SignedDuration::from_mins(rng.i64(1..=24 * 60)),
            device,
            action: Action::Pay {
                reference: reference.clone(),
                amount,
                received,
                duplicate: true,
                same_key: rng.bool(),
            },
        });
    }
    if rng.u32(0..100) < 3 {
        let reversed = arrives + SignedDuration::from_hours(rng.i64(24..=5 * 24));
        events.push(Event {
            at: reversed,
            device,
            action: Action::Reverse {
                reference: reference.clone(),
            },
        });
        let again = reversed + SignedDuration::from_hours(rng.i64(24..=4 * 24));
        if again < end {
            events.push(Event {
                at: again,
                device,
                action: Action::Pay {
                    reference: format!("{reference}-again"),
                    amount,
                    received: again,
                    duplicate: false,
                    same_key: false,
                },
            });
        }
    }
}

fn draw_overrides(
    rng: &mut fastrand::Rng,
    device: u32,
    b: &Borrower,
    start: Timestamp,
    _end: Timestamp,
    events: &mut Vec<Event>,
) {
    let tz = TimeZone::get(b.time_zone).expect("a bundled time zone");
    let after_a_due_date = |rng: &mut fastrand::Rng, days: std::ops::RangeInclusive<i64>| {
        let (due, _) = *choose(rng, &b.installments);
        local(
            &tz,
            due + rng.i64(days).days(),
            rng.i8(8..=18),
            rng.i8(0..60),
        )
        .max(start + SignedDuration::from_mins(1))
    };
    if rng.u32(0..100) < 4 {
        let at = after_a_due_date(rng, 2..=6);
        events.push(Event {
            at,
            device,
            action: Action::Hardship {
                days: rng.u32(3..=7),
            },
        });
    }
    if rng.u32(0..100) < 4 {
        let at = after_a_due_date(rng, 4..=8);
        events.push(Event {
            at,
            device,
            action: Action::ProvisionalUnlock {
                hours: rng.u32(24..=72),
            },
        });
    }
}

/// An appeal, for a few borrowers, opened some days after a due date (when the phone is most
/// likely to show a reminder or a lock, and with it the status code the form asks for), and
/// answered some hours or days later: sometimes after the response deadline, so that a payment
/// appeal's provisional unlock begins.
fn draw_disputes(
    rng: &mut fastrand::Rng,
    device: u32,
    b: &Borrower,
    start: Timestamp,
    events: &mut Vec<Event>,
) {
    if rng.u32(0..100) >= 5 {
        return;
    }
    let tz = TimeZone::get(b.time_zone).expect("a bundled time zone");
    let (due, _) = *choose(rng, &b.installments);
    let at = local(
        &tz,
        due + rng.i64(1..=8).days(),
        rng.i8(8..=20),
        rng.i8(0..60),
    )
    .max(start + SignedDuration::from_mins(1));
    let claim = match rng.u32(0..100) {
        0..50 => ClaimKind::Paid,
        50..85 => ClaimKind::WrongLock,
        _ => ClaimKind::Owner,
    };
    events.push(Event {
        at,
        device,
        action: Action::Appeal { claim },
    });
    let hours = match rng.u32(0..10) {
        0..7 => rng.i64(2..=48),
        _ => rng.i64(73..=7 * 24),
    };
    events.push(Event {
        at: at + SignedDuration::from_hours(hours) + SignedDuration::from_mins(rng.i64(0..60)),
        device,
        action: Action::AnswerAppeal { accept: rng.bool() },
    });
}

/// For a few phones, a manual lock lifted hours or days later; for a few others, a new SIM
/// card, which the financier accepts days later for most.
fn draw_financier_acts(
    rng: &mut fastrand::Rng,
    device: u32,
    start: Timestamp,
    end: Timestamp,
    events: &mut Vec<Event>,
) {
    let mut act = |at, action| events.push(Event { at, device, action });
    if rng.u32(0..100) < 3 {
        let at = between(rng, start, end);
        act(at, Action::ManualLock);
        let lifted = at + SignedDuration::from_mins(rng.i64(30..=4 * 24 * 60));
        act(lifted, Action::ManualUnlock);
    }
    if rng.u32(0..100) < 5 {
        let at = between(rng, start, end);
        act(at, Action::SimChange);
        if rng.u32(0..100) < 60 {
            let accepted = at + SignedDuration::from_mins(rng.i64(60..=6 * 24 * 60));
            act(accepted, Action::AcceptSimChange);
        }
    }
}

fn draw_phone(
    rng: &mut fastrand::Rng,
    device: u32,
    start: Timestamp,
    end: Timestamp,
    events: &mut Vec<Event>,
) {
    // Spells offline, not overlapping: hours mostly, days often, weeks now and then.
    let spells = *choose(rng, &[0, 0, 1, 1, 2, 3]);
    let mut from = start;
    for _ in 0..spells {
        let leave = between(rng, from, end);
        let hours = match rng.u32(0..10) {
            0..7 => rng.i64(1..=12),
            7..9 => rng.i64(24..=4 * 24),
            _ => rng.i64(7 * 24..=21 * 24),
        };
        let back =
            leave + SignedDuration::from_hours(hours) + SignedDuration::from_mins(rng.i64(0..60));
        events.push(Event {
            at: leave,
            device,
            action: Action::Offline,
        });
        events.push(Event {
            at: back,
            device,
            action: Action::Online,
        });
        from = back + SignedDuration::from_mins(1);
        if from >= end {
            break;
        }
    }
    if rng.u32(0..100) < 5 {
        let by = rng.i64(3600..=40 * 86_400) * if rng.bool() { 1 } else { -1 };
        events.push(Event {
            at: between(rng, start, end),
            device,
            action: Action::ShiftWallClock { by },
        });
    }
    if rng.u32(0..100) < 3 {
        events.push(Event {
            at: between(rng, start, end),
            device,
            action: Action::FactoryReset,
        });
    }
}

/// A whole minute between `from` and `to` (or `from`, when they meet).
fn between(rng: &mut fastrand::Rng, from: Timestamp, to: Timestamp) -> Timestamp {
    let minutes = to.duration_since(from).as_mins().max(1);
    from + SignedDuration::from_mins(rng.i64(0..minutes))
}

fn choose<'a, T>(rng: &mut fastrand::Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(0..items.len())]
}
