//! The checks of webhook endpoints, the outbox and deliveries (`lien_store::Webhooks`).

use lien_store::{
    AttemptOutcome, Claim, ClaimedDelivery, DeliveryStatus, DeviceChange, DeviceRecord,
    OutboxEvent, StoreError, WebhookEndpointRecord,
};

use crate::Db;
use crate::fixtures::*;

fn event(id: &str, event_type: &str) -> OutboxEvent {
    OutboxEvent {
        id: id.to_string(),
        event_type: event_type.to_string(),
        payload: format!(r#"{{"n":"{id}"}}"#),
        created_us: T0,
    }
}

fn endpoint(id: &str, financier: &str, types: &[&str]) -> WebhookEndpointRecord {
    WebhookEndpointRecord {
        id: id.to_string(),
        financier_id: financier.to_string(),
        url: "https://hooks.example/lien".to_string(),
        event_types: types.iter().map(|t| t.to_string()).collect(),
        secret: "whsec_c2VjcmV0".to_string(),
        previous_secret: None,
        previous_secret_until_us: None,
        created_us: T0,
        disabled_us: None,
    }
}

/// The holder of the claims these checks take, unless they say otherwise.
const HOLDER: &str = "whp_1";

/// Claims as `HOLDER`, with no per-endpoint cap to speak of.
async fn claim(db: &Db, now_us: i64, until_us: i64, limit: u32) -> Vec<ClaimedDelivery> {
    db.claim_deliveries(Claim {
        now_us,
        until_us,
        limit,
        per_endpoint: 100,
        per_financier: 100,
        holder: HOLDER,
    })
    .await
    .unwrap()
}

/// Stores an endpoint, audited, under a cap of 20.
async fn create(db: &Db, e: &WebhookEndpointRecord) -> Result<(), StoreError> {
    db.create_webhook_endpoint(
        e,
        20,
        &format!("financier:{}", e.financier_id),
        &entry("webhook_endpoint_created", &e.id),
    )
    .await
}

/// Enrolls device `id` of `financier`, active with nothing due, with its `device.enrolled`
/// event `event_id` in the same change.
async fn enroll_announced(db: &Db, id: &str, financier: &str, event_id: &str) -> DeviceRecord {
    db.enroll(
        &new_device(id, financier),
        DeviceChange {
            outbox: vec![event(event_id, "device.enrolled")],
            ..enrollment("active", 0)
        },
    )
    .await
    .unwrap()
}

fn with_events(events: Vec<OutboxEvent>) -> DeviceChange {
    DeviceChange {
        outbox: events,
        ..DeviceChange::default()
    }
}

pub async fn webhook_events_are_written_with_the_change_and_delivered_once_in_order(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    create(&db, &endpoint("whe_all", "fin_a", &[]))
        .await
        .unwrap();
    create(&db, &endpoint("whe_pay", "fin_a", &["payment.applied"]))
        .await
        .unwrap();
    create(&db, &endpoint("whe_b", "fin_b", &[])).await.unwrap();
    let enrolled = enroll_announced(&db, "dev_1", "fin_a", "msg_1").await;
    update(
        &db,
        "dev_1",
        DeviceChange {
            outbox: vec![event("msg_2", "payment.applied")],
            ..with_payment("P1", 100)
        },
    )
    .await;
    // A refused change writes no event.
    let refused = db
        .update_device("dev_1", Box::new(|_| Err("no".into())))
        .await;
    assert!(refused.is_err());
    update(
        &db,
        "dev_1",
        with_events(vec![event("msg_3", "device.state_changed")]),
    )
    .await;

    let events = db.outbox_events("fin_a").await.unwrap();
    let ids: Vec<&str> = events.iter().map(|e| e.event.id.as_str()).collect();
    assert_eq!(ids, ["msg_1", "msg_2", "msg_3"]);
    let sequences: Vec<Option<i64>> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(
        sequences,
        [
            Some(enrolled.version),
            Some(enrolled.version + 1),
            Some(enrolled.version + 2)
        ],
        "the device's version after each change"
    );
    assert!(db.outbox_events("fin_b").await.unwrap().is_empty());

    assert_eq!(db.fan_out_events(100).await.unwrap(), 3);
    assert_eq!(db.fan_out_events(100).await.unwrap(), 0, "fanned out once");

    // One delivery per device and endpoint at a time: the oldest.
    let claimed = claim(&db, T0, T0 + 60 * SECOND, 10).await;
    let mut got: Vec<(String, String)> = claimed
        .iter()
        .map(|c| (c.endpoint.id.clone(), c.event.event.id.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("whe_all".to_string(), "msg_1".to_string()),
            ("whe_pay".to_string(), "msg_2".to_string())
        ]
    );
    assert!(
        claim(&db, T0, T0 + 60 * SECOND, 10).await.is_empty(),
        "claimed deliveries are not claimed again, and hold back their device's later ones"
    );
    // A failure holds the device's later events back until it is retried.
    db.finish_delivery(
        "whe_all",
        "msg_1",
        HOLDER,
        T0,
        &AttemptOutcome::Failed {
            status: Some(500),
            error: "500".to_string(),
            next_attempt_us: Some(T0 + 5 * SECOND),
        },
    )
    .await
    .unwrap();
    db.finish_delivery(
        "whe_pay",
        "msg_2",
        HOLDER,
        T0,
        &AttemptOutcome::Delivered(204),
    )
    .await
    .unwrap();
    assert!(
        claim(&db, T0 + SECOND, T0 + 60 * SECOND, 10)
            .await
            .is_empty()
    );
    let claimed = claim(&db, T0 + 5 * SECOND, T0 + 65 * SECOND, 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.event.id, "msg_1");
    assert_eq!(claimed[0].attempts, 1);
    db.finish_delivery(
        "whe_all",
        "msg_1",
        HOLDER,
        T0 + 5 * SECOND,
        &AttemptOutcome::Delivered(200),
    )
    .await
    .unwrap();
    let claimed = claim(&db, T0 + 6 * SECOND, T0 + 66 * SECOND, 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.event.id, "msg_2");
    // A claim that ran out may be taken by another server; the first holder, late, then
    // records nothing, and the new holder's outcome stands.
    let again = db
        .claim_deliveries(Claim {
            now_us: T0 + 67 * SECOND,
            until_us: T0 + 127 * SECOND,
            limit: 10,
            per_endpoint: 2,
            per_financier: 100,
            holder: "whp_2",
        })
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    let late = db
        .finish_delivery(
            "whe_all",
            "msg_2",
            HOLDER,
            T0 + 68 * SECOND,
            &AttemptOutcome::Delivered(200),
        )
        .await
        .unwrap();
    assert!(
        !late,
        "a claim taken over is not the late holder's to finish"
    );
    // 410 Gone disables the endpoint.
    assert!(
        db.finish_delivery(
            "whe_all",
            "msg_2",
            "whp_2",
            T0 + 69 * SECOND,
            &AttemptOutcome::Gone
        )
        .await
        .unwrap()
    );
    assert!(
        db.webhook_endpoint("whe_all")
            .await
            .unwrap()
            .disabled_us
            .is_some()
    );
    assert!(claim(&db, T0 + DAY, T0 + DAY, 10).await.is_empty());

    let log = db.webhook_deliveries("whe_all", 10).await.unwrap();
    let statuses: Vec<(&str, DeliveryStatus, Option<i64>, i64)> = log
        .iter()
        .map(|d| (d.event_id.as_str(), d.status, d.last_status, d.attempts))
        .collect();
    assert_eq!(
        statuses,
        [
            ("msg_3", DeliveryStatus::Pending, None, 0),
            ("msg_2", DeliveryStatus::Failed, Some(410), 1),
            ("msg_1", DeliveryStatus::Delivered, Some(200), 2),
        ]
    );
    // A redelivery makes a delivered event pending again.
    let again = db.redeliver("whe_pay", "msg_2", T0 + DAY).await.unwrap();
    assert_eq!(again.status, DeliveryStatus::Pending);
    let claimed = claim(&db, T0 + DAY, T0 + DAY + SECOND, 10).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].endpoint.id, "whe_pay");
    // While that attempt holds its claim, a second redelivery is refused rather than starting
    // another attempt beside it; once the claim has run out, it is allowed again.
    let held = db.redeliver("whe_pay", "msg_2", T0 + DAY).await;
    assert!(
        matches!(&held, Err(StoreError::Conflict(why)) if why.contains("right now")),
        "{held:?}"
    );
    assert!(
        claim(&db, T0 + DAY, T0 + DAY + SECOND, 10).await.is_empty(),
        "the refused redelivery left the claim in place"
    );
    not_found(db.redeliver("whe_pay", "msg_404", T0 + DAY).await);
    let later = db.redeliver("whe_pay", "msg_2", T0 + DAY + SECOND).await;
    assert_eq!(later.unwrap().status, DeliveryStatus::Pending);

    // Rotation keeps the previous secret; deletion hides the endpoint.
    let rotated = db
        .rotate_webhook_secret(
            "whe_pay",
            "whsec_bmV3",
            T0 + DAY,
            "financier:fin_a",
            &entry("webhook_secret_rotated", "whe_pay"),
        )
        .await
        .unwrap();
    assert_eq!(rotated.secret, "whsec_bmV3");
    assert_eq!(rotated.previous_secret.as_deref(), Some("whsec_c2VjcmV0"));
    db.delete_webhook_endpoint(
        "whe_pay",
        T0,
        "financier:fin_a",
        &entry("webhook_endpoint_deleted", "whe_pay"),
    )
    .await
    .unwrap();
    not_found(db.webhook_endpoint("whe_pay").await);
    let left: Vec<String> = db
        .webhook_endpoints("fin_a")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, ["whe_all"]);
}

