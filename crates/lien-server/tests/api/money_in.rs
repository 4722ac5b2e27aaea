//! Money in, events out: a payment signed per Standard Webhooks by any provider unlocks a locked
//! phone, and nothing unsigned, stale or replayed writes anything; a provider's statement
//! reconciled against what Lien recorded applies what a lost callback left out, reports what
//! differs, and changes nothing more when run again. On SQLite and, when LIEN_TEST_POSTGRES_URL
//! is set, on PostgreSQL.

use std::time::Duration;

use crate::common::{Backend, LockedOnPush, Reply, TestApp, locked, postgres_url, spawn_app};
use crate::mpesa::{create_endpoint, daraja, financier_with_device, post as post_mpesa};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::SignedDuration;
use lien_server::providers::generic::sign;
use serde_json::json;

/// Long enough for any loaded CI machine to deliver a push.
const WAIT: Duration = Duration::from_secs(10);

/// What is written for the device and the financier: payments, device audit records, token
/// sequence, and the financier's audit records (unmatched payments, providers).
async fn written(app: &TestApp, financier_id: &str, device_id: &str) -> (usize, usize, i64, usize) {
    let store = &app.running.state.store;
    let snapshot = store.snapshot(device_id).await.unwrap();
    let audit = store.audit_chain(device_id).await.unwrap();
    let financier_audit = store
        .audit_chain(&lien_server::api_keys::chain(Some(financier_id)))
        .await
        .unwrap();
    let sequence = snapshot.device.token.map_or(0, |t| t.sequence);
    (
        snapshot.payments.len(),
        audit.len(),
        sequence,
        financier_audit.len(),
    )
}

