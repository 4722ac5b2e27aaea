//! Release at payoff: a device whose plan is paid in full is released after the cancel window
//! with no call, unless its policy says the financier releases by hand; a reversal within the
//! window cancels it; a phone on a push channel learns the release at once. On SQLite and, when
//! LIEN_TEST_POSTGRES_URL is set, on PostgreSQL.

use std::time::Duration;

use crate::common::{Backend, Reply, TestApp, enrollment, imei, postgres_url, spawn_app};
use jiff::{SignedDuration, Timestamp};
use lien_agent::Screen;
use lien_agent::screens::Banner;
use lien_agent::sim::PushBackoff;
use serde_json::{Value, json};

/// Long enough for any loaded CI machine; a pushed token normally arrives in milliseconds.
const WAIT: Duration = Duration::from_secs(10);

/// The plan of `enrollment`: three installments of KES 1,000.00.
const WHOLE_PLAN: i64 = 300_000;

fn start() -> Timestamp {
    "2026-01-10T09:00:00Z".parse().unwrap()
}

/// A financier and a device enrolled under `policy`; returns the key, the device id and its IMEI.
async fn enrolled(app: &TestApp, policy: Value) -> (String, String, String) {
    let (_, key) = app.financier("Duka Phones").await;
    let phone_imei = imei("35693803564380");
    let mut body = enrollment("C-1001", &phone_imei, "SN1001");
    body["policy"] = policy;
    let r = app.call("POST", "/v1/devices", &key, Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    (key, r.body["id"].as_str().unwrap().to_string(), phone_imei)
}

/// A custom policy like the Kenya preset, releasing at payoff as `release_at_payoff` says.
fn custom_policy(release_at_payoff: &str) -> Value {
    json!({"custom": {
        "grace_days": 0, "min_days_past_due": 4, "min_arrears_percent": 10,
        "notices": [{"at_days_past_due": 1, "cure_days": 3}],
        "escalations": [{"at_days_past_due": 4, "restriction": "locked"}],
        "lease_days": 10, "lease_warning_days": 3,
        "release_at_payoff": release_at_payoff
    }})
}

async fn pay(app: &TestApp, key: &str, device: &str, reference: &str, minor: i64) -> Reply {
    let r = app.pay(key, device, reference, minor, reference).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

async fn reverse(app: &TestApp, key: &str, device: &str, reference: &str) -> Reply {
    let r = app
        .call_with(
            "POST",
            &format!("/v1/devices/{device}/payments/{reference}/reversal"),
            key,
            Some(json!({"reason": "chargeback"})),
            &[("Idempotency-Key", &format!("reverse-{reference}"))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

async fn device(app: &TestApp, key: &str, device: &str) -> Value {
    let r = app
        .call("GET", &format!("/v1/devices/{device}"), key, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn actions(history: &[(String, String)]) -> Vec<&str> {
    history.iter().map(|(a, _)| a.as_str()).collect()
}

/// What a buyer checking the IMEI is told.
async fn imei_check(app: &TestApp, imei: &str) -> Value {
    let r = app
        .call("GET", &format!("/v1/public/imei/{imei}"), "", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["status"].clone()
}

/// The server's cancel window, and past it: the scheduler runs there.
async fn past_the_window(app: &TestApp) {
    let hours = app.running.state.settings.release_cancel_hours as i64;
    app.clock
        .advance(SignedDuration::from_hours(hours) + SignedDuration::from_secs(1));
    app.run_scheduler().await;
}

async fn a_paid_off_device_is_released_after_the_window_without_any_call(backend: Backend) {
    let app = spawn_app(backend, start()).await;
    let (key, id, phone_imei) = enrolled(&app, json!({"preset": "kenya"})).await;

    // Part of the plan: nothing to release.
    let part = pay(&app, &key, &id, "MPESA-1", 100_000).await;
    assert_eq!(part.body["release_final_at"], Value::Null, "{}", part.body);

    // The rest: the same change schedules the release, as the release command would.
    let rest = pay(&app, &key, &id, "MPESA-2", WHOLE_PLAN - 100_000).await;
    let window = app.running.state.settings.release_cancel_hours as i64;
    let final_at = (app.clock_now() + SignedDuration::from_hours(window))
        .round(jiff::Unit::Second)
        .unwrap()
        .to_string();
    assert_eq!(rest.body["decision"]["reason"]["code"], "paid_in_full");
    assert_eq!(rest.body["decision"]["state"], "active");
    assert_eq!(
        rest.body["release_final_at"],
        final_at.as_str(),
        "{}",
        rest.body
    );
    assert_eq!(
        device(&app, &key, &id).await["release_final_at"],
        final_at.as_str()
    );
    let steps = app.history(&key, &id).await;
    assert_eq!(
        actions(&steps)[1..],
        ["payment", "payment", "release_requested"],
        "{steps:?}"
    );
    assert!(
        steps[3].1.contains("paid in full by payment MPESA-2"),
        "{steps:?}"
    );
    // One release at a time: asking again is a conflict, and nothing is added.
    let again = app.release(&key, &id, "paid off").await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(
        imei_check(&app, &phone_imei).await,
        "financed_good_standing"
    );

    // Just before the window ends nothing has happened yet.
    app.clock.advance(SignedDuration::from_hours(window - 1));
    app.run_scheduler().await;
    assert_eq!(device(&app, &key, &id).await["decision"]["state"], "active");

    // Past the window the scheduler makes it final, with no call.
    past_the_window(&app).await;
    let released = device(&app, &key, &id).await;
    assert_eq!(released["decision"]["state"], "released", "{released}");
    assert_eq!(released["release_final_at"], Value::Null);
    assert_eq!(imei_check(&app, &phone_imei).await, "released");
    let steps = app.history(&key, &id).await;
    assert_eq!(
        steps.last().unwrap(),
        &(
            "released".to_string(),
            "the plan was paid in full; the release became final".to_string()
        ),
        "{steps:?}"
    );
    // The phone's next hello is told the IMEI is free.
    assert_eq!(
        app.hello(&phone_imei, "SN1001").await.body["status"],
        "not_financed"
    );
    app.running.stop().await;
}

async fn a_by_hand_policy_is_not_released_at_payoff(backend: Backend) {
    let app = spawn_app(backend, start()).await;
    let (key, id, phone_imei) = enrolled(&app, custom_policy("by_hand")).await;
    let paid = pay(&app, &key, &id, "MPESA-ALL", WHOLE_PLAN).await;
    assert_eq!(paid.body["decision"]["reason"]["code"], "paid_in_full");
    assert_eq!(paid.body["release_final_at"], Value::Null, "{}", paid.body);

    past_the_window(&app).await;
    let standing = device(&app, &key, &id).await;
    assert_eq!(standing["decision"]["state"], "active", "{standing}");
    assert_eq!(
        imei_check(&app, &phone_imei).await,
        "financed_good_standing"
    );
    let steps = app.history(&key, &id).await;
    assert!(
        !actions(&steps).iter().any(|a| a.starts_with("release")),
        "{steps:?}"
    );

    // The financier releases it by hand when it chooses.
    let release = app
        .release(&key, &id, "paid off, checked in our books")
        .await;
    assert_eq!(release.status, 200, "{}", release.body);
    assert!(
        release.body["release_final_at"].is_string(),
        "{}",
        release.body
    );
    app.running.stop().await;
}

async fn a_reversal_in_the_window_cancels_the_automatic_release(backend: Backend) {
    let app = spawn_app(backend, start()).await;
    let (key, id, phone_imei) = enrolled(&app, json!({"preset": "kenya"})).await;
    let paid = pay(&app, &key, &id, "MPESA-ALL", WHOLE_PLAN).await;
    assert!(paid.body["release_final_at"].is_string(), "{}", paid.body);

    // The payment bounces within the window: the plan is owed again, and the release goes.
    app.clock.advance(SignedDuration::from_hours(1));
    let reversed = reverse(&app, &key, &id, "MPESA-ALL").await;
    assert_eq!(
        reversed.body["release_final_at"],
        Value::Null,
        "{}",
        reversed.body
    );
    let steps = app.history(&key, &id).await;
    assert_eq!(
        actions(&steps)[1..],
        [
            "payment",
            "release_requested",
            "reversal",
            "release_cancelled"
        ],
        "{steps:?}"
    );
    assert!(
        steps[4].1.contains("payment MPESA-ALL reversed"),
        "{steps:?}"
    );

    past_the_window(&app).await;
    let standing = device(&app, &key, &id).await;
    assert_ne!(standing["decision"]["state"], "released", "{standing}");
    assert_eq!(
        imei_check(&app, &phone_imei).await,
        "financed_good_standing"
    );

    // Paid again (the money cleared this time): a new release, final after its own window.
    let repaid = pay(&app, &key, &id, "MPESA-ALL-2", WHOLE_PLAN).await;
    assert!(
        repaid.body["release_final_at"].is_string(),
        "{}",
        repaid.body
    );
    past_the_window(&app).await;
    assert_eq!(
        device(&app, &key, &id).await["decision"]["state"],
        "released"
    );
    app.running.stop().await;
}

async fn a_release_asked_by_hand_survives_a_reversal(backend: Backend) {
    let app = spawn_app(backend, start()).await;
    let (key, id, _) = enrolled(&app, custom_policy("by_hand")).await;
    pay(&app, &key, &id, "MPESA-ALL", WHOLE_PLAN).await;
    let release = app.release(&key, &id, "paid off").await;
    assert_eq!(release.status, 200, "{}", release.body);
    // The financier's own release is its explicit act: a reversal leaves it to them.
    let reversed = reverse(&app, &key, &id, "MPESA-ALL").await;
    assert!(
        reversed.body["release_final_at"].is_string(),
        "{}",
        reversed.body
    );
    app.running.stop().await;
}

async fn a_phone_on_push_learns_the_release_at_once(backend: Backend) {
    let app = spawn_app(backend, start()).await;
    let (_, key) = app.financier("Duka Phones").await;
    let financed = app.financed_phone(&key, &app.base).await;
    let (id, mut phone) = (financed.device_id, financed.phone);
    phone.enable_push(PushBackoff::default());
    phone.connect_push().await.expect("the push channel opens");

    pay(&app, &key, &id, "MPESA-ALL", WHOLE_PLAN).await;
    // Whatever the payoff itself sent, the phone is not released yet.
    while phone.next_push(Duration::from_millis(300)).await.is_some() {}
    assert_eq!(phone.screen(), &Screen::Normal { banner: None });
    let checkins = phone.checkins_sent();

    past_the_window(&app).await;
    assert_eq!(
        phone.next_push(WAIT).await,
        Some(true),
        "the release is pushed"
    );
    assert_eq!(
        phone.screen(),
        &Screen::Normal {
            banner: Some(Banner::Released)
        },
        "{}",
        phone.render()
    );
    assert!(phone.enforcement().restrictions().is_empty());
    assert_eq!(phone.checkins_sent(), checkins, "it came over the channel");
    app.running.stop().await;
}

async fn a_bad_release_at_payoff_is_refused_naming_the_field(backend: Backend) {
    let app = spawn_app(backend, start()).await;
    let (_, key) = app.financier("Duka Phones").await;
    let mut body = enrollment("C-1001", &imei("35693803564380"), "SN1001");
    body["policy"] = custom_policy("sometimes");
    let r = app.call("POST", "/v1/devices", &key, Some(body)).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let message = r.body["message"].as_str().unwrap();
    assert!(
        message.contains("policy.custom.release_at_payoff") && message.contains("by_hand"),
        "{message}"
    );
    app.running.stop().await;
}

/// A payoff typed in by an agent, who may record payments but not release, does not release
/// the phone: a release is final, and the agent could reverse the payment after the window.
/// It is recorded, and a financier admin releases.
async fn an_agents_payoff_waits_for_a_financier_admin(backend: Backend) {
    let app = spawn_app(backend, start()).await;
    let (financier, admin) = app.financier("Duka Phones").await;
    let agent = app.financier_key(&financier, "financier-agent").await;
    let phone_imei = imei("35693803564380");
    let id = app
        .enroll_device(&admin, "C-1001", &phone_imei, "SN1001")
        .await;

    let paid = pay(&app, &agent, &id, "CASH-ALL", WHOLE_PLAN).await;
    assert_eq!(paid.body["decision"]["reason"]["code"], "paid_in_full");
    assert_eq!(paid.body["release_final_at"], Value::Null, "{}", paid.body);
    let steps = app.history(&admin, &id).await;
    assert_eq!(
        actions(&steps)[1..],
        ["payment", "paid_in_full"],
        "{steps:?}"
    );
    assert!(
        steps[2].1.contains("a financier admin releases it"),
        "{steps:?}"
    );

    past_the_window(&app).await;
    assert_eq!(
        device(&app, &admin, &id).await["decision"]["state"],
        "active"
    );
    assert_eq!(
        imei_check(&app, &phone_imei).await,
        "financed_good_standing"
    );
    let release = app.release(&admin, &id, "cash counted in the branch").await;
    assert_eq!(release.status, 200, "{}", release.body);
    app.running.stop().await;
}

on_both_backends!(
    a_paid_off_device_is_released_after_the_window_without_any_call,
    a_by_hand_policy_is_not_released_at_payoff,
    an_agents_payoff_waits_for_a_financier_admin,
    a_reversal_in_the_window_cancels_the_automatic_release,
    a_release_asked_by_hand_survives_a_reversal,
    a_phone_on_push_learns_the_release_at_once,
    a_bad_release_at_payoff_is_refused_naming_the_field,
);
