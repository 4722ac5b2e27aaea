//! The agent against a fake server that signs real tokens: verification, lease, offline codes,
//! storage faults and resets, all on injected time. Each test checks what the borrower sees.

use std::time::Duration;

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use lien_agent::screens::{Banner, LockCause, OFFLINE_TITLE, OVERDUE_TITLE};
use lien_agent::{
    Agent, AgentConfig, Area, CodeOutcome, InjectedFault, MemoryStorage, Mode, Now, Outgoing,
    Screen, SeededEntropy, Storage, TransportError,
};
use lien_proto::{DeviceRestriction, TokenSigner, TokenState};

#[test]
fn first_boot_restricts_nothing_until_the_server_answers() {
    let mut rig = Rig::new();
    assert_eq!(
        rig.screen(),
        Screen::Normal {
            banner: Some(Banner::SettingUp)
        }
    );
    assert!(rig.agent().enforcement().restrictions().is_empty());
    // Hello fails: still nothing restricted, and a retry is scheduled.
    let now = rig.now();
    let challenge = rig.server.challenge();
    rig.agent().hello_request(now, &challenge).unwrap();
    rig.agent()
        .on_hello(Err(TransportError::Unreachable("no network".into())), now);
    assert!(!rig.locked());
    assert!(rig.agent().next_wakeup().unwrap() > now.mono);
    rig.advance(60);
    rig.hello(TokenState::Locked);
    assert!(rig.locked());
    assert_eq!(rig.title().unwrap(), OVERDUE_TITLE);
}

#[test]
fn a_not_financed_phone_runs_free_and_sends_nothing() {
    let mut rig = Rig::new();
    let now = rig.now();
    let challenge = rig.server.challenge();
    rig.agent().hello_request(now, &challenge).unwrap();
    let answer = rig.server.not_financed();
    rig.agent().on_hello(Ok(answer), now);
    assert_eq!(rig.screen(), Screen::Normal { banner: None });
    rig.advance(30 * DAY);
    let now = rig.now();
    assert_eq!(rig.agent().due(now), None);
}

