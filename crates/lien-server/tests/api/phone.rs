//! A simulated phone (the real agent over HTTP) against a spawned server, on SQLite and, when
//! LIEN_TEST_POSTGRES_URL is set, PostgreSQL. Each test asserts what the borrower sees.
//!
//! The server's clock and the phone's clocks are separate, as in life; [`World::advance`]
//! moves both by the same amount, the way time passes for both.

use std::time::Duration;

use crate::common::{Backend, World, imei, postgres_url, spawn_app};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use lien_agent::screens::{Banner, LockCause, OFFLINE_TITLE, OVERDUE_TITLE};
use lien_agent::sim::{Fleet, HttpTransport, Phone, SimClock};
use lien_agent::{AgentConfig, CodeOutcome, Identity, MemoryStorage, Mode, Screen};
use lien_proto::device_api::CheckinResponse;
use lien_proto::{StatusClaims, TokenSigner, TokenState};
use serde_json::json;

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// The shared [`World`], whose phone starts with the normal screen.
async fn world(backend: Backend) -> World {
    let w = World::new(backend).await;
    w.assert_normal();
    w
}

impl World {
    /// The phone's screen as text, for assertions and for failure messages.
    fn text(&self) -> String {
        self.phone.render()
    }

    /// The banner over the normal screen, if the phone shows one.
    fn banner(&self) -> Option<&Banner> {
        match self.phone.screen() {
            Screen::Normal { banner } => banner.as_ref(),
            _ => None,
        }
    }

    /// The lock screen's challenge.
    fn challenge(&self) -> String {
        match self.phone.screen() {
            Screen::Locked(lock) => lock.challenge.clone().expect("a challenge"),
            other => panic!("not locked:\n{other}"),
        }
    }

    /// What the financier's offline-unlock route answers for `challenge`.
    async fn offline_code(&self, challenge: &str) -> String {
        let body = json!({"challenge": challenge, "reason": "borrower called, no network"});
        let code = self.on_device("POST", "/offline-unlock", Some(body)).await;
        assert_eq!(code.status, 200, "{}", code.body);
        code.body["response"].as_str().unwrap().to_string()
    }

    /// Locks the phone the way the policy does: the February installment is missed and day 4
    /// past due comes, in the morning.
    async fn miss_a_payment_until_locked(&mut self) {
        self.advance_to("2026-02-05T10:00:00+03:00").await;
        assert!(self.locked(), "{}", self.text());
    }

    /// The number of check-ins the server has answered.
    fn server_checkins(&self) -> u64 {
        self.app.running.state.metrics.checkins.get()
    }
}

