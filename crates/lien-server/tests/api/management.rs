//! Running the platform beyond the story: platform-wide API keys, changing a device's lock
//! policy, and the metrics a change moves. Once on SQLite and once on PostgreSQL.

use crate::common::{self, Backend, METRICS_TOKEN, Reply, TestApp, imei, postgres_url, spawn_app};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

/// Revokes `target` (a key) with `key`; returns the answer.
async fn revoke(app: &TestApp, key: &str, target: &str) -> Reply {
    let path = format!("/v1/api-keys/{}/revoke", key_id(target));
    app.call("POST", &path, key, None).await
}

/// Moves to 8 February, in the morning, and lets the scheduler decide: on the Kenya preset the
/// unpaid phones, never seen, are now locked. Their notice of day 1 (2 February) was served by
/// the fallback for phones never seen, three days later, and its three days to cure have run.
async fn overdue_and_locked(app: &TestApp, device_ids: &[&str]) {
    app.clock
        .set("2026-02-08T10:00:00+03:00".parse::<Timestamp>().unwrap());
    app.run_scheduler().await;
    for id in device_ids {
        assert_eq!(
            status(app, &app.admin_key, id).await["decision"]["state"],
            "locked"
        );
    }
}

async fn status(app: &TestApp, key: &str, device_id: &str) -> Value {
    let reply = app.get(&format!("/v1/devices/{device_id}"), key).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

async fn history(app: &TestApp, key: &str, device_id: &str) -> Value {
    let reply = app
        .get(&format!("/v1/devices/{device_id}/history"), key)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["chain_intact"], true, "{}", reply.body);
    reply.body
}

fn last_record(history: &Value) -> &Value {
    history["records"].as_array().unwrap().last().unwrap()
}

/// The public id the audit log records for `key`.
fn key_id(key: &str) -> String {
    lien_server::auth::key_id(&lien_server::auth::hash_key(key))
}

