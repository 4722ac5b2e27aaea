//! `lien admin-key`: the platform's API keys, straight from the database.
//!
//! The platform admin key is printed once, at the first start. An operator who lost it (or
//! whose admin keys all expired) makes a new one here, with the same settings as `lien serve`
//! (`--config`, `--data-dir`, `--database-url`, `LIEN_*`). Whoever can run this can read the
//! database anyway; the key is printed to the terminal and only its hash is stored. Creation and
//! revocation are audited in the platform's chain, as over the API, by the actor
//! `lien admin-key`.

use anyhow::{Context, Result};
use lien_server::auth::Role;
use lien_server::clock::{Clock, SystemClock};
use lien_server::wire::ApiKeyStatus;

use crate::serve::SettingsArgs;

/// Who the audit log says acted.
const ACTOR: &str = "lien admin-key";

/// What to do with the platform's keys.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create a new platform admin key and print it; it is shown this once.
    Create {
        #[command(flatten)]
        settings: SettingsArgs,
        /// What the key is for, as the key list shows it.
        #[arg(long, default_value = "created with lien admin-key")]
        label: String,
    },
    /// List the platform's keys (platform admins and support): ids and dates, never the keys.
    List {
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Revoke a key by its id (`key_...`, as listed; a financier's key too). The last active
    /// platform admin key is kept: create another one first.
    Revoke {
        #[command(flatten)]
        settings: SettingsArgs,
        /// The key's id.
        id: String,
    },
}

/// Runs the subcommand on a runtime of its own.
pub fn run(command: Command) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run_async(command))
}

async fn run_async(command: Command) -> Result<()> {
    let now = SystemClock.now();
    match command {
        Command::Create { settings, label } => {
            let store = lien_server::open_store(&settings.load()?).await?;
            let label = label.trim().to_string();
            anyhow::ensure!(!label.is_empty(), "--label must not be empty");
            let created = lien_server::api_keys::issue(
                store.as_ref(),
                now,
                ACTOR,
                Role::PlatformAdmin,
                None,
                label,
                None,
            )
            .await
            .context("creating the key")?;
            println!(
                "Created platform admin API key {}. It is shown this once; keep it safe:\n",
                created.id
            );
            println!("    {}\n", created.key);
        }
        Command::List { settings } => {
            let store = lien_server::open_store(&settings.load()?).await?;
            println!(
                "{:<18} {:<15} {:<8} {:<21} {:<21} LABEL",
                "ID", "ROLE", "STATUS", "CREATED", "LAST USED"
            );
            for key in store.api_keys(None).await? {
                let view = lien_server::api_keys::view(&key, now)?;
                let status = match view.status {
                    ApiKeyStatus::Active => "active",
                    ApiKeyStatus::Expired => "expired",
                    ApiKeyStatus::Revoked => "revoked",
                };
                println!(
                    "{:<18} {:<15} {:<8} {:<21} {:<21} {}",
                    view.id,
                    view.role.name(),
                    status,
                    view.created_at,
                    view.last_used_at.as_deref().unwrap_or("never"),
                    view.label
                );
            }
        }
        Command::Revoke { settings, id } => {
            let store = lien_server::open_store(&settings.load()?).await?;
            let key = match store.api_key(&id).await {
                Err(lien_store::StoreError::NotFound) => {
                    anyhow::bail!("no API key has the id {id}")
                }
                other => other?,
            };
            let revoked = lien_server::api_keys::revoke(store.as_ref(), now, ACTOR, &key)
                .await
                .with_context(|| format!("revoking {id}"))?;
            let view = lien_server::api_keys::view(&revoked, now)?;
            println!(
                "Revoked {} ({}) at {}.",
                view.id,
                view.label,
                view.revoked_at.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}
