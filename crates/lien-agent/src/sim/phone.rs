//! One simulated phone.

use std::time::Duration;

use lien_proto::attestation::{DevelopmentRoot, FactoryIdentity};
use lien_proto::device_api::CheckinResponse;

use super::clock::SimClock;
use super::platform::{RecordingPlatform, SimHardware};
use super::push::{PushBackoff, PushChannel};
use super::transport::HttpTransport;
use crate::agent::{
    Agent, AgentConfig, AgentStatus, EmergencyOutcome, Identity, Outgoing, TransportError,
};
use crate::entropy::{Entropy, OsEntropy, SeededEntropy};
use crate::offline_unlock::CodeOutcome;
use crate::platform::Enforcement;
use crate::screens::{Screen, TransparencyScreen};
use crate::storage::{Area, Storage};
use crate::time::Now;

type SimAgent = Agent<Box<dyn Storage>, RecordingPlatform>;

/// The most requests one [`Phone::run_due`] makes, so a misbehaving server cannot spin it.
const MAX_REQUESTS_PER_RUN: usize = 8;

/// A simulated phone: the real agent, an HTTP transport, simulated clocks and a recording
/// platform. Every operation that a person could do to a phone is a method.
pub struct Phone {
    agent: Option<SimAgent>,
    transport: HttpTransport,
    clock: SimClock,
    identity: Identity,
    config: AgentConfig,
    seed: Option<u64>,
    boots: u64,
    hellos: u64,
    checkins: u64,
    push: Option<PushChannel>,
    pushed: u64,
}

/// The factory identity of the phone with `identity`, minted from a development `root` at
/// `now` (Unix seconds): what a phone maker's factory writes into a phone's TEE.
pub fn factory_identity(root: &DevelopmentRoot, identity: &Identity, now: i64) -> FactoryIdentity {
    root.mint_factory_identity(
        &identity.imei1,
        identity.imei2.as_deref(),
        &identity.serial,
        now,
    )
    .expect("a simulated phone's identifiers are printable ASCII")
}

impl Phone {
    /// Powers on a phone with `storage` (empty for a new phone) and boots the agent. Nothing is
    /// sent until [`Phone::run_due`]. With `seed`, the agent's randomness is a predictable
    /// stream (for reproducible tests); without it, the operating system's.
    ///
    /// The phone's secure hardware is in memory, with a storage key drawn from the same source
    /// and `factory` as the identity it attests with (see [`Phone::with_hardware`] for
    /// hardware kept next to storage on disk).
    pub fn new(
        transport: HttpTransport,
        identity: Identity,
        factory: FactoryIdentity,
        storage: Box<dyn Storage>,
        clock: SimClock,
        config: AgentConfig,
        seed: Option<u64>,
    ) -> Phone {
        let mut key = [0u8; 32];
        match seed {
            // A stream of its own ("keys"), apart from the agent's.
            Some(seed) => SeededEntropy::new(seed ^ 0x6b65_7973).fill(&mut key),
            None => OsEntropy.fill(&mut key),
        }
        .expect("the simulator has randomness for a storage key");
        let hardware = SimHardware::in_memory(key).with_factory(factory);
        Phone::with_hardware(transport, identity, storage, hardware, clock, config, seed)
    }

    /// Like [`Phone::new`], on the given secure hardware: kept in a directory, so that the
    /// records in a [`FileStorage`](crate::FileStorage) still verify after the simulator
    /// restarts, or with another key, to model records forged elsewhere.
    pub fn with_hardware(
        transport: HttpTransport,
        identity: Identity,
        storage: Box<dyn Storage>,
        hardware: SimHardware,
        clock: SimClock,
        config: AgentConfig,
        seed: Option<u64>,
    ) -> Phone {
        let mut phone = Phone {
            agent: None,
            transport,
            clock,
            identity,
            config,
            seed,
            boots: 0,
            hellos: 0,
            checkins: 0,
            push: None,
            pushed: 0,
        };
        phone.boot(storage, hardware);
        phone
    }

    fn boot(&mut self, storage: Box<dyn Storage>, hardware: SimHardware) {
        let entropy: Box<dyn Entropy> = match self.seed {
            // Each boot draws from a different stream, as a real phone's generator would.
            Some(seed) => Box::new(SeededEntropy::new(seed.wrapping_add(self.boots << 32))),
            None => Box::new(OsEntropy),
        };
        self.boots += 1;
        self.agent = Some(Agent::boot(
            storage,
            RecordingPlatform::new(hardware),
            self.identity.clone(),
            self.config.clone(),
            entropy,
            self.clock.now(),
        ));
    }

    fn agent_mut(&mut self) -> &mut SimAgent {
        self.agent.as_mut().expect("the phone is on")
    }

    /// The agent, to inspect.
    pub fn agent(&self) -> &SimAgent {
        self.agent.as_ref().expect("the phone is on")
    }

