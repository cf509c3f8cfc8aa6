//! The worker: one apalis worker per queue in one `Monitor`, plus the periodic sync tick.
//! Every job runs with the engine of the settings in effect when it starts
//! ([`LiveEngine::current`]), so a change saved in the console applies at the next job
//! without a restart; the periodic sync reads its interval each round.
//!
//! DESIGN.md's measured pitfalls, handled here: each backend polls on an interval
//! ([`Ticker`]; a worker otherwise notices another process's jobs only on its 30 s
//! heartbeat); worker names are unique per process (re-registering a name within the
//! heartbeat fails silently); the heartbeat is short so a dead worker's jobs run again within
//! `2 × heartbeat_seconds`; a worker that stops on its own is an error, not a clean exit.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use apalis::prelude::{
    BoxDynError, Data, Monitor, PollSnapshot, PollStrategy, PollWith, WorkerBuilder,
    WorkerBuilderExt,
};
use apalis_sqlite::{Config, SqliteStorage};

use crate::store::db::Pool;
use tracing::Instrument;

use super::{
    CreateMeeting, DeleteMeeting, Engine, FetchSlice, Job, JobHandler, LiveEngine, PushOptions,
    SyncWindow, UpdateMeeting, liveness::Liveness, meetings, new_job_id, push, sync,
};
use crate::store::{queue, sync_state};

/// A built worker process (or the worker half of `run`).
pub struct Worker {
    /// Each job runs with the engine of the settings in effect when it starts.
    live: LiveEngine,
    /// For what only the file sets (`[worker]`, `[database]`), the store and the instance.
    engine: Arc<Engine>,
    name: String,
}

impl Worker {
    /// Prepares a worker around the process's live engine; nothing runs until
    /// [`Worker::run_until_stopped`].
    pub fn build(live: LiveEngine) -> Worker {
        let name = format!("jmz-{}-{}", std::process::id(), live.instance());
        Worker {
            engine: live.latest(),
            live,
            name,
        }
    }

