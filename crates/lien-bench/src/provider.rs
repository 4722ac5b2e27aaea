//! `provider-unlock`: with phones connected by push, the time from a payment provider sending
//! its callback to the phone applying the unlock. The money comes from the provider itself, not from
//! the financier's code: an M-Pesa C2B confirmation as Daraja posts it to the financier's
//! callback URL (the token in the path is the secret), or with `--signed` a payment signed per
//! Standard Webhooks as any other provider posts it to its callback path.
//!
//! Everything but the request is `payment-to-unlock`'s (`push`): the same locked fleet, the
//! same phones' process, the same steady rate over a few keep-alive connections. The callback
//! takes a longer path than the financier API's payment (the endpoint found by the token's
//! hash, or the signature checked; the account number matched to a contract; the payment kept
//! under the provider's idempotency key), all of which this measures. It is timed from the
//! callback's sending, not its 200: a provider waits for nothing, and a signed payment is
//! answered only after a second write (its `webhook-id` remembered), by which time the phone
//! has usually been unlocked. The 200's own time is printed beside it. `BENCHMARKS.md` records
//! the method and the results.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::tz::TimeZone;
use lien_server::app::Running;
use serde_json::json;

use crate::http::{Conn, post};
use crate::push::{Payment, PushBench, Since, Unlocks, financier_key};
use crate::setup::{backend_name, contract_ref};

/// The target: a connected phone has its unlock within a second of the payment that cured the
/// debt (the design's promise 2), whoever reports the payment.
const TARGET_P99_MS: f64 = 1000.0;

/// Arguments of `provider-unlock`.
#[derive(Debug, clap::Args)]
pub struct ProviderArgs {
    /// Phones connected by push (all enrolled overdue, so locked).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    phones: u32,
    /// Callbacks, each paying the arrears of a different phone (at most --phones).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    payments: u32,
    /// Callbacks per second, at a steady rate. At most 100: they all come from one address,
    /// and the server takes 6,000 provider callbacks a minute from one address (Safaricom
    /// calls from a few).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100))]
    rate: u32,
    /// Send payments signed per Standard Webhooks to a named provider's callback path instead
    /// of M-Pesa confirmations.
    #[arg(long)]
    signed: bool,
    /// Where to create the temporary directory holding the database and keys.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A PostgreSQL database to run on instead of a new SQLite file. It must be empty: the
    /// benchmark creates its tables and enrolls into it.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

/// Runs the benchmark.
pub fn provider_unlock(args: &ProviderArgs) -> Result<()> {
    ensure!(
        args.payments <= args.phones,
        "--payments is at most --phones (each pays for a different phone)"
    );
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let backend = backend_name(args.database_url.is_some());
    let kind = if args.signed {
        "signed provider payments"
    } else {
        "M-Pesa confirmations"
    };
    println!(
        "lien bench provider-unlock: {} phones on {backend}, {} {kind} at {} per second, {cpus} \
         CPUs",
        args.phones, args.payments, args.rate
    );
    let bench = PushBench::start_locked(
        args.phones,
        args.data_dir.as_deref(),
        args.database_url.clone(),
    )?;
    let payment = bench.bench.load_rt.block_on(async {
        let key = financier_key(&bench.server).await?;
        if args.signed {
            signed_payment(&bench.server, &key).await
        } else {
            mpesa_confirmation(&bench.server, &key).await
        }
    })?;
    let indices: Vec<usize> = (0..args.payments as usize).collect();
    let what = if args.signed {
        "signed payments"
    } else {
        "confirmations"
    };
    let Unlocks {
        unlocks,
        early,
        answers,
    } = bench.push_unlocks(&indices, args.rate, what, payment, Since::Sent)?;

    println!();
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "callback to unlock", "phones", "p50 ms", "p99 ms", "p999 ms", "max ms"
    );
    println!(
        "{:<28} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        if args.signed {
            "signed payment"
        } else {
            "M-Pesa"
        },
        unlocks.len(),
        unlocks.quantile_ms(0.5),
        unlocks.quantile_ms(0.99),
        unlocks.quantile_ms(0.999),
        unlocks.max_ms()
    );
    println!(
        "{:<28} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        "  (the callback's 200)",
        answers.len(),
        answers.quantile_ms(0.5),
        answers.quantile_ms(0.99),
        answers.quantile_ms(0.999),
        answers.max_ms()
    );
    ensure!(
        early == 0,
        "a phone had its unlock before its callback was sent"
    );
    let p99 = unlocks.quantile_ms(0.99);
    println!(
        "\ncallback to unlock p99 {p99:.1} ms (target under {TARGET_P99_MS:.0} ms: {})",
        if p99 < TARGET_P99_MS { "met" } else { "missed" }
    );
    drop(bench);
    Ok(())
}

