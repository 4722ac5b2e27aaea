//! Lien's server: the financier API, the device endpoints and the scheduler, over one store.
//!
//! [`serve`] is `lien serve`; [`app::start`] runs a server on any listener with any clock,
//! which is how the tests drive whole stories over real HTTP without waiting for days.

pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod push;
pub mod rate_limit;
pub mod routes;
pub mod scheduler;
pub mod secrets;
pub mod wire;

use std::sync::Arc;

use anyhow::Context;
use lien_store::{SqlStore, Store};

use crate::app::AppState;
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::secrets::Secrets;

/// Opens the store named by the settings.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let url = settings.database_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    }
    let store = SqlStore::open(&url)
        .await
        .with_context(|| format!("opening the database ({})", redact(&url)))?;
    Ok(Arc::new(store))
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{user}:***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Runs the server until Ctrl-C: opens the store, loads or creates the keys, creates the first
/// platform admin key on first start (printed once), starts the scheduler, listens.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let store = open_store(&settings).await?;
    let mut secrets = Secrets::load_or_create(&settings.data_dir)?;
    if settings.attestation_roots.is_empty() {
        tracing::warn!(
            "trusting only the development attestation root in the data directory: simulated \
             phones can say hello, real ones cannot (set attestation_roots)"
        );
    } else {
        secrets.trust_only(&settings.attestation_roots)?;
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let state = AppState::new(store.clone(), Arc::new(SystemClock), secrets, settings);
    let addr = listener.local_addr()?;
    if !store.has_platform_admin().await? {
        let created = routes::admin_key(&state).await?;
        println!("Created the platform admin API key. It is shown this once; keep it safe:\n");
        println!("    {}\n", created.key);
        println!("Try it:");
        println!(
            "    curl -H 'Authorization: Bearer {}' http://{addr}/v1/financiers\n",
            created.key
        );
    }
    tracing::info!(%addr, backend = store.backend(), "listening");
    let running = app::start(state, listener, true).await?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

/// Creates a platform admin key (the first start, and tests).
pub async fn create_platform_admin(state: &AppState) -> anyhow::Result<String> {
    Ok(routes::admin_key(state).await?.key)
}
