//! Hardship pauses and restructuring (issue 20), with a simulated phone against a spawned
//! server, on SQLite and, when LIEN_TEST_POSTGRES_URL is set, PostgreSQL. The world is the
//! Kenya preset: reminder from day 1, locked on day 4, 30 days of pause a year, pauses of up to
//! 7 days granted on request, no restructuring fee.

use crate::common::{Backend, Reply, World, imei, postgres_url};
use lien_agent::Screen;
use lien_proto::TokenState;
use serde_json::{Value, json};

impl World {
    /// The status code the phone's reminder, restricted or lock screen shows.
    fn code_on_screen(&self) -> String {
        match self.phone.screen() {
            Screen::Reminder(r) => r.details.status_code.clone(),
            Screen::Restricted(r) => r.details.status_code.clone(),
            Screen::Locked(l) => l.details.status_code.clone(),
            other => panic!("no status code on screen: {other:?}"),
        }
    }

    /// The borrower asks for a pause from the public endpoint.
    async fn ask_for_pause(&self, imei: &str, code: &str, days: u32) -> Reply {
        let body = json!({
            "imei": imei,
            "status_code": code,
            "days": days,
            "reason": "I lost my job and need time to find another one",
        });
        self.app
            .call("POST", "/v1/public/hardship-requests", "", Some(body))
            .await
    }

    /// The token state the phone holds.
    fn token_state(&self) -> TokenState {
        self.phone.status().token.expect("a token").0
    }
}

/// The one answer to a request whose proof fails, whatever failed.
fn not_proven() -> Value {
    json!({"error": "not_found", "message": "phone with this IMEI and status code not found"})
}

async fn a_granted_request_shows_on_the_phone_and_nothing_escalates_until_it_ends(
    backend: Backend,
) {
    let mut w = World::new(backend).await;
    // Day 2 past the February installment: the reminder shows its status code.
    w.advance_to("2026-02-03T10:00:00+03:00").await;
    assert!(
        matches!(w.phone.screen(), Screen::Reminder(_)),
        "{}",
        w.phone.render()
    );
    let code = w.code_on_screen();

    // A wrong code and an IMEI no financier claims get the same answer.
    let wrong = if code == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let by_wrong_code = w.ask_for_pause(&w.imei, wrong, 10).await;
    let by_stranger = w.ask_for_pause(&imei("35000000000000"), &code, 10).await;
    assert_eq!(
        (by_wrong_code.status, &by_wrong_code.body),
        (404, &not_proven())
    );
    assert_eq!(
        (by_stranger.status, &by_stranger.body),
        (404, &not_proven())
    );
    // A bad field is named, whatever the phone.
    w.ask_for_pause(&w.imei, &code, 0)
        .await
        .assert_invalid("days");

    // Ten days is more than the policy grants on request: it waits for the financier.
    let asked = w.ask_for_pause(&w.imei, &code, 10).await;
    assert_eq!(asked.status, 201, "{}", asked.body);
    assert_eq!(asked.body["status"], "waiting");
    let device = w.on_device("GET", "", None).await;
    assert_eq!(
        device.body["hardship_request"]["days"], 10,
        "{}",
        device.body
    );
    assert!(
        device.body["hardship_request"]["reason"]
            .as_str()
            .unwrap()
            .contains("lost my job")
    );

    // The financier grants it: ten days from now.
    let granted = w
        .on_device(
            "POST",
            "/hardship-request/decision",
            Some(json!({"decision": "grant", "reason": "agreed on the phone"})),
        )
        .await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    let until = granted.body["hardship_pause_until"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(until, "2026-02-13T07:00:00Z");
    assert!(
        granted.body["hardship_request"].is_null(),
        "{}",
        granted.body
    );

    // The phone shows the pause and its end; so does the public page for its code.
    w.phone.check_again().await;
    assert!(
        matches!(w.phone.screen(), Screen::Reminder(_)),
        "{}",
        w.phone.render()
    );
    assert!(
        w.phone.render().contains(&format!("paused until {until}")),
        "{}",
        w.phone.render()
    );
    let page = w
        .app
        .get(&format!("/why?q={}", w.code_on_screen()), "")
        .await;
    assert_eq!(page.status, 200);
    // The page shows the pause's end in the borrower's time: 07:00 UTC is 10:00 in Nairobi.
    let shown = page.body.as_str().unwrap();
    assert!(
        shown.contains("Payments are paused until")
            && shown.contains("13 February 2026, 10:00 EAT"),
        "{shown}"
    );

    // Day 9 past due, well past the day-4 lock: still only a reminder.
    w.advance_to("2026-02-12T10:00:00+03:00").await;
    assert!(!w.locked(), "{}", w.phone.render());
    assert!(
        matches!(w.phone.screen(), Screen::Reminder(_)),
        "{}",
        w.phone.render()
    );

    // The pause ends; the schedule applies again.
    w.advance_to("2026-02-13T12:00:00+03:00").await;
    w.phone.check_again().await;
    assert!(w.locked(), "{}", w.phone.render());

    // Ten of the thirty days a year are used: a 25-day pause is refused, naming what remains.
    let too_long = w
        .on_device(
            "POST",
            "/hardship-pauses",
            Some(json!({"days": 25, "reason": "second hardship"})),
        )
        .await;
    too_long.assert_invalid("days");
    assert!(
        too_long.message().contains("hardship_days_per_year"),
        "{}",
        too_long.body
    );
    assert!(
        too_long.message().contains("20 remain"),
        "{}",
        too_long.body
    );
    // Asked from the phone, the bound is the same.
    let code = w.code_on_screen();
    let asked = w.ask_for_pause(&w.imei, &code, 21).await;
    asked.assert_invalid("days");
    assert!(w.locked(), "{}", w.phone.render());

    // The history says who did what.
    let history = w.on_device("GET", "/history", None).await;
    let actions: Vec<(&str, &str)> = history.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["actor"].as_str().unwrap(), r["action"].as_str().unwrap()))
        .filter(|(_, a)| a.starts_with("hardship"))
        .collect();
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[0], ("borrower", "hardship_requested"));
    assert_eq!(actions[1].1, "hardship_request_granted");
    assert!(actions[1].0.starts_with("key_"), "{actions:?}");
}

