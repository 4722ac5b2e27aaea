//! Webhooks to financiers, received by a real HTTP receiver on 127.0.0.1 that checks every
//! delivery's signature with its own reading of the Standard Webhooks specification (not the
//! server's code): each event arrives once after the receiver refused its first attempts, in
//! sequence order per device; 410 Gone disables the endpoint; a rotation signs with both
//! secrets; an event is sent again on request. On SQLite and, when LIEN_TEST_POSTGRES_URL is
//! set, on PostgreSQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use jiff::SignedDuration;
use lien_server::clock::{Clock, ManualClock};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::{Backend, Reply, TestApp, imei, postgres_url, spawn_app_with};

/// Standard Webhooks' default tolerance for `webhook-timestamp`.
const TOLERANCE_SECS: i64 = 5 * 60;

/// A delivery the receiver verified and took.
#[derive(Debug, Clone)]
struct Taken {
    id: String,
    event_type: String,
    device_id: Option<String>,
    sequence: Option<i64>,
    signatures: usize,
}

/// The receiver's state: the secret it verifies with, what it answers, what it took.
struct Receiver {
    clock: ManualClock,
    /// The secrets of the endpoints that post here, any of which may sign.
    secrets: Mutex<Vec<String>>,
    /// Refuse (500) this many attempts of each message before taking it.
    fail_first: usize,
    /// Answer 410 Gone to everything.
    gone: bool,
    /// Attempts per endpoint (the path's last segment) and message.
    attempts: Mutex<HashMap<(String, String), usize>>,
    taken: Mutex<Vec<Taken>>,
    bad_signatures: Mutex<Vec<String>>,
}

/// Verifies a delivery as the specification says: the signed content is
/// `{webhook-id}.{webhook-timestamp}.{body}`, the key is the base64 after `whsec_`, the MAC is
/// HMAC-SHA256, and `webhook-signature` holds space-separated `v1,<base64>` entries, any of
/// which may match; the timestamp must be within the tolerance of now. Returns how many
/// signatures were offered, or why it is refused.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8], now: i64) -> Result<usize, String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(format!("no {name}"))
    };
    let id = header("webhook-id")?;
    let timestamp = header("webhook-timestamp")?;
    let signatures = header("webhook-signature")?;
    let ts: i64 = timestamp.parse().map_err(|_| "bad timestamp".to_string())?;
    if (now - ts).abs() > TOLERANCE_SECS {
        return Err(format!("timestamp {ts} too far from {now}"));
    }
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or("secret prefix")?)
        .map_err(|e| e.to_string())?;
    let mut content = Vec::new();
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    let offered: Vec<&str> = signatures.split(' ').collect();
    for entry in &offered {
        let Some((version, sig)) = entry.split_once(',') else {
            continue;
        };
        if version != "v1" {
            continue;
        }
        let Ok(sig) = STANDARD.decode(sig) else {
            continue;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(&content);
        if mac.verify_slice(&sig).is_ok() {
            return Ok(offered.len());
        }
    }
    Err("no signature matches".to_string())
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    axum::extract::Path(endpoint): axum::extract::Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    if receiver.gone {
        return StatusCode::GONE;
    }
    let now = receiver.clock.now().as_second();
    let secrets = receiver.secrets.lock().unwrap().clone();
    let verified = secrets
        .iter()
        .map(|secret| verify(secret, &headers, &body, now))
        .find(Result::is_ok)
        .unwrap_or_else(|| Err("no secret verifies it".to_string()));
    let offered = match verified {
        Ok(n) => n,
        Err(why) => {
            receiver.bad_signatures.lock().unwrap().push(why);
            return StatusCode::UNAUTHORIZED;
        }
    };
    let id = headers["webhook-id"].to_str().unwrap().to_string();
    {
        let mut attempts = receiver.attempts.lock().unwrap();
        let n = attempts.entry((endpoint, id.clone())).or_default();
        *n += 1;
        if *n <= receiver.fail_first {
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        event["data"]["device_id"].is_string(),
        event["type"] != "payment.unmatched"
    );
    receiver.taken.lock().unwrap().push(Taken {
        id,
        event_type: event["type"].as_str().unwrap().to_string(),
        device_id: event["data"]["device_id"].as_str().map(str::to_string),
        sequence: event["data"]["sequence"].as_i64(),
        signatures: offered,
    });
    StatusCode::NO_CONTENT
}

/// Starts a receiver; returns it and its URL.
async fn receiver(app: &TestApp, fail_first: usize, gone: bool) -> (Arc<Receiver>, String) {
    let receiver = new_receiver(app, fail_first, gone);
    let router = axum::Router::new()
        .route("/hook/{endpoint}", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (receiver, format!("http://{addr}/hook/"))
}

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, "2026-01-10T09:00:00Z".parse().unwrap(), |s| {
        s.webhook_allow_http = true
    })
    .await
}

