//! `payment-to-unlock`: with phones connected by push, the time from a payment's 2xx to the
//! phone applying the unlock; and, for comparison, at the phone's next check-in.
//!
//! The real server runs in this process (see `setup`), its push-connected phones in a child
//! process (see `phones`), so that the server's process holds only the server's side of each
//! connection. The payments, and the check-in phase, are sent from this process's load
//! runtime. `BENCHMARKS.md` records the method and the results.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lien_proto::PinnedKeys;
use lien_proto::device_api::CheckinResponse;
use lien_server::app::Running;
use lien_server::clock::SystemClock;
use tokio::task::JoinSet;

use crate::http::{Conn, checkin_request, post};
use crate::latency::Latencies;
use crate::phones::{Phones, phones_process, unlocks};
use crate::setup::{Bench, Device, Plans, backend_name};

/// Arguments of `payment-to-unlock`.
#[derive(Debug, clap::Args)]
pub struct PaymentArgs {
    /// Phones connected by push (all enrolled overdue, so locked).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(2..=60_000))]
    phones: u32,
    /// Payments in each of the two phases, each for a different phone (at most half the phones).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    payments: u32,
    /// Payments per second, at a steady rate.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    rate: u32,
    /// The check-in interval of the phones in the push-off phase, in seconds (a real phone's
    /// is the server's, six hours; latency at the next check-in scales with it).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    checkin_seconds: u64,
    /// Skip the push-off phase.
    #[arg(long)]
    push_only: bool,
    /// Where to create the temporary directory holding the database and keys.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL database to run on instead of a new SQLite file. It must be empty: the
    /// benchmark creates its tables and enrolls into it.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Internal: run as the phones' process for a server at this address, with the devices
    /// read from standard input and tokens verified against `--pinned-key`.
    #[arg(long, hide = true, requires = "pinned_key")]
    phones_for: Option<SocketAddr>,
    /// Internal: the server's token key, for the phones' process (base64).
    #[arg(long, hide = true)]
    pinned_key: Option<String>,
}

/// What [`PushBench::push_unlocks`] measured.
pub struct Unlocks {
    /// From each payment (the instant `Since` says) to its phone applying the unlock.
    pub unlocks: Latencies,
    /// How many phones had the unlock before that instant (counted as 0 ms).
    pub early: usize,
    /// From each payment's first byte to its 200.
    pub answers: Latencies,
}

/// A push benchmark's server, serving, with its fleet.
pub struct PushBench {
    // Dropped in this order: the server, then its runtime and the database's directory.
    /// The running server.
    pub server: Running,
    /// The enrolled devices, in enrollment order.
    pub fleet: Vec<Device>,
    /// The server's token key, which the phones pin.
    pub pinned_key: ed25519_dalek::VerifyingKey,
    /// The runtimes and the data directory.
    pub bench: Bench,
}

impl PushBench {
    /// Enrolls `devices` with `plans` on a fresh database and starts the server.
    pub fn start(
        devices: u32,
        plans: Plans,
        data_dir: Option<&Path>,
        database_url: Option<String>,
    ) -> Result<PushBench> {
        let bench = Bench::new(data_dir, database_url)?;
        let state = bench.open(Arc::new(SystemClock))?;
        let pinned_key = state.signer.verifying_key();
        let started = Instant::now();
        let fleet = bench.enroll(&state, devices, plans)?;
        let setup = started.elapsed();
        let locked = fleet.iter().filter(|d| d.state == "locked").count();
        println!(
            "setup: enrolled and bound {} devices in {:.1} s ({locked} locked)",
            fleet.len(),
            setup.as_secs_f64(),
        );
        let server = bench.serve(state)?;
        Ok(PushBench {
            server,
            fleet,
            pinned_key,
            bench,
        })
    }

    /// Enrolls `devices` with overdue plans, as [`PushBench::start`] does, and checks that
    /// every phone starts locked: the fleet the payment-to-unlock benchmarks pay for.
    pub fn start_locked(
        devices: u32,
        data_dir: Option<&Path>,
        database_url: Option<String>,
    ) -> Result<PushBench> {
        let bench = PushBench::start(devices, Plans::Overdue, data_dir, database_url)?;
        ensure!(
            bench.fleet.iter().all(|d| d.state == "locked"),
            "every phone should start locked"
        );
        Ok(bench)
    }

