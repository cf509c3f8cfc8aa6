//! Which worker processes are alive, without waiting for heartbeats.
//!
//! Each worker process holds a lock for as long as it lives, which goes with the process
//! however it dies (SIGKILL, power loss of its machine):
//!
//! * on SQLite, an exclusive lock on its own file in `<database>.workers/` (SQLite is one
//!   file on one machine, so every worker sharing it sees the same lock files);
//! * on PostgreSQL, a session advisory lock on its name, held on a connection of its own,
//!   with its name in `worker_processes` (the server drops the lock the moment that
//!   connection ends, on whatever machine the process ran).
//!
//! A worker that can take another worker's lock therefore knows that process is gone: it
//! puts the jobs that process held back in the queue at once (apalis would wait for two
//! missed heartbeats, and only a worker that lives through a heartbeat does it) and shortens
//! the claims that process left on meeting rows to a short grace, so their creates look for
//! the meeting and go on. Apalis's heartbeat rescue stays as the fallback.
//!
//! A PostgreSQL restart ends every lock connection: each live worker takes its lock again
//! at its next look (every 2 s); a rescuer that looked first puts a live worker's jobs back
//! too early, which costs a repeated, idempotent job run (the claims and the look-first rule
//! keep R-ONCE), never a lost one.

use std::{
    fs::{File, OpenOptions},
    path::PathBuf,
};

use anyhow::Context;
use sqlx::Connection;

use super::Engine;
use crate::store::{db, meetings::shorten_claims, queue};

/// How long a create cut off by its process's death (or a shutdown) keeps its claim: Zoom
/// may still finish a request it had received.
pub const CUT_OFF_CLAIM_GRACE_SECONDS: i64 = 3;

/// This process's lock, held while the worker runs.
#[derive(Debug)]
pub enum Liveness {
    /// SQLite: `<database>.workers/<name>.lock`, locked.
    Files {
        folder: PathBuf,
        own: PathBuf,
        _lock: File,
    },
    /// PostgreSQL: the advisory lock on `name`, held on `holder`'s connection.
    Postgres {
        name: String,
        pool: sqlx::PgPool,
        holder: tokio::sync::Mutex<Option<sqlx::PgConnection>>,
    },
}

fn lock_folder(pool: &sqlx::SqlitePool) -> Option<PathBuf> {
    let options = pool.connect_options();
    let database = options.get_filename();
    let name = database.file_name()?.to_str()?;
    if name.is_empty() || name == ":memory:" {
        return None;
    }
    Some(database.with_file_name(format!("{name}.workers")))
}

/// The advisory lock key of the worker process `name` (one key space for jmotto-zoom's
/// workers; `BEGIN`'s write lock uses the two-integer form, another key space).
const LOCK_KEY: &str = "hashtextextended('jmotto-zoom worker ' || $1, 0)";

