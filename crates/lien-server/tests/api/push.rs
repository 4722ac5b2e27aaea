//! The push channel: a phone connected by push hears of a lock or a payment without checking
//! in, and on PostgreSQL a change made through one server reaches a phone connected to another.
//! On SQLite and, when LIEN_TEST_POSTGRES_URL is set, on PostgreSQL.

use std::time::Duration;

use crate::common::{
    Backend, FinancedPhone, TestApp, imei, lock_by_schedule, locked, postgres_url, spawn_app,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::SignedDuration;
use lien_agent::sim::{Phone, PushBackoff};
use serde_json::json;

/// Long enough for any loaded CI machine; a pushed token normally arrives in milliseconds.
const WAIT: Duration = Duration::from_secs(10);

/// A financed phone, set up (hello and first check-in) against `app`; returns its device id,
/// the financier's key and the phone.
async fn financed_phone(app: &TestApp) -> (String, String, Phone) {
    let (_, key) = app.financier("Duka Phones").await;
    let financed = app.financed_phone(&key, &app.base).await;
    (financed.device_id, key, financed.phone)
}

async fn pay(app: &TestApp, key: &str, device_id: &str, reference: &str, minor: i64) {
    let paid = app.pay(key, device_id, reference, minor, reference).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
}

/// The next push reaches `phone` in time and leaves it locked or not, as `locked` says;
/// `what` names the push.
async fn assert_pushed(phone: &mut Phone, locked_after: bool, what: &str) {
    assert_eq!(phone.next_push(WAIT).await, Some(true), "{what}");
    assert_eq!(locked(phone), locked_after, "{}", phone.render());
}

async fn a_phone_connected_by_push_is_locked_and_unlocked_without_checking_in(backend: Backend) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (device_id, key, mut phone) = financed_phone(&app).await;
    phone.enable_push(PushBackoff::default());
    phone.connect_push().await.expect("the push channel opens");
    assert!(phone.push_open());
    let server_checkins = app.running.state.metrics.checkins.get();
    let phone_checkins = phone.checkins_sent();

    lock_by_schedule(&app, &mut phone).await;
    assert_pushed(&mut phone, true, "the lock is pushed").await;

    pay(&app, &key, &device_id, "MPESA-1", 100_000).await;
    assert_pushed(&mut phone, false, "the unlock is pushed").await;

    // The tokens came over the channel. The phone checked in four times: once on schedule
    // after three weeks asleep, then at once to say it holds each new screen it was shown (the
    // notice, the notice's words once served, the unlock); a lock waits for the next
    // scheduled check-in.
    assert_eq!(
        phone.tokens_pushed(),
        5,
        "the current token at connection, the notice, its served words, the lock, the unlock"
    );
    assert_eq!(
        app.running.state.metrics.checkins.get(),
        server_checkins + 4
    );
    assert_eq!(phone.checkins_sent(), phone_checkins + 4);
    assert_eq!(phone.push_connects(), 1);
    // The channel stays quiet when nothing changes (a check-in's write is not a new token).
    assert_eq!(phone.next_push(Duration::from_millis(300)).await, None);
    app.running.stop().await;
}

