//! M-Pesa's C2B callbacks (Daraja): a borrower pays the financier's paybill with the contract
//! reference as account number, and the phone, locked and holding a push channel, is unlocked
//! within a second of the confirmation; nothing a confirmation brings is lost or applied twice.
//! On SQLite and, when LIEN_TEST_POSTGRES_URL is set, on PostgreSQL.

use std::time::{Duration, Instant};

use crate::common::{
    Backend, LockedOnPush, Reply, TestApp, enrollment, imei, locked, postgres_url, spawn_app,
    spawn_app_with,
};
use jiff::SignedDuration;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection};

/// Long enough for any loaded CI machine to deliver a push; the promise (a second) is checked
/// separately, on the time the push took.
const WAIT: Duration = Duration::from_secs(10);

/// The payer's number and names as Daraja sends them: none may be stored in clear.
const MSISDN: &str = "254708374149";
const FIRST_NAME: &str = "Wanjiku";
const LAST_NAME: &str = "Kamau";

/// [`LockedOnPush`], and the financier's M-Pesa endpoint token.
async fn locked_phone_with_endpoint(backend: Backend) -> (LockedOnPush, String) {
    let story = LockedOnPush::new(backend).await;
    let token = create_endpoint(&story.app, &story.key, &story.financier_id, json!({})).await;
    (story, token)
}