    /// This process's unique worker name prefix.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs every queue's worker, the periodic sync and the retention of finished jobs
    /// until `shutdown` resolves. Then it takes no new job, lets running ones finish for up
    /// to `worker.shutdown_timeout_seconds`, and releases the rest (pending again, so the
    /// next start runs them at once instead of after the orphan timeout).
    ///
    /// A database that cannot be written (a full disk, a read-only file) stops the queue
    /// workers; the worker then says why at ERROR, waits until a write succeeds and starts
    /// them again under a new name (`<name>-r<n>`: apalis ignores a name registered again
    /// within its heartbeat), after putting back what the stopped ones held.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
        let mut name = self.name.clone();
        for restart in 1u32.. {
            // A worker that cannot write waits here (issue 13) instead of failing at its
            // first write and being restarted in a loop that hides why.
            if !wait_until_writable(&self.engine, shutdown.clone()).await {
                tracing::info!(worker = %name, "worker stopped while waiting for its database");
                return Ok(());
            }
            if restart > 1 {
                self.release(&name).await;
                name = format!("{}-r{restart}", self.name);
            }
            match self.run_once(&name, shutdown.clone()).await? {
                Ended::OnRequest => return Ok(()),
                Ended::DatabaseFault => continue,
            }
        }
        Ok(())
    }

    /// Puts back the jobs the workers named `name` still hold, saying so.
    async fn release(&self, name: &str) {
        match release_jobs(&self.engine, name).await {
            Ok(0) => {}
            Ok(released) => {
                tracing::warn!(worker = %name, jobs = released, "released jobs that did not finish in time")
            }
            Err(error) => {
                tracing::error!(worker = %name, error = %format!("{error:#}"), "could not release unfinished jobs")
            }
        }
    }

    /// One run of every queue's worker under `name`, until `shutdown` or until they stop
    /// on their own.
    async fn run_once(
        &self,
        name: &str,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Ended> {
        let engine = self.engine.clone();
        let liveness = match Liveness::register(&engine, name).await {
            Ok(liveness) => liveness.map(Arc::new),
            Err(error) => {
                // Without a lock file, dead workers are still found by apalis's heartbeat.
                tracing::warn!(error = %format!("{error:#}"), "no worker lock file; dead workers are rescued after the heartbeat timeout only");
                None
            }
        };
        if let Some(liveness) = &liveness {
            // A restarted worker first takes back what dead workers held: at once, not after
            // the heartbeat timeout.
            // Failing here, the rescuer below tries again every few seconds.
            if let Err(error) = liveness.rescue_dead(&engine).await {
                tracing::warn!(error = %format!("{error:#}"), "could not look for dead workers at start");
            }
        }
        let rescuer = liveness
            .clone()
            .map(|liveness| tokio::spawn(rescue_dead_workers(engine.clone(), liveness)));
        let ticker = tokio::spawn(periodic_sync(self.live.clone()));
        let housekeeping = tokio::spawn(super::housekeeping::run(self.live.clone()));
        let retention = tokio::spawn(super::retention::periodic_prune(engine.clone()));
        // A queue worker whose backend fails (PostgreSQL restarted or unreachable: its
        // fetch gives up) ends; apalis would leave the other queues running without it. So
        // the whole run stops, and `run_until_stopped` starts every queue again once the
        // database can be written.
        let (failed_tx, failed_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let any_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let failed_flag = any_failed.clone();
        let shutdown_timeout = Duration::from_secs(engine.settings.worker.shutdown_timeout_seconds);
        let drain = Arc::new(Drain::default());
        let mut queues = Queues {
            // The monitor's own timeout only covers what starts after the drain below (a
            // task apalis had fetched before it): the drain is where running jobs finish.
            monitor: Monitor::new()
                .shutdown_timeout(shutdown_timeout.min(AFTER_DRAIN))
                .should_restart(move |worker, error| {
                    if lost_its_database(error) {
                        failed_flag.store(true, std::sync::atomic::Ordering::SeqCst);
                        let _ = failed_tx.send(format!("{}: {error}", worker.name()));
                    }
                    false
                }),
            live: self.live.clone(),
            name: name.to_owned(),
            names: Vec::new(),
            drain: drain.clone(),
        };
        super::for_each_job_type(&mut queues);
        let monitor = queues.monitor;
        let listener = match engine.store.db() {
            Pool::Postgres(pool) => Some(tokio::spawn(wake_on_other_pushes(
                pool.clone(),
                queues.names,
            ))),
            Pool::Sqlite(_) => None,
        };
        tracing::info!(worker = %name, "worker started");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (stall_tx, stall_rx) = tokio::sync::oneshot::channel::<String>();
        let (gave_up_tx, gave_up_rx) = tokio::sync::oneshot::channel::<String>();
        let watched = (engine.clone(), name.to_owned());
        let mut failed_rx = failed_rx;
        let signal = async move {
            let mut shutdown = std::pin::pin!(shutdown);
            let mut stalled = std::pin::pin!(super::liveness::stalled_queue_workers(
                &watched.0, &watched.1
            ));
            tokio::select! {
                () = &mut shutdown => {
                    // Jobs running now finish while apalis's workers are still driven: a
                    // stopped worker's half-done acknowledgement (a transaction apalis-sqlite
                    // began and nobody polls any more) would hold SQLite's write lock until
                    // the monitor returned, so no running job could commit its result.
                    if !drain.until_idle(shutdown_timeout).await {
                        tracing::info!(worker = %watched.1, "jobs still running at the shutdown timeout are released");
                    }
                    let _ = stop_tx.send(());
                }
                stalled = &mut stalled => {
                    tracing::error!(workers = %stalled, "a queue worker stopped beating; the process stops so that it is restarted");
                    let _ = stall_tx.send(stalled);
                }
                Some(failed) = failed_rx.recv() => {
                    tracing::error!(worker = %failed, "a queue worker lost its database; every queue stops and starts again once the database answers");
                    let _ = gave_up_tx.send(failed);
                }
            }
            Ok(())
        };
        let result = monitor.run_with_signal(signal).await;
        ticker.abort();
        if let Some(listener) = listener {
            listener.abort();
        }
        retention.abort();
        housekeeping.abort();
        super::housekeeping::flush_metrics(&engine).await;
        if let Some(rescuer) = rescuer {
            rescuer.abort();
            let _ = rescuer.await;
        }
        self.release(name).await;
        if let Some(liveness) = liveness.and_then(|l| Arc::try_unwrap(l).ok()) {
            liveness.remove(&engine).await;
        }
        if let Ok(stalled) = stall_rx.await {
            anyhow::bail!(
                "queue worker {stalled} stopped beating (no heartbeat for {} heartbeats): this \
                 process stops so that its service manager restarts it; its jobs run again then",
                super::liveness::STALL_AFTER_HEARTBEATS
            );
        }
        let stopped_on_request = stop_rx.await.is_ok();
        // Every queue worker may have ended before the watch above decided (then the
        // monitor returned on its own): a worker whose backend failed means the database
        // went away, whether or not it answers again by now.
        let lost_database =
            !stopped_on_request && any_failed.load(std::sync::atomic::Ordering::SeqCst);
        if gave_up_rx.await.is_ok() || lost_database {
            return Ok(Ended::DatabaseFault);
        }
        if !stopped_on_request {
            // Say why, when the database is the cause (the log's last line otherwise hides it).
            if let Err(cause) = engine.store.probe_write().await {
                tracing::error!(worker = %name, error = %format!("{cause:#}"), "the workers stopped: the database cannot be written; waiting until it can");
                return Ok(Ended::DatabaseFault);
            }
        }
        result.context("a worker failed")?;
        anyhow::ensure!(stopped_on_request, "the workers stopped on their own");
        tracing::info!(worker = %name, "worker stopped");
        Ok(Ended::OnRequest)
    }
}

/// True when a queue worker ended because its database connection failed (PostgreSQL
/// restarted or unreachable, the pool gave up): then every queue starts again once the
/// database answers. Any other end (a heartbeat that did not take, issue 5's stall) is left
/// to the stall watch, which stops the process.
///
/// Read from the error's `Debug` text: apalis-core wraps the backend's error in its
/// `DurableError` without a `source()` chain, so the `sqlx::Error` inside cannot be
/// downcast to.
fn lost_its_database(error: &apalis::prelude::WorkerError) -> bool {
    const MARKS: [&str; 8] = [
        "PoolTimedOut",
        "PoolClosed",
        "WorkerCrashed",
        "Io(",
        "\"57P01\"",
        "\"57P02\"",
        "\"57P03\"",
        "code: \"08",
    ];
    let text = format!("{error:?}");
    // apalis's own "this worker is not registered" (its heartbeat did not take) comes
    // dressed as an I/O error: that is a stall, not a lost database.
    MARKS.iter().any(|mark| text.contains(mark)) && !text.contains("WORKER_DOES_NOT_EXIST")
}

/// How one run of the queue workers ended.
enum Ended {
    /// `shutdown` resolved.
    OnRequest,
    /// They stopped on their own and the database cannot be written, or a queue worker
    /// lost its database (its backend failed).
    DatabaseFault,
}

/// The first and the longest wait between two write probes of a worker waiting for its
/// database.
const WRITABLE_RETRY_FIRST: Duration = Duration::from_millis(250);
const WRITABLE_RETRY_MOST: Duration = Duration::from_secs(8);

/// Probes a write ([`crate::store::Store::probe_write`]) until one commits, waiting longer
/// each time (up to [`WRITABLE_RETRY_MOST`]) and saying why at ERROR; `true` when the
/// database is writable, `false` when `shutdown` came first.
async fn wait_until_writable(engine: &Engine, shutdown: impl Future<Output = ()>) -> bool {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut wait = WRITABLE_RETRY_FIRST;
    let mut failed = false;
    loop {
        match engine.store.probe_write().await {
            Ok(()) => {
                if failed {
                    tracing::info!("the database can be written again; the worker goes on");
                }
                return true;
            }
            Err(error) => {
                failed = true;
                tracing::error!(
                    error = %format!("{error:#}"),
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "the worker cannot write to the database; it waits and tries again"
                );
            }
        }
        tokio::select! {
            () = &mut shutdown => return false,
            () = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(WRITABLE_RETRY_MOST);
    }
}

/// Puts the jobs this process's workers still hold back in the queue, ready to run now:
/// those cut off, those fetched but not started, and those whose handler finished but whose
/// ack apalis had not written yet (every job is idempotent, so running it again is safe). A
/// create cut off mid-call keeps its row's claim for a short grace (Zoom may still finish a
/// request it received); its next run then looks for the meeting before creating one.
async fn release_jobs(engine: &Engine, name: &str) -> anyhow::Result<u64> {
    super::liveness::requeue_jobs_of(
        engine,
        name,
        &engine.instance,
        "Released at worker shutdown",
    )
    .await
}

/// How often a worker looks for dead worker processes (lock files it can take).
const RESCUE_EVERY: Duration = Duration::from_secs(2);

async fn rescue_dead_workers(engine: Arc<Engine>, liveness: Arc<Liveness>) {
    let mut interval = tokio::time::interval(RESCUE_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(error) = liveness.rescue_dead(&engine).await {
            tracing::warn!(error = %format!("{error:#}"), locks = %liveness.place(), "could not look for dead workers");
        }
    }
}

fn sqlite_backend<J: Job>(
    engine: &Engine,
    pool: &sqlx::SqlitePool,
    drain: Arc<Drain>,
) -> PollWith<SqliteStorage<J>, Ticker> {
    let worker = &engine.settings.worker;
    let config = Config::default()
        .queue(J::QUEUE)
        .heartbeat_interval(Duration::from_secs(worker.heartbeat_seconds.max(1)))
        .missed_heartbeats(2)
        .batch_size(worker.concurrency.max(1));
    PollWith::new(
        SqliteStorage::<J>::new(pool).with_config(config),
        ticker::<J>(engine, drain),
    )
}

/// The PostgreSQL queue: apalis-postgres's storage, polled by the same [`Ticker`] (this
/// process's pushes wake it at once; other processes' pushes wake it through
/// [`wake_on_other_pushes`]'s LISTEN, or at its next tick). Not apalis-postgres's own
/// `PostgresStorageFactory` or `with_pubsub`: the factory `unwrap`s its LISTEN connection
/// (a PostgreSQL restart would take the process down), and pubsub ends its stream for good
/// when that connection drops.
fn postgres_backend<J: Job>(
    engine: &Engine,
    pool: &sqlx::PgPool,
    drain: Arc<Drain>,
) -> PollWith<apalis_postgres::PostgresStorage<J>, Ticker> {
    let worker = &engine.settings.worker;
    let config = apalis_postgres::Config::default()
        .queue(J::QUEUE)
        .heartbeat_interval(Duration::from_secs(worker.heartbeat_seconds.max(1)))
        .missed_heartbeats(2)
        .batch_size(worker.concurrency.max(1));
    PollWith::new(
        apalis_postgres::PostgresStorage::<J>::new(pool).with_config(config),
        ticker::<J>(engine, drain),
    )
}

/// On PostgreSQL: wakes this process's workers of a queue the moment another process
/// commits a job due now to it. apalis-postgres's insert trigger sends
/// `NOTIFY "apalis::job::insert"` with the job's queue; a lost connection (PostgreSQL
/// restarted) is opened again after a pause, and meanwhile the queues' ticks find the jobs.
async fn wake_on_other_pushes(pool: sqlx::PgPool, queues: Vec<&'static str>) {
    #[derive(serde::Deserialize)]
    struct Inserted {
        job_type: String,
    }
    let mut pause = Duration::from_millis(250);
    loop {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen("apalis::job::insert").await?;
            loop {
                let notification = listener.recv().await?;
                let Ok(inserted) = serde_json::from_str::<Inserted>(notification.payload()) else {
                    continue;
                };
                if let Some(queue) = queues.iter().find(|q| **q == inserted.job_type) {
                    crate::store::wake::signal(queue).notify_waiters();
                }
            }
        };
        let ended: Result<(), sqlx::Error> = listening.await;
        if let Err(error) = ended {
            tracing::warn!(error = %error, retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX), "lost the PostgreSQL notifications of new jobs; the queues poll meanwhile");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(8));
    }
}