#[test]
fn the_lock_screen_shows_the_way_out() {
    let mut rig = locked_rig();
    let Screen::Locked(lock) = rig.screen() else {
        panic!()
    };
    let text = rig.screen().to_string();
    for expected in [
        OVERDUE_TITLE,
        "Amount due: KES 1,250.00",
        "Duka Phones (+254 700 000 000)",
        "Pay at: https://pay.example/x",
        "IMEI: 356938035643809",
        "Status code: ",
        "Last sync: ",
        "[Check again] [Enter code] [Emergency call]",
        "Emergency calls and the payment app remain available.",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    assert_eq!(lock.challenge.as_ref().unwrap().len(), 8);
    assert_eq!(lock.details.status_code.len(), 8);
    let transparency = rig.agent().transparency().to_string();
    assert!(
        transparency.contains("cannot block emergency calls"),
        "{transparency}"
    );
    assert!(transparency.contains("10 days"), "{transparency}");
}

#[test]
fn forged_replayed_and_foreign_tokens_are_refused_and_reported() {
    let mut rig = locked_rig();
    let before = rig.screen();
    let held = rig.agent().status().token;
    let now_wall = rig.wall;
    let forger = TokenSigner::new(SigningKey::from_bytes(&[9; 32]));
    let forged = STANDARD.encode(sign(&forger, "dev-1", 99, TokenState::Active, now_wall));
    let real = &rig.server.signer;
    let replayed = STANDARD.encode(sign(real, "dev-1", 1, TokenState::Active, now_wall));
    let foreign = STANDARD.encode(sign(real, "dev-2", 99, TokenState::Active, now_wall));
    let mut tampered = STANDARD
        .decode(STANDARD.encode(sign(real, "dev-1", 99, TokenState::Active, now_wall)))
        .unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    // Each refusal is reported in the check-in after it; the phone claims only the sequence
    // it applied.
    let mut reported = vec![];
    for token in [
        forged,
        replayed,
        foreign,
        STANDARD.encode(tampered),
        "%%".into(),
    ] {
        let sent = rig.checkin_with(token, now_wall);
        assert_eq!(sent.applied_sequence, 2);
        reported.extend(sent.events);
        assert_eq!(rig.screen(), before);
        assert_eq!(rig.agent().status().token, held);
    }
    let token = rig.agent().token().unwrap().to_string();
    reported.extend(rig.checkin_with(token, now_wall).events);
    let details: Vec<&str> = reported.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(
        details,
        [
            "token refused: unknown-key",
            "token refused: sequence-regressed",
            "token refused: wrong-device",
            "token refused: bad-signature",
            "token refused: not base64",
        ]
    );
    let token = rig.agent().token().unwrap().to_string();
    let sent = rig.checkin_with(token, now_wall);
    assert!(sent.events.is_empty(), "reported once");
    assert!(reported.iter().all(|e| e.kind == "tamper"));
}

#[test]
fn the_lease_counts_monotonic_time_warns_then_locks_and_ignores_the_wall_clock() {
    let mut rig = Rig::new();
    rig.hello(TokenState::Active);
    rig.new_token(TokenState::Active);
    assert_eq!(rig.screen(), Screen::Normal { banner: None });
    // The borrower sets the wall clock back a year, then forward two: nothing changes.
    rig.wall -= 365 * DAY;
    let now = rig.now();
    rig.agent().tick(now);
    assert_eq!(rig.screen(), Screen::Normal { banner: None });
    rig.wall += 2 * 365 * DAY;
    let now = rig.now();
    rig.agent().tick(now);
    assert_eq!(rig.screen(), Screen::Normal { banner: None });
    // The lease runs on the monotonic clock, also across a reboot (time off is not counted).
    rig.advance(5 * DAY);
    rig.reboot_with(|_| {});
    rig.advance(2 * DAY - 1);
    assert_eq!(rig.screen(), Screen::Normal { banner: None });
    rig.advance(1);
    assert_eq!(
        rig.screen(),
        Screen::Normal {
            banner: Some(Banner::GoOnline {
                remaining: Duration::from_secs(3 * DAY as u64)
            })
        }
    );
    assert!(!rig.locked());
    rig.advance(3 * DAY);
    assert!(rig.locked());
    assert_eq!(rig.title().unwrap(), OFFLINE_TITLE);
    let Screen::Locked(lock) = rig.screen() else {
        panic!()
    };
    assert_eq!(lock.cause, LockCause::OfflineTooLong);
    assert!(lock.details.reason.contains("too long"));
}

#[test]
fn an_old_token_delivered_late_does_not_extend_the_lease() {
    let mut rig = Rig::new();
    rig.hello(TokenState::Active);
    // The server hands over a token it signed nine days ago (the phone's wall clock says
    // otherwise, and does not matter).
    let old = rig.server.token(TokenState::Active, rig.wall - 9 * DAY);
    let server_time = rig.wall;
    rig.checkin_with(old, server_time);
    assert!(matches!(
        rig.screen(),
        Screen::Normal {
            banner: Some(Banner::GoOnline { .. })
        }
    ));
    rig.advance(DAY);
    assert!(rig.locked());
}

#[test]
fn an_offline_code_unlocks_once_and_a_newer_token_ends_it() {
    let mut rig = locked_rig();
    let challenge = rig.challenge();
    // Support issued two codes the phone never saw; the third works.
    let third = code(3, &challenge);
    assert!(rig.code_accepted(&third));
    assert!(!rig.locked());
    assert!(matches!(
        rig.screen(),
        Screen::Normal {
            banner: Some(Banner::UnlockedByCode { .. })
        }
    ));
    // The factory-reset block stays while the phone is financed.
    assert_eq!(
        rig.agent().enforcement().restrictions(),
        [DeviceRestriction::FactoryReset]
    );
    // The same token again does not end the unlock; a newer one does.
    let held = rig.agent().token().unwrap().to_string();
    let wall = rig.wall;
    rig.checkin_with(held, wall);
    assert!(!rig.locked());
    rig.new_token(TokenState::Locked);
    assert!(rig.locked());
    // The same code against the new challenge is refused: its counter is spent.
    assert!(matches!(rig.enter_code(&third), CodeOutcome::Wrong { .. }));
    assert!(rig.locked());
}

#[test]
fn an_offline_unlock_ends_after_its_hours() {
    let mut rig = locked_rig();
    let challenge = rig.challenge();
    rig.enter_code(&code(1, &challenge));
    rig.advance(48 * 3600 - 60);
    assert!(!rig.locked());
    rig.advance(60);
    assert!(rig.locked());
    // A new challenge, and the next counter.
    let second = rig.challenge();
    assert_ne!(second, challenge);
    assert!(rig.code_accepted(&code(2, &second)));
}

#[test]
fn the_throttle_and_the_challenge_survive_a_reboot() {
    let mut rig = locked_rig();
    let challenge = rig.challenge();
    for _ in 0..5 {
        rig.enter_code("11111111");
    }
    rig.advance(30);
    rig.reboot_with(|_| {});
    assert!(rig.locked());
    assert_eq!(rig.challenge(), challenge);
    let right = code(1, &challenge);
    assert_eq!(
        rig.enter_code(&right),
        CodeOutcome::Throttled {
            wait: Duration::from_secs(30)
        }
    );
    let text = rig.screen().to_string();
    assert!(
        text.contains("Too many wrong codes. Try again in 30 seconds."),
        "{text}"
    );
    rig.advance(30);
    assert!(rig.code_accepted(&right));
}

#[test]
fn a_code_that_cannot_be_recorded_does_not_unlock() {
    let mut rig = locked_rig();
    let challenge = rig.challenge();
    let right = code(1, &challenge);
    rig.agent()
        .storage_mut()
        .fail_next_write(InjectedFault::Fail);
    assert_eq!(rig.enter_code(&right), CodeOutcome::NotSaved);
    assert!(rig.locked());
    // After a reboot the stored state is still the locked one, and the code was not spent.
    rig.reboot_with(|_| {});
    assert!(rig.locked());
    assert!(rig.code_accepted(&right));
}

#[test]
fn a_failed_write_keeps_the_previous_state_and_a_torn_one_keeps_the_last_verified_lock() {
    let mut rig = locked_rig();
    // A newer "active" token arrives but cannot be written: it is valid, so it applies now...
    let at = rig.wall;
    let token = rig.server.token(TokenState::Active, at);
    rig.checkin_failing_write(token, at, Some(InjectedFault::Fail));
    assert!(!rig.locked());
    // ...but if the phone crashes before the write is retried, it boots into the state last
    // written: the lock, not some mixture.
    let mut on_disk = rig.storage();
    rig.boot(on_disk.clone());
    assert!(rig.locked());
    assert_eq!(rig.mode(), Mode::Bound);
    // A write torn mid-way (a medium without atomic replace) leaves a record that fails its
    // seal: the phone neither misreads it nor runs free, but keeps the last verified lock
    // (from its rollback slot) while it sets up again.
    on_disk.fail_next_write(InjectedFault::Tear);
    let record = rig.record();
    assert!(on_disk.store(Area::Protected, &record).is_err());
    rig.boot(on_disk);
    assert_eq!(rig.mode(), Mode::Recovering);
    assert!(rig.locked());
    assert_eq!(rig.title().unwrap(), OVERDUE_TITLE);
    // Setup re-binds, and the server's token locks again.
    rig.hello(TokenState::Locked);
    assert_eq!(rig.mode(), Mode::Bound);
    assert!(rig.locked());
}

#[test]
fn released_is_final_across_resets_and_nothing_is_sent() {
    let mut rig = locked_rig();
    rig.new_token(TokenState::Released);
    assert_eq!(
        rig.screen(),
        Screen::Normal {
            banner: Some(Banner::Released)
        }
    );
    assert!(rig.agent().enforcement().restrictions().is_empty());
    rig.reboot_with(|s| {
        s.wipe(Area::Ordinary).unwrap();
    });
    assert_eq!(rig.agent().status().mode, Mode::Released);
    rig.advance(365 * DAY);
    let now = rig.now();
    assert_eq!(rig.agent().due(now), None);
    assert!(rig.agent().checkin_request(now).is_none());
    assert!(!rig.locked());
}

#[test]
fn a_factory_reset_keeps_the_lock_and_is_reported() {
    let mut rig = locked_rig();
    rig.reboot_with(|s| s.wipe(Area::Ordinary).unwrap());
    // Enforced at boot, before any network.
    assert!(rig.locked());
    let now = rig.now();
    assert_eq!(rig.agent().due(now), Some(Outgoing::Checkin));
    let token = rig.agent().token().unwrap().to_string();
    let wall = rig.wall;
    let sent = rig.checkin_with(token, wall);
    assert_eq!(sent.events.len(), 1);
    assert!(sent.events[0].detail.contains("factory reset"));
}

#[test]
fn failures_back_off_and_check_again_sends_at_once() {
    let mut rig = Rig::new();
    rig.hello(TokenState::Active);
    rig.new_token(TokenState::Active);
    let mut gaps = vec![];
    for _ in 0..4 {
        let wake = rig.agent().next_wakeup().unwrap();
        // Jitter is in milliseconds; the rig's clocks move in whole seconds.
        let secs = (wake - rig.mono).as_millis().div_ceil(1000) as i64;
        gaps.push(secs);
        rig.advance(secs);
        let now = rig.now();
        assert_eq!(rig.agent().due(now), Some(Outgoing::Checkin));
        rig.agent().checkin_request(now).unwrap();
        rig.agent()
            .on_checkin(Err(TransportError::Unreachable("offline".into())), now);
        assert!(!rig.locked(), "an unreachable server never locks");
    }
    assert!((6 * 3600..=6 * 3600 + 600).contains(&gaps[0]), "{gaps:?}");
    assert!((30..=38).contains(&gaps[1]), "{gaps:?}");
    assert!((60..=76).contains(&gaps[2]), "{gaps:?}");
    assert!((120..=151).contains(&gaps[3]), "{gaps:?}");
    let now = rig.now();
    assert_eq!(rig.agent().due(now), None);
    rig.agent().check_again(now);
    assert_eq!(rig.agent().due(now), Some(Outgoing::Checkin));
}

#[test]
fn restricted_and_reminder_screens_say_what_is_limited_and_what_is_due() {
    let mut rig = Rig::new();
    rig.hello(TokenState::Active);
    rig.new_token(TokenState::Reminder);
    let text = rig.screen().to_string();
    assert!(text.starts_with("== Payment reminder =="), "{text}");
    assert!(text.contains("Amount due: KES 1,250.00"), "{text}");
    assert!(!rig.locked());

    // The fake server's restricted token limits the factory reset only; a code lifts the rest.
    rig.new_token(TokenState::Restricted);
    let Screen::Restricted(restricted) = rig.screen() else {
        panic!("{}", rig.screen())
    };
    let text = rig.screen().to_string();
    assert!(text.contains("Limited: factory reset"), "{text}");
    assert!(
        text.contains("[Check again] [Enter code] [Emergency call]"),
        "{text}"
    );
    let challenge = restricted
        .challenge
        .expect("a challenge for an offline code");
    assert!(rig.code_accepted(&code(1, &challenge)));
    assert!(matches!(rig.screen(), Screen::Normal { .. }));

    // A reminder close to the end of the lease also says to go online.
    rig.new_token(TokenState::Reminder);
    rig.advance(8 * DAY);
    let text = rig.screen().to_string();
    assert!(
        text.contains("Connect to the internet within 2 days, or this device will lock."),
        "{text}"
    );
}

#[test]
fn a_phone_whose_keystore_cannot_attest_restricts_nothing_by_itself() {
    let now = Now {
        mono: Duration::ZERO,
        wall: START,
    };
    let mut hardware = Hardware::with_slot();
    hardware.can_attest = false;
    let mut agent = Agent::boot(
        MemoryStorage::new(),
        TestPlatform::new(hardware),
        identity(),
        AgentConfig::default(),
        Box::new(SeededEntropy::new(1)),
        now,
    );
    assert_eq!(agent.due(now), Some(Outgoing::Hello));
    // No device key can be attested: no hello goes out, a retry is scheduled, nothing is
    // limited.
    assert!(
        agent
            .hello_request(now, &FakeServer::new().challenge())
            .is_none()
    );
    assert_eq!(agent.due(now), None);
    assert!(agent.enforcement().restrictions().is_empty());
    assert!(!matches!(agent.screen(), Screen::Locked(_)));
}

#[test]
fn after_a_reboot_the_request_counter_is_past_any_sent_without_saving() {
    let mut rig = active_rig();
    let token = rig.agent().token().unwrap().to_string();
    let wall = rig.wall;
    let before = rig.checkin_with(token.clone(), wall).counter;
    // The next counter is sent, but its save fails, and the phone crashes.
    rig.agent()
        .storage_mut()
        .fail_next_write(InjectedFault::Fail);
    let unsaved = rig.checkin_with(token.clone(), wall).counter;
    assert_eq!(unsaved, before + 1);
    let on_disk = rig.agent().storage().clone();
    rig.boot(on_disk);
    let after = rig.checkin_with(token, wall).counter;
    assert!(after > unsaved, "{after} is not past {unsaved}");
}

#[test]
fn an_unknown_event_kind_goes_as_other_and_refused_events_are_not_sent_again() {
    let mut rig = active_rig();
    rig.agent().report("battery", "swollen");
    let events = rig.reported();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "other");
    assert_eq!(events[0].detail, "battery: swollen");

    // The server refuses what a check-in carried (422): the events are dropped, a note of it
    // goes with the next check-in, and check-ins go on.
    rig.agent().report("tamper", "case opened");
    let now = rig.now();
    rig.agent().check_again(now);
    let sent = rig.agent().checkin_request(now).unwrap();
    let sent: lien_proto::device_api::CheckinRequest = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(sent.events.len(), 1);
    rig.agent().on_checkin(
        Err(TransportError::Refused {
            status: 422,
            message: "events.detail: is over 200 bytes".into(),
        }),
        now,
    );
    let next = rig.reported();
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].detail, "1 events refused by the server");
}