async fn push_is_refused_without_a_valid_signature_or_with_a_stale_time(backend: Backend) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (device_id, _, _phone) = financed_phone(&app).await;
    let now = app.clock_now().as_second();
    let open = |body: String, signature: String| {
        app.client
            .post(format!("{}/v1/device/push", app.base))
            .header("x-lien-device", device_id.clone())
            .header("x-lien-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let body = json!({"sent_at": now, "counter": 1, "applied_sequence": 1}).to_string();
    let forged = STANDARD.encode([0u8; 32]);
    let refused = open(body, forged).await.unwrap();
    assert_eq!(refused.status(), 401);

    // A phone whose agent signs with its own credential but an hour-old clock is refused too:
    // the window that bounds check-in replays bounds push channels.
    let phone_credential = {
        // The phone says hello again later (after a reflash), so with a newer challenge.
        app.clock.advance(SignedDuration::from_secs(1));
        let hello = app.hello(&imei("35693803564380"), "SN1001").await;
        hello.body["credential"].as_str().unwrap().to_string()
    };
    let credential = STANDARD.decode(phone_credential).unwrap();
    let stale = json!({"sent_at": now - 3600, "counter": 1, "applied_sequence": 1}).to_string();
    let signature = lien_server::routes::sign_checkin(&credential, stale.as_bytes());
    let refused = open(stale, signature).await.unwrap();
    assert_eq!(refused.status(), 401);
    app.running.stop().await;
}

async fn a_payment_on_one_server_reaches_a_phone_connected_to_another(backend: Backend) {
    if matches!(backend, Backend::Sqlite) {
        // One process serves a SQLite file: there is no other server to reach.
        return;
    }
    let a = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let b = a.spawn_peer().await;
    // The phone talks to server B only.
    let (_, key) = a.financier("Duka Phones").await;
    let FinancedPhone {
        device_id,
        mut phone,
        ..
    } = a.financed_phone(&key, &b.base).await;
    phone.enable_push(PushBackoff::default());
    phone
        .connect_push()
        .await
        .expect("the push channel opens on B");

    // The scheduler runs on A; the lock reaches the phone on B.
    lock_by_schedule(&a, &mut phone).await;
    assert_pushed(&mut phone, true, "the lock crosses servers").await;

    let checkins_on_b = b.running.state.metrics.checkins.get();
    pay(&a, &key, &device_id, "MPESA-1", 100_000).await;
    assert_pushed(&mut phone, false, "the unlock crosses servers").await;
    // The unlock came over B's channel; the phone's one check-in (to B) says it holds it.
    assert_eq!(b.running.state.metrics.checkins.get(), checkins_on_b + 1);
    assert_eq!(a.running.state.metrics.checkins.get(), 0);
    b.running.stop().await;
    a.running.stop().await;
}

async fn after_a_server_restart_the_phone_reconnects_and_gets_the_current_token(backend: Backend) {
    let mut app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (device_id, key, mut phone) = financed_phone(&app).await;
    phone.enable_push(PushBackoff {
        first: Duration::from_millis(200),
        max: Duration::from_secs(2),
    });
    phone.connect_push().await.expect("the push channel opens");
    let phone_checkins = phone.checkins_sent();

    // The server stops (its channels end) and starts again on the same address and state.
    let state = app.running.state.clone();
    let addr = app.running.addr;
    app.running.stop().await;
    assert_eq!(phone.next_push(Duration::from_millis(300)).await, None);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    app.running = lien_server::app::start(state, listener, false)
        .await
        .unwrap();
    // Locked while the phone was away: the reopened channel carries the current token.
    let lock = app
        .lock(&key, &device_id, "Locked by Duka Phones: please call us.")
        .await;
    assert_eq!(lock.status, 200, "{}", lock.body);
    assert_eq!(phone.next_push(WAIT).await, Some(true));
    assert!(locked(&phone), "{}", phone.render());
    assert_eq!(phone.push_connects(), 2);
    // The lock came over the channel, and needs no word back before the next check-in.
    assert_eq!(phone.checkins_sent(), phone_checkins);
    app.running.stop().await;
}

async fn a_new_hello_closes_the_channel_opened_with_the_old_credential(backend: Backend) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (_, _, mut phone) = financed_phone(&app).await;
    phone.enable_push(PushBackoff {
        first: Duration::from_millis(100),
        max: Duration::from_millis(200),
    });
    phone.connect_push().await.expect("the push channel opens");
    // The phone, reflashed, says hello again a moment later with a newly attested key: the old
    // credential is revoked, its channel ends, and it cannot open a new one.
    app.clock.advance(SignedDuration::from_secs(1));
    let hello = app.hello(&imei("35693803564380"), "SN1001").await;
    assert_eq!(hello.status, 200, "{}", hello.body);
    assert_eq!(phone.next_push(Duration::from_secs(1)).await, None);
    assert!(!phone.push_open());
    assert_eq!(phone.push_connects(), 1);
    app.running.stop().await;
}

on_both_backends!(
    a_phone_connected_by_push_is_locked_and_unlocked_without_checking_in,
    push_is_refused_without_a_valid_signature_or_with_a_stale_time,
    a_payment_on_one_server_reaches_a_phone_connected_to_another,
    after_a_server_restart_the_phone_reconnects_and_gets_the_current_token,
    a_new_hello_closes_the_channel_opened_with_the_old_credential,
);
