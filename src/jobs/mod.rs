//! Durable jobs on apalis-sqlite: `SyncWindow` → `FetchSlice` per (user, month) →
//! `CreateMeeting` / `UpdateMeeting` / `DeleteMeeting`.
//!
//! Every job type has an explicit queue name (renaming a struct must not strand queued
//! jobs), carries ids rather than payloads, and is pushed with [`push`] inside the same
//! transaction as the state change that implies it. Waits that matter (a retry's backoff, a
//! host's daily quota, J-MOTTO's busy period) are a new task with a future run time in the
//! database, never an in-memory sleep: a restart honours them.

pub mod alerts;
pub mod engine;
pub mod housekeeping;
pub mod liveness;
pub mod meetings;
pub mod retention;
pub mod sync;
pub mod worker;

use std::{future::Future, time::Duration};

use anyhow::Context;
use apalis::prelude::{TaskBuilder, TaskId};
use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use ulid::Ulid;

use crate::store::{db, queue};

pub use engine::{Clock, Engine, LiveEngine, NotSet};

/// A job type: its queue name is part of the database contract.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The `job_type` column of apalis's `Jobs` table.
    const QUEUE: &'static str;
}

/// Computes the window and fans out one [`FetchSlice`] per (user, month).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SyncWindow {
    /// The sync run's id (this job's own id).
    pub sync_id: String,
    /// Groupware ids to sync; `None` = every enabled user.
    pub users: Option<Vec<String>>,
    /// The HTTP request that caused it, for the logs.
    #[serde(default)]
    pub request_id: Option<String>,
}

impl Job for SyncWindow {
    const QUEUE: &'static str = "jmz.sync_window";
}

/// Lists one user's entries for one month and decides per entry.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FetchSlice {
    pub sync_id: String,
    pub user_id: String,
    /// `YYYY-MM`.
    pub month: String,
    #[serde(default)]
    pub request_id: Option<String>,
}

impl Job for FetchSlice {
    const QUEUE: &'static str = "jmz.fetch_slice";
}

/// Creates the Zoom meeting of one `meetings` row (R-ONCE: claims the row first).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CreateMeeting {
    pub meeting_id: i64,
    #[serde(default)]
    pub request_id: Option<String>,
    /// The sync run that decided it (for the trigger-to-meeting time).
    #[serde(default)]
    pub sync_id: Option<String>,
}

impl Job for CreateMeeting {
    const QUEUE: &'static str = "jmz.create_meeting";
}

/// PATCHes the Zoom meeting of one row with the row's content.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct UpdateMeeting {
    pub meeting_id: i64,
    #[serde(default)]
    pub request_id: Option<String>,
}

impl Job for UpdateMeeting {
    const QUEUE: &'static str = "jmz.update_meeting";
}

/// Deletes the Zoom meeting of one row.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DeleteMeeting {
    pub meeting_id: i64,
    /// Why: `entry_deleted`, `location_removed`, `replaced`.
    pub reason: String,
    #[serde(default)]
    pub request_id: Option<String>,
}

impl Job for DeleteMeeting {
    const QUEUE: &'static str = "jmz.delete_meeting";
}

/// How a worker runs a job type: what [`worker`] needs to register its queue, one generic
/// registration for every type. The implementations are in [`worker`], beside the
/// registration (they call into [`sync`] and [`meetings`], which import this module).
pub trait JobHandler: Job + Clone {
    /// One of these jobs at a time per worker process, instead of `worker.concurrency`.
    const ONE_AT_A_TIME: bool = false;

    /// The HTTP request that caused the job, for its span.
    fn request_id(&self) -> Option<&str>;

    /// Runs the job once (idempotent: running it twice has the effect of running it once).
    fn run(&self, engine: &Engine) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Something done once per job type (see [`for_each_job_type`]).
pub trait JobTypeVisitor {
    /// Called with each job type in turn.
    fn visit<J: JobHandler>(&mut self);
}

/// Every job type this product runs: the one list. A new job type is added here and
/// nowhere else; the worker and [`queues`] take it from here.
pub fn for_each_job_type(visitor: &mut impl JobTypeVisitor) {
    visitor.visit::<SyncWindow>();
    visitor.visit::<FetchSlice>();
    visitor.visit::<CreateMeeting>();
    visitor.visit::<UpdateMeeting>();
    visitor.visit::<DeleteMeeting>();
    visitor.visit::<alerts::DeliverAlert>();
}

/// Every queue this product owns, in [`for_each_job_type`]'s order.
pub fn queues() -> Vec<&'static str> {
    struct Names(Vec<&'static str>);
    impl JobTypeVisitor for Names {
        fn visit<J: JobHandler>(&mut self) {
            self.0.push(J::QUEUE);
        }
    }
    let mut names = Names(Vec::new());
    for_each_job_type(&mut names);
    names.0
}

/// apalis's own attempts per task: our handlers return `Ok` after recording any expected
/// failure (and pushing a durable retry), so these only cover a crashed or erroring
/// handler (e.g. the database went away).
pub const TASK_MAX_ATTEMPTS: usize = 5;

/// A fresh job id (apalis-sqlite ids must be ULIDs; `push_tasks` returns none).
pub fn new_job_id() -> String {
    Ulid::generate().to_string()
}

/// Options of [`push`].
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// The id to give the task (default: a fresh ULID).
    pub id: Option<String>,
    /// Run no earlier than this.
    pub run_at: Option<DateTime<Utc>>,
    /// Unique per queue, forever: a second push with the same key inserts nothing.
    pub idempotency_key: Option<String>,
}