/// The cap on a financier's endpoints holds when its creations race, and each creation is in
/// the financier's audit chain.
pub async fn webhook_endpoints_are_capped_under_concurrent_creation_and_audited(db: Db) {
    add_financier(&db, "fin_a").await;
    let tasks: Vec<_> = (0..25)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(
                async move { create(&db, &endpoint(&format!("whe_{i}"), "fin_a", &[])).await },
            )
        })
        .collect();
    let mut made = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => made += 1,
            Err(StoreError::Conflict(why)) => {
                assert!(why.contains("at most 20"), "{why}");
                refused += 1;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!((made, refused), (20, 5));
    assert_eq!(db.webhook_endpoints("fin_a").await.unwrap().len(), 20);
    let chain = db.audit_chain("financier:fin_a").await.unwrap();
    let created = chain
        .iter()
        .filter(|r| r.entry.action == "webhook_endpoint_created")
        .count();
    assert_eq!(
        created, 20,
        "one audit record per endpoint made, none for a refusal"
    );
    // A deleted endpoint frees its place. Which 20 creations won the race is up to the
    // database, so delete one that is listed rather than one named in advance.
    let kept = db.webhook_endpoints("fin_a").await.unwrap()[0].id.clone();
    db.delete_webhook_endpoint(&kept, T0, "financier:fin_a", &entry("deleted", &kept))
        .await
        .unwrap();
    create(&db, &endpoint("whe_new", "fin_a", &[]))
        .await
        .unwrap();
}

