//! `lien bench payment-to-unlock` and `lien bench idle-connections`: the push channel.
//!
//! Both run the real server (`lien_server::app::start`, as `lien serve` without the scheduler)
//! on a fresh database in this process, and their push-connected phones in a child process
//! (this binary again, with `--phones-for`): the server's process then holds only the server's
//! side of each connection, one file descriptor rather than two, and its resident set is the
//! server's alone. `payment-to-unlock` sends its payments, and runs its check-in phase, from a
//! thread of its own in this process.
//! The phones are minimal: each holds one push connection (raw HTTP/1.1 over tokio's
//! `TcpStream`), verifies every pushed token against the server's pinned key exactly as the
//! agent does (`PinnedKeys::verify`), and counts the unlock as applied when a verified token
//! of a newer sequence says neither locked nor restricted. `BENCHMARKS.md` records the method
//! and the results.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lien_proto::device_api::{CheckinResponse, PUSH_PATH};
use lien_proto::{PinnedKeys, TokenState};
use lien_server::app::{AppState, Running, start};
use lien_server::clock::SystemClock;
use lien_server::config::Settings;
use lien_server::routes::sign_checkin;
use lien_server::secrets::Secrets;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinSet;

use super::{Conn, Device, Plans, XorShift, checkin_request, enroll_fleet, init_logging, temp_dir};

/// Arguments of `lien bench payment-to-unlock`.
#[derive(Debug, clap::Args)]
pub struct PaymentArgs {
    /// Phones connected by push (all enrolled overdue, so locked).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(2..=60_000))]
    phones: u32,
    /// Payments in each of the two phases, each for a different phone (at most half the phones).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    payments: u32,
    /// Payments per second, at a steady rate.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    rate: u32,
    /// The check-in interval of the phones in the push-off phase, in seconds (a real phone's
    /// is the server's, six hours; latency at the next check-in scales with it).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    checkin_seconds: u64,
    /// Skip the push-off phase.
    #[arg(long)]
    push_only: bool,
    /// Where to create the temporary directory holding the database and keys.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL database to run on instead of a new SQLite file. It must be empty: the
    /// benchmark creates its tables and enrolls into it.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Internal: run as the phones' process for a server at this address, with the devices
    /// read from standard input and tokens verified against `--pinned-key`.
    #[arg(long, hide = true, requires = "pinned_key")]
    phones_for: Option<SocketAddr>,
    /// Internal: the server's token key, for the phones' process (base64).
    #[arg(long, hide = true)]
    pinned_key: Option<String>,
}

/// Arguments of `lien bench idle-connections`.
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

/// The server and the two runtimes of a push benchmark.
struct Bench {
    // Dropped in this order: the server, its runtime, then the database's directory.
    server: Running,
    _server_rt: tokio::runtime::Runtime,
    load_rt: tokio::runtime::Runtime,
    fleet: Vec<Device>,
    pinned: PinnedKeys,
    /// The server's token key, which `pinned` holds, for the phones' process.
    pinned_key: ed25519_dalek::VerifyingKey,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn start(
        devices: u32,
        plans: Plans,
        data_dir: Option<&std::path::Path>,
        database_url: Option<String>,
    ) -> Result<Bench> {
        init_logging();
        let dir = temp_dir(data_dir)?;
        let server_rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let load_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let settings = Settings {
            data_dir: dir.path().to_path_buf(),
            database_url,
            ..Settings::default()
        };
        let state = server_rt.block_on(async {
            let store = lien_server::open_store(&settings).await?;
            let secrets = Secrets::load_or_create(dir.path())?;
            anyhow::Ok(AppState::new(
                store,
                Arc::new(SystemClock),
                secrets,
                settings,
            ))
        })?;
        let pinned_key = state.signer.verifying_key();
        let pinned = PinnedKeys::new([pinned_key]);
        let started = Instant::now();
        let fleet = server_rt.block_on(enroll_fleet(&state, devices, plans))?;
        let setup = started.elapsed();
        let locked = fleet.iter().filter(|d| d.state == "locked").count();
        println!(
            "setup: enrolled and bound {} devices in {:.1} s ({locked} locked)",
            fleet.len(),
            setup.as_secs_f64(),
        );
        let server = server_rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            start(state, listener, false).await
        })?;
        Ok(Bench {
            _dir: dir,
            _server_rt: server_rt,
            load_rt,
            server,
            fleet,
            pinned,
            pinned_key,
        })
    }
}