/// Makes the bench financier's M-Pesa endpoint through the API, as a financier does before
/// registering its URLs with Daraja; returns the confirmation that pays phone `i`'s arrears.
async fn mpesa_confirmation(server: &Running, key: &str) -> Result<Payment> {
    let created = created(
        server,
        "/v1/financiers/fin_bench/mpesa-endpoint",
        key,
        "{}",
        "making the M-Pesa endpoint failed",
    )
    .await?;
    let path = created["confirmation_path"]
        .as_str()
        .context("the endpoint's answer has a confirmation_path")?
        .to_string();
    let nairobi = TimeZone::get("Africa/Nairobi")?;
    Ok(Arc::new(move |i| {
        // As Daraja documents a C2B confirmation: the transaction's time in Nairobi, the
        // amount as decimal text, the contract reference as the account number the borrower
        // typed; no API key, the token in the path.
        let trans_time = jiff::Timestamp::now()
            .to_zoned(nairobi.clone())
            .strftime("%Y%m%d%H%M%S")
            .to_string();
        let body = json!({
            "TransactionType": "Pay Bill",
            "TransID": format!("BNCH{i:07}"),
            "TransTime": trans_time,
            "TransAmount": "2000.00",
            "BusinessShortCode": "600638",
            "BillRefNumber": contract_ref(i as u32),
            "InvoiceNumber": "",
            "OrgAccountBalance": "0.00",
            "ThirdPartyTransID": "",
            "MSISDN": "254700000000",
            "FirstName": "Bench",
            "MiddleName": "",
            "LastName": "Payer",
        })
        .to_string();
        post(&path, "", &body)
    }))
}

/// Makes a named payment provider for the bench financier through the API; returns the
/// payment, signed with its secret per Standard Webhooks, that pays phone `i`'s arrears.
async fn signed_payment(server: &Running, key: &str) -> Result<Payment> {
    let created = created(
        server,
        "/v1/financiers/fin_bench/payment-providers",
        key,
        r#"{"name":"bench-bank"}"#,
        "making the payment provider failed",
    )
    .await?;
    let path = created["callback_path"]
        .as_str()
        .context("the provider's answer has a callback_path")?
        .to_string();
    let secret = created["secret"]
        .as_str()
        .and_then(|s| s.strip_prefix("whsec_"))
        .and_then(|s| STANDARD.decode(s).ok())
        .context("the provider's answer has a whsec_ secret")?;
    Ok(Arc::new(move |i| {
        // Whole seconds, as M-Pesa's TransTime: the server keeps a provider's `paid_at` to the
        // nearest second, so a fraction of half a second or more dates the payment ahead of
        // the server's clock, where it counts only from that second on, at the scheduler's
        // next pass (a pass this benchmark does not run). BENCHMARKS.md says more.
        let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
            .expect("a second of the present is a timestamp");
        let body = json!({
            "reference": format!("BENCH-EQ-{i:07}"),
            "account": contract_ref(i as u32),
            "amount": "2000.00",
            "currency": "KES",
            "paid_at": now.to_string(),
        })
        .to_string();
        let id = format!("msg_bench_{i}");
        let timestamp = now.as_second();
        let signature =
            lien_server::providers::generic::sign(&secret, &id, timestamp, body.as_bytes());
        post(
            &path,
            &format!(
                "webhook-id: {id}\r\nwebhook-timestamp: {timestamp}\r\n\
                 webhook-signature: {signature}\r\n"
            ),
            &body,
        )
    }))
}

/// POSTs `body` to `path` with the financier's `key`, expecting a 201; returns the answer.
async fn created(
    server: &Running,
    path: &str,
    key: &str,
    body: &str,
    failure: &str,
) -> Result<serde_json::Value> {
    let mut conn = Conn::open(server.addr).await?;
    let request = post(path, &format!("authorization: Bearer {key}\r\n"), body);
    let answer = conn.exchange_expecting(&request, 201, failure).await?;
    Ok(serde_json::from_slice(answer)?)
}