/// Creates (or renews) the financier's M-Pesa endpoint with this body; returns its token.
pub(crate) async fn create_endpoint(
    app: &TestApp,
    key: &str,
    financier_id: &str,
    body: Value,
) -> String {
    let created = app
        .call(
            "POST",
            &format!("/v1/financiers/{financier_id}/mpesa-endpoint"),
            key,
            Some(body),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let token = created.body["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("mpt_"), "{token}");
    assert_eq!(
        created.body["confirmation_path"],
        format!("/v1/providers/mpesa/{token}/confirmation")
    );
    token
}

/// A financier, "Duka Phones", with one device enrolled on contract C-1001; returns the
/// financier's id, its admin key and the device's id.
pub(crate) async fn financier_with_device(app: &TestApp) -> (String, String, String) {
    let (financier_id, key) = app.financier("Duka Phones").await;
    let device_id = app
        .enroll_device(&key, "C-1001", &imei("35693803564380"), "SN1001")
        .await;
    (financier_id, key, device_id)
}

/// A C2B callback as Daraja documents it, at the server's time in Nairobi.
pub(crate) fn daraja(app: &TestApp, trans_id: &str, account: &str, amount: &str) -> Value {
    let trans_time = app
        .clock_now()
        .to_zoned(TimeZone::get("Africa/Nairobi").unwrap())
        .strftime("%Y%m%d%H%M%S")
        .to_string();
    json!({
        "TransactionType": "Pay Bill",
        "TransID": trans_id,
        "TransTime": trans_time,
        "TransAmount": amount,
        "BusinessShortCode": "600638",
        "BillRefNumber": account,
        "InvoiceNumber": "",
        "OrgAccountBalance": "49197.00",
        "ThirdPartyTransID": "",
        "MSISDN": MSISDN,
        "FirstName": FIRST_NAME,
        "MiddleName": "",
        "LastName": LAST_NAME,
    })
}

/// Posts a callback as Daraja does: no API key, the token in the path.
pub(crate) async fn post(app: &TestApp, token: &str, which: &str, body: &Value) -> Reply {
    app.send(
        "POST",
        &format!("/v1/providers/mpesa/{token}/{which}"),
        &[],
        Some(body.to_string()),
    )
    .await
}

/// The device's payments and audit records, as stored.
async fn written(app: &TestApp, device_id: &str) -> (usize, usize, i64) {
    let store = &app.running.state.store;
    let snapshot = store.snapshot(device_id).await.unwrap();
    let audit = store.audit_chain(device_id).await.unwrap();
    let sequence = snapshot.device.token.map_or(0, |t| t.sequence);
    (snapshot.payments.len(), audit.len(), sequence)
}

async fn unmatched(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    let listed = app
        .call("GET", &format!("/v1/unmatched-payments{query}"), key, None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.body["payments"].as_array().unwrap().clone()
}

/// Assigns the unmatched payment to the device with `key`; returns the answer.
async fn assign(app: &TestApp, key: &str, payment_id: &str, device_id: &str) -> Reply {
    app.call(
        "POST",
        &format!("/v1/unmatched-payments/{payment_id}/assignment"),
        key,
        Some(json!({ "device_id": device_id })),
    )
    .await
}

async fn a_paybill_payment_unlocks_the_phone_within_a_second_once(backend: Backend) {
    let (
        LockedOnPush {
            app,
            device_id,
            mut phone,
            key,
            ..
        },
        token,
    ) = locked_phone_with_endpoint(backend).await;

    let validation = post(
        &app,
        &token,
        "validation",
        &daraja(&app, "RKTQDM7W6S", "C-1001", "1000.00"),
    )
    .await;
    assert_eq!(validation.status, 200, "{}", validation.body);
    assert_eq!(
        validation.body,
        json!({"ResultCode": "0", "ResultDesc": "Accepted"})
    );
    // A validation writes nothing.
    let before = written(&app, &device_id).await;
    assert_eq!(before.0, 0);

    let confirmation = daraja(&app, "RKTQDM7W6S", "C-1001", "1000.00");
    let sent = Instant::now();
    let confirmed = post(&app, &token, "confirmation", &confirmation).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(confirmed.body["ResultCode"], 0);
    assert_eq!(
        phone.next_push(WAIT).await,
        Some(true),
        "the unlock is pushed"
    );
    let took = sent.elapsed();
    assert!(!locked(&phone), "{}", phone.render());
    assert!(
        took < Duration::from_secs(1),
        "the phone was unlocked {took:?} after the confirmation"
    );
    let after = written(&app, &device_id).await;
    assert_eq!(after.0, 1, "one payment");
    let payment = &app.stored_payments(&device_id).await[0];
    assert_eq!(payment.reference, "RKTQDM7W6S");
    assert_eq!(payment.amount_minor, 100_000);
    assert_eq!(payment.currency, "KES");

    // Daraja sends the same confirmation again, five times: nothing changes.
    for _ in 0..5 {
        let again = post(&app, &token, "confirmation", &confirmation).await;
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(again.body["ResultCode"], 0);
    }
    assert_eq!(written(&app, &device_id).await, after);
    assert_eq!(phone.next_push(Duration::from_millis(300)).await, None);
    assert!(!locked(&phone));
    assert!(unmatched(&app, &key, "").await.is_empty());

    assert_no_payer_in_clear(&app).await;
    app.running.stop().await;
}

async fn an_unknown_account_is_kept_and_once_assigned_unlocks_its_phone(backend: Backend) {
    let (
        LockedOnPush {
            app,
            device_id,
            mut phone,
            key,
            financier_id,
        },
        token,
    ) = locked_phone_with_endpoint(backend).await;

    // The borrower mistypes the account number: the validation refuses it...
    let typo = daraja(&app, "RKT1TYPO01", "C-1010", "1000.00");
    let validation = post(&app, &token, "validation", &typo).await;
    assert_eq!(validation.status, 200, "{}", validation.body);
    assert_eq!(validation.body["ResultCode"], "C2B00012");
    // The answer does not repeat what was typed: borrowers often type their phone number,
    // and the same words go to the financier's history. The unmatched row keeps it.
    assert_eq!(
        validation.body["ResultDesc"], "Rejected: BillRefNumber: no device has this account number",
        "{}",
        validation.body
    );

    // ...but a shortcode without validation confirms it all the same: it is kept, once.
    let before = written(&app, &device_id).await;
    for _ in 0..3 {
        let confirmed = post(&app, &token, "confirmation", &typo).await;
        assert_eq!(confirmed.status, 200, "{}", confirmed.body);
        assert_eq!(confirmed.body["ResultCode"], 0);
    }
    assert_eq!(written(&app, &device_id).await, before);
    assert!(locked(&phone));
    let open = unmatched(&app, &key, "?status=open").await;
    assert_eq!(open.len(), 1, "{open:?}");
    let kept = &open[0];
    assert_eq!(kept["reference"], "RKT1TYPO01");
    assert_eq!(kept["account"], "C-1010");
    assert_eq!(kept["amount_minor"], 100_000);
    assert_eq!(kept["currency"], "KES");
    assert_eq!(kept["financier_id"], financier_id.as_str());
    assert_eq!(kept["status"], "open");
    assert!(kept.get("msisdn").is_none());
    let id = kept["id"].as_str().unwrap().to_string();

    // Another financier sees none of it and cannot assign it.
    let (_, other_key) = app.financier("Other Lender").await;
    assert!(unmatched(&app, &other_key, "").await.is_empty());
    let refused = assign(&app, &other_key, &id, &device_id).await;
    assert_eq!(refused.status, 404, "{}", refused.body);

    let assigned = assign(&app, &key, &id, &device_id).await;
    assert_eq!(assigned.status, 200, "{}", assigned.body);
    assert_eq!(assigned.body["status"], "assigned");
    assert_eq!(assigned.body["device_id"], device_id.as_str());
    assert_eq!(
        phone.next_push(WAIT).await,
        Some(true),
        "the unlock is pushed"
    );
    assert!(!locked(&phone), "{}", phone.render());
    let after = written(&app, &device_id).await;
    assert_eq!(after.0, before.0 + 1);

    // Assigning again, or confirming again, changes nothing.
    let again = assign(&app, &key, &id, &device_id).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body, assigned.body);
    // To another device: refused, naming the device the money went to.
    let other_device = app
        .enroll_device(&key, "C-1002", &imei("35693803564381"), "SN1002")
        .await;
    let elsewhere = assign(&app, &key, &id, &other_device).await;
    elsewhere.assert_refused(
        409,
        &format!("device_id: this payment is already assigned to device {device_id}"),
    );
    assert_eq!(written(&app, &other_device).await.0, 0);
    let confirmed = post(&app, &token, "confirmation", &typo).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(written(&app, &device_id).await, after);
    assert!(unmatched(&app, &key, "?status=open").await.is_empty());
    assert_eq!(unmatched(&app, &key, "?status=assigned").await.len(), 1);

    // The payer is kept only as a keyed hash.
    let stored = app
        .running
        .state
        .store
        .unmatched_payment(&id)
        .await
        .unwrap();
    let hash = stored.payer_hash.expect("the payer's hash");
    assert_eq!(hash.len(), 32);
    assert!(!hash.windows(MSISDN.len()).any(|w| w == MSISDN.as_bytes()));
    assert_no_payer_in_clear(&app).await;
    app.running.stop().await;
}

async fn a_wrong_token_is_not_found_and_writes_nothing(backend: Backend) {
    let (
        LockedOnPush {
            app,
            device_id,
            key,
            financier_id,
            ..
        },
        token,
    ) = locked_phone_with_endpoint(backend).await;
    let before = written(&app, &device_id).await;
    let body = daraja(&app, "RKTWRONG01", "C-1001", "1000.00");
    let guessed = format!("mpt_{}", "A".repeat(43));
    for bad in [guessed.as_str(), "lien_notatoken", "x"] {
        for which in ["validation", "confirmation"] {
            let reply = post(&app, bad, which, &body).await;
            assert_eq!(reply.status, 404, "{which} with {bad}: {}", reply.body);
        }
    }
    // A rotated token stops at once.
    let rotated = create_endpoint(&app, &key, &financier_id, json!({})).await;
    assert_ne!(rotated, token);
    let reply = post(&app, &token, "confirmation", &body).await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(written(&app, &device_id).await, before);
    assert!(unmatched(&app, &key, "").await.is_empty());

    // A NUL in the account, beside a field only a typed reader skips, sent as any label (a CSV
    // label keeps the edge's check away): named and refused, and nothing is written.
    let mut with_nul = daraja(&app, "RKTNUL0001", "C-1001\u{0}", "1000.00").to_string();
    with_nul.insert_str(with_nul.len() - 1, r#","Zz":1e400"#);
    for label in ["application/json", "text/csv"] {
        for which in ["validation", "confirmation"] {
            let reply = app
                .send(
                    "POST",
                    &format!("/v1/providers/mpesa/{rotated}/{which}"),
                    &[("content-type".into(), label.into())],
                    Some(with_nul.clone()),
                )
                .await;
            assert_eq!(reply.status, 422, "{which} as {label}: {}", reply.body);
            assert!(reply.body.to_string().contains("NUL"), "{}", reply.body);
        }
    }
    assert_eq!(written(&app, &device_id).await, before);
    assert!(unmatched(&app, &key, "").await.is_empty());

    // The endpoint shows no token.
    let shown = app
        .call(
            "GET",
            &format!("/v1/financiers/{financier_id}/mpesa-endpoint"),
            &key,
            None,
        )
        .await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(!shown.body.to_string().contains(&rotated));
    app.running.stop().await;
}

async fn callbacks_come_only_from_the_allowed_sources(backend: Backend) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (financier_id, key, _) = financier_with_device(&app).await;
    let elsewhere = create_endpoint(
        &app,
        &key,
        &financier_id,
        json!({"allowed_sources": ["196.201.214.0/24"]}),
    )
    .await;
    let body = daraja(&app, "RKTSOURCE1", "C-1001", "10");
    let reply = post(&app, &elsewhere, "validation", &body).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let here = create_endpoint(
        &app,
        &key,
        &financier_id,
        json!({"allowed_sources": ["196.201.214.0/24", "127.0.0.1"]}),
    )
    .await;
    let reply = post(&app, &here, "validation", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["ResultCode"], "0");
    let bad = app
        .call(
            "POST",
            &format!("/v1/financiers/{financier_id}/mpesa-endpoint"),
            &key,
            Some(json!({"allowed_sources": ["safaricom"]})),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    app.running.stop().await;
}

async fn a_device_not_payable_in_shillings_is_refused(backend: Backend) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (financier_id, key) = app.financier("Duka Phones").await;
    let mut ugx = enrollment("U-2002", &imei("35693803564381"), "SN2002");
    ugx["plan"]["currency"] = json!("UGX");
    ugx["plan"]["time_zone"] = json!("Africa/Kampala");
    let enrolled = app.call("POST", "/v1/devices", &key, Some(ugx)).await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.body);
    let device_id = enrolled.body["id"].as_str().unwrap().to_string();
    let token = create_endpoint(&app, &key, &financier_id, json!({})).await;

    let body = daraja(&app, "RKTUGX0001", "U-2002", "500.00");
    let validation = post(&app, &token, "validation", &body).await;
    assert_eq!(validation.status, 200, "{}", validation.body);
    assert_eq!(validation.body["ResultCode"], "C2B00016");
    assert!(
        validation.body["ResultDesc"]
            .as_str()
            .unwrap()
            .contains("UGX"),
        "{}",
        validation.body
    );

    // Confirmed anyway: kept, not recorded in the wrong currency; and it cannot be assigned
    // to that device.
    let before = written(&app, &device_id).await;
    let confirmed = post(&app, &token, "confirmation", &body).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(written(&app, &device_id).await, before);
    let kept = unmatched(&app, &key, "").await;
    assert_eq!(kept.len(), 1);
    assert!(
        kept[0]["reason"].as_str().unwrap().contains("UGX"),
        "{kept:?}"
    );
    let refused = assign(&app, &key, kept[0]["id"].as_str().unwrap(), &device_id).await;
    refused.assert_invalid("currency");
    assert!(
        refused.message().contains("KES") && refused.message().contains("UGX"),
        "{}",
        refused.body
    );
    assert_eq!(written(&app, &device_id).await, before);
    assert_eq!(unmatched(&app, &key, "?status=open").await.len(), 1);

    // Amounts M-Pesa could not have taken are refused with Daraja's code, or as a 422.
    for amount in ["0", "-10", "10.005"] {
        let bad = daraja(&app, "RKTAMOUNT1", "U-2002", amount);
        let validation = post(&app, &token, "validation", &bad).await;
        assert_eq!(validation.body["ResultCode"], "C2B00013", "{amount}");
        let confirmation = post(&app, &token, "confirmation", &bad).await;
        assert_eq!(confirmation.status, 422, "{amount}: {}", confirmation.body);
        assert!(
            confirmation.body["message"]
                .as_str()
                .unwrap()
                .starts_with("TransAmount"),
            "{}",
            confirmation.body
        );
    }
    assert_eq!(unmatched(&app, &key, "").await.len(), 1);
    app.running.stop().await;
}

async fn guessing_tokens_is_rate_limited_but_the_provider_is_not(backend: Backend) {
    let app = spawn_app_with(backend, "2026-01-10T09:00:00Z".parse().unwrap(), |s| {
        s.public_rate_per_minute = 1;
        s.public_rate_burst = 2;
    })
    .await;
    let (financier_id, key, _) = financier_with_device(&app).await;
    let token = create_endpoint(&app, &key, &financier_id, json!({})).await;
    let body = daraja(&app, "RKTLIMIT01", "C-1001", "10");
    let guessed = format!("mpt_{}", "B".repeat(43));
    let statuses: Vec<u16> = {
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(post(&app, &guessed, "validation", &body).await.status);
        }
        statuses
    };
    assert_eq!(statuses, [404, 404, 429]);
    // The provider, from the same address, is not held to the public allowance.
    for _ in 0..5 {
        let reply = post(&app, &token, "validation", &body).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    app.running.stop().await;
}

/// Neither the payer's number nor names are anywhere in the database's text: not in the
/// payments, the unmatched payments, the audit log or the kept responses. On SQLite, not in
/// the database's files at all.
async fn assert_no_payer_in_clear(app: &TestApp) {
    sqlx::any::install_default_drivers();
    let url = app.running.state.settings.database_url.clone().unwrap();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let checks = [
        "SELECT COUNT(*) FROM payments WHERE reference LIKE $1",
        "SELECT COUNT(*) FROM unmatched_payments WHERE account LIKE $1 OR reason LIKE $1 \
         OR provider_ref LIKE $1",
        "SELECT COUNT(*) FROM audit WHERE reason LIKE $1 OR before_json LIKE $1 \
         OR after_json LIKE $1 OR actor LIKE $1",
        "SELECT COUNT(*) FROM idempotency WHERE body LIKE $1 OR key LIKE $1",
    ];
    for needle in [MSISDN, FIRST_NAME, LAST_NAME] {
        for sql in checks {
            let found: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(format!("%{needle}%"))
                .fetch_one(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert_eq!(found, 0, "{needle} is stored: {sql}");
        }
    }
    if let Some(path) = url.strip_prefix("sqlite://") {
        for file in [path.to_string(), format!("{path}-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            for needle in [MSISDN, FIRST_NAME, LAST_NAME] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle} is in {file}"
                );
            }
        }
    }
}

/// No client can take a transaction's key, and a confirmation that conflicts with a payment
/// typed in by hand is kept for the financier rather than acknowledged and dropped.
async fn a_confirmation_is_never_swallowed_by_a_payment_typed_in_by_hand(backend: Backend) {
    let (
        LockedOnPush {
            app,
            device_id,
            key,
            ..
        },
        token,
    ) = locked_phone_with_endpoint(backend).await;
    let taken = app
        .pay(
            &key,
            &device_id,
            "RKTQDM7W6S",
            50_000,
            "provider:mpesa:RKTQDM7W6S",
        )
        .await;
    assert_eq!(taken.status, 400, "{}", taken.body);
    assert!(
        taken.body["message"]
            .as_str()
            .unwrap()
            .contains("provider:"),
        "{}",
        taken.body
    );
    assert_eq!(written(&app, &device_id).await.0, 0);

    // The same transaction typed in by hand for another amount, then confirmed by M-Pesa.
    let typed = app
        .pay(&key, &device_id, "RKTQDM7W6S", 50_000, "hand-1")
        .await;
    assert_eq!(typed.status, 200, "{}", typed.body);
    let confirmed = post(
        &app,
        &token,
        "confirmation",
        &daraja(&app, "RKTQDM7W6S", "C-1001", "1000.00"),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(confirmed.body["ResultCode"], 0);
    assert_eq!(written(&app, &device_id).await.0, 1, "recorded once");
    let kept = unmatched(&app, &key, "?status=open").await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["reference"], "RKTQDM7W6S", "{kept:?}");
    assert!(
        kept[0]["reason"].as_str().unwrap().contains("TransID"),
        "{kept:?}"
    );
    app.running.stop().await;
}

/// The financier's unmatched payments come a page at a time, newest first, the open and the
/// assigned alike: an assigned one is a money record and stays listed.
async fn unmatched_payments_are_listed_in_pages(backend: Backend) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (financier_id, key, device_id) = financier_with_device(&app).await;
    let token = create_endpoint(&app, &key, &financier_id, json!({})).await;
    for i in 1..=5 {
        let typo = daraja(&app, &format!("RKTPAGE00{i}"), "C-9999", "10.00");
        let confirmed = post(&app, &token, "confirmation", &typo).await;
        assert_eq!(confirmed.status, 200, "{}", confirmed.body);
        app.clock.advance(SignedDuration::from_secs(60));
    }
    let oldest = unmatched(&app, &key, "?limit=500").await.pop().unwrap();
    let assigned = assign(&app, &key, oldest["id"].as_str().unwrap(), &device_id).await;
    assert_eq!(assigned.status, 200, "{}", assigned.body);

    // Every page after the one before, to the end: all five, newest first, once each.
    let pages = |query: &'static str, limit: u32| {
        let (app, key) = (&app, &key);
        async move {
            let mut references = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let after = cursor
                    .as_deref()
                    .map(|c| format!("&cursor={c}"))
                    .unwrap_or_default();
                let page = app
                    .call(
                        "GET",
                        &format!("/v1/unmatched-payments?limit={limit}{query}{after}"),
                        key,
                        None,
                    )
                    .await;
                assert_eq!(page.status, 200, "{}", page.body);
                let listed = page.body["payments"].as_array().unwrap();
                assert!(listed.len() <= limit as usize);
                references.push(
                    listed
                        .iter()
                        .map(|p| p["reference"].as_str().unwrap().to_string())
                        .collect::<Vec<_>>(),
                );
                match page.body["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_string()),
                    None => return references,
                }
            }
        }
    };
    assert_eq!(
        pages("", 2).await,
        [
            vec!["RKTPAGE005", "RKTPAGE004"],
            vec!["RKTPAGE003", "RKTPAGE002"],
            vec!["RKTPAGE001"]
        ]
    );
    assert_eq!(
        pages("&status=open", 3).await,
        [
            vec!["RKTPAGE005", "RKTPAGE004", "RKTPAGE003"],
            vec!["RKTPAGE002"]
        ]
    );
    assert_eq!(pages("&status=assigned", 3).await, [vec!["RKTPAGE001"]]);

    // Bad paging is named.
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?cursor=nonsense", "cursor"),
        ("?cursor=12.unm%20x", "cursor"),
        ("?status=unknown", "status"),
    ] {
        app.call("GET", &format!("/v1/unmatched-payments{query}"), &key, None)
            .await
            .assert_invalid(field);
    }
    app.running.stop().await;
}

on_both_backends!(
    a_paybill_payment_unlocks_the_phone_within_a_second_once,
    an_unknown_account_is_kept_and_once_assigned_unlocks_its_phone,
    a_wrong_token_is_not_found_and_writes_nothing,
    callbacks_come_only_from_the_allowed_sources,
    a_device_not_payable_in_shillings_is_refused,
    guessing_tokens_is_rate_limited_but_the_provider_is_not,
    a_confirmation_is_never_swallowed_by_a_payment_typed_in_by_hand,
    unmatched_payments_are_listed_in_pages,
);