/// Creates a provider; returns its id, secret key bytes and callback path.
async fn create_provider(
    app: &TestApp,
    key: &str,
    financier_id: &str,
) -> (String, Vec<u8>, String) {
    let created = app
        .call(
            "POST",
            &format!("/v1/financiers/{financier_id}/payment-providers"),
            key,
            Some(json!({"name": "equity-bank"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    (
        created.body["id"].as_str().unwrap().to_string(),
        signing_key(&created.body),
        created.body["callback_path"].as_str().unwrap().to_string(),
    )
}

/// The key bytes of the `whsec_` secret a provider's creation or rotation shows.
fn signing_key(shown: &serde_json::Value) -> Vec<u8> {
    let secret = shown["secret"].as_str().unwrap();
    STANDARD
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .unwrap()
}

/// Posts `body` to `path` with Standard Webhooks headers.
async fn post_signed(
    app: &TestApp,
    path: &str,
    id: &str,
    timestamp: i64,
    signature: &str,
    body: &str,
) -> Reply {
    app.send(
        "POST",
        path,
        &[
            ("webhook-id".to_string(), id.to_string()),
            ("webhook-timestamp".to_string(), timestamp.to_string()),
            ("webhook-signature".to_string(), signature.to_string()),
        ],
        Some(body.to_string()),
    )
    .await
}

/// Posts `body` to `path` as message `id` sent at `timestamp`, signed with `secret`.
async fn post_signed_by(
    app: &TestApp,
    path: &str,
    secret: &[u8],
    id: &str,
    timestamp: i64,
    body: &str,
) -> Reply {
    let signature = sign(secret, id, timestamp, body.as_bytes());
    post_signed(app, path, id, timestamp, &signature, body).await
}

fn payment(app: &TestApp, reference: &str, account: &str, amount: &str) -> String {
    json!({
        "reference": reference,
        "account": account,
        "amount": amount,
        "currency": "KES",
        "paid_at": app.clock_now().to_string(),
    })
    .to_string()
}

async fn a_signed_payment_unlocks_once_and_nothing_unsigned_or_replayed_writes(backend: Backend) {
    let LockedOnPush {
        app,
        financier_id,
        key,
        device_id,
        mut phone,
    } = LockedOnPush::new(backend).await;
    let (_, secret, path) = create_provider(&app, &key, &financier_id).await;
    let now = app.clock_now().as_second();
    let body = payment(&app, "EQ-77001", "C-1001", "1000.00");
    let before = written(&app, &financier_id, &device_id).await;

    // A bad signature, a signature under another secret, a stale and a future timestamp, a
    // missing header: 401, naming the header, and nothing written.
    let good = sign(&secret, "msg_1", now, body.as_bytes());
    let refusals = [
        ("msg_1", now, "v1,AAAA".to_string(), "webhook-signature"),
        (
            "msg_1",
            now,
            sign(&[9; 32], "msg_1", now, body.as_bytes()),
            "webhook-signature",
        ),
        ("msg_2", now, good.clone(), "webhook-signature"),
        (
            "msg_1",
            now - 301,
            sign(&secret, "msg_1", now - 301, body.as_bytes()),
            "webhook-timestamp",
        ),
        (
            "msg_1",
            now + 301,
            sign(&secret, "msg_1", now + 301, body.as_bytes()),
            "webhook-timestamp",
        ),
    ];
    for (id, timestamp, signature, header) in refusals {
        let refused = post_signed(&app, &path, id, timestamp, &signature, &body).await;
        refused.assert_refused(401, header);
    }
    let unsigned = app.send("POST", &path, &[], Some(body.clone())).await;
    unsigned.assert_refused(401, "webhook-id");
    // A tampered body under a good signature.
    let tampered = payment(&app, "EQ-77001", "C-1001", "9000.00");
    post_signed(&app, &path, "msg_1", now, &good, &tampered)
        .await
        .assert_refused(401, "webhook-signature");
    assert_eq!(written(&app, &financier_id, &device_id).await, before);
    assert!(locked(&phone));

    // The signed payment: recorded, and the unlock pushed.
    let paid = post_signed(&app, &path, "msg_1", now, &good, &body).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body, json!({"outcome": "recorded"}));
    assert_eq!(
        phone.next_push(WAIT).await,
        Some(true),
        "the unlock is pushed"
    );
    assert!(!locked(&phone), "{}", phone.render());
    let after = written(&app, &financier_id, &device_id).await;
    assert_eq!(after.0, before.0 + 1, "one payment");
    let stored = &app.stored_payments(&device_id).await[0];
    assert_eq!(stored.reference, "EQ-77001");
    assert_eq!(stored.amount_minor, 100_000);

    // The same message again, a minute later: a replay, refused, nothing written.
    app.clock.advance(SignedDuration::from_secs(60));
    post_signed(&app, &path, "msg_1", now, &good, &body)
        .await
        .assert_refused(409, "webhook-id");
    assert_eq!(written(&app, &financier_id, &device_id).await, after);

    // The same payment in a new message (the provider sent it twice): idempotent.
    let now2 = app.clock_now().as_second();
    let again = post_signed_by(&app, &path, &secret, "msg_2", now2, &body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body, json!({"outcome": "repeated"}));
    assert_eq!(written(&app, &financier_id, &device_id).await, after);

    // Bad fields are named (422), and write nothing.
    let bad = json!({
        "reference": "EQ-77002", "account": "C-1001", "amount": "-5",
        "currency": "KES", "paid_at": app.clock_now().to_string(),
    })
    .to_string();
    post_signed_by(&app, &path, &secret, "msg_3", now2, &bad)
        .await
        .assert_invalid("amount");
    assert_eq!(written(&app, &financier_id, &device_id).await, after);

    // An unknown account: kept as an unmatched payment of this provider.
    let stray = payment(&app, "EQ-77003", "C-9999", "50.00");
    let kept = post_signed_by(&app, &path, &secret, "msg_4", now2, &stray).await;
    assert_eq!(kept.body, json!({"outcome": "unmatched"}), "{}", kept.body);
    let listed = app.call("GET", "/v1/unmatched-payments", &key, None).await;
    let listed = listed.body["payments"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["provider"], "equity-bank");
    assert_eq!(listed[0]["reference"], "EQ-77003");

    // The provider is listed without its secret; a new secret stops the old one at once.
    let listed = app
        .call(
            "GET",
            &format!("/v1/financiers/{financier_id}/payment-providers"),
            &key,
            None,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let provider_id = listed.body["providers"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(listed.body["providers"][0]["callback_path"], path.as_str());
    assert!(listed.body["providers"][0].get("secret").is_none());
    let rotated = app
        .call(
            "POST",
            &format!("/v1/financiers/{financier_id}/payment-providers/{provider_id}/secret"),
            &key,
            None,
        )
        .await;
    assert_eq!(rotated.status, 201, "{}", rotated.body);
    let new_secret = signing_key(&rotated.body);
    let late = payment(&app, "EQ-77004", "C-1001", "5.00");
    post_signed_by(&app, &path, &secret, "msg_6", now2, &late)
        .await
        .assert_refused(401, "webhook-signature");
    let accepted = post_signed_by(&app, &path, &new_secret, "msg_6", now2, &late).await;
    assert_eq!(
        accepted.body,
        json!({"outcome": "recorded"}),
        "{}",
        accepted.body
    );

    // An unknown provider is not found.
    let missing = post_signed(
        &app,
        "/v1/providers/generic/ppr_0000000000000000/payments",
        "msg_5",
        now2,
        &good,
        &body,
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.body);
}

/// Posts a statement for 5 February 2026, Nairobi time.
async fn reconcile(app: &TestApp, key: &str, provider: &str, csv: &str) -> Reply {
    reconcile_day(
        app,
        key,
        provider,
        "2026-02-05T00:00:00%2B03:00",
        "2026-02-06T00:00:00%2B03:00",
        csv,
    )
    .await
}

/// 10 January 2026, UTC: the day the tests' servers start (at 09:00).
const JANUARY_10: (&str, &str) = ("2026-01-10T00:00:00Z", "2026-01-11T00:00:00Z");

/// Posts a statement for the period `[from, to)` (RFC 3339, escaped for a query).
async fn reconcile_day(
    app: &TestApp,
    key: &str,
    provider: &str,
    from: &str,
    to: &str,
    csv: &str,
) -> Reply {
    app.send(
        "POST",
        &format!("/v1/reconciliations?provider={provider}&from={from}&to={to}"),
        &[
            ("authorization".to_string(), format!("Bearer {key}")),
            ("content-type".to_string(), "text/csv".to_string()),
        ],
        Some(csv.to_string()),
    )
    .await
}

/// A Daraja confirmation of a payment to contract C-1001, at the server's time.
async fn confirm_mpesa(app: &TestApp, token: &str, trans_id: &str, amount: &str) {
    let body = daraja(app, trans_id, "C-1001", amount);
    let confirmed = post_mpesa(app, token, "confirmation", &body).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
}

async fn a_statement_with_a_missing_and_a_mismatched_payment_reports_and_fixes_exactly_those(
    backend: Backend,
) {
    let LockedOnPush {
        app,
        financier_id,
        key,
        device_id,
        mut phone,
    } = LockedOnPush::new(backend).await;
    let token = create_endpoint(&app, &key, &financier_id, json!({})).await;

    // Two small payments arrive by callback (the phone stays locked); the third, which would
    // unlock it, is lost in transit.
    confirm_mpesa(&app, &token, "RKA0000001", "10.00").await;
    confirm_mpesa(&app, &token, "RKA0000002", "20.00").await;
    assert!(locked(&phone), "{}", phone.render());
    let before = written(&app, &financier_id, &device_id).await;
    assert_eq!(before.0, 2);

    // The day's statement: the first matches, the second says 25.00 (mismatched), the third is
    // missing from Lien. M-Pesa's own time form, and a column Lien ignores.
    let csv = "transaction_id,paid_at,account,amount,details\n\
               RKA0000001,20260205100000,C-1001,10.00,Pay Bill\n\
               RKA0000002,20260205100000,C-1001,25.00,Pay Bill\n\
               RKA0000003,20260205100000,C-1001,1000.00,Pay Bill\n";
    let report = reconcile(&app, &key, "mpesa", csv).await;
    assert_eq!(report.status, 200, "{}", report.body);
    let body = &report.body;
    assert_eq!(
        body["counts"],
        json!({"statement": 3, "matched": 1, "missing": 1, "mismatched": 1, "lien_only": 0}),
        "{body}"
    );
    assert_eq!(body["missing"][0]["transaction_id"], "RKA0000003");
    assert_eq!(body["missing"][0]["outcome"], "recorded");
    assert_eq!(body["missing"][0]["device_id"], device_id.as_str());
    assert_eq!(body["mismatched"][0]["transaction_id"], "RKA0000002");
    assert_eq!(body["mismatched"][0]["fields"], json!(["amount"]));
    assert_eq!(body["mismatched"][0]["statement"]["amount_minor"], 2500);
    assert_eq!(body["mismatched"][0]["lien"]["amount_minor"], 2000);

    // The missing payment is applied through the payment path: the phone unlocks (after the
    // pushes of the smaller payments, which lowered the amount due).
    let deadline = std::time::Instant::now() + WAIT;
    while locked(&phone) && std::time::Instant::now() < deadline {
        phone.next_push(deadline - std::time::Instant::now()).await;
    }
    assert!(!locked(&phone), "{}", phone.render());
    let after = written(&app, &financier_id, &device_id).await;
    assert_eq!(after.0, 3, "the missing payment is recorded");
    let payments = app.stored_payments(&device_id).await;
    let mismatched = payments
        .iter()
        .find(|p| p.reference == "RKA0000002")
        .unwrap();
    assert_eq!(mismatched.amount_minor, 2000, "the mismatched one is left");

    // Again: the same report but nothing missing, and nothing written.
    let again = reconcile(&app, &key, "mpesa", csv).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(
        again.body["counts"],
        json!({"statement": 3, "matched": 2, "missing": 0, "mismatched": 1, "lien_only": 0}),
        "{}",
        again.body
    );
    assert_eq!(written(&app, &financier_id, &device_id).await, after);

    // A late callback for the recovered payment changes nothing either.
    confirm_mpesa(&app, &token, "RKA0000003", "1000.00").await;
    assert_eq!(written(&app, &financier_id, &device_id).await, after);

    // A statement that lacks one of Lien's payments reports it; a bad line is named and
    // applies nothing.
    let partial = "transaction_id,paid_at,account,amount\n\
                   RKA0000001,20260205100000,C-1001,10.00\n";
    let report = reconcile(&app, &key, "mpesa", partial).await;
    assert_eq!(report.body["counts"]["lien_only"], 2, "{}", report.body);
    let bad = "transaction_id,paid_at,account,amount\n\
               RKA0000009,20260205100000,C-1001,1000.00\n\
               RKA0000010,20260207100000,C-1001,5.00\n";
    reconcile(&app, &key, "mpesa", bad)
        .await
        .assert_invalid("line 3, paid_at");
    assert_eq!(written(&app, &financier_id, &device_id).await, after);
    reconcile(&app, &key, "nobody", partial)
        .await
        .assert_refused(404, "payment provider");
}

/// The device's history as (actor, action) pairs.
async fn history(app: &TestApp, key: &str, device_id: &str) -> Vec<(String, String)> {
    let r = app
        .call(
            "GET",
            &format!("/v1/devices/{device_id}/history"),
            key,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn only_a_financier_admin_reconciles_and_its_statement_vouches_for_a_payoff(
    backend: Backend,
) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (financier_id, admin, device_id) = financier_with_device(&app).await;
    let agent = app.financier_key(&financier_id, "financier-agent").await;
    // The whole plan (three installments of KES 1,000.00) paid by M-Pesa at 08:00, its
    // callback lost in transit.
    let csv = "transaction_id,paid_at,account,amount\n\
               RKP0000001,2026-01-10T08:00:00Z,C-1001,3000.00\n";
    let (from, to) = JANUARY_10;
    let before = written(&app, &financier_id, &device_id).await;

    // An agent may not vouch for a provider's statement: refused, saying why, and nothing is
    // written, so no provider key is taken for a transaction the provider may never have had.
    let refused = reconcile_day(&app, &agent, "mpesa", from, to, csv).await;
    refused.assert_forbidden("an agent's reconciliation");
    assert!(
        refused.message().contains("financier-agent") && refused.message().contains("vouch"),
        "{}",
        refused.body
    );
    assert_eq!(written(&app, &financier_id, &device_id).await, before);

    // The admin's: the missing line is recorded, and the payoff it causes schedules the
    // release exactly as the provider's own callback would have.
    let report = reconcile_day(&app, &admin, "mpesa", from, to, csv).await;
    assert_eq!(report.status, 200, "{}", report.body);
    assert_eq!(
        report.body["missing"][0]["outcome"], "recorded",
        "{}",
        report.body
    );
    let device = app
        .call("GET", &format!("/v1/devices/{device_id}"), &admin, None)
        .await;
    assert_eq!(
        device.body["decision"]["reason"]["code"], "paid_in_full",
        "{}",
        device.body
    );
    assert!(
        device.body["release_final_at"].is_string(),
        "the release is scheduled: {}",
        device.body
    );
    let steps = history(&app, &admin, &device_id).await;
    let applied = steps
        .iter()
        .find(|(_, action)| action == "payment")
        .expect("the payment is in the history");
    assert!(applied.0.starts_with("reconciliation:key_"), "{steps:?}");
    assert!(
        steps
            .iter()
            .any(|(_, action)| action == "release_requested"),
        "{steps:?}"
    );
}

async fn reconciliations_run_one_at_a_time_within_a_rate_per_financier(backend: Backend) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (financier_id, admin, device_id) = financier_with_device(&app).await;
    let (_, other) = app.financier("Other Lender").await;
    let (from, to) = JANUARY_10;
    let csv = "transaction_id,paid_at,account,amount\n\
               RKP0000002,2026-01-10T08:00:00Z,C-1001,10.00\n";
    let empty = "transaction_id,paid_at,account,amount\n";
    let before = written(&app, &financier_id, &device_id).await;

    // While a reconciliation of the financier's runs on this server, another waits: a 429
    // that says why and when to come back, and nothing read or written. Another financier's
    // is not held up.
    let turn = app
        .running
        .state
        .reconciliations
        .start(&financier_id)
        .unwrap();
    let waiting = reconcile_day(&app, &admin, "mpesa", from, to, csv).await;
    waiting.assert_refused(429, "running already");
    assert!(
        waiting.message().contains("try again in"),
        "{}",
        waiting.body
    );
    assert_eq!(written(&app, &financier_id, &device_id).await, before);
    let theirs = reconcile_day(&app, &other, "mpesa", from, to, empty).await;
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    drop(turn);
    let ran = reconcile_day(&app, &admin, "mpesa", from, to, csv).await;
    assert_eq!(ran.status, 200, "{}", ran.body);
    assert_eq!(ran.body["counts"]["missing"], 1, "{}", ran.body);

    // A statement over the line cap is refused whole, saying what the cap is.
    let mut long = String::from("transaction_id,paid_at,account,amount\n");
    for i in 0..20_001 {
        long.push_str(&format!("RKL{i:07},2026-01-10T08:00:00Z,C-1001,1.00\n"));
    }
    reconcile_day(&app, &admin, "mpesa", from, to, &long)
        .await
        .assert_refused(422, "more than 20000 lines");
    assert_eq!(
        written(&app, &financier_id, &device_id).await.0,
        before.0 + 1
    );

    // The financier's allowance: after the burst, a 429 until it refills; the other
    // financier's is its own.
    let mut runs = 0;
    let limited = loop {
        let reply = reconcile_day(&app, &admin, "mpesa", from, to, csv).await;
        if reply.status == 429 {
            break reply;
        }
        assert_eq!(reply.status, 200, "{}", reply.body);
        runs += 1;
        assert!(runs <= 10, "no limit after {runs} more runs");
    };
    limited.assert_refused(429, "too many reconciliations for this financier");
    assert!(
        limited.message().contains("try again in"),
        "{}",
        limited.body
    );
    let theirs = reconcile_day(&app, &other, "mpesa", from, to, empty).await;
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    app.clock.advance(SignedDuration::from_secs(30));
    let refilled = reconcile_day(&app, &admin, "mpesa", from, to, csv).await;
    assert_eq!(refilled.status, 200, "{}", refilled.body);
    assert_eq!(refilled.body["counts"]["matched"], 1, "{}", refilled.body);
}

on_both_backends!(
    a_signed_payment_unlocks_once_and_nothing_unsigned_or_replayed_writes,
    a_statement_with_a_missing_and_a_mismatched_payment_reports_and_fixes_exactly_those,
    only_a_financier_admin_reconciles_and_its_statement_vouches_for_a_payoff,
    reconciliations_run_one_at_a_time_within_a_rate_per_financier,
);
