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

    // The borrower reads why in Swahili, chosen with the page's language switch: the amount
    // as the lock screen writes it, the time in Nairobi.
    browser.go(&format!("{}/why", app.base)).await;
    browser.click("#languages a[hreflang='sw']").await;
    assert_eq!(browser.attribute("html", "lang").await, "sw");
    browser.type_into("#q", &status_code).await;
    browser.click("form button").await;
    assert_eq!(
        browser.text("#state").await,
        "Imefungwa. Simu za dharura bado zinapigika."
    );
    assert_eq!(browser.text("#amount").await, "KES 1,000.00");
    assert_eq!(
        browser.text("#as_of").await,
        "Hali ilivyo tarehe 5 Februari 2026, saa 10:00 EAT."
    );
    // Back to English for the rest of the story.
    browser.go(&format!("{}/?lang=en", app.base)).await;

    // The borrower opens an appeal with a receipt, giving the IMEI and status code.
    let dir = tempfile::tempdir().unwrap();
    let receipt = dir.path().join("receipt.png");
    std::fs::write(&receipt, receipt_png(4096)).unwrap();
    browser.go(&format!("{}/appeal", app.base)).await;
    browser.type_into("#imei", &phone_imei).await;
    browser.type_into("#status_code", &status_code).await;
    browser.type_into("#contact", "+254 711 000 111").await;
    browser.type_into("#payment_reference", "MPESA-QX12").await;
    // A date input: set as the browser's date picker would (typing follows the locale's order).
    assert_eq!(browser.attribute("#paid_on", "type").await, "date");
    browser
        .script("document.getElementById('paid_on').value = '2026-01-09'; return true;")
        .await;
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

    /// The page's HTML as the browser holds it (to check that something is absent, which
    /// `find` would wait for until its timeout).
    async fn source(&self) -> String {
        let source = self.call("GET", "/source", Value::Null).await;
        source.as_str().unwrap_or_default().to_string()
    }

    /// Runs `script` in the page and returns what it returns.
    async fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Opens an invitation link and accepts it with this name and password.
    async fn accept_invitation(&self, link: &str, name: &str, password: &str) {
        self.go(link).await;
        self.type_into("#name", name).await;
        self.type_into("#password", password).await;
        self.type_into("#password_again", password).await;
        self.submit("form button").await;
    }
}

