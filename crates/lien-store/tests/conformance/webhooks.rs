//! The checks of webhook endpoints, the outbox and deliveries (`lien_store::Webhooks`).

use lien_store::{
    AttemptOutcome, DeliveryStatus, DeviceChange, OutboxEvent, WebhookEndpointRecord,
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

fn with_events(events: Vec<OutboxEvent>) -> DeviceChange {
    DeviceChange {
        outbox: events,
        ..DeviceChange::default()
    }
}

pub async fn webhook_events_are_written_with_the_change_and_delivered_once_in_order(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    db.create_webhook_endpoint(&endpoint("whe_all", "fin_a", &[]))
        .await
        .unwrap();
    db.create_webhook_endpoint(&endpoint("whe_pay", "fin_a", &["payment.applied"]))
        .await
        .unwrap();
    db.create_webhook_endpoint(&endpoint("whe_b", "fin_b", &[]))
        .await
        .unwrap();
    let enrolled = db
        .enroll(
            &new_device("dev_1", "fin_a"),
            DeviceChange {
                outbox: vec![event("msg_1", "device.enrolled")],
                ..enrollment("active", 0)
            },
        )
        .await
        .unwrap();
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
    let claimed = db.claim_deliveries(T0, T0 + 60 * SECOND, 10).await.unwrap();
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
        db.claim_deliveries(T0, T0 + 60 * SECOND, 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed deliveries are not claimed again, and hold back their device's later ones"
    );
    // A failure holds the device's later events back until it is retried.
    db.finish_delivery(
        "whe_all",
        "msg_1",
        T0,
        &AttemptOutcome::Failed {
            status: Some(500),
            error: "500".to_string(),
            next_attempt_us: Some(T0 + 5 * SECOND),
        },
    )
    .await
    .unwrap();
    db.finish_delivery("whe_pay", "msg_2", T0, &AttemptOutcome::Delivered(204))
        .await
        .unwrap();
    assert!(
        db.claim_deliveries(T0 + SECOND, T0 + 60 * SECOND, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = db
        .claim_deliveries(T0 + 5 * SECOND, T0 + 65 * SECOND, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.event.id, "msg_1");
    assert_eq!(claimed[0].attempts, 1);
    db.finish_delivery(
        "whe_all",
        "msg_1",
        T0 + 5 * SECOND,
        &AttemptOutcome::Delivered(200),
    )
    .await
    .unwrap();
    let claimed = db
        .claim_deliveries(T0 + 6 * SECOND, T0 + 66 * SECOND, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.event.id, "msg_2");
    // A claim that ran out may be taken by another server.
    let again = db
        .claim_deliveries(T0 + 67 * SECOND, T0 + 127 * SECOND, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    // 410 Gone disables the endpoint.
    db.finish_delivery("whe_all", "msg_2", T0 + 67 * SECOND, &AttemptOutcome::Gone)
        .await
        .unwrap();
    assert!(
        db.webhook_endpoint("whe_all")
            .await
            .unwrap()
            .disabled_us
            .is_some()
    );
    assert!(
        db.claim_deliveries(T0 + DAY, T0 + DAY, 10)
            .await
            .unwrap()
            .is_empty()
    );

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
    let claimed = db
        .claim_deliveries(T0 + DAY, T0 + DAY + SECOND, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].endpoint.id, "whe_pay");

    // Rotation keeps the previous secret; deletion hides the endpoint.
    let rotated = db
        .rotate_webhook_secret("whe_pay", "whsec_bmV3", T0 + DAY)
        .await
        .unwrap();
    assert_eq!(rotated.secret, "whsec_bmV3");
    assert_eq!(rotated.previous_secret.as_deref(), Some("whsec_c2VjcmV0"));
    db.delete_webhook_endpoint("whe_pay", T0).await.unwrap();
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
