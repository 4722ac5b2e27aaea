//! Settings, in layers: defaults, then a TOML file, then `LIEN_*` environment variables,
//! then command-line flags (applied by the caller).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything `lien serve` can be told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the SQLite database and the server's keys live.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default: `lien.db` in the data directory.
    pub database_url: Option<String>,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// How often a phone checks in, in seconds.
    pub checkin_interval_secs: u64,
    /// How far a device's request time may be from the server's, in seconds.
    pub request_window_secs: u64,
    /// How long a release waits before it becomes final, in hours.
    pub release_cancel_hours: u64,
    /// How many due devices the scheduler evaluates per batch.
    pub scheduler_batch: u32,
    /// How often the scheduler looks for due devices, in milliseconds.
    pub scheduler_interval_ms: u64,
    /// The platform's support contact (a phone number, an e-mail or a web address), shown on
    /// the borrower pages and in IMEI checks. The default is a placeholder that only the
    /// development default ([`Settings::is_development_default`]) may start with.
    pub support_contact: String,
    /// Public requests (IMEI checks, appeals, page look-ups) per client (IPv4 address or IPv6
    /// /64) and minute; 0 switches the limit off.
    pub public_rate_per_minute: u32,
    /// How many public requests a client may make at once before the rate applies.
    pub public_rate_burst: u32,
    /// Hours a financier has to answer an appeal, unless the device's policy says otherwise.
    pub appeal_response_hours: u32,
    /// Hours of provisional unlock an unanswered payment appeal grants at its deadline, unless
    /// the policy says otherwise; never more than the policy's lease.
    pub appeal_unlock_hours: u32,
    /// The largest document accepted with an appeal, in bytes.
    pub appeal_upload_max_bytes: u64,
    /// Where appeal documents are kept: `local` (files under the data directory, the default)
    /// or `database` (a table of the database). Several servers on one PostgreSQL need
    /// `database`: a local document can be downloaded only from the server that received it.
    pub attachment_store: crate::attachments::AttachmentStoreKind,
    /// Hours after a rejected appeal before a new appeal about the same phone may be opened.
    pub appeal_cooldown_hours: u32,
    /// Hours a superseded status code still matches on the public pages and for appeals, so
    /// that a phone that has not yet checked in for its new token can still be looked up and
    /// appealed for. Support's authenticated look-up sees every code.
    pub status_code_grace_hours: u32,
    /// Hellos (and hello challenges) per client (IPv4 address or IPv6 /64) and minute, after a
    /// first burst; 0 switches the limit off.
    pub hello_rate_per_minute: u32,
    /// How many hellos a client may make at once before the rate applies.
    pub hello_rate_burst: u32,
    /// PEM files of the attestation roots phones' hellos must lead to (Google's hardware
    /// attestation roots, or a phone maker's). Empty: a development root in the data directory,
    /// for simulated phones only.
    pub attestation_roots: Vec<PathBuf>,
    /// Where Google's attestation status list (revoked and suspended attestation certificates)
    /// is read, every hour: `https://android.googleapis.com/attestation/status` (an `http://`
    /// URL only for a mirror on a network the operator trusts), or a file kept up to date by
    /// other means. The last list read is kept in the data directory. Unset: revocation is not
    /// checked.
    pub attestation_status: Option<String>,
    /// How long a client may take to send a whole request (headers and body) and get the
    /// start of its answer, in seconds; a slower one gets a 408 and is disconnected.
    pub request_timeout_secs: u64,
    /// Open connections beyond this many are answered 503 and closed at once. Each phone with
    /// a push channel holds one.
    pub max_connections: u32,
    /// Of those, how many one client (an IPv4 address or an IPv6 /64) may hold; 0: no share
    /// limit. Phones behind a carrier's NAT share an address, so keep it well above the phones
    /// one address carries; trusted proxies are not limited by it.
    pub max_connections_per_client: u32,
    /// A bearer token `/metrics` asks for. With neither this nor `metrics_listen`, the main
    /// address does not serve metrics.
    pub metrics_token: Option<String>,
    /// A separate address that serves only `/metrics`, without a token (bind it to a private
    /// interface).
    pub metrics_listen: Option<SocketAddr>,
    /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For` names the client
    /// for the per-client limits. Empty: the connection's peer is the client, and the header
    /// is ignored (see `client_addr`).
    pub trusted_proxies: Vec<crate::client_addr::TrustedProxy>,
    /// How often the webhook worker looks for events to deliver, in milliseconds.
    pub webhook_interval_ms: u64,
    /// How long one webhook attempt may take, in seconds (at most 30: a claim lasts 60).
    pub webhook_timeout_secs: u64,
    /// How many webhook attempts one server makes at once.
    pub webhook_concurrency: u32,
    /// Of those, how many may go to one endpoint at once, so that a receiver that hangs holds
    /// only these few until their timeout and the rest keep serving other financiers.
    pub webhook_endpoint_concurrency: u32,
    /// Of those, how many may go to one financier's endpoints together, so that a financier
    /// with many hanging receivers still leaves the rest to the other financiers.
    pub webhook_financier_concurrency: u32,
    /// Whether webhook endpoints may be plain `http://` URLs, and may be (or resolve to)
    /// this machine or a private network. Off by default: events carry contract references
    /// and amounts, and the server must not be made to post into its own network. For
    /// development and tests only.
    pub webhook_allow_http: bool,
    /// PEM files of certificate authorities trusted for webhook receivers besides the
    /// operating system's roots (a financier's private CA; tests' own).
    pub webhook_extra_roots: Vec<PathBuf>,
    /// After a secret rotation, how many hours the previous secret still signs beside the new
    /// one (1 to 720), so that a receiver can switch at its own pace.
    pub webhook_rotation_overlap_hours: u32,
    /// How many days delivered events and their delivery log are kept (at least 1).
    pub webhook_retention_days: u32,
    /// Whether the console's cookies may travel over plain `http://` to a server not on this
    /// machine (a shop's own network without TLS). Off by default: the session cookie is
    /// `Secure`, and the console is reached over HTTPS (or on `localhost`, which browsers treat
    /// as secure).
    pub console_allow_http: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            database_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            checkin_interval_secs: 6 * 3600,
            request_window_secs: 300,
            release_cancel_hours: 72,
            scheduler_batch: 1000,
            scheduler_interval_ms: 1000,
            support_contact: PLACEHOLDER_SUPPORT_CONTACT.to_string(),
            public_rate_per_minute: 30,
            public_rate_burst: 10,
            appeal_response_hours: 72,
            appeal_unlock_hours: 7 * 24,
            appeal_upload_max_bytes: 5 * 1024 * 1024,
            attachment_store: crate::attachments::AttachmentStoreKind::Local,
            appeal_cooldown_hours: 72,
            status_code_grace_hours: 24,
            hello_rate_per_minute: 60,
            hello_rate_burst: 30,
            attestation_roots: Vec::new(),
            attestation_status: None,
            request_timeout_secs: 30,
            max_connections: 50_000,
            max_connections_per_client: 1_000,
            metrics_token: None,
            metrics_listen: None,
            trusted_proxies: Vec::new(),
            webhook_interval_ms: 1000,
            webhook_timeout_secs: 10,
            webhook_concurrency: 16,
            webhook_endpoint_concurrency: 2,
            webhook_financier_concurrency: 4,
            webhook_allow_http: false,
            webhook_extra_roots: Vec::new(),
            webhook_rotation_overlap_hours: 24,
            webhook_retention_days: 30,
            console_allow_http: false,
        }
    }
}

