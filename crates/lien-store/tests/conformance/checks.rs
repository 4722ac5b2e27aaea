//! The checks. Each gets an empty store and asserts what a caller of the `Store` traits sees.

use std::collections::BTreeSet;

use lien_store::audit::verify_chain;
use lien_store::{
    ApiKeyRecord, Attachments, Binding, ChangeFn, DeviceChange, DeviceEvent, DeviceFilter,
    DevicesExt as _, Financier, IdempotentResponse, NewDevice, OverrideRecord, OverrideUpdate,
    ReversalRecord, Seen, SqlStore, StatusCodeMatch, StoreError, Tenants, TextMatch, TokenRecord,
};

use crate::Db;
use crate::fixtures::*;
pub use crate::mobile_money::*;
pub use crate::people::*;
pub use crate::webhooks::*;

/// Opening a migrated database again applies nothing twice and keeps what was written.
/// PostgreSQL may be opened by several servers at once; a SQLite file by one process, and a
/// second open while the first is alive is refused by name.
pub async fn reopening_keeps_schema_and_data(db: Db) {
    let fin = add_financier(&db, "fin_a").await;
    let url = db.url.clone();
    if url.starts_with("sqlite:") {
        match SqlStore::open(&url).await {
            Err(StoreError::InUse(message)) => {
                assert!(message.contains("another Lien process"), "{message}");
                assert!(message.contains(".lock"), "{message}");
            }
            other => panic!("a second open of a SQLite file in use: {other:?}"),
        }
        drop(db);
        let again = SqlStore::open(&url).await.expect("reopening after close");
        assert_eq!(again.financier("fin_a").await.unwrap(), fin);
        again
            .create_financier(&financier("fin_b"), &entry("financier.create", "b"))
            .await
            .unwrap();
        assert_eq!(again.financiers().await.unwrap().len(), 2);
        return;
    }
    let again = SqlStore::open(&url)
        .await
        .expect("opening the same database a second time");
    assert_eq!(again.financier("fin_a").await.unwrap(), fin);
    let third = SqlStore::open(&url).await.expect("opening it a third time");
    third
        .create_financier(&financier("fin_b"), &entry("financier.create", "b"))
        .await
        .unwrap();
    assert_eq!(db.financiers().await.unwrap().len(), 2);
}

/// Financiers and API keys round-trip; unknown ids are `NotFound`, taken ids `Conflict`.
pub async fn financiers_and_api_keys(db: Db) {
    not_found(db.financier("fin_missing").await);
    assert!(db.financiers().await.unwrap().is_empty());

    let b = add_financier(&db, "fin_b").await;
    let a = Financier {
        payment_link: None,
        ..financier("fin_a")
    };
    db.create_financier(&a, &entry("financier.create", "a"))
        .await
        .unwrap();
    assert_eq!(db.financier("fin_a").await.unwrap(), a);
    assert_eq!(db.financiers().await.unwrap(), vec![a.clone(), b.clone()]);
    conflict(
        db.create_financier(&a, &entry("financier.create", "again"))
            .await,
    );
    let platform = db.audit_chain("platform").await.unwrap();
    assert_eq!(platform.len(), 2, "one platform audit record per financier");
    assert_eq!(verify_chain(&platform), Ok(()));

    assert!(!db.has_platform_admin().await.unwrap());
    let financier_key = ApiKeyRecord {
        key_hash: vec![0xa1; 32],
        id: "key_fin_a".to_string(),
        role: "financier-admin".to_string(),
        financier_id: Some("fin_a".to_string()),
        label: "back office".to_string(),
        created_us: T0,
        expires_us: None,
        revoked_us: None,
        last_used_us: None,
    };
    db.create_api_key(
        &financier_key,
        "financier:fin_a",
        &entry("key.create", "back office"),
    )
    .await
    .unwrap();
    assert!(
        !db.has_platform_admin().await.unwrap(),
        "a financier's admin is not a platform admin"
    );
    assert_eq!(
        db.api_key_by_hash(&financier_key.key_hash).await.unwrap(),
        financier_key
    );
    not_found(db.api_key_by_hash(&[0xff; 32]).await);
    assert_eq!(db.audit_chain("financier:fin_a").await.unwrap().len(), 1);

    let admin_key = ApiKeyRecord {
        key_hash: vec![0xb2; 32],
        id: "key_admin".to_string(),
        role: "platform-admin".to_string(),
        financier_id: None,
        label: "first start".to_string(),
        created_us: T0,
        expires_us: Some(T0 + 30 * DAY),
        revoked_us: None,
        last_used_us: None,
    };
    db.create_api_key(&admin_key, "platform", &entry("key.create", "first start"))
        .await
        .unwrap();
    assert!(db.has_platform_admin().await.unwrap());
    assert_eq!(
        db.api_key_by_hash(&admin_key.key_hash).await.unwrap(),
        admin_key
    );
    let same_id = ApiKeyRecord {
        key_hash: vec![0xc3; 32],
        ..admin_key
    };
    conflict(
        db.create_api_key(&same_id, "platform", &entry("key.create", "again"))
            .await,
    );
    not_found(db.api_key_by_hash(&same_id.key_hash).await);
    assert_eq!(db.audit_chain("platform").await.unwrap().len(), 3);
}

/// A key of `role` for `financier_id`, created at `T0 + n` seconds, with a hash made of `n`.
fn test_key(
    n: u8,
    role: &str,
    financier_id: Option<&str>,
    expires_us: Option<i64>,
) -> ApiKeyRecord {
    ApiKeyRecord {
        key_hash: vec![n; 32],
        id: format!("key_{n:02x}"),
        role: role.to_string(),
        financier_id: financier_id.map(str::to_string),
        label: format!("key {n}"),
        created_us: T0 + i64::from(n) * SECOND,
        expires_us,
        revoked_us: None,
        last_used_us: None,
    }
}

/// Keys are listed per financier or for the platform, revoked once with an audit record, never
/// down to no active platform admin, and their last use only moves forward.
pub async fn api_keys_list_revoke_and_last_use(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    let admin_1 = test_key(1, "platform-admin", None, None);
    let admin_2 = test_key(2, "platform-admin", None, Some(T0 + DAY));
    let support = test_key(3, "support", None, None);
    let fin_a = test_key(4, "financier-admin", Some("fin_a"), None);
    let fin_a_agent = test_key(5, "financier-agent", Some("fin_a"), Some(T0 + 7 * DAY));
    let fin_b = test_key(6, "financier-admin", Some("fin_b"), None);
    for key in [&admin_1, &admin_2, &support, &fin_a, &fin_a_agent, &fin_b] {
        let chain = key
            .financier_id
            .as_ref()
            .map_or("platform".to_string(), |f| format!("financier:{f}"));
        db.create_api_key(key, &chain, &entry("key.create", &key.label))
            .await
            .unwrap();
    }
    assert_eq!(
        db.api_keys(None).await.unwrap(),
        vec![admin_1.clone(), admin_2.clone(), support.clone()],
        "the platform's keys, oldest first"
    );
    assert_eq!(
        db.api_keys(Some("fin_a")).await.unwrap(),
        vec![fin_a.clone(), fin_a_agent.clone()]
    );
    assert!(db.api_keys(Some("fin_missing")).await.unwrap().is_empty());
    assert_eq!(db.api_key("key_05").await.unwrap(), fin_a_agent);
    not_found(db.api_key("key_ff").await);

    // Last use moves forward only.
    db.touch_api_key("key_04", T0 + 60 * SECOND).await.unwrap();
    db.touch_api_key("key_04", T0 + 30 * SECOND).await.unwrap();
    assert_eq!(
        db.api_key_by_hash(&fin_a.key_hash)
            .await
            .unwrap()
            .last_used_us,
        Some(T0 + 60 * SECOND)
    );
    db.touch_api_key("key_missing", T0).await.unwrap();

    // Revoking writes the time and one audit record in the key's chain; again, nothing more.
    let before = db.audit_chain("financier:fin_a").await.unwrap().len();
    let at = T0 + 2 * SECOND * 60;
    let revoked = revoke(&db, "key_05", at, "financier:fin_a", "key_05")
        .await
        .unwrap();
    assert_eq!(revoked.revoked_us, Some(at));
    assert_eq!(
        db.api_key_by_hash(&fin_a_agent.key_hash)
            .await
            .unwrap()
            .revoked_us,
        Some(at)
    );
    let again = revoke(&db, "key_05", at + DAY, "financier:fin_a", "again")
        .await
        .unwrap();
    assert_eq!(again.revoked_us, Some(at), "the first revocation stands");
    let chain = db.audit_chain("financier:fin_a").await.unwrap();
    assert_eq!(chain.len(), before + 1);
    assert_eq!(chain.last().unwrap().entry.action, "api_key_revoked");
    assert_eq!(verify_chain(&chain), Ok(()));
    not_found(revoke(&db, "key_ff", at, "platform", "none").await);

    // Two platform admins: once the second has expired, the first is the last active one
    // and cannot be revoked; while both are active, either can.
    let after_expiry = T0 + 2 * DAY;
    let message = conflict(revoke(&db, "key_01", after_expiry, "platform", "1").await);
    assert!(message.contains("last active platform admin"), "{message}");
    assert_eq!(db.api_key("key_01").await.unwrap().revoked_us, None);
    let platform_before = db.audit_chain("platform").await.unwrap().len();
    revoke(&db, "key_01", T0 + 60 * SECOND, "platform", "1")
        .await
        .unwrap();
    conflict(revoke(&db, "key_02", T0 + 120 * SECOND, "platform", "2").await);
    assert_eq!(
        db.audit_chain("platform").await.unwrap().len(),
        platform_before + 1
    );
    // Revoking a non-admin key never needs another admin.
    revoke(&db, "key_03", T0 + 120 * SECOND, "platform", "3")
        .await
        .unwrap();
    assert!(db.has_platform_admin().await.unwrap());
}

