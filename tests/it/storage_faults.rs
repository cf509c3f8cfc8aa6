//! Issue 13: when the machine under the service fails. The database lives on a small tmpfs
//! the test fills up (freed, and unmounted, by a guard even when a test fails), or its files
//! are removed; every test ends with the service recovered by itself (or, for a removed
//! file, refusing) and nothing lost or duplicated. A full disk fails every write at its
//! `COMMIT`, on every connection (`chattr +i` fails only connections opened after it: the
//! open ones go on writing, and making `-shm` immutable kills the process with SIGBUS).
//! Without root (no mount), a test says so in one line on stderr and holds SQLite's write
//! lock from another connection instead (a locked database is a fault too).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use jmotto_zoom::{
    cli::demo::{DEMO_ADMIN_TOKEN, DEMO_WEBHOOK_SECRET},
    signature::SigningKey,
    store::Store,
};

/// The database file of `app`, its `-wal` and its `-shm`.
fn database_files(app: &TestApp) -> Vec<PathBuf> {
    let url = &app.engine.settings.database.url;
    let path = PathBuf::from(url.strip_prefix("sqlite://").expect("a sqlite:// URL"));
    let with = |suffix: &str| PathBuf::from(format!("{}{suffix}", path.display()));
    vec![path.clone(), with("-wal"), with("-shm")]
}

/// A small tmpfs the test's database lives on, filled up on demand; unmounted when dropped
/// (lazily, so even a failed test with files still open leaves no mount behind).
struct SmallDisk {
    mount: tempfile::TempDir,
}

fn run(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl SmallDisk {
    /// `None` when mounting is refused (not root).
    fn mount() -> Option<SmallDisk> {
        let mount = tempfile::tempdir().expect("temp dir");
        let path = mount.path().to_str().expect("UTF-8 path").to_owned();
        run("mount", &["-t", "tmpfs", "-o", "size=8m", "tmpfs", &path])
            .then_some(SmallDisk { mount })
    }

    fn database_url(&self) -> String {
        format!("sqlite://{}", self.mount.path().join("full.db").display())
    }

    fn filler(&self) -> PathBuf {
        self.mount.path().join("filler")
    }

    /// Writes a file until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.filler()).expect("filler");
        let chunk = vec![0_u8; 16 * 1024];
        while filler.write_all(&chunk).is_ok() {}
        let _ = filler.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.filler()).expect("filler removed");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let path = self.mount.path().to_str().unwrap_or_default().to_owned();
        run("umount", &["-l", &path]);
    }
}

/// The fault a test injects: a full disk where root may mount a tmpfs, else SQLite's write
/// lock held by another connection (said in one line on stderr).
enum Fault {
    DiskFull,
    Locked(sqlx::SqliteConnection),
}

/// The app on a small disk when one can be mounted.
async fn spawn_app_on_small_disk() -> (TestApp, Option<SmallDisk>) {
    let disk = SmallDisk::mount();
    if disk.is_none() {
        eprintln!(
            "mount -t tmpfs is refused here (not root?): a held write lock is the fault instead"
        );
    }
    let url = disk.as_ref().map(SmallDisk::database_url);
    let app = spawn_app_with(|settings| {
        if let Some(url) = url {
            settings.database.url = url;
        }
    })
    .await;
    (app, disk)
}

async fn inject_fault(app: &TestApp, disk: Option<&SmallDisk>) -> Fault {
    if let Some(disk) = disk {
        // An emptied WAL: every write then needs new blocks (SQLite reuses a WAL's space).
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(app.engine.store.db().as_sqlite().expect("the SQLite suite"))
            .await
            .expect("checkpoint");
        disk.fill();
        return Fault::DiskFull;
    }
    Fault::Locked(hold_write_lock(app).await)
}