/// An invitation made with the platform's first API key, as the README's first sign-in does;
/// the link to open.
async fn invite_by_api(app: &common::TestApp, email: &str, role: &str) -> String {
    let invited = app
        .call(
            "POST",
            "/v1/invitations",
            &app.admin_key,
            Some(json!({"email": email, "role": role})),
        )
        .await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    format!(
        "{}{}",
        app.base,
        invited.body["invitation_path"].as_str().unwrap()
    )
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
    let link = invite_by_api(&app, "admin@lien.example", "platform-admin").await;
    browser.go(&link).await;
    browser.screenshot("invitation").await;
    browser
        .accept_invitation(&link, "Amina Admin", "a long enough passphrase")
        .await;
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

    // Wanjiru accepts and enrolls her shop's 50 phones from a file.
    browser
        .accept_invitation(&wanjiru_link, "Wanjiru", "another long passphrase")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("devices.csv");
    std::fs::write(&csv, fifty_devices()).unwrap();
    browser
        .go(&format!("{}/console/devices/upload", app.base))
        .await;
    browser.type_into("#file", csv.to_str().unwrap()).await;
    // The results come back at the same address (the form's); `text` waits for them.
    browser.click("#upload-form button").await;
    assert_eq!(browser.text("#outcome").await, "50 enrolled, 0 refused.");
    browser.screenshot("upload").await;

    // She finds the locked phone and sees why.
    browser.go(&format!("{}/console/devices", app.base)).await;
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
    let told = browser.text("#payments .acknowledged").await;
    assert!(
        told.starts_with("2026-02-05 07:00 UTC (") && told.ends_with(" after it was recorded)"),
        "when the phone said it holds the unlocking token: {told}"
    );
    browser.screenshot("device-paid").await;

    // Her agent, invited from People, takes payments but sees no policy form.
    browser.go(&format!("{}/console/people", app.base)).await;
    browser.type_into("#email", "otieno@duka.example").await;
    browser.select("#role", "financier-agent").await;
    browser.click("form.stack button").await;
    let otieno_link = browser.text("#invitation-link").await;
    browser.submit("nav button").await;
    browser
        .accept_invitation(&otieno_link, "Otieno", "an agent's long passphrase")
        .await;
    browser
        .go(&format!("{}/console/devices/{device_id}", app.base))
        .await;
    assert_eq!(browser.text("#state").await, "active");
    let source = browser.source().await;
    assert!(source.contains("id=\"payment-form\""), "{source}");
    assert!(
        !source.contains("id=\"policy-form\"") && !source.contains("id=\"lock-form\""),
        "an agent sees no policy or lock form"
    );

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

/// A CSV of 50 phones for the console's upload, the first installment due in March.
fn fifty_devices() -> String {
    let mut csv =
        String::from("contract_ref,imei1,serial,model,currency,time_zone,installments,policy\n");
    for i in 0..50 {
        csv.push_str(&format!(
            "S-{i:03},{},SX{i},Phone X,KES,Africa/Nairobi,2026-03-01:100000;2026-04-01:100000,kenya\n",
            common::imei(&format!("3569380412{i:04}"))
        ));
    }
    csv
}

#[tokio::test]
async fn support_finds_a_phone_by_its_status_code_and_accepts_its_appeal() {
    let Some(browser) = Driver::start().await else {
        return;
    };
    let mut w = common::World::new(Backend::Sqlite).await;
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    let lien_agent::Screen::Locked(lock) = w.phone.screen() else {
        panic!("not locked: {}", w.phone.render());
    };
    let status_code = lock.details.status_code.clone();

    // The borrower says they paid, with a photo of the receipt, from the public form.
    let receipt = include_bytes!("fixtures/receipt.png");
    let opened = w
        .appeal_paid_with_receipt(&status_code, "1000.00", "KES", receipt)
        .await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let reference = opened.body["reference"].as_str().unwrap().to_string();

    // Support, invited by the platform, looks up the code the borrower reads out.
    let link = invite_by_api(&w.app, "sam@lien.example", "support").await;
    browser
        .accept_invitation(&link, "Sam Support", "support's long passphrase")
        .await;
    browser.type_into("#q", &status_code).await;
    browser.submit("#search button").await;
    browser.submit("#devices a").await;
    assert_eq!(browser.text("#appeals a").await, reference);
    browser.submit("#appeals a").await;
    // The receipt is shown in the page, and is a picture the browser could draw.
    let width = browser
        .script(
            "const img = document.getElementById('document'); \
             return img.complete ? img.naturalWidth : 0;",
        )
        .await;
    assert_eq!(width, 240, "the receipt, 240 pixels wide, is drawn");
    browser.screenshot("appeal").await;
    browser
        .type_into("#reason", "The till statement shows MPESA-QX12")
        .await;
    browser.submit("#accept").await;
    assert!(browser.text("#done").await.contains("Answer recorded"));
    let status = browser.text("#status").await;
    assert!(status.starts_with("accepted"), "{status}");
    browser.screenshot("appeal-accepted").await;
    // The payment the borrower proved is recorded, in support's name.
    let payments = w.app.stored_payments(&w.device_id).await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0].reference, "MPESA-QX12");
    let history = w.on_device("GET", "/history", None).await;
    let records = history.body["records"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        records
            .iter()
            .any(|r| r["actor"].as_str().is_some_and(|a| a.starts_with("per_"))),
        "the answer is audited with the person: {}",
        history.body
    );

    let _ = browser.call("DELETE", "", Value::Null).await;
}