/// A new phone with the server's key pinned at manufacture.
fn pinned_phone(server: &FakeServer) -> Agent<MemoryStorage, TestPlatform> {
    let config = AgentConfig {
        factory_keys: vec![server.signer.verifying_key()],
        ..AgentConfig::default()
    };
    Agent::boot(
        MemoryStorage::new(),
        TestPlatform::new(Hardware::with_slot()),
        identity(),
        config,
        Box::new(SeededEntropy::new(3)),
        Now {
            mono: Duration::ZERO,
            wall: START,
        },
    )
}

#[test]
fn a_fake_servers_hello_answers_neither_free_nor_bind_the_phone() {
    let mut server = FakeServer::new();
    let now = Now {
        mono: Duration::ZERO,
        wall: START,
    };
    let fake = TokenSigner::new(SigningKey::from_bytes(&[66; 32]));
    let answers = [
        // "Not financed" signed by a key the phone does not know.
        lien_proto::device_api::HelloResponse::NotFinanced {
            receipt: server.receipt_by(&fake, lien_proto::hello::Verdict::NotFinanced),
        },
        // The server's own "not financed", recorded for another phone's hello.
        {
            let recorded = server.not_financed();
            server.challenges += 1;
            recorded
        },
    ];
    for answer in answers {
        let mut agent = pinned_phone(&server);
        let challenge = server.challenge();
        agent.hello_request(now, &challenge).unwrap();
        agent.on_hello(Ok(answer), now);
        assert_eq!(agent.status().mode, Mode::Unbound);
        assert_eq!(agent.due(now), None, "a retry waits for the backoff");
    }
    // A financed answer whose receipt vouches for other secrets than those it carries.
    let mut agent = pinned_phone(&server);
    agent.hello_request(now, &server.challenge()).unwrap();
    let mut swapped = server.hello(TokenState::Active, START);
    let lien_proto::device_api::HelloResponse::Financed { credential, .. } = &mut swapped else {
        unreachable!()
    };
    *credential = STANDARD.encode(b"the fake server's credential");
    agent.on_hello(Ok(swapped), now);
    assert_eq!(agent.status().mode, Mode::Unbound);
    // The server's real answers work.
    let mut agent = pinned_phone(&server);
    agent.hello_request(now, &server.challenge()).unwrap();
    agent.on_hello(Ok(server.not_financed()), now);
    assert_eq!(agent.status().mode, Mode::Free);
    let mut agent = pinned_phone(&server);
    agent.hello_request(now, &server.challenge()).unwrap();
    let answer = server.hello(TokenState::Active, START);
    agent.on_hello(Ok(answer), now);
    assert_eq!(agent.status().mode, Mode::Bound);
}
