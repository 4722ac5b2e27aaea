//! `checkin`: device check-in throughput against a bare HTTP responder.
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
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use axum::body::Bytes;
use lien_server::clock::SystemClock;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::http::{Conn, checkin_request};
use crate::latency::Latencies;
use crate::setup::{Bench, Device, Plans, backend_name};

/// Arguments of `checkin`.
#[derive(Debug, clap::Args)]
pub struct CheckinArgs {
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

/// One target of the load.
struct Target {
    name: &'static str,
    addr: SocketAddr,
}

/// Runs the benchmark.
pub fn checkin(args: &CheckinArgs) -> Result<()> {
    // The servers run on the bench's multi-threaded runtime like `lien serve`'s; the load
    // generator on this thread in a runtime of its own, so that its work never queues behind
    // theirs.
    let bench = Bench::new(args.data_dir.as_deref(), args.database_url.clone())?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let on_postgres = args.database_url.is_some();
    println!(
        "lien bench checkin: {} devices on {}, {} connections, {} x {} s per target \
         after {} s of warm-up, {cpus} CPUs",
        args.devices,
        backend_name(on_postgres),
        args.connections,
        args.rounds,
        args.seconds,
        args.warmup_seconds
    );

    let state = bench.open(Arc::new(SystemClock))?;
    let started = Instant::now();
    let fleet = Arc::new(bench.enroll(&state, args.devices, Plans::Current)?);
    let setup = started.elapsed();
    println!(
        "setup: enrolled and bound {} devices in {:.1} s ({:.0} per second)",
        fleet.len(),
        setup.as_secs_f64(),
        fleet.len() as f64 / setup.as_secs_f64()
    );

    // A restart: the store that enrolled the fleet is closed and the server opens the database
    // afresh, as `lien serve` does. So the phases begin where a restarted server does: with an
    // empty check-in cache, which the store warms in the background.
    drop(state);
    let restarted = Instant::now();
    let (state, store) = bench.reopen(Arc::new(SystemClock))?;
    let server = bench.serve(state)?;
    // One real check-in first: it proves the fleet is set up right, and gives the size of
    // the body the responder must return.
    let body_len = bench.load_rt.block_on(async {
        let request = checkin_request(&fleet[0], jiff::Timestamp::now().as_second());
        let mut conn = Conn::open(server.addr).await?;
        let body = conn
            .exchange_expecting(&request, 200, "the first check-in failed")
            .await?;
        anyhow::Ok(body.len())
    })?;
    let responder = bench.server_rt.block_on(start_responder(body_len))?;

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
        let measured = bench.load_rt.block_on(drive(
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
                measured.latencies.len()
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
    for (target, total) in targets.iter().zip(&totals) {
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
    drop(store);
    drop(bench);
    if args.enforce && ratio < args.min_ratio {
        bail!(
            "check-in throughput is {ratio:.2} of the bare responder's, below {:.2}",
            args.min_ratio
        );
    }
    Ok(())
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
    latencies: Latencies,
    elapsed: Duration,
    /// The shortest and the longest response body.
    body_sizes: Option<(usize, usize)>,
    failures: usize,
    first_failure: Option<String>,
}

impl Measured {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// Adds another phase's requests and time.
    fn add(&mut self, other: Measured) {
        self.latencies.add(&other.latencies);
        self.elapsed += other.elapsed;
        self.body_sizes = match (self.body_sizes, other.body_sizes) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (mine, theirs) => mine.or(theirs),
        };
        self.failures += other.failures;
        self.first_failure = self.first_failure.take().or(other.first_failure);
    }

    /// A line of the report.
    fn row(&self, phase: &str, target: &str) -> String {
        format!(
            "{phase:<7} {target:<15} {:>10} {:>10.0} {:>9.2} {:>9.2} {:>9.2}",
            self.latencies.len(),
            self.per_second(),
            self.latencies.quantile_ms(0.50),
            self.latencies.quantile_ms(0.99),
            self.latencies.quantile_ms(0.999)
        )
    }
}

/// Sends check-ins for devices of `fleet` picked at random over `connections` keep-alive
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
            // Spread, not unpredictability: a fixed seed per connection.
            let mut rng = fastrand::Rng::with_seed(n as u64);
            let mut measured = Measured::default();
            while Instant::now() < deadline {
                let request = checkin_request(&fleet[mine[rng.usize(..mine.len())]], sent_at);
                let sent = Instant::now();
                let (status, body) = conn.exchange(&request).await?;
                measured.latencies.record(sent.elapsed());
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
    Ok(total)
}