/// The source address of connection `n`: connections are spread over 127.0.0.1 to
/// 127.0.0.8 so that their ephemeral ports never run out (about 28,000 per source address).
fn source(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (n % 8) as u8))
}

async fn connect_from(local: IpAddr, server: SocketAddr) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(local, 0))?;
    let stream = socket.connect(server).await.with_context(|| {
        format!("connecting to {server} (if this is EMFILE, raise `ulimit -n`)")
    })?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A push request for `device`, signed now, as raw HTTP/1.1 bytes.
fn push_request(device: &Device) -> Vec<u8> {
    let body = format!(
        r#"{{"sent_at":{},"counter":{},"applied_sequence":{}}}"#,
        jiff::Timestamp::now().as_second(),
        super::next_counter(),
        device.sequence
    );
    let signature = sign_checkin(&device.credential, body.as_bytes());
    format!(
        "POST {PUSH_PATH} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nx-lien-device: {}\r\nx-lien-signature: {signature}\r\n\r\n{body}",
        body.len(),
        device.id
    )
    .into_bytes()
}

/// An open push channel, read without de-chunking: the server writes each event as one chunk,
/// so an event's `data:` line is never split by chunk framing, only by TCP reads.
struct PushConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl PushConn {
    async fn open(local: IpAddr, server: SocketAddr, device: &Device) -> Result<PushConn> {
        let mut stream = connect_from(local, server).await?;
        stream.write_all(&push_request(device)).await?;
        let mut conn = PushConn {
            stream,
            buf: Vec::with_capacity(1024),
        };
        let end = loop {
            if let Some(end) = conn.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            conn.fill().await?;
        };
        let head = String::from_utf8_lossy(&conn.buf[..end]).into_owned();
        ensure!(
            head.starts_with("HTTP/1.1 200"),
            "the push channel was refused: {head}"
        );
        conn.buf.drain(..end + 4);
        Ok(conn)
    }

    async fn fill(&mut self) -> Result<()> {
        let read = self.stream.read_buf(&mut self.buf).await?;
        ensure!(read > 0, "the server closed the push channel");
        Ok(())
    }

    /// The next pushed answer.
    async fn next(&mut self) -> Result<CheckinResponse> {
        loop {
            if let Some(start) = self.buf.windows(6).position(|w| w == b"data: ")
                && let Some(len) = self.buf[start..].iter().position(|&b| b == b'\n')
            {
                let line = &self.buf[start + 6..start + len];
                let answer = serde_json::from_slice(line).context("a pushed event's data")?;
                self.buf.drain(..start + len);
                return Ok(answer);
            }
            self.fill().await?;
        }
    }
}

/// Verifies a token as a phone does; returns whether it unlocks (sequence above `sequence`,
/// neither locked nor restricted).
fn unlocks(pinned: &PinnedKeys, device: &Device, token: &str) -> Result<bool> {
    let bytes = STANDARD.decode(token).context("a token is base64")?;
    let claims = pinned
        .verify(&bytes, &device.id, device.sequence as u64)
        .map_err(|e| anyhow::anyhow!("a token was refused: {}", e.code()))?;
    Ok(claims.sequence > device.sequence as u64
        && !matches!(claims.state, TokenState::Locked | TokenState::Restricted))
}

