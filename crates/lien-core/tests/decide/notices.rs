//! Stories of notices that must reach the phone before their cure period runs (issue 20), and
//! of the reminder before a due date.

use jiff::Timestamp;
use jiff::civil::date;
use jiff::tz::TimeZone;
use lien_core::*;

fn kes(minor: i64) -> Money {
    Money::new(minor, Currency::parse("KES").unwrap())
}

/// An instant given in Nairobi local time.
fn local(s: &str) -> Timestamp {
    format!("{s}[Africa/Nairobi]")
        .parse::<jiff::Zoned>()
        .unwrap()
        .timestamp()
}

/// Weekly installments of KES 500.00 from 2 March 2026, in Nairobi, nothing paid.
fn plan() -> InstallmentPlan {
    let first = date(2026, 3, 2);
    InstallmentPlan::new(
        TimeZone::get("Africa/Nairobi").unwrap(),
        kes(0),
        (0..6)
            .map(|w| Installment {
                due: first.checked_add(jiff::Span::new().weeks(w)).unwrap(),
                amount: kes(50_000),
            })
            .collect(),
    )
    .unwrap()
}

/// The decision on the Kenya preset (notice on day 1 with 3 days to cure, locked from day 4,
/// no locks 20:00-07:00, reminder 3 days ahead, fallback 3 days) at `at`, Nairobi time.
fn kenya(delivery: &Delivery, at: &str) -> Decision {
    under(&LockPolicy::preset(Preset::Kenya), delivery, at)
}

fn under(policy: &LockPolicy, delivery: &Delivery, at: &str) -> Decision {
    let plan = plan();
    let nothing = PaymentLog::empty(plan.currency());
    decide(&plan, &nothing, &[], policy, delivery, local(at))
}

/// A phone that checks in but has acknowledged the notices served at these instants.
fn seen(served: &[&str]) -> Delivery {
    Delivery {
        notices_served: served.iter().map(|s| local(s)).collect(),
        ..Delivery::default()
    }
}

#[test]
fn a_notice_the_phone_never_acknowledged_never_locks_it() {
    for at in ["2026-03-06T12:00", "2026-03-20T12:00"] {
        let d = kenya(&seen(&[]), at);
        assert_eq!(d.state, DeviceState::Reminder, "{at}");
        assert_eq!(d.notices_served, 0);
        assert_eq!(
            d.pending_notice,
            Some(PendingNotice {
                index: 0,
                cure_days: 3
            })
        );
        assert_eq!(d.next_restriction, None);
    }
}

#[test]
fn the_cure_period_runs_from_the_acknowledgement() {
    // The phone acknowledged the notice at 10:00 on day 3: three days to pay from then.
    let served = seen(&["2026-03-05T10:00"]);
    let before = kenya(&served, "2026-03-08T09:59");
    assert_eq!(before.state, DeviceState::Reminder);
    assert_eq!(before.notices_served, 1);
    assert_eq!(before.notices_served_at, vec![local("2026-03-05T10:00")]);
    assert_eq!(before.pending_notice, None);
    assert_eq!(
        before.next_restriction,
        Some((local("2026-03-08T10:00"), DeviceState::Locked))
    );
    assert_eq!(
        kenya(&served, "2026-03-08T10:00").state,
        DeviceState::Locked
    );
}

#[test]
fn a_phone_never_seen_is_served_by_the_fallback_rule() {
    let unseen = Delivery {
        never_seen: true,
        ..Delivery::default()
    };
    // Available from day 1 (3 March), served three days later, cured three days after that:
    // 9 March at midnight, in the quiet hours, so the lock waits for 07:00.
    let waiting = kenya(&unseen, "2026-03-05T23:59");
    assert_eq!(waiting.notices_served, 0);
    assert_eq!(waiting.next_change, Some(local("2026-03-06T00:00")));
    let served = kenya(&unseen, "2026-03-06T00:00");
    assert_eq!(served.notices_served_at, vec![local("2026-03-06T00:00")]);
    assert_eq!(
        served.next_restriction,
        Some((local("2026-03-09T07:00"), DeviceState::Locked))
    );
    assert_eq!(
        kenya(&unseen, "2026-03-09T07:00").state,
        DeviceState::Locked
    );
}