/// A queue's poll strategy: every `worker.queue_poll_interval_ms`, and at once when a job
/// is pushed to the queue.
fn ticker<J: Job>(engine: &Engine, drain: Arc<Drain>) -> Ticker {
    let every = Duration::from_millis(engine.settings.worker.queue_poll_interval_ms.max(10));
    Ticker::new(every)
        .woken_by(crate::store::wake::signal(J::QUEUE))
        .until_draining(drain)
}

/// Wakes a queue's worker every `queue_poll_interval_ms` to look for jobs — what apalis's
/// `IntervalStrategy` is for, except that it re-arms its timer without polling it, so after
/// a tick nothing may be set to wake the worker until its next heartbeat: an idle queue
/// (`jmz.sync_window` between syncs) was seen to take a triggered sync seconds late under
/// load. This one polls its timer until it is pending, so a wake-up is always armed
/// (`PollStrategy`'s contract).
///
/// It also wakes the worker the moment a job pushed to its queue by this process has
/// committed (`store::wake`), so a sync's hops do not each wait for a tick (issue 11:
/// trigger → meeting took about one second); the interval remains for other processes' jobs.
struct Ticker {
    interval: tokio::time::Interval,
    /// This process's pushes to the queue, and the wait for the next one.
    pushes: Option<(Arc<tokio::sync::Notify>, Notification)>,
    /// Once it drains (shutdown), the queue fetches nothing more.
    drain: Option<Arc<Drain>>,
}

