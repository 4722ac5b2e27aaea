//! Someone with write access to the phone's protected storage tries to loosen its hold: resets
//! the lease or the wrong-code throttle, restores an older record, corrupts or erases it.
//! Each attempt is detected, reported to the server as tampering, and never frees the phone;
//! none of them locks a phone in good standing either. Each test checks what the borrower sees.

use std::time::Duration;

use crate::common::*;
use ed25519_dalek::SigningKey;
use lien_agent::screens::{Banner, LockCause, OFFLINE_TITLE, OVERDUE_TITLE, RECOVERING_NOTICE};
use lien_agent::{
    Agent, AgentConfig, Area, CodeOutcome, MemoryStorage, Mode, Now, Outgoing, Screen,
    SeededEntropy, Storage,
};
use lien_proto::device_api::{DeviceEventJson, HelloResponse};
use lien_proto::hello::Verdict;
use lien_proto::{DeviceRestriction, TokenSigner, TokenState};

/// How an edited record is written back without the phone's key.
#[derive(Debug, Clone, Copy)]
enum Reseal {
    /// Sealed properly, but under someone else's key.
    UnderAnotherKey,
    /// In the earlier format, whose checksum needs no key.
    Unkeyed,
    /// Not re-sealed at all: the edited payload under the old tag.
    OldTag,
}

const RESEALS: [Reseal; 3] = [Reseal::UnderAnotherKey, Reseal::Unkeyed, Reseal::OldTag];

/// The protected record with `edit` applied to its content, written back the way `how` says.
fn edited(record: &[u8], how: Reseal, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut value = open_record(record, &KEY);
    edit(&mut value);
    let version = version_of(record);
    match how {
        Reseal::UnderAnotherKey => seal_record(&value, version, &OTHER_KEY),
        Reseal::Unkeyed => unkeyed_record(&value),
        Reseal::OldTag => {
            let mut forged = seal_record(&value, version, &KEY);
            let at = forged.len() - 32;
            forged[at..].copy_from_slice(&record[record.len() - 32..]);
            forged
        }
    }
}

/// The ways storage is tampered with between a shutdown and the next boot.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    /// The lease count set back to zero, re-sealed under someone else's key.
    LeaseReset,
    /// The wrong-code throttle cleared, written in the unkeyed format.
    ThrottleReset,
    /// One byte in the middle flipped (a failing medium, or a clumsy edit).
    Corrupted,
    /// The record erased, as flashing tools do.
    Erased,
    /// An older record restored, exactly as the agent once wrote it.
    RolledBack,
}

const TAMPERS: [Tamper; 5] = [
    Tamper::LeaseReset,
    Tamper::ThrottleReset,
    Tamper::Corrupted,
    Tamper::Erased,
    Tamper::RolledBack,
];

impl Tamper {
    /// Shuts the phone down, tampers with its protected record, and boots it. `older` is a
    /// record the agent wrote earlier.
    fn apply(self, rig: &mut Rig, older: Vec<u8>) {
        rig.reboot_with(|storage| {
            let record = storage.load(Area::Protected).unwrap().unwrap();
            let replacement = match self {
                Tamper::LeaseReset => Some(edited(&record, Reseal::UnderAnotherKey, |v| {
                    v["lease_elapsed_ms"] = 0.into();
                })),
                Tamper::ThrottleReset => Some(edited(&record, Reseal::Unkeyed, |v| {
                    v["unlock"]["failures"] = 0.into();
                })),
                Tamper::Corrupted => {
                    let mut record = record;
                    let middle = record.len() / 2;
                    record[middle] ^= 0x20;
                    Some(record)
                }
                Tamper::Erased => None,
                Tamper::RolledBack => Some(older),
            };
            storage.put_raw(Area::Protected, replacement);
        });
    }