async fn a_short_request_is_granted_at_once_and_the_financier_may_end_it(backend: Backend) {
    let mut w = World::new(backend).await;
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    assert!(w.locked(), "{}", w.phone.render());
    let code = w.code_on_screen();
    // Fourteen days waits for the financier, who does not answer.
    let long = w.ask_for_pause(&w.imei, &code, 14).await;
    assert_eq!(long.body["status"], "waiting", "{}", long.body);
    // Seven days is within the Kenya preset's hardship_auto_grant_days: the waiting request
    // does not stand in its way, it is replaced.
    let asked = w.ask_for_pause(&w.imei, &code, 7).await;
    assert_eq!(asked.status, 201, "{}", asked.body);
    assert_eq!(asked.body["status"], "granted");
    let device = w.on_device("GET", "", None).await;
    assert!(device.body["hardship_request"].is_null(), "{}", device.body);
    w.phone.check_again().await;
    assert!(!w.locked(), "{}", w.phone.render());
    assert_eq!(w.token_state(), TokenState::Reminder);

    // Ending it restricts the phone again, as a lock does: neither an agent nor support may.
    let financier_id = w
        .app
        .stored_device(&w.device_id)
        .await
        .enrolled
        .financier_id;
    let end_path = format!("/v1/devices/{}/hardship-pauses/end", w.device_id);
    for (role, key) in [
        (
            "agent",
            w.app.financier_key(&financier_id, "financier-agent").await,
        ),
        ("support", w.app.support_key().await),
    ] {
        w.app
            .call(
                "POST",
                &end_path,
                &key,
                Some(json!({"reason": "found work"})),
            )
            .await
            .assert_forbidden(role);
    }
    assert!(!w.locked(), "{}", w.phone.render());
    // The financier ends it, giving a reason; the lock comes back.
    let ended = w
        .on_device(
            "POST",
            "/hardship-pauses/end",
            Some(json!({"reason": "found work"})),
        )
        .await;
    assert_eq!(ended.status, 200, "{}", ended.body);
    assert!(
        ended.body["hardship_pause_until"].is_null(),
        "{}",
        ended.body
    );
    w.phone.check_again().await;
    assert!(w.locked(), "{}", w.phone.render());
    let none = w
        .on_device(
            "POST",
            "/hardship-pauses/end",
            Some(json!({"reason": "again"})),
        )
        .await;
    none.assert_refused(409, "no hardship pause");
}

/// Three monthly installments of KES 1,000.00 from 1 May, for what remains of the plan.
fn new_schedule(last_minor: i64) -> Value {
    json!({
        "installments": [
            {"due": "2026-05-01", "amount_minor": 100000},
            {"due": "2026-06-01", "amount_minor": 100000},
            {"due": "2026-07-01", "amount_minor": last_minor}
        ],
        "currency": "KES",
        "reason": "borrower in hardship, payments moved three months",
    })
}

