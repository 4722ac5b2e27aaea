//! The rig the agent's tests share: a fake server that signs real tokens, a platform with
//! simulated secure hardware, and an agent on injected clocks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use lien_agent::storage::{hmac_sha256, seal, unseal};
use lien_agent::{
    Agent, AgentConfig, Area, CodeOutcome, Enforcement, Identity, InjectedFault, MemoryStorage,
    Mode, Now, Outgoing, Platform, RecordKind, RollbackSlot, Screen, SeededEntropy, Storage,
    StorageError,
};
use lien_proto::device_api::{
    CheckinRequest, CheckinResponse, DeviceEventJson, HelloChallenge, HelloResponse,
};
use lien_proto::hello::{Receipt, Verdict, binding_digest};
use lien_proto::ocra::{OcraInput, OcraSuite};
use lien_proto::{
    DeviceRestriction, Lease, ScreenText, StatusClaims, TokenSigner, TokenState, WireMoney,
};

pub const DAY: i64 = 86_400;
pub const SUITE: &str = "OCRA-1:HOTP-SHA256-8:C-QN08";
pub const OCRA_KEY: &[u8] = b"an offline key of thirty-two by!";
pub const START: i64 = 1_767_000_000;
/// The test phone's storage key.
pub const KEY: [u8; 32] = [7; 32];
/// Someone else's key: what a record forged off the phone is sealed with.
pub const OTHER_KEY: [u8; 32] = [8; 32];

/// What the rollback slot holds, and whether its writes fail (to model a write cut short).
#[derive(Debug, Default)]
pub struct SlotState {
    pub bytes: Option<Vec<u8>>,
    pub fail_writes: bool,
}

/// A rollback slot shared by every boot of one phone: it is hardware, nothing wipes it.
#[derive(Debug, Clone, Default)]
pub struct TestSlot(pub Arc<Mutex<SlotState>>);

impl RollbackSlot for TestSlot {
    fn read(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.0.lock().unwrap().bytes.clone())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let mut state = self.0.lock().unwrap();
        if state.fail_writes {
            return Err(StorageError::Injected);
        }
        state.bytes = Some(bytes.to_vec());
        Ok(())
    }
}

/// The phone's secure hardware: its storage key and, on a phone that has one, a rollback slot.
#[derive(Debug, Clone)]
pub struct Hardware {
    pub key: [u8; 32],
    pub slot: Option<TestSlot>,
    /// Whether the keystore can attest a device key (the agent passes the chain on unread).
    pub can_attest: bool,
}

impl Hardware {
    /// A phone with a rollback slot.
    pub fn with_slot() -> Hardware {
        Hardware {
            key: KEY,
            slot: Some(TestSlot::default()),
            can_attest: true,
        }
    }

    /// A phone without one.
    pub fn without_slot() -> Hardware {
        Hardware {
            key: KEY,
            slot: None,
            can_attest: true,
        }
    }
}

/// Records the last screen and restrictions, like a phone's UI would hold them, and computes
/// the storage MAC as a keystore would (here in software).
pub struct TestPlatform {
    pub screen: Option<Screen>,
    pub enforcement: Option<Enforcement>,
    pub hardware: Hardware,
}

impl TestPlatform {
    pub fn new(hardware: Hardware) -> TestPlatform {
        TestPlatform {
            screen: None,
            enforcement: None,
            hardware,
        }
    }
}

impl Platform for TestPlatform {
    fn show(&mut self, screen: &Screen) {
        self.screen = Some(screen.clone());
    }
    fn apply(&mut self, enforcement: &Enforcement) {
        self.enforcement = Some(enforcement.clone());
    }
    fn storage_mac(&mut self, message: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.hardware.key, message)
    }
    fn rollback_slot(&mut self) -> Option<&mut dyn RollbackSlot> {
        self.hardware
            .slot
            .as_mut()
            .map(|slot| slot as &mut dyn RollbackSlot)
    }
    fn attest_device_key(&mut self, challenge: &[u8], _: i64) -> Result<Vec<Vec<u8>>, String> {
        if !self.hardware.can_attest {
            return Err("the keystore is not ready".into());
        }
        Ok(vec![[b"attested for ".as_slice(), challenge].concat()])
    }
}

