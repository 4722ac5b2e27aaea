//! Fair to the borrower (issue 20): the policy's emergency use, taken on a locked phone with
//! no network, once per period whatever the borrower does to the phone, reported and audited at
//! the next check-in; and a phone whose lease ran out unlocked by its first check-in.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lien_agent::EmergencyOutcome;
use lien_agent::screens::Banner;
use lien_proto::{LeaseStatus, PinnedKeys, StatusClaims};

use crate::common::{Backend, World, postgres_url};

const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// The claims of the token the phone holds, verified as the phone does.
fn held_claims(w: &World) -> StatusClaims {
    let keys = PinnedKeys::new([w.app.running.state.signer.verifying_key()]);
    let token = STANDARD.decode(w.phone.agent().token().unwrap()).unwrap();
    keys.verify(&token, &w.device_id, 0).unwrap()
}

fn refused_too_soon(outcome: EmergencyOutcome) -> bool {
    matches!(outcome, EmergencyOutcome::TooSoon { .. })
}

async fn a_locked_phone_offline_for_a_week_takes_its_emergency_window_once(backend: Backend) {
    let mut w = World::new(backend).await;
    // Day 4 past the missed February installment: locked, and the token offers the Kenya
    // preset's 24 hours of emergency use every 30 days.
    w.advance_to("2026-02-05T10:00:00+03:00").await;
    assert!(w.locked(), "{}", w.phone.render());
    assert!(
        w.phone.render().contains("[Emergency use]"),
        "{}",
        w.phone.render()
    );
    let allowance = held_claims(&w)
        .emergency
        .expect("the preset offers emergency use");
    assert_eq!((allowance.hours, allowance.every_days), (24, 30));
    assert_eq!(allowance.last_used_at, None);

    // A week with no network.
    w.phone.set_online(false);
    w.advance(Duration::from_secs(7 * DAY)).await;
    assert!(w.locked(), "{}", w.phone.render());

    // The borrower taps "Emergency use": the phone works, offline.
    let started = w.phone.take_emergency_use();
    assert!(
        matches!(started, EmergencyOutcome::Started { length, .. } if length == Duration::from_secs(24 * HOUR)),
        "{started:?}"
    );
    w.advance(Duration::from_secs(HOUR)).await;
    assert!(
        matches!(
            w.phone.screen(),
            lien_agent::Screen::Normal {
                banner: Some(Banner::EmergencyUse { .. })
            }
        ),
        "{}",
        w.phone.render()
    );
    assert!(
        w.phone.render().contains("Emergency use until"),
        "{}",
        w.phone.render()
    );
    assert!(
        !w.phone
            .enforcement()
            .limits(lien_proto::DeviceRestriction::LockScreen)
    );
    // Taking it again while it runs starts nothing new; a reboot keeps it running.
    assert!(matches!(
        w.phone.take_emergency_use(),
        EmergencyOutcome::Running { .. }
    ));
    w.phone.reboot().await;
    assert!(!w.locked(), "{}", w.phone.render());

    // The window ends: locked again, and a second window is refused...
    w.advance(Duration::from_secs(23 * HOUR)).await;
    assert!(w.locked(), "{}", w.phone.render());
    assert!(refused_too_soon(w.phone.take_emergency_use()));
    assert!(
        w.phone.render().contains("already taken"),
        "{}",
        w.phone.render()
    );
    // ...after a reboot, with the wall clock moved a year back or two months ahead, and after a
    // factory reset.
    w.phone.reboot().await;
    assert!(refused_too_soon(w.phone.take_emergency_use()));
    w.phone.shift_wall_clock(-365 * DAY as i64);
    assert!(refused_too_soon(w.phone.take_emergency_use()));
    w.phone.shift_wall_clock(425 * DAY as i64);
    assert!(refused_too_soon(w.phone.take_emergency_use()));
    w.phone.factory_reset().await;
    assert!(refused_too_soon(w.phone.take_emergency_use()));
    assert!(w.locked(), "{}", w.phone.render());

    // Back online: the next check-in reports the window, the server audits it and names it in
    // the token it answers with, and the phone stays locked (the debt is not paid).
    let sequence_before = held_claims(&w).sequence;
    w.phone.shift_wall_clock(-60 * DAY as i64);
    w.phone.set_online(true);
    w.phone.check_again().await;
    let history = w.app.history(&w.key, &w.device_id).await;
    let reported: Vec<_> = history
        .iter()
        .filter(|(action, _)| action == "emergency_use")
        .collect();
    assert_eq!(reported.len(), 1, "{history:?}");
    assert!(reported[0].1.contains("for 24 hours"), "{history:?}");
    let claims = held_claims(&w);
    assert!(claims.sequence > sequence_before);
    let last = claims
        .emergency
        .unwrap()
        .last_used_at
        .expect("the window is named");
    let eight_days_after_lock = "2026-02-12T07:00:00Z".parse::<jiff::Timestamp>().unwrap();
    assert!(
        (last - eight_days_after_lock.as_second()).abs() < DAY as i64,
        "{last}"
    );
    assert!(w.locked(), "{}", w.phone.render());
    assert!(refused_too_soon(w.phone.take_emergency_use()));

    // Reported once: a later check-in does not report it again.
    w.phone.check_again().await;
    let again = history_count(&w, "emergency_use").await;
    assert_eq!(again, 1);
}

async fn history_count(w: &World, action: &str) -> usize {
    w.app
        .history(&w.key, &w.device_id)
        .await
        .iter()
        .filter(|(a, _)| a == action)
        .count()
}

async fn an_expired_lease_is_lifted_by_the_first_check_in(backend: Backend) {
    let mut w = World::new(backend).await;
    w.assert_normal();
    let token_before = w.phone.agent().token().unwrap().to_string();
    // Eleven days without the network, past the 10-day lease. The server's scheduler has not
    // signed a new token meanwhile (its clock moves, its scheduler does not run).
    w.phone.set_online(false);
    w.app
        .clock
        .advance(jiff::SignedDuration::from_secs(11 * DAY as i64));
    w.phone.advance(Duration::from_secs(11 * DAY)).await;
    assert!(w.locked(), "{}", w.phone.render());
    assert!(
        w.phone.render().contains("offline too long"),
        "{}",
        w.phone.render()
    );

    // Back online, one check-in: the server signed no new token, yet the phone is unlocked,
    // because the server proved it answered this very check-in.
    w.phone.set_online(true);
    w.phone.check_again().await;
    assert_eq!(w.phone.agent().token().unwrap(), token_before);
    w.assert_normal();
    assert_eq!(w.phone.status().lease, Some(LeaseStatus::Valid));
}

on_both_backends!(
    a_locked_phone_offline_for_a_week_takes_its_emergency_window_once,
    an_expired_lease_is_lifted_by_the_first_check_in,
);
