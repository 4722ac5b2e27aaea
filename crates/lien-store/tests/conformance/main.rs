//! The storage conformance suite: one list of checks, written once against `dyn Store`, run
//! against every backend.
//!
//! Each check gets a fresh, empty database: a new SQLite file always, and a new PostgreSQL
//! database when `LIEN_TEST_POSTGRES_URL` names a server to create it on (CI sets it; locally
//! `bash -c 'source .ci/postgres.sh && cargo test -p lien-store'`). A check becomes one test per
//! backend, `sqlite::<check>` and `postgres::<check>`, so a failure names both.

mod checks;
mod fixtures;
mod mobile_money;
mod people;
mod webhooks;

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use lien_store::{SqlStore, Store, StoreError};
use sqlx::{AssertSqlSafe, Connection, Executor};

/// A fresh store, and the URL it was opened with (to open it again, or to look at a table the
/// `Store` traits write but never read back).
#[derive(Clone)]
pub struct Db {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// The URL `store` was opened with.
    pub url: String,
}

impl Deref for Db {
    type Target = dyn Store;

    fn deref(&self) -> &(dyn Store + 'static) {
        &*self.store
    }
}

impl Db {
    /// The first column of the first row of `sql`, with `device` bound to `$1`.
    pub async fn count(&self, sql: &'static str, device: &str) -> i64 {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url));
        sqlx::query_scalar(sql)
            .bind(device.to_string())
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// The store at `url`, opened as the server opens it.
async fn open(url: String) -> Db {
    let store = SqlStore::open(&url)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e:?}"));
    Db {
        store: Arc::new(store),
        url,
    }
}

/// Runs `check` on a new SQLite file, which lives as long as the check.
async fn on_sqlite<F, Fut>(check: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}/t.db", dir.path().display());
    check(open(url).await).await;
}

/// Runs `check` on a new database of the PostgreSQL server named by `LIEN_TEST_POSTGRES_URL`,
/// or says it is skipped when the variable is unset. A random name keeps reruns and parallel
/// tests apart; the database is dropped when the check passes and kept (its name is printed)
/// when it fails.
async fn on_postgres<F, Fut>(name: &str, check: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let Ok(server) = std::env::var("LIEN_TEST_POSTGRES_URL") else {
        eprintln!("postgres::{name} skipped: LIEN_TEST_POSTGRES_URL is not set");
        return;
    };
    let mut database = format!("lien_conf_{}_{name}", random_hex());
    database.truncate(63); // PostgreSQL's longest identifier
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("connecting to LIEN_TEST_POSTGRES_URL: {e}"));
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {database}: {e}"));
    eprintln!("postgres::{name}: database {database}");
    let url = with_database(&server, &database);
    check(open(url).await).await;
    // FORCE ends the store's pooled connections, which outlive the check.
    admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE {database} WITH (FORCE)"
        )))
        .await
        .unwrap_or_else(|e| panic!("DROP DATABASE {database}: {e}"));
}

/// `url` with its database (the path) replaced by `database`, its options kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, options) = match url.split_once('?') {
        Some((base, options)) => (base, format!("?{options}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    format!("{server}/{database}{options}")
}

/// 16 hex digits that differ between runs and between tests of one run.
fn random_hex() -> String {
    use std::hash::{BuildHasher, RandomState};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos();
    // RandomState is seeded randomly per process and differs per call.
    format!(
        "{:016x}",
        RandomState::new().hash_one((std::process::id(), now))
    )
}

/// Declares every check as one test per backend.
macro_rules! conformance {
    ($($check:ident),+ $(,)?) => {
        /// The checks on SQLite.
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::on_sqlite(super::checks::$check).await;
                }
            )+
        }

        /// The checks on PostgreSQL, when `LIEN_TEST_POSTGRES_URL` is set.
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::on_postgres(stringify!($check), super::checks::$check).await;
                }
            )+
        }
    };
}

conformance![
    reopening_keeps_schema_and_data,
    financiers_and_api_keys,
    api_keys_list_revoke_and_last_use,
    concurrent_revocations_keep_one_platform_admin,
    enroll_stores_decision_token_and_audit,
    enroll_refuses_a_financed_imei,
    enroll_refuses_a_taken_contract_ref,
    enroll_needs_a_decision,
    payment_is_recorded,
    duplicate_payment_writes_nothing,
    refused_change_writes_nothing,
    token_sequence_must_increase,
    binding_counts_generations,
    reversal_policy_and_ocra_counter,
    release_frees_the_imeis,
    overrides_are_added_and_updated,
    applied_sequence_and_events,
    audit_chains_verify_and_show_tampering,
    idempotent_response_is_kept_once,
    list_devices_filters,
    list_devices_pages_by_cursor,
    checkin_view_and_last_seen,
    tokens_by_status_code,
    recent_status_codes_leave_superseded_ones_out,
    claim_due_claims_once_until_updated,
    next_due_is_the_earliest_evaluation,
    concurrent_payments_all_apply,
    concurrent_claims_are_disjoint,
    checkin_views_follow_writes,
    batched_changes_are_each_all_or_nothing,
    a_batch_sees_each_device_as_a_single_read_does,
    a_group_enrolls_all_or_none,
    a_change_decided_on_a_stale_read_is_left_out,
    a_write_finishes_when_its_caller_gives_up,
    committed_token_changes_are_announced,
    appeals_are_written_with_the_change_and_answered_once,
    mpesa_endpoints_are_found_by_token_and_rotated,
    devices_are_found_by_contract_ref,
    unmatched_payments_are_kept_once_and_assigned_once,
    unmatched_payments_are_listed_in_pages,
    payment_providers_are_named_once_and_remember_webhook_ids,
    provider_payments_are_found_by_their_idempotency_key,
    attachments_are_kept_whole_by_key,
    warm_up_keeps_no_view_older_than_a_write,
    webhook_events_are_written_with_the_change_and_delivered_once_in_order,
    webhook_endpoints_are_capped_under_concurrent_creation_and_audited,
    webhook_claims_leave_room_for_other_endpoints,
    webhook_claims_leave_room_for_other_financiers,
    old_webhook_events_are_pruned_in_batches,
    invitations_are_accepted_once_and_sessions_end,
    portfolios_are_counted_per_financier_and_never_overflow,
    activity_pages_hold_their_order_across_ties,
    arrears_are_grouped_by_age,
    locks_and_unlocks_are_counted_by_day,
    payments_are_acknowledged_by_the_phone_once,
];

/// Backend-independent: the scheme decides the backend, and an unknown one is refused by name.
#[tokio::test]
async fn unknown_url_scheme_is_unsupported() {
    for (url, scheme) in [("mysql://x", "mysql"), ("postgres-ish:db", "postgres-ish")] {
        match SqlStore::open(url).await {
            Err(StoreError::UnsupportedUrl(message)) => {
                assert!(message.contains(scheme), "{url}: {message}")
            }
            other => panic!("{url}: expected UnsupportedUrl, got {other:?}"),
        }
    }
}

#[test]
fn with_database_replaces_only_the_path() {
    assert_eq!(
        with_database("postgres://u@h:5432/lien_test", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/db?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}
