//! Checks of the console's people, invitations and sessions.

use lien_store::{
    ArrearsAge, ArrearsByAge, DeviceChange, InvitationRecord, PersonRecord, SessionRecord,
    StoreError,
};

use crate::Db;
use crate::fixtures::*;

const HOUR: i64 = 3_600_000_000;

fn person(id: &str, email: &str) -> PersonRecord {
    PersonRecord {
        id: id.to_string(),
        email: email.to_string(),
        name: String::new(),
        role: "financier-admin".to_string(),
        financier_id: Some("fin_a".to_string()),
        password_hash: None,
        invited_by: "key_test".to_string(),
        created_us: T0,
        disabled_us: None,
    }
}

fn invitation(token: u8, person_id: &str) -> InvitationRecord {
    InvitationRecord {
        token_hash: vec![token; 32],
        person_id: person_id.to_string(),
        created_us: T0,
        expires_us: T0 + 24 * HOUR,
        accepted_us: None,
    }
}

fn session(id: u8, person_id: &str, at_us: i64) -> SessionRecord {
    SessionRecord {
        id_hash: vec![id; 32],
        person_id: person_id.to_string(),
        csrf: format!("csrf-{id}"),
        created_us: at_us,
        last_seen_us: at_us,
        expires_us: at_us + 12 * HOUR,
        revoked_us: None,
    }
}