async fn missed_payment_reminds_then_locks_on_time_and_payment_unlocks(backend: Backend) {
    let mut w = world(backend).await;
    // Day 1 past due: a reminder, nothing limited but the factory reset.
    w.advance_to("2026-02-02T10:00:00+03:00").await;
    let Screen::Reminder(reminder) = w.phone.screen() else {
        panic!("expected a reminder:\n{}", w.text());
    };
    assert!(reminder.details.reason.contains("overdue"), "{}", w.text());
    assert!(
        w.text().contains("Amount due: KES 1,000.00"),
        "{}",
        w.text()
    );
    assert!(
        !w.phone
            .enforcement()
            .limits(lien_proto::DeviceRestriction::LockScreen)
    );

    // The policy names the instant of the lock; one second before it the phone is not locked.
    let status = w.on_device("GET", "", None).await;
    assert_eq!(status.body["decision"]["next_restriction_state"], "locked");
    let lock_at: Timestamp = status.body["decision"]["next_restriction_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let before = (lock_at.as_second() - w.app.clock_now().as_second() - 1) as u64;
    w.advance(Duration::from_secs(before)).await;
    w.phone.check_again().await;
    assert!(!w.locked(), "{}", w.text());
    w.advance(Duration::from_secs(1)).await;
    w.phone.check_again().await;
    let text = w.text();
    assert!(w.locked(), "{text}");
    for expected in [
        OVERDUE_TITLE,
        "Amount due: KES 1,000.00",
        "Financier: Duka Phones (+254 700 000 000)",
        "Pay at: https://pay.example/x",
        "IMEI: 356938035643809",
        "[Check again] [Enter code] [Emergency call]",
        "Unlock challenge: ",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    // Support can look up the status code the borrower reads out.
    let Screen::Locked(lock) = w.phone.screen() else {
        unreachable!()
    };
    let looked_up = w
        .app
        .get(
            &format!("/v1/status-codes/{}", lock.details.status_code),
            &w.key,
        )
        .await;
    assert_eq!(looked_up.status, 200, "{}", looked_up.body);
    assert_eq!(looked_up.body[0]["state"], "locked");

    // The borrower pays; the next check-in unlocks.
    w.pay("MPESA-1", 100_000).await;
    assert!(
        w.locked(),
        "nothing changes on the phone before it checks in"
    );
    w.phone.check_again().await;
    w.assert_normal();
    assert!(w.phone.enforcement().restrictions().len() <= 1);
    w.app.running.stop().await;
}

async fn factory_reset_and_reflash_keep_the_lock(backend: Backend) {
    let mut w = world(backend).await;
    w.miss_a_payment_until_locked().await;
    let hellos = w.phone.hellos_sent();

    // A factory reset keeps the protected state: locked at once, and still after setup.
    w.phone.set_online(false);
    w.phone.factory_reset().await;
    assert!(w.locked(), "locked before any network:\n{}", w.text());
    w.phone.set_online(true);
    w.phone.check_again().await;
    assert!(w.locked(), "{}", w.text());
    assert_eq!(
        w.phone.hellos_sent(),
        hellos,
        "no hello needed after a reset"
    );

    // A full reflash loses it: the phone sets up, says hello, and the server locks it again.
    w.phone.reflash().await;
    assert_eq!(w.phone.hellos_sent(), hellos + 1);
    assert!(w.locked(), "{}", w.text());
    assert!(w.text().contains(OVERDUE_TITLE), "{}", w.text());
    // The re-bound phone checks in with its new credential.
    let before = w.server_checkins();
    w.phone.check_again().await;
    assert_eq!(w.server_checkins(), before + 1);
    assert!(w.locked());
    w.app.running.stop().await;
}

async fn offline_past_the_lease_locks_then_a_code_unlocks_once(backend: Backend) {
    let mut w = world(backend).await;
    w.phone.set_online(false);
    // Kenya: a 10-day lease with 3 days' warning, counted from the last token.
    w.advance(Duration::from_secs(7 * DAY - 60)).await;
    w.assert_normal();
    w.advance(Duration::from_secs(60)).await;
    assert!(
        matches!(w.banner(), Some(Banner::GoOnline { .. })),
        "{}",
        w.text()
    );
    assert!(w.text().contains("within 3 days"), "{}", w.text());
    w.advance(Duration::from_secs(3 * DAY)).await;
    let Screen::Locked(lock) = w.phone.screen() else {
        panic!("expected a lock:\n{}", w.text());
    };
    assert_eq!(lock.cause, LockCause::OfflineTooLong);
    assert!(w.text().contains(OFFLINE_TITLE), "{}", w.text());
    assert!(w.text().contains("too long"), "{}", w.text());

    // The borrower calls the financier, who reads out a code for the challenge.
    let challenge = w.challenge();
    let code = w.offline_code(&challenge).await;
    assert!(matches!(
        w.phone.enter_code(&code),
        CodeOutcome::Accepted { .. }
    ));
    assert!(
        matches!(w.banner(), Some(Banner::UnlockedByCode { .. })),
        "{}",
        w.text()
    );
    assert!(
        w.text().contains("Unlocked with a code for up to 2 days"),
        "{}",
        w.text()
    );

    // Still offline, the unlock ends after 48 hours; the same code is then refused.
    w.advance(Duration::from_secs(48 * HOUR)).await;
    assert!(w.locked(), "{}", w.text());
    assert_ne!(w.challenge(), challenge);
    assert!(matches!(
        w.phone.enter_code(&code),
        CodeOutcome::Wrong { .. }
    ));
    assert!(w.locked());
    assert!(w.text().contains("Wrong or used code"), "{}", w.text());

    // Back online, a check-in brings a fresh token with a fresh lease: unlocked.
    w.phone.set_online(true);
    w.phone.check_again().await;
    w.assert_normal();
    w.app.running.stop().await;
}

async fn a_phone_set_up_again_after_fifteen_offline_codes_accepts_the_sixteenth(backend: Backend) {
    let mut w = world(backend).await;
    w.miss_a_payment_until_locked().await;
    // Support has read out fifteen codes over the months (this phone never needed them).
    for i in 0..15 {
        w.offline_code(&format!("{:08}", 31_415_926 + i)).await;
    }
    // The phone is reflashed: it sets up again and is bound anew, with a new offline key.
    // Each code issued unlocks the phone on the server's side too, for two days; once they
    // are over it is locked again.
    w.phone.reflash().await;
    w.advance(Duration::from_secs(3 * DAY)).await;
    assert!(w.locked(), "{}", w.text());
    // Offline, the borrower calls; the sixteenth code the financier reads out works.
    w.phone.set_online(false);
    let challenge = w.challenge();
    let code = w.offline_code(&challenge).await;
    assert!(
        matches!(w.phone.enter_code(&code), CodeOutcome::Accepted { .. }),
        "{}",
        w.text()
    );
    assert!(!w.locked(), "{}", w.text());
    w.app.running.stop().await;
}

async fn moving_the_wall_clock_changes_nothing(backend: Backend) {
    let mut w = world(backend).await;
    w.miss_a_payment_until_locked().await;
    let locked = w.text();
    let checkins = w.server_checkins();
    w.phone.shift_wall_clock(-365 * DAY as i64);
    assert_eq!(w.text(), locked);
    // Check-ins still go through: the phone carries the server's time on its monotonic clock.
    w.phone.check_again().await;
    assert_eq!(w.server_checkins(), checkins + 1);
    assert_eq!(w.text(), locked);
    w.phone.shift_wall_clock(2 * 365 * DAY as i64);
    w.phone.check_again().await;
    assert_eq!(w.server_checkins(), checkins + 2);
    assert_eq!(w.text(), locked);
    // After a reboot with the wall clock a year off, the phone estimates the server's time
    // from its token and the lease time counted since, and still gets through.
    w.phone.shift_wall_clock(-2 * 365 * DAY as i64);
    assert!((w.phone.now().wall - w.app.clock_now().as_second() + 365 * DAY as i64).abs() < 60);
    w.phone.reboot().await;
    assert_eq!(w.text(), locked);
    assert_eq!(w.server_checkins(), checkins + 3, "{:?}", w.phone.status());
    // And a paid phone a year "in the past" is unlocked as usual.
    w.pay("MPESA-1", 100_000).await;
    w.phone.check_again().await;
    w.assert_normal();
    w.app.running.stop().await;
}

async fn forged_and_replayed_tokens_are_refused(backend: Backend) {
    let mut w = world(backend).await;
    let active_token = w.phone.agent().token().unwrap().to_string();
    w.miss_a_payment_until_locked().await;
    let locked = w.text();
    let held = w.phone.status().token;
    let server_time = w.app.clock_now().as_second();
    let answer = |token: String| CheckinResponse {
        token,
        server_time,
        next_checkin_at: server_time + 6 * HOUR as i64,
        contact: None,
    };

    // Someone in the middle replays the older "active" token.
    w.phone.deliver_checkin(answer(active_token.clone()));
    assert_eq!(w.text(), locked);
    assert_eq!(w.phone.status().token, held);

    // Or forges an "active" token with the next sequence, signed by a key the phone never pinned.
    let mut claims: StatusClaims = {
        let bytes = STANDARD.decode(w.phone.agent().token().unwrap()).unwrap();
        let keys = lien_proto::PinnedKeys::new([w.app.running.state.signer.verifying_key()]);
        keys.verify(&bytes, &w.device_id, 0).unwrap()
    };
    claims.sequence += 1;
    claims.state = TokenState::Active;
    claims.restrictions.clear();
    let forger = TokenSigner::new(ed25519_dalek::SigningKey::from_bytes(&[9; 32]));
    w.phone
        .deliver_checkin(answer(STANDARD.encode(forger.sign(&claims))));
    assert_eq!(w.text(), locked);
    assert_eq!(w.phone.status().token, held);

    // The real server's next token is still taken.
    w.pay("MPESA-1", 100_000).await;
    w.phone.check_again().await;
    w.assert_normal();
    // And the replay of the lock, now older, is refused in turn.
    w.phone.deliver_checkin(answer(active_token));
    w.assert_normal();
    w.app.running.stop().await;
}

async fn payoff_releases_for_good_and_check_ins_stop(backend: Backend) {
    let mut w = world(backend).await;
    // Paying the plan off schedules the release, with no call.
    w.pay("MPESA-ALL", 300_000).await;
    // The release becomes final after its cancel window; the next check-in brings it.
    w.advance(Duration::from_secs(73 * HOUR)).await;
    w.phone.check_again().await;
    assert_eq!(
        w.phone.screen(),
        &Screen::Normal {
            banner: Some(Banner::Released)
        },
        "{}",
        w.text()
    );
    assert!(w.text().contains("released: it is yours"), "{}", w.text());
    assert!(w.phone.enforcement().restrictions().is_empty());

    // A factory reset does not bring anything back, and the phone never checks in again.
    let checkins = w.server_checkins();
    let sent = w.phone.checkins_sent();
    w.phone.factory_reset().await;
    assert_eq!(w.phone.status().mode, Mode::Released);
    w.phone.check_again().await;
    w.advance(Duration::from_secs(30 * DAY)).await;
    assert_eq!(
        w.phone.screen(),
        &Screen::Normal {
            banner: Some(Banner::Released)
        }
    );
    assert_eq!(w.server_checkins(), checkins, "the server saw no check-in");
    assert_eq!(w.phone.checkins_sent(), sent);
    assert_eq!(w.phone.hellos_sent(), 1);
    w.app.running.stop().await;
}

async fn a_fleet_sets_up_checks_in_and_follows_locks(backend: Backend) {
    let start: Timestamp = "2026-01-10T09:00:00Z".parse().unwrap();
    let app = spawn_app(backend, start).await;
    let (_, key) = app.financier("Duka Phones").await;
    let mut phones = vec![];
    let mut device_ids = vec![];
    for n in 0..12u64 {
        let phone_imei = imei(&format!("356938{n:08}"));
        let serial = format!("SN-F{n}");
        // Ten are financed; two were never enrolled and run free.
        if n < 10 {
            device_ids.push(
                app.enroll_device(&key, &format!("C-F{n}"), &phone_imei, &serial)
                    .await,
            );
        }
        let identity = Identity {
            imei1: phone_imei,
            imei2: None,
            serial,
            model: "Phone X".into(),
        };
        phones.push(Phone::new(
            HttpTransport::new(&app.base),
            identity.clone(),
            app.factory_identity(&identity),
            Box::new(MemoryStorage::new()),
            SimClock::manual(start.as_second()),
            AgentConfig::default(),
            Some(n),
        ));
    }
    let mut fleet = Fleet::from_phones(phones, 4);
    let setup = fleet.run_due().await;
    assert_eq!((setup.hellos, setup.checkins), (12, 10));
    assert_eq!(setup.locked, 0);
    for id in &device_ids[..3] {
        let locked = app
            .lock(&key, id, "Locked by Duka Phones: please call us.")
            .await;
        assert_eq!(locked.status, 200, "{}", locked.body);
    }
    let round = fleet.check_all().await;
    assert_eq!((round.hellos, round.checkins), (0, 10));
    assert_eq!(round.locked, 3);
    for phone in &fleet.phones()[..3] {
        assert!(
            phone
                .render()
                .contains("Locked by Duka Phones: please call us.")
        );
    }
    assert_eq!(app.running.state.metrics.checkins.get(), 20);
    app.running.stop().await;
}

on_both_backends!(
    missed_payment_reminds_then_locks_on_time_and_payment_unlocks,
    factory_reset_and_reflash_keep_the_lock,
    offline_past_the_lease_locks_then_a_code_unlocks_once,
    a_phone_set_up_again_after_fifteen_offline_codes_accepts_the_sixteenth,
    moving_the_wall_clock_changes_nothing,
    forged_and_replayed_tokens_are_refused,
    payoff_releases_for_good_and_check_ins_stop,
    a_fleet_sets_up_checks_in_and_follows_locks,
);
