//! Lien's load generator, `lien-bench` (and `lien bench`, which runs it): each benchmark sets up
//! the real server on a fresh database in this process, drives it over loopback HTTP/1.1 and
//! prints its figures in the form `BENCHMARKS.md` records.
//!
//! - `checkin` (`checkin`): check-in throughput against a bare HTTP responder, in one run;
//! - `payment-to-unlock` (`push`) and `idle-connections` (`idle`): the push channel's latency and
//!   memory, with the phones in a child process (`phones`);
//! - `scheduler`: evaluating the plans that fall due at one instant;
//! - `hello`: attested hellos a second;
//! - `provider-unlock` (`provider`): a payment provider's callback to the phone's unlock, over
//!   `payment-to-unlock`'s phones;
//! - `webhooks`: events delivered to a financier's endpoint a second, and their lag;
//! - `console`: the console's device list for a financier with a large portfolio.
//!
//! What they share is written once: the server's setup (`setup`), the HTTP/1.1 client
//! (`http`), latency distributions (`latency`) and what is read of `/proc` (`procfs`).
//!
//! It is a crate of its own so that the `lien` binary, which operators run, carries none of
//! this: `lien bench` finds `lien-bench` beside itself and hands it its arguments.

use anyhow::Result;

mod checkin;
mod console;
mod hello;
mod http;
mod idle;
mod latency;
mod phones;
mod procfs;
mod provider;
mod push;
mod scheduler;
mod setup;
mod webhooks;

/// Lien's load generator: measures the server on this machine (`BENCHMARKS.md` records the
/// method and the results). `lien bench ...` runs it with the same arguments.
#[derive(Debug, clap::Parser)]
#[command(name = "lien-bench", version)]
pub struct Cli {
    #[command(subcommand)]
    benchmark: Benchmark,
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
enum Benchmark {
    /// Device check-ins per second with many enrolled devices, against a bare HTTP responder
    /// returning a body of the same size, measured alternately in the same run.
    Checkin(checkin::CheckinArgs),
    /// Phones connected by push, payments at a steady rate: latency from each payment's 2xx
    /// to the phone applying the unlock, with push and (for comparison) at the next check-in.
    PaymentToUnlock(push::PaymentArgs),
    /// Memory per idle push connection, from the process's resident set before and after.
    IdleConnections(idle::IdleArgs),
    /// Many plans, a tenth of them due at the same instant: time to evaluate the due ones.
    Scheduler(scheduler::SchedulerArgs),
    /// Attested hellos a second: each phone fetches a challenge, attests a new key for it
    /// (outside the timing) and says hello; the server verifies the chain and binds.
    Hello(hello::HelloArgs),
    /// Phones connected by push, M-Pesa confirmations (or, with --signed, a provider's signed
    /// payments) at a steady rate: latency from each callback's 200 to the phone applying the
    /// unlock.
    ProviderUnlock(provider::ProviderArgs),
    /// Payments on many devices, the webhook worker running as in `lien serve`, a receiver in
    /// this process: events delivered a second and the lag from each change to its event.
    Webhooks(webhooks::WebhookArgs),
    /// A financier's portfolio of many devices: how fast the console's device list answers
    /// (first page, deep page, filters, searches), one request at a time.
    Console(console::ConsoleArgs),
}

/// Runs the chosen benchmark.
pub fn run(cli: &Cli) -> Result<()> {
    match &cli.benchmark {
        Benchmark::Checkin(args) => checkin::checkin(args),
        Benchmark::PaymentToUnlock(args) => push::payment_to_unlock(args),
        Benchmark::IdleConnections(args) => idle::idle_connections(args),
        Benchmark::Scheduler(args) => scheduler::scheduler(args),
        Benchmark::Hello(args) => hello::hello(args),
        Benchmark::ProviderUnlock(args) => provider::provider_unlock(args),
        Benchmark::Webhooks(args) => webhooks::webhooks(args),
        Benchmark::Console(args) => console::console(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}
