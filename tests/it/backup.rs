//! Issue 10 item 8: `jmotto-zoom backup --to FILE` copies the live database under load
//! (webhooks arriving) into a file that opens, passes `PRAGMA integrity_check` and holds
//! every job that had answered 202 before the copy began; it never overwrites a file.

use std::{
    os::unix::fs::PermissionsExt,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    helpers::spawn_app,
    webhooks::{deliver_signed, event},
};
use jmotto_zoom::cli::{
    backup::{NOT_SQLITE, backup},
    demo::DEMO_WEBHOOK_SECRET,
};
use sqlx::sqlite::SqliteConnectOptions;

/// Deliveries answered 202: when the answer arrived, and the job it names.
type Answered = Mutex<Vec<(Instant, String)>>;

/// Issue 10 item 8: an online, consistent copy while webhooks keep arriving.
#[tokio::test]
async fn backup_copies_the_live_database_with_every_job_answered_before_it() {
    let mut app = spawn_app().await;
    app.stop_worker().await;
    let url = app.engine.settings.database.url.clone();
    let folder = tempfile::tempdir().expect("temp dir");
    let target = folder.path().join("copy.db");

    let stop = AtomicBool::new(false);
    let answered: Answered = Mutex::default();
    let sender = |lane: usize| {
        let (stop, answered, app) = (&stop, &answered, &app);
        async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("msg_backup_{lane}_{n}");
                n += 1;
                let (status, answer) =
                    deliver_signed(app, DEMO_WEBHOOK_SECRET, &id, event(&["10002"])).await;
                assert_eq!(status, 202, "{id}: {answer}");
                let job = answer["job_id"].as_str().expect("job id").to_owned();
                answered
                    .lock()
                    .expect("answers")
                    .push((Instant::now(), job));
            }
        }
    };
    let copy = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let began = Instant::now();
        let copied = backup(&url, &target).await;
        // Deliveries go on a little after the copy, as they would in service.
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
        (began, copied)
    };
    let (_, (began, copied)) = tokio::join!(futures::future::join_all((0..4).map(sender)), copy);
    copied.expect("the backup succeeds");

    let before: Vec<String> = answered
        .lock()
        .expect("answers")
        .iter()
        .filter(|(at, _)| *at < began)
        .map(|(_, job)| job.clone())
        .collect();
    assert!(before.len() >= 4, "deliveries arrived before the copy");

    let mode = std::fs::metadata(&target)
        .expect("copy")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the copy is owner-only");
    let copy = sqlx::SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(&target)
            .read_only(true),
    )
    .await
    .expect("the copy opens");
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&copy)
        .await
        .expect("integrity check");
    assert_eq!(integrity, "ok");
    let jobs: std::collections::BTreeSet<String> = sqlx::query_scalar("SELECT id FROM Jobs")
        .fetch_all(&copy)
        .await
        .expect("jobs")
        .into_iter()
        .collect();
    let missing: Vec<&String> = before.iter().filter(|j| !jobs.contains(*j)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} jobs answered 202 before the copy are missing: {missing:?}",
        missing.len(),
        before.len()
    );
    copy.close().await;

    // A second backup to the same file is refused, and leaves the copy as it was.
    let length = std::fs::metadata(&target).expect("copy").len();
    let again = backup(&url, &target)
        .await
        .expect_err("an existing file is refused");
    assert!(
        format!("{again:#}").contains("never overwritten"),
        "{again:#}"
    );
    assert_eq!(std::fs::metadata(&target).expect("copy").len(), length);
    app.stop().await;
}

/// Issue 10 item 8: a PostgreSQL URL gets the clear message, and no file is created.
#[tokio::test]
async fn backup_refuses_a_postgresql_url() {
    let folder = tempfile::tempdir().expect("temp dir");
    let target = folder.path().join("copy.db");
    for url in ["postgres://db/jmz", "postgresql://db/jmz"] {
        let error = backup(url, &target).await.expect_err("refused");
        assert_eq!(format!("{error:#}"), NOT_SQLITE);
    }
    assert!(!target.exists());
}

/// Issue 10 item 8: the binary reads `[database] url` alone (a file whose other sections
/// are incomplete still serves) and writes the copy.
#[tokio::test]
async fn backup_binary_copies_the_configured_database() {
    let app = spawn_app().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let config = folder.path().join("backup.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n[zoom]\naccount_id = \"incomplete\"\n",
            app.engine.settings.database.url
        ),
    )
    .expect("config");
    let target = folder.path().join("copy.db");
    let run = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_jmotto-zoom"))
            .args(["backup", "--config"])
            .arg(&config)
            .arg("--to")
            .arg(&target)
            .output()
    };
    let output = run().await.expect("backup runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(target.is_file());
    let again = run().await.expect("backup runs");
    assert!(!again.status.success(), "a second backup is refused");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("never overwritten"),
        "{again:?}"
    );
    app.stop().await;
}
