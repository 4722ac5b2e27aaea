//! One simulated phone: the real agent on simulated clocks, storage and hardware, whose
//! requests go to the server in this process (`transport`), and the record of what its
//! borrower saw and when.
//!
//! What the phone shows is read from the agent (its screen, as the platform would draw it),
//! never from the server: a token the phone did not receive restricts nothing, and a lock the
//! agent imposes itself (an expired lease) counts as much as a signed one.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use jiff::Timestamp;
use lien_agent::screens::Details;
use lien_agent::sim::{RecordingPlatform, SimClock, SimHardware};
use lien_agent::{
    Agent, AgentConfig, Area, Identity, LockCause, MemoryStorage, Outgoing, Screen, SeededEntropy,
    Storage as _, TransportError,
};
use lien_proto::attestation::FactoryIdentity;

use crate::transport;

type SimAgent = Agent<MemoryStorage, RecordingPlatform>;

/// The most requests one wake-up sends, as the simulator's `Phone` bounds it.
const MAX_REQUESTS_PER_RUN: usize = 8;

/// What the borrower sees, reduced to what the oracle judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Look {
    /// The phone works (setting up, good standing, released, an unlock code or emergency use).
    Normal,
    /// A reminder that names an amount overdue (a notice): nothing limited.
    Reminder,
    /// A reminder with nothing overdue (an installment due soon, a new SIM): it serves no
    /// notice of arrears, however long it stays on screen.
    Heads,
    /// Some functions limited, by a signed token.
    Restricted,
    /// The lock screen, by a signed token.
    Locked,
    /// The lock screen because the lease ran out (the phone locked itself, offline).
    LeaseLocked,
}

impl Look {
    /// How restrictive: 0 normal or reminder, 2 restricted, 3 locked (as the oracle counts).
    pub fn severity(self) -> u8 {
        match self {
            Look::Normal | Look::Reminder | Look::Heads => 0,
            Look::Restricted => 2,
            Look::Locked | Look::LeaseLocked => 3,
        }
    }

    /// Whether a screen that shows the arrears is on display (a notice the borrower can read).
    pub fn shows_arrears(self) -> bool {
        matches!(self, Look::Reminder | Look::Restricted | Look::Locked)
    }

    fn of(screen: &Screen) -> Look {
        match screen {
            Screen::Normal { .. } => Look::Normal,
            // The token names an amount due only when something is overdue.
            Screen::Reminder(reminder) if reminder.details.amount_due.is_none() => Look::Heads,
            Screen::Reminder(_) => Look::Reminder,
            Screen::Restricted(_) => Look::Restricted,
            Screen::Locked(lock) => match lock.cause {
                LockCause::Token => Look::Locked,
                LockCause::OfflineTooLong => Look::LeaseLocked,
            },
        }
    }

    /// A short name for timelines.
    pub fn name(self) -> &'static str {
        match self {
            Look::Normal => "normal",
            Look::Reminder => "reminder",
            Look::Heads => "reminder (nothing overdue)",
            Look::Restricted => "restricted",
            Look::Locked => "locked",
            Look::LeaseLocked => "locked (lease ran out)",
        }
    }
}

/// The sentence with which the server's screens tell of a SIM change the financier has not
/// accepted (`lien_server::domain`'s `sim_change_text`). Read from the screen, as the borrower
/// reads it: were the words to change, no screen would tell of a SIM change here, the oracle
/// would allow no restriction for one, and the simulation would report the server's as
/// wrongful, so a change cannot pass unseen.
pub const SIM_CHANGE_TOLD: &str = "A new SIM card was put in this phone.";

/// What a screen tells the borrower about the financing, if it says anything.
fn details(screen: &Screen) -> Option<&Details> {
    match screen {
        Screen::Normal { .. } => None,
        Screen::Reminder(reminder) => Some(&reminder.details),
        Screen::Restricted(restricted) => Some(&restricted.details),
        Screen::Locked(lock) => Some(&lock.details),
    }
}

