//! One trial: a server on a fresh database, a financier, phones bound to some of its
//! devices, concurrent clients writing, a fault at a seeded moment, then the checks.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lien_agent::sim::{HttpTransport, Phone, SimClock, factory_identity};
use lien_agent::{AgentConfig, Identity, MemoryStorage};
use lien_proto::attestation::DevelopmentRoot;
use reqwest::Method;
use serde_json::json;

use crate::api::{Answer, Api};
use crate::check::{self, Findings};
use crate::pg::Cluster;
use crate::server::{Server, ServerSpec, free_port};
use crate::workload::{self, Client};

/// The fault a trial injects while the clients write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the `lien serve` process, then start it again on the same data.
    KillServer,
    /// Stop the campaign's own PostgreSQL cluster with `pg_ctl stop -m immediate`, then start
    /// it again; the server keeps running.
    StopPostgres,
    /// SIGKILL the campaign's own cluster's postmaster, then start it again.
    KillPostmaster,
}

/// What a trial runs on.
pub struct TrialSpec {
    /// The `lien` binary.
    pub lien: PathBuf,
    /// The seed: the clients' choices, the devices, the moment of the fault.
    pub seed: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// Devices with a bound simulated phone, per client.
    pub phones_per_client: usize,
    /// PostgreSQL database URL (a fresh database), or `None` for SQLite.
    pub database_url: Option<String>,
    /// The fault.
    pub fault: Fault,
    /// The cluster to stop or kill, for the PostgreSQL faults.
    pub cluster: Option<Arc<Cluster>>,
    /// The fault comes this many milliseconds after the writes start, drawn from the seed
    /// within this range.
    pub fault_window_ms: (u64, u64),
}

/// What a trial did and found.
#[derive(Debug, Clone)]
pub struct TrialReport {
    /// The trial's seed.
    pub seed: u64,
    /// The fault.
    pub fault: Fault,
    /// When it came, after the writes started.
    pub fault_after_ms: u64,
    /// Writes the clients sent.
    pub writes_sent: u64,
    /// For a PostgreSQL fault: how the server answered while the database was away
    /// (`/readyz` and a payment), and how long it took to answer again once it was back.
    pub outage: Option<Outage>,
    /// The checks.
    pub findings: Findings,
}

/// The server while its database was away.
#[derive(Debug, Clone)]
pub struct Outage {
    /// `/readyz`'s status (503 expected).
    pub readyz: Option<u16>,
    /// The status a payment got (503 expected: try again; `None` for no answer).
    pub payment: Option<u16>,
    /// How long the server took to give both answers.
    pub answered_in_ms: u64,
    /// Whether the `lien serve` process was still running.
    pub server_alive: bool,
    /// From the database's start to the server's first `/readyz` 200.
    pub recovered_after_ms: u64,
}

/// Runs one trial.
pub async fn run(spec: &TrialSpec) -> Result<TrialReport> {
    let data = tempfile::Builder::new().prefix("lien-crash").tempdir()?;
    let server_spec = ServerSpec {
        lien: spec.lien.clone(),
        data_dir: data.path().join("data"),
        port: free_port()?,
        database_url: spec.database_url.clone(),
    };
    let server = Arc::new(Mutex::new(Server::start(&server_spec)?));
    let result = run_on(spec, &server_spec, &server).await;
    let mut server = server.lock().unwrap_or_else(|e| e.into_inner());
    match result {
        Ok(report) => {
            server.kill();
            Ok(report)
        }
        Err(e) => {
            let tail = server.log_tail();
            server.kill();
            Err(e.context(format!("the server's last log lines:\n{tail}")))
        }
    }
}