    /// What the phone reads from its clocks now.
    pub fn now(&self) -> Now {
        self.clock.now()
    }

    /// Sends whatever the agent has due now (hello, check-ins) and hands it the answers.
    pub async fn run_due(&mut self) {
        for _ in 0..MAX_REQUESTS_PER_RUN {
            let now = self.clock.now();
            let Some(outgoing) = self.agent_mut().due(now) else {
                return;
            };
            match outgoing {
                Outgoing::Hello => {
                    // A hello is two requests: a fresh challenge, then the attested hello.
                    let challenge = match self.transport.hello_challenge().await {
                        Ok(challenge) => challenge,
                        Err(err) => {
                            self.agent_mut().on_hello(Err(err), now);
                            continue;
                        }
                    };
                    let now = self.clock.now();
                    let Some(request) = self.agent_mut().hello_request(now, &challenge) else {
                        continue;
                    };
                    self.hellos += 1;
                    let answer = self.transport.hello(&request).await;
                    let now = self.clock.now();
                    self.agent_mut().on_hello(answer, now);
                }
                Outgoing::Checkin => {
                    let Some(request) = self.agent_mut().checkin_request(now) else {
                        continue;
                    };
                    self.checkins += 1;
                    let answer = self.transport.checkin(&request).await;
                    let now = self.clock.now();
                    self.agent_mut().on_checkin(answer, now);
                }
            }
        }
    }

    /// A new SIM card goes into slot `slot`; the phone reports it at once.
    pub async fn change_sim(&mut self, slot: u8) {
        let now = self.clock.now();
        self.agent_mut().sim_changed(now, &format!("slot {slot}"));
        self.run_due().await;
    }

    /// Taps "Check again" and lets the check-in run.
    pub async fn check_again(&mut self) {
        let now = self.clock.now();
        self.agent_mut().check_again(now);
        self.run_due().await;
    }

    /// Time passes for the phone (both clocks), then whatever fell due runs, once: the phone
    /// was asleep and wakes at the end.
    pub async fn advance(&mut self, by: Duration) {
        self.clock.advance(by);
        let now = self.clock.now();
        self.agent_mut().tick(now);
        self.run_due().await;
    }

    /// The borrower moves the wall clock `by` seconds (negative: back).
    pub fn shift_wall_clock(&mut self, by: i64) {
        self.clock.shift_wall(by);
        let now = self.clock.now();
        self.agent_mut().tick(now);
    }

    /// Takes the phone off the network, or puts it back.
    pub fn set_online(&mut self, online: bool) {
        self.transport.online = online;
        if let Some(push) = &mut self.push {
            if online {
                // Back on the network: try the channel again at once, not after a backoff
                // grown while offline.
                push.reset_backoff();
            } else {
                push.close();
            }
        }
    }

    /// Whether the phone is on the network.
    pub fn is_online(&self) -> bool {
        self.transport.online
    }

    /// Gives the phone a push channel to its server, reconnecting with `backoff` (and jitter
    /// from the phone's randomness). It opens at the next [`Phone::connect_push`] or
    /// [`Phone::next_push`]. Check-ins go on as before.
    pub fn enable_push(&mut self, backoff: PushBackoff) {
        let entropy: Box<dyn Entropy> = match self.seed {
            Some(seed) => Box::new(SeededEntropy::new(seed ^ 0x5055_5348)),
            None => Box::new(OsEntropy),
        };
        self.push = Some(PushChannel::new(self.transport.base(), backoff, entropy));
    }

    /// Opens the push channel now (no backoff) and takes the token it carries first.
    pub async fn connect_push(&mut self) -> Result<(), TransportError> {
        if self.push.is_none() {
            return Err(TransportError::Unreachable(
                "push is not enabled on this phone".into(),
            ));
        }
        self.open_push().await?;
        // The server sends the current token at once.
        self.next_push(Duration::from_secs(10)).await;
        Ok(())
    }

    async fn open_push(&mut self) -> Result<(), TransportError> {
        if !self.transport.online {
            return Err(TransportError::Unreachable("offline".into()));
        }
        let now = self.clock.now();
        let request = self
            .agent_mut()
            .push_request(now)
            .ok_or_else(|| TransportError::Unreachable("the phone is not bound".into()))?;
        match self.push.as_mut() {
            Some(channel) => channel.open(&request).await,
            None => Err(TransportError::Unreachable("push is not enabled".into())),
        }
    }

    /// Waits up to `within` (real time) for the next pushed token and hands it to the agent;
    /// returns whether the agent took it, or `None` if nothing came. A dropped channel is
    /// reopened after a jittered backoff, within the same wait.
    pub async fn next_push(&mut self, within: Duration) -> Option<bool> {
        let answer = tokio::time::timeout(within, self.recv_push())
            .await
            .ok()
            .flatten()?;
        Some(self.take_push(answer).await)
    }

