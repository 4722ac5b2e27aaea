//! Tenant isolation: a financier can read and act on its own devices only. Another financier's
//! device answers 404, exactly as a device that does not exist, on every route that takes a
//! device; and the roles within a financier and on the platform do only what they may.
//! Once on SQLite and once on PostgreSQL.

use crate::common::{self, Backend, TestApp, imei, postgres_url, spawn_app};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// A device id that no device has.
const NO_DEVICE: &str = "dev_0000000000000000";

/// A payment A records before the checks, so that B's reversal aims at a real payment.
const A_PAYMENT: &str = "MPESA-A1";

/// One route that takes a device: method, path with `{id}` for the device, and a body that
/// is well formed, so that the only thing wrong with B's request is whose device it names.
/// A new route is one more line here.
struct Route {
    method: &'static str,
    path: &'static str,
    body: Option<fn() -> Value>,
    idempotency_key: bool,
}

const fn route(method: &'static str, path: &'static str, body: Option<fn() -> Value>) -> Route {
    Route {
        method,
        path,
        body,
        idempotency_key: false,
    }
}

const fn keyed(method: &'static str, path: &'static str, body: fn() -> Value) -> Route {
    Route {
        method,
        path,
        body: Some(body),
        idempotency_key: true,
    }
}

/// Every route of the router that takes a device id. The order is one in which A's own key
/// succeeds on every row (the release is cancelled after it is requested, the lock lifted
/// after it is set), which proves each row names a real route.
const DEVICE_ROUTES: &[Route] = &[
    route("GET", "/v1/devices/{id}", None),
    route("GET", "/v1/devices/{id}/history", None),
    keyed(
        "POST",
        "/v1/devices/{id}/payments",
        || json!({"reference": "MPESA-X9", "amount_minor": 5000, "currency": "KES"}),
    ),
    keyed(
        "POST",
        "/v1/devices/{id}/payments/MPESA-A1/reversal",
        || json!({"reason": "chargeback"}),
    ),
    route(
        "POST",
        "/v1/devices/{id}/lock",
        Some(
            || json!({"message": "Locked by your financier: please call them.", "note": "stolen, per the police report"}),
        ),
    ),
    route(
        "POST",
        "/v1/devices/{id}/unlock",
        Some(|| json!({"reason": "found again"})),
    ),
    route(
        "POST",
        "/v1/devices/{id}/reminder",
        Some(|| json!({"message": "Your installment is due on Friday", "days": 2})),
    ),
    route(
        "POST",
        "/v1/devices/{id}/release",
        Some(|| json!({"reason": "paid off"})),
    ),
    route("DELETE", "/v1/devices/{id}/release", None),
    route(
        "POST",
        "/v1/devices/{id}/offline-unlock",
        Some(|| json!({"challenge": "12345678", "reason": "no signal at the farm", "hours": 24})),
    ),
    keyed(
        "PUT",
        "/v1/devices/{id}/policy",
        || json!({"policy": {"preset": "india-draft"}, "reason": "renegotiated contract"}),
    ),
];

impl Route {
    fn path_for(&self, device_id: &str) -> String {
        self.path.replace("{id}", device_id)
    }

    async fn call(&self, app: &TestApp, key: &str, device_id: &str) -> common::Reply {
        let path = self.path_for(device_id);
        let body = self.body.map(|b| b());
        if self.idempotency_key {
            // One key per route, whoever calls and on whichever device: a refused request must
            // not store a response under it.
            let idempotency_key = format!("isolation {}", self.path);
            app.call_with(
                self.method,
                &path,
                key,
                body,
                &[("Idempotency-Key", &idempotency_key)],
            )
            .await
        } else {
            app.call(self.method, &path, key, body).await
        }
    }
}