/// The server side: signs tokens for one device with a 10-day lease and a 3-day warning, and
/// hello receipts for its current challenge and the test phone's IMEI.
pub struct FakeServer {
    pub signer: TokenSigner,
    pub sequence: u64,
    pub challenges: u64,
}

impl FakeServer {
    pub fn new() -> FakeServer {
        FakeServer {
            signer: TokenSigner::new(SigningKey::from_bytes(&[42; 32])),
            sequence: 0,
            challenges: 1,
        }
    }

    pub fn token(&mut self, state: TokenState, issued_at: i64) -> String {
        self.sequence += 1;
        STANDARD.encode(sign(&self.signer, "dev-1", self.sequence, state, issued_at))
    }

    /// The challenge the next hello answers.
    pub fn challenge(&self) -> HelloChallenge {
        HelloChallenge {
            challenge: STANDARD.encode(self.challenges.to_be_bytes()),
            expires_at: START + 365 * DAY,
        }
    }

    /// A receipt for the current challenge, signed by `signer`.
    pub fn receipt_by(&self, signer: &TokenSigner, verdict: Verdict) -> String {
        STANDARD.encode(signer.sign_receipt(&Receipt {
            challenge: self.challenge().challenge,
            imei1: identity().imei1,
            issued_at: START,
            verdict,
        }))
    }

    pub fn hello(&mut self, state: TokenState, issued_at: i64) -> HelloResponse {
        let credential = STANDARD.encode(b"credential");
        let offline_key = STANDARD.encode(OCRA_KEY);
        let receipt = self.receipt_by(
            &self.signer,
            Verdict::Financed {
                device_id: "dev-1".into(),
                binding: binding_digest("dev-1", &credential, &offline_key),
            },
        );
        HelloResponse::Financed {
            device_id: "dev-1".into(),
            credential,
            offline_key,
            offline_suite: SUITE.into(),
            server_keys: vec![STANDARD.encode(self.signer.verifying_key().to_bytes())],
            token: self.token(state, issued_at),
            checkin_interval_secs: 6 * 3600,
            receipt,
        }
    }

    /// "Not financed", signed for the current challenge.
    pub fn not_financed(&self) -> HelloResponse {
        HelloResponse::NotFinanced {
            receipt: self.receipt_by(&self.signer, Verdict::NotFinanced),
        }
    }
}

pub fn sign(
    signer: &TokenSigner,
    device: &str,
    sequence: u64,
    state: TokenState,
    at: i64,
) -> Vec<u8> {
    let restrictions = match state {
        TokenState::Locked => vec![
            DeviceRestriction::LockScreen,
            DeviceRestriction::AppInstalls,
            DeviceRestriction::FactoryReset,
            DeviceRestriction::Debugging,
            DeviceRestriction::SafeMode,
        ],
        TokenState::Released => vec![],
        _ => vec![DeviceRestriction::FactoryReset],
    };
    signer.sign(&StatusClaims {
        device_id: device.into(),
        sequence,
        state,
        restrictions,
        screen: ScreenText {
            reason: "This device is locked due to an overdue installment payment (due 2026-02-01)."
                .into(),
            amount_due: Some(WireMoney {
                minor: 125_000,
                currency: "KES".into(),
            }),
            financier_name: "Duka Phones".into(),
            financier_contact: "+254 700 000 000".into(),
            payment_link: Some("https://pay.example/x".into()),
        },
        issued_at: at,
        lease: (state != TokenState::Released).then_some(Lease {
            ends_at: at + 10 * DAY,
            warn_from: at + 7 * DAY,
        }),
        emergency: None,
    })
}

pub fn code(counter: u64, challenge: &str) -> String {
    OcraSuite::parse(SUITE)
        .unwrap()
        .respond(
            OCRA_KEY,
            OcraInput {
                counter: Some(counter),
                challenge,
                ..OcraInput::default()
            },
        )
        .unwrap()
}

