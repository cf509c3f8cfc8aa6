//! `spawn_app()`: the whole service on port 0 with its own temporary SQLite file and its own
//! replay servers, the same fixtures the demo uses.

use std::{sync::Arc, time::Duration};

use jmotto_zoom::{
    cli::{
        AdminClient,
        demo::{DEMO_ADMIN_TOKEN, demo_settings},
    },
    config::Settings,
    http::Application,
    jobs::{Engine, LiveEngine, worker::Worker},
    live::LiveSettings,
    replay::{RecordedRequest, ReplayServer},
    store::{Store, db, sync_state},
};
use serde_json::Value;

pub const NOVEMBER: (&str, &str) = ("2026-11-01", "2026-11-30");
pub const DECEMBER: (&str, &str) = ("2026-12-01", "2026-12-31");

pub struct TestApp {
    pub address: String,
    pub api: AdminClient,
    pub http: reqwest::Client,
    pub jmotto: ReplayServer,
    pub zoom: ReplayServer,
    /// The engine as the app started (its store and file settings).
    pub engine: Arc<Engine>,
    /// The server's (and the first worker's) live engine.
    pub live: LiveEngine,
    stop: tokio::sync::broadcast::Sender<()>,
    worker_stop: tokio::sync::broadcast::Sender<()>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _folder: tempfile::TempDir,
}

/// The app with the demo's configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The app with the demo's configuration changed by `adjust` (policies, users…).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let jmotto = ReplayServer::start_jmotto()
        .await
        .expect("J-MOTTO replay starts");
    let zoom = ReplayServer::start_zoom()
        .await
        .expect("Zoom replay starts");
    let folder = tempfile::tempdir().expect("temp dir");
    let url = test_database(&folder).await;
    let mut settings = demo_settings(&jmotto, &zoom, &url).expect("demo settings are valid");
    settings.worker.retry_base_seconds = 1;
    adjust(&mut settings);
    let store = Store::connect(&settings.database.url)
        .await
        .expect("database opens");
    let live = LiveEngine::start(LiveSettings::new(settings, store))
        .await
        .expect("engine builds");
    let engine = live.latest();
    let application = Application::build(live.clone()).expect("server binds");
    let address = format!("http://127.0.0.1:{}", application.port());
    let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let (worker_stop, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut server_stop = stop.subscribe();
    let tasks = vec![
        tokio::spawn(application.run_until_stopped(async move {
            let _ = server_stop.recv().await;
        })),
        spawn_worker(&live, &worker_stop),
    ];
    TestApp {
        api: AdminClient::new(address.clone(), DEMO_ADMIN_TOKEN.to_owned()).expect("client"),
        http: reqwest::Client::new(),
        address,
        jmotto,
        zoom,
        engine,
        live,
        stop,
        worker_stop,
        tasks,
        _folder: folder,
    }
}

/// True in the PostgreSQL half of the suite (`tests/it_postgres.rs`, the same tests as
/// `tests/it`, each on a database of its own on the tests' throw-away PostgreSQL).
pub fn on_postgres() -> bool {
    env!("CARGO_CRATE_NAME") == "it_postgres"
}

/// A fresh database for one test: a SQLite file in `folder`, or a new PostgreSQL database.
/// Without PostgreSQL the PostgreSQL half says so in one line (`postgres::shared`) and ends
/// here, its tests not run (under `CI=true` it fails instead).
pub async fn test_database(folder: &tempfile::TempDir) -> String {
    if !on_postgres() {
        return format!("sqlite://{}", folder.path().join("test.db").display());
    }
    match crate::postgres::fresh_database().await {
        Some(url) => url,
        None => std::process::exit(0),
    }
}

fn spawn_worker(
    engine: &LiveEngine,
    stop: &tokio::sync::broadcast::Sender<()>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let mut stop = stop.subscribe();
    let worker = Worker::build(engine.clone());
    tokio::spawn(worker.run_until_stopped(async move {
        let _ = stop.recv().await;
    }))
}

