//! The agent: boots, says hello, checks in, verifies, enforces.
//!
//! Every method takes the time it runs at; none does IO except through the [`Storage`] and the
//! [`Platform`] it was given. The caller (firmware, or [`crate::sim`]) asks [`Agent::due`] what
//! to send, carries it, and hands the answer back.
//!
//! Two rules run through everything here. Only a valid signed token or an expired lease
//! restricts the phone: an error inside the agent (storage, randomness, a bad answer) never
//! does. And nothing moves backwards: a token older than the newest accepted is refused, and a
//! release, once accepted, is kept for good.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::VerifyingKey;
use lien_proto::device_api::{
    CheckinRequest, CheckinResponse, DeviceEventJson, EventKind, HelloChallenge, HelloRequest,
    HelloResponse, MAX_CHECKIN_EVENTS, PushRequest, emergency_use_detail, sign_checkin,
    truncate_detail,
};
use lien_proto::hello::{Verdict, binding_digest};
use lien_proto::ocra::OcraSuite;
use lien_proto::{DeviceRestriction, LeaseStatus, PinnedKeys, StatusClaims, TokenState};

use crate::emergency::Refusal;
use crate::entropy::Entropy;
use crate::lease::LeaseClock;
use crate::offline_unlock::{self, CodeOutcome, UnlockRules};
use crate::platform::{AlwaysAllowed, Enforcement, Platform};
use crate::schedule::Schedule;
use crate::screens::{
    Action, Banner, Details, LockCause, LockScreen, OFFLINE_TITLE, OVERDUE_TITLE,
    RECOVERING_NOTICE, ReminderScreen, RestrictedScreen, Screen, TransparencyScreen, lock_actions,
    minutes, transparency,
};
use crate::state::{self, Anchor, Binding, Loaded, Ordinary, Protected};
use crate::storage::{Area, Storage};
use crate::time::{Now, format_duration};

/// The phone's hardware identifiers, sent at hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// First IMEI.
    pub imei1: String,
    /// Second IMEI, on a dual-SIM phone.
    pub imei2: Option<String>,
    /// Serial number.
    pub serial: String,
    /// Model name.
    pub model: String,
}

/// What the phone maker configures.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Offline unlock: look-ahead, throttle, and how long a code unlocks (default 48 hours, the
    /// server's default for the offline-unlock route).
    pub unlock: UnlockRules,
    /// The payment app that stays usable on a locked phone.
    pub payment_app: Option<String>,
    /// Server keys pinned at manufacture. When set, tokens must be signed by one of these and
    /// the keys a hello offers are ignored; when empty, the keys from the first hello are pinned.
    pub factory_keys: Vec<VerifyingKey>,
    /// The first wait after a failed request.
    pub first_backoff: Duration,
    /// The longest wait between failed requests.
    pub max_backoff: Duration,
    /// How much monotonic time may pass before the lease and throttle counts are written again;
    /// a crash loses at most this much of them. Any change of state is written at once.
    pub persist_every: Duration,
}

impl Default for AgentConfig {
    fn default() -> AgentConfig {
        AgentConfig {
            unlock: UnlockRules::default(),
            payment_app: None,
            factory_keys: Vec::new(),
            first_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            persist_every: Duration::from_secs(60),
        }
    }
}

impl AgentConfig {
    /// The configuration with offline codes unlocking for `hours`.
    pub fn with_offline_unlock_hours(mut self, hours: u64) -> AgentConfig {
        self.unlock.unlock_for = Duration::from_secs(hours * 3600);
        self
    }
}

/// Where the agent stands with the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No binding yet (first boot, or the protected state was lost with nothing known about
    /// it): hello is due.
    Unbound,
    /// The protected state failed its checks (tampered, torn, rolled back or erased) and the
    /// platform's rollback slot knows the last verified token: that token is enforced, as it
    /// was, while hello is due. See `state.rs`.
    Recovering,
    /// The server said the phone is not financed: nothing to do until the next boot.
    Free,
    /// Financed: checking in and enforcing the held token.
    Bound,
    /// Released: nothing enforced, no check-ins, for good.
    Released,
}

/// What the agent wants sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing {
    /// A hello ([`Agent::hello_request`]).
    Hello,
    /// A check-in ([`Agent::checkin_request`]).
    Checkin,
}

/// A check-in ready to send: `POST` `body` to [`lien_proto::device_api::CHECKIN_PATH`] with the
/// device id and signature headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckin {
    /// The `X-Lien-Device` header.
    pub device_id: String,
    /// The exact JSON bytes that were signed.
    pub body: Vec<u8>,
    /// The `X-Lien-Signature` header.
    pub signature: String,
}

/// Why a request got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No connection, a timeout, or the phone is offline.
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// The server answered with an error status.
    #[error("server refused ({status}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The answer could not be read.
    #[error("unreadable answer: {0}")]
    BadAnswer(String),
}

/// What came of the lock screen's "Emergency use".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmergencyOutcome {
    /// A window started: the phone works as if in good standing for `length`, until the wall
    /// clock reads `until` (Unix seconds).
    Started {
        /// How long it lasts.
        length: Duration,
        /// When it ends by the phone's wall clock.
        until: i64,
    },
    /// A window is running already, for `remaining`.
    Running {
        /// Time left.
        remaining: Duration,
    },
    /// A window was taken less than the policy's period ago: the next may start after `wait`.
    TooSoon {
        /// Time left before the next, at least.
        wait: Duration,
    },
    /// Nothing to use it on (the phone is not locked or restricted), or the policy offers none.
    NotOffered,
    /// The window could not be recorded, so it was not started: try again.
    NotSaved,
}

/// The parts of the binding in usable form.
struct Keys {
    device_id: String,
    credential: Vec<u8>,
    offline_key: Vec<u8>,
    suite: OcraSuite,
    pinned: PinnedKeys,
}

/// A verified token, verified under the keys the agent holds with it (the two are always
/// set together).
struct Held {
    /// As the server sent it (base64), to tell the same token sent again.
    token: String,
    claims: StatusClaims,
    status_code: String,
}

/// A snapshot of the agent's state, for diagnostics and the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    /// Where it stands with the server.
    pub mode: Mode,
    /// The device id, once bound.
    pub device_id: Option<String>,
    /// The held token's state and sequence.
    pub token: Option<(TokenState, u64)>,
    /// The lease position.
    pub lease: Option<LeaseStatus>,
    /// Monotonic time counted on the lease.
    pub lease_elapsed: Duration,
    /// The last accepted offline code counter.
    pub unlock_counter: u64,
    /// Wrong codes since the last right one.
    pub wrong_codes: u32,
    /// Time left on an offline unlock.
    pub unlocked_for: Option<Duration>,
    /// Time left on an emergency-use window.
    pub emergency_for: Option<Duration>,
    /// The monotonic time of the next request.
    pub next_request: Option<Duration>,
    /// Events waiting to be reported.
    pub pending_events: usize,
    /// The result of the last action, if it needs saying (a failed check-in, a wrong code).
    pub notice: Option<String>,
    /// Why the last request failed, in technical terms.
    pub last_error: Option<String>,
}

/// The most events kept for the next check-in; older ones are dropped first.
const MAX_PENDING_EVENTS: usize = 20;

/// How far the request counter moves at each boot (see `Agent::skip_request_counter`).
const COUNTER_STEP_AT_BOOT: u64 = 1 << 20;