#[test]
fn a_phone_never_seen_enrolled_overdue_has_the_fallback_days_from_its_enrollment() {
    // Enrolled on 20 March, eighteen days past due, and never switched on. The notice was
    // available from 3 March, but nobody could give it before the enrollment: served on
    // 23 March at noon, cured on 26 March at noon, and only then locked.
    let unseen = Delivery {
        enrolled_at: Some(local("2026-03-20T12:00")),
        never_seen: true,
        ..Delivery::default()
    };
    let enrolled = kenya(&unseen, "2026-03-20T12:00");
    assert_eq!(enrolled.state, DeviceState::Reminder);
    assert_eq!(enrolled.notices_served, 0);
    let served = kenya(&unseen, "2026-03-23T12:00");
    assert_eq!(served.notices_served_at, vec![local("2026-03-23T12:00")]);
    assert_eq!(
        served.next_restriction,
        Some((local("2026-03-26T12:00"), DeviceState::Locked))
    );
    assert_eq!(
        kenya(&unseen, "2026-03-26T11:59").state,
        DeviceState::Reminder
    );
    assert_eq!(
        kenya(&unseen, "2026-03-26T12:00").state,
        DeviceState::Locked
    );
}

#[test]
fn an_overdue_enrollment_starts_at_a_notice_even_at_night() {
    // Enrolled at 22:00 on 20 March, eighteen days past due: a notice, not a lock.
    let enrolled = Delivery {
        enrolled_at: Some(local("2026-03-20T22:00")),
        ..Delivery::default()
    };
    let d = kenya(&enrolled, "2026-03-20T22:00");
    assert_eq!(d.state, DeviceState::Reminder);
    assert_eq!(d.pending_notice.map(|n| n.index), Some(0));

    // A policy with no notice at all still holds the quiet hours for a new device.
    let no_notice = LockPolicy::new(PolicySettings {
        notices: vec![],
        ..Preset::Kenya.settings()
    })
    .unwrap();
    let d = under(&no_notice, &enrolled, "2026-03-20T22:00");
    assert_eq!(d.state, DeviceState::Reminder);
    assert_eq!(
        d.next_restriction,
        Some((local("2026-03-21T07:00"), DeviceState::Locked))
    );
    assert_eq!(
        under(&no_notice, &enrolled, "2026-03-21T07:00").state,
        DeviceState::Locked
    );
}

#[test]
fn a_reminder_before_the_due_date_names_the_amount_and_the_earliest_lock() {
    assert_eq!(
        kenya(&seen(&[]), "2026-02-26T23:59").state,
        DeviceState::Active
    );
    let d = kenya(&seen(&[]), "2026-02-27T00:00");
    assert_eq!(d.state, DeviceState::Reminder);
    assert_eq!(
        d.reason,
        Reason::DueSoon {
            due: date(2026, 3, 2),
            amount: kes(50_000)
        }
    );
    // Served when shown on 3 March, three days to cure, then after the quiet hours.
    assert_eq!(
        d.next_restriction,
        Some((local("2026-03-06T07:00"), DeviceState::Locked))
    );
}

