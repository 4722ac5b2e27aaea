//! Many simulated phones in one process, for tests and benchmarks.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::clock::SimClock;
use lien_proto::attestation::DevelopmentRoot;

use super::phone::{Phone, factory_identity};
use super::transport::HttpTransport;
use crate::agent::{AgentConfig, Identity};
use crate::screens::Screen;
use crate::storage::MemoryStorage;

/// Phones that share one HTTP client and run concurrently.
pub struct Fleet {
    phones: Vec<Phone>,
    concurrency: usize,
}

/// What one round across the fleet did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetReport {
    /// Hellos sent in the round.
    pub hellos: u64,
    /// Check-ins sent in the round.
    pub checkins: u64,
    /// Phones showing the lock screen afterwards.
    pub locked: usize,
    /// Phones showing the restricted or reminder screen afterwards.
    pub restricted_or_reminded: usize,
    /// Wall time the round took, in milliseconds.
    pub elapsed_ms: u128,
}

impl Fleet {
    /// New phones (empty memory storage, secure hardware in memory with a random storage key
    /// and a factory identity minted from `root` at `now`, real clocks, OS randomness) for
    /// `identities`, all talking to `server`, at most `concurrency` requests at a time.
    pub fn new(
        server: &str,
        root: &DevelopmentRoot,
        now: i64,
        identities: impl IntoIterator<Item = Identity>,
        config: AgentConfig,
        concurrency: usize,
    ) -> Fleet {
        let client = super::client_builder()
            .build()
            .expect("a default client builds");
        let phones = identities
            .into_iter()
            .map(|identity| {
                let factory = factory_identity(root, &identity, now);
                Phone::new(
                    HttpTransport::with_client(server, client.clone()),
                    identity,
                    factory,
                    Box::new(MemoryStorage::new()),
                    SimClock::real(),
                    config.clone(),
                    None,
                )
            })
            .collect();
        Fleet {
            phones,
            concurrency: concurrency.max(1),
        }
    }

    /// A fleet of phones built elsewhere.
    pub fn from_phones(phones: Vec<Phone>, concurrency: usize) -> Fleet {
        Fleet {
            phones,
            concurrency: concurrency.max(1),
        }
    }

    /// The phones.
    pub fn phones(&self) -> &[Phone] {
        &self.phones
    }

    /// The phones, to act on one.
    pub fn phones_mut(&mut self) -> &mut [Phone] {
        &mut self.phones
    }

    /// Lets every phone send what it has due (the first round: every hello).
    pub async fn run_due(&mut self) -> FleetReport {
        self.round(false).await
    }

    /// Taps "Check again" on every phone.
    pub async fn check_all(&mut self) -> FleetReport {
        self.round(true).await
    }

    async fn round(&mut self, check_again: bool) -> FleetReport {
        let started = Instant::now();
        let before: (u64, u64) = self.totals();
        let limit = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        for (index, mut phone) in std::mem::take(&mut self.phones).into_iter().enumerate() {
            let limit = limit.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                if check_again {
                    phone.check_again().await;
                } else {
                    phone.run_due().await;
                }
                (index, phone)
            });
        }
        let mut phones: Vec<(usize, Phone)> = Vec::with_capacity(tasks.len());
        while let Some(done) = tasks.join_next().await {
            phones.push(done.expect("a phone task does not panic"));
        }
        phones.sort_by_key(|(i, _)| *i);
        self.phones = phones.into_iter().map(|(_, p)| p).collect();
        let after = self.totals();
        FleetReport {
            hellos: after.0 - before.0,
            checkins: after.1 - before.1,
            locked: self.count(|s| matches!(s, Screen::Locked(_))),
            restricted_or_reminded: self
                .count(|s| matches!(s, Screen::Restricted(_) | Screen::Reminder(_))),
            elapsed_ms: started.elapsed().as_millis(),
        }
    }

    fn totals(&self) -> (u64, u64) {
        self.phones.iter().fold((0, 0), |(h, c), p| {
            (h + p.hellos_sent(), c + p.checkins_sent())
        })
    }

    fn count(&self, what: impl Fn(&Screen) -> bool) -> usize {
        self.phones.iter().filter(|p| what(p.screen())).count()
    }
}
