//! SPEC §4a: the real binaries as processes — `jmotto-zoom run` serves and works,
//! `jmotto-zoom sync --wait` triggers through its API and prints the outcome, `status` and
//! `doctor` report, SIGTERM stops `run` cleanly — against the replay servers of this test.
//! SPEC §4: no configured secret (nor a token the services hand out) appears in anything
//! they print, at `RUST_LOG=trace`.

use std::{process::Stdio, time::Duration};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use hmac::{Hmac, KeyInit, Mac};
use jmotto_zoom::{
    cli::demo::{DEMO_ADMIN_TOKEN, DEMO_WEBHOOK_SECRET, demo_config},
    replay::{ReplayServer, company},
    signature::SigningKey,
};
use sha2::Sha256;
use tokio::io::AsyncReadExt;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The J-MOTTO and Zoom replay servers.
pub(crate) async fn start_replays() -> (ReplayServer, ReplayServer) {
    let jmotto = ReplayServer::start_jmotto().await.expect("replay");
    let zoom = ReplayServer::start_zoom().await.expect("replay");
    (jmotto, zoom)
}

/// The demo's configuration pointed at the replays, the test's database (a file in
/// `folder`, or a fresh PostgreSQL database) and a free port, written to `folder`: its path
/// and the server's address.
pub(crate) async fn write_config(
    folder: &tempfile::TempDir,
    jmotto: &ReplayServer,
    zoom: &ReplayServer,
) -> (std::path::PathBuf, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let database = crate::helpers::test_database(folder).await;
    let config = folder.path().join("jmotto-zoom.toml");
    std::fs::write(&config, demo_config(jmotto, zoom, &database, &listen)).expect("config written");
    (config, listen)
}

