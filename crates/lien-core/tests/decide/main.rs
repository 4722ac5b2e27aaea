//! `decide` from outside the crate: stories of one borrower each, and properties over generated
//! plans, payments, overrides, policies and instants.
//!
//! One test binary, with a module per kind of test. `properties.proptest-regressions` stays
//! beside `properties.rs`: proptest finds it by that source file's path.

mod notices;
mod properties;
mod scenarios;
