//! Runs a companion binary that lives beside `lien`, with `lien`'s arguments.
//!
//! The load generator (`lien-bench`) and the portfolio simulation (`lien-sim`) are crates of
//! their own so that the binary operators run carries none of them. `lien bench` and
//! `lien simulate` stay the documented commands: each looks for its program beside this
//! executable, where `cargo build` and `cargo install` put both, and replaces this process with
//! it, so that its output, its exit status and signals are the program's own. Only beside it,
//! never on the `PATH`: a companion from another build could measure or judge with other rules
//! than this server's.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Arguments handed on whole: everything after the subcommand, `--help` included, is the
/// companion's.
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// The companion's arguments (`--help` lists them).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<OsString>,
}

/// A companion binary: its file name, what `lien` calls it, and how to build it.
pub struct Companion {
    /// The executable's name without the platform's suffix (`lien-bench`).
    pub program: &'static str,
    /// The subcommand that runs it (`bench`), for the error message.
    pub command: &'static str,
    /// What it is (`the load generator`), for the error message.
    pub what: &'static str,
}

impl Companion {
    /// Runs the companion with `args`; on Unix this process becomes it and never returns on
    /// success.
    pub fn run(&self, args: &Args) -> Result<()> {
        let program = self.find()?;
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

    /// The companion beside this executable.
    fn find(&self) -> Result<PathBuf> {
        let exe = std::env::current_exe().context("finding the lien binary")?;
        let program =
            exe.with_file_name(format!("{}{}", self.program, std::env::consts::EXE_SUFFIX));
        if !program.is_file() {
            bail!(
                "`lien {}` runs {}, `{}`, which is not beside {}: build it with `cargo build \
                 --release -p {}` (it lands beside `lien` in target/release)",
                self.command,
                self.what,
                self.program,
                exe.display(),
                self.program,
            );
        }
        Ok(program)
    }
}