    /// What the tamper report says.
    fn reported_as(self) -> &'static str {
        match self {
            Tamper::LeaseReset | Tamper::Corrupted => "fails its MAC",
            Tamper::ThrottleReset => "unkeyed LNA1 format",
            Tamper::Erased => "protected state missing",
            Tamper::RolledBack => "protected state rolled back",
        }
    }
}

fn tamper_details(events: &[DeviceEventJson]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e.kind == "tamper")
        .map(|e| e.detail.as_str())
        .collect()
}

/// What the phone shows with one day left on its lease.
fn one_day_left() -> Screen {
    Screen::Normal {
        banner: Some(Banner::GoOnline {
            remaining: Duration::from_secs(DAY as u64),
        }),
    }
}

/// The server's hello answer locks the phone again, which has reported tampering that
/// mentions `what`.
fn relocked_reporting(rig: &mut Rig, what: &str) {
    rig.hello(TokenState::Locked);
    assert!(rig.locked());
    let details = tamper_details(&rig.reported()).join("; ");
    assert!(details.contains(what), "{details}");
}

#[test]
fn no_tampering_frees_a_locked_phone_and_each_is_reported() {
    for tamper in TAMPERS {
        let mut rig = Rig::new();
        rig.hello(TokenState::Active);
        rig.new_token(TokenState::Active);
        // The record of a freer time, for the rollback.
        let older = rig.record();
        rig.new_token(TokenState::Locked);
        rig.advance(DAY);
        tamper.apply(&mut rig, older);

        // Still locked, at once and before any network, on the last verified token.
        assert_eq!(rig.mode(), Mode::Recovering, "{tamper:?}");
        assert!(rig.locked(), "{tamper:?}");
        assert_eq!(rig.title().unwrap(), OVERDUE_TITLE);
        assert_eq!(rig.restrictions().len(), 5, "{tamper:?}");
        // The lock screen still shows the way out, and what to do now; no offline code can be
        // checked without the binding's key, so it offers none.
        let text = rig.screen().to_string();
        for expected in [
            "Amount due: KES 1,250.00",
            "Duka Phones (+254 700 000 000)",
            RECOVERING_NOTICE,
            "[Check again] [Emergency call]",
        ] {
            assert!(
                text.contains(expected),
                "{tamper:?}: {expected:?} in\n{text}"
            );
        }
        assert!(!text.contains("Unlock challenge"), "{text}");
        let now = rig.now();
        assert_eq!(
            rig.enter_code(&code(1, "12345678")),
            CodeOutcome::NothingToUnlock
        );
        assert!(rig.locked());
        assert!(
            rig.agent()
                .transparency()
                .standing
                .starts_with("locked, as last verified"),
            "{tamper:?}"
        );

        // It says hello; the server binds it again and its current token applies.
        assert_eq!(rig.agent().due(now), Some(Outgoing::Hello));
        rig.hello(TokenState::Locked);
        assert_eq!(rig.mode(), Mode::Bound, "{tamper:?}");
        assert!(rig.locked());
        // The first check-in reports what happened.
        let reported = rig.reported();
        let details = tamper_details(&reported);
        assert_eq!(details.len(), 1, "{tamper:?}: {details:?}");
        assert!(
            details[0].contains(tamper.reported_as()),
            "{tamper:?}: {details:?}"
        );
        // And after a reboot the phone is bound as usual, nothing more to report.
        rig.reboot_with(|_| {});
        assert_eq!(rig.mode(), Mode::Bound);
        assert!(rig.locked());
        assert!(tamper_details(&rig.reported()).is_empty());
    }
}

