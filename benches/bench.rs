//! `just bench` (`cargo bench --bench bench`, a release build): every figure of issue 5
//! beside the limit it is measured against, the limit measured in the same run — the machine
//! is shared and noisy, so the ratios are what count. Nothing here is asserted by a test;
//! the run fails only if something could not be measured at all (a server that never got
//! ready, a sync that never finished).
//!
//! 1. Webhook ingest: signed deliveries answered 202 (after commit) per second at client
//!    concurrency 1, 8 and 64, p50/p99 — against single-row SQLite transactions per second
//!    on the same disk, with the store's own connect options (same pragmas and
//!    `synchronous`).
//! 2. Resync cost: 1,000 users × 100 entries through the replay servers, Zoom limits off:
//!    first sync (entries decided per second, wall time), then the no-change resync (wall
//!    time, Zoom calls) — against the 5 s goal.
//! 3. Rate-limiter fidelity: `create_per_second = 10` against a Zoom replay that answers 429
//!    above 10 creates per second; 2,000 creates.
//! 4. Footprint: peak RSS of server and worker during (2), release binary sizes, start →
//!    `/readyz` 200.
//! 5. Crash rescue: SIGKILL of a worker holding jobs → those jobs running again.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it prints one line and exits.
//! `BENCH_ONLY=1,3` runs only those sections. `BENCH_SCALE` (default 1.0) scales the entry
//! counts of (2), (3) and (5) for a quick look. For profiling: `BENCH_KEEP=1` keeps the
//! databases and the services' log; `CHILD_RUST_LOG` sets the services' `RUST_LOG` (at
//! `info` each slice logs where its time went); `BENCH_RESYNCS=N` repeats the no-change
//! resync (the fastest counts); `BENCH_WORKER` replaces the resync's `[worker]` keys
//! (`;`-separated TOML lines).

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use jmotto_zoom::{
    cli::{AdminClient, demo::DEMO_ADMIN_TOKEN, demo::DEMO_WEBHOOK_SECRET},
    replay::{ReplayServer, generated::GeneratedCompany},
    signature::SigningKey,
    store::queue,
};
use processes::{free_port, held_by, jobs_done, rescue_time, spawn, wait_for_progress, wait_ready};
use rand::Rng;
use sqlx::{Connection, SqliteConnection};

#[path = "../tests/support/processes.rs"]
mod processes;

const SERVER: &str = env!("CARGO_BIN_EXE_jmotto-zoom-server");
const WORKER: &str = env!("CARGO_BIN_EXE_jmotto-zoom-worker");
const CLI: &str = env!("CARGO_BIN_EXE_jmotto-zoom");

/// How long each ingest measurement (raw rate, each concurrency) runs.
const INGEST_SECONDS: f64 = 4.0;

#[tokio::main]
async fn main() -> ExitCode {
    // `cargo test --all-targets` builds and runs benches too, without `--bench`: that is not
    // a benchmark run (and must not take ten minutes of the test suite).
    if !std::env::args().any(|a| a == "--bench") {
        println!("benches/bench.rs runs under `cargo bench --bench bench` (`just bench`) only");
        return ExitCode::SUCCESS;
    }
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let scale: f64 = std::env::var("BENCH_SCALE")
        .ok()
        .map(|s| s.parse())
        .transpose()
        .context("BENCH_SCALE is a number such as 0.1")?
        .unwrap_or(1.0);
    let scaled = |n: usize| ((n as f64 * scale).round() as usize).max(1);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |section: &str| only.is_empty() || only.split(',').any(|s| s.trim() == section);
    let folder = tempfile::Builder::new()
        .prefix("jmz-bench-")
        .tempdir_in(std::env::current_dir()?.join("target"))?;
    println!(
        "jmotto-zoom benchmarks — {}",
        chrono::Utc::now().to_rfc3339()
    );
    print_machine(folder.path());
    let mut summary = Summary::default();

    if wanted("1") {
        section("1. Webhook ingest (signed, 202 after commit)");
        ingest(folder.path(), &mut summary).await?;
    }
    if wanted("2") {
        section("2. Resync cost (Zoom limits off)");
        resync(folder.path(), scaled(1000), 100, &mut summary).await?;
    }
    if wanted("3") {
        section("3. Rate-limiter fidelity (create_per_second = 10, replay enforces 10/s)");
        limiter(folder.path(), scaled(40), 50, &mut summary).await?;
    }
    if wanted("4") {
        section("4. Footprint");
        footprint(&mut summary)?;
    }
    if wanted("5") {
        section("5. Crash rescue (SIGKILL of a worker holding jobs)");
        crash_rescue(folder.path(), scaled(8), 25, &mut summary).await?;
    }

    section("Summary (figure · limit or goal · ratio)");
    summary.print();
    println!(
        "\ntotal bench time: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if std::env::var_os("BENCH_KEEP").is_some() {
        println!("kept {}", folder.keep().display());
    }
    Ok(())
}

