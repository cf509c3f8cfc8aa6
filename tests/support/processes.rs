//! Shared by the process-level harnesses (`tests/kill_test.rs`, `benches/bench.rs`, each
//! includes this file with `#[path]`): start the real binaries, wait for `/readyz`, and read
//! what a worker process holds through `store::queue`, on either backend ([`QueuePool`]).

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context;
use jmotto_zoom::store::{
    db,
    queue::{self, JobState},
};

/// What the helpers read the queue through: the store's [`db::Pool`] (either backend), or a
/// bare SQLite pool.
pub trait QueuePool {
    fn queue_pool(&self) -> db::Pool;
}

impl QueuePool for db::Pool {
    fn queue_pool(&self) -> db::Pool {
        self.clone()
    }
}

impl QueuePool for sqlx::SqlitePool {
    fn queue_pool(&self) -> db::Pool {
        db::Pool::Sqlite(self.clone())
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `binary --config config` at `RUST_LOG=warn` (or `CHILD_RUST_LOG`), its log
/// appended to `log`.
pub fn spawn(binary: &str, config: &Path, log: &Path) -> anyhow::Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    tokio::process::Command::new(binary)
        .arg("--config")
        .arg(config)
        .env(
            "RUST_LOG",
            std::env::var("CHILD_RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {binary}"))
}

/// Polls `GET /readyz` every 5 ms until it answers 200; returns how long that took from
/// `since`. Fails after `limit`, quoting the processes' `log`.
pub async fn wait_ready(
    listen: &str,
    since: Instant,
    limit: Duration,
    log: &Path,
) -> anyhow::Result<Duration> {
    let http = reqwest::Client::new();
    loop {
        let status = http
            .get(format!("http://{listen}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .ok();
        if status == Some(200) {
            return Ok(since.elapsed());
        }
        anyhow::ensure!(
            since.elapsed() < limit,
            "the server never became ready; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Jobs finished so far.
pub async fn jobs_done(pool: &impl QueuePool) -> anyhow::Result<i64> {
    queue::done_count(&pool.queue_pool()).await
}

/// Waits until more than `done_before` jobs are done (a restarted worker made progress);
/// returns the time since `killed_at`. A failed read (the database restarting) is tried
/// again. Fails after 60 s.
pub async fn wait_for_progress(
    pool: &impl QueuePool,
    done_before: i64,
    killed_at: Instant,
) -> anyhow::Result<Duration> {
    loop {
        if jobs_done(pool).await.is_ok_and(|done| done > done_before) {
            return Ok(killed_at.elapsed());
        }
        anyhow::ensure!(
            killed_at.elapsed() < Duration::from_secs(60),
            "no job done 60 s after a kill"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The jobs the worker process `pid` holds (its worker names are `jmz-<pid>-…`).
pub async fn held_by(pool: &impl QueuePool, pid: u32) -> anyhow::Result<Vec<String>> {
    queue::held_by(&pool.queue_pool(), &format!("jmz-{pid}")).await
}

/// Waits until each of `jobs` (held by the dead worker `pid` when it was killed at
/// `killed_at`) is out of its hands — `back_to_work` false: released to the queue, true: taken
/// by another worker or done. How long that took, or `None` (nothing held, or not within
/// 120 s). A failed read (the database restarting) is tried again.
pub async fn rescue_time(
    pool: impl QueuePool,
    pid: u32,
    jobs: Vec<String>,
    killed_at: Instant,
    back_to_work: bool,
) -> Option<Duration> {
    if jobs.is_empty() {
        return None;
    }
    let of_dead = |lock_by: &Option<String>| {
        lock_by
            .as_deref()
            .is_some_and(|worker| worker.starts_with(&format!("jmz-{pid}-")))
    };
    let pool = pool.queue_pool();
    loop {
        let Ok(states) = queue::states_of(&pool, &jobs).await else {
            if killed_at.elapsed() > Duration::from_secs(120) {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let still = states
            .iter()
            .filter(|(state, lock_by)| {
                let held = *state == JobState::Running;
                if back_to_work {
                    !(*state == JobState::Done || (held && !of_dead(lock_by)))
                } else {
                    held && of_dead(lock_by)
                }
            })
            .count();
        if still == 0 {
            return Some(killed_at.elapsed());
        }
        if killed_at.elapsed() > Duration::from_secs(120) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The meetings of `expected` (agenda markers) the Zoom replay never created, and the
/// creates beyond the first of any marker: (lost, duplicated).
#[allow(dead_code)] // the benchmark includes this file too
pub fn lost_and_duplicated(
    zoom: &jmotto_zoom::replay::ReplayServer,
    expected: &[String],
) -> (usize, usize) {
    let mut per_marker: std::collections::BTreeMap<String, usize> = Default::default();
    for meeting in zoom.zoom_meetings() {
        let marker = meeting["agenda"]
            .as_str()
            .and_then(|a| a.lines().last())
            .unwrap_or("")
            .to_owned();
        *per_marker.entry(marker).or_default() += 1;
    }
    let lost = expected
        .iter()
        .filter(|m| !per_marker.contains_key(*m))
        .count();
    let duplicated = per_marker.values().map(|n| n.saturating_sub(1)).sum();
    (lost, duplicated)
}