/// Enrolls `n` devices of fin_a and of fin_b in turn (fin_a's first), each with an enrollment
/// event, and fans the events out.
async fn enroll_in_turn(db: &Db, n: usize) {
    for i in 0..n {
        for fin in ["fin_a", "fin_b"] {
            enroll_announced(
                db,
                &format!("dev_{fin}_{i}"),
                fin,
                &format!("msg_{fin}_{i}"),
            )
            .await;
        }
    }
    db.fan_out_events(100).await.unwrap();
}

/// A claim as `HOLDER` for a minute from `now_us` of at most `limit` deliveries, at most two
/// of them for one endpoint and `per_financier` for one financier.
fn claim_capped(now_us: i64, limit: u32, per_financier: u32) -> Claim<'static> {
    Claim {
        now_us,
        until_us: now_us + 60 * SECOND,
        limit,
        per_endpoint: 2,
        per_financier,
        holder: HOLDER,
    }
}

/// An endpoint has at most `per_endpoint` deliveries claimed at once, counting earlier
/// claims, so a receiver that hangs cannot take every claim.
pub async fn webhook_claims_leave_room_for_other_endpoints(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    create(&db, &endpoint("whe_slow", "fin_a", &[]))
        .await
        .unwrap();
    create(&db, &endpoint("whe_fast", "fin_b", &[]))
        .await
        .unwrap();
    enroll_in_turn(&db, 6).await;
    let capped = |now_us, limit| claim_capped(now_us, limit, 100);
    let endpoints = |claimed: &[ClaimedDelivery]| {
        let mut ids: Vec<String> = claimed.iter().map(|c| c.endpoint.id.clone()).collect();
        ids.sort();
        ids
    };
    let first = db.claim_deliveries(capped(T0, 3)).await.unwrap();
    assert_eq!(first.len(), 3);
    let second = db.claim_deliveries(capped(T0, 10)).await.unwrap();
    let mut all = first.clone();
    all.extend(second.iter().cloned());
    assert_eq!(
        endpoints(&all),
        ["whe_fast", "whe_fast", "whe_slow", "whe_slow"]
    );
    assert!(
        db.claim_deliveries(capped(T0, 10))
            .await
            .unwrap()
            .is_empty()
    );
    // One of the fast endpoint's ends: it gets one more, the slow one still none.
    let fast = all.iter().find(|c| c.endpoint.id == "whe_fast").unwrap();
    db.finish_delivery(
        "whe_fast",
        &fast.event.event.id,
        HOLDER,
        T0,
        &AttemptOutcome::Delivered(204),
    )
    .await
    .unwrap();
    let third = db.claim_deliveries(capped(T0, 10)).await.unwrap();
    assert_eq!(endpoints(&third), ["whe_fast"]);
    // Claims that ran out no longer count.
    let later = db
        .claim_deliveries(capped(T0 + 61 * SECOND, 10))
        .await
        .unwrap();
    assert_eq!(
        endpoints(&later),
        ["whe_fast", "whe_fast", "whe_slow", "whe_slow"]
    );
}