async fn a_locked_plan_restructured_is_active_at_once_and_the_history_shows_both(backend: Backend) {
    let mut w = World::new(backend).await;
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    assert!(w.locked(), "{}", w.phone.render());
    let path = format!("/v1/devices/{}/restructure", w.device_id);

    // Without an Idempotency-Key, nothing is done.
    let unkeyed = w
        .app
        .call("POST", &path, &w.key, Some(new_schedule(100000)))
        .await;
    assert_eq!(unkeyed.status, 400, "{}", unkeyed.body);
    // One shilling more than remains: the policy allows no fee.
    let more = w
        .app
        .post_once(&path, &w.key, new_schedule(100100), "restructure-more")
        .await;
    more.assert_invalid("installments");
    assert!(
        more.message().contains("restructure_max_fee_percent"),
        "{}",
        more.body
    );
    // Another currency is refused, naming it.
    let mut usd = new_schedule(100000);
    usd["currency"] = json!("USD");
    w.app
        .post_once(&path, &w.key, usd, "restructure-usd")
        .await
        .assert_invalid("currency");
    // An agent may not restructure; nor may support under this policy.
    let financier_id = w
        .app
        .stored_device(&w.device_id)
        .await
        .enrolled
        .financier_id;
    let agent = w.app.financier_key(&financier_id, "financier-agent").await;
    w.app
        .post_once(&path, &agent, new_schedule(100000), "restructure-agent")
        .await
        .assert_forbidden("an agent restructures");
    let support = w.app.support_key().await;
    w.app
        .post_once(&path, &support, new_schedule(100000), "restructure-support")
        .await
        .assert_forbidden("support restructures without the policy's leave");
    assert!(w.locked(), "{}", w.phone.render());

    // Exactly what remains, three months later: active at once, the phone's token with it.
    let done = w
        .app
        .post_once(&path, &w.key, new_schedule(100000), "restructure-1")
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["decision"]["state"], "active", "{}", done.body);
    w.phone.check_again().await;
    assert_eq!(w.token_state(), TokenState::Active);
    w.assert_normal();
    // A retry answers the same and changes nothing.
    let retry = w
        .app
        .post_once(&path, &w.key, new_schedule(100000), "restructure-1")
        .await;
    assert_eq!((retry.status, &retry.body), (200, &done.body));

    // The device shows both schedules, the earlier one first.
    let device = w.on_device("GET", "", None).await;
    let plans = device.body["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 2, "{}", device.body);
    assert_eq!(plans[0]["in_force"], false);
    assert_eq!(plans[0]["plan"]["installments"][0]["due"], "2026-02-01");
    assert_eq!(
        plans[0]["reason"],
        "borrower in hardship, payments moved three months"
    );
    assert_eq!(plans[1]["in_force"], true);
    assert_eq!(plans[1]["plan"]["installments"][0]["due"], "2026-05-01");
    // The history records the change once, with the plan before and after.
    let history = w.on_device("GET", "/history", None).await;
    let records: Vec<&Value> = history.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "plan_restructured")
        .collect();
    assert_eq!(records.len(), 1, "{}", history.body);
    assert_eq!(
        records[0]["before"]["plan"]["installments"][0]["due"],
        "2026-02-01"
    );
    assert_eq!(records[0]["before"]["state"], "locked");
    assert_eq!(
        records[0]["after"]["plan"]["installments"][0]["due"],
        "2026-05-01"
    );
    assert_eq!(records[0]["after"]["state"], "active");

    // The new schedule governs from now on: day 4 past the May installment locks again.
    w.advance_to("2026-05-05T10:00:00+03:00").await;
    w.phone.check_again().await;
    assert!(w.locked(), "{}", w.phone.render());
}

async fn a_plan_may_be_restructured_during_a_pause(backend: Backend) {
    let mut w = World::new(backend).await;
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    assert!(w.locked(), "{}", w.phone.render());
    let paused = w
        .on_device(
            "POST",
            "/hardship-pauses",
            Some(json!({"days": 14, "reason": "illness"})),
        )
        .await;
    assert_eq!(paused.status, 200, "{}", paused.body);
    assert_eq!(
        paused.body["decision"]["state"], "reminder",
        "{}",
        paused.body
    );
    let path = format!("/v1/devices/{}/restructure", w.device_id);
    let done = w
        .app
        .post_once(&path, &w.key, new_schedule(100000), "restructure-in-pause")
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["decision"]["state"], "active", "{}", done.body);
    w.phone.check_again().await;
    w.assert_normal();
}

on_both_backends!(
    a_granted_request_shows_on_the_phone_and_nothing_escalates_until_it_ends,
    a_short_request_is_granted_at_once_and_the_financier_may_end_it,
    a_locked_plan_restructured_is_active_at_once_and_the_history_shows_both,
    a_plan_may_be_restructured_during_a_pause,
);