/// A wait for the next notification of a queue's signal.
type Notification = std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

impl Ticker {
    fn new(every: Duration) -> Ticker {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticker {
            interval,
            pushes: None,
            drain: None,
        }
    }

    /// Fetches nothing once `drain` drains.
    fn until_draining(mut self, drain: Arc<Drain>) -> Ticker {
        self.drain = Some(drain);
        self
    }

    /// Also wakes when `signal` is notified.
    fn woken_by(mut self, signal: Arc<tokio::sync::Notify>) -> Ticker {
        let next = next_notification(&signal);
        self.pushes = Some((signal, next));
        self
    }
}

/// The next notification of `signal` (registered when first polled).
fn next_notification(signal: &Arc<tokio::sync::Notify>) -> Notification {
    let signal = signal.clone();
    Box::pin(async move { signal.notified().await })
}

impl PollStrategy for Ticker {
    fn poll_drive(
        &mut self,
        cx: &mut std::task::Context<'_>,
        _snapshot: &PollSnapshot,
    ) -> std::task::Poll<Option<()>> {
        let mut ticked = false;
        while self.interval.poll_tick(cx).is_ready() {
            ticked = true;
        }
        if let Some((signal, next)) = &mut self.pushes {
            // Polled until pending, so the next notification is always waited for.
            while next.as_mut().poll(cx).is_ready() {
                *next = next_notification(signal);
                ticked = true;
            }
        }
        let draining = self.drain.as_ref().is_some_and(|d| d.is_draining());
        if ticked && !draining {
            std::task::Poll::Ready(Some(()))
        } else {
            std::task::Poll::Pending
        }
    }
}

