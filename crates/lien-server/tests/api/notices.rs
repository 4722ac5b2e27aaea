//! Fair notice (issue 20): a notice counts once it reached the borrower, and its cure period
//! runs from then. An overdue enrollment starts at a notice, never at a lock; a phone never seen
//! is served by the policy's fallback; a phone that is seen but never acknowledges the notice is
//! not locked by the server (its own lease locks it); a reminder before the due date names the
//! amount, the date and when the lock would come.
//!
//! Every story is on the Kenya preset: notice on day 1 with 3 days to cure, locked from day 4,
//! no locks 20:00-07:00 in Nairobi, reminder 3 days ahead, fallback 3 days.

use serde_json::Value;

use crate::common::{Backend, FinancedPhone, TestApp, World, imei, postgres_url, spawn_app};

/// The device's decision as the financier reads it.
async fn decision(app: &TestApp, key: &str, device_id: &str) -> Value {
    let r = app.get(&format!("/v1/devices/{device_id}"), key).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["decision"].clone()
}

/// Moves the server to `at` and lets the scheduler run (no phone involved).
async fn server_to(app: &TestApp, at: &str) {
    let at: jiff::Timestamp = at.parse().unwrap();
    let by = at.as_second() - app.clock_now().as_second();
    assert!(by >= 0);
    app.clock.advance(jiff::SignedDuration::from_secs(by));
    app.run_scheduler().await;
}

/// The text of the screen the phone shows, as the simulator draws it.
fn screen(phone: &lien_agent::sim::Phone) -> String {
    phone.render()
}

async fn an_overdue_enrollment_shows_a_notice_first_and_locks_after_its_cure_period(
    backend: Backend,
) {
    // Sold on 10 February with the 1 February installment already unpaid.
    let app = spawn_app(backend, "2026-02-10T09:00:00Z".parse().unwrap()).await;
    let (_, key) = app.financier("Duka Phones").await;
    let FinancedPhone {
        device_id,
        mut phone,
        ..
    } = app.financed_phone(&key, &app.base).await;

    // Enrolled, it was not locked: the first decision showed a notice, served to nobody yet.
    let history = app
        .get(&format!("/v1/devices/{device_id}/history"), &key)
        .await;
    let enrolled = &history.body["records"][0];
    assert_eq!(enrolled["action"], "enrolled");
    assert_eq!(enrolled["after"]["state"], "reminder", "{enrolled}");
    assert_eq!(enrolled["after"]["notice_pending"], true);
    assert_eq!(enrolled["after"]["notices_served"], 0);

    // The phone showed the notice at its first check-in and said so: served at 12:00 in
    // Nairobi, the lock comes three days later, and the screen says when.
    let served = decision(&app, &key, &device_id).await;
    assert_eq!(served["notices_served"], 1, "{served}");
    assert_eq!(served["state"], "reminder");
    assert!(
        screen(&phone).contains("Locked on 13 February 2026 at 12:00 unless KES 1,000.00 is paid."),
        "{}",
        screen(&phone)
    );
    let records = history.body["records"].as_array().unwrap();
    assert!(
        records.iter().any(|r| r["action"] == "notice_served"),
        "{}",
        history.body
    );

    // Half an hour before the cure period ends, nothing has happened; half an hour after it,
    // the device is locked, and the phone shows it at its next check-in.
    app.advance_to_with(&mut phone, "2026-02-13T11:30:00+03:00")
        .await;
    assert!(!crate::common::locked(&phone), "{}", screen(&phone));
    assert_eq!(decision(&app, &key, &device_id).await["state"], "reminder");
    app.advance_to_with(&mut phone, "2026-02-13T12:30:00+03:00")
        .await;
    assert_eq!(decision(&app, &key, &device_id).await["state"], "locked");
    phone.check_again().await;
    assert!(crate::common::locked(&phone), "{}", screen(&phone));
    app.running.stop().await;
}

