//! `lien phone` against a server started in this test: the lock screen in the terminal, and
//! commands piped on standard input.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use lien_server::app::{AppState, start};
use lien_server::clock::SystemClock;
use lien_server::config::Settings;
use lien_server::secrets::Secrets;
use lien_store::{SqlStore, Store};
use serde_json::{Value, json};

/// Starts a server on a free port (real clock, SQLite in `dir`); returns its URL and admin key.
async fn server(dir: &std::path::Path) -> (String, String, lien_server::app::Running) {
    let url = format!("sqlite://{}", dir.join("lien.db").display());
    let settings = Settings {
        data_dir: dir.to_path_buf(),
        database_url: Some(url.clone()),
        ..Settings::default()
    };
    let store: Arc<dyn Store> = Arc::new(SqlStore::open(&url).await.unwrap());
    let secrets = Secrets::load_or_create(dir).unwrap();
    let state = AppState::new(store, Arc::new(SystemClock), secrets, settings);
    let admin = lien_server::create_platform_admin(&state).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = start(state, listener, false).await.unwrap();
    (format!("http://{}", running.addr), admin, running)
}

async fn post(base: &str, path: &str, key: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// A financier admin's key, for a financier made by the platform admin `admin` (with a
/// payment link, which the lock screen shows).
async fn financier_admin_key(base: &str, admin: &str) -> String {
    let financier = post(
        base,
        "/v1/financiers",
        admin,
        json!({"name": "Duka Phones", "contact": "+254 700 000 000", "payment_link": "https://pay.example/x"}),
    )
    .await;
    let id = financier["id"].as_str().unwrap();
    let key = post(
        base,
        &format!("/v1/financiers/{id}/api-keys"),
        admin,
        json!({"role": "financier-admin", "label": "test"}),
    )
    .await;
    key["key"].as_str().unwrap().to_string()
}

/// Runs `lien phone` with `input` on standard input, its factory identity minted from the
/// development root in the server's data directory `dir`; returns what it printed.
fn run_phone(base: &str, dir: &std::path::Path, imei: &str, input: &str) -> String {
    let root = dir.join(lien_server::secrets::DEV_ATTESTATION_ROOT_FILE);
    let mut child = Command::new(env!("CARGO_BIN_EXE_lien"))
        .args([
            "phone", "--server", base, "--imei", imei, "--serial", "SN-CLI",
        ])
        .arg("--attestation-root")
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lien runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulated_phone_shows_the_lock_screen_and_takes_commands() {
    let dir = tempfile::tempdir().unwrap();
    let (base, admin, running) = server(dir.path()).await;
    let key = financier_admin_key(&base, &admin).await;
    let key = key.as_str();
    let imei = "356938035643809";
    let device = post(
        &base,
        "/v1/devices",
        key,
        json!({
            "contract_ref": "C-CLI", "imei1": imei, "serial": "SN-CLI", "model": "Phone X",
            "plan": {"currency": "KES", "time_zone": "Africa/Nairobi", "down_payment_minor": 0,
                     "installments": [{"due": "2099-01-01", "amount_minor": 125000}]},
            "policy": {"preset": "kenya"}
        }),
    )
    .await;
    let device_id = device["id"].as_str().unwrap();
    post(
        &base,
        &format!("/v1/devices/{device_id}/lock"),
        key,
        json!({"message": "Locked by Duka Phones: please call us."}),
    )
    .await;

    let input =
        "state\ncode 12345678\nclock -365d\nscreen\noffline\ncheck\ntransparency\nbogus\nquit\n";
    let out = tokio::task::spawn_blocking({
        let base = base.clone();
        let dir = dir.path().to_path_buf();
        move || run_phone(&base, &dir, imei, input)
    })
    .await
    .unwrap();
    for expected in [
        "Simulated phone 356938035643809 powered on.",
        "Setting up: connecting to the server.",
        "== This device is locked ==",
        "Locked by Duka Phones: please call us.",
        "Financier: Duka Phones (+254 700 000 000)",
        "IMEI: 356938035643809",
        "[Check again] [Enter code] [Emergency call]",
        "mode: Bound",
        "token: Locked",
        "Code refused: wrong or already used.",
        "! Wrong or used code. 4 tries left before a wait.",
        "Wall clock moved by -365d.",
        "The phone is offline.",
        "No connection to the server. Check the internet connection and try again.",
        "cannot block emergency calls",
        "error: unknown command \"bogus\"; type `help`",
        "Powered off.",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from\n{out}");
    }
    // After the wall clock moved a year back, the screen is still the lock screen.
    let after_clock = &out[out.find("Wall clock moved").unwrap()..];
    assert!(after_clock.contains("== This device is locked =="), "{out}");
    running.stop().await;
}

/// What `lien phone` prints, line by line, as it prints it.
fn lines_of(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads lines until one contains `wanted`, for at most `deadline`; returns everything read.
fn read_until(
    lines: &std::sync::mpsc::Receiver<String>,
    wanted: &str,
    deadline: std::time::Duration,
) -> Result<String, String> {
    let until = std::time::Instant::now() + deadline;
    let mut seen = String::new();
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(wanted) {
                    return Ok(seen);
                }
            }
            Err(_) => return Err(seen),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_terminal_phone_unlocks_on_a_payment_without_being_told_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let (base, admin, running) = server(dir.path()).await;
    let key = financier_admin_key(&base, &admin).await;
    let imei = "356938035643809";
    // An installment long overdue under a policy that locks the day after, with no quiet hours:
    // locked whenever the test runs.
    let device = post(
        &base,
        "/v1/devices",
        &key,
        json!({
            "contract_ref": "C-PUSH", "imei1": imei, "serial": "SN-CLI", "model": "Phone X",
            "plan": {"currency": "KES", "time_zone": "Africa/Nairobi", "down_payment_minor": 0,
                     "installments": [{"due": "2020-01-01", "amount_minor": 125000}]},
            "policy": {"custom": {
                "grace_days": 0, "min_days_past_due": 0, "min_arrears_percent": 0,
                "escalations": [{"at_days_past_due": 1, "restriction": "locked"}],
                "lease_days": 10, "lease_warning_days": 3
            }}
        }),
    )
    .await;
    let device_id = device["id"].as_str().unwrap().to_string();

    let root = dir
        .path()
        .join(lien_server::secrets::DEV_ATTESTATION_ROOT_FILE);
    let mut child = Command::new(env!("CARGO_BIN_EXE_lien"))
        .args([
            "phone", "--server", &base, "--imei", imei, "--serial", "SN-CLI",
        ])
        .arg("--attestation-root")
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("lien runs");
    let mut stdin = child.stdin.take().unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    let locked = read_until(
        &lines,
        "== This device is locked",
        std::time::Duration::from_secs(30),
    );
    assert!(locked.is_ok(), "no lock screen:\n{}", locked.unwrap_err());
    // The terminal is waiting for a command: the borrower types none. The financier records
    // the payment, and the unlock reaches the phone over its push channel.
    let paid = reqwest::Client::new()
        .post(format!("{base}/v1/devices/{device_id}/payments"))
        .bearer_auth(&key)
        .header("Idempotency-Key", "PAY-1")
        .json(&json!({"reference": "PAY-1", "amount_minor": 125000, "currency": "KES"}))
        .send()
        .await
        .unwrap();
    assert!(paid.status().is_success(), "{}", paid.status());
    // Generous: the push arrives within a second; this only bounds a hung test.
    let unlocked = read_until(&lines, "== Home ==", std::time::Duration::from_secs(5));
    stdin.write_all(b"quit\n").unwrap();
    drop(stdin);
    let _ = child.wait();
    let shown = unlocked.unwrap_or_else(|seen| panic!("still locked 5 s after paying:\n{seen}"));
    assert!(!shown.contains("Checked in."), "{shown}");
    running.stop().await;
}
