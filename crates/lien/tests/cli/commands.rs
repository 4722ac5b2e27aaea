//! Runs the built `lien` binary and checks what a user sees: output, errors and exit status.

use std::process::{Command, Output};

/// Runs `lien` with `args`.
fn lien(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lien"))
        .args(args)
        .output()
        .expect("the lien binary runs")
}

/// Runs `lien` with `args`, which must succeed; returns what it printed to standard output.
fn succeeds(args: &[&str]) -> String {
    let out = lien(args);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// Runs `lien` with `args`, which must exit with status 1 (a user error).
fn fails(args: &[&str]) -> Output {
    let out = lien(args);
    assert_eq!(out.status.code(), Some(1));
    out
}

/// Fails unless `text` contains every one of `expected`.
#[track_caller]
fn assert_contains_all(text: &str, expected: &[&str]) {
    for e in expected {
        assert!(text.contains(e), "{e:?} missing from:\n{text}");
    }
}

/// What the command printed to standard output.
fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

/// What the command printed to standard error.
fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

#[test]
fn no_arguments_prints_version_and_commands_and_succeeds() {
    let text = succeeds(&[]);
    assert!(
        text.starts_with(&format!("lien {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("financed phones"), "{text}");
    for command in ["imei", "policy"] {
        assert!(text.contains(&format!("  {command} ")), "{text}");
    }
}

#[test]
fn version_flag_prints_the_version() {
    let out = lien(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        format!("lien {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn imei_is_normalised_and_its_tac_shown() {
    assert_eq!(
        succeeds(&["imei", "35-209900-176148-1"]),
        "IMEI 352099001761481 is valid\nTAC 35209900\n"
    );
}

#[test]
fn imeisv_is_converted_to_the_imei() {
    let text = succeeds(&["imei", "35 209900 176148 23"]);
    assert_contains_all(
        &text,
        &[
            "IMEISV 3520990017614823",
            "IMEI 352099001761481",
            "TAC 35209900",
        ],
    );
}

#[test]
fn wrong_check_digit_fails_and_says_which() {
    let out = fails(&["imei", "352099001761482"]);
    assert!(stdout(&out).is_empty());
    assert_eq!(
        stderr(&out),
        "error: IMEI check digit is 2, but the first 14 digits require 1: the number is mistyped\n"
    );
}

#[test]
fn policy_lists_the_presets() {
    let text = succeeds(&["policy"]);
    assert_contains_all(&text, &["strict-dealer", "kenya", "india-draft"]);
}

#[test]
fn policy_india_draft_shows_day_90_and_both_notices() {
    let text = succeeds(&["policy", "india-draft"]);
    assert_contains_all(
        &text,
        &[
            "minimum days past due:  90\n",
            "  day 60, then 21 days to pay\n",
            "  day 81, then 7 days to pay\n",
            "  day 90: locked",
            "quiet hours:            19:00-08:00\n",
        ],
    );
}

#[test]
fn unknown_policy_fails_and_names_the_presets() {
    let out = fails(&["policy", "lenient"]);
    assert_contains_all(
        &stderr(&out),
        &[
            "unknown policy \"lenient\"",
            "strict-dealer",
            "kenya",
            "india-draft",
        ],
    );
}

/// `lien` beside a companion named `name` (`lien-bench`, `lien-sim`; here `echo`, which prints
/// what it was given) in a directory of its own; or beside nothing when `target` is `None`.
#[cfg(unix)]
fn lien_beside(name: &str, target: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let lien = dir.path().join("lien");
    // A hard link where it can be (the same file system as the build), else a copy: both make
    // the copy's own directory the one `lien` looks in.
    if std::fs::hard_link(env!("CARGO_BIN_EXE_lien"), &lien).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_lien"), &lien).unwrap();
    }
    if let Some(target) = target {
        std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap();
    }
    dir
}

#[cfg(unix)]
#[test]
fn bench_hands_every_argument_to_lien_bench() {
    let dir = lien_beside("lien-bench", Some("/bin/echo"));
    let out = Command::new(dir.path().join("lien"))
        .args(["bench", "checkin", "--devices", "2000", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "checkin --devices 2000 --help\n");
}

#[cfg(unix)]
#[test]
fn bench_without_lien_bench_says_how_to_build_it() {
    let dir = lien_beside("lien-bench", None);
    let out = Command::new(dir.path().join("lien"))
        .args(["bench", "checkin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_contains_all(
        &stderr(&out),
        &[
            "`lien-bench`, which is not beside",
            "cargo build --release -p lien-bench",
        ],
    );
}

#[cfg(unix)]
#[test]
fn simulate_hands_every_argument_to_lien_sim() {
    let dir = lien_beside("lien-sim", Some("/bin/echo"));
    let out = Command::new(dir.path().join("lien"))
        .args([
            "simulate",
            "--seed",
            "7",
            "--devices",
            "10000",
            "--days",
            "100",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "--seed 7 --devices 10000 --days 100\n");
}

#[cfg(unix)]
#[test]
fn simulate_without_lien_sim_says_how_to_build_it() {
    let dir = lien_beside("lien-sim", None);
    let out = Command::new(dir.path().join("lien"))
        .args(["simulate", "--seed", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_contains_all(
        &stderr(&out),
        &[
            "`lien-sim`, which is not beside",
            "cargo build --release -p lien-sim",
        ],
    );
}

/// A `lien serve` child on a free port, with its data directory, its stderr lines so far and
/// its first admin key.
pub(crate) struct Served {
    pub(crate) child: std::process::Child,
    pub(crate) addr: std::net::SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    stdout: String,
}

impl Served {
    fn start(data_dir: &std::path::Path) -> Served {
        Served::start_with(data_dir, &[], true)
    }

    /// Starts `lien serve` on `data_dir` with these environment variables; reads the line the
    /// first start prints, when `first` is true (a restart prints none).
    pub(crate) fn start_with(
        data_dir: &std::path::Path,
        env: &[(&str, &str)],
        first: bool,
    ) -> Served {
        use std::io::{BufRead, BufReader};
        use std::process::Stdio;
        let mut child = Command::new(env!("CARGO_BIN_EXE_lien"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            // A data directory of its own is a deployment, which must name its support.
            .env("LIEN_SUPPORT_CONTACT", "+254 20 000 0000")
            .envs(env.iter().copied())
            .current_dir(data_dir.parent().unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lien serve starts");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening")
                    && let Some(addr) = line.split("addr=").nth(1)
                {
                    let addr = addr.split_whitespace().next().unwrap_or("").to_string();
                    let _ = addr_tx.send(addr);
                }
                let mut log = lines.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = addr_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the server says where it listens")
            .parse()
            .unwrap();
        let mut stdout = String::new();
        if first {
            let mut out = BufReader::new(child.stdout.take().unwrap());
            out.read_line(&mut stdout).unwrap();
        }
        Served {
            child,
            addr,
            log,
            stdout,
        }
    }

    /// The resident memory of the server, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kib * 1024
    }

    /// Sends one request and returns the whole answer.
    pub(crate) fn request(&self, text: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.addr).unwrap();
        stream.write_all(text.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_deployment_without_a_support_contact_is_refused_naming_the_setting() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_lien"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("LIEN_SUPPORT_CONTACT")
        .current_dir(root.path())
        .output()
        .expect("the lien binary runs");
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains("support_contact is not set"), "{said}");
    assert!(said.contains("LIEN_SUPPORT_CONTACT"), "{said}");
    assert!(!data.exists(), "nothing is created before the refusal");
}

#[cfg(target_os = "linux")]
#[test]
fn a_served_data_directory_is_private_its_key_stays_out_of_the_log_and_a_huge_upload_costs_little_memory()
 {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("lien-data");
    let served = Served::start(&data);

    // Output that is not a terminal gets no key: it is in a private file instead.
    assert!(
        served.stdout.contains("first-admin.key"),
        "{}",
        served.stdout
    );
    let key = std::fs::read_to_string(data.join("first-admin.key")).unwrap();
    let key = key.trim();
    assert!(key.starts_with("lien_"));
    assert!(!served.stdout.contains(key));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    let answer = served.request(&format!(
        "GET /v1/financiers HTTP/1.1\r\nhost: lien\r\nauthorization: Bearer {key}\r\nconnection: close\r\n\r\n"
    ));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A 500 MB form that never shows its boundary: refused after the limit, and the server's
    // memory, sampled throughout, grows by far less than what was sent.
    let before = served.rss();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        let status = format!("/proc/{}/status", served.child.id());
        std::thread::spawn(move || {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(kib) = std::fs::read_to_string(&status).ok().and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                }) {
                    peak.fetch_max(kib * 1024, std::sync::atomic::Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let mut stream = std::net::TcpStream::connect(served.addr).unwrap();
    stream
        .write_all(
            b"POST /v1/public/appeals HTTP/1.1\r\nhost: lien\r\n\
              content-type: multipart/form-data; boundary=XYZZY\r\ncontent-length: 500000000\r\n\r\n",
        )
        .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0usize;
    stream
        .set_write_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    while sent < 500_000_000 {
        if stream.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        sent < 64 * 1024 * 1024,
        "{sent} bytes went in before the server cut the upload off"
    );
    let grew = peak.load(std::sync::atomic::Ordering::Relaxed) - before;
    eprintln!("sent {sent} bytes before the 413; the server's peak memory grew by {grew} bytes");
    assert!(
        grew < 20 * 1024 * 1024,
        "the server grew by {grew} bytes for a refused upload"
    );

    // The log: plain text, one line per request, no key.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = served.log.lock().unwrap().clone();
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a redirected log:\n{log}"
    );
    assert!(!log.contains(key), "the admin key is in the log");
    assert!(
        log.lines()
            .any(|l| l.contains("route=\"/v1/public/appeals\"")
                && l.contains("status=413")
                && l.contains("method=POST")),
        "{log}"
    );
}

/// The public id the server shows for `key`.
fn key_id(key: &str) -> String {
    lien_server::auth::key_id(&lien_server::auth::hash_key(key))
}

/// The key a `lien admin-key create` printed.
fn printed_key(out: &Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    stdout(out)
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("lien_"))
        .unwrap_or_else(|| panic!("no key in {}", stdout(out)))
        .to_string()
}

#[tokio::test]
async fn admin_key_create_makes_a_working_key_from_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let first = printed_key(&lien(&["admin-key", "create", "--data-dir", data]));
    let second = printed_key(&lien(&[
        "admin-key",
        "create",
        "--data-dir",
        data,
        "--label",
        "after the first was lost",
    ]));

    // Listed by id, never by key.
    let list = lien(&["admin-key", "list", "--data-dir", data]);
    assert!(list.status.success(), "{}", stderr(&list));
    let text = stdout(&list);
    for key in [&first, &second] {
        assert!(text.contains(&key_id(key)), "{text}");
        assert!(!text.contains(key.as_str()), "{text}");
    }
    assert!(text.contains("after the first was lost"), "{text}");

    // The first goes; the second, now the last active admin key, stays.
    let revoked = lien(&["admin-key", "revoke", "--data-dir", data, &key_id(&first)]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(stdout(&revoked).starts_with(&format!("Revoked {}", key_id(&first))));
    let refused = lien(&["admin-key", "revoke", "--data-dir", data, &key_id(&second)]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("last active platform admin key"),
        "{}",
        stderr(&refused)
    );

    // A server on that data directory takes the new key and refuses the revoked one.
    let settings = lien_server::config::Settings {
        data_dir: dir.path().to_path_buf(),
        ..lien_server::config::Settings::default()
    };
    let store = lien_server::open_store(&settings).await.unwrap();
    let secrets = lien_server::secrets::Secrets::load_or_create(dir.path()).unwrap();
    let state = lien_server::app::AppState::new(
        store,
        std::sync::Arc::new(lien_server::clock::SystemClock),
        secrets,
        settings,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = lien_server::app::start(state, listener, false)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/financiers", running.addr);
    let with = |key: &str| client.get(&url).bearer_auth(key).send();
    assert_eq!(with(&second).await.unwrap().status(), 200);
    assert_eq!(with(&first).await.unwrap().status(), 401);
    running.stop().await;
}