/// Old events whose deliveries are over go, with their log, a batch at a time; an event still
/// pending somewhere that can take it stays; a rotated secret is forgotten after its overlap.
pub async fn old_webhook_events_are_pruned_in_batches(db: Db) {
    add_financier(&db, "fin_a").await;
    create(&db, &endpoint("whe_1", "fin_a", &[])).await.unwrap();
    enroll_announced(&db, "dev_1", "fin_a", "msg_1").await;
    for (i, id) in ["msg_2", "msg_3", "msg_4"].iter().enumerate() {
        update(
            &db,
            "dev_1",
            with_events(vec![OutboxEvent {
                created_us: T0 + i as i64 * SECOND,
                ..event(id, "device.state_changed")
            }]),
        )
        .await;
    }
    db.fan_out_events(100).await.unwrap();
    // msg_1 to msg_3 delivered, msg_4 still pending.
    for (i, id) in ["msg_1", "msg_2", "msg_3"].iter().enumerate() {
        let now = T0 + i as i64 * SECOND;
        let claimed = claim(&db, now, now + 60 * SECOND, 10).await;
        assert_eq!(claimed[0].event.event.id, *id);
        db.finish_delivery("whe_1", id, HOLDER, now, &AttemptOutcome::Delivered(204))
            .await
            .unwrap();
    }
    db.rotate_webhook_secret(
        "whe_1",
        "whsec_bmV3",
        T0 + DAY,
        "financier:fin_a",
        &entry("rotated", "whe_1"),
    )
    .await
    .unwrap();

    let now = T0 + 40 * DAY;
    let before = T0 + 10 * DAY;
    // Not yet old: nothing goes.
    assert_eq!(db.prune_webhooks(T0, T0, 2).await.unwrap(), 0);
    assert_eq!(db.outbox_events("fin_a").await.unwrap().len(), 4);
    assert!(
        db.webhook_endpoint("whe_1")
            .await
            .unwrap()
            .previous_secret
            .is_some()
    );
    assert_eq!(db.prune_webhooks(now, before, 2).await.unwrap(), 2);
    assert_eq!(db.prune_webhooks(now, before, 2).await.unwrap(), 1);
    assert_eq!(db.prune_webhooks(now, before, 2).await.unwrap(), 0);
    let left: Vec<String> = db
        .outbox_events("fin_a")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.id)
        .collect();
    assert_eq!(left, ["msg_4"], "a pending delivery keeps its event");
    let log: Vec<String> = db
        .webhook_deliveries("whe_1", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.event_id)
        .collect();
    assert_eq!(log, ["msg_4"]);
    let endpoint = db.webhook_endpoint("whe_1").await.unwrap();
    assert_eq!(endpoint.previous_secret, None, "the overlap is over");
    assert_eq!(endpoint.secret, "whsec_bmV3");
    // Once its endpoint is deleted, nothing keeps it.
    db.delete_webhook_endpoint("whe_1", now, "financier:fin_a", &entry("deleted", "whe_1"))
        .await
        .unwrap();
    assert_eq!(db.prune_webhooks(now, before, 2).await.unwrap(), 1);
    assert!(db.outbox_events("fin_a").await.unwrap().is_empty());
}