/// Sends one payment per device in `devices`, at `rate` per second, over a few keep-alive
/// connections, recording each 2xx in `paid`.
async fn pay_all(
    server: SocketAddr,
    key: String,
    devices: Vec<(usize, String)>,
    rate: u32,
    paid: Arc<Vec<OnceLock<Instant>>>,
) -> Result<()> {
    const CONNECTIONS: usize = 8;
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut tasks = JoinSet::new();
    for c in 0..CONNECTIONS {
        let mine: Vec<(usize, (usize, String))> = devices
            .iter()
            .cloned()
            .enumerate()
            .filter(|(k, _)| k % CONNECTIONS == c)
            .collect();
        let key = key.clone();
        let paid = paid.clone();
        tasks.spawn(async move {
            let mut conn = Conn::open(server).await?;
            for (k, (index, id)) in mine {
                tokio::time::sleep_until((started + interval * k as u32).into()).await;
                let body = r#"{"reference":"BENCH-PAY","amount_minor":200000,"currency":"KES"}"#;
                let request = format!(
                    "POST /v1/devices/{id}/payments HTTP/1.1\r\nhost: 127.0.0.1\r\n\
                     authorization: Bearer {key}\r\ncontent-type: application/json\r\n\
                     idempotency-key: pay-{id}\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let (status, answer) = conn.exchange(request.as_bytes()).await?;
                let at = Instant::now();
                ensure!(
                    status == 200,
                    "a payment failed: {status} {}",
                    String::from_utf8_lossy(answer)
                );
                let _ = paid[index].set(at);
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(())
}

/// A financier-admin API key for the bench's financier, through the API.
async fn financier_key(bench: &Bench) -> Result<String> {
    let admin = lien_server::create_platform_admin(&bench.server.state).await?;
    let body = r#"{"role":"financier-admin","label":"bench"}"#;
    let request = format!(
        "POST /v1/financiers/fin_bench/api-keys HTTP/1.1\r\nhost: 127.0.0.1\r\n\
         authorization: Bearer {admin}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut conn = Conn::open(bench.server.addr).await?;
    let (status, answer) = conn.exchange(request.as_bytes()).await?;
    ensure!(
        status == 201,
        "creating a key failed: {status} {}",
        String::from_utf8_lossy(answer)
    );
    let value: serde_json::Value = serde_json::from_slice(answer)?;
    value["key"]
        .as_str()
        .map(str::to_string)
        .context("the answer has a key")
}

/// Latencies in milliseconds from `paid` to `applied`, sorted; and how many phones had the
/// token before the payer had the 2xx (counted as 0 ms).
fn latencies(
    indices: &[usize],
    paid: &[OnceLock<Instant>],
    applied: &[OnceLock<Instant>],
) -> Result<(Vec<f64>, usize)> {
    let mut early = 0;
    let mut out = Vec::with_capacity(indices.len());
    for &i in indices {
        let (Some(p), Some(a)) = (paid[i].get(), applied[i].get()) else {
            bail!("device {i} was paid for but never applied the unlock");
        };
        if a < p {
            early += 1;
            out.push(0.0);
        } else {
            out.push(a.duration_since(*p).as_secs_f64() * 1000.0);
        }
    }
    out.sort_by(f64::total_cmp);
    Ok((out, early))
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or(0.0)
}

/// `lien bench payment-to-unlock`.
pub fn payment_to_unlock(args: &PaymentArgs) -> Result<()> {
    if let Some(server) = args.phones_for {
        let key = args.pinned_key.as_deref().unwrap_or_default();
        let key = STANDARD
            .decode(key)
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
            .context("--pinned-key is an Ed25519 public key in base64")?;
        return phones_process(server, Some(PinnedKeys::new([key])));
    }
    ensure!(
        args.payments * 2 <= args.phones,
        "--payments is at most half of --phones (each phase pays for different phones)"
    );
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let backend = if args.database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "lien bench payment-to-unlock: {} phones on {backend}, {} payments per phase at {} per \
         second, {cpus} CPUs",
        args.phones, args.payments, args.rate
    );
    let bench = Bench::start(
        args.phones,
        Plans::Overdue,
        args.data_dir.as_deref(),
        args.database_url.clone(),
    )?;
    ensure!(
        bench.fleet.iter().all(|d| d.state == "locked"),
        "every phone should start locked"
    );
    let key = bench.load_rt.block_on(financier_key(&bench))?;
    let fleet: Arc<Vec<Device>> = Arc::new(
        bench
            .fleet
            .iter()
            .map(|d| Device {
                id: d.id.clone(),
                credential: d.credential,
                sequence: d.sequence,
                state: d.state.clone(),
            })
            .collect(),
    );
    let n = fleet.len();
    let server = bench.server.addr;
    let pinned = Arc::new(bench.pinned.clone());

    // Phase 1: every phone connected by push, in the phones' process, which says which phone
    // applied an unlock as soon as it has; the first `payments` phones are paid for.
    let paid: Arc<Vec<OnceLock<Instant>>> = Arc::new((0..n).map(|_| OnceLock::new()).collect());
    let applied: Arc<Vec<OnceLock<Instant>>> = Arc::new((0..n).map(|_| OnceLock::new()).collect());
    let push_indices: Vec<usize> = (0..args.payments as usize).collect();
    let key_b64 = STANDARD.encode(bench.pinned_key.as_bytes());
    let mut phones = Phones::spawn(
        server,
        &bench.fleet,
        &["payment-to-unlock", "--pinned-key", &key_b64],
    )?;
    let open_secs = phones.open()?;
    println!(
        "push: {n} phones connected in {open_secs:.1} s, in a separate process; {} push \
         connections open on the server",
        bench.server.state.push.devices()
    );
    let unlocks_heard = phones.report_unlocks(applied.clone())?;
    let phase = bench.load_rt.block_on(async {
        let checkins_before = bench.server.state.metrics.checkins.get();
        let devices = push_indices
            .iter()
            .map(|&i| (i, fleet[i].id.clone()))
            .collect();
        let paying = Instant::now();
        pay_all(server, key.clone(), devices, args.rate, paid.clone()).await?;
        let pay_secs = paying.elapsed().as_secs_f64();
        let deadline = Instant::now() + Duration::from_secs(30);
        while push_indices.iter().any(|&i| applied[i].get().is_none()) {
            ensure!(
                !unlocks_heard.is_finished(),
                "the phones' process stopped reporting"
            );
            ensure!(Instant::now() < deadline, "some paid phones never unlocked");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        ensure!(
            bench.server.state.metrics.checkins.get() == checkins_before,
            "no phone checked in during the push phase"
        );
        println!(
            "push: {} payments in {pay_secs:.1} s ({:.1} per second)",
            push_indices.len(),
            push_indices.len() as f64 / pay_secs
        );
        anyhow::Ok(latencies(&push_indices, &paid, &applied)?)
    });
    let (push_ms, push_early) = match phase {
        Ok(figures) => figures,
        // The reading thread's own error says more than that it stopped.
        Err(err) if unlocks_heard.is_finished() => {
            return Err(match unlocks_heard.join() {
                Ok(Err(cause)) => cause.context(err),
                _ => err,
            });
        }
        Err(err) => return Err(err),
    };
    phones.stop()?;
    unlocks_heard
        .join()
        .map_err(|_| anyhow::anyhow!("the thread reading the phones' process panicked"))??;

    println!();
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9}",
        "payment to unlock", "phones", "p50 ms", "p99 ms", "max ms"
    );
    println!(
        "{:<28} {:>9} {:>9.1} {:>9.1} {:>9.1}",
        "push",
        push_ms.len(),
        quantile(&push_ms, 0.5),
        quantile(&push_ms, 0.99),
        push_ms.last().copied().unwrap_or(0.0)
    );
    if push_early > 0 {
        println!(
            "  ({push_early} phones had the unlock before the payer had the 2xx: counted as 0 ms)"
        );
    }

    if !args.push_only {
        let check_ms = bench.load_rt.block_on(next_checkin_phase(
            server,
            key,
            fleet.clone(),
            pinned.clone(),
            args,
        ))?;
        println!(
            "{:<28} {:>9} {:>9.1} {:>9.1} {:>9.1}",
            format!("next check-in (every {} s)", args.checkin_seconds),
            check_ms.len(),
            quantile(&check_ms, 0.5),
            quantile(&check_ms, 0.99),
            check_ms.last().copied().unwrap_or(0.0)
        );
    }
    let p99 = quantile(&push_ms, 0.99);
    println!(
        "\npush p99 {p99:.1} ms (target under 1000 ms: {})",
        if p99 < 1000.0 { "met" } else { "missed" }
    );
    drop(bench);
    Ok(())
}

/// Phase 2, push off: the next `payments` phones check in every `checkin_seconds` from a
/// random phase and see the unlock at their first check-in after it commits. Only the paid
/// phones check in (the unpaid ones would add `phones / checkin_seconds` requests a second).
async fn next_checkin_phase(
    server: SocketAddr,
    key: String,
    fleet: Arc<Vec<Device>>,
    pinned: Arc<PinnedKeys>,
    args: &PaymentArgs,
) -> Result<Vec<f64>> {
    let n = fleet.len();
    let paid: Arc<Vec<OnceLock<Instant>>> = Arc::new((0..n).map(|_| OnceLock::new()).collect());
    let applied: Arc<Vec<OnceLock<Instant>>> = Arc::new((0..n).map(|_| OnceLock::new()).collect());
    let first = args.payments as usize;
    let indices: Vec<usize> = (first..first * 2).collect();
    let interval = Duration::from_secs(args.checkin_seconds);
    let started = Instant::now();
    let mut phones = JoinSet::new();
    for &i in &indices {
        let fleet = fleet.clone();
        let pinned = pinned.clone();
        let applied = applied.clone();
        phones.spawn(async move {
            let device = &fleet[i];
            let mut rng = XorShift::new(i as u64);
            let phase = Duration::from_millis(rng.below(interval.as_millis() as usize) as u64);
            let mut at = started + phase;
            loop {
                tokio::time::sleep_until(at.into()).await;
                // A connection per check-in, as a phone that checks in every few hours opens:
                // the server closes a connection left idle for longer than 30 s.
                let mut conn = Conn::open(server).await?;
                let request = checkin_request(device, jiff::Timestamp::now().as_second());
                let (status, answer) = conn.exchange(&request).await?;
                ensure!(status == 200, "a check-in failed: {status}");
                let answer: CheckinResponse = serde_json::from_slice(answer)?;
                if unlocks(&pinned, device, &answer.token)? {
                    let _ = applied[i].set(Instant::now());
                    return anyhow::Ok(());
                }
                at += interval;
            }
        });
    }
    let devices = indices.iter().map(|&i| (i, fleet[i].id.clone())).collect();
    pay_all(server, key, devices, args.rate, paid.clone()).await?;
    while let Some(joined) = phones.join_next().await {
        joined??;
    }
    Ok(latencies(&indices, &paid, &applied)?.0)
}

/// The resident set of this process, from `/proc/self/status`, in KiB.
fn rss_kib() -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")
}

/// The soft limit on open files of this process, from `/proc/self/limits` (`None` when
/// unlimited).
fn open_files_limit() -> Result<Option<u32>> {
    let limits =
        std::fs::read_to_string("/proc/self/limits").context("reading /proc/self/limits")?;
    let soft = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next())
        .context("no open-files limit in /proc/self/limits")?;
    Ok(soft.parse().ok())
}

/// How many file descriptors this process has open.
fn open_files() -> Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")
        .context("reading /proc/self/fd")?
        .count())
}