/// Makes an endpoint for `url`; returns its id and the secret shown.
async fn endpoint(app: &TestApp, key: &str, url: &str, types: Value) -> (String, String) {
    let created = app
        .call(
            "POST",
            "/v1/webhook-endpoints",
            key,
            Some(json!({ "url": url, "event_types": types })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (created.body["id"].as_str().unwrap().to_string(), secret)
}

/// Rotates the endpoint's secret; returns the answer (the new secret, the old one's end).
async fn rotate(app: &TestApp, key: &str, endpoint_id: &str) -> Value {
    let rotated = app
        .call(
            "POST",
            &format!("/v1/webhook-endpoints/{endpoint_id}/secret"),
            key,
            None,
        )
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.body);
    rotated.body
}

/// Deletes the endpoint; returns the answer.
async fn delete_endpoint(app: &TestApp, key: &str, endpoint_id: &str) -> Reply {
    app.call(
        "DELETE",
        &format!("/v1/webhook-endpoints/{endpoint_id}"),
        key,
        None,
    )
    .await
}

/// Runs the delivery worker's pass, as the background task would.
async fn deliver(app: &TestApp) -> usize {
    lien_server::webhooks::deliver_due(&app.running.state)
        .await
        .unwrap()
}

/// Delivers, then moves the clock past the longest of the first two waits (5 s and 5 min, a
/// fifth either way), until nothing is left to try.
async fn deliver_with_retries(app: &TestApp) {
    for _ in 0..60 {
        deliver(app).await;
        app.clock.advance(SignedDuration::from_secs(7 * 60));
    }
}

async fn each_event_arrives_once_in_order_after_failed_attempts(backend: Backend) {
    let app = app(backend).await;
    let (financier_id, key) = app.financier("Duka Phones").await;
    let (receiver, url) = receiver(&app, 2, false).await;
    let (endpoint_id, secret) = endpoint(&app, &key, &format!("{url}all"), json!([])).await;
    receiver.secrets.lock().unwrap().push(secret);
    // A second endpoint that wants payments only.
    let (payments_only, secret) = endpoint(
        &app,
        &key,
        &format!("{url}payments"),
        json!(["payment.applied"]),
    )
    .await;
    receiver.secrets.lock().unwrap().push(secret);

    let a = app
        .enroll_device(&key, "C-1", &imei("35693803564380"), "SN1")
        .await;
    let b = app
        .enroll_device(&key, "C-2", &imei("35693803564381"), "SN2")
        .await;
    assert_eq!(app.pay(&key, &a, "P-1", 10_000, "k1").await.status, 200);
    assert_eq!(app.lock(&key, &a, "Call us").await.status, 200);
    assert_eq!(app.pay(&key, &b, "P-2", 10_000, "k2").await.status, 200);
    assert_eq!(app.release(&key, &b, "paid in cash").await.status, 200);
    // A retried request writes nothing and so tells nothing again.
    assert_eq!(app.pay(&key, &a, "P-1", 10_000, "k1").await.status, 200);

    deliver_with_retries(&app).await;

    assert!(
        receiver.bad_signatures.lock().unwrap().is_empty(),
        "{:?}",
        receiver.bad_signatures.lock().unwrap()
    );
    let outbox = app.outbox_events(&financier_id).await;
    let types: Vec<&str> = outbox.iter().map(|e| e.event.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "device.enrolled",
            "device.enrolled",
            "payment.applied",
            "device.state_changed",
            "payment.applied",
            "release.started",
        ]
    );
    let taken = receiver.taken.lock().unwrap().clone();
    // Every event once to the first endpoint, and the two payments once more to the second.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &taken {
        *counts.entry(t.id.as_str()).or_default() += 1;
    }
    for e in &outbox {
        let expected = if e.event.event_type == "payment.applied" {
            2
        } else {
            1
        };
        assert_eq!(counts.get(e.event.id.as_str()), Some(&expected), "{e:?}");
    }
    assert_eq!(taken.len(), outbox.len() + 2);
    // Three attempts of each event at each endpoint: two refused, one taken.
    let attempts = receiver.attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), outbox.len() + 2);
    assert!(attempts.values().all(|n| *n == 3), "{attempts:?}");
    // In sequence order per device.
    for device in [&a, &b] {
        let sequences: Vec<i64> = taken
            .iter()
            .filter(|t| t.device_id.as_deref() == Some(device.as_str()))
            .filter(|t| t.event_type != "payment.applied")
            .map(|t| t.sequence.unwrap())
            .collect();
        assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
        assert!(!sequences.is_empty());
    }
    let state_changed = outbox
        .iter()
        .find(|e| e.event.event_type == "device.state_changed")
        .unwrap();
    let data: Value = serde_json::from_str(&state_changed.event.payload).unwrap();
    assert_eq!(data["to"], "locked");
    assert_eq!(data["decision"]["state"], "locked");

    // The delivery log: each delivered with the receiver's status, after three attempts.
    let deliveries = log(&app, &key, &endpoint_id).await;
    assert_eq!(deliveries.len(), outbox.len());
    for d in &deliveries {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["attempts"], 3, "{d}");
        assert_eq!(d["last_response_status"], 204, "{d}");
    }
    assert_eq!(log(&app, &key, &payments_only).await.len(), 2);

    // Sent again by hand: the same id once more.
    let first = outbox[0].event.id.clone();
    let again = app
        .call(
            "POST",
            &format!("/v1/webhook-endpoints/{endpoint_id}/deliveries/{first}/redeliver"),
            &key,
            None,
        )
        .await;
    assert_eq!(again.status, 202, "{}", again.body);
    deliver(&app).await;
    let n = receiver
        .taken
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.id == first)
        .count();
    assert_eq!(n, 2);

    // A rotation: two signatures for a day, and the receiver's new secret verifies them.
    let rotated = rotate(&app, &key, &endpoint_id).await;
    // Only the new secret: the old one's signature is ignored, the new one's verifies.
    *receiver.secrets.lock().unwrap() = vec![rotated["secret"].as_str().unwrap().to_string()];
    assert_eq!(app.lock(&key, &b, "Call us").await.status, 200);
    deliver_with_retries(&app).await;
    let last = receiver.taken.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.event_type, "device.state_changed");
    assert_eq!(last.signatures, 2);
    assert!(receiver.bad_signatures.lock().unwrap().is_empty());

    // Another financier sees none of these endpoints.
    let (_, other) = app.financier("Other").await;
    let listed = app.call("GET", "/v1/webhook-endpoints", &other, None).await;
    assert_eq!(listed.body["endpoints"], json!([]));
    let stolen = app
        .call(
            "GET",
            &format!("/v1/webhook-endpoints/{endpoint_id}/deliveries"),
            &other,
            None,
        )
        .await;
    assert_eq!(stolen.status, 404);
}

