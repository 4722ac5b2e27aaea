//! Attacks against a spawned server, on SQLite and, when LIEN_TEST_POSTGRES_URL is set,
//! PostgreSQL: on the phone protocol (each refused, with nothing written, while the real phone
//! keeps working), and a hostile client at the HTTP edge (sizes, slowness, connections, text,
//! numbers, links).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::net::SocketAddr;

use crate::common::{
    self, Backend, Part, Reply, TestApp, imei, next_counter, post_form, postgres_url, spawn_app,
    spawn_app_with, typed,
};
use jiff::{SignedDuration, Timestamp};
use lien_proto::PinnedKeys;
use lien_proto::attestation::{DevelopmentRoot, certificate_serial};
use lien_proto::hello::Verdict;
use lien_server::app::Sighting;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    let after_first = app.seen(&key, &device_id).await;
    let row = app.stored_device(&device_id).await;
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
        app.seen(&key, &device_id).await,
        after_first,
        "a replay wrote something"
    );
    // The device's row was not written again: the SIM change is recorded once.
    let row_now = app.stored_device(&device_id).await;
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
    let before = app.seen(&key, &device_id).await;
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
        app.seen(&key, &device_id).await,
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

/// The attestation chain of a phone with this IMEI and serial whose factory identity `root`
/// minted, for `challenge` (base64) at `now`.
fn chain_from(
    root: &DevelopmentRoot,
    imei: &str,
    serial: &str,
    challenge: &str,
    now: i64,
) -> Vec<Vec<u8>> {
    root.mint_factory_identity(imei, None, serial, now)
        .unwrap()
        .attest(&bytes(challenge), now)
        .unwrap()
        .chain
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
    let before = app.seen(&key, &device_id).await;
    let generation = || async {
        let device = app.stored_device(&device_id).await;
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
    let untrusted = chain_from(&stranger, &phone_imei, "SN1001", &challenge, now);
    refusal(
        &app.hello_with(&phone_imei, "SN1001", &challenge, &untrusted)
            .await,
    );
    // A genuine chain from another phone, presented for this one.
    let other_imei = imei("49015420323751");
    let other = chain_from(&app.dev_root(), &other_imei, "SN-OTHER", &challenge, now);
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
    let after = app.seen(&key, &device_id).await;
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
    let chain = chain_from(
        &app.dev_root(),
        &free_imei,
        "SN-FREE",
        &challenge,
        app.clock_now().as_second(),
    );
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

async fn a_chain_from_a_leaked_factory_key_is_refused_once_google_lists_it(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("attestation-status.json");
    std::fs::write(&list, r#"{"entries": {}}"#).unwrap();
    let app = spawn_app_with(
        backend,
        "2026-01-10T09:00:00Z".parse::<Timestamp>().unwrap(),
        |s| s.attestation_status = Some(list.display().to_string()),
    )
    .await;
    let (_, key) = app.financier("Duka Phones").await;
    let phone_imei = imei("35693803564380");
    let device_id = app
        .enroll_device(&key, "C-1001", &phone_imei, "SN1001")
        .await;
    let now = app.clock_now().as_second();
    let status = &app.running.state.attestation_status;
    let now_us = now * 1_000_000;

    // The factory key that attests this phone leaks; anyone holding it can attest its IMEI
    // and serial. Google lists the factory certificate.
    let leaked = app
        .dev_root()
        .mint_factory_identity(&phone_imei, None, "SN1001", now)
        .unwrap();
    let challenge = app.hello_challenge().await;
    let chain = leaked.attest(&bytes(&challenge), now).unwrap().chain;
    let serial = certificate_serial(&chain[1]).unwrap();
    let listed =
        json!({"entries": {serial.clone(): {"status": "REVOKED", "reason": "KEY_COMPROMISE"}}});
    std::fs::write(&list, listed.to_string()).unwrap();
    assert_eq!(status.refresh(now_us).await.unwrap(), 1);
    let hello = app
        .hello_with(&phone_imei, "SN1001", &challenge, &chain)
        .await;
    refused(&hello, 401, &["hello refused"]);
    assert!(app.stored_device(&device_id).await.binding.is_none());

    // A list that cannot be read leaves the last one in force.
    std::fs::write(&list, "<html>Service Unavailable</html>").unwrap();
    assert!(status.refresh(now_us).await.is_err());
    let challenge = app.hello_challenge().await;
    let chain = leaked.attest(&bytes(&challenge), now).unwrap().chain;
    let hello = app
        .hello_with(&phone_imei, "SN1001", &challenge, &chain)
        .await;
    refused(&hello, 401, &["hello refused"]);

    // Taken off the list (a suspension lifted), the same chain binds the phone.
    std::fs::write(&list, r#"{"entries": {}}"#).unwrap();
    assert_eq!(status.refresh(now_us).await.unwrap(), 0);
    let challenge = app.hello_challenge().await;
    let chain = leaked.attest(&bytes(&challenge), now).unwrap().chain;
    let hello = app
        .hello_with(&phone_imei, "SN1001", &challenge, &chain)
        .await;
    assert_eq!(hello.status, 200, "{}", hello.body);
    assert!(app.stored_device(&device_id).await.binding.is_some());
}

on_both_backends!(
    a_chain_from_a_leaked_factory_key_is_refused_once_google_lists_it,
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
    let chain = chain_from(&app.dev_root(), &phone_imei, "SN1001", &challenge, now);
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

// ---------------------------------------------------------------------------------------------
// A hostile client against the HTTP edge: sizes, slowness, connections, text, numbers, links.
// ---------------------------------------------------------------------------------------------

/// Sends `head` (request line and headers) on a new connection, then `chunk` repeatedly, for
/// at most `total` bytes, until the server answers or closes. Returns the status line's code
/// (0 if none came) and how many body bytes the server let through.
async fn push_body(addr: SocketAddr, head: &str, chunk: &[u8], total: usize) -> (u16, usize) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let answer = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = reader.read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).to_string()
    });
    let mut sent = 0;
    while sent < total && !answer.is_finished() {
        if writer.write_all(chunk).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    drop(writer);
    let text = answer.await.unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, sent)
}

/// Asserts that the OpenAPI document lists `status` for the operation `method path` serves
/// (`path` as sent: its query is dropped and its segments matched against the templates).
fn assert_documented(method: &str, path: &str, status: u16) {
    let document: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/openapi.json"
    )))
    .expect("the committed document");
    let path = path.split('?').next().unwrap();
    let segments: Vec<&str> = path.split('/').collect();
    let (template, item) = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') || t == s)
                && item.get(method.to_lowercase()).is_some()
        })
        // A literal segment beats a template one (`/v1/devices/bulk` over `/v1/devices/{id}`).
        .min_by_key(|(template, _)| template.matches('{').count())
        .unwrap_or_else(|| panic!("{method} {path} is not in the OpenAPI document"));
    let answers = &item[method.to_lowercase()]["responses"];
    assert!(
        answers.get(status.to_string()).is_some(),
        "{method} {template} answered {status}, which the OpenAPI document does not list"
    );
}

