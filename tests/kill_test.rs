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
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context;
use jmotto_zoom::{
    cli::AdminClient,
    replay::{ReplayServer, generated::GeneratedCompany},
};
use processes::{
    free_port, held_by, jobs_done, lost_and_duplicated, rescue_time, spawn, wait_for_progress,
    wait_ready,
};
use rand::Rng;

#[path = "support/processes.rs"]
mod processes;

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

/// The run's company: `ENTRIES` entries over `USERS`, all to be created.
fn company() -> GeneratedCompany {
    GeneratedCompany::with_users(&USERS, ENTRIES / USERS.len())
}

/// The demo's configuration with this run's users and worker settings.
fn config_text(
    jmotto: &ReplayServer,
    zoom: &ReplayServer,
    database: &str,
    listen: &str,
) -> anyhow::Result<String> {
    company().config(
        jmotto,
        zoom,
        database,
        listen,
        "[worker]\nqueue_poll_interval_ms = 50\nheartbeat_seconds = 5\nconcurrency = 4\nhttp_timeout_seconds = 5\nretry_base_seconds = 1\n\n[zoom]\ncreate_per_second = 5\n",
    )
}

async fn run() -> anyhow::Result<bool> {
    let started = Instant::now();
    let jmotto = ReplayServer::start_jmotto().await?;
    let zoom = ReplayServer::start_zoom().await?;
    company().load(&jmotto);
    let folder = tempfile::tempdir()?;
    let database = format!("sqlite://{}", folder.path().join("kill.db").display());
    let listen = format!("127.0.0.1:{}", free_port()?);
    let config: PathBuf = folder.path().join("jmotto-zoom.toml");
    std::fs::write(&config, config_text(&jmotto, &zoom, &database, &listen)?)?;
    let logs = folder.path().join("processes.log");

    let _server = spawn(SERVER, &config, &logs)?;
    let mut worker = spawn(WORKER, &config, &logs)?;
    wait_ready(&listen, Instant::now(), Duration::from_secs(60), &logs).await?;
    let store = jmotto_zoom::store::Store::connect(&database).await?;
    let pool = store.db().as_sqlite().expect("SQLite").clone();
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
            false,
        )));
        let done_at_kill = jobs_done(&pool).await?;
        worker = spawn(WORKER, &config, &logs)?;
        // the next kill comes only after this worker made progress, so each resume is measured
        resumes.push(wait_for_progress(&pool, done_at_kill, killed_at).await?);
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

    let (lost, duplicated) = lost_and_duplicated(&zoom, &company().markers());
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
