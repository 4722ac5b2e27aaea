//! Malformed requests: every one (bad IMEI, bad JSON, missing fields, wrong types, unknown
//! device, bad signature, stale timestamp...) gets a 4xx whose message names the problem,
//! and leaves nothing written. Once on SQLite and once on PostgreSQL.

use crate::common::{
    Backend, Reply, TestApp, bearer, device_paths, enrollment, imei, postgres_url, spawn_app,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::SignedDuration;
use serde_json::{Value, json};

/// A device id that no device has.
const NO_DEVICE: &str = "dev_0000000000000000";

/// One malformed request and how the server must answer it.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    status: u16,
    /// Each must appear in the answer's `message`.
    mentions: Vec<String>,
}

/// What could change: the financier's device list, and the financed device's status and history.
async fn world(app: &TestApp, key: &str, device_id: &str) -> Vec<Value> {
    let mut paths = vec!["/v1/devices".to_string()];
    paths.extend(device_paths(device_id));
    app.read_all(key, &paths).await
}

/// Asserts the answer is `status` with a JSON error whose message has every one of `mentions`.
fn assert_refused(name: &str, reply: &Reply, status: u16, mentions: &[String]) {
    assert_eq!(reply.status, status, "{name}: {}", reply.body);
    assert!(
        reply.body["error"].is_string(),
        "{name}: not a JSON error: {}",
        reply.body
    );
    let message = reply.body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: no message: {}", reply.body));
    for m in mentions {
        assert!(
            message.contains(m.as_str()),
            "{name}: the message does not mention {m:?}: {message}"
        );
    }
}

/// `base` with `edit` applied.
fn with(base: &Value, edit: impl FnOnce(&mut Value)) -> Option<String> {
    let mut v = base.clone();
    edit(&mut v);
    Some(v.to_string())
}

/// `base` with `edit` applied, as a value.
fn edited(base: &Value, edit: impl FnOnce(&mut Value)) -> Option<Value> {
    let mut v = base.clone();
    edit(&mut v);
    Some(v)
}

/// The same IMEI with a wrong check digit.
fn bad_luhn(imei: &str) -> String {
    let (body, check) = imei.split_at(14);
    let check = check.parse::<u32>().unwrap();
    format!("{body}{}", (check + 1) % 10)
}

fn strings(mentions: &[&str]) -> Vec<String> {
    mentions.iter().map(|m| m.to_string()).collect()
}