/// The phone agent. `S` keeps its state, `P` carries out what it decides.
pub struct Agent<S: Storage, P: Platform> {
    storage: S,
    platform: P,
    entropy: Box<dyn Entropy>,
    identity: Identity,
    config: AgentConfig,
    protected: Protected,
    ordinary: Ordinary,
    /// The version of the last protected write (see `state.rs`).
    version: u64,
    /// While recovering: the anchor whose last known enforcement is in force.
    last_known: Option<Anchor>,
    /// The challenge of the hello in flight, which its answer's receipt must name.
    hello_challenge: Option<String>,
    mode: Mode,
    keys: Option<Keys>,
    held: Option<Held>,
    last_mono: Duration,
    unsaved: Duration,
    protected_dirty: bool,
    schedule: Schedule,
    /// The server's time at a monotonic instant of this boot, for the check-in's `sent_at`.
    anchor: Option<(i64, Duration)>,
    /// Whether the next check-in's `sent_at` comes from the wall clock (see `sent_at`).
    try_wall_clock: bool,
    /// Whether the check-in being answered was already the immediate retry on the other clock.
    retried_other_clock: bool,
    in_flight_events: Vec<(EventKind, String)>,
    /// The counter of the check-in in flight, whether it asked for a contact proof, and its MAC.
    in_flight_counter: Option<(u64, bool, String)>,
    /// The emergency window the check-in in flight reports, by its start.
    in_flight_emergency: Option<i64>,
    notice: Option<String>,
    /// The last request's failure in technical terms, for diagnostics (never on screen).
    last_error: Option<String>,
    shown: Option<(Screen, Enforcement)>,
}

impl<S: Storage, P: Platform> Agent<S, P> {
    /// Starts the agent at boot and enforces the stored token at once, before any network.
    ///
    /// Without a protected record (first boot) the agent shows the setup screen, restricts
    /// nothing, and has a hello due. A record that fails its checks (edited, torn, sealed under
    /// another key, rolled back, or erased while the rollback slot remembers it) is reported as
    /// tampering and a hello is due; meanwhile the agent enforces the last known enforcement
    /// from the rollback slot if the platform has one ([`Mode::Recovering`]), and otherwise
    /// sets up as a new phone. `state.rs` explains why that is never freer.
    pub fn boot(
        storage: S,
        platform: P,
        identity: Identity,
        config: AgentConfig,
        entropy: Box<dyn Entropy>,
        now: Now,
    ) -> Agent<S, P> {
        let schedule = Schedule::new(config.first_backoff, config.max_backoff);
        let mut agent = Agent {
            storage,
            platform,
            entropy,
            identity,
            config,
            protected: Protected::default(),
            ordinary: Ordinary::default(),
            version: 0,
            last_known: None,
            hello_challenge: None,
            mode: Mode::Unbound,
            keys: None,
            held: None,
            last_mono: now.mono,
            unsaved: Duration::ZERO,
            protected_dirty: false,
            schedule,
            anchor: None,
            try_wall_clock: false,
            retried_other_clock: false,
            in_flight_events: Vec::new(),
            in_flight_counter: None,
            in_flight_emergency: None,
            notice: None,
            last_error: None,
            shown: None,
        };
        let lost = agent.load_protected();
        let pending = std::mem::take(&mut agent.ordinary.pending_events);
        match state::load::<Ordinary>(&agent.storage, &mut agent.platform, Area::Ordinary) {
            Loaded::Found { value, .. } => agent.ordinary = value,
            Loaded::Missing | Loaded::Refused(_) => {
                if agent.mode == Mode::Bound && !lost {
                    agent.queue_event(
                        EventKind::Other,
                        "factory reset: data wiped, protected state kept".to_string(),
                    );
                }
            }
        }
        // A bad record stays bad until a hello replaces it: after a reboot it is found again,
        // and reported once.
        for event in pending {
            if !agent.ordinary.pending_events.contains(&event) {
                agent.ordinary.pending_events.push(event);
            }
        }
        agent.ordinary.initialised = true;
        agent.save_ordinary();
        if agent.mode == Mode::Bound {
            agent.skip_request_counter();
        }
        if let Some(held) = &agent.held {
            // The monotonic clock restarted, so the server's time is known only roughly: the
            // token's issue time plus the time counted on it since (which leaves out the time
            // the phone was off). The wall clock, usually set from the network, goes first.
            let estimate = held
                .claims
                .issued_at
                .saturating_add(agent.lease().elapsed().as_secs() as i64);
            agent.anchor = Some((estimate, now.mono));
            agent.try_wall_clock = true;
        }
        match agent.mode {
            Mode::Unbound | Mode::Recovering | Mode::Bound => agent.schedule.at_once(now.mono),
            Mode::Free | Mode::Released => agent.schedule.stop(),
        }
        agent.enforce();
        agent
    }

    /// Reads the anchor and the protected record, takes the record into use if it passes every
    /// check, and otherwise reports it and falls back on the anchor (see `state.rs`). Returns
    /// whether the record was bad.
    fn load_protected(&mut self) -> bool {
        let has_slot = self.platform.rollback_slot().is_some();
        let (floor, last_known) = match state::load_anchor(&mut self.platform) {
            None | Some(Loaded::Missing) => (0, None),
            Some(Loaded::Found { value, version }) => (version, Some(value)),
            Some(Loaded::Refused(why)) => {
                // The slot cannot be rolled back, so this is a fault, not an attack; the record
                // has only its seal to go on this time, and the next write replaces the anchor.
                self.queue_event(EventKind::Tamper, format!("rollback anchor refused: {why}"));
                (0, None)
            }
        };
        self.version = floor;
        let problem =
            match state::load::<Protected>(&self.storage, &mut self.platform, Area::Protected) {
                Loaded::Found { version, .. } if version < floor => Some(format!(
                    "protected state rolled back: version {version}, the anchor's is {floor}"
                )),
                Loaded::Found { value, version } => {
                    self.version = version;
                    match self.restore(value) {
                        // The anchor is behind (a write cut short) or new: it catches up now.
                        Ok(()) if has_slot && version != floor => {
                            self.save_protected();
                            None
                        }
                        Ok(()) => None,
                        Err(why) => Some(format!("protected state unusable ({why})")),
                    }
                }
                Loaded::Missing if last_known.is_some() => {
                    Some("protected state missing: erased since it was written".to_string())
                }
                Loaded::Missing => None,
                Loaded::Refused(why) => Some(format!("protected state refused: {why}")),
            };
        let Some(why) = problem else {
            return false;
        };
        self.queue_event(EventKind::Tamper, why);
        if let Some(last) = last_known
            && let Err(why) = self.recover(last)
        {
            self.queue_event(
                EventKind::Tamper,
                format!("last known state unusable ({why})"),
            );
        }
        true
    }

    /// Falls back on the anchor's last known enforcement after a bad record. Nothing is
    /// written but the anchor until a hello re-binds (see [`Agent::save_protected`]).
    fn recover(&mut self, last: Anchor) -> Result<(), String> {
        if last.released {
            // Released is final: a fresh record replaces the bad one, and there is nothing to
            // re-bind.
            self.protected = Protected {
                released: true,
                ..Protected::default()
            };
            self.mode = Mode::Released;
            self.save_protected();
            return Ok(());
        }
        let device_id = last.device_id.as_deref().ok_or("no device id")?;
        let token = last.token.as_deref().ok_or("no token")?;
        let bytes = STANDARD
            .decode(token)
            .map_err(|_| "token is not base64".to_string())?;
        let claims = self
            .pinned_keys(&last.server_keys)?
            .verify(&bytes, device_id, 0)
            .map_err(|e| format!("token refused: {}", e.code()))?;
        self.protected = Protected {
            token: Some(token.to_string()),
            highest_sequence: claims.sequence,
            lease_elapsed_ms: last.lease_elapsed_ms,
            last_sync: last.last_sync,
            emergency: last.emergency.clone(),
            ..Protected::default()
        };
        self.protected
            .emergency
            .observe_signed_time(claims.issued_at);
        self.held = Some(Held {
            token: token.to_string(),
            status_code: lien_proto::status_code(&bytes),
            claims,
        });
        self.last_known = Some(last);
        self.mode = Mode::Recovering;
        Ok(())
    }

