//! `scheduler`: how long the scheduler takes to evaluate the plans that fall due at
//! one instant.
//!
//! Setup (not timed): the real server state on a fresh SQLite database with a clock the
//! benchmark sets, and `--plans` devices enrolled through the server's own enrollment path
//! (`prepare_enrollment` and the store's `enroll`, one transaction each, as the check-in
//! benchmark does). One device in ten has its first installment 2 days away, the others 40
//! days: the tenth all have their next evaluation (the due date, a calendar instant) at the
//! same instant, before any device's lease renewal (which falls days later, spread over the
//! setup's minutes). The clock is then set one second past it, and `scheduler::run_due`, the pass
//! `lien serve` runs in the background, is timed until it has evaluated everything due: it
//! claims due devices in batches, decides each again, signs its new token and writes it with
//! its audit record, a group of devices per transaction.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, ensure};
use jiff::Timestamp;
use lien_server::clock::ManualClock;

use crate::setup::{Bench, Plans, backend_name};

/// Arguments of `scheduler`.
#[derive(Debug, clap::Args)]
pub struct SchedulerArgs {
    /// Plans (enrolled devices); a tenth of them fall due at the same instant.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    plans: u32,
    /// Where to create the temporary directory holding the database and keys.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL database to run on instead of a new SQLite file. It must be empty: the
    /// benchmark creates its tables and enrolls into it.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

/// Runs the benchmark.
pub fn scheduler(args: &SchedulerArgs) -> Result<()> {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let backend = backend_name(args.database_url.is_some());
    println!(
        "lien bench scheduler: {} plans on {backend}, {} due at one instant, {cpus} CPUs",
        args.plans,
        args.plans.div_ceil(10)
    );
    let bench = Bench::new(args.data_dir.as_deref(), args.database_url.clone())?;
    let clock = ManualClock::new(Timestamp::now());
    let state = bench.open(Arc::new(clock.clone()))?;
    let started = Instant::now();
    let fleet = bench.enroll(&state, args.plans, Plans::OneInTenSooner)?;
    println!(
        "setup: enrolled {} devices in {:.1} s",
        fleet.len(),
        started.elapsed().as_secs_f64()
    );
    let (due_at, later) = bench.server_rt.block_on(async {
        let soon = state.store.device(&fleet[0].id).await?.next_eval_us;
        let late = state.store.device(&fleet[1].id).await?.next_eval_us;
        anyhow::Ok((soon, late))
    })?;
    let (Some(due_at), Some(later)) = (due_at, later) else {
        anyhow::bail!("the bench devices have no next evaluation time");
    };
    ensure!(
        due_at < later,
        "the sooner plans are not due first ({due_at} against {later})"
    );
    clock.set(Timestamp::from_microsecond(due_at + 1_000_000)?);
    let timed = Instant::now();
    let evaluated = bench
        .server_rt
        .block_on(lien_server::scheduler::run_due(&state))?;
    let secs = timed.elapsed().as_secs_f64();
    let due = fleet.len().div_ceil(10);
    ensure!(
        evaluated == due,
        "the scheduler evaluated {evaluated} devices, expected the {due} due"
    );
    println!(
        "evaluated {evaluated} due plans in {secs:.1} s ({:.0} per second); {} tokens signed",
        evaluated as f64 / secs,
        state.metrics.tokens_signed.get()
    );
    let per_100k = secs * 100_000.0 / evaluated as f64;
    println!(
        "at this rate 100,000 due plans take {per_100k:.0} s (target under 30 s: {})",
        if per_100k < 30.0 { "met" } else { "missed" }
    );
    drop(state);
    drop(bench);
    Ok(())
}