/// The default `support_contact`: words, not a way to reach anyone.
pub const PLACEHOLDER_SUPPORT_CONTACT: &str = "the phone maker's support";

/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "lien-data";

/// A setting a deployment must give but did not.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// `support_contact` is empty or the placeholder outside the development default.
    #[error(
        "support_contact is not set: borrowers and buyers would be told to call {0:?}. Set \
         support_contact (in lien.toml, or LIEN_SUPPORT_CONTACT) to a phone number, e-mail or \
         web address where your support answers. Only the development default (listening on a \
         loopback address, with the default data directory and database) may start without it."
    )]
    SupportContact(String),
}

impl Settings {
    /// Whether these settings are the development default: a server that listens only on a
    /// loopback address (so nobody else reaches it) and keeps its data in the default SQLite
    /// database of the default data directory (so it is the newcomer's `lien serve` of the
    /// README, not a deployment). Anything else is a deployment, held to its checks.
    pub fn is_development_default(&self) -> bool {
        self.listen.ip().is_loopback()
            && self.database_url.is_none()
            && self.data_dir == Path::new(DEFAULT_DATA_DIR)
    }

    /// Refuses settings a deployment must not start with: an empty or placeholder
    /// `support_contact` (the pages would send borrowers nowhere), except in the development
    /// default.
    pub fn check_deployment(&self) -> Result<(), SettingsError> {
        let contact = self.support_contact.trim();
        let placeholder = contact.is_empty() || contact == PLACEHOLDER_SUPPORT_CONTACT;
        if placeholder && !self.is_development_default() {
            return Err(SettingsError::SupportContact(self.support_contact.clone()));
        }
        Ok(())
    }