    /// Takes a loaded protected record into use, or says why it cannot be.
    fn restore(&mut self, protected: Protected) -> Result<(), String> {
        if protected.released {
            self.protected = protected;
            self.mode = Mode::Released;
            return Ok(());
        }
        let binding = protected.binding.as_ref().ok_or("no binding")?;
        let keys = self.keys_for(binding)?;
        let token = protected.token.as_deref().ok_or("no token")?;
        let bytes = STANDARD.decode(token).map_err(|e| e.to_string())?;
        let claims = keys
            .pinned
            .verify(&bytes, &keys.device_id, protected.highest_sequence)
            .map_err(|e| e.code().to_string())?;
        self.held = Some(Held {
            token: token.to_string(),
            status_code: lien_proto::status_code(&bytes),
            claims,
        });
        self.keys = Some(keys);
        self.protected = protected;
        if let Some(held) = &self.held {
            // A record from before emergency use existed starts its trusted clock here.
            self.protected
                .emergency
                .observe_signed_time(held.claims.issued_at);
        }
        self.mode = Mode::Bound;
        Ok(())
    }

    /// Decodes a binding and decides which keys to pin.
    fn keys_for(&self, binding: &Binding) -> Result<Keys, String> {
        let decode = |what: &str, b64: &str| {
            STANDARD
                .decode(b64)
                .map_err(|_| format!("{what} is not base64"))
        };
        Ok(Keys {
            device_id: binding.device_id.clone(),
            credential: decode("credential", &binding.credential)?,
            offline_key: decode("offline key", &binding.offline_key)?,
            suite: OcraSuite::parse(&binding.offline_suite).map_err(|e| e.to_string())?,
            pinned: self.pinned_keys(&binding.server_keys)?,
        })
    }

    /// The factory keys if there are any, otherwise `server_keys` (base64).
    fn pinned_keys(&self, server_keys: &[String]) -> Result<PinnedKeys, String> {
        if !self.config.factory_keys.is_empty() {
            return Ok(PinnedKeys::new(self.config.factory_keys.iter().copied()));
        }
        let mut keys = Vec::new();
        for key in server_keys {
            let bytes: [u8; 32] = STANDARD
                .decode(key)
                .map_err(|_| "server key is not base64".to_string())?
                .try_into()
                .map_err(|_| "server key is not 32 bytes".to_string())?;
            keys.push(
                VerifyingKey::from_bytes(&bytes)
                    .map_err(|_| "server key is not an Ed25519 key".to_string())?,
            );
        }
        if keys.is_empty() {
            return Err("no server key".into());
        }
        Ok(PinnedKeys::new(keys))
    }

    /// What is due at `now`, if anything. Call it after every event and at
    /// [`Agent::next_wakeup`].
    pub fn due(&mut self, now: Now) -> Option<Outgoing> {
        self.tick(now);
        if !self.schedule.is_due(now.mono) {
            return None;
        }
        match self.mode {
            Mode::Unbound | Mode::Recovering => Some(Outgoing::Hello),
            Mode::Bound => Some(Outgoing::Checkin),
            Mode::Free | Mode::Released => None,
        }
    }

    /// The next monotonic instant at which something can change without outside input: a
    /// request falls due, the lease warns or ends, an unlock ends, a throttle wait ends.
    pub fn next_wakeup(&self) -> Option<Duration> {
        let mut times = vec![self.schedule.next()];
        if matches!(self.mode, Mode::Bound | Mode::Recovering)
            && let Some(held) = &self.held
            && let Some(lease) = held.claims.lease
        {
            let elapsed = self.lease().elapsed();
            for mark in [lease.warn_from, lease.ends_at] {
                let at =
                    Duration::from_secs(mark.saturating_sub(held.claims.issued_at).max(0) as u64);
                if at > elapsed {
                    times.push(Some(self.last_mono + (at - elapsed)));
                }
            }
            times.push(offline_unlock::active(&self.protected.unlock).map(|d| self.last_mono + d));
            times.push(
                self.protected
                    .emergency
                    .active()
                    .map(|d| self.last_mono + d),
            );
            times.push(
                offline_unlock::wait_left(&self.protected.unlock, &self.config.unlock)
                    .map(|d| self.last_mono + d),
            );
        }
        times.into_iter().flatten().min()
    }

    /// The hello to send for `challenge` (fetched from the server just before), with the
    /// secure hardware's attestation of a new device key for it; `None` unless the phone needs
    /// a hello, or if the hardware cannot attest (the hello is then retried with backoff).
    pub fn hello_request(&mut self, now: Now, challenge: &HelloChallenge) -> Option<HelloRequest> {
        self.tick(now);
        if !matches!(self.mode, Mode::Unbound | Mode::Recovering) {
            return None;
        }
        let attestation = STANDARD
            .decode(challenge.challenge.trim())
            .map_err(|_| "the server's challenge is not base64".to_string())
            .and_then(|bytes| self.platform.attest_device_key(&bytes, now.wall));
        let chain = match attestation {
            Ok(chain) => chain,
            Err(why) => {
                self.last_error = Some(format!("cannot attest the device key: {why}"));
                self.schedule.failed(now.mono, &mut *self.entropy);
                return None;
            }
        };
        self.schedule.sent(now.mono);
        self.hello_challenge = Some(challenge.challenge.trim().to_string());
        Some(HelloRequest {
            imei1: self.identity.imei1.clone(),
            imei2: self.identity.imei2.clone(),
            serial: self.identity.serial.clone(),
            model: self.identity.model.clone(),
            challenge: challenge.challenge.trim().to_string(),
            attestation: chain.iter().map(|der| STANDARD.encode(der)).collect(),
        })
    }