/// Descriptors the server's process keeps for itself besides the push connections: standard
/// streams, the listener, the database's files, the runtime's, the pipes to the phones'
/// process. About 30 are open at the measurement; the rest is headroom.
const SERVER_FDS: u32 = 100;

/// `lien bench idle-connections`.
///
/// The server runs in this process and the phones in a child process (this binary again,
/// with `--phones-for`), so that the resident-set difference is the server's alone and each
/// connection costs one descriptor here rather than two.
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
    let bench = Bench::start(connections, Plans::Current, args.data_dir.as_deref(), None)?;
    let server = bench.server.addr;
    // One round of check-ins first, so that the check-in cache and the pools are as warm
    // before the connections as after them and only the connections make the difference.
    bench.load_rt.block_on(async {
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

/// The phones' process, seen from the server's.
struct Phones {
    child: std::process::Child,
    input: Option<std::process::ChildStdin>,
    /// Taken by [`Phones::report_unlocks`].
    output: Option<std::io::BufReader<std::process::ChildStdout>>,
}

impl Phones {
    /// Starts this binary as the phones' process of the benchmark `command` (its name and
    /// any arguments) and hands it the fleet.
    fn spawn(server: SocketAddr, fleet: &[Device], command: &[&str]) -> Result<Phones> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe().context("finding this binary")?;
        let mut child = Command::new(exe)
            .arg("bench")
            .args(command)
            .arg("--phones-for")
            .arg(server.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the phones' process")?;
        let input = child.stdin.take().context("the phones' standard input")?;
        let output =
            std::io::BufReader::new(child.stdout.take().context("the phones' standard output")?);
        let mut phones = Phones {
            child,
            input: Some(input),
            output: Some(output),
        };
        let input = phones
            .input
            .as_mut()
            .context("the phones' standard input")?;
        let mut writer = std::io::BufWriter::new(input);
        for device in fleet {
            writeln!(
                writer,
                "{} {} {}",
                device.id,
                STANDARD.encode(device.credential),
                device.sequence
            )?;
        }
        writeln!(writer)?;
        writer.flush()?;
        drop(writer);
        let loaded = phones.line()?;
        ensure!(
            loaded == format!("loaded {}", fleet.len()),
            "the phones' process said {loaded:?}"
        );
        Ok(phones)
    }

    /// The next line the phones' process prints.
    fn line(&mut self) -> Result<String> {
        use std::io::BufRead;
        let output = self
            .output
            .as_mut()
            .context("the phones' output is read elsewhere")?;
        let mut line = String::new();
        if output.read_line(&mut line)? == 0 {
            let status = self.child.wait()?;
            bail!("the phones' process ended ({status})");
        }
        Ok(line.trim_end().to_string())
    }

    /// Opens every connection; returns how long that took, in seconds.
    fn open(&mut self) -> Result<f64> {
        use std::io::Write;
        let input = self
            .input
            .as_mut()
            .context("the phones' process is stopped")?;
        writeln!(input, "open")?;
        input.flush()?;
        let opened = self.line()?;
        opened
            .strip_prefix("opened in ")
            .and_then(|secs| secs.parse().ok())
            .with_context(|| format!("the phones' process said {opened:?}"))
    }

    /// Sets `applied[i]` when the phones' process says phone `i` applied an unlock, on a
    /// thread of its own, so that the time is taken as soon as the line comes. The thread ends
    /// with the process's output, or at the first line it does not understand.
    fn report_unlocks(
        &mut self,
        applied: Arc<Vec<OnceLock<Instant>>>,
    ) -> Result<std::thread::JoinHandle<Result<()>>> {
        let mut output = self
            .output
            .take()
            .context("the phones' output is already read")?;
        Ok(std::thread::spawn(move || {
            use std::io::BufRead;
            let mut line = String::new();
            while output.read_line(&mut line)? > 0 {
                let at = Instant::now();
                let index: usize = line
                    .trim_end()
                    .strip_prefix("unlocked ")
                    .and_then(|i| i.parse().ok())
                    .with_context(|| format!("the phones' process said {line:?}"))?;
                let slot = applied.get(index).context("a phone index out of range")?;
                let _ = slot.set(at);
                line.clear();
            }
            Ok(())
        }))
    }

    /// Closes every connection: the phones' process ends at the end of its input.
    fn stop(&mut self) -> Result<()> {
        drop(self.input.take());
        let status = self.child.wait()?;
        ensure!(status.success(), "the phones' process failed ({status})");
        Ok(())
    }
}

impl Drop for Phones {
    fn drop(&mut self) {
        // On an early return the child is still running: end it rather than leave it.
        if self.input.take().is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The phones' process: reads devices from standard input (one `id credential sequence` line
/// each, then an empty line), says `loaded N`, waits for `open`, opens a push channel per
/// device and reads its first token, says `opened in S`, and runs until its input ends.
/// Meanwhile, with `pinned` (`payment-to-unlock`), every phone verifies what is pushed to it
/// and the process says `unlocked I` as soon as phone `I` has a verified unlock; without it
/// (`idle-connections`) the phones keep only their sockets.
fn phones_process(server: SocketAddr, pinned: Option<PinnedKeys>) -> Result<()> {
    use std::io::BufRead;
    let mut lines = std::io::stdin().lock().lines();
    let mut fleet = Vec::new();
    for line in lines.by_ref() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        let mut fields = line.split(' ');
        let (Some(id), Some(credential), Some(sequence)) =
            (fields.next(), fields.next(), fields.next())
        else {
            bail!("a device line has three fields: {line:?}");
        };
        let credential = STANDARD
            .decode(credential)
            .ok()
            .and_then(|c| <[u8; 32]>::try_from(c).ok())
            .context("a credential is 32 bytes in base64")?;
        fleet.push(Device {
            id: id.to_string(),
            credential,
            sequence: sequence.parse().context("a sequence")?,
            state: String::new(),
        });
    }
    println!("loaded {}", fleet.len());
    match lines.next().transpose()? {
        Some(line) if line == "open" => {}
        _ => return Ok(()),
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let opened = Instant::now();
    let conns = runtime.block_on(async {
        let mut conns = Vec::with_capacity(fleet.len());
        for (i, device) in fleet.iter().enumerate() {
            let mut conn = PushConn::open(source(i), server, device).await?;
            // The current token comes first; a paid-for phone must not have its unlock yet.
            let first = conn.next().await?;
            if let Some(pinned) = &pinned {
                ensure!(
                    !unlocks(pinned, device, &first.token)?,
                    "phone {i} started unlocked"
                );
            }
            conns.push(conn);
        }
        anyhow::Ok(conns)
    })?;
    println!("opened in {:.3}", opened.elapsed().as_secs_f64());
    let Some(pinned) = pinned else {
        // Each phone keeps only its socket, until the server's process has measured and
        // closes our input.
        let streams: Vec<TcpStream> = conns.into_iter().map(|c| c.stream).collect();
        for line in lines {
            line?;
        }
        drop(streams);
        return Ok(());
    };
    // The phones report their unlocks until our input ends, which a thread of its own waits
    // for. Stdin's buffer is the process's, so a new lock there reads on where this one stopped.
    drop(lines);
    let (input_ended, mut ended) = tokio::sync::oneshot::channel::<Result<()>>();
    std::thread::spawn(move || {
        let read = std::io::stdin().lines().try_for_each(|line| line.map(drop));
        let _ = input_ended.send(read.map_err(Into::into));
    });
    runtime.block_on(async {
        let pinned = Arc::new(pinned);
        let fleet = Arc::new(fleet);
        let (unlocked, mut heard) = tokio::sync::mpsc::unbounded_channel::<Result<usize>>();
        let mut phones = JoinSet::new();
        for (i, mut conn) in conns.into_iter().enumerate() {
            let (pinned, fleet, unlocked) = (pinned.clone(), fleet.clone(), unlocked.clone());
            phones.spawn(async move {
                let outcome = async {
                    loop {
                        let answer = conn.next().await?;
                        if unlocks(&pinned, &fleet[i], &answer.token)? {
                            return Ok(i);
                        }
                    }
                };
                let _ = unlocked.send(outcome.await);
                // Keep the connection until the process ends, as a phone would.
                std::future::pending::<()>().await;
            });
        }
        loop {
            tokio::select! {
                read = &mut ended => return read?,
                Some(phone) = heard.recv() => println!("unlocked {}", phone?),
            }
        }
    })
}