impl TestApp {
    /// `GET path` without credentials, read as JSON (e.g. `/api/openapi.json`).
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("JSON")
    }

    /// Stops the worker and starts a new one (a new engine: nothing in memory survives) on
    /// the same database, as a process restart would.
    pub async fn restart_worker(&mut self) {
        self.stop_worker().await;
        self.start_worker().await;
    }

    /// Stops the worker (as SIGTERM does) and waits until it has stopped.
    pub async fn stop_worker(&mut self) {
        let _ = self.worker_stop.send(());
        let old = self.tasks.pop().expect("the worker task");
        old.await
            .expect("worker joins")
            .expect("worker stopped cleanly");
    }

    /// Waits up to `limit` for the worker to end on its own: its result, or `None`.
    pub async fn worker_ended_within(
        &mut self,
        limit: std::time::Duration,
    ) -> Option<anyhow::Result<()>> {
        let worker = self.tasks.last_mut()?;
        let ended = tokio::time::timeout(limit, worker).await.ok()?;
        self.tasks.pop();
        Some(ended.expect("worker joins"))
    }

    /// Starts a worker with a new engine on the same database.
    pub async fn start_worker(&mut self) {
        let live = LiveSettings::new(self.live.file().clone(), self.engine.store.clone());
        let engine = LiveEngine::start(live).await.expect("engine builds");
        self.tasks.push(spawn_worker(&engine, &self.worker_stop));
    }

    /// Lets time pass for the jobs waiting in the database: every scheduled job of ours
    /// becomes due now. Returns how many were moved.
    pub async fn advance_scheduled(&self) -> u64 {
        db::Query::per_backend(
            "UPDATE Jobs SET run_at = $1 WHERE job_type >= 'jmz.' AND job_type < 'jmz/' \
             AND lock_by IS NULL AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts)) \
             AND run_at > $1",
            // apalis-postgres keeps `lock_by` on a job whose handler failed and that waits
            // for its retry: such a job is not held by anyone.
            "UPDATE apalis.jobs SET run_at = to_timestamp($1) WHERE job_type COLLATE \"C\" >= 'jmz.' \
             AND job_type COLLATE \"C\" < 'jmz/' \
             AND ((status = 'Pending' AND lock_by IS NULL) \
                  OR (status = 'Failed' AND attempts < max_attempts)) \
             AND run_at > to_timestamp($1)",
        )
        .bind(chrono::Utc::now().timestamp())
        .execute(self.engine.store.db())
        .await
        .expect("jobs advanced")
    }

    /// Jobs of ours in the queue in any state, of `queue` only when given.
    pub async fn jobs_in(&self, queue: Option<&str>) -> i64 {
        db::Query::per_backend(
            "SELECT count(*) FROM Jobs WHERE job_type >= 'jmz.' AND job_type < 'jmz/' \
             AND ($1 IS NULL OR job_type = $1)",
            "SELECT count(*) FROM apalis.jobs WHERE job_type COLLATE \"C\" >= 'jmz.' \
             AND job_type COLLATE \"C\" < 'jmz/' AND ($1::TEXT IS NULL OR job_type = $1)",
        )
        .bind(queue)
        .scalar(self.engine.store.db())
        .await
        .expect("jobs counted")
    }

    /// A job's arguments as the JSON text stored.
    pub async fn job_args(&self, id: &str) -> String {
        db::Query::per_backend(
            "SELECT CAST(job AS TEXT) FROM Jobs WHERE id = $1",
            "SELECT convert_from(job, 'UTF8') FROM apalis.jobs WHERE id = $1",
        )
        .bind(id)
        .scalar(self.engine.store.db())
        .await
        .expect("the job's arguments")
    }

    /// Drains, and while jobs wait for a later time, lets that time pass and drains again.
    /// (A create whose claim is still fresh reschedules itself until the claim ends, in real
    /// time: this polls until then, within a bound.)
    pub async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            self.drain().await;
            if self.advance_scheduled().await == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "jobs kept scheduling new waits"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The run times (Unix seconds) of the scheduled jobs of `queue`.
    pub async fn scheduled_run_times(&self, queue: &str) -> Vec<i64> {
        db::Query::per_backend(
            "SELECT run_at FROM Jobs WHERE job_type = $1 AND status = 'Pending' AND lock_by IS NULL \
             AND run_at > $2 ORDER BY run_at",
            "SELECT CAST(floor(EXTRACT(EPOCH FROM run_at)) AS BIGINT) FROM apalis.jobs \
             WHERE job_type = $1 AND status = 'Pending' AND lock_by IS NULL \
             AND run_at > to_timestamp($2) ORDER BY run_at",
        )
        .bind(queue)
        .bind(chrono::Utc::now().timestamp())
        .scalars(self.engine.store.db())
        .await
        .expect("scheduled jobs")
    }

    /// How many meetings the Zoom replay holds per agenda marker (the agenda's last line).
    pub fn stored_per_marker(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for meeting in self.zoom.zoom_meetings() {
            let marker = meeting["agenda"]
                .as_str()
                .and_then(|a| a.lines().last())
                .unwrap_or("")
                .to_owned();
            *counts.entry(marker).or_insert(0) += 1;
        }
        counts
    }

    /// Triggers a full sync through `POST /api/v1/sync` and drives the worker until the
    /// queue is empty.
    pub async fn sync(&self) {
        self.api.trigger_sync(None).await.expect("sync accepted");
        self.drain().await;
    }

    /// A sync as the periodic tick or a webhook starts it, without the quick check a manual
    /// one runs first (SPEC §10), then [`TestApp::drain`]: for tests that count or fault the
    /// services' calls of the sync itself.
    pub async fn sync_unchecked(&self) {
        jmotto_zoom::jobs::worker::enqueue_sync(&self.engine, "poll", None, None, None)
            .await
            .expect("sync queued");
        self.drain().await;
    }

    /// Waits until no job is ready or running (never a fixed sleep), then checks that no
    /// job failed and that every request the service sent was covered by a fixture.
    pub async fn drain(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let counts = sync_state::queue_counts(self.engine.store.db())
                .await
                .expect("queue counts");
            if counts.is_idle() {
                assert_eq!(counts.failed, 0, "jobs failed: {counts:?}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "queue never emptied: {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let unmatched: Vec<String> = self
            .jmotto
            .unmatched()
            .into_iter()
            .chain(self.zoom.unmatched())
            .collect();
        assert!(
            unmatched.is_empty(),
            "requests no fixture covers: {unmatched:#?}"
        );
    }

    /// Zoom requests other than the token and e-mail look-ups.
    pub fn zoom_writes(&self) -> Vec<RecordedRequest> {
        self.zoom
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/v2/") && !r.path.starts_with("/v2/users/email"))
            .filter(|r| r.method != "GET")
            .collect()
    }

    /// The create requests, by agenda marker.
    pub fn creates(&self) -> Vec<RecordedRequest> {
        self.zoom_writes()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect()
    }

    /// The create request whose agenda ends with `marker`.
    pub fn create_for(&self, marker: &str) -> Vec<RecordedRequest> {
        self.creates()
            .into_iter()
            .filter(|r| {
                r.json
                    .as_ref()
                    .and_then(|j| j["agenda"].as_str())
                    .is_some_and(|a| a.lines().last() == Some(marker))
            })
            .collect()
    }

    /// `GET /api/v1/meetings` rows.
    pub async fn meetings(&self) -> Vec<Value> {
        self.api.get("/api/v1/meetings").await.expect("meetings")["meetings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// How many `meetings` rows are in `state`.
    pub async fn count_in_state(&self, state: &str) -> usize {
        self.meetings()
            .await
            .into_iter()
            .filter(|m| m["state"] == state)
            .count()
    }

    /// The rows of one schedule id (and occurrence).
    pub async fn meetings_of(&self, schedule_id: &str, occurrence: &str) -> Vec<Value> {
        self.meetings()
            .await
            .into_iter()
            .filter(|m| m["schedule_id"] == schedule_id && m["occurrence"] == occurrence)
            .collect()
    }

    /// Changes one entry in the J-MOTTO listings of `uids` for (from, to): `change` gets the
    /// entry's JSON; returning false removes it.
    pub fn edit_entry(
        &self,
        uids: &[&str],
        month: (&str, &str),
        id: &str,
        change: impl Fn(&mut Value) -> bool,
    ) {
        edit_replay_entry(&self.jmotto, uids, month, id, change);
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.worker_stop.send(());
        for task in self.tasks {
            task.await.expect("task joins").expect("stopped cleanly");
        }
        self.engine.store.close().await;
        self.jmotto.stop().await;
        self.zoom.stop().await;
    }
}

/// [`TestApp::edit_entry`] on any J-MOTTO replay (a test that runs the binaries has its own).
pub fn edit_replay_entry(
    jmotto: &ReplayServer,
    uids: &[&str],
    month: (&str, &str),
    id: &str,
    change: impl Fn(&mut Value) -> bool,
) {
    let next_page = |uid: &str, page: u32| {
        jmotto
            .events(uid, month.0, month.1, page + 1)
            .map(|_| page + 1)
    };
    for uid in uids {
        for page in 1..=2 {
            let Some(events) = jmotto.events(uid, month.0, month.1, page) else {
                continue;
            };
            let next = next_page(uid, page);
            let mut events = events.as_array().cloned().unwrap_or_default();
            events.retain_mut(|e| if e["id"] == id { change(e) } else { true });
            jmotto.set_events(uid, month.0, month.1, page, Value::Array(events), next);
        }
    }
}