async fn platform_keys(app: TestApp) {
    let (fin_a, key_a) = app.financier("Duka Phones").await;
    let (_fin_b, key_b) = app.financier("Other Lender").await;
    let device_a = app
        .enroll_device(&key_a, "A-1", &imei("35693803564380"), "SNA1")
        .await;
    let device_b = app
        .enroll_device(&key_b, "B-1", &imei("35693803564381"), "SNB1")
        .await;
    overdue_and_locked(&app, &[&device_a, &device_b]).await;

    // The platform admin makes a support key: shown once, platform-wide.
    let created = app
        .post(
            "/v1/api-keys",
            &app.admin_key,
            json!({"role": "support", "label": "support desk"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["role"], "support");
    assert_eq!(created.body["financier_id"], Value::Null);
    let support = created.body["key"].as_str().unwrap().to_string();
    assert!(support.starts_with("lien_"), "{support}");
    assert_eq!(created.body["id"], key_id(&support).as_str());

    // It reads every financier's devices, and unlocks one provisionally, in its own name.
    for device in [&device_a, &device_b] {
        assert_eq!(status(&app, &support, device).await["id"], device.as_str());
    }
    let unlocked = app
        .post(
            &format!("/v1/devices/{device_b}/unlock"),
            &support,
            json!({"reason": "borrower called: salary on Friday", "provisional_hours": 48}),
        )
        .await;
    assert_eq!(unlocked.status, 200, "{}", unlocked.body);
    assert_eq!(
        unlocked.body["decision"]["reason"]["code"],
        "provisional_unlock"
    );
    assert_ne!(unlocked.body["decision"]["state"], "locked");
    let records = history(&app, &key_b, &device_b).await;
    let record = last_record(&records);
    assert_eq!(record["action"], "provisional_unlock");
    assert_eq!(record["actor"], key_id(&support).as_str());

    // A platform admin key made this way makes keys too.
    let second_admin = app.platform_key("platform-admin").await;
    let another = app
        .post(
            "/v1/api-keys",
            &second_admin,
            json!({"role": "support", "label": "night shift"}),
        )
        .await;
    assert_eq!(another.status, 201, "{}", another.body);

    // No one else makes platform keys, whatever role they ask for.
    let agent = app.financier_key(&fin_a, "financier-agent").await;
    for (who, key) in [
        ("financier-admin", &key_a),
        ("financier-agent", &agent),
        ("support", &support),
    ] {
        for role in ["support", "platform-admin"] {
            let refused = app
                .post(
                    "/v1/api-keys",
                    key,
                    json!({"role": role, "label": "a way in"}),
                )
                .await;
            refused.assert_forbidden(&format!("{who} asking for {role}"));
        }
    }

    // A financier's role belongs on the financier's route: 422, naming the field.
    for role in ["financier-admin", "financier-agent"] {
        let refused = app
            .post(
                "/v1/api-keys",
                &app.admin_key,
                json!({"role": role, "label": "back office"}),
            )
            .await;
        assert_eq!(refused.status, 422, "{role}: {}", refused.body);
        let message = refused.body["message"].as_str().unwrap();
        assert!(message.starts_with("role: "), "{message}");
        assert!(
            message.contains("/v1/financiers/{id}/api-keys"),
            "{message}"
        );
    }

    app.running.stop().await;
}

async fn put_policy(
    app: &TestApp,
    key: &str,
    device_id: &str,
    body: Value,
    idempotency_key: Option<&str>,
) -> common::Reply {
    let path = format!("/v1/devices/{device_id}/policy");
    match idempotency_key {
        Some(k) => {
            app.call_with("PUT", &path, key, Some(body), &[("Idempotency-Key", k)])
                .await
        }
        None => app.call("PUT", &path, key, Some(body)).await,
    }
}

async fn policy_change(app: TestApp) {
    let (fin, key) = app.financier("Duka Phones").await;
    let phone_imei = imei("35693803564380");
    let device = app.enroll_device(&key, "C-1", &phone_imei, "SN1").await;
    overdue_and_locked(&app, &[&device]).await;
    let locked = status(&app, &key, &device).await;
    let locked_sequence = locked["token_sequence"].as_i64().unwrap();

    // The draft Indian rules allow no restriction before 90 days: the phone is no longer
    // lockable, at once, with a new token for it.
    let gentler = json!({"policy": {"preset": "india-draft"}, "reason": "contract renegotiated"});
    let changed = put_policy(&app, &key, &device, gentler.clone(), Some("pol-1")).await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let state = changed.body["decision"]["state"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !["locked", "restricted"].contains(&state.as_str()),
        "{}",
        changed.body
    );
    assert_eq!(changed.body["decision"]["amount_due"]["minor"], 100000);
    assert_eq!(changed.body["token_sequence"], locked_sequence + 1);

    // The history says who changed what, and the policy before and after.
    let records = history(&app, &key, &device).await;
    let record = last_record(&records);
    assert_eq!(record["action"], "policy_changed");
    assert_eq!(record["actor"], key_id(&key).as_str());
    assert_eq!(record["reason"], "contract renegotiated");
    assert_eq!(record["before"]["policy"], json!({"preset": "kenya"}));
    assert_eq!(record["before"]["state"], "locked");
    assert_eq!(record["after"]["policy"], json!({"preset": "india-draft"}));
    assert_eq!(record["after"]["state"], state.as_str());
    let count = records["records"].as_array().unwrap().len();

    // A retry with the key gets the first answer and writes nothing; the key with another
    // request is refused.
    let retry = put_policy(&app, &key, &device, gentler, Some("pol-1")).await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.body, changed.body);
    let other = json!({"policy": {"preset": "kenya"}, "reason": "back to normal"});
    let reused = put_policy(&app, &key, &device, other, Some("pol-1")).await;
    assert_eq!(reused.status, 409, "{}", reused.body);
    assert_eq!(
        history(&app, &key, &device).await["records"]
            .as_array()
            .unwrap()
            .len(),
        count
    );

    // Agents and support may not change a policy.
    let agent = app.financier_key(&fin, "financier-agent").await;
    let support = app.support_key().await;
    let harsher = json!({"policy": {"custom": {
        "grace_days": 0, "min_days_past_due": 2, "min_arrears_percent": 1,
        "escalations": [{"at_days_past_due": 2, "restriction": "locked"}],
        "lease_days": 14, "lease_warning_days": 3
    }}, "reason": "repeated arrears"});
    for who in [&agent, &support] {
        let refused = put_policy(&app, who, &device, harsher.clone(), None).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
    }
    assert_eq!(
        status(&app, &key, &device).await["decision"]["state"],
        state
    );

    // The platform admin may: a custom policy that locks from day 2 makes the phone lockable
    // again, and the record names the admin.
    let relocked = put_policy(&app, &app.admin_key, &device, harsher, None).await;
    assert_eq!(relocked.status, 200, "{}", relocked.body);
    assert_eq!(relocked.body["decision"]["state"], "locked");
    assert_eq!(relocked.body["token_sequence"], locked_sequence + 2);
    let records = history(&app, &key, &device).await;
    let record = last_record(&records);
    assert_eq!(record["action"], "policy_changed");
    assert_eq!(record["actor"], key_id(&app.admin_key).as_str());
    assert_eq!(record["before"]["policy"], json!({"preset": "india-draft"}));
    assert_eq!(
        record["after"]["policy"]["custom"]["escalations"][0]["restriction"],
        "locked"
    );
    assert_eq!(record["after"]["state"], "locked");

    // Once released, the policy is as final as the rest.
    let release = app.release(&key, &device, "written off").await;
    assert_eq!(release.status, 200, "{}", release.body);
    app.clock.advance(SignedDuration::from_hours(73));
    app.run_scheduler().await;
    assert_eq!(
        status(&app, &key, &device).await["decision"]["state"],
        "released"
    );
    let refused = put_policy(
        &app,
        &key,
        &device,
        json!({"policy": {"preset": "kenya"}, "reason": "too late"}),
        None,
    )
    .await;
    refused.assert_refused(409, "released");

    app.running.stop().await;
}

/// A counter's value in the `/metrics` text.
async fn counter(app: &TestApp, name: &str) -> u64 {
    let text = app.get_text("/metrics", Some(METRICS_TOKEN)).await;
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

async fn tokens_signed(app: TestApp) {
    const SIGNED: &str = "lien_tokens_signed_total";
    let (_fin, key) = app.financier("Duka Phones").await;
    let phone_imei = imei("35693803564380");
    let start = counter(&app, SIGNED).await;
    let device = app.enroll_device(&key, "C-1", &phone_imei, "SN1").await;
    assert_eq!(counter(&app, SIGNED).await, start + 1, "enrollment signs");
    overdue_and_locked(&app, &[&device]).await;
    let locked = status(&app, &key, &device).await["token_sequence"]
        .as_i64()
        .unwrap();
    let before = counter(&app, SIGNED).await;

    // The payment cures the arrears: one new token, counted once.
    let paid = app.pay(&key, &device, "MPESA-1", 100000, "pay-1").await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["decision"]["state"], "active");
    assert_eq!(paid.body["token_sequence"], locked + 1);
    assert_eq!(counter(&app, SIGNED).await, before + 1);

    // A payment that changes nothing the phone shows signs nothing.
    let more = app.pay(&key, &device, "MPESA-2", 100, "pay-2").await;
    assert_eq!(more.status, 200, "{}", more.body);
    assert_eq!(more.body["token_sequence"], locked + 1);
    assert_eq!(counter(&app, SIGNED).await, before + 1);

    app.running.stop().await;
}

/// A second server on the same database: on PostgreSQL another server with its own pools, as a
/// deployment runs them; on SQLite, which one process serves, another server over the same
/// store. Either way it has no state of its own about keys.
async fn second_server(app: &TestApp) -> TestApp {
    if app.running.state.store.backend() == "postgres" {
        return app.spawn_peer().await;
    }
    app.spawn_on_same_store().await
}

/// The keys a list shows, by id.
async fn listed(app: &TestApp, key: &str, path: &str) -> std::collections::BTreeMap<String, Value> {
    let reply = app.call("GET", path, key, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["id"].as_str().unwrap().to_string(), k.clone()))
        .collect()
}

