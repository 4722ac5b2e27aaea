//! SIM changes (issue 20): the phone reports a new SIM card, the policy's rule answers it
//! (Kenya's preset reminds; the strict dealer's restricts two days after its notice), and the
//! financier's acceptance ends it. Nothing here is owed until the plan's first installment
//! falls due on 1 February; one story then leaves it unpaid.

use std::time::Duration;

use serde_json::json;

use crate::common::{Backend, World, postgres_url};

const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// The device's state and reason code as the financier reads them.
async fn state(w: &World) -> (String, String) {
    let r = w.on_device("GET", "", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["decision"];
    (
        d["state"].as_str().unwrap().to_string(),
        d["reason"]["code"].as_str().unwrap().to_string(),
    )
}

async fn accept(w: &World) {
    let accepted = w
        .on_device(
            "POST",
            "/sim-change/accept",
            Some(json!({"reason": "the borrower called with the new number"})),
        )
        .await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
}

async fn a_sim_change_under_a_remind_policy_reminds_and_does_not_lock(backend: Backend) {
    let mut w = World::new(backend).await;
    w.advance_to("2026-01-12T10:00:00+03:00").await;
    w.assert_normal();

    w.phone.change_sim(1).await;
    let shown = w.phone.render();
    assert!(shown.contains("Payment reminder"), "{shown}");
    assert!(
        shown.contains("A new SIM card was put in this phone. Please contact your financier."),
        "{shown}"
    );
    assert_eq!(state(&w).await, ("reminder".into(), "sim_changed".into()));
    // The financier is told by webhook.
    let store = &w.app.running.state.store;
    let financier_id = store
        .device(&w.device_id)
        .await
        .unwrap()
        .enrolled
        .financier_id;
    let outbox = store.outbox_events(&financier_id).await.unwrap();
    assert!(
        outbox
            .iter()
            .any(|e| e.event.event_type == "device.sim_changed"),
        "{outbox:?}"
    );

    // Ten days on, still only a reminder: the Kenya preset never restricts for a SIM.
    w.advance(Duration::from_secs(10 * DAY)).await;
    assert!(!w.locked(), "{}", w.phone.render());
    assert_eq!(state(&w).await, ("reminder".into(), "sim_changed".into()));

    // The change is reported again (the borrower swaps cards back and forth): one record.
    w.phone.change_sim(1).await;
    let history = w.on_device("GET", "/history", None).await;
    let reported = history.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "sim_change_reported")
        .count();
    assert_eq!(reported, 1, "{}", history.body);

    // The financier accepts it: good standing again, and the phone shows it at its next
    // check-in. Accepting twice is a conflict.
    accept(&w).await;
    assert_eq!(state(&w).await, ("active".into(), "good_standing".into()));
    w.advance(Duration::from_secs(7 * HOUR)).await;
    w.assert_normal();
    let again = w
        .on_device(
            "POST",
            "/sim-change/accept",
            Some(json!({"reason": "again"})),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
}

/// A phone financed on the Kenya preset, moved to the strict dealer's policy, whose SIM rule
/// restricts two days after its notice.
async fn strict_dealer(backend: Backend) -> World {
    let w = World::new(backend).await;
    let changed = w
        .on_device(
            "PUT",
            "/policy",
            Some(json!({"policy": {"preset": "strict-dealer"}, "reason": "dealer's own terms"})),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    w
}

async fn a_sim_change_under_a_restrict_policy_restricts_after_its_notice(backend: Backend) {
    let mut w = strict_dealer(backend).await;
    w.advance_to("2026-01-12T10:00:00+03:00").await;

    // Reported at 10:00 on 12 January: a notice saying when, two days on.
    w.phone.change_sim(2).await;
    let shown = w.phone.render();
    assert!(
        shown.contains(
            "Some functions will be limited on 14 January 2026 at 10:00 unless the financier \
             has heard from you."
        ),
        "{shown}"
    );
    w.advance_to("2026-01-14T09:30:00+03:00").await;
    assert_eq!(state(&w).await, ("reminder".into(), "sim_changed".into()));
    w.advance_to("2026-01-14T10:30:00+03:00").await;
    assert_eq!(state(&w).await, ("restricted".into(), "sim_changed".into()));

    // Accepted: the restriction is lifted at once.
    accept(&w).await;
    assert_eq!(state(&w).await, ("active".into(), "good_standing".into()));
}

async fn a_phone_restricted_for_its_sim_is_served_the_arrears_notice_and_locked_after_it(
    backend: Backend,
) {
    let mut w = strict_dealer(backend).await;
    w.advance_to("2026-01-12T10:00:00+03:00").await;
    w.phone.change_sim(2).await;
    w.advance_to("2026-01-20T10:00:00+03:00").await;
    assert_eq!(state(&w).await, ("restricted".into(), "sim_changed".into()));

    // The 1 February installment is a day late and the SIM change is still not accepted: the
    // restricted screen tells of both, and the phone's acknowledgement serves the notice.
    w.advance_to("2026-02-02T12:00:00+03:00").await;
    let d = w.on_device("GET", "", None).await;
    assert_eq!(d.body["decision"]["notices_served"], 1, "{}", d.body);
    let history = w.on_device("GET", "/history", None).await;
    let notice = history.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["action"] == "notice_served" && r["reason"] == "the phone acknowledged notice 1"
        })
        .unwrap_or_else(|| panic!("no notice served: {}", history.body));
    assert!(
        notice
            .to_string()
            .contains("Notice: KES 1,000.00 is overdue (due 1 February 2026)."),
        "{notice}"
    );
    // From then on, the arrears run their own course, a day to cure and then the policy's
    // days: the screen says when, beside the SIM change.
    let shown = w.phone.render();
    assert!(
        shown.contains(
            "An installment payment of KES 1,000.00 is overdue (due 1 February 2026). Restricted \
             on 3 February 2026 at 10:00 unless KES 1,000.00 is paid."
        ),
        "{shown}"
    );
    assert!(
        shown.contains("A new SIM card was put in this phone."),
        "{shown}"
    );
    assert_eq!(state(&w).await, ("restricted".into(), "sim_changed".into()));

    w.advance_to("2026-02-04T12:00:00+03:00").await;
    assert_eq!(state(&w).await, ("locked".into(), "overdue".into()));
    w.advance_to("2026-02-05T12:00:00+03:00").await;
    assert!(w.locked(), "{}", w.phone.render());
}

on_both_backends!(
    a_sim_change_under_a_remind_policy_reminds_and_does_not_lock,
    a_sim_change_under_a_restrict_policy_restricts_after_its_notice,
    a_phone_restricted_for_its_sim_is_served_the_arrears_notice_and_locked_after_it,
);