    /// The server keys a hello receipt must be signed with, if the phone knows any yet: those
    /// pinned at manufacture, or, after a bad protected record, those of the binding it had.
    /// A new phone without factory keys has none, and trusts its first hello's answer.
    fn known_server_keys(&self) -> Option<PinnedKeys> {
        if !self.config.factory_keys.is_empty() {
            return Some(PinnedKeys::new(self.config.factory_keys.iter().copied()));
        }
        let last = self.last_known.as_ref()?;
        let keys: Vec<VerifyingKey> = last
            .server_keys
            .iter()
            .filter_map(|k| STANDARD.decode(k).ok())
            .filter_map(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .filter_map(|b| VerifyingKey::from_bytes(&b).ok())
            .collect();
        (!keys.is_empty()).then(|| PinnedKeys::new(keys))
    }

    /// Checks a hello answer's receipt under `pinned`: signed, for this hello's challenge and
    /// this phone, with a verdict `expected` accepts.
    ///
    /// A fake server may hand the phone an old challenge and replay the receipt it recorded for
    /// it; while the phone holds a verified token, a receipt older than that token is refused,
    /// so a "not financed" from before the phone was financed, or a binding from an earlier
    /// financing, cannot stand for the present.
    fn check_receipt(
        &self,
        challenge: Option<&str>,
        pinned: &PinnedKeys,
        receipt: &str,
        expected: impl FnOnce(&Verdict) -> bool,
    ) -> Result<(), String> {
        let challenge = challenge.ok_or("an answer to a hello this phone did not send")?;
        let bytes = STANDARD
            .decode(receipt)
            .map_err(|_| "the receipt is not base64".to_string())?;
        let receipt = pinned
            .verify_receipt(&bytes, challenge, &self.identity.imei1)
            .map_err(|e| e.to_string())?;
        if let Some(held) = &self.held
            && receipt.issued_at < held.claims.issued_at
        {
            return Err("the receipt is older than the last verified token".into());
        }
        if expected(&receipt.verdict) {
            Ok(())
        } else {
            Err("the receipt's verdict is not the answer's".into())
        }
    }

    /// Takes the hello's answer.
    pub fn on_hello(&mut self, result: Result<HelloResponse, TransportError>, now: Now) {
        self.tick(now);
        if !matches!(self.mode, Mode::Unbound | Mode::Recovering) {
            return;
        }
        self.notice = None;
        self.last_error = None;
        // One answer per challenge: a second one for the same hello is refused.
        let challenge = self.hello_challenge.take();
        match result {
            Err(err) => {
                self.notice = Some(failure_notice(&err));
                self.last_error = Some(err.to_string());
                self.schedule.failed(now.mono, &mut *self.entropy);
            }
            Ok(HelloResponse::NotFinanced { receipt }) => {
                // "Not financed" frees the phone, so it must come from the server: signed, for
                // this very hello. Only a new phone that knows no server key yet takes the
                // first answer on trust (it has nothing to lose: it restricts nothing).
                let verified = match self.known_server_keys() {
                    Some(pinned) => {
                        self.check_receipt(challenge.as_deref(), &pinned, &receipt, |v| {
                            matches!(v, Verdict::NotFinanced)
                        })
                    }
                    None if self.mode == Mode::Recovering => {
                        Err("no server key to check it with".to_string())
                    }
                    None => Ok(()),
                };
                match verified {
                    Ok(()) => {
                        self.mode = Mode::Free;
                        self.schedule.stop();
                    }
                    Err(why) => {
                        self.queue_event(
                            EventKind::Tamper,
                            format!("hello refused: not financed: {why}"),
                        );
                        self.schedule.failed(now.mono, &mut *self.entropy);
                    }
                }
            }
            Ok(HelloResponse::Financed {
                device_id,
                credential,
                offline_key,
                offline_suite,
                server_keys,
                token,
                checkin_interval_secs,
                receipt,
            }) => {
                let digest = binding_digest(&device_id, &credential, &offline_key);
                let binding = Binding {
                    device_id,
                    credential,
                    offline_key,
                    offline_suite,
                    server_keys,
                    checkin_interval_secs,
                };
                let bound = self.bind(binding, &token, |agent, keys| {
                    agent.check_receipt(challenge.as_deref(), &keys.pinned, &receipt, |verdict| {
                        matches!(verdict, Verdict::Financed { device_id, binding }
                            if *device_id == keys.device_id && *binding == digest)
                    })
                });
                match bound {
                    Ok(()) => {
                        // A hello carries no server time, so the token's age is unknown: learn it
                        // from a check-in straight away.
                        if self.mode == Mode::Bound {
                            self.schedule.at_once(now.mono);
                        } else {
                            self.schedule.stop();
                        }
                    }
                    Err(why) => {
                        self.queue_event(EventKind::Tamper, format!("hello refused: {why}"));
                        self.schedule.failed(now.mono, &mut *self.entropy);
                    }
                }
            }
        }
        self.enforce();
    }

    fn bind(
        &mut self,
        mut binding: Binding,
        token: &str,
        receipt_ok: impl FnOnce(&Self, &Keys) -> Result<(), String>,
    ) -> Result<(), String> {
        // Recovering, the phone binds again as the phone it was: trusting the keys it pinned
        // then, and never a token older than the last one it verified for that device.
        let mut floor = 0;
        if let Some(last) = &self.last_known {
            if self.config.factory_keys.is_empty() {
                binding.server_keys = last.server_keys.clone();
            }
            if last.device_id.as_deref() == Some(binding.device_id.as_str()) {
                floor = self.protected.highest_sequence;
            }
        }
        let keys = self.keys_for(&binding)?;
        receipt_ok(self, &keys)?;
        let bytes = STANDARD
            .decode(token)
            .map_err(|_| "token is not base64".to_string())?;
        let claims = keys
            .pinned
            .verify(&bytes, &keys.device_id, floor)
            .map_err(|e| format!("token refused: {}", e.code()))?;
        // A hello carries no time, so a new token's lease starts at zero until the check-in
        // that follows; but the very token already enforced keeps the time counted on it.
        let same = self.held.as_ref().is_some_and(|held| {
            held.claims.device_id == claims.device_id && held.claims.sequence == claims.sequence
        });
        let (lease_elapsed_ms, last_sync) = if same {
            (self.protected.lease_elapsed_ms, self.protected.last_sync)
        } else {
            let mut lease = LeaseClock::default();
            lease.start(&claims, None);
            (millis(lease.elapsed()), None)
        };
        let released = claims.state == TokenState::Released;
        self.protected = Protected {
            binding: Some(binding),
            token: Some(token.to_string()),
            highest_sequence: claims.sequence,
            released,
            lease_elapsed_ms,
            last_sync,
            unlock: Default::default(),
            request_counter: 0,
            // The windows taken stay taken, whatever the binding.
            emergency: std::mem::take(&mut self.protected.emergency),
        };
        self.protected
            .emergency
            .observe_signed_time(claims.issued_at);
        self.last_known = None;
        self.held = Some(Held {
            token: token.to_string(),
            status_code: lien_proto::status_code(&bytes),
            claims,
        });
        self.keys = Some(keys);
        self.mode = if released {
            Mode::Released
        } else {
            Mode::Bound
        };
        self.save_protected();
        Ok(())
    }

    /// The check-in to send, signed; `None` unless the phone is bound.
    pub fn checkin_request(&mut self, now: Now) -> Option<SignedCheckin> {
        let counter = self.bound_request_counter(now)?;
        // An emergency window goes out from the protected record until the server has it, so
        // that a factory reset (which wipes the ordinary events) cannot lose its report.
        let emergency = self.protected.emergency.unreported();
        let room = MAX_CHECKIN_EVENTS - usize::from(emergency.is_some());
        let take = self.ordinary.pending_events.len().min(room);
        self.in_flight_events = self.ordinary.pending_events.drain(..take).collect();
        self.in_flight_emergency = emergency;
        // A phone whose lease is running out or over asks for a contact proof, so that this
        // check-in renews it even if the server has no newer token (see `lien_proto::contact`).
        let want_contact = self.held.as_ref().is_some_and(|held| {
            matches!(
                self.lease().status(&held.claims),
                LeaseStatus::Warning { .. } | LeaseStatus::Expired
            )
        });
        self.in_flight_counter = Some((counter, want_contact, String::new()));
        let keys = self.keys.as_ref()?;
        let mut events: Vec<DeviceEventJson> = self
            .in_flight_events
            .iter()
            .map(|(kind, detail)| DeviceEventJson {
                kind: kind.as_str().to_string(),
                detail: detail.clone(),
            })
            .collect();
        events.extend(emergency.map(|started| DeviceEventJson {
            kind: EventKind::EmergencyUse.as_str().to_string(),
            detail: emergency_use_detail(started),
        }));
        let request = CheckinRequest {
            sent_at: self.sent_at(now),
            counter,
            applied_sequence: self.protected.highest_sequence as i64,
            events,
            want_contact,
        };
        let body = serde_json::to_vec(&request).expect("a check-in is plain data");
        let signature = sign_checkin(&keys.credential, &body);
        if let Some((_, _, mac)) = &mut self.in_flight_counter {
            // A contact proof must name this very request (see `lien_proto::contact`).
            mac.clone_from(&signature);
        }
        self.schedule.sent(now.mono);
        Some(SignedCheckin {
            device_id: keys.device_id.clone(),
            body,
            signature,
        })
    }

    /// Brings the agent to `now` and, if it is bound, takes the next request counter.
    fn bound_request_counter(&mut self, now: Now) -> Option<u64> {
        self.tick(now);
        if self.mode != Mode::Bound {
            return None;
        }
        Some(self.next_request_counter())
    }

    /// The next request counter. A counter the server has seen is refused, so one must never be
    /// sent twice, even across a crash; it is not written here but with the next write of the
    /// protected record (within `persist_every`, or at the answer's token), because a boot
    /// moves the counter far past any sent since the last write (`skip_request_counter`). A
    /// write per request would wear the phone's storage for nothing.
    fn next_request_counter(&mut self) -> u64 {
        self.protected.request_counter = self.protected.request_counter.saturating_add(1);
        self.protected.request_counter
    }

    /// Moves the request counter past any it may have sent without saving: at boot, before a
    /// request is made. A save that failed before a crash, or a protected record restored from
    /// an older copy on a phone without a rollback slot, would otherwise send counters the
    /// server has seen, and every request would be refused as a replay until the count caught
    /// up. A phone sends a few requests a day, far fewer than the step between boots.
    fn skip_request_counter(&mut self) {
        self.protected.request_counter = self
            .protected
            .request_counter
            .saturating_add(COUNTER_STEP_AT_BOOT)
            .min(i64::MAX as u64 / 2);
        self.save_protected();
    }

    /// The request time the server checks against its window. Once the server's time is known
    /// in this boot, it is that time carried forward on the monotonic clock, so a borrower who
    /// sets the wall clock wrong can still check in. Right after a boot it is the wall clock,
    /// with the token's issue time plus the lease time counted since as the estimate to fall
    /// back on. A check-in refused as unauthorised is retried at once with the other source;
    /// if both are refused, the phone backs off and keeps alternating.
    fn sent_at(&self, now: Now) -> i64 {
        match self.anchor {
            Some((server_time, at)) if !self.try_wall_clock => {
                server_time.saturating_add(now.mono.saturating_sub(at).as_secs() as i64)
            }
            _ => now.wall,
        }
    }

    /// Takes the check-in's answer. Every token is verified; one that fails is refused, the
    /// state stays as it was, and the refusal is reported at the next check-in.
    pub fn on_checkin(&mut self, result: Result<CheckinResponse, TransportError>, now: Now) {
        self.tick(now);
        if self.mode != Mode::Bound {
            return;
        }
        let answer = match result {
            Ok(answer) => answer,
            Err(err) => {
                if matches!(
                    err,
                    TransportError::Refused {
                        status: 413 | 422,
                        ..
                    }
                ) {
                    // The server read the request and refused what it carried: sending the same
                    // events again would be refused again, and the phone would stop checking in.
                    let dropped = std::mem::take(&mut self.in_flight_events).len();
                    self.queue_event(
                        EventKind::Other,
                        format!("{dropped} events refused by the server"),
                    );
                } else {
                    self.requeue_in_flight();
                }
                self.in_flight_emergency = None;
                self.in_flight_counter = None;
                self.notice = Some(failure_notice(&err));
                self.last_error = Some(err.to_string());
                let refused = matches!(err, TransportError::Refused { status: 401, .. });
                if refused && self.anchor.is_some() {
                    self.try_wall_clock = !self.try_wall_clock;
                }
                if refused && self.anchor.is_some() && !self.retried_other_clock {
                    self.retried_other_clock = true;
                    self.schedule.at_once(now.mono);
                } else {
                    self.retried_other_clock = false;
                    self.schedule.failed(now.mono, &mut *self.entropy);
                }
                self.enforce();
                return;
            }
        };
        // The server read the events: they are delivered whatever the token turns out to be.
        self.in_flight_events.clear();
        let held_before = self.held.as_ref().map(|h| h.claims.state);
        let screen_before = self.held.as_ref().map(|h| h.claims.screen.reason.clone());
        if let Some(started) = self.in_flight_emergency.take() {
            self.protected.emergency.acknowledged(started);
        }
        let asked = self.in_flight_counter.take();
        match self.accept(&answer) {
            Ok(()) => {
                if let Some((counter, true, mac)) = asked {
                    self.take_contact(&answer, counter, &mac);
                }
                self.anchor = Some((answer.server_time, now.mono));
                self.try_wall_clock = false;
                self.retried_other_clock = false;
                self.last_error = None;
                self.notice = None;
                if self.mode == Mode::Released {
                    self.schedule.stop();
                } else if acknowledge_at_once(
                    self.held.as_ref().map(|h| &h.claims),
                    held_before,
                    screen_before.as_deref(),
                ) {
                    // As for a pushed token: the next check-in, at once, tells the server the
                    // phone holds it, or the unlock would be measured as late as that check-in
                    // and a notice's cure period would start only then.
                    self.schedule.at_once(now.mono);
                } else {
                    let wait = answer.next_checkin_at.saturating_sub(answer.server_time);
                    let wait = Duration::from_secs(wait.clamp(60, 7 * 86_400) as u64);
                    self.schedule.succeeded(now.mono, wait, &mut *self.entropy);
                }
            }
            Err(why) => {
                self.queue_event(EventKind::Tamper, format!("token refused: {why}"));
                self.schedule.failed(now.mono, &mut *self.entropy);
            }
        }
        self.save_ordinary();
        self.enforce();
    }

    /// The request that opens a push channel, signed like a check-in; `None` unless the phone
    /// is bound. Opening a channel does not replace check-ins: they stay scheduled, as the
    /// fallback when the channel is down.
    pub fn push_request(&mut self, now: Now) -> Option<SignedCheckin> {
        let counter = self.bound_request_counter(now)?;
        let keys = self.keys.as_ref()?;
        let request = PushRequest {
            sent_at: self.sent_at(now),
            counter,
            applied_sequence: self.protected.highest_sequence as i64,
        };
        let body = serde_json::to_vec(&request).expect("a push request is plain data");
        let signature = sign_checkin(&keys.credential, &body);
        Some(SignedCheckin {
            device_id: keys.device_id.clone(),
            body,
            signature,
        })
    }

    /// Takes a token pushed by the server. It is verified exactly like a checked-in one (pinned
    /// key, this device, a sequence never below the highest seen), so a pushed token can never
    /// downgrade the phone; a refused one is reported at the next check-in. Returns whether it
    /// was taken. A new token that lifts a restriction (a payment's unlock) or shows a new
    /// reminder (a notice) makes a check-in due at once (see `acknowledge_at_once`).
    pub fn on_push(&mut self, pushed: &CheckinResponse, now: Now) -> bool {
        self.tick(now);
        if self.mode != Mode::Bound {
            return false;
        }
        let held_before = self.held.as_ref().map(|h| h.claims.state);
        let screen_before = self.held.as_ref().map(|h| h.claims.screen.reason.clone());
        let taken = match self.accept(pushed) {
            Ok(()) => {
                self.anchor = Some((pushed.server_time, now.mono));
                self.try_wall_clock = false;
                self.notice = None;
                if acknowledge_at_once(
                    self.held.as_ref().map(|h| &h.claims),
                    held_before,
                    screen_before.as_deref(),
                ) {
                    self.schedule.at_once(now.mono);
                }
                true
            }
            Err(why) => {
                self.queue_event(EventKind::Tamper, format!("pushed token refused: {why}"));
                false
            }
        };
        if self.mode == Mode::Released {
            self.schedule.stop();
        }
        self.save_ordinary();
        self.enforce();
        taken
    }

    /// Renews the lease on a contact proof for the check-in sent with `counter`, if the answer
    /// carries one that verifies for it and for the token now held; anything less renews
    /// nothing (and a proof that fails is reported: the server signs only good ones).
    fn take_contact(&mut self, answer: &CheckinResponse, counter: u64, mac: &str) {
        let (Some(keys), Some(held)) = (&self.keys, &self.held) else {
            return;
        };
        let Some(proof) = answer.contact.as_deref() else {
            return;
        };
        let verified = STANDARD
            .decode(proof)
            .map_err(|_| "not base64".to_string())
            .and_then(|bytes| {
                keys.pinned
                    .verify_contact(
                        &bytes,
                        &keys.device_id,
                        (counter, mac),
                        held.claims.sequence,
                    )
                    .map_err(|e| e.to_string())
            });
        match verified {
            Ok(contact) => {
                let mut lease = self.lease();
                lease.contact();
                self.protected.lease_elapsed_ms = millis(lease.elapsed());
                self.protected
                    .emergency
                    .observe_signed_time(contact.server_time);
                self.save_protected();
            }
            Err(why) => {
                self.queue_event(EventKind::Tamper, format!("contact proof refused: {why}"));
            }
        }
    }

    /// Verifies the token in a check-in answer and takes it if it is valid.
    fn accept(&mut self, answer: &CheckinResponse) -> Result<(), String> {
        let mut lease = self.lease();
        if let Some(held) = &self.held
            && held.token == answer.token
        {
            // The token held, sent again (most check-ins): its signature was checked when it
            // came, under the keys held with it, and the same bytes would pass the same checks;
            // a phone need not spend a signature verification on every check-in.
            lease.confirm(&held.claims, answer.server_time);
            self.synced(&lease, answer);
            return Ok(());
        }
        let keys = self.keys.as_ref().ok_or("not bound")?;
        let bytes = STANDARD
            .decode(&answer.token)
            .map_err(|_| "not base64".to_string())?;
        let claims = keys
            .pinned
            .verify(&bytes, &keys.device_id, self.protected.highest_sequence)
            .map_err(|e| e.code().to_string())?;
        let held_sequence = self.held.as_ref().map(|h| h.claims.sequence);
        if held_sequence == Some(claims.sequence) {
            let held = self.held.as_ref().expect("a held sequence has a token");
            lease.confirm(&held.claims, answer.server_time);
        } else {
            lease.start(&claims, Some(answer.server_time));
            // A newer token ends an offline unlock: the server has spoken since.
            if self
                .protected
                .unlock
                .window
                .as_ref()
                .is_some_and(|w| w.against_sequence < claims.sequence)
            {
                self.protected.unlock.window = None;
            }
            self.protected.token = Some(answer.token.clone());
            self.protected.highest_sequence = claims.sequence;
            self.protected
                .emergency
                .observe_signed_time(claims.issued_at);
            if claims.state == TokenState::Released {
                self.protected.released = true;
                self.mode = Mode::Released;
            }
            self.held = Some(Held {
                token: answer.token.clone(),
                status_code: lien_proto::status_code(&bytes),
                claims,
            });
        }
        self.synced(&lease, answer);
        Ok(())
    }

    /// Keeps what an accepted answer tells of time: the lease it confirmed or started, and the
    /// server's clock.
    fn synced(&mut self, lease: &LeaseClock, answer: &CheckinResponse) {
        self.protected.lease_elapsed_ms = millis(lease.elapsed());
        self.protected.last_sync = Some(answer.server_time);
        self.save_protected();
    }

    /// The platform saw a SIM card that was not there before (`detail` says which slot): it is
    /// reported at a check-in made at once, since the financier's policy may answer it.
    pub fn sim_changed(&mut self, now: Now, detail: &str) {
        self.queue_event(EventKind::SimChange, detail.to_string());
        self.save_ordinary();
        self.check_again(now);
    }

    /// The lock screen's "Check again": a check-in (or hello) is due at once.
    pub fn check_again(&mut self, now: Now) {
        self.tick(now);
        if matches!(self.mode, Mode::Bound | Mode::Unbound | Mode::Recovering) {
            self.schedule.at_once(now.mono);
        }
    }

    /// Tries an offline unlock code typed on the lock screen.
    pub fn enter_code(&mut self, code: &str, now: Now) -> CodeOutcome {
        self.tick(now);
        let restricted = matches!(
            self.shown.as_ref().map(|(s, _)| s),
            Some(Screen::Locked(_) | Screen::Restricted(_))
        );
        let (Some(keys), true) = (&self.keys, restricted && self.mode == Mode::Bound) else {
            return CodeOutcome::NothingToUnlock;
        };
        let against = self.protected.highest_sequence;
        let before = self.protected.unlock.clone();
        let outcome = offline_unlock::try_code(
            &mut self.protected.unlock,
            &self.config.unlock,
            &keys.suite,
            &keys.offline_key,
            code,
            against,
        );
        let changed = self.protected.unlock != before;
        if changed && !self.save_protected() && matches!(outcome, CodeOutcome::Accepted { .. }) {
            // Unlocking on a code that is not recorded as used would let it work again after a
            // reboot: apply nothing, and let the borrower retry once storage works.
            self.protected.unlock = before;
            self.protected_dirty = false;
            self.notice = Some("The code could not be saved. Please try again.".into());
            self.enforce();
            return CodeOutcome::NotSaved;
        }
        self.notice = match &outcome {
            CodeOutcome::Accepted { .. } | CodeOutcome::NothingToUnlock => None,
            CodeOutcome::Wrong {
                wait: Some(wait), ..
            } => Some(format!(
                "Wrong or used code. Try again in {}.",
                format_duration(*wait)
            )),
            CodeOutcome::Wrong { tries_left, .. } => Some(format!(
                "Wrong or used code. {tries_left} tries left before a wait."
            )),
            CodeOutcome::Throttled { wait } => Some(format!(
                "Too many wrong codes. Try again in {}.",
                format_duration(*wait)
            )),
            CodeOutcome::Malformed => Some("An unlock code has 8 digits.".into()),
            CodeOutcome::NotSaved => None,
        };
        self.enforce();
        outcome
    }

    /// The lock (or restricted) screen's "Emergency use": starts the window the held token
    /// offers, offline, unless one was taken less than the policy's period ago (by this record,
    /// or by the server's, which the token carries). The window is written to protected storage
    /// before it starts, and reported at the next check-in. See `emergency.rs`.
    pub fn take_emergency_use(&mut self, now: Now) -> EmergencyOutcome {
        self.tick(now);
        if let Some(remaining) = self.protected.emergency.active() {
            return EmergencyOutcome::Running { remaining };
        }
        let restricted = matches!(
            self.shown.as_ref().map(|(s, _)| s),
            Some(Screen::Locked(_) | Screen::Restricted(_))
        );
        let allowance = self.held.as_ref().and_then(|h| h.claims.emergency);
        if !restricted || !matches!(self.mode, Mode::Bound | Mode::Recovering) {
            return EmergencyOutcome::NotOffered;
        }
        let before = self.protected.emergency.clone();
        let outcome = match self.protected.emergency.take(allowance.as_ref(), now.wall) {
            Err(Refusal::NotOffered) => EmergencyOutcome::NotOffered,
            Err(Refusal::TooSoon { wait }) => EmergencyOutcome::TooSoon { wait },
            Ok(_) if !self.save_protected() => {
                // A window not recorded as taken could be taken again after a reboot.
                self.protected.emergency = before;
                self.protected_dirty = false;
                EmergencyOutcome::NotSaved
            }
            Ok(_) => {
                let window = self
                    .protected
                    .emergency
                    .window
                    .as_ref()
                    .expect("just taken");
                EmergencyOutcome::Started {
                    length: Duration::from_millis(window.length_ms),
                    until: window.until_wall,
                }
            }
        };
        self.notice = match outcome {
            EmergencyOutcome::TooSoon { wait } => Some(format!(
                "Emergency use was already taken. It can be taken again in {}.",
                format_duration(wait)
            )),
            EmergencyOutcome::NotSaved => {
                Some("Emergency use could not be saved. Please try again.".into())
            }
            _ => None,
        };
        self.enforce();
        outcome
    }

    /// Queues an event (`sim_change`, `tamper` or `other`) for the next check-in.
    pub fn report(&mut self, kind: &str, detail: &str) {
        // The server takes only its known kinds; anything else goes as "other", named.
        if let Ok(kind) = kind.parse::<EventKind>() {
            self.queue_event(kind, detail.to_string());
        } else {
            self.queue_event(EventKind::Other, format!("{kind}: {detail}"));
        }
        self.save_ordinary();
    }

    /// Counts the monotonic time since the last call, re-enforces if anything changed (a lease
    /// warning or expiry, the end of an unlock), and writes the counts now and then.
    pub fn tick(&mut self, now: Now) {
        let delta = now.mono.saturating_sub(self.last_mono);
        self.last_mono = self.last_mono.max(now.mono);
        if matches!(self.mode, Mode::Bound | Mode::Recovering) && !delta.is_zero() {
            let mut lease = self.lease();
            lease.advance(delta);
            self.protected.lease_elapsed_ms = millis(lease.elapsed());
            offline_unlock::advance(&mut self.protected.unlock, delta);
            self.protected.emergency.advance(delta);
            self.unsaved += delta;
        }
        if self.protected_dirty || self.unsaved >= self.config.persist_every {
            self.save_protected();
        }
        self.enforce();
    }

    /// What is on screen now.
    pub fn screen(&self) -> &Screen {
        &self.shown.as_ref().expect("boot enforces").0
    }

    /// The restrictions in force now.
    pub fn enforcement(&self) -> &Enforcement {
        &self.shown.as_ref().expect("boot enforces").1
    }

    /// What the financier can and cannot do on this phone.
    pub fn transparency(&self) -> TransparencyScreen {
        let standing = match (self.mode, &self.held) {
            (Mode::Released, _) => "released: paid off, the phone is yours".to_string(),
            (Mode::Free, _) => "not financed".to_string(),
            (Mode::Unbound, _) => "not set up yet".to_string(),
            (Mode::Bound, Some(held)) => format!("{:?}", held.claims.state).to_lowercase(),
            (Mode::Recovering, Some(held)) => format!(
                "{:?}, as last verified; reconnecting to the server",
                held.claims.state
            )
            .to_lowercase(),
            (Mode::Bound | Mode::Recovering, None) => "unknown".to_string(),
        };
        let financier = match self.mode {
            Mode::Bound | Mode::Recovering => self
                .held
                .as_ref()
                .map(|h| h.claims.screen.financier_name.as_str()),
            _ => None,
        };
        let lease = self.held.as_ref().and_then(|h| {
            h.claims.lease.map(|l| {
                Duration::from_secs(l.ends_at.saturating_sub(h.claims.issued_at).max(0) as u64)
            })
        });
        transparency(financier, &standing, lease)
    }

    /// A snapshot for diagnostics.
    pub fn status(&self) -> AgentStatus {
        AgentStatus {
            mode: self.mode,
            device_id: self.keys.as_ref().map(|k| k.device_id.clone()),
            token: self
                .held
                .as_ref()
                .map(|h| (h.claims.state, h.claims.sequence)),
            lease: self
                .held
                .as_ref()
                .filter(|_| matches!(self.mode, Mode::Bound | Mode::Recovering))
                .map(|h| self.lease().status(&h.claims)),
            lease_elapsed: self.lease().elapsed(),
            unlock_counter: self.protected.unlock.counter,
            wrong_codes: self.protected.unlock.failures,
            unlocked_for: offline_unlock::active(&self.protected.unlock),
            emergency_for: self.protected.emergency.active(),
            next_request: self.schedule.next(),
            pending_events: self.ordinary.pending_events.len(),
            notice: self.notice.clone(),
            last_error: self.last_error.clone(),
        }
    }

    /// The held token's bytes (base64), as the server sent them.
    pub fn token(&self) -> Option<&str> {
        self.protected.token.as_deref()
    }

    /// The platform, to inspect.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The storage, to inspect.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The storage, e.g. to inject a fault in a test.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Stops the agent (a shutdown), writing what it has counted, and hands back its parts.
    pub fn shut_down(mut self) -> (S, P) {
        if matches!(self.mode, Mode::Bound | Mode::Recovering) {
            self.save_protected();
        }
        self.requeue_in_flight();
        self.save_ordinary();
        (self.storage, self.platform)
    }

    fn lease(&self) -> LeaseClock {
        LeaseClock::with_elapsed(Duration::from_millis(self.protected.lease_elapsed_ms))
    }

    fn queue_event(&mut self, kind: EventKind, detail: String) {
        // The server refuses a NUL in a detail (its database cannot store one), and with it the
        // whole check-in: the platform's text is cleaned here instead.
        let detail = truncate_detail(&detail.replace('\0', "")).to_string();
        let events = &mut self.ordinary.pending_events;
        events.push((kind, detail));
        if events.len() > MAX_PENDING_EVENTS {
            events.remove(0);
        }
    }

    fn requeue_in_flight(&mut self) {
        let mut events = std::mem::take(&mut self.in_flight_events);
        events.append(&mut self.ordinary.pending_events);
        let excess = events.len().saturating_sub(MAX_PENDING_EVENTS);
        self.ordinary.pending_events = events.split_off(excess);
    }

    /// Writes the protected record at the next version, then the anchor at the same version;
    /// on failure keeps the state in memory and retries at the next tick. While recovering it
    /// writes only the anchor (the lease count), leaving the bad record to be found again.
    fn save_protected(&mut self) -> bool {
        let ok = match self.mode {
            Mode::Unbound | Mode::Free => return true,
            Mode::Recovering => self.save_anchor(),
            Mode::Bound | Mode::Released => {
                self.version += 1;
                state::save(
                    &mut self.storage,
                    &mut self.platform,
                    Area::Protected,
                    self.version,
                    &self.protected,
                )
                .is_ok()
                    && self.save_anchor()
            }
        };
        self.protected_dirty = !ok;
        if ok {
            self.unsaved = Duration::ZERO;
        }
        ok
    }

    /// Writes the last known enforcement to the rollback slot, if the platform has one.
    fn save_anchor(&mut self) -> bool {
        let anchor = match &self.last_known {
            Some(last) => Anchor {
                lease_elapsed_ms: self.protected.lease_elapsed_ms,
                emergency: self.protected.emergency.clone(),
                ..last.clone()
            },
            None => {
                let binding = self.protected.binding.as_ref();
                Anchor {
                    released: self.protected.released,
                    device_id: binding.map(|b| b.device_id.clone()),
                    token: self.protected.token.clone(),
                    server_keys: binding.map(|b| b.server_keys.clone()).unwrap_or_default(),
                    lease_elapsed_ms: self.protected.lease_elapsed_ms,
                    last_sync: self.protected.last_sync,
                    emergency: self.protected.emergency.clone(),
                }
            }
        };
        state::save_anchor(&mut self.platform, self.version, &anchor).is_ok()
    }

    /// Writes the ordinary record; losing it loses only unreported events.
    fn save_ordinary(&mut self) {
        let _ = state::save(
            &mut self.storage,
            &mut self.platform,
            Area::Ordinary,
            0,
            &self.ordinary,
        );
    }

    /// Works out what must be on screen and in force, and tells the platform if it changed.
    fn enforce(&mut self) {
        let always = AlwaysAllowed::new(self.config.payment_app.clone());
        let (screen, enforcement) = match (self.mode, &self.held) {
            (Mode::Unbound, _) | (Mode::Recovering, None) => (
                Screen::Normal {
                    banner: Some(Banner::SettingUp),
                },
                Enforcement::none(always),
            ),
            (Mode::Free, _) | (Mode::Bound, None) => {
                (Screen::Normal { banner: None }, Enforcement::none(always))
            }
            (Mode::Released, _) => (
                Screen::Normal {
                    banner: Some(Banner::Released),
                },
                Enforcement::none(always),
            ),
            (Mode::Bound | Mode::Recovering, Some(_)) => self.bound_screen(always),
        };
        let changed = self
            .shown
            .as_ref()
            .is_none_or(|(s, e)| *s != screen || *e != enforcement);
        if changed {
            self.platform.apply(&enforcement);
            self.platform.show(&screen);
            self.shown = Some((screen, enforcement));
        }
    }

    fn bound_screen(&mut self, always: AlwaysAllowed) -> (Screen, Enforcement) {
        let held = self.held.as_ref().expect("bound with a token");
        let claims = &held.claims;
        let lease = self.lease().status(claims);
        if let Some(left) = offline_unlock::active(&self.protected.unlock) {
            // An unlock lifts everything that is about using the phone; blocking a factory reset
            // stays as the token asked, since the phone is still financed.
            let kept = claims
                .restrictions
                .iter()
                .copied()
                .filter(|r| *r == DeviceRestriction::FactoryReset);
            return (
                Screen::Normal {
                    banner: Some(Banner::UnlockedByCode {
                        remaining: minutes(left),
                    }),
                },
                Enforcement::new(kept, always),
            );
        }
        if let Some(left) = self.protected.emergency.active() {
            // Emergency use works like good standing; blocking a factory reset stays, as the
            // phone is still financed.
            let kept = claims
                .restrictions
                .iter()
                .copied()
                .filter(|r| *r == DeviceRestriction::FactoryReset);
            let until = self
                .protected
                .emergency
                .window
                .as_ref()
                .map_or(0, |w| w.until_wall);
            return (
                Screen::Normal {
                    banner: Some(Banner::EmergencyUse {
                        until,
                        remaining: minutes(left),
                    }),
                },
                Enforcement::new(kept, always),
            );
        }
        let details = Details {
            reason: claims.screen.reason.clone(),
            amount_due: claims.screen.amount_due.clone(),
            financier_name: claims.screen.financier_name.clone(),
            financier_contact: claims.screen.financier_contact.clone(),
            payment_link: claims.screen.payment_link.clone(),
            imei: self.identity.imei1.clone(),
            status_code: held.status_code.clone(),
            last_sync: self.protected.last_sync,
        };
        let warning = match lease {
            LeaseStatus::Warning { remaining } => Some(minutes(remaining)),
            _ => None,
        };
        let restrictions = claims.restrictions.clone();
        let codes = self.keys.is_some();
        let notice = self
            .notice
            .clone()
            .or_else(|| (self.mode == Mode::Recovering).then(|| RECOVERING_NOTICE.to_string()));
        if lease == LeaseStatus::Expired {
            let name = &details.financier_name;
            let reason = if codes {
                format!(
                    "This phone has not reached {name} for too long. Connect to the internet and \
                     tap Check again, or ask {name} for an unlock code."
                )
            } else {
                format!(
                    "This phone has not reached {name} for too long. Connect to the internet and \
                     tap Check again."
                )
            };
            let challenge = self.challenge();
            return (
                Screen::Locked(Box::new(LockScreen {
                    cause: LockCause::OfflineTooLong,
                    title: OFFLINE_TITLE.to_string(),
                    details: Details { reason, ..details },
                    challenge,
                    notice,
                    actions: self.actions(),
                })),
                Enforcement::new(
                    [
                        DeviceRestriction::LockScreen,
                        DeviceRestriction::AppInstalls,
                        DeviceRestriction::FactoryReset,
                        DeviceRestriction::Debugging,
                        DeviceRestriction::SafeMode,
                    ],
                    always,
                ),
            );
        }
        let state = claims.state;
        let screen = match state {
            TokenState::Active | TokenState::Released => Screen::Normal {
                banner: warning.map(|remaining| Banner::GoOnline { remaining }),
            },
            TokenState::Reminder => Screen::Reminder(Box::new(ReminderScreen {
                details,
                go_online_within: warning,
            })),
            TokenState::Restricted => {
                let limited = restrictions.clone();
                Screen::Restricted(Box::new(RestrictedScreen {
                    details,
                    limited,
                    challenge: self.challenge(),
                    notice,
                    actions: self.actions(),
                }))
            }
            TokenState::Locked => {
                let title = if details.amount_due.is_some() {
                    OVERDUE_TITLE.to_string()
                } else {
                    "This device is locked".to_string()
                };
                Screen::Locked(Box::new(LockScreen {
                    cause: LockCause::Token,
                    title,
                    details,
                    challenge: self.challenge(),
                    notice,
                    actions: self.actions(),
                }))
            }
        };
        (screen, Enforcement::new(restrictions, always))
    }

    /// The lock screen's buttons: "Enter code" only while there is an offline key to check a
    /// code against (not while recovering).
    fn actions(&self) -> Vec<Action> {
        let codes = self.keys.is_some();
        let mut actions: Vec<Action> = lock_actions()
            .into_iter()
            .filter(|action| codes || *action != Action::EnterCode)
            .collect();
        let offered = self
            .held
            .as_ref()
            .and_then(|h| h.claims.emergency)
            .is_some_and(|e| e.hours > 0);
        if offered {
            actions.push(Action::EmergencyUse);
        }
        actions
    }

    /// The challenge to show, made (and kept) the first time a screen needs one. Without
    /// randomness there is none, and the screen says to check again instead; without an
    /// offline key (while recovering) there is none either.
    fn challenge(&mut self) -> Option<String> {
        self.keys.as_ref()?;
        if self.protected.unlock.challenge.is_none() {
            let challenge = offline_unlock::new_challenge(&mut *self.entropy).ok()?;
            self.protected.unlock.challenge = Some(challenge);
            self.save_protected();
        }
        self.protected.unlock.challenge.clone()
    }
}

/// What the borrower reads after a failed request: what to do, not the protocol's details.
fn failure_notice(err: &TransportError) -> String {
    match err {
        TransportError::Unreachable(_) => {
            "No connection to the server. Check the internet connection and try again.".into()
        }
        TransportError::Refused { .. } | TransportError::BadAnswer(_) => {
            "The server did not accept this check-in; the phone will try again. If it keeps \
             failing, check the date and time, or call your financier."
                .into()
        }
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl std::fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "mode: {:?}", self.mode)?;
        if let Some(id) = &self.device_id {
            writeln!(f, "device: {id}")?;
        }
        if let Some((state, seq)) = self.token {
            writeln!(f, "token: {state:?} (sequence {seq})")?;
        }
        if let Some(lease) = self.lease {
            writeln!(
                f,
                "lease: {lease:?} (token {} old)",
                format_duration(self.lease_elapsed)
            )?;
        }
        writeln!(
            f,
            "offline codes: last counter {}, {} wrong since",
            self.unlock_counter, self.wrong_codes
        )?;
        if let Some(left) = self.unlocked_for {
            writeln!(f, "unlocked by code for {}", format_duration(left))?;
        }
        if let Some(left) = self.emergency_for {
            writeln!(f, "emergency use for {}", format_duration(left))?;
        }
        writeln!(f, "events to report: {}", self.pending_events)?;
        if let Some(notice) = &self.notice {
            writeln!(f, "last result: {notice}")?;
        }
        if let Some(error) = &self.last_error {
            writeln!(f, "last error: {error}")?;
        }
        Ok(())
    }
}

