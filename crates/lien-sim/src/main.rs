//! `lien-sim`: Lien's portfolio simulation (see the library's documentation). `lien simulate
//! ...` runs this binary with the same arguments.

/// jemalloc, as the `lien` binary allocates: the simulation runs the server in this process.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LIEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    let config = lien_sim::Config::parse();
    let started = Instant::now();
    match lien_sim::simulate(&config) {
        Ok(report) => {
            // The report on stdout is the same for the same seed; the time it took is not, so
            // it goes to stderr.
            print!("{}", report.text);
            eprintln!("simulated in {:.1} s", started.elapsed().as_secs_f64());
            if report.wrongful_minutes > 0 {
                ExitCode::from(2)
            } else if report.server_errors > 0 {
                eprintln!(
                    "the server failed {} phone requests: this run depends on the machine, not \
                     on its seed alone",
                    report.server_errors
                );
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