/// An invitation is accepted once, even when two acceptances race, and not after it expires;
/// an address is invited once; sessions are found, touched and revoked.
pub async fn invitations_are_accepted_once_and_sessions_end(db: Db) {
    add_financier(&db, "fin_a").await;
    let audit = entry("person_invited", "per_a");
    db.invite(
        &person("per_a", "a@duka.example"),
        &invitation(1, "per_a"),
        "financier:fin_a",
        &audit,
    )
    .await
    .unwrap();
    let taken = db
        .invite(
            &person("per_b", "a@duka.example"),
            &invitation(2, "per_b"),
            "financier:fin_a",
            &audit,
        )
        .await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    not_found(db.invitation(&[2; 32]).await);
    assert!(
        db.person_by_email("a@duka.example")
            .await
            .unwrap()
            .password_hash
            .is_none(),
        "no password before the invitation is accepted"
    );

    // Two acceptances at once: one opens its session, the other finds the link used.
    let accept = |id: u8| {
        let db = db.clone();
        async move {
            db.accept_invitation(
                &[1; 32],
                &format!("Name {id}"),
                &format!("$argon2id$hash{id}"),
                &session(id, "per_a", T0 + HOUR),
                "financier:fin_a",
                &entry("invitation_accepted", "per_a"),
            )
            .await
        }
    };
    let (first, second) = tokio::join!(accept(10), accept(11));
    let won = match (&first, &second) {
        (Ok(_), Err(StoreError::NotFound)) => 10,
        (Err(StoreError::NotFound), Ok(_)) => 11,
        other => panic!("exactly one acceptance wins: {other:?}"),
    };
    let stored = db.person_by_email("a@duka.example").await.unwrap();
    assert_eq!(stored.name, format!("Name {won}"));
    assert_eq!(stored.password_hash, Some(format!("$argon2id$hash{won}")));
    let (found, whose) = db.session(&[won; 32]).await.unwrap();
    assert_eq!(
        (found.csrf.as_str(), whose.id.as_str()),
        (&*format!("csrf-{won}"), "per_a")
    );
    not_found(db.session(&[21 - won; 32]).await);
    let (used, _) = db.invitation(&[1; 32]).await.unwrap();
    assert_eq!(used.accepted_us, Some(T0 + HOUR));

    // An expired invitation is not accepted, and leaves no session.
    db.invite(
        &person("per_c", "c@duka.example"),
        &invitation(3, "per_c"),
        "financier:fin_a",
        &audit,
    )
    .await
    .unwrap();
    let late = db
        .accept_invitation(
            &[3; 32],
            "Late",
            "$argon2id$late",
            &session(30, "per_c", T0 + 24 * HOUR),
            "financier:fin_a",
            &entry("invitation_accepted", "per_c"),
        )
        .await;
    not_found(late);
    not_found(db.session(&[30; 32]).await);

    // Touching moves the last use forward only; revoking ends it once.
    db.touch_session(&[won; 32], T0 + 2 * HOUR).await.unwrap();
    db.touch_session(&[won; 32], T0 + HOUR).await.unwrap();
    assert_eq!(
        db.session(&[won; 32]).await.unwrap().0.last_seen_us,
        T0 + 2 * HOUR
    );
    db.revoke_session(&[won; 32], T0 + 3 * HOUR).await.unwrap();
    db.revoke_session(&[won; 32], T0 + 4 * HOUR).await.unwrap();
    assert_eq!(
        db.session(&[won; 32]).await.unwrap().0.revoked_us,
        Some(T0 + 3 * HOUR)
    );

    let everyone: Vec<String> = db
        .people(None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(everyone, ["per_a", "per_c"]);
    assert_eq!(db.people(Some("fin_a")).await.unwrap().len(), 2);
    assert!(db.people(Some("fin_b")).await.unwrap().is_empty());
}

/// The overview's figures: by state, overdue, not seen and payments, one financier's or
/// everyone's, and sums of amounts too large for a plain `SUM` saturate instead of failing.
pub async fn portfolios_are_counted_per_financier_and_never_overflow(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    let huge = i64::MAX / 2 + 1;
    for (id, financier, state, due) in [
        ("dev_a1", "fin_a", "locked", huge),
        ("dev_a2", "fin_a", "locked", huge),
        ("dev_a3", "fin_a", "active", 0),
        ("dev_b1", "fin_b", "reminder", 5_000),
    ] {
        db.enroll(&new_device(id, financier), enrollment(state, due))
            .await
            .unwrap();
    }
    let a = db
        .portfolio(Some("fin_a"), T0, T0, &cutoffs())
        .await
        .unwrap();
    assert_eq!(
        a.by_state,
        [("active".to_string(), 1), ("locked".to_string(), 2)]
    );
    assert_eq!(a.overdue, [("KES".to_string(), 2, i64::MAX)]);
    assert_eq!(a.not_seen, 3, "never seen counts as not seen");
    let all = db.portfolio(None, T0, T0, &cutoffs()).await.unwrap();
    assert_eq!(all.by_state.iter().map(|(_, n)| n).sum::<i64>(), 4);
    assert_eq!(all.overdue, [("KES".to_string(), 3, i64::MAX)]);
    let b = db
        .portfolio(Some("fin_b"), T0, T0, &cutoffs())
        .await
        .unwrap();
    assert_eq!(b.overdue, [("KES".to_string(), 1, 5_000)]);
    assert!(b.payments.is_empty());
}

/// The arrears' age groups of these checks: 1-30, 31-60, 61-90 days before 2026-04-01.
fn cutoffs() -> [String; 3] {
    ["2026-03-02", "2026-01-31", "2026-01-01"].map(String::from)
}

/// Devices in arrears are grouped by the due date of their oldest late installment, each
/// financier's alone; one whose age is not recorded yet is counted apart, never dropped.
pub async fn arrears_are_grouped_by_age(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    for (id, financier, due, since) in [
        ("dev_a1", "fin_a", 100, Some("2026-03-31")),
        ("dev_a2", "fin_a", 200, Some("2026-03-02")),
        ("dev_a3", "fin_a", 400, Some("2026-03-01")),
        ("dev_a4", "fin_a", 800, Some("2025-12-31")),
        ("dev_a5", "fin_a", 1_600, None),
        ("dev_a6", "fin_a", 0, None),
        ("dev_b1", "fin_b", 3_200, Some("2026-03-31")),
    ] {
        let mut change = enrollment("reminder", due);
        if let Some(d) = change.decision.as_mut() {
            d.overdue_since = since.map(String::from);
        }
        db.enroll(&new_device(id, financier), change).await.unwrap();
    }
    let group = |age, devices, amount_minor| ArrearsByAge {
        age,
        currency: "KES".to_string(),
        devices,
        amount_minor,
    };
    let a = db
        .portfolio(Some("fin_a"), T0, T0, &cutoffs())
        .await
        .unwrap();
    assert_eq!(
        a.arrears_by_age,
        [
            group(ArrearsAge::UpToFirst, 2, 300),
            group(ArrearsAge::UpToSecond, 1, 400),
            group(ArrearsAge::Older, 1, 800),
            group(ArrearsAge::Unknown, 1, 1_600),
        ]
    );
    let all = db.portfolio(None, T0, T0, &cutoffs()).await.unwrap();
    assert_eq!(
        all.arrears_by_age[0],
        group(ArrearsAge::UpToFirst, 3, 3_500)
    );
    // A released device owes nothing any more, whatever its last decision said.
    db.update_device(
        "dev_a4",
        fixed(DeviceChange {
            released_us: Some(T0),
            ..DeviceChange::default()
        }),
    )
    .await
    .unwrap();
    let a = db
        .portfolio(Some("fin_a"), T0, T0, &cutoffs())
        .await
        .unwrap();
    assert!(
        a.arrears_by_age.iter().all(|g| g.age != ArrearsAge::Older),
        "{:?}",
        a.arrears_by_age
    );
    assert_eq!(a.overdue, [("KES".to_string(), 4, 2_300)]);
    // A later decision records the age; paid up, the device leaves the groups.
    db.update_device(
        "dev_a5",
        fixed(DeviceChange {
            decision: Some(decision("active", 0)),
            ..DeviceChange::default()
        }),
    )
    .await
    .unwrap();
    let a = db
        .portfolio(Some("fin_a"), T0, T0, &cutoffs())
        .await
        .unwrap();
    assert!(
        a.arrears_by_age
            .iter()
            .all(|g| g.age != ArrearsAge::Unknown),
        "{:?}",
        a.arrears_by_age
    );
}

/// A lock counts when a token locks a phone whose token before did not, an unlock when a
/// token leaves the lock; by day, each financier's own.
pub async fn locks_and_unlocks_are_counted_by_day(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    for (id, financier) in [
        ("dev_a1", "fin_a"),
        ("dev_a2", "fin_a"),
        ("dev_b1", "fin_b"),
    ] {
        enroll(&db, financier, id, None).await;
    }
    // Token 1 (active) came with the enrollment at T0 + 1.
    let issue = |id: &'static str, sequence: i64, state: &'static str, at: i64| {
        let db = db.clone();
        async move {
            let mut t = token(sequence, state, "CODE");
            t.issued_us = at;
            db.update_device(
                id,
                fixed(DeviceChange {
                    token: Some(t),
                    ..DeviceChange::default()
                }),
            )
            .await
            .unwrap();
        }
    };
    issue("dev_a1", 2, "locked", T0 + HOUR).await;
    issue("dev_a1", 3, "locked", T0 + 2 * HOUR).await; // a new message: still locked
    issue("dev_a1", 4, "active", T0 + DAY + HOUR).await;
    issue("dev_a2", 2, "reminder", T0 + DAY + HOUR).await;
    issue("dev_b1", 2, "locked", T0 + HOUR).await;
    let days = db
        .locks_by_day(Some("fin_a"), T0, T0 + 2 * DAY)
        .await
        .unwrap();
    let shown: Vec<_> = days.iter().map(|d| (d.day, d.locks, d.unlocks)).collect();
    assert_eq!(shown, [(0, 1, 0), (1, 0, 1)]);
    let all = db.locks_by_day(None, T0, T0 + DAY).await.unwrap();
    assert_eq!((all[0].locks, all[0].unlocks), (2, 0));
}

/// A payment is acknowledged when its phone reports holding the token the payment issued
/// (or a later one), once; the median and 99th percentile are nearest ranks.
pub async fn payments_are_acknowledged_by_the_phone_once(db: Db) {
    add_financier(&db, "fin_a").await;
    enroll(&db, "fin_a", "dev_a1", None).await;
    enroll(&db, "fin_a", "dev_a2", None).await;
    let pay = |id: &'static str, reference: &'static str, sequence: Option<i64>| {
        let db = db.clone();
        async move {
            let mut p = payment(reference, 100);
            p.recorded_us = T0 + SECOND;
            let token = sequence.map(|s| token(s, "active", "PAID"));
            db.update_device(
                id,
                fixed(DeviceChange {
                    payment: Some(p),
                    token,
                    ..DeviceChange::default()
                }),
            )
            .await
            .unwrap();
        }
    };
    let report = |id: &'static str, applied: i64, at: i64| {
        let db = db.clone();
        async move {
            db.update_device(
                id,
                fixed(DeviceChange {
                    applied_sequence: Some(applied),
                    acknowledged_us: Some(at),
                    ..DeviceChange::default()
                }),
            )
            .await
            .unwrap();
        }
    };
    pay("dev_a1", "P-1", Some(2)).await;
    pay("dev_a1", "P-2", None).await; // changed nothing the phone holds
    pay("dev_a2", "P-3", Some(2)).await;
    let none = db.payment_acks(Some("fin_a"), T0, T0 + DAY).await.unwrap();
    assert_eq!(
        (none.acknowledged, none.waiting, none.median_us),
        (0, 2, None)
    );
    report("dev_a1", 1, T0 + 2 * SECOND).await; // an older token: not yet
    report("dev_a1", 2, T0 + 3 * SECOND).await;
    report("dev_a1", 2, T0 + 9 * SECOND).await; // said again: the first time stands
    report("dev_a2", 2, T0 + 11 * SECOND).await;
    let acks = db.payment_acks(Some("fin_a"), T0, T0 + DAY).await.unwrap();
    assert_eq!((acks.acknowledged, acks.waiting), (2, 0));
    assert_eq!(acks.median_us, Some(2 * SECOND));
    assert_eq!(acks.p99_us, Some(10 * SECOND));
    let snapshot = db.snapshot("dev_a1").await.unwrap();
    let shown: Vec<_> = snapshot
        .payments
        .iter()
        .map(|p| (p.reference.as_str(), p.acknowledged_us))
        .collect();
    assert_eq!(shown, [("P-1", Some(T0 + 3 * SECOND)), ("P-2", None)]);
    let elsewhere = db.payment_acks(Some("fin_b"), T0, T0 + DAY).await.unwrap();
    assert_eq!(elsewhere, lien_store::PaymentAcks::default());
}

