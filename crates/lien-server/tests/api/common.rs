//! Spawns a real server on a free port with a fresh database and a clock the test moves.

/// Defines, for each scenario `fn(Backend)`, a test on SQLite and one on PostgreSQL; the
/// latter is skipped, with a notice, unless LIEN_TEST_POSTGRES_URL is set (CI sets it).
/// The module that uses it must have `Backend` and `postgres_url` in scope.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                super::$scenario(Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                if postgres_url().is_none() {
                    eprintln!("skipped: LIEN_TEST_POSTGRES_URL is not set");
                    return;
                }
                super::$scenario(Backend::Postgres).await;
            }
        }
    )*};
}

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use lien_proto::attestation::{DevelopmentRoot, FactoryIdentity};
use lien_server::app::{AppState, Running, start};
use lien_server::clock::ManualClock;
use lien_server::config::Settings;
use lien_server::secrets::Secrets;
use lien_store::{SqlStore, Store};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Executor};

/// The `metrics_token` test servers ask for at `/metrics`.
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server, its clock, an HTTP client and the platform admin's key.
pub struct TestApp {
    pub base: String,
    pub clock: ManualClock,
    pub client: reqwest::Client,
    pub admin_key: String,
    pub running: Running,
    _dir: tempfile::TempDir,
}

/// The PostgreSQL server URL for tests, or `None` (the test then says it is skipped).
pub fn postgres_url() -> Option<String> {
    std::env::var("LIEN_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

async fn fresh_postgres_database(server: &str) -> String {
    let name = format!(
        "lien_srv_{}",
        hex::encode(lien_server::secrets::random_bytes().unwrap())
            .get(..12)
            .unwrap()
    );
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .expect("PostgreSQL is reachable");
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create the test database");
    let (base, _) = server.rsplit_once('/').expect("URL has a database");
    format!("{base}/{name}")
}

/// Starts a server on `backend` at `start_time`.
pub async fn spawn_app(backend: Backend, start_time: Timestamp) -> TestApp {
    spawn_app_with(backend, start_time, |_| {}).await
}

/// Starts a server on `backend` at `start_time`, with settings changed by `configure`.
pub async fn spawn_app_with(
    backend: Backend,
    start_time: Timestamp,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("lien.db").display()),
        Backend::Postgres => {
            fresh_postgres_database(&postgres_url().expect("LIEN_TEST_POSTGRES_URL")).await
        }
    };
    let mut settings = Settings {
        data_dir: dir.path().to_path_buf(),
        database_url: Some(url.clone()),
        metrics_token: Some(METRICS_TOKEN.into()),
        ..Settings::default()
    };
    configure(&mut settings);
    let store: Arc<dyn Store> = Arc::new(SqlStore::open(&url).await.expect("open the store"));
    let secrets = Secrets::load_or_create(dir.path()).unwrap();
    let clock = ManualClock::new(start_time);
    let state = AppState::new(store, Arc::new(clock.clone()), secrets, settings);
    let admin_key = lien_server::create_platform_admin(&state).await.unwrap();
    serve(state, clock, admin_key, dir).await
}

impl TestApp {
    /// A second server on this one's database, with the same keys and the same clock, as a
    /// deployment runs several `lien serve` on one PostgreSQL. Only PostgreSQL can be shared.
    pub async fn spawn_peer(&self) -> TestApp {
        let settings = self.running.state.settings.clone();
        let url = settings.database_url.clone().expect("a database URL");
        assert!(url.starts_with("postgres"), "only PostgreSQL is shared");
        let store: Arc<dyn Store> = Arc::new(SqlStore::open(&url).await.expect("open the store"));
        self.serve_peer(store, settings, tempfile::tempdir().unwrap())
            .await
    }
}

impl TestApp {
    /// A second server on this one's database, as [`TestApp::spawn_peer`], but on a host of its
    /// own: its own data directory (holding copies of the keys, not the documents), with
    /// `configure` applied to the settings it shares. Only PostgreSQL can be shared.
    pub async fn spawn_peer_elsewhere(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = self.running.state.settings.clone();
        let url = settings.database_url.clone().expect("a database URL");
        assert!(url.starts_with("postgres"), "only PostgreSQL is shared");
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&settings.data_dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
            }
        }
        settings.data_dir = dir.path().to_path_buf();
        configure(&mut settings);
        let store: Arc<dyn Store> = Arc::new(SqlStore::open(&url).await.expect("open the store"));
        self.serve_peer(store, settings, dir).await
    }
}

