//! Lien's server: the financier API, the device endpoints and the scheduler, over one store.
//!
//! [`serve`] is `lien serve`; [`app::start`] runs a server on any listener with any clock,
//! which is how the tests drive whole stories over real HTTP without waiting for days.

pub mod api_keys;
pub mod app;
pub mod attachments;
pub mod attestation_status;
pub mod auth;
pub mod client_addr;
pub mod clock;
pub mod commands;
pub mod config;
pub mod connections;
pub mod console;
pub mod deadline;
pub mod domain;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod input;
pub mod metrics;
pub mod no_nul;
pub mod openapi;
pub mod pages;
pub mod private_files;
pub mod providers;
pub mod push;
pub mod rate_limit;
pub mod routes;
pub mod scheduler;
pub mod secrets;
pub mod tls;
pub mod webhooks;
pub mod wire;

use std::path::Path;
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
    if let Some(path) = sqlite_file(&url) {
        private_files::create_private_dir(&settings.data_dir)?;
        private_files::precreate_private_file(Path::new(path))?;
    }
    let store = SqlStore::open(&url)
        .await
        .with_context(|| format!("opening the database ({})", redact(&url)))?;
    Ok(Arc::new(store))
}

/// The file of a SQLite URL; `None` for PostgreSQL and in-memory databases.
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    (!path.is_empty() && path != ":memory:").then_some(path)
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
pub async fn serve(mut settings: Settings) -> anyhow::Result<()> {
    // Before anything is opened or created: a deployment without what it must have is refused
    // with the setting's name.
    settings.check_deployment()?;
    let store = open_store(&settings).await?;
    let mut secrets = Secrets::load_or_create(&settings.data_dir)?;
    // After the store and the keys: whatever they created, and whatever an older version left
    // readable, is private from here on.
    private_files::secure_data_dir(&settings.data_dir)?;
    if settings.attestation_roots.is_empty() {
        tracing::warn!(
            "trusting only the development attestation root in the data directory: simulated \
             phones can say hello, real ones cannot (set attestation_roots)"
        );
    } else {
        secrets.trust_only(&settings.attestation_roots)?;
        if settings.attestation_status.is_none() {
            tracing::warn!(
                "hellos are not checked against revoked attestation keys: a leaked factory key \
                 could bind any phone (set attestation_status)"
            );
        }
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    settings.max_connections = connections::fit_to_descriptor_limit(settings.max_connections);
    // Refuses to start with webhook settings it cannot honour (an unreadable extra root),
    // rather than deliver without them.
    webhooks::client::build(&settings, Arc::new(webhooks::client::SystemResolver))?;
    let state = AppState::new(store.clone(), Arc::new(SystemClock), secrets, settings);
    let addr = listener.local_addr()?;
    if !store.has_platform_admin().await? {
        let created = routes::admin_key(&state).await?;
        hand_over_first_key(&created.key, &state.settings.data_dir, addr)?;
    }
    if let Some(metrics_addr) = state.settings.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("listening for metrics on {metrics_addr}"))?;
        let router = axum::Router::new()
            .route("/metrics", axum::routing::get(routes::ops::open_metrics))
            .with_state(state.clone());
        tracing::info!(addr = %metrics_addr, "serving metrics");
        // Served like the main address, with its timeouts, and a few connections: a scraper
        // or two. It ends with the process.
        let limits = connections::ConnectionLimits::only_total(
            METRICS_CONNECTIONS,
            std::time::Duration::from_secs(state.settings.request_timeout_secs.max(1)),
        );
        let (running, never_stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            app::serve(metrics, router, never_stopped, limits).await;
            drop(running);
        });
    }
    tracing::info!(%addr, backend = store.backend(), "listening");
    let running = app::start(state, listener, true).await?;
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

/// Connections the separate metrics address serves at once.
const METRICS_CONNECTIONS: u32 = 16;

/// The file the first platform admin key is written to when there is no terminal to show it.
pub const FIRST_ADMIN_KEY_FILE: &str = "first-admin.key";

/// Gives the operator the first platform admin key: on the terminal if there is one, and
/// otherwise in a private file in the data directory, so that it never lands in a log that
/// stdout was redirected to.
fn hand_over_first_key(
    key: &str,
    data_dir: &Path,
    addr: std::net::SocketAddr,
) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    if std::io::stdout().is_terminal() {
        println!("Created the platform admin API key. It is shown this once; keep it safe:\n");
        println!("    {key}\n");
        println!("Try it:");
        println!("    curl -H 'Authorization: Bearer {key}' http://{addr}/v1/financiers\n");
        println!("To use the console, invite yourself, then open the link it returns:");
        println!(
            "    curl -H 'Authorization: Bearer {key}' -H 'content-type: application/json' \\\n      \
             -d '{{\"email\":\"you@example.com\",\"role\":\"platform-admin\"}}' http://{addr}/v1/invitations\n"
        );
        return Ok(());
    }
    let path = data_dir.join(FIRST_ADMIN_KEY_FILE);
    // Created 0600 before a byte is written.
    private_files::precreate_private_file(&path)?;
    std::fs::write(&path, format!("{key}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "Created the platform admin API key. The output is not a terminal, so it is not shown \
         here: it is in {} (readable by this user only). Move it somewhere safe and delete the file.",
        path.display()
    );
    Ok(())
}

/// Creates a platform admin key (the first start, and tests).
pub async fn create_platform_admin(state: &AppState) -> anyhow::Result<String> {
    Ok(routes::admin_key(state).await?.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deployment_with_the_placeholder_support_contact_does_not_start() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let settings = Settings {
            data_dir: data_dir.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Settings::default()
        };
        let err = serve(settings).await.unwrap_err();
        assert!(err.to_string().contains("support_contact"), "{err:#}");
        assert!(!data_dir.exists(), "nothing is created before the refusal");
    }
}
