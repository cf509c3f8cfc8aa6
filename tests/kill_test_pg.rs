//! The kill test on PostgreSQL (`just kill-test-pg`, run by `.ci/run`): R-ONCE, "a dead
//! worker's jobs run again" and the account's create pacing at the process level, with
//! several processes on one `postgres://` database and a database restart in the middle.
//!
//! It starts a throw-away PostgreSQL of its own (`tests/support/postgres.rs`, `private()`),
//! the replay servers in this process with a generated company of `ENTRIES` entries over
//! several users, all to be created, then two `jmotto-zoom-server` and three
//! `jmotto-zoom-worker` processes, each with its own configuration file in its own temporary
//! folder, the servers on different ports. It triggers a sync through the first server and
//! SIGKILLs a random worker at random moments, restarting it at once; the next kill comes
//! only after the restarted worker finished a job, so every resume is measured. Half-way it
//! stops PostgreSQL, waits, and starts it again: every process must ride that out by itself
//! (no process may exit but those it kills). When the queue is done it prints the kills, the
//! meetings lost and duplicated (per agenda marker in the Zoom replay), the peak of creates
//! the Zoom replay saw in any one second beside `create_per_second`, the longest orphan
//! rescue and resume, and the total time. Exit status non-zero unless nothing is lost or
//! duplicated, the peak keeps to the rate, every entry is created once in `meetings`, and
//! there were at least `KILLS` kills.
//!
//! A chaos run, not a unit test: it sleeps at random on purpose. `harness = false` and
//! `test = false` keep it out of `cargo test --all-targets`.

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use jmotto_zoom::{
    cli::AdminClient,
    replay::{
        ReplayServer,
        faults::{RATE_WINDOW, peak_in_window, zoom_create},
        generated::GeneratedCompany,
    },
    store::Store,
};
use processes::{
    free_port, held_by, jobs_done, lost_and_duplicated, rescue_time, spawn, wait_for_progress,
    wait_ready,
};
use rand::Rng;

#[path = "support/processes.rs"]
mod processes;

#[path = "support/postgres.rs"]
mod postgres;

/// Users the entries are spread over.
const USERS: usize = 10;
/// Entries each user owns (all to be created): well under `zoom.daily_host_limit` (100),
/// which the creates a kill cuts off and repeats also count against.
const ENTRIES_PER_USER: usize = 56;
/// Entries in all.
const ENTRIES: usize = USERS * ENTRIES_PER_USER;
/// The account's create rate: it paces the sync, so the sync outlasts the kills.
const CREATE_PER_SECOND: usize = 6;
/// Kills during the sync (at least).
const KILLS: usize = 50;
/// Server and worker processes.
const SERVERS: usize = 2;
const WORKERS: usize = 3;
/// PostgreSQL restarts after this many kills, down for `DATABASE_DOWN`.
const RESTART_AFTER_KILLS: usize = KILLS / 2;
const DATABASE_DOWN: Duration = Duration::from_secs(2);
/// The whole run may not take longer than this.
const DEADLINE: Duration = Duration::from_secs(360);

