//! SPEC §4a: the real binaries as processes — `jmotto-zoom run` serves and works,
//! `jmotto-zoom sync --wait` triggers through its API and prints the outcome, SIGTERM stops
//! `run` cleanly — against the replay servers of this test.

use std::{process::Stdio, time::Duration};

use jmotto_zoom::{cli::demo::demo_config, replay::ReplayServer};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test]
async fn run_and_sync_wait_as_processes() {
    let jmotto = ReplayServer::start_jmotto().await.expect("replay");
    let zoom = ReplayServer::start_zoom().await.expect("replay");
    let folder = tempfile::tempdir().expect("temp dir");
    let listen = format!("127.0.0.1:{}", free_port());
    let database = format!("sqlite://{}", folder.path().join("run.db").display());
    let config = folder.path().join("jmotto-zoom.toml");
    std::fs::write(&config, demo_config(&jmotto, &zoom, &database, &listen))
        .expect("config written");
    let binary = env!("CARGO_BIN_EXE_jmotto-zoom");

    let mut run = tokio::process::Command::new(binary)
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run starts");
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("http://{listen}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "run never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let sync = tokio::process::Command::new(binary)
        .args(["sync", "--wait", "--config"])
        .arg(&config)
        .output()
        .await
        .expect("sync runs");
    let printed = String::from_utf8_lossy(&sync.stdout);
    assert!(
        sync.status.success(),
        "sync --wait failed: {printed}\n{}",
        String::from_utf8_lossy(&sync.stderr)
    );
    assert!(printed.contains("Created Zoom meetings (16)"), "{printed}");
    assert!(printed.contains("no_enabled_host"), "{printed}");
    assert_eq!(zoom.zoom_meetings().len(), 16);

    let pid = run.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(40), run.wait())
        .await
        .expect("run stops after SIGTERM")
        .expect("exit status");
    assert!(status.success(), "run exits 0 on SIGTERM: {status:?}");
    assert!(jmotto.unmatched().is_empty() && zoom.unmatched().is_empty());
    jmotto.stop().await;
    zoom.stop().await;
}
