//! Appeals and the public IMEI check (issue 6), with a simulated phone against a spawned
//! server, on SQLite and, when LIEN_TEST_POSTGRES_URL is set, PostgreSQL.

#[macro_use]
mod common;

use std::time::Duration;

use common::{Backend, FinancedPhone, Reply, TestApp, imei, postgres_url, spawn_app};
use jiff::{SignedDuration, Timestamp};
use lien_agent::Screen;
use lien_agent::sim::Phone;
use serde_json::{Value, json};

/// A PNG's first bytes and a little more: enough for the content check.
const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];

/// One part of a multipart form.
enum Part<'a> {
    /// A text field: name, value.
    Text(&'a str, &'a str),
    /// A file: field name, file name, declared type, content.
    File(&'a str, &'a str, &'a str, &'a [u8]),
}

/// Posts a multipart form as a browser would; returns the answer.
async fn post_form(app: &TestApp, path: &str, parts: &[Part<'_>]) -> Reply {
    let boundary = "----lienTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match part {
            Part::Text(name, value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File(name, file_name, content_type, bytes) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\n\
                         Content-Type: {content_type}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let response = app
        .client
        .post(format!("{}{path}", app.base))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

struct World {
    app: TestApp,
    key: String,
    device_id: String,
    imei: String,
    phone: Phone,
}

impl World {
    /// A phone on the Kenya preset (KES 1,000.00 due 1 February, locked on day 4 past due).
    async fn new(backend: Backend) -> World {
        let start: Timestamp = "2026-01-10T09:00:00Z".parse().unwrap();
        let app = spawn_app(backend, start).await;
        let (_, key) = app.financier("Duka Phones").await;
        let FinancedPhone {
            device_id,
            imei,
            phone,
        } = app.financed_phone(&key, &app.base).await;
        World {
            app,
            key,
            device_id,
            imei,
            phone,
        }
    }

    async fn advance(&mut self, by: Duration) {
        self.app.advance_with(&mut self.phone, by).await;
    }

    async fn advance_to(&mut self, at: &str) {
        self.app.advance_to_with(&mut self.phone, at).await;
    }

    fn locked(&self) -> bool {
        matches!(self.phone.screen(), Screen::Locked(_))
    }

    async fn device(&self) -> Value {
        let r = self
            .app
            .call(
                "GET",
                &format!("/v1/devices/{}", self.device_id),
                &self.key,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    async fn history_actions(&self) -> Vec<String> {
        let r = self
            .app
            .call(
                "GET",
                &format!("/v1/devices/{}/history", self.device_id),
                &self.key,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let records = r.body["records"]
            .as_array()
            .or(r.body.as_array())
            .cloned()
            .unwrap_or_default();
        records
            .iter()
            .map(|e| e["action"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The borrower says they paid KES 1,000.00 by M-Pesa on 3 February, with a receipt.
    async fn appeal_paid(&self) -> Reply {
        post_form(
            &self.app,
            "/v1/public/appeals",
            &[
                Part::Text("imei", &self.imei),
                Part::Text("claim", "paid"),
                Part::Text("contact", "+254 711 000 111"),
                Part::Text("payment_reference", "MPESA-QX12"),
                Part::Text("paid_on", "2026-02-03"),
                Part::Text("amount", "1000.00"),
                Part::Text("currency", "KES"),
                Part::File("receipt", "receipt.png", "image/png", PNG),
            ],
        )
        .await
    }

    async fn follow(&self, reference: &str) -> Value {
        let r = self
            .app
            .call("GET", &format!("/v1/public/appeals/{reference}"), "", None)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }
}

async fn unanswered_payment_appeal_unlocks_then_accepting_records_the_payment(backend: Backend) {
    let mut w = World::new(backend).await;
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    assert!(w.locked(), "{}", w.phone.render());

    // The borrower paid outside the financier's system and appeals, without an account.
    let opened = w.appeal_paid().await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let reference = opened.body["reference"].as_str().unwrap().to_string();
    assert!(reference.starts_with("AP-"), "{reference}");
    assert_eq!(opened.body["appeal"]["status"], "open");
    let deadline: Timestamp = opened.body["appeal"]["deadline"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        deadline.as_second() - w.app.clock_now().as_second(),
        72 * 3600,
        "the default response deadline is 72 hours"
    );
    // The financier sees the appeal and can download the receipt; the public cannot.
    let listed = w
        .app
        .call("GET", "/v1/appeals?status=open", &w.key, None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body[0]["reference"], reference.as_str());
    assert_eq!(listed.body[0]["attachment"]["media_type"], "image/png");
    let file = w
        .app
        .client
        .get(format!("{}/v1/appeals/{reference}/attachment", w.app.base))
        .bearer_auth(&w.key)
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.bytes().await.unwrap().as_ref(), PNG);
    let anonymous = w
        .app
        .call(
            "GET",
            &format!("/v1/appeals/{reference}/attachment"),
            "",
            None,
        )
        .await;
    assert_eq!(anonymous.status, 401);
    // Support sees every appeal; another financier sees none of these.
    let support = w.app.support_key().await;
    let seen = w
        .app
        .call("GET", &format!("/v1/appeals/{reference}"), &support, None)
        .await;
    assert_eq!(seen.status, 200, "{}", seen.body);
    let (_, other) = w.app.financier("Other Credit").await;
    let hidden = w
        .app
        .call("GET", &format!("/v1/appeals/{reference}"), &other, None)
        .await;
    assert_eq!(hidden.status, 404, "{}", hidden.body);

    // Unanswered: still locked just before the deadline, and nothing gets worse.
    let before = (deadline.as_second() - w.app.clock_now().as_second() - 60) as u64;
    w.advance(Duration::from_secs(before)).await;
    w.phone.check_again().await;
    assert!(w.locked(), "{}", w.phone.render());
    // The deadline passes: the scheduler grants the provisional unlock, and the phone has it
    // at its next check-in.
    w.advance(Duration::from_secs(120)).await;
    w.phone.check_again().await;
    assert!(!w.locked(), "{}", w.phone.render());
    let device = w.device().await;
    assert_eq!(device["decision"]["reason"]["code"], "provisional_unlock");
    let followed = w.follow(&reference).await;
    assert!(
        followed["progress"]
            .as_str()
            .unwrap()
            .contains("unlocked until"),
        "{followed}"
    );

    // The financier confirms the payment: the provisional unlock becomes a plain active state.
    let answered = w
        .app
        .call(
            "POST",
            &format!("/v1/appeals/{reference}/decision"),
            &w.key,
            Some(json!({"decision": "accept", "reason": "M-Pesa confirms the payment"})),
        )
        .await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(answered.body["status"], "accepted");
    let device = w.device().await;
    assert_eq!(device["decision"]["state"], "active", "{device}");
    assert_eq!(
        device["decision"]["reason"]["code"], "good_standing",
        "{device}"
    );
    w.phone.check_again().await;
    assert_eq!(
        w.phone.screen(),
        &Screen::Normal { banner: None },
        "{}",
        w.phone.render()
    );
    // A second answer is refused.
    let again = w
        .app
        .call(
            "POST",
            &format!("/v1/appeals/{reference}/decision"),
            &w.key,
            Some(json!({"decision": "reject", "reason": "changed my mind"})),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(w.follow(&reference).await["status"], "accepted");

    let actions = w.history_actions().await;
    for step in ["appeal_opened", "appeal_deadline", "appeal_accepted"] {
        assert!(
            actions.iter().any(|a| a == step),
            "{step} missing: {actions:?}"
        );
    }
}

async fn a_rejected_appeal_shows_the_reason_and_the_lock_stays(backend: Backend) {
    let mut w = World::new(backend).await;
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    assert!(w.locked());
    let opened = w.appeal_paid().await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let reference = opened.body["reference"].as_str().unwrap().to_string();

    // A second appeal while one is open is refused.
    let second = w.appeal_paid().await;
    assert_eq!(second.status, 409, "{}", second.body);

    let no_reason = w
        .app
        .call(
            "POST",
            &format!("/v1/appeals/{reference}/decision"),
            &w.key,
            Some(json!({"decision": "reject"})),
        )
        .await;
    assert_eq!(no_reason.status, 422, "{}", no_reason.body);
    assert!(
        no_reason.body["message"]
            .as_str()
            .unwrap()
            .starts_with("reason:")
    );

    let rejected = w
        .app
        .call(
            "POST",
            &format!("/v1/appeals/{reference}/decision"),
            &w.key,
            Some(json!({"decision": "reject", "reason": "No payment MPESA-QX12 reached our till"})),
        )
        .await;
    assert_eq!(rejected.status, 200, "{}", rejected.body);
    let followed = w.follow(&reference).await;
    assert_eq!(followed["status"], "rejected");
    assert_eq!(
        followed["decision_reason"],
        "No payment MPESA-QX12 reached our till"
    );
    // The pending provisional unlock was cancelled: the deadline passes, the lock stays.
    w.advance(Duration::from_secs(4 * 24 * 3600)).await;
    w.phone.check_again().await;
    assert!(w.locked(), "{}", w.phone.render());
    let actions = w.history_actions().await;
    assert!(
        actions.iter().any(|a| a == "appeal_rejected"),
        "{actions:?}"
    );
    assert!(
        !actions.iter().any(|a| a == "appeal_deadline"),
        "{actions:?}"
    );
}

async fn bad_uploads_are_refused_with_the_field_named_and_nothing_written(backend: Backend) {
    let w = World::new(backend).await;
    let too_big = vec![0x89u8; 5 * 1024 * 1024 + 1];
    let mut big_png = PNG.to_vec();
    big_png.extend_from_slice(&too_big);
    let cases: [(&str, &str, &[u8], &str); 4] = [
        (
            "big.png",
            "image/png",
            &big_png,
            "receipt: the file is larger than 5 MiB",
        ),
        (
            "notes.txt",
            "text/plain",
            b"I paid",
            "receipt: only PDF, JPEG or PNG files are accepted",
        ),
        (
            "fake.png",
            "image/png",
            b"MZ\x90\x00 not an image",
            "receipt: the file is not a PDF, JPEG or PNG",
        ),
        (
            "empty.pdf",
            "application/pdf",
            b"",
            "receipt: the file is empty",
        ),
    ];
    for (name, content_type, bytes, message) in cases {
        let r = post_form(
            &w.app,
            "/v1/public/appeals",
            &[
                Part::Text("imei", &w.imei),
                Part::Text("claim", "paid"),
                Part::Text("contact", "+254 711 000 111"),
                Part::Text("payment_reference", "MPESA-QX12"),
                Part::Text("paid_on", "2026-01-09"),
                Part::Text("amount", "1000"),
                Part::Text("currency", "KES"),
                Part::File("receipt", name, content_type, bytes),
            ],
        )
        .await;
        assert_eq!(r.status, 422, "{name}: {}", r.body);
        let text = r.body["message"].as_str().unwrap_or_default();
        assert!(text.starts_with(message), "{name}: {text}");
    }
    // Missing and wrong fields are named too.
    let r = post_form(
        &w.app,
        "/v1/public/appeals",
        &[
            Part::Text("imei", &w.imei),
            Part::Text("claim", "paid"),
            Part::Text("contact", "x"),
            Part::Text("payment_reference", "R1"),
            Part::Text("paid_on", "yesterday"),
        ],
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().starts_with("paid_on:"));
    let r = post_form(&w.app, "/v1/public/appeals", &[Part::Text("claim", "paid")]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().starts_with("imei:"));

    // Nothing half-written: no appeal, no history entry, no file.
    let listed = w.app.call("GET", "/v1/appeals", &w.key, None).await;
    assert_eq!(listed.body, json!([]));
    assert!(
        !w.history_actions()
            .await
            .iter()
            .any(|a| a == "appeal_opened")
    );
    let uploads = w.app.running.state.settings.data_dir.join("appeals");
    let files = std::fs::read_dir(&uploads).map_or(0, |d| d.count());
    assert_eq!(files, 0, "no upload is kept for a refused appeal");
}

async fn the_imei_check_says_little_and_is_rate_limited(backend: Backend) {
    let mut w = World::new(backend).await;
    let check = |imei: String| {
        let app = &w.app;
        async move {
            let r = app
                .call("GET", &format!("/v1/public/imei/{imei}"), "", None)
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body
        }
    };
    let good = check(w.imei.clone()).await;
    assert_eq!(good["status"], "financed_good_standing", "{good}");
    assert_eq!(good["financier"]["name"], "Duka Phones");
    let text = good.to_string();
    for secret in ["C-1001", "amount", "dev_", "contract", "SN1001"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert_eq!(check(imei("35693803564999")).await["status"], "clear");
    assert_eq!(check("123456789012345".into()).await["status"], "unknown");
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    let r = w
        .app
        .call("GET", &format!("/v1/public/imei/{}", w.imei), "", None)
        .await;
    assert_eq!(r.body["status"], "locked", "{}", r.body);

    // Ten at once (the burst) have been used up by now or soon; the next is refused.
    let mut refused = None;
    for _ in 0..20 {
        let response = w
            .app
            .client
            .get(format!("{}/v1/public/imei/{}", w.app.base, w.imei))
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("the public check is rate limited");
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("try again"),
        "{body}"
    );
    // Time passes; the client may ask again.
    w.app.clock.advance(SignedDuration::from_secs(retry as i64));
    let again = w
        .app
        .call("GET", &format!("/v1/public/imei/{}", w.imei), "", None)
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
}

on_both_backends!(
    unanswered_payment_appeal_unlocks_then_accepting_records_the_payment,
    a_rejected_appeal_shows_the_reason_and_the_lock_stays,
    bad_uploads_are_refused_with_the_field_named_and_nothing_written,
    the_imei_check_says_little_and_is_rate_limited,
);
