//! `hello`: how many attested hellos a second the server takes. Each phone fetches a
//! challenge and has its (simulated) secure hardware attest a new device key for it before the
//! timing starts, as a phone's TEE would; then the hellos are sent, `concurrency` at a time, and
//! the server verifies each chain (signatures up to the root, the KeyDescription), checks the
//! challenge and binds the attested key in a transaction with its audit record.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lien_proto::attestation::DevelopmentRoot;
use lien_server::clock::SystemClock;
use lien_server::secrets::DEV_ATTESTATION_ROOT_FILE;
use tokio::task::JoinSet;

use crate::http::{Conn, post};
use crate::latency::Latencies;
use crate::setup::{Bench, Plans, bench_identity};

/// Arguments of `hello`.
#[derive(Debug, clap::Args)]
pub struct HelloArgs {
    /// Enrolled phones, each saying hello once.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    devices: u32,
    /// Hellos in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// Where to create the temporary directory holding the database and keys; it is removed
    /// at the end [default: the system's temporary directory].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Runs the benchmark.
pub fn hello(args: &HelloArgs) -> Result<()> {
    let mut bench = Bench::new(args.data_dir.as_deref(), None)?;
    // The per-address limit would hold one load generator back; it is what it measures.
    bench.settings.hello_rate_per_minute = 0;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "lien bench hello: {} phones on SQLite, {} hellos in flight, {cpus} CPUs",
        args.devices, args.concurrency
    );
    let state = bench.open(Arc::new(SystemClock))?;
    let root = DevelopmentRoot::from_pem(&std::fs::read_to_string(
        bench.data_dir().join(DEV_ATTESTATION_ROOT_FILE),
    )?)?;
    bench.enroll(&state, args.devices, Plans::Current)?;
    let server = bench.serve(state)?;
    let addr = server.addr;
    // The load runs on the server's runtime too, sharing its workers, as it always has here.
    bench.server_rt.block_on(async {
        // Outside the timing: a challenge for each phone, and its attestation.
        let started = Instant::now();
        let now = jiff::Timestamp::now().as_second();
        let mut requests = Vec::with_capacity(args.devices as usize);
        let mut conn = Conn::open(addr).await?;
        for i in 0..args.devices {
            let (imei, serial) = bench_identity(i)?;
            let (status, body) = conn
                .exchange(&post("/v1/device/hello/challenge", "", ""))
                .await?;
            ensure!(status == 200, "a challenge was refused: {status}");
            let challenge: serde_json::Value = serde_json::from_slice(body)?;
            let challenge = challenge["challenge"].as_str().context("a challenge")?;
            let chain = root
                .mint_factory_identity(imei.as_str(), None, &serial, now)?
                .attest(&STANDARD.decode(challenge)?, now)?
                .chain;
            let hello = serde_json::json!({
                "imei1": imei.as_str(), "serial": serial, "model": "Bench Phone",
                "challenge": challenge,
                "attestation": chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>(),
            });
            requests.push(post("/v1/device/hello", "", &hello.to_string()));
        }
        println!(
            "setup: {} phones attested in {:.1} s",
            requests.len(),
            started.elapsed().as_secs_f64()
        );

        let requests = Arc::new(requests);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for _ in 0..args.concurrency {
            let (requests, next) = (requests.clone(), next.clone());
            tasks.spawn(async move {
                let mut conn = Conn::open(addr).await?;
                let mut latencies = Latencies::default();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(request) = requests.get(i) else {
                        return anyhow::Ok(latencies);
                    };
                    let sent = Instant::now();
                    let (status, body) = conn.exchange(request).await?;
                    ensure!(
                        status == 200,
                        "a hello was refused: {status} {}",
                        String::from_utf8_lossy(body)
                    );
                    latencies.record(sent.elapsed());
                }
            });
        }
        let mut latencies = Latencies::default();
        while let Some(joined) = tasks.join_next().await {
            latencies.add(&joined??);
        }
        let elapsed = started.elapsed();
        println!(
            "{} attested hellos in {:.2} s: {:.0} a second; latency p50 {:.2} ms, p99 {:.2} ms",
            latencies.len(),
            elapsed.as_secs_f64(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            latencies.quantile_ms(0.5),
            latencies.quantile_ms(0.99)
        );
        server.stop().await;
        anyhow::Ok(())
    })
}