fn section(title: &str) {
    println!("\n== {title}");
}

/// Lines of the final table.
#[derive(Default)]
struct Summary {
    lines: Vec<(String, String, String)>,
}

impl Summary {
    fn add(
        &mut self,
        figure: impl Into<String>,
        against: impl Into<String>,
        ratio: impl Into<String>,
    ) {
        self.lines
            .push((figure.into(), against.into(), ratio.into()));
    }

    fn print(&self) {
        for (figure, against, ratio) in &self.lines {
            println!("  {figure:<58} {against:<46} {ratio}");
        }
    }
}

fn print_machine(folder: &Path) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
        })
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or("?".to_owned(), |kib| {
            format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "machine: {cores} cores ({cpu}), {memory} RAM, Linux {}; database files in {}",
        kernel.trim(),
        folder.display()
    );
    println!(
        "store: WAL, synchronous = {} (jmotto_zoom::store::SYNCHRONOUS), the store's connect options",
        jmotto_zoom::store::SYNCHRONOUS
    );
}

// ---------------------------------------------------------------- 1. webhook ingest

async fn ingest(folder: &Path, summary: &mut Summary) -> anyhow::Result<()> {
    let raw = raw_single_row_rate(&folder.join("raw.db")).await?;
    println!(
        "limit: single-row transactions (BEGIN IMMEDIATE; INSERT; COMMIT), one connection: {raw:.0} tx/s"
    );

    let jmotto = ReplayServer::start_jmotto().await?;
    let zoom = ReplayServer::start_zoom().await?;
    let company = GeneratedCompany::new(8, 0);
    let listen = format!("127.0.0.1:{}", free_port()?);
    let database = format!("sqlite://{}", folder.join("ingest.db").display());
    let config = folder.join("ingest.toml");
    std::fs::write(
        &config,
        company.config(&jmotto, &zoom, &database, &listen, "")?,
    )?;
    let log = folder.join("ingest.log");
    let start = Instant::now();
    let server = spawn(SERVER, &config, &log)?;
    let ready = wait_ready(&listen, start, Duration::from_secs(60), &log).await?;
    println!(
        "server start → /readyz 200 (new database, migrations): {:.0} ms",
        ready.as_secs_f64() * 1000.0
    );
    summary.add(
        format!(
            "server start → /readyz (new database): {:.0} ms",
            ready.as_secs_f64() * 1000.0
        ),
        "",
        "",
    );
    let users: Vec<String> = company.users.iter().map(|(id, _)| id.clone()).collect();
    let server_pid = server.id().context("the server runs")?;
    for concurrency in [1usize, 8, 64] {
        let (server_cpu, client_cpu) = (cpu_seconds(server_pid), cpu_seconds(std::process::id()));
        let (rate, p50, p99, sent) =
            webhook_load(&listen, DEMO_WEBHOOK_SECRET, &users, concurrency).await?;
        let per_delivery = |before: Option<f64>, pid: u32| {
            before
                .zip(cpu_seconds(pid))
                .map_or(f64::NAN, |(b, a)| (a - b) / sent as f64 * 1e6)
        };
        println!(
            "concurrency {concurrency:>2}: {rate:>7.0} deliveries/s ({sent} in {INGEST_SECONDS} s), \
             p50 {p50:.2} ms, p99 {p99:.2} ms — {:.2} × the single-row rate",
            rate / raw
        );
        println!(
            "  CPU per delivery: server {:.0} µs, this bench's client {:.0} µs (2 cores shared)",
            per_delivery(server_cpu, server_pid),
            per_delivery(client_cpu, std::process::id())
        );
        summary.add(
            format!(
                "webhook ingest c={concurrency}: {rate:.0}/s (p50 {p50:.1} ms, p99 {p99:.1} ms)"
            ),
            format!("single-row tx: {raw:.0}/s (goal ≥ 1.0)"),
            format!("{:.2}", rate / raw),
        );
    }
    let pool = sqlx::SqlitePool::connect(&database).await?;
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(&pool)
        .await?;
    let jobs: i64 = queue::count_jobs(&jmotto_zoom::store::db::Pool::Sqlite(pool.clone()))
        .await?
        .by_queue_and_state()
        .map(|(_, _, count)| count)
        .sum();
    println!("stored: {deliveries} delivery rows, {jobs} jobs (each 202 has both)");
    pool.close().await;
    drop(server);
    jmotto.stop().await;
    zoom.stop().await;
    Ok(())
}

