//! Checks of the console's people, invitations and sessions.

use lien_store::{InvitationRecord, PersonRecord, SessionRecord, StoreError};

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
    let a = db.portfolio(Some("fin_a"), T0, T0).await.unwrap();
    assert_eq!(
        a.by_state,
        [("active".to_string(), 1), ("locked".to_string(), 2)]
    );
    assert_eq!(a.overdue, [("KES".to_string(), 2, i64::MAX)]);
    assert_eq!(a.not_seen, 3, "never seen counts as not seen");
    let all = db.portfolio(None, T0, T0).await.unwrap();
    assert_eq!(all.by_state.iter().map(|(_, n)| n).sum::<i64>(), 4);
    assert_eq!(all.overdue, [("KES".to_string(), 3, i64::MAX)]);
    let b = db.portfolio(Some("fin_b"), T0, T0).await.unwrap();
    assert_eq!(b.overdue, [("KES".to_string(), 1, 5_000)]);
    assert!(b.payments.is_empty());
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
