//! `lien-bench`: Lien's load generator (see the library's documentation). `lien bench ...` runs
//! this binary with the same arguments.

/// jemalloc, as the `lien` binary allocates: the benchmarks run the server in this process,
/// and the allocator decides much of what it measures (an idle push connection costs 8 KiB
/// with jemalloc against 12 with glibc's; BENCHMARKS.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match lien_bench::run(&lien_bench::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The reason and its causes, without the backtrace `Debug` adds under
            // RUST_BACKTRACE, as `lien` prints its errors.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
