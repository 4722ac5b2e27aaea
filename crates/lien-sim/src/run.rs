//! The run: the scenario's events fed to the real server in virtual time, the scheduler run
//! at every step, the phones woken when their agents ask and when the server's change feed
//! names them, and the ground truth the oracle reads collected on the way.
//!
//! Time moves in steps of at least a minute, to the next instant anything can happen: an
//! event of the scenario, a phone's own wake-up (a check-in due, its lease running out) or the
//! scheduler's next due device. At each step, in this order: the events, one scheduler pass,
//! the phones the feed names (a push channel carries their new token; the model is that it
//! arrives within the step) and the phones whose wake-up came. Everything runs on one task,
//! one thing at a time, so the order, and so the run, depends only on the seed.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use anyhow::{Context, Result};
use jiff::{SignedDuration, Timestamp};
use lien_core::{Imei, Preset};
use lien_proto::attestation::DevelopmentRoot;
use lien_server::app::AppState;
use lien_server::auth::{Actor, Role};
use lien_server::clock::ManualClock;
use lien_server::commands::device_change::{Applied, Changed, IdempotencyKey};
use lien_server::commands::{
    financiers, hardship, mobile_money, overrides, payments, prepare_enrollment,
};
use lien_server::domain::settings_json;
use lien_server::wire::{
    EnrollRequest, HardshipPauseRequest, InstallmentJson, PaymentRequest, PlanJson, PolicyJson,
    PolicySettingsJson, ReversalRequest, UnlockRequest,
};
use lien_store::Financier;

use crate::overrides::{AppealCounts, FinancierAct, FinancierCounts};
use crate::phone::{Look, SimPhone};
use crate::scenario::{Action, Borrower, Scenario};
use crate::server::{Heard, Server};
use crate::{Config, Fault};

/// What the run learnt about one device, for the oracle and the report.
#[derive(Debug, Default)]
pub struct Truth {
    /// Money the server was told of (see `oracle::Case::money`).
    pub money: Vec<(Timestamp, i64)>,
    /// Pauses and provisional unlocks the server granted (support's, and those an appeal's
    /// record promises from its deadline), with their spans.
    pub reprieves: Vec<(Timestamp, Timestamp)>,
    /// Of them, the provisional unlocks, which lift a manual lock too.
    pub unlocks: Vec<(Timestamp, Timestamp)>,
    /// Dispute freezes: from an appeal's opening to its answer, if it had one.
    pub freezes: Vec<(Timestamp, Option<Timestamp>)>,
    /// Manual locks: from the lock to the unlock, if there was one.
    pub manual_locks: Vec<(Timestamp, Option<Timestamp>)>,
    /// SIM changes: from the new card in the phone to the financier's acceptance, if the
    /// server took one.
    pub sim_changes: Vec<(Timestamp, Option<Timestamp>)>,
    /// When the device's release is final, as the last payment or chargeback left it: from
    /// then nothing may be restricted, whatever override stands.
    pub release: Option<Timestamp>,
    /// The appeal open now, for support to answer.
    pub open_appeal: Option<crate::overrides::OpenAppeal>,
    /// When the phone went off and on the network.
    pub online: Vec<(Timestamp, bool)>,
    /// What happened, in words, for a timeline.
    pub log: Vec<(Timestamp, String)>,
}

/// Counts of what the run did.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Payment callbacks sent (first ones).
    pub payments: u64,
    /// Of them, late (the money came in earlier than the callback).
    pub late_callbacks: u64,
    /// Repeated callbacks.
    pub duplicates: u64,
    /// Repeats that changed the ledger (must stay 0).
    pub duplicates_applied: u64,
    /// Chargebacks.
    pub reversals: u64,
    /// Hardship pauses granted, refused.
    pub pauses: (u64, u64),
    /// Provisional unlocks granted, refused.
    pub provisional_unlocks: (u64, u64),
    /// Appeals.
    pub appeals: AppealCounts,
    /// Manual locks and SIM changes.
    pub financier: FinancierCounts,
    /// Commands refused that should not have been, by message.
    pub refused: BTreeSet<String>,
    /// Refusals counted.
    pub refusals: u64,
    /// Offline spells, wall-clock changes, factory resets, server restarts.
    pub offline_spells: u64,
    /// Wall-clock changes.
    pub wall_clock_changes: u64,
    /// Factory resets.
    pub factory_resets: u64,
    /// Server restarts.
    pub restarts: u64,
    /// Scheduler passes that evaluated devices, and the devices.
    pub scheduled: u64,
    /// Steps of virtual time.
    pub steps: u64,
}

