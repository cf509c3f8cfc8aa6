//! Shared by the process-level harnesses (`tests/kill_test.rs`, `benches/bench.rs`, each
//! includes this file with `#[path]`): start the real binaries, wait for `/readyz`, and read
//! apalis's `Jobs` table for what a worker process holds.

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context;

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
pub async fn jobs_done(pool: &sqlx::SqlitePool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM Jobs WHERE status = 'Done'")
            .fetch_one(pool)
            .await?,
    )
}

/// Waits until more than `done_before` jobs are done (a restarted worker made progress);
/// returns the time since `killed_at`. Fails after 60 s.
pub async fn wait_for_progress(
    pool: &sqlx::SqlitePool,
    done_before: i64,
    killed_at: Instant,
) -> anyhow::Result<Duration> {
    loop {
        if jobs_done(pool).await? > done_before {
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
pub async fn held_by(pool: &sqlx::SqlitePool, pid: u32) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM Jobs WHERE status IN ('Queued', 'Running') AND lock_by LIKE ?",
    )
    .bind(format!("jmz-{pid}-%"))
    .fetch_all(pool)
    .await?)
}

/// Waits until each of `jobs` (held by the dead worker `pid` when it was killed at
/// `killed_at`) is out of its hands — `back_to_work` false: released to the queue, true: taken
/// by another worker or done. How long that took, or `None` (nothing held, or not within
/// 120 s).
pub async fn rescue_time(
    pool: sqlx::SqlitePool,
    pid: u32,
    jobs: Vec<String>,
    killed_at: Instant,
    back_to_work: bool,
) -> Option<Duration> {
    if jobs.is_empty() {
        return None;
    }
    let ids = serde_json::to_string(&jobs).ok()?;
    let waiting = if back_to_work {
        "NOT (status = 'Done' OR (status IN ('Queued', 'Running') AND lock_by NOT LIKE ?2))"
    } else {
        "lock_by LIKE ?2 AND status IN ('Queued', 'Running')"
    };
    let query = format!(
        "SELECT count(*) FROM Jobs WHERE id IN (SELECT value FROM json_each(?1)) AND {waiting}"
    );
    loop {
        let still: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(query.clone()))
            .bind(&ids)
            .bind(format!("jmz-{pid}-%"))
            .fetch_one(&pool)
            .await
            .ok()?;
        if still == 0 {
            return Some(killed_at.elapsed());
        }
        if killed_at.elapsed() > Duration::from_secs(120) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