    /// Connects every phone of the fleet by push, in the phones' process, pays for the phones
    /// at `indices` with `payment` (`what` names them in the report) at `rate` per second,
    /// and waits until each has applied its unlock. Fails if a paid phone has not unlocked
    /// 30 s after the last payment, or if the server answered a check-in meanwhile (the
    /// unlocks came over push only).
    pub fn push_unlocks(
        &self,
        indices: &[usize],
        rate: u32,
        what: &str,
        payment: Payment,
        since: Since,
    ) -> Result<Unlocks> {
        let n = self.fleet.len();
        let server = self.server.addr;
        let paid: Arc<Vec<OnceLock<Instant>>> = Arc::new((0..n).map(|_| OnceLock::new()).collect());
        let applied: Arc<Vec<OnceLock<Instant>>> =
            Arc::new((0..n).map(|_| OnceLock::new()).collect());
        // The phones' process is `payment-to-unlock`'s, whichever benchmark pays: it says which
        // phone applied an unlock as soon as it has.
        let key_b64 = STANDARD.encode(self.pinned_key.as_bytes());
        let mut phones = Phones::spawn(
            server,
            &self.fleet,
            &["payment-to-unlock", "--pinned-key", &key_b64],
        )?;
        let open_secs = phones.open()?;
        println!(
            "push: {n} phones connected in {open_secs:.1} s, in a separate process; {} push \
             connections open on the server",
            self.server.state.push.devices()
        );
        let unlocks_heard = phones.report_unlocks(applied.clone())?;
        let phase = self.bench.load_rt.block_on(async {
            let checkins_before = self.server.state.metrics.checkins.get();
            let paying = Instant::now();
            let answers =
                pay_all(server, payment, indices.to_vec(), rate, paid.clone(), since).await?;
            let pay_secs = paying.elapsed().as_secs_f64();
            let deadline = Instant::now() + Duration::from_secs(30);
            while indices.iter().any(|&i| applied[i].get().is_none()) {
                ensure!(
                    !unlocks_heard.is_finished(),
                    "the phones' process stopped reporting"
                );
                if Instant::now() >= deadline {
                    // What the server holds for the first few, to tell a payment not taken
                    // from one taken but not (yet) deciding the device.
                    let mut seen = Vec::new();
                    for &i in indices
                        .iter()
                        .filter(|&&i| applied[i].get().is_none())
                        .take(3)
                    {
                        let snapshot = self.server.state.store.snapshot(&self.fleet[i].id).await?;
                        let token = snapshot.device.token.map(|t| (t.sequence, t.state));
                        seen.push(format!(
                            "phone {i}: token {token:?}, {} payments",
                            snapshot.payments.len()
                        ));
                    }
                    bail!("some paid phones never unlocked ({})", seen.join("; "));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            ensure!(
                self.server.state.metrics.checkins.get() == checkins_before,
                "no phone checked in during the push phase"
            );
            println!(
                "push: {} {what} in {pay_secs:.1} s ({:.1} per second)",
                indices.len(),
                indices.len() as f64 / pay_secs
            );
            let (unlocks, early) = latencies(indices, &paid, &applied)?;
            anyhow::Ok(Unlocks {
                unlocks,
                early,
                answers,
            })
        });
        let figures = match phase {
            Ok(figures) => figures,
            // The reading thread's own error says more than that it stopped.
            Err(err) if unlocks_heard.is_finished() => {
                return Err(match unlocks_heard.join() {
                    Ok(Err(cause)) => cause.context(err),
                    _ => err,
                });
            }
            Err(err) => return Err(err),
        };
        phones.stop()?;
        unlocks_heard
            .join()
            .map_err(|_| anyhow::anyhow!("the thread reading the phones' process panicked"))??;
        Ok(figures)
    }
}

/// How a benchmark pays for a phone: the request for the phone at an index of the fleet,
/// built as it is sent, so that whatever it carries of the time (a provider's transaction time,
/// a signature's timestamp) is as fresh as a real provider's.
pub type Payment = Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync>;

/// The financier API's payment of the arrears (KES 2,000.00) on `fleet[i]`, under an
/// Idempotency-Key, with the financier-admin `key`.
pub fn api_payment(fleet: Arc<Vec<Device>>, key: String) -> Payment {
    Arc::new(move |i| {
        let id = &fleet[i].id;
        let body = r#"{"reference":"BENCH-PAY","amount_minor":200000,"currency":"KES"}"#;
        post(
            &format!("/v1/devices/{id}/payments"),
            &format!("authorization: Bearer {key}\r\nidempotency-key: pay-{id}\r\n"),
            body,
        )
    })
}

/// Which instant of a payment a benchmark times its phone's unlock from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// The request's first byte written: a provider's view, which waits for nothing.
    Sent,
    /// Its 200 read: the financier's view, which knows the payment is taken only then.
    Answered,
}

/// Sends `payment` for each phone in `indices`, at `rate` per second, over a few keep-alive
/// connections, recording in `paid` the instant `since` says of each. Returns the time each
/// took to be answered.
pub async fn pay_all(
    server: SocketAddr,
    payment: Payment,
    indices: Vec<usize>,
    rate: u32,
    paid: Arc<Vec<OnceLock<Instant>>>,
    since: Since,
) -> Result<Latencies> {
    const CONNECTIONS: usize = 8;
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut tasks = JoinSet::new();
    for c in 0..CONNECTIONS {
        let mine: Vec<(usize, usize)> = indices
            .iter()
            .copied()
            .enumerate()
            .filter(|(k, _)| k % CONNECTIONS == c)
            .collect();
        let payment = payment.clone();
        let paid = paid.clone();
        tasks.spawn(async move {
            let mut conn = Conn::open(server).await?;
            let mut answers = Latencies::default();
            for (k, index) in mine {
                tokio::time::sleep_until((started + interval * k as u32).into()).await;
                let request = payment(index);
                let sent = Instant::now();
                let (status, answer) = conn.exchange(&request).await?;
                let answered = Instant::now();
                ensure!(
                    status == 200,
                    "a payment failed: {status} {}",
                    String::from_utf8_lossy(answer)
                );
                answers.record(answered - sent);
                let _ = paid[index].set(match since {
                    Since::Sent => sent,
                    Since::Answered => answered,
                });
            }
            anyhow::Ok(answers)
        });
    }
    let mut answers = Latencies::default();
    while let Some(joined) = tasks.join_next().await {
        answers.add(&joined??);
    }
    Ok(answers)
}

/// A financier-admin API key for the bench's financier, through the API.
pub async fn financier_key(server: &Running) -> Result<String> {
    let admin = lien_server::create_platform_admin(&server.state).await?;
    let request = post(
        "/v1/financiers/fin_bench/api-keys",
        &format!("authorization: Bearer {admin}\r\n"),
        r#"{"role":"financier-admin","label":"bench"}"#,
    );
    let mut conn = Conn::open(server.addr).await?;
    let answer = conn
        .exchange_expecting(&request, 201, "creating a key failed")
        .await?;
    let value: serde_json::Value = serde_json::from_slice(answer)?;
    value["key"]
        .as_str()
        .map(str::to_string)
        .context("the answer has a key")
}

/// Latencies from `paid` to `applied` of the phones at `indices`; and how many phones had the
/// token before the payer had the 2xx (counted as 0 ms).
fn latencies(
    indices: &[usize],
    paid: &[OnceLock<Instant>],
    applied: &[OnceLock<Instant>],
) -> Result<(Latencies, usize)> {
    let mut early = 0;
    let mut out = Latencies::default();
    for &i in indices {
        let (Some(p), Some(a)) = (paid[i].get(), applied[i].get()) else {
            bail!("device {i} was paid for but never applied the unlock");
        };
        if a < p {
            early += 1;
        }
        // Zero when the phone was first.
        out.record(a.saturating_duration_since(*p));
    }
    Ok((out, early))
}

/// Runs the benchmark, or, with `--phones-for`, its phones' process.
pub fn payment_to_unlock(args: &PaymentArgs) -> Result<()> {
    if let Some(server) = args.phones_for {
        let key = args.pinned_key.as_deref().unwrap_or_default();
        let key = STANDARD
            .decode(key)
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
            .context("--pinned-key is an Ed25519 public key in base64")?;
        return phones_process(server, Some(PinnedKeys::new([key])));
    }
    ensure!(
        args.payments * 2 <= args.phones,
        "--payments is at most half of --phones (each phase pays for different phones)"
    );
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let backend = backend_name(args.database_url.is_some());
    println!(
        "lien bench payment-to-unlock: {} phones on {backend}, {} payments per phase at {} per \
         second, {cpus} CPUs",
        args.phones, args.payments, args.rate
    );
    let bench = PushBench::start_locked(
        args.phones,
        args.data_dir.as_deref(),
        args.database_url.clone(),
    )?;
    let load_rt = &bench.bench.load_rt;
    let key = load_rt.block_on(financier_key(&bench.server))?;
    let fleet = Arc::new(bench.fleet.clone());
    let server = bench.server.addr;
    let pinned = Arc::new(PinnedKeys::new([bench.pinned_key]));

    // Phase 1: every phone connected by push; the first `payments` phones are paid for.
    let push_indices: Vec<usize> = (0..args.payments as usize).collect();
    let Unlocks {
        unlocks: push,
        early: push_early,
        ..
    } = bench.push_unlocks(
        &push_indices,
        args.rate,
        "payments",
        api_payment(fleet.clone(), key.clone()),
        Since::Answered,
    )?;

    println!();
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9}",
        "payment to unlock", "phones", "p50 ms", "p99 ms", "max ms"
    );
    println!(
        "{:<28} {:>9} {:>9.1} {:>9.1} {:>9.1}",
        "push",
        push.len(),
        push.quantile_ms(0.5),
        push.quantile_ms(0.99),
        push.max_ms()
    );
    if push_early > 0 {
        println!(
            "  ({push_early} phones had the unlock before the payer had the 2xx: counted as 0 ms)"
        );
    }

    if !args.push_only {
        let check = load_rt.block_on(next_checkin_phase(
            server,
            key,
            fleet.clone(),
            pinned.clone(),
            args,
        ))?;
        println!(
            "{:<28} {:>9} {:>9.1} {:>9.1} {:>9.1}",
            format!("next check-in (every {} s)", args.checkin_seconds),
            check.len(),
            check.quantile_ms(0.5),
            check.quantile_ms(0.99),
            check.max_ms()
        );
    }
    let p99 = push.quantile_ms(0.99);
    println!(
        "\npush p99 {p99:.1} ms (target under 1000 ms: {})",
        if p99 < 1000.0 { "met" } else { "missed" }
    );
    drop(bench);
    Ok(())
}

