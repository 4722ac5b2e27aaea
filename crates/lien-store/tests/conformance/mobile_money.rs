//! The checks of provider endpoints and unmatched payments (`lien_store::MobileMoney`).

use lien_store::{
    DeviceChange, IdempotentResponse, MpesaEndpointRecord, PaymentProviderRecord,
    RecordedPaymentRecord, StatementQuery, StoreError, UnmatchedFilter, UnmatchedPaymentRecord,
    UnmatchedStatus,
};

use crate::Db;
use crate::fixtures::*;

fn endpoint(financier: &str, token_hash: &[u8]) -> MpesaEndpointRecord {
    MpesaEndpointRecord {
        financier_id: financier.to_string(),
        token_hash: token_hash.to_vec(),
        allowed_sources: r#"["196.201.214.0/24"]"#.to_string(),
        created_us: T0,
    }
}

fn unmatched(id: &str, financier: &str, reference: &str) -> UnmatchedPaymentRecord {
    UnmatchedPaymentRecord {
        id: id.to_string(),
        financier_id: financier.to_string(),
        provider: "mpesa".to_string(),
        provider_ref: reference.to_string(),
        account: "NO-SUCH-LOAN".to_string(),
        amount_minor: 150_000,
        currency: "KES".to_string(),
        received_us: T0,
        payer_hash: Some(vec![7; 32]),
        reason: "no device has this account number".to_string(),
        recorded_us: T0 + SECOND,
        assigned_device_id: None,
        assigned_us: None,
        assigned_by: None,
    }
}

/// An endpoint is found by its token's hash until it is rotated, and then only by the new one;
/// each creation and rotation is audited in the chain given.
pub async fn mpesa_endpoints_are_found_by_token_and_rotated(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    not_found(db.mpesa_endpoint("fin_a").await);
    db.put_mpesa_endpoint(
        &endpoint("fin_a", &[1; 32]),
        "financier:fin_a",
        &entry("mpesa_endpoint", "created"),
    )
    .await
    .unwrap();
    assert_eq!(
        db.mpesa_endpoint_by_token(&[1; 32]).await.unwrap(),
        endpoint("fin_a", &[1; 32])
    );
    assert_eq!(
        db.mpesa_endpoint("fin_a").await.unwrap(),
        endpoint("fin_a", &[1; 32])
    );

    let rotated = MpesaEndpointRecord {
        allowed_sources: "[]".to_string(),
        created_us: T0 + DAY,
        ..endpoint("fin_a", &[2; 32])
    };
    db.put_mpesa_endpoint(
        &rotated,
        "financier:fin_a",
        &entry("mpesa_endpoint", "rotated"),
    )
    .await
    .unwrap();
    not_found(db.mpesa_endpoint_by_token(&[1; 32]).await);
    assert_eq!(db.mpesa_endpoint_by_token(&[2; 32]).await.unwrap(), rotated);
    assert_eq!(db.audit_chain("financier:fin_a").await.unwrap().len(), 2);

    // Another financier cannot take a token in use.
    conflict(
        db.put_mpesa_endpoint(
            &endpoint("fin_b", &[2; 32]),
            "financier:fin_b",
            &entry("mpesa_endpoint", "created"),
        )
        .await,
    );
    not_found(db.mpesa_endpoint("fin_b").await);
    assert!(db.audit_chain("financier:fin_b").await.unwrap().is_empty());
}

/// A device is found by its financier's contract reference, and only by it.
pub async fn devices_are_found_by_contract_ref(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    enroll(&db, "fin_a", "dev_1", None).await;
    assert_eq!(
        db.device_id_by_contract_ref("fin_a", "C-dev_1")
            .await
            .unwrap(),
        "dev_1"
    );
    not_found(db.device_id_by_contract_ref("fin_b", "C-dev_1").await);
    not_found(db.device_id_by_contract_ref("fin_a", "c-dev_1").await);
}

