//! The server: its shared state, its router, and how it starts and stops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use lien_proto::TokenSigner;
use lien_store::{Seen, Store};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt as _;

use crate::clock::Clock;
use crate::config::Settings;
use crate::connections::{self, ConnectionLimits};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::secrets::Secrets;

/// Attested hellos per IMEI and minute after a first burst: a real phone says hello at setup and
/// after a reflash, a few times in its life. Only hellos whose attestation verified are counted
/// (the per-address limit bounds the verifying), so a stranger cannot use up a phone's allowance.
const HELLOS_PER_IMEI_PER_MINUTE: u32 = 6;
/// How many hellos for one IMEI may come at once.
const HELLO_BURST_PER_IMEI: u32 = 10;

/// Status-code look-ups per API key and minute, after a first burst. Support staff look up the
/// code a borrower reads out, a few a minute; a code is 8 digits, so this keeps a key (support's
/// sees every device) from walking the code space, while a financier's keys cannot use up
/// each other's or support's allowance.
const STATUS_CODES_PER_MINUTE: u32 = 30;
/// How many status codes one key may look up at once.
const STATUS_CODE_BURST: u32 = 20;

/// Holder's proofs (IMEI and lock-screen status code) tried per financed phone and minute, after
/// a first burst, whoever tries them. The per-address limit alone does not protect a phone: a
/// /48 of IPv6 is 65,536 addresses, enough to walk the 8-digit codes of a chosen phone within
/// the hour and open an appeal that frees it. At one a minute the walk takes decades, while a
/// borrower who mistypes has ten tries at once. The price: a stranger who knows the IMEI can
/// keep that phone's proofs waiting by guessing once a minute; the page then sends the
/// borrower to support, who can look the phone up by its code and act for them.
const PROOFS_PER_PHONE_PER_MINUTE: u32 = 1;
/// How many proofs for one phone may be tried at once.
const PROOF_BURST_PER_PHONE: u32 = 10;
/// How many phones the proof limit tracks: only financed phones are counted, so this is sized
/// for a large fleet (a phone's entry is some tens of bytes). Past it, newcomers share one
/// bucket (see `rate_limit`), which limits more, never less.
const PROOF_LIMIT_PHONES: usize = 1_000_000;

/// Look-ups by status code alone (the `/why` page), per server and minute, after a first burst,
/// whoever asks. One code is tried against every phone at once, so the per-address limit would
/// let a /48 walk all 100 million codes in an hour and learn which phones of which financier
/// show which; at this rate the walk takes months. Past it the page asks for the IMEI, which is
/// not limited this way.
const CODE_LOOKUPS_PER_MINUTE: u32 = 1_000;
/// How many look-ups by code may come at once.
const CODE_LOOKUP_BURST: u32 = 1_000;

/// How many bytes of appeal forms the server holds at once, counted as they arrive: about 25
/// whole forms at the default 5 MiB (see `routes::appeals::read_form`).
pub const APPEAL_UPLOAD_BYTES_IN_FLIGHT: u64 = 128 * 1024 * 1024;

/// Payment-provider callbacks per client address and minute, after a first burst: M-Pesa
/// calls from a few addresses, twice for every payment to a paybill, so the allowance is far
/// above the public endpoints' and bounds only a flood (see `routes::providers`).
const PROVIDER_CALLBACKS_PER_MINUTE: u32 = 6_000;
/// How many callbacks one address may send at once.
const PROVIDER_CALLBACK_BURST: u32 = 1_000;

/// Statement reconciliations per financier and minute, after a first burst. A financier
/// reconciles each provider's statement once a day or so, and again after fixing what a report
/// showed; a run reads up to 20,000 lines and may record as many payments, so the allowance
/// bounds what a leaked or looping admin key can make the server do.
const RECONCILIATIONS_PER_MINUTE: u32 = 2;
/// How many reconciliations one financier may start at once (one at a time still runs).
const RECONCILIATION_BURST: u32 = 10;