#[test]
fn no_tampering_locks_a_phone_in_good_standing() {
    for tamper in TAMPERS {
        let mut rig = active_rig();
        let older = rig.record();
        rig.advance(DAY);
        tamper.apply(&mut rig, older);
        // What was limited stays limited, and nothing more: the token's factory-reset block.
        assert_eq!(rig.mode(), Mode::Recovering, "{tamper:?}");
        assert_eq!(rig.screen(), Screen::Normal { banner: None }, "{tamper:?}");
        assert_eq!(
            rig.restrictions(),
            [DeviceRestriction::FactoryReset],
            "{tamper:?}"
        );
        // A failed hello changes nothing either.
        let now = rig.now();
        let challenge = rig.server.challenge();
        rig.agent().hello_request(now, &challenge).unwrap();
        rig.agent().on_hello(
            Err(lien_agent::TransportError::Unreachable("offline".into())),
            now,
        );
        assert!(!rig.locked());
        rig.advance(3600);
        let now = rig.now();
        rig.agent().check_again(now);
        rig.hello(TokenState::Active);
        assert_eq!(rig.mode(), Mode::Bound);
        assert_eq!(rig.screen(), Screen::Normal { banner: None });
        assert_eq!(tamper_details(&rig.reported()).len(), 1, "{tamper:?}");
    }
}

#[test]
fn a_reset_lease_gives_no_offline_time_back() {
    for how in RESEALS {
        let mut rig = active_rig();
        // Nine days offline: one day left, and the phone says so.
        rig.advance(9 * DAY);
        assert_eq!(rig.screen(), one_day_left());
        // The count is set back to zero in storage.
        rig.reboot_with(|s| {
            let record = s.load(Area::Protected).unwrap().unwrap();
            let forged = edited(&record, how, |v| v["lease_elapsed_ms"] = 0.into());
            s.put_raw(Area::Protected, Some(forged));
        });
        assert_eq!(rig.mode(), Mode::Recovering, "{how:?}");
        assert_eq!(rig.screen(), one_day_left(), "{how:?}");
        // Rebooting while recovering gives nothing back either, and reports it only once.
        rig.advance(DAY / 2);
        rig.reboot_with(|_| {});
        assert_eq!(rig.mode(), Mode::Recovering);
        assert_eq!(rig.agent().status().pending_events, 1);
        rig.advance(DAY / 2 - 1);
        assert!(!rig.locked());
        rig.advance(1);
        assert!(rig.locked(), "{how:?}");
        assert_eq!(rig.title().unwrap(), OFFLINE_TITLE);
        let Screen::Locked(lock) = rig.screen() else {
            panic!()
        };
        assert_eq!(lock.cause, LockCause::OfflineTooLong);
        assert!(
            lock.details.reason.ends_with("tap Check again."),
            "{}",
            lock.details.reason
        );
        assert_eq!(lock.challenge, None);
        // Back online: the server's current token, with a fresh lease, and the report.
        rig.hello(TokenState::Active);
        assert_eq!(rig.mode(), Mode::Bound);
        let reported = rig.reported();
        assert_eq!(tamper_details(&reported).len(), 1, "{reported:?}");
        assert_eq!(rig.screen(), Screen::Normal { banner: None });
    }
}

#[test]
fn a_hello_that_returns_the_token_already_enforced_keeps_its_lease() {
    let mut rig = active_rig();
    rig.advance(9 * DAY);
    Tamper::Corrupted.apply(&mut rig, Vec::new());
    assert_eq!(rig.mode(), Mode::Recovering);
    // The server has nothing newer: its hello answer carries the same token, which says
    // nothing about how old it is. The day left stays a day.
    let held = rig.agent().token().unwrap().to_string();
    let mut answer = rig.server.hello(TokenState::Active, rig.wall);
    let HelloResponse::Financed { token, .. } = &mut answer else {
        unreachable!()
    };
    *token = held;
    rig.hello_with(answer);
    assert_eq!(rig.mode(), Mode::Bound);
    assert_eq!(rig.screen(), one_day_left());
    // Offline since: the lease ends when it would have.
    let now = rig.now();
    rig.agent().checkin_request(now).unwrap();
    rig.agent().on_checkin(
        Err(lien_agent::TransportError::Unreachable("offline".into())),
        now,
    );
    rig.advance(DAY);
    assert!(rig.locked());
    assert_eq!(rig.title().unwrap(), OFFLINE_TITLE);
}

