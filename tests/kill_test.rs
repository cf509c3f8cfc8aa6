//! The kill test (`just kill-test`, run by `.ci/run`): R-ONCE and "a dead worker's jobs run
//! again" at the process level.
//!
//! It starts the replay servers in this process with a generated company whose 200 entries
//! are all to be created, then the real `jmotto-zoom-server` and `jmotto-zoom-worker`
//! binaries as processes on one SQLite file, triggers a sync, and SIGKILLs the worker at
//! random points while the sync runs — each time after the restarted worker has made
//! progress, so every resume is measured — restarting it at once. When the queue is done it
//! prints the kills, the meetings lost and duplicated (counted per agenda marker in the
//! Zoom replay), the longest time from a kill to the next job finishing, and the longest
//! time until the killed worker's jobs were back in the queue (orphan rescue). Exit status
//! non-zero unless nothing is lost or duplicated.
//!
//! A chaos run, not a unit test: it sleeps at random on purpose. `harness = false` and
//! `test = false` keep it out of `cargo test --all-targets`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;
use jmotto_zoom::{
    cli::{AdminClient, demo::demo_config},
    replay::ReplayServer,
};
use rand::Rng;
use serde_json::{Value, json};

/// Entries to create.
const ENTRIES: usize = 200;
/// Kills during the sync (at least).
const KILLS: usize = 22;
/// Users the entries are spread over (enabled in the generated configuration).
const USERS: [(&str, &str); 4] = [
    ("10002", "tanaka@example.co.jp"),
    ("10003", "suzuki@example.co.jp"),
    ("10006", "ito@example.co.jp"),
    ("10007", "yamada@example.co.jp"),
];
/// The whole run may not take longer than this.
const DEADLINE: Duration = Duration::from_secs(240);

const SERVER: &str = env!("CARGO_BIN_EXE_jmotto-zoom-server");
const WORKER: &str = env!("CARGO_BIN_EXE_jmotto-zoom-worker");

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("kill test error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Even entries are in December, odd ones in January.
fn month_of(index: usize) -> u32 {
    if index.is_multiple_of(2) { 12 } else { 1 }
}

/// One generated entry: 30 minutes on a December or January day, hosted by its owner.
fn entry(index: usize, owner: &str) -> Value {
    let month = month_of(index);
    let year = if month == 12 { 2026 } else { 2027 };
    let day = 1 + (index / 2) % 28;
    let minute = 30 * ((index / 56) % 16);
    let (hour, minute) = (8 + minute / 60, minute % 60);
    json!({
        "id": format!("{}", 70_000 + index), "occurrence": "", "repeat": "none",
        "event": "会議", "detail": format!("kill test {index}"), "place": "ZOOM 会議",
        "place_detail": "", "memo": "", "allday": false,
        "start": format!("{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:00"),
        "end": format!("{year}-{month:02}-{day:02}T{hour:02}:{:02}:00", minute + 29),
        "owner": owner, "members": [owner], "private": false,
        "updated": "2026-11-20T09:00:00"
    })
}

/// The generated company on the J-MOTTO replay: every user's three months, one page each.
fn load_company(jmotto: &ReplayServer) {
    let mut listings: BTreeMap<(&str, u32), Vec<Value>> = BTreeMap::new();
    for index in 0..ENTRIES {
        let (user, _) = USERS[index % USERS.len()];
        let month = month_of(index);
        listings
            .entry((user, month))
            .or_default()
            .push(entry(index, user));
    }
    for (user, _) in USERS {
        jmotto.set_events(user, "2026-11-01", "2026-11-30", 1, json!([]), None);
        for (month, from, to) in [
            (12, "2026-12-01", "2026-12-31"),
            (1, "2027-01-01", "2027-01-31"),
        ] {
            let events = listings.remove(&(user, month)).unwrap_or_default();
            jmotto.set_events(user, from, to, 1, Value::Array(events), None);
        }
    }
}

/// The demo's configuration with this run's users and worker settings.
fn config_text(
    jmotto: &ReplayServer,
    zoom: &ReplayServer,
    database: &str,
    listen: &str,
) -> anyhow::Result<String> {
    let mut table: toml::Table = toml::from_str(&demo_config(jmotto, zoom, database, listen))?;
    let users: Vec<toml::Value> = USERS
        .iter()
        .map(|(id, email)| {
            toml::Value::Table(toml::Table::from_iter([
                ("groupware_id".to_owned(), toml::Value::from(*id)),
                ("zoom_email".to_owned(), toml::Value::from(*email)),
                ("enabled".to_owned(), toml::Value::from(true)),
            ]))
        })
        .collect();
    table.insert("users".to_owned(), toml::Value::Array(users));
    let worker: toml::Table = toml::from_str(
        "queue_poll_interval_ms = 50\nheartbeat_seconds = 5\nconcurrency = 4\nhttp_timeout_seconds = 5\nretry_base_seconds = 1\n",
    )?;
    table.insert("worker".to_owned(), toml::Value::Table(worker));
    let zoom_table = table
        .get_mut("zoom")
        .and_then(toml::Value::as_table_mut)
        .context("the demo configuration has [zoom]")?;
    zoom_table.insert("create_per_second".to_owned(), toml::Value::from(5));
    Ok(toml::to_string(&table)?)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn spawn(binary: &str, config: &Path, log: &Path) -> anyhow::Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    tokio::process::Command::new(binary)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {binary}"))
}

/// Jobs finished so far (the progress a resume is measured by).
async fn jobs_done(pool: &sqlx::SqlitePool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM Jobs WHERE status = 'Done'")
            .fetch_one(pool)
            .await?,
    )
}