/// Everything the report is made from.
pub struct Outcome {
    /// Per device.
    pub truths: Vec<Truth>,
    /// Per device.
    pub phones: Vec<SimPhone>,
    /// The run's counts.
    pub counts: Counts,
}

const FINANCIER: &str = "fin_sim";

/// Runs `scenario` on a fresh server.
pub async fn run(config: &Config, scenario: &Scenario) -> Result<Outcome> {
    let shm = std::path::Path::new("/dev/shm");
    let parent = match &config.data_dir {
        Some(parent) => Some(parent.as_path()),
        None => shm.is_dir().then_some(shm),
    };
    let dir = match parent {
        Some(parent) => {
            std::fs::create_dir_all(parent)?;
            tempfile::tempdir_in(parent)?
        }
        None => tempfile::tempdir()?,
    };
    let step = SignedDuration::from_mins(i64::from(config.step_minutes));
    let mut flushed = scenario.start;
    let settings = crate::server::settings(dir.path().to_path_buf(), config.database_url.clone());
    let clock = ManualClock::new(scenario.start);
    let mut server = Server::open(&settings, dir.path(), &clock).await?;
    let financier = create_financier(&server.state).await?;
    let ids = enroll(&server.state, &financier, scenario, config.plant).await?;
    let index: HashMap<String, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), i as u32))
        .collect();

    let root_pem = std::fs::read_to_string(
        dir.path()
            .join(lien_server::secrets::DEV_ATTESTATION_ROOT_FILE),
    )?;
    let root = DevelopmentRoot::from_pem(&root_pem)?;
    // Minting a factory identity (a key pair and its certificate chain) is the setup's
    // slowest part: on every core, each phone's in its own slot, so the order is the same.
    let identities: Vec<_> = (0..scenario.borrowers.len() as u32).map(identity).collect();
    let mut factories: Vec<Option<_>> = (0..identities.len()).map(|_| None).collect();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = identities.len().div_ceil(cores).max(1);
    std::thread::scope(|scope| {
        for (ids, slots) in identities.chunks(chunk).zip(factories.chunks_mut(chunk)) {
            let root = &root;
            scope.spawn(move || {
                for (identity, slot) in ids.iter().zip(slots) {
                    *slot = Some(lien_agent::sim::factory_identity(
                        root,
                        identity,
                        scenario.start.as_second(),
                    ));
                }
            });
        }
    });
    let mut phones: Vec<Option<SimPhone>> = identities
        .into_iter()
        .zip(factories)
        .zip(&scenario.borrowers)
        .enumerate()
        .map(|(i, ((identity, factory), b))| {
            let mut phone = SimPhone::new(
                identity,
                factory.expect("every phone's identity was minted"),
                i as u32,
                config.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                scenario.start,
            );
            phone.push = b.push;
            phone.trace = config.trace == Some(i as u32);
            Some(phone)
        })
        .collect();
    let mut truths: Vec<Truth> = (0..phones.len()).map(|_| Truth::default()).collect();
    let mut counts = Counts::default();

    let provider = mobile_money::provider_actor(FINANCIER, "mpesa");
    let admin = Actor {
        key_id: "key_sim_admin".into(),
        role: Role::FinancierAdmin,
        financier_id: Some(FINANCIER.into()),
    };
    let support = Actor {
        key_id: "key_sim_support".into(),
        role: Role::Support,
        financier_id: None,
    };

    // Every phone wakes at the start (its first hello).
    let mut wakes: BinaryHeap<Reverse<(Timestamp, u32)>> = (0..phones.len() as u32)
        .map(|i| Reverse((scenario.start, i)))
        .collect();
    let mut planned: Vec<Option<Timestamp>> = vec![Some(scenario.start); phones.len()];
    let mut next_event = 0;
    let mut now = scenario.start;
    let mut first = true;
    while now < scenario.end {
        counts.steps += 1;
        clock.set(now);
        let mut woken: BTreeSet<u32> = BTreeSet::new();
        let mut reconnected: BTreeSet<u32> = BTreeSet::new();
        let mut restarted = false;

        // The world acts.
        while let Some(event) = scenario.events.get(next_event)
            && event.at <= now
        {
            next_event += 1;
            let d = event.device as usize;
            match &event.action {
                Action::Restart => {
                    counts.restarts += 1;
                    server = server.restart(&settings, dir.path(), &clock).await?;
                    // The push channels closed with the old server; each phone opens its own
                    // again and is sent the current token first.
                    restarted = true;
                }
                Action::Pay {
                    reference,
                    amount,
                    received,
                    duplicate,
                    same_key,
                } => {
                    let key = if *duplicate && !*same_key {
                        format!("{reference}-retry")
                    } else {
                        reference.clone()
                    };
                    let request = PaymentRequest {
                        reference: reference.clone(),
                        amount_minor: *amount,
                        currency: scenario.borrowers[d].currency.into(),
                        received_at: Some(received.to_string()),
                    };
                    let result = payments::record_payment(
                        &server.state,
                        &provider,
                        &ids[d],
                        IdempotencyKey {
                            request_hash: reference.as_bytes().to_vec(),
                            key,
                        },
                        request,
                    )
                    .await;
                    if config.trace == Some(event.device) {
                        match &result {
                            Ok(Applied::Fresh(changed)) => {
                                eprintln!("{now} payment {reference}: {:?}", changed.device)
                            }
                            other => eprintln!("{now} payment {reference}: {other:?}"),
                        }
                    }
                    let late = event.at > *received;
                    let what = format!(
                        "{} {reference} of {amount} (paid {received}){}",
                        if *duplicate {
                            "repeated callback for"
                        } else {
                            "payment"
                        },
                        if late && !*duplicate {
                            ", callback late"
                        } else {
                            ""
                        }
                    );
                    if *duplicate {
                        counts.duplicates += 1;
                        if matches!(result, Ok(Applied::Fresh(_))) {
                            counts.duplicates_applied += 1;
                        }
                    } else {
                        counts.payments += 1;
                        counts.late_callbacks += u64::from(late);
                        truths[d].money.push((now, *amount));
                        note_refusal(&mut counts, &result.as_ref().err().map(|e| e.to_string()));
                    }
                    truths[d].log.push((now, what));
                    note_release(&mut truths[d], &result, now);
                }
                Action::Reverse { reference } => {
                    counts.reversals += 1;
                    let result = payments::reverse_payment(
                        &server.state,
                        &admin,
                        &ids[d],
                        reference.clone(),
                        IdempotencyKey {
                            key: format!("{reference}-reversal"),
                            request_hash: reference.as_bytes().to_vec(),
                        },
                        ReversalRequest {
                            reason: "chargeback".into(),
                            at: None,
                        },
                    )
                    .await;
                    note_refusal(&mut counts, &result.as_ref().err().map(|e| e.to_string()));
                    note_release(&mut truths[d], &result, now);
                    if result.is_ok()
                        && let Some(amount) = scenario_amount(scenario, event.device, reference)
                    {
                        truths[d].money.push((now, -amount));
                    }
                    truths[d]
                        .log
                        .push((now, format!("chargeback of {reference}")));
                }
                Action::Hardship { days } => {
                    let result = hardship::pause(
                        &server.state,
                        &admin,
                        &ids[d],
                        None,
                        HardshipPauseRequest {
                            days: Some(*days),
                            until: None,
                            reason: "lost work".into(),
                        },
                    )
                    .await;
                    let granted = result.is_ok();
                    if granted {
                        counts.pauses.0 += 1;
                        truths[d]
                            .reprieves
                            .push((now, now + SignedDuration::from_hours(24 * i64::from(*days))));
                    } else {
                        counts.pauses.1 += 1;
                    }
                    truths[d].log.push((
                        now,
                        format!(
                            "hardship pause of {days} days {}",
                            if granted { "granted" } else { "refused" }
                        ),
                    ));
                }
                Action::ProvisionalUnlock { hours } => {
                    let result = overrides::unlock(
                        &server.state,
                        &support,
                        &ids[d],
                        UnlockRequest {
                            reason: "appeal under review".into(),
                            provisional_hours: Some(*hours),
                        },
                    )
                    .await;
                    let granted = result.is_ok();
                    if granted {
                        counts.provisional_unlocks.0 += 1;
                        truths[d]
                            .reprieves
                            .push((now, now + SignedDuration::from_hours(i64::from(*hours))));
                    } else {
                        counts.provisional_unlocks.1 += 1;
                    }
                    truths[d].log.push((
                        now,
                        format!(
                            "provisional unlock of {hours} h {}",
                            if granted { "granted" } else { "refused" }
                        ),
                    ));
                }
                Action::Appeal { claim } => {
                    let phone = phone_mut(&mut phones, d);
                    phone.advance_to(now);
                    let currency = scenario.borrowers[d].currency;
                    crate::overrides::appeal(
                        &server.state,
                        phone,
                        currency,
                        *claim,
                        &mut truths[d],
                        &mut counts,
                        now,
                    )
                    .await;
                }
                Action::AnswerAppeal { accept } => {
                    crate::overrides::answer(
                        &server.state,
                        &support,
                        &ids[d],
                        *accept,
                        &mut truths[d],
                        &mut counts,
                        now,
                    )
                    .await;
                }
                Action::ManualLock | Action::ManualUnlock | Action::AcceptSimChange => {
                    let act = match &event.action {
                        Action::ManualLock => FinancierAct::Lock,
                        Action::ManualUnlock => FinancierAct::Unlock,
                        _ => FinancierAct::AcceptSimChange,
                    };
                    let (state, id, truth) = (&server.state, &ids[d], &mut truths[d]);
                    crate::overrides::financier_act(
                        state,
                        &admin,
                        id,
                        act,
                        truth,
                        &mut counts,
                        now,
                    )
                    .await;
                }
                Action::SimChange => {
                    let phone = phone_mut(&mut phones, d);
                    phone.advance_to(now);
                    crate::overrides::sim_change(phone, &mut truths[d], &mut counts, now);
                    woken.insert(event.device);
                }
                Action::Offline => {
                    counts.offline_spells += 1;
                    phone_mut(&mut phones, d).advance_to(now);
                    phone_mut(&mut phones, d).online = false;
                    truths[d].online.push((now, false));
                    truths[d].log.push((now, "phone offline".into()));
                }
                Action::Online => {
                    phone_mut(&mut phones, d).advance_to(now);
                    truths[d].online.push((now, true));
                    truths[d].log.push((now, "phone online".into()));
                    reconnected.insert(event.device);
                }
                Action::ShiftWallClock { by } => {
                    counts.wall_clock_changes += 1;
                    phone_mut(&mut phones, d).advance_to(now);
                    phone_mut(&mut phones, d).shift_wall_clock(*by);
                    truths[d]
                        .log
                        .push((now, format!("wall clock moved by {by} s")));
                    woken.insert(event.device);
                }
                Action::FactoryReset => {
                    counts.factory_resets += 1;
                    phone_mut(&mut phones, d).advance_to(now);
                    phone_mut(&mut phones, d).factory_reset();
                    truths[d].log.push((now, "factory reset".into()));
                    woken.insert(event.device);
                }
            }
        }

        // The scheduler's pass, when anything is due: a pass would find nothing otherwise.
        let due = server.state.store.next_due().await?;
        if due.is_some_and(|due| due <= now.as_microsecond()) {
            let evaluated = lien_server::scheduler::run_due(&server.state)
                .await
                .context("a scheduler pass")?;
            counts.scheduled += evaluated as u64;
        }

        // Push: who heard of a change.
        let mut pushed: BTreeSet<u32> = BTreeSet::new();
        match server.heard() {
            Heard::Devices(changed) => {
                pushed.extend(changed.iter().filter_map(|id| index.get(id).copied()));
            }
            Heard::Everything => pushed.extend(0..phones.len() as u32),
        }
        if restarted {
            pushed.extend(0..phones.len() as u32);
        }
        while let Some(Reverse((at, i))) = wakes.peek().copied()
            && at <= now
        {
            wakes.pop();
            if planned[i as usize] == Some(at) {
                planned[i as usize] = None;
                woken.insert(i);
            }
        }
        let router = server.router.clone();
        let all: BTreeSet<u32> = woken
            .iter()
            .chain(pushed.iter())
            .chain(reconnected.iter())
            .copied()
            .collect();
        // The phones are independent of each other (each has its own device, address and
        // limits), so those due at this instant run side by side, each on a task of its own;
        // every phone's requests stay in its own order, so the run does not depend on which
        // finishes first. A few dozen at a time: each write waits its turn for SQLite's one
        // writer, and the pool gives up a wait after 30 s, which ten thousand first hellos at
        // once could exceed on a loaded machine (a failed request would make the run depend
        // on the machine; the report counts any).
        let mut tasks = tokio::task::JoinSet::new();
        let mut due = all.into_iter();
        loop {
            while tasks.len() < PHONES_AT_ONCE
                && let Some(i) = due.next()
            {
                tasks.spawn(phone_turn(
                    phones[i as usize].take().expect("each phone once"),
                    i,
                    router.clone(),
                    now,
                    reconnected.contains(&i),
                    pushed.contains(&i) && !first,
                ));
            }
            let Some(done) = tasks.join_next().await else {
                break;
            };
            let (i, phone) = done.context("a phone's task")?;
            let wake = phone.next_wakeup().map(|t| t.max(now + step));
            if let Some(wake) = wake
                && planned[i as usize].is_none_or(|p| wake < p)
            {
                planned[i as usize] = Some(wake);
                wakes.push(Reverse((wake, i)));
            }
            phones[i as usize] = Some(phone);
        }
        // Changes the phones' own requests made (bindings, acknowledgements) are theirs
        // already.
        let _ = server.heard();
        // Last-seen times and counters are written once a second of real time by `lien serve`;
        // here once an hour of virtual time, which is as much less often as virtual time runs
        // faster, and no decision reads them.
        if now >= flushed + SignedDuration::from_hours(1) {
            server.state.flush_last_seen().await;
            flushed = now;
        }
        first = false;

        // The next instant anything can happen.
        let mut next = scenario.end;
        if let Some(event) = scenario.events.get(next_event) {
            next = next.min(event.at);
        }
        if let Some(Reverse((at, _))) = wakes.peek() {
            next = next.min(*at);
        }
        if let Some(due) = server.state.store.next_due().await? {
            next = next.min(lien_server::clock::from_micros(due));
        }
        now = on_grid(scenario.start, next.max(now + step), step);
    }
    // Every phone's clocks to the end, so that the last screens hold until then.
    let end = scenario.end;
    clock.set(end);
    let mut phones: Vec<SimPhone> = phones.into_iter().flatten().collect();
    for phone in &mut phones {
        phone.advance_to(end);
    }
    server.state.flush_last_seen().await;
    Ok(Outcome {
        truths,
        phones,
        counts,
    })
}