    /// Waits for the next pushed answer, reopening a dropped channel after a jittered backoff,
    /// without handing it to the agent; `None` at once if push is not enabled. Cancel-safe:
    /// it may lose a race in a `select!` (with the terminal's input, say) and be called again
    /// without losing the channel, a token already read, or the backoff's progress. Hand what
    /// it returns to [`Phone::take_push`].
    pub async fn recv_push(&mut self) -> Option<CheckinResponse> {
        loop {
            let channel = self.push.as_mut()?;
            if !channel.is_open() {
                // The instant of the next attempt is kept in the channel, so a wait cut short
                // resumes rather than starts over.
                let at = channel.retry_at();
                tokio::time::sleep_until(at).await;
                let opened = self.open_push().await;
                if let Some(channel) = self.push.as_mut() {
                    channel.attempted();
                }
                if opened.is_err() {
                    continue;
                }
            }
            match self.push.as_mut()?.next().await {
                Ok(Some(answer)) => return Some(answer),
                Ok(None) | Err(_) => continue,
            }
        }
    }

    /// Hands a pushed answer (from [`Phone::recv_push`]) to the agent; returns whether it took
    /// the token. A new token that lifts a restriction makes a check-in due (it tells the
    /// server the phone holds it): a real phone sends it at once, and so does this one.
    pub async fn take_push(&mut self, answer: CheckinResponse) -> bool {
        let now = self.clock.now();
        self.pushed += 1;
        let taken = self.agent_mut().on_push(&answer, now);
        self.run_due().await;
        taken
    }

    /// Whether the phone has a push channel (open or to be reopened).
    pub fn push_enabled(&self) -> bool {
        self.push.is_some()
    }

    /// Whether the push channel is open.
    pub fn push_open(&self) -> bool {
        self.push.as_ref().is_some_and(PushChannel::is_open)
    }

    /// How many times the push channel was opened.
    pub fn push_connects(&self) -> u64 {
        self.push.as_ref().map_or(0, PushChannel::connects)
    }

    /// How many pushed tokens reached the agent.
    pub fn tokens_pushed(&self) -> u64 {
        self.pushed
    }

    /// Types an offline unlock code on the lock screen.
    pub fn enter_code(&mut self, code: &str) -> CodeOutcome {
        let now = self.clock.now();
        self.agent_mut().enter_code(code, now)
    }

    /// Taps "Emergency use" on the lock (or restricted) screen.
    pub fn take_emergency_use(&mut self) -> EmergencyOutcome {
        let now = self.clock.now();
        self.agent_mut().take_emergency_use(now)
    }

    /// Delivers a check-in answer as if it came from the network, e.g. from someone in the
    /// middle replaying an old token. The phone asks for it first, as it would.
    pub fn deliver_checkin(&mut self, answer: CheckinResponse) {
        let now = self.clock.now();
        let agent = self.agent_mut();
        agent.check_again(now);
        if agent.checkin_request(now).is_some() {
            agent.on_checkin(Ok(answer), now);
        }
    }

    /// Restarts the phone: the agent shuts down and boots again on the same storage.
    pub async fn reboot(&mut self) {
        self.power_cycle(&[]).await;
    }

    /// A factory reset: ordinary data is wiped, protected state survives; then setup runs.
    pub async fn factory_reset(&mut self) {
        self.power_cycle(&[Area::Ordinary]).await;
    }

    /// A full reflash: both areas are lost, as on a phone whose protected partition was erased
    /// with flashing tools; then setup runs. The rollback slot is not erased, so the agent
    /// keeps enforcing the last verified token until the server has bound it again.
    pub async fn reflash(&mut self) {
        self.power_cycle(&[Area::Ordinary, Area::Protected]).await;
    }

    async fn power_cycle(&mut self, wipe: &[Area]) {
        let agent = self.agent.take().expect("the phone is on");
        let (mut storage, platform) = agent.shut_down();
        for area in wipe {
            // The simulated media do not fail to wipe; a failure would leave the area as it was.
            // The hardware (storage key, rollback slot) is not storage: nothing wipes it.
            let _ = storage.wipe(*area);
        }
        self.clock.reboot();
        self.boot(storage, platform.into_hardware());
        self.run_due().await;
    }

    /// What is on screen.
    pub fn screen(&self) -> &Screen {
        self.agent().screen()
    }

    /// The screen as text.
    pub fn render(&self) -> String {
        self.screen().to_string()
    }

    /// The restrictions in force.
    pub fn enforcement(&self) -> &Enforcement {
        self.agent().enforcement()
    }

    /// The transparency screen.
    pub fn transparency(&self) -> TransparencyScreen {
        self.agent().transparency()
    }

    /// The agent's state.
    pub fn status(&self) -> AgentStatus {
        self.agent().status()
    }

    /// How many hellos this phone sent.
    pub fn hellos_sent(&self) -> u64 {
        self.hellos
    }

    /// How many check-ins this phone sent.
    pub fn checkins_sent(&self) -> u64 {
        self.checkins
    }

    /// The identity the phone says hello with.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
}