/// A financier's activity in a period comes a page at a time, in (time, chain, place) order,
/// records at the same instant neither skipped nor repeated across pages, and another
/// financier's never.
pub async fn activity_pages_hold_their_order_across_ties(db: Db) {
    add_financier(&db, "fin_a").await;
    add_financier(&db, "fin_b").await;
    for (id, financier) in [
        ("dev_a1", "fin_a"),
        ("dev_a2", "fin_a"),
        ("dev_a3", "fin_a"),
        ("dev_b1", "fin_b"),
    ] {
        db.enroll(&new_device(id, financier), enrollment("active", 0))
            .await
            .unwrap();
    }
    // Every enrollment's record is at T0: three ties for fin_a.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = db
            .activity(Some("fin_a"), T0, T0 + 1, after.as_ref(), 2)
            .await
            .unwrap();
        seen.extend(page.iter().map(|r| r.chain.clone()));
        match page.last() {
            Some(last) if page.len() == 2 => {
                after = Some((last.entry.at_us, last.chain.clone(), last.seq));
            }
            _ => break,
        }
    }
    assert_eq!(seen, ["dev_a1", "dev_a2", "dev_a3"]);
    let everyone = db.activity(None, T0, T0 + 1, None, 10).await.unwrap();
    assert!(everyone.iter().any(|r| r.chain == "dev_b1"));
    assert!(
        db.activity(Some("fin_a"), T0 + 1, T0 + 2, None, 10)
            .await
            .unwrap()
            .is_empty(),
        "the period's end is excluded"
    );
}