/// Reports and exports per person (or key) and minute, after a first burst. Each reads a period
/// of up to a year, or every device of a financier: a person looks at a few, while a script
/// looping over them would keep the database scanning for everyone.
const REPORTS_PER_MINUTE: u32 = 6;
/// How many reports one person may ask for at once.
const REPORT_BURST: u32 = 10;

/// Manual webhook redeliveries per financier and minute, after a first burst. A person
/// redelivers an event or two after fixing a receiver; a script catching up after an outage may
/// ask for a few hundred, slowly. Each is a write, and each attempt still waits for the
/// endpoint's and the financier's share of the delivery worker.
const REDELIVERIES_PER_MINUTE: u32 = 120;
/// How many redeliveries one financier may ask for at once.
const REDELIVERY_BURST: u32 = 60;

/// Console sign-in attempts per client address and minute, after a first burst: enough for a
/// shop's few people behind one address to mistype, far too few to guess passwords.
const SIGN_INS_PER_MINUTE: u32 = 20;
/// How many sign-in attempts one address may make at once.
const SIGN_IN_BURST: u32 = 10;
/// Console sign-in attempts per e-mail address from one client address, per minute, after a
/// first burst: a guesser at one address is slowed to a crawl, while the person signing in from
/// their own address is not held up by a stranger's guesses elsewhere.
const SIGN_INS_PER_EMAIL_PER_MINUTE: u32 = 5;
/// How many sign-in attempts for one e-mail address one client address may make at once.
const SIGN_IN_BURST_PER_EMAIL: u32 = 5;
/// Console sign-in attempts per e-mail address from all client addresses together, per
/// minute, after a first burst: bounds guessing spread over many addresses; locking a person
/// out takes that many attempts a minute from several addresses, each within its own limit.
const SIGN_INS_PER_ACCOUNT_PER_MINUTE: u32 = 30;
/// How many sign-in attempts for one e-mail address may come at once from everywhere.
const SIGN_IN_BURST_PER_ACCOUNT: u32 = 30;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
pub struct Inner {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Where appeal documents are kept (`attachment_store`).
    pub attachments: Arc<dyn crate::attachments::AttachmentStore>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Keys.
    pub secrets: Secrets,
    /// Signs tokens.
    pub signer: TokenSigner,
    /// Settings.
    pub settings: Settings,
    /// Metrics.
    pub metrics: Metrics,
    /// Phones seen and request counters claimed, not yet written (see
    /// [`AppState::claim_request`] and [`AppState::flush_last_seen`]).
    last_seen: Mutex<HashMap<String, Pending>>,
    /// Wakes the scheduler early.
    pub scheduler_wake: Notify,
    /// Devices with an open push channel (see [`crate::push`]).
    pub push: crate::push::Hub,
    /// Per-client limits on the public endpoints and pages.
    pub public_limit: crate::rate_limit::RateLimiter,
    /// Per-client limits on hellos and their challenges.
    pub hello_limit: crate::rate_limit::RateLimiter,
    /// Per-IMEI limits on hellos: a phone sets up a few times in its life.
    pub hello_imei_limit: crate::rate_limit::RateLimiter<String>,
    /// Per-phone limits on the holder's proofs (see [`PROOFS_PER_PHONE_PER_MINUTE`]), keyed
    /// by IMEI.
    pub proof_limit: crate::rate_limit::RateLimiter<u64>,
    /// The server's limit on look-ups by status code alone (see [`CODE_LOOKUPS_PER_MINUTE`]).
    pub code_lookup_limit: crate::rate_limit::RateLimiter<()>,
    /// Per-API-key limits on status-code look-ups (see [`STATUS_CODES_PER_MINUTE`]).
    pub status_code_limit: crate::rate_limit::RateLimiter<String>,
    /// Per-client limits on payment-provider callbacks (see [`PROVIDER_CALLBACKS_PER_MINUTE`]).
    pub provider_limit: crate::rate_limit::RateLimiter,
    /// Per-financier limits on reconciliations (see [`RECONCILIATIONS_PER_MINUTE`]).
    pub reconciliation_limit: crate::rate_limit::RateLimiter<String>,
    /// Per-person limits on the console's reports and exports (see [`REPORTS_PER_MINUTE`]).
    pub report_limit: crate::rate_limit::RateLimiter<String>,
    /// Per-financier limits on manual webhook redeliveries (see [`REDELIVERIES_PER_MINUTE`]).
    pub redelivery_limit: crate::rate_limit::RateLimiter<String>,
    /// Per-client limits on console sign-ins (see [`SIGN_INS_PER_MINUTE`]).
    pub sign_in_limit: crate::rate_limit::RateLimiter,
    /// Per e-mail address and client limits on console sign-ins (see
    /// [`SIGN_INS_PER_EMAIL_PER_MINUTE`]).
    pub sign_in_email_limit: crate::rate_limit::RateLimiter<(String, crate::rate_limit::ClientKey)>,
    /// Per e-mail address limits on console sign-ins from everywhere (see
    /// [`SIGN_INS_PER_ACCOUNT_PER_MINUTE`]).
    pub sign_in_account_limit: crate::rate_limit::RateLimiter<String>,
    /// Password hashes computed at once (argon2id takes 19 MiB and most of a core each): a
    /// flood of sign-ins waits for these, or is told to come back, rather than exhausting
    /// memory or the blocking threads the scheduler also uses.
    pub password_hashing: tokio::sync::Semaphore,
    /// The reconciliations running on this server, one per financier at most.
    pub reconciliations: crate::commands::reconciliation::Running,
    /// The bulk enrollments running in the background on this server (the console's uploads).
    pub bulk_jobs: crate::commands::bulk_jobs::Jobs,
    /// Sends webhooks (see [`crate::webhooks`]): no redirects followed, each attempt bounded.
    pub webhook_client: reqwest::Client,
    /// What is left of [`APPEAL_UPLOAD_BYTES_IN_FLIGHT`], in KiB (see `read_form`).
    pub appeal_uploads: Arc<tokio::sync::Semaphore>,
    /// The attestation certificates hellos may no longer use (`attestation_status`).
    pub attestation_status: crate::attestation_status::AttestationStatus,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        secrets: Secrets,
        settings: Settings,
    ) -> AppState {
        let signer = TokenSigner::new(secrets.signing_key.clone());
        let public_limit = crate::rate_limit::RateLimiter::new(
            settings.public_rate_per_minute,
            settings.public_rate_burst,
            clock.clone(),
        );
        let hello_limit = crate::rate_limit::RateLimiter::new(
            settings.hello_rate_per_minute,
            settings.hello_rate_burst,
            clock.clone(),
        );
        let hello_imei_limit = crate::rate_limit::RateLimiter::new(
            HELLOS_PER_IMEI_PER_MINUTE,
            HELLO_BURST_PER_IMEI,
            clock.clone(),
        );
        let proof_limit = crate::rate_limit::RateLimiter::bounded(
            PROOFS_PER_PHONE_PER_MINUTE,
            PROOF_BURST_PER_PHONE,
            clock.clone(),
            PROOF_LIMIT_PHONES,
        );
        let code_lookup_limit = crate::rate_limit::RateLimiter::new(
            CODE_LOOKUPS_PER_MINUTE,
            CODE_LOOKUP_BURST,
            clock.clone(),
        );
        let status_code_limit = crate::rate_limit::RateLimiter::new(
            STATUS_CODES_PER_MINUTE,
            STATUS_CODE_BURST,
            clock.clone(),
        );
        let provider_limit = crate::rate_limit::RateLimiter::new(
            PROVIDER_CALLBACKS_PER_MINUTE,
            PROVIDER_CALLBACK_BURST,
            clock.clone(),
        );
        let reconciliation_limit = crate::rate_limit::RateLimiter::new(
            RECONCILIATIONS_PER_MINUTE,
            RECONCILIATION_BURST,
            clock.clone(),
        );
        let report_limit =
            crate::rate_limit::RateLimiter::new(REPORTS_PER_MINUTE, REPORT_BURST, clock.clone());
        let redelivery_limit = crate::rate_limit::RateLimiter::new(
            REDELIVERIES_PER_MINUTE,
            REDELIVERY_BURST,
            clock.clone(),
        );
        let sign_in_limit =
            crate::rate_limit::RateLimiter::new(SIGN_INS_PER_MINUTE, SIGN_IN_BURST, clock.clone());
        let sign_in_email_limit = crate::rate_limit::RateLimiter::new(
            SIGN_INS_PER_EMAIL_PER_MINUTE,
            SIGN_IN_BURST_PER_EMAIL,
            clock.clone(),
        );
        let sign_in_account_limit = crate::rate_limit::RateLimiter::new(
            SIGN_INS_PER_ACCOUNT_PER_MINUTE,
            SIGN_IN_BURST_PER_ACCOUNT,
            clock.clone(),
        );
        let attestation_status = crate::attestation_status::AttestationStatus::new(
            settings.attestation_status.clone(),
            &settings.data_dir,
        );
        let password_hashing = tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8)),
        );
        let attachments = crate::attachments::from_settings(
            settings.attachment_store,
            settings.data_dir.clone(),
            store.clone(),
            clock.clone(),
        );
        // A setting that cannot be honoured (an unreadable extra root) stops `lien serve`
        // before this (`serve` builds the client first); here it leaves the client without it.
        let webhook_client = crate::webhooks::client::build(
            &settings,
            Arc::new(crate::webhooks::client::SystemResolver),
        )
        .unwrap_or_else(|err| {
            tracing::error!(
                error = format!("{err:#}"),
                "webhook client without its settings"
            );
            let plain = Settings {
                webhook_extra_roots: Vec::new(),
                ..settings.clone()
            };
            // Never a client without the address checks and redirect policy: a client that
            // cannot be built that way is a broken TLS setup, not something to serve around.
            crate::webhooks::client::build(
                &plain,
                Arc::new(crate::webhooks::client::SystemResolver),
            )
            .expect("the webhook client builds without extra roots")
        });
        AppState(Arc::new(Inner {
            store,
            attachments,
            clock,
            secrets,
            signer,
            settings,
            metrics: Metrics::default(),
            last_seen: Mutex::new(HashMap::new()),
            scheduler_wake: Notify::new(),
            push: crate::push::Hub::default(),
            public_limit,
            hello_limit,
            hello_imei_limit,
            proof_limit,
            code_lookup_limit,
            status_code_limit,
            provider_limit,
            reconciliation_limit,
            report_limit,
            redelivery_limit,
            sign_in_limit,
            sign_in_email_limit,
            sign_in_account_limit,
            password_hashing,
            reconciliations: Default::default(),
            bulk_jobs: Default::default(),
            webhook_client,
            appeal_uploads: Arc::new(tokio::sync::Semaphore::new(
                (APPEAL_UPLOAD_BYTES_IN_FLIGHT / 1024) as usize,
            )),
            attestation_status,
        }))
    }

    /// Notes a signed request from a phone (a check-in or a push request) and claims its
    /// counter. The counter must be above every one accepted under the same binding: those in
    /// the store (`stored`, read with the request's check-in view) and those this server has
    /// claimed, so a captured request sent again is refused.
    ///
    /// Last-seen times and counters are kept in memory and written once a second in one
    /// transaction: at most one second of them is lost if the server dies, and nothing else is
    /// ever held back like this. A written entry stays in memory until the next write, so a
    /// request whose view was read just before a write still meets its counter here. With
    /// several servers on one PostgreSQL database, a replay sent to another server before the
    /// counter is written can pass, and gets only the current token: a check-in that writes
    /// (`seen.writes`: events or a new applied sequence) checks and sets the stored counter in
    /// its own transaction instead, and its counter is left out of the batch so that the batch
    /// cannot get there first and make the phone's own check-in look replayed.
    pub fn claim_request(
        &self,
        device_id: &str,
        seen: Sighting,
        stored: i64,
    ) -> Result<(), ApiError> {
        let mut pending = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = pending.get(device_id) {
            if entry.seen.generation > seen.generation {
                return Err(ApiError::Unauthorized(
                    "the device was bound again: say hello".into(),
                ));
            }
            let claimed = if entry.seen.generation == seen.generation {
                entry.seen.counter
            } else {
                0
            };
            if seen.counter <= stored.max(claimed) {
                return Err(replayed(seen.counter, stored.max(claimed)));
            }
        } else if seen.counter <= stored {
            return Err(replayed(seen.counter, stored));
        }
        // A phone seen again within the second only updates its entry: no new key is allocated
        // on the check-in path.
        let entry = Pending {
            seen,
            written: false,
        };
        match pending.get_mut(device_id) {
            Some(existing) => *existing = entry,
            None => {
                pending.insert(device_id.to_string(), entry);
            }
        }
        Ok(())
    }

    /// Writes the pending last-seen times and counters. An entry stays until it is written and
    /// one more write has passed (see [`AppState::claim_request`]); one superseded meanwhile is
    /// written at the next run.
    pub async fn flush_last_seen(&self) {
        let batch: Vec<Seen> = {
            let mut pending = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
            // Written by the run before this one: every view read since then shows it.
            pending.retain(|_, entry| !entry.written);
            pending
                .iter()
                .map(|(id, entry)| Seen {
                    device_id: id.clone(),
                    at_us: entry.seen.at_us,
                    binding_generation: entry.seen.generation,
                    counter: if entry.seen.writes {
                        0
                    } else {
                        entry.seen.counter
                    },
                })
                .collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Err(err) = self.store.touch_last_seen(&batch).await {
            tracing::warn!(error = %err, devices = batch.len(), "could not write last-seen times");
            return;
        }
        let mut pending = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
        for written in batch {
            if let Some(entry) = pending.get_mut(&written.device_id)
                && entry.seen.at_us == written.at_us
                && entry.seen.generation == written.binding_generation
            {
                entry.written = true;
            }
        }
    }
}

