//! The simulation in the test suite: a small seeded portfolio on the real server and phones,
//! judged by the oracle. Small, so that it takes seconds in a debug build.

use lien_sim::oracle::Why;
use lien_sim::{Config, Fault, Report, simulate};

fn config(seed: u64, plant: Fault) -> Config {
    Config {
        seed,
        devices: 60,
        days: 14,
        database_url: None,
        data_dir: None,
        step_minutes: 1,
        plant,
        timelines: 3,
        show: Vec::new(),
        trace: None,
    }
}

fn run(seed: u64, plant: Fault) -> Report {
    simulate(&config(seed, plant)).expect("the simulation runs")
}

#[test]
fn a_seeded_portfolio_has_no_wrongful_restriction_and_the_same_seed_the_same_report() {
    let first = run(7, Fault::None);
    assert_eq!(first.wrongful_minutes, 0, "{}", first.text);
    assert_eq!(first.missed_minutes, 0, "{}", first.text);
    assert_eq!(first.server_errors, 0, "{}", first.text);
    // The portfolio held appeals, manual locks and SIM changes, and the server took them.
    let c = &first.counts;
    let (paid, owner, wrong_lock) = c.appeals.opened;
    assert!(paid + owner + wrong_lock > 0, "{}", first.text);
    assert!(
        c.appeals.answered.0 + c.appeals.answered.1 > 0,
        "{}",
        first.text
    );
    assert!(c.financier.manual_locks.0 > 0, "{}", first.text);
    assert!(c.financier.manual_locks.1 > 0, "{}", first.text);
    assert!(c.financier.sim_accepted.0 > 0, "{}", first.text);
    assert_eq!(c.refusals, 0, "{}", first.text);
    let second = run(7, Fault::None);
    assert_eq!(first.text, second.text);
}

#[test]
fn the_same_seed_gives_the_same_report_byte_for_byte() {
    let first = run(11, Fault::None);
    let second = run(11, Fault::None);
    assert_eq!(first.text, second.text);
    // The run did something worth comparing.
    assert!(first.text.contains("payments"), "{}", first.text);
}

#[test]
fn the_oracle_catches_locks_in_the_quiet_hours_when_the_server_is_fed_no_quiet_hours() {
    let honest = run(7, Fault::None);
    let planted = run(7, Fault::QuietHoursDropped);
    let quiet = |r: &Report| r.wrongful_by.get(&Why::Quiet).copied().unwrap_or(0);
    assert!(
        planted.wrongful_minutes > honest.wrongful_minutes && quiet(&planted) > quiet(&honest),
        "planted:\n{}\nhonest:\n{}",
        planted.text,
        honest.text
    );
    assert!(
        planted.text.contains("timeline: seed 7, device"),
        "{}",
        planted.text
    );
}