async fn malformed_requests_are_refused_and_write_nothing(backend: Backend) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (_fin, key) = app.financier("Duka Phones").await;
    let auth = || vec![bearer(&key)];
    let keyed = |idempotency_key: &str| {
        vec![
            bearer(&key),
            ("idempotency-key".to_string(), idempotency_key.to_string()),
        ]
    };

    // A financed, bound phone with one payment.
    let imei_d = imei("35693803564380");
    let device = app.enroll_device(&key, "C-D", &imei_d, "SND1").await;
    let hello = app.hello(&imei_d, "SND1").await;
    assert_eq!(hello.status, 200, "{}", hello.body);
    let credential = STANDARD
        .decode(hello.body["credential"].as_str().unwrap())
        .unwrap();
    let paid = app.pay(&key, &device, "PAY-1", 100000, "setup-pay-1").await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    let token_sequence = world(&app, &key, &device).await[1]["token_sequence"]
        .as_i64()
        .unwrap();

    let mut cases = Vec::new();

    // Enrollment. Each body is the good one below with one thing wrong.
    let new_imei = imei("35693803564398");
    let good = enrollment("C-NEW", &new_imei, "SN-NEW");
    let enroll = |name, body, status, mentions: &[&str]| Case {
        name,
        method: "POST",
        path: "/v1/devices".into(),
        headers: auth(),
        body,
        status,
        mentions: strings(mentions),
    };
    cases.extend([
        enroll(
            "IMEI with a bad check digit",
            with(&good, |v| v["imei1"] = json!(bad_luhn(&new_imei))),
            422,
            &["imei1"],
        ),
        enroll(
            "IMEI with a letter",
            with(&good, |v| v["imei1"] = json!("35693803564X398")),
            422,
            &["imei1"],
        ),
        enroll(
            "IMEI of 14 digits",
            with(&good, |v| v["imei1"] = json!("35693803564398")),
            422,
            &["imei1", "14 digits"],
        ),
        enroll(
            "imei2 equal to imei1",
            with(&good, |v| v["imei2"] = json!(new_imei)),
            422,
            &["imei2", "imei1"],
        ),
        enroll(
            "no serial",
            with(&good, |v| {
                v.as_object_mut().unwrap().remove("serial");
            }),
            422,
            &["serial"],
        ),
        enroll(
            "empty contract reference",
            with(&good, |v| v["contract_ref"] = json!("  ")),
            422,
            &["contract_ref"],
        ),
        enroll(
            "amount as a string",
            with(&good, |v| {
                v["plan"]["installments"][0]["amount_minor"] = json!("100000")
            }),
            422,
            &["amount_minor"],
        ),
        enroll(
            "plan as a list",
            with(&good, |v| v["plan"] = json!([])),
            422,
            &["plan"],
        ),
        enroll(
            "unknown time zone",
            with(&good, |v| v["plan"]["time_zone"] = json!("Africa/Atlantis")),
            422,
            &["time_zone", "Africa/Atlantis"],
        ),
        enroll(
            "unknown currency",
            with(&good, |v| v["plan"]["currency"] = json!("XYZ")),
            422,
            &["plan.currency"],
        ),
        enroll(
            "a due date that does not exist",
            with(&good, |v| {
                v["plan"]["installments"][0]["due"] = json!("2026-02-30")
            }),
            422,
            &["plan.installments[0].due", "2026-02-30"],
        ),
        enroll(
            "installments out of order",
            with(&good, |v| {
                v["plan"]["installments"][1]["due"] = json!("2026-01-15")
            }),
            422,
            &["installment 2", "date order"],
        ),
        enroll(
            "no installments",
            with(&good, |v| v["plan"]["installments"] = json!([])),
            422,
            &["no installments"],
        ),
        enroll(
            "unknown preset",
            with(&good, |v| v["policy"]["preset"] = json!("lenient")),
            422,
            &["policy.preset", "lenient"],
        ),
        enroll(
            "unknown field",
            with(&good, |v| v["colour"] = json!("red")),
            422,
            &["colour"],
        ),
        enroll(
            "unknown field in the plan",
            with(&good, |v| v["plan"]["interest_rate"] = json!(12)),
            422,
            &["interest_rate"],
        ),
        enroll(
            "JSON cut short",
            Some(r#"{"contract_ref": "C-NEW", "imei1": "#.into()),
            400,
            &["JSON"],
        ),
        enroll(
            "the IMEI of a financed phone",
            with(&good, |v| v["imei1"] = json!(imei_d)),
            409,
            &[&imei_d],
        ),
    ]);
    cases.extend([
        Case {
            name: "enrollment without a JSON content type",
            method: "POST",
            path: "/v1/devices".into(),
            headers: vec![bearer(&key), ("content-type".into(), "text/plain".into())],
            body: Some(good.to_string()),
            status: 400,
            mentions: strings(&["Content-Type"]),
        },
        Case {
            name: "no API key",
            method: "POST",
            path: "/v1/devices".into(),
            headers: vec![],
            body: Some(good.to_string()),
            status: 401,
            mentions: strings(&["Authorization"]),
        },
        Case {
            name: "unknown API key",
            method: "POST",
            path: "/v1/devices".into(),
            headers: vec![bearer("lien_not-a-key-anyone-was-given")],
            body: Some(good.to_string()),
            status: 401,
            mentions: strings(&["unknown API key"]),
        },
        Case {
            name: "API key not as Bearer",
            method: "POST",
            path: "/v1/devices".into(),
            headers: vec![("authorization".into(), format!("Basic {key}"))],
            body: Some(good.to_string()),
            status: 401,
            mentions: strings(&["Bearer"]),
        },
        Case {
            name: "unknown API key on a payment",
            method: "POST",
            path: format!("/v1/devices/{device}/payments"),
            headers: vec![
                bearer("lien_not-a-key-anyone-was-given"),
                ("idempotency-key".into(), "bad-1".into()),
            ],
            body: Some(
                json!({"reference": "PAY-2", "amount_minor": 100, "currency": "KES"}).to_string(),
            ),
            status: 401,
            mentions: strings(&["unknown API key"]),
        },
    ]);

    // Payments and reversals. Every refused payment carries the same Idempotency-Key: were a
    // refusal stored under it, the good payment at the end would be answered 409.
    let pay_path = format!("/v1/devices/{device}/payments");
    let good_pay = json!({"reference": "PAY-2", "amount_minor": 5000, "currency": "KES"});
    let payment = |name, body, status, mentions: &[&str]| Case {
        name,
        method: "POST",
        path: pay_path.clone(),
        headers: keyed("bad-1"),
        body,
        status,
        mentions: strings(mentions),
    };
    let in_a_day = app.clock_now() + SignedDuration::from_hours(24);
    cases.extend([
        Case {
            name: "payment without Idempotency-Key",
            method: "POST",
            path: pay_path.clone(),
            headers: auth(),
            body: Some(good_pay.to_string()),
            status: 400,
            mentions: strings(&["Idempotency-Key"]),
        },
        Case {
            name: "payment with an empty Idempotency-Key",
            method: "POST",
            path: pay_path.clone(),
            headers: keyed(""),
            body: Some(good_pay.to_string()),
            status: 400,
            mentions: strings(&["Idempotency-Key"]),
        },
        payment(
            "payment in another currency",
            with(&good_pay, |v| v["currency"] = json!("USD")),
            422,
            &["currency", "KES", "USD"],
        ),
        payment(
            "payment in no currency at all",
            with(&good_pay, |v| v["currency"] = json!("SHILLINGS")),
            422,
            &["currency"],
        ),
        payment(
            "payment of zero",
            with(&good_pay, |v| v["amount_minor"] = json!(0)),
            422,
            &["amount_minor", "positive"],
        ),
        payment(
            "negative payment",
            with(&good_pay, |v| v["amount_minor"] = json!(-5000)),
            422,
            &["amount_minor"],
        ),
        payment(
            "amount as a string",
            with(&good_pay, |v| v["amount_minor"] = json!("5000")),
            422,
            &["amount_minor"],
        ),
        payment(
            "amount with a fraction",
            with(&good_pay, |v| v["amount_minor"] = json!(50.5)),
            422,
            &["amount_minor"],
        ),
        payment(
            "no reference",
            with(&good_pay, |v| {
                v.as_object_mut().unwrap().remove("reference");
            }),
            422,
            &["reference"],
        ),
        payment(
            "received_at not RFC 3339",
            with(&good_pay, |v| v["received_at"] = json!("10/01/2026")),
            422,
            &["received_at", "RFC 3339"],
        ),
        payment(
            "received_at in the future",
            with(&good_pay, |v| {
                v["received_at"] = json!(in_a_day.to_string())
            }),
            422,
            &["received_at", "future"],
        ),
        payment(
            "a reference already recorded",
            with(&good_pay, |v| v["reference"] = json!("PAY-1")),
            409,
            &["PAY-1"],
        ),
        payment(
            "payment JSON cut short",
            Some(r#"{"reference": "PAY-2", "amount_minor": 50"#.into()),
            400,
            &["JSON"],
        ),
        payment(
            "unknown field in a payment",
            with(&good_pay, |v| v["tip_minor"] = json!(5)),
            422,
            &["tip_minor"],
        ),
        Case {
            name: "payment to an unknown device",
            method: "POST",
            path: format!("/v1/devices/{NO_DEVICE}/payments"),
            headers: keyed("bad-1"),
            body: Some(good_pay.to_string()),
            status: 404,
            mentions: strings(&["device not found"]),
        },
        Case {
            name: "reversal of an unknown payment",
            method: "POST",
            path: format!("/v1/devices/{device}/payments/PAY-404/reversal"),
            headers: keyed("bad-rev-1"),
            body: Some(json!({"reason": "chargeback"}).to_string()),
            status: 404,
            mentions: strings(&["payment not found"]),
        },
        Case {
            name: "reversal without Idempotency-Key",
            method: "POST",
            path: format!("/v1/devices/{device}/payments/PAY-1/reversal"),
            headers: auth(),
            body: Some(json!({"reason": "chargeback"}).to_string()),
            status: 400,
            mentions: strings(&["Idempotency-Key"]),
        },
        Case {
            name: "reversal without a reason",
            method: "POST",
            path: format!("/v1/devices/{device}/payments/PAY-1/reversal"),
            headers: keyed("bad-rev-1"),
            body: Some(json!({}).to_string()),
            status: 422,
            mentions: strings(&["reason"]),
        },
        Case {
            name: "reversal before the payment was received",
            method: "POST",
            path: format!("/v1/devices/{device}/payments/PAY-1/reversal"),
            headers: keyed("bad-rev-1"),
            body: Some(json!({"reason": "chargeback", "at": "2020-01-01T00:00:00Z"}).to_string()),
            status: 422,
            mentions: strings(&["at", "before the payment"]),
        },
    ]);

    // Other changes to the device, with one thing wrong.
    let action =
        |name, method, action: &str, body: Option<Value>, status, mentions: &[&str]| Case {
            name,
            method,
            path: format!("/v1/devices/{device}/{action}"),
            headers: auth(),
            body: body.map(|b| b.to_string()),
            status,
            mentions: strings(mentions),
        };
    cases.extend([
        action(
            "lock without a reason",
            "POST",
            "lock",
            Some(json!({"reason": " "})),
            422,
            &["reason"],
        ),
        action(
            "lock with the reason as a number",
            "POST",
            "lock",
            Some(json!({"reason": 7})),
            422,
            &["reason"],
        ),
        action(
            "unlock with no lock to lift",
            "POST",
            "unlock",
            Some(json!({"reason": "paid"})),
            409,
            &["no manual lock"],
        ),
        action(
            "provisional unlock of 0 hours",
            "POST",
            "unlock",
            Some(json!({"reason": "paid", "provisional_hours": 0})),
            422,
            &["provisional_hours"],
        ),
        action(
            "reminder for 99 days",
            "POST",
            "reminder",
            Some(json!({"message": "pay", "days": 99})),
            422,
            &["days"],
        ),
        action(
            "cancelling a release that was never requested",
            "DELETE",
            "release",
            None,
            409,
            &["no release is pending"],
        ),
        action(
            "offline unlock with a short challenge",
            "POST",
            "offline-unlock",
            Some(json!({"challenge": "1234", "reason": "no signal"})),
            422,
            &["challenge"],
        ),
        action(
            "offline unlock for 1000 hours",
            "POST",
            "offline-unlock",
            Some(json!({"challenge": "12345678", "reason": "no signal", "hours": 1000})),
            422,
            &["hours"],
        ),
    ]);

    // Policy changes, each with one thing wrong.
    let good_policy = json!({"policy": {"preset": "india-draft"}, "reason": "renegotiated"});
    let custom = json!({
        "grace_days": 0, "min_days_past_due": 2, "min_arrears_percent": 1,
        "escalations": [{"at_days_past_due": 2, "restriction": "bricked"}],
        "lease_days": 14, "lease_warning_days": 3
    });
    cases.extend([
        action(
            "policy with an unknown preset",
            "PUT",
            "policy",
            edited(&good_policy, |v| v["policy"]["preset"] = json!("lenient")),
            422,
            &["policy.preset", "lenient"],
        ),
        action(
            "custom policy escalating to an unknown restriction",
            "PUT",
            "policy",
            edited(&good_policy, |v| v["policy"] = json!({"custom": custom})),
            422,
            &["policy.custom.escalations[0].restriction", "bricked"],
        ),
        action(
            "custom policy escalating inside its grace period",
            "PUT",
            "policy",
            edited(&good_policy, |v| {
                let mut settings = custom.clone();
                settings["grace_days"] = json!(5);
                settings["escalations"][0]["restriction"] = json!("locked");
                v["policy"] = json!({"custom": settings});
            }),
            422,
            &["policy.custom", "grace"],
        ),
        action(
            "policy that is neither a preset nor custom settings",
            "PUT",
            "policy",
            edited(&good_policy, |v| v["policy"] = json!({"lenient": true})),
            422,
            &["policy"],
        ),
        action(
            "policy change without a reason",
            "PUT",
            "policy",
            edited(&good_policy, |v| v["reason"] = json!("")),
            422,
            &["reason"],
        ),
        Case {
            name: "policy change with an overlong Idempotency-Key",
            method: "PUT",
            path: format!("/v1/devices/{device}/policy"),
            headers: keyed(&"k".repeat(201)),
            body: Some(good_policy.to_string()),
            status: 400,
            mentions: strings(&["Idempotency-Key"]),
        },
    ]);

    // Platform keys, asked for by the platform admin, each with one thing wrong.
    let platform_key = |name, body: Value, mentions: &[&str]| Case {
        name,
        method: "POST",
        path: "/v1/api-keys".into(),
        headers: vec![bearer(&app.admin_key)],
        body: Some(body.to_string()),
        status: 422,
        mentions: strings(mentions),
    };
    cases.extend([
        platform_key(
            "platform key with a financier's role",
            json!({"role": "financier-admin", "label": "back office"}),
            &["role", "/v1/financiers/{id}/api-keys"],
        ),
        platform_key(
            "platform key with an unknown role",
            json!({"role": "root", "label": "all of it"}),
            &["role"],
        ),
        platform_key(
            "platform key without a label",
            json!({"role": "support", "label": " "}),
            &["label"],
        ),
    ]);
    cases.extend([
        Case {
            name: "status of an unknown device",
            method: "GET",
            path: format!("/v1/devices/{NO_DEVICE}"),
            headers: auth(),
            body: None,
            status: 404,
            mentions: strings(&["device not found"]),
        },
        Case {
            name: "device list filtered on an unknown state",
            method: "GET",
            path: "/v1/devices?state=asleep".into(),
            headers: auth(),
            body: None,
            status: 422,
            mentions: strings(&["state", "asleep"]),
        },
        Case {
            name: "device list filtered on an unknown policy",
            method: "GET",
            path: "/v1/devices?policy=lenient".into(),
            headers: auth(),
            body: None,
            status: 422,
            mentions: strings(&["policy", "custom"]),
        },
        Case {
            name: "a status code of letters",
            method: "GET",
            path: "/v1/status-codes/abcdefgh".into(),
            headers: auth(),
            body: None,
            status: 422,
            mentions: strings(&["code"]),
        },
    ]);

    // Check-ins, signed with the device's credential unless the case is about the signature.
    let now = app.clock_now().as_second();
    let checkin =
        |name, device: &str, body: String, signed_with: &[u8], status, mentions: &[&str]| {
            let signature = lien_server::routes::sign_checkin(signed_with, body.as_bytes());
            Case {
                name,
                method: "POST",
                path: "/v1/device/checkin".into(),
                headers: vec![
                    ("x-lien-device".into(), device.to_string()),
                    ("x-lien-signature".into(), signature),
                ],
                body: Some(body),
                status,
                mentions: strings(mentions),
            }
        };
    let good_checkin = json!({"sent_at": now, "counter": 1, "applied_sequence": token_sequence});
    let signed = |v: Option<String>| v.unwrap();
    cases.extend([
        checkin(
            "check-in of an unknown device",
            NO_DEVICE,
            good_checkin.to_string(),
            &credential,
            404,
            &["device not found"],
        ),
        checkin(
            "check-in signed with another key",
            &device,
            good_checkin.to_string(),
            &[9; 32],
            401,
            &["signature"],
        ),
        checkin(
            "check-in whose body changed after signing",
            &device,
            good_checkin.to_string(),
            &credential,
            401,
            &["signature"],
        ),
        checkin(
            "check-in sent ten minutes ago",
            &device,
            signed(with(&good_checkin, |v| v["sent_at"] = json!(now - 600))),
            &credential,
            401,
            &["stale", "sent_at"],
        ),
        checkin(
            "check-in from ten minutes ahead",
            &device,
            signed(with(&good_checkin, |v| v["sent_at"] = json!(now + 600))),
            &credential,
            401,
            &["stale"],
        ),
        checkin(
            "check-in with sent_at as text",
            &device,
            signed(with(&good_checkin, |v| {
                v["sent_at"] = json!("2026-01-10T09:00:00Z")
            })),
            &credential,
            422,
            &["sent_at"],
        ),
        checkin(
            "check-in without applied_sequence",
            &device,
            json!({"sent_at": now, "counter": 1}).to_string(),
            &credential,
            422,
            &["applied_sequence"],
        ),
        checkin(
            "check-in with an unknown field",
            &device,
            signed(with(&good_checkin, |v| v["battery"] = json!(80))),
            &credential,
            422,
            &["battery"],
        ),
        checkin(
            "check-in that is not JSON",
            &device,
            "sent_at=now".into(),
            &credential,
            400,
            &["JSON"],
        ),
        checkin(
            "check-in applying a sequence never issued",
            &device,
            signed(with(&good_checkin, |v| {
                v["applied_sequence"] = json!(token_sequence + 100)
            })),
            &credential,
            422,
            &["applied_sequence", "never issued"],
        ),
        checkin(
            "check-in applying a negative sequence",
            &device,
            signed(with(&good_checkin, |v| v["applied_sequence"] = json!(-1))),
            &credential,
            422,
            &["applied_sequence"],
        ),
        checkin(
            "check-in with an unknown event",
            &device,
            signed(with(&good_checkin, |v| {
                v["events"] = json!([{"kind": "sunburn", "detail": "left in the sun"}])
            })),
            &credential,
            422,
            &["events.kind", "sunburn"],
        ),
    ]);
    // The body-changed case: signed as above, then one byte differs.
    let tampered = cases
        .iter_mut()
        .find(|c| c.name == "check-in whose body changed after signing")
        .unwrap();
    tampered.body = Some(
        json!({"sent_at": now, "counter": 1, "applied_sequence": token_sequence + 1}).to_string(),
    );
    cases.extend([
        Case {
            name: "check-in without a signature",
            method: "POST",
            path: "/v1/device/checkin".into(),
            headers: vec![("x-lien-device".into(), device.clone())],
            body: Some(good_checkin.to_string()),
            status: 401,
            mentions: strings(&["x-lien-signature"]),
        },
        Case {
            name: "check-in with a signature that is not base64",
            method: "POST",
            path: "/v1/device/checkin".into(),
            headers: vec![
                ("x-lien-device".into(), device.clone()),
                ("x-lien-signature".into(), "%%% not base64 %%%".into()),
            ],
            body: Some(good_checkin.to_string()),
            status: 401,
            mentions: strings(&["X-Lien-Signature", "base64"]),
        },
        Case {
            name: "check-in without a device id",
            method: "POST",
            path: "/v1/device/checkin".into(),
            headers: vec![(
                "x-lien-signature".into(),
                lien_server::routes::sign_checkin(&credential, good_checkin.to_string().as_bytes()),
            )],
            body: Some(good_checkin.to_string()),
            status: 401,
            mentions: strings(&["x-lien-device"]),
        },
    ]);

    // Hellos. The good hello is the device's own, attested for a fresh challenge, which would
    // bind it again; each case spoils one thing.
    let challenge = app.hello_challenge().await;
    let chain: Vec<String> = app
        .dev_root()
        .mint_factory_identity(&imei_d, None, "SND1", app.clock_now().as_second())
        .unwrap()
        .attest(
            &STANDARD.decode(&challenge).unwrap(),
            app.clock_now().as_second(),
        )
        .unwrap()
        .chain
        .iter()
        .map(|c| STANDARD.encode(c))
        .collect();
    let good_hello = json!({
        "imei1": imei_d, "serial": "SND1", "model": "Phone X",
        "challenge": challenge, "attestation": chain,
    });
    let hello = |name, body, status, mentions: &[&str]| Case {
        name,
        method: "POST",
        path: "/v1/device/hello".into(),
        headers: vec![],
        body,
        status,
        mentions: strings(mentions),
    };
    let refused = &["hello refused"];
    cases.extend([
        hello(
            "hello with a certificate that is not base64",
            with(&good_hello, |v| {
                v["attestation"][0] = json!("not a certificate!")
            }),
            422,
            &["attestation"],
        ),
        hello(
            "hello with a challenge that is not base64",
            with(&good_hello, |v| v["challenge"] = json!("not a challenge!")),
            422,
            &["challenge"],
        ),
        hello(
            "hello without an attestation",
            with(&good_hello, |v| v["attestation"] = json!([])),
            401,
            refused,
        ),
        hello(
            "hello with a challenge the server never issued",
            with(&good_hello, |v| {
                v["challenge"] = json!(STANDARD.encode([7u8; 40]))
            }),
            401,
            refused,
        ),
        hello(
            "hello with another serial",
            with(&good_hello, |v| v["serial"] = json!("SN-SWAPPED")),
            401,
            refused,
        ),
        hello(
            "hello with a bad IMEI",
            with(&good_hello, |v| v["imei1"] = json!(bad_luhn(&imei_d))),
            422,
            &["imei1"],
        ),
        hello(
            "hello with imei2 bad",
            with(&good_hello, |v| v["imei2"] = json!("123")),
            422,
            &["imei2"],
        ),
        hello(
            "hello without a model",
            with(&good_hello, |v| {
                v.as_object_mut().unwrap().remove("model");
            }),
            422,
            &["model"],
        ),
        hello(
            "hello that is not JSON",
            Some("imei1=1".into()),
            400,
            &["JSON"],
        ),
    ]);

    for case in &cases {
        let before = world(&app, &key, &device).await;
        let reply = app
            .send(case.method, &case.path, &case.headers, case.body.clone())
            .await;
        assert_refused(case.name, &reply, case.status, &case.mentions);
        assert_eq!(
            world(&app, &key, &device).await,
            before,
            "{}: something was written",
            case.name
        );
    }

    // A check-in signed at the right time that arrives ten minutes late is stale too.
    let before = world(&app, &key, &device).await;
    let body = json!({"sent_at": app.clock_now().as_second(), "counter": 1, "applied_sequence": token_sequence})
        .to_string();
    app.clock.advance(SignedDuration::from_mins(10));
    let late = app
        .raw_checkin(&device, hello_credential(&credential).as_str(), body)
        .await;
    assert_refused("a late check-in", &late, 401, &strings(&["stale"]));
    assert_eq!(world(&app, &key, &device).await, before, "a late check-in");

    // Nothing refused left a trace: the well-formed enrollment takes the IMEI and contract the
    // refused ones named, and the payment takes the Idempotency-Key the refused ones carried.
    let enrolled = app.post("/v1/devices", &key, good).await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.body);
    let paid = app.post_once(&pay_path, &key, good_pay, "bad-1").await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    // And the device still checks in with the state the refusals found.
    let fine = app
        .checkin(&device, &hello_credential(&credential), token_sequence)
        .await;
    assert_eq!(fine.status, 200, "{}", fine.body);

    app.running.stop().await;
}

/// The credential as the hello gave it, base64.
fn hello_credential(credential: &[u8]) -> String {
    STANDARD.encode(credential)
}

on_both_backends!(malformed_requests_are_refused_and_write_nothing);
