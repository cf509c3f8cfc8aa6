//! Issue 10 item 7: the command line says the verdict (R-ENABLED). `doctor` ends with
//! `Zoom連携: 有効` or `Zoom連携: 無効 (…)`; `status` exits non-zero when 無効 and needs only
//! `[server]` (or `--url` and `JMZ__SERVER__ADMIN_TOKEN`); neither panics when its output
//! is closed early (`| head -1`).

use std::{process::Stdio, time::Duration};

use crate::{
    binaries::{start_replays, write_config},
    helpers::{TestApp, spawn_app, spawn_app_with},
};
use jmotto_zoom::cli::demo::{DEMO_ADMIN_TOKEN, demo_config};

/// `jmotto-zoom args` with `env`; stdout closed before the command writes anything when
/// `close_stdout` (as `| head -1` does once it has its line).
async fn cli(args: &[&str], env: &[(&str, &str)], close_stdout: bool) -> std::process::Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_jmotto-zoom"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    if close_stdout {
        drop(child.stdout.take());
    }
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the command ends")
        .expect("its output")
}

fn last_line(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_owned()
}

/// Waits until the worker's start-up check of the three R-ENABLED parts is recorded.
async fn checked(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = app.api.get("/api/v1/status").await.expect("status");
        if status["checks"].as_array().is_some_and(|c| c.len() == 3) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no check: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `status --url U` with the admin token from the environment alone.
async fn status_by_url(app: &TestApp, close_stdout: bool) -> std::process::Output {
    cli(
        &["status", "--url", &app.address],
        &[("JMZ__SERVER__ADMIN_TOKEN", DEMO_ADMIN_TOKEN)],
        close_stdout,
    )
    .await
}

/// R-ENABLED: doctor's last line is the verdict, 有効 for a good setup, 無効 with the reason
/// for a wrong Zoom secret.
#[tokio::test]
async fn doctor_ends_with_the_verdict() {
    let (jmotto, zoom) = start_replays().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let (config, _) = write_config(&folder, &jmotto, &zoom).await;
    let config = config.to_str().expect("utf-8 path");

    let good = cli(&["doctor", "--config", config], &[], false).await;
    assert_eq!(last_line(&good), "Zoom連携: 有効", "{good:?}");

    let bad = cli(
        &["doctor", "--config", config],
        &[("JMZ__ZOOM__CLIENT_SECRET", "wrong")],
        false,
    )
    .await;
    let verdict = last_line(&bad);
    assert!(verdict.starts_with("Zoom連携: 無効 ("), "{bad:?}");
    assert!(verdict.contains("failed"), "{verdict}");
    assert!(!bad.status.success());
    assert!(!verdict.contains("wrong"), "no secret printed: {verdict}");
}

/// R-ENABLED: `status` exits 0 when 有効, non-zero when 無効; `--url` and
/// `JMZ__SERVER__ADMIN_TOKEN` suffice (no configuration file).
#[tokio::test]
async fn status_exit_code_says_the_verdict() {
    let app = spawn_app().await;
    checked(&app).await;
    let enabled = status_by_url(&app, false).await;
    let stdout = String::from_utf8_lossy(&enabled.stdout);
    assert!(enabled.status.success(), "{enabled:?}");
    assert!(stdout.starts_with("Zoom連携: 有効"), "{stdout}");
    app.stop().await;

    let app = spawn_app_with(|s| s.zoom.client_secret = "wrong".to_owned().into()).await;
    checked(&app).await;
    let disabled = status_by_url(&app, false).await;
    let stdout = String::from_utf8_lossy(&disabled.stdout);
    assert!(!disabled.status.success(), "{disabled:?}");
    assert!(stdout.starts_with("Zoom連携: 無効"), "{stdout}");
    app.stop().await;
}

/// Issue 10 item 7: `status --config F` reads `[server]` alone: a file whose `[zoom]` is
/// incomplete still serves; without a token anywhere it says where to put one.
#[tokio::test]
async fn status_reads_only_the_server_section() {
    let app = spawn_app().await;
    checked(&app).await;
    let folder = tempfile::tempdir().expect("temp dir");
    let config = folder.path().join("status.toml");
    let listen = app.address.trim_start_matches("http://");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{listen}\"\nadmin_token = \"{DEMO_ADMIN_TOKEN}\"\n[zoom]\naccount_id = \"incomplete\"\n"
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8 path");
    let output = cli(&["status", "--config", config], &[], false).await;
    assert!(output.status.success(), "{output:?}");

    let no_token = cli(&["status", "--url", &app.address], &[], false).await;
    assert!(!no_token.status.success());
    assert!(
        String::from_utf8_lossy(&no_token.stderr).contains("JMZ__SERVER__ADMIN_TOKEN"),
        "{no_token:?}"
    );
    app.stop().await;
}

/// Issue 10 item 7: `status`, `sync` (with and without `--wait`) and `doctor` whose output
/// is closed early (`| head -1`) end without a panic, with their own exit status.
#[tokio::test]
async fn closed_output_does_not_panic() {
    let app = spawn_app().await;
    checked(&app).await;
    let status = status_by_url(&app, true).await;
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.status.success(), "{status:?}");

    // `sync` reads the whole file: the demo's, pointed at this server.
    let folder = tempfile::tempdir().expect("temp dir");
    let config = folder.path().join("sync.toml");
    let database = crate::helpers::test_database(&folder).await;
    let listen = app.address.trim_start_matches("http://");
    std::fs::write(
        &config,
        demo_config(&app.jmotto, &app.zoom, &database, listen),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8 path");
    for args in [
        ["sync", "--config", config, "--wait"].as_slice(),
        &["sync", "--config", config],
    ] {
        let sync = cli(args, &[], true).await;
        let stderr = String::from_utf8_lossy(&sync.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(sync.status.code(), Some(101), "{args:?}: {sync:?}");
    }
    app.stop().await;

    let (jmotto, zoom) = start_replays().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let (config, _) = write_config(&folder, &jmotto, &zoom).await;
    let config = config.to_str().expect("utf-8 path");
    let doctor = cli(&["doctor", "--config", config], &[], true).await;
    let stderr = String::from_utf8_lossy(&doctor.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(doctor.status.code(), Some(101), "{doctor:?}");
}
