//! `lien bench`: the load generator. `checkin` (here): device check-in throughput against a
//! bare HTTP responder; `payment-to-unlock` and `idle-connections` (in [`push`]): the push
//! channel's latency and memory.
//!
//! One process holds everything: the real server on a fresh SQLite database with many
//! enrolled and bound devices, a bare responder that answers every request with a fixed
//! body as long as a check-in response, and a load generator. The two targets are measured
//! alternately in the same run, with the same requests over the same kind of connection,
//! so that their ratio says what a check-in costs on top of HTTP itself, on whatever
//! machine runs it. `BENCHMARKS.md` records the method and the results.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use axum::body::Bytes;
use jiff::ToSpan;
use jiff::tz::TimeZone;
use lien_core::Imei;
use lien_server::app::{AppState, start};
use lien_server::clock::SystemClock;
use lien_server::config::Settings;
use lien_server::routes::{prepare_enrollment, sign_checkin};
use lien_server::secrets::Secrets;
use lien_server::wire::{EnrollRequest, InstallmentJson, PlanJson, PolicyJson};
use lien_store::{AuditEntry, DeviceChange, Financier, NewDevice, SqlStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

mod hello;
mod push;
mod scheduler;

/// Arguments of `lien bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    benchmark: Benchmark,
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
enum Benchmark {
    /// Device check-ins per second with many enrolled devices, against a bare HTTP responder
    /// returning a body of the same size, measured alternately in the same run.
    Checkin(CheckinArgs),
    /// Phones connected by push, payments at a steady rate: latency from each payment's 2xx
    /// to the phone applying the unlock, with push and (for comparison) at the next check-in.
    PaymentToUnlock(push::PaymentArgs),
    /// Memory per idle push connection, from the process's resident set before and after.
    IdleConnections(push::IdleArgs),
    /// Many plans, a tenth of them due at the same instant: time to evaluate the due ones.
    Scheduler(scheduler::SchedulerArgs),
    /// Attested hellos a second: each phone fetches a challenge, attests a new key for it
    /// (outside the timing) and says hello; the server verifies the chain and binds.
    Hello(hello::HelloArgs),
}

/// Arguments of `lien bench checkin`.
#[derive(Debug, clap::Args)]
struct CheckinArgs {
    /// Devices to enroll and bind before measuring; each request is for one picked at random.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    devices: u32,
    /// Concurrent keep-alive connections of the load generator.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    connections: u16,
    /// Seconds of each measured phase (requests are signed before each phase, and must stay
    /// within the server's five-minute request window).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=240))]
    seconds: u64,
    /// Seconds of unmeasured load on each target before the first measured phase.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=60))]
    warmup_seconds: u64,
    /// Measured phases per target, alternating: responder, check-in, responder, check-in...
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// The lowest acceptable ratio of check-in throughput to the responder's.
    #[arg(long, default_value_t = 0.6)]
    min_ratio: f64,
    /// A PostgreSQL database to run on instead of a new SQLite file. It must be empty: the
    /// benchmark creates its tables and enrolls into it. PostgreSQL has no check-in cache.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Exit with an error when the ratio is below --min-ratio.
    #[arg(long)]
    enforce: bool,
    /// Where to create the temporary directory holding the database and keys; it is removed
    /// at the end [default: the system's temporary directory].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Runs the chosen benchmark.
pub fn run(args: &Args) -> Result<()> {
    match &args.benchmark {
        Benchmark::Checkin(args) => checkin(args),
        Benchmark::PaymentToUnlock(args) => push::payment_to_unlock(args),
        Benchmark::IdleConnections(args) => push::idle_connections(args),
        Benchmark::Scheduler(args) => scheduler::scheduler(args),
        Benchmark::Hello(args) => hello::hello(args),
    }
}

/// An enrolled, bound device, as its phone knows it.
struct Device {
    id: String,
    credential: [u8; 32],
    /// The sequence of its current token, which the phone reports as applied.
    sequence: i64,
    /// The state of its current token.
    state: String,
}

/// One target of the load.
struct Target {
    name: &'static str,
    addr: SocketAddr,
}

/// `lien bench checkin`.
fn checkin(args: &CheckinArgs) -> Result<()> {
    init_logging();
    let dir = temp_dir(args.data_dir.as_deref())?;

    // The servers get a multi-threaded runtime like `lien serve`'s; the load generator runs
    // on this thread in a runtime of its own, so that its work never queues behind theirs.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let load_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let on_postgres = args.database_url.is_some();
    println!(
        "lien bench checkin: {} devices on {}, {} connections, {} x {} s per target \
         after {} s of warm-up, {cpus} CPUs",
        args.devices,
        if on_postgres { "PostgreSQL" } else { "SQLite" },
        args.connections,
        args.rounds,
        args.seconds,
        args.warmup_seconds
    );

    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        database_url: args.database_url.clone(),
        ..Settings::default()
    };
    let state = server_rt.block_on(async {
        let store = lien_server::open_store(&settings).await?;
        let secrets = Secrets::load_or_create(dir.path())?;
        anyhow::Ok(AppState::new(
            store,
            Arc::new(SystemClock),
            secrets,
            settings.clone(),
        ))
    })?;

    let started = Instant::now();
    let fleet = Arc::new(server_rt.block_on(enroll_fleet(&state, args.devices, Plans::Current))?);
    let setup = started.elapsed();
    println!(
        "setup: enrolled and bound {} devices in {:.1} s ({:.0} per second)",
        fleet.len(),
        setup.as_secs_f64(),
        fleet.len() as f64 / setup.as_secs_f64()
    );

    // A restart: the store that enrolled the fleet is closed and the server opens the database
    // afresh, as `lien serve` does (`lien_server::open_store` is this call, kept here as a
    // `SqlStore` to ask how its warm-up went). So the phases begin where a restarted server
    // does: with an empty check-in cache, which the store warms in the background.
    drop(state);
    let restarted = Instant::now();
    let (state, store) = server_rt.block_on(async {
        let store = Arc::new(SqlStore::open(&settings.database_url()).await?);
        let secrets = Secrets::load_or_create(dir.path())?;
        let state = AppState::new(
            store.clone(),
            Arc::new(SystemClock),
            secrets,
            settings.clone(),
        );
        anyhow::Ok((state, store))
    })?;

    let server = server_rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        start(state, listener, false).await
    })?;
    // One real check-in first: it proves the fleet is set up right, and gives the size of
    // the body the responder must return.
    let body_len = load_rt.block_on(async {
        let request = checkin_request(&fleet[0], jiff::Timestamp::now().as_second());
        let mut conn = Conn::open(server.addr).await?;
        let (status, body) = conn.exchange(&request).await?;
        ensure!(
            status == 200,
            "the first check-in failed: {status} {}",
            String::from_utf8_lossy(body)
        );
        Ok(body.len())
    })?;
    let responder = server_rt.block_on(start_responder(body_len))?;

    let targets = [
        Target {
            name: "bare responder",
            addr: responder,
        },
        Target {
            name: "check-in",
            addr: server.addr,
        },
    ];
    let load = |target: &Target, seconds: u64| -> Result<Measured> {
        let measured = load_rt.block_on(drive(
            target.addr,
            fleet.clone(),
            args.connections,
            Duration::from_secs(seconds),
        ))?;
        if let Some(failure) = &measured.first_failure {
            bail!(
                "{} answered {} of {} requests with an error, e.g. {failure}; \
                 a benchmark with errors measures nothing",
                target.name,
                measured.failures,
                measured.latencies_us.len()
            );
        }
        Ok(measured)
    };
    if args.warmup_seconds > 0 {
        for target in &targets {
            load(target, args.warmup_seconds)?;
        }
    }

    let measuring = restarted.elapsed().as_secs_f64();
    let warmed_before = store.checkin_cache_warm_up();
    match warmed_before {
        _ if on_postgres => println!(
            "restart: PostgreSQL has no check-in cache; the first phase began {measuring:.1} s \
             after the restart"
        ),
        Some((views, took)) => println!(
            "restart: the store warmed its check-in cache with {views} views in {:.2} s; \
             the first phase began {measuring:.1} s after the restart",
            took.as_secs_f64()
        ),
        None => println!(
            "restart: the store was still warming its check-in cache when the first phase \
             began, {measuring:.1} s after the restart"
        ),
    }
    println!();
    println!(
        "{:<7} {:<15} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "phase", "target", "requests", "req/s", "p50 ms", "p99 ms", "p999 ms"
    );
    let mut totals = [Measured::default(), Measured::default()];
    for round in 1..=args.rounds {
        for (target, total) in targets.iter().zip(totals.iter_mut()) {
            let measured = load(target, args.seconds)?;
            println!("{}", measured.row(&round.to_string(), target.name));
            total.add(measured);
        }
    }
    for (target, total) in targets.iter().zip(totals.iter_mut()) {
        total.latencies_us.sort_unstable();
        println!("{}", total.row("all", target.name));
    }
    println!();
    if warmed_before.is_none() && !on_postgres {
        match store.checkin_cache_warm_up() {
            Some((views, took)) => println!(
                "restart: the warm-up ended during the phases: {views} views in {:.2} s",
                took.as_secs_f64()
            ),
            None => println!("restart: the warm-up had still not ended after the last phase"),
        }
    }
    let sizes = |measured: &Measured| match measured.body_sizes {
        Some((shortest, longest)) if shortest == longest => format!("{shortest}"),
        Some((shortest, longest)) => format!("{shortest} to {longest}"),
        None => "no".to_string(),
    };
    println!(
        "every response was 200 OK; response bodies: {} bytes from the responder, \
         {} bytes from check-ins",
        sizes(&totals[0]),
        sizes(&totals[1])
    );
    let ratio = totals[1].per_second() / totals[0].per_second();
    let verdict = if ratio >= args.min_ratio {
        "met"
    } else {
        "missed"
    };
    println!(
        "ratio check-in / bare responder: {ratio:.2} (target at least {:.2}: {verdict})",
        args.min_ratio
    );

    // Not stopped gracefully: all it would still write is last-seen times, to a database
    // deleted next.
    drop(server);
    drop(server_rt);
    if args.enforce && ratio < args.min_ratio {
        bail!(
            "check-in throughput is {ratio:.2} of the bare responder's, below {:.2}",
            args.min_ratio
        );
    }
    Ok(())
}

