//! `lien-sim` (and `lien simulate`, which runs it): a deterministic simulation of a whole
//! financed-phone portfolio, in the spirit of FoundationDB's and TigerBeetle's, and an oracle
//! that judges it (issue 21).
//!
//! One seed draws a portfolio (`scenario`): borrowers on the presets, in their time zones, who
//! pay on time, late, in part, twice, get charged back, are paused for hardship and unlocked
//! on appeal, appeal from the borrower's page (a dispute freeze, answered by support), are
//! locked by hand and unlocked, pay off; phones that go offline for hours or weeks, have their
//! wall clock moved, are factory-reset and get new SIM cards; callbacks that come late, out of order and twice; server restarts.
//! The run (`run`) feeds it to the real server in this process, in virtual time: the real
//! store (SQLite in a temporary directory, or PostgreSQL), the commands layer, the scheduler,
//! token signing, and each phone's real agent (`phone`) talking to the real router
//! (`transport`). The oracle (`oracle`), written apart from `lien_core::decide`, says from each
//! borrower's ground truth when their phone may be restricted; `measure` holds what each
//! phone showed against it, and `report` prints the figures. The same seed gives the same
//! report, byte for byte (on SQLite).
//!
//! It is a crate of its own, as the load generator is, so that the binary operators run
//! carries none of it.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use jiff::tz::TimeZone;

pub mod measure;
pub mod oracle;
pub mod overrides;
pub mod phone;
pub mod run;
pub mod scenario;
pub mod server;
pub mod transport;

use measure::{Figures, Link};

/// A deliberately planted bug, to show that the oracle catches wrongful locks. Only tests
/// and `--plant` use one; it alters what the simulation feeds the server, never the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Fault {
    /// None: the real run.
    #[default]
    None,
    /// Each device is enrolled with its preset's settings but no quiet hours, while the
    /// oracle keeps the preset's.
    QuietHoursDropped,
}

/// Lien's portfolio simulation: the real server, store, scheduler and phone agents in virtual
/// time, judged by an oracle. `lien simulate ...` runs it with the same arguments.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "lien-sim", version)]
pub struct Config {
    /// The seed: the same seed gives the same run and the same report.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How many financed devices.
    #[arg(long, default_value_t = 1000)]
    pub devices: u32,
    /// How many days of virtual time.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Run on this PostgreSQL database instead of SQLite in a temporary directory (the push
    /// feed then arrives asynchronously, so the report may differ from run to run).
    #[arg(long, env = "LIEN_SIM_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Where the temporary directory goes: by default `/dev/shm` where there is one (the
    /// simulation judges rules, not disks, and a commit's `fsync` per step would dominate its
    /// time), else the system's temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The shortest step of virtual time, in minutes: everything due within one step happens
    /// at its end (payments, check-ins, the scheduler), and the report's minutes are counted
    /// on this grid.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub step_minutes: u32,
    /// Plant a bug to show the oracle catches it (for tests).
    #[arg(long, value_enum, default_value_t = Fault::None, hide = true)]
    pub plant: Fault,
    /// How many wrongful devices' timelines to print (those with the most minutes).
    #[arg(long, default_value_t = 3)]
    pub timelines: usize,
    /// Print this device's requests to standard error, to see why it did what it did.
    #[arg(long, hide = true)]
    pub trace: Option<u32>,
    /// Also print these devices' timelines.
    #[arg(long, value_delimiter = ',')]
    pub show: Vec<u32>,
}

/// The run's figures and its printed report.
#[derive(Debug, Clone)]
pub struct Report {
    /// Wrongful restriction minutes, token and lease locks together.
    pub wrongful_minutes: i64,
    /// Devices with any.
    pub wrongful_devices: u64,
    /// Wrongful minutes by what the oracle said held the phone when each wrongful
    /// restriction began.
    pub wrongful_by: std::collections::BTreeMap<oracle::Why, i64>,
    /// Late unlock minutes.
    pub late_unlock_minutes: i64,
    /// Missed enforcement minutes, and devices.
    pub missed_minutes: i64,
    /// Devices with missed enforcement.
    pub missed_devices: u64,
    /// Answers of the server's own failure (5xx) to phones: must be 0 for the run to depend on
    /// its seed alone.
    pub server_errors: u64,
    /// What the run did: events fed, commands refused.
    pub counts: run::Counts,
    /// The report, as printed.
    pub text: String,
}

/// Runs the simulation `config` describes and reports.
pub fn simulate(config: &Config) -> Result<Report> {
    let runtime = if std::env::var_os("LIEN_SIM_ONE_THREAD").is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
    };
    runtime.block_on(simulate_async(config))
}

/// [`simulate`], on the caller's runtime.
pub async fn simulate_async(config: &Config) -> Result<Report> {
    let scenario = scenario::draw(config.seed, config.devices, config.days);
    let outcome = run::run(config, &scenario).await?;
    Ok(report(config, &scenario, &outcome))
}