/// A phone's signed request, as [`AppState::claim_request`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    /// When the server received it.
    pub at_us: i64,
    /// The binding it was signed under.
    pub generation: i64,
    /// Its counter.
    pub counter: i64,
    /// Whether the request writes the counter in a transaction of its own.
    pub writes: bool,
}

/// A sighting not yet written, or written by the last run and kept until the next.
#[derive(Debug, Clone, Copy)]
struct Pending {
    seen: Sighting,
    written: bool,
}

/// The refusal of a request whose counter was already used.
pub(crate) fn replayed(counter: i64, highest: i64) -> ApiError {
    ApiError::Unauthorized(format!(
        "replayed request: counter {counter} is not above {highest}, the highest this device has used"
    ))
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    crate::routes::router(&state.settings)
        .layer(middleware::from_fn(crate::no_nul::refuse_nul))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_request,
        ))
        .with_state(state)
}

/// Measures and logs every request: method, route (the pattern, never the path itself, which
/// can hold an IMEI or a status code), status and latency. No header, query or body is logged.
/// It also bounds the arrival of the request's body (see [`crate::deadline`]): one layer
/// rather than two, as every layer costs each check-in an allocation or two.
async fn record_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let limit = Duration::from_secs(state.settings.request_timeout_secs.max(1));
    let response = next.run(crate::deadline::bound(request, limit)).await;
    let response = crate::deadline::close_after_timeout(response);
    let elapsed = started.elapsed();
    state.metrics.request_seconds.observe(elapsed.as_secs_f64());
    tracing::info!(
        target: "lien::request",
        %method,
        route = route.as_ref().map_or("unmatched", MatchedPath::as_str),
        status = response.status().as_u16(),
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
    );
    response
}

