//! Attacks on the phone protocol against a spawned server, on SQLite and, when
//! LIEN_TEST_POSTGRES_URL is set, PostgreSQL: each one refused, with nothing written, while the
//! real phone keeps working.

#[macro_use]
mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Backend, Reply, TestApp, imei, next_counter, postgres_url, spawn_app};
use jiff::{SignedDuration, Timestamp};
use lien_proto::PinnedKeys;
use lien_proto::attestation::DevelopmentRoot;
use lien_proto::hello::Verdict;
use lien_server::app::Sighting;
use serde_json::{Value, json};

/// A server with one enrolled phone that has said hello; returns the app, the financier's
/// key, the device id and the phone's credential.
async fn bound_phone(backend: Backend) -> (TestApp, String, String, String) {
    let app = spawn_app(
        backend,
        "2026-01-10T09:00:00Z".parse::<Timestamp>().unwrap(),
    )
    .await;
    let (_, key) = app.financier("Duka Phones").await;
    let phone_imei = imei("35693803564380");
    app.enroll_device(&key, "C-1001", &phone_imei, "SN1001")
        .await;
    let hello = app.hello(&phone_imei, "SN1001").await;
    assert_eq!(hello.status, 200, "{}", hello.body);
    let device_id = hello.body["device_id"].as_str().unwrap().to_string();
    let credential = hello.body["credential"].as_str().unwrap().to_string();
    (app, key, device_id, credential)
}

/// The device as the financier sees it, and its history: what a refused request must leave
/// as it was.
async fn seen_by_financier(app: &TestApp, key: &str, device_id: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    for path in [
        format!("/v1/devices/{device_id}"),
        format!("/v1/devices/{device_id}/history"),
    ] {
        let reply = app.call("GET", &path, key, None).await;
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        seen.push(reply.body);
    }
    seen
}

fn refused(reply: &Reply, status: u16, mentions: &[&str]) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let message = reply.body["message"].as_str().unwrap_or_default();
    for word in mentions {
        assert!(
            message.contains(word),
            "{message:?} does not mention {word:?}"
        );
    }
}

async fn a_replayed_checkin_is_refused_before_and_after_it_is_written(backend: Backend) {
    let (app, key, device_id, credential) = bound_phone(backend).await;
    let body = |counter: u64, events: Value| {
        json!({
            "sent_at": app.clock_now().as_second(),
            "counter": counter,
            "applied_sequence": 1,
            "events": events,
        })
        .to_string()
    };
    // A plain check-in, captured on the way and sent again before anything is written.
    let plain = body(next_counter(), json!([]));
    let taken = app
        .raw_checkin(&device_id, &credential, plain.clone())
        .await;
    assert_eq!(taken.status, 200, "{}", taken.body);
    let again = app.raw_checkin(&device_id, &credential, plain).await;
    refused(&again, 401, &["replayed", "counter"]);

    // A check-in that reports a SIM change, captured on the way and sent again at once.
    let original = body(
        next_counter(),
        json!([{"kind": "sim_change", "detail": "slot 1"}]),
    );
    let first = app
        .raw_checkin(&device_id, &credential, original.clone())
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    app.running.state.flush_last_seen().await;
    let after_first = seen_by_financier(&app, &key, &device_id).await;
    let row = app.running.state.store.device(&device_id).await.unwrap();
    let again = app
        .raw_checkin(&device_id, &credential, original.clone())
        .await;
    refused(&again, 401, &["replayed", "counter"]);

    // Once this server has written the counter (once a second), the replay is still refused,
    // and a second server reading the same database would refuse it too.
    app.running.state.flush_last_seen().await;
    let later = app.raw_checkin(&device_id, &credential, original).await;
    refused(&later, 401, &["replayed"]);
    assert_eq!(
        seen_by_financier(&app, &key, &device_id).await,
        after_first,
        "a replay wrote something"
    );
    // The device's row was not written again: the SIM change is recorded once.
    let row_now = app.running.state.store.device(&device_id).await.unwrap();
    assert_eq!(
        (row_now.version, row_now.checkin_counter),
        (row.version, row.checkin_counter)
    );

    // A lower counter than the last is refused too; the phone's next one is taken.
    let lower = body(1, json!([]));
    refused(
        &app.raw_checkin(&device_id, &credential, lower).await,
        401,
        &["replayed"],
    );
    let next = app
        .raw_checkin(&device_id, &credential, body(next_counter(), json!([])))
        .await;
    assert_eq!(next.status, 200, "{}", next.body);
    app.running.stop().await;
}