async fn a_phone_never_seen_is_served_by_the_fallback_and_one_seen_by_its_acknowledgement(
    backend: Backend,
) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (financier_id, key) = app.financier("Duka Phones").await;
    // A: sold in its box, never switched on. B: switched on once, then kept off the network.
    let never_seen = app
        .enroll_device(&key, "C-A", &imei("35693803564380"), "SNA")
        .await;
    let b_imei = imei("35693803564381");
    let seen_once = app.enroll_device(&key, "C-B", &b_imei, "SNB").await;
    assert_eq!(app.hello(&b_imei, "SNB").await.status, 200);

    // Day 1 past due: both show the notice; neither has it served.
    server_to(&app, "2026-02-02T10:00:00+03:00").await;
    for device in [&never_seen, &seen_once] {
        let d = decision(&app, &key, device).await;
        assert_eq!(d["state"], "reminder", "{d}");
        assert_eq!(d["notice_pending"], true, "{d}");
        assert_eq!(d["notices_served"], 0, "{d}");
    }
    // The financier is told, so that it reaches the borrowers by its own means too.
    let outbox = app.outbox_events(&financier_id).await;
    let pending = outbox
        .iter()
        .filter(|e| e.event.event_type == "notice.pending")
        .count();
    assert_eq!(pending, 2);

    // Three days after the notice became available (midnight starting 2 February), A's notice
    // counts as served by the fallback: the financier had those days to reach the borrower by
    // its own means. Its three days to cure run from then, to midnight starting 8 February,
    // which falls in the quiet hours: the lock is set for 07:00.
    server_to(&app, "2026-02-05T10:00:00+03:00").await;
    let a = decision(&app, &key, &never_seen).await;
    assert_eq!(a["notices_served"], 1, "{a}");
    assert_eq!(a["state"], "reminder", "{a}");
    assert_eq!(a["next_restriction_at"], "2026-02-08T04:00:00Z", "{a}");
    assert_eq!(a["next_restriction_state"], "locked", "{a}");

    server_to(&app, "2026-02-08T06:30:00+03:00").await;
    assert_eq!(decision(&app, &key, &never_seen).await["state"], "reminder");
    server_to(&app, "2026-02-08T07:30:00+03:00").await;
    assert_eq!(decision(&app, &key, &never_seen).await["state"], "locked");

    // B was seen, so no fallback serves it: only its acknowledgement would. The server never
    // locks it; the phone's own lease does, offline, with its warnings.
    let b = decision(&app, &key, &seen_once).await;
    assert_eq!(b["state"], "reminder", "{b}");
    assert_eq!(b["notice_pending"], true, "{b}");
    assert_eq!(b["notices_served"], 0, "{b}");
    app.running.stop().await;
}

async fn a_reminder_three_days_before_the_due_date_names_the_amount_and_the_lock_date(
    backend: Backend,
) {
    let mut w = World::new(backend).await;
    // Four days before 1 February: nothing to say yet.
    w.advance_to("2026-01-28T10:00:00+03:00").await;
    w.assert_normal();

    // Three days before: the phone reminds, with the amount, the due date and the lock that
    // would follow if the notice of day 1 is acknowledged that morning.
    w.advance_to("2026-01-29T10:00:00+03:00").await;
    let shown = screen(&w.phone);
    assert!(shown.contains("Payment reminder"), "{shown}");
    assert!(
        shown.contains("KES 1,000.00 is due on 1 February 2026."),
        "{shown}"
    );
    assert!(
        shown.contains("Locked on 5 February 2026 at 07:00 unless KES 1,000.00 is paid."),
        "{shown}"
    );
    let d = decision(&w.app, &w.key, &w.device_id).await;
    assert_eq!(d["reason"]["code"], "due_soon", "{d}");

    // Paid before the due date: the reminder goes.
    w.pay("MPESA-EARLY", 100_000).await;
    w.advance(std::time::Duration::from_secs(7 * 3600)).await;
    w.assert_normal();
}

on_both_backends!(
    an_overdue_enrollment_shows_a_notice_first_and_locks_after_its_cure_period,
    a_phone_never_seen_is_served_by_the_fallback_and_one_seen_by_its_acknowledgement,
    a_reminder_three_days_before_the_due_date_names_the_amount_and_the_lock_date,
);