/// The jobs a worker process (by pid) holds.
async fn held_by(pool: &sqlx::SqlitePool, pid: u32) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM Jobs WHERE status IN ('Queued', 'Running') AND lock_by LIKE ?",
    )
    .bind(format!("jmz-{pid}-%"))
    .fetch_all(pool)
    .await?)
}

/// Waits until none of `jobs` is held by the dead worker `pid` any more; returns how long.
async fn rescue_time(
    pool: sqlx::SqlitePool,
    pid: u32,
    jobs: Vec<String>,
    killed_at: Instant,
) -> Option<Duration> {
    if jobs.is_empty() {
        return None;
    }
    let ids = serde_json::to_string(&jobs).ok()?;
    loop {
        let still: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM Jobs WHERE id IN (SELECT value FROM json_each(?1)) AND lock_by LIKE ?2 \
             AND status IN ('Queued', 'Running')",
        )
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run() -> anyhow::Result<bool> {
    let started = Instant::now();
    let jmotto = ReplayServer::start_jmotto().await?;
    let zoom = ReplayServer::start_zoom().await?;
    load_company(&jmotto);
    let folder = tempfile::tempdir()?;
    let database = format!("sqlite://{}", folder.path().join("kill.db").display());
    let listen = format!("127.0.0.1:{}", free_port()?);
    let config: PathBuf = folder.path().join("jmotto-zoom.toml");
    std::fs::write(&config, config_text(&jmotto, &zoom, &database, &listen)?)?;
    let logs = folder.path().join("processes.log");

    let _server = spawn(SERVER, &config, &logs)?;
    let mut worker = spawn(WORKER, &config, &logs)?;
    let http = reqwest::Client::new();
    let ready_by = Instant::now() + Duration::from_secs(60);
    while http
        .get(format!("http://{listen}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        anyhow::ensure!(
            Instant::now() < ready_by,
            "the server never became ready; its log:\n{}",
            std::fs::read_to_string(&logs).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = jmotto_zoom::store::Store::connect(&database).await?;
    let pool = store.pool().clone();
    let api = AdminClient::new(
        format!("http://{listen}"),
        jmotto_zoom::cli::demo::DEMO_ADMIN_TOKEN.to_owned(),
    )?;
    api.trigger_sync(None).await?;

    let mut resumes = Vec::new();
    let mut rescues = Vec::new();
    let mut kills = 0;
    while kills < KILLS && zoom.zoom_meetings().len() < ENTRIES {
        anyhow::ensure!(
            started.elapsed() < DEADLINE,
            "out of time after {kills} kills"
        );
        let pause = rand::rng().random_range(200..1200);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let pid = worker.id().context("the worker runs")?;
        worker.start_kill()?;
        let killed_at = Instant::now();
        worker.wait().await?;
        kills += 1;
        let held = held_by(&pool, pid).await?;
        rescues.push(tokio::spawn(rescue_time(
            pool.clone(),
            pid,
            held,
            killed_at,
        )));
        let done_at_kill = jobs_done(&pool).await?;
        worker = spawn(WORKER, &config, &logs)?;
        // the next kill comes only after this worker made progress, so each resume is measured
        loop {
            if jobs_done(&pool).await? > done_at_kill {
                resumes.push(killed_at.elapsed());
                break;
            }
            anyhow::ensure!(
                killed_at.elapsed() < Duration::from_secs(60),
                "no progress 60 s after kill {kills}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // let the last worker finish: every meeting stored and nothing left to run
    loop {
        let status = api.get("/api/v1/status").await?;
        let queue = &status["queue"];
        let idle = queue["pending"] == 0 && queue["running"] == 0 && queue["scheduled"] == 0;
        if idle && status["meetings"]["created"].as_i64() >= Some(i64::try_from(ENTRIES)?) {
            break;
        }
        if started.elapsed() > DEADLINE {
            eprintln!("not finished in time: {queue} {}", status["meetings"]);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worker.start_kill()?;
    worker.wait().await?;

    let mut per_marker: BTreeMap<String, usize> = BTreeMap::new();
    for meeting in zoom.zoom_meetings() {
        let marker = meeting["agenda"]
            .as_str()
            .and_then(|a| a.lines().last())
            .unwrap_or("")
            .to_owned();
        *per_marker.entry(marker).or_default() += 1;
    }
    let expected: Vec<String> = (0..ENTRIES)
        .map(|i| format!("jmotto-zoom: {}", 70_000 + i))
        .collect();
    let lost = expected
        .iter()
        .filter(|m| !per_marker.contains_key(*m))
        .count();
    let duplicated: usize = per_marker.values().map(|n| n.saturating_sub(1)).sum();
    let mut rescue_times = Vec::new();
    for rescue in rescues {
        if let Some(time) = rescue.await? {
            rescue_times.push(time);
        }
    }
    let longest = |times: &[Duration]| times.iter().max().copied().unwrap_or_default();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM meetings GROUP BY state")
            .fetch_all(&pool)
            .await?;
    println!("kill test: {ENTRIES} entries, worker SIGKILLed {kills} times during the sync");
    println!("  lost:                      {lost}");
    println!("  duplicated:                {duplicated}");
    println!(
        "  longest resume (kill → next job done): {:.2} s",
        longest(&resumes).as_secs_f64()
    );
    println!(
        "  longest orphan rescue (kill → its jobs back in the queue): {:.2} s over {} kills that held jobs",
        longest(&rescue_times).as_secs_f64(),
        rescue_times.len()
    );
    println!("  meeting rows by state:     {rows:?}");
    println!(
        "  total time:                {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let unmatched: Vec<String> = jmotto
        .unmatched()
        .into_iter()
        .chain(zoom.unmatched())
        .collect();
    if !unmatched.is_empty() {
        println!("  requests no fixture covers: {unmatched:?}");
    }
    store.close().await;
    let created_rows = rows
        .iter()
        .find(|(state, _)| state == "created")
        .map_or(0, |(_, n)| *n);
    let ok = lost == 0 && duplicated == 0 && kills >= 20 && created_rows == i64::try_from(ENTRIES)?;
    if !ok {
        println!("FAILED (process logs: {})", logs.display());
        let _ = folder.keep();
    }
    Ok(ok)
}