const SERVER: &str = env!("CARGO_BIN_EXE_jmotto-zoom-server");
const WORKER: &str = env!("CARGO_BIN_EXE_jmotto-zoom-worker");

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("kill test (PostgreSQL) error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The run's company: `ENTRIES` entries over `USERS` generated users.
fn company() -> GeneratedCompany {
    GeneratedCompany::new(USERS, ENTRIES_PER_USER)
}

/// One server or worker process with its own folder (configuration and log).
struct Process {
    name: String,
    binary: &'static str,
    folder: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    listen: String,
    child: tokio::process::Child,
}

impl Process {
    /// Writes the configuration (the demo's, with this run's users and worker settings) in a
    /// new folder and starts `binary` on it.
    fn start(
        name: String,
        binary: &'static str,
        jmotto: &ReplayServer,
        zoom: &ReplayServer,
        database: &str,
    ) -> anyhow::Result<Process> {
        let folder = tempfile::Builder::new()
            .prefix(&format!("jmz-kill-pg-{name}-"))
            .tempdir()?;
        let listen = format!("127.0.0.1:{}", free_port()?);
        let config = folder.path().join("jmotto-zoom.toml");
        let text = company().config(
            jmotto,
            zoom,
            database,
            &listen,
            &format!(
                "[worker]\nqueue_poll_interval_ms = 50\nheartbeat_seconds = 5\nconcurrency = 4\n\
                 http_timeout_seconds = 5\nretry_base_seconds = 1\n\n\
                 [zoom]\ncreate_per_second = {CREATE_PER_SECOND}\n"
            ),
        )?;
        std::fs::write(&config, text)?;
        let log = folder.path().join("process.log");
        let child = spawn(binary, &config, &log)?;
        Ok(Process {
            name,
            binary,
            folder,
            config,
            log,
            listen,
            child,
        })
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .id()
            .with_context(|| format!("{} is not running", self.name))
    }

    /// SIGKILL; returns once the process is gone.
    async fn kill(&mut self) -> anyhow::Result<Instant> {
        self.child.start_kill()?;
        let killed_at = Instant::now();
        self.child.wait().await?;
        Ok(killed_at)
    }

    /// The same binary on the same configuration again.
    fn restart(&mut self) -> anyhow::Result<()> {
        self.child = spawn(self.binary, &self.config, &self.log)?;
        Ok(())
    }

    /// Fails when the process ended by itself.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!(
                "{} exited by itself ({status}); its log {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log)
            );
        }
        Ok(())
    }
}

/// The last lines of a log.
fn tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn check_all_alive(servers: &mut [Process], workers: &mut [Process]) -> anyhow::Result<()> {
    servers
        .iter_mut()
        .chain(workers.iter_mut())
        .try_for_each(Process::check_alive)
}