    /// Defaults, overlaid with `file` (if given, it must exist; else `lien.toml` if present),
    /// then with `LIEN_*` environment variables (`LIEN_DATABASE_URL`, `LIEN_LISTEN`, ...).
    pub fn figment(file: Option<&Path>) -> Figment {
        let figment = Figment::from(Serialized::defaults(Settings::default()));
        let figment = match file {
            Some(path) => figment.merge(Toml::file_exact(path)),
            None => figment.merge(Toml::file("lien.toml")),
        };
        figment.merge(Env::prefixed("LIEN_").ignore(&["test_postgres_url", "log"]))
    }

    /// The database URL to use: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("lien.db").display()),
        }
    }
}

#[cfg(test)]
// figment's test jail returns figment's own error type, which is large; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "lien.toml",
                "listen = \"0.0.0.0:9000\"\nrelease_cancel_hours = 24\n",
            )?;
            jail.set_env("LIEN_RELEASE_CANCEL_HOURS", "48");
            let settings: Settings = Settings::figment(None).extract()?;
            assert_eq!(settings.listen, "0.0.0.0:9000".parse().unwrap());
            assert_eq!(
                settings.release_cancel_hours, 48,
                "the environment beats the file"
            );
            assert_eq!(
                settings.checkin_interval_secs,
                6 * 3600,
                "defaults fill the rest"
            );
            Ok(())
        });
    }

    #[test]
    fn only_the_development_default_may_keep_the_placeholder_support_contact() {
        let dev = Settings::default();
        assert!(dev.is_development_default());
        assert_eq!(dev.check_deployment(), Ok(()));
        let deployments = [
            Settings {
                listen: "0.0.0.0:8080".parse().unwrap(),
                ..Settings::default()
            },
            Settings {
                data_dir: "/var/lib/lien".into(),
                ..Settings::default()
            },
            Settings {
                database_url: Some("postgres://lien@db/lien".into()),
                ..Settings::default()
            },
        ];
        for deployment in deployments {
            assert!(!deployment.is_development_default(), "{deployment:?}");
            let err = deployment.check_deployment().unwrap_err();
            assert!(
                err.to_string().starts_with("support_contact is not set"),
                "{err}"
            );
            let blank = Settings {
                support_contact: "  ".into(),
                ..deployment.clone()
            };
            assert!(blank.check_deployment().is_err());
            let real = Settings {
                support_contact: "+254 20 000 0000, help@maker.example".into(),
                ..deployment
            };
            assert_eq!(real.check_deployment(), Ok(()));
        }
    }

    #[test]
    fn a_misspelt_setting_is_an_error_that_names_it() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("lien.toml", "lisen = \"0.0.0.0:9000\"\n")?;
            let err = Settings::figment(None).extract::<Settings>().unwrap_err();
            assert!(err.to_string().contains("lisen"), "{err}");
            Ok(())
        });
    }
}