/// The protected record's JSON, opened under `key`.
pub fn open_record(record: &[u8], key: &[u8]) -> serde_json::Value {
    let (_, payload) = unseal(RecordKind::Protected, record, |m| hmac_sha256(key, m))
        .expect("a record sealed under this key");
    serde_json::from_slice(payload).unwrap()
}

/// `value` sealed as a protected record at `version` under `key`.
pub fn seal_record(value: &serde_json::Value, version: u64, key: &[u8]) -> Vec<u8> {
    let payload = serde_json::to_vec(value).unwrap();
    seal(RecordKind::Protected, version, &payload, |m| {
        hmac_sha256(key, m)
    })
}

/// The version in a sealed record's header.
pub fn version_of(record: &[u8]) -> u64 {
    u64::from_be_bytes(record[5..13].try_into().unwrap())
}

/// `value` in the earlier unkeyed format: `LNA1 || SHA-256(payload) || payload`.
pub fn unkeyed_record(value: &serde_json::Value) -> Vec<u8> {
    use sha2::Digest;
    let payload = serde_json::to_vec(value).unwrap();
    let mut record = b"LNA1".to_vec();
    record.extend_from_slice(&sha2::Sha256::digest(&payload));
    record.extend_from_slice(&payload);
    record
}

/// The test phone's identifiers.
pub fn identity() -> Identity {
    Identity {
        imei1: "356938035643809".into(),
        imei2: None,
        serial: "SN1".into(),
        model: "Phone X".into(),
    }
}

/// An agent with its clocks: `mono` restarts at each boot, `wall` is whatever the user set.
pub struct Rig {
    pub agent: Option<Agent<MemoryStorage, TestPlatform>>,
    pub mono: Duration,
    pub wall: i64,
    pub server: FakeServer,
    pub boots: u64,
    /// The phone's secure hardware, the same at every boot.
    pub hardware: Hardware,
}

impl Rig {
    /// A new phone with a rollback slot.
    pub fn new() -> Rig {
        Rig::on(Hardware::with_slot())
    }

    /// A new phone on `hardware`.
    pub fn on(hardware: Hardware) -> Rig {
        let mut rig = Rig {
            agent: None,
            mono: Duration::ZERO,
            wall: START,
            server: FakeServer::new(),
            boots: 0,
            hardware,
        };
        rig.boot(MemoryStorage::new());
        rig
    }

    pub fn now(&self) -> Now {
        Now {
            mono: self.mono,
            wall: self.wall,
        }
    }

    pub fn agent(&mut self) -> &mut Agent<MemoryStorage, TestPlatform> {
        self.agent.as_mut().unwrap()
    }

    pub fn boot(&mut self, storage: MemoryStorage) {
        self.mono = Duration::ZERO;
        self.boots += 1;
        let now = self.now();
        self.agent = Some(Agent::boot(
            storage,
            TestPlatform::new(self.hardware.clone()),
            identity(),
            AgentConfig::default(),
            Box::new(SeededEntropy::new(self.boots)),
            now,
        ));
    }

    pub fn reboot_with(&mut self, change: impl FnOnce(&mut MemoryStorage)) {
        let (mut storage, _) = self.agent.take().unwrap().shut_down();
        change(&mut storage);
        self.boot(storage);
    }

    /// The phone's storage as it is now (what a backup taken now would hold).
    pub fn storage(&mut self) -> MemoryStorage {
        self.agent().storage().clone()
    }

    /// The protected record's bytes.
    pub fn record(&mut self) -> Vec<u8> {
        self.agent()
            .storage()
            .load(Area::Protected)
            .unwrap()
            .expect("a protected record")
    }

    /// Shuts down, replaces the protected record with `record`, and boots.
    pub fn reboot_with_record(&mut self, record: Vec<u8>) {
        self.reboot_with(|s| s.put_raw(Area::Protected, Some(record)));
    }

    /// The borrower enters `code` on the lock screen now.
    pub fn enter_code(&mut self, code: &str) -> CodeOutcome {
        let now = self.now();
        self.agent().enter_code(code, now)
    }

