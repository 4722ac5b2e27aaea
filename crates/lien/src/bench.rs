//! `lien bench`: runs the `lien-bench` binary, Lien's load generator, with the same arguments.
//!
//! The load generator is a crate of its own (`crates/lien-bench`) so that the binary operators
//! run carries none of it. `lien bench` stays the documented command: it looks for `lien-bench`
//! beside this executable, where `cargo build` and `cargo install` put both, and replaces this
//! process with it, so that its output, its exit status and signals are the benchmark's own.
//! Only beside it, never on the `PATH`: a load generator from another build could measure with
//! other rules than this server's.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Arguments of `lien bench`: everything after it, `--help` included, is `lien-bench`'s.
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// The benchmark and its options (`lien bench --help` lists them).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

/// How to get the load generator when it is missing.
const BUILD_IT: &str = "build it with `cargo build --release -p lien-bench` (it lands beside \
                        `lien` in target/release)";

/// Runs `lien-bench` with `args`; on Unix this process becomes it and never returns on success.
pub fn run(args: &Args) -> Result<()> {
    let program = lien_bench()?;
    let mut command = Command::new(&program);
    command.args(&args.args);
    let starting = || format!("starting {}", program.display());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        // `exec` returns only when it failed.
        Err(command.exec()).with_context(starting)
    }
    #[cfg(not(unix))]
    {
        let status = command.status().with_context(starting)?;
        std::process::exit(status.code().unwrap_or(1));
    }
}

/// The `lien-bench` beside this executable.
fn lien_bench() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the lien binary")?;
    let program = exe.with_file_name(format!("lien-bench{}", std::env::consts::EXE_SUFFIX));
    if !program.is_file() {
        bail!(
            "`lien bench` runs the load generator, `lien-bench`, which is not beside {}: {BUILD_IT}",
            exe.display()
        );
    }
    Ok(program)
}