/// Another connection holding SQLite's write lock (as another process would).
async fn hold_write_lock(app: &TestApp) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    let options = jmotto_zoom::store::connect_options(&app.engine.settings.database.url)
        .expect("options")
        .busy_timeout(Duration::from_secs(1));
    let mut holder = options.connect().await.expect("a second connection");
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .expect("the write lock");
    holder
}

async fn end_fault(fault: Fault, disk: Option<&SmallDisk>) {
    match fault {
        Fault::DiskFull => {
            if let Some(disk) = disk {
                disk.free();
            }
        }
        Fault::Locked(mut holder) => {
            sqlx::raw_sql("ROLLBACK")
                .execute(&mut holder)
                .await
                .expect("lock released");
        }
    }
}

/// A signed `POST /webhooks/groupware` of delivery `id`: the status and the body.
async fn deliver(app: &TestApp, id: &str) -> (u16, Value) {
    let body = json!({
        "type": "schedule.updated",
        "data": {"schedule_id": "8801", "user_ids": ["10002"]}
    })
    .to_string();
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature = SigningKey::parse(DEMO_WEBHOOK_SECRET)
        .expect("demo secret")
        .sign(id, &timestamp, body.as_bytes())
        .expect("signature");
    let response = app
        .http
        .post(format!("{}/webhooks/groupware", app.address))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp)
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /api/v1/sync` of one user (always a new job): the status.
async fn trigger_sync(app: &TestApp) -> u16 {
    app.http
        .post(format!("{}/api/v1/sync", app.address))
        .bearer_auth(DEMO_ADMIN_TOKEN)
        .json(&json!({"users": ["10002"]}))
        .send()
        .await
        .expect("an answer")
        .status()
        .as_u16()
}

async fn readyz(app: &TestApp) -> u16 {
    app.http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .expect("an answer")
        .status()
        .as_u16()
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.engine.store.db().as_sqlite().expect("the SQLite suite"))
        .await
        .expect("count")
}

/// Issue 13 item 1 (SPEC §5: 503 is retryable, a 202 only after commit): a webhook and a
/// sync whose commit fails get 503, `/readyz` says 503 meanwhile, and the moment the files
/// are writable again every write works (no pooled connection was left inside the failed
/// transaction); the refused delivery, sent again, is recorded once, and the accepted ones
/// stay as they were.
#[tokio::test]
async fn a_failed_commit_is_a_503_and_the_next_writes_work() {
    let (mut app, disk) = spawn_app_on_small_disk().await;
    app.stop_worker().await;
    for id in ["before-1", "before-2"] {
        assert_eq!(deliver(&app, id).await.0, 202, "{id}");
    }
    let fault = inject_fault(&app, disk.as_ref()).await;
    let (status, body) = deliver(&app, "during").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert_eq!(trigger_sync(&app).await, 503);
    assert_eq!(readyz(&app).await, 503);
    end_fault(fault, disk.as_ref()).await;

    assert_eq!(readyz(&app).await, 200);
    // More writes than pooled connections: none of them may meet a poisoned one.
    for round in 0..12 {
        let (status, body) = deliver(&app, &format!("after-{round}")).await;
        assert_eq!(status, 202, "round {round}: {body}");
    }
    assert_eq!(
        deliver(&app, "during").await.0,
        202,
        "the refused one, again"
    );
    assert_eq!(deliver(&app, "before-1").await.0, 200, "a redelivery");
    assert_eq!(trigger_sync(&app).await, 202);
    assert_eq!(
        count(&app, "SELECT count(*) FROM webhook_deliveries").await,
        15
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM Jobs WHERE job_type = 'jmz.sync_window'"
        )
        .await,
        16,
        "one job per delivery accepted, and the sync"
    );
    app.start_worker().await;
    app.stop().await;
}

/// Issue 13 item 2: a database removed under the running server is not ready (503), and the
/// server refuses webhooks and syncs (503) rather than accept them into an unlinked file.
#[tokio::test]
async fn a_removed_database_is_refused_not_written() {
    let mut app = spawn_app().await;
    app.stop_worker().await;
    assert_eq!(deliver(&app, "kept").await.0, 202);
    assert_eq!(readyz(&app).await, 200);
    for file in database_files(&app) {
        let _ = std::fs::remove_file(file);
    }
    assert_eq!(readyz(&app).await, 503);
    let (status, body) = deliver(&app, "into-nowhere").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(trigger_sync(&app).await, 503);
    app.start_worker().await;
    app.stop().await;
}

/// Issue 13 item 2 (SPEC §5, 503 is retryable): a database another process keeps locked
/// past the busy timeout refuses a webhook with 503, not 500; the delivery sent again once
/// the lock is gone is recorded once.
#[tokio::test]
async fn a_locked_database_is_a_503() {
    let mut app = spawn_app().await;
    app.stop_worker().await;
    let mut holder = hold_write_lock(&app).await;
    let (status, body) = deliver(&app, "while-locked").await;
    assert_eq!(status, 503, "{body}");
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("lock released");
    assert_eq!(deliver(&app, "while-locked").await.0, 202);
    assert_eq!(deliver(&app, "while-locked").await.0, 200);
    app.start_worker().await;
    app.stop().await;
}

/// Issue 13 item 4: a worker that starts on a database it cannot write does not end (no
/// crash loop): it waits, and once the files are writable it goes on and runs the jobs.
#[tokio::test]
async fn a_worker_waits_for_a_writable_database_and_goes_on() {
    let (mut app, disk) = spawn_app_on_small_disk().await;
    app.stop_worker().await;
    let fault = inject_fault(&app, disk.as_ref()).await;
    app.start_worker().await;
    if let Some(ended) = app.worker_ended_within(Duration::from_millis(1500)).await {
        panic!("the worker ended instead of waiting for its database: {ended:?}");
    }
    goes_on_after(app, fault, disk).await;
}

/// Issue 13 item 7: a new database's folder is 0700, and its file, `-wal`, `-shm` and lock
/// file are 0600 (they hold e-mail addresses, topics and join URLs).
#[tokio::test]
async fn a_new_database_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let folder = tempfile::tempdir().expect("temp dir");
    let database = folder.path().join("state").join("service.db");
    let store = Store::connect(&format!("sqlite://{}", database.display()))
        .await
        .expect("database opens");
    store.probe_write().await.expect("a write");
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(database.parent().expect("folder")), 0o700);
    for suffix in ["", "-wal", "-shm", ".open.lock"] {
        let file = PathBuf::from(format!("{}{suffix}", database.display()));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    store.close().await;
}

/// Issue 13 item 4, while running: a worker whose database stops taking writes under it
/// (the disk fills while it works) does not end; it waits, and once the disk has room again
/// it goes on and runs the jobs that arrive.
#[tokio::test]
async fn a_running_worker_waits_through_a_database_fault() {
    let (mut app, disk) = spawn_app_on_small_disk().await;
    app.sync().await;
    let fault = inject_fault(&app, disk.as_ref()).await;
    if let Some(ended) = app.worker_ended_within(Duration::from_secs(20)).await {
        panic!("the worker ended instead of waiting for its database: {ended:?}");
    }
    goes_on_after(app, fault, disk).await;
}

/// Ends `fault`; then a webhook is accepted and every sync, before and after, runs.
async fn goes_on_after(app: TestApp, fault: Fault, disk: Option<SmallDisk>) {
    end_fault(fault, disk.as_ref()).await;
    assert_eq!(deliver(&app, "after-the-fault").await.0, 202);
    app.drain().await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM Jobs WHERE job_type = 'jmz.sync_window' AND status = 'Done'"
        )
        .await,
        count(
            &app,
            "SELECT count(*) FROM Jobs WHERE job_type = 'jmz.sync_window'"
        )
        .await,
        "every sync ran"
    );
    app.stop().await;
}
