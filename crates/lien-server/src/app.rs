//! The server: its shared state, its router, and how it starts and stops.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use lien_proto::TokenSigner;
use lien_store::Store;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::clock::Clock;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::secrets::Secrets;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
pub struct Inner {
    /// Storage.
    pub store: Arc<dyn Store>,
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
    /// Last-seen times not yet written (see [`AppState::flush_last_seen`]).
    last_seen: Mutex<HashMap<String, i64>>,
    /// Wakes the scheduler early.
    pub scheduler_wake: Notify,
    /// Devices with an open push channel (see [`crate::push`]).
    pub push: crate::push::Hub,
    /// Per-client limits on the public endpoints and pages.
    pub public_limit: crate::rate_limit::RateLimiter,
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
        );
        AppState(Arc::new(Inner {
            store,
            clock,
            secrets,
            signer,
            settings,
            metrics: Metrics::default(),
            last_seen: Mutex::new(HashMap::new()),
            scheduler_wake: Notify::new(),
            push: crate::push::Hub::default(),
            public_limit,
        }))
    }

    /// Notes a check-in. Last-seen times are kept in memory and written once a second in
    /// one transaction: at most one second of last-seen times is lost if the server dies,
    /// and nothing else is ever held back like this.
    pub fn saw(&self, device_id: &str, at_us: i64) {
        let mut pending = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
        // A phone seen again within the second only moves its time: no new key is allocated
        // on the check-in path.
        match pending.get_mut(device_id) {
            Some(seen) => *seen = at_us,
            None => {
                pending.insert(device_id.to_string(), at_us);
            }
        }
    }

    /// Writes the pending last-seen times.
    pub async fn flush_last_seen(&self) {
        let batch: Vec<(String, i64)> = {
            let mut pending = self.last_seen.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        if let Err(err) = self.store.touch_last_seen(&batch).await {
            tracing::warn!(error = %err, devices = batch.len(), "could not write last-seen times");
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    crate::routes::router()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_latency,
        ))
        .with_state(state)
}

async fn record_latency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request_seconds
        .observe(started.elapsed().as_secs_f64());
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
    }
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
    let task = {
        let mut stopping = stopping.clone();
        let state = state.clone();
        tokio::spawn(async move {
            // With the peer address, for the per-client limits of the public endpoints.
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until_stopped(&mut stopping).await })
                .await;
            if let Err(err) = served {
                tracing::error!(error = %err, "server failed");
            }
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

/// Returns once `stop()` is called, or at once if it already was.
pub(crate) async fn until_stopped(stopping: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, so callers' futures stay `Send`.
    let _ = stopping.wait_for(|&stop| stop).await;
}
