//! The operator's view: `status` complete (R-ENABLED), `/metrics`, `/api/openapi.json`,
//! `doctor` (SPEC §3) against the replay servers and against replay sets with each
//! documented setup mistake, and the jobs dashboard behind the admin token.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{NOVEMBER, TestApp, spawn_app, spawn_app_with};
use jmotto_zoom::{
    cli::render_status,
    doctor::{self, CheckResult},
    http::status::StatusView,
    replay::{Exchange, FixtureFile},
};

/// The status once the worker's start-up check of the services is recorded.
async fn status_after_check(app: &TestApp) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status = app.api.get("/api/v1/status").await.expect("status");
        if status["checks"].as_array().is_some_and(|c| c.len() == 3) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no check recorded: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// R-ENABLED: enabled when the credentials and the timezone were checked OK.
#[tokio::test]
async fn status_is_enabled_after_good_checks_and_complete() {
    let app = spawn_app().await;
    app.sync().await;
    let status = status_after_check(&app).await;
    assert_eq!(status["enabled"], true, "{status}");
    assert_eq!(status["reasons"], json!([]));
    assert_eq!(status["window"]["from"], "2026-11-01T00:00:00+09:00");
    assert_eq!(status["window"]["to"], "2027-02-01T00:00:00+09:00");
    assert_eq!(status["meetings"]["created"], 16);
    for key in ["pending", "running", "scheduled", "failed"] {
        assert!(status["queue"][key].is_i64(), "queue.{key}: {status}");
    }
    let takahashi = status["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["groupware_id"] == "10005"))
        .cloned()
        .expect("user 10005");
    assert!(
        takahashi["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("各ユーザーのアクセス権設定")),
        "{takahashi}"
    );
    let tanaka = status["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["groupware_id"] == "10002"))
        .cloned()
        .expect("user 10002");
    assert!(tanaka["last_sync_at"].as_str().is_some(), "{tanaka}");
    app.stop().await;
}

/// The CLI reads its own API through the server's view types: status, meetings and a job
/// read as views say what the JSON says, and `jmotto-zoom status` prints from them.
#[tokio::test]
async fn the_cli_reads_the_api_through_its_view_types() {
    let app = spawn_app().await;
    let job_id = app.api.trigger_sync(None).await.expect("sync accepted");
    app.drain().await;
    let status = status_after_check(&app).await;
    let view = app.api.status().await.expect("status view");
    assert_eq!(serde_json::to_value(&view).expect("JSON"), status);
    let meetings = app.api.meetings().await.expect("meetings view");
    let raw = app.api.get("/api/v1/meetings").await.expect("meetings");
    assert_eq!(serde_json::to_value(&meetings).expect("JSON"), raw);
    assert_eq!(
        meetings.meetings.len(),
        raw["meetings"].as_array().map_or(0, Vec::len)
    );
    let job = app.api.job(&job_id).await.expect("job view");
    assert_eq!(
        (job.id.as_str(), job.state.as_str()),
        (job_id.as_str(), "done")
    );
    let idle: StatusView = app
        .api
        .wait_until_idle(Duration::from_secs(5))
        .await
        .expect("idle");
    assert!(idle.queue.is_idle());
    let printed = render_status(&view);
    assert!(printed.starts_with("Zoom連携: 有効 (enabled)"), "{printed}");
    assert!(
        printed.contains("Window: 2026-11-01T00:00:00+09:00 – 2027-02-01T00:00:00+09:00"),
        "{printed}"
    );
    assert!(printed.contains("16 created"), "{printed}");
    assert!(
        printed.contains("10004 sato@example.co.jp (disabled)"),
        "{printed}"
    );
    app.stop().await;
}

/// R-ENABLED: a failed check makes the integration not enabled, and `reasons` says which
/// part and where to fix it.
#[tokio::test]
async fn status_names_the_failed_part() {
    let app = spawn_app_with(|settings| {
        settings.zoom.client_secret = "not-the-secret".to_owned().into();
    })
    .await;
    let status = status_after_check(&app).await;
    assert_eq!(status["enabled"], false, "{status}");
    let reasons = status["reasons"].to_string();
    assert!(reasons.contains("Zoom credentials"), "{reasons}");
    assert!(reasons.contains("App Credentials"), "{reasons}");
    assert!(!reasons.contains("not-the-secret"), "no secret in status");
    app.stop().await;
}

/// SPEC §5 `/metrics`: jobs by queue and state, meetings, calls by endpoint and outcome,
/// webhook verifications, the trigger-to-meeting histogram.
#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = spawn_app().await;
    app.sync().await;
    let response = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.expect("text");
    for expected in [
        "# TYPE jmz_jobs gauge",
        "jmz_jobs{queue=\"jmz.create_meeting\",state=\"done\"} 16",
        "jmz_meetings{state=\"created\"} 16",
        "# TYPE jmz_external_calls_total counter",
        "jmz_external_calls_total{service=\"zoom\",endpoint=\"POST /users/{userId}/meetings\",outcome=\"ok\"} 16",
        "jmz_external_calls_total{service=\"jmotto\",endpoint=\"list_events\",outcome=\"forbidden\"}",
        "# TYPE jmz_zoom_rate_limited_total counter",
        "# TYPE jmz_webhook_verifications_total counter",
        "# TYPE jmz_trigger_to_meeting_seconds histogram",
        "jmz_trigger_to_meeting_seconds_count 16",
        "jmz_trigger_to_meeting_seconds_bucket{le=\"+Inf\"} 16",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // Every sample line is `name{labels} number` or `name number`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap_or("");
        assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
    }
    app.stop().await;
}

/// SPEC §5 `/api/openapi.json`: OpenAPI 3, every endpoint, the admin token scheme.
#[tokio::test]
async fn openapi_lists_every_endpoint() {
    let app = spawn_app().await;
    let document = app.get_json("/api/openapi.json").await;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{}",
        document["openapi"]
    );
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/api/openapi.json", "get"),
        ("/api/v1/sync", "post"),
        ("/api/v1/status", "get"),
        ("/api/v1/meetings", "get"),
        ("/api/v1/jobs/{id}", "get"),
        ("/webhooks/groupware", "post"),
    ] {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    assert_eq!(
        document["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    // The `state` filter's documented values are the states the API answers.
    let states = &document["components"]["schemas"]["MeetingStateName"]["enum"];
    assert_eq!(
        states,
        &json!(jmotto_zoom::store::MeetingState::API_STATES),
        "{states}"
    );
    app.stop().await;
}

fn fixture_exchange(file: &str, name: &str) -> Exchange {
    let path = format!("{}/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture file");
    let fixture: FixtureFile = serde_json::from_str(&text).expect("fixture JSON");
    fixture
        .exchanges
        .into_iter()
        .find(|e| e.name == name)
        .expect("named exchange")
}

/// The failed checks, without those skipped because another failed.
fn failed(results: &[CheckResult]) -> Vec<&CheckResult> {
    results
        .iter()
        .filter(|r| !r.ok && !r.is_not_checked())
        .collect()
}

/// Takahashi's schedule is readable after the administrator granted 参照 (the base company
/// has it refused, for R-ACCESS).
fn grant_takahashi(app: &TestApp) {
    app.jmotto
        .set_events("10005", NOVEMBER.0, NOVEMBER.1, 1, json!([]), None);
}

/// SPEC §3: doctor passes against the replay servers of a correct setup.
#[tokio::test]
async fn doctor_passes_a_correct_setup() {
    let app = spawn_app().await;
    grant_takahashi(&app);
    let results = doctor::run(&app.engine).await;
    assert!(failed(&results).is_empty(), "{results:#?}");
    for item in [
        "Zoom token",
        "Zoom scope meeting:write:meeting:admin",
        "Zoom scope user:read:email:admin",
        "Zoom user tanaka@example.co.jp (10002)",
        "J-MOTTO login",
        "timezone",
        "J-MOTTO location item ZOOM 会議",
        "J-MOTTO schedule of user 10005",
    ] {
        assert!(
            results.iter().any(|r| r.item == item),
            "no check {item:?}: {results:#?}"
        );
    }
    app.stop().await;
}

/// SPEC §3: each setup mistake is named, with where to fix it, and nothing else fails.
#[tokio::test]
async fn doctor_names_each_problem() {
    // A wrong client secret.
    let app = spawn_app_with(|s| s.zoom.client_secret = "wrong".to_owned().into()).await;
    grant_takahashi(&app);
    let results = doctor::run(&app.engine).await;
    let problems = failed(&results);
    assert_eq!(problems.len(), 1, "{results:#?}");
    assert_eq!(problems[0].item, "Zoom token");
    assert!(
        problems[0].detail.contains("zoom.client_secret"),
        "{problems:?}"
    );
    assert!(
        problems[0].detail.contains("App Credentials"),
        "{problems:?}"
    );
    assert!(!problems[0].detail.contains("wrong\""), "no secret printed");
    app.stop().await;

    // A missing scope (update, needed by on_reschedule = "update").
    let app = spawn_app_with(|s| {
        s.sync.on_reschedule = jmotto_zoom::domain::decision::ReschedulePolicy::Update;
    })
    .await;
    grant_takahashi(&app);
    let mut token = fixture_exchange("zoom/api.json", "S2S token");
    token.response.json = Some(json!({
        "access_token": "replay-access-token-1",
        "token_type": "bearer",
        "expires_in": 3599,
        "scope": "meeting:write:meeting:admin user:read:email:admin",
    }));
    app.zoom.override_exchange(token);
    let results = doctor::run(&app.engine).await;
    let problems = failed(&results);
    assert_eq!(problems.len(), 1, "{results:#?}");
    assert_eq!(problems[0].item, "Zoom scope meeting:update:meeting:admin");
    assert!(problems[0].detail.contains("Add Scopes"), "{problems:?}");
    app.stop().await;

    // An e-mail that is not a user of the Zoom account.
    let app = spawn_app_with(|s| {
        s.users[1].zoom_email =
            jmotto_zoom::domain::ids::ZoomEmail::parse("nobody@example.co.jp").expect("e-mail");
    })
    .await;
    grant_takahashi(&app);
    let results = doctor::run(&app.engine).await;
    let problems = failed(&results);
    assert_eq!(problems.len(), 1, "{results:#?}");
    assert!(
        problems[0].item.contains("nobody@example.co.jp"),
        "{problems:?}"
    );
    assert!(
        problems[0].detail.contains("User Management"),
        "{problems:?}"
    );
    app.stop().await;

    // No location item 「ZOOM 会議」.
    let app = spawn_app().await;
    grant_takahashi(&app);
    let mut places = fixture_exchange("jmotto/session.json", "location items");
    places.response.json = Some(json!({
        "status": "ok",
        "places": [{"id": "1", "name": "会議室A"}]
    }));
    app.jmotto.override_exchange(places);
    let results = doctor::run(&app.engine).await;
    let problems = failed(&results);
    assert_eq!(problems.len(), 1, "{results:#?}");
    assert!(problems[0].detail.contains("場所項目設定"), "{problems:?}");
    app.stop().await;

    // A schedule the administrator may not read (the base company's user 10005).
    let app = spawn_app().await;
    let results = doctor::run(&app.engine).await;
    let problems = failed(&results);
    assert_eq!(problems.len(), 1, "{results:#?}");
    assert_eq!(problems[0].item, "J-MOTTO schedule of user 10005");
    assert!(
        problems[0].detail.contains("各ユーザーのアクセス権設定"),
        "{problems:?}"
    );
    app.stop().await;
}

/// Issue 10 item 6: the jobs board is gone (the console's ジョブ page replaced it): an
/// older file that still sets `server.dashboard_listen` starts, nothing listens for it,
/// and the API's unknown paths stay JSON 404s.
#[tokio::test]
async fn the_old_dashboard_key_is_accepted_and_nothing_serves_it() {
    let app = spawn_app_with(|s| s.server.dashboard_listen = Some("127.0.0.1:0".into())).await;
    app.sync().await;
    // The API's unknown paths stay JSON 404s.
    let missing = app
        .http
        .get(format!("{}/api/v1/queues", app.address))
        .bearer_auth("demo-admin-token")
        .send()
        .await
        .expect("answer");
    assert_eq!(missing.status().as_u16(), 404);
    let body: Value = missing.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "not_found");
    app.stop().await;
}