async fn a_checkin_with_ten_thousand_events_is_refused_and_writes_nothing(backend: Backend) {
    let (app, key, device_id, credential) = bound_phone(backend).await;
    app.running.state.flush_last_seen().await;
    let before = seen_by_financier(&app, &key, &device_id).await;
    let with_events = |count: usize| {
        let events: Vec<Value> = (0..count)
            .map(|i| json!({"kind": "tamper", "detail": format!("event {i}")}))
            .collect();
        json!({
            "sent_at": app.clock_now().as_second(),
            "counter": next_counter(),
            "applied_sequence": 1,
            "events": events,
        })
        .to_string()
    };
    let flood = with_events(10_000);
    assert!(flood.len() > 300_000, "the body is {} bytes", flood.len());
    let reply = app.raw_checkin(&device_id, &credential, flood).await;
    refused(&reply, 413, &["larger"]);
    // Small enough to read, but more events than a check-in may carry.
    let nine = app
        .raw_checkin(&device_id, &credential, with_events(9))
        .await;
    refused(&nine, 422, &["events", "at most 8"]);
    let long = json!({
        "sent_at": app.clock_now().as_second(),
        "counter": next_counter(),
        "applied_sequence": 1,
        "events": [{"kind": "other", "detail": "x".repeat(201)}],
    })
    .to_string();
    refused(
        &app.raw_checkin(&device_id, &credential, long).await,
        422,
        &["events.detail"],
    );
    app.running.state.flush_last_seen().await;
    assert_eq!(
        seen_by_financier(&app, &key, &device_id).await,
        before,
        "a refused check-in wrote something"
    );
    // The phone's own check-in, with the most events allowed, goes through.
    let eight = app
        .raw_checkin(&device_id, &credential, with_events(8))
        .await;
    assert_eq!(eight.status, 200, "{}", eight.body);
    app.running.stop().await;
}

async fn the_servers_own_batch_never_makes_a_phones_request_look_replayed(backend: Backend) {
    let (app, _key, device_id, _credential) = bound_phone(backend).await;
    let state = &app.running.state;
    let stored = || async {
        state
            .store
            .device(&device_id)
            .await
            .unwrap()
            .checkin_counter
    };
    let at_us = app.clock_now().as_microsecond();
    let sighting = |counter: i64, writes: bool| Sighting {
        at_us,
        generation: 1,
        counter,
        writes,
    };
    // A check-in that writes (events) claims 10; the batch runs before its transaction reads
    // the row, and must not write 10 there, or the transaction would refuse the phone's own
    // check-in as a replay.
    state
        .claim_request(&device_id, sighting(10, true), 0)
        .unwrap();
    state.flush_last_seen().await;
    assert_eq!(stored().await, 0);

    // A plain check-in's counter is written, and kept in memory one batch longer: a replay
    // whose view was read just before the write still meets it.
    state
        .claim_request(&device_id, sighting(11, false), 0)
        .unwrap();
    state.flush_last_seen().await;
    assert_eq!(stored().await, 11);
    assert!(
        state
            .claim_request(&device_id, sighting(11, false), 0)
            .is_err()
    );
    // A request signed under an older binding than one already seen is refused.
    let older = Sighting {
        generation: 0,
        ..sighting(12, false)
    };
    assert!(state.claim_request(&device_id, older, 0).is_err());
    app.running.stop().await;
}