/// Jobs the worker process `pid` has finished (its worker names are `jmz-<pid>-…`); a failed
/// read counts as none.
async fn done_by(pool: &sqlx::PgPool, pid: u32) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE status = 'Done' AND lock_by LIKE $1")
        .bind(format!("jmz-{pid}-%"))
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// Waits until the restarted worker `pid` has finished a job; the time since `killed_at`, or
/// `None` when the sync ended first. Fails after 60 s.
async fn wait_for_resume(
    pool: &sqlx::PgPool,
    zoom: &ReplayServer,
    pid: u32,
    killed_at: Instant,
) -> anyhow::Result<Option<Duration>> {
    loop {
        if done_by(pool, pid).await > 0 {
            return Ok(Some(killed_at.elapsed()));
        }
        if zoom.request_count(zoom_create) >= ENTRIES {
            return Ok(None);
        }
        anyhow::ensure!(
            killed_at.elapsed() < Duration::from_secs(60),
            "the restarted worker {pid} finished no job within 60 s of the kill"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Stops PostgreSQL, waits `DATABASE_DOWN`, starts it again; then waits until both servers
/// are ready and a job was done after the restart. Returns (servers ready, work resumed),
/// each since the stop.
async fn restart_database(
    cluster: &Arc<postgres::Cluster>,
    db: &jmotto_zoom::store::db::Pool,
    servers: &[Process],
) -> anyhow::Result<(Duration, Duration)> {
    let done_before = jobs_done(db).await?;
    let stopped_at = Instant::now();
    let stopping = Arc::clone(cluster);
    tokio::task::spawn_blocking(move || stopping.stop()).await??;
    let stopped = stopped_at.elapsed();
    tokio::time::sleep(DATABASE_DOWN).await;
    let starting = Arc::clone(cluster);
    tokio::task::spawn_blocking(move || starting.start()).await??;
    eprintln!(
        "  PostgreSQL stopped in {:.2} s, started again {:.2} s after the stop",
        stopped.as_secs_f64(),
        stopped_at.elapsed().as_secs_f64()
    );
    let mut ready = Duration::ZERO;
    for server in servers {
        ready = ready.max(
            wait_ready(
                &server.listen,
                stopped_at,
                Duration::from_secs(90),
                &server.log,
            )
            .await?,
        );
    }
    let resumed = wait_for_progress(db, done_before, stopped_at).await?;
    Ok((ready, resumed))
}

/// The creates of the busiest one-second window (ms since the start, and the gap to the one
/// before), with the kills and the restart around it.
fn print_busiest_second(creates: &[Instant], started: Instant, events: &[(Duration, String)]) {
    let mut sorted = creates.to_vec();
    sorted.sort_unstable();
    let window = Duration::from_secs(1);
    let mut first = 0;
    let mut best = (0, 0);
    for (last, at) in sorted.iter().enumerate() {
        while at.duration_since(sorted[first]) >= window {
            first += 1;
        }
        if last + 1 - first > best.1 + 1 - best.0 {
            best = (first, last);
        }
    }
    let ms = |at: Duration| at.as_secs_f64() * 1000.0;
    let from = sorted[best.0].duration_since(started);
    let to = sorted[best.1].duration_since(started);
    println!("  busiest second's creates (ms since the start, gap to the create before):");
    for index in best.0.saturating_sub(2)..=(best.1 + 2).min(sorted.len() - 1) {
        let gap = index
            .checked_sub(1)
            .map(|before| ms(sorted[index].duration_since(sorted[before])));
        println!(
            "    {:.1} (gap {gap:.1?}){}",
            ms(sorted[index].duration_since(started)),
            if (best.0..=best.1).contains(&index) {
                " *"
            } else {
                ""
            }
        );
    }
    for (at, what) in events {
        if *at + Duration::from_secs(5) >= from && *at <= to + Duration::from_secs(1) {
            println!("    {:.1}: {what}", ms(*at));
        }
    }
}

async fn run() -> anyhow::Result<bool> {
    let started = Instant::now();
    let Some(cluster) = postgres::private()? else {
        // no PostgreSQL here (the skip line is printed; under CI=true `private` fails)
        return Ok(true);
    };
    let cluster = Arc::new(cluster);
    let database = cluster.create_database().await?;
    let jmotto = ReplayServer::start_jmotto().await?;
    let zoom = ReplayServer::start_zoom().await?;
    company().load(&jmotto);
    // migrated once here, before the processes start
    let store = Store::connect(&database).await?;
    let db = store.db().clone();
    let pool = db.as_postgres().context("a PostgreSQL store")?.clone();

    let mut servers = (0..SERVERS)
        .map(|i| Process::start(format!("server-{i}"), SERVER, &jmotto, &zoom, &database))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut workers = (0..WORKERS)
        .map(|i| Process::start(format!("worker-{i}"), WORKER, &jmotto, &zoom, &database))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for server in &servers {
        wait_ready(
            &server.listen,
            Instant::now(),
            Duration::from_secs(90),
            &server.log,
        )
        .await?;
    }
    let client = |server: &Process| {
        AdminClient::new(
            format!("http://{}", server.listen),
            jmotto_zoom::cli::demo::DEMO_ADMIN_TOKEN.to_owned(),
        )
    };
    client(&servers[0])?.trigger_sync(None).await?;

    let mut resumes = Vec::new();
    let mut rescues = Vec::new();
    // what happened when, for a window over the rate: (since the start, what)
    let mut events: Vec<(Duration, String)> = Vec::new();
    let mut restart = None;
    let mut kills = 0;
    while kills < KILLS && zoom.request_count(zoom_create) < ENTRIES {
        anyhow::ensure!(
            started.elapsed() < DEADLINE,
            "out of time after {kills} kills"
        );
        check_all_alive(&mut servers, &mut workers)?;
        if kills == RESTART_AFTER_KILLS && restart.is_none() {
            eprintln!(
                "  {kills} kills, {} creates at {:.1} s: restarting PostgreSQL",
                zoom.request_count(zoom_create),
                started.elapsed().as_secs_f64()
            );
            events.push((started.elapsed(), "PostgreSQL stopped".to_owned()));
            restart = Some(restart_database(&cluster, &db, &servers).await?);
            check_all_alive(&mut servers, &mut workers)?;
        }
        let pause = rand::rng().random_range(200..1200);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let worker = &mut workers[rand::rng().random_range(0..WORKERS)];
        let pid = worker.pid()?;
        let killed_at = worker.kill().await?;
        kills += 1;
        events.push((
            killed_at.duration_since(started),
            format!("{} ({pid}) killed", worker.name),
        ));
        let held = held_by(&db, pid).await?;
        rescues.push(tokio::spawn(rescue_time(
            db.clone(),
            pid,
            held,
            killed_at,
            false,
        )));
        worker.restart()?;
        let new_pid = worker.pid()?;
        if let Some(resume) = wait_for_resume(&pool, &zoom, new_pid, killed_at).await? {
            resumes.push(resume);
        }
    }

    eprintln!(
        "  {kills} kills, {} creates at {:.1} s: letting the sync finish",
        zoom.request_count(zoom_create),
        started.elapsed().as_secs_f64()
    );
    // let the workers finish: every meeting stored and nothing left to run (asked of the
    // second server)
    let status_client = client(&servers[SERVERS - 1])?;
    loop {
        check_all_alive(&mut servers, &mut workers)?;
        let status = status_client.get("/api/v1/status").await?;
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
    check_all_alive(&mut servers, &mut workers)?;
    for process in servers.iter_mut().chain(workers.iter_mut()) {
        process.kill().await?;
    }

    let (lost, duplicated) = lost_and_duplicated(&zoom, &company().markers());
    let create_times = zoom.request_times(zoom_create);
    let peak = peak_in_window(&create_times, Duration::from_secs(1));
    let mut rescue_times = Vec::new();
    for rescue in rescues {
        if let Some(time) = rescue.await? {
            rescue_times.push(time);
        }
    }
    let longest = |times: &[Duration]| times.iter().max().copied().unwrap_or_default();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM meetings GROUP BY state ORDER BY state")
            .fetch_all(&pool)
            .await?;
    // each entry once: as many created rows as entries, each for another schedule entry and
    // another Zoom meeting
    let (created_rows, created_entries, created_meetings): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT schedule_id), count(DISTINCT zoom_meeting_id) \
         FROM meetings WHERE state = 'created'",
    )
    .fetch_one(&pool)
    .await?;
    let entries = i64::try_from(ENTRIES)?;
    let once = created_rows == entries && created_entries == entries && created_meetings == entries;

    println!(
        "kill test (PostgreSQL): {ENTRIES} entries over {USERS} users, {SERVERS} servers and \
         {WORKERS} workers on one database; workers SIGKILLed {kills} times during the sync, \
         PostgreSQL restarted once"
    );
    println!("  lost:                      {lost}");
    println!("  duplicated:                {duplicated}");
    println!(
        "  peak creates in 1 s:       {peak} (create_per_second = {CREATE_PER_SECOND}; in the replay's {} ms window: {})",
        RATE_WINDOW.as_millis(),
        peak_in_window(&create_times, RATE_WINDOW)
    );
    println!(
        "  longest resume (kill → the restarted worker's first job done): {:.2} s over {} kills",
        longest(&resumes).as_secs_f64(),
        resumes.len()
    );
    println!(
        "  longest orphan rescue (kill → its jobs back in the queue or run elsewhere): {:.2} s over {} kills that held jobs",
        longest(&rescue_times).as_secs_f64(),
        rescue_times.len()
    );
    if let Some((ready, resumed)) = restart {
        println!(
            "  PostgreSQL restart ({} s down): servers ready again {:.2} s, a job done {:.2} s after the stop",
            DATABASE_DOWN.as_secs(),
            ready.as_secs_f64(),
            resumed.as_secs_f64()
        );
    } else {
        println!("  PostgreSQL restart:        not reached");
    }
    println!(
        "  meeting rows by state:     {rows:?} (created: {created_rows} rows, {created_entries} entries, {created_meetings} Zoom meetings)"
    );
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
    let ok = lost == 0
        && duplicated == 0
        && kills >= KILLS
        && restart.is_some()
        && peak <= CREATE_PER_SECOND
        && once;
    if !ok {
        let not_created: Vec<(String, Option<String>, Option<String>, i64)> = sqlx::query_as(
            "SELECT state, reason_code, host_email, count(*) FROM meetings \
             WHERE state <> 'created' GROUP BY state, reason_code, host_email ORDER BY host_email",
        )
        .fetch_all(&pool)
        .await?;
        println!("  not created (state, reason, host, rows): {not_created:?}");
        let usage: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT host_email, utc_day, used FROM host_daily_usage ORDER BY host_email, utc_day",
        )
        .fetch_all(&pool)
        .await?;
        println!("  host_daily_usage: {usage:?}");
        if peak > CREATE_PER_SECOND {
            print_busiest_second(&create_times, started, &events);
        }
        println!("FAILED; the processes' logs:");
        for process in servers.into_iter().chain(workers) {
            println!("  {}: {}", process.name, process.log.display());
            let _ = process.folder.keep();
        }
    }
    store.close().await;
    Ok(ok)
}