/// Which plans a bench fleet has: three monthly installments of KES 1,000.00 on the Kenya
/// preset, after a down payment.
#[derive(Debug, Clone, Copy)]
enum Plans {
    /// The first installment a month away: every device is active.
    Current,
    /// Two installments 60 and 30 days past due: every device is locked.
    Overdue,
    /// One device in ten with its first installment in 2 days, the others in 40: the tenth
    /// change state at one instant (the due date), before anyone's lease needs renewing.
    OneInTenSooner,
}

impl Plans {
    fn plan(self, i: u32, today: jiff::civil::Date) -> PlanJson {
        let first: i64 = match self {
            Plans::Current => 30,
            Plans::Overdue => -60,
            Plans::OneInTenSooner if i.is_multiple_of(10) => 2,
            Plans::OneInTenSooner => 40,
        };
        PlanJson {
            currency: "KES".into(),
            time_zone: "Africa/Nairobi".into(),
            down_payment_minor: 200_000,
            installments: (0..3)
                .map(|month| {
                    // Overdue: 60 and 30 days ago, and one a month away.
                    let days = match (self, month) {
                        (Plans::Overdue, 2) => 30,
                        _ => first + 30 * month,
                    };
                    InstallmentJson {
                        due: (today + days.days()).to_string(),
                        amount_minor: 100_000,
                    }
                })
                .collect(),
        }
    }
}