/// How often the periodic sync reads `sync.poll_interval_seconds` again while it waits (a
/// saved change applies within this, or at the next round if that comes first).
const POLL_SETTINGS_EVERY: Duration = Duration::from_secs(30);

/// Enqueues a `SyncWindow` at start-up and every `sync.poll_interval_seconds` (0 = never),
/// reading the interval from the live settings each round. Each tick's idempotency key is
/// the tick's time slot, so several worker processes still make one sync per tick.
async fn periodic_sync(live: LiveEngine) {
    let mut last_sync: Option<tokio::time::Instant> = None;
    loop {
        let seconds = match live.current().await {
            Ok(engine) => engine.settings.sync.poll_interval_seconds,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "cannot read the settings");
                live.latest().settings.sync.poll_interval_seconds
            }
        };
        let now = tokio::time::Instant::now();
        let due = match (seconds, last_sync) {
            (0, _) => None,
            (_, None) => Some(now),
            (_, Some(last)) => Some(last + Duration::from_secs(seconds)),
        };
        match due {
            Some(due) if due <= now => {
                last_sync = Some(now);
                let slot =
                    chrono::Utc::now().timestamp() / i64::try_from(seconds).unwrap_or(i64::MAX);
                let key = Some(format!("poll:{slot}"));
                if let Err(error) = enqueue_sync(&live.latest(), "poll", None, None, key).await {
                    tracing::warn!(error = %format!("{error:#}"), "periodic sync could not be enqueued");
                }
            }
            Some(due) => tokio::time::sleep_until(due.min(now + POLL_SETTINGS_EVERY)).await,
            None => tokio::time::sleep(POLL_SETTINGS_EVERY).await,
        }
    }
}

