//! `decide` from outside the crate: stories of one borrower each, and properties over generated
//! plans, payments, overrides, policies and instants.
//!
//! One test binary, with a module per kind of test. `properties.proptest-regressions` stays
//! beside `properties.rs`: proptest finds it by that source file's path.

mod notices;
mod properties;
mod scenarios;

use lien_core::{PayoffRelease, PolicySettings, SimChangeRule};

/// Settings with nothing in them but a week's lease: no grace, notices, escalations or quiet
/// hours, no offers to the borrower (emergency use, hardship, restructuring), an automatic
/// release at payoff. A test names what it is about over them.
fn plain_settings() -> PolicySettings {
    PolicySettings {
        grace_days: 0,
        min_days_past_due: 0,
        min_arrears_percent: 0,
        notices: vec![],
        escalations: vec![],
        lease_days: 7,
        lease_warning_days: 2,
        quiet_hours: None,
        release_at_payoff: PayoffRelease::Automatic,
        unlock_promise: None,
        emergency_use_hours: 0,
        emergency_use_every_days: 0,
        hardship_days_per_year: 0,
        hardship_auto_grant_days: 0,
        restructure_max_fee_percent: 0,
        restructure_by_support: false,
        notice_fallback_days: Some(0),
        remind_days_before: 0,
        sim_change: SimChangeRule::Ignore,
    }
}
