//! Small builders for the records the checks store, and assertions on store errors.

use std::fmt::Debug;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use lien_store::{
    ApiKeyRecord, AuditEntry, AuditRecord, ChangeFn, DecisionRecord, DeviceChange, DeviceRecord,
    DeviceSnapshot, Financier, NewDevice, OverrideRecord, PaymentRecord, StoreError, TokenRecord,
};

use crate::Db;

/// A fixed "now" for the checks (2023-11-14), Unix microseconds.
pub const T0: i64 = 1_700_000_000_000_000;
/// One second and one day, in microseconds.
pub const SECOND: i64 = 1_000_000;
/// One day, in microseconds.
pub const DAY: i64 = 86_400 * SECOND;

/// A financier named after its id.
pub fn financier(id: &str) -> Financier {
    Financier {
        id: id.to_string(),
        name: format!("Lender {id}"),
        contact: "+254 700 000 000".to_string(),
        payment_link: Some(format!("https://pay.example/{id}")),
        created_us: T0,
    }
}

/// Stores `financier(id)`.
pub async fn add_financier(db: &Db, id: &str) -> Financier {
    let f = financier(id);
    db.create_financier(&f, &entry("financier.create", id))
        .await
        .unwrap_or_else(|e| panic!("creating financier {id}: {e:?}"));
    f
}

/// An audit entry at `T0` by an API key.
pub fn entry(action: &str, reason: &str) -> AuditEntry {
    AuditEntry {
        at_us: T0,
        actor: "key_test".to_string(),
        action: action.to_string(),
        reason: reason.to_string(),
        before_json: "{}".to_string(),
        after_json: format!("{{\"action\":\"{action}\"}}"),
    }
}

/// A 15-digit IMEI derived from `seed`, the same for the same seed in every run.
pub fn imei(seed: &str) -> String {
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(seed);
    format!("35{:013}", hash % 10_000_000_000_000)
}

/// A single-SIM phone of `financier`, with IMEI `imei(id)` and contract `C-<id>`.
pub fn new_device(id: &str, financier: &str) -> NewDevice {
    NewDevice {
        id: id.to_string(),
        financier_id: financier.to_string(),
        contract_ref: format!("C-{id}"),
        imei1: imei(id),
        imei2: None,
        serial: format!("SN-{id}"),
        model: "Tecno Spark 20".to_string(),
        plan_json: r#"{"installments":12}"#.to_string(),
        policy_json: r#"{"grace_days":3}"#.to_string(),
        enrolled_us: T0,
    }
}

