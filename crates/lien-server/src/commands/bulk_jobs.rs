//! Bulk enrollments that run on after the request that started them, so that a person who
//! uploads thousands of rows watches them go (the console's progress page) instead of a
//! request that hangs for a minute. A job is this server's: it lives in memory, is seen only
//! by whoever started it, and is forgotten an hour after it started, when they start another,
//! or when the server stops (the rows it enrolled stay enrolled, each in its own transaction).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::bulk::{BulkResult, enroll_rows, read_csv};
use crate::app::AppState;
use crate::auth::Actor;
use crate::clock::micros;
use crate::error::ApiError;

/// The most bulk jobs one server runs at once, over everyone.
const MAX_RUNNING: usize = 2;
/// How long a finished job's result is kept, in microseconds (an hour).
const KEPT_US: i64 = 3_600_000_000;
/// The most jobs kept at all; the oldest finished ones go first. A finished job of 20,000 rows
/// holds about 2 MB of outcomes, so this bounds what the server keeps to some tens of MB.
const MAX_KEPT: usize = 20;

/// Where a job stands.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Rows done of all the file's rows.
    Running {
        /// Rows enrolled or refused so far.
        done: usize,
        /// Rows in the file.
        total: usize,
    },
    /// Every row's outcome.
    Finished(Arc<BulkResult>),
    /// Stopped by a failure of the server (a database error); the rows before it stay.
    Failed(String),
}

impl Progress {
    fn running(&self) -> bool {
        matches!(self, Progress::Running { .. })
    }
}

/// One job.
#[derive(Debug)]
struct Job {
    /// Who started it (the actor's key id: a person's `per_…`): only they see it.
    owner: String,
    /// For whom: one job per financier runs at a time.
    financier_id: Option<String>,
    /// When it started, for forgetting it.
    started_us: i64,
    progress: watch::Receiver<Progress>,
}

impl Job {
    /// Where it stands. A job whose task ended without a word (it panicked) has failed: it
    /// must not hold its place, nor its person's, for ever.
    fn standing(&self) -> Progress {
        let progress = self.progress.borrow().clone();
        if progress.running() && self.progress.has_changed().is_err() {
            return Progress::Failed("the enrollment stopped unexpectedly".into());
        }
        progress
    }

    fn running(&self) -> bool {
        self.standing().running()
    }
}

/// The server's bulk jobs, by id.
#[derive(Debug, Default)]
pub struct Jobs(Mutex<HashMap<String, Job>>);

impl Jobs {
    /// Reads `body` as a bulk CSV (refused whole as `read_csv` refuses it) and starts enrolling
    /// its rows in the background; returns the job's id. One job per financier at a time, and
    /// a few per server; a refused upload is refused before its file is read.
    pub async fn start(
        &self,
        state: &AppState,
        actor: &Actor,
        body: &[u8],
    ) -> Result<String, ApiError> {
        self.room_for(actor)?;
        let file = read_csv(state, actor, body).await?;
        let id = crate::input::new_id("job")?;
        let now_us = micros(state.clock.now());
        let total = file.rows();
        let (sender, receiver) = watch::channel(Progress::Running { done: 0, total });
        {
            let mut jobs = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // Checked again under the lock that inserts: two uploads read at once cannot both
            // take the last place.
            refuse_when_full(&jobs, actor)?;
            // A person's new upload replaces their ended ones: the page shows the latest.
            jobs.retain(|_, job| job.owner != actor.key_id || job.running());
            forget_old(&mut jobs, now_us);
            jobs.insert(
                id.clone(),
                Job {
                    owner: actor.key_id.clone(),
                    financier_id: actor.financier_id.clone(),
                    started_us: now_us,
                    progress: receiver,
                },
            );
        }
        let (state, actor) = (state.clone(), actor.clone());
        tokio::spawn(async move {
            let outcome = enroll_rows(&state, &actor, file, |done| {
                sender.send_replace(Progress::Running { done, total });
            })
            .await;
            sender.send_replace(match outcome {
                Ok(result) => Progress::Finished(Arc::new(result)),
                Err(err) => {
                    // Debug, so that an internal error's cause reaches the log.
                    tracing::error!(error = ?err, "a bulk enrollment stopped");
                    Progress::Failed(err.to_string())
                }
            });
        });
        Ok(id)
    }

    /// Where the actor's job `id` stands; another's, or one forgotten, is not found.
    pub fn progress(&self, actor: &Actor, id: &str) -> Result<Progress, ApiError> {
        let jobs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match jobs.get(id) {
            Some(job) if job.owner == actor.key_id => Ok(job.standing()),
            _ => Err(ApiError::NotFound("upload")),
        }
    }

    /// Waits for the actor's job `id` to end; its rows' outcomes, or why it stopped.
    pub async fn finished(&self, actor: &Actor, id: &str) -> Result<Arc<BulkResult>, ApiError> {
        let mut receiver = {
            let jobs = self.0.lock().unwrap_or_else(|e| e.into_inner());
            match jobs.get(id) {
                Some(job) if job.owner == actor.key_id => job.progress.clone(),
                _ => return Err(ApiError::NotFound("upload")),
            }
        };
        // An error means the task ended without a word: it panicked.
        let ended = receiver.wait_for(|p| !p.running()).await.map(|p| p.clone());
        match ended {
            Ok(Progress::Finished(result)) => Ok(result),
            Ok(Progress::Failed(why)) => Err(ApiError::Internal(anyhow::anyhow!(why))),
            Ok(Progress::Running { .. }) | Err(_) => Err(ApiError::Internal(anyhow::anyhow!(
                "the bulk enrollment stopped unexpectedly"
            ))),
        }
    }

