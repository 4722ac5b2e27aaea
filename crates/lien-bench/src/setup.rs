//! What every benchmark starts with, written once: a temporary data directory, the runtimes,
//! the real server's state on a fresh database there, a fleet of enrolled and bound devices,
//! and the server started on a loopback port.
//!
//! The server runs in the benchmark's own process (as `lien serve` runs it, without the
//! scheduler), so that the benchmark can read its metrics, ask its store how the check-in
//! cache's warm-up went, and measure its resident set; `idle-connections` depends on that.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use jiff::ToSpan;
use jiff::tz::TimeZone;
use lien_core::Imei;
use lien_server::app::{AppState, Running, start};
use lien_server::clock::Clock;
use lien_server::commands::{financiers, prepare_enrollment};
use lien_server::config::Settings;
use lien_server::secrets::Secrets;
use lien_server::wire::{EnrollRequest, InstallmentJson, PlanJson, PolicyJson};
use lien_store::{DeviceChange, Financier, NewDevice, SqlStore};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// A benchmark's server side before it serves: its runtimes, settings and data directory.
///
/// Fields drop in order: the runtimes (and with them whatever still runs on them), then the
/// directory holding the database.
pub struct Bench {
    /// The server's runtime: multi-threaded, one worker per CPU, like `lien serve`'s.
    pub server_rt: tokio::runtime::Runtime,
    /// The load generator's runtime, on the thread that calls `block_on`, so that its work
    /// never queues behind the server's.
    pub load_rt: tokio::runtime::Runtime,
    /// The server's settings; a benchmark may change them before [`Bench::open`].
    pub settings: Settings,
    dir: tempfile::TempDir,
}

impl Bench {
    /// Sets up logging, a temporary directory under `data_dir` (the system's by default), and
    /// the runtimes, for a server on SQLite there or on the PostgreSQL database `database_url`.
    pub fn new(data_dir: Option<&Path>, database_url: Option<String>) -> Result<Bench> {
        init_logging();
        let dir = temp_dir(data_dir)?;
        let server_rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let load_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let settings = Settings {
            data_dir: dir.path().to_path_buf(),
            database_url,
            // The benchmarks' thousands of phones come from eight loopback addresses (see
            // `http::source`), each standing for many phones: the share one client may hold
            // (1,000 by default) would refuse the push channels beyond 8,000.
            max_connections_per_client: 0,
            ..Settings::default()
        };
        Ok(Bench {
            server_rt,
            load_rt,
            settings,
            dir,
        })
    }

    /// The server's state: the store opened as `lien serve` opens it, the keys created in the
    /// data directory (or read back, after [`Bench::reopen`]'s restart), time from `clock`.
    pub fn open(&self, clock: Arc<dyn Clock>) -> Result<AppState> {
        self.server_rt.block_on(async {
            let store = lien_server::open_store(&self.settings).await?;
            let secrets = Secrets::load_or_create(self.dir.path())?;
            Ok(AppState::new(store, clock, secrets, self.settings.clone()))
        })
    }

    /// The state of a restarted server: the database opened afresh, as [`Bench::open`] does,
    /// but kept as a `SqlStore` as well, to ask how its check-in cache's warm-up went. The
    /// state that enrolled the fleet should be dropped first, as a stopped server's is.
    pub fn reopen(&self, clock: Arc<dyn Clock>) -> Result<(AppState, Arc<SqlStore>)> {
        self.server_rt.block_on(async {
            let store = Arc::new(SqlStore::open(&self.settings.database_url()).await?);
            let secrets = Secrets::load_or_create(self.dir.path())?;
            let state = AppState::new(store.clone(), clock, secrets, self.settings.clone());
            Ok((state, store))
        })
    }

    /// Enrolls `count` devices on `state`'s store, as [`enroll_fleet`] says.
    pub fn enroll(&self, state: &AppState, count: u32, plans: Plans) -> Result<Vec<Device>> {
        self.server_rt.block_on(enroll_fleet(state, count, plans))
    }

    /// Starts the server on a loopback port, on the server's runtime, without the scheduler.
    pub fn serve(&self, state: AppState) -> Result<Running> {
        self.start(state, false)
    }

    /// Starts the server as `lien serve` runs it, with the scheduler and the webhook delivery
    /// worker in the background, on a loopback port, on the server's runtime.
    pub fn serve_with_workers(&self, state: AppState) -> Result<Running> {
        self.start(state, true)
    }