impl TestApp {
    /// A second server over this one's store object (the same pools), with the same keys and
    /// clock: on SQLite, which one process serves, the nearest thing to a second server.
    pub async fn spawn_on_same_store(&self) -> TestApp {
        let settings = self.running.state.settings.clone();
        self.serve_peer(
            self.running.state.store.clone(),
            settings,
            tempfile::tempdir().unwrap(),
        )
        .await
    }

    /// Serves `store` with these settings, this server's clock and admin key, and the keys in
    /// the settings' data directory; `dir` lives as long as the server.
    async fn serve_peer(
        &self,
        store: Arc<dyn Store>,
        settings: Settings,
        dir: tempfile::TempDir,
    ) -> TestApp {
        let secrets = Secrets::load_or_create(&settings.data_dir).unwrap();
        let state = AppState::new(store, Arc::new(self.clock.clone()), secrets, settings);
        serve(state, self.clock.clone(), self.admin_key.clone(), dir).await
    }
}

/// Starts serving `state` on a free port.
async fn serve(
    state: AppState,
    clock: ManualClock,
    admin_key: String,
    dir: tempfile::TempDir,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = start(state, listener, false).await.unwrap();
    TestApp {
        base: format!("http://{}", running.addr),
        clock,
        client: reqwest::Client::new(),
        admin_key,
        running,
        _dir: dir,
    }
}

