//! `lien serve`: the server, configured by defaults, `lien.toml`, `LIEN_*` variables and flags.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use lien_server::config::Settings;

/// Flags of `lien serve`; each overrides the file and the environment.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    settings: SettingsArgs,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
}

/// The flags that say where the settings and the database are, shared by every command that
/// opens the database (`serve`, `admin-key`) so that they all find the same one.
#[derive(Debug, clap::Args)]
pub struct SettingsArgs {
    /// A TOML settings file (default: ./lien.toml, if present).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the SQLite database and the server's keys live [default: ./lien-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in the data directory].
    #[arg(long)]
    database_url: Option<String>,
}

impl SettingsArgs {
    /// Defaults, then the file, then `LIEN_*` variables, then these flags.
    pub fn load(self) -> Result<Settings> {
        let mut settings: Settings = Settings::figment(self.config.as_deref())
            .extract()
            .context("reading the settings")?;
        if let Some(dir) = self.data_dir {
            settings.data_dir = dir;
        }
        if let Some(url) = self.database_url {
            settings.database_url = Some(url);
        }
        Ok(settings)
    }
}

/// Reads the settings in their layers and runs the server until Ctrl-C.
pub fn run(args: Args) -> Result<()> {
    let mut settings = args.settings.load()?;
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    // Logs go to stderr, so that stdout carries only what is meant for the operator (the
    // first start's admin key) and can be captured on its own.
    // Colour only on a terminal: a redirected log gets plain text, not escape codes.
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LIEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn")),
        )
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(lien_server::serve(settings))
}