/// A financier's endpoints together have at most `per_financier` deliveries claimed at once,
/// counting earlier claims, so a financier with many hanging receivers cannot take every claim
/// by spreading them over endpoints.
pub async fn webhook_claims_leave_room_for_other_financiers(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    for id in ["whe_a1", "whe_a2", "whe_a3"] {
        create(&db, &endpoint(id, "fin_a", &[])).await.unwrap();
    }
    create(&db, &endpoint("whe_b", "fin_b", &[])).await.unwrap();
    enroll_in_turn(&db, 4).await;
    let capped = |now_us, limit| claim_capped(now_us, limit, 3);
    let financiers = |claimed: &[ClaimedDelivery]| {
        let mut ids: Vec<String> = claimed
            .iter()
            .map(|c| c.endpoint.financier_id.clone())
            .collect();
        ids.sort();
        ids
    };
    // fin_a has 12 deliveries due over three endpoints (6 allowed by the endpoint cap alone),
    // and they come first; it gets 3 across two claims, and fin_b its 2.
    let first = db.claim_deliveries(capped(T0, 2)).await.unwrap();
    assert_eq!(financiers(&first), ["fin_a", "fin_a"]);
    let mut all = first.clone();
    all.extend(db.claim_deliveries(capped(T0, 20)).await.unwrap());
    assert_eq!(
        financiers(&all),
        ["fin_a", "fin_a", "fin_a", "fin_b", "fin_b"]
    );
    assert!(
        db.claim_deliveries(capped(T0, 20))
            .await
            .unwrap()
            .is_empty()
    );
    // One of fin_a's ends: it gets exactly one more.
    let done = all
        .iter()
        .find(|c| c.endpoint.financier_id == "fin_a")
        .unwrap();
    assert!(
        db.finish_delivery(
            &done.endpoint.id,
            &done.event.event.id,
            HOLDER,
            T0,
            &AttemptOutcome::Delivered(204),
        )
        .await
        .unwrap()
    );
    let next = db.claim_deliveries(capped(T0, 20)).await.unwrap();
    assert_eq!(financiers(&next), ["fin_a"]);
}
