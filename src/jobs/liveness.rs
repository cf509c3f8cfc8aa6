//! Which worker processes sharing the SQLite file are alive, without waiting for heartbeats.
//!
//! Each worker process holds an exclusive lock on its own file in `<database>.workers/` for
//! as long as it lives; the operating system drops the lock when the process dies, however
//! it dies (SIGKILL, power loss of the process). A worker that can lock another worker's file
//! therefore knows that process is gone: it puts the jobs that process held back in the
//! queue at once (apalis-sqlite would wait for two missed heartbeats, and only a worker
//! that lives through a heartbeat does it) and shortens the claims that process left on
//! meeting rows to a short grace, so their creates look for the meeting and go on.
//!
//! SQLite is one file on one machine, so every worker sharing it is on this machine and
//! sees the same lock files. Apalis's heartbeat rescue stays as the fallback.

use std::{
    fs::{File, OpenOptions},
    path::{Path, PathBuf},
};

use anyhow::Context;

use super::Engine;
use crate::store::{meetings::shorten_claims, queue};

/// How long a create cut off by its process's death (or a shutdown) keeps its claim: Zoom
/// may still finish a request it had received.
pub const CUT_OFF_CLAIM_GRACE_SECONDS: i64 = 3;

/// This process's lock file, held while the worker runs.
#[derive(Debug)]
pub struct Liveness {
    folder: PathBuf,
    own: PathBuf,
    _lock: File,
}

fn lock_folder(engine: &Engine) -> Option<PathBuf> {
    let options = engine.store.pool().connect_options();
    let database = options.get_filename();
    let name = database.file_name()?.to_str()?;
    if name.is_empty() || name == ":memory:" {
        return None;
    }
    Some(database.with_file_name(format!("{name}.workers")))
}

impl Liveness {
    /// Creates and locks `<database>.workers/<name>.lock`; `None` for an in-memory database.
    pub fn register(engine: &Engine, name: &str) -> anyhow::Result<Option<Liveness>> {
        let Some(folder) = lock_folder(engine) else {
            return Ok(None);
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            // Owner-only, as the database beside it (issue 13).
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&folder)
                .with_context(|| format!("cannot create {}", folder.display()))?;
        }
        let own = folder.join(format!("{name}.lock"));
        // Lock a file under another name first, then move it into place: a rescuer that
        // scans the folder meanwhile never sees an unlocked `<name>.lock` and takes this
        // live worker for dead.
        let staging = folder.join(format!("{name}.starting"));
        let lock = crate::store::open_lock_file(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        lock.try_lock()
            .map_err(|e| anyhow::anyhow!("cannot lock {}: {e}", staging.display()))?;
        std::fs::rename(&staging, &own)
            .with_context(|| format!("cannot create {}", own.display()))?;
        Ok(Some(Liveness {
            folder,
            own,
            _lock: lock,
        }))
    }

    /// Finds worker processes that died and puts their jobs back; returns how many jobs.
    pub async fn rescue_dead(&self, engine: &Engine) -> anyhow::Result<u64> {
        let mut rescued = 0;
        let entries = std::fs::read_dir(&self.folder)
            .with_context(|| format!("cannot read {}", self.folder.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path == self.own || path.extension().and_then(|e| e.to_str()) != Some("lock") {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                continue;
            };
            let Ok(file) = OpenOptions::new().write(true).open(&path) else {
                continue;
            };
            if file.try_lock().is_err() {
                continue; // alive (or another worker is rescuing it right now)
            }
            rescued += rescue(engine, &name).await?;
            // Removed while locked: no other worker can be rescuing it at the same time.
            let _ = std::fs::remove_file(&path);
        }
        Ok(rescued)
    }

    /// Removes the lock file at a clean stop (the lock goes with the file handle).
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.own);
    }

    /// The folder of lock files.
    pub fn folder(&self) -> &Path {
        &self.folder
    }
}

/// The instance part of a worker name `jmz-<pid>-<instance>`.
fn instance_of(name: &str) -> Option<&str> {
    name.rsplit_once('-').map(|(_, instance)| instance)
}

/// Puts back the jobs of the dead worker `name` and shortens its claims.
async fn rescue(engine: &Engine, name: &str) -> anyhow::Result<u64> {
    let Some(instance) = instance_of(name) else {
        return Ok(0);
    };
    let jobs = requeue_jobs_of(
        engine,
        name,
        instance,
        "Re-enqueued: its worker process died",
    )
    .await?;
    if jobs > 0 {
        tracing::warn!(worker = %name, jobs, "a worker process died; its jobs are queued again");
    }
    Ok(jobs)
}

/// In one transaction: the jobs the worker process `name` holds (queued or running) are
/// pending again, ready now, and the claims its engine `instance` holds on meeting rows end
/// after a short grace. For a process that died, or this one at shutdown.
pub async fn requeue_jobs_of(
    engine: &Engine,
    name: &str,
    instance: &str,
    why: &str,
) -> anyhow::Result<u64> {
    let mut tx = engine.store.begin_write().await?;
    let jobs = queue::requeue_held_by(&mut tx, name, why).await?;
    shorten_claims(
        &mut tx,
        instance,
        engine.claim_duration(),
        chrono::Duration::seconds(CUT_OFF_CLAIM_GRACE_SECONDS),
    )
    .await?;
    tx.commit()
        .await
        .context("cannot commit re-enqueued jobs")?;
    Ok(jobs)
}

/// How many heartbeats a queue worker of this process may miss before the process stops
/// itself: generous, so a loaded machine whose statements wait on the write lock for
/// seconds is not mistaken for a stall.
pub const STALL_AFTER_HEARTBEATS: u64 = 12;

/// Resolves when one of this process's queue workers (`{name}-{queue}` in apalis's
/// `Workers` table) has not beaten for [`STALL_AFTER_HEARTBEATS`] heartbeats, with their
/// names.
///
/// Under a heavy load (issue 5's benchmark with 128 jobs a queue) one queue's apalis worker
/// was seen to stop — no heartbeat, its pending jobs never fetched — while the process and
/// its other queues went on. Nothing inside the process can restart an apalis worker, so the
/// process stops (non-zero exit status) and the service manager starts a new one: its jobs
/// run again then, and the dead process's are taken back through its lock file.
pub async fn stalled_queue_workers(engine: &Engine, name: &str) -> String {
    let beat = engine.settings.worker.heartbeat_seconds.max(1);
    let stale_after = i64::try_from(beat * STALL_AFTER_HEARTBEATS).unwrap_or(i64::MAX);
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(beat));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let stalled = queue::silent_workers(engine.store.db(), name, stale_after).await;
        match stalled {
            Ok(stalled) if !stalled.is_empty() => return stalled.join(", "),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the workers' heartbeats");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_is_the_last_part_of_the_name() {
        assert_eq!(instance_of("jmz-123-01kmabcd"), Some("01kmabcd"));
        assert_eq!(instance_of("nodash"), None);
    }
}