/// Starts `jmotto-zoom run --config config` with `env`, and waits until it is ready. The
/// task gives the process's stderr then stdout once it has ended.
pub(crate) async fn start_run(
    config: &std::path::Path,
    listen: &str,
    env: &[(&str, &str)],
) -> (tokio::process::Child, tokio::task::JoinHandle<String>) {
    let mut run = tokio::process::Command::new(env!("CARGO_BIN_EXE_jmotto-zoom"))
        .args(["run", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run starts");
    // Read both pipes all along (a full pipe would block the process).
    let mut stderr = run.stderr.take().expect("stderr");
    let mut stdout = run.stdout.take().expect("stdout");
    let logs = tokio::spawn(async move {
        let (mut err, mut out) = (Vec::new(), Vec::new());
        let _ = tokio::join!(stderr.read_to_end(&mut err), stdout.read_to_end(&mut out));
        err.extend(out);
        String::from_utf8_lossy(&err).into_owned()
    });
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
    (run, logs)
}

/// A change notification of one entry of user 10002.
const WEBHOOK_BODY: &str =
    r#"{"type":"schedule.updated","data":{"schedule_id":"8801","user_ids":["10002"]}}"#;

/// Posts [`WEBHOOK_BODY`] with the given Standard Webhooks headers; expects a 202 and
/// returns its request id and its body.
async fn deliver_webhook(
    http: &reqwest::Client,
    listen: &str,
    webhook_id: &str,
    timestamp: &str,
    signature: String,
) -> (String, serde_json::Value) {
    let delivered = http
        .post(format!("http://{listen}/webhooks/groupware"))
        .header("content-type", "application/json")
        .header("webhook-id", webhook_id)
        .header("webhook-timestamp", timestamp)
        .header("webhook-signature", signature)
        .body(WEBHOOK_BODY)
        .send()
        .await
        .expect("webhook answered");
    assert_eq!(delivered.status().as_u16(), 202);
    let request_id = delivered
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id")
        .to_owned();
    (request_id, delivered.json().await.expect("202 body"))
}

/// Sends SIGTERM to `run` and waits until it has exited 0.
pub(crate) async fn stop_run(mut run: tokio::process::Child) {
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
}

#[tokio::test]
async fn run_and_sync_wait_as_processes() {
    let (jmotto, zoom) = start_replays().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let (config, listen) = write_config(&folder, &jmotto, &zoom).await;
    let binary = env!("CARGO_BIN_EXE_jmotto-zoom");
    let (run, logs) = start_run(&config, &listen, &[("RUST_LOG", "trace")]).await;
    let http = reqwest::Client::new();

    let sync = tokio::process::Command::new(binary)
        .args(["sync", "--wait", "--config"])
        .arg(&config)
        .output()
        .await
        .expect("sync runs");
    let printed = String::from_utf8_lossy(&sync.stdout);
    // R-ACCESS: the fixture company's user 10005 does not share its schedule, so the sync is
    // not complete: exit status 1, and that user is the one thing named as not synced.
    assert_eq!(
        sync.status.code(),
        Some(1),
        "sync --wait: {printed}\n{}",
        String::from_utf8_lossy(&sync.stderr)
    );
    assert!(printed.contains("Not synced (1):"), "{printed}");
    assert!(
        printed.contains("user 10005 (takahashi@example.co.jp): its listing failed"),
        "{printed}"
    );
    assert!(printed.contains("Created Zoom meetings (16)"), "{printed}");
    assert!(printed.contains("no_enabled_host"), "{printed}");
    assert_eq!(zoom.zoom_meetings().len(), 16);
    let mut printed_by_commands = printed.into_owned();

    // A signed webhook reaches the process (Standard Webhooks, the demo's secret).
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let key = BASE64
        .decode(DEMO_WEBHOOK_SECRET.trim_start_matches("whsec_"))
        .expect("base64");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("key");
    mac.update(format!("wh-1.{timestamp}.{WEBHOOK_BODY}").as_bytes());
    let signature = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    let (webhook_request_id, accepted) =
        deliver_webhook(&http, &listen, "wh-1", &timestamp, signature).await;
    // Wait for the jobs the webhook caused to have run before SIGTERM (on a loaded machine
    // they may still be queued while `status` and `doctor` run).
    let job_id = accepted["job_id"].as_str().expect("job_id").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job: serde_json::Value = http
            .get(format!("http://{listen}/api/v1/jobs/{job_id}"))
            .bearer_auth(DEMO_ADMIN_TOKEN)
            .send()
            .await
            .expect("job")
            .json()
            .await
            .expect("job json");
        let status: serde_json::Value = http
            .get(format!("http://{listen}/api/v1/status"))
            .bearer_auth(DEMO_ADMIN_TOKEN)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("status json");
        let queue = &status["queue"];
        if job["state"] == "done" && queue["pending"] == 0 && queue["running"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the webhook's jobs never ran: {job} {queue}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // `status` through the API, `doctor` against the replay servers.
    for (command, expect_success, expect_text) in [
        ("status", true, "Zoom連携"),
        ("doctor", false, "各ユーザーのアクセス権設定"),
    ] {
        let output = tokio::process::Command::new(binary)
            .args([command, "--config"])
            .arg(&config)
            .env("RUST_LOG", "trace")
            .output()
            .await
            .expect("command runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.success(), expect_success, "{command}: {text}");
        assert!(text.contains(expect_text), "{command}: {text}");
        printed_by_commands.push_str(&text);
    }
    let metrics = http
        .get(format!("http://{listen}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("jmz_webhook_verifications_total{outcome=\"ok\"} 1"),
        "{metrics}"
    );

    stop_run(run).await;
    let logs = logs.await.expect("logs read");
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "trace logging was on"
    );
    // Piped stderr is no terminal: no colour codes.
    assert!(
        !logs.contains('\u{1b}'),
        "a log line of `run` has ANSI codes"
    );
    // STYLE 12: the webhook's request id follows it into the jobs it caused.
    assert!(
        logs.lines()
            .any(|line| line.contains(&webhook_request_id) && line.contains("jmz.fetch_slice")),
        "no job log line carries the webhook's request id {webhook_request_id}"
    );
    let secrets = [
        DEMO_ADMIN_TOKEN,
        DEMO_WEBHOOK_SECRET,
        DEMO_WEBHOOK_SECRET.trim_start_matches("whsec_"),
        company::ZOOM_CLIENT_SECRET,
        company::ADMIN_PASSWORD,
        // What the services hand out: Zoom's access token, J-MOTTO's access key.
        "replay-access-token-1",
        "3f9c1e5a7b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e",
    ];
    for secret in secrets {
        assert!(
            !logs.contains(secret),
            "a log line of `run` carries {secret:?}"
        );
        assert!(
            !printed_by_commands.contains(secret),
            "a command printed {secret:?}"
        );
    }
    assert!(jmotto.unmatched().is_empty() && zoom.unmatched().is_empty());
    jmotto.stop().await;
    zoom.stop().await;
}

/// SPEC §4 `log.format = "json"` (here as `JMZ__LOG__FORMAT`): every line a full `run` writes
/// is one JSON object; the lines of a request and of the jobs it caused carry its request id
/// (STYLE 12) in their spans.
#[tokio::test]
async fn json_logs_of_a_full_run_carry_the_request_id() {
    let (jmotto, zoom) = start_replays().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let (config, listen) = write_config(&folder, &jmotto, &zoom).await;
    let (run, logs) = start_run(
        &config,
        &listen,
        &[("RUST_LOG", "info"), ("JMZ__LOG__FORMAT", "json")],
    )
    .await;

    // A signed webhook: its request logs, and its jobs sync the user and create meetings.
    let http = reqwest::Client::new();
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let signature = SigningKey::parse(DEMO_WEBHOOK_SECRET)
        .and_then(|key| key.sign("wh-json", &timestamp, WEBHOOK_BODY.as_bytes()))
        .expect("signed");
    let (request_id, _) = deliver_webhook(&http, &listen, "wh-json", &timestamp, signature).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while zoom.zoom_meetings().is_empty() || !queue_is_empty(&http, &listen).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the webhook's jobs never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_run(run).await;

    let logs = logs.await.expect("logs read");
    let (mut request_lines, mut job_lines) = (0, 0);
    for line in logs.lines() {
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
        assert!(object.is_object(), "{line}");
        let spans = object["spans"].as_array().cloned().unwrap_or_default();
        for span in &spans {
            if span["name"] == "request" {
                // Every request has its id; the webhook's is the one its jobs carry.
                let id = span["request.id"].as_str().unwrap_or_default();
                assert!(!id.is_empty(), "a request line without its id: {line}");
                if span["path"] == "/webhooks/groupware" {
                    assert_eq!(id, request_id, "{line}");
                    request_lines += 1;
                }
            } else if span["name"] == "job" {
                assert_eq!(span["request.id"], request_id.as_str(), "{line}");
                job_lines += 1;
            }
        }
    }
    assert!(
        request_lines > 0,
        "no line of the webhook's request: {logs}"
    );
    assert!(job_lines > 0, "no line of the webhook's jobs: {logs}");
    assert!(!logs.contains('\u{1b}'), "a log line has ANSI codes");
    jmotto.stop().await;
    zoom.stop().await;
}

/// No job pending or running, by the server's own status.
async fn queue_is_empty(http: &reqwest::Client, listen: &str) -> bool {
    let status: serde_json::Value = match http
        .get(format!("http://{listen}/api/v1/status"))
        .bearer_auth(DEMO_ADMIN_TOKEN)
        .send()
        .await
    {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(_) => return false,
    };
    status["queue"]["pending"] == 0 && status["queue"]["running"] == 0
}
