//! `console`: how fast the console's device list answers a financier with a large portfolio.
//!
//! Setup (not timed): the real server on a fresh database with `--devices` devices of one
//! financier (one in ten overdue and locked), and a financier admin invited and signed in
//! through the console's own commands (so the session is a real one, cookie and all). Then, one
//! request at a time over a keep-alive connection, as a person clicking would: the first page of
//! the list, a page deep in it (by cursor), the locked ones, the overdue ones, a search by
//! contract reference and by IMEI, the devices on one policy, and the overview (every count of
//! the portfolio), each `--requests` times. Each request must answer 200 with
//! the page; its time is from the first byte sent to the last byte of the page read.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use jiff::Timestamp;
use lien_server::auth::{Actor, Role};
use lien_server::clock::ManualClock;
use lien_server::commands::people::{self, Invitation};

use crate::http::Conn;
use crate::latency::Latencies;
use crate::setup::{Bench, Plans, backend_name, bench_identity, contract_ref};

/// Arguments of `console`.
#[derive(Debug, clap::Args)]
pub struct ConsoleArgs {
    /// Devices in the financier's portfolio.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(100..=1_000_000))]
    devices: u32,
    /// Requests of each kind.
    #[arg(long, default_value_t = 200)]
    requests: u32,
    /// Where to create the temporary directory holding the database and keys.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL database to run on instead of a new SQLite file. It must be empty.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

/// Runs the benchmark.
pub fn console(args: &ConsoleArgs) -> Result<()> {
    let backend = backend_name(args.database_url.is_some());
    println!(
        "lien bench console: the device list of a financier with {} devices on {backend}, {} requests of each kind",
        args.devices, args.requests
    );
    let bench = Bench::new(args.data_dir.as_deref(), args.database_url.clone())?;
    let clock = ManualClock::new(Timestamp::now());
    let state = bench.open(Arc::new(clock.clone()))?;
    let started = Instant::now();
    let fleet = bench.enroll(&state, args.devices, Plans::OneInTenOverdue)?;
    println!(
        "setup: enrolled {} devices in {:.1} s",
        fleet.len(),
        started.elapsed().as_secs_f64()
    );
    let cookie = bench.server_rt.block_on(async {
        let platform = Actor {
            key_id: "key_bench".into(),
            role: Role::PlatformAdmin,
            financier_id: None,
        };
        let invited = people::invite(
            &state,
            &platform,
            Invitation {
                email: "admin@bench.example".into(),
                role: Role::FinancierAdmin,
                financier_id: Some("fin_bench".into()),
            },
        )
        .await?;
        let password = "a bench passphrase";
        let opened = people::accept(&state, &invited.token, "Bench", password, password).await?;
        anyhow::Ok(opened.cookie)
    })?;
    let running = bench.serve(state)?;
    let addr = running.addr;
    let middle = &fleet[fleet.len() / 2].id;
    let (imei, _) = bench_identity(args.devices / 3)?;
    let kinds = [
        ("first page", "/console/devices".to_string()),
        (
            "a page by cursor",
            format!("/console/devices?cursor={middle}"),
        ),
        ("locked", "/console/devices?state=locked".to_string()),
        ("overdue", "/console/devices?overdue=on".to_string()),
        (
            "search by contract",
            format!("/console/devices?q={}", contract_ref(args.devices / 2)),
        ),
        (
            "search by IMEI",
            format!("/console/devices?q={}", imei.as_str()),
        ),
        ("policy=kenya", "/console/devices?policy=kenya".to_string()),
        ("overview", "/console/overview".to_string()),
    ];
    let results = bench.load_rt.block_on(async {
        let mut conn = Conn::open(addr).await?;
        let mut results = Vec::new();
        for (name, path) in &kinds {
            let request = format!(
                "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncookie: __Host-lien_session={cookie}\r\n\r\n"
            );
            let mut latencies = Latencies::default();
            let mut rows = 0;
            for _ in 0..args.requests {
                let sent = Instant::now();
                let body = conn
                    .exchange_expecting(request.as_bytes(), 200, "the device list")
                    .await?;
                latencies.record(sent.elapsed());
                let text = std::str::from_utf8(body).context("the page is UTF-8")?;
                rows = if *name == "overview" {
                    // The overview lists no device: it counts them all.
                    usize::from(text.contains("id=\"count-all\""))
                } else {
                    text.matches("<tr><td><a href=\"/console/devices/").count()
                };
            }
            ensure!(rows > 0, "{name}: the page lists no device");
            results.push((*name, latencies, rows));
        }
        anyhow::Ok(results)
    })?;
    let mut worst_p99: f64 = 0.0;
    for (name, latencies, rows) in &results {
        let p99 = latencies.quantile_ms(0.99);
        // The target is the device list's; the overview is measured, not held to it.
        if *name != "overview" {
            worst_p99 = worst_p99.max(p99);
        }
        println!(
            "{name}: {rows} devices on the page, p50 {:.1} ms, p99 {p99:.1} ms, max {:.1} ms",
            latencies.quantile_ms(0.5),
            latencies.max_ms()
        );
    }
    println!(
        "slowest device list p99 {worst_p99:.1} ms (target under 200 ms: {})",
        if worst_p99 < 200.0 { "met" } else { "missed" }
    );
    bench.server_rt.block_on(running.stop());
    Ok(())
}
