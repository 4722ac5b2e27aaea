//! The per-client limits as clients see them, over HTTP: behind a trusted reverse proxy the
//! client is the address it forwards, an IPv6 client is its /64, a header from an untrusted
//! peer is ignored, and the financier's status-code look-ups are limited per API key.

use crate::common::{Backend, Reply, TestApp, imei, spawn_app_with};
use jiff::{SignedDuration, Timestamp};
use lien_server::config::Settings;

fn start() -> Timestamp {
    "2026-01-10T09:00:00Z".parse().unwrap()
}

/// Three requests at once, then one every 10 seconds, from behind a proxy on 127.0.0.1 (where
/// the tests connect from) when `behind_proxy`.
fn tight_limits(behind_proxy: bool) -> impl FnOnce(&mut Settings) {
    move |settings| {
        settings.public_rate_per_minute = 6;
        settings.public_rate_burst = 3;
        settings.hello_rate_per_minute = 6;
        settings.hello_rate_burst = 2;
        if behind_proxy {
            settings.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        }
    }
}

/// A request without a key, from the client a proxy names in `X-Forwarded-For`.
async fn sent_from(app: &TestApp, method: &str, path: &str, forwarded_for: &str) -> Reply {
    let header = ("X-Forwarded-For".to_string(), forwarded_for.to_string());
    app.send(method, path, &[header], None).await
}

/// An IMEI check with this `X-Forwarded-For`.
async fn check_from(app: &TestApp, forwarded_for: &str) -> Reply {
    let path = format!("/v1/public/imei/{}", imei("35693803564380"));
    sent_from(app, "GET", &path, forwarded_for).await
}

/// A hello challenge with this `X-Forwarded-For`.
async fn challenge_from(app: &TestApp, forwarded_for: &str) -> Reply {
    sent_from(app, "POST", "/v1/device/hello/challenge", forwarded_for).await
}

fn assert_limited(reply: &Reply, retry_after_secs: u64) {
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert_eq!(reply.body["error"], "rate_limited");
    let message = reply.body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("try again in {retry_after_secs} seconds")),
        "{message}"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_an_ipv6_slash_64_is_one_client() {
    let app = spawn_app_with(Backend::Sqlite, start(), tight_limits(true)).await;

    // Hosts of one /64, each behind an address the client made up: one allowance.
    for host in 1..=3 {
        let reply = check_from(&app, &format!("198.51.100.{host}, 2001:db8:1:2::{host}")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_limited(&check_from(&app, "2001:db8:1:2:ffff::9").await, 10);
    assert_limited(&check_from(&app, "203.0.113.50, 2001:db8:1:2::4").await, 10);
    // The borrower pages count against the same allowance.
    let page_path = format!("/check?imei={}", imei("35693803564380"));
    let page = sent_from(&app, "GET", &page_path, "2001:db8:1:2::5").await;
    assert_eq!(page.status, 429);

    // Another /64, and an IPv4 client, each have their own.
    assert_eq!(check_from(&app, "2001:db8:1:3::1").await.status, 200);
    assert_eq!(check_from(&app, "192.0.2.10").await.status, 200);

    // Ten seconds later the /64 has one request again.
    app.clock.advance(SignedDuration::from_secs(10));
    assert_eq!(check_from(&app, "2001:db8:1:2::6").await.status, 200);
    assert_limited(&check_from(&app, "2001:db8:1:2::7").await, 10);

    // Hello challenges are limited the same way, on their own allowance.
    for _ in 0..2 {
        let reply = challenge_from(&app, "2001:db8:1:2::8").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let reply = challenge_from(&app, "2001:db8:1:2::9").await;
    assert_limited(&reply, 10);
    app.running.stop().await;
}

#[tokio::test]
async fn without_trusted_proxies_a_forwarded_address_is_ignored() {
    let app = spawn_app_with(Backend::Sqlite, start(), tight_limits(false)).await;
    // Each request claims another client; all come from 127.0.0.1, which is the client.
    for n in 1..=3 {
        assert_eq!(
            check_from(&app, &format!("2001:db8:{n}::1")).await.status,
            200
        );
    }
    assert_limited(&check_from(&app, "2001:db8:4::1").await, 10);
    assert_limited(&check_from(&app, "192.0.2.1").await, 10);
    app.running.stop().await;
}

#[tokio::test]
async fn status_code_look_ups_are_limited_per_api_key() {
    let app = spawn_app_with(Backend::Sqlite, start(), |_| {}).await;
    let (_financier, key) = app.financier("Duka Phones").await;
    // 20 at once (nothing has this code), then one every 2 seconds.
    for _ in 0..20 {
        let reply = app.get("/v1/status-codes/12345678", &key).await;
        assert_eq!(reply.status, 404, "{}", reply.body);
    }
    let limited = app.get("/v1/status-codes/12345678", &key).await;
    limited.assert_refused(429, "status-code look-ups with this API key");
    // Another key has its own allowance.
    let other = app.get("/v1/status-codes/12345678", &app.admin_key).await;
    assert_eq!(other.status, 404, "{}", other.body);
    app.clock.advance(SignedDuration::from_secs(2));
    let again = app.get("/v1/status-codes/12345678", &key).await;
    assert_eq!(again.status, 404, "{}", again.body);
    app.running.stop().await;
}