async fn an_upload_that_never_shows_its_boundary_ends_at_the_limit(backend: Backend) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let limit = app.running.state.settings.appeal_upload_max_bytes as usize;
    for path in ["/v1/public/appeals", "/appeal"] {
        // 500 MB announced, in 64 KiB pieces that never contain the boundary.
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: lien\r\n\
             content-type: multipart/form-data; boundary=XYZZY\r\n\
             content-length: 500000000\r\n\r\n"
        );
        let (status, sent) = push_body(app.running.addr, &head, &[b'a'; 65_536], 500_000_000).await;
        assert_eq!(status, 413, "{path}");
        if path.starts_with("/v1/") {
            assert_documented("POST", path, status);
        }
        // What the server read is at most the limit and its margin; the rest of what the client
        // managed to send sat in socket buffers (a few MB on loopback) when it was cut off.
        assert!(
            sent < limit + 64 * 1024 + 32 * 1024 * 1024,
            "{path}: {sent} bytes went in before the answer"
        );
    }
    app.running.stop().await;
}

async fn a_body_sent_a_byte_at_a_time_is_cut_off_at_the_request_timeout(backend: Backend) {
    let app = spawn_app_with(backend, "2026-01-10T09:00:00Z".parse().unwrap(), |s| {
        s.request_timeout_secs = 2;
    })
    .await;
    for (path, content_type) in [
        ("/v1/financiers", "application/json"),
        ("/v1/public/appeals", "multipart/form-data; boundary=XYZZY"),
    ] {
        let mut stream = TcpStream::connect(app.running.addr).await.unwrap();
        stream
            .write_all(
                format!(
                    "POST {path} HTTP/1.1\r\nhost: lien\r\ncontent-type: {content_type}\r\n\
                     content-length: 100\r\n\r\n-"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let mut buffer = [0u8; 1024];
        // One byte every 500 ms would take 50 s to finish the body.
        loop {
            tokio::select! {
                read = stream.read(&mut buffer) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buffer[..n]),
                },
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                    if stream.write_all(b"-").await.is_err() {
                        break;
                    }
                }
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{path}: never cut off"
            );
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(
            answer.contains("not received within 2 seconds"),
            "{path}: {answer}"
        );
        assert_documented("POST", path, 408);
    }
    app.running.stop().await;
}