/// A response's status and JSON body.
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl TestApp {
    /// Sends a request with an API key and optional JSON body.
    pub async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Reply {
        self.call_with(method, path, key, body, &[]).await
    }

    /// Sends a request with extra headers.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(key);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body }
    }

    /// Enrolls a device (see [`enrollment`]) for the financier whose key this is; returns its id.
    pub async fn enroll_device(
        &self,
        key: &str,
        contract: &str,
        imei: &str,
        serial: &str,
    ) -> String {
        let enrolled = self.enroll(key, contract, imei, serial).await;
        assert_eq!(enrolled.status, 201, "{}", enrolled.body);
        enrolled.body["id"].as_str().unwrap().to_string()
    }

    /// Asks to enroll a device (see [`enrollment`]); returns the answer.
    pub async fn enroll(&self, key: &str, contract: &str, imei: &str, serial: &str) -> Reply {
        let body = enrollment(contract, imei, serial);
        self.call("POST", "/v1/devices", key, Some(body)).await
    }

    /// Creates a financier and its admin key; returns (financier id, key).
    pub async fn financier(&self, name: &str) -> (String, String) {
        let created = self
            .call(
                "POST",
                "/v1/financiers",
                &self.admin_key,
                Some(json!({"name": name, "contact": "+254 700 000 000", "payment_link": "https://pay.example/x"})),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let id = created.body["id"].as_str().unwrap().to_string();
        let key = self
            .call(
                "POST",
                &format!("/v1/financiers/{id}/api-keys"),
                &self.admin_key,
                Some(json!({"role": "financier-admin", "label": "back office"})),
            )
            .await;
        assert_eq!(key.status, 201, "{}", key.body);
        (id, key.body["key"].as_str().unwrap().to_string())
    }

    /// The development attestation root this server trusts (in its data directory), from
    /// which simulated phones' factory identities are minted.
    pub fn dev_root(&self) -> DevelopmentRoot {
        let path = self
            .running
            .state
            .settings
            .data_dir
            .join(lien_server::secrets::DEV_ATTESTATION_ROOT_FILE);
        DevelopmentRoot::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The factory identity of a phone with `identity`, minted from this server's
    /// development root at the server's time.
    pub fn factory_identity(&self, identity: &lien_agent::Identity) -> FactoryIdentity {
        lien_agent::sim::factory_identity(&self.dev_root(), identity, self.clock_now().as_second())
    }

    /// A fresh hello challenge (base64) from this server.
    pub async fn hello_challenge(&self) -> String {
        let reply = self
            .call("POST", "/v1/device/hello/challenge", "", None)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body["challenge"].as_str().unwrap().to_string()
    }

    /// Says hello as the genuine phone with these identifiers: a fresh challenge, attested by
    /// the phone's factory identity; returns the answer.
    pub async fn hello(&self, imei: &str, serial: &str) -> Reply {
        let factory = self
            .dev_root()
            .mint_factory_identity(imei, None, serial, self.clock_now().as_second())
            .unwrap();
        let challenge = self.hello_challenge().await;
        let chain = factory
            .attest(
                &STANDARD.decode(&challenge).unwrap(),
                self.clock_now().as_second(),
            )
            .unwrap()
            .chain;
        self.hello_with(imei, serial, &challenge, &chain).await
    }

    /// Says hello with exactly this challenge and attestation chain.
    pub async fn hello_with(
        &self,
        imei: &str,
        serial: &str,
        challenge: &str,
        chain: &[Vec<u8>],
    ) -> Reply {
        let attestation: Vec<String> = chain.iter().map(|c| STANDARD.encode(c)).collect();
        self.call(
            "POST",
            "/v1/device/hello",
            "",
            Some(json!({
                "imei1": imei, "serial": serial, "model": "Phone X",
                "challenge": challenge, "attestation": attestation,
            })),
        )
        .await
    }

    /// A signed check-in; returns the answer.
    pub async fn checkin(&self, device_id: &str, credential: &str, applied: i64) -> Reply {
        let body = json!({
            "sent_at": self.clock_now().as_second(),
            "counter": next_counter(),
            "applied_sequence": applied,
        })
        .to_string();
        self.raw_checkin(device_id, credential, body).await
    }

    /// A check-in with this exact body, signed with `credential`.
    pub async fn raw_checkin(&self, device_id: &str, credential: &str, body: String) -> Reply {
        let credential = STANDARD.decode(credential).unwrap();
        let signature = lien_server::routes::sign_checkin(&credential, body.as_bytes());
        let response = self
            .client
            .post(format!("{}/v1/device/checkin", self.base))
            .header("x-lien-device", device_id)
            .header("x-lien-signature", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// The test clock's time.
    pub fn clock_now(&self) -> Timestamp {
        use lien_server::clock::Clock;
        self.clock.now()
    }

    /// Runs the scheduler once, as the background task would.
    pub async fn run_scheduler(&self) -> usize {
        lien_server::scheduler::run_due(&self.running.state)
            .await
            .unwrap()
    }
}

/// A request counter above every one used before in this test binary: a phone's counters
/// need only increase, so one count for every phone in the tests will do.
pub fn next_counter() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A valid IMEI from a 14-digit body: the Luhn check digit appended.
pub fn imei(body14: &str) -> String {
    let digits: Vec<u32> = body14.chars().map(|c| c.to_digit(10).unwrap()).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{body14}{}", (10 - sum % 10) % 10)
}

/// An enrollment body on the Kenya preset: three monthly installments of KES 1,000.00.
pub fn enrollment(contract: &str, imei: &str, serial: &str) -> Value {
    json!({
        "contract_ref": contract,
        "imei1": imei,
        "serial": serial,
        "model": "Phone X",
        "plan": {
            "currency": "KES",
            "time_zone": "Africa/Nairobi",
            "down_payment_minor": 200000,
            "installments": [
                {"due": "2026-02-01", "amount_minor": 100000},
                {"due": "2026-03-01", "amount_minor": 100000},
                {"due": "2026-04-01", "amount_minor": 100000}
            ]
        },
        "policy": {"preset": "kenya"}
    })
}

impl TestApp {
    /// Sends a request exactly as given: no Authorization header unless `headers` has one, and
    /// the body as raw text (with a JSON content type, unless `headers` sets another).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<String>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        let mut has_content_type = false;
        for (name, value) in headers {
            has_content_type |= name.eq_ignore_ascii_case("content-type");
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = body {
            if !has_content_type {
                request = request.header("content-type", "application/json");
            }
            request = request.body(body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body }
    }

    /// Creates a key with `role` for the financier through the API; returns the key.
    pub async fn financier_key(&self, financier_id: &str, role: &str) -> String {
        let key = self
            .call(
                "POST",
                &format!("/v1/financiers/{financier_id}/api-keys"),
                &self.admin_key,
                Some(json!({"role": role, "label": format!("{role} key")})),
            )
            .await;
        assert_eq!(key.status, 201, "{}", key.body);
        key.body["key"].as_str().unwrap().to_string()
    }

    /// Creates a platform support key through the API, as the platform admin; returns the key.
    pub async fn support_key(&self) -> String {
        self.platform_key("support").await
    }

    /// Creates a platform key (`support` or `platform-admin`) through `POST /v1/api-keys`, as
    /// the platform admin; returns the key.
    pub async fn platform_key(&self, role: &str) -> String {
        let key = self
            .call(
                "POST",
                "/v1/api-keys",
                &self.admin_key,
                Some(json!({"role": role, "label": format!("{role} (test)")})),
            )
            .await;
        assert_eq!(key.status, 201, "{}", key.body);
        key.body["key"].as_str().unwrap().to_string()
    }
}

/// An `Authorization: Bearer` header for `key`, for [`TestApp::send`].
pub fn bearer(key: &str) -> (String, String) {
    ("authorization".to_string(), format!("Bearer {key}"))
}

/// The simulated phone most phone tests use, financed and set up.
pub struct FinancedPhone {
    pub device_id: String,
    pub imei: String,
    pub phone: lien_agent::sim::Phone,
}

impl TestApp {
    /// Enrolls contract C-1001 (IMEI 356938035643809, serial SN1001) with `key` and sets up its
    /// phone against the server at `phone_base` (this one, or a peer): hello and first
    /// check-in done, its clock at this server's time.
    pub async fn financed_phone(&self, key: &str, phone_base: &str) -> FinancedPhone {
        use lien_agent::sim::{HttpTransport, Phone, SimClock};
        use lien_agent::{AgentConfig, Identity, MemoryStorage, Mode};
        let phone_imei = imei("35693803564380");
        let device_id = self
            .enroll_device(key, "C-1001", &phone_imei, "SN1001")
            .await;
        let identity = Identity {
            imei1: phone_imei.clone(),
            imei2: None,
            serial: "SN1001".into(),
            model: "Phone X".into(),
        };
        let mut phone = Phone::new(
            HttpTransport::new(phone_base),
            identity.clone(),
            self.factory_identity(&identity),
            Box::new(MemoryStorage::new()),
            SimClock::manual(self.clock_now().as_second()),
            AgentConfig::default(),
            Some(7),
        );
        phone.run_due().await;
        assert_eq!(phone.status().mode, Mode::Bound);
        FinancedPhone {
            device_id,
            imei: phone_imei,
            phone,
        }
    }

    /// Time passes for this server and `phone`, in steps of at most six hours (the server's
    /// check-in interval): in each the scheduler runs, then the phone wakes and does what fell
    /// due, as a phone on the network does. So a notice the schedule brings on the way is
    /// shown and acknowledged when it comes, and its cure period runs from then.
    pub async fn advance_with(&self, phone: &mut lien_agent::sim::Phone, by: std::time::Duration) {
        const STEP: std::time::Duration = std::time::Duration::from_secs(6 * 3600);
        let mut left = by;
        loop {
            let step = left.min(STEP);
            self.clock
                .advance(jiff::SignedDuration::from_secs(step.as_secs() as i64));
            self.run_scheduler().await;
            phone.advance(step).await;
            left -= step;
            if left.is_zero() {
                return;
            }
        }
    }

    /// Moves this server and `phone` to `at` (RFC 3339, not in the past).
    pub async fn advance_to_with(&self, phone: &mut lien_agent::sim::Phone, at: &str) {
        let at: Timestamp = at.parse().unwrap();
        let by = at.as_second() - self.clock_now().as_second();
        assert!(by >= 0);
        self.advance_with(phone, std::time::Duration::from_secs(by as u64))
            .await;
    }
}

impl TestApp {
    /// Records a payment of `amount_minor` KES with reference `reference` on `device_id`, under
    /// this idempotency key; returns the answer.
    pub async fn pay(
        &self,
        key: &str,
        device_id: &str,
        reference: &str,
        amount_minor: i64,
        idempotency_key: &str,
    ) -> Reply {
        self.pay_with(
            key,
            device_id,
            json!({"reference": reference, "amount_minor": amount_minor, "currency": "KES"}),
            idempotency_key,
        )
        .await
    }

    /// Posts this payment body to `device_id`, under this idempotency key; returns the answer.
    pub async fn pay_with(
        &self,
        key: &str,
        device_id: &str,
        body: Value,
        idempotency_key: &str,
    ) -> Reply {
        let path = format!("/v1/devices/{device_id}/payments");
        self.post_once(&path, key, body, idempotency_key).await
    }

    /// `POST path` with an API key, a JSON body and an idempotency key.
    pub async fn post_once(
        &self,
        path: &str,
        key: &str,
        body: Value,
        idempotency_key: &str,
    ) -> Reply {
        let headers = [("Idempotency-Key", idempotency_key)];
        self.call_with("POST", path, key, Some(body), &headers)
            .await
    }

    /// The payments stored for `device_id`, read from the store rather than through the API.
    pub async fn stored_payments(&self, device_id: &str) -> Vec<lien_store::PaymentRecord> {
        let snapshot = self.running.state.store.snapshot(device_id).await;
        snapshot.unwrap().payments
    }

    /// The device's history as (action, reason) pairs, read through the API (as `key`),
    /// checking that its chain is intact.
    pub async fn history(&self, key: &str, device_id: &str) -> Vec<(String, String)> {
        let path = format!("/v1/devices/{device_id}/history");
        let r = self.call("GET", &path, key, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["chain_intact"], true);
        r.body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_string(),
                    e["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The device's row as stored, read from the store rather than through the API.
    pub async fn stored_device(&self, device_id: &str) -> lien_store::DeviceRecord {
        self.running.state.store.device(device_id).await.unwrap()
    }

    /// The audit records of `chain` (a device id, or `financier:<id>`), oldest first.
    pub async fn audit_chain(&self, chain: &str) -> Vec<lien_store::AuditRecord> {
        self.running.state.store.audit_chain(chain).await.unwrap()
    }

    /// The financier's webhook events as the outbox holds them.
    pub async fn outbox_events(&self, financier_id: &str) -> Vec<lien_store::StoredEvent> {
        let store = &self.running.state.store;
        store.outbox_events(financier_id).await.unwrap()
    }

    /// Locks `device_id`, showing `message` on the phone; returns the answer.
    pub async fn lock(&self, key: &str, device_id: &str, message: &str) -> Reply {
        let body = json!({ "message": message });
        self.device_action(key, device_id, "lock", body).await
    }

    /// Asks for `device_id`'s release, giving `reason`; returns the answer.
    pub async fn release(&self, key: &str, device_id: &str, reason: &str) -> Reply {
        let body = json!({ "reason": reason });
        self.device_action(key, device_id, "release", body).await
    }

    /// `POST /v1/devices/{device_id}/{action}` with this body.
    async fn device_action(&self, key: &str, device_id: &str, action: &str, body: Value) -> Reply {
        let path = format!("/v1/devices/{device_id}/{action}");
        self.call("POST", &path, key, Some(body)).await
    }
}

impl Reply {
    /// The request was refused with `status` and a message that mentions `mentions`.
    #[track_caller]
    pub fn assert_refused(&self, status: u16, mentions: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(self.message().contains(mentions), "{}", self.body);
    }

    /// The request was refused as invalid (422), with a message that starts by naming `field`.
    #[track_caller]
    pub fn assert_invalid(&self, field: &str) {
        assert_eq!(self.status, 422, "{}", self.body);
        let message = self.message();
        assert!(message.starts_with(&format!("{field}:")), "{message}");
    }

    /// The request was refused as forbidden; `context` says which, should it not be.
    pub fn assert_forbidden(&self, context: &str) {
        assert_eq!(self.status, 403, "{context}: {}", self.body);
        assert_eq!(self.body["error"], "forbidden");
    }

    /// The error message a client is shown (the body must have one).
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap()
    }
}

/// Whether `phone` shows its lock screen.
pub fn locked(phone: &lien_agent::sim::Phone) -> bool {
    matches!(phone.screen(), lien_agent::Screen::Locked(_))
}

/// Moves `app` to day 4 past the missed February installment, in the morning in Nairobi, and
/// runs the scheduler: contract C-1001, whose `phone` is connected by push and acknowledged
/// the notice of day 1, is locked.
pub async fn lock_by_schedule(app: &TestApp, phone: &mut lien_agent::sim::Phone) {
    /// Long enough for any loaded CI machine to deliver a push.
    const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
    // Day 1 past due, in the morning: the notice is pushed, and the phone acknowledges it at
    // once, so its three days to cure run from now.
    let notice: Timestamp = "2026-02-02T09:00:00+03:00".parse().unwrap();
    let by = notice.as_second() - app.clock_now().as_second();
    app.clock.advance(jiff::SignedDuration::from_secs(by));
    phone
        .advance(std::time::Duration::from_secs(by as u64))
        .await;
    assert!(app.run_scheduler().await >= 1);
    assert_eq!(
        phone.next_push(WAIT).await,
        Some(true),
        "the notice is pushed"
    );
    // Served, the notice names the lock's date: that token comes in the check-in's answer and
    // is pushed too.
    assert!(
        phone.next_push(WAIT).await.is_some(),
        "the served notice is pushed"
    );
    // Day 4, in the morning: the cure period has run.
    let at: Timestamp = "2026-02-05T10:00:00+03:00".parse().unwrap();
    let by = at.as_second() - app.clock_now().as_second();
    app.clock.advance(jiff::SignedDuration::from_secs(by));
    assert!(app.run_scheduler().await >= 1);
}

/// A financier with a financed phone (contract C-1001) connected by push and locked by the
/// schedule, the lock pushed: where a payment arriving from outside is to unlock it.
pub struct LockedOnPush {
    pub app: TestApp,
    pub financier_id: String,
    pub key: String,
    pub device_id: String,
    pub phone: lien_agent::sim::Phone,
}

impl LockedOnPush {
    /// The story on a fresh server, started 10 January 2026.
    pub async fn new(backend: Backend) -> LockedOnPush {
        /// Long enough for any loaded CI machine to deliver a push.
        const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
        let app = spawn_app(backend, "2026-01-10T09:00:00Z".parse().unwrap()).await;
        let (financier_id, key) = app.financier("Duka Phones").await;
        let financed = app.financed_phone(&key, &app.base).await;
        let mut phone = financed.phone;
        phone.enable_push(lien_agent::sim::PushBackoff::default());
        phone.connect_push().await.expect("the push channel opens");
        lock_by_schedule(&app, &mut phone).await;
        assert_eq!(
            phone.next_push(WAIT).await,
            Some(true),
            "the lock is pushed"
        );
        assert!(locked(&phone), "{}", phone.render());
        LockedOnPush {
            app,
            financier_id,
            key,
            device_id: financed.device_id,
            phone,
        }
    }
}

/// A server with one financed phone on the Kenya preset (three monthly installments of
/// KES 1,000.00 from 1 February, locked on day 4 past due, 10-day lease with 3 days' warning).
pub struct World {
    pub app: TestApp,
    pub key: String,
    pub device_id: String,
    pub imei: String,
    pub phone: lien_agent::sim::Phone,
}

impl World {
    /// The world on a fresh server, started 10 January 2026.
    pub async fn new(backend: Backend) -> World {
        World::new_with(backend, |_| {}).await
    }

    /// The same, on a server with these settings.
    pub async fn new_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> World {
        let start: Timestamp = "2026-01-10T09:00:00Z".parse().unwrap();
        let app = spawn_app_with(backend, start, configure).await;
        let (_, key) = app.financier("Duka Phones").await;
        let FinancedPhone {
            device_id,
            imei,
            phone,
        } = app.financed_phone(&key, &app.base).await;
        World {
            app,
            key,
            device_id,
            imei,
            phone,
        }
    }

    /// Time passes for the server and the phone: the scheduler runs, then the phone wakes.
    pub async fn advance(&mut self, by: std::time::Duration) {
        self.app.advance_with(&mut self.phone, by).await;
    }

    /// Moves both to `at`.
    pub async fn advance_to(&mut self, at: &str) {
        self.app.advance_to_with(&mut self.phone, at).await;
    }

    /// Whether the phone shows its lock screen.
    pub fn locked(&self) -> bool {
        locked(&self.phone)
    }

    /// The phone shows its normal screen, with no banner.
    pub fn assert_normal(&self) {
        let normal = lien_agent::Screen::Normal { banner: None };
        assert_eq!(self.phone.screen(), &normal, "{}", self.phone.render());
    }

    /// Sends a request as the financier to the device's `suffix` (`""`, `/history`...).
    pub async fn on_device(&self, method: &str, suffix: &str, body: Option<Value>) -> Reply {
        let path = format!("/v1/devices/{}{suffix}", self.device_id);
        self.app.call(method, &path, &self.key, body).await
    }

    /// The borrower pays `minor` KES with this reference (also the idempotency key).
    pub async fn pay(&self, reference: &str, minor: i64) {
        let paid = self
            .app
            .pay(&self.key, &self.device_id, reference, minor, reference)
            .await;
        assert_eq!(paid.status, 200, "{}", paid.body);
    }
}

impl TestApp {
    /// GETs each of `paths` with `key`; every one must answer 200. Returns the bodies, in order.
    pub async fn read_all(&self, key: &str, paths: &[String]) -> Vec<Value> {
        let mut seen = Vec::new();
        for path in paths {
            seen.push(self.read(key, path).await);
        }
        seen
    }

    /// GETs `path` with `key`, which must answer 200; returns the body.
    pub async fn read(&self, key: &str, path: &str) -> Value {
        let reply = self.call("GET", path, key, None).await;
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
        reply.body
    }

    /// What a financier can see of a device: its status and its history, in that order.
    pub async fn seen(&self, key: &str, device_id: &str) -> Vec<Value> {
        self.read_all(key, &device_paths(device_id)).await
    }
}

/// A device's status and history paths.
pub fn device_paths(device_id: &str) -> Vec<String> {
    vec![
        format!("/v1/devices/{device_id}"),
        format!("/v1/devices/{device_id}/history"),
    ]
}

/// A PNG of `size` bytes laid out as one (IHDR, IDAT, IEND), as a photo of a receipt is.
pub fn receipt_png(size: usize) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        c.extend_from_slice(&[0; 4]);
        c
    };
    let mut b = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    b.extend(chunk(b"IHDR", &[0, 0, 2, 0, 0, 0, 3, 0, 8, 2, 0, 0, 0]));
    b.extend(chunk(b"IDAT", &vec![0x78; size.saturating_sub(57)]));
    b.extend(chunk(b"IEND", b""));
    b
}

impl TestApp {
    /// The financier's answer to appeal `reference`: `body` holds the decision and its reason.
    pub async fn answer_appeal(&self, key: &str, reference: &str, body: Value) -> Reply {
        let path = format!("/v1/appeals/{reference}/decision");
        self.call("POST", &path, key, Some(body)).await
    }
}

/// One part of a multipart form.
pub enum Part<'a> {
    /// A text field: name, value.
    Text(&'a str, &'a str),
    /// A file: field name, file name, declared type, content.
    File(&'a str, &'a str, &'a str, &'a [u8]),
}

/// A multipart form's content type and body, as a browser would send them.
pub fn multipart_body(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "----lienTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match part {
            Part::Text(name, value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File(name, file_name, content_type, bytes) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\n\
                         Content-Type: {content_type}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Posts a multipart form as a browser would; returns the answer.
pub async fn post_form(app: &TestApp, path: &str, parts: &[Part<'_>]) -> Reply {
    let (content_type, body) = multipart_body(parts);
    let response = app
        .client
        .post(format!("{}{path}", app.base))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

impl TestApp {
    /// `GET path` with an API key.
    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.call("GET", path, key, None).await
    }

    /// `POST path` with an API key and a JSON body.
    pub async fn post(&self, path: &str, key: &str, body: Value) -> Reply {
        self.call("POST", path, key, Some(body)).await
    }

    /// The body of `GET path`, as text, sent with `bearer` if there is one.
    pub async fn get_text(&self, path: &str, bearer: Option<&str>) -> String {
        self.get_response(path, bearer).await.text().await.unwrap()
    }

    /// The response to `GET path`, sent with `bearer` if there is one, for reading headers or
    /// bytes.
    pub async fn get_response(&self, path: &str, bearer: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("the server answers")
    }
}

impl TestApp {
    /// `POST path` with `key`, these headers and exactly this body.
    pub async fn post_as(
        &self,
        key: &str,
        path: &str,
        headers: &[(String, String)],
        body: String,
    ) -> Reply {
        let mut all = vec![bearer(key)];
        all.extend_from_slice(headers);
        self.send("POST", path, &all, Some(body)).await
    }
}

/// A `Content-Type` header, for [`TestApp::send`].
pub fn typed(content_type: &str) -> (String, String) {
    ("content-type".to_string(), content_type.to_string())
}