/// The challenge bytes of a base64 challenge.
fn bytes(challenge: &str) -> Vec<u8> {
    STANDARD.decode(challenge).unwrap()
}

async fn what_is_printed_on_the_box_is_not_enough_to_take_a_phones_binding(backend: Backend) {
    let (app, key, device_id, old_credential) = bound_phone(backend).await;
    let phone_imei = imei("35693803564380");
    let now = app.clock_now().as_second();
    app.running.state.flush_last_seen().await;
    let before = seen_by_financier(&app, &key, &device_id).await;
    let generation = || async {
        let device = app.running.state.store.device(&device_id).await.unwrap();
        device.binding.unwrap().generation
    };
    let bound_as = generation().await;
    let genuine = app
        .dev_root()
        .mint_factory_identity(&phone_imei, None, "SN1001", now)
        .unwrap();
    let refusal = |reply: &Reply| {
        refused(reply, 401, &["hello refused"]);
        reply.body.clone()
    };

    // The IMEI and serial from the box, and no attestation.
    let challenge = app.hello_challenge().await;
    let bare = refusal(&app.hello_with(&phone_imei, "SN1001", &challenge, &[]).await);
    // A genuine chain with one signature byte changed.
    let mut forged = genuine.attest(&bytes(&challenge), now).unwrap().chain;
    *forged[1].last_mut().unwrap() ^= 1;
    refusal(
        &app.hello_with(&phone_imei, "SN1001", &challenge, &forged)
            .await,
    );
    // A chain from an attestation root the server does not trust.
    let stranger = DevelopmentRoot::generate(now - 86_400).unwrap();
    let untrusted = stranger
        .mint_factory_identity(&phone_imei, None, "SN1001", now)
        .unwrap()
        .attest(&bytes(&challenge), now)
        .unwrap()
        .chain;
    refusal(
        &app.hello_with(&phone_imei, "SN1001", &challenge, &untrusted)
            .await,
    );
    // A genuine chain from another phone, presented for this one.
    let other_imei = imei("49015420323751");
    let other = app
        .dev_root()
        .mint_factory_identity(&other_imei, None, "SN-OTHER", now)
        .unwrap()
        .attest(&bytes(&challenge), now)
        .unwrap()
        .chain;
    refusal(
        &app.hello_with(&phone_imei, "SN1001", &challenge, &other)
            .await,
    );
    // A chain made for another challenge.
    let stale = genuine.attest(b"an old challenge", now).unwrap().chain;
    refusal(
        &app.hello_with(&phone_imei, "SN1001", &challenge, &stale)
            .await,
    );
    // The real phone's own hello, captured and sent again: its challenge is spent.
    app.clock.advance(SignedDuration::from_secs(1));
    let used = app.hello_challenge().await;
    let chain = genuine.attest(&bytes(&used), now).unwrap().chain;
    app.clock.advance(SignedDuration::from_secs(1));
    let real = app.hello_with(&phone_imei, "SN1001", &used, &chain).await;
    assert_eq!(real.status, 200, "{}", real.body);
    let credential = real.body["credential"].as_str().unwrap().to_string();
    let bound_as = bound_as + 1;
    assert_eq!(generation().await, bound_as);
    let replayed = refusal(&app.hello_with(&phone_imei, "SN1001", &used, &chain).await);
    assert_eq!(
        generation().await,
        bound_as,
        "a refused hello bound the phone"
    );

    // A refusal reads the same whatever was wrong: an IMEI nobody financed is refused with
    // the very same answer as a financed one with a wrong serial.
    let unknown = app
        .hello_with(&other_imei, "SN-OTHER", &challenge, &[])
        .await;
    assert_eq!(refusal(&unknown), bare);
    let wrong_serial = app
        .hello_with(&phone_imei, "SN-WRONG", &challenge, &[])
        .await;
    assert_eq!(refusal(&wrong_serial), bare);
    assert_eq!(replayed, bare);

    // Nothing refused was written, and the real phone keeps working.
    let after = seen_by_financier(&app, &key, &device_id).await;
    assert_eq!(after[0]["last_check_in"], before[0]["last_check_in"]);
    let history = |v: &Value| v["records"].as_array().unwrap().len();
    assert_eq!(
        history(&after[1]),
        history(&before[1]) + 1,
        "one re-bind only"
    );
    let checkin = app.checkin(&device_id, &credential, 1).await;
    assert_eq!(checkin.status, 200, "{}", checkin.body);
    // Its re-bind revoked the credential it had before.
    let revoked = app.checkin(&device_id, &old_credential, 1).await;
    refused(&revoked, 401, &["signature"]);
    app.running.stop().await;
}