#[test]
fn a_reset_throttle_gains_no_tries() {
    for how in RESEALS {
        let mut rig = locked_rig();
        let challenge = rig.challenge();
        for _ in 0..6 {
            rig.enter_code("11111111");
        }
        let right = code(1, &challenge);
        assert!(matches!(
            rig.enter_code(&right),
            CodeOutcome::Throttled { .. }
        ));
        // The wrong codes are erased from storage.
        rig.reboot_with(|s| {
            let record = s.load(Area::Protected).unwrap().unwrap();
            let forged = edited(&record, how, |v| {
                v["unlock"]["failures"] = 0.into();
                v["unlock"]["since_failure_ms"] = 0.into();
            });
            s.put_raw(Area::Protected, Some(forged));
        });
        // Refused: still locked, and no code is even tried until the server is reached.
        assert_eq!(rig.mode(), Mode::Recovering, "{how:?}");
        assert!(rig.locked());
        assert_eq!(rig.enter_code(&right), CodeOutcome::NothingToUnlock);
        assert!(rig.locked(), "{how:?}");
        rig.hello(TokenState::Locked);
        assert!(rig.locked());
        assert_eq!(tamper_details(&rig.reported()).len(), 1, "{how:?}");
    }
}

#[test]
fn a_rolled_back_sequence_is_refused_and_no_old_answer_frees_the_phone() {
    let mut rig = Rig::new();
    let first_hello = rig.server.hello(TokenState::Active, rig.wall);
    rig.hello_with(first_hello.clone());
    rig.new_token(TokenState::Active);
    // Sequence 2, active: the record someone keeps.
    let older = rig.record();
    rig.new_token(TokenState::Locked);
    assert_eq!(rig.agent().status().token, Some((TokenState::Locked, 3)));
    rig.reboot_with_record(older);
    assert_eq!(rig.mode(), Mode::Recovering);
    assert!(rig.locked());
    assert_eq!(rig.agent().status().token, Some((TokenState::Locked, 3)));
    // A replayed hello answer carries an older, active token: refused.
    rig.hello_with(first_hello);
    assert_eq!(rig.mode(), Mode::Recovering);
    assert!(rig.locked());
    // So is "not financed" signed by anyone but the server (a fake server on the network).
    let now = rig.now();
    rig.agent().check_again(now);
    let fake = TokenSigner::new(SigningKey::from_bytes(&[66; 32]));
    rig.hello_with(HelloResponse::NotFinanced {
        receipt: rig.server.receipt_by(&fake, Verdict::NotFinanced),
    });
    assert_eq!(rig.mode(), Mode::Recovering);
    assert!(rig.locked());
    // The server's real answer is its current token.
    rig.agent().check_again(now);
    rig.hello(TokenState::Locked);
    assert_eq!(rig.mode(), Mode::Bound);
    assert_eq!(rig.agent().status().token, Some((TokenState::Locked, 4)));
    let reported = rig.reported();
    let details = tamper_details(&reported);
    assert_eq!(details.len(), 3, "{details:?}");
    assert!(details[0].starts_with("protected state rolled back"));
    assert_eq!(
        details[1],
        "hello refused: token refused: sequence-regressed"
    );
    assert!(details[2].starts_with("hello refused: not financed"));
}

#[test]
fn a_whole_state_rollback_gives_no_lease_back() {
    let mut rig = active_rig();
    rig.advance(DAY);
    // A backup of everything, taken on day one...
    let backup = rig.storage();
    rig.advance(8 * DAY);
    // ...restored on day nine, when the phone warns that one day is left.
    rig.reboot_with(|storage| *storage = backup);
    assert_eq!(rig.mode(), Mode::Recovering);
    assert_eq!(rig.screen(), one_day_left());
    rig.advance(DAY);
    assert!(rig.locked());
    assert_eq!(rig.title().unwrap(), OFFLINE_TITLE);
}