/// A decision in `state` with `due` minor units due.
pub fn decision(state: &str, due: i64) -> DecisionRecord {
    DecisionRecord {
        state: state.to_string(),
        json: format!(r#"{{"state":"{state}","due":{due}}}"#),
        amount_due_minor: due,
        currency: "KES".to_string(),
        overdue_since: None,
    }
}

/// A token with sequence `sequence` in `state`, whose lock screen shows `code`.
pub fn token(sequence: i64, state: &str, code: &str) -> TokenRecord {
    TokenRecord {
        sequence,
        state: state.to_string(),
        issued_us: T0 + sequence,
        lease_end_us: Some(T0 + 7 * DAY),
        status_code: code.to_string(),
        bytes: format!("cose:{code}:{sequence}").into_bytes(),
    }
}

/// What an enrollment writes: the first decision (due in a day), token 1 and an audit record.
pub fn enrollment(state: &str, due: i64) -> DeviceChange {
    DeviceChange {
        decision: Some(decision(state, due)),
        next_eval_us: Some(T0 + DAY),
        token: Some(token(1, state, "ENR1")),
        audit: vec![entry("device.enroll", "new contract")],
        ..DeviceChange::default()
    }
}

/// Enrolls `new_device(id, financier)`, active with nothing due, evaluated at `next_eval_us`.
pub async fn enroll(db: &Db, financier: &str, id: &str, next_eval_us: Option<i64>) -> DeviceRecord {
    let change = DeviceChange {
        next_eval_us,
        ..enrollment("active", 0)
    };
    db.enroll(&new_device(id, financier), change)
        .await
        .unwrap_or_else(|e| panic!("enrolling {id}: {e:?}"))
}

/// A payment of `amount` shillings' minor units.
pub fn payment(reference: &str, amount: i64) -> PaymentRecord {
    PaymentRecord {
        reference: reference.to_string(),
        amount_minor: amount,
        currency: "KES".to_string(),
        received_us: T0 + SECOND,
        recorded_us: T0 + 2 * SECOND,
        acknowledged_us: None,
    }
}

/// A change function computed from the snapshot that never refuses.
pub fn change(f: impl FnOnce(&DeviceSnapshot) -> DeviceChange + Send + 'static) -> ChangeFn {
    Box::new(move |snapshot| Ok(f(snapshot)))
}

/// A change function that ignores the snapshot.
pub fn fixed(c: DeviceChange) -> ChangeFn {
    change(move |_| c)
}

/// A change that only writes `t` as the current token.
pub fn with_token(t: TokenRecord) -> DeviceChange {
    DeviceChange {
        token: Some(t),
        ..DeviceChange::default()
    }
}

/// A change that only binds the device to `key` at `at_us`.
pub fn with_binding(key: &[u8], at_us: i64) -> DeviceChange {
    DeviceChange {
        binding: Some((key.to_vec(), at_us)),
        ..DeviceChange::default()
    }
}

/// A change that only adds `o`.
pub fn with_override(o: OverrideRecord) -> DeviceChange {
    DeviceChange {
        new_override: Some(o),
        ..DeviceChange::default()
    }
}

/// A change that only records a payment of `amount` with this reference.
pub fn with_payment(reference: &str, amount: i64) -> DeviceChange {
    DeviceChange {
        payment: Some(payment(reference, amount)),
        ..DeviceChange::default()
    }
}

/// What is written about device `id`: its snapshot and its audit chain.
pub async fn written(db: &Db, id: &str) -> (DeviceSnapshot, Vec<AuditRecord>) {
    (
        db.snapshot(id).await.unwrap(),
        db.audit_chain(id).await.unwrap(),
    )
}

/// Revokes key `id` at `at_us`, audited in `chain` as `api_key_revoked` with `detail`.
pub async fn revoke(
    db: &Db,
    id: &str,
    at_us: i64,
    chain: &str,
    detail: &str,
) -> Result<ApiKeyRecord, StoreError> {
    db.revoke_api_key(id, at_us, chain, &entry("api_key_revoked", detail))
        .await
}

/// Enrolls device `id` of `financier_id`, active, with a second IMEI made from `imei2_seed`;
/// returns what was enrolled.
pub async fn enroll_with_imei2(
    db: &Db,
    id: &str,
    financier_id: &str,
    imei2_seed: &str,
) -> NewDevice {
    let device = NewDevice {
        imei2: Some(imei(imei2_seed)),
        ..new_device(id, financier_id)
    };
    db.enroll(&device, enrollment("active", 0)).await.unwrap();
    device
}

/// Applies `c` to device `id`, which must succeed.
pub async fn update(db: &Db, id: &str, c: DeviceChange) -> DeviceRecord {
    db.update_device(id, fixed(c))
        .await
        .unwrap_or_else(|e| panic!("updating {id}: {e:?}"))
}

/// The message of a `Conflict`; anything else fails the check.
#[track_caller]
pub fn conflict<T: Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Conflict(message)) => message,
        other => panic!("expected StoreError::Conflict, got {other:?}"),
    }
}

/// Fails the check unless `result` is `NotFound`.
#[track_caller]
pub fn not_found<T: Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("expected StoreError::NotFound, got {other:?}"),
    }
}

/// The caller's error inside a `Refused`; anything else fails the check.
#[track_caller]
pub fn refused<T: Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Refused(reason)) => reason.to_string(),
        other => panic!("expected StoreError::Refused, got {other:?}"),
    }
}

/// The ids of `devices`, in their order.
pub fn ids(devices: &[DeviceRecord]) -> Vec<String> {
    devices.iter().map(|d| d.enrolled.id.clone()).collect()
}

/// The store's change feed, once it is listening: on PostgreSQL the listener announces that
/// it listens with a resynchronisation, which this waits for.
pub async fn listening_feed(db: &Db) -> tokio::sync::broadcast::Receiver<lien_store::DeviceFeed> {
    let mut feed = db.device_changes();
    if db.backend() == "postgres" {
        let listening = tokio::time::timeout(std::time::Duration::from_secs(10), feed.recv()).await;
        assert_eq!(
            listening.expect("LISTEN is up").unwrap(),
            lien_store::DeviceFeed::Resync
        );
    }
    feed
}