/// CPU time (user + system, all threads) a process has used, in seconds (`/proc/PID/stat`,
/// clock ticks of 1/100 s as on every Linux x86-64).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime and stime: fields 14 and 15 of the line, indexes 11 and 12 after the name.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// Single-row write transactions per second on one connection opened with the store's own
/// options, on a fresh file in the same folder as the service's database.
async fn raw_single_row_rate(path: &Path) -> anyhow::Result<f64> {
    let url = format!("sqlite://{}", path.display());
    let options = jmotto_zoom::store::connect_options(&url)?;
    let mut conn = SqliteConnection::connect_with(&options).await?;
    sqlx::query("CREATE TABLE rows (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&mut conn)
        .await?;
    let body = "x".repeat(120);
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed().as_secs_f64() < INGEST_SECONDS {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await?;
        sqlx::query("INSERT INTO rows (body) VALUES (?)")
            .bind(&body)
            .execute(&mut conn)
            .await?;
        sqlx::query("COMMIT").execute(&mut conn).await?;
        done += 1;
    }
    let rate = done as f64 / start.elapsed().as_secs_f64();
    conn.close().await?;
    Ok(rate)
}

/// `concurrency` clients sending signed deliveries for `INGEST_SECONDS`: (deliveries/s,
/// p50 ms, p99 ms, how many).
async fn webhook_load(
    listen: &str,
    secret: &str,
    users: &[String],
    concurrency: usize,
) -> anyhow::Result<(f64, f64, f64, usize)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let url = format!("http://{listen}/webhooks/groupware");
    let key = Arc::new(SigningKey::parse(secret).context("the webhook secret")?);
    let users = Arc::new(users.to_vec());
    let start = Instant::now();
    let mut clients = Vec::new();
    for client in 0..concurrency {
        let (http, url, key, users) = (http.clone(), url.clone(), key.clone(), users.clone());
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = 0usize;
            while start.elapsed().as_secs_f64() < INGEST_SECONDS {
                n += 1;
                let id = format!("bench-{concurrency}-{client}-{n}");
                let user = &users[n % users.len()];
                let body = format!(
                    r#"{{"type":"schedule.updated","data":{{"schedule_id":"{n}","user_ids":["{user}"]}}}}"#
                );
                let timestamp = chrono::Utc::now().timestamp().to_string();
                let signature = key
                    .sign(&id, &timestamp, body.as_bytes())
                    .context("signing")?;
                let sent = Instant::now();
                let answer = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", &timestamp)
                    .header("webhook-signature", signature)
                    .body(body)
                    .send()
                    .await?;
                let status = answer.status().as_u16();
                let _ = answer.bytes().await?;
                anyhow::ensure!(status == 202, "a delivery was answered {status}");
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok((
        latencies.len() as f64 / elapsed,
        percentile(0.50),
        percentile(0.99),
        latencies.len(),
    ))
}

// ---------------------------------------------------------------- 2. resync cost

/// A server and a worker process on one database, against in-process replay servers.
struct Stack {
    jmotto: ReplayServer,
    zoom: ReplayServer,
    server: tokio::process::Child,
    worker: tokio::process::Child,
    pool: sqlx::SqlitePool,
    api: AdminClient,
    config: PathBuf,
    log: PathBuf,
    /// Times the worker exited on its own and was started again.
    restarts: usize,
}

impl Stack {
    async fn start(
        folder: &Path,
        name: &str,
        company: &GeneratedCompany,
        extra: &str,
        zoom_rate: Option<(u32, u32)>,
    ) -> anyhow::Result<Stack> {
        let jmotto = ReplayServer::start_jmotto().await?;
        let zoom = ReplayServer::start_zoom().await?;
        company.load(&jmotto);
        if let Some((creates, requests)) = zoom_rate {
            zoom.enforce_rate(creates, requests);
        }
        let listen = format!("127.0.0.1:{}", free_port()?);
        let database = format!("sqlite://{}", folder.join(format!("{name}.db")).display());
        let config = folder.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            company.config(&jmotto, &zoom, &database, &listen, extra)?,
        )?;
        let log = folder.join(format!("{name}.log"));
        let start = Instant::now();
        let server = spawn(SERVER, &config, &log)?;
        let worker = spawn(WORKER, &config, &log)?;
        wait_ready(&listen, start, Duration::from_secs(60), &log).await?;
        let pool = sqlx::SqlitePool::connect(&database).await?;
        let api = AdminClient::new(format!("http://{listen}"), DEMO_ADMIN_TOKEN.to_owned())?;
        Ok(Stack {
            jmotto,
            zoom,
            server,
            worker,
            pool,
            api,
            config,
            log,
            restarts: 0,
        })
    }

    /// Jobs not finished: (sync windows and fetch slices, all). Per queue by equality, so
    /// SQLite counts in apalis's `(job_type, status, run_at)` index instead of scanning the
    /// whole table (a scan every few milliseconds took a core of its own at 100k jobs).
    async fn outstanding(&self) -> anyhow::Result<(i64, i64)> {
        let mut counts = Vec::new();
        for queue in jmotto_zoom::jobs::queues() {
            counts.push(
                queue::unfinished_in(
                    &jmotto_zoom::store::db::Pool::Sqlite(self.pool.clone()),
                    queue,
                )
                .await?,
            );
        }
        Ok((counts[0] + counts[1], counts.iter().sum()))
    }

    /// Triggers a full sync and waits until no job is left: (time until every slice was
    /// decided, time until nothing was left). Polls every 10 ms near the end, less often
    /// while thousands of jobs are left.
    async fn sync(&mut self, limit: Duration) -> anyhow::Result<(Duration, Duration)> {
        let start = Instant::now();
        self.api.trigger_sync(None).await?;
        let mut decided = None;
        loop {
            let (slices, all) = self.outstanding().await?;
            if slices == 0 && decided.is_none() {
                decided = Some(start.elapsed());
            }
            if all == 0 {
                return Ok((decided.unwrap_or_else(|| start.elapsed()), start.elapsed()));
            }
            anyhow::ensure!(
                start.elapsed() < limit,
                "the sync did not finish in {limit:?} ({all} jobs left); log: {}",
                self.log.display()
            );
            self.keep_worker_running()?;
            let pause = if all > 1000 { 200 } else { 10 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// Starts the worker again when it exited on its own (a stalled queue makes it exit
    /// non-zero, see `jobs::liveness`), as its service manager would.
    fn keep_worker_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.worker.try_wait()? {
            self.restarts += 1;
            println!("  (the worker exited ({status}); started again, as a service manager would)");
            self.worker = spawn(WORKER, &self.config, &self.log)?;
        }
        Ok(())
    }

    async fn meetings_created(&self) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM meetings WHERE state = 'created'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn stop(mut self) {
        let _ = self.worker.start_kill();
        let _ = self.server.start_kill();
        let _ = self.worker.wait().await;
        let _ = self.server.wait().await;
        self.pool.close().await;
        self.jmotto.stop().await;
        self.zoom.stop().await;
    }
}

/// Peak resident set (VmHWM) of a running process, in MiB.
fn peak_rss_mib(child: &tokio::process::Child) -> Option<f64> {
    let pid = child.id()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

fn zoom_api_call(request: &jmotto_zoom::replay::RecordedRequest) -> bool {
    request.path.starts_with("/v2/")
}

async fn resync(
    folder: &Path,
    users: usize,
    entries_per_user: usize,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let company = GeneratedCompany::new(users, entries_per_user);
    let entries = company.entry_count();
    // BENCH_WORKER (TOML keys of [worker], `;`-separated) tries other worker settings.
    let worker = std::env::var("BENCH_WORKER")
        .unwrap_or_else(|_| "concurrency = 16".to_owned())
        .replace(';', "\n");
    let mut stack = Stack::start(
        folder,
        "resync",
        &company,
        &format!(
            "[zoom]\ncreate_per_second = 1000000\nrequests_per_second = 1000000\ndaily_host_limit = 1000000\n\
             [groupware]\nrequests_per_second = 1000000\n[worker]\n{worker}\n"
        ),
        None,
    )
    .await?;
    println!("worker settings: {worker:?} (the demo's otherwise)");
    let (decided, first) = stack.sync(Duration::from_secs(3600)).await?;
    let created = stack.meetings_created().await?;
    println!(
        "first sync: {users} users × {entries_per_user} entries = {entries}; {created} meetings created; \
         slices decided after {:.1} s ({:.0} entries decided/s); all created after {:.1} s ({:.0} creates/s)",
        decided.as_secs_f64(),
        entries as f64 / decided.as_secs_f64(),
        first.as_secs_f64(),
        created as f64 / first.as_secs_f64(),
    );
    summary.add(
        format!(
            "first sync of {entries} entries: {:.1} s ({:.0} decided/s, {:.0} created/s)",
            first.as_secs_f64(),
            entries as f64 / decided.as_secs_f64(),
            created as f64 / first.as_secs_f64()
        ),
        "",
        "",
    );
    stack.zoom.clear_requests();
    stack.jmotto.clear_requests();
    // BENCH_RESYNCS (default 1) repeats the no-change resync (for a profiler); the fastest
    // counts, the calls of all of them.
    let repeats: usize = std::env::var("BENCH_RESYNCS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let mut again = Duration::MAX;
    println!(
        "no-change resync starts at {}",
        chrono::Utc::now().to_rfc3339()
    );
    for _ in 0..repeats.max(1) {
        again = again.min(stack.sync(Duration::from_secs(3600)).await?.1);
    }
    let zoom_calls = stack.zoom.request_count(zoom_api_call);
    let token_calls = stack.zoom.request_count(|r| r.path.contains("oauth"));
    let listings = stack
        .jmotto
        .request_count(|r| r.form.get("action").is_some_and(|a| a == "list_events"));
    println!(
        "no-change resync: {:.2} s ({:.0} entries/s), {listings} J-MOTTO listings, {zoom_calls} Zoom API calls, \
         {token_calls} token requests — {:.2} × the 5 s goal",
        again.as_secs_f64(),
        entries as f64 / again.as_secs_f64(),
        again.as_secs_f64() / 5.0
    );
    summary.add(
        format!(
            "no-change resync of {entries} entries: {:.2} s, Zoom calls {zoom_calls}",
            again.as_secs_f64()
        ),
        "goal < 5 s, Zoom calls = 0",
        format!("{:.2} of the goal", again.as_secs_f64() / 5.0),
    );
    if stack.restarts > 0 {
        println!(
            "the worker exited on its own {} time(s) and was started again (a stalled queue worker)",
            stack.restarts
        );
    }
    let (server_rss, worker_rss) = (peak_rss_mib(&stack.server), peak_rss_mib(&stack.worker));
    let mib = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.0} MiB"));
    println!(
        "peak RSS during both syncs: server {}, worker {}",
        mib(server_rss),
        mib(worker_rss)
    );
    summary.add(
        format!(
            "peak RSS during the resyncs: server {}, worker {}",
            mib(server_rss),
            mib(worker_rss)
        ),
        format!("{entries} entries, {users} users"),
        "",
    );
    let unmatched: Vec<String> = stack
        .jmotto
        .unmatched()
        .into_iter()
        .chain(stack.zoom.unmatched())
        .collect();
    anyhow::ensure!(
        unmatched.is_empty(),
        "requests the replays do not cover: {unmatched:?}"
    );
    stack.stop().await;
    Ok(())
}

// ---------------------------------------------------------------- 3. rate limiter

async fn limiter(
    folder: &Path,
    users: usize,
    entries_per_user: usize,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    const CONFIGURED: f64 = 10.0;
    let company = GeneratedCompany::new(users, entries_per_user);
    let entries = company.entry_count();
    let mut stack = Stack::start(
        folder,
        "limiter",
        &company,
        "[zoom]\ncreate_per_second = 10\nrequests_per_second = 20\n\
         [groupware]\nrequests_per_second = 1000000\n\
         [worker]\nconcurrency = 8\n",
        Some((10, 20)),
    )
    .await?;
    stack.api.trigger_sync(None).await?;
    let limit = Duration::from_secs_f64(entries as f64 / CONFIGURED * 3.0 + 60.0);
    let start = Instant::now();
    let mut first = None;
    let last = loop {
        stack.keep_worker_running()?;
        let count = stack.zoom.meeting_count();
        if count >= 1 && first.is_none() {
            first = Some(Instant::now());
        }
        if count >= entries {
            break Instant::now();
        }
        anyhow::ensure!(
            start.elapsed() < limit,
            "only {count} of {entries} creates in {limit:?}; log: {}",
            stack.log.display()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let first = first.unwrap_or(last);
    let achieved = (entries - 1) as f64 / (last - first).as_secs_f64().max(f64::EPSILON);
    let rate_limited = stack.zoom.request_count(|r| r.status == 429);
    println!(
        "{entries} creates: first → last {:.1} s, achieved {achieved:.2}/s of {CONFIGURED}/s configured = {:.3}; \
         429s served by the replay: {rate_limited}",
        (last - first).as_secs_f64(),
        achieved / CONFIGURED
    );
    summary.add(
        format!("rate limiter: {achieved:.2} creates/s, 429s {rate_limited}"),
        "configured 10/s (goal ≥ 0.95, 429s = 0)",
        format!("{:.3}", achieved / CONFIGURED),
    );
    stack.stop().await;
    Ok(())
}

// ---------------------------------------------------------------- 4. footprint

fn footprint(summary: &mut Summary) -> anyhow::Result<()> {
    let mut sizes = Vec::new();
    for binary in [CLI, SERVER, WORKER] {
        let bytes = std::fs::metadata(binary)?.len();
        let name = Path::new(binary)
            .file_name()
            .map_or_else(|| binary.to_owned(), |n| n.to_string_lossy().into_owned());
        println!(
            "release binary {name}: {:.1} MiB",
            bytes as f64 / 1024.0 / 1024.0
        );
        sizes.push(format!("{name} {:.1}", bytes as f64 / 1024.0 / 1024.0));
    }
    summary.add(format!("binary sizes (MiB): {}", sizes.join(", ")), "", "");
    println!("(peak RSS: see 2; start → /readyz: see 1 and 5)");
    Ok(())
}

// ---------------------------------------------------------------- 5. crash rescue

async fn crash_rescue(
    folder: &Path,
    users: usize,
    entries_per_user: usize,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    const KILLS: usize = 8;
    let company = GeneratedCompany::new(users, entries_per_user);
    let mut stack = Stack::start(
        folder,
        "rescue",
        &company,
        "[zoom]\ncreate_per_second = 5\n[groupware]\nrequests_per_second = 1000000\n\
         [worker]\nqueue_poll_interval_ms = 50\nheartbeat_seconds = 5\nconcurrency = 4\n",
        None,
    )
    .await?;
    stack.api.trigger_sync(None).await?;
    let mut rescues = Vec::new();
    let mut restarts = Vec::new();
    let entries = company.entry_count();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut kills = 0;
    while kills < KILLS && stack.zoom.meeting_count() < entries {
        anyhow::ensure!(Instant::now() < deadline, "out of time after {kills} kills");
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(300..1500))).await;
        let pid = stack.worker.id().context("the worker runs")?;
        let held = held_by(&stack.pool, pid).await?;
        if held.is_empty() {
            continue;
        }
        stack.worker.start_kill()?;
        let killed_at = Instant::now();
        stack.worker.wait().await?;
        kills += 1;
        let held = held_by(&stack.pool, pid).await?;
        rescues.push(tokio::spawn(rescue_time(
            stack.pool.clone(),
            pid,
            held,
            killed_at,
            true,
        )));
        let done_at_kill = jobs_done(&stack.pool).await?;
        stack.worker = spawn(WORKER, &stack.config, &stack.log)?;
        restarts.push(wait_for_progress(&stack.pool, done_at_kill, killed_at).await?);
    }
    let mut times = Vec::new();
    for rescue in rescues {
        if let Some(time) = rescue.await? {
            times.push(time);
        }
    }
    let longest = |t: &[Duration]| t.iter().max().copied().unwrap_or_default().as_secs_f64();
    println!(
        "{kills} kills of a worker holding jobs: longest kill → its jobs running again {:.2} s \
         ({} measured); longest kill → next job done {:.2} s; target ≤ 15 s",
        longest(&times),
        times.len(),
        longest(&restarts)
    );
    summary.add(
        format!(
            "crash rescue: longest kill → job running again {:.2} s",
            longest(&times)
        ),
        "target ≤ 15 s",
        format!("{:.3} of the target", longest(&times) / 15.0),
    );
    stack.stop().await;
    Ok(())
}