/// Two revocations of the only two active platform admin keys at once: one passes, the
/// other is refused, whatever the interleaving.
pub async fn concurrent_revocations_keep_one_platform_admin(db: Db) {
    for n in [1, 2] {
        db.create_api_key(
            &test_key(n, "platform-admin", None, None),
            "platform",
            &entry("key.create", "admin"),
        )
        .await
        .unwrap();
    }
    let (first, second) = (entry("api_key_revoked", "1"), entry("api_key_revoked", "2"));
    let (a, b) = tokio::join!(
        db.revoke_api_key("key_01", T0 + SECOND, "platform", &first),
        db.revoke_api_key("key_02", T0 + SECOND, "platform", &second),
    );
    assert!(a.is_ok() != b.is_ok(), "exactly one passes: {a:?} / {b:?}");
    let refused = if a.is_ok() { b } else { a };
    conflict(refused);
    let active = db
        .api_keys(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.revoked_us.is_none())
        .count();
    assert_eq!(active, 1);
    assert_eq!(
        verify_chain(&db.audit_chain("platform").await.unwrap()),
        Ok(())
    );
}

/// What an enrollment writes is what the device, its snapshot and its audit chain show.
pub async fn enroll_stores_decision_token_and_audit(db: Db) {
    let fin = add_financier(&db, "fin_a").await;
    let device = NewDevice {
        imei2: Some(imei("dev_01/2")),
        ..new_device("dev_01", "fin_a")
    };
    let change = enrollment("active", 1500);
    let stored = db.enroll(&device, change.clone()).await.unwrap();

    assert_eq!(stored.enrolled, device);
    assert_eq!(Some(&stored.decision), change.decision.as_ref());
    assert_eq!(stored.next_eval_us, change.next_eval_us);
    assert_eq!(stored.token, change.token);
    assert_eq!(stored.binding, None);
    assert_eq!(stored.applied_sequence, None);
    assert_eq!(stored.last_seen_us, None);
    assert_eq!(stored.ocra_counter, 0);
    assert_eq!(stored.released_us, None);
    assert_eq!(db.device("dev_01").await.unwrap(), stored);
    for imei in [&device.imei1, device.imei2.as_ref().unwrap()] {
        assert_eq!(db.device_by_imei(imei).await.unwrap(), stored);
    }

    let snapshot = db.snapshot("dev_01").await.unwrap();
    assert_eq!(snapshot.device, stored);
    assert_eq!(snapshot.financier, fin);
    assert!(snapshot.payments.is_empty() && snapshot.reversals.is_empty());
    assert!(snapshot.overrides.is_empty());

    let chain = db.audit_chain("dev_01").await.unwrap();
    assert_eq!(chain.len(), 1);
    assert_eq!((chain[0].chain.as_str(), chain[0].seq), ("dev_01", 1));
    assert_eq!(chain[0].entry, change.audit[0]);

    not_found(db.device("dev_missing").await);
    not_found(db.device_by_imei(&imei("nobody")).await);
    not_found(db.snapshot("dev_missing").await);
}

/// An IMEI held by one financier's device, as either of its IMEIs, cannot be enrolled again,
/// and the refused enrollment leaves no trace.
pub async fn enroll_refuses_a_financed_imei(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    let first = enroll_with_imei2(&db, "dev_first", "fin_a", "first/2").await;
    let held = [first.imei1.clone(), first.imei2.clone().unwrap()];

    let attempts = [
        (held[0].clone(), None),
        (imei("free/1"), Some(held[0].clone())),
        (held[1].clone(), Some(imei("free/2"))),
        (imei("free/3"), Some(held[1].clone())),
    ];
    for (n, (imei1, imei2)) in attempts.into_iter().enumerate() {
        let id = format!("dev_second_{n}");
        let second = NewDevice {
            imei1,
            imei2,
            ..new_device(&id, "fin_b")
        };
        let held_here = held
            .iter()
            .find(|h| *h == &second.imei1 || Some(*h) == second.imei2.as_ref())
            .unwrap();
        let message = conflict(db.enroll(&second, enrollment("active", 0)).await);
        assert!(message.contains(held_here.as_str()), "{id}: {message}");

        not_found(db.device(&id).await);
        assert!(db.audit_chain(&id).await.unwrap().is_empty(), "{id}");
        for imei in std::iter::once(&second.imei1).chain(second.imei2.as_ref()) {
            assert_eq!(
                db.device_by_imei(imei).await.map(|d| d.enrolled.id).ok(),
                held.contains(imei).then(|| "dev_first".to_string()),
                "{id}: {imei}"
            );
        }
    }
    let listed = db
        .list_devices(&DeviceFilter {
            limit: 100,
            ..DeviceFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&listed), ["dev_first"]);
    assert_eq!(db.tokens_by_status_code("ENR1").await.unwrap().len(), 1);
}

/// A financier's contract reference is enrolled once; another financier may use the same text.
pub async fn enroll_refuses_a_taken_contract_ref(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    let first = NewDevice {
        contract_ref: "LOAN-42".to_string(),
        ..new_device("dev_1", "fin_a")
    };
    db.enroll(&first, enrollment("active", 0)).await.unwrap();

    let again = NewDevice {
        contract_ref: "LOAN-42".to_string(),
        ..new_device("dev_2", "fin_a")
    };
    let message = conflict(db.enroll(&again, enrollment("active", 0)).await);
    assert!(message.contains("LOAN-42"), "{message}");
    not_found(db.device("dev_2").await);
    not_found(db.device_by_imei(&again.imei1).await);
    assert!(db.audit_chain("dev_2").await.unwrap().is_empty());

    let other_financier = NewDevice {
        contract_ref: "LOAN-42".to_string(),
        ..new_device("dev_3", "fin_b")
    };
    db.enroll(&other_financier, enrollment("active", 0))
        .await
        .unwrap();
}

/// An enrollment without its first decision is refused before anything is written.
pub async fn enroll_needs_a_decision(db: Db) {
    add_financier(&db, "fin_a").await;
    let device = new_device("dev_1", "fin_a");
    let change = DeviceChange {
        decision: None,
        ..enrollment("active", 0)
    };
    refused(db.enroll(&device, change).await);
    not_found(db.device("dev_1").await);
    not_found(db.device_by_imei(&device.imei1).await);
}

/// A payment is in the snapshot, with the decision computed beside it.
pub async fn payment_is_recorded(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", Some(T0 + DAY)).await;
    not_found(
        db.update_device("dev_missing", fixed(DeviceChange::default()))
            .await,
    );

    let paid = payment("MPESA-1", 5000);
    let p = paid.clone();
    let updated = db
        .update_device(
            "dev_1",
            change(move |snapshot| {
                let due = snapshot.device.decision.amount_due_minor;
                DeviceChange {
                    payment: Some(p),
                    decision: Some(decision("active", due)),
                    next_eval_us: Some(T0 + 30 * DAY),
                    audit: vec![entry("payment", "MPESA-1")],
                    ..DeviceChange::default()
                }
            }),
        )
        .await
        .unwrap();
    assert_eq!(updated.next_eval_us, Some(T0 + 30 * DAY));
    let snapshot = db.snapshot("dev_1").await.unwrap();
    assert_eq!(snapshot.payments, vec![paid]);
    assert_eq!(snapshot.device, updated);
    assert_eq!(db.audit_chain("dev_1").await.unwrap().len(), 2);
}

/// A change that everything else in it would allow, but that repeats a payment's reference,
/// is refused whole: no decision, token, audit record or idempotency response of it is kept.
pub async fn duplicate_payment_writes_nothing(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", Some(T0 + DAY)).await;
    update(
        &db,
        "dev_1",
        DeviceChange {
            audit: vec![entry("payment", "first")],
            ..with_payment("MPESA-1", 5000)
        },
    )
    .await;
    let before = written(&db, "dev_1").await;

    let repeat = DeviceChange {
        decision: Some(decision("locked", 999)),
        next_eval_us: Some(T0 + 99 * DAY),
        token: Some(token(2, "locked", "DUP2")),
        new_override: Some(manual_lock()),
        audit: vec![entry("payment", "repeat")],
        idempotency: Some(response("fin_a", "idem-dup")),
        ..with_payment("MPESA-1", 7000)
    };
    let message = conflict(db.update_device("dev_1", fixed(repeat)).await);
    assert!(message.contains("MPESA-1"), "{message}");

    assert_eq!(written(&db, "dev_1").await, before);
    assert!(db.tokens_by_status_code("DUP2").await.unwrap().is_empty());
    assert_eq!(
        db.idempotent_response("fin_a", "idem-dup").await.unwrap(),
        None
    );
}

/// The caller's refusal comes back as `Refused` with its own error, and nothing is written.
pub async fn refused_change_writes_nothing(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", Some(T0 + DAY)).await;
    let before = db.snapshot("dev_1").await.unwrap();
    let result = db
        .update_device(
            "dev_1",
            Box::new(|_| Err("the plan is already settled".into())),
        )
        .await;
    assert_eq!(refused(result), "the plan is already settled");
    assert_eq!(db.snapshot("dev_1").await.unwrap(), before);
    assert_eq!(db.audit_chain("dev_1").await.unwrap().len(), 1);
}

