//! Retention of finished jobs: apalis keeps every finished job in `Jobs`, and its own
//! `vacuum_before` compares an integer timestamp with a text date, deleting every finished
//! job whatever its age (DESIGN.md). This prunes by our own query instead, on PostgreSQL
//! too (apalis-postgres's `vacuum` also deletes every finished job whatever its age), where
//! the table is `apalis.jobs` (`store::queue::prune_finished`).
//!
//! Only our queues (`jmz.*`), and only jobs that will never run again: `Done`, `Killed`,
//! and `Failed` with no attempt left, whose `done_at` is older than `worker.retention_days`.
//! Nothing else is touched (not the other tables, not webhook dedup rows).

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::Engine;
use crate::store::{Store, queue};

/// How often a worker prunes (and once at start-up).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes our finished jobs whose `done_at` is before `cutoff`, in a write transaction
/// (the process's write turn); returns how many.
pub async fn prune_finished_jobs(store: &Store, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
    let mut tx = store.begin_write().await?;
    let deleted = queue::prune_finished(&mut tx, cutoff).await?;
    tx.commit().await.context("cannot prune finished jobs")?;
    Ok(deleted)
}

/// Prunes at start-up and then every hour; several workers pruning at once only repeat an
/// idempotent delete.
pub async fn periodic_prune(engine: Arc<Engine>) {
    let days = i64::try_from(engine.settings.worker.retention_days).unwrap_or(i64::MAX / 86_400);
    let mut interval = tokio::time::interval(PRUNE_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let cutoff = Utc::now() - chrono::Duration::days(days.min(1_000_000));
        match prune_finished_jobs(&engine.store, cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(jobs = deleted, "pruned finished jobs"),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "could not prune finished jobs")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finished jobs older than the cutoff go; running, pending, retryable and young ones
    /// stay, and so do other queues' jobs.
    #[tokio::test]
    async fn prunes_only_old_finished_jobs_of_our_queues() {
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", folder.path().join("r.db").display());
        let store = crate::store::Store::connect(&url).await.expect("db");
        let now = Utc::now().timestamp();
        let old = now - 10 * 86_400;
        // (name, queue, status, attempts, max_attempts, done_at, pruned)
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            i64,
            i64,
            Option<i64>,
            bool,
        );
        let cases: [Case; 8] = [
            (
                "done-old",
                "jmz.create_meeting",
                "Done",
                1,
                5,
                Some(old),
                true,
            ),
            (
                "killed-old",
                "jmz.fetch_slice",
                "Killed",
                1,
                5,
                Some(old),
                true,
            ),
            (
                "failed-final-old",
                "jmz.sync_window",
                "Failed",
                5,
                5,
                Some(old),
                true,
            ),
            (
                "failed-retry-old",
                "jmz.sync_window",
                "Failed",
                2,
                5,
                Some(old),
                false,
            ),
            (
                "done-young",
                "jmz.create_meeting",
                "Done",
                1,
                5,
                Some(now),
                false,
            ),
            (
                "pending",
                "jmz.create_meeting",
                "Pending",
                0,
                5,
                None,
                false,
            ),
            (
                "running",
                "jmz.create_meeting",
                "Running",
                1,
                5,
                None,
                false,
            ),
            ("other-queue", "webhooks", "Done", 1, 5, Some(old), false),
        ];
        for (i, (_, queue, status, attempts, max, done_at, _)) in cases.iter().enumerate() {
            sqlx::query(
                "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, done_at) VALUES (x'7b7d', ?, ?, ?, ?, ?, ?)",
            )
            .bind(ulid::Ulid::from_parts(1, i as u128).to_string())
            .bind(queue)
            .bind(status)
            .bind(attempts)
            .bind(max)
            .bind(done_at)
            .execute(store.db().as_sqlite().expect("a SQLite store"))
            .await
            .expect("job inserted");
        }
        let deleted = prune_finished_jobs(&store, Utc::now() - chrono::Duration::days(7))
            .await
            .expect("pruned");
        assert_eq!(deleted, 3);
        for (i, (name, .., pruned)) in cases.iter().enumerate() {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM Jobs WHERE id = ?")
                .bind(ulid::Ulid::from_parts(1, i as u128).to_string())
                .fetch_one(store.db().as_sqlite().expect("a SQLite store"))
                .await
                .expect("count");
            assert_eq!(left == 0, *pruned, "{name}");
        }
        store.close().await;
    }
}