/// A simulated phone.
pub struct SimPhone {
    agent: Option<SimAgent>,
    clock: SimClock,
    /// The virtual instant the phone's clocks were last moved to.
    at: Timestamp,
    identity: Identity,
    config: AgentConfig,
    seed: u64,
    boots: u64,
    peer: SocketAddr,
    /// Whether the phone is on the network.
    pub online: bool,
    /// Whether the phone keeps a push channel open while online (else it hears of changes at
    /// its next check-in).
    pub push: bool,
    /// What the borrower saw: each change of [`Look`], at the virtual instant it happened.
    pub timeline: Vec<(Timestamp, Look)>,
    /// Each instant the phone began to show a newly received token that names an amount
    /// overdue: the only screens that can serve a notice (one still on screen from before
    /// the notice existed cannot, even when its look is the same).
    pub arrears_screens: Vec<Timestamp>,
    /// Each instant the phone began to show a newly received token whose screen tells of a
    /// SIM change ([`SIM_CHANGE_TOLD`]).
    pub sim_screens: Vec<Timestamp>,
    /// The token on screen at the last [`SimPhone::note`], to tell a new one.
    shown_token: Option<String>,
    /// The last instant the phone had an answer from the server.
    pub last_contact: Option<Timestamp>,
    /// Every instant the phone had an answer from the server.
    pub contacts: Vec<Timestamp>,
    /// Each time the phone locked itself for its lease: when, and its last answer before.
    pub lease_locks: Vec<(Timestamp, Option<Timestamp>)>,
    /// Requests sent.
    pub requests: u64,
    /// Answers of the server's own failure (5xx): a run with any is not to be trusted, for it
    /// depends on the machine (a pool's wait given up) rather than on the seed alone.
    pub server_errors: u64,
    /// Print each request and its outcome to standard error (`--trace`).
    pub trace: bool,
}

