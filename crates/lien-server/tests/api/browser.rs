//! The borrower pages in a real headless browser: Chromium driven through chromedriver over
//! the W3C WebDriver protocol (plain JSON over HTTP, spoken here with reqwest).
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`.ci/run` installs them). Without
//! them the test is skipped with a notice, except in CI (`CI` set), where it fails.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{self, Backend, receipt_png, spawn_app};
use jiff::Timestamp;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver, stopped when the test ends however it ends.
struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Option<Driver> {
        if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "{CHROMIUM} or {CHROMEDRIVER} is missing in CI: install chromium and chromium-driver"
            );
            eprintln!(
                "skipped: the browser test needs {CHROMIUM} and {CHROMEDRIVER} \
                 (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: {
                // This test's client may be the process's first (see `lien_server::tls`).
                lien_server::tls::install_crypto_provider();
                reqwest::Client::new()
            },
        };
        let mut ready = false;
        // Generous: on a loaded two-core CI machine chromedriver can take seconds to start.
        for _ in 0..300 {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                && r.status().is_success()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not answer");
        let session = driver
            .call(
                "POST",
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--window-size=360,740"]
                    }
                }}}),
            )
            .await;
        driver.session = session["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_string();
        // Wait up to 10 s for an element after a navigation instead of failing at once, so a
        // slow page load on a busy machine is not a failure.
        driver
            .call(
                "POST",
                "/timeouts",
                json!({"implicit": 10_000, "pageLoad": 60_000}),
            )
            .await;
        Some(driver)
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let mut request = self.http.request(method.parse().unwrap(), url);
        if method == "POST" {
            request = request.json(&body);
        }
        let response = request.send().await.expect("chromedriver answers");
        let status = response.status();
        let value: Value = response.json().await.expect("WebDriver JSON");
        assert!(status.is_success(), "{method} {path}: {value}");
        value["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url})).await;
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found[ELEMENT].as_str().expect("an element").to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call("GET", &format!("/element/{id}/text"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn attribute(&self, css: &str, name: &str) -> String {
        let id = self.find(css).await;
        self.call(
            "GET",
            &format!("/element/{id}/attribute/{name}"),
            Value::Null,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }
}

#[tokio::test]
async fn a_borrower_checks_an_imei_appeals_with_a_receipt_and_sees_the_answer() {
    let Some(browser) = Driver::start().await else {
        return;
    };
    let start: Timestamp = "2026-01-10T09:00:00Z".parse().unwrap();
    let app = spawn_app(Backend::Sqlite, start).await;
    let (_, key) = app.financier("Duka Phones").await;
    let common::FinancedPhone {
        imei: phone_imei,
        mut phone,
        ..
    } = app.financed_phone(&key, &app.base).await;

    // A buyer checks the IMEI.
    browser.go(&format!("{}/check", app.base)).await;
    browser.type_into("#imei", &phone_imei).await;
    browser.click("form button").await;
    assert_eq!(
        browser.attribute("#status", "data-status").await,
        "financed_good_standing"
    );
    assert!(browser.text("#result").await.contains("Duka Phones"));

    // The installment is missed and the phone locks; its lock screen shows the status code.
    app.advance_to_with(&mut phone, "2026-02-05T10:00:00+03:00")
        .await;
    let lien_agent::Screen::Locked(lock) = phone.screen() else {
        panic!("not locked: {}", phone.render());
    };
    let status_code = lock.details.status_code.clone();

    // The borrower opens an appeal with a receipt, giving the IMEI and status code.
    let dir = tempfile::tempdir().unwrap();
    let receipt = dir.path().join("receipt.png");
    std::fs::write(&receipt, receipt_png(4096)).unwrap();
    browser.go(&format!("{}/appeal", app.base)).await;
    browser.type_into("#imei", &phone_imei).await;
    browser.type_into("#status_code", &status_code).await;
    browser.type_into("#contact", "+254 711 000 111").await;
    browser.type_into("#payment_reference", "MPESA-QX12").await;
    browser.type_into("#paid_on", "2026-01-09").await;
    browser.type_into("#amount", "1000.00").await;
    browser.type_into("#currency", "KES").await;
    browser
        .type_into("#receipt", receipt.to_str().unwrap())
        .await;
    browser.click("#submit").await;
    let reference = browser.text("#reference").await;
    assert!(reference.starts_with("AP-"), "{reference}");

    // The financier answers through the API; the borrower sees the answer and its reason.
    let listed = app.call("GET", "/v1/appeals", &key, None).await;
    assert_eq!(listed.body[0]["reference"], reference.as_str());
    assert_eq!(listed.body[0]["attachment"]["media_type"], "image/png");
    let answered = app
        .answer_appeal(
            &key,
            &reference,
            json!({"decision": "reject", "reason": "No such payment <reached> our till"}),
        )
        .await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    browser.click("#follow").await;
    assert_eq!(
        browser.attribute("#status", "data-status").await,
        "rejected"
    );
    // Shown as text, escaped, not as markup.
    assert_eq!(
        browser.text("#reason").await,
        "No such payment <reached> our till"
    );

    let _ = browser.call("DELETE", "", Value::Null).await;
}

impl Driver {
    /// Saves a screenshot of the page as `name`.png where the test run keeps its files
    /// (`target/tmp/console-screens`), for people to look at.
    async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let png = self.call("GET", "/screenshot", Value::Null).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a screenshot"))
            .expect("base64 PNG");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screens");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    /// Clicks a button that sends a form, and waits until the browser is on the page it
    /// leads to (a later `find` would otherwise find elements of the page it leaves).
    async fn submit(&self, css: &str) {
        let before = self.call("GET", "/url", Value::Null).await;
        self.click(css).await;
        for _ in 0..200 {
            if self.call("GET", "/url", Value::Null).await != before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sending the form with {css} led nowhere from {before}");
    }

    async fn select(&self, css: &str, value: &str) {
        self.click(&format!("{css} option[value='{value}']")).await;
    }
}

#[tokio::test]
async fn a_financier_admin_invited_in_the_console_takes_a_payment_that_unlocks_the_phone() {
    let Some(browser) = Driver::start().await else {
        return;
    };
    let start: Timestamp = "2026-01-10T09:00:00Z".parse().unwrap();
    let app = spawn_app(Backend::Sqlite, start).await;
    let (financier_id, key) = app.financier("Duka Phones").await;
    let common::FinancedPhone {
        device_id,
        mut phone,
        ..
    } = app.financed_phone(&key, &app.base).await;
    app.advance_to_with(&mut phone, "2026-02-05T10:00:00+03:00")
        .await;
    assert!(common::locked(&phone), "{}", phone.render());

    // The platform admin's first account, from the first API key.
    let invited = app
        .call(
            "POST",
            "/v1/invitations",
            &app.admin_key,
            Some(json!({"email": "admin@lien.example", "role": "platform-admin"})),
        )
        .await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    let link = format!(
        "{}{}",
        app.base,
        invited.body["invitation_path"].as_str().unwrap()
    );
    browser.go(&link).await;
    browser.screenshot("invitation").await;
    browser.type_into("#name", "Amina Admin").await;
    browser
        .type_into("#password", "a long enough passphrase")
        .await;
    browser
        .type_into("#password_again", "a long enough passphrase")
        .await;
    browser.submit("form button").await;
    assert!(browser.text("h1").await.contains("Devices"));

    // The admin invites Duka's admin.
    browser.go(&format!("{}/console/people", app.base)).await;
    browser.type_into("#email", "wanjiru@duka.example").await;
    browser.select("#role", "financier-admin").await;
    browser.select("#financier", &financier_id).await;
    browser.click("form.stack button").await;
    let wanjiru_link = browser.text("#invitation-link").await;
    assert!(
        wanjiru_link.contains("/console/invitations/inv_"),
        "{wanjiru_link}"
    );
    browser.screenshot("people").await;
    browser.submit("nav button").await;
    assert!(browser.text("h1").await.contains("Sign in"));

    // Wanjiru accepts, finds the locked phone and sees why.
    browser.go(&wanjiru_link).await;
    browser.type_into("#name", "Wanjiru").await;
    browser
        .type_into("#password", "another long passphrase")
        .await;
    browser
        .type_into("#password_again", "another long passphrase")
        .await;
    browser.submit("form button").await;
    browser.screenshot("devices").await;
    browser.type_into("#q", "C-1001").await;
    browser.submit("#search button").await;
    browser.submit("#devices a").await;
    assert_eq!(browser.text("#state").await, "locked");
    let why = browser.text("#reason").await;
    assert!(why.contains("overdue installment"), "{why}");
    browser.screenshot("device-locked").await;

    // A payment: the phone is told at once, and its next check-in shows it holds the token.
    browser.type_into("#amount", "1,000.00").await;
    browser.type_into("#reference", "CASH-0042").await;
    browser.submit("#payment-form button").await;
    assert!(browser.text("#done").await.contains("Payment recorded"));
    assert_eq!(browser.text("#state").await, "active");
    // (This phone has no push channel: it learns at its check-in, and says it holds the new
    // token at the one after.)
    phone.check_again().await;
    assert!(!common::locked(&phone), "{}", phone.render());
    phone.check_again().await;
    app.running.state.flush_last_seen().await;
    browser
        .go(&format!("{}/console/devices/{device_id}", app.base))
        .await;
    assert!(
        browser.text("#phone").await.contains("(up to date)"),
        "{}",
        browser.text("#phone").await
    );
    browser.screenshot("device-paid").await;

    // Another financier's device is not found.
    browser
        .go(&format!(
            "{}/console/devices/dev_0000000000000000",
            app.base
        ))
        .await;
    assert!(browser.text("h1").await.contains("Not found"));

    let _ = browser.call("DELETE", "", Value::Null).await;
}