async fn run_on(
    spec: &TrialSpec,
    server_spec: &ServerSpec,
    server: &Arc<Mutex<Server>>,
) -> Result<TrialReport> {
    let base = server_spec.base();
    let admin = Api::new(&base, &server_spec.admin_key()?);
    let (api, financier_id) = financier(&admin).await?;
    let provider = workload::Provider::create(&api, &financier_id).await?;
    let tag = format!("s{}", spec.seed);
    let mut rng = fastrand::Rng::with_seed(spec.seed);

    // Devices with phones, enrolled and bound before any fault can come.
    let root = DevelopmentRoot::from_pem(
        &std::fs::read_to_string(server_spec.data_dir.join("dev-attestation-root.pem"))
            .context("the server's development attestation root")?,
    )?;
    let mut phones = Vec::new();
    let mut clients = Vec::new();
    for c in 0..spec.clients {
        let mut devices = Vec::new();
        for n in 0..spec.phones_per_client as u64 {
            let mut device = workload::enroll(&api, &tag, c, n).await;
            if !device.enrolled.is_acked() {
                bail!("enrolling before the fault: {:?}", device.enrolled);
            }
            let identity = Identity {
                imei1: device.imei.clone(),
                imei2: None,
                serial: device.serial.clone(),
                model: "Crash Phone".into(),
            };
            let factory = factory_identity(&root, &identity, jiff::Timestamp::now().as_second());
            let mut phone = Phone::new(
                HttpTransport::new(&base),
                identity,
                factory,
                Box::new(MemoryStorage::new()),
                SimClock::real(),
                AgentConfig::default(),
                Some(spec.seed ^ ((c as u64) << 16 | n)),
            );
            phone.run_due().await;
            if phone.status().token.is_none() {
                bail!("phone {} did not bind: {:?}", device.imei, phone.status());
            }
            device.phone = Some(phones.len());
            phones.push(phone);
            devices.push(device);
        }
        let client_seed = spec.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ c as u64;
        clients.push(Client::new(
            c,
            api.clone(),
            client_seed,
            &tag,
            devices,
            Some(provider.clone()),
        ));
    }

    // The writes, and the fault at a seeded moment.
    let (low, high) = spec.fault_window_ms;
    let fault_after_ms = rng.u64(low..high.max(low + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for mut client in clients {
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let sent = client.run(stop, u64::MAX).await;
            (client, sent)
        }));
    }
    let faulted = Arc::new(AtomicBool::new(false));
    let injector = {
        let faulted = faulted.clone();
        let server = server.clone();
        let cluster = spec.cluster.clone();
        let fault = spec.fault;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(fault_after_ms)).await;
            let outcome =
                tokio::task::spawn_blocking(move || inject(fault, &server, cluster.as_deref()))
                    .await
                    .context("the fault's thread")?;
            faulted.store(true, Ordering::SeqCst);
            outcome
        })
    };
    // The phones check in meanwhile, so reports of applied tokens are written under the fault too.
    while !faulted.load(Ordering::SeqCst) && !phones.is_empty() {
        let i = rng.usize(0..phones.len());
        phones[i].check_again().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    injector.await.context("the fault's task")??;
    let mut clients = Vec::new();
    let mut writes_sent = 0;
    for handle in handles {
        let (client, sent) = handle.await.context("a client's task")?;
        writes_sent += sent;
        clients.push(client);
    }

    // Recovery: the server started again, or the database.
    let outage = match spec.fault {
        Fault::KillServer => {
            let mut server = server.lock().unwrap_or_else(|e| e.into_inner());
            *server = Server::start(server_spec)?;
            None
        }
        Fault::StopPostgres | Fault::KillPostmaster => {
            let cluster = spec
                .cluster
                .as_ref()
                .context("a PostgreSQL fault needs a cluster")?;
            Some(outage(&api, &mut clients[0], server, cluster).await?)
        }
    };

    let mut findings = Findings::default();
    check::count_sent(&clients, &mut findings);
    if let Some(outage) = &outage {
        if outage.readyz != Some(503) {
            findings.other.push(format!(
                "/readyz answered {:?} while the database was away",
                outage.readyz
            ));
        }
        if outage.payment.is_some_and(|s| s != 503) {
            findings.other.push(format!(
                "a payment was answered {:?} while the database was away",
                outage.payment
            ));
        }
        if !outage.server_alive {
            findings
                .other
                .push("lien serve exited while the database was away".into());
        }
    }
    for client in &mut clients {
        check::settle(&api, client, &mut findings).await;
    }
    let listed = check::list_all(&api).await?;
    for client in &clients {
        check::check(&api, client, &listed, &mut findings).await;
    }
    let expected: usize = clients
        .iter()
        .map(|c| c.devices.iter().filter(|d| d.id.is_some()).count())
        .sum();
    let listed_count: usize = listed.values().map(Vec::len).sum();
    if listed_count != expected {
        findings.duplicates.push(format!(
            "{listed_count} devices listed, {expected} enrolled by the clients"
        ));
    }

    // Every phone converges: it holds the server's latest token, in the expected state.
    for client in &clients {
        for device in &client.devices {
            let (Some(p), Some(id)) = (device.phone, &device.id) else {
                continue;
            };
            let phone = &mut phones[p];
            phone.check_again().await;
            let view = api.get(&format!("/v1/devices/{id}")).await?;
            let held = phone
                .status()
                .token
                .map(|(s, seq)| (s.as_str().to_string(), seq));
            let server_seq = view["token_sequence"].as_u64();
            let expected = device.expected_state();
            match held {
                Some((state, seq)) if Some(seq) == server_seq && Some(&state) == expected.as_ref() => {
                    findings.phones_converged += 1;
                }
                _ => findings.diverged.push(format!(
                    "phone of {id} holds {held:?}, the server's token is {server_seq:?}, expected state {expected:?}; phone: {:?}",
                    phone.status().last_error
                )),
            }
        }
    }
    Ok(TrialReport {
        seed: spec.seed,
        fault: spec.fault,
        fault_after_ms,
        writes_sent,
        outage,
        findings,
    })
}

