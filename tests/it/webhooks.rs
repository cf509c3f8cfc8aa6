//! SPEC §5 `POST /webhooks/groupware`: Standard Webhooks signatures, redelivery, refusals.
//! The deliveries here are signed by [`sign`], written from the Standard Webhooks
//! specification independently of the server's verifier, and checked against the
//! specification's published test vector first.

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use jmotto_zoom::{cli::demo::DEMO_WEBHOOK_SECRET, signature::SigningKeys};

/// `v1,<base64 HMAC-SHA256(secret bytes, "id.timestamp.body")>`.
fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .expect("secret is base64");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

#[test]
fn the_test_signer_reproduces_the_published_vector() {
    assert_eq!(
        sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A notification; it carries the Standard Webhooks envelope's top-level `timestamp`, a
/// field the receiver does not use and must not refuse.
pub(crate) fn event(users: &[&str]) -> String {
    json!({
        "type": "schedule.updated",
        "timestamp": "2026-11-25T01:00:00Z",
        "data": {"schedule_id": "8801", "user_ids": users}
    })
    .to_string()
}

/// A delivery with explicit headers.
async fn deliver(
    app: &TestApp,
    headers: &[(&str, String)],
    content_type: &str,
    body: String,
) -> (u16, Value, Option<String>) {
    let mut request = app
        .http
        .post(format!("{}/webhooks/groupware", app.address))
        .header("content-type", content_type)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("answer");
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, request_id)
}

/// The three Standard Webhooks headers of delivery `id` of `body`, signed with `secret` at
/// `timestamp`.
fn signed_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &str,
) -> [(&'static str, String); 3] {
    [
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", sign(secret, id, timestamp, body)),
    ]
}

/// A delivery signed with `secret` now.
pub(crate) async fn deliver_signed(
    app: &TestApp,
    secret: &str,
    id: &str,
    body: String,
) -> (u16, Value) {
    let headers = signed_headers(secret, id, now(), &body);
    let (status, body, _) = deliver(app, &headers, "application/json", body).await;
    (status, body)
}

async fn sync_jobs(app: &TestApp) -> i64 {
    app.jobs_in(Some("jmz.sync_window")).await
}

/// A signed delivery is accepted (202 with the job), the job syncs the named users, and a
/// redelivery answers 200 with the same job and enqueues nothing.
#[tokio::test]
async fn signed_delivery_is_queued_once_and_syncs_the_named_users() {
    let app = spawn_app().await;
    let body = event(&["10002", "10004", "99999"]);
    let headers = signed_headers(DEMO_WEBHOOK_SECRET, "msg_first", now(), &body);
    let (status, answer, request_id) =
        deliver(&app, &headers, "application/json", body.clone()).await;
    assert_eq!(status, 202, "{answer}");
    let job_id = answer["job_id"].as_str().expect("job id").to_owned();

    // The job carries the request id, and only the enabled user of the three.
    let args = app.job_args(&job_id).await;
    let args: Value = serde_json::from_str(&args).expect("job JSON");
    assert_eq!(args["users"], json!(["10002"]));
    assert_eq!(args["request_id"].as_str(), request_id.as_deref());

    let (again, answer_again, _) = deliver(&app, &headers, "application/json", body).await;
    assert_eq!(again, 200, "{answer_again}");
    assert_eq!(answer_again["job_id"], job_id.as_str());
    app.drain().await;
    assert_eq!(sync_jobs(&app).await, 1, "a redelivery enqueues nothing");

    // Only tanaka (10002) was listed, and the entries of that listing became meetings.
    let listed: Vec<String> = app
        .jmotto
        .requests()
        .into_iter()
        .filter(|r| r.form.get("action").map(String::as_str) == Some("list_events"))
        .filter_map(|r| r.form.get("uid").cloned())
        .collect();
    assert!(!listed.is_empty());
    assert!(listed.iter().all(|uid| uid == "10002"), "{listed:?}");
    assert!(app.count_in_state("created").await > 0);
    let job = app
        .api
        .get(&format!("/api/v1/jobs/{job_id}"))
        .await
        .expect("job");
    assert_eq!(job["state"], "done");
    app.stop().await;
}

/// Wrong signature, stale or future timestamp, missing headers: 401, nothing queued.
#[tokio::test]
async fn bad_signatures_are_refused() {
    let app = spawn_app().await;
    let body = event(&["10002"]);
    let other_secret = format!("whsec_{}", BASE64.encode([9u8; 32]));
    let t = now();
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "signed with another secret",
            vec![
                ("webhook-id", "m1".to_owned()),
                ("webhook-timestamp", t.to_string()),
                ("webhook-signature", sign(&other_secret, "m1", t, &body)),
            ],
        ),
        (
            "signature of another body",
            vec![
                ("webhook-id", "m2".to_owned()),
                ("webhook-timestamp", t.to_string()),
                (
                    "webhook-signature",
                    sign(DEMO_WEBHOOK_SECRET, "m2", t, &event(&["10003"])),
                ),
            ],
        ),
        (
            "stale timestamp (6 minutes ago)",
            vec![
                ("webhook-id", "m3".to_owned()),
                ("webhook-timestamp", (t - 360).to_string()),
                (
                    "webhook-signature",
                    sign(DEMO_WEBHOOK_SECRET, "m3", t - 360, &body),
                ),
            ],
        ),
        (
            "timestamp 6 minutes ahead",
            vec![
                ("webhook-id", "m4".to_owned()),
                ("webhook-timestamp", (t + 360).to_string()),
                (
                    "webhook-signature",
                    sign(DEMO_WEBHOOK_SECRET, "m4", t + 360, &body),
                ),
            ],
        ),
        (
            "no signature header",
            vec![
                ("webhook-id", "m5".to_owned()),
                ("webhook-timestamp", t.to_string()),
            ],
        ),
        ("no headers at all", vec![]),
    ];
    for (name, headers) in cases {
        let (status, answer, _) = deliver(&app, &headers, "application/json", body.clone()).await;
        assert_eq!(status, 401, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_signature", "{name}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    assert_eq!(sync_jobs(&app).await, 0, "nothing queued");
    app.stop().await;
}

/// Rotation: the sender signs with old and new secrets, or the receiver holds both.
#[tokio::test]
async fn rotated_secrets_are_accepted() {
    let new_secret = format!("whsec_{}", BASE64.encode([42u8; 32]));
    let both = format!("{new_secret} {DEMO_WEBHOOK_SECRET}");
    let app = spawn_app_with(|settings| {
        settings.server.webhook_secret = Some(SigningKeys::parse(&both).expect("keys"));
    })
    .await;
    // A sender still on the old secret.
    let (status, answer) = deliver_signed(&app, DEMO_WEBHOOK_SECRET, "r1", event(&["10002"])).await;
    assert_eq!(status, 202, "{answer}");
    // A sender already on the new one.
    let (status, answer) = deliver_signed(&app, &new_secret, "r2", event(&["10003"])).await;
    assert_eq!(status, 202, "{answer}");
    app.stop().await;

    // A receiver on the new secret only, a sender signing with both during the switch.
    let app = spawn_app_with(|settings| {
        settings.server.webhook_secret = Some(SigningKeys::parse(&new_secret).expect("keys"));
    })
    .await;
    let body = event(&["10002"]);
    let t = now();
    let signatures = format!(
        "{} {}",
        sign(DEMO_WEBHOOK_SECRET, "r3", t, &body),
        sign(&new_secret, "r3", t, &body)
    );
    let headers = [
        ("webhook-id", "r3".to_owned()),
        ("webhook-timestamp", t.to_string()),
        ("webhook-signature", signatures),
    ];
    let (status, answer, _) = deliver(&app, &headers, "application/json", body).await;
    assert_eq!(status, 202, "{answer}");
    app.stop().await;
}

/// Bad input on a correctly signed delivery: 400, 413, 415, 422 with the JSON error body;
/// nothing queued, and the delivery id stays unused (a corrected redelivery is accepted).
#[tokio::test]
async fn bad_webhook_bodies_are_refused_and_enqueue_nothing() {
    let app = spawn_app().await;
    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "malformed JSON",
            "application/json",
            "{\"type\": ".to_owned(),
            400,
            "malformed_request",
        ),
        (
            "wrong content type",
            "text/plain",
            event(&["10002"]),
            415,
            "unsupported_media_type",
        ),
        (
            "body over the limit",
            "application/json",
            format!("{{\"pad\": \"{}\"}}", "x".repeat(70_000)),
            413,
            "body_too_large",
        ),
        (
            "unknown event type",
            "application/json",
            json!({"type": "schedule.exploded", "data": {"schedule_id": "1", "user_ids": ["10002"]}})
                .to_string(),
            422,
            "invalid_field",
        ),
        (
            "no enabled user",
            "application/json",
            event(&["10004", "99999"]),
            422,
            "unknown_user",
        ),
        (
            "missing data",
            "application/json",
            json!({"type": "schedule.created"}).to_string(),
            422,
            "invalid_field",
        ),
    ];
    for (name, content_type, body, status, code) in cases {
        let headers = signed_headers(DEMO_WEBHOOK_SECRET, "bad-1", now(), &body);
        let (got, answer, _) = deliver(&app, &headers, content_type, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{name}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let queued = app.jobs_in(None).await;
    assert_eq!(queued, 0, "nothing enqueued");
    let (status, answer) =
        deliver_signed(&app, DEMO_WEBHOOK_SECRET, "bad-1", event(&["10002"])).await;
    assert_eq!(
        status, 202,
        "the id of a refused delivery is still free: {answer}"
    );
    app.stop().await;
}

/// SPEC §5 with issue 5's group commit: 64 deliveries at once are each answered 202 with a
/// job of their own, and every job, sync run and dedup row is in the database (deliveries
/// committed together are each committed). The worker is stopped so the jobs stay queued.
#[tokio::test]
async fn concurrent_deliveries_are_each_committed_with_their_own_job() {
    let mut app = spawn_app().await;
    app.stop_worker().await;
    let ids: Vec<String> = (0..64).map(|i| format!("msg_concurrent_{i}")).collect();
    let answers = futures::future::join_all(
        ids.iter()
            .map(|id| deliver_signed(&app, DEMO_WEBHOOK_SECRET, id, event(&["10002"]))),
    )
    .await;
    let mut job_ids = std::collections::BTreeSet::new();
    for (id, (status, answer)) in ids.iter().zip(&answers) {
        assert_eq!(*status, 202, "{id}: {answer}");
        job_ids.insert(answer["job_id"].as_str().expect("job id").to_owned());
    }
    assert_eq!(job_ids.len(), 64, "64 distinct jobs");

    let pool = app.engine.store.db();
    let recorded: Vec<(String, String)> =
        jmotto_zoom::store::db::query("SELECT webhook_id, job_id FROM webhook_deliveries")
            .fetch_all(pool)
            .await
            .expect("deliveries");
    let recorded: std::collections::BTreeMap<String, String> = recorded.into_iter().collect();
    for (id, (_, answer)) in ids.iter().zip(&answers) {
        assert_eq!(
            recorded.get(id).map(String::as_str),
            answer["job_id"].as_str(),
            "{id}: the dedup row names the job answered"
        );
    }
    let jobs: Vec<String> = jmotto_zoom::store::db::Query::per_backend(
        "SELECT id FROM Jobs WHERE job_type = 'jmz.sync_window'",
        "SELECT id FROM apalis.jobs WHERE job_type = 'jmz.sync_window'",
    )
    .scalars(pool)
    .await
    .expect("jobs");
    let runs: Vec<String> = jmotto_zoom::store::db::query("SELECT id FROM sync_runs")
        .scalars(pool)
        .await
        .expect("runs");
    assert_eq!(
        jobs.into_iter().collect::<std::collections::BTreeSet<_>>(),
        job_ids
    );
    assert_eq!(
        runs.into_iter().collect::<std::collections::BTreeSet<_>>(),
        job_ids
    );
    app.stop().await;
}

/// SPEC §5 redelivery under issue 5's group commit: the same delivery sent 8 times at once
/// (so copies can share one batch) queues one job; one answer is 202, the others 200 with
/// the same job id.
#[tokio::test]
async fn one_delivery_sent_concurrently_queues_one_job() {
    let mut app = spawn_app().await;
    app.stop_worker().await;
    let body = event(&["10002"]);
    let headers = signed_headers(DEMO_WEBHOOK_SECRET, "msg_repeated", now(), &body);
    let answers = futures::future::join_all(
        (0..8).map(|_| deliver(&app, &headers, "application/json", body.clone())),
    )
    .await;
    let mut statuses: Vec<u16> = answers.iter().map(|(status, _, _)| *status).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 200, 200, 202],
        "{answers:?}"
    );
    let job_ids: std::collections::BTreeSet<&str> = answers
        .iter()
        .map(|(_, answer, _)| answer["job_id"].as_str().expect("job id"))
        .collect();
    assert_eq!(job_ids.len(), 1, "{answers:?}");
    assert_eq!(sync_jobs(&app).await, 1, "one job queued");
    let job_id: String = jmotto_zoom::store::db::query(
        "SELECT job_id FROM webhook_deliveries WHERE webhook_id = 'msg_repeated'",
    )
    .scalar(app.engine.store.db())
    .await
    .expect("one dedup row");
    assert!(job_ids.contains(job_id.as_str()));
    app.stop().await;
}
