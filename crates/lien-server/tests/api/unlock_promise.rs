//! The unlock-time promise, measured: a payment that reaches a locked phone later than the
//! policy promises is listed in the financier's late-unlocks report, with the compensation the
//! policy defines, and only to that financier. On SQLite and, when LIEN_TEST_POSTGRES_URL is
//! set, on PostgreSQL.

use std::time::Duration;

use crate::common::{Backend, World, postgres_url};
use serde_json::{Value, json};

/// The Kenya preset's numbers, promising an unlock within an hour and KES 50.00 for each
/// started day beyond it.
fn promising_policy() -> Value {
    json!({"custom": {
        "grace_days": 0, "min_days_past_due": 4, "min_arrears_percent": 10,
        "notices": [{"at_days_past_due": 1, "cure_days": 3}],
        "escalations": [{"at_days_past_due": 4, "restriction": "locked"}],
        "lease_days": 10, "lease_warning_days": 3,
        "unlock_promise": {"within_minutes": 60,
                           "compensation_per_day": {"minor": 5000, "currency": "KES"}}
    }})
}

const FEBRUARY: &str = "/v1/reports/late-unlocks?from=2026-02-01&to=2026-02-28";

async fn a_late_unlock_is_reported_with_its_compensation(backend: Backend) {
    let mut world = World::new(backend).await;
    let changed = world
        .on_device(
            "PUT",
            "/policy",
            Some(json!({"policy": promising_policy(), "reason": "the borrower's contract"})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    world.advance_to("2026-02-05T10:00:00+03:00").await;
    assert!(world.locked(), "{}", world.phone.render());

    // Paid while the phone is out of coverage: it learns of it 26 hours later.
    world.phone.set_online(false);
    world.pay("MPESA-LATE", 100_000).await;
    world.advance(Duration::from_secs(26 * 3600)).await;
    assert!(world.locked(), "offline, the phone cannot know yet");
    let waiting = world.app.read(&world.key, FEBRUARY).await;
    assert_eq!(
        waiting["late"][0]["acknowledged_at"],
        Value::Null,
        "{waiting}"
    );
    world.phone.set_online(true);
    world.phone.check_again().await;
    assert!(!world.locked(), "{}", world.phone.render());

    let report = world.app.read(&world.key, FEBRUARY).await;
    let late = report["late"].as_array().unwrap();
    assert_eq!(late.len(), 1, "{report}");
    assert_eq!(late[0]["device_id"], world.device_id.as_str());
    assert_eq!(late[0]["reference"], "MPESA-LATE");
    assert_eq!(late[0]["promised_minutes"], 60);
    assert_eq!(late[0]["delay_seconds"], 26 * 3600);
    // 25 hours beyond the promise: two started days at KES 50.00.
    assert_eq!(
        late[0]["compensation"],
        json!({"minor": 10000, "currency": "KES"})
    );
    assert_eq!(report["truncated"], false);

    // Another financier sees none of it.
    let (_, other) = world.app.financier("Other Phones").await;
    let theirs = world.app.read(&other, FEBRUARY).await;
    assert_eq!(theirs["late"], json!([]), "{theirs}");
}

async fn an_unlock_pushed_at_once_keeps_the_promise(backend: Backend) {
    let mut world = World::new(backend).await;
    world.advance_to("2026-02-05T10:00:00+03:00").await;
    assert!(world.locked());
    world.pay("MPESA-FAST", 100_000).await;
    world.phone.check_again().await;
    assert!(!world.locked());
    world.advance(Duration::from_secs(3 * 3600)).await;
    let report = world.app.read(&world.key, FEBRUARY).await;
    assert_eq!(report["late"], json!([]), "{report}");
    let bad = world
        .app
        .call(
            "GET",
            "/v1/reports/late-unlocks?from=2026-02-28&to=2026-02-01",
            &world.key,
            None,
        )
        .await;
    bad.assert_invalid("to");
}

on_both_backends!(
    a_late_unlock_is_reported_with_its_compensation,
    an_unlock_pushed_at_once_keeps_the_promise,
);