/// One device held against the oracle: its zone, what the oracle allowed, and the figures.
struct Judged {
    tz: TimeZone,
    allowed: oracle::Allowed,
    f: Figures,
}

/// Holds device `i`'s timeline against the oracle's answer for its borrower.
fn judge(scenario: &scenario::Scenario, outcome: &run::Outcome, i: usize) -> Judged {
    let borrower = &scenario.borrowers[i];
    let settings = borrower.preset.settings();
    let tz = TimeZone::get(borrower.time_zone).expect("a bundled zone");
    let (truth, phone) = (&outcome.truths[i], &outcome.phones[i]);
    let (start, end) = (scenario.start, scenario.end);
    let allowed = measure::oracle_for(borrower, &settings, &tz, truth, phone, start, end);
    let f = measure::measure(&settings, &allowed, truth, phone, start, end);
    Judged { tz, allowed, f }
}

fn report(config: &Config, scenario: &scenario::Scenario, outcome: &run::Outcome) -> Report {
    let mut all = Figures::default();
    let mut wrongful_devices = 0u64;
    let mut missed_devices = 0u64;
    let mut stories = Vec::new();
    let mut late_list = Vec::new();
    let mut slowest = std::collections::BTreeMap::<String, (i64, usize)>::new();
    let mut missed_list = Vec::new();
    let mut by_preset = std::collections::BTreeMap::<&str, u64>::new();
    let mut by_habit = std::collections::BTreeMap::<&str, u64>::new();
    for (i, borrower) in scenario.borrowers.iter().enumerate() {
        *by_preset.entry(borrower.preset.name()).or_default() += 1;
        *by_habit.entry(borrower.habit.name()).or_default() += 1;
        let Judged { f, .. } = judge(scenario, outcome, i);
        if f.wrongful + f.wrongful_lease > 0 {
            wrongful_devices += 1;
            stories.push((-(f.wrongful + f.wrongful_lease), i));
        } else if config.show.contains(&(i as u32)) {
            stories.push((0, i));
        }
        if f.missed > 0 {
            missed_devices += 1;
            if missed_list.len() < 10 {
                missed_list.push(i);
            }
        }
        if f.late_unlock > 0 && late_list.len() < 10 {
            late_list.push(i);
        }
        all.wrongful += f.wrongful;
        for (why, minutes) in &f.wrongful_by {
            *all.wrongful_by.entry(*why).or_default() += minutes;
        }
        all.wrongful_lease += f.wrongful_lease;
        all.late_unlock += f.late_unlock;
        all.waiting += f.waiting;
        all.missed += f.missed;
        for (link, minutes) in &f.unlocks {
            let slot = slowest.entry(format!("{link:?}")).or_insert((0, 0));
            if *minutes > slot.0 {
                *slot = (*minutes, i);
            }
        }
        all.unlocks.extend(f.unlocks);
        all.override_unlocks += f.override_unlocks;
        all.unresolved += f.unresolved;
        all.restricted += f.restricted;
        all.lease_locked += f.lease_locked;
    }
    let c = &outcome.counts;
    let requests: u64 = outcome.phones.iter().map(|p| p.requests).sum();
    let server_errors: u64 = outcome.phones.iter().map(|p| p.server_errors).sum();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "lien simulate: seed {}, {} devices, {} days ({} device-days), {}",
        config.seed,
        config.devices,
        config.days,
        u64::from(config.devices) * u64::from(config.days),
        if config.database_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    if config.plant != Fault::None {
        let _ = writeln!(t, "planted bug: {:?}", config.plant);
    }
    let list = |m: &std::collections::BTreeMap<&str, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(t, "presets: {}", list(&by_preset));
    let _ = writeln!(t, "borrowers: {}", list(&by_habit));
    let _ = writeln!(
        t,
        "events: {} payments ({} callbacks late, {} repeated, {} repeats applied), {} chargebacks, \
         hardship pauses {} granted {} refused, provisional unlocks {} granted {} refused",
        c.payments,
        c.late_callbacks,
        c.duplicates,
        c.duplicates_applied,
        c.reversals,
        c.pauses.0,
        c.pauses.1,
        c.provisional_unlocks.0,
        c.provisional_unlocks.1
    );
    let (a, f) = (&c.appeals, &c.financier);
    let _ = writeln!(
        t,
        "disputes: {} appeals opened ({} paid, {} owner, {} wrong lock; {} promising a \
         provisional unlock at the deadline), {} not opened ({} for want of a status code on the screen), \
         {} answered ({} accepted, {} rejected); manual locks {} placed, {} lifted; SIM changes \
         {} on phones, {} accepted, {} acceptances refused",
        a.opened.0 + a.opened.1 + a.opened.2,
        a.opened.0,
        a.opened.1,
        a.opened.2,
        a.unlock_promised,
        a.no_code + a.refused,
        a.no_code,
        a.answered.0 + a.answered.1,
        a.answered.0,
        a.answered.1,
        f.manual_locks.0,
        f.manual_locks.1,
        f.sim_changes,
        f.sim_accepted.0,
        f.sim_accepted.1
    );
    let _ = writeln!(
        t,
        "phones: {} offline spells, {} wall-clock changes, {} factory resets, {} requests \
         ({} answered with a server error); server: {} restarts, {} scheduled evaluations, {} steps",
        c.offline_spells,
        c.wall_clock_changes,
        c.factory_resets,
        requests,
        server_errors,
        c.restarts,
        c.scheduled,
        c.steps
    );
    let _ = writeln!(
        t,
        "commands refused: {}{}",
        c.refusals,
        if c.refused.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                c.refused
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        }
    );
    let _ = writeln!(
        t,
        "restricted or locked: {} device-minutes, of which {} locked by the lease",
        all.restricted, all.lease_locked
    );
    let _ = writeln!(
        t,
        "wrongful restriction minutes: {} ({} devices; {} of them lease locks too soon)",
        all.wrongful + all.wrongful_lease,
        wrongful_devices,
        all.wrongful_lease
    );
    if !all.wrongful_by.is_empty() {
        let _ = writeln!(
            t,
            "  wrongful minutes by what the oracle said held the phone: {}",
            all.wrongful_by
                .iter()
                .map(|(why, m)| format!("{} {m}", why.name()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(
        t,
        "late unlock minutes: {} (and {} minutes waiting for the phone to hear: offline, or its \
         next check-in)",
        all.late_unlock, all.waiting
    );
    let _ = writeln!(
        t,
        "missed enforcement: {} minutes ({} devices open past a lease and a day of allowed \
         restriction)",
        all.missed, missed_devices
    );
    let _ = writeln!(
        t,
        "payment to unlock (minutes of virtual time, on a grid of {} min):",
        config.step_minutes
    );
    for (link, name) in [
        (Link::Push, "online, push"),
        (Link::CheckinOnly, "online, check-ins only"),
        (Link::Offline, "offline"),
    ] {
        let mut samples: Vec<i64> = all
            .unlocks
            .iter()
            .filter(|(l, _)| *l == link)
            .map(|(_, m)| *m)
            .collect();
        samples.sort_unstable();
        let _ = writeln!(t, "  {name:<24} {}", distribution(&samples));
    }
    let _ = writeln!(
        t,
        "  lifted by an override (a pause, a provisional unlock, a manual unlock, an accepted \
         SIM change): {}; still restricted at the end after a cure: {}",
        all.override_unlocks, all.unresolved
    );
    let _ = writeln!(
        t,
        "  slowest: {}",
        slowest
            .iter()
            .map(|(link, (m, i))| format!("{link} {m} min (device {i})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let ids = |list: &[usize]| {
        list.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    if !late_list.is_empty() || !missed_list.is_empty() {
        let _ = writeln!(
            t,
            "devices with late unlocks: [{}]; with missed enforcement: [{}] (first ten; --show \
             prints their timelines)",
            ids(&late_list),
            ids(&missed_list)
        );
    }
    // The devices with the most wrongful minutes first, and any asked for.
    stories.sort_unstable();
    let shown = stories
        .iter()
        .filter(|(_, i)| config.show.contains(&(*i as u32)))
        .chain(stories.iter().take(config.timelines))
        .map(|(_, i)| *i);
    for i in shown {
        let borrower = &scenario.borrowers[i];
        let (truth, phone) = (&outcome.truths[i], &outcome.phones[i]);
        let Judged { tz, allowed, f } = judge(scenario, outcome, i);
        t.push_str(&measure::timeline(&measure::Story {
            seed: config.seed,
            device: i as u32,
            borrower,
            tz: &tz,
            allowed: &allowed,
            truth,
            phone,
            figures: &f,
        }));
    }
    Report {
        wrongful_minutes: all.wrongful + all.wrongful_lease,
        wrongful_devices,
        wrongful_by: all.wrongful_by.clone(),
        late_unlock_minutes: all.late_unlock,
        missed_minutes: all.missed,
        missed_devices,
        server_errors,
        counts: outcome.counts.clone(),
        text: t,
    }
}

/// `n`, p50, p90, p99 and max of sorted samples (nearest rank).
fn distribution(sorted: &[i64]) -> String {
    if sorted.is_empty() {
        return "n 0".into();
    }
    let rank = |p: usize| sorted[((sorted.len() * p).div_ceil(100)).max(1) - 1];
    format!(
        "n {:>6}  p50 {:>5}  p90 {:>5}  p99 {:>5}  max {:>5}",
        sorted.len(),
        rank(50),
        rank(90),
        rank(99),
        sorted[sorted.len() - 1]
    )
}