/// How many phones' turns run at once within a step.
const PHONES_AT_ONCE: usize = 64;

/// Phone `i`'s turn at `now`: back on the network, told of a change, or what its agent has due.
async fn phone_turn(
    mut phone: SimPhone,
    i: u32,
    router: axum::Router,
    now: Timestamp,
    reconnect: bool,
    push: bool,
) -> (u32, SimPhone) {
    phone.advance_to(now);
    if reconnect {
        phone.reconnected(&router).await;
    } else if push {
        phone.pushed(&router).await;
        phone.run_due(&router).await;
    } else {
        phone.run_due(&router).await;
    }
    (i, phone)
}

fn phone_mut(phones: &mut [Option<SimPhone>], d: usize) -> &mut SimPhone {
    phones[d].as_mut().expect("phones are home between steps")
}

/// Rounds `t` up to the grid of `step` from `start`.
fn on_grid(start: Timestamp, t: Timestamp, step: SignedDuration) -> Timestamp {
    let since = t.duration_since(start).as_secs();
    let step_s = step.as_secs();
    let up = since + (step_s - since.rem_euclid(step_s)) % step_s;
    start + SignedDuration::from_secs(up)
}

/// Keeps the release a change of the ledger scheduled (a payoff) or cancelled (a chargeback
/// within the window), as the device the command returns says, until it is final.
fn note_release<E>(truth: &mut Truth, result: &Result<Applied<Changed<()>>, E>, now: Timestamp) {
    if truth.release.is_some_and(|at| at <= now) {
        return;
    }
    if let Ok(Applied::Fresh(changed)) = result {
        let release = changed
            .device
            .release_final_at
            .as_deref()
            .and_then(|at| at.parse().ok());
        if release != truth.release {
            let what = match release {
                Some(at) => format!("release final at {at}"),
                None => "release cancelled".into(),
            };
            truth.log.push((now, what));
        }
        truth.release = release;
    }
}