/// The fault itself (blocking: it runs processes).
fn inject(fault: Fault, server: &Mutex<Server>, cluster: Option<&Cluster>) -> Result<()> {
    match fault {
        Fault::KillServer => {
            server.lock().unwrap_or_else(|e| e.into_inner()).kill();
            Ok(())
        }
        Fault::StopPostgres => cluster.context("no cluster")?.stop_immediate(),
        Fault::KillPostmaster => cluster.context("no cluster")?.kill_postmaster(),
    }
}

/// While the database is away: what the server answers (a payment, sent as client 0's, is
/// settled after like any lost write); then the database starts again and the server must
/// answer again without a restart.
async fn outage(
    api: &Api,
    client: &mut Client,
    server: &Arc<Mutex<Server>>,
    cluster: &Arc<Cluster>,
) -> Result<Outage> {
    // Both at once: each waits for the server's pool to give up on the database.
    let asked = Instant::now();
    let (readyz, payment) = tokio::join!(api.status_of("/readyz"), client.pay_any());
    let answered_in_ms = asked.elapsed().as_millis() as u64;
    let server_alive = server
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_running();
    let cluster_for_start = cluster.clone();
    tokio::task::spawn_blocking(move || cluster_for_start.start())
        .await
        .context("starting the cluster")??;
    let back = Instant::now();
    loop {
        if api.status_of("/readyz").await == Some(200) {
            break;
        }
        if back.elapsed() > Duration::from_secs(120) {
            bail!("the server did not answer /readyz 200 within 120 s of the database's return");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Outage {
        readyz,
        payment: payment.status().or(payment.server_error()),
        server_alive,
        answered_in_ms,
        recovered_after_ms: back.elapsed().as_millis() as u64,
    })
}

/// A financier and a financier-admin key for it, and its id.
pub async fn financier(admin: &Api) -> Result<(Api, String)> {
    let financier = match admin
        .call(
            Method::POST,
            "/v1/financiers",
            None,
            Some(&json!({"name": "Duka Phones", "contact": "+254 700 000 000", "payment_link": "https://pay.example/duka"})),
        )
        .await
    {
        a @ Answer::Acked { .. } => a.json().context("the financier's JSON")?,
        other => bail!("creating the financier: {other:?}"),
    };
    let id = financier["id"].as_str().context("the financier's id")?;
    let key = match admin
        .call(
            Method::POST,
            &format!("/v1/financiers/{id}/api-keys"),
            None,
            Some(&json!({"role": "financier-admin", "label": "crash campaign"})),
        )
        .await
    {
        a @ Answer::Acked { .. } => a.json().context("the key's JSON")?,
        other => bail!("creating the API key: {other:?}"),
    };
    Ok((
        admin.with_key(key["key"].as_str().context("the key")?),
        id.to_string(),
    ))
}