/// The raw answer to `GET /healthz` on a new connection to `addr`.
async fn healthz(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: lien\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text).await;
    text
}

/// `n` connections to `addr` that send nothing, as a flood holds them.
async fn open_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    held
}

/// While `n` idle connections are held, `/healthz` (asked up to `tries` times) is answered 503
/// with a body that mentions `why`; once they close it is answered 200 again.
async fn busy_while_held(addr: SocketAddr, n: usize, tries: usize, why: &str) {
    let held = open_connections(addr, n).await;
    let busy = healthz_until(addr, "HTTP/1.1 503", tries).await;
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    assert!(busy.contains(why), "{busy}");
    drop(held);
    let recovered = healthz_until(addr, "HTTP/1.1 200", 100).await;
    assert!(recovered.starts_with("HTTP/1.1 200"), "{recovered}");
}

/// Asks `/healthz` every 20 ms, at most `tries` times, until the answer starts with `wanted`;
/// returns the last answer.
async fn healthz_until(addr: SocketAddr, wanted: &str, tries: usize) -> String {
    let mut answer = String::new();
    for _ in 0..tries {
        answer = healthz(addr).await;
        if answer.starts_with(wanted) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    answer
}

/// A fresh server where Duka Phones has enrolled contract C-1001 (IMEI 356938035643809,
/// serial SN1001): the server, the financier's key and the device's id.
async fn one_device(backend: Backend) -> (TestApp, String, String) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (_, key) = app.financier("Duka Phones").await;
    let device_id = app
        .enroll_device(&key, "C-1001", &imei("35693803564380"), "SN1001")
        .await;
    (app, key, device_id)
}

async fn with_every_connection_taken_the_server_refuses_cleanly_and_recovers(backend: Backend) {
    let app = spawn_app_with(backend, "2026-01-10T09:00:00Z".parse().unwrap(), |s| {
        s.max_connections = 3;
    })
    .await;
    let addr = app.running.addr;
    assert!(healthz(addr).await.starts_with("HTTP/1.1 200"));
    // Three idle connections, as a flood would hold them.
    busy_while_held(addr, 3, 50, "too many open connections").await;
    app.running.stop().await;
}

async fn no_public_answer_shows_a_manual_locks_words(backend: Backend) {
    let (app, key, device_id) = one_device(backend).await;
    let phone_imei = imei("35693803564380");
    let locked = app
        .post(
            &format!("/v1/devices/{device_id}/lock"),
            &key,
            json!({
                "message": "Borrower Jane W., ID 1234: call Duka Phones.",
                "note": "Jane's cousin reported the phone; ID card 98765",
            }),
        )
        .await;
    assert_eq!(locked.status, 200, "{}", locked.body);
    // The financier sees both: the message in the decision, the note in the history.
    assert!(locked.body.to_string().contains("Borrower Jane W."));
    let history = app
        .get(&format!("/v1/devices/{device_id}/history"), &key)
        .await;
    assert!(history.body.to_string().contains("ID card 98765"));
    assert!(!locked.body.to_string().contains("ID card 98765"));
    for path in [
        format!("/why?q={phone_imei}"),
        format!("/check?q={phone_imei}"),
        format!("/appeal?q={phone_imei}"),
        format!("/v1/public/imei/{phone_imei}"),
    ] {
        let text = app.get_text(&path, None).await;
        assert!(
            !text.contains("Jane"),
            "{path} shows the lock's words: {text}"
        );
        assert!(
            !text.contains("1234"),
            "{path} shows the lock's words: {text}"
        );
    }
    app.running.stop().await;
}