/// A token's sequence must be above the current one (gaps are fine); a change carrying a stale
/// token is refused whole, though the token is the last thing it would write.
pub async fn token_sequence_must_increase(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", Some(T0 + DAY)).await;
    let before = written(&db, "dev_1").await;

    let stale = DeviceChange {
        decision: Some(decision("locked", 50)),
        next_eval_us: Some(T0 + 5 * DAY),
        token: Some(token(1, "locked", "STALE")),
        audit: vec![entry("decision", "stale token")],
        ..with_payment("MPESA-9", 100)
    };
    conflict(db.update_device("dev_1", fixed(stale)).await);
    assert_eq!(written(&db, "dev_1").await, before);
    assert!(db.tokens_by_status_code("STALE").await.unwrap().is_empty());

    let second = token(2, "locked", "SEQ2");
    let record = update(&db, "dev_1", with_token(second.clone())).await;
    assert_eq!(record.token, Some(second));
    conflict(
        db.update_device("dev_1", fixed(with_token(token(2, "active", "SEQ2B"))))
            .await,
    );
    let fifth = token(5, "active", "SEQ5");
    let record = update(&db, "dev_1", with_token(fifth.clone())).await;
    assert_eq!(record.token, Some(fifth));
    assert_eq!(db.checkin_view("dev_1").await.unwrap().token_sequence, 5);
}

/// Each hello bumps the credential generation and replaces the key.
pub async fn binding_counts_generations(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", Some(T0 + DAY)).await;
    assert_eq!(
        db.checkin_view("dev_1").await.unwrap().binding_generation,
        0
    );

    let first = update(&db, "dev_1", with_binding(b"key-one", T0 + SECOND)).await;
    let expected = Binding {
        generation: 1,
        device_key: b"key-one".to_vec(),
        bound_us: T0 + SECOND,
    };
    assert_eq!(first.binding, Some(expected));

    update(&db, "dev_1", with_binding(b"key-two", T0 + DAY)).await;
    let expected = Binding {
        generation: 2,
        device_key: b"key-two".to_vec(),
        bound_us: T0 + DAY,
    };
    assert_eq!(db.device("dev_1").await.unwrap().binding, Some(expected));
    assert_eq!(
        db.checkin_view("dev_1").await.unwrap().binding_generation,
        2
    );

    // A change without a binding leaves it alone.
    update(&db, "dev_1", DeviceChange::default()).await;
    assert_eq!(
        db.checkin_view("dev_1").await.unwrap().binding_generation,
        2
    );
}