impl SimPhone {
    /// A new phone, powered on at `at` with empty storage; `number` gives it an address of
    /// its own.
    pub fn new(
        identity: Identity,
        factory: FactoryIdentity,
        number: u32,
        seed: u64,
        at: Timestamp,
    ) -> SimPhone {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..12].copy_from_slice(&number.to_le_bytes());
        let hardware = SimHardware::in_memory(key).with_factory(factory);
        let [a, b, c, d] = number.to_be_bytes();
        let mut phone = SimPhone {
            agent: None,
            clock: SimClock::manual(at.as_second()),
            at,
            identity,
            config: AgentConfig::default(),
            seed,
            boots: 0,
            // 10.0.0.0/8 and beyond: one address per phone, so the per-client limits see
            // phones, not the simulation.
            peer: SocketAddr::from(([10 + a, b, c, d], 40_000)),
            online: true,
            push: true,
            timeline: Vec::new(),
            arrears_screens: Vec::new(),
            sim_screens: Vec::new(),
            shown_token: None,
            last_contact: None,
            contacts: Vec::new(),
            lease_locks: Vec::new(),
            requests: 0,
            server_errors: 0,
            trace: false,
        };
        phone.boot(MemoryStorage::new(), hardware);
        phone
    }

    fn boot(&mut self, storage: MemoryStorage, hardware: SimHardware) {
        // Each boot draws from a stream of its own, as a real phone's generator would.
        let entropy = SeededEntropy::new(self.seed.wrapping_add(self.boots << 32));
        self.boots += 1;
        self.agent = Some(Agent::boot(
            storage,
            RecordingPlatform::new(hardware),
            self.identity.clone(),
            self.config.clone(),
            Box::new(entropy),
            self.clock.now(),
        ));
        self.note();
    }

    fn agent(&mut self) -> &mut SimAgent {
        self.agent.as_mut().expect("the phone is on")
    }

    /// What the borrower sees now.
    pub fn look(&self) -> Look {
        Look::of(self.agent.as_ref().expect("the phone is on").screen())
    }

    /// Records the screen if it changed.
    fn note(&mut self) {
        let look = self.look();
        let agent = self.agent.as_ref().expect("the phone is on");
        if agent.token() != self.shown_token.as_deref() {
            self.shown_token = agent.token().map(str::to_string);
            let told = details(agent.screen());
            // A screen with the arrears names the amount overdue; a manual lock or a SIM
            // change's restriction on a phone that owes nothing tells of no arrears.
            if look.shows_arrears() && told.is_some_and(|d| d.amount_due.is_some()) {
                self.arrears_screens.push(self.at);
            }
            if told.is_some_and(|d| d.reason.contains(SIM_CHANGE_TOLD)) {
                self.sim_screens.push(self.at);
            }
        }
        if self.timeline.last().map(|(_, l)| *l) != Some(look) {
            if look == Look::LeaseLocked {
                self.lease_locks.push((self.at, self.last_contact));
            }
            self.timeline.push((self.at, look));
        }
    }

    /// The 8-digit status code the phone's screen shows, if it shows one (a reminder,
    /// restricted or lock screen): what a borrower types into the appeal form.
    pub fn status_code(&self) -> Option<String> {
        let agent = self.agent.as_ref().expect("the phone is on");
        details(agent.screen()).map(|d| d.status_code.clone())
    }

    /// The phone's first IMEI (dial *#06#).
    pub fn imei(&self) -> &str {
        &self.identity.imei1
    }

    /// What the screen says is owed, in minor units, if it names an amount.
    pub fn amount_due(&self) -> Option<i64> {
        let agent = self.agent.as_ref().expect("the phone is on");
        details(agent.screen()).and_then(|d| d.amount_due.as_ref().map(|m| m.minor))
    }

    /// A new SIM card goes into the phone: the agent reports it at a check-in due at once (the
    /// run wakes the phone to send it).
    pub fn change_sim(&mut self) {
        let now = self.clock.now();
        self.agent().sim_changed(now, "slot 1");
        self.note();
    }

    /// Time passes for the phone up to `at` (both clocks); the agent counts it.
    pub fn advance_to(&mut self, at: Timestamp) {
        if at > self.at {
            let by = at.duration_since(self.at);
            self.clock
                .advance(Duration::try_from(by).unwrap_or(Duration::ZERO));
            self.at = at;
        }
        let now = self.clock.now();
        self.agent().tick(now);
        self.note();
    }

    /// The borrower moves the wall clock `by` seconds.
    pub fn shift_wall_clock(&mut self, by: i64) {
        self.clock.shift_wall(by);
        let now = self.clock.now();
        self.agent().tick(now);
        self.note();
    }

    /// A factory reset: ordinary data wiped, protected state kept, the agent boots again.
    pub fn factory_reset(&mut self) {
        let agent = self.agent.take().expect("the phone is on");
        let (mut storage, platform) = agent.shut_down();
        // The simulated media do not fail to wipe.
        let _ = storage.wipe(Area::Ordinary);
        self.clock.reboot();
        self.boot(storage, platform.into_hardware());
    }

    /// The phone hears of a change (a pushed token): online with a push channel, it asks for
    /// the current token at once.
    pub async fn pushed(&mut self, router: &Router) {
        if self.trace {
            eprintln!(
                "{} pushed (online {}, push {})",
                self.at, self.online, self.push
            );
        }
        if self.online && self.push {
            let now = self.clock.now();
            self.agent().check_again(now);
            self.run_due(router).await;
        }
    }

    /// The phone is back on the network: its push channel opens and carries the current
    /// token; without push it checks in as it planned.
    pub async fn reconnected(&mut self, router: &Router) {
        self.online = true;
        if self.push {
            self.pushed(router).await;
        } else {
            self.run_due(router).await;
        }
    }

    /// Sends whatever the agent has due and hands it the answers.
    pub async fn run_due(&mut self, router: &Router) {
        for _ in 0..MAX_REQUESTS_PER_RUN {
            let now = self.clock.now();
            let Some(outgoing) = self.agent().due(now) else {
                break;
            };
            self.requests += 1;
            match outgoing {
                Outgoing::Hello => {
                    let challenge = match self.reach() {
                        Ok(()) => transport::hello_challenge(router, self.peer).await,
                        Err(e) => Err(e),
                    };
                    let challenge = match challenge {
                        Ok(challenge) => challenge,
                        Err(err) => {
                            self.agent().on_hello(Err(err), now);
                            continue;
                        }
                    };
                    let Some(request) = self.agent().hello_request(now, &challenge) else {
                        continue;
                    };
                    let answer = transport::hello(router, self.peer, &request).await;
                    self.heard(&answer);
                    self.agent().on_hello(answer, now);
                }
                Outgoing::Checkin => {
                    let Some(request) = self.agent().checkin_request(now) else {
                        continue;
                    };
                    let answer = match self.reach() {
                        Ok(()) => transport::checkin(router, self.peer, &request).await,
                        Err(e) => Err(e),
                    };
                    self.heard(&answer);
                    if self.trace {
                        eprintln!(
                            "{} check-in: {:?}",
                            self.at,
                            answer.as_ref().map(|a| a.next_checkin_at)
                        );
                    }
                    self.agent().on_checkin(answer, now);
                }
            }
            self.note();
        }
        self.note();
    }

    /// Notes an answer: a contact, or a failure of the server's own.
    fn heard<T>(&mut self, answer: &Result<T, TransportError>) {
        match answer {
            Ok(_) => self.contacted(),
            Err(TransportError::Refused { status, .. }) if *status >= 500 => {
                self.server_errors += 1
            }
            Err(_) => {}
        }
    }

    fn contacted(&mut self) {
        self.last_contact = Some(self.at);
        if self.contacts.last() != Some(&self.at) {
            self.contacts.push(self.at);
        }
    }

    fn reach(&self) -> Result<(), TransportError> {
        if self.online {
            Ok(())
        } else {
            Err(TransportError::Unreachable("offline".into()))
        }
    }

    /// The next virtual instant at which the agent has something to do by itself.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        let agent = self.agent.as_ref()?;
        let wake = agent.next_wakeup()?;
        let mono = self.clock.now().mono;
        let ahead = wake.saturating_sub(mono);
        let ahead = jiff::SignedDuration::try_from(ahead).ok()?;
        self.at.checked_add(ahead).ok()
    }
}