fn device_ids(page: &Value) -> Vec<String> {
    page["devices"]
        .as_array()
        .unwrap_or_else(|| panic!("a device page: {page}"))
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

async fn financiers_see_only_their_own_devices(backend: Backend) {
    let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
    let (fin_a, key_a) = app.financier("Duka Phones").await;
    let (_fin_b, key_b) = app.financier("Other Lender").await;

    // A has a bound phone with a payment, and a second device still pending; B has one device.
    let imei_a = imei("35693803564380");
    let device_a = app.enroll_device(&key_a, "A-1", &imei_a, "SNA1").await;
    let pending_a = app
        .enroll_device(&key_a, "A-2", &imei("35693803564381"), "SNA2")
        .await;
    let device_b = app
        .enroll_device(&key_b, "B-1", &imei("35693803564382"), "SNB1")
        .await;
    let hello = app.hello(&imei_a, "SNA1").await;
    assert_eq!(hello.status, 200, "{}", hello.body);
    assert_eq!(hello.body["device_id"], device_a.as_str());
    let paid = app
        .pay(&key_a, &device_a, A_PAYMENT, 100000, "a-pay-1")
        .await;
    assert_eq!(paid.status, 200, "{}", paid.body);

    // On every route that takes a device, B's key on A's device and on no device at all get
    // the same 404, and A's devices are as they were.
    let not_found = json!({"error": "not_found", "message": "device not found"});
    for target in [&device_a, &pending_a] {
        for r in DEVICE_ROUTES {
            let before = app.seen(&key_a, target).await;
            let on_a = r.call(&app, &key_b, target).await;
            let on_none = r.call(&app, &key_b, NO_DEVICE).await;
            let what = format!("{} {}", r.method, r.path);
            assert_eq!(on_a.status, 404, "{what} on A's device: {}", on_a.body);
            assert_eq!(on_none.status, 404, "{what} on no device: {}", on_none.body);
            assert_eq!(on_a.body, on_none.body, "{what}: the two 404s differ");
            // A route that is not in the router is a 404 too, with no body: this is the
            // handler's answer.
            assert_eq!(on_a.body, not_found, "{what}");
            assert_eq!(
                app.seen(&key_a, target).await,
                before,
                "{what} by B changed A's device"
            );
        }
    }

    // The same rows with A's own key succeed: each row is a real route, and B was refused for
    // whose device it was, not for how it asked.
    for r in DEVICE_ROUTES {
        let own = r.call(&app, &key_a, &device_a).await;
        assert_eq!(
            own.status, 200,
            "{} {} by A: {}",
            r.method, r.path, own.body
        );
    }

    // Lists: B never sees A's devices, whatever the filter; A never sees B's.
    for query in [
        "",
        "?state=active",
        "?limit=1",
        "?overdue=false",
        "?policy=kenya",
        "?policy=custom",
    ] {
        let page_b = app.get(&format!("/v1/devices{query}"), &key_b).await;
        assert_eq!(page_b.status, 200, "{}", page_b.body);
        let ids = device_ids(&page_b.body);
        assert!(!ids.contains(&device_a), "{query}: {ids:?}");
        assert!(!ids.contains(&pending_a), "{query}: {ids:?}");
    }
    let page_b = app.get("/v1/devices", &key_b).await;
    assert_eq!(device_ids(&page_b.body), std::slice::from_ref(&device_b));
    // Starting B's pages from A's device id lists B's devices only, too.
    let page_b = app
        .get(&format!("/v1/devices?cursor={device_a}"), &key_b)
        .await;
    assert!(
        device_ids(&page_b.body).iter().all(|id| id == &device_b),
        "{}",
        page_b.body
    );
    let mut page_a = device_ids(&app.get("/v1/devices", &key_a).await.body);
    page_a.sort();
    let mut own_a = vec![device_a.clone(), pending_a.clone()];
    own_a.sort();
    assert_eq!(page_a, own_a);
    // A moved its first device to the india-draft preset above; the other is still on kenya,
    // and none is on settings of A's own.
    let under = |policy: &'static str| {
        let (app, key_a) = (&app, &key_a);
        async move {
            let page = app
                .get(&format!("/v1/devices?policy={policy}"), key_a)
                .await;
            device_ids(&page.body)
        }
    };
    assert_eq!(under("india-draft").await, std::slice::from_ref(&device_a));
    assert_eq!(under("kenya").await, std::slice::from_ref(&pending_a));
    assert!(device_ids(&app.get("/v1/devices?policy=custom", &key_a).await.body).is_empty());
    // The platform sees every financier's devices.
    let all = device_ids(&app.get("/v1/devices", &app.admin_key).await.body);
    assert_eq!(all.len(), 3, "{all:?}");

    // Status codes: the code of A's token is A's (and support's) to look up, not B's; for B it
    // is exactly a code no phone shows.
    let token = STANDARD
        .decode(hello.body["token"].as_str().unwrap())
        .unwrap();
    let code = lien_proto::status_code(&token);
    let support = app.support_key().await;
    for (who, key) in [("A", &key_a), ("support", &support)] {
        let found = app.get(&format!("/v1/status-codes/{code}"), key).await;
        assert_eq!(found.status, 200, "{who}: {}", found.body);
        assert_eq!(
            found.body[0]["device_id"],
            device_a.as_str(),
            "{who}: {}",
            found.body
        );
    }
    let for_b = app.get(&format!("/v1/status-codes/{code}"), &key_b).await;
    assert_eq!(for_b.status, 404, "{}", for_b.body);
    let unknown_code = if code == "00000000" {
        "00000001"
    } else {
        "00000000"
    };
    let no_code = app
        .get(&format!("/v1/status-codes/{unknown_code}"), &key_b)
        .await;
    assert_eq!(no_code.status, 404, "{}", no_code.body);
    assert_eq!(for_b.body, no_code.body);

    // Financiers: B sees only itself, and cannot make keys for A, which answers as a financier
    // that does not exist.
    let financiers = app.get("/v1/financiers", &key_b).await;
    assert_eq!(financiers.status, 200, "{}", financiers.body);
    let names: Vec<&str> = financiers
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Other Lender"]);
    let new_key = json!({"role": "financier-admin", "label": "a way in"});
    let for_a = app
        .post(
            &format!("/v1/financiers/{fin_a}/api-keys"),
            &key_b,
            new_key.clone(),
        )
        .await;
    let for_none = app
        .post(
            "/v1/financiers/fin_0000000000000000/api-keys",
            &key_b,
            new_key,
        )
        .await;
    assert_eq!(for_a.status, 404, "{}", for_a.body);
    assert_eq!(for_a.body, for_none.body);
    // Whatever role is asked for: the answer does not wait on the request's content.
    let platform_role = json!({"role": "support", "label": "a way in"});
    let odd_for_a = app
        .post(
            &format!("/v1/financiers/{fin_a}/api-keys"),
            &key_b,
            platform_role,
        )
        .await;
    assert_eq!(odd_for_a.status, 404, "{}", odd_for_a.body);
    assert_eq!(odd_for_a.body, for_none.body);

    // Roles. A's agent records payments and reversals, reads, and may do nothing that locks,
    // unlocks or releases.
    let agent = app.financier_key(&fin_a, "financier-agent").await;
    let before = app.seen(&key_a, &device_a).await;
    let forbidden: &[(&str, &str, Option<Value>)] = &[
        ("POST", "lock", Some(json!({"message": "late"}))),
        ("POST", "unlock", Some(json!({"reason": "paid"}))),
        (
            "POST",
            "unlock",
            Some(json!({"reason": "paid", "provisional_hours": 2})),
        ),
        ("POST", "reminder", Some(json!({"message": "pay up"}))),
        ("POST", "release", Some(json!({"reason": "paid off"}))),
        ("DELETE", "release", None),
        (
            "POST",
            "offline-unlock",
            Some(json!({"challenge": "12345678", "reason": "no signal"})),
        ),
        (
            "PUT",
            "policy",
            Some(json!({"policy": {"preset": "strict-dealer"}, "reason": "harsher"})),
        ),
    ];
    for (method, action, body) in forbidden {
        let refused = app
            .call(
                method,
                &format!("/v1/devices/{device_a}/{action}"),
                &agent,
                body.clone(),
            )
            .await;
        refused.assert_forbidden(&format!("agent {method} {action}"));
        assert!(
            refused.message().contains("financier-agent"),
            "{}",
            refused.body
        );
    }
    assert_eq!(app.seen(&agent, &device_a).await, before);
    let agent_paid = app
        .pay(&agent, &device_a, "MPESA-AG1", 1000, "agent-pay-1")
        .await;
    assert_eq!(agent_paid.status, 200, "{}", agent_paid.body);
    // The agent is confined to A's devices as the admin is.
    let agent_on_b = app
        .pay(&agent, &device_b, "MPESA-AG2", 1000, "agent-pay-2")
        .await;
    assert_eq!(agent_on_b.status, 404, "{}", agent_on_b.body);
    assert_eq!(agent_on_b.body, not_found);
    // Nor can an agent make itself a key.
    let agent_key = app
        .post(
            &format!("/v1/financiers/{fin_a}/api-keys"),
            &agent,
            json!({"role": "financier-admin", "label": "me"}),
        )
        .await;
    assert_eq!(agent_key.status, 403, "{}", agent_key.body);

    // The platform admin reads any device, but neither locks nor records payments; support
    // reads, and neither locks nor changes a policy.
    let before = app.seen(&app.admin_key, &device_b).await;
    let support_policy = app
        .call(
            "PUT",
            &format!("/v1/devices/{device_b}/policy"),
            &support,
            Some(json!({"policy": {"preset": "strict-dealer"}, "reason": "harsher"})),
        )
        .await;
    assert_eq!(support_policy.status, 403, "{}", support_policy.body);
    for key in [&app.admin_key, &support] {
        assert_eq!(app.seen(key, &device_a).await[0]["id"], device_a.as_str());
        let lock = app.lock(key, &device_b, "late").await;
        assert_eq!(lock.status, 403, "{}", lock.body);
        let pay = app
            .pay(key, &device_b, "MPESA-P1", 1000, "platform-pay-1")
            .await;
        assert_eq!(pay.status, 403, "{}", pay.body);
    }
    assert_eq!(app.seen(&app.admin_key, &device_b).await, before);

    app.running.stop().await;
}

on_both_backends!(financiers_see_only_their_own_devices);