/// A running server.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state, for tests that drive the scheduler or read metrics.
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, finishes in-flight requests, writes last-seen times.
    pub async fn stop(self) {
        // A watch, not a Notify: a task busy when the signal comes (flushing, say) still
        // sees it the next time it looks, instead of missing it and waiting forever.
        let _ = self.shutdown.send(true);
        // Push channels never end by themselves; the graceful shutdown would wait for them.
        self.state.push.close();
        let _ = self.task.await;
    }
}

/// Starts serving on `listener`, with the scheduler and the last-seen writer in the background
/// when `background` is true (tests drive the scheduler themselves).
pub async fn start(
    state: AppState,
    listener: TcpListener,
    background: bool,
) -> anyhow::Result<Running> {
    let addr = listener.local_addr()?;
    let (shutdown, stopping) = watch::channel(false);
    if background {
        tokio::spawn(crate::scheduler::run(state.clone(), stopping.clone()));
        tokio::spawn(crate::webhooks::run(state.clone(), stopping.clone()));
    }
    // Every server answers hellos, so every one keeps its own status list, the kept one in
    // force before the first hello is answered.
    crate::attestation_status::load_kept_list(&state).await;
    tokio::spawn(crate::attestation_status::run(
        state.clone(),
        stopping.clone(),
    ));
    // Push is fed whether or not the scheduler runs here: changes come from every writer.
    state.push.open();
    tokio::spawn(crate::push::run(state.clone(), stopping.clone()));
    let flusher = {
        let state = state.clone();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => state.flush_last_seen().await,
                    _ = until_stopped(&mut stopping) => break,
                }
            }
        })
    };
    let app = router(state.clone());
    let limits = connection_limits(&state.settings);
    let task = {
        let state = state.clone();
        tokio::spawn(async move {
            serve(listener, app, stopping, limits).await;
            let _ = flusher.await;
            state.flush_last_seen().await;
        })
    };
    Ok(Running {
        addr,
        state,
        shutdown,
        task,
    })
}

