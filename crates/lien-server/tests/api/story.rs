//! The whole story over real HTTP: enroll, hello, check-in, time passes, reminder, lock,
//! payment, unlock at the next check-in, payoff, release. Once on SQLite and once on PostgreSQL.

use crate::common::{Backend, TestApp, imei, postgres_url, spawn_app};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::{SignedDuration, Timestamp};
use lien_proto::{PinnedKeys, StatusClaims, TokenState};
use serde_json::json;

/// Verifies a token from a check-in or hello the way a phone does.
fn verify(keys: &PinnedKeys, device_id: &str, token_b64: &str, highest: u64) -> StatusClaims {
    let token = STANDARD.decode(token_b64).unwrap();
    keys.verify(&token, device_id, highest)
        .expect("a valid token from a pinned key")
}

/// A check-in from the phone that has applied token `applied`: the token in the answer,
/// verified as the phone does.
async fn checked_in(
    app: &TestApp,
    keys: &PinnedKeys,
    device_id: &str,
    credential: &str,
    applied: u64,
) -> StatusClaims {
    let checkin = app.checkin(device_id, credential, applied as i64).await;
    assert_eq!(checkin.status, 200, "{}", checkin.body);
    verify(
        keys,
        device_id,
        checkin.body["token"].as_str().unwrap(),
        applied,
    )
}

async fn the_whole_story(backend: Backend) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (_fin, key) = app.financier("Duka Phones").await;
    let phone_imei = imei("35693803564380");

    // Enroll at the point of sale.
    let enrolled = app.enroll(&key, "C-1001", &phone_imei, "SN1001").await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.body);
    assert_eq!(enrolled.body["pending"], true);
    assert_eq!(enrolled.body["decision"]["state"], "active");
    let device_id = enrolled.body["id"].as_str().unwrap().to_string();

    // The same IMEI cannot be financed twice.
    let (_other, other_key) = app.financier("Other Lender").await;
    let twice = app.enroll(&other_key, "X-1", &phone_imei, "SN1001").await;
    assert_eq!(twice.status, 409);
    assert!(twice.message().contains(&phone_imei), "{}", twice.body);

    // The phone's first boot.
    let hello = app.hello(&phone_imei, "SN1001").await;
    assert_eq!(hello.status, 200, "{}", hello.body);
    assert_eq!(hello.body["status"], "financed");
    assert_eq!(hello.body["device_id"], device_id.as_str());
    let credential = hello.body["credential"].as_str().unwrap().to_string();
    let server_key: [u8; 32] = STANDARD
        .decode(hello.body["server_keys"][0].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let keys = PinnedKeys::new([ed25519_dalek::VerifyingKey::from_bytes(&server_key).unwrap()]);
    let first = verify(&keys, &device_id, hello.body["token"].as_str().unwrap(), 0);
    assert_eq!(first.state, TokenState::Active);

    // Check-in: active.
    let claims = checked_in(&app, &keys, &device_id, &credential, first.sequence).await;
    assert_eq!(claims.state, TokenState::Active);

    // The first installment falls due on 1 February and is not paid. Day 1 past due: reminder.
    app.clock
        .set("2026-02-02T10:00:00+03:00".parse::<Timestamp>().unwrap());
    assert!(app.run_scheduler().await >= 1);
    let claims = checked_in(&app, &keys, &device_id, &credential, claims.sequence).await;
    assert_eq!(claims.state, TokenState::Reminder, "{claims:?}");
    let status = app.get(&format!("/v1/devices/{device_id}"), &key).await;
    assert_eq!(status.body["decision"]["notice_pending"], true);
    assert_eq!(status.body["decision"]["notices_served"], 0);

    // The phone acknowledges the notice at once (its next check-in names the token applied):
    // the notice is served now, and the screen says when the lock comes, three days on.
    let served = checked_in(&app, &keys, &device_id, &credential, claims.sequence).await;
    assert_eq!(
        served.screen.reason,
        "An installment payment of KES 1,000.00 is overdue (due 1 February 2026). \
         Locked on 5 February 2026 at 10:00 unless KES 1,000.00 is paid."
    );
    let status = app.get(&format!("/v1/devices/{device_id}"), &key).await;
    assert_eq!(status.body["decision"]["notices_served"], 1);
    let claims = served;

    // Day 4 past due, in the morning (not in quiet hours): locked, with the amount due.
    app.clock
        .set("2026-02-05T10:00:00+03:00".parse::<Timestamp>().unwrap());
    app.run_scheduler().await;
    let locked = checked_in(&app, &keys, &device_id, &credential, claims.sequence).await;
    assert_eq!(locked.state, TokenState::Locked, "{locked:?}");
    assert_eq!(locked.screen.amount_due.as_ref().unwrap().minor, 100000);
    assert_eq!(locked.screen.financier_name, "Duka Phones");
    let status = app.get(&format!("/v1/devices/{device_id}"), &key).await;
    assert_eq!(status.body["decision"]["state"], "locked");
    assert_eq!(status.body["pending"], false);

    // The borrower pays; the unlock token is written with the payment.
    let pay = json!({"reference": "MPESA-1", "amount_minor": 100000, "currency": "KES"});
    let paid = app.pay_with(&key, &device_id, pay.clone(), "pay-1").await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["decision"]["state"], "active");
    // A retry with the same key returns the same response and records nothing twice.
    let retry = app.pay_with(&key, &device_id, pay, "pay-1").await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.body, paid.body);
    let reused = app.pay(&key, &device_id, "MPESA-2", 5, "pay-1").await;
    assert_eq!(reused.status, 409, "{}", reused.body);

    // The next check-in carries the unlock.
    let unlocked = checked_in(&app, &keys, &device_id, &credential, locked.sequence).await;
    assert_eq!(unlocked.state, TokenState::Active);
    assert!(unlocked.sequence > locked.sequence);

    // Payoff: the release comes with it, final after its cancel window.
    let payoff = app.pay(&key, &device_id, "MPESA-3", 200000, "pay-3").await;
    assert_eq!(
        payoff.body["decision"]["reason"]["code"], "paid_in_full",
        "{}",
        payoff.body
    );
    assert!(
        payoff.body["release_final_at"].is_string(),
        "{}",
        payoff.body
    );
    assert_ne!(payoff.body["decision"]["state"], "released");

    // After the window the release is final: a token that never expires, and the IMEI is free.
    app.clock.advance(SignedDuration::from_hours(73));
    app.run_scheduler().await;
    let released = checked_in(&app, &keys, &device_id, &credential, unlocked.sequence).await;
    assert_eq!(released.state, TokenState::Released);
    assert!(released.lease.is_none());
    assert_eq!(
        app.hello(&phone_imei, "SN1001").await.body["status"],
        "not_financed"
    );

    // Every step is in the device's audit chain, and the chain is intact.
    let history = app
        .get(&format!("/v1/devices/{device_id}/history"), &key)
        .await;
    assert_eq!(history.body["chain_intact"], true);
    let actions: Vec<&str> = history.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "enrolled",
            "bound",
            "scheduled",
            "notice_served",
            "scheduled",
            "payment",
            "payment",
            "release_requested",
            "released"
        ],
        "{history:?}",
        history = history.body
    );
    app.running.stop().await;
}

on_both_backends!(the_whole_story);
