//! SPEC §10 alerts raised by the engine itself (issue 12): the quick check at start and a
//! manual sync's check first (`integration.disabled` / `integration.enabled`), a J-MOTTO
//! 2001 (`user.unreadable`), the e-mail check and Zoom's 1001 on a create
//! (`user.zoom_unknown`), a host's daily quota (`host.daily_limit`) and the failed meetings
//! of a run (`meetings.failed`) — each delivered to the local SMTP server and HTTP receiver
//! of `alerts`.

use std::time::Duration;

use jmotto_zoom::{
    jobs::{CreateMeeting, Job},
    replay::{Fault, company, faults},
    secrets::SecretKey,
};
use secrecy::SecretString;
use serde_json::Value;

use crate::{
    alerts::{HttpReceiver, SmtpServer, app_alerting_with as alerting, metrics_text},
    helpers::spawn_app_with,
};

/// Polls `done` every 50 ms until it holds; panics with `what` after `limit`.
async fn until(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many webhook posts of `kind` the receiver got.
fn posts_of(receiver: &HttpReceiver, kind: &str) -> usize {
    receiver.types().iter().filter(|t| *t == kind).count()
}

/// Waits (30 s at most) until the receiver got one post of `kind`; its JSON.
async fn posted(receiver: &HttpReceiver, kind: &str) -> Value {
    until(Duration::from_secs(30), &format!("no {kind} alert"), || {
        posts_of(receiver, kind) == 1
    })
    .await;
    receiver
        .posts()
        .into_iter()
        .map(|p| p.json())
        .find(|j| j["type"] == kind)
        .unwrap_or_default()
}

/// Asserts that the receiver got exactly one post of `kind`.
fn posted_once(receiver: &HttpReceiver, kind: &str) {
    assert_eq!(
        posts_of(receiver, kind),
        1,
        "{kind}: {:?}",
        receiver.types()
    );
}

/// Asserts that the alert's details mention `text`.
fn mentions(alert: &Value, text: &str) {
    assert!(alert["details"].to_string().contains(text), "{alert}");
}

/// How many e-mails whose subject contains `text` the SMTP server got.
fn mails_about(smtp: &SmtpServer, text: &str) -> usize {
    smtp.subjects().iter().filter(|s| s.contains(text)).count()
}

/// SPEC §10, R-ENABLED: with a wrong Zoom secret at start the worker's quick check sends
/// `integration.disabled` by e-mail within a minute; once the right secret is saved (as the
/// console saves it), a manual sync checks first: the integration is 有効 at once and
/// `integration.enabled` is sent — each once. The housekeeping's heartbeat is long here, so
/// only the manual sync's check can have seen the fix.
#[tokio::test]
async fn r_enabled_wrong_secret_alerts_at_start_and_a_manual_sync_after_the_fix_alerts_enabled() {
    let (smtp, receiver) = (SmtpServer::start(0).await, HttpReceiver::start().await);
    let app = alerting(&smtp, &receiver, |settings| {
        settings.zoom.client_secret = SecretString::from("wrong");
        settings.file_keys.remove("zoom.client_secret");
        settings.server.secret_key = Some(SecretKey::generate());
        settings.worker.heartbeat_seconds = 600;
    })
    .await;
    until(
        Duration::from_secs(60),
        "no integration.disabled e-mail within a minute",
        || mails_about(&smtp, "Zoom連携が無効になりました") == 1,
    )
    .await;
    let mail = smtp.mails().remove(0);
    assert!(mail.subject.starts_with("[Zoom連携]"), "{}", mail.subject);
    assert!(mail.body.contains("App Credentials"), "{}", mail.body);
    let status = app.api.get("/api/v1/status").await.expect("status");
    assert_eq!(status["enabled"], false, "{status:#}");

    let form = [("zoom.client_secret", company::ZOOM_CLIENT_SECRET.to_owned())];
    let mut tx = app.engine.store.begin_write().await.expect("write turn");
    app.live.live().save(&mut tx, &form).await.expect("saved");
    tx.commit().await.expect("committed");
    app.sync().await;
    let status = app.api.get("/api/v1/status").await.expect("status");
    assert_eq!(status["enabled"], true, "{status:#}");
    posted(&receiver, "integration.enabled").await;
    until(
        Duration::from_secs(30),
        "no integration.enabled e-mail",
        || mails_about(&smtp, "Zoom連携が有効に戻りました") == 1,
    )
    .await;
    posted_once(&receiver, "integration.disabled");
    assert!(!app.creates().is_empty(), "the sync created meetings");
    app.stop().await;
}

/// SPEC §10 and R-ACCESS: the demo company's user 10005 answers 2001, so the first sync opens
/// `user.unreadable` once (e-mail and webhook); a second sync and a new worker on the same
/// database send nothing new.
#[tokio::test]
async fn r_access_a_refused_schedule_opens_user_unreadable_once_across_syncs_and_restarts() {
    let (smtp, receiver) = (SmtpServer::start(0).await, HttpReceiver::start().await);
    let mut app = alerting(&smtp, &receiver, |_| {}).await;
    app.sync().await;
    let post = posted(&receiver, "user.unreadable").await;
    mentions(&post, "10005");
    until(Duration::from_secs(30), "no user.unreadable e-mail", || {
        mails_about(&smtp, "スケジュールを参照できないユーザーがいます") == 1
    })
    .await;

    app.sync().await;
    app.restart_worker().await;
    app.sync().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    app.drain().await;
    posted_once(&receiver, "user.unreadable");
    assert_eq!(
        mails_about(&smtp, "スケジュールを参照できないユーザーがいます"),
        1
    );
    assert_eq!(posts_of(&receiver, "user.unreadable.cleared"), 0);
    app.stop().await;
}

/// SPEC §10: a create Zoom refuses with code 1001 (the host is not in the account) opens
/// `user.zoom_unknown` for that user at once, and the run's refused meeting gives one
/// `meetings.failed` alert when the run's jobs have ended.
#[tokio::test]
async fn a_create_refused_with_1001_opens_user_zoom_unknown_and_one_meetings_failed() {
    let (smtp, receiver) = (SmtpServer::start(0).await, HttpReceiver::start().await);
    let app = alerting(&smtp, &receiver, |_| {}).await;
    app.zoom.inject(
        Fault::ZoomUserNotFound,
        1,
        faults::zoom_create_for("tanaka@example.co.jp"),
    );
    app.sync().await;
    let unknown = posted(&receiver, "user.zoom_unknown").await;
    mentions(&unknown, "tanaka@example.co.jp");
    posted(&receiver, "meetings.failed").await;
    app.sync().await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    app.drain().await;
    posted_once(&receiver, "user.zoom_unknown");
    posted_once(&receiver, "meetings.failed");
    app.stop().await;
}

/// SPEC §10: a host whose daily quota Zoom says is used up gives one `host.daily_limit`
/// alert for that host and UTC day, however many of its creates are deferred, across a
/// second sync and a restart.
#[tokio::test]
async fn the_host_daily_limit_is_alerted_at_most_once_per_host_and_day() {
    let (smtp, receiver) = (SmtpServer::start(0).await, HttpReceiver::start().await);
    let mut app = alerting(&smtp, &receiver, |_| {}).await;
    app.zoom.inject(
        Fault::ZoomHostDaily { http_300: false },
        1,
        faults::zoom_create_for("tanaka@example.co.jp"),
    );
    app.sync().await;
    let alert = posted(&receiver, "host.daily_limit").await;
    mentions(&alert, "tanaka@example.co.jp");
    app.sync().await;
    app.restart_worker().await;
    app.sync().await;
    app.drain().await;
    posted_once(&receiver, "host.daily_limit");
    assert_eq!(
        mails_about(&smtp, "1日あたりの会議作成・更新の上限"),
        1,
        "{:?}",
        smtp.subjects()
    );
    app.stop().await;
}

/// SPEC §10: each enabled user's Zoom e-mail is checked when the worker starts; one that is
/// not in the Zoom account opens `user.zoom_unknown` (and is recorded for the ユーザー page),
/// once across a restart.
#[tokio::test]
async fn an_enabled_users_unknown_zoom_email_is_alerted_at_worker_start_once() {
    let (smtp, receiver) = (SmtpServer::start(0).await, HttpReceiver::start().await);
    let mut app = alerting(&smtp, &receiver, |settings| {
        for user in &mut settings.users {
            if user.groupware_id.as_str() == "10003" {
                user.zoom_email =
                    jmotto_zoom::domain::ids::ZoomEmail::parse("nobody@example.co.jp")
                        .expect("an e-mail");
            }
        }
    })
    .await;
    let alert = posted(&receiver, "user.zoom_unknown").await;
    mentions(&alert, "nobody@example.co.jp");
    let checks = jmotto_zoom::store::settings::email_checks(app.engine.store.db())
        .await
        .expect("checks");
    assert!(
        checks.iter().any(|c| c.groupware_id == "10003" && !c.found),
        "{checks:?}"
    );
    app.restart_worker().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    app.drain().await;
    posted_once(&receiver, "user.zoom_unknown");
    app.stop().await;
}

/// Issue 12 item 7: `/metrics` counts the jobs ready for more than 10 minutes that no worker
/// took (`jmz_jobs_overdue`), which the Prometheus rules in `deploy/` alert on.
#[tokio::test]
async fn jobs_overdue_by_ten_minutes_show_in_the_metrics() {
    let mut app = spawn_app_with(|_| {}).await;
    app.stop_worker().await;
    assert!(metrics_text(&app).await.contains("\njmz_jobs_overdue 0\n"));
    app.api.trigger_sync(None).await.expect("sync accepted");
    assert!(
        metrics_text(&app).await.contains("\njmz_jobs_overdue 0\n"),
        "just queued"
    );
    jmotto_zoom::store::db::Query::per_backend(
        "UPDATE Jobs SET run_at = $1 - 660 WHERE job_type = 'jmz.sync_window'",
        "UPDATE apalis.jobs SET run_at = to_timestamp($1 - 660) WHERE job_type = 'jmz.sync_window'",
    )
    .bind(chrono::Utc::now().timestamp())
    .execute(app.engine.store.db())
    .await
    .expect("aged");
    let text = metrics_text(&app).await;
    assert!(text.contains("\njmz_jobs_overdue 1\n"), "{text}");
    app.start_worker().await;
    app.drain().await;
    assert!(metrics_text(&app).await.contains("\njmz_jobs_overdue 0\n"));
    app.stop().await;
}

/// SPEC §10 `meetings.failed` waits for the run's jobs to end: while a create of the run
/// still waits for its retry, a meeting Zoom refused is not alerted yet; once the retry is
/// done, one alert lists it.
#[tokio::test]
async fn meetings_failed_waits_until_the_runs_creates_have_ended() {
    let (smtp, receiver) = (SmtpServer::start(0).await, HttpReceiver::start().await);
    let app = alerting(&smtp, &receiver, |settings| {
        settings.worker.retry_base_seconds = 60;
    })
    .await;
    app.zoom.inject(
        Fault::ZoomUserNotFound,
        1,
        faults::zoom_create_for("tanaka@example.co.jp"),
    );
    app.zoom
        .inject(Fault::ServerError(500), 1, faults::zoom_create);
    app.sync().await;
    posted(&receiver, "user.zoom_unknown").await;
    assert!(
        !app.scheduled_run_times(CreateMeeting::QUEUE)
            .await
            .is_empty(),
        "a create of the run waits for its retry"
    );
    // Two heartbeats of the housekeeping: still nothing for the run.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(posts_of(&receiver, "meetings.failed"), 0);
    app.settle().await;
    let alert = posted(&receiver, "meetings.failed").await;
    mentions(&alert, "tanaka@example.co.jp");
    app.stop().await;
}
