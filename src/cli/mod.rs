//! The `jmotto-zoom` command line (SPEC §4a): `demo`, `doctor`, `sync`, `status`, `run`,
//! `init`, `backup`.

/// `println!` that stops quietly once stdout is closed (see [`say_line`]).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::say_line(format_args!($($arg)*))
    };
}

pub mod backup;
pub mod demo;
pub mod init;
pub mod migrate;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use crate::{
    config::Settings,
    domain::meeting::{Reason, ReasonCode},
    http::{
        Application,
        errors::ErrorBody,
        jobs::JobStatus,
        meetings::{MeetingList, MeetingView},
        status::StatusView,
        sync::{Accepted, SyncRequest},
    },
    jobs::{Engine, LiveEngine, worker::Worker},
    live::LiveSettings,
    store::Store,
};

/// Command-line arguments of `jmotto-zoom`.
#[derive(Debug, Parser)]
#[command(
    name = "jmotto-zoom",
    version,
    about = "J-MOTTO schedule entries become Zoom meetings"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replays a recorded company through the whole service and prints what it created.
    Demo {
        /// Keep the server (API and console) and the replay servers up after the report, until
        /// Ctrl-C (prints their addresses and the admin token).
        #[arg(long)]
        serve: bool,
        /// The server's address (default: a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// Checks the setup against Zoom and J-MOTTO, item by item, and says where to fix what
    /// is wrong. Exit status 0 only when every check passes.
    Doctor {
        #[arg(long, default_value = "jmotto-zoom.toml")]
        config: PathBuf,
    },
    /// Prints the running server's status: enabled or why not, queue, meetings, users.
    /// Exit status 0 only when the integration is enabled.
    Status {
        /// Read only `[server]` (listen, admin_token) from this file (default:
        /// jmotto-zoom.toml, unless `--url` is given).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The server's base URL (e.g. http://127.0.0.1:8080) instead of `server.listen`;
        /// the admin token may come from JMZ__SERVER__ADMIN_TOKEN alone.
        #[arg(long)]
        url: Option<String>,
    },
    /// Triggers a sync through the server's API.
    Sync {
        #[arg(long, default_value = "jmotto-zoom.toml")]
        config: PathBuf,
        /// Only these groupware user ids (comma-separated).
        #[arg(long, value_delimiter = ',')]
        users: Option<Vec<String>>,
        /// Wait until no job is pending or running and the retries the sync scheduled have
        /// run, then print the outcome; exit status 1 when anything was not synced.
        #[arg(long)]
        wait: bool,
        /// With `--wait`: how long to wait for scheduled retries, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_MAX_WAIT.as_secs(), requires = "wait")]
        max_wait: u64,
    },
    /// Writes a starter configuration file with freshly generated secrets (mode 0600; never
    /// over an existing file) and prints the next steps.
    Init {
        #[arg(long, default_value = "jmotto-zoom.toml")]
        path: PathBuf,
    },
    /// Server and worker in one process (the embedded single-machine default).
    Run {
        #[arg(long, default_value = "jmotto-zoom.toml")]
        config: PathBuf,
    },
    /// Copies a SQLite deployment (meetings, users, settings, audit log, jobs still to run)
    /// into an empty PostgreSQL database; the source is left untouched. Stop the service
    /// first.
    Migrate {
        #[arg(long, default_value = "jmotto-zoom.toml")]
        config: PathBuf,
        /// The empty PostgreSQL database: postgres://user:password@host:port/db
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Copies the live SQLite database into a new file, online and consistent (restore:
    /// stop the service, copy the file back, start it).
    Backup {
        #[arg(long, default_value = "jmotto-zoom.toml")]
        config: PathBuf,
        /// The copy (a new file: an existing one is refused).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
}

/// Runs the command line; the exit code says whether it succeeded.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { serve, listen } => demo::run(serve, &listen).await,
        Command::Doctor { config } => doctor(&config).await,
        Command::Status { config, url } => status(config.as_deref(), url).await,
        Command::Sync {
            config,
            users,
            wait,
            max_wait,
        } => {
            let wait = wait.then_some(Duration::from_secs(max_wait));
            sync(&config, users, wait).await
        }
        Command::Init { path } => init::run(&path),
        Command::Run { config } => run(&config).await,
        Command::Backup { config, to } => backup::run(&config, &to).await,
        Command::Migrate { config, to } => migrate::run(&config, &to).await,
    };
    report(result)
}

/// The exit code of a command: its own, or 1 after printing the error chain.
pub fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Set once stdout refused a write (its reader went away, as `| head -1` does).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes one line to stdout; once stdout is closed (`BrokenPipe`, or any other error)
/// writes nothing more, quietly, and the command goes on to its exit status: `println!`
/// would panic.
pub fn say_line(line: std::fmt::Arguments<'_>) {
    use std::{io::Write as _, sync::atomic::Ordering};
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    if written.is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Keys of a configuration file read one by one, without checking the rest of the file:
/// `status` needs only `[server]` and `backup` only `[database]`, so a file whose `[zoom]`
/// is incomplete still serves them. `JMZ__SECTION__KEY` wins, as in [`Settings::load`].
pub struct ConfigFile {
    table: toml::Table,
}

impl ConfigFile {
    /// Reads `path` as TOML.
    pub fn read(path: &std::path::Path) -> anyhow::Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        let table = toml::from_str(&text)
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        Ok(ConfigFile { table })
    }

    /// No file: the environment alone.
    pub fn none() -> ConfigFile {
        ConfigFile {
            table: toml::Table::new(),
        }
    }

    /// `section.key` as text: its environment override, else the file's string.
    pub fn key(&self, section: &str, key: &str) -> Option<String> {
        let variable = format!(
            "{}{}__{}",
            crate::config::ENV_PREFIX,
            section.to_uppercase(),
            key.to_uppercase()
        );
        if let Ok(value) = std::env::var(variable) {
            return Some(value);
        }
        self.table
            .get(section)?
            .get(key)?
            .as_str()
            .map(str::to_owned)
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}

/// Opens the database and builds the engine of the settings in effect (the file over what
/// the console stored) from a configuration file.
pub async fn open(config: &std::path::Path) -> anyhow::Result<std::sync::Arc<Engine>> {
    connect(Settings::load(config)?).await?.current().await
}

/// `--config F`, the one argument of the server and worker binaries.
#[derive(Debug, clap::Parser)]
#[command(version)]
pub struct ConfigArg {
    /// The configuration file (TOML; `JMZ__SECTION__KEY` overrides any key).
    #[arg(long, default_value = "jmotto-zoom.toml")]
    pub config: std::path::PathBuf,
}

impl ConfigArg {
    /// Parses the command line of the binary `name` (exits with clap's usage message on a
    /// mistake, and for `--help` / `--version`).
    pub fn parse_for(name: &'static str, about: &'static str) -> ConfigArg {
        use clap::{CommandFactory, FromArgMatches};
        let matches = ConfigArg::command().name(name).about(about).get_matches();
        ConfigArg::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
    }
}

/// A service binary's start: settings read, logging set up as `log.format` says, database
/// opened and migrated, the live engine built.
pub async fn start_service(config: &ConfigArg) -> anyhow::Result<LiveEngine> {
    let settings = Settings::load(&config.config)?;
    crate::telemetry::init("info", settings.log.format);
    connect(settings).await
}

/// Opens the database named in `settings` and builds the process's live engine: the file's
/// settings over what the console stored there, followed at each job (SPEC §8).
pub async fn connect(settings: Settings) -> anyhow::Result<LiveEngine> {
    let store = Store::connect(&settings.database.url).await?;
    let live = LiveEngine::start(LiveSettings::new(settings, store)).await?;
    let current = live.latest();
    let unset = current.settings.unset_credentials();
    if !unset.is_empty() {
        tracing::warn!(unset = %unset.join(", "), "the integration is disabled until these are set (the console's Zoom連携設定 page, or the configuration file)");
    }
    Ok(live)
}

async fn run(config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(config)?;
    crate::telemetry::init("info", settings.log.format);
    let engine = connect(settings).await?;
    let application = Application::build(engine.clone())?;
    tracing::info!(port = application.port(), "listening");
    let worker = Worker::build(engine);
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let server_stop = wait_for(stop_tx.subscribe());
    let worker_stop = wait_for(stop_tx.subscribe());
    let stop_on_signal = stop_tx.clone();
    let signals = tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_on_signal.send(());
    });
    // Whichever half ends first (a signal, or a failure) stops the other.
    let server = async {
        let result = application.run_until_stopped(server_stop).await;
        let _ = stop_tx.send(());
        result
    };
    let worker = async {
        let result = worker.run_until_stopped(worker_stop).await;
        let _ = stop_tx.send(());
        result
    };
    let (server, worker) = tokio::join!(server, worker);
    signals.abort();
    server?;
    worker?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for(mut receiver: tokio::sync::broadcast::Receiver<()>) {
    let _ = receiver.recv().await;
}

/// A client of a running server's admin API; it reads the answers through the server's own
/// view types.
pub struct AdminClient {
    http: reqwest::Client,
    base_url: String,
    /// Exposed only to build the `Authorization` header.
    token: SecretString,
}

impl AdminClient {
    /// A client for `base_url` (e.g. `http://127.0.0.1:8080`) with the admin token.
    pub fn new(base_url: String, token: impl Into<SecretString>) -> anyhow::Result<AdminClient> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(AdminClient {
            http,
            base_url,
            token: token.into(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(self.token.expose_secret())
    }

    /// `POST /api/v1/sync`; returns the job id.
    pub async fn trigger_sync(&self, users: Option<Vec<String>>) -> anyhow::Result<String> {
        let mut request = self.request(reqwest::Method::POST, "/api/v1/sync");
        if users.is_some() {
            request = request.json(&SyncRequest { users });
        }
        let response = request.send().await.context("cannot reach the server")?;
        let status = response.status();
        if status.as_u16() != 202 {
            anyhow::bail!(
                "the server refused the sync ({status}): {}",
                error_message(response).await
            );
        }
        let accepted: Accepted = response
            .json()
            .await
            .context("the server's answer is not a queued job")?;
        Ok(accepted.job_id)
    }

    /// `GET path`, read as `T` (a view type of [`crate::http`], or `serde_json::Value`).
    pub async fn get_as<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .context("cannot reach the server")?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!(
                "GET {path} answered {status}: {}",
                error_message(response).await
            );
        }
        response
            .json()
            .await
            .with_context(|| format!("the server's answer to GET {path} cannot be read"))
    }

    /// `GET path` as JSON.
    pub async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        self.get_as(path).await
    }

    /// `GET /api/v1/status`.
    pub async fn status(&self) -> anyhow::Result<StatusView> {
        self.get_as("/api/v1/status").await
    }

    /// `GET /api/v1/meetings`.
    pub async fn meetings(&self) -> anyhow::Result<MeetingList> {
        self.get_as("/api/v1/meetings").await
    }

    /// `GET /api/v1/jobs/{id}`.
    pub async fn job(&self, id: &str) -> anyhow::Result<JobStatus> {
        self.get_as(&format!("/api/v1/jobs/{id}")).await
    }

    /// Polls `status` until no job is pending or running (at most `limit`); the last status,
    /// read as `T` ([`StatusView`], or `serde_json::Value`).
    pub async fn wait_until_idle<T: DeserializeOwned>(&self, limit: Duration) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let answer: serde_json::Value = self.get("/api/v1/status").await?;
            let status: StatusView = serde_json::from_value(answer.clone())
                .context("the server's status cannot be read")?;
            if status.queue.is_idle() {
                return serde_json::from_value(answer)
                    .context("the server's status cannot be read");
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "jobs still pending after {limit:?}: {} pending, {} running",
                status.queue.pending,
                status.queue.running
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// How long `sync --wait` waits, unless `--max-wait` says otherwise, for the jobs of its sync
/// and the retries they schedule.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(15 * 60);

/// The state a sync left behind once its jobs ran (or the wait's bound ran out).
#[derive(Debug)]
pub struct Settled {
    pub status: StatusView,
    pub meetings: MeetingList,
    /// Jobs were still ready, running or due for a retry when the bound ran out.
    pub timed_out: bool,
}

impl AdminClient {
    /// Polls the status until no job is pending or running and no retry is scheduled other
    /// than the waits for a daily quota (they run at 00:00 UTC, past any sensible bound), or
    /// until `limit` has passed. Says on stdout what it waits for.
    pub async fn wait_for_retries(&self, limit: Duration) -> anyhow::Result<Settled> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut announced = None;
        loop {
            let status = self.status().await?;
            let now = tokio::time::Instant::now();
            let timed_out = now >= deadline;
            // The meeting list (which may be long) is read only once the queue is idle.
            if !status.queue.is_idle() && !timed_out {
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            let meetings = self.meetings().await?;
            let retries = status.queue.scheduled - daily_waits(&meetings);
            let done = status.queue.is_idle() && retries <= 0;
            if done || timed_out {
                return Ok(Settled {
                    status,
                    meetings,
                    timed_out: !done,
                });
            }
            if announced != Some(retries) {
                announced = Some(retries);
                say!(
                    "waiting up to {} s for {retries} scheduled retries",
                    (deadline - now).as_secs()
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// A meeting's reason code as the API shows it (`None`: no reason, or an unknown one).
fn reason_code(meeting: &MeetingView) -> Option<ReasonCode> {
    let text = meeting.reason.as_deref()?;
    Reason::parse_api_text(text).ok().map(|reason| reason.code)
}

/// Does `meeting` wait for a daily quota to reset (at 00:00 UTC, or Zoom's date)?
fn waits_for_a_day(meeting: &MeetingView) -> bool {
    matches!(
        reason_code(meeting),
        Some(
            ReasonCode::HostDailyLimit | ReasonCode::AccountDailyLimit | ReasonCode::UpdateDeferred
        )
    )
}

/// Scheduled jobs that wait for a daily quota to reset: one per create or update deferred
/// for it.
fn daily_waits(meetings: &MeetingList) -> i64 {
    let count = meetings
        .meetings
        .iter()
        .filter(|m| waits_for_a_day(m))
        .count();
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Why `meeting` is not synced, or `None` when it is (created, updated, deleted, skipped
/// with its reason, or a delete Zoom refuses for good: the meeting is running or over).
fn meeting_not_synced(meeting: &MeetingView) -> Option<&'static str> {
    match (meeting.state.as_str(), reason_code(meeting)) {
        ("failed", _) => Some("failed"),
        ("pending" | "deferred", _) if waits_for_a_day(meeting) => {
            Some("waits for the daily quota")
        }
        ("pending" | "deferred", _) => Some("not created yet"),
        (_, Some(ReasonCode::UpdateDeferred)) => Some("its update waits for the daily quota"),
        (
            _,
            Some(
                ReasonCode::UpdateRetrying | ReasonCode::UpdateFailed | ReasonCode::UpdateRejected,
            ),
        ) => Some("not updated"),
        (_, Some(ReasonCode::DeleteFailed)) => Some("not deleted"),
        _ => None,
    }
}

/// What a sync left undone, one line each: users whose listing failed, meetings that failed
/// or still wait for a retry, jobs that failed during the wait, a bound that ran out.
/// `users`: the sync's `--users` (the others are not judged).
pub fn not_synced(
    settled: &Settled,
    users: Option<&[String]>,
    failed_jobs_before: i64,
    limit: Duration,
) -> Vec<String> {
    let concerns = |id: Option<&str>| {
        users.is_none_or(|users| id.is_some_and(|id| users.iter().any(|u| u == id)))
    };
    let mut lines = Vec::new();
    for user in &settled.status.users {
        if let Some(error) = &user.last_error
            && concerns(Some(&user.groupware_id))
        {
            lines.push(format!(
                "user {} ({}): its listing failed: {error}",
                user.groupware_id, user.zoom_email
            ));
        }
    }
    for meeting in &settled.meetings.meetings {
        let Some(what) = meeting_not_synced(meeting) else {
            continue;
        };
        if concerns(meeting.host_user_id.as_deref()) {
            lines.push(format!(
                "meeting {} at {} ({}): {what}: {}",
                meeting.schedule_id,
                meeting.start,
                meeting.host_email.as_deref().unwrap_or("no host"),
                meeting.reason.as_deref().unwrap_or("no reason recorded")
            ));
        }
    }
    let failed_jobs = settled.status.queue.failed - failed_jobs_before;
    if failed_jobs > 0 {
        lines.push(format!(
            "{failed_jobs} job(s) failed (see the worker's log)"
        ));
    }
    if settled.timed_out {
        let queue = &settled.status.queue;
        lines.push(format!(
            "gave up waiting after {} s: {} job(s) pending, {} running, {} scheduled",
            limit.as_secs(),
            queue.pending,
            queue.running,
            queue.scheduled
        ));
    }
    lines
}

/// The message of an error answer (`{"error": {"message"}}`), or its status alone.
async fn error_message(response: reqwest::Response) -> String {
    let status = response.status();
    match response.json::<ErrorBody>().await {
        Ok(body) => format!("{} ({})", body.error.message, body.error.code),
        Err(_) => format!("no error body ({status})"),
    }
}

/// The admin client of the server `settings` describe.
fn admin_client(settings: &Settings) -> anyhow::Result<AdminClient> {
    AdminClient::new(
        format!("http://{}", settings.server.listen),
        settings.server.admin_token.clone(),
    )
}

/// `sync`: triggers; with a wait bound, waits for the sync and its retries and exits 1 when
/// anything was not synced (printed, with why).
async fn sync(
    config: &std::path::Path,
    users: Option<Vec<String>>,
    wait: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(config)?;
    let client = admin_client(&settings)?;
    let failed_jobs_before = match wait {
        Some(_) => client.status().await?.queue.failed,
        None => 0,
    };
    let job_id = client.trigger_sync(users.clone()).await?;
    say!("sync queued: job {job_id}");
    let Some(limit) = wait else {
        return Ok(ExitCode::SUCCESS);
    };
    say!(
        "waiting up to {} s for the sync and the retries it schedules",
        limit.as_secs()
    );
    let settled = client.wait_for_retries(limit).await?;
    demo::print_report(&settled.meetings, &settled.status);
    let undone = not_synced(&settled, users.as_deref(), failed_jobs_before, limit);
    if undone.is_empty() {
        say!("\nEverything synced.");
        return Ok(ExitCode::SUCCESS);
    }
    say!("\nNot synced ({}):", undone.len());
    for line in &undone {
        say!("  {line}");
    }
    Ok(ExitCode::FAILURE)
}

async fn doctor(config: &std::path::Path) -> anyhow::Result<ExitCode> {
    let engine = open(config).await?;
    let results = crate::doctor::run(&engine).await;
    let all_ok = print_checks(&results);
    let verdict = crate::doctor::verdict(&engine).await;
    engine.store.close().await;
    let code = if all_ok {
        say!("\nAll checks passed.");
        ExitCode::SUCCESS
    } else {
        let failed = results.iter().filter(|r| !r.ok).count();
        say!("\n{failed} check(s) failed: fix them where each line says, then run doctor again.");
        ExitCode::FAILURE
    };
    say!("{}", verdict?);
    Ok(code)
}

/// Prints one line per check (`OK` / `NG`); true when all passed.
pub fn print_checks(results: &[crate::checks::CheckResult]) -> bool {
    for result in results {
        let mark = if result.ok { "OK" } else { "NG" };
        if result.ok && result.detail == "OK" {
            say!("[{mark}] {}", result.item);
        } else {
            say!("[{mark}] {}: {}", result.item, result.detail);
        }
    }
    results.iter().all(|r| r.ok)
}

/// `status`: exit status 0 only when the integration is enabled (R-ENABLED).
async fn status(config: Option<&std::path::Path>, url: Option<String>) -> anyhow::Result<ExitCode> {
    const DEFAULT_CONFIG: &str = "jmotto-zoom.toml";
    let file = match (config, &url) {
        (Some(path), _) => ConfigFile::read(path)?,
        (None, Some(_)) => ConfigFile::none(),
        (None, None) => ConfigFile::read(std::path::Path::new(DEFAULT_CONFIG))?,
    };
    let base_url = match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!(
            "http://{}",
            file.key("server", "listen")
                .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
        ),
    };
    let token = file.key("server", "admin_token").context(
        "no admin token: set JMZ__SERVER__ADMIN_TOKEN, or give --config with [server] admin_token",
    )?;
    let client = AdminClient::new(base_url.clone(), token)?;
    let status = client.status().await.with_context(|| {
        format!("cannot read the status from the server at {base_url}: is it running?")
    })?;
    for line in render_status(&status).lines() {
        say!("{line}");
    }
    Ok(if status.enabled {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `GET /api/v1/status` as an administrator reads it.
pub fn render_status(status: &StatusView) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if status.enabled {
        let _ = writeln!(out, "Zoom連携: 有効 (enabled)");
    } else {
        let _ = writeln!(out, "Zoom連携: 無効 (not enabled)");
        for reason in &status.reasons {
            let _ = writeln!(out, "  - {reason}");
        }
    }
    let _ = writeln!(out, "Window: {} – {}", status.window.from, status.window.to);
    let queue = &status.queue;
    let _ = writeln!(
        out,
        "Queue: {} pending, {} running, {} scheduled, {} failed",
        queue.pending, queue.running, queue.scheduled, queue.failed
    );
    let counts: Vec<String> = status
        .meetings
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    let _ = writeln!(
        out,
        "Meetings: {}",
        if counts.is_empty() {
            "none yet".to_owned()
        } else {
            counts.join(", ")
        }
    );
    let _ = writeln!(out, "Users:");
    for user in &status.users {
        let state = if user.enabled { "enabled" } else { "disabled" };
        let _ = writeln!(
            out,
            "  {} {} ({state}) last sync {}{}",
            user.groupware_id,
            user.zoom_email,
            user.last_sync_at.as_deref().unwrap_or("-"),
            user.last_error
                .as_deref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meeting(host: &str, state: &str, reason: Option<&str>) -> serde_json::Value {
        json!({
            "schedule_id": "8801", "occurrence": "", "host_user_id": host,
            "host_email": format!("{host}@example.co.jp"), "topic": "会議",
            "start": "2026-12-03T10:00:00+09:00", "end": "2026-12-03T11:00:00+09:00",
            "duration_minutes": 60, "zoom_meeting_id": null, "join_url": null,
            "state": state, "reason": reason
        })
    }

    fn settled(meetings: Vec<serde_json::Value>, failed_jobs: i64, timed_out: bool) -> Settled {
        let status = json!({
            "enabled": true, "reasons": [], "checks": [],
            "window": {"from": "2026-11-01T00:00:00+09:00", "to": "2027-02-01T00:00:00+09:00"},
            "queue": {"pending": 0, "running": 0, "scheduled": 2, "failed": failed_jobs},
            "meetings": {},
            "users": [
                {"groupware_id": "10002", "zoom_email": "a@example.co.jp", "enabled": true,
                 "last_sync_at": "2026-11-25T10:00:00+09:00", "last_error": null},
                {"groupware_id": "10005", "zoom_email": "b@example.co.jp", "enabled": true,
                 "last_sync_at": null, "last_error": "errorno 2001"}
            ]
        });
        Settled {
            status: serde_json::from_value(status).expect("a status"),
            meetings: serde_json::from_value(json!({ "meetings": meetings })).expect("meetings"),
            timed_out,
        }
    }

    /// SPEC §4a `sync --wait`: exit status non-zero when anything was not synced — a failed
    /// listing, a failed meeting, one still waiting (for a retry or a daily quota), an
    /// update or delete not done, a job that failed, a bound that ran out; a meeting
    /// created, updated, skipped with its reason, or whose delete Zoom refuses for good is
    /// synced. `--users` limits the judgement to those users.
    #[test]
    fn judges_what_a_sync_left_undone() {
        let limit = Duration::from_secs(900);
        let synced = [
            meeting("10002", "created", None),
            meeting("10002", "created", Some("updated")),
            meeting("10002", "skipped", Some("ended")),
            meeting("10002", "deleted", Some("entry_deleted")),
            meeting(
                "10002",
                "created",
                Some("delete_refused: HTTP 400: in progress"),
            ),
        ];
        let all_synced = settled(synced.to_vec(), 1, false);
        let only_10002 = ["10002".to_owned()];
        assert!(not_synced(&all_synced, Some(&only_10002), 1, limit).is_empty());
        let whole = not_synced(&all_synced, None, 1, limit);
        assert_eq!(whole.len(), 1, "{whole:?}");
        assert!(whole[0].starts_with("user 10005 (b@example.co.jp): its listing failed"));

        let undone = [
            meeting("10002", "failed", Some("zoom_rejected: HTTP 400")),
            meeting("10002", "pending", Some("retrying: HTTP 502")),
            meeting("10002", "deferred", Some("rate_limited")),
            meeting("10002", "deferred", Some("host_daily_limit")),
            meeting("10002", "created", Some("update_failed: HTTP 500")),
            meeting(
                "10002",
                "created",
                Some("update_deferred: host_daily_limit"),
            ),
            meeting("10002", "created", Some("delete_failed: HTTP 500")),
        ];
        let left = settled(undone.to_vec(), 3, true);
        let lines = not_synced(&left, Some(&only_10002), 1, limit);
        assert_eq!(lines.len(), undone.len() + 2, "{lines:#?}");
        assert!(lines.contains(&"2 job(s) failed (see the worker's log)".to_owned()));
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("gave up waiting after 900 s"))
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("waits for the daily quota: host_daily_limit"))
        );
        // The two daily waits are not waited for: no scheduled retry is left to wait for.
        assert_eq!(daily_waits(&left.meetings), 2);
    }
}
