//! Lien's crash campaign: a real `lien serve` process, concurrent financiers' writes through
//! its HTTP API, and a fault at a seeded moment (SIGKILL of the server, or its PostgreSQL
//! stopped or killed), then checks that every promise of "nothing lost" held: every
//! acknowledged write is present, nothing is applied twice, retries under an
//! Idempotency-Key repeat their first answer, every audit chain verifies, and every device
//! and simulated phone converges to the state it must be in.
//!
//! The campaign is its own crate and binary (`lien-crash`), never part of the `lien` binary
//! operators run. RELIABILITY.md records its runs. The seed fixes each client's choices, the
//! devices and the moment of the fault; the interleaving of the clients' requests is the
//! machine's, so one seed does not replay one run byte for byte.

pub mod api;
pub mod check;
pub mod pg;
pub mod server;
pub mod trial;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

pub use check::Findings;
pub use trial::{Fault, Outage, TrialReport, TrialSpec};

/// Where the trials' databases live.
#[derive(Debug, Clone)]
pub enum Backend {
    /// SQLite in each trial's data directory; the fault kills the server.
    Sqlite,
    /// A fresh database per trial on this PostgreSQL server (a URL naming any database
    /// there); the fault kills the server.
    Postgres(String),
    /// A PostgreSQL cluster of the campaign's own, made with the binaries in this directory;
    /// the fault stops it (even seeds) or kills its postmaster (odd seeds), and the server
    /// keeps running.
    PostgresRestarts(PathBuf),
}

/// A series of trials.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// The `lien` binary.
    pub lien: PathBuf,
    /// The first trial's seed; trial `i` has seed `seed + i`.
    pub seed: u64,
    /// How many trials.
    pub trials: u64,
    /// Concurrent clients per trial.
    pub clients: usize,
    /// Devices with a bound phone, per client.
    pub phones_per_client: usize,
    /// The databases, and so the faults.
    pub backend: Backend,
    /// The fault comes this many milliseconds after the writes start (seeded, in this range).
    pub fault_window_ms: (u64, u64),
}

/// What a campaign found.
#[derive(Debug, Default, Clone)]
pub struct CampaignReport {
    /// Trials run to their checks.
    pub trials: u64,
    /// Writes sent by the clients, over all trials.
    pub writes_sent: u64,
    /// Every trial's findings together.
    pub findings: Findings,
    /// Trials that could not be run to their checks (the harness or the server failed), by seed.
    pub failed: Vec<(u64, String)>,
    /// The PostgreSQL outages.
    pub outages: Vec<Outage>,
}

impl CampaignReport {
    /// Whether every trial ran and every promise held.
    pub fn clean(&self) -> bool {
        self.failed.is_empty() && self.findings.clean()
    }
}

/// Runs the campaign's trials one after another, calling `on_trial` after each.
pub async fn run(
    campaign: &Campaign,
    mut on_trial: impl FnMut(u64, &Result<TrialReport>),
) -> Result<CampaignReport> {
    let cluster = match &campaign.backend {
        Backend::PostgresRestarts(bindir) => {
            let bindir = bindir.clone();
            Some(Arc::new(
                tokio::task::spawn_blocking(move || pg::Cluster::create(&bindir)).await??,
            ))
        }
        _ => None,
    };
    let mut report = CampaignReport::default();
    for i in 0..campaign.trials {
        let seed = campaign.seed.wrapping_add(i);
        let (server_url, fault) = match (&campaign.backend, &cluster) {
            (Backend::Sqlite, _) => (None, Fault::KillServer),
            (Backend::Postgres(url), _) => (Some(url.clone()), Fault::KillServer),
            (Backend::PostgresRestarts(_), Some(cluster)) => (
                Some(cluster.url("postgres")),
                if seed % 2 == 0 {
                    Fault::StopPostgres
                } else {
                    Fault::KillPostmaster
                },
            ),
            (Backend::PostgresRestarts(_), None) => unreachable!("the cluster is made above"),
        };
        let database = format!("lien_crash_{seed}");
        let database_url = match &server_url {
            Some(url) => Some(pg::create_database(url, &database).await?),
            None => None,
        };
        let spec = TrialSpec {
            lien: campaign.lien.clone(),
            seed,
            clients: campaign.clients,
            phones_per_client: campaign.phones_per_client,
            database_url,
            fault,
            cluster: cluster.clone(),
            fault_window_ms: campaign.fault_window_ms,
        };
        let result = trial::run(&spec).await;
        on_trial(seed, &result);
        match &result {
            Ok(trial) => {
                report.trials += 1;
                report.writes_sent += trial.writes_sent;
                report.findings.add(&trial.findings);
                report.outages.extend(trial.outage.clone());
            }
            Err(e) => report.failed.push((seed, format!("{e:#}"))),
        }
        if let Some(url) = &server_url {
            pg::drop_database(url, &database).await?;
        }
    }
    Ok(report)
}