    /// Whether `code`, entered now, is accepted.
    pub fn code_accepted(&mut self, code: &str) -> bool {
        matches!(self.enter_code(code), CodeOutcome::Accepted { .. })
    }

    pub fn mode(&mut self) -> Mode {
        self.agent().status().mode
    }

    pub fn advance(&mut self, secs: i64) {
        self.mono += Duration::from_secs(secs as u64);
        self.wall += secs;
        let now = self.now();
        self.agent().tick(now);
    }

    /// Says hello (the agent must want one) and answers with `state`.
    pub fn hello(&mut self, state: TokenState) {
        let answer = self.server.hello(state, self.wall);
        self.hello_with(answer);
    }

    /// Says hello (the agent must want one) and answers with `answer`.
    pub fn hello_with(&mut self, answer: HelloResponse) {
        let now = self.now();
        assert_eq!(self.agent().due(now), Some(Outgoing::Hello));
        let challenge = self.server.challenge();
        assert!(self.agent().hello_request(now, &challenge).is_some());
        self.agent().on_hello(Ok(answer), now);
    }

    /// A check-in answered with `token`, at the server's time `server_time`; returns what the
    /// phone sent.
    pub fn checkin_with(&mut self, token: String, server_time: i64) -> CheckinRequest {
        self.checkin_failing_write(token, server_time, None)
    }

    /// A check-in whose answer's write to storage meets `fault` (the request's own write, of
    /// its counter, is not affected).
    pub fn checkin_failing_write(
        &mut self,
        token: String,
        server_time: i64,
        fault: Option<InjectedFault>,
    ) -> CheckinRequest {
        let now = self.now();
        self.agent().check_again(now);
        let sent = self.agent().checkin_request(now).expect("bound");
        if let Some(fault) = fault {
            self.agent().storage_mut().fail_next_write(fault);
        }
        let answer = CheckinResponse {
            token,
            server_time,
            next_checkin_at: server_time + 6 * 3600,
            contact: None,
        };
        self.agent().on_checkin(Ok(answer), now);
        serde_json::from_slice(&sent.body).unwrap()
    }

    /// A check-in that brings a new token in `state`, issued at the server's time.
    pub fn new_token(&mut self, state: TokenState) {
        let at = self.wall;
        let token = self.server.token(state, at);
        self.checkin_with(token, at);
    }

    /// A check-in answered with the token the phone holds; returns the events it reported.
    pub fn reported(&mut self) -> Vec<DeviceEventJson> {
        let token = self.agent().token().unwrap().to_string();
        let wall = self.wall;
        self.checkin_with(token, wall).events
    }

    pub fn screen(&mut self) -> Screen {
        self.agent().screen().clone()
    }

    pub fn title(&mut self) -> Option<String> {
        match self.screen() {
            Screen::Locked(lock) => Some(lock.title),
            _ => None,
        }
    }

    pub fn challenge(&mut self) -> String {
        match self.screen() {
            Screen::Locked(lock) => lock.challenge.expect("the lock screen shows a challenge"),
            other => panic!("not locked: {other:?}"),
        }
    }

    pub fn locked(&mut self) -> bool {
        let locked = matches!(self.screen(), Screen::Locked(_));
        let enforced = self
            .agent()
            .platform()
            .enforcement
            .as_ref()
            .unwrap()
            .limits(DeviceRestriction::LockScreen);
        assert_eq!(locked, enforced, "screen and restrictions agree");
        locked
    }

    /// The restrictions in force.
    pub fn restrictions(&mut self) -> Vec<DeviceRestriction> {
        self.agent().enforcement().restrictions().to_vec()
    }
}

pub fn locked_rig() -> Rig {
    let mut rig = Rig::new();
    rig.hello(TokenState::Active);
    rig.new_token(TokenState::Locked);
    assert!(rig.locked());
    rig
}

/// A phone in good standing: bound, an active token, nothing but the factory reset limited.
pub fn active_rig() -> Rig {
    let mut rig = Rig::new();
    rig.hello(TokenState::Active);
    rig.new_token(TokenState::Active);
    assert_eq!(rig.screen(), Screen::Normal { banner: None });
    rig
}