fn note_refusal(counts: &mut Counts, error: &Option<String>) {
    if let Some(message) = error {
        counts.refusals += 1;
        counts.refused.insert(message.clone());
    }
}

/// The amount of the payment `reference` of `device`, from the scenario.
fn scenario_amount(scenario: &Scenario, device: u32, reference: &str) -> Option<i64> {
    scenario.events.iter().find_map(|e| match &e.action {
        Action::Pay {
            reference: r,
            amount,
            duplicate: false,
            ..
        } if e.device == device && r == reference => Some(*amount),
        _ => None,
    })
}

/// Device `i`'s identity: IMEI from a made-up TAC, its serial.
pub fn identity(i: u32) -> lien_agent::Identity {
    let imei = Imei::from_imeisv(&format!("35209901{i:06}00")).expect("a valid IMEISV");
    lien_agent::Identity {
        imei1: imei.as_str().to_string(),
        imei2: None,
        serial: format!("SIM{i:07}"),
        model: "Sim Phone".into(),
    }
}

async fn create_financier(state: &AppState) -> Result<Financier> {
    let now = state.clock.now();
    let financier = Financier {
        id: FINANCIER.into(),
        name: "Simulated Finance".into(),
        contact: "+254 700 000 000".into(),
        payment_link: None,
        created_us: now.as_microsecond(),
    };
    financiers::create(state, &financier, "sim", "lien simulate".into()).await?;
    Ok(financier)
}

