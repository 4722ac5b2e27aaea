//! The `lien` command line: one binary for every way of running Lien.
//!
//! Each subcommand lives in its own module with its own `Args` and `run`, so that adding one
//! (the server's `serve`, admin commands, the phone simulator) means adding a module and a
//! variant of [`Command`], without touching the others.

/// jemalloc rather than the system's allocator: the scheduler and check-ins allocate many
/// short-lived buffers, on which glibc's spent a sixth of the CPU; and an idle push connection
/// costs 8 KiB with it against 12 with glibc's (mimalloc was as fast, but 20 KiB).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

mod admin_key;
mod bench;
mod beside;
mod imei;
mod phone;
mod policy;
mod serve;
mod simulate;

/// Lien: the platform behind financed phones' lock screens.
#[derive(Debug, Parser)]
#[command(
    version,
    // The template puts the name and version first, so that `lien` alone says which build
    // it is as well as what it can do.
    help_template = "{name} {version}\n{about-with-newline}\n{usage-heading} {usage}\n\n{all-args}{after-help}"
)]
struct Cli {
    /// What to do. Optional so that `lien` alone prints help and succeeds; clap's
    /// `arg_required_else_help` would exit with status 2, which scripts read as a failure.
    #[command(subcommand)]
    command: Option<Command>,
}

/// The subcommands, one module each.
#[derive(Debug, Subcommand)]
enum Command {
    /// Platform admin API keys, straight from the database: create one for an operator who lost
    /// theirs, list the platform's keys, revoke one. Same settings as `serve`; on SQLite, stop
    /// the server first (one process holds the database).
    #[command(name = "admin-key", subcommand)]
    AdminKey(admin_key::Command),
    /// Measure the server (runs `lien-bench`, built with `cargo build --release -p lien-bench`):
    /// `lien bench checkin` holds device check-ins against a bare HTTP responder in the same run;
    /// `lien bench --help` lists the others.
    Bench(beside::Args),
    /// Check an IMEI (or a 16-digit IMEISV) and show its normalised form and TAC.
    Imei(imei::Args),
    /// Run a simulated phone against a server: its lock screen in the terminal, commands
    /// (check, code, reset, reflash, offline, clock, advance, state) on standard input.
    Phone(phone::Args),
    /// List the lock policy presets, or show one preset's settings.
    Policy(policy::Args),
    /// Run the server: financier API, device endpoints and scheduler (SQLite by default).
    Serve(serve::Args),
    /// Simulate a whole portfolio in virtual time (runs `lien-sim`, built with `cargo build
    /// --release -p lien-sim`): `lien simulate --seed 1 --devices 10000 --days 100` reports
    /// wrongful restriction minutes, late unlocks and payment-to-unlock times.
    Simulate(beside::Args),
}

fn main() -> ExitCode {
    // Before any HTTP client is built (`lien phone`'s, the server's webhook client).
    lien_server::tls::install_crypto_provider();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Printed here rather than by returning the error from `main`, whose `Debug`
            // output adds a backtrace when RUST_BACKTRACE is set: users need the reason and
            // its causes, not our stack.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen subcommand.
fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => {
            Cli::command().print_help()?;
            Ok(())
        }
        Some(Command::AdminKey(command)) => admin_key::run(command),
        Some(Command::Bench(args)) => bench::LIEN_BENCH.run(&args),
        Some(Command::Imei(args)) => imei::run(&args),
        Some(Command::Phone(args)) => phone::run(args),
        Some(Command::Policy(args)) => policy::run(&args),
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Simulate(args)) => simulate::LIEN_SIM.run(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        // Clap checks for clashing names and bad attributes only when asked, or at run time.
        Cli::command().debug_assert();
    }
}