    fn start(&self, state: AppState, background: bool) -> Result<Running> {
        self.server_rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            start(state, listener, background).await
        })
    }

    /// Where the database and keys are.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
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
fn temp_dir(parent: Option<&Path>) -> Result<tempfile::TempDir> {
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

/// An enrolled, bound device, as its phone knows it.
#[derive(Debug, Clone)]
pub struct Device {
    /// The server's id for it.
    pub id: String,
    /// The key its requests are signed with.
    pub credential: [u8; 32],
    /// The sequence of its current token, which the phone reports as applied.
    pub sequence: i64,
    /// The state of its current token.
    pub state: String,
}

/// Which plans a bench fleet has: three monthly installments of KES 1,000.00 on the Kenya
/// preset, after a down payment.
#[derive(Debug, Clone, Copy)]
pub enum Plans {
    /// The first installment a month away: every device is active.
    Current,
    /// Two installments 60 and 30 days past due: every device is locked.
    Overdue,
    /// One device in ten with its first installment in 2 days, the others in 40: the tenth
    /// change state at one instant (the due date), before anyone's lease needs renewing.
    OneInTenSooner,
    /// One device in ten overdue (and locked) as [`Plans::Overdue`], the others current: a
    /// portfolio to search and filter.
    OneInTenOverdue,
}

impl Plans {
    fn plan(self, i: u32, today: jiff::civil::Date) -> PlanJson {
        if let Plans::OneInTenOverdue = self {
            let each = if i.is_multiple_of(10) {
                Plans::Overdue
            } else {
                Plans::Current
            };
            return each.plan(i, today);
        }
        let first: i64 = match self {
            Plans::Current | Plans::OneInTenOverdue => 30,
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
    financiers::create(state, &financier, "bench", "lien bench checkin".into()).await?;
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

/// The database a benchmark runs on, as its first line says it.
pub fn backend_name(on_postgres: bool) -> &'static str {
    if on_postgres { "PostgreSQL" } else { "SQLite" }
}

/// Device number `i`'s IMEI and serial: a made-up TAC and serial number, and the check digit
/// the IMEISV form lets Imei compute.
pub fn bench_identity(i: u32) -> Result<(Imei, String)> {
    Ok((
        Imei::from_imeisv(&format!("35209900{i:06}00"))?,
        format!("BENCH{i:07}"),
    ))
}

/// Device number `i`'s contract reference: the account number a borrower pays it under.
pub fn contract_ref(i: u32) -> String {
    format!("bench-{i:07}")
}

/// The plan's date today, in Nairobi.
fn today_of(state: &AppState) -> jiff::civil::Date {
    state
        .clock
        .now()
        .to_zoned(TimeZone::get("Africa/Nairobi").expect("Nairobi's zone is built in"))
        .date()
}

/// The Kenya preset, except for a plan already overdue, which is to start locked: an overdue
/// enrollment under the preset starts at a notice that only the phone's acknowledgement serves,
/// three days before any lock, and the benchmarks run in real time. Such a plan gets the
/// preset's lock with no notice and no quiet hours, so it is locked from its enrollment.
fn policy_for(plan: &PlanJson, today: jiff::civil::Date) -> Result<PolicyJson> {
    let overdue = plan.installments.first().is_some_and(|first| {
        first
            .due
            .parse::<jiff::civil::Date>()
            .is_ok_and(|d| d < today)
    });
    if !overdue {
        return Ok(PolicyJson::Preset("kenya".into()));
    }
    Ok(serde_json::from_value(serde_json::json!({"custom": {
        "grace_days": 0,
        "min_days_past_due": 4,
        "min_arrears_percent": 10,
        "escalations": [{"at_days_past_due": 4, "restriction": "locked"}],
        "lease_days": 10,
        "lease_warning_days": 3,
    }}))?)
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
        contract_ref: contract_ref(i),
        imei1: imei.as_str().to_string(),
        imei2: None,
        serial,
        model: "Bench Phone".into(),
        plan: plan.clone(),
        policy: policy_for(plan, today_of(state))?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_imeis_are_valid_and_distinct() {
        let (a, _) = bench_identity(1).unwrap();
        let (b, _) = bench_identity(2).unwrap();
        assert_ne!(a, b);
        assert!(Imei::parse(a.as_str()).is_ok());
    }
}
