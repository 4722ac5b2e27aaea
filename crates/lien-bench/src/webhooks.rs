//! `webhooks`: how fast the financier's systems hear of device changes. A receiver in this
//! process, registered as the financier's webhook endpoint, answers every delivery 200; payments
//! on many devices, at a steady rate through the financier API, each write a change and its
//! events to the outbox; the delivery worker, running as in `lien serve`, sends them. Measured:
//! events delivered a second, and the lag from each payment's 200 (its change committed
//! before) to the receiver reading the event.
//!
//! The worker looks for new events every `webhook_interval_ms` (a second by default), so the
//! lag is mostly that wait: about half the interval at p50 and the whole of it at p99 while the
//! worker keeps up. `--interval-ms` sets it to see what a shorter one costs. `BENCHMARKS.md`
//! records the method and the results.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use lien_server::clock::SystemClock;
use tokio::net::TcpListener;

use crate::http::{Conn, post};
use crate::latency::Latencies;
use crate::push::{Since, api_payment, financier_key, pay_all};
use crate::setup::{Bench, Plans, backend_name};

/// The events each payment makes that the endpoint asks for: the payment, and the unlock it
/// causes (every device starts locked, and the payment cures its arrears).
const EVENT_TYPES: [&str; 2] = ["payment.applied", "device.state_changed"];

/// How long after the last payment every event must have arrived.
const DEADLINE: Duration = Duration::from_secs(60);

/// Arguments of `webhooks`.
#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    /// Devices enrolled (all overdue, so locked).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    devices: u32,
    /// Payments, each on a different device (at most --devices); each makes two events.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..))]
    changes: u32,
    /// Payments per second, at a steady rate.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    rate: u32,
    /// How often the delivery worker looks for events, in milliseconds [default: the server's
    /// `webhook_interval_ms`].
    #[arg(long, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    interval_ms: Option<u64>,
    /// Where to create the temporary directory holding the database and keys.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL database to run on instead of a new SQLite file. It must be empty: the
    /// benchmark creates its tables and enrolls into it.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

/// A delivery the receiver took: its `webhook-id`, the device it names, and when it arrived.
struct Taken {
    id: String,
    device_id: String,
    at: Instant,
}

/// The receiver's state.
#[derive(Default)]
struct Receiver {
    /// The endpoint's secret, once the API has shown it; until then nothing is taken.
    secret: OnceLock<String>,
    taken: Mutex<Vec<Taken>>,
    /// Deliveries refused: a missing header, a signature that does not match, a body without
    /// a device.
    refused: Mutex<Vec<String>>,
}

/// Takes a delivery whose signature is the endpoint's (checked with the server's own signing
/// function: the API tests check it against the specification), and answers 200.
async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    match take(&receiver, &headers, &body) {
        Ok((id, device_id)) => {
            let taken = Taken { id, device_id, at };
            receiver.taken.lock().expect("not poisoned").push(taken);
            StatusCode::OK
        }
        Err(why) => {
            receiver
                .refused
                .lock()
                .expect("not poisoned")
                .push(format!("{why:#}"));
            StatusCode::BAD_REQUEST
        }
    }
}

/// A delivery's `webhook-id` and device, once its signature checks out.
fn take(receiver: &Receiver, headers: &HeaderMap, body: &[u8]) -> Result<(String, String)> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .with_context(|| format!("no {name}"))
    };
    let id = header("webhook-id")?;
    let timestamp: i64 = header("webhook-timestamp")?.parse()?;
    let offered = header("webhook-signature")?;
    let secret = receiver.secret.get().context("no endpoint yet")?;
    let body = std::str::from_utf8(body)?;
    let expected = lien_server::webhooks::signature::sign(secret, id, timestamp, body)
        .context("the endpoint's secret")?;
    ensure!(
        offered.split(' ').any(|s| s == expected),
        "no signature matches"
    );
    let event: serde_json::Value = serde_json::from_str(body)?;
    let device_id = event["data"]["device_id"]
        .as_str()
        .context("the event names no device")?;
    Ok((id.to_string(), device_id.to_string()))
}

/// Starts the receiver on a loopback port, on the current runtime; returns its URL.
async fn start_receiver(receiver: Arc<Receiver>) -> Result<String> {
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/hook"))
}