/// Whether `now`, the token just taken after one of state `before` showing `screen_before`,
/// is to be acknowledged by a check-in at once. The check-in tells the server the phone holds
/// it (its applied sequence): for a token that lifts a restriction, that is how fast a payment
/// reached the phone; for a new reminder, or new words on a standing restriction, it is when
/// the borrower was shown the notice, from which its cure period runs, so waiting for the next
/// check-in would only put the lock off.
/// Other new tokens (the scheduler's escalations, lease renewals) wait for the next check-in,
/// so that a batch of them does not bring every phone to the server in the same second.
fn acknowledge_at_once(
    now: Option<&StatusClaims>,
    before: Option<TokenState>,
    screen_before: Option<&str>,
) -> bool {
    let Some(now) = now else {
        return false;
    };
    let lifted = before.is_some_and(|b| severity(now.state) < severity(b));
    let new_words = screen_before != Some(now.screen.reason.as_str());
    let new_reminder =
        now.state == TokenState::Reminder && (before != Some(TokenState::Reminder) || new_words);
    // A notice can come on a restricted screen too (one restricted for its SIM card): the
    // same restriction with new words.
    let restricted_anew =
        now.state == TokenState::Restricted && before == Some(TokenState::Restricted) && new_words;
    lifted || new_reminder || restricted_anew
}

/// How much a token state restricts the phone, for telling a lifted restriction from a new
/// one (a released phone stops checking in altogether).
fn severity(state: TokenState) -> u8 {
    match state {
        TokenState::Active | TokenState::Released => 0,
        TokenState::Reminder => 1,
        TokenState::Restricted => 2,
        TokenState::Locked => 3,
    }
}
