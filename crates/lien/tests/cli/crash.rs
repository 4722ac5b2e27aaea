//! The crash campaign's small version (the full one is `lien-crash`, RELIABILITY.md): this
//! binary's `lien serve`, killed with SIGKILL under concurrent financier writes three times on
//! SQLite and three times on PostgreSQL, and its own PostgreSQL stopped and killed under load.
//! After each fault: no acknowledged write lost, none applied twice, every retry under an
//! Idempotency-Key answered as the first time, every audit chain intact, every device and
//! phone in the state it must be in. And the checks themselves catch a lost and a duplicated
//! payment.

use std::path::PathBuf;

use lien_crash::api::{Answer, Api};
use lien_crash::server::{Server, ServerSpec, free_port};
use lien_crash::workload::{self, Client, PaymentModel, Via};
use lien_crash::{Backend, Campaign, CampaignReport, Findings, check};
use reqwest::Method;
use serde_json::json;

/// Where CI's PostgreSQL binaries are (`.ci/postgres.sh` installs them there).
const PG_BINDIR: &str = "/usr/lib/postgresql/15/bin";

fn campaign(backend: Backend, trials: u64) -> Campaign {
    Campaign {
        lien: PathBuf::from(env!("CARGO_BIN_EXE_lien")),
        seed: 1,
        trials,
        clients: 3,
        phones_per_client: 1,
        backend,
        fault_window_ms: (50, 800),
    }
}

/// PostgreSQL's URL, or `None` with a notice; in CI (`CI` set) its absence fails the test, so
/// the PostgreSQL trials cannot be skipped there unnoticed.
fn postgres_url() -> Option<String> {
    let url = std::env::var("LIEN_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "LIEN_TEST_POSTGRES_URL is not set in CI"
        );
        eprintln!("skipped: LIEN_TEST_POSTGRES_URL is not set");
    }
    url
}

fn assert_promises_kept(report: &CampaignReport, trials: u64, phones: u64) {
    assert_eq!(report.failed, Vec::new(), "every trial runs to its checks");
    assert_eq!(report.trials, trials);
    let f = &report.findings;
    assert_eq!(f.problems(), Vec::<String>::new(), "no promise broken");
    assert!(f.acknowledged > 0, "writes were acknowledged: {f:?}");
    assert!(
        f.unanswered > 0,
        "the fault came while writes were in flight: {f:?}"
    );
    assert_eq!(f.chains_verified, f.devices, "every audit chain verifies");
    assert_eq!(f.phones_converged, phones, "every phone converges");
    assert!(f.replays_matched > 0, "retries under a key were checked");
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_loses_nothing_acknowledged_and_applies_nothing_twice_across_sigkills() {
    let report = lien_crash::run(&campaign(Backend::Sqlite, 3), |_, _| {})
        .await
        .unwrap();
    assert_promises_kept(&report, 3, 3 * 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_loses_nothing_acknowledged_and_applies_nothing_twice_across_sigkills() {
    let Some(url) = postgres_url() else { return };
    let report = lien_crash::run(&campaign(Backend::Postgres(url), 3), |_, _| {})
        .await
        .unwrap();
    assert_promises_kept(&report, 3, 3 * 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_reports_errors_while_postgres_is_down_and_recovers_when_it_returns() {
    let bindir = PathBuf::from(std::env::var("LIEN_PG_BINDIR").unwrap_or(PG_BINDIR.into()));
    if !bindir.join("initdb").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} has no initdb in CI",
            bindir.display()
        );
        eprintln!("skipped: no PostgreSQL binaries in {}", bindir.display());
        return;
    }
    // Seed 1: the postmaster killed (`lien-crash --pg-restarts` also stops the cluster, on
    // even seeds). One trial: the server's pool waits 10 s for the database before answering.
    let report = lien_crash::run(&campaign(Backend::PostgresRestarts(bindir), 1), |_, _| {})
        .await
        .unwrap();
    assert_promises_kept(&report, 1, 3);
    assert_eq!(report.outages.len(), 1);
    for outage in &report.outages {
        assert!(outage.server_alive, "{outage:?}");
        assert_eq!(outage.readyz, Some(503), "{outage:?}");
        // Try again, not "we failed".
        assert_eq!(outage.payment, Some(503), "{outage:?}");
    }
}

/// The checks are not vacuous: a payment the model says was acknowledged but the server never
/// received is reported lost, and one the server took although the model says it refused is
/// reported as applied once too often.
#[tokio::test(flavor = "multi_thread")]
async fn the_checks_report_a_lost_and_a_duplicated_payment() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ServerSpec {
        lien: PathBuf::from(env!("CARGO_BIN_EXE_lien")),
        data_dir: dir.path().join("data"),
        port: free_port().unwrap(),
        database_url: None,
    };
    let _server = Server::start(&spec).unwrap();
    let admin = Api::new(&spec.base(), &spec.admin_key().unwrap());
    let (api, _) = lien_crash::trial::financier(&admin).await.unwrap();
    let mut device = workload::enroll(&api, "t", 0, 1).await;
    let id = device.id.clone().expect("enrolled");

    let acknowledged_but_never_sent = PaymentModel {
        reference: "NEVER-SENT".into(),
        amount: 1_000,
        key: "never-sent".into(),
        body: json!({"reference": "NEVER-SENT", "amount_minor": 1_000, "currency": "KES"}),
        via: Via::Api,
        answer: Answer::Acked {
            status: 200,
            text: "{}".into(),
        },
        resolved: None,
        reversal: None,
    };
    let body = json!({"reference": "TAKEN", "amount_minor": 2_000, "currency": "KES"});
    let taken = api
        .call(
            Method::POST,
            &format!("/v1/devices/{id}/payments"),
            Some("taken"),
            Some(&body),
        )
        .await;
    assert!(taken.is_acked(), "{taken:?}");
    let taken_but_said_refused = PaymentModel {
        reference: "TAKEN".into(),
        amount: 2_000,
        key: "taken".into(),
        body,
        via: Via::Api,
        answer: Answer::Refused {
            status: 409,
            text: "{}".into(),
        },
        resolved: None,
        reversal: None,
    };
    device.payments = vec![acknowledged_but_never_sent, taken_but_said_refused];
    let client = Client::new(0, api.clone(), 1, "t", vec![device], None);

    let mut findings = Findings::default();
    let listed = check::list_all(&api).await.unwrap();
    check::check(&api, &client, &listed, &mut findings).await;
    assert!(
        findings.lost.iter().any(|l| l.contains("NEVER-SENT")),
        "{findings:?}"
    );
    assert!(
        findings.duplicates.iter().any(|d| d.contains("TAKEN")),
        "{findings:?}"
    );
    assert!(!findings.diverged.is_empty(), "the money does not add up");
    assert_eq!(findings.chains_verified, 1);
}