async fn out_of_bound_numbers_and_unsafe_links_are_refused_naming_the_field(backend: Backend) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (_, key) = app.financier("Duka Phones").await;
    for (link, field) in [
        ("javascript:alert(1)", "payment_link"),
        ("http://pay.example/duka", "payment_link"),
        ("data:text/html,hi", "payment_link"),
    ] {
        let reply = app
            .post(
                "/v1/financiers",
                &app.admin_key,
                json!({"name": "X", "contact": "Y", "payment_link": link}),
            )
            .await;
        refused(&reply, 422, &[field]);
        assert_documented("POST", "/v1/financiers", 422);
    }
    let made = app
        .post(
            "/v1/financiers",
            &app.admin_key,
            json!({"name": "X", "contact": "Y", "payment_link": "https://pay.example/duka"}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);

    let custom = |change: &dyn Fn(&mut Value)| {
        let mut policy = json!({"custom": {
            "grace_days": 3, "min_days_past_due": 7, "min_arrears_percent": 10,
            "notices": [{"at_days_past_due": 4, "cure_days": 3}],
            "escalations": [{"at_days_past_due": 10, "restriction": "locked"}],
            "lease_days": 14, "lease_warning_days": 3,
        }});
        change(&mut policy["custom"]);
        let mut body = common::enrollment("C-9", &imei("35693803564381"), "SN9");
        body["policy"] = policy;
        body
    };
    for (change, field) in [
        (
            Box::new(|p: &mut Value| p["lease_days"] = json!(4_294_967_295u32))
                as Box<dyn Fn(&mut Value)>,
            "lease_days",
        ),
        (
            Box::new(|p: &mut Value| p["appeal_response_hours"] = json!(4_000_000_000u32)),
            "appeal_response_hours",
        ),
        (
            Box::new(|p: &mut Value| p["notices"][0]["cure_days"] = json!(100_000)),
            "cure_days",
        ),
    ] {
        let reply = app.post("/v1/devices", &key, custom(&*change)).await;
        refused(&reply, 422, &[field]);
    }
    let mut far = common::enrollment("C-10", &imei("35693803564381"), "SN10");
    far["plan"]["installments"][0]["due"] = json!("9999-12-31");
    refused(
        &app.post("/v1/devices", &key, far).await,
        422,
        &["plan", "due dates must be in the years"],
    );

    let device_id = app
        .enroll_device(&key, "C-1001", &imei("35693803564380"), "SN1001")
        .await;
    let pay = app.pay(&key, &device_id, "P1", i64::MAX, "p1").await;
    refused(&pay, 422, &["amount_minor"]);
    assert_documented("POST", &format!("/v1/devices/{device_id}/payments"), 422);
    let unlock = app
        .post(
            &format!("/v1/devices/{device_id}/unlock"),
            &key,
            json!({"reason": "x", "provisional_hours": 4_000_000_000u32}),
        )
        .await;
    refused(&unlock, 422, &["provisional_hours"]);
    assert_documented("POST", &format!("/v1/devices/{device_id}/unlock"), 422);
    app.running.stop().await;
}

async fn a_reversal_dated_in_the_future_is_refused_and_the_real_one_still_goes_in(
    backend: Backend,
) {
    let (app, key, device_id) = one_device(backend).await;
    let paid = app.pay(&key, &device_id, "P1", 1000, "p1").await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    let path = format!("/v1/devices/{device_id}/payments/P1/reversal");
    let future = app
        .post_once(
            &path,
            &key,
            json!({"reason": "chargeback", "at": "2026-02-01T00:00:00Z"}),
            "r1",
        )
        .await;
    refused(&future, 422, &["at", "in the future"]);
    assert_documented("POST", &path, 422);
    let now = app
        .post_once(&path, &key, json!({"reason": "chargeback"}), "r2")
        .await;
    assert_eq!(now.status, 200, "{}", now.body);
    app.running.stop().await;
}

