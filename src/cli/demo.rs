//! `jmotto-zoom demo`: the replay servers, a temporary database, the server and a worker in
//! one process; one sync of the recorded company through the real HTTP trigger; then a table
//! of the meetings created and of the entries skipped, with their reasons.

use std::{process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;

use super::AdminClient;
use crate::{
    config::Settings,
    http::{
        Application,
        meetings::{MeetingList, MeetingView},
        status::StatusView,
    },
    jobs::{Engine, worker::Worker},
    replay::{ReplayServer, company},
};

pub use crate::replay::{DEMO_ADMIN_TOKEN, DEMO_WEBHOOK_SECRET, demo_config};

/// The configuration of the replayed company, pointed at the replay servers: the same file
/// an administrator writes (SPEC §4).
pub fn demo_settings(
    jmotto: &ReplayServer,
    zoom: &ReplayServer,
    database_url: &str,
) -> anyhow::Result<Settings> {
    let text = demo_config(jmotto, zoom, database_url, "127.0.0.1:0");
    Settings::from_toml_str(&text)
}

async fn start_stack(settings: Settings) -> anyhow::Result<(Arc<Engine>, Application, Worker)> {
    let live = super::connect(settings).await?;
    let application = Application::build(live.clone())?;
    let worker = Worker::build(live.clone());
    Ok((live.latest(), application, worker))
}

/// Runs the demo; with `serve`, keeps everything up after the report until Ctrl-C.
pub async fn run(serve: bool, listen: &str) -> anyhow::Result<ExitCode> {
    crate::telemetry::init("error", crate::config::LogFormat::Text);
    let jmotto = ReplayServer::start_jmotto()
        .await
        .context("cannot start the J-MOTTO replay")?;
    let zoom = ReplayServer::start_zoom()
        .await
        .context("cannot start the Zoom replay")?;
    let folder = tempfile::tempdir().context("cannot create a temporary folder")?;
    let database_url = format!("sqlite://{}", folder.path().join("demo.db").display());
    let settings = Settings::from_toml_str(&demo_config(&jmotto, &zoom, &database_url, listen))?;
    println!("jmotto-zoom demo: a recorded J-MOTTO company replayed on this machine (no network)");
    println!(
        "  J-MOTTO replay: {}{}",
        jmotto.base_url(),
        company::JMOTTO_BASE_PATH
    );
    println!("  Zoom replay:    {}/v2", zoom.base_url());
    println!(
        "  clock fixed at: {} (the fixtures' recording time)",
        company::RECORDED_AT
    );
    println!("  database:       {database_url}");

    let (engine, application, worker) = start_stack(settings).await?;
    let port = application.port();
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut stop_server = stop_tx.subscribe();
    let mut stop_worker = stop_tx.subscribe();
    let server = tokio::spawn(application.run_until_stopped(async move {
        let _ = stop_server.recv().await;
    }));
    let worker = tokio::spawn(worker.run_until_stopped(async move {
        let _ = stop_worker.recv().await;
    }));

    let client = AdminClient::new(
        format!("http://127.0.0.1:{port}"),
        DEMO_ADMIN_TOKEN.to_owned(),
    )?;
    println!("  server:         http://127.0.0.1:{port}  (admin token: {DEMO_ADMIN_TOKEN})");
    println!("  console:        http://127.0.0.1:{port}/admin/  (管理者トークン: the admin token)");
    let job_id = client.trigger_sync(None).await?;
    println!("\nPOST /api/v1/sync -> job {job_id}; waiting for the worker…");
    let started = std::time::Instant::now();
    let status: StatusView = client.wait_until_idle(Duration::from_secs(120)).await?;
    let meetings = client.meetings().await?;
    println!("done in {:.1} s\n", started.elapsed().as_secs_f64());
    let mut failed = print_report(&meetings, &status);
    let jobs = status.queue.failed;
    if jobs > 0 {
        println!("\n{jobs} job(s) failed: see the log above");
        failed += usize::try_from(jobs).unwrap_or(1);
    }

    println!(
        "\nZoom連携: {}",
        if status.enabled {
            "有効 (enabled: Zoom, J-MOTTO and the timezone checked OK)".to_owned()
        } else {
            format!("無効 (not enabled): {}", status.reasons.join("; "))
        }
    );
    if serve {
        println!(
            "\nServing until Ctrl-C: API http://127.0.0.1:{port}/api/openapi.json, metrics http://127.0.0.1:{port}/metrics"
        );
        super::shutdown_signal().await;
    } else {
        println!("(run `jmotto-zoom demo --serve` to keep the server and the console up)");
    }

    let unmatched: Vec<String> = jmotto
        .unmatched()
        .into_iter()
        .chain(zoom.unmatched())
        .collect();
    let _ = stop_tx.send(());
    server.await.context("server task")??;
    worker.await.context("worker task")??;
    engine.store.close().await;
    jmotto.stop().await;
    zoom.stop().await;
    anyhow::ensure!(
        unmatched.is_empty(),
        "requests the fixtures do not cover: {unmatched:?}"
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A meeting's reason as a sentence for people (the API's `code: detail` read back), with
/// its code to search for; the API text itself when it is no known code.
fn reason_ja(meeting: &MeetingView) -> String {
    let api_text = meeting.reason.as_deref().unwrap_or("");
    crate::domain::meeting::Reason::parse_api_text(api_text)
        .map(|reason| format!("{} [{}]", reason.sentence_ja(), reason.code))
        .unwrap_or_else(|_| api_text.to_owned())
}

/// `schedule id` or `schedule id/occurrence`.
fn entry_name(meeting: &MeetingView) -> String {
    if meeting.occurrence.is_empty() {
        meeting.schedule_id.clone()
    } else {
        format!("{}/{}", meeting.schedule_id, meeting.occurrence)
    }
}

fn clip(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(chars.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// Prints the meetings by state and the users' errors; returns how many failed.
pub fn print_report(meetings: &MeetingList, status: &StatusView) -> usize {
    let by_state = |state: &str| -> Vec<&MeetingView> {
        meetings
            .meetings
            .iter()
            .filter(|m| m.state == state)
            .collect()
    };
    let created = by_state("created");
    say!("Created Zoom meetings ({}):", created.len());
    say!(
        "  {:<24} {:<26} {:>5}  {:<14} topic",
        "host",
        "start (local)",
        "min",
        "meeting id"
    );
    for m in &created {
        say!(
            "  {:<24} {:<26} {:>5}  {:<14} {}",
            m.host_email.as_deref().unwrap_or(""),
            m.start,
            m.duration_minutes,
            m.zoom_meeting_id.unwrap_or(0),
            clip(&m.topic, 40)
        );
    }
    for state in ["pending", "deferred", "superseded", "deleted"] {
        let list = by_state(state);
        if !list.is_empty() {
            say!("\n{} {state}:", list.len());
            for m in list {
                say!("  {} {} ({})", entry_name(m), m.start, reason_ja(m));
            }
        }
    }
    let skipped = by_state("skipped");
    say!("\nSkipped entries ({}):", skipped.len());
    for m in &skipped {
        say!(
            "  entry {:<18} {:<26} {:<32} {}",
            entry_name(m),
            m.start,
            clip(&m.topic, 30),
            reason_ja(m)
        );
    }
    let failed = by_state("failed");
    if !failed.is_empty() {
        say!("\nFailed ({}):", failed.len());
        for m in &failed {
            say!("  entry {}: {}", entry_name(m), reason_ja(m));
        }
    }
    let troubled: Vec<_> = status
        .users
        .iter()
        .filter_map(|u| Some((u, u.last_error.as_deref()?)))
        .collect();
    if !troubled.is_empty() {
        say!("\nUsers not synced:");
        for (u, error) in troubled {
            say!("  {} ({}): {error}", u.groupware_id, u.zoom_email);
        }
    }
    let disabled: Vec<_> = status.users.iter().filter(|u| !u.enabled).collect();
    if !disabled.is_empty() {
        say!("\nUsers not enabled (R-USERS, not read):");
        for u in disabled {
            say!("  {} ({})", u.groupware_id, u.zoom_email);
        }
    }
    failed.len()
}
