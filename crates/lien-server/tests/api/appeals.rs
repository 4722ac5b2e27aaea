//! Appeals and the public IMEI check (issue 6), with a simulated phone against a spawned
//! server, on SQLite and, when LIEN_TEST_POSTGRES_URL is set, PostgreSQL.

use std::time::Duration;

use crate::common::{
    Backend, Part, Reply, TestApp, World, imei, post_form, postgres_url, receipt_png,
};
use jiff::{SignedDuration, Timestamp};
use lien_agent::Screen;
use lien_server::attachments::AttachmentStoreKind;
use serde_json::{Value, json};

/// A PNG's first bytes and a little more: what once passed the content check, and no longer
/// passes for a document.
const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];

/// The uniform refusal of an appellant who did not prove holding the phone.
fn not_proven() -> Value {
    json!({"error": "not_found", "message": "phone with this IMEI and status code not found"})
}

impl World {
    /// Posts the public appeal form with these parts, as the borrower's browser does.
    async fn appeal(&self, parts: &[Part<'_>]) -> Reply {
        post_form(&self.app, "/v1/public/appeals", parts).await
    }

    /// The financier's `decision` on appeal `reference`, giving `reason`; returns the answer.
    async fn answer(&self, reference: &str, decision: &str, reason: &str) -> Reply {
        let body = json!({ "decision": decision, "reason": reason });
        self.app.answer_appeal(&self.key, reference, body).await
    }

    /// The status code the phone's reminder, restricted or lock screen shows.
    fn shown_code(&self) -> String {
        match self.phone.screen() {
            Screen::Reminder(r) => r.details.status_code.clone(),
            Screen::Restricted(r) => r.details.status_code.clone(),
            Screen::Locked(l) => l.details.status_code.clone(),
            other => panic!("no status code on screen: {other:?}"),
        }
    }

    /// The code of the device's current token, as the server holds it (a phone in good
    /// standing shows no screen with it).
    async fn current_code(&self) -> String {
        let device = self.app.stored_device(&self.device_id).await;
        device.token.expect("a token").status_code
    }

    /// A code that is not this phone's (any other 8 digits).
    fn wrong_code(&self, right: &str) -> String {
        if right == "12345678" {
            "87654321".into()
        } else {
            "12345678".into()
        }
    }

    async fn device(&self) -> Value {
        let r = self.on_device("GET", "", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    async fn history_actions(&self) -> Vec<String> {
        let r = self.on_device("GET", "/history", None).await;
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

    /// The borrower, holding the locked phone, says they paid KES 1,000.00 by M-Pesa on
    /// 3 February, with a receipt, and gives the IMEI and status code from the lock screen.
    pub(crate) async fn appeal_paid(&self) -> Reply {
        self.appeal_paid_with(&self.shown_code(), "1000.00", "KES")
            .await
    }

    /// A payment appeal with this status code, amount and currency, and a 4 KiB receipt.
    async fn appeal_paid_with(&self, code: &str, amount: &str, currency: &str) -> Reply {
        self.appeal_paid_with_receipt(code, amount, currency, &receipt_png(4096))
            .await
    }

    /// The same, with this PNG as the receipt.
    pub(crate) async fn appeal_paid_with_receipt(
        &self,
        code: &str,
        amount: &str,
        currency: &str,
        receipt: &[u8],
    ) -> Reply {
        let mut parts = self.paid_claim(code, "+254 711 000 111", "MPESA-QX12", "2026-02-03");
        parts.extend([
            Part::Text("amount", amount),
            Part::Text("currency", currency),
            Part::File("receipt", "receipt.png", "image/png", receipt),
        ]);
        self.appeal(&parts).await
    }

    /// The fields of a payment appeal about this phone, up to the date paid.
    fn paid_claim<'a>(
        &'a self,
        code: &'a str,
        contact: &'a str,
        reference: &'a str,
        paid_on: &'a str,
    ) -> Vec<Part<'a>> {
        vec![
            Part::Text("imei", &self.imei),
            Part::Text("status_code", code),
            Part::Text("claim", "paid"),
            Part::Text("contact", contact),
            Part::Text("payment_reference", reference),
            Part::Text("paid_on", paid_on),
        ]
    }

    /// A "wrong lock" appeal about `imei` with this status code: no document needed.
    async fn appeal_wrong_lock(&self, imei: &str, code: &str) -> Reply {
        self.appeal(&[
            Part::Text("imei", imei),
            Part::Text("status_code", code),
            Part::Text("claim", "wrong_lock"),
            Part::Text("contact", "+254 711 000 111"),
            Part::Text("statement", "This is not my contract"),
        ])
        .await
    }

    async fn follow(&self, reference: &str) -> Value {
        let r = self
            .app
            .get(&format!("/v1/public/appeals/{reference}"), "")
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
    assert_eq!(opened.body["provisional_unlock_withheld"], Value::Null);
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
    let listed = w.app.get("/v1/appeals?status=open", &w.key).await;
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
    assert_eq!(
        file.bytes().await.unwrap().as_ref(),
        receipt_png(4096).as_slice()
    );
    let anonymous = w
        .app
        .get(&format!("/v1/appeals/{reference}/attachment"), "")
        .await;
    assert_eq!(anonymous.status, 401);
    // Support sees every appeal; another financier sees none of these.
    let support = w.app.support_key().await;
    w.app
        .read(&support, &format!("/v1/appeals/{reference}"))
        .await;
    let (_, other) = w.app.financier("Other Credit").await;
    let hidden = w.app.get(&format!("/v1/appeals/{reference}"), &other).await;
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
        .answer(&reference, "accept", "M-Pesa confirms the payment")
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
    w.assert_normal();
    // A second answer is refused.
    let again = w.answer(&reference, "reject", "changed my mind").await;
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

    // A second appeal while one is open is refused, naming the open one to the holder...
    let second = w.appeal_paid().await;
    second.assert_refused(409, reference.as_str());
    // ...and to a stranger it is the same refusal as for any wrong code: no reference leaks.
    let stranger = w
        .appeal_wrong_lock(&w.imei, &w.wrong_code(&w.shown_code()))
        .await;
    assert_eq!(stranger.status, 404, "{}", stranger.body);
    assert_eq!(stranger.body, not_proven());

    let no_reason = w
        .app
        .answer_appeal(&w.key, &reference, json!({"decision": "reject"}))
        .await;
    no_reason.assert_invalid("reason");

    let rejected = w
        .answer(
            &reference,
            "reject",
            "No payment MPESA-QX12 reached our till",
        )
        .await;
    assert_eq!(rejected.status, 200, "{}", rejected.body);
    let followed = w.follow(&reference).await;
    assert_eq!(followed["status"], "rejected");
    assert_eq!(
        followed["decision_reason"],
        "No payment MPESA-QX12 reached our till"
    );
    // It cannot be reopened at once: the cool-down (72 hours by default) says from when.
    let reopened = w.appeal_paid().await;
    assert_eq!(reopened.status, 409, "{}", reopened.body);
    let message = reopened.body["message"].as_str().unwrap();
    assert!(message.contains("was rejected"), "{message}");
    let decided: Timestamp = rejected.body["decided_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let from = (decided + SignedDuration::from_hours(72)).to_string();
    assert!(
        message.contains(&format!("can be opened from {}", &from[..16])),
        "{message}"
    );
    w.advance(Duration::from_secs(71 * 3600)).await;
    w.phone.check_again().await;
    let still = w.appeal_paid().await;
    assert_eq!(still.status, 409, "{}", still.body);

    // The pending provisional unlock was cancelled: the deadline passes, the lock stays.
    w.advance(Duration::from_secs(24 * 3600 + 60)).await;
    w.phone.check_again().await;
    assert!(w.locked(), "{}", w.phone.render());
    // The cool-down is over: the holder may appeal again.
    let again = w.appeal_paid().await;
    assert_eq!(again.status, 201, "{}", again.body);
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
    let code = w.current_code().await;
    let too_big = vec![0x89u8; 5 * 1024 * 1024 + 1];
    let mut big_png = PNG.to_vec();
    big_png.extend_from_slice(&too_big);
    let mut looks_like_png = PNG.to_vec();
    looks_like_png.resize(50_000, 0x42);
    let cases: [(&str, &str, &[u8], &str); 6] = [
        (
            "bare.png",
            "image/png",
            PNG,
            "receipt: the file is too small to be a receipt",
        ),
        (
            "padded.png",
            "image/png",
            &looks_like_png,
            "receipt: the file starts like a PNG but is not a whole one",
        ),
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
        let mut parts = w.paid_claim(&code, "+254 711 000 111", "MPESA-QX12", "2026-01-09");
        parts.extend([
            Part::Text("amount", "1000"),
            Part::Text("currency", "KES"),
            Part::File("receipt", name, content_type, bytes),
        ]);
        let r = w.appeal(&parts).await;
        assert_eq!(r.status, 422, "{name}: {}", r.body);
        let text = r.body["message"].as_str().unwrap_or_default();
        assert!(text.starts_with(message), "{name}: {text}");
    }
    // Missing and wrong fields are named too.
    let r = w.appeal(&w.paid_claim(&code, "x", "R1", "yesterday")).await;
    r.assert_invalid("paid_on");
    let r = w.appeal(&[Part::Text("claim", "paid")]).await;
    r.assert_invalid("imei");
    // The IMEI alone is not enough: the status code from the lock screen is asked for.
    let r = w
        .appeal(&[Part::Text("imei", &w.imei), Part::Text("claim", "paid")])
        .await;
    r.assert_invalid("status_code");

    // Nothing half-written: no appeal, no history entry, no file.
    let listed = w.app.get("/v1/appeals", &w.key).await;
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
            let r = app.get(&format!("/v1/public/imei/{imei}"), "").await;
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
    let r = w.app.get(&format!("/v1/public/imei/{}", w.imei), "").await;
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
    let again = w.app.get(&format!("/v1/public/imei/{}", w.imei), "").await;
    assert_eq!(again.status, 200, "{}", again.body);
}

async fn a_stranger_with_the_imei_is_refused_and_escalation_proceeds(backend: Backend) {
    let mut w = World::new(backend).await;
    // Past due: the phone shows a payment reminder, with its status code.
    w.advance_to("2026-02-03T10:00:00+03:00").await;
    let code = w.shown_code();

    // Someone who only knows the IMEI (the public check says it is financed) is asked for the
    // code; with a guess, the answer is the one an IMEI nobody finances gets.
    let no_code = w
        .appeal(&[
            Part::Text("imei", &w.imei),
            Part::Text("claim", "wrong_lock"),
            Part::Text("contact", "+254 711 000 111"),
            Part::Text("statement", "Not my contract"),
        ])
        .await;
    no_code.assert_invalid("status_code");
    let guessed = w.appeal_wrong_lock(&w.imei, &w.wrong_code(&code)).await;
    assert_eq!(guessed.status, 404, "{}", guessed.body);
    assert_eq!(guessed.body, not_proven());
    let unfinanced = w.appeal_wrong_lock(&imei("35693803564999"), &code).await;
    assert_eq!(unfinanced.status, 404, "{}", unfinanced.body);
    assert_eq!(
        unfinanced.body, guessed.body,
        "a wrong code and an unfinanced IMEI are answered alike"
    );
    // The HTML form refuses alike, too.
    let page = post_form(
        &w.app,
        "/appeal",
        &[
            Part::Text("imei", &w.imei),
            Part::Text("status_code", &w.wrong_code(&code)),
            Part::Text("claim", "wrong_lock"),
            Part::Text("contact", "+254 711 000 111"),
            Part::Text("statement", "Not my contract"),
        ],
    )
    .await;
    assert_eq!(page.status, 404);
    assert!(
        page.body
            .as_str()
            .unwrap()
            .contains("No phone with this IMEI and status code found"),
        "{}",
        page.body
    );

    // No appeal, no freeze: the financier's escalation goes ahead and the phone locks on day 4.
    let listed = w.app.get("/v1/appeals", &w.key).await;
    assert_eq!(listed.body, json!([]));
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    assert!(w.locked(), "{}", w.phone.render());
    assert!(
        !w.history_actions()
            .await
            .iter()
            .any(|a| a == "appeal_opened")
    );

    // The holder, reading the lock screen, can.
    let held = w.appeal_wrong_lock(&w.imei, &w.shown_code()).await;
    assert_eq!(held.status, 201, "{}", held.body);
}

async fn a_payment_claim_unlocks_at_the_deadline_only_if_it_would_cure(backend: Backend) {
    let mut w = World::new(backend).await;
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    assert!(w.locked());
    let code = w.shown_code();

    // The amount must be in the plan's currency.
    let dollars = w.appeal_paid_with(&code, "1000.00", "USD").await;
    assert_eq!(dollars.status, 422, "{}", dollars.body);
    let message = dollars.message();
    assert!(message.starts_with("currency:"), "{message}");
    assert!(message.contains("KES"), "{message}");

    // A claim of less than what is overdue opens an appeal (the freeze holds) but buys no
    // provisional unlock: recording it would not lift the lock either.
    let short = w.appeal_paid_with(&code, "10.00", "KES").await;
    assert_eq!(short.status, 201, "{}", short.body);
    let withheld = short.body["provisional_unlock_withheld"].as_str().unwrap();
    assert!(withheld.contains("does not cover"), "{withheld}");
    assert_eq!(
        short.body["appeal"]["provisional_unlock_until"],
        Value::Null
    );
    let deadline: Timestamp = short.body["appeal"]["deadline"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let past = (deadline.as_second() - w.app.clock_now().as_second() + 3600) as u64;
    w.advance(Duration::from_secs(past)).await;
    w.phone.check_again().await;
    assert!(
        w.locked(),
        "no provisional unlock for a short claim: {}",
        w.phone.render()
    );
    assert!(
        !w.history_actions()
            .await
            .iter()
            .any(|a| a == "appeal_deadline")
    );
}

async fn a_released_phone_cannot_be_appealed(backend: Backend) {
    let mut w = World::new(backend).await;
    w.pay("MPESA-ALL", 300_000).await;
    // Paid off: released after the cancel window, with no call.
    w.advance(Duration::from_secs(73 * 3600)).await;
    w.phone.check_again().await;
    let r = w.appeal_wrong_lock(&w.imei, "12345678").await;
    r.assert_refused(409, "released");
}

async fn accepting_a_payment_appeal_that_pays_the_plan_off_schedules_the_release(backend: Backend) {
    let mut w = World::new(backend).await;
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    assert!(w.locked(), "{}", w.phone.render());
    // The borrower paid the whole plan (KES 3,000.00) outside the financier's system.
    let opened = w.appeal_paid_with(&w.shown_code(), "3000.00", "KES").await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let reference = opened.body["reference"].as_str().unwrap().to_string();
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
    // Recording the claimed payment paid the plan off: the release comes with it.
    let device = w.device().await;
    assert_eq!(
        device["decision"]["reason"]["code"], "paid_in_full",
        "{device}"
    );
    assert!(device["release_final_at"].is_string(), "{device}");
    let actions = w.history_actions().await;
    assert_eq!(
        actions[actions.len() - 2..],
        ["appeal_accepted", "release_requested"],
        "{actions:?}"
    );
    w.advance(Duration::from_secs(73 * 3600)).await;
    assert_eq!(w.device().await["decision"]["state"], "released");
}

async fn support_accepting_a_payment_appeal_records_no_more_than_is_due(backend: Backend) {
    let mut w = World::new(backend).await;
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    // The borrower says they paid the whole plan (KES 3,000.00); KES 1,000.00 is due.
    let opened = w.appeal_paid_with(&w.shown_code(), "3000.00", "KES").await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let reference = opened.body["reference"].as_str().unwrap().to_string();
    let support = w.app.support_key().await;
    let answered = w
        .app
        .call(
            "POST",
            &format!("/v1/appeals/{reference}/decision"),
            &support,
            Some(json!({"decision": "accept", "reason": "The receipt checks out"})),
        )
        .await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(answered.body["status"], "accepted");
    // Support cured the arrears the receipt proves; the rest is the financier's to record, and
    // no release is scheduled.
    let payments = w.app.stored_payments(&w.device_id).await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(
        (payments[0].reference.as_str(), payments[0].amount_minor),
        ("MPESA-QX12", 100_000)
    );
    let device = w.device().await;
    assert_eq!(device["decision"]["state"], "active", "{device}");
    assert!(device["release_final_at"].is_null(), "{device}");
    let history = w.on_device("GET", "/history", None).await;
    assert!(
        history.body.to_string().contains("up to the amount due"),
        "{}",
        history.body
    );
}

/// The public "why is my phone locked" page for a status code.
async fn why(app: &TestApp, code: &str) -> Reply {
    app.get(&format!("/why?q={code}"), "").await
}

async fn superseded_status_codes_stop_matching(backend: Backend) {
    let mut w = World::new(backend).await;
    w.advance_to("2026-02-03T10:00:00+03:00").await;
    let reminder_code = w.shown_code();
    let seen = why(&w.app, &reminder_code).await;
    assert_eq!(seen.status, 200, "{}", seen.body);

    // The phone locks: a new token, a new code on the lock screen.
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    assert!(w.locked());
    let lock_code = w.shown_code();
    assert_ne!(lock_code, reminder_code);
    // The code the borrower read out a few hours ago still leads to the phone, for a while.
    assert_eq!(why(&w.app, &reminder_code).await.status, 200);

    // Two days on, only the current code matches on the public page and for appeals.
    w.advance(Duration::from_secs(2 * 24 * 3600)).await;
    w.phone.check_again().await;
    assert_eq!(
        w.shown_code(),
        lock_code,
        "the lock's token is still current"
    );
    let old = why(&w.app, &reminder_code).await;
    assert_eq!(old.status, 404, "{}", old.body);
    let current = why(&w.app, &lock_code).await;
    assert_eq!(current.status, 200, "{}", current.body);
    assert!(
        current.body.as_str().unwrap().contains("KES 1,000.00"),
        "{}",
        current.body
    );
    let appeal = w.appeal_wrong_lock(&w.imei, &reminder_code).await;
    assert_eq!(appeal.status, 404, "{}", appeal.body);
    assert_eq!(appeal.body, not_proven());

    // Support, signed in, still looks up the old code.
    let support = w.app.support_key().await;
    let path = format!("/v1/status-codes/{reminder_code}");
    let looked_up = w.app.read(&support, &path).await;
    assert_eq!(looked_up[0]["device_id"], w.device_id.as_str());
}

async fn guesses_from_anywhere_cannot_walk_a_phones_status_codes(backend: Backend) {
    // Guesses spread over many addresses (a /48 of IPv6 is 65,536 of them) are what the phone's
    // own limit is for: here every request comes from one address, so that address's limit is
    // lifted, and what stops the guessing is the phone's.
    let mut w = World::new_with(backend, |s| {
        s.public_rate_per_minute = 100_000;
        s.public_rate_burst = 100_000;
    })
    .await;
    w.advance_to("2026-02-03T10:00:00+03:00").await;
    let code = w.shown_code();
    let wrong = w.wrong_code(&code);
    for _ in 0..10 {
        let guessed = w.appeal_wrong_lock(&w.imei, &wrong).await;
        assert_eq!(guessed.status, 404, "{}", guessed.body);
        assert_eq!(guessed.body, not_proven());
    }

    // Ten tries are used up: the right code waits too, or a guesser could go on guessing.
    let held = w.appeal_wrong_lock(&w.imei, &code).await;
    assert_eq!(held.status, 429, "{}", held.body);
    assert_eq!(
        held.body["message"],
        "too many status codes were tried for this phone; try again in 60 seconds"
    );
    let pause = w
        .app
        .call(
            "POST",
            "/v1/public/hardship-requests",
            "",
            Some(json!({"imei": w.imei, "status_code": code, "days": 7, "reason": "lost my job"})),
        )
        .await;
    assert_eq!(
        pause.status, 429,
        "the hardship request shares the limit: {}",
        pause.body
    );
    // The borrower's page says so in their words, and when to come back.
    let (content_type, body) = crate::common::multipart_body(&[
        Part::Text("imei", &w.imei),
        Part::Text("status_code", &code),
        Part::Text("claim", "wrong_lock"),
        Part::Text("contact", "+254 711 000 111"),
        Part::Text("statement", "Not my contract"),
    ]);
    let page = w
        .app
        .client
        .post(format!("{}/appeal?lang=sw", w.app.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 429);
    assert_eq!(page.headers()["retry-after"], "60");
    let text = page.text().await.unwrap();
    assert!(
        text.contains(
            "Namba nyingi mno za hali zimejaribiwa kwa simu hii. Jaribu tena baada ya sekunde 60"
        ),
        "{text}"
    );
    assert!(
        text.contains("Not my contract"),
        "the form keeps what was typed: {text}"
    );

    // Nothing was opened, and a minute later the holder gets one try back.
    assert_eq!(w.app.get("/v1/appeals", &w.key).await.body, json!([]));
    w.app.clock.advance(SignedDuration::from_secs(60));
    let opened = w.appeal_wrong_lock(&w.imei, &code).await;
    assert_eq!(opened.status, 201, "{}", opened.body);

    // Look-ups by the code alone try it against every phone, so they are limited for the whole
    // server: past the limit the page asks for the IMEI, which still answers.
    while w.app.running.state.code_lookup_limit.check(()).is_ok() {}
    let page = |q: String| {
        let request = w.app.client.get(format!("{}/why?q={q}", w.app.base));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, text) = page(code.clone()).await;
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("Enter the IMEI instead"), "{text}");
    let (status, text) = page(w.imei.clone()).await;
    assert_eq!(status, 200, "{text}");
}

async fn uploads_past_the_servers_budget_wait_and_nothing_is_written(backend: Backend) {
    let mut w = World::new(backend).await;
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    let code = w.shown_code();
    // Slow uploads from many addresses hold all of the server's budget for appeal forms but
    // 2 KiB: a form with a 4 KiB receipt finds it spent once its bytes pass that.
    let budget = w.app.running.state.appeal_uploads.clone();
    let all = budget.available_permits() as u32;
    let held = budget.clone().try_acquire_many_owned(all - 2).unwrap();
    let refused = w.appeal_paid_with(&code, "1000.00", "KES").await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(
        refused.body["message"],
        "too many documents are being uploaded at once; try again in a minute"
    );
    assert_eq!(w.app.get("/v1/appeals", &w.key).await.body, json!([]));
    // The budget counts what arrived, not what a form may hold: a short form still fits.
    let opened = w.appeal_wrong_lock(&w.imei, &code).await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    drop(held);
    assert_eq!(
        budget.available_permits() as u64,
        lien_server::app::APPEAL_UPLOAD_BYTES_IN_FLIGHT / 1024,
        "every form's share is given back"
    );
}

on_both_backends!(
    uploads_past_the_servers_budget_wait_and_nothing_is_written,
    guesses_from_anywhere_cannot_walk_a_phones_status_codes,
    accepting_a_payment_appeal_that_pays_the_plan_off_schedules_the_release,
    support_accepting_a_payment_appeal_records_no_more_than_is_due,
    a_stranger_with_the_imei_is_refused_and_escalation_proceeds,
    a_payment_claim_unlocks_at_the_deadline_only_if_it_would_cure,
    a_released_phone_cannot_be_appealed,
    superseded_status_codes_stop_matching,
    unanswered_payment_appeal_unlocks_then_accepting_records_the_payment,
    a_rejected_appeal_shows_the_reason_and_the_lock_stays,
    bad_uploads_are_refused_with_the_field_named_and_nothing_written,
    the_imei_check_says_little_and_is_rate_limited,
);

/// `GET /v1/appeals/{reference}/attachment` on `app` with `key`: status, content type, body.
async fn download(app: &TestApp, reference: &str, key: &str) -> (u16, String, Vec<u8>) {
    let path = format!("/v1/appeals/{reference}/attachment");
    let response = app.get_response(&path, Some(key)).await;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

/// Two servers on one PostgreSQL, each with a data directory of its own (two hosts). With
/// `attachment_store = "database"`, a receipt uploaded with an appeal on one is downloaded
/// whole from the other, and neither keeps it as a file. With the default `local` store, the
/// other server says, with a 503, that it does not hold the document and which setting is
/// needed, while the server that received it still serves it.
#[tokio::test]
async fn an_upload_on_one_server_downloads_from_another_on_postgres() {
    if postgres_url().is_none() {
        eprintln!("skipped: LIEN_TEST_POSTGRES_URL is not set");
        return;
    }
    let receipt = receipt_png(4096);

    let mut w = World::new_with(Backend::Postgres, |s| {
        s.attachment_store = AttachmentStoreKind::Database;
    })
    .await;
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    let opened = w.appeal_paid().await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let reference = opened.body["reference"].as_str().unwrap().to_string();
    let other = w.app.spawn_peer_elsewhere(|_| {}).await;
    assert_eq!(
        other.running.state.settings.attachment_store,
        AttachmentStoreKind::Database
    );
    let support = other.support_key().await;
    let (status, content_type, bytes) = download(&other, &reference, &support).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(content_type, "image/png");
    assert_eq!(
        bytes, receipt,
        "the bytes downloaded are the bytes uploaded"
    );
    for app in [&w.app, &other] {
        let files = app.running.state.settings.data_dir.join("appeals");
        assert!(!files.exists(), "{} holds no file", files.display());
    }

    let mut w = World::new(Backend::Postgres).await;
    assert_eq!(
        w.app.running.state.settings.attachment_store,
        AttachmentStoreKind::Local,
        "local is the default"
    );
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    let opened = w.appeal_paid().await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let reference = opened.body["reference"].as_str().unwrap().to_string();
    let other = w.app.spawn_peer_elsewhere(|_| {}).await;
    let support = other.support_key().await;
    let (status, _, body) = download(&other, &reference, &support).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "unavailable");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("does not hold the appeal's document")
            && message.contains("attachment_store = \"database\""),
        "{message}"
    );
    let (status, _, bytes) = download(&w.app, &reference, &support).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, receipt);
}
