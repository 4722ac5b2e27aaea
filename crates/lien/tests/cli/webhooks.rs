//! A webhook outlives a crash: `lien serve` killed with SIGKILL after a change committed and
//! before its event was delivered delivers it once started again, signed as Standard Webhooks
//! specifies (checked here with the test's own implementation).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::commands::Served;

/// One request the receiver took: its headers (names in lower case) and body.
struct Received {
    headers: HashMap<String, String>,
    body: String,
}

/// Takes one request on `listener` and answers 204.
fn receive(listener: &TcpListener) -> Received {
    let (stream, _) = listener.accept().expect("a delivery arrives");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut headers = HashMap::new();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("POST /hook "), "{line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':').unwrap();
        headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
    }
    let length: usize = headers["content-length"].parse().unwrap();
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    reader
        .get_mut()
        .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .unwrap();
    Received {
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

/// Whether `received` carries a signature of its id, timestamp and body under `secret`, as the
/// specification defines it: `v1,` and the base64 of HMAC-SHA256, keyed with the base64-decoded
/// part of the secret after `whsec_`, over `{id}.{timestamp}.{body}`.
fn signed(received: &Received, secret: &str) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let content = format!(
        "{}.{}.{}",
        received.headers["webhook-id"], received.headers["webhook-timestamp"], received.body
    );
    received.headers["webhook-signature"]
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .any(|sig| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(content.as_bytes());
            mac.verify_slice(&sig).is_ok()
        })
}

/// Sends a JSON request with a bearer key; returns the status and the JSON answer.
fn call(served: &Served, method: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    let body = body.to_string();
    let answer = served.request(&format!(
        "{method} {path} HTTP/1.1\r\nhost: lien\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    let status = answer[9..12].parse().unwrap();
    let (_, json) = answer.split_once("\r\n\r\n").unwrap();
    // Chunked or not, the JSON object is between the first `{` and the last `}`.
    let json = match (json.find('{'), json.rfind('}')) {
        (Some(a), Some(b)) => serde_json::from_str(&json[a..=b]).unwrap(),
        _ => Value::Null,
    };
    (status, json)
}

#[cfg(target_os = "linux")]
#[test]
fn an_event_committed_before_a_sigkill_is_delivered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let receiver = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", receiver.local_addr().unwrap());

    // The worker passes once at start, then not for an hour: the event waits in the outbox.
    let asleep = [
        ("LIEN_WEBHOOK_ALLOW_HTTP", "true"),
        ("LIEN_WEBHOOK_INTERVAL_MS", "3600000"),
    ];
    let mut served = Served::start_with(&data, &asleep, true);
    let admin = std::fs::read_to_string(data.join("first-admin.key")).unwrap();
    let admin = admin.trim();
    let (status, financier) = call(
        &served,
        "POST",
        "/v1/financiers",
        admin,
        json!({"name": "Duka Phones", "contact": "+254 700 000 000", "payment_link": "https://pay.example/x"}),
    );
    assert_eq!(status, 201, "{financier}");
    let financier_id = financier["id"].as_str().unwrap();
    let (status, key) = call(
        &served,
        "POST",
        &format!("/v1/financiers/{financier_id}/api-keys"),
        admin,
        json!({"role": "financier-admin", "label": "back office"}),
    );
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    let (status, endpoint) = call(
        &served,
        "POST",
        "/v1/webhook-endpoints",
        &key,
        json!({ "url": url }),
    );
    assert_eq!(status, 201, "{endpoint}");
    let secret = endpoint["secret"].as_str().unwrap().to_string();
    let (status, device) = call(
        &served,
        "POST",
        "/v1/devices",
        &key,
        json!({
            "contract_ref": "C-1",
            "imei1": "356938035643809",
            "serial": "SN1",
            "model": "Phone X",
            "plan": {
                "currency": "KES",
                "time_zone": "Africa/Nairobi",
                "down_payment_minor": 200000,
                "installments": [{"due": "2036-02-01", "amount_minor": 100000}]
            },
            "policy": {"preset": "kenya"}
        }),
    );
    assert_eq!(status, 201, "{device}");
    let device_id = device["id"].as_str().unwrap().to_string();

    // Committed, not delivered: killed outright.
    receiver.set_nonblocking(true).unwrap();
    assert!(
        receiver.accept().is_err(),
        "nothing was delivered before the kill"
    );
    served.child.kill().unwrap();
    served.child.wait().unwrap();

    receiver.set_nonblocking(false).unwrap();
    let awake = [
        ("LIEN_WEBHOOK_ALLOW_HTTP", "true"),
        ("LIEN_WEBHOOK_INTERVAL_MS", "200"),
    ];
    let _restarted = Served::start_with(&data, &awake, false);
    let received = receive(&receiver);
    assert!(signed(&received, &secret), "{:?}", received.headers);
    let event: Value = serde_json::from_str(&received.body).unwrap();
    assert_eq!(event["type"], "device.enrolled", "{event}");
    assert_eq!(event["data"]["device_id"], device_id.as_str());
    assert_eq!(event["data"]["sequence"], 1);
    assert!(received.headers["webhook-id"].starts_with("msg_"));
}