async fn bodies_over_the_limit_and_bad_csv_headers_get_their_documented_answers(backend: Backend) {
    let (app, key, device_id) = one_device(backend).await;
    let big = "a".repeat(20 * 1024 * 1024);
    for (path, content_type) in [
        ("/v1/financiers".to_string(), "application/json"),
        (
            format!("/v1/devices/{device_id}/payments"),
            "application/json",
        ),
        ("/v1/devices/bulk".to_string(), "text/csv"),
    ] {
        let headers = [
            typed(content_type),
            ("Idempotency-Key".into(), "big".into()),
        ];
        let response = app.post_as(&key, &path, &headers, big.clone()).await;
        assert_eq!(response.status, 413, "{path}");
        assert_documented("POST", &path, 413);
        assert_eq!(
            response.body["error"], "too_large",
            "{path}: {}",
            response.body
        );
    }
    // A role that may not enroll is refused before its file is read: the server holds none.
    let financier_id = app.call("GET", "/v1/financiers", &key, None).await.body[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let agent = app.financier_key(&financier_id, "financier-agent").await;
    let head = format!(
        "POST /v1/devices/bulk HTTP/1.1\r\nhost: lien\r\nauthorization: Bearer {agent}\r\n\
         content-type: text/csv\r\ncontent-length: {}\r\n\r\n",
        big.len()
    );
    let (status, _) = push_body(app.running.addr, &head, &[b'a'; 65_536], big.len()).await;
    assert_eq!(
        status, 403,
        "refused before the body is read, which would end in a 413"
    );
    let csv = "contract,imei,serial\nC-1,356938035643809,SN1\n".to_string();
    let wrong = app
        .post_as(&key, "/v1/devices/bulk", &[typed("text/csv")], csv)
        .await;
    assert_eq!(wrong.status, 400);
    assert_documented("POST", "/v1/devices/bulk", 400);
    assert!(wrong.message().contains("CSV header"), "{}", wrong.body);
    // A good file is enrolled (as one of the server's bulk jobs) and its rows answered.
    let good = format!(
        "contract_ref,imei1,serial,model,currency,time_zone,installments,policy\n\
         C-8,{},SN8,Phone X,KES,Africa/Nairobi,2026-02-01:100,kenya\n",
        imei("35693803564383")
    );
    let enrolled = app
        .post_as(&key, "/v1/devices/bulk", &[typed("text/csv")], good)
        .await;
    assert_eq!(enrolled.status, 200, "{}", enrolled.body);
    assert_eq!(enrolled.body["enrolled"], 1, "{}", enrolled.body);
    assert_eq!(enrolled.body["rows"][0]["contract_ref"], "C-8");
    app.running.stop().await;
}

async fn a_nul_character_in_any_text_field_is_refused_without_a_server_error(backend: Backend) {
    let (app, key, device_id) = one_device(backend).await;
    let phone_imei = imei("35693803564380");
    let nul = "a\u{0}b";
    let mut enrollment = common::enrollment(nul, &imei("35693803564381"), "SN2");
    enrollment["model"] = json!(nul);
    let device = format!("/v1/devices/{device_id}");
    let requests: Vec<(&str, String, &str, Option<Value>)> = vec![
        (
            "POST",
            "/v1/financiers".into(),
            &app.admin_key,
            Some(json!({"name": nul, "contact": "c"})),
        ),
        (
            "POST",
            "/v1/financiers".into(),
            &app.admin_key,
            Some(json!({"name": "n", "contact": nul})),
        ),
        (
            "POST",
            "/v1/financiers".into(),
            &app.admin_key,
            Some(
                json!({"name": "n", "contact": "c", "payment_link": format!("https://x.example/{nul}")}),
            ),
        ),
        ("POST", "/v1/devices".into(), &key, Some(enrollment)),
        (
            "POST",
            format!("{device}/payments"),
            &key,
            Some(json!({"reference": nul, "amount_minor": 5, "currency": "KES"})),
        ),
        (
            "POST",
            format!("{device}/lock"),
            &key,
            Some(json!({"message": nul})),
        ),
        (
            "POST",
            format!("{device}/lock"),
            &key,
            Some(json!({"message": "m", "note": nul})),
        ),
        (
            "POST",
            format!("{device}/unlock"),
            &key,
            Some(json!({"reason": nul})),
        ),
        (
            "POST",
            format!("{device}/reminder"),
            &key,
            Some(json!({"message": nul})),
        ),
        (
            "POST",
            format!("{device}/release"),
            &key,
            Some(json!({"reason": nul})),
        ),
        (
            "PUT",
            format!("{device}/policy"),
            &key,
            Some(json!({"policy": {"preset": "kenya"}, "reason": nul})),
        ),
        ("GET", "/v1/devices?cursor=a%00b".into(), &key, None),
        ("GET", "/v1/devices/dev_%00".into(), &key, None),
        ("GET", "/v1/status-codes/1234%005678".into(), &key, None),
        ("GET", "/v1/appeals?status=%00".into(), &key, None),
        ("GET", "/why?q=%00".into(), "", None),
        ("GET", "/v1/public/imei/35693803%0064380".into(), "", None),
    ];
    for (method, path, key, body) in requests {
        let reply = app
            .call_with(
                method,
                &path,
                key,
                body.clone(),
                &[("Idempotency-Key", "nul")],
            )
            .await;
        assert!(
            (400..500).contains(&reply.status),
            "{method} {path} {body:?}: {} {}",
            reply.status,
            reply.body
        );
        if path.starts_with("/v1/") {
            assert_documented(method, &path, reply.status);
        }
    }
    // Whatever the body says it is: some handlers parse JSON from any body.
    for content_type in [
        "text/plain",
        "Application/JSON",
        "application/x+json",
        "application/x-www-form-urlencoded",
        "text/csv",
        "multipart/form-data; boundary=x",
    ] {
        let headers = [
            typed(content_type),
            ("Idempotency-Key".into(), "nul-typed".into()),
        ];
        let body = r#"{"reference":"R\u00001","amount_minor":5,"currency":"KES"}"#;
        let path = format!("{device}/payments");
        let reply = app.post_as(&key, &path, &headers, body.into()).await;
        assert_eq!(reply.status, 422, "{content_type}");
    }
    let csv = format!(
        "contract_ref,imei1,serial,model,currency,time_zone,installments,policy\n\
         C-7,{},SN7,{nul},KES,Africa/Nairobi,2026-02-01:100,kenya\n",
        imei("35693803564382")
    );
    let bulk = app
        .post_as(&key, "/v1/devices/bulk", &[typed("text/csv")], csv)
        .await;
    assert_eq!(bulk.status, 200);
    let bulk = bulk.body;
    assert_eq!(bulk["failed"], 1, "{bulk}");
    assert!(bulk["rows"][0]["error"].as_str().unwrap().contains("model"));
    let appeal = post_form(
        &app,
        "/v1/public/appeals",
        &[
            Part::Text("imei", &phone_imei),
            Part::Text("claim", "wrong_lock"),
            Part::Text("contact", nul),
            Part::Text("statement", "x"),
        ],
    )
    .await;
    assert!((400..500).contains(&appeal.status), "{}", appeal.body);
    app.running.stop().await;
}

async fn a_client_that_never_reads_is_cut_off_and_one_address_cannot_take_every_slot(
    backend: Backend,
) {
    let app = spawn_app_with(backend, "2026-01-10T09:00:00Z".parse().unwrap(), |s| {
        s.request_timeout_secs = 2;
        s.max_connections = 100;
        s.max_connections_per_client = 4;
    })
    .await;
    let addr = app.running.addr;
    // Pipelines requests for a large answer on a socket with a small receive buffer, and never
    // reads: the server's writes stall once the buffers are full.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut greedy = socket.connect(addr).await.unwrap();
    let request = b"GET /openapi.json HTTP/1.1\r\nhost: lien\r\n\r\n";
    let asked = 400;
    for _ in 0..asked {
        if greedy.write_all(request).await.is_err() {
            break;
        }
    }
    let one_answer = app
        .client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    // Longer than the timeout, so the stalled write has failed; then the client reads what
    // had been sent before the server gave up, and finds the connection closed.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let mut received = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let ended = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match greedy.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "a client that stopped reading still holds its connection"
    );
    assert!(
        received < asked * one_answer / 2,
        "the server kept writing to a client that never read: {received} bytes"
    );

    // One address may hold its share of connections and no more; the others still get in.
    busy_while_held(addr, 4, 1, "from your address").await;
    app.running.stop().await;
}