/// Enrolls the portfolio at the start, a group per transaction, through the commands layer's
/// enrollment (`prepare_enrollment`), as a bulk import does.
async fn enroll(
    state: &AppState,
    financier: &Financier,
    scenario: &Scenario,
    fault: Fault,
) -> Result<Vec<String>> {
    let now = state.clock.now();
    let mut ids = Vec::with_capacity(scenario.borrowers.len());
    let mut group = Vec::new();
    for (i, b) in scenario.borrowers.iter().enumerate() {
        let identity = identity(i as u32);
        let req = EnrollRequest {
            contract_ref: format!("sim-{i:07}"),
            imei1: identity.imei1.clone(),
            imei2: None,
            serial: identity.serial.clone(),
            model: identity.model.clone(),
            plan: PlanJson {
                currency: b.currency.into(),
                time_zone: b.time_zone.into(),
                down_payment_minor: 0,
                installments: b
                    .installments
                    .iter()
                    .map(|(due, amount)| InstallmentJson {
                        due: due.to_string(),
                        amount_minor: *amount,
                    })
                    .collect(),
            },
            policy: policy(b, fault),
        };
        let (device, change) = prepare_enrollment(state, financier, "sim", &req, now)
            .map_err(|e| anyhow::anyhow!("enrolling device {i}: {e}"))?;
        ids.push(device.id.clone());
        group.push((device, change));
        if group.len() == 500 {
            state.store.enroll_all(std::mem::take(&mut group)).await?;
        }
    }
    if !group.is_empty() {
        state.store.enroll_all(group).await?;
    }
    Ok(ids)
}

/// The policy a borrower is enrolled on: the preset by name, or, with the planted fault, the
/// preset's settings without their quiet hours (while the oracle keeps them).
fn policy(b: &Borrower, fault: Fault) -> PolicyJson {
    match fault {
        Fault::None => PolicyJson::Preset(b.preset.name().into()),
        Fault::QuietHoursDropped => PolicyJson::Custom(without_quiet_hours(b.preset)),
    }
}

fn without_quiet_hours(preset: Preset) -> PolicySettingsJson {
    PolicySettingsJson {
        quiet_hours: None,
        ..settings_json(&preset.settings())
    }
}

/// Whether the phone was online at `t`, from its changes.
pub fn online_at(changes: &[(Timestamp, bool)], t: Timestamp) -> bool {
    let i = changes.partition_point(|(at, _)| *at <= t);
    i == 0 || changes[i - 1].1
}

/// The look of a phone at `t`.
pub fn look_at(timeline: &[(Timestamp, Look)], t: Timestamp) -> Look {
    let i = timeline.partition_point(|(at, _)| *at <= t);
    if i == 0 {
        Look::Normal
    } else {
        timeline[i - 1].1
    }
}