impl Liveness {
    /// Takes this process's lock; `None` for an in-memory database.
    pub async fn register(engine: &Engine, name: &str) -> anyhow::Result<Option<Liveness>> {
        match engine.store.db() {
            db::Pool::Sqlite(pool) => Liveness::register_file(pool, name),
            db::Pool::Postgres(pool) => {
                let holder = lock_own(pool, name).await?;
                db::query(
                    "INSERT INTO worker_processes (name, started_at) VALUES ($1, $2) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(crate::store::utc_text(chrono::Utc::now()))
                .execute(engine.store.db())
                .await
                .context("cannot register the worker process")?;
                Ok(Some(Liveness::Postgres {
                    name: name.to_owned(),
                    pool: pool.clone(),
                    holder: tokio::sync::Mutex::new(Some(holder)),
                }))
            }
        }
    }

    /// Creates and locks `<database>.workers/<name>.lock`.
    fn register_file(pool: &sqlx::SqlitePool, name: &str) -> anyhow::Result<Option<Liveness>> {
        let Some(folder) = lock_folder(pool) else {
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
        Ok(Some(Liveness::Files {
            folder,
            own,
            _lock: lock,
        }))
    }

    /// Finds worker processes that died and puts their jobs back; returns how many jobs.
    pub async fn rescue_dead(&self, engine: &Engine) -> anyhow::Result<u64> {
        match self {
            Liveness::Files { folder, own, .. } => rescue_dead_files(engine, folder, own).await,
            Liveness::Postgres { name, pool, holder } => {
                let mut holder = holder.lock().await;
                rescue_dead_postgres(engine, name, pool, &mut holder).await
            }
        }
    }

    /// Gives the lock up at a clean stop.
    pub async fn remove(self, engine: &Engine) {
        match self {
            Liveness::Files { own, .. } => {
                let _ = std::fs::remove_file(&own);
            }
            Liveness::Postgres { name, holder, .. } => {
                let _ = db::query("DELETE FROM worker_processes WHERE name = $1")
                    .bind(&name)
                    .execute(engine.store.db())
                    .await;
                if let Some(connection) = holder.into_inner() {
                    let _ = connection.close().await;
                }
            }
        }
    }

    /// Where the locks are, for a log line.
    pub fn place(&self) -> String {
        match self {
            Liveness::Files { folder, .. } => folder.display().to_string(),
            Liveness::Postgres { .. } => "the database's advisory locks".to_owned(),
        }
    }
}

/// A connection of its own holding the advisory lock on `name`.
async fn lock_own(pool: &sqlx::PgPool, name: &str) -> anyhow::Result<sqlx::PgConnection> {
    let mut holder = sqlx::PgConnection::connect_with(&pool.connect_options())
        .await
        .context("cannot open the worker's lock connection")?;
    let taken: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT pg_try_advisory_lock({LOCK_KEY})"
    )))
    .bind(name)
    .fetch_one(&mut holder)
    .await
    .context("cannot take the worker's lock")?;
    anyhow::ensure!(taken, "another process holds the worker lock of {name}");
    Ok(holder)
}

/// The SQLite way: every lock file that can be locked is a dead worker's.
async fn rescue_dead_files(
    engine: &Engine,
    folder: &PathBuf,
    own: &PathBuf,
) -> anyhow::Result<u64> {
    let mut rescued = 0;
    let entries =
        std::fs::read_dir(folder).with_context(|| format!("cannot read {}", folder.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if &path == own || path.extension().and_then(|e| e.to_str()) != Some("lock") {
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

/// The PostgreSQL way: first makes sure this process still holds its own lock (taking it
/// again on a new connection after a PostgreSQL restart), then every registered worker
/// whose lock can be taken is dead.
async fn rescue_dead_postgres(
    engine: &Engine,
    own: &str,
    pool: &sqlx::PgPool,
    holder: &mut Option<sqlx::PgConnection>,
) -> anyhow::Result<u64> {
    let alive = match holder.as_mut() {
        Some(connection) => connection.ping().await.is_ok(),
        None => false,
    };
    if !alive {
        *holder = None;
        *holder = Some(lock_own(pool, own).await?);
        tracing::warn!(worker = %own, "the worker's lock connection was lost; it holds its lock again");
    }
    let Some(connection) = holder.as_mut() else {
        return Ok(0);
    };
    let others: Vec<String> =
        sqlx::query_scalar("SELECT name FROM worker_processes WHERE name <> $1 ORDER BY name")
            .bind(own)
            .fetch_all(&mut *connection)
            .await
            .context("cannot list the worker processes")?;
    let mut rescued = 0;
    for name in others {
        let taken: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT pg_try_advisory_lock({LOCK_KEY})"
        )))
        .bind(&name)
        .fetch_one(&mut *connection)
        .await
        .context("cannot try a worker's lock")?;
        if !taken {
            continue; // alive (or another worker is rescuing it right now)
        }
        let outcome = rescue(engine, &name).await;
        if outcome.is_ok() {
            sqlx::query("DELETE FROM worker_processes WHERE name = $1")
                .bind(&name)
                .execute(&mut *connection)
                .await
                .context("cannot forget a dead worker process")?;
        }
        sqlx::query_scalar::<_, bool>(sqlx::AssertSqlSafe(format!(
            "SELECT pg_advisory_unlock({LOCK_KEY})"
        )))
        .bind(&name)
        .fetch_one(&mut *connection)
        .await
        .context("cannot let a dead worker's lock go")?;
        rescued += outcome?;
    }
    Ok(rescued)
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
