//! `idle-connections`: what an idle push connection costs the server in memory.
//!
//! The server runs in this process (see `setup`) and the phones in a child process (see
//! `phones`), so that the resident-set difference is the server's alone and each connection
//! costs one descriptor here rather than two. The binary allocates as `lien` does (jemalloc),
//! since the allocator decides much of the figure (BENCHMARKS.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, ensure};

use crate::http::{Conn, checkin_request};
use crate::phones::{Phones, phones_process};
use crate::procfs::{open_files, open_files_limit, rss_kib};
use crate::push::PushBench;
use crate::setup::Plans;

/// Arguments of `idle-connections`.
#[derive(Debug, clap::Args)]
pub struct IdleArgs {
    /// Idle push connections to open (one per enrolled device). The phones run in a child
    /// process, so each costs one file descriptor in the server's process; fewer are opened
    /// when the soft limit on open files (`ulimit -n`) leaves no room for them all.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    connections: u32,
    /// Where to create the temporary directory holding the database and keys.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Internal: run as the phones' process for a server at this address, with the devices
    /// read from standard input.
    #[arg(long, hide = true)]
    phones_for: Option<SocketAddr>,
}

/// Descriptors the server's process keeps for itself besides the push connections: standard
/// streams, the listener, the database's files, the runtime's, the pipes to the phones'
/// process. About 30 are open at the measurement; the rest is headroom.
const SERVER_FDS: u32 = 100;

/// Runs the benchmark, or, with `--phones-for`, its phones' process.
pub fn idle_connections(args: &IdleArgs) -> Result<()> {
    if let Some(server) = args.phones_for {
        return phones_process(server, None);
    }
    let limit = open_files_limit()?;
    let connections = match limit {
        Some(limit) => args.connections.min(limit.saturating_sub(SERVER_FDS)),
        None => args.connections,
    };
    ensure!(
        connections > 0,
        "the soft limit on open files ({limit:?}) leaves no room for connections"
    );
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "lien bench idle-connections: {connections} push connections on SQLite, the phones \
         in a separate process, {cpus} CPUs"
    );
    if connections < args.connections {
        println!(
            "  ({connections} rather than {}: the soft limit on open files is {}, and the \
             server's process keeps {SERVER_FDS} of them for itself)",
            args.connections,
            limit.unwrap_or_default()
        );
    }
    let bench = PushBench::start(connections, Plans::Current, args.data_dir.as_deref(), None)?;
    let server = bench.server.addr;
    // One round of check-ins first, so that the check-in cache and the pools are as warm
    // before the connections as after them and only the connections make the difference.
    bench.bench.load_rt.block_on(async {
        let sent_at = jiff::Timestamp::now().as_second();
        let mut conn = Conn::open(server).await?;
        for device in bench.fleet.iter() {
            let (status, _) = conn.exchange(&checkin_request(device, sent_at)).await?;
            ensure!(status == 200, "a warm-up check-in failed: {status}");
        }
        anyhow::Ok(())
    })?;

    // The phones' process gets its devices before the first measurement, so that nothing
    // this process allocates for it falls between the two.
    let mut phones = Phones::spawn(server, &bench.fleet, &["idle-connections"])?;
    std::thread::sleep(Duration::from_secs(2));
    let before = rss_kib()?;
    let open_secs = phones.open()?;
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_kib()?;
    let fds = open_files()?;
    let open = bench.server.state.push.devices();
    ensure!(
        open == bench.fleet.len(),
        "{open} channels open on the server, expected {}",
        bench.fleet.len()
    );
    phones.stop()?;

    let per = (after.saturating_sub(before)) as f64 / open as f64;
    println!("opened {open} push connections in {open_secs:.1} s");
    println!(
        "server's resident set: {before} KiB before, {after} KiB with the connections open \
         ({fds} descriptors open)"
    );
    println!(
        "per idle connection: {per:.1} KiB in the server's process (target under 16 KiB: {})",
        if per < 16.0 { "met" } else { "missed" }
    );
    drop(bench);
    Ok(())
}
