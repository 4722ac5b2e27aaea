//! The built `lien` binary, run as a user runs it: its commands, and `lien phone` against a
//! server started in the test.
//!
//! One test binary, with a module per concern.

mod commands;
mod crash;
mod phone;
mod webhooks;