/// Runs the benchmark.
pub fn webhooks(args: &WebhookArgs) -> Result<()> {
    ensure!(
        args.changes <= args.devices,
        "--changes is at most --devices (each pays for a different device)"
    );
    let mut bench = Bench::new(args.data_dir.as_deref(), args.database_url.clone())?;
    // The receiver is on this machine, over plain HTTP: a setting for development only.
    bench.settings.webhook_allow_http = true;
    if let Some(interval) = args.interval_ms {
        bench.settings.webhook_interval_ms = interval;
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "lien bench webhooks: {} devices on {}, {} payments at {} per second, worker every {} \
         ms, {} attempts at once, {cpus} CPUs",
        args.devices,
        backend_name(args.database_url.is_some()),
        args.changes,
        args.rate,
        bench.settings.webhook_interval_ms,
        bench.settings.webhook_concurrency,
    );
    let state = bench.open(Arc::new(SystemClock))?;
    let started = Instant::now();
    let fleet = bench.enroll(&state, args.devices, Plans::Overdue)?;
    println!(
        "setup: enrolled and bound {} devices in {:.1} s",
        fleet.len(),
        started.elapsed().as_secs_f64()
    );
    // The enrollments' events are fanned out now, to no endpoint, so that the one made below
    // hears only of the payments.
    bench
        .server_rt
        .block_on(lien_server::webhooks::deliver_due(&state))?;
    let server = bench.serve_with_workers(state)?;
    let fleet = Arc::new(fleet);
    let index: HashMap<&str, usize> = fleet
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    let n = fleet.len();
    let paid: Arc<Vec<OnceLock<Instant>>> = Arc::new((0..n).map(|_| OnceLock::new()).collect());
    let indices: Vec<usize> = (0..args.changes as usize).collect();
    let expected = indices.len() * EVENT_TYPES.len();
    let receiver = Arc::new(Receiver::default());

    let measured = bench.load_rt.block_on(async {
        let key = financier_key(&server).await?;
        let url = start_receiver(receiver.clone()).await?;
        let body = serde_json::json!({ "url": url, "event_types": EVENT_TYPES }).to_string();
        let request = post(
            "/v1/webhook-endpoints",
            &format!("authorization: Bearer {key}\r\n"),
            &body,
        );
        let mut conn = Conn::open(server.addr).await?;
        let answer = conn
            .exchange_expecting(&request, 201, "making the webhook endpoint failed")
            .await?;
        let created: serde_json::Value = serde_json::from_slice(answer)?;
        let secret = created["secret"]
            .as_str()
            .context("the endpoint's answer has a secret")?;
        let _ = receiver.secret.set(secret.to_string());

        let paying = Instant::now();
        pay_all(
            server.addr,
            api_payment(fleet.clone(), key),
            indices.clone(),
            args.rate,
            paid.clone(),
            Since::Answered,
        )
        .await?;
        let pay_secs = paying.elapsed().as_secs_f64();
        println!(
            "payments: {} in {pay_secs:.1} s ({:.1} per second), {expected} events to deliver",
            indices.len(),
            indices.len() as f64 / pay_secs
        );
        let deadline = Instant::now() + DEADLINE;
        loop {
            let distinct = {
                let taken = receiver.taken.lock().expect("not poisoned");
                let mut ids: Vec<&str> = taken.iter().map(|t| t.id.as_str()).collect();
                ids.sort_unstable();
                ids.dedup();
                ids.len()
            };
            if distinct >= expected {
                break;
            }
            let refused = receiver.refused.lock().expect("not poisoned").clone();
            ensure!(
                refused.is_empty(),
                "the receiver refused deliveries: {refused:?}"
            );
            ensure!(
                Instant::now() < deadline,
                "{distinct} of {expected} events arrived within {} s of the last payment",
                DEADLINE.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::Ok(paying)
    });
    let paying = measured?;

    // Each event's lag, from its device's payment's 200, at its first arrival.
    let taken = std::mem::take(&mut *receiver.taken.lock().expect("not poisoned"));
    let mut first: HashMap<&str, &Taken> = HashMap::new();
    for t in &taken {
        first.entry(t.id.as_str()).or_insert(t);
    }
    let mut lag = Latencies::default();
    let mut early = 0;
    for t in first.values() {
        let device = *index
            .get(t.device_id.as_str())
            .context("an event names a device the bench did not enroll")?;
        let at_200 = paid[device]
            .get()
            .context("an event names a device that was not paid for")?;
        if t.at < *at_200 {
            early += 1;
        }
        lag.record(t.at.saturating_duration_since(*at_200));
    }
    let first_at = first.values().map(|t| t.at).min().context("no event")?;
    let last_at = first.values().map(|t| t.at).max().context("no event")?;
    let events = first.len();
    let since_first_payment = last_at.duration_since(paying).as_secs_f64();
    let window = last_at.duration_since(first_at).as_secs_f64();
    println!(
        "delivered: {events} events in {since_first_payment:.1} s from the first payment \
         ({:.0} per second; made at {} per second); first to last arrival {window:.1} s ({:.0} \
         per second); {} sent twice; {} attempts failed",
        events as f64 / since_first_payment,
        u64::from(args.rate) * EVENT_TYPES.len() as u64,
        events as f64 / window.max(f64::EPSILON),
        taken.len() - events,
        server.state.metrics.webhook_failures.get(),
    );
    println!();
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "change to webhook", "events", "p50 ms", "p99 ms", "p999 ms", "max ms"
    );
    println!(
        "{:<28} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        "lag",
        lag.len(),
        lag.quantile_ms(0.5),
        lag.quantile_ms(0.99),
        lag.quantile_ms(0.999),
        lag.max_ms()
    );
    if early > 0 {
        println!("  ({early} events arrived before the payer had the 200: counted as 0 ms)");
    }
    // Kept up: the worker delivered as fast as the changes came, so no event waited for more
    // than a pass's interval and its own sending.
    let p99 = lag.quantile_ms(0.99);
    let bound = bench.settings.webhook_interval_ms as f64 + 1000.0;
    println!(
        "\nwebhook lag p99 {p99:.1} ms (kept up, under the worker's interval + 1 s, {bound:.0} \
         ms: {})",
        if p99 < bound { "yes" } else { "no" }
    );
    drop(server);
    drop(bench);
    Ok(())
}