#[test]
fn a_reflashed_phone_keeps_the_last_verified_lock_until_the_server_answers() {
    let mut rig = locked_rig();
    rig.reboot_with(|s| {
        s.wipe(Area::Protected).unwrap();
        s.wipe(Area::Ordinary).unwrap();
    });
    assert_eq!(rig.mode(), Mode::Recovering);
    assert!(rig.locked());
    relocked_reporting(&mut rig, "protected state missing");
}

#[test]
fn released_stays_released_whatever_happens_to_the_record() {
    for tamper in [Tamper::Corrupted, Tamper::Erased, Tamper::LeaseReset] {
        let mut rig = locked_rig();
        let older = rig.record();
        rig.new_token(TokenState::Released);
        tamper.apply(&mut rig, older);
        assert_eq!(rig.mode(), Mode::Released, "{tamper:?}");
        assert_eq!(
            rig.screen(),
            Screen::Normal {
                banner: Some(Banner::Released)
            }
        );
        assert!(rig.restrictions().is_empty());
        let now = rig.now();
        assert_eq!(rig.agent().due(now), None);
        // The fresh record it wrote is read as released from now on.
        rig.reboot_with(|_| {});
        assert_eq!(rig.mode(), Mode::Released);
    }
}

#[test]
fn a_record_ahead_of_its_anchor_is_kept_and_the_anchor_catches_up() {
    let mut rig = locked_rig();
    let locked_record = rig.record();
    let slot = rig.hardware.slot.clone().unwrap();
    // An active token is written, but the anchor's write after it fails, and the phone
    // crashes before it is retried.
    slot.0.lock().unwrap().fail_writes = true;
    rig.new_token(TokenState::Active);
    assert!(!rig.locked());
    let on_disk = rig.storage();
    slot.0.lock().unwrap().fail_writes = false;
    rig.boot(on_disk);
    // Not a rollback: the newest record is used, and nothing is reported.
    assert_eq!(rig.mode(), Mode::Bound);
    assert!(!rig.locked());
    assert_eq!(rig.agent().status().pending_events, 0);
    // The anchor caught up, so the record before is now a rollback; what the phone enforces
    // is still the newest verified token.
    rig.reboot_with_record(locked_record);
    assert_eq!(rig.mode(), Mode::Recovering);
    assert!(!rig.locked());
    assert_eq!(rig.agent().status().token.unwrap().0, TokenState::Active);
}

#[test]
fn without_a_rollback_slot_a_bad_record_means_setting_up_again() {
    let mut rig = Rig::on(Hardware::without_slot());
    rig.hello(TokenState::Active);
    rig.new_token(TokenState::Locked);
    rig.reboot_with(|s| {
        let record = s.load(Area::Protected).unwrap().unwrap();
        let forged = edited(&record, Reseal::UnderAnotherKey, |v| {
            v["lease_elapsed_ms"] = 0.into();
        });
        s.put_raw(Area::Protected, Some(forged));
    });
    // Nothing is known about the phone but what the server will say: it sets up, as a new
    // phone does, and the forged lease is not used.
    assert_eq!(rig.mode(), Mode::Unbound);
    assert_eq!(
        rig.screen(),
        Screen::Normal {
            banner: Some(Banner::SettingUp)
        }
    );
    assert!(rig.restrictions().is_empty());
    relocked_reporting(&mut rig, "fails its MAC");
}

#[test]
fn without_a_rollback_slot_a_restored_record_shows_in_the_applied_sequence() {
    let mut rig = Rig::on(Hardware::without_slot());
    rig.hello(TokenState::Active);
    rig.new_token(TokenState::Active);
    let older = rig.record();
    let wall = rig.wall;
    let locked = rig.server.token(TokenState::Locked, wall);
    rig.checkin_with(locked.clone(), wall);
    let sent = rig.checkin_with(locked.clone(), wall);
    assert_eq!(sent.applied_sequence, 3);
    // The restored record is sealed by this phone, and nothing here can tell it is old.
    rig.reboot_with_record(older);
    assert_eq!(rig.mode(), Mode::Bound);
    assert!(!rig.locked());
    // Its next check-in reports sequence 2 after 3, which the server can see; the server's
    // answer, its current token, locks the phone again.
    let sent = rig.checkin_with(locked, wall);
    assert_eq!(sent.applied_sequence, 2);
    assert!(rig.locked());
}

