//! `lien-crash`: the crash campaign (see the crate's documentation and RELIABILITY.md).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use lien_crash::{Backend, Campaign};

/// Kills a real `lien serve` (or its PostgreSQL) under concurrent financier writes, and checks
/// that no acknowledged write is lost, nothing is applied twice, every audit chain verifies and
/// every phone converges.
#[derive(Parser)]
#[command(name = "lien-crash", version)]
struct Args {
    /// The `lien` binary to serve with (by default the one beside this binary: build both
    /// with `cargo build --release -p lien -p lien-crash`).
    #[arg(long)]
    lien: Option<PathBuf>,
    /// How many trials.
    #[arg(long, default_value_t = 100)]
    trials: u64,
    /// The first trial's seed; trial i has seed + i.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Concurrent clients per trial.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Devices with a bound simulated phone, per client.
    #[arg(long, default_value_t = 2)]
    phones_per_client: usize,
    /// The earliest moment of the fault, in milliseconds after the writes start.
    #[arg(long, default_value_t = 50)]
    fault_from_ms: u64,
    /// The latest moment of the fault.
    #[arg(long, default_value_t = 1500)]
    fault_to_ms: u64,
    /// Run on PostgreSQL: a fresh database per trial on this server (a URL naming any of its
    /// databases); the server is killed as on SQLite.
    #[arg(long, conflicts_with = "pg_restarts")]
    postgres: Option<String>,
    /// Instead of killing the server, stop or kill a PostgreSQL cluster of the campaign's own
    /// (made with initdb from --pg-bindir) under load, then start it again.
    #[arg(long)]
    pg_restarts: bool,
    /// Where initdb and pg_ctl are.
    #[arg(long, default_value = "/usr/lib/postgresql/15/bin")]
    pg_bindir: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let lien = match args.lien {
        Some(path) => path,
        None => std::env::current_exe()?
            .parent()
            .context("this binary's directory")?
            .join("lien"),
    };
    anyhow::ensure!(
        lien.exists(),
        "{} is missing: build it with `cargo build --release -p lien -p lien-crash`, or pass --lien",
        lien.display()
    );
    let backend = match (args.postgres, args.pg_restarts) {
        (Some(url), _) => Backend::Postgres(url),
        (None, true) => Backend::PostgresRestarts(args.pg_bindir),
        (None, false) => Backend::Sqlite,
    };
    let campaign = Campaign {
        lien,
        seed: args.seed,
        trials: args.trials,
        clients: args.clients,
        phones_per_client: args.phones_per_client,
        backend,
        fault_window_ms: (args.fault_from_ms, args.fault_to_ms),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(lien_crash::run(&campaign, |seed, result| match result {
        Ok(t) => {
            let f = &t.findings;
            let outage = t
                .outage
                .as_ref()
                .map(|o| {
                    format!(
                        " | outage: readyz {:?} and payment {:?} in {} ms, server alive {}, answering {} ms after the database",
                        o.readyz, o.payment, o.answered_in_ms, o.server_alive, o.recovered_after_ms
                    )
                })
                .unwrap_or_default();
            println!(
                "seed {seed}: {:?} after {} ms, {} writes sent, {} acknowledged, {} unanswered, {} devices, {} chains verified, {} phones converged, {} replays matched: {}{outage}",
                t.fault,
                t.fault_after_ms,
                t.writes_sent,
                f.acknowledged,
                f.unanswered,
                f.devices,
                f.chains_verified,
                f.phones_converged,
                f.replays_matched,
                if f.clean() { "ok" } else { "PROMISE BROKEN" }
            );
            for problem in f.problems() {
                println!("  {problem}");
            }
        }
        Err(e) => println!("seed {seed}: TRIAL FAILED: {e:#}"),
    }))?;
    let f = &report.findings;
    println!(
        "\n{} trials ({} failed to run), {} writes sent, {} acknowledged, {} unanswered ({} of them found applied): lost {}, duplicates {}, \
         chains verified {} of {}, broken {}, phones converged {}, diverged {}, other problems {}, replays matched {}",
        report.trials,
        report.failed.len(),
        report.writes_sent,
        f.acknowledged,
        f.unanswered,
        f.unanswered_applied,
        f.lost.len(),
        f.duplicates.len(),
        f.chains_verified,
        f.devices,
        f.broken_chains.len(),
        f.phones_converged,
        f.diverged.len(),
        f.other.len(),
        f.replays_matched,
    );
    if !report.outages.is_empty() {
        let mut ms: Vec<u64> = report
            .outages
            .iter()
            .map(|o| o.recovered_after_ms)
            .collect();
        ms.sort_unstable();
        println!(
            "PostgreSQL outages: {}, server alive through all: {}, answering again after {} ms (median), {} ms (max)",
            ms.len(),
            report.outages.iter().all(|o| o.server_alive),
            ms[ms.len() / 2],
            ms[ms.len() - 1]
        );
    }
    if !report.clean() {
        std::process::exit(1);
    }
    Ok(())
}