/// Warnings only, to stderr: stdout carries the report.
fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LIEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
}

/// A temporary directory for the database and keys, under `parent` if given.
fn temp_dir(parent: Option<&std::path::Path>) -> Result<tempfile::TempDir> {
    match parent {
        Some(parent) => {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
            tempfile::tempdir_in(parent)
        }
        None => tempfile::tempdir(),
    }
    .context("creating a temporary directory for the database")
}

/// Creates a financier and enrolls `count` devices on the Kenya preset, each bound as if its
/// phone had said hello and checked in once, with plans as `plans` says.
async fn enroll_fleet(state: &AppState, count: u32, plans: Plans) -> Result<Vec<Device>> {
    let now = state.clock.now();
    let financier = Financier {
        id: "fin_bench".into(),
        name: "Bench Finance".into(),
        contact: "+254 700 000 000".into(),
        payment_link: None,
        created_us: now.as_microsecond(),
    };
    state
        .store
        .create_financier(
            &financier,
            &AuditEntry {
                at_us: now.as_microsecond(),
                actor: "bench".into(),
                action: "financier_created".into(),
                reason: "lien bench checkin".into(),
                before_json: "null".into(),
                after_json: "null".into(),
            },
        )
        .await?;
    let today = now.to_zoned(TimeZone::get("Africa/Nairobi")?).date();
    // Enrolled a group per transaction (`enroll_all`, as an import of a book would), not one
    // per transaction as through the API: that took half an hour for 1,000,000 plans. A few
    // workers run at once, so that preparing one group (deciding, signing each first token)
    // overlaps another's commit; SQLite still writes them one at a time.
    const WORKERS: u32 = 4;
    const GROUP: usize = 500;
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for worker in 0..WORKERS {
        let state = state.clone();
        let financier = financier.clone();
        let done = done.clone();
        tasks.spawn(async move {
            let mut fleet = Vec::new();
            let mut group = Vec::with_capacity(GROUP);
            let mut numbers = (worker..count).step_by(WORKERS as usize).peekable();
            while let Some(i) = numbers.next() {
                let (enrollment, device) =
                    prepare_one(&state, &financier, &plans.plan(i, today), i)
                        .with_context(|| format!("enrolling device {i}"))?;
                group.push(enrollment);
                fleet.push((i, device));
                if group.len() < GROUP && numbers.peek().is_some() {
                    continue;
                }
                let written = group.len();
                state.store.enroll_all(std::mem::take(&mut group)).await?;
                let before = done.fetch_add(written, Ordering::Relaxed);
                if (before + written) / 10_000 > before / 10_000 {
                    eprintln!(
                        "enrolled {} of {count} devices ({:.0} per second)",
                        before + written,
                        (before + written) as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
            anyhow::Ok(fleet)
        });
    }
    let mut fleet = Vec::with_capacity(count as usize);
    while let Some(joined) = tasks.join_next().await {
        fleet.extend(joined??);
    }
    // In enrollment order whichever worker finished first: device `i` follows plan `i`.
    fleet.sort_unstable_by_key(|(i, _)| *i);
    Ok(fleet.into_iter().map(|(_, device)| device).collect())
}

/// Device number `i`'s IMEI and serial: a made-up TAC and serial number, and the check digit
/// the IMEISV form lets Imei compute.
fn bench_identity(i: u32) -> Result<(Imei, String)> {
    Ok((
        Imei::from_imeisv(&format!("35209900{i:06}00"))?,
        format!("BENCH{i:07}"),
    ))
}

/// Device number `i`'s enrollment, bound, ready for the store, and the bench's view of it.
fn prepare_one(
    state: &AppState,
    financier: &Financier,
    plan: &PlanJson,
    i: u32,
) -> Result<((NewDevice, DeviceChange), Device)> {
    let (imei, serial) = bench_identity(i)?;
    let req = EnrollRequest {
        contract_ref: format!("bench-{i:07}"),
        imei1: imei.as_str().to_string(),
        imei2: None,
        serial,
        model: "Bench Phone".into(),
        plan: plan.clone(),
        policy: PolicyJson::Preset("kenya".into()),
    };
    let now = state.clock.now();
    let (device, mut change) = prepare_enrollment(state, financier, "bench", &req, now)?;
    let (sequence, token_state) = change
        .token
        .as_ref()
        .map(|t| (t.sequence, t.state.clone()))
        .context("an enrollment signs a first token")?;
    // What the phone's hello and first check-in would write (a binding, generation 1, and
    // the applied token sequence), written with the enrollment to halve the setup's
    // commits. The check-in reads only these columns; the device key is never read there.
    let mut device_key = [0x42u8; 32];
    device_key[..4].copy_from_slice(&i.to_be_bytes());
    change.binding = Some((device_key.to_vec(), now.as_microsecond()));
    change.applied_sequence = Some(sequence);
    let bench_view = Device {
        credential: state.secrets.device_credential(&device.id, 1),
        id: device.id.clone(),
        sequence,
        state: token_state,
    };
    Ok(((device, change), bench_view))
}

/// A request counter never used before: one count for all the simulated phones, since each
/// phone's counters need only increase, as a real phone's do (the server refuses a replay).
/// It follows the wall clock in microseconds, so the phones' child process (see `push`) goes
/// on above the counters this process used for the same devices moments before.
fn next_counter() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = u64::try_from(jiff::Timestamp::now().as_microsecond()).unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = last.max(now).saturating_add(1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// A check-in request for `device`, sent at `sent_at`, signed, as raw HTTP/1.1 bytes.
fn checkin_request(device: &Device, sent_at: i64) -> Vec<u8> {
    let counter = next_counter();
    let body = format!(
        r#"{{"sent_at":{sent_at},"counter":{counter},"applied_sequence":{},"events":[]}}"#,
        device.sequence
    );
    let signature = sign_checkin(&device.credential, body.as_bytes());
    format!(
        "POST /v1/device/checkin HTTP/1.1\r\nhost: 127.0.0.1\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\
         x-lien-device: {}\r\nx-lien-signature: {signature}\r\n\r\n{body}",
        body.len(),
        device.id
    )
    .into_bytes()
}

/// Starts the bare responder: any POST to the check-in path, body read and ignored, answered
/// with `body_len` bytes of fixed JSON. It is what the check-in's throughput is held against.
async fn start_responder(body_len: usize) -> Result<SocketAddr> {
    const SHELL: &str = r#"{"token":""}"#;
    ensure!(
        body_len >= SHELL.len(),
        "a check-in response is never this short"
    );
    let body = Bytes::from(format!(
        r#"{{"token":"{}"}}"#,
        "A".repeat(body_len - SHELL.len())
    ));
    let app = axum::Router::new().route(
        "/v1/device/checkin",
        axum::routing::post(move |_request: Bytes| {
            let body = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // Served as the server serves Lien (hyper's HTTP/1 connection, see `app::serve`), so that
    // the two differ only in what answers the request. It runs until the process ends.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        // A dropped sender would read as "stop".
        let _stop = stop;
        let limits = lien_server::connections::ConnectionLimits::only_total(
            u32::MAX,
            std::time::Duration::from_secs(30),
        );
        lien_server::app::serve(listener, app, stopping, limits).await;
    });
    Ok(addr)
}

/// What one phase on one target measured.
#[derive(Default)]
struct Measured {
    /// Every request's latency, in microseconds.
    latencies_us: Vec<u32>,
    elapsed: Duration,
    /// The shortest and the longest response body.
    body_sizes: Option<(usize, usize)>,
    failures: usize,
    first_failure: Option<String>,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// Adds another phase's requests and time.
    fn add(&mut self, other: Measured) {
        self.latencies_us.extend(other.latencies_us);
        self.elapsed += other.elapsed;
        self.body_sizes = match (self.body_sizes, other.body_sizes) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (mine, theirs) => mine.or(theirs),
        };
        self.failures += other.failures;
        self.first_failure = self.first_failure.take().or(other.first_failure);
    }

    /// A line of the report; the latencies must be sorted.
    fn row(&self, phase: &str, target: &str) -> String {
        let quantile = |q: f64| {
            let n = self.latencies_us.len();
            let i = ((n as f64 * q) as usize).min(n.saturating_sub(1));
            self.latencies_us
                .get(i)
                .map_or(0.0, |&us| f64::from(us) / 1000.0)
        };
        format!(
            "{phase:<7} {target:<15} {:>10} {:>10.0} {:>9.2} {:>9.2} {:>9.2}",
            self.latencies_us.len(),
            self.per_second(),
            quantile(0.50),
            quantile(0.99),
            quantile(0.999)
        )
    }
}

/// Sends requests picked at random from `requests` over `connections` keep-alive
/// connections, one in flight on each, for `duration`.
async fn drive(
    addr: SocketAddr,
    fleet: Arc<Vec<Device>>,
    connections: u16,
    duration: Duration,
) -> Result<Measured> {
    // Every request is signed as it is sent, with its own counter, for both targets alike, so
    // the signing cost is on both sides of the ratio; `sent_at` is taken once per phase.
    let sent_at = jiff::Timestamp::now().as_second();
    let mut conns = Vec::with_capacity(usize::from(connections));
    for _ in 0..connections {
        conns.push(Conn::open(addr).await?);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = JoinSet::new();
    for (n, mut conn) in conns.into_iter().enumerate() {
        // Each device is driven by one connection only, one request at a time, as a phone
        // sends them: two in flight for one device could arrive out of counter order.
        let mine: Vec<usize> = (n..fleet.len()).step_by(usize::from(connections)).collect();
        if mine.is_empty() {
            continue;
        }
        let fleet = fleet.clone();
        tasks.spawn(async move {
            let mut rng = XorShift::new(n as u64);
            let mut measured = Measured::default();
            while Instant::now() < deadline {
                let request = checkin_request(&fleet[mine[rng.below(mine.len())]], sent_at);
                let sent = Instant::now();
                let (status, body) = conn.exchange(&request).await?;
                let micros = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                measured.latencies_us.push(micros);
                let (shortest, longest) = measured.body_sizes.get_or_insert((body.len(), 0));
                *shortest = (*shortest).min(body.len());
                *longest = (*longest).max(body.len());
                if status != 200 {
                    measured.failures += 1;
                    measured.first_failure.get_or_insert_with(|| {
                        format!("{status} {}", String::from_utf8_lossy(body))
                    });
                }
            }
            anyhow::Ok(measured)
        });
    }
    let mut total = Measured::default();
    while let Some(joined) = tasks.join_next().await {
        total.add(joined??);
    }
    total.elapsed = started.elapsed();
    total.latencies_us.sort_unstable();
    Ok(total)
}

/// A minimal HTTP/1.1 client connection: one request in flight, responses with a
/// Content-Length (what both targets send). It keeps the load generator's own cost per
/// request small, since it shares the CPUs with the server it measures.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends one request and reads its response: the status and the body.
    async fn exchange(&mut self, request: &[u8]) -> Result<(u16, &[u8])> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let (head_len, body_len, status) = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            self.fill().await?;
        };
        while self.buf.len() < head_len + body_len {
            self.fill().await?;
        }
        ensure!(
            self.buf.len() == head_len + body_len,
            "the server sent more than the response to one request"
        );
        Ok((status, &self.buf[head_len..]))
    }

    async fn fill(&mut self) -> Result<()> {
        let read = self.stream.read_buf(&mut self.buf).await?;
        ensure!(read > 0, "the server closed the connection");
        Ok(())
    }
}

/// The length of a response's head, its body's length and its status, once the head has
/// arrived in full.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, usize, u16)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).context("the response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP/1.1 status line: {status_line:?}"))?;
    let mut length = None;
    for (name, value) in lines.filter_map(|line| line.split_once(':')) {
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .context("bad Content-Length")?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("the response uses Transfer-Encoding {value:?}, which this client does not read");
        }
    }
    let length = length.context("the response has no Content-Length")?;
    Ok(Some((end + 4, length, status)))
}

/// A small, fast pseudo-random generator (xorshift64*) for picking devices; the benchmark
/// needs spread, not unpredictability.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift((seed + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A number below `n`.
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_head_is_read_once_complete() {
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n").unwrap(),
            None
        );
        let response = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_head(response).unwrap(), Some((48, 2, 401)));
    }

    #[test]
    fn a_chunked_response_is_refused_rather_than_misread() {
        let response = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(parse_head(response).is_err());
    }

    #[test]
    fn generated_imeis_are_valid_and_distinct() {
        let a = Imei::from_imeisv(&format!("35209900{:06}00", 1)).unwrap();
        let b = Imei::from_imeisv(&format!("35209900{:06}00", 2)).unwrap();
        assert_ne!(a, b);
        assert!(Imei::parse(a.as_str()).is_ok());
    }
}