/// Records a sync run and pushes its `SyncWindow` in one transaction; returns the job id.
pub async fn enqueue_sync(
    engine: &Engine,
    trigger: &str,
    users: Option<Vec<String>>,
    request_id: Option<String>,
    idempotency_key: Option<String>,
) -> anyhow::Result<String> {
    let mut tx = engine.store.begin_write().await?;
    let id = enqueue_sync_in(&mut tx, trigger, users, request_id, idempotency_key).await?;
    tx.commit().await.context("cannot commit the sync job")?;
    Ok(id)
}

/// [`enqueue_sync`] inside the caller's write transaction (the webhook handler records its
/// delivery in the same one); the caller commits.
pub async fn enqueue_sync_in(
    tx: &mut crate::store::WriteTx,
    trigger: &str,
    users: Option<Vec<String>>,
    request_id: Option<String>,
    idempotency_key: Option<String>,
) -> anyhow::Result<String> {
    if trigger == "manual" && users.is_none() {
        // SPEC §5: a full resync still queued is returned instead of queued again; looked up
        // inside this write transaction so two triggers at once cannot both queue one.
        let queued = queue::waiting_full_sync(tx, SyncWindow::QUEUE).await?;
        if let Some(queued) = queued {
            return Ok(queued);
        }
    }
    let id = new_job_id();
    let job = SyncWindow {
        sync_id: id.clone(),
        users: users.clone(),
        request_id: request_id.clone(),
    };
    let pushed = push(
        tx,
        &job,
        PushOptions {
            id: Some(id.clone()),
            idempotency_key,
            ..PushOptions::default()
        },
    )
    .await?;
    if pushed == id {
        sync_state::insert_sync_run(tx, &id, trigger, users.as_deref(), request_id.as_deref())
            .await?;
    }
    Ok(pushed)
}

/// Registers one apalis worker per job type in a `Monitor`: `<process>-<queue>` (the
/// queue name without `jmz.`, `_` as `-`: `jmz-1-…-sync-window`), polled by [`Ticker`].
struct Queues {
    monitor: Monitor,
    live: LiveEngine,
    name: String,
    /// The queues registered.
    names: Vec<&'static str>,
    /// The run's jobs in progress, counted by [`handle`]; stops every [`Ticker`] at shutdown.
    drain: Arc<Drain>,
}

/// How long the monitor waits, after [`Drain::until_idle`], for a task apalis had already
/// fetched and started meanwhile; then it is cut off and released.
const AFTER_DRAIN: Duration = Duration::from_secs(2);

/// A run's jobs in progress, and its shutdown: once [`Drain::until_idle`] is called the
/// queues fetch nothing more, and it returns when no job is running (or at its limit).
#[derive(Default)]
struct Drain {
    draining: std::sync::atomic::AtomicBool,
    running: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Drain {
    /// Counts a job as running until the guard is dropped.
    fn enter(self: &Arc<Self>) -> RunningJob {
        self.running
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        RunningJob(self.clone())
    }

    fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops fetching and waits until no job runs; `false` when `limit` came first.
    async fn until_idle(&self, limit: Duration) -> bool {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let idle = async {
            loop {
                let mut woken = std::pin::pin!(self.idle.notified());
                woken.as_mut().enable();
                if self.running.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    return;
                }
                woken.await;
            }
        };
        tokio::time::timeout(limit, idle).await.is_ok()
    }
}

