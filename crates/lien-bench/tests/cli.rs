//! Runs the built `lien-bench` binary at a tiny scale: each benchmark works end to end and
//! prints its figures in the form BENCHMARKS.md records. The figures are not asserted: a
//! benchmark measures, it is not a timed test.

use std::process::{Command, Output};

/// Runs `lien-bench` with `args`.
fn lien_bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lien-bench"))
        .args(args)
        .output()
        .expect("the lien-bench binary runs")
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
fn bench_checkin_measures_both_targets_and_prints_the_ratio() {
    let out = lien_bench(&["checkin", "--devices", "200", "--seconds", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("setup: enrolled and bound 200 devices"),
        "{text}"
    );
    for target in ["bare responder", "check-in"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("all ") && l.contains(target)),
            "{text}"
        );
    }
    let ratio = text
        .lines()
        .find_map(|l| l.strip_prefix("ratio check-in / bare responder: "))
        .unwrap_or_else(|| panic!("no ratio line in {text}"));
    let value: f64 = ratio
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("the ratio is not a number: {ratio}"));
    assert!(value > 0.0, "{text}");
    assert!(ratio.contains("(target at least 0.60: "), "{text}");
    assert!(text.contains("p999 ms"), "{text}");
}

/// The push scenarios and the scheduler's run end to end at a small scale; they print their
/// figures (not asserted: a benchmark measures, it is not a timed test).
#[test]
fn bench_push_and_scheduler_scenarios_print_their_figures() {
    let out = lien_bench(&[
        "payment-to-unlock",
        "--phones",
        "40",
        "--payments",
        "10",
        "--rate",
        "100",
        "--checkin-seconds",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("setup: enrolled and bound 40 devices"),
        "{text}"
    );
    // The phones run in a child process, which reports each unlock it verified.
    assert!(
        text.contains("push: 40 phones connected in ")
            && text.contains("40 push connections open on the server"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("push ") && l.contains(" 10 ")),
        "{text}"
    );
    assert!(text.contains("next check-in (every 1 s)"), "{text}");

    // The phones run in a child process; the server's process measures itself.
    let out = lien_bench(&["idle-connections", "--connections", "50"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("opened 50 push connections"), "{text}");
    assert!(text.contains("per idle connection: "), "{text}");

    let out = lien_bench(&["scheduler", "--plans", "100"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("evaluated 10 due plans"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn bench_hello_binds_every_phone_and_prints_the_rate() {
    let out = lien_bench(&["hello", "--devices", "20", "--concurrency", "4"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("setup: 20 phones attested in "), "{text}");
    assert!(
        text.contains("20 attested hellos in ") && text.contains(" a second; latency p50 "),
        "{text}"
    );
}

/// Money in and events out at a small scale: a provider's callbacks unlock phones over push
/// (M-Pesa's confirmation, then a signed payment), and a financier's endpoint hears of
/// payments. The figures are printed, not asserted.
#[test]
fn bench_provider_unlock_and_webhooks_print_their_figures() {
    for (flag, row) in [(None, "M-Pesa "), (Some("--signed"), "signed payment ")] {
        let mut args = vec!["provider-unlock", "--phones", "30", "--payments", "10"];
        args.extend(flag);
        let out = lien_bench(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("30 push connections open on the server"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with(row) && l.split_whitespace().any(|w| w == "10")),
            "{text}"
        );
        assert!(text.contains("p999 ms"), "{text}");
        assert!(
            text.contains("callback to unlock p99 ") && text.contains("(target under 1000 ms: "),
            "{text}"
        );
    }

    let out = lien_bench(&[
        "webhooks",
        "--devices",
        "30",
        "--changes",
        "10",
        "--rate",
        "100",
        "--interval-ms",
        "50",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    // Each payment unlocks its device: a payment event and a state change, each delivered.
    assert!(text.contains("delivered: 20 events in "), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("lag ") && l.split_whitespace().any(|w| w == "20")),
        "{text}"
    );
    assert!(text.contains("webhook lag p99 "), "{text}");
}