impl PushOptions {
    /// Run no earlier than `run_at` (a durable wait).
    pub fn at(run_at: DateTime<Utc>) -> PushOptions {
        PushOptions {
            run_at: Some(run_at),
            ..PushOptions::default()
        }
    }
}

/// Pushes `job` on `conn` (usually a transaction), returning the task id. With an
/// idempotency key that already exists, nothing is inserted and the existing id is returned.
/// A job due now wakes this process's workers of its queue when the transaction commits
/// (`store::wake`; on PostgreSQL every process's, through apalis-postgres's notification).
///
/// The arguments are the job's JSON bytes on both backends (apalis-sqlite's `Jobs.job`
/// BLOB, apalis-postgres's `apalis.jobs.job` BYTEA), decoded by each backend's JSON codec.
/// On PostgreSQL an existing idempotency key is looked up before the push:
/// apalis-postgres's insert has no `ON CONFLICT`, and a unique violation would abort the
/// whole transaction. Write transactions take their turn one at a time (`store::WriteTx`),
/// so no other push of the same key comes between the look-up and the insert.
pub async fn push<J: Job>(
    conn: &mut db::Conn,
    job: &J,
    options: PushOptions,
) -> anyhow::Result<String> {
    let (id, task) = task(job, &options)?;
    if conn.backend() == db::Backend::Postgres
        && let Some(key) = &options.idempotency_key
        && let Some(existing) = queue::job_with_idempotency_key(conn, J::QUEUE, key).await?
    {
        return Ok(existing);
    }
    match conn {
        db::Conn::Sqlite(sqlite) => {
            apalis_sqlite::queries::push_tasks(&mut **sqlite, J::QUEUE, &[task])
                .await
                .with_context(|| format!("cannot enqueue a {} job", J::QUEUE))?;
        }
        db::Conn::Postgres(postgres) => {
            apalis_postgres::queries::push_tasks(&mut **postgres, J::QUEUE, vec![task])
                .await
                .with_context(|| format!("cannot enqueue a {} job", J::QUEUE))?;
        }
    }
    if options.run_at.is_none_or(|run_at| run_at <= Utc::now()) {
        // A job due now wakes this process's workers of its queue once it has committed
        // (issue 11: each hop of a sync waited for a poll).
        crate::store::wake::pushed(conn, J::QUEUE, &id)
            .await
            .context("cannot mark a queue to wake")?;
    }
    if let Some(key) = &options.idempotency_key {
        let existing = queue::job_with_idempotency_key(conn, J::QUEUE, key).await?;
        if let Some(existing) = existing {
            return Ok(existing);
        }
    }
    Ok(id)
}

/// The task of `job` with `options`, and its id: its arguments are the job's JSON bytes.
/// apalis-sqlite's `SqliteTask` and apalis-postgres's `PgTask` are the same type.
fn task<J: Job>(
    job: &J,
    options: &PushOptions,
) -> anyhow::Result<(String, apalis_sqlite::SqliteTask)> {
    let id = match &options.id {
        Some(id) => id.clone(),
        None => new_job_id(),
    };
    let ulid = Ulid::from_string(&id).context("job ids are ULIDs")?;
    let args = serde_json::to_vec(job).context("cannot encode a job")?;
    let mut builder = TaskBuilder::new(args)
        .task_id(TaskId::from_ulid(ulid))
        .max_attempts(TASK_MAX_ATTEMPTS);
    if let Some(run_at) = options.run_at {
        builder = builder.run_at_timestamp(u64::try_from(run_at.timestamp()).unwrap_or(0));
    }
    if let Some(key) = &options.idempotency_key {
        builder = builder.idempotency_key(key);
    }
    Ok((id, builder.build()))
}

/// Exponential backoff with up to 20 % jitter: base × 2^(attempt−1), at most one hour.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let delay = base
        .saturating_mul(1u32 << exponent)
        .min(Duration::from_secs(3600));
    let jitter = rand::random::<f64>() * 0.2;
    delay.mul_f64(1.0 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        let base = Duration::from_secs(2);
        for (attempt, low) in [(1, 2), (2, 4), (3, 8), (10, 1024)] {
            let d = backoff(base, attempt);
            assert!(d >= Duration::from_secs(low) && d <= Duration::from_secs(low).mul_f64(1.2));
        }
        assert!(backoff(base, 40) <= Duration::from_secs(3600).mul_f64(1.2));
    }

    #[test]
    fn queue_names_are_explicit_and_distinct() {
        let queues = queues();
        let mut names = queues.clone();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 6);
        assert_eq!(names.len(), queues.len());
        // `store::queue` selects our jobs by this namespace.
        assert!(queues.iter().all(|q| q.starts_with(queue::QUEUE_NAMESPACE)));
    }
}