/// Reversals, a new policy and the OCRA counter are kept; a payment is reversed once.
pub async fn reversal_policy_and_ocra_counter(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", Some(T0 + DAY)).await;
    update(&db, "dev_1", with_payment("MPESA-1", 5000)).await;
    let reversal = ReversalRecord {
        reference: "MPESA-1".to_string(),
        at_us: T0 + DAY,
        recorded_us: T0 + DAY + SECOND,
        reason: "chargeback".to_string(),
    };
    let record = update(
        &db,
        "dev_1",
        DeviceChange {
            reversal: Some(reversal.clone()),
            policy_json: Some(r#"{"grace_days":5}"#.to_string()),
            ocra_counter: Some(7),
            ..DeviceChange::default()
        },
    )
    .await;
    assert_eq!(record.enrolled.policy_json, r#"{"grace_days":5}"#);
    assert_eq!(record.ocra_counter, 7);
    assert_eq!(
        db.snapshot("dev_1").await.unwrap().reversals,
        vec![reversal.clone()]
    );

    let again = DeviceChange {
        reversal: Some(ReversalRecord {
            reason: "again".to_string(),
            ..reversal
        }),
        ocra_counter: Some(8),
        ..DeviceChange::default()
    };
    let message = conflict(db.update_device("dev_1", fixed(again)).await);
    assert!(message.contains("MPESA-1"), "{message}");
    assert_eq!(db.device("dev_1").await.unwrap().ocra_counter, 7);
}

/// A final release frees the phone's IMEIs for a new financing, and the old record stays.
pub async fn release_frees_the_imeis(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    let first = enroll_with_imei2(&db, "dev_a", "fin_a", "dev_a/2").await;
    let released = update(
        &db,
        "dev_a",
        DeviceChange {
            decision: Some(decision("released", 0)),
            token: Some(TokenRecord {
                lease_end_us: None,
                ..token(2, "released", "REL2")
            }),
            released_us: Some(T0 + 90 * DAY),
            audit: vec![entry("release", "paid in full")],
            ..DeviceChange::default()
        },
    )
    .await;
    assert_eq!(released.released_us, Some(T0 + 90 * DAY));
    not_found(db.device_by_imei(&first.imei1).await);
    not_found(db.device_by_imei(first.imei2.as_ref().unwrap()).await);

    // The same phone, financed again by another financier, with its IMEIs the other way round.
    let second = NewDevice {
        imei1: first.imei2.clone().unwrap(),
        imei2: Some(first.imei1.clone()),
        ..new_device("dev_b", "fin_b")
    };
    db.enroll(&second, enrollment("active", 0)).await.unwrap();
    assert_eq!(
        db.device_by_imei(&first.imei1).await.unwrap().enrolled.id,
        "dev_b"
    );
    let old = db.device("dev_a").await.unwrap();
    assert_eq!(old.released_us, Some(T0 + 90 * DAY));
    assert_eq!(old.decision.state, "released");
}

/// A manual lock override, as a test input.
fn manual_lock() -> OverrideRecord {
    OverrideRecord {
        id: 0,
        kind: "manual-lock".to_string(),
        reason: "fraud suspected".to_string(),
        from_us: T0,
        until_us: None,
        cancelled_us: None,
        actor: "key_test".to_string(),
        created_us: T0,
    }
}

/// Overrides get ids from the store; updates change the end and the cancellation, and only
/// of the device they are applied to.
pub async fn overrides_are_added_and_updated(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", Some(T0 + DAY)).await;
    enroll(&db, "fin_a", "dev_2", Some(T0 + DAY)).await;
    let pause = OverrideRecord {
        kind: "hardship-pause".to_string(),
        reason: "hospital".to_string(),
        until_us: Some(T0 + 10 * DAY),
        ..manual_lock()
    };
    for o in [pause.clone(), manual_lock()] {
        update(&db, "dev_1", with_override(o)).await;
    }
    update(&db, "dev_2", with_override(manual_lock())).await;

    let overrides = db.snapshot("dev_1").await.unwrap().overrides;
    assert_eq!(overrides.len(), 2);
    let (pause_id, lock_id) = (overrides[0].id, overrides[1].id);
    assert!(pause_id != lock_id, "ids are assigned: {overrides:?}");
    assert_eq!(
        overrides,
        vec![
            OverrideRecord {
                id: pause_id,
                ..pause.clone()
            },
            OverrideRecord {
                id: lock_id,
                ..manual_lock()
            },
        ]
    );
    let other = db.snapshot("dev_2").await.unwrap().overrides;
    assert_eq!(other.len(), 1);

    update(
        &db,
        "dev_1",
        DeviceChange {
            override_updates: vec![
                OverrideUpdate {
                    id: pause_id,
                    until_us: Some(T0 + 5 * DAY),
                    cancelled_us: None,
                },
                OverrideUpdate {
                    id: lock_id,
                    until_us: None,
                    cancelled_us: Some(T0 + SECOND),
                },
            ],
            ..DeviceChange::default()
        },
    )
    .await;
    let overrides = db.snapshot("dev_1").await.unwrap().overrides;
    assert_eq!(
        (overrides[0].until_us, overrides[0].cancelled_us),
        (Some(T0 + 5 * DAY), None)
    );
    assert_eq!(
        (overrides[1].until_us, overrides[1].cancelled_us),
        (None, Some(T0 + SECOND))
    );

    // An update naming another device's override does not reach it.
    update(
        &db,
        "dev_1",
        DeviceChange {
            override_updates: vec![OverrideUpdate {
                id: other[0].id,
                until_us: Some(T0),
                cancelled_us: Some(T0),
            }],
            ..DeviceChange::default()
        },
    )
    .await;
    assert_eq!(db.snapshot("dev_2").await.unwrap().overrides, other);
}

/// The applied sequence the phone reports, and its events, are written.
pub async fn applied_sequence_and_events(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", Some(T0 + DAY)).await;
    enroll(&db, "fin_a", "dev_2", Some(T0 + DAY)).await;
    let events = vec![
        DeviceEvent {
            at_us: T0 + SECOND,
            kind: "sim-change".to_string(),
            detail: "ICCID 8925400000000000001".to_string(),
        },
        DeviceEvent {
            at_us: T0 + 2 * SECOND,
            kind: "tamper".to_string(),
            detail: "adb enabled".to_string(),
        },
    ];
    let record = update(
        &db,
        "dev_1",
        DeviceChange {
            applied_sequence: Some(1),
            events,
            ..DeviceChange::default()
        },
    )
    .await;
    assert_eq!(record.applied_sequence, Some(1));
    assert_eq!(
        db.checkin_view("dev_1").await.unwrap().applied_sequence,
        Some(1)
    );
    // The traits have no read path for events (only support tools read them), so the table is
    // counted directly.
    let sql = "SELECT COUNT(*) FROM device_events WHERE device_id = $1";
    assert_eq!(db.count(sql, "dev_1").await, 2);
    assert_eq!(db.count(sql, "dev_2").await, 0);
}

/// Each device has its own chain, numbered from 1; the chain verifies, and a changed or
/// missing record is found.
pub async fn audit_chains_verify_and_show_tampering(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_a", Some(T0 + DAY)).await;
    enroll(&db, "fin_a", "dev_b", Some(T0 + DAY)).await;
    let later = vec![
        entry("payment", "MPESA-1"),
        entry("decision", "paid up"),
        entry("override", "hardship"),
    ];
    update(
        &db,
        "dev_a",
        DeviceChange {
            audit: later[..2].to_vec(),
            ..DeviceChange::default()
        },
    )
    .await;
    update(
        &db,
        "dev_a",
        DeviceChange {
            audit: later[2..].to_vec(),
            ..DeviceChange::default()
        },
    )
    .await;

    let chain = db.audit_chain("dev_a").await.unwrap();
    assert_eq!(
        chain.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(chain.iter().all(|r| r.chain == "dev_a"));
    assert_eq!(
        chain[1..]
            .iter()
            .map(|r| r.entry.clone())
            .collect::<Vec<_>>(),
        later
    );
    assert_eq!(verify_chain(&chain), Ok(()));
    let other = db.audit_chain("dev_b").await.unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(verify_chain(&other), Ok(()));
    assert!(db.audit_chain("dev_none").await.unwrap().is_empty());

    let mut edited = chain.clone();
    edited[2].entry.reason = "nothing happened".to_string();
    assert_eq!(verify_chain(&edited), Err(3));
    let mut shortened = chain.clone();
    shortened.remove(1);
    assert_eq!(verify_chain(&shortened), Err(2));
}

/// A kept response for an `Idempotency-Key`.
fn response(scope: &str, key: &str) -> IdempotentResponse {
    IdempotentResponse {
        scope: scope.to_string(),
        key: key.to_string(),
        request_hash: vec![7; 32],
        status: 201,
        body: r#"{"payment":"MPESA-1"}"#.to_string(),
    }
}

/// The response is kept with the change; a second change with the same key in the same scope
/// is refused whole, even though the key is the last thing it writes.
pub async fn idempotent_response_is_kept_once(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", Some(T0 + DAY)).await;
    assert_eq!(db.idempotent_response("fin_a", "k1").await.unwrap(), None);
    let kept = response("fin_a", "k1");
    update(
        &db,
        "dev_1",
        DeviceChange {
            audit: vec![entry("payment", "MPESA-1")],
            idempotency: Some(kept.clone()),
            ..with_payment("MPESA-1", 5000)
        },
    )
    .await;
    assert_eq!(
        db.idempotent_response("fin_a", "k1").await.unwrap(),
        Some(kept.clone())
    );
    assert_eq!(db.idempotent_response("fin_b", "k1").await.unwrap(), None);
    assert_eq!(db.idempotent_response("fin_a", "k2").await.unwrap(), None);

    let before = written(&db, "dev_1").await;
    let reuse = DeviceChange {
        payment: Some(payment("MPESA-2", 3000)),
        decision: Some(decision("locked", 1)),
        audit: vec![entry("payment", "MPESA-2")],
        idempotency: Some(IdempotentResponse {
            body: r#"{"payment":"MPESA-2"}"#.to_string(),
            ..kept.clone()
        }),
        ..DeviceChange::default()
    };
    let reused = db.update_device("dev_1", fixed(reuse)).await;
    assert!(
        matches!(reused, Err(StoreError::IdempotencyConflict)),
        "{reused:?}"
    );
    assert_eq!(written(&db, "dev_1").await, before);
    assert_eq!(
        db.idempotent_response("fin_a", "k1").await.unwrap(),
        Some(kept)
    );

    // The same key in another scope is another key.
    let other_scope = response("platform", "k1");
    update(
        &db,
        "dev_1",
        DeviceChange {
            idempotency: Some(other_scope.clone()),
            ..DeviceChange::default()
        },
    )
    .await;
    assert_eq!(
        db.idempotent_response("platform", "k1").await.unwrap(),
        Some(other_scope)
    );
}

/// Every filter of the device list, alone and together.
pub async fn list_devices_filters(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    // (id, financier, state, amount due, last seen)
    let devices = [
        ("dev_a1", "fin_a", "active", 0, Some(T0 + 10 * DAY)),
        ("dev_a2", "fin_a", "grace", 500, None),
        ("dev_a3", "fin_a", "locked", 900, Some(T0 + DAY)),
        ("dev_b1", "fin_b", "active", 0, Some(T0 + DAY)),
    ];
    for (id, fin, state, due, seen) in devices {
        db.enroll(&new_device(id, fin), enrollment(state, due))
            .await
            .unwrap();
        if let Some(at) = seen {
            db.touch_last_seen(&[sighting(id, at, 0, 0)]).await.unwrap();
        }
    }
    let list = |filter: DeviceFilter| {
        let db = db.clone();
        async move {
            let found = db
                .list_devices(&DeviceFilter {
                    limit: 100,
                    ..filter
                })
                .await
                .unwrap();
            ids(&found)
        }
    };
    let fin = |id: &str| Some(id.to_string());

    assert_eq!(
        list(DeviceFilter::default()).await,
        ["dev_a1", "dev_a2", "dev_a3", "dev_b1"]
    );
    let by_financier = DeviceFilter {
        financier_id: fin("fin_a"),
        ..DeviceFilter::default()
    };
    assert_eq!(
        list(by_financier.clone()).await,
        ["dev_a1", "dev_a2", "dev_a3"]
    );
    let locked = DeviceFilter {
        state: Some("locked".to_string()),
        ..DeviceFilter::default()
    };
    assert_eq!(list(locked.clone()).await, ["dev_a3"]);
    let overdue = DeviceFilter {
        overdue: true,
        ..DeviceFilter::default()
    };
    assert_eq!(list(overdue).await, ["dev_a2", "dev_a3"]);
    let quiet = DeviceFilter {
        not_seen_since_us: Some(T0 + 5 * DAY),
        ..DeviceFilter::default()
    };
    assert_eq!(list(quiet).await, ["dev_a2", "dev_a3", "dev_b1"]);

    // Every fixture device has the same policy text; dev_a2 gets another.
    let standard = new_device("dev_a1", "fin_a").policy_json;
    db.update_device_with("dev_a2", |_| {
        Ok::<_, StoreError>((
            DeviceChange {
                policy_json: Some(r#"{"preset":"kenya"}"#.to_string()),
                ..DeviceChange::default()
            },
            (),
        ))
    })
    .await
    .unwrap();
    let kenya = DeviceFilter {
        policy_json: Some(TextMatch::Is(r#"{"preset":"kenya"}"#.to_string())),
        ..DeviceFilter::default()
    };
    assert_eq!(list(kenya).await, ["dev_a2"]);
    let others = DeviceFilter {
        policy_json: Some(TextMatch::NoneOf(vec![
            r#"{"preset":"kenya"}"#.to_string(),
            "x".to_string(),
        ])),
        ..DeviceFilter::default()
    };
    assert_eq!(list(others).await, ["dev_a1", "dev_a3", "dev_b1"]);
    let none_at_all = DeviceFilter {
        policy_json: Some(TextMatch::NoneOf(vec![
            standard,
            r#"{"preset":"kenya"}"#.to_string(),
        ])),
        ..DeviceFilter::default()
    };
    assert!(list(none_at_all).await.is_empty());

    let all_together = DeviceFilter {
        financier_id: fin("fin_a"),
        state: Some("grace".to_string()),
        overdue: true,
        not_seen_since_us: Some(T0 + 5 * DAY),
        policy_json: Some(TextMatch::Is(r#"{"preset":"kenya"}"#.to_string())),
        after_id: Some("dev_a1".to_string()),
        limit: 0,
    };
    assert_eq!(list(all_together).await, ["dev_a2"]);
    let nothing = DeviceFilter {
        financier_id: fin("fin_b"),
        ..locked
    };
    assert!(list(nothing).await.is_empty());
    let after_the_last = DeviceFilter {
        after_id: Some("dev_a3".to_string()),
        ..by_financier
    };
    assert!(list(after_the_last).await.is_empty());
}

/// Following the cursor page by page yields every device once, in id order.
pub async fn list_devices_pages_by_cursor(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    // Enrolled out of id order, alternating financiers, half of them seen recently.
    let mut expected_a = Vec::new();
    let mut all = Vec::new();
    for i in 0..23 {
        let n = (i * 7) % 23;
        let id = format!("dev_{n:03}");
        let fin = if n % 2 == 0 { "fin_a" } else { "fin_b" };
        enroll(&db, fin, &id, None).await;
        if n % 3 == 0 {
            db.touch_last_seen(&[sighting(&id, T0 + DAY, 0, 0)])
                .await
                .unwrap();
        } else if fin == "fin_a" {
            expected_a.push(id.clone());
        }
        all.push(id);
    }
    all.sort();
    expected_a.sort();

    for (filter, expected) in [
        (DeviceFilter::default(), all),
        (
            DeviceFilter {
                financier_id: Some("fin_a".to_string()),
                not_seen_since_us: Some(T0 + DAY),
                ..DeviceFilter::default()
            },
            expected_a,
        ),
    ] {
        let mut seen = Vec::new();
        let mut after_id = None;
        loop {
            let page = db
                .list_devices(&DeviceFilter {
                    after_id: after_id.clone(),
                    limit: 4,
                    ..filter.clone()
                })
                .await
                .unwrap();
            assert!(page.len() <= 4, "{filter:?}: a page of {}", page.len());
            let Some(last) = page.last() else { break };
            after_id = Some(last.enrolled.id.clone());
            seen.extend(ids(&page));
        }
        assert_eq!(seen, expected, "{filter:?}");
    }
}

/// The check-in read shows the current token and generation; last-seen only moves forward,
/// and so does the request counter, within one binding.
pub async fn checkin_view_and_last_seen(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", Some(T0 + DAY)).await;
    enroll(&db, "fin_a", "dev_2", Some(T0 + DAY)).await;
    not_found(db.checkin_view("dev_missing").await);

    let view = db.checkin_view("dev_1").await.unwrap();
    assert_eq!(view.financier_id, "fin_a");
    assert_eq!(view.binding_generation, 0);
    assert_eq!(view.token, Some(token(1, "active", "ENR1").bytes));
    assert_eq!(view.token_sequence, 1);
    assert_eq!(view.applied_sequence, None);

    update(
        &db,
        "dev_1",
        DeviceChange {
            token: Some(token(2, "locked", "LCK2")),
            binding: Some((b"key".to_vec(), T0)),
            ..DeviceChange::default()
        },
    )
    .await;
    let view = db.checkin_view("dev_1").await.unwrap();
    assert_eq!(view.token, Some(token(2, "locked", "LCK2").bytes));
    assert_eq!((view.token_sequence, view.binding_generation), (2, 1));

    let seen = |id: &'static str| {
        let db = db.clone();
        async move { db.device(id).await.unwrap().last_seen_us }
    };
    db.touch_last_seen(&[]).await.unwrap();
    db.touch_last_seen(&[sighting("dev_1", T0 + 100, 1, 0)])
        .await
        .unwrap();
    assert_eq!(seen("dev_1").await, Some(T0 + 100));
    assert_eq!(seen("dev_2").await, None);
    db.touch_last_seen(&[
        sighting("dev_1", T0 + 50, 1, 0),
        sighting("dev_2", T0 + 70, 0, 0),
    ])
    .await
    .unwrap();
    assert_eq!(seen("dev_1").await, Some(T0 + 100), "moved backwards");
    assert_eq!(seen("dev_2").await, Some(T0 + 70));
    db.touch_last_seen(&[sighting("dev_1", T0 + 200, 1, 0)])
        .await
        .unwrap();
    assert_eq!(seen("dev_1").await, Some(T0 + 200));

    // Request counters: raised under the current binding only, never lowered, seen at once by
    // the check-in view, and started again by a new binding.
    let counter = |id: &'static str| {
        let db = db.clone();
        async move {
            let view = db.checkin_view(id).await.unwrap();
            assert_eq!(
                view.checkin_counter,
                db.device(id).await.unwrap().checkin_counter
            );
            view.checkin_counter
        }
    };
    assert_eq!(counter("dev_1").await, 0);
    db.touch_last_seen(&[sighting("dev_1", T0 + 300, 1, 7)])
        .await
        .unwrap();
    assert_eq!(counter("dev_1").await, 7);
    db.touch_last_seen(&[
        sighting("dev_1", T0 + 400, 1, 5),
        sighting("dev_1", T0 + 400, 0, 9),
    ])
    .await
    .unwrap();
    assert_eq!(
        counter("dev_1").await,
        7,
        "lowered, or raised under another binding"
    );
    db.touch_last_seen(&[
        sighting("dev_1", T0 + 480, 1, 11),
        sighting("dev_1", T0 + 490, 1, 10),
        sighting("dev_2", T0 + 450, 0, 0),
    ])
    .await
    .unwrap();
    assert_eq!(
        counter("dev_1").await,
        11,
        "the highest of one batch's counters"
    );
    assert_eq!(
        seen("dev_1").await,
        Some(T0 + 490),
        "the latest of one batch"
    );
    assert_eq!(seen("dev_2").await, Some(T0 + 450));
    update(&db, "dev_1", with_binding(b"new key", T0 + 500)).await;
    assert_eq!(
        db.checkin_view("dev_1").await.unwrap().binding_generation,
        2
    );
    assert_eq!(
        counter("dev_1").await,
        0,
        "a new binding starts the count again"
    );
    db.touch_last_seen(&[sighting("dev_1", T0 + 600, 1, 8)])
        .await
        .unwrap();
    assert_eq!(
        counter("dev_1").await,
        0,
        "a late write for the old binding"
    );
}

/// A phone seen at `at_us`, under binding `generation`, with request `counter`.
fn sighting(id: &str, at_us: i64, generation: i64, counter: i64) -> Seen {
    Seen {
        device_id: id.to_string(),
        at_us,
        binding_generation: generation,
        counter,
    }
}

/// A status code leads support to every token that showed it, old ones included.
pub async fn tokens_by_status_code(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    enroll(&db, "fin_a", "dev_a", Some(T0 + DAY)).await;
    db.enroll(
        &new_device("dev_b", "fin_b"),
        DeviceChange {
            token: Some(token(1, "active", "K7Q2")),
            ..enrollment("active", 0)
        },
    )
    .await
    .unwrap();
    update(&db, "dev_a", with_token(token(2, "locked", "K7Q2"))).await;

    let found = db.tokens_by_status_code("K7Q2").await.unwrap();
    let expected = [
        ("dev_a", "fin_a", 2, "locked"),
        ("dev_b", "fin_b", 1, "active"),
    ]
    .map(|(device, financier, sequence, state)| StatusCodeMatch {
        device_id: device.to_string(),
        financier_id: financier.to_string(),
        sequence,
        state: state.to_string(),
        issued_us: T0 + sequence,
    });
    assert_eq!(found, expected);
    let first = db.tokens_by_status_code("ENR1").await.unwrap();
    assert_eq!(
        first
            .iter()
            .map(|m| (m.device_id.as_str(), m.sequence))
            .collect::<Vec<_>>(),
        [("dev_a", 1)]
    );
    assert!(db.tokens_by_status_code("ZZZZ").await.unwrap().is_empty());
}

/// The public look-ups see each device's current code and the codes superseded since the
/// cut-off, never older ones; support's look-up still sees every token.
pub async fn recent_status_codes_leave_superseded_ones_out(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_a", None).await;
    enroll(&db, "fin_a", "dev_b", None).await;
    for (sequence, code, issued_us) in [(2, "A2", T0 + DAY), (3, "A3", T0 + 3 * DAY)] {
        update(
            &db,
            "dev_a",
            DeviceChange {
                token: Some(TokenRecord {
                    issued_us,
                    ..token(sequence, "locked", code)
                }),
                ..DeviceChange::default()
            },
        )
        .await;
    }

    // dev_a's first token was superseded a day in, its second on day three.
    assert_eq!(
        db.recent_status_codes("dev_a", T0 + 2 * DAY).await.unwrap(),
        ["A3", "A2"]
    );
    assert_eq!(
        db.recent_status_codes("dev_a", T0 + 4 * DAY).await.unwrap(),
        ["A3"]
    );
    assert_eq!(
        db.recent_status_codes("dev_b", T0 + 4 * DAY).await.unwrap(),
        ["ENR1"]
    );
    assert!(
        db.recent_status_codes("dev_none", T0)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        recent_matches(&db, "ENR1", T0 + 2 * DAY).await,
        [("dev_b".to_string(), 1)]
    );
    assert_eq!(
        recent_matches(&db, "ENR1", T0).await,
        [("dev_a".to_string(), 1), ("dev_b".to_string(), 1)]
    );
    assert_eq!(
        recent_matches(&db, "A2", T0 + 2 * DAY).await,
        [("dev_a".to_string(), 2)]
    );
    assert!(recent_matches(&db, "A2", T0 + 4 * DAY).await.is_empty());
    assert_eq!(db.tokens_by_status_code("ENR1").await.unwrap().len(), 2);
}

/// The devices and sequences the public look-up of `code` finds since `since_us`.
async fn recent_matches(db: &Db, code: &str, since_us: i64) -> Vec<(String, i64)> {
    db.recent_tokens_by_status_code(code, since_us)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.device_id, m.sequence))
        .collect()
}

/// Claimed ids, sorted.
fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Only due devices are claimed; a claim holds until it ends or the device is updated.
pub async fn claim_due_claims_once_until_updated(db: Db) {
    add_financier(&db, "fin_a").await;
    let now = T0 + DAY;
    let claim = 60 * SECOND;
    enroll(&db, "fin_a", "dev_early", Some(now - SECOND)).await;
    enroll(&db, "fin_a", "dev_now", Some(now)).await;
    enroll(&db, "fin_a", "dev_later", Some(now + 2 * claim)).await;
    enroll(&db, "fin_a", "dev_never", None).await;

    assert_eq!(
        sorted(db.claim_due(now, now + claim, 10).await.unwrap()),
        ["dev_early", "dev_now"]
    );
    assert!(db.claim_due(now, now + claim, 10).await.unwrap().is_empty());
    assert!(
        db.claim_due(now + claim - 1, now + 2 * claim, 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed again before the claim ended"
    );

    // Evaluating the device ends its claim; it is due again at its new time.
    update(
        &db,
        "dev_early",
        DeviceChange {
            next_eval_us: Some(now + 10),
            ..DeviceChange::default()
        },
    )
    .await;
    assert!(
        db.claim_due(now + 9, now + claim, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.claim_due(now + 10, now + 10 + claim, 10).await.unwrap(),
        ["dev_early"]
    );

    // After the claims end, whatever is due is claimed again; never-due devices never are.
    let late = now + 2 * claim;
    assert_eq!(
        sorted(db.claim_due(late, late + claim, 10).await.unwrap()),
        ["dev_early", "dev_later", "dev_now"]
    );
    assert!(
        !db.claim_due(i64::MAX - 1, i64::MAX, 10)
            .await
            .unwrap()
            .contains(&"dev_never".to_string())
    );

    // The limit takes the longest-waiting first.
    for id in ["dev_x1", "dev_x2", "dev_x3"] {
        enroll(&db, "fin_a", id, None).await;
    }
    for (id, at) in [("dev_x1", 30), ("dev_x2", 10), ("dev_x3", 20)] {
        update(
            &db,
            id,
            DeviceChange {
                next_eval_us: Some(T0 + at),
                ..DeviceChange::default()
            },
        )
        .await;
    }
    assert_eq!(
        sorted(db.claim_due(T0 + 40, T0 + 40 + claim, 2).await.unwrap()),
        ["dev_x2", "dev_x3"]
    );
}

/// `next_due` is the earliest evaluation time of any device, claimed ones included (the
/// server reports how late the oldest pending evaluation is from it).
pub async fn next_due_is_the_earliest_evaluation(db: Db) {
    assert_eq!(db.next_due().await.unwrap(), None);
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_never", None).await;
    assert_eq!(db.next_due().await.unwrap(), None);
    enroll(&db, "fin_a", "dev_1", Some(T0 + 3 * DAY)).await;
    enroll(&db, "fin_a", "dev_2", Some(T0 + DAY)).await;
    enroll(&db, "fin_a", "dev_3", Some(T0 + 2 * DAY)).await;
    assert_eq!(db.next_due().await.unwrap(), Some(T0 + DAY));

    assert_eq!(
        db.claim_due(T0 + DAY, T0 + DAY + 60 * SECOND, 10)
            .await
            .unwrap(),
        ["dev_2"]
    );
    assert_eq!(db.next_due().await.unwrap(), Some(T0 + DAY));

    update(
        &db,
        "dev_2",
        DeviceChange {
            next_eval_us: Some(T0 + 4 * DAY),
            ..DeviceChange::default()
        },
    )
    .await;
    assert_eq!(db.next_due().await.unwrap(), Some(T0 + 2 * DAY));
}

/// Concurrent changes to one device are applied one after another: each sees the one before
/// (no payment and no decrement of the amount due is lost) and the audit chain does not fork.
pub async fn concurrent_payments_all_apply(db: Db) {
    const N: i64 = 20;
    add_financier(&db, "fin_a").await;
    db.enroll(&new_device("dev_1", "fin_a"), enrollment("grace", N * 100))
        .await
        .unwrap();

    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let store = db.store.clone();
            tokio::spawn(async move {
                let reference = format!("MPESA-{i:02}");
                store
                    .update_device(
                        "dev_1",
                        change(move |snapshot| {
                            let due = snapshot.device.decision.amount_due_minor - 100;
                            DeviceChange {
                                payment: Some(payment(&reference, 100)),
                                decision: Some(decision("grace", due)),
                                audit: vec![entry("payment", &reference)],
                                ..DeviceChange::default()
                            }
                        }),
                    )
                    .await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        if let Err(e) = task.await.expect("the task ran") {
            panic!("payment {i}: {e:?}");
        }
    }

    let snapshot = db.snapshot("dev_1").await.unwrap();
    let references: BTreeSet<_> = snapshot
        .payments
        .iter()
        .map(|p| p.reference.clone())
        .collect();
    assert_eq!(
        references,
        (0..N).map(|i| format!("MPESA-{i:02}")).collect()
    );
    assert_eq!(snapshot.payments.len(), N as usize);
    assert_eq!(snapshot.device.decision.amount_due_minor, 0);
    let chain = db.audit_chain("dev_1").await.unwrap();
    assert_eq!(chain.len(), N as usize + 1);
    assert_eq!(verify_chain(&chain), Ok(()));
}

/// A check-in read never returns a token older than a write that has returned, however the
/// reads and the writes interleave (SQLite serves these reads from a cache).
pub async fn checkin_views_follow_writes(db: Db) {
    const WRITES: i64 = 30;
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", Some(T0 + DAY)).await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let store = db.store.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    store.checkin_view("dev_1").await.unwrap();
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                reads
            })
        })
        .collect();
    for sequence in 2..=WRITES {
        let code = format!("RACE{sequence}");
        update(&db, "dev_1", with_token(token(sequence, "active", &code))).await;
        let seen = db.checkin_view("dev_1").await.unwrap();
        assert_eq!(
            seen.token_sequence, sequence,
            "right after write {sequence}"
        );
        assert_eq!(
            seen.token,
            Some(format!("cose:{code}:{sequence}").into_bytes())
        );
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        assert!(reader.await.unwrap() > 0, "every reader ran");
    }
}

/// A batch writes each device's change in one transaction; a device whose change is refused
/// or breaks a rule is left as it was, and the others are written.
pub async fn batched_changes_are_each_all_or_nothing(db: Db) {
    add_financier(&db, "fin_a").await;
    for id in ["dev_1", "dev_2", "dev_3", "dev_4"] {
        enroll(&db, "fin_a", id, Some(T0 + DAY)).await;
    }
    let before_2 = db.snapshot("dev_2").await.unwrap();
    let before_3 = db.snapshot("dev_3").await.unwrap();
    db.checkin_view("dev_1").await.unwrap();
    let lock = |code: &str| DeviceChange {
        decision: Some(decision("locked", 50)),
        next_eval_us: Some(T0 + 5 * DAY),
        token: Some(token(2, "locked", code)),
        audit: vec![entry("scheduled", "locked")],
        ..DeviceChange::default()
    };
    let refused: ChangeFn = Box::new(|_| Err("not this one".into()));
    let stale = DeviceChange {
        token: Some(token(1, "locked", "STALE")),
        ..lock("STALE")
    };
    let results = db
        .update_devices(vec![
            ("dev_1".to_string(), fixed(lock("B1"))),
            ("dev_2".to_string(), refused),
            ("dev_3".to_string(), fixed(stale)),
            ("dev_4".to_string(), fixed(lock("B4"))),
        ])
        .await
        .expect("the batch commits");
    assert_eq!(results.len(), 4);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(StoreError::Refused(_))),
        "{:?}",
        results[1]
    );
    assert!(
        matches!(results[2], Err(StoreError::Conflict(_))),
        "{:?}",
        results[2]
    );
    assert!(results[3].is_ok(), "{:?}", results[3]);
    for id in ["dev_1", "dev_4"] {
        assert_eq!(
            db.device(id).await.unwrap().decision.state,
            "locked",
            "{id}"
        );
    }

    assert_eq!(db.snapshot("dev_2").await.unwrap(), before_2);
    assert_eq!(db.snapshot("dev_3").await.unwrap(), before_3);
    assert!(db.tokens_by_status_code("STALE").await.unwrap().is_empty());
    for id in ["dev_1", "dev_4"] {
        assert_eq!(db.checkin_view(id).await.unwrap().token_sequence, 2, "{id}");
        let chain = db.audit_chain(id).await.unwrap();
        assert_eq!(chain.len(), 2, "{id}");
        assert_eq!(verify_chain(&chain), Ok(()));
    }
}

/// A batch reads its devices a table at a time: each change still sees exactly its own
/// device's payments, reversals, overrides and financier, as a read of that device alone
/// does; every written device's audit chain stays whole, and each is announced once.
pub async fn a_batch_sees_each_device_as_a_single_read_does(db: Db) {
    use lien_store::DeviceFeed;
    use std::time::Duration;

    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    let ids = ["dev_1", "dev_2", "dev_3", "dev_4", "dev_5"];
    for id in ids {
        let financier = if id == "dev_5" { "fin_b" } else { "fin_a" };
        enroll(&db, financier, id, Some(T0 + DAY)).await;
    }
    for (id, reference) in [("dev_1", "P1"), ("dev_1", "P2"), ("dev_3", "P3")] {
        let amount = if reference == "P2" { 2_500 } else { 1_000 };
        update(
            &db,
            id,
            DeviceChange {
                payment: Some(payment(reference, amount)),
                ..DeviceChange::default()
            },
        )
        .await;
    }
    update(
        &db,
        "dev_3",
        DeviceChange {
            new_override: Some(manual_lock()),
            reversal: Some(ReversalRecord {
                reference: "P3".into(),
                at_us: T0 + 3 * SECOND,
                recorded_us: T0 + 3 * SECOND,
                reason: "chargeback".into(),
            }),
            ..DeviceChange::default()
        },
    )
    .await;
    let mut feed = listening_feed(&db).await;
    let mut changes = Vec::new();
    for id in ids {
        let expected = db.snapshot(id).await.unwrap();
        let check: ChangeFn = Box::new(move |seen| {
            if *seen != expected {
                return Err(format!(
                    "{} saw {seen:?}, alone it reads {expected:?}",
                    expected.device.enrolled.id
                )
                .into());
            }
            Ok(DeviceChange {
                token: Some(token(2, "active", &format!("B{}", seen.device.enrolled.id))),
                next_eval_us: Some(T0 + 2 * DAY),
                audit: vec![entry("scheduled", "batch")],
                ..DeviceChange::default()
            })
        });
        changes.push((id.to_string(), check));
    }
    let results = db.update_devices(changes).await.expect("the batch commits");
    for (id, result) in ids.iter().zip(&results) {
        assert!(result.is_ok(), "{id}: {result:?}");
        assert_eq!(db.checkin_view(id).await.unwrap().token_sequence, 2, "{id}");
        assert_eq!(
            verify_chain(&db.audit_chain(id).await.unwrap()),
            Ok(()),
            "{id}"
        );
    }
    let mut announced = BTreeSet::new();
    while announced.len() < ids.len() {
        match tokio::time::timeout(Duration::from_secs(10), feed.recv()).await {
            Ok(Ok(DeviceFeed::Changed(id))) => assert!(announced.insert(id.clone()), "{id} twice"),
            Ok(Ok(DeviceFeed::Resync)) => {}
            other => panic!("announced {announced:?}, then {other:?}"),
        }
    }
    assert_eq!(announced, ids.iter().map(|id| id.to_string()).collect());
}

/// A change decided on a snapshot read outside any write is written only while the device is
/// as it was read: a payment recorded in between leaves that device's change out, as a
/// conflict, and the group's other devices are written. Every write moves the version.
pub async fn a_change_decided_on_a_stale_read_is_left_out(db: Db) {
    add_financier(&db, "fin_a").await;
    let ids = ["dev_1", "dev_2", "dev_3"];
    for id in ids {
        enroll(&db, "fin_a", id, Some(T0 + DAY)).await;
    }
    let read = db
        .snapshots(&ids.map(String::from))
        .await
        .expect("the snapshots");
    assert_eq!(
        read.iter()
            .map(|s| s.device.enrolled.id.as_str())
            .collect::<Vec<_>>(),
        ids
    );
    let paid = update(
        &db,
        "dev_2",
        DeviceChange {
            payment: Some(payment("P1", 1_000)),
            token: Some(token(2, "active", "PAID")),
            ..DeviceChange::default()
        },
    )
    .await;
    assert!(
        paid.version > read[1].device.version,
        "a write moves the version"
    );
    let decided = read
        .into_iter()
        .map(|snapshot| {
            // Above the paid token's sequence, so that only the version can refuse it.
            let change = DeviceChange {
                token: Some(token(3, "locked", "LATE")),
                next_eval_us: Some(T0 + 2 * DAY),
                audit: vec![entry("scheduled", "decided earlier")],
                ..DeviceChange::default()
            };
            (snapshot.device, change)
        })
        .collect();
    let results = db.write_decided(decided).await.expect("the group commits");
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(results[2].is_ok(), "{:?}", results[2]);
    let message = match results.into_iter().nth(1).unwrap() {
        Err(StoreError::VersionConflict { device_id }) => device_id,
        other => panic!("expected StoreError::VersionConflict, got {other:?}"),
    };
    assert!(message.contains("dev_2"), "{message}");
    let kept = db.device("dev_2").await.unwrap();
    assert_eq!(kept.token.map(|t| t.status_code), Some("PAID".to_string()));
    assert_eq!(kept.next_eval_us, paid.next_eval_us);
    assert_eq!(kept.version, paid.version);
    for id in ["dev_1", "dev_3"] {
        let written = db.device(id).await.unwrap();
        assert_eq!(
            written.token.map(|t| t.status_code),
            Some("LATE".to_string())
        );
        assert_eq!(written.next_eval_us, Some(T0 + 2 * DAY));
        assert_eq!(db.audit_chain(id).await.unwrap().len(), 2, "{id}");
    }
}

/// A group enrollment stores each device as enrolling it alone does, in one transaction; a
/// group with one taken IMEI is refused as a whole and leaves nothing.
pub async fn a_group_enrolls_all_or_none(db: Db) {
    add_financier(&db, "fin_a").await;
    let group = |ids: &[&str]| -> Vec<(NewDevice, DeviceChange)> {
        ids.iter()
            .map(|id| {
                let change = DeviceChange {
                    next_eval_us: Some(T0 + DAY),
                    ..enrollment("active", 0)
                };
                (new_device(id, "fin_a"), change)
            })
            .collect()
    };
    db.enroll_all(group(&["dev_1", "dev_2", "dev_3"]))
        .await
        .expect("the group enrolls");
    let alone = enroll(&db, "fin_a", "dev_4", Some(T0 + DAY)).await;
    for id in ["dev_1", "dev_2", "dev_3"] {
        let stored = db.device(id).await.unwrap();
        assert_eq!(stored.enrolled, new_device(id, "fin_a"));
        assert_eq!(stored.decision, alone.decision, "{id}");
        assert_eq!(stored.next_eval_us, alone.next_eval_us, "{id}");
        assert_eq!(stored.token.as_ref().map(|t| t.sequence), Some(1), "{id}");
        assert_eq!(db.device_by_imei(&imei(id)).await.unwrap().enrolled.id, id);
        let chain = db.audit_chain(id).await.unwrap();
        assert_eq!(chain.len(), 1, "{id}");
        assert_eq!(verify_chain(&chain), Ok(()));
    }

    let mut taken = group(&["dev_5", "dev_6"]);
    taken[1].0.imei1 = imei("dev_2");
    let message = conflict(db.enroll_all(taken).await);
    assert!(message.contains("IMEI"), "{message}");
    for id in ["dev_5", "dev_6"] {
        assert!(
            matches!(db.device(id).await, Err(StoreError::NotFound)),
            "{id}"
        );
    }
    assert!(matches!(
        db.device_by_imei(&imei("dev_5")).await,
        Err(StoreError::NotFound)
    ));
}

/// A write whose caller gives up (an HTTP client that disconnects) still runs to its end, so
/// no commit can land without the check-in cache and the push feed hearing of it.
pub async fn a_write_finishes_when_its_caller_gives_up(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", Some(T0 + DAY)).await;
    assert_eq!(db.checkin_view("dev_1").await.unwrap().token_sequence, 1);
    let (computed, change_ran) = tokio::sync::oneshot::channel();
    let change: ChangeFn = Box::new(move |_| {
        let _ = computed.send(());
        Ok(with_token(token(2, "active", "GIVEUP")))
    });
    let store = db.store.clone();
    let caller = tokio::spawn(async move { store.update_device("dev_1", change).await });
    change_ran.await.expect("the change was computed");
    caller.abort();
    for _ in 0..200 {
        if db.checkin_view("dev_1").await.unwrap().token_sequence == 2 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the abandoned write never became visible to check-ins");
}

/// Two schedulers claiming at once split the due devices between them.
pub async fn concurrent_claims_are_disjoint(db: Db) {
    const N: usize = 50;
    add_financier(&db, "fin_a").await;
    for i in 0..N {
        enroll(&db, "fin_a", &format!("dev_{i:02}"), Some(T0 + i as i64)).await;
    }
    let now = T0 + DAY;
    // Each may take 30, so both must claim some for all 50 to be claimed.
    let claims: Vec<_> = (0..2)
        .map(|_| {
            let store = db.store.clone();
            tokio::spawn(async move { store.claim_due(now, now + 60 * SECOND, 30).await })
        })
        .collect();
    let mut claimed = Vec::new();
    for claim in claims {
        let ids = claim.await.expect("the task ran").expect("claim_due");
        assert!(ids.len() <= 30, "{} claimed over the limit", ids.len());
        claimed.extend(ids);
    }
    let distinct: BTreeSet<_> = claimed.iter().cloned().collect();
    assert_eq!(distinct.len(), claimed.len(), "claimed twice: {claimed:?}");
    assert_eq!(
        distinct,
        (0..N)
            .map(|i| format!("dev_{i:02}"))
            .collect::<BTreeSet<_>>()
    );
}

/// The change feed announces a committed change of a device's token or binding, once, and
/// nothing for a refused change or a change that leaves both alone (a phone's report).
/// On PostgreSQL the announcement is a `NOTIFY` sent in the change's transaction.
pub async fn committed_token_changes_are_announced(db: Db) {
    use lien_store::DeviceFeed;
    use std::time::Duration;
    use tokio::sync::broadcast::Receiver;

    async fn next(feed: &mut Receiver<DeviceFeed>, within: Duration) -> Option<DeviceFeed> {
        loop {
            match tokio::time::timeout(within, feed.recv()).await {
                Err(_) => return None,
                Ok(Ok(DeviceFeed::Resync)) => continue,
                Ok(message) => return Some(message.expect("the feed is open")),
            }
        }
    }

    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", Some(T0 + DAY)).await;
    let mut feed = listening_feed(&db).await;
    let quiet = Duration::from_millis(300);

    conflict(
        db.update_device("dev_1", fixed(with_token(token(1, "locked", "STALE"))))
            .await,
    );
    update(
        &db,
        "dev_1",
        DeviceChange {
            applied_sequence: Some(1),
            next_eval_us: Some(T0 + DAY),
            ..DeviceChange::default()
        },
    )
    .await;
    assert_eq!(next(&mut feed, quiet).await, None);

    update(
        &db,
        "dev_1",
        DeviceChange {
            token: Some(token(2, "locked", "SEQ2")),
            next_eval_us: Some(T0 + DAY),
            ..DeviceChange::default()
        },
    )
    .await;
    assert_eq!(
        next(&mut feed, Duration::from_secs(10)).await,
        Some(DeviceFeed::Changed("dev_1".into()))
    );
    assert_eq!(next(&mut feed, quiet).await, None);
}

/// An appeal is written with its device change, overrides included; a second open appeal of
/// the device is refused and leaves nothing; an answer applies once; the list filters; a
/// released IMEI's date is found after its claim is gone.
pub async fn appeals_are_written_with_the_change_and_answered_once(db: Db) {
    use lien_store::{AppealFilter, AppealRecord, AppealWrite, AttachmentRecord};
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    enroll(&db, "fin_a", "dev_01", None).await;
    enroll(&db, "fin_b", "dev_02", None).await;
    let appeal = |reference: &str, device: &str, financier: &str| AppealRecord {
        reference: reference.into(),
        device_id: device.into(),
        financier_id: financier.into(),
        claim: "paid".into(),
        contact: "+254 700".into(),
        statement: String::new(),
        payment_reference: Some("MP-1".into()),
        paid_on: Some("2026-02-03".into()),
        amount_minor: Some(100_000),
        currency: Some("KES".into()),
        status: "open".into(),
        opened_us: 10,
        deadline_us: 20,
        unlock_until_us: Some(30),
        decided_us: None,
        decided_by: None,
        decision_reason: None,
        attachment: Some(AttachmentRecord {
            path: format!("appeals/{reference}.png"),
            media_type: "image/png".into(),
            size: 12,
            sha256: vec![7; 32],
        }),
    };
    let freeze = OverrideRecord {
        id: 0,
        kind: "dispute_freeze".into(),
        reason: "appeal".into(),
        from_us: 10,
        until_us: None,
        cancelled_us: None,
        actor: "appeal:AP-1".into(),
        created_us: 10,
    };
    let unlock = OverrideRecord {
        kind: "provisional_unlock".into(),
        from_us: 20,
        until_us: Some(30),
        ..freeze.clone()
    };
    let first = appeal("AP-1", "dev_01", "fin_a");
    update(
        &db,
        "dev_01",
        DeviceChange {
            new_override: Some(freeze.clone()),
            more_overrides: vec![unlock.clone()],
            appeal: Some(AppealWrite::Open(Box::new(first.clone()))),
            audit: vec![entry("appeal_opened", "AP-1")],
            ..DeviceChange::default()
        },
    )
    .await;
    assert_eq!(db.appeal("AP-1").await.unwrap(), first);
    let kinds: Vec<_> = db
        .snapshot("dev_01")
        .await
        .unwrap()
        .overrides
        .iter()
        .map(|o| (o.kind.clone(), o.actor.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("dispute_freeze".to_string(), "appeal:AP-1".to_string()),
            ("provisional_unlock".to_string(), "appeal:AP-1".to_string())
        ]
    );

    // A second open appeal of the same device is refused, with its overrides and audit.
    let refused = db
        .update_device(
            "dev_01",
            fixed(DeviceChange {
                new_override: Some(freeze.clone()),
                appeal: Some(AppealWrite::Open(Box::new(appeal(
                    "AP-2", "dev_01", "fin_a",
                )))),
                audit: vec![entry("appeal_opened", "AP-2")],
                ..DeviceChange::default()
            }),
        )
        .await;
    assert!(conflict(refused).contains("already open"));
    not_found(db.appeal("AP-2").await);
    assert_eq!(db.snapshot("dev_01").await.unwrap().overrides.len(), 2);
    assert_eq!(db.audit_chain("dev_01").await.unwrap().len(), 2);

    let decide = || AppealWrite::Decide {
        reference: "AP-1".into(),
        status: "rejected".into(),
        decided_us: 15,
        decided_by: "key_1".into(),
        reason: "no such payment".into(),
    };
    update(
        &db,
        "dev_01",
        DeviceChange {
            appeal: Some(decide()),
            ..DeviceChange::default()
        },
    )
    .await;
    let answered = db.appeal("AP-1").await.unwrap();
    assert_eq!(answered.status, "rejected");
    assert_eq!(answered.decision_reason.as_deref(), Some("no such payment"));
    let again = db
        .update_device(
            "dev_01",
            fixed(DeviceChange {
                appeal: Some(decide()),
                audit: vec![entry("appeal_rejected", "again")],
                ..DeviceChange::default()
            }),
        )
        .await;
    assert!(conflict(again).contains("already answered"));
    // Once answered, the device may be appealed again.
    update(
        &db,
        "dev_01",
        DeviceChange {
            appeal: Some(AppealWrite::Open(Box::new(AppealRecord {
                opened_us: 40,
                ..appeal("AP-3", "dev_01", "fin_a")
            }))),
            ..DeviceChange::default()
        },
    )
    .await;
    update(
        &db,
        "dev_02",
        DeviceChange {
            appeal: Some(AppealWrite::Open(Box::new(appeal(
                "AP-4", "dev_02", "fin_b",
            )))),
            ..DeviceChange::default()
        },
    )
    .await;

    let list = |financier: Option<&str>, status: Option<&str>| AppealFilter {
        financier_id: financier.map(str::to_string),
        status: status.map(str::to_string),
        device_id: None,
        limit: 100,
        soonest_deadline_first: false,
    };
    let refs = |appeals: Vec<AppealRecord>| -> Vec<String> {
        appeals.into_iter().map(|a| a.reference).collect()
    };
    assert_eq!(
        refs(db.list_appeals(&list(Some("fin_a"), None)).await.unwrap()),
        ["AP-3", "AP-1"]
    );
    assert_eq!(
        refs(db.list_appeals(&list(None, Some("open"))).await.unwrap()),
        ["AP-3", "AP-4"]
    );
    not_found(db.appeal("AP-404").await);

    // The IMEI history: nothing released yet; after the release, its date.
    let dev = db.device("dev_02").await.unwrap();
    assert_eq!(db.last_release(&dev.enrolled.imei1).await.unwrap(), None);
    update(
        &db,
        "dev_02",
        DeviceChange {
            released_us: Some(99),
            ..DeviceChange::default()
        },
    )
    .await;
    not_found(db.device_by_imei(&dev.enrolled.imei1).await);
    assert_eq!(
        db.last_release(&dev.enrolled.imei1).await.unwrap(),
        Some(99)
    );
}

/// A store that warms a check-in cache when it opens (SQLite) never keeps a view older than a
/// write that committed while the warm-up ran: after it, every device written meanwhile reads
/// its new token, and the others their old one. The warm-up reads thousands of rows over many
/// milliseconds while batches of writes commit across the table, so a warm-up that kept what
/// it read without regard to those writes would keep some of their old tokens.
pub async fn warm_up_keeps_no_view_older_than_a_write(db: Db) {
    use lien_store::Devices as _;
    const COPIES: i64 = 20_000;
    const BATCH: usize = 50;
    const MAX_RESTARTS: usize = 20;
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_1", Some(T0 + DAY)).await;
    // The fleet, copied from dev_1 in one statement: enrolling each would take minutes.
    {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
             INSERT INTO devices (id, financier_id, contract_ref, imei1, imei2, serial, model, \
             plan_json, policy_json, enrolled_us, state, decision_json, amount_due_minor, \
             currency, binding_generation, token_sequence, token_state, token_issued_us, \
             token_lease_end_us, token, applied_sequence, last_seen_us) \
             SELECT 'dev_w' || i, financier_id, contract_ref || '-' || i, imei1, imei2, serial, \
             model, plan_json, policy_json, enrolled_us, state, decision_json, amount_due_minor, \
             currency, binding_generation, token_sequence, token_state, token_issued_us, \
             token_lease_end_us, token, applied_sequence, i FROM n, devices WHERE id = 'dev_1'",
        )
        .bind(COPIES)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let url = db.url.clone();
    let sqlite = url.starts_with("sqlite:");
    // A restart: on SQLite the file is served by one store at a time.
    drop(db);
    let mut store = SqlStore::open(&url).await.expect("reopening");

    // Devices in an order that spreads each batch over the whole table.
    let order: Vec<String> = (0..COPIES)
        .map(|i| format!("dev_w{}", 1 + (i * 7_919) % COPIES))
        .collect();
    let mut written = 0;
    let mut during_warm_up = 0;
    let mut restarts = 0;
    for batch in order.chunks(BATCH) {
        let changes = batch
            .iter()
            .map(|id| {
                let change = with_token(token(2, "active", "WARM2"));
                (id.clone(), fixed(change))
            })
            .collect();
        for result in store.update_devices(changes).await.unwrap() {
            result.unwrap();
        }
        written += batch.len();
        let warm_up = store.checkin_cache_warm_up();
        if sqlite && warm_up.is_none() {
            // The warm-up began when the store opened, so this batch committed during it.
            during_warm_up += 1;
        } else if sqlite && during_warm_up == 0 && restarts < MAX_RESTARTS {
            // On a busy machine the first batch can take longer than the whole warm-up; a
            // restart begins another, and the devices written so far read as written.
            drop(store);
            store = SqlStore::open(&url).await.expect("reopening");
            restarts += 1;
        } else if warm_up.is_some() || written >= 5 * BATCH {
            // PostgreSQL has no cache to warm: a few batches show the same reads.
            break;
        }
    }
    if sqlite {
        let (kept, took) = store
            .checkin_cache_warm_up()
            .expect("the warm-up ended before the writes ran out");
        assert!(kept > 0, "the warm-up kept nothing (took {took:?})");
        assert!(
            during_warm_up > 0,
            "no batch committed while any of {} warm-ups ran: the check shows nothing",
            restarts + 1
        );
    }
    for (i, id) in order.iter().enumerate() {
        let expected = if i < written { 2 } else { 1 };
        // Every written device, and one in fifty of the others.
        if expected == 1 && i % 50 != 0 {
            continue;
        }
        let view = store.checkin_view(id).await.unwrap();
        assert_eq!(
            view.token_sequence, expected,
            "{id}, {written} written, {during_warm_up} batches during the warm-up"
        );
    }
}

/// A document put under a key comes back byte for byte with its media type, from a second
/// opening of the same database too (another server); a taken key is a conflict and leaves the
/// first document; a deleted or never-stored key is not found, and deleting it again is no error.
pub async fn attachments_are_kept_whole_by_key(db: Db) {
    let content: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    db.put_attachment("appeals/AP-1.pdf", &content, "application/pdf", 1)
        .await
        .unwrap();
    let (bytes, media_type) = db.attachment("appeals/AP-1.pdf").await.unwrap();
    assert_eq!(bytes, content);
    assert_eq!(media_type, "application/pdf");
    if db.url.starts_with("postgres") {
        let other = SqlStore::open(&db.url).await.unwrap();
        let (bytes, _) = other.attachment("appeals/AP-1.pdf").await.unwrap();
        assert_eq!(bytes, content);
    }
    match db
        .put_attachment("appeals/AP-1.pdf", b"other", "image/png", 2)
        .await
    {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(db.attachment("appeals/AP-1.pdf").await.unwrap().0, content);
    assert!(matches!(
        db.attachment("appeals/AP-2.png").await,
        Err(StoreError::NotFound)
    ));
    db.delete_attachment("appeals/AP-1.pdf").await.unwrap();
    assert!(matches!(
        db.attachment("appeals/AP-1.pdf").await,
        Err(StoreError::NotFound)
    ));
    db.delete_attachment("appeals/AP-1.pdf").await.unwrap();
}