async fn gone_disables_the_endpoint_and_http_is_refused_by_default(backend: Backend) {
    let app = app(backend).await;
    let (_, key) = app.financier("Duka Phones").await;
    let (_, url) = receiver(&app, 0, true).await;
    let (endpoint_id, _) = endpoint(&app, &key, &format!("{url}gone"), json!([])).await;
    app.enroll_device(&key, "C-1", &imei("35693803564380"), "SN1")
        .await;
    assert_eq!(deliver(&app).await, 1);
    let listed = app.call("GET", "/v1/webhook-endpoints", &key, None).await;
    assert_eq!(listed.body["endpoints"][0]["id"], endpoint_id.as_str());
    assert!(listed.body["endpoints"][0]["disabled_at"].is_string());
    assert_eq!(listed.body["endpoints"][0]["url"], format!("{url}gone"));
    // An agent reads the endpoints but not their paths, which may hold the receiver's token.
    let financier_id = app.call("GET", "/v1/financiers", &key, None).await.body[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let agent = app.financier_key(&financier_id, "financier-agent").await;
    let seen = app.call("GET", "/v1/webhook-endpoints", &agent, None).await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(
        seen.body["endpoints"][0]["url"],
        url.split("/hook/").next().unwrap(),
        "the origin only"
    );
    app.enroll_device(&key, "C-2", &imei("35693803564381"), "SN2")
        .await;
    assert_eq!(deliver(&app).await, 0, "nothing more is sent there");

    let plain = crate::common::spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (_, plain_key) = plain.financier("Duka Phones").await;
    let refused = plain
        .call(
            "POST",
            "/v1/webhook-endpoints",
            &plain_key,
            Some(json!({ "url": "http://hooks.example/x" })),
        )
        .await;
    refused.assert_invalid("url");
    let deleted = delete_endpoint(&app, &key, &endpoint_id).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let listed = app.call("GET", "/v1/webhook-endpoints", &key, None).await;
    assert_eq!(listed.body["endpoints"], json!([]));
}

/// A self-signed certificate for `names`, and the file its PEM is kept in (for
/// `webhook_extra_roots`).
fn certificate(
    names: &[&str],
    dir: &std::path::Path,
    file: &str,
) -> (rcgen::CertifiedKey<rcgen::KeyPair>, std::path::PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let path = dir.join(file);
    std::fs::write(&path, cert.cert.pem()).unwrap();
    (cert, path)
}

/// Serves the receiver over TLS with `cert`; returns its address.
async fn serve_tls(
    receiver: Arc<Receiver>,
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
) -> std::net::SocketAddr {
    use tokio_rustls::rustls;
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let router = axum::Router::new()
        .route("/hook/{endpoint}", axum::routing::post(receive))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// A receiver's state, not serving yet, with no secrets and nothing taken: it refuses the first
/// `fail_first` attempts of each message, and answers 410 Gone to everything if `gone`.
fn new_receiver(app: &TestApp, fail_first: usize, gone: bool) -> Arc<Receiver> {
    Arc::new(Receiver {
        clock: app.clock.clone(),
        secrets: Mutex::default(),
        fail_first,
        gone,
        attempts: Mutex::default(),
        taken: Mutex::default(),
        bad_signatures: Mutex::default(),
    })
}

/// The endpoint's delivery log, newest first.
async fn log(app: &TestApp, key: &str, endpoint_id: &str) -> Vec<Value> {
    let log = app
        .call(
            "GET",
            &format!("/v1/webhook-endpoints/{endpoint_id}/deliveries"),
            key,
            None,
        )
        .await;
    assert_eq!(log.status, 200, "{}", log.body);
    log.body["deliveries"].as_array().unwrap().clone()
}

async fn https_is_delivered_to_a_trusted_certificate_and_refused_to_another(backend: Backend) {
    let certs = tempfile::tempdir().unwrap();
    let (trusted, root) = certificate(&["localhost"], certs.path(), "trusted.pem");
    // Same name, but made by nobody the server trusts.
    let (untrusted, _) = certificate(&["localhost"], certs.path(), "untrusted.pem");
    let app = spawn_app_with(backend, "2026-01-10T09:00:00Z".parse().unwrap(), |s| {
        s.webhook_allow_http = true;
        s.webhook_extra_roots = vec![root];
    })
    .await;
    let (_, key) = app.financier("Duka Phones").await;
    let good = new_receiver(&app, 0, false);
    let good_addr = serve_tls(good.clone(), &trusted).await;
    let bad = new_receiver(&app, 0, false);
    let bad_addr = serve_tls(bad.clone(), &untrusted).await;
    let url = |addr: std::net::SocketAddr| format!("https://localhost:{}/hook/x", addr.port());
    let (good_id, secret) = endpoint(&app, &key, &url(good_addr), json!([])).await;
    good.secrets.lock().unwrap().push(secret);
    let (bad_id, secret) = endpoint(&app, &key, &url(bad_addr), json!([])).await;
    bad.secrets.lock().unwrap().push(secret);
    app.enroll_device(&key, "C-1", &imei("35693803564380"), "SN1")
        .await;
    assert_eq!(deliver(&app).await, 2);

    assert_eq!(good.taken.lock().unwrap().len(), 1, "delivered over HTTPS");
    let delivered = log(&app, &key, &good_id).await;
    assert_eq!(delivered[0]["status"], "delivered", "{delivered:?}");
    assert!(bad.taken.lock().unwrap().is_empty());
    let refused = log(&app, &key, &bad_id).await;
    assert_eq!(refused[0]["status"], "pending", "{refused:?}");
    let error = refused[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("TLS certificate was refused"),
        "the log says why: {error}"
    );
}

/// Resolves every name to one address, as a DNS answer the server does not control would.
struct Resolves(std::net::SocketAddr);

impl reqwest::dns::Resolve for Resolves {
    fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let addr = self.0;
        Box::pin(async move { Ok(Box::new(std::iter::once(addr)) as reqwest::dns::Addrs) })
    }
}

async fn a_public_name_resolving_to_this_machine_is_refused_at_delivery(backend: Backend) {
    let certs = tempfile::tempdir().unwrap();
    let (cert, root) = certificate(&["hooks.example.com"], certs.path(), "root.pem");
    // Production settings: https only, no local targets.
    let app = spawn_app_with(backend, "2026-01-10T09:00:00Z".parse().unwrap(), |s| {
        s.webhook_extra_roots = vec![root];
    })
    .await;
    let (_, key) = app.financier("Duka Phones").await;
    let receiver = new_receiver(&app, 0, false);
    let addr = serve_tls(receiver.clone(), &cert).await;
    let url = format!("https://hooks.example.com:{}/hook/x", addr.port());
    let (endpoint_id, secret) = endpoint(&app, &key, &url, json!([])).await;
    receiver.secrets.lock().unwrap().push(secret);
    app.enroll_device(&key, "C-1", &imei("35693803564380"), "SN1")
        .await;

    // The name resolves to 127.0.0.1 at delivery time.
    let state = &app.running.state;
    let rebinding = Arc::new(Resolves(addr));
    let client = lien_server::webhooks::client::build(&state.settings, rebinding.clone()).unwrap();
    lien_server::webhooks::deliver_due_with(state, &client)
        .await
        .unwrap();
    assert!(
        receiver.taken.lock().unwrap().is_empty(),
        "nothing was sent"
    );
    let refused = log(&app, &key, &endpoint_id).await;
    let error = refused[0]["last_error"].as_str().unwrap();
    assert!(error.contains("resolves only to loopback"), "{error}");

    // The same answer is followed where local targets are allowed (development), so the
    // refusal above is the resolver's doing.
    let local = lien_server::config::Settings {
        webhook_allow_http: true,
        ..state.settings.clone()
    };
    let client = lien_server::webhooks::client::build(&local, rebinding).unwrap();
    app.clock.advance(SignedDuration::from_secs(10));
    lien_server::webhooks::deliver_due_with(state, &client)
        .await
        .unwrap();
    assert_eq!(receiver.taken.lock().unwrap().len(), 1);
}

/// A receiver that takes the connection and never answers.
async fn hang() -> StatusCode {
    std::future::pending::<()>().await;
    StatusCode::NO_CONTENT
}

async fn a_hanging_receiver_does_not_hold_up_another_financiers(backend: Backend) {
    let app = spawn_app_with(backend, "2026-01-10T09:00:00Z".parse().unwrap(), |s| {
        s.webhook_allow_http = true;
        s.webhook_timeout_secs = 30;
        s.webhook_concurrency = 4;
        s.webhook_endpoint_concurrency = 2;
        s.webhook_financier_concurrency = 2;
    })
    .await;
    let (_, slow_key) = app.financier("Slow Phones").await;
    let (_, fast_key) = app.financier("Fast Phones").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route("/hook/{endpoint}", axum::routing::post(hang));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    // Three hanging endpoints: by the endpoint cap alone they would hold all four slots.
    for name in ["slow1", "slow2", "slow3"] {
        endpoint(
            &app,
            &slow_key,
            &format!("http://{slow_addr}/hook/{name}"),
            json!([]),
        )
        .await;
    }
    let (fast, url) = receiver(&app, 0, false).await;
    let (_, secret) = endpoint(&app, &fast_key, &format!("{url}fast"), json!([])).await;
    fast.secrets.lock().unwrap().push(secret);
    // The slow financier's events come first, each about a device of its own.
    for (key, letter, imei_start) in [
        (&slow_key, 'S', "3569380356440"),
        (&fast_key, 'F', "3569380356450"),
    ] {
        for i in 0..6 {
            app.enroll_device(
                key,
                &format!("{letter}-{i}"),
                &imei(&format!("{imei_start}{i}")),
                &format!("S{letter}{i}"),
            )
            .await;
        }
    }

    let state = app.running.state.clone();
    let pass = tokio::spawn(async move { lien_server::webhooks::deliver_due(&state).await });
    let started = std::time::Instant::now();
    while fast.taken.lock().unwrap().len() < 6 && started.elapsed().as_secs() < 10 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let arrived = fast.taken.lock().unwrap().len();
    pass.abort();
    assert_eq!(
        arrived, 6,
        "every event of the other financier arrives while the slow one's attempts wait out their 30 s"
    );
}

async fn redeliveries_are_rate_limited_per_financier(backend: Backend) {
    let app = app(backend).await;
    let (_, key) = app.financier("Duka Phones").await;
    let (_, url) = receiver(&app, 0, false).await;
    let (endpoint_id, _) = endpoint(&app, &key, &format!("{url}x"), json!([])).await;
    app.enroll_device(&key, "C-1", &imei("35693803564380"), "SN1")
        .await;
    deliver(&app).await;
    let event = log(&app, &key, &endpoint_id).await[0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/webhook-endpoints/{endpoint_id}/deliveries/{event}/redeliver");
    for i in 0..60 {
        let again = app.call("POST", &path, &key, None).await;
        assert_eq!(again.status, 202, "redelivery {i}: {}", again.body);
    }
    let limited = app.call("POST", &path, &key, None).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(
        limited.body["message"]
            .as_str()
            .unwrap()
            .starts_with("too many redeliveries for this financier"),
        "{}",
        limited.body
    );
    // The allowance refills with the server's clock.
    app.clock.advance(SignedDuration::from_secs(1));
    assert_eq!(app.call("POST", &path, &key, None).await.status, 202);
}

async fn a_rotated_secret_signs_until_its_overlap_ends_and_every_change_is_audited(
    backend: Backend,
) {
    let app = spawn_app_with(backend, "2026-01-10T09:00:00Z".parse().unwrap(), |s| {
        s.webhook_allow_http = true;
        s.webhook_rotation_overlap_hours = 2;
    })
    .await;
    let (financier_id, key) = app.financier("Duka Phones").await;
    let (receiver, url) = receiver(&app, 0, false).await;
    // The receiver's own token rides in the query, as many receivers' do.
    let (endpoint_id, old) =
        endpoint(&app, &key, &format!("{url}x?token=rcv_tok_1"), json!([])).await;
    // The receiver keeps only the old secret throughout.
    receiver.secrets.lock().unwrap().push(old);
    let device = app
        .enroll_device(&key, "C-1", &imei("35693803564380"), "SN1")
        .await;
    deliver(&app).await;
    let rotated = rotate(&app, &key, &endpoint_id).await;
    assert_eq!(
        rotated["previous_secret_until"], "2026-01-10T11:00:00Z",
        "the overlap the settings ask for"
    );
    // An hour in, the old secret still verifies.
    app.clock.advance(SignedDuration::from_hours(1));
    assert_eq!(app.lock(&key, &device, "Call us").await.status, 200);
    deliver(&app).await;
    assert_eq!(receiver.taken.lock().unwrap().len(), 2);
    assert!(receiver.bad_signatures.lock().unwrap().is_empty());
    // After the overlap, only the new secret signs: the old one no longer verifies.
    app.clock.advance(SignedDuration::from_hours(2));
    assert_eq!(
        app.pay(&key, &device, "P-1", 10_000, "k1").await.status,
        200
    );
    deliver(&app).await;
    assert_eq!(receiver.taken.lock().unwrap().len(), 2);
    assert!(!receiver.bad_signatures.lock().unwrap().is_empty());
    let last = log(&app, &key, &endpoint_id).await;
    assert_eq!(last[0]["last_response_status"], 401, "{last:?}");

    // Changed (and enabled again), then deleted: each act in the financier's audit chain.
    let changed = app
        .call(
            "PUT",
            &format!("/v1/webhook-endpoints/{endpoint_id}"),
            &key,
            Some(json!({ "url": format!("{url}y"), "event_types": ["payment.applied"] })),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["event_types"], json!(["payment.applied"]));
    let deleted = delete_endpoint(&app, &key, &endpoint_id).await;
    assert_eq!(deleted.status, 204);
    let chain = app.audit_chain(&format!("financier:{financier_id}")).await;
    let acts: Vec<&str> = chain
        .iter()
        .map(|r| r.entry.action.as_str())
        .filter(|a| a.starts_with("webhook"))
        .collect();
    assert_eq!(
        acts,
        [
            "webhook_endpoint_created",
            "webhook_secret_rotated",
            "webhook_endpoint_updated",
            "webhook_endpoint_deleted",
        ]
    );
    assert!(
        chain.iter().all(|r| !r.entry.after_json.contains("whsec_")),
        "no secret in the audit log"
    );
    let origin = url.trim_end_matches("/hook/");
    let created = chain
        .iter()
        .find(|r| r.entry.action == "webhook_endpoint_created")
        .unwrap();
    assert!(
        created.entry.after_json.contains(&format!("\"{origin}\"")),
        "the endpoint's origin is in the audit log: {}",
        created.entry.after_json
    );
    assert!(
        chain
            .iter()
            .all(|r| !r.entry.after_json.contains("rcv_tok")
                && !r.entry.after_json.contains("/hook/")),
        "neither the receiver's token nor its path is in the audit log"
    );
}

on_both_backends!(
    each_event_arrives_once_in_order_after_failed_attempts,
    gone_disables_the_endpoint_and_http_is_refused_by_default,
    https_is_delivered_to_a_trusted_certificate_and_refused_to_another,
    a_public_name_resolving_to_this_machine_is_refused_at_delivery,
    a_hanging_receiver_does_not_hold_up_another_financiers,
    redeliveries_are_rate_limited_per_financier,
    a_rotated_secret_signs_until_its_overlap_ends_and_every_change_is_audited,
);