async fn api_key_lifecycle(app: TestApp) {
    let (fin_a, key_a) = app.financier("Duka Phones").await;
    let (fin_b, key_b) = app.financier("Other Lender").await;
    let keys_of_a = format!("/v1/financiers/{fin_a}/api-keys");

    // A key that expires in a day; expiries in the past or too far ahead are refused by name.
    let tomorrow = "2026-01-11T09:00:00Z";
    let created = app
        .post(
            &keys_of_a,
            &key_a,
            json!({"role": "financier-agent", "label": "temp", "expires_at": tomorrow}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["expires_at"], tomorrow);
    let temp = created.body["key"].as_str().unwrap().to_string();
    for bad in ["2026-01-10T08:59:59Z", "2031-01-11T09:00:00Z", "tomorrow"] {
        let agent_key = json!({"role": "financier-agent", "label": "x", "expires_at": bad});
        let refused = app.post(&keys_of_a, &key_a, agent_key).await;
        assert_eq!(refused.status, 422, "{bad}: {}", refused.body);
        assert!(
            refused.message().starts_with("expires_at: "),
            "{}",
            refused.body
        );
    }

    // Used now; listed with its last use, its expiry and no secret.
    assert_eq!(app.get("/v1/devices", &temp).await.status, 200);
    let list = app.get("/v1/api-keys", &key_a).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let text = list.body.to_string();
    assert!(
        !text.contains(&temp) && !text.contains(&key_a),
        "no secret is listed: {text}"
    );
    let keys = listed(&app, &key_a, &keys_of_a).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    let temp_view = &keys[&key_id(&temp)];
    assert_eq!(temp_view["role"], "financier-agent");
    assert_eq!(temp_view["label"], "temp");
    assert_eq!(temp_view["status"], "active");
    assert_eq!(temp_view["expires_at"], tomorrow);
    assert_eq!(temp_view["revoked_at"], Value::Null);
    assert_eq!(temp_view["last_used_at"], "2026-01-10T09:00:00Z");
    assert!(temp_view.get("key").is_none());

    // Last use is written at most once a minute.
    app.clock.advance(SignedDuration::from_secs(30));
    assert_eq!(app.get("/v1/devices", &temp).await.status, 200);
    let keys = listed(&app, &key_a, &keys_of_a).await;
    assert_eq!(keys[&key_id(&temp)]["last_used_at"], "2026-01-10T09:00:00Z");
    app.clock.advance(SignedDuration::from_secs(31));
    assert_eq!(app.get("/v1/devices", &temp).await.status, 200);
    let keys = listed(&app, &key_a, &keys_of_a).await;
    assert_eq!(keys[&key_id(&temp)]["last_used_at"], "2026-01-10T09:01:01Z");

    // A day later it has expired: refused, and listed as expired.
    app.clock.set(tomorrow.parse().unwrap());
    let expired = app.get("/v1/devices", &temp).await;
    expired.assert_refused(401, "expired at 2026-01-11T09:00:00Z");
    assert_eq!(
        listed(&app, &key_a, &keys_of_a).await[&key_id(&temp)]["status"],
        "expired"
    );

    // Revoked: refused at once here and on a second server over the same database.
    let agent = app.financier_key(&fin_a, "financier-agent").await;
    let peer = second_server(&app).await;
    assert_eq!(peer.get("/v1/devices", &agent).await.status, 200);
    let revoked = revoke(&app, &key_a, &agent).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.body["status"], "revoked");
    assert_eq!(revoked.body["revoked_at"], tomorrow);
    for server in [&app, &peer] {
        let refused = server.get("/v1/devices", &agent).await;
        refused.assert_refused(401, "revoked");
    }
    // Revoking it again changes nothing.
    let again = revoke(&app, &key_a, &agent).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["revoked_at"], tomorrow);
    peer.running.stop().await;

    // Another financier's keys and the platform's are not found for a financier; an agent
    // manages no keys.
    for id in [
        key_id(&key_b),
        key_id(&app.admin_key),
        "key_000000000000".to_string(),
    ] {
        let reply = app
            .call("POST", &format!("/v1/api-keys/{id}/revoke"), &key_a, None)
            .await;
        assert_eq!(reply.status, 404, "{id}: {}", reply.body);
    }
    let other = app
        .get(&format!("/v1/financiers/{fin_b}/api-keys"), &key_a)
        .await;
    assert_eq!(other.status, 404, "{}", other.body);
    let agent_b = app.financier_key(&fin_b, "financier-agent").await;
    assert_eq!(app.get("/v1/api-keys", &agent_b).await.status, 403);

    // The platform admin lists the platform's keys, and any financier's.
    let platform = listed(&app, &app.admin_key, "/v1/api-keys").await;
    assert_eq!(platform.len(), 1);
    assert_eq!(platform[&key_id(&app.admin_key)]["role"], "platform-admin");
    let of_b = listed(
        &app,
        &app.admin_key,
        &format!("/v1/api-keys?financier_id={fin_b}"),
    )
    .await;
    assert_eq!(of_b.len(), 2);
    assert!(of_b.contains_key(&key_id(&key_b)));

    // Nobody revokes the last active platform admin key; with a second one, the first can go.
    let revoke_admin = |key: String| format!("/v1/api-keys/{}/revoke", key_id(&key));
    let last = app
        .call(
            "POST",
            &revoke_admin(app.admin_key.clone()),
            &app.admin_key,
            None,
        )
        .await;
    last.assert_refused(409, "last active platform admin");
    let second_admin = app.platform_key("platform-admin").await;
    let first_gone = app
        .call(
            "POST",
            &revoke_admin(app.admin_key.clone()),
            &second_admin,
            None,
        )
        .await;
    assert_eq!(first_gone.status, 200, "{}", first_gone.body);
    assert_eq!(app.get("/v1/financiers", &app.admin_key).await.status, 401);
    let itself = app
        .call(
            "POST",
            &revoke_admin(second_admin.clone()),
            &second_admin,
            None,
        )
        .await;
    assert_eq!(itself.status, 409, "{}", itself.body);

    // Creations and revocations are in the audit log, in the platform's or the financier's chain.
    let store = &app.running.state.store;
    let platform_chain = store.audit_chain("platform").await.unwrap();
    let revocation = platform_chain
        .iter()
        .find(|r| r.entry.action == "api_key_revoked")
        .expect("the admin key's revocation is audited");
    assert_eq!(revocation.entry.actor, key_id(&second_admin));
    assert!(revocation.entry.reason.contains(&key_id(&app.admin_key)));
    let chain_a = store
        .audit_chain(&format!("financier:{fin_a}"))
        .await
        .unwrap();
    let actions: Vec<&str> = chain_a.iter().map(|r| r.entry.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "api_key_created",
            "api_key_created",
            "api_key_created",
            "api_key_revoked"
        ],
        "the admin's key, the temporary key, the agent's key, its revocation"
    );
    assert_eq!(lien_store::audit::verify_chain(&chain_a), Ok(()));

    app.running.stop().await;
}

