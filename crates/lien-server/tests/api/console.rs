//! The console over HTTP, as a browser without JavaScript uses it: cookies, forms and their
//! tokens, redirects. (The browser test walks the same pages in Chromium.)

use std::collections::HashMap;

use jiff::SignedDuration;
use serde_json::json;

use crate::common::{
    Backend, LockedOnPush, Part, TestApp, World, imei, locked, multipart_body, postgres_url,
    receipt_png, spawn_app, spawn_app_with,
};

const START: &str = "2026-01-10T09:00:00Z";
const PASSWORD: &str = "a long enough passphrase";

/// A browser: its cookies, no redirects followed (the tests look at each one).
struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
    /// Sent as `X-Forwarded-For` (for a server that trusts this machine as its proxy).
    from: Option<String>,
}

/// A page as the browser got it.
struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Page {
    /// The value of the form field `name` on the page (the first one).
    fn field(&self, name: &str) -> String {
        let at = self
            .body
            .find(&format!("name=\"{name}\" value=\""))
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body));
        let rest = &self.body[at + name.len() + 15..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    fn shows(&self, text: &str) -> bool {
        self.body.contains(text)
    }

    /// Fails, showing the page, unless it shows `text`.
    #[track_caller]
    fn assert_shows(&self, text: &str) {
        assert!(self.shows(text), "no {text:?} in: {}", self.body);
    }
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser {
            base: app.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            from: None,
        }
    }

    /// A browser at client address `ip`, behind the test's trusted proxy.
    fn at(app: &TestApp, ip: &str) -> Browser {
        Browser {
            from: Some(ip.to_string()),
            ..Browser::new(app)
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut request = request.header("cookie", cookie.join("; "));
        if let Some(ip) = &self.from {
            request = request.header("x-forwarded-for", ip);
        }
        let response = request.send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            assert!(set.contains("HttpOnly"), "{set}");
            assert!(set.contains("SameSite=Strict"), "{set}");
            // Secure whatever the Host header says, and for this host only.
            let attributes: Vec<&str> = set.split("; ").collect();
            assert!(set.starts_with("__Host-"), "{set}");
            assert!(
                attributes.contains(&"Secure") && attributes.contains(&"Path=/"),
                "{set}"
            );
            let (name, rest) = set.split_once('=').unwrap();
            let value = rest.split(';').next().unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        Page {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string()),
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    /// Accepts the invitation at `path` with `name` and the test password.
    async fn accept(&mut self, path: &str, name: &str) -> Page {
        let form = self.get(path).await;
        assert_eq!(form.status, 200, "{}", form.body);
        let token = form.field("form_token");
        self.post(
            path,
            &[
                ("form_token", &token),
                ("name", name),
                ("password", PASSWORD),
                ("password_again", PASSWORD),
            ],
        )
        .await
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        let token = form.field("form_token");
        self.post(
            "/console/sign-in",
            &[
                ("form_token", &token),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }

    /// The session's CSRF token, from a page that has a form.
    async fn csrf(&mut self) -> String {
        self.get("/console/devices").await.field("csrf")
    }
}

/// Invites `email` as `role` with the platform admin's API key; returns the link's path.
async fn invite_by_api(app: &TestApp, email: &str, role: &str) -> String {
    let invited = app
        .call(
            "POST",
            "/v1/invitations",
            &app.admin_key,
            Some(json!({ "email": email, "role": role })),
        )
        .await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    invited.body["invitation_path"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A platform admin signed in through an invitation made with the first API key.
async fn platform_admin(app: &TestApp) -> Browser {
    let path = invite_by_api(app, "Admin@Lien.example", "platform-admin").await;
    let mut browser = Browser::new(app);
    let accepted = browser.accept(&path, "Amina Admin").await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    assert_eq!(accepted.location.as_deref(), Some("/console/devices"));
    browser
}

async fn invitations_lead_to_a_financier_admin_who_sees_only_their_devices(backend: Backend) {
    let app = spawn_app(backend, START.parse().unwrap()).await;
    let (duka, duka_key) = app.financier("Duka Phones").await;
    let (_, other_key) = app.financier("Other Phones").await;
    let own = app
        .enroll_device(&duka_key, "C-1", &imei("35693803564380"), "SN1")
        .await;
    let theirs = app
        .enroll_device(&other_key, "O-1", &imei("35693803564390"), "SN2")
        .await;

    let mut admin = platform_admin(&app).await;
    let devices = admin.get("/console/devices").await;
    assert_eq!(devices.status, 200);
    devices.assert_shows("Amina Admin");
    assert!(
        devices.shows("C-1") && devices.shows("O-1"),
        "the platform sees every financier's"
    );

    let overview = admin.get("/console/overview").await;
    assert!(
        overview.shows("id=\"count-all\"><strong>2<"),
        "the platform's overview counts every financier's: {}",
        overview.body
    );
    overview.assert_shows("2 devices</a> have not checked in");

    // The admin invites Duka's admin from the people page; the link is shown once.
    let csrf = admin.csrf().await;
    let invited = admin
        .post(
            "/console/people",
            &[
                ("csrf", &csrf),
                ("email", "wanjiru@duka.example"),
                ("role", "financier-admin"),
                ("financier", &duka),
            ],
        )
        .await;
    assert_eq!(invited.status, 200, "{}", invited.body);
    let link = invited.body[invited.body.find("/console/invitations/").unwrap()..]
        .split('<')
        .next()
        .unwrap()
        .to_string();
    assert!(invited.shows("wanjiru@duka.example"));

    let mut wanjiru = Browser::new(&app);
    let accepted = wanjiru.accept(&link, "Wanjiru").await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    let list = wanjiru.get("/console/devices").await;
    list.assert_shows("C-1");
    assert!(
        !list.shows("O-1"),
        "another financier's device is not listed"
    );
    let mine = wanjiru.get(&format!("/console/devices/{own}")).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    mine.assert_shows("The audit chain is intact");
    assert!(
        mine.shows("device_enrolled") || mine.shows("enrolled"),
        "{}",
        mine.body
    );
    let activity = wanjiru
        .get("/console/reports/activity.csv?from=2026-01-10&to=2026-01-10")
        .await;
    assert!(activity.body.contains(&own), "{}", activity.body);
    assert!(
        !activity.body.contains(&theirs),
        "another financier's activity is not in the report: {}",
        activity.body
    );
    let own_overview = wanjiru.get("/console/overview").await;
    own_overview.assert_shows("id=\"count-all\"><strong>1<");
    let other = wanjiru.get(&format!("/console/devices/{theirs}")).await;
    assert_eq!(other.status, 404, "another financier's device is not found");
    assert!(!other.shows("O-1"));
    // Found by IMEI and by contract reference, but not another's.
    let by_imei = wanjiru
        .get(&format!("/console/devices?q={}", imei("35693803564380")))
        .await;
    by_imei.assert_shows(&own);
    let by_ref = wanjiru.get("/console/devices?q=O-1").await;
    by_ref.assert_shows("No devices match");

    // The link worked once.
    let again = Browser::new(&app).get(&link).await;
    assert_eq!(again.status, 404);
    // The invitation and its acceptance are in Duka's audit chain, by the people who did them.
    let chain = app.audit_chain(&format!("financier:{duka}")).await;
    let acts: Vec<(&str, bool)> = chain
        .iter()
        .filter(|r| r.entry.action != "api_key_created")
        .map(|r| (r.entry.action.as_str(), r.entry.actor.starts_with("per_")))
        .collect();
    assert_eq!(
        acts,
        [("person_invited", true), ("invitation_accepted", true)]
    );
}

async fn forms_without_their_token_or_session_change_nothing(backend: Backend) {
    let app = spawn_app(backend, START.parse().unwrap()).await;
    let mut admin = platform_admin(&app).await;
    // Without the CSRF token: refused, nobody invited.
    let forged = admin
        .post(
            "/console/people",
            &[
                ("email", "mallory@evil.example"),
                ("role", "platform-admin"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let people = admin.get("/console/people").await;
    assert!(!people.shows("mallory@evil.example"));
    // A bad address: the field is named, what was typed is kept, nobody invited.
    let csrf = admin.csrf().await;
    let bad = admin
        .post(
            "/console/people",
            &[
                ("csrf", &csrf),
                ("email", "not-an-address"),
                ("role", "support"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    bad.assert_shows("email: is not an e-mail address");
    bad.assert_shows("value=\"not-an-address\"");

    // Signed out, the old cookie acts no more, even with the right token.
    let session = admin.cookies.get("__Host-lien_session").cloned().unwrap();
    let out = admin.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.location.as_deref(), Some("/console/sign-in"));
    admin.cookies.insert("__Host-lien_session".into(), session);
    let replayed = admin
        .post(
            "/console/people",
            &[
                ("csrf", &csrf),
                ("email", "late@lien.example"),
                ("role", "support"),
            ],
        )
        .await;
    assert_eq!(replayed.status, 303);
    assert_eq!(replayed.location.as_deref(), Some("/console/sign-in"));

    // The sign-in form without its cookie's token is refused; a wrong password keeps the
    // address; the right one signs in.
    let mut browser = Browser::new(&app);
    let no_token = browser
        .post(
            "/console/sign-in",
            &[("email", "admin@lien.example"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(no_token.status, 403, "{}", no_token.body);
    let wrong = browser
        .sign_in("admin@lien.example", "not the password")
        .await;
    assert_eq!(wrong.status, 401);
    wrong.assert_shows("value=\"admin@lien.example\"");
    assert!(wrong.shows("the e-mail address or the password is wrong"));
    let unknown = browser.sign_in("nobody@lien.example", PASSWORD).await;
    assert_eq!(
        unknown.status, 401,
        "the same answer for an unknown address"
    );
    let right = browser.sign_in("ADMIN@lien.example ", PASSWORD).await;
    assert_eq!(right.status, 303, "{}", right.body);
    assert_eq!(
        browser.get("/console/people").await.status,
        200,
        "signed in again"
    );
    // Thirty idle minutes end the session.
    app.clock.advance(SignedDuration::from_mins(31));
    let idle = browser.get("/console/people").await;
    assert_eq!(idle.location.as_deref(), Some("/console/sign-in"));
}

async fn an_invitation_with_a_bad_password_still_works_and_sign_ins_are_limited(backend: Backend) {
    let app = spawn_app(backend, START.parse().unwrap()).await;
    let path = invite_by_api(&app, "support@lien.example", "support").await;
    let mut browser = Browser::new(&app);
    let form = browser.get(&path).await;
    let token = form.field("form_token");
    let short = browser
        .post(
            &path,
            &[
                ("form_token", &token),
                ("name", "Sam Support"),
                ("password", "short"),
                ("password_again", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, 422, "{}", short.body);
    assert!(short.shows("password: must be 12 to 128 characters"));
    assert!(
        short.shows("value=\"Sam Support\""),
        "what was typed is kept"
    );
    // Nothing was written: the link still works.
    let accepted = browser.accept(&path, "Sam Support").await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    // Support reads every device but may not see or invite people.
    let people = browser.get("/console/people").await;
    assert_eq!(people.status, 403, "{}", people.body);

    // Five wrong passwords for one address, then even the right one waits.
    let mut guesser = Browser::new(&app);
    for _ in 0..5 {
        let wrong = guesser
            .sign_in("support@lien.example", "guess guess guess")
            .await;
        assert_eq!(wrong.status, 401);
    }
    let limited = guesser.sign_in("support@lien.example", PASSWORD).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.shows("too many sign-in attempts"));
}

/// The financier's admin, `boss@duka.example`, invited and signed in to the console.
async fn duka_boss(app: &TestApp, financier_id: &str) -> Browser {
    financier_person(app, financier_id, "boss@duka.example", "financier-admin").await
}

/// The financier's agent, `agent@duka.example`, invited and signed in to the console.
async fn duka_agent(app: &TestApp, financier_id: &str) -> Browser {
    financier_person(app, financier_id, "agent@duka.example", "financier-agent").await
}

/// A person of the financier with `role`, invited by the platform admin and signed in.
async fn financier_person(app: &TestApp, financier_id: &str, email: &str, role: &str) -> Browser {
    let invited = app
        .call(
            "POST",
            "/v1/invitations",
            &app.admin_key,
            Some(json!({ "email": email, "role": role, "financier_id": financier_id })),
        )
        .await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    let mut browser = Browser::new(app);
    let accepted = browser
        .accept(invited.body["invitation_path"].as_str().unwrap(), role)
        .await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    browser
}

async fn a_payment_from_the_console_unlocks_the_phone_once(backend: Backend) {
    let mut story = LockedOnPush::new(backend).await;
    let app = &story.app;
    let page = format!("/console/devices/{}", story.device_id);
    let mut agent = duka_agent(app, &story.financier_id).await;
    let seen = agent.get(&page).await;
    seen.assert_shows("<strong>locked</strong>");
    assert!(seen.shows("id=\"payment-form\""));
    assert!(
        !seen.shows("id=\"lock-form\"") && !seen.shows("id=\"policy-form\""),
        "an agent sees no lock or policy form"
    );
    let csrf = seen.field("csrf");
    let form_key = seen.field("form_key");
    // The overview shows how old the arrears are.
    let overview = agent.get("/console/overview").await;
    overview.assert_shows("<td>1–30 days</td><td>1</td><td>KES 1,000.00</td>");

    // A bad amount: named, kept, nothing recorded.
    let bad = agent
        .post(
            &format!("{page}/payment"),
            &[
                ("csrf", &csrf),
                ("form_key", &form_key),
                ("amount", "1.000,00"),
                ("reference", "R-1"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    bad.assert_shows("amount:");
    assert!(bad.shows("value=\"1.000,00\""));
    assert!(app.stored_payments(&story.device_id).await.is_empty());

    // The payment, sent twice (a double click): recorded once, and the phone unlocks.
    let form = [
        ("csrf", csrf.as_str()),
        ("form_key", &form_key),
        ("amount", "1,000.00"),
        ("reference", "R-1"),
    ];
    let paid = agent.post(&format!("{page}/payment"), &form).await;
    assert_eq!(paid.status, 303, "{}", paid.body);
    assert_eq!(
        paid.location.as_deref(),
        Some(&*format!("{page}?done=payment"))
    );
    assert_eq!(
        agent.post(&format!("{page}/payment"), &form).await.status,
        303
    );
    let payments = app.stored_payments(&story.device_id).await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0].amount_minor, 100_000);
    assert_eq!(
        story
            .phone
            .next_push(std::time::Duration::from_secs(10))
            .await,
        Some(true),
        "the payment is pushed"
    );
    assert!(!locked(&story.phone), "{}", story.phone.render());
    // Its next check-in tells the server which token it holds.
    story.phone.check_again().await;
    // (Check-in times are written once a second; the test does not wait for the second.)
    app.running.state.flush_last_seen().await;
    let after = agent.get(&format!("{page}?done=payment")).await;
    after.assert_shows("Payment recorded.");
    after.assert_shows("<strong>active</strong>");
    assert!(
        after.shows("last check-in 2026-02-05 07:00 UTC; holds token 5 of 5 (up to date)"),
        "the phone acknowledged the new token: {}",
        after.body
    );
    // The pushed token was acknowledged at once (the test's clock stands still).
    assert!(
        after.shows("2026-02-05 07:00 UTC (0 ms after it was recorded)"),
        "the payment shows when its phone held it: {}",
        after.body
    );
    assert!(after.shows("<td>part paid</td>") || after.shows("<td>paid</td>"));

    // The agent may not lock, whatever it sends.
    let lock = agent
        .post(
            &format!("{page}/lock"),
            &[("csrf", &csrf), ("message", "Call us"), ("confirm", "on")],
        )
        .await;
    assert_eq!(lock.status, 403, "{}", lock.body);

    // The admin's lock needs its confirmation box; without it nothing is written.
    let mut admin = duka_boss(app, &story.financier_id).await;
    let csrf = admin.get(&page).await.field("csrf");
    let unconfirmed = admin
        .post(
            &format!("{page}/lock"),
            &[("csrf", &csrf), ("message", "Call us")],
        )
        .await;
    assert_eq!(unconfirmed.status, 422, "{}", unconfirmed.body);
    assert!(unconfirmed.shows("confirm: tick the box"));
    assert!(unconfirmed.shows("value=\"Call us\""));
    assert!(!locked(&story.phone));
    // A NUL in a field is named and refused on both databases alike; nothing is written.
    let with_nul = admin
        .post(
            &format!("{page}/lock"),
            &[("csrf", &csrf), ("message", "Call\0 us"), ("confirm", "on")],
        )
        .await;
    assert_eq!(with_nul.status, 422, "{}", with_nul.body);
    assert!(
        with_nul.shows("message: contains a NUL"),
        "{}",
        with_nul.body
    );
    assert!(!locked(&story.phone));
    let locked_now = admin
        .post(
            &format!("{page}/lock"),
            &[("csrf", &csrf), ("message", "Call us"), ("confirm", "on")],
        )
        .await;
    assert_eq!(locked_now.status, 303, "{}", locked_now.body);
    assert_eq!(
        story
            .phone
            .next_push(std::time::Duration::from_secs(10))
            .await,
        Some(true)
    );
    assert!(locked(&story.phone), "{}", story.phone.render());
    // The overview counts the locked phone and today's payment.
    let overview = admin.get("/console/overview").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    overview.assert_shows("id=\"count-locked\">1<");
    overview.assert_shows("id=\"count-all\"><strong>1<");
    overview.assert_shows("1 payments, KES 1,000.00");
    overview.assert_shows("median 0 ms, 99th percentile 0 ms, over 1 payments.");
    assert!(
        overview.shows("id=\"locks-today\">2 locked, 1 unlocked."),
        "the schedule's lock, the payment's unlock and the admin's lock: {}",
        overview.body
    );
    // The reports: today's payment by day, and the period's activity as CSV.
    let reports = admin
        .get("/console/reports?from=2026-02-01&to=2026-02-05")
        .await;
    assert_eq!(reports.status, 200, "{}", reports.body);
    reports.assert_shows("<td>2026-02-05</td><td>1</td><td>KES 1,000.00</td>");
    assert!(
        reports.shows("<tr><td>2026-02-05</td><td>2</td><td>1</td></tr>"),
        "two locks and an unlock that day: {}",
        reports.body
    );
    let activity = admin
        .get("/console/reports/activity.csv?from=2026-02-01&to=2026-02-05")
        .await;
    assert_eq!(activity.status, 200);
    let lines: Vec<&str> = activity.body.lines().collect();
    assert_eq!(lines[0], "at,chain,seq,actor,action,reason");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(",per_") && l.contains(",payment,")),
        "{}",
        activity.body
    );
    let refused = admin
        .get("/console/reports?from=2026-02-05&to=2026-02-01")
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.shows("to: is before from"));
    let far = admin
        .get("/console/reports?from=-009999-01-01&to=-009999-01-02")
        .await;
    assert_eq!(far.status, 422, "{}", far.body);
    // The history names the people who acted.
    let history = admin.get(&page).await;
    assert!(
        history.shows("manual_lock") || history.shows("lock"),
        "{}",
        history.body
    );
    let chain = app.audit_chain(&story.device_id).await;
    assert!(
        chain
            .iter()
            .filter(|r| r.entry.actor.starts_with("per_"))
            .count()
            >= 2,
        "the payment and the lock are audited under the people who made them"
    );
}

async fn a_disabled_person_is_signed_out_and_a_lost_link_can_be_sent_again(backend: Backend) {
    let app = spawn_app(backend, START.parse().unwrap()).await;
    let (duka, _) = app.financier("Duka Phones").await;
    let mut admin = platform_admin(&app).await;
    let mut agent = duka_agent(&app, &duka).await;
    assert_eq!(agent.get("/console/devices").await.status, 200);

    // A link that was lost: inviting the same address again sends a new one, and the old stops.
    let first = invite_by_api(&app, "late@duka.example", "support").await;
    let second = invite_by_api(&app, "late@duka.example", "support").await;
    assert_ne!(first, second);
    assert_eq!(Browser::new(&app).get(&first).await.status, 404);
    assert_eq!(Browser::new(&app).get(&second).await.status, 200);
    // Someone who has set a password is not invited again.
    let taken = app
        .call(
            "POST",
            "/v1/invitations",
            &app.admin_key,
            Some(json!({ "email": "agent@duka.example", "role": "financier-agent", "financier_id": duka })),
        )
        .await;
    assert_eq!(taken.status, 409, "{}", taken.body);

    // The admin disables the agent: their open session ends at once, and they cannot sign in.
    let people = admin.get("/console/people").await;
    let agent_id = {
        let at = people.body.find("agent@duka.example").unwrap();
        let form = &people.body[at..];
        let start = form.find("/console/people/").unwrap() + "/console/people/".len();
        form[start..start + form[start..].find('/').unwrap()].to_string()
    };
    let csrf = people.field("csrf");
    let unconfirmed = admin
        .post(
            &format!("/console/people/{agent_id}/disable"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(unconfirmed.status, 422, "{}", unconfirmed.body);
    assert_eq!(
        agent.get("/console/devices").await.status,
        200,
        "nothing changed"
    );
    let disabled = admin
        .post(
            &format!("/console/people/{agent_id}/disable"),
            &[("csrf", &csrf), ("confirm", "on")],
        )
        .await;
    assert_eq!(disabled.status, 303, "{}", disabled.body);
    assert_eq!(
        agent.get("/console/devices").await.location.as_deref(),
        Some("/console/sign-in")
    );
    let again = Browser::new(&app)
        .sign_in("agent@duka.example", PASSWORD)
        .await;
    assert_eq!(again.status, 401);
    assert!(admin.get("/console/people").await.shows("disabled"));
}

async fn a_strangers_guesses_do_not_lock_the_owner_out(backend: Backend) {
    let app = spawn_app_with(backend, START.parse().unwrap(), |s| {
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let path = invite_by_api(&app, "owner@lien.example", "support").await;
    let accepted = Browser::at(&app, "198.51.100.7")
        .accept(&path, "Owner")
        .await;
    assert_eq!(accepted.status, 303);
    let mut stranger = Browser::at(&app, "203.0.113.9");
    for _ in 0..5 {
        assert_eq!(
            stranger
                .sign_in("owner@lien.example", "guess guess guess")
                .await
                .status,
            401
        );
    }
    assert_eq!(
        stranger
            .sign_in("owner@lien.example", PASSWORD)
            .await
            .status,
        429,
        "the guesser is slowed"
    );
    let owner = Browser::at(&app, "198.51.100.7")
        .sign_in("owner@lien.example", PASSWORD)
        .await;
    assert_eq!(
        owner.status, 303,
        "the owner, elsewhere, is not: {}",
        owner.body
    );
    // An address longer than anyone's is refused before it costs anything.
    let long = format!("{}@lien.example", "a".repeat(60_000));
    assert_eq!(stranger.sign_in(&long, PASSWORD).await.status, 401);
}

async fn devices_are_uploaded_from_a_file_exported_and_filtered(backend: Backend) {
    let app = spawn_app(backend, START.parse().unwrap()).await;
    let (duka, _) = app.financier("Duka Phones").await;
    let mut boss = duka_boss(&app, &duka).await;
    let form = boss.get("/console/devices/upload").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = form.field("csrf");
    let mut csv =
        String::from("contract_ref,imei1,serial,model,currency,time_zone,installments,policy\n");
    for i in 0..50 {
        csv.push_str(&format!(
            "B-{i:03},{},S{i},Phone X,KES,Africa/Nairobi,2026-02-01:100000;2026-03-01:100000,kenya\n",
            imei(&format!("3569380357{i:04}"))
        ));
    }
    csv.push_str("B-BAD,123,S-BAD,Phone X,KES,Africa/Nairobi,2026-02-01:100000,kenya\n");
    let (client, url) = (
        boss.client.clone(),
        format!("{}/console/devices/upload", boss.base),
    );
    let upload = |parts: &[Part<'_>]| {
        let (content_type, body) = multipart_body(parts);
        client
            .post(&url)
            .header("content-type", content_type)
            .body(body)
    };
    let request = upload(&[
        Part::Text("csrf", &csrf),
        Part::File("file", "devices.csv", "text/csv", csv.as_bytes()),
    ]);
    // The rows are enrolled in the background; the upload's own page shows how far they have
    // come, then their outcome (a small file is done by the time the page is first shown).
    let started = boss.send(request).await;
    assert_eq!(started.status, 303, "{}", started.body);
    let job_page = started.location.clone().unwrap_or_default();
    assert!(job_page.starts_with("/console/uploads/job_"), "{job_page}");
    let done = boss.get(&job_page).await;
    assert_eq!(done.status, 200, "{}", done.body);
    done.assert_shows("50 enrolled, 1 refused.");
    // Nobody else sees it, not even a colleague.
    let mut colleague =
        financier_person(&app, &duka, "colleague@duka.example", "financier-admin").await;
    assert_eq!(colleague.get(&job_page).await.status, 404);
    assert!(
        done.shows("imei1"),
        "the refused row says why: {}",
        done.body
    );
    // Without the token nothing is read.
    let forged = upload(&[Part::File("file", "x.csv", "text/csv", b"contract_ref\n")]);
    assert_eq!(boss.send(forged).await.status, 403);

    // The list pages through them; the export has them all, one line each.
    let first = boss.get("/console/devices").await;
    assert_eq!(
        first
            .body
            .matches("<tr><td><a href=\"/console/devices/dev_")
            .count(),
        50
    );
    assert!(!first.shows("id=\"next\""), "50 devices fill one page");
    let export = boss
        .get("/console/devices.csv?state=&not_seen_days=&cursor=")
        .await;
    assert_eq!(export.status, 200);
    assert_eq!(export.body.lines().count(), 51, "{}", export.body);
    assert!(export.body.starts_with("id,contract_ref,imei1"));
    let bad = boss.get("/console/devices?not_seen_days=4294967295").await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.shows("not_seen_days: must be at most 36500"));
    // By policy: every uploaded phone is on the kenya preset, none on custom settings, and
    // the export follows the filter.
    let kenya = boss.get("/console/devices?policy=kenya").await;
    kenya.assert_shows("<option value=\"kenya\" selected>");
    assert_eq!(
        kenya
            .body
            .matches("<tr><td><a href=\"/console/devices/dev_")
            .count(),
        50
    );
    let custom = boss.get("/console/devices.csv?policy=custom").await;
    assert_eq!(custom.body.lines().count(), 1, "{}", custom.body);
    // Exports and reports are limited per person: 10 at once (two were read above), then 6 a
    // minute; the test's clock stands still.
    let mut answered = Vec::new();
    for _ in 0..9 {
        answered.push(boss.get("/console/devices.csv").await.status);
    }
    assert_eq!(answered, [200, 200, 200, 200, 200, 200, 200, 200, 429]);
    let waiting = boss.get("/console/reports").await;
    assert_eq!(waiting.status, 429, "{}", waiting.body);
    waiting.assert_shows("too many reports and exports at once");
    let unknown = boss.get("/console/devices?policy=lenient").await;
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    assert!(unknown.shows("policy: one of strict-dealer, kenya, india-draft or custom"));
}

async fn an_appeal_is_answered_from_the_queue_with_its_receipt_in_view(backend: Backend) {
    let mut w = World::new(backend).await;
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    let opened = w.appeal_paid().await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let reference = opened.body["reference"].as_str().unwrap().to_string();
    let financier = w
        .app
        .stored_device(&w.device_id)
        .await
        .enrolled
        .financier_id;

    // Support sees the queue, the receipt and the answer form.
    let support_path = invite_by_api(&w.app, "support@lien.example", "support").await;
    let mut support = Browser::new(&w.app);
    support.accept(&support_path, "Sam").await;
    let queue = support.get("/console/appeals").await;
    queue.assert_shows(&reference);
    assert!(
        queue.shows("2026-02-08 07:00 UTC"),
        "the deadline, 72 hours on: {}",
        queue.body
    );
    let seen = support.get(&format!("/console/appeals/{reference}")).await;
    assert!(
        seen.shows("MPESA-QX12") && seen.shows("id=\"document\""),
        "{}",
        seen.body
    );
    assert!(
        seen.shows("id=\"answer-form\""),
        "support answers appeals: {}",
        seen.body
    );
    let document = support
        .client
        .get(format!(
            "{}/console/appeals/{reference}/document",
            w.app.base
        ))
        .header(
            "cookie",
            format!(
                "__Host-lien_session={}",
                support.cookies["__Host-lien_session"]
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(document.status(), 200);
    assert_eq!(document.headers()["content-type"], "image/png");
    assert!(
        document.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox"),
        "nothing in a document runs"
    );
    assert_eq!(document.bytes().await.unwrap(), receipt_png(4096));

    // The financier's agent rejects without a reason: refused, nothing answered; then accepts.
    let mut agent = duka_agent(&w.app, &financier).await;
    let page = agent.get(&format!("/console/appeals/{reference}")).await;
    let csrf = page.field("csrf");
    let path = format!("/console/appeals/{reference}/decision");
    let unreasoned = agent
        .post(
            &path,
            &[("csrf", &csrf), ("decision", "reject"), ("reason", "")],
        )
        .await;
    assert_eq!(unreasoned.status, 422, "{}", unreasoned.body);
    unreasoned.assert_shows("reason: say why");
    let accepted = agent
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("decision", "accept"),
                ("reason", "Seen on our till"),
                ("record_payment", "on"),
            ],
        )
        .await;
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    let back = accepted.location.clone().unwrap_or_default();
    assert_eq!(back, format!("/console/appeals/{reference}?answered=1"));
    let answered = agent.get(&back).await;
    answered.assert_shows("Answer recorded.");
    answered.assert_shows("<strong>accepted</strong>");
    assert_eq!(
        w.app.stored_payments(&w.device_id).await.len(),
        1,
        "the claimed payment is recorded"
    );
    w.phone.check_again().await;
    assert!(!w.locked(), "{}", w.phone.render());
}

/// The text of the element with id `id` (up to its first tag), e.g. a secret shown once.
fn shown_in(body: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let at = body
        .find(&marker)
        .map(|at| at + marker.len())
        .unwrap_or_else(|| panic!("no {id}: {body}"));
    body[at..at + body[at..].find('<').unwrap()].to_string()
}

async fn webhooks_are_added_rotated_and_deleted_from_settings(backend: Backend) {
    let app = spawn_app(backend, START.parse().unwrap()).await;
    let (duka, key) = app.financier("Duka Phones").await;
    let mut boss = duka_boss(&app, &duka).await;
    let settings = boss.get("/console/settings").await;
    settings.assert_shows("No endpoints yet.");
    let csrf = settings.field("csrf");
    let endpoints = || app.call("GET", "/v1/webhook-endpoints", &key, None);

    // A URL into the server's own network is refused by name, kept, and nothing is made.
    let refused = boss
        .post(
            "/console/settings/webhooks",
            &[
                ("csrf", &csrf),
                ("url", "https://169.254.169.254/latest"),
                ("event:payment.applied", "on"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    refused.assert_shows("url: must not name");
    assert!(refused.shows("value=\"https://169.254.169.254/latest\""));
    refused.assert_shows("name=\"event:payment.applied\" checked");
    assert_eq!(endpoints().await.body["endpoints"], json!([]));

    // Added: the secret is shown once, and the API sees the endpoint with its events.
    let added = boss
        .post(
            "/console/settings/webhooks",
            &[
                ("csrf", &csrf),
                ("url", "https://hooks.duka.example/lien?token=t0k"),
                ("event:payment.applied", "on"),
                ("event:device.state_changed", "on"),
            ],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let secret = shown_in(&added.body, "new-secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    let listed = endpoints().await.body["endpoints"].clone();
    assert_eq!(
        listed[0]["url"],
        "https://hooks.duka.example/lien?token=t0k"
    );
    assert_eq!(
        listed[0]["event_types"],
        json!(["device.state_changed", "payment.applied"])
    );
    let id = listed[0]["id"].as_str().unwrap().to_string();
    let page = boss.get("/console/settings").await;
    assert!(!page.shows(&secret), "shown once");
    assert!(page.shows(&format!("/console/settings/webhooks/{id}/rotate")));

    // Rotated: a new secret, the old one still signing for a while.
    let rotated = boss
        .post(
            &format!("/console/settings/webhooks/{id}/rotate"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_secret = shown_in(&rotated.body, "new-secret");
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    rotated.assert_shows("also signed with the");
    assert!(endpoints().await.body["endpoints"][0]["previous_secret_until"].is_string());

    // An agent sees the endpoint's origin, no buttons, and cannot act whatever it sends.
    let mut agent = duka_agent(&app, &duka).await;
    let theirs = agent.get("/console/settings").await;
    theirs.assert_shows("https://hooks.duka.example<");
    assert!(!theirs.shows("token=t0k") && !theirs.shows("id=\"webhook-form\""));
    let agent_csrf = theirs.field("csrf");
    for path in [
        "/console/settings/webhooks".to_string(),
        format!("/console/settings/webhooks/{id}/rotate"),
        format!("/console/settings/webhooks/{id}/delete"),
    ] {
        let forced = agent
            .post(
                &path,
                &[
                    ("csrf", &agent_csrf),
                    ("url", "https://x.example"),
                    ("confirm", "on"),
                ],
            )
            .await;
        assert_eq!(forced.status, 403, "{path}: {}", forced.body);
    }

    // Deleted once confirmed; without the token nothing happens.
    let unconfirmed = boss
        .post(
            &format!("/console/settings/webhooks/{id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(unconfirmed.status, 422, "{}", unconfirmed.body);
    let forged = boss
        .post(
            &format!("/console/settings/webhooks/{id}/delete"),
            &[("confirm", "on")],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(
        endpoints().await.body["endpoints"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let deleted = boss
        .post(
            &format!("/console/settings/webhooks/{id}/delete"),
            &[("csrf", &csrf), ("confirm", "on")],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert_eq!(endpoints().await.body["endpoints"], json!([]));
    let chain = app.audit_chain(&format!("financier:{duka}")).await;
    let by_person: Vec<&str> = chain
        .iter()
        .filter(|r| r.entry.actor.starts_with("per_") && r.entry.action.starts_with("webhook"))
        .map(|r| r.entry.action.as_str())
        .collect();
    assert_eq!(
        by_person,
        [
            "webhook_endpoint_created",
            "webhook_secret_rotated",
            "webhook_endpoint_deleted"
        ]
    );
}

async fn a_statement_reconciled_from_the_console_applies_what_lien_lacked_once(backend: Backend) {
    let mut story = LockedOnPush::new(backend).await;
    let app = &story.app;
    let mut boss = duka_boss(app, &story.financier_id).await;
    let form = boss.get("/console/reconcile").await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(
        form.shows("value=\"2026-02-05\""),
        "today by default: {}",
        form.body
    );
    let csrf = form.field("csrf");
    // The callback for RKA1 never came; RKB2 names an account nobody has.
    let statement = "transaction_id,account,amount,paid_at\n\
                     RKA1,C-1001,1000.00,2026-02-05T06:30:00Z\n\
                     RKB2,C-9999,50.00,2026-02-05T06:40:00Z\n";
    let (client, url) = (
        boss.client.clone(),
        format!("{}/console/reconcile", boss.base),
    );
    let send = |csrf: &str, from: &str| {
        let (content_type, body) = multipart_body(&[
            Part::Text("csrf", csrf),
            Part::Text("provider", "mpesa"),
            Part::Text("from", from),
            Part::Text("to", "2026-02-05"),
            Part::File("file", "statement.csv", "text/csv", statement.as_bytes()),
        ]);
        client
            .post(&url)
            .header("content-type", content_type)
            .body(body)
    };

    // A bad date is named, what was typed is kept, and nothing is applied.
    let bad = boss.send(send(&csrf, "5 Feb")).await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    bad.assert_shows("from: a date, YYYY-MM-DD");
    bad.assert_shows("value=\"5 Feb\"");
    assert!(app.stored_payments(&story.device_id).await.is_empty());
    // Without the token nothing is read.
    assert_eq!(boss.send(send("forged", "2026-02-05")).await.status, 403);

    let done = boss.send(send(&csrf, "2026-02-05")).await;
    assert_eq!(done.status, 200, "{}", done.body);
    done.assert_shows(
        "2 transactions on the statement, 0 matched, 2 missing from Lien (now applied)",
    );
    assert!(done.shows("recorded on the device") && done.shows("kept as unmatched"));
    assert_eq!(
        story
            .phone
            .next_push(std::time::Duration::from_secs(10))
            .await,
        Some(true),
        "the recovered payment unlocks the phone"
    );
    assert!(!locked(&story.phone), "{}", story.phone.render());
    // The same statement again applies nothing more.
    let again = boss.send(send(&csrf, "2026-02-05")).await;
    assert_eq!(again.status, 200, "{}", again.body);
    again.assert_shows("2 matched, 0 missing");
    assert_eq!(app.stored_payments(&story.device_id).await.len(), 1);

    // An agent neither sees the screen nor can post to it.
    let mut agent = duka_agent(app, &story.financier_id).await;
    assert_eq!(agent.get("/console/reconcile").await.status, 403);
    let theirs = agent.get("/console/overview").await;
    assert!(!theirs.shows("href=\"/console/reconcile\""));
    let forced = agent.send(send(&theirs.field("csrf"), "2026-02-05")).await;
    assert_eq!(forced.status, 403, "{}", forced.body);
}

async fn keys_are_issued_and_revoked_and_unmatched_money_assigned_from_settings(backend: Backend) {
    let story = LockedOnPush::new(backend).await;
    let app = &story.app;
    let mut boss = duka_boss(app, &story.financier_id).await;
    let settings = boss.get("/console/settings").await;
    assert_eq!(settings.status, 200, "{}", settings.body);
    let csrf = settings.field("csrf");

    // A key for the back office: shown once, and it works.
    let bad = boss
        .post(
            "/console/settings/keys",
            &[
                ("csrf", &csrf),
                ("label", "till"),
                ("role", "financier-agent"),
                ("expires_at", "yesterday"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    bad.assert_shows("expires_at");
    assert!(bad.shows("value=\"till\""));
    let created = boss
        .post(
            "/console/settings/keys",
            &[
                ("csrf", &csrf),
                ("label", "till"),
                ("role", "financier-agent"),
                ("expires_at", "2026-06-30T00:00:00Z"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(
        created.shows("value=\"2027-02-05T07:00:00Z\""),
        "the form offers a year's expiry: {}",
        created.body
    );
    let key = {
        let at = created.body.find("id=\"new-key\">").unwrap() + "id=\"new-key\">".len();
        created.body[at..at + created.body[at..].find('<').unwrap()].to_string()
    };
    let devices = app.call("GET", "/v1/devices", &key, None).await;
    assert_eq!(devices.status, 200, "the new key works: {}", devices.body);
    assert!(
        !boss.get("/console/settings").await.shows(&key),
        "shown once"
    );

    // Revoked from the console, it stops at once.
    let listed = boss.get("/console/settings").await;
    let key_id = key_id_labelled(&listed.body, "till");
    let unconfirmed = boss
        .post(
            &format!("/console/settings/keys/{key_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(unconfirmed.status, 422, "{}", unconfirmed.body);
    assert_eq!(app.call("GET", "/v1/devices", &key, None).await.status, 200);
    let revoked = boss
        .post(
            &format!("/console/settings/keys/{key_id}/revoke"),
            &[("csrf", &csrf), ("confirm", "on")],
        )
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    assert_eq!(app.call("GET", "/v1/devices", &key, None).await.status, 401);

    // Money for an account nobody has waits; assigned from the console, it unlocks the phone.
    let token =
        crate::mpesa::create_endpoint(app, &story.key, &story.financier_id, json!({})).await;
    let paid = crate::mpesa::post(
        app,
        &token,
        "confirmation",
        &crate::mpesa::daraja(app, "RKTQDM7W6S", "C-100I", "1000.00"),
    )
    .await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    let waiting = boss.get("/console/settings").await;
    assert!(
        waiting.shows("RKTQDM7W6S") && waiting.shows("C-100I"),
        "{}",
        waiting.body
    );
    let unmatched_id = {
        let at = waiting.body.find("/console/settings/unmatched/").unwrap()
            + "/console/settings/unmatched/".len();
        waiting.body[at..at + waiting.body[at..].find('"').unwrap()].to_string()
    };
    let assigned = boss
        .post(
            &format!("/console/settings/unmatched/{unmatched_id}"),
            &[("csrf", &csrf), ("device_id", &story.device_id)],
        )
        .await;
    assert_eq!(assigned.status, 303, "{}", assigned.body);
    assert_eq!(app.stored_payments(&story.device_id).await.len(), 1);
    assert!(boss.get("/console/settings").await.shows("None open."));

    // The public profile: a bad link is named and nothing changes; a good one is saved and
    // is what the public IMEI check shows.
    let bad_link = boss
        .post(
            "/console/settings/profile",
            &[
                ("csrf", &csrf),
                ("name", "Duka Phones Ltd"),
                ("contact", "+254 711 000 000"),
                ("payment_link", "javascript:alert(1)"),
            ],
        )
        .await;
    assert_eq!(bad_link.status, 422, "{}", bad_link.body);
    bad_link.assert_shows("payment_link");
    assert!(bad_link.shows("value=\"Duka Phones Ltd\""));
    let saved = boss
        .post(
            "/console/settings/profile",
            &[
                ("csrf", &csrf),
                ("name", "Duka Phones Ltd"),
                ("contact", "+254 711 000 000"),
                ("payment_link", "https://pay.duka.example"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let shown = app.call("GET", "/v1/financiers", &story.key, None).await;
    assert_eq!(shown.body[0]["name"], "Duka Phones Ltd", "{}", shown.body);
    assert_eq!(shown.body[0]["payment_link"], "https://pay.duka.example/");
    let chain = app
        .audit_chain(&format!("financier:{}", story.financier_id))
        .await;
    assert!(
        chain
            .iter()
            .any(|r| r.entry.action == "financier_updated" && r.entry.actor.starts_with("per_"))
    );

    // The financier's webhook endpoints, with their delivery logs.
    let endpoint = app
        .call(
            "POST",
            "/v1/webhook-endpoints",
            &story.key,
            Some(json!({ "url": "https://hooks.duka.example/lien", "event_types": ["payment.applied"] })),
        )
        .await;
    assert_eq!(endpoint.status, 201, "{}", endpoint.body);
    let hooks = boss.get("/console/settings").await;
    hooks.assert_shows("https://hooks.duka.example/lien");
    assert!(hooks.shows("payment.applied"));
    // An agent sees no keys, and cannot issue one whatever it sends.
    let mut agent = duka_agent(app, &story.financier_id).await;
    let theirs = agent.get("/console/settings").await;
    assert!(!theirs.shows("id=\"key-form\""), "{}", theirs.body);
    assert!(
        theirs.shows("https://hooks.duka.example<") && !theirs.shows("/lien"),
        "an agent sees an endpoint's origin, not its path: {}",
        theirs.body
    );
    let forced = agent
        .post(
            "/console/settings/keys",
            &[
                ("csrf", &theirs.field("csrf")),
                ("label", "mine"),
                ("role", "financier-admin"),
            ],
        )
        .await;
    assert_eq!(forced.status, 403, "{}", forced.body);
}

/// The public id of the key labelled `label` in the settings page's key table.
fn key_id_labelled(page: &str, label: &str) -> String {
    let row = page.find(&format!("<td>{label}</td>")).unwrap();
    let start = page[..row].rfind("<code>").unwrap() + "<code>".len();
    page[start..start + page[start..].find('<').unwrap()].to_string()
}

on_both_backends!(
    keys_are_issued_and_revoked_and_unmatched_money_assigned_from_settings,
    webhooks_are_added_rotated_and_deleted_from_settings,
    a_statement_reconciled_from_the_console_applies_what_lien_lacked_once,
    an_appeal_is_answered_from_the_queue_with_its_receipt_in_view,
    a_disabled_person_is_signed_out_and_a_lost_link_can_be_sent_again,
    a_strangers_guesses_do_not_lock_the_owner_out,
    devices_are_uploaded_from_a_file_exported_and_filtered,
    a_payment_from_the_console_unlocks_the_phone_once,
    invitations_lead_to_a_financier_admin_who_sees_only_their_devices,
    forms_without_their_token_or_session_change_nothing,
    an_invitation_with_a_bad_password_still_works_and_sign_ins_are_limited,
);