/// One running job of a [`Drain`].
struct RunningJob(Arc<Drain>);

impl Drop for RunningJob {
    fn drop(&mut self) {
        if self
            .0
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            self.0.idle.notify_waiters();
        }
    }
}

impl super::JobTypeVisitor for Queues {
    fn visit<J: JobHandler>(&mut self) {
        self.names.push(J::QUEUE);
        let (live, name, drain) = (self.live.clone(), self.name.clone(), self.drain.clone());
        let concurrency = if J::ONE_AT_A_TIME {
            1
        } else {
            live.file().worker.concurrency
        };
        // `Monitor::register` takes the monitor and gives it back. The backend is chosen by
        // the database the process opened (`database.url`).
        let monitor = std::mem::take(&mut self.monitor);
        self.monitor = match live.latest().store.db() {
            Pool::Sqlite(pool) => {
                let pool = pool.clone();
                monitor.register(move |_| {
                    WorkerBuilder::new(worker_name::<J>(&name))
                        .backend(sqlite_backend::<J>(&live.latest(), &pool, drain.clone()))
                        .data(live.clone())
                        .data(drain.clone())
                        .concurrency(concurrency)
                        .build(handle::<J>)
                })
            }
            Pool::Postgres(pool) => {
                let pool = pool.clone();
                monitor.register(move |_| {
                    WorkerBuilder::new(worker_name::<J>(&name))
                        .backend(postgres_backend::<J>(&live.latest(), &pool, drain.clone()))
                        .data(live.clone())
                        .data(drain.clone())
                        .concurrency(concurrency)
                        .build(handle::<J>)
                })
            }
        };
    }
}

impl JobHandler for SyncWindow {
    /// A window only fans out its slices: one at a time per process.
    const ONE_AT_A_TIME: bool = true;

    fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    fn run(&self, engine: &Engine) -> impl Future<Output = anyhow::Result<()>> + Send {
        sync::run_sync_window(engine, self)
    }
}

impl JobHandler for FetchSlice {
    fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    fn run(&self, engine: &Engine) -> impl Future<Output = anyhow::Result<()>> + Send {
        sync::run_fetch_slice(engine, self)
    }
}

impl JobHandler for CreateMeeting {
    fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    fn run(&self, engine: &Engine) -> impl Future<Output = anyhow::Result<()>> + Send {
        meetings::run_create(engine, self)
    }
}

impl JobHandler for UpdateMeeting {
    fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    fn run(&self, engine: &Engine) -> impl Future<Output = anyhow::Result<()>> + Send {
        meetings::run_update(engine, self)
    }
}

impl JobHandler for DeleteMeeting {
    fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    fn run(&self, engine: &Engine) -> impl Future<Output = anyhow::Result<()>> + Send {
        meetings::run_delete(engine, self)
    }
}

/// `<process>-<queue>`: the queue name without its namespace, `_` as `-`.
fn worker_name<J: Job>(process: &str) -> String {
    let queue = J::QUEUE
        .strip_prefix(crate::store::queue::QUEUE_NAMESPACE)
        .unwrap_or(J::QUEUE);
    format!("{process}-{}", queue.replace('_', "-"))
}