#[test]
fn new_fields_are_bounded_and_named() {
    let err = LockPolicy::new(PolicySettings {
        remind_days_before: 32,
        ..Preset::Kenya.settings()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "remind_days_before is 32; it must be at most 31"
    );
    let err = LockPolicy::new(PolicySettings {
        notice_fallback_days: Some(366),
        ..Preset::Kenya.settings()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "notice_fallback_days is 366; it must be at most 365"
    );
}

#[test]
fn a_notice_hidden_by_a_dispute_freeze_is_not_pending() {
    // A dispute freeze opened while the plan was in good standing (before the reminder of 27
    // February) holds the phone active: its screen speaks of the dispute, so no notice is
    // shown and none can be served.
    let freeze = Override::new(
        OverrideKind::DisputeFreeze,
        local("2026-02-20T12:00"),
        Some(local("2026-03-20T12:00")),
    )
    .unwrap();
    let plan = plan();
    let nothing = PaymentLog::empty(plan.currency());
    let policy = LockPolicy::preset(Preset::Kenya);
    let d = decide(
        &plan,
        &nothing,
        &[freeze],
        &policy,
        &seen(&[]),
        local("2026-03-04T12:00"),
    );
    assert_eq!(d.reason, Reason::DisputeFreeze);
    assert_eq!(d.pending_notice, None);
}

/// The Kenya preset with a SIM rule that restricts two days after its notice, and a SIM change
/// reported on 10 February at 10:00.
fn sim_restricting_kenya() -> (LockPolicy, Override) {
    let policy = LockPolicy::new(PolicySettings {
        sim_change: SimChangeRule::Restrict { after_days: 2 },
        ..Preset::Kenya.settings()
    })
    .unwrap();
    let changed = Override::new(OverrideKind::SimChange, local("2026-02-10T10:00"), None).unwrap();
    (policy, changed)
}

#[test]
fn a_restricting_sim_rule_counts_its_days_from_the_acknowledged_notice() {
    let (policy, changed) = sim_restricting_kenya();
    let plan = plan();
    let nothing = PaymentLog::empty(plan.currency());
    let at = |delivery: &Delivery, when: &str| {
        decide(
            &plan,
            &nothing,
            std::slice::from_ref(&changed),
            &policy,
            delivery,
            local(when),
        )
    };
    // Never acknowledged: a reminder for as long as it lasts, never a restriction.
    let unseen = at(&seen(&[]), "2026-02-20T10:00");
    assert_eq!(unseen.state, DeviceState::Reminder);
    assert_eq!(
        unseen.reason,
        Reason::SimChanged {
            since: local("2026-02-10T10:00")
        }
    );
    assert_eq!(unseen.sim_change.map(|s| s.served), Some(false));
    // Acknowledged on 15 February at 21:00: two days on falls in the quiet hours, so 07:00.
    let served = Delivery {
        sim_change_served: Some(local("2026-02-15T21:00")),
        ..seen(&[])
    };
    let before = at(&served, "2026-02-18T06:59");
    assert_eq!(before.state, DeviceState::Reminder);
    assert_eq!(
        before.next_restriction,
        Some((local("2026-02-18T07:00"), DeviceState::Restricted))
    );
    assert_eq!(
        at(&served, "2026-02-18T07:00").state,
        DeviceState::Restricted
    );
}

#[test]
fn a_phone_restricted_for_its_sim_still_gets_the_arrears_notice_and_is_locked_after_it() {
    let (policy, changed) = sim_restricting_kenya();
    let plan = plan();
    let nothing = PaymentLog::empty(plan.currency());
    let at = |notices: &[&str], when: &str| {
        let delivery = Delivery {
            sim_change_served: Some(local("2026-02-10T12:00")),
            ..seen(notices)
        };
        decide(
            &plan,
            &nothing,
            std::slice::from_ref(&changed),
            &policy,
            &delivery,
            local(when),
        )
    };
    // The first installment (2 March) is a day late: the SIM change keeps the phone
    // restricted, and the arrears' notice waits to be served all the same.
    let day_one = at(&[], "2026-03-03T12:00");
    assert_eq!(day_one.state, DeviceState::Restricted);
    assert_eq!(
        day_one.reason,
        Reason::SimChanged {
            since: local("2026-02-10T10:00")
        }
    );
    assert_eq!(day_one.pending_notice.map(|n| n.index), Some(0));
    // Served then, its three days to cure ran out: the arrears lock the phone.
    let after = at(&["2026-03-03T12:00"], "2026-03-07T12:00");
    assert_eq!(after.state, DeviceState::Locked);
    assert_eq!(
        after.reason,
        Reason::Overdue {
            since: date(2026, 3, 2)
        }
    );
}