async fn an_unfinanced_phone_gets_a_signed_answer_and_nothing_is_written(backend: Backend) {
    let (app, _key, _device_id, _credential) = bound_phone(backend).await;
    let free_imei = imei("49015420323751");
    let challenge = app.hello_challenge().await;
    let chain = app
        .dev_root()
        .mint_factory_identity(&free_imei, None, "SN-FREE", app.clock_now().as_second())
        .unwrap()
        .attest(&bytes(&challenge), app.clock_now().as_second())
        .unwrap()
        .chain;
    let reply = app
        .hello_with(&free_imei, "SN-FREE", &challenge, &chain)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "not_financed");
    let receipt = STANDARD
        .decode(reply.body["receipt"].as_str().unwrap())
        .unwrap();
    let pinned = PinnedKeys::new([app.running.state.signer.verifying_key()]);
    let opened = pinned
        .verify_receipt(&receipt, &challenge, &free_imei)
        .unwrap();
    assert_eq!(opened.verdict, Verdict::NotFinanced);
    // Junk hellos naming an IMEI do not count against it, so no stranger can keep a phone from
    // binding; attested hellos for one IMEI are limited.
    for _ in 0..12 {
        let reply = app.hello_with(&free_imei, "SN-FREE", &challenge, &[]).await;
        refused(&reply, 401, &["hello refused"]);
    }
    let mut limited = false;
    for _ in 0..12 {
        let reply = app
            .hello_with(&free_imei, "SN-FREE", &challenge, &chain)
            .await;
        if reply.status == 429 {
            limited = true;
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert!(
        limited,
        "twelve attested hellos for one IMEI were all taken"
    );
    app.running.stop().await;
}

on_both_backends!(
    a_challenge_from_a_server_whose_clock_is_ahead_is_still_used_once,
    what_is_printed_on_the_box_is_not_enough_to_take_a_phones_binding,
    an_unfinanced_phone_gets_a_signed_answer_and_nothing_is_written,
    the_servers_own_batch_never_makes_a_phones_request_look_replayed,
    a_replayed_checkin_is_refused_before_and_after_it_is_written,
    a_checkin_with_ten_thousand_events_is_refused_and_writes_nothing,
);

async fn a_challenge_from_a_server_whose_clock_is_ahead_is_still_used_once(backend: Backend) {
    let (app, _key, _device_id, _credential) = bound_phone(backend).await;
    let phone_imei = imei("35693803564380");
    let now = app.clock_now().as_second();
    // Another server, its clock 20 s ahead, issued the challenge; this one takes the hello.
    app.clock.advance(SignedDuration::from_secs(20));
    let challenge = app.hello_challenge().await;
    app.clock.advance(SignedDuration::from_secs(-20));
    let chain = app
        .dev_root()
        .mint_factory_identity(&phone_imei, None, "SN1001", now)
        .unwrap()
        .attest(&bytes(&challenge), now)
        .unwrap()
        .chain;
    let first = app
        .hello_with(&phone_imei, "SN1001", &challenge, &chain)
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = app
        .hello_with(&phone_imei, "SN1001", &challenge, &chain)
        .await;
    refused(&again, 401, &["hello refused"]);
    app.running.stop().await;
}