    /// Waits up to `within` for job `id` to finish (a small file is done before its page is
    /// first shown).
    pub async fn settle(&self, id: &str, within: Duration) {
        let receiver = {
            let jobs = self.0.lock().unwrap_or_else(|e| e.into_inner());
            jobs.get(id).map(|job| job.progress.clone())
        };
        if let Some(mut receiver) = receiver {
            let _ = tokio::time::timeout(within, receiver.wait_for(|p| !p.running())).await;
        }
    }
}

impl Jobs {
    /// Refuses a new job when the actor's financier has one running, or the server has as
    /// many as it takes.
    pub fn room_for(&self, actor: &Actor) -> Result<(), ApiError> {
        refuse_when_full(&self.0.lock().unwrap_or_else(|e| e.into_inner()), actor)
    }
}

fn refuse_when_full(jobs: &HashMap<String, Job>, actor: &Actor) -> Result<(), ApiError> {
    let running: Vec<&Job> = jobs.values().filter(|job| job.running()).collect();
    if running
        .iter()
        .any(|job| job.owner == actor.key_id || job.financier_id == actor.financier_id)
    {
        return Err(ApiError::Conflict(
            "an upload for this financier is still being enrolled; wait for it to finish".into(),
        ));
    }
    if running.len() >= MAX_RUNNING {
        return Err(ApiError::Unavailable(
            "this server is enrolling as many files as it takes at once; try again in a minute"
                .into(),
        ));
    }
    Ok(())
}

/// Forgets the ended jobs that started more than an hour ago, then the oldest ended ones
/// while more than [`MAX_KEPT`] are kept. Running jobs are never forgotten.
fn forget_old(jobs: &mut HashMap<String, Job>, now_us: i64) {
    jobs.retain(|_, job| job.running() || now_us - job.started_us < KEPT_US);
    while jobs.len() >= MAX_KEPT {
        let oldest = jobs
            .iter()
            .filter(|(_, job)| !job.running())
            .min_by_key(|(_, job)| job.started_us)
            .map(|(id, _)| id.clone());
        match oldest {
            Some(id) => jobs.remove(&id),
            None => break,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn actor(key_id: &str) -> Actor {
        Actor {
            key_id: key_id.to_string(),
            role: Role::FinancierAdmin,
            financier_id: Some("fin_1".to_string()),
        }
    }

    /// A job of `owner` started at `started_us`, standing at `progress`, its task alive.
    fn job(owner: &str, started_us: i64, progress: Progress) -> Job {
        let (job, sender) = job_and_task(owner, started_us, progress);
        // The task goes on for the whole test.
        std::mem::forget(sender);
        job
    }

    fn job_and_task(
        owner: &str,
        started_us: i64,
        progress: Progress,
    ) -> (Job, watch::Sender<Progress>) {
        let (sender, receiver) = watch::channel(progress);
        let job = Job {
            owner: owner.to_string(),
            financier_id: Some("fin_1".to_string()),
            started_us,
            progress: receiver,
        };
        (job, sender)
    }

    fn finished() -> Progress {
        Progress::Finished(Arc::new(BulkResult {
            enrolled: 1,
            failed: 0,
            rows: Vec::new(),
        }))
    }

    #[test]
    fn a_job_is_seen_only_by_whoever_started_it() {
        let jobs = Jobs::default();
        let running = Progress::Running { done: 3, total: 10 };
        jobs.0
            .lock()
            .unwrap()
            .insert("job_1".into(), job("per_a", 0, running));
        match jobs.progress(&actor("per_a"), "job_1") {
            Ok(Progress::Running { done: 3, total: 10 }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            jobs.progress(&actor("per_b"), "job_1"),
            Err(ApiError::NotFound("upload"))
        ));
        assert!(jobs.progress(&actor("per_a"), "job_2").is_err());
    }

    #[test]
    fn one_job_runs_per_financier_and_a_crashed_one_lets_go() {
        let jobs = Jobs::default();
        let (running, task) = job_and_task("per_a", 0, Progress::Running { done: 1, total: 9 });
        jobs.0.lock().unwrap().insert("job_1".into(), running);
        // A colleague at the same financier waits; another financier does not.
        assert!(matches!(
            jobs.room_for(&actor("per_b")),
            Err(ApiError::Conflict(_))
        ));
        let elsewhere = Actor {
            financier_id: Some("fin_2".to_string()),
            ..actor("per_c")
        };
        assert!(jobs.room_for(&elsewhere).is_ok());
        // The task dies without a word: the job has failed, and the place is free.
        drop(task);
        assert!(matches!(
            jobs.progress(&actor("per_a"), "job_1"),
            Ok(Progress::Failed(_))
        ));
        assert!(jobs.room_for(&actor("per_b")).is_ok());
    }

    #[test]
    fn ended_jobs_are_forgotten_after_an_hour_and_running_ones_never() {
        let mut jobs = HashMap::from([
            ("old".to_string(), job("per_a", 0, finished())),
            ("recent".to_string(), job("per_a", KEPT_US, finished())),
            (
                "long".to_string(),
                job("per_b", 0, Progress::Running { done: 1, total: 9 }),
            ),
        ]);
        forget_old(&mut jobs, KEPT_US + 1);
        let mut kept: Vec<_> = jobs.keys().cloned().collect();
        kept.sort();
        assert_eq!(kept, ["long", "recent"]);
    }

    #[test]
    fn past_the_most_kept_the_oldest_ended_go_first() {
        let mut jobs: HashMap<String, Job> = (0..MAX_KEPT as i64)
            .map(|i| (format!("job_{i}"), job("per_a", i, finished())))
            .collect();
        forget_old(&mut jobs, 10);
        assert_eq!(jobs.len(), MAX_KEPT - 1);
        assert!(!jobs.contains_key("job_0"));
        assert!(jobs.contains_key("job_1"));
    }
}