async fn metrics_need_the_token(backend: Backend) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let get = async |token| app.get_response("/metrics", token).await.status().as_u16();
    assert_eq!(get(None).await, 401);
    assert_documented("GET", "/metrics", 401);
    assert_eq!(get(Some("guess")).await, 401);
    assert_eq!(get(Some(common::METRICS_TOKEN)).await, 200);
    app.running.stop().await;
    let open = spawn_app_with(backend, "2026-01-10T09:00:00Z".parse().unwrap(), |s| {
        s.metrics_token = None;
    })
    .await;
    let reply = open.get("/metrics", "").await;
    refused(&reply, 404, &["metrics_token"]);
    open.running.stop().await;
}

on_both_backends!(
    an_upload_that_never_shows_its_boundary_ends_at_the_limit,
    a_body_sent_a_byte_at_a_time_is_cut_off_at_the_request_timeout,
    with_every_connection_taken_the_server_refuses_cleanly_and_recovers,
    a_client_that_never_reads_is_cut_off_and_one_address_cannot_take_every_slot,
    no_public_answer_shows_a_manual_locks_words,
    out_of_bound_numbers_and_unsafe_links_are_refused_naming_the_field,
    a_reversal_dated_in_the_future_is_refused_and_the_real_one_still_goes_in,
    bodies_over_the_limit_and_bad_csv_headers_get_their_documented_answers,
    a_nul_character_in_any_text_field_is_refused_without_a_server_error,
    metrics_need_the_token,
);