/// An unmatched payment is kept once per provider reference, listed by financier and status,
/// and assigned once: again to the same device changes nothing, to another is a conflict.
pub async fn unmatched_payments_are_kept_once_and_assigned_once(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    enroll(&db, "fin_a", "dev_1", None).await;
    enroll(&db, "fin_a", "dev_2", None).await;
    let chain = "financier:fin_a";

    let first = unmatched("unm_1", "fin_a", "RKTQDM7W6S");
    let (kept, new) = db
        .add_unmatched_payment(&first, chain, &entry("unmatched_payment", "kept"), None)
        .await
        .unwrap();
    assert!(new);
    assert_eq!(kept, first);
    // The same transaction again, under another id (a repeated callback): nothing is added.
    let (kept, new) = db
        .add_unmatched_payment(
            &unmatched("unm_2", "fin_a", "RKTQDM7W6S"),
            chain,
            &entry("unmatched_payment", "kept"),
            None,
        )
        .await
        .unwrap();
    assert!(!new);
    assert_eq!(kept, first);
    not_found(db.unmatched_payment("unm_2").await);
    assert_eq!(db.audit_chain(chain).await.unwrap().len(), 1);
    // Another financier's transaction with the same reference is its own.
    db.add_unmatched_payment(
        &unmatched("unm_3", "fin_b", "RKTQDM7W6S"),
        "financier:fin_b",
        &entry("unmatched_payment", "kept"),
        None,
    )
    .await
    .unwrap();

    assert_eq!(
        db.unmatched_payment_by_ref("fin_a", "mpesa", "RKTQDM7W6S")
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        db.unmatched_payment_by_ref("fin_a", "mpesa", "OTHER")
            .await
            .unwrap(),
        None
    );
    let ids =
        |list: Vec<UnmatchedPaymentRecord>| list.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(
        ids(db
            .unmatched_payments(&listing(Some("fin_a"), UnmatchedStatus::All))
            .await
            .unwrap()),
        ["unm_1"]
    );
    assert_eq!(
        db.unmatched_payments(&listing(None, UnmatchedStatus::Open))
            .await
            .unwrap()
            .len(),
        2
    );

    let assigned = db
        .assign_unmatched_payment(
            "unm_1",
            "dev_1",
            T0 + DAY,
            "key_test",
            chain,
            &entry("unmatched_payment_assigned", "dev_1"),
        )
        .await
        .unwrap();
    assert_eq!(assigned.assigned_device_id.as_deref(), Some("dev_1"));
    assert_eq!(assigned.assigned_us, Some(T0 + DAY));
    assert_eq!(db.unmatched_payment("unm_1").await.unwrap(), assigned);
    // Again to the same device: as it is, with no second record.
    let again = db
        .assign_unmatched_payment(
            "unm_1",
            "dev_1",
            T0 + 2 * DAY,
            "key_other",
            chain,
            &entry("unmatched_payment_assigned", "dev_1"),
        )
        .await
        .unwrap();
    assert_eq!(again, assigned);
    let refused = conflict(
        db.assign_unmatched_payment(
            "unm_1",
            "dev_2",
            T0 + 2 * DAY,
            "key_test",
            chain,
            &entry("unmatched_payment_assigned", "dev_2"),
        )
        .await,
    );
    assert!(refused.contains("dev_1"), "names where it went: {refused}");
    assert_eq!(db.audit_chain(chain).await.unwrap().len(), 2);
    assert!(matches!(
        db.assign_unmatched_payment("unm_9", "dev_1", T0, "key_test", chain, &entry("a", "b"))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        ids(db
            .unmatched_payments(&listing(Some("fin_a"), UnmatchedStatus::Open))
            .await
            .unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(db
            .unmatched_payments(&listing(Some("fin_a"), UnmatchedStatus::Assigned))
            .await
            .unwrap()),
        ["unm_1"]
    );
}

/// The first page of `financier`'s unmatched payments with `status`.
fn listing(financier: Option<&str>, status: UnmatchedStatus) -> UnmatchedFilter {
    UnmatchedFilter {
        financier_id: financier.map(str::to_string),
        status,
        after: None,
        limit: 100,
    }
}

fn provider(id: &str, financier: &str, name: &str) -> PaymentProviderRecord {
    PaymentProviderRecord {
        id: id.to_string(),
        financier_id: financier.to_string(),
        name: name.to_string(),
        secret_salt: vec![3; 32],
        created_us: T0,
    }
}

/// A payment provider's name is the financier's own; a `webhook-id` is remembered once per
/// provider, and forgotten once older than the time given.
pub async fn payment_providers_are_named_once_and_remember_webhook_ids(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    let bank = provider("ppr_1", "fin_a", "equity-bank");
    db.create_payment_provider(
        &bank,
        "financier:fin_a",
        &entry("payment_provider", "created"),
    )
    .await
    .unwrap();
    assert_eq!(db.payment_provider("ppr_1").await.unwrap(), bank);
    assert_eq!(
        db.payment_provider_by_name("fin_a", "equity-bank")
            .await
            .unwrap(),
        bank
    );
    not_found(db.payment_provider_by_name("fin_b", "equity-bank").await);
    conflict(
        db.create_payment_provider(
            &provider("ppr_2", "fin_a", "equity-bank"),
            "financier:fin_a",
            &entry("payment_provider", "created"),
        )
        .await,
    );
    // Another financier may use the same name.
    db.create_payment_provider(
        &provider("ppr_3", "fin_b", "equity-bank"),
        "financier:fin_b",
        &entry("payment_provider", "created"),
    )
    .await
    .unwrap();
    assert_eq!(db.audit_chain("financier:fin_a").await.unwrap().len(), 1);
    db.rotate_payment_provider(
        "ppr_1",
        &[4; 32],
        T0 + DAY,
        "financier:fin_a",
        &entry("payment_provider", "rotated"),
    )
    .await
    .unwrap();
    let rotated = PaymentProviderRecord {
        secret_salt: vec![4; 32],
        created_us: T0 + DAY,
        ..bank.clone()
    };
    assert_eq!(db.payment_providers("fin_a").await.unwrap(), [rotated]);
    assert_eq!(db.audit_chain("financier:fin_a").await.unwrap().len(), 2);
    not_found(
        db.rotate_payment_provider(
            "ppr_9",
            &[4; 32],
            T0,
            "financier:fin_a",
            &entry("payment_provider", "rotated"),
        )
        .await,
    );

    assert!(!db.webhook_seen("ppr_1", "msg_1").await.unwrap());
    assert!(
        db.remember_webhook("ppr_1", "msg_1", T0, T0 - DAY)
            .await
            .unwrap()
    );
    assert!(db.webhook_seen("ppr_1", "msg_1").await.unwrap());
    assert!(
        !db.remember_webhook("ppr_1", "msg_1", T0, T0 - DAY)
            .await
            .unwrap()
    );
    assert!(!db.webhook_seen("ppr_3", "msg_1").await.unwrap());
    // A later message makes the old one forgotten.
    assert!(
        db.remember_webhook("ppr_1", "msg_2", T0 + DAY, T0 + 1)
            .await
            .unwrap()
    );
    assert!(!db.webhook_seen("ppr_1", "msg_1").await.unwrap());
    assert!(db.webhook_seen("ppr_1", "msg_2").await.unwrap());
}

/// Unmatched payments are listed newest first a page at a time, each page after the last of
/// the one before, with none left out or repeated, whether open or assigned.
pub async fn unmatched_payments_are_listed_in_pages(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    enroll(&db, "fin_a", "dev_1", None).await;
    let chain = "financier:fin_a";
    // Five kept at three instants (two pairs share one, so ids break the tie), and one of
    // another financier.
    for (i, at) in [(1, 0), (2, 1), (3, 1), (4, 2), (5, 2)] {
        let kept = UnmatchedPaymentRecord {
            recorded_us: T0 + at * SECOND,
            ..unmatched(&format!("unm_{i}"), "fin_a", &format!("REF{i}"))
        };
        db.add_unmatched_payment(&kept, chain, &entry("unmatched_payment", "kept"), None)
            .await
            .unwrap();
    }
    db.add_unmatched_payment(
        &unmatched("unm_9", "fin_b", "REF9"),
        "financier:fin_b",
        &entry("unmatched_payment", "kept"),
        None,
    )
    .await
    .unwrap();
    db.assign_unmatched_payment(
        "unm_3",
        "dev_1",
        T0 + DAY,
        "key_test",
        chain,
        &entry("a", "b"),
    )
    .await
    .unwrap();

    let pages = |status: UnmatchedStatus, limit: u32| {
        let db = db.clone();
        async move {
            let mut pages = Vec::new();
            let mut after = None;
            loop {
                let page = db
                    .unmatched_payments(&UnmatchedFilter {
                        financier_id: Some("fin_a".to_string()),
                        status,
                        after: after.clone(),
                        limit,
                    })
                    .await
                    .unwrap();
                let ids: Vec<String> = page.iter().map(|p| p.id.clone()).collect();
                after = page.last().map(|p| (p.recorded_us, p.id.clone()));
                let last = page.len() < limit as usize;
                pages.push(ids);
                if last {
                    return pages;
                }
            }
        }
    };
    assert_eq!(
        pages(UnmatchedStatus::All, 2).await,
        [
            vec!["unm_5", "unm_4"],
            vec!["unm_3", "unm_2"],
            vec!["unm_1"]
        ]
    );
    assert_eq!(
        pages(UnmatchedStatus::Open, 3).await,
        [vec!["unm_5", "unm_4", "unm_2"], vec!["unm_1"]]
    );
    assert_eq!(pages(UnmatchedStatus::Assigned, 3).await, [vec!["unm_3"]]);
    // The platform's list has every financier's.
    assert_eq!(
        db.unmatched_payments(&listing(None, UnmatchedStatus::All))
            .await
            .unwrap()
            .len(),
        6
    );
}

/// A provider's payments are those recorded under its idempotency key in the financier's
/// scope, in the period; a statement's other references are found among all the financier's
/// payments and the provider's unmatched ones.
pub async fn provider_payments_are_found_by_their_idempotency_key(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", None).await;
    let keyed = |reference: &str, key: &str| DeviceChange {
        idempotency: Some(IdempotentResponse {
            scope: "fin_a".to_string(),
            key: key.to_string(),
            request_hash: vec![1; 32],
            status: 201,
            body: "{}".to_string(),
        }),
        ..with_payment(reference, 1000)
    };
    update(&db, "dev_1", keyed("RKA1", "provider:mpesa:RKA1")).await;
    update(&db, "dev_1", keyed("EQ1", "provider:equity-bank:EQ1")).await;
    update(&db, "dev_1", keyed("HAND1", "client-key-1")).await;
    let references = |found: &[RecordedPaymentRecord]| {
        found
            .iter()
            .map(|p| p.reference.clone())
            .collect::<Vec<_>>()
    };
    db.add_unmatched_payment(
        &UnmatchedPaymentRecord {
            received_us: T0 + SECOND,
            ..unmatched("unm_1", "fin_a", "RKA9")
        },
        "financier:fin_a",
        &entry("unmatched_payment", "kept"),
        None,
    )
    .await
    .unwrap();
    let statement: Vec<String> = ["RKA1", "HAND1", "RKA9", "EQ1", "NOWHERE"]
        .map(String::from)
        .to_vec();
    let query = |prefix: &'static str, provider: &'static str, to_us: i64| StatementQuery {
        financier_id: "fin_a",
        provider,
        key_prefix: prefix,
        from_us: T0 + 1,
        to_us,
        references: &statement,
    };
    let mpesa = db
        .statement_holdings(&query("provider:mpesa:", "mpesa", T0 + DAY))
        .await
        .unwrap();
    assert_eq!(mpesa.recorded[0].contract_ref, "C-dev_1");
    assert_eq!(mpesa.recorded[0].received_us, T0 + SECOND);
    assert_eq!(mpesa.recorded[0].device_id, "dev_1");
    assert_eq!(references(&mpesa.recorded), ["RKA1"]);
    let ids =
        |found: &[UnmatchedPaymentRecord]| found.iter().map(|u| u.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&mpesa.unmatched), ["unm_1"]);
    // Only the references found in neither are looked up elsewhere: the payment typed in by
    // hand and the other provider's are found by reference, however they were keyed.
    assert_eq!(references(&mpesa.recorded_elsewhere), ["EQ1", "HAND1"]);
    assert!(mpesa.unmatched_elsewhere.is_empty());
    let equity = db
        .statement_holdings(&query("provider:equity-bank:", "equity-bank", T0 + DAY))
        .await
        .unwrap();
    assert_eq!(references(&equity.recorded), ["EQ1"]);
    assert!(equity.unmatched.is_empty());
    assert_eq!(references(&equity.recorded_elsewhere), ["HAND1", "RKA1"]);
    // The period leaves out what was received at its end: found elsewhere instead.
    let early = db
        .statement_holdings(&query("provider:mpesa:", "mpesa", T0 + SECOND))
        .await
        .unwrap();
    assert!(early.recorded.is_empty());
    assert!(early.unmatched.is_empty());
    assert_eq!(
        references(&early.recorded_elsewhere),
        ["EQ1", "HAND1", "RKA1"]
    );
    assert_eq!(ids(&early.unmatched_elsewhere), ["unm_1"]);
    // Another financier's reading finds none of it.
    let theirs = db
        .statement_holdings(&StatementQuery {
            financier_id: "fin_b",
            ..query("provider:mpesa:", "mpesa", T0 + DAY)
        })
        .await
        .unwrap();
    assert_eq!(theirs, Default::default());
}