#[test]
fn a_record_in_the_old_unkeyed_format_counts_as_absent() {
    let mut rig = Rig::on(Hardware::without_slot());
    rig.hello(TokenState::Locked);
    let value = open_record(&rig.record(), &KEY);
    rig.reboot_with_record(unkeyed_record(&value));
    assert_eq!(rig.mode(), Mode::Unbound);
    assert_eq!(
        rig.screen(),
        Screen::Normal {
            banner: Some(Banner::SettingUp)
        }
    );
    relocked_reporting(&mut rig, "LNA1");
}

/// `lien-proto/vectors/protected-storage.json`: the agent reads the worked example and refuses every
/// variant, on a platform with the example's key.
#[test]
fn the_vector_record_is_read_and_its_tampered_variants_refused() {
    let vectors: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../lien-proto/vectors/protected-storage.json"
    )))
    .unwrap();
    let hex = |v: &serde_json::Value| hex::decode(v.as_str().unwrap()).unwrap();
    let key: [u8; 32] = hex(&vectors["key"]).try_into().unwrap();
    let boot = |record: Vec<u8>| {
        let mut storage = MemoryStorage::new();
        storage.put_raw(Area::Protected, Some(record));
        let hardware = Hardware {
            key,
            ..Hardware::without_slot()
        };
        Agent::boot(
            storage,
            TestPlatform::new(hardware),
            identity(),
            AgentConfig::default(),
            Box::new(SeededEntropy::new(1)),
            Now {
                mono: Duration::ZERO,
                wall: START,
            },
        )
    };
    let agent = boot(hex(&vectors["example"]["record"]));
    assert_eq!(agent.status().mode, Mode::Released);
    assert_eq!(
        agent.screen(),
        &Screen::Normal {
            banner: Some(Banner::Released)
        }
    );
    assert!(agent.enforcement().restrictions().is_empty());
    for variant in vectors["refused"].as_array().unwrap() {
        let name = variant["name"].as_str().unwrap();
        let agent = boot(hex(&variant["record"]));
        assert_eq!(agent.status().mode, Mode::Unbound, "{name}");
        assert_eq!(
            agent.screen(),
            &Screen::Normal {
                banner: Some(Banner::SettingUp)
            },
            "{name}"
        );
        assert_eq!(agent.status().pending_events, 1, "{name}");
    }
}

/// The platform documentation promises about 1 KiB with the usual screen texts.
#[test]
fn the_anchor_fits_a_small_slot() {
    let rig = locked_rig();
    let slot = rig.hardware.slot.clone().unwrap();
    let anchor = slot.0.lock().unwrap().bytes.clone().unwrap();
    assert!(anchor.len() < 1024, "{} bytes", anchor.len());
}

#[test]
fn a_genuine_receipt_older_than_the_last_verified_token_frees_nothing() {
    // A fake server recorded the real server's signed "not financed" for a challenge of its
    // own before the phone was financed; it hands the phone that old challenge and replays the
    // receipt after the phone's protected record is destroyed.
    let mut rig = locked_rig();
    rig.advance(DAY);
    rig.new_token(TokenState::Locked);
    Tamper::Corrupted.apply(&mut rig, Vec::new());
    assert_eq!(rig.mode(), Mode::Recovering);
    let old = rig.server.not_financed();
    let now = rig.now();
    rig.agent().check_again(now);
    rig.hello_with(old);
    assert_eq!(rig.mode(), Mode::Recovering);
    assert!(rig.locked());
}
