//! SPEC §9 pacing per account: `zoom.create_per_second` bounds the sum over every worker
//! process sharing one database, not each process — two `jmotto-zoom-worker` processes on one
//! SQLite file (or one PostgreSQL database) and one Zoom account together stay at the
//! configured rate, evenly paced.
//!
//! A test binary of its own, its two tests one after the other: cargo runs test binaries
//! one at a time, so the window bound is measured on a machine not also running the hundred
//! tests of `it`/`it_postgres` (whose load delayed the replay's own clock readings by more
//! than the limiter's jitter allowance, then 20 ms: a fifth create counted in one second at N = 4).

#[path = "support/postgres.rs"]
mod postgres;

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use jmotto_zoom::{
    config::Settings,
    jobs::{Engine, worker::enqueue_sync},
    replay::{
        ReplayServer,
        faults::{RATE_WINDOW, peak_in_window, zoom_create},
        generated::GeneratedCompany,
    },
    store::Store,
};

const CREATE_PER_SECOND: usize = 4;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Starts a worker process on `config`, its log appended to `log`.
fn start_worker(config: &Path, log: &Path) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    tokio::process::Command::new(env!("CARGO_BIN_EXE_jmotto-zoom-worker"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the worker starts")
}

/// SPEC §9: with two worker processes on one account, the Zoom replay never sees more than
/// `create_per_second` creates in any one-second window (the limiter's slots leave
/// `limits::JITTER_ALLOWANCE_US` for the jitter between a paced send and its arrival), and
/// together they reach at least 0.95 of that rate over the busy period.
#[tokio::test]
async fn two_worker_processes_on_one_sqlite_file_keep_to_the_accounts_create_rate() {
    let folder = tempfile::tempdir().expect("temp dir");
    let database = format!("sqlite://{}", folder.path().join("pacing.db").display());
    let _alone = ONE_AT_A_TIME.lock().await;
    two_worker_processes_keep_to_the_accounts_create_rate(&folder, &database).await;
}

/// The same on PostgreSQL: the limiter's row in one PostgreSQL database paces both.
#[tokio::test]
async fn two_worker_processes_on_one_postgres_database_keep_to_the_accounts_create_rate() {
    let folder = tempfile::tempdir().expect("temp dir");
    let Some(database) = postgres::fresh_database().await else {
        return;
    };
    let _alone = ONE_AT_A_TIME.lock().await;
    two_worker_processes_keep_to_the_accounts_create_rate(&folder, &database).await;
}

/// The two tests take turns: each measures two worker processes alone.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn two_worker_processes_keep_to_the_accounts_create_rate(
    folder: &tempfile::TempDir,
    database: &str,
) {
    let company = GeneratedCompany::new(4, 24);
    let entries = company.entry_count();
    let jmotto = ReplayServer::start_jmotto().await.expect("replay");
    let zoom = ReplayServer::start_zoom().await.expect("replay");
    company.load(&jmotto);
    let config = folder.path().join("pacing.toml");
    let log = folder.path().join("workers.log");
    let extra = format!(
        "[zoom]\ncreate_per_second = {CREATE_PER_SECOND}\nrequests_per_second = 20\n\
         [groupware]\nrequests_per_second = 1000\n[worker]\nconcurrency = 4\n"
    );
    let listen = format!("127.0.0.1:{}", free_port());
    let text = company
        .config(&jmotto, &zoom, database, &listen, &extra)
        .expect("config");
    std::fs::write(&config, text).expect("config written");

    // The sync is queued first; both workers then share its slices and creates.
    let settings = Settings::load(&config).expect("settings");
    let store = Store::connect(database).await.expect("database opens");
    let engine = Engine::new(settings, store).expect("engine");
    enqueue_sync(&engine, "manual", None, None, None)
        .await
        .expect("sync queued");
    let workers = [start_worker(&config, &log), start_worker(&config, &log)];
    let pids: Vec<u32> = workers.iter().filter_map(|w| w.id()).collect();

    let start = Instant::now();
    while zoom.request_count(zoom_create) < entries {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{} of {entries} creates after 120 s; workers' log:\n{}",
            zoom.request_count(zoom_create),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let creates = zoom.request_times(zoom_create);
    assert_eq!(creates.len(), entries, "one create per entry");

    // Both processes created meetings (each create job names its worker: `jmz-<pid>-…`).
    let lock_by: Vec<String> = jmotto_zoom::store::db::Query::per_backend(
        "SELECT lock_by FROM Jobs WHERE job_type = 'jmz.create_meeting' AND lock_by IS NOT NULL",
        "SELECT lock_by FROM apalis.jobs WHERE job_type = 'jmz.create_meeting' AND lock_by IS NOT NULL",
    )
    .scalars(engine.store.db())
    .await
    .expect("create jobs");
    for pid in &pids {
        let by_this = lock_by
            .iter()
            .filter(|worker| worker.starts_with(&format!("jmz-{pid}-")))
            .count();
        assert!(by_this > 0, "worker {pid} created nothing: {lock_by:?}");
    }

    let peak = peak_in_window(&creates, Duration::from_secs(1));
    let replay_peak = peak_in_window(&creates, RATE_WINDOW);
    let (first, last) = (creates[0], creates[creates.len() - 1]);
    let busy = last.duration_since(first).as_secs_f64();
    let achieved = (creates.len() - 1) as f64 / busy;
    let ratio = achieved / CREATE_PER_SECOND as f64;
    println!(
        "pacing: {} creates by 2 processes in {busy:.2} s: {achieved:.2}/s of \
         {CREATE_PER_SECOND}/s = {ratio:.3}; peak in 1 s: {peak} (in the replay's {} ms window: \
         {replay_peak})",
        creates.len(),
        RATE_WINDOW.as_millis()
    );
    assert!(peak <= CREATE_PER_SECOND, "{peak} creates in one second");
    assert!(ratio >= 0.95, "achieved only {ratio:.3} of the rate");
    assert!(ratio <= 1.01, "faster than the rate: {ratio:.3}");
    drop(workers);
    jmotto.stop().await;
    zoom.stop().await;
}