/// Phase 2, push off: the next `payments` phones check in every `checkin_seconds` from a
/// random phase and see the unlock at their first check-in after it commits. Only the paid
/// phones check in (the unpaid ones would add `phones / checkin_seconds` requests a second).
async fn next_checkin_phase(
    server: SocketAddr,
    key: String,
    fleet: Arc<Vec<Device>>,
    pinned: Arc<PinnedKeys>,
    args: &PaymentArgs,
) -> Result<Latencies> {
    let n = fleet.len();
    let paid: Arc<Vec<OnceLock<Instant>>> = Arc::new((0..n).map(|_| OnceLock::new()).collect());
    let applied: Arc<Vec<OnceLock<Instant>>> = Arc::new((0..n).map(|_| OnceLock::new()).collect());
    let first = args.payments as usize;
    let indices: Vec<usize> = (first..first * 2).collect();
    let interval = Duration::from_secs(args.checkin_seconds);
    let started = Instant::now();
    let mut phones = JoinSet::new();
    for &i in &indices {
        let fleet = fleet.clone();
        let pinned = pinned.clone();
        let applied = applied.clone();
        phones.spawn(async move {
            let device = &fleet[i];
            // Spread, not unpredictability: a fixed seed per phone.
            let mut rng = fastrand::Rng::with_seed(i as u64);
            let phase = Duration::from_millis(rng.u64(..interval.as_millis() as u64));
            let mut at = started + phase;
            loop {
                tokio::time::sleep_until(at.into()).await;
                // A connection per check-in, as a phone that checks in every few hours opens:
                // the server closes a connection left idle for longer than 30 s.
                let mut conn = Conn::open(server).await?;
                let request = checkin_request(device, jiff::Timestamp::now().as_second());
                let (status, answer) = conn.exchange(&request).await?;
                ensure!(status == 200, "a check-in failed: {status}");
                let answer: CheckinResponse = serde_json::from_slice(answer)?;
                if unlocks(&pinned, device, &answer.token)? {
                    let _ = applied[i].set(Instant::now());
                    return anyhow::Ok(());
                }
                at += interval;
            }
        });
    }
    let payment = api_payment(fleet.clone(), key);
    pay_all(
        server,
        payment,
        indices.clone(),
        args.rate,
        paid.clone(),
        Since::Answered,
    )
    .await?;
    while let Some(joined) = phones.join_next().await {
        joined??;
    }
    Ok(latencies(&indices, &paid, &applied)?.0)
}
