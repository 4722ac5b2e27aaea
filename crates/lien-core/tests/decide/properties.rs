//! Properties of `decide` over generated plans, payments, overrides, policies and instants.

use jiff::civil::{Date, Time, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use lien_core::*;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const ZONES: [&str; 6] = [
    "UTC",
    "Africa/Nairobi",
    "Asia/Kolkata",
    "America/New_York",
    "America/Santiago",
    "Europe/London",
];

fn currency() -> Currency {
    Currency::parse("KES").unwrap()
}

fn base() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn seconds_after_base(s: i64) -> Timestamp {
    base() + SignedDuration::from_secs(s)
}

const DAY: i64 = 86_400;

#[derive(Debug, Clone)]
struct Case {
    plan: InstallmentPlan,
    policy: LockPolicy,
    payments: Vec<Payment>,
    reversals: Vec<Reversal>,
    overrides: Vec<Override>,
    delivery: Delivery,
    now: Timestamp,
}

impl Case {
    fn log(&self) -> PaymentLog {
        PaymentLog::new(currency(), self.payments.clone(), self.reversals.clone()).unwrap()
    }

    fn decide_at(&self, now: Timestamp) -> Decision {
        decide(
            &self.plan,
            &self.log(),
            &self.overrides,
            &self.policy,
            &self.delivery,
            now,
        )
    }

    fn decide(&self) -> Decision {
        self.decide_at(self.now)
    }
}

fn plan() -> impl Strategy<Value = InstallmentPlan> {
    (
        0..ZONES.len(),
        0i64..60,
        prop::collection::vec((1i64..40, 1i64..100_000), 1..8),
    )
        .prop_map(|(zone, start, steps)| {
            let mut due = date(2026, 1, 1)
                .checked_add(Span::new().days(start))
                .unwrap();
            let installments = steps
                .into_iter()
                .map(|(gap, amount)| {
                    due = due.checked_add(Span::new().days(gap)).unwrap();
                    Installment {
                        due,
                        amount: Money::new(amount, currency()),
                    }
                })
                .collect();
            InstallmentPlan::new(
                TimeZone::get(ZONES[zone]).unwrap(),
                Money::zero(currency()),
                installments,
            )
            .unwrap()
        })
}

fn policy() -> impl Strategy<Value = LockPolicy> {
    let custom = (
        0u32..4,
        // The largest minimum allowed means "practically never restrict"; it must not break
        // the date arithmetic.
        prop_oneof![4 => 0u32..20, 1 => Just(PolicySettings::MAX_DAYS_PAST_DUE)],
        0u8..=100,
        prop::collection::vec((1u32..10, 0u32..10), 0..3),
        prop::collection::vec((1u32..15, any::<bool>()), 0..3),
        prop::option::of((0i8..24, prop::sample::select(vec![0i8, 30]), 0i8..24)),
        prop::option::of(0u32..10),
        prop_oneof![1 => Just(0u32), 1 => 1u32..10],
        prop_oneof![
            Just(SimChangeRule::Ignore),
            Just(SimChangeRule::Remind),
            (0u32..5).prop_map(|after_days| SimChangeRule::Restrict { after_days }),
        ],
    )
        .prop_filter_map(
            "valid policy",
            |(
                grace,
                min_dpd,
                percent,
                notices,
                escalations,
                quiet,
                fallback,
                remind,
                sim_change,
            )| {
                let mut day = grace;
                let notices = notices
                    .into_iter()
                    .map(|(step, cure)| {
                        day += step;
                        Notice {
                            at_days_past_due: day,
                            cure_days: cure,
                        }
                    })
                    .collect();
                let mut day = grace;
                let mut locked = false;
                let escalations = escalations
                    .into_iter()
                    .map(|(step, lock)| {
                        day += step;
                        locked |= lock;
                        Escalation {
                            at_days_past_due: day,
                            restriction: if locked {
                                Restriction::Locked
                            } else {
                                Restriction::Restricted
                            },
                        }
                    })
                    .collect();
                LockPolicy::new(PolicySettings {
                    grace_days: grace,
                    min_days_past_due: min_dpd,
                    min_arrears_percent: percent,
                    notices,
                    escalations,
                    quiet_hours: quiet.map(|(s, minute, e)| QuietHours {
                        start: Time::constant(s, minute, 0, 0),
                        end: Time::constant(e, 30, 0, 0),
                    }),
                    notice_fallback_days: fallback,
                    remind_days_before: remind,
                    sim_change,
                    ..crate::plain_settings()
                })
                .ok()
            },
        );
    prop_oneof![
        prop::sample::select(Preset::ALL.to_vec()).prop_map(LockPolicy::preset),
        custom,
    ]
}

fn payments() -> impl Strategy<Value = (Vec<Payment>, Vec<Reversal>)> {
    prop::collection::vec(
        (
            1i64..150_000,
            0i64..200 * DAY,
            prop::option::of(0i64..30 * DAY),
        ),
        0..6,
    )
    .prop_map(|entries| {
        let mut payments = Vec::new();
        let mut reversals = Vec::new();
        for (i, (amount, at, reversed_after)) in entries.into_iter().enumerate() {
            let reference = PaymentRef::parse(&format!("P{i}")).unwrap();
            let received_at = seconds_after_base(at);
            if let Some(after) = reversed_after {
                reversals.push(Reversal {
                    reference: reference.clone(),
                    at: received_at + SignedDuration::from_secs(after),
                });
            }
            payments.push(Payment {
                reference,
                amount: Money::new(amount, currency()),
                received_at,
            });
        }
        (payments, reversals)
    })
}

fn overrides() -> impl Strategy<Value = Vec<Override>> {
    prop::collection::vec(
        (0u8..6, 0i64..200 * DAY, prop::option::of(1i64..40 * DAY)),
        0..3,
    )
    .prop_map(|entries| {
        entries
            .into_iter()
            .map(|(kind, from, length)| {
                let from = seconds_after_base(from);
                let end = from + SignedDuration::from_secs(length.unwrap_or(7 * DAY));
                let (kind, until) = match kind {
                    0 => (
                        OverrideKind::ManualLock {
                            reason: "manual".into(),
                        },
                        length.map(|_| end),
                    ),
                    1 => (OverrideKind::ProvisionalUnlock, Some(end)),
                    2 => (OverrideKind::HardshipPause, Some(end)),
                    3 => (OverrideKind::DisputeFreeze, length.map(|_| end)),
                    4 => (OverrideKind::SimChange, length.map(|_| end)),
                    _ => (OverrideKind::Release, None),
                };
                Override::new(kind, from, until).unwrap()
            })
            .collect()
    })
}

/// What reached the phone: an enrollment up to 60 days before `now` (or none), notices served
/// at any instants (the rule never serves one before it is available), a phone that may
/// never have been seen, and a SIM-change notice served at any instant or not at all.
fn delivery(now: i64) -> impl Strategy<Value = Delivery> {
    (
        prop::option::of(0i64..60 * DAY),
        prop::collection::vec(0i64..260 * DAY, 0..3),
        any::<bool>(),
        prop::option::of(0i64..260 * DAY),
    )
        .prop_map(
            move |(enrolled_before, served, never_seen, sim_served)| Delivery {
                enrolled_at: enrolled_before.map(|before| seconds_after_base(now - before)),
                notices_served: served.into_iter().map(seconds_after_base).collect(),
                never_seen,
                sim_change_served: sim_served.map(seconds_after_base),
            },
        )
}

prop_compose! {
    fn case(with_overrides: bool)(
        plan in plan(),
        policy in policy(),
        (payments, reversals) in payments(),
        overrides in overrides(),
        (now, delivery) in (0i64..260 * DAY).prop_flat_map(|now| (Just(now), delivery(now))),
    ) -> Case {
        Case {
            plan,
            policy,
            payments,
            reversals,
            overrides: if with_overrides { overrides } else { vec![] },
            delivery,
            now: seconds_after_base(now),
        }
    }
}

/// Zones whose clocks change in the months the cases cover: Santiago turns back from 24:00 to
/// 23:00 in April and forward in September, Lord Howe moves by half an hour, the others by an
/// hour at night.
const DAYLIGHT_SAVING_ZONES: [&str; 5] = [
    "America/Santiago",
    "Australia/Lord_Howe",
    "Australia/Sydney",
    "America/New_York",
    "Europe/London",
];

/// A case whose plan is in a zone that changes its clocks, decided within a day and a half of
/// a change, where the quiet hours may be cut short, repeated or skipped.
fn daylight_saving_case() -> impl Strategy<Value = Case> {
    (
        case(true),
        0..DAYLIGHT_SAVING_ZONES.len(),
        0usize..2,
        prop_oneof![1 => Just(0i64), 4 => -36 * 3_600i64..36 * 3_600],
    )
        .prop_map(|(case, zone, which, offset)| {
            let tz = TimeZone::get(DAYLIGHT_SAVING_ZONES[zone]).unwrap();
            let change = tz
                .following(base())
                .nth(which)
                .expect("these zones change their clocks twice a year")
                .timestamp();
            let plan = InstallmentPlan::new(
                tz,
                case.plan.down_payment(),
                case.plan.installments().to_vec(),
            )
            .unwrap();
            let now = change + SignedDuration::from_secs(offset);
            // The server decides only after enrollment.
            let delivery = Delivery {
                enrolled_at: case.delivery.enrolled_at.map(|e| e.min(now)),
                ..case.delivery.clone()
            };
            Case {
                plan,
                now,
                delivery,
                ..case
            }
        })
}

/// The first instant of the `n`-th day past due of an installment due on `since`.
fn day_past_due(tz: &TimeZone, since: Date, n: u32) -> Timestamp {
    since
        .checked_add(Span::new().days(i64::from(n)))
        .unwrap()
        .to_zoned(tz.clone())
        .unwrap()
        .timestamp()
}

const NANO: SignedDuration = SignedDuration::from_nanos(1);

/// A restriction comes only after the grace period, every notice and its cure period, the
/// minimum days past due and the minimum arrears, and never starts in the quiet hours.
fn restriction_follows_the_policy(case: &Case) -> Result<(), TestCaseError> {
    let d = case.decide();
    if d.state.severity() < DeviceState::Restricted.severity() {
        return Ok(());
    }
    let Reason::Overdue { since } = d.reason else {
        panic!("restricted without arrears: {d:?}");
    };
    let s = case.policy.settings();
    let tz = case.plan.time_zone();
    prop_assert!(d.amount_due.is_positive());
    prop_assert!(case.now >= day_past_due(tz, since, s.grace_days + 1));
    prop_assert!(case.now >= day_past_due(tz, since, s.min_days_past_due));
    for notice in &s.notices {
        prop_assert!(
            case.now >= day_past_due(tz, since, notice.at_days_past_due + notice.cure_days)
        );
    }
    prop_assert_eq!(d.notices_served, s.notices.len());
    notices_were_served_and_cured(case, &d, since)?;
    let largest = case.plan.largest_installment().minor();
    prop_assert!(
        i128::from(d.amount_due.minor()) * 100
            >= i128::from(largest) * i128::from(s.min_arrears_percent)
    );
    if let Some(quiet) = s.quiet_hours {
        // Inside the quiet hours a restriction is only one that was already there.
        let time = tz.to_datetime(case.now).time();
        if quiet.contains(time) {
            let earlier = case.decide_at(case.now - SignedDuration::from_secs(1));
            prop_assert!(
                earlier.state.severity() >= d.state.severity(),
                "restriction started in quiet hours: {earlier:?} -> {d:?}"
            );
        }
    }
    Ok(())
}

/// The earliest instant at which the local clock shows `local` (either reading of a time
/// shown twice, or of a time a daylight-saving gap skips): no later than the decision's own
/// reading of it.
fn earliest_at_local(tz: &TimeZone, local: jiff::civil::DateTime) -> Timestamp {
    use jiff::tz::AmbiguousOffset::*;
    let offsets = match tz.to_ambiguous_timestamp(local).offset() {
        Unambiguous { offset } => vec![offset],
        Gap { before, after } | Fold { before, after } => vec![before, after],
    };
    offsets
        .into_iter()
        .filter_map(|offset| offset.to_timestamp(local).ok())
        .min()
        .unwrap()
}

/// Every notice of the policy was served (at the instant recorded for it, or by the fallback
/// for a phone never seen), not before its day past due, and its cure period, counted from
/// its service, is over at `now`.
fn notices_were_served_and_cured(
    case: &Case,
    d: &Decision,
    since: Date,
) -> Result<(), TestCaseError> {
    let s = case.policy.settings();
    let tz = case.plan.time_zone();
    prop_assert_eq!(d.notices_served_at.len(), s.notices.len());
    prop_assert_eq!(d.pending_notice, None);
    for (k, (notice, &served)) in s.notices.iter().zip(&d.notices_served_at).enumerate() {
        prop_assert!(
            served <= case.now,
            "notice {k} served at {served}, after now"
        );
        prop_assert!(served >= day_past_due(tz, since, notice.at_days_past_due));
        match case.delivery.notices_served.get(k) {
            Some(&recorded) => prop_assert!(served >= recorded),
            None => prop_assert!(
                case.delivery.never_seen && s.notice_fallback_days.is_some(),
                "notice {k} counted as served although nothing served it"
            ),
        }
        let local = tz.to_datetime(served);
        let cure_ends = earliest_at_local(
            tz,
            local
                .date()
                .checked_add(Span::new().days(i64::from(notice.cure_days)))
                .unwrap()
                .to_datetime(local.time()),
        );
        prop_assert!(
            case.now >= cure_ends,
            "restricted at {} inside notice {k}'s cure period (served {served}, ends {cure_ends})",
            case.now
        );
    }
    Ok(())
}

/// The decision is the same at every instant before `next_change`.
fn nothing_changes_before_next_change(case: &Case, fraction: f64) -> Result<(), TestCaseError> {
    let d = case.decide();
    let Some(next) = d.next_change else {
        // Nothing is scheduled: a year later the answer is the same.
        let later = case.decide_at(case.now + SignedDuration::from_hours(24 * 365));
        prop_assert_eq!(later.state, d.state);
        prop_assert_eq!(later.reason, d.reason);
        return Ok(());
    };
    prop_assert!(next > case.now);
    let span = next.duration_since(case.now);
    let inside = case.now + span.mul_f64(fraction);
    let last = next - NANO;
    for t in [inside, last] {
        prop_assert_eq!(
            &case.decide_at(t),
            &d,
            "decision changed at {} before {}",
            t,
            next
        );
    }
    Ok(())
}

/// Where the decision changes next, it gets no worse than a reminder inside the quiet hours,
/// and no worse under a dispute freeze than it was just before the freeze began.
fn no_restriction_starts_in_quiet_hours_nor_under_a_freeze(
    case: &Case,
) -> Result<(), TestCaseError> {
    // Transitions happen exactly at next_change, so that is where to look.
    let Some(next) = case.decide().next_change else {
        return Ok(());
    };
    let just_before = next - NANO;
    let before = case.decide_at(just_before);
    let after = case.decide_at(next);
    if matches!(after.reason, Reason::ManualLock { .. }) {
        return Ok(());
    }
    let tz = case.plan.time_zone();
    if let Some(quiet) = case.policy.settings().quiet_hours
        && quiet.contains(tz.to_datetime(next).time())
    {
        let allowed = before
            .state
            .severity()
            .max(DeviceState::Reminder.severity());
        prop_assert!(
            after.state.severity() <= allowed,
            "restriction started in quiet hours at {next}: {before:?} -> {after:?}"
        );
    }
    // Under a freeze the device may come back up to where it was just before the freeze began
    // (arrears a chargeback brings back), never beyond.
    let unlocked_before = case
        .overrides
        .iter()
        .any(|o| o.kind() == &OverrideKind::ProvisionalUnlock && o.in_effect(just_before));
    if unlocked_before {
        return Ok(());
    }
    for freeze in case.overrides.iter().filter(|o| {
        o.kind() == &OverrideKind::DisputeFreeze && o.in_effect(just_before) && o.in_effect(next)
    }) {
        let began = case.decide_at(freeze.from() - NANO).state.severity();
        prop_assert!(
            after.state.severity() <= before.state.severity().max(began),
            "escalated under a dispute freeze at {next}: {before:?} -> {after:?}"
        );
    }
    Ok(())
}

/// The number of cases `PROPTEST_CASES` asks for, or `default`.
fn cases_unless_set(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

proptest! {
    // A failing case's seed is written to `decide_properties.proptest-regressions` beside this
    // file; committed, it is replayed first on every run, so a failure found once stays found.
    // `PROPTEST_CASES` overrides the number of cases (a `cases` written here would override
    // it, so it is read here).
    #![proptest_config(ProptestConfig {
        cases: cases_unless_set(512),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_restriction_unless_grace_notices_and_minimums_are_past(case in case(false)) {
        restriction_follows_the_policy(&case)?;
    }

    #[test]
    fn no_restriction_before_a_served_notice_and_its_cure_period(case in case(true)) {
        let d = case.decide();
        if let (DeviceState::Restricted | DeviceState::Locked, Reason::Overdue { since }) =
            (d.state, &d.reason)
        {
            notices_were_served_and_cured(&case, &d, *since)?;
        }
    }

    #[test]
    fn a_device_enrolled_in_the_quiet_hours_is_not_restricted_then(case in case(false)) {
        let mut enrolled = case.clone();
        enrolled.delivery.enrolled_at = Some(case.now);
        let d = enrolled.decide();
        if let Some(quiet) = case.policy.settings().quiet_hours
            && quiet.contains(case.plan.time_zone().to_datetime(case.now).time())
        {
            prop_assert!(d.state.severity() <= DeviceState::Reminder.severity(), "{d:?}");
        }
    }

    #[test]
    fn paying_the_full_arrears_yields_active(case in case(true)) {
        let d = case.decide();
        let manual = case.overrides.iter().any(|o| {
            matches!(o.kind(), OverrideKind::ManualLock { .. } | OverrideKind::SimChange)
                && o.in_effect(case.now)
        });
        if !d.amount_due.is_positive() || manual {
            // Nothing to cure, or an explicit lock or a SIM change that payment alone does
            // not lift.
            return Ok(());
        }
        let mut paid = case.clone();
        paid.payments.push(Payment {
            reference: PaymentRef::parse("CURE").unwrap(),
            amount: d.amount_due,
            received_at: case.now,
        });
        let after = paid.decide();
        // Nothing is late any more; the one reminder left is that of the next due date
        // (shown over by a hardship pause, if one is in effect).
        prop_assert!(after.amount_due.is_zero());
        prop_assert!(
            after.state.severity() == 0
                || (after.state == DeviceState::Reminder
                    && matches!(after.reason, Reason::DueSoon { .. } | Reason::HardshipPause { .. })),
            "{:?}",
            after
        );
    }

    #[test]
    fn more_payment_never_yields_more_restriction(
        case in case(true),
        extra in 1i64..200_000,
        at in 0i64..260 * DAY,
    ) {
        let before = case.decide();
        let mut more = case.clone();
        more.payments.push(Payment {
            reference: PaymentRef::parse("EXTRA").unwrap(),
            amount: Money::new(extra, currency()),
            received_at: seconds_after_base(at),
        });
        let after = more.decide();
        prop_assert!(after.state.severity() <= before.state.severity(), "{before:?} -> {after:?}");
    }

    #[test]
    fn released_is_final(case in case(true), release_at in 0i64..260 * DAY, later in 0i64..400 * DAY) {
        let mut released = case.clone();
        let at = seconds_after_base(release_at);
        released.overrides.push(Override::new(OverrideKind::Release, at, None).unwrap());
        released.now = at + SignedDuration::from_secs(later);
        let d = released.decide();
        prop_assert_eq!(d.state, DeviceState::Released);
        prop_assert_eq!(d.next_change, None);
    }

    #[test]
    fn input_order_does_not_matter(case in case(true), rotate in 0usize..6) {
        let mut shuffled = case.clone();
        shuffled.payments.reverse();
        let n = shuffled.payments.len().max(1);
        shuffled.payments.rotate_left(rotate % n);
        shuffled.reversals.reverse();
        shuffled.overrides.reverse();
        prop_assert_eq!(case.decide(), shuffled.decide());
    }

    #[test]
    fn next_change_is_in_the_future_and_nothing_changes_before_it(
        case in case(true),
        fraction in 0.0f64..1.0,
    ) {
        nothing_changes_before_next_change(&case, fraction)?;
    }

    #[test]
    fn at_each_change_no_restriction_starts_in_quiet_hours_nor_under_a_freeze(case in case(true)) {
        no_restriction_starts_in_quiet_hours_nor_under_a_freeze(&case)?;
    }

    #[test]
    fn across_daylight_saving_changes_the_quiet_hours_and_next_change_hold(
        case in daylight_saving_case(),
        fraction in 0.0f64..1.0,
    ) {
        let mut without_overrides = case.clone();
        without_overrides.overrides.clear();
        restriction_follows_the_policy(&without_overrides)?;
        nothing_changes_before_next_change(&case, fraction)?;
        no_restriction_starts_in_quiet_hours_nor_under_a_freeze(&case)?;
    }
}