/// Runs one job of any type in its span, with the engine of the settings in effect now (a
/// change saved since the last job rebuilt it); an error is logged once, here, and handed
/// to apalis (which counts the attempt).
async fn handle<J: JobHandler>(
    job: J,
    live: Data<LiveEngine>,
    drain: Data<Arc<Drain>>,
) -> Result<(), BoxDynError> {
    let _running = drain.enter();
    let span = tracing::info_span!(
        "job",
        queue = J::QUEUE,
        request.id = job.request_id().unwrap_or("")
    );
    let run = async {
        let engine = live.current().await.context("cannot read the settings")?;
        job.run(&engine).await
    };
    run.instrument(span).await.map_err(|error| {
        tracing::error!(queue = J::QUEUE, error = %format!("{error:#}"), "job failed");
        BoxDynError::from(format!("{error:#}"))
    })
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        task::{Context, Wake, Waker},
        time::Duration,
    };

    use apalis::prelude::{IntervalStrategy, PollSnapshot, PollStrategy};

    use super::{Drain, Ticker, worker_name};
    use crate::jobs::{CreateMeeting, SyncWindow};

    /// The watchdog and the operator know a queue's worker by this name.
    #[test]
    fn worker_names_end_with_their_queue() {
        assert_eq!(worker_name::<SyncWindow>("jmz-1-a"), "jmz-1-a-sync-window");
        assert_eq!(
            worker_name::<CreateMeeting>("jmz-1-a"),
            "jmz-1-a-create-meeting"
        );
    }

    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Polls `strategy` once, as apalis does when it looks for jobs, then lets time pass
    /// without polling it again: how many times was the worker woken?
    async fn wakes_after_one_tick(strategy: &mut impl PollStrategy) -> usize {
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let snapshot = PollSnapshot::default();
        // Poll until a tick is taken: the strategy says "look for jobs now".
        let mut polls = 0;
        while strategy.poll_drive(&mut cx, &snapshot).is_pending() {
            polls += 1;
            assert!(polls < 10, "the strategy never ticked");
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        let before = wakes.0.load(Ordering::SeqCst);
        // A queue found empty parks the worker: only the strategy can wake it now.
        tokio::time::sleep(Duration::from_millis(500)).await;
        wakes.0.load(Ordering::SeqCst) - before
    }

    /// SPEC §6: a triggered sync is picked up within the poll interval, also by a queue that
    /// was idle — the next tick is always armed after one was taken.
    #[tokio::test]
    async fn ticker_arms_its_next_tick_when_it_ticks() {
        let every = Duration::from_millis(50);
        assert!(wakes_after_one_tick(&mut Ticker::new(every)).await >= 1);
        // apalis's own strategy does not: the reason `Ticker` exists.
        assert_eq!(
            wakes_after_one_tick(&mut IntervalStrategy::new(every)).await,
            0
        );
    }

    /// SPEC §8 graceful shutdown: the drain waits for the jobs running, then returns at
    /// once; it gives up at its limit while one still runs; and a draining queue's ticker
    /// fetches nothing more.
    #[tokio::test]
    async fn a_drain_waits_for_running_jobs_and_stops_the_fetching() {
        let drain = Arc::new(Drain::default());
        let running = drain.enter();
        let finishes = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(running);
        });
        let started = std::time::Instant::now();
        assert!(drain.until_idle(Duration::from_secs(5)).await);
        assert!(started.elapsed() >= Duration::from_millis(90));
        finishes.await.expect("joined");

        let stuck = drain.enter();
        assert!(!drain.until_idle(Duration::from_millis(50)).await);
        drop(stuck);

        let mut ticker = Ticker::new(Duration::from_millis(1)).until_draining(drain.clone());
        let waker = Waker::from(Arc::new(Wakes(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(
                ticker
                    .poll_drive(&mut cx, &PollSnapshot::default())
                    .is_pending(),
                "no fetch while draining"
            );
        }
    }

    /// Issue 11 item 8: a worker parked between ticks is woken at once by its queue's
    /// signal (a push of this process committed), every time, long before its next tick.
    #[tokio::test]
    async fn ticker_wakes_at_once_on_its_queue_signal() {
        let signal = Arc::new(tokio::sync::Notify::new());
        let mut ticker = Ticker::new(Duration::from_secs(3600)).woken_by(signal.clone());
        let snapshot = PollSnapshot::default();
        // The interval's first tick comes at once; then the worker parks.
        std::future::poll_fn(|cx| ticker.poll_drive(cx, &snapshot)).await;
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(ticker.poll_drive(&mut cx, &snapshot).is_pending());
        for round in 1..=3 {
            signal.notify_waiters();
            assert_eq!(wakes.0.load(Ordering::SeqCst), round, "round {round}");
            assert!(ticker.poll_drive(&mut cx, &snapshot).is_ready());
            assert!(ticker.poll_drive(&mut cx, &snapshot).is_pending());
        }
    }
}