/// Serves `app` on `listener` until `stopping`, then lets the open connections finish.
///
/// This is `axum::serve` without its protocol detection, which costs an idle push channel
/// 8 KiB: `axum::serve` reads the first bytes of every connection itself, to tell HTTP/2 from
/// HTTP/1, and hands them back to hyper separately, so hyper's first read returns only those
/// and its second doubles its read buffer to 16 KiB, kept for the connection's life
/// (`BENCHMARKS.md`, idle push connections). Lien speaks HTTP/1.1 only, so it serves hyper's
/// HTTP/1 connection directly.
///
/// `limits` says who may hold a connection (see `connections`): a connection over them is
/// answered 503 and closed, so a flood of idle connections cannot take the descriptors or
/// memory the phones need, and the server answers again as soon as some close.
pub async fn serve(
    mut listener: TcpListener,
    app: Router,
    mut stopping: watch::Receiver<bool>,
    limits: ConnectionLimits,
) {
    // Every connection's task holds a receiver; the sender's `closed` says they have all ended.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let (stream, peer) = tokio::select! {
            // axum's `Listener` retries failed accepts (and pauses when out of descriptors).
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            _ = until_stopped(&mut stopping) => break,
        };
        let slot = match limits.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                // Past the refusals being answered, a refused connection is just closed.
                if let Some(answering) = limits.refusal_slot() {
                    tokio::spawn(async move {
                        connections::refuse(stream, why).await;
                        drop(answering);
                    });
                }
                continue;
            }
        };
        // The peer address, for the per-client limits of the public endpoints.
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(Body::new)
            });
        let stream = limits.guard(stream);
        let mut stopping = stopping.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            // A client that sends half a request and stalls is cut off, and cannot hold up a
            // shutdown (hyper enforces this only with a timer).
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let mut connection = std::pin::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                _ = until_stopped(&mut stopping) => {
                    // Finishes the request in flight, if any, then closes.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = served {
                tracing::trace!(error = %err, "connection ended with an error");
            }
            drop(open);
            drop(slot);
        });
    }
    drop(listener);
    drop(open_rx);
    // A response still streaming to a slow reader could otherwise hold the shutdown forever.
    if tokio::time::timeout(DRAIN_TIMEOUT, open_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; stopping anyway");
    }
}

/// The connection limits `settings` ask for on the main address.
pub fn connection_limits(settings: &Settings) -> ConnectionLimits {
    ConnectionLimits::new(
        settings.max_connections,
        settings.max_connections_per_client,
        settings.trusted_proxies.clone(),
        Duration::from_secs(settings.request_timeout_secs.max(1)),
    )
}

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a shutdown waits for the open connections to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Returns once `stop()` is called, or at once if it already was.
pub(crate) async fn until_stopped(stopping: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, so callers' futures stay `Send`.
    let _ = stopping.wait_for(|&stop| stop).await;
}