fn start() -> Timestamp {
    "2026-01-10T09:00:00Z".parse().unwrap()
}

/// Runs `scenario` on PostgreSQL, or says it is skipped.
async fn on_postgres<F: std::future::Future<Output = ()>>(scenario: fn(TestApp) -> F) {
    if postgres_url().is_none() {
        eprintln!("skipped: LIEN_TEST_POSTGRES_URL is not set");
        return;
    }
    scenario(spawn_app(Backend::Postgres, start()).await).await;
}

#[tokio::test]
async fn platform_admins_make_platform_keys_on_sqlite() {
    platform_keys(spawn_app(Backend::Sqlite, start()).await).await;
}

#[tokio::test]
async fn platform_admins_make_platform_keys_on_postgres() {
    on_postgres(platform_keys).await;
}

#[tokio::test]
async fn a_policy_change_decides_again_and_is_audited_on_sqlite() {
    policy_change(spawn_app(Backend::Sqlite, start()).await).await;
}

#[tokio::test]
async fn a_policy_change_decides_again_and_is_audited_on_postgres() {
    on_postgres(policy_change).await;
}

#[tokio::test]
async fn tokens_signed_counts_api_changes_on_sqlite() {
    tokens_signed(spawn_app(Backend::Sqlite, start()).await).await;
}

#[tokio::test]
async fn tokens_signed_counts_api_changes_on_postgres() {
    on_postgres(tokens_signed).await;
}

#[tokio::test]
async fn api_keys_are_listed_expire_and_are_revoked_everywhere_on_sqlite() {
    api_key_lifecycle(spawn_app(Backend::Sqlite, start()).await).await;
}

#[tokio::test]
async fn api_keys_are_listed_expire_and_are_revoked_everywhere_on_postgres() {
    on_postgres(api_key_lifecycle).await;
}
