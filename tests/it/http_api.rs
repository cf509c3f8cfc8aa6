//! SPEC §5 for the endpoints of this stage: health, the trigger and the read APIs; bad input
//! gets a 4xx with a JSON error and enqueues nothing.

use serde_json::{Value, json};

use crate::helpers::spawn_app;
use jmotto_zoom::store::sync_state;

async fn jobs_in_queue(app: &crate::helpers::TestApp) -> i64 {
    app.jobs_in(None).await
}

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let response = app
            .http
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
    app.stop().await;
}

/// Bad input: the status, the JSON error body, and nothing enqueued.
#[tokio::test]
async fn bad_triggers_are_refused_and_enqueue_nothing() {
    let app = spawn_app().await;
    let url = format!("{}/api/v1/sync", app.address);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        ("no token", app.http.post(&url), 401, "unauthorized"),
        (
            "wrong token",
            app.http.post(&url).bearer_auth("nope"),
            401,
            "unauthorized",
        ),
        (
            "malformed JSON",
            app.http
                .post(&url)
                .bearer_auth("demo-admin-token")
                .header("content-type", "application/json")
                .body("{\"users\": ["),
            400,
            "malformed_request",
        ),
        (
            "wrong content type",
            app.http
                .post(&url)
                .bearer_auth("demo-admin-token")
                .header("content-type", "text/plain")
                .body("users=10002"),
            415,
            "unsupported_media_type",
        ),
        (
            "body over the limit",
            app.http
                .post(&url)
                .bearer_auth("demo-admin-token")
                .header("content-type", "application/json")
                .body(format!("{{\"users\": [\"{}\"]}}", "1".repeat(70_000))),
            413,
            "body_too_large",
        ),
        (
            "unknown user",
            app.http
                .post(&url)
                .bearer_auth("demo-admin-token")
                .json(&json!({"users": ["99999"]})),
            422,
            "unknown_user",
        ),
        (
            "disabled user",
            app.http
                .post(&url)
                .bearer_auth("demo-admin-token")
                .json(&json!({"users": ["10004"]})),
            422,
            "unknown_user",
        ),
        (
            "users not a list",
            app.http
                .post(&url)
                .bearer_auth("demo-admin-token")
                .json(&json!({"users": "10002"})),
            422,
            "invalid_field",
        ),
    ];
    for (name, request, status, code) in cases {
        let response = request.send().await.expect("answer");
        assert_eq!(response.status().as_u16(), status, "{name}");
        let body: Value = response.json().await.expect("JSON error body");
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }
    assert_eq!(jobs_in_queue(&app).await, 0, "nothing enqueued");
    let not_found = app
        .http
        .get(format!("{}/api/v1/nothing", app.address))
        .bearer_auth("demo-admin-token")
        .send()
        .await
        .expect("answer");
    assert_eq!(not_found.status().as_u16(), 404);
    let bad_filter = app
        .http
        .get(format!("{}/api/v1/meetings?state=done", app.address))
        .bearer_auth("demo-admin-token")
        .send()
        .await
        .expect("answer");
    assert_eq!(bad_filter.status().as_u16(), 422);
    app.stop().await;
}

/// SPEC §5: a full resync still queued is returned instead of queued again.
#[tokio::test]
async fn identical_full_resync_is_not_queued_twice() {
    let app = spawn_app().await;
    // the worker may take the first one at once; push two more and compare those
    let first = app.api.trigger_sync(None).await.expect("first");
    let second = app.api.trigger_sync(None).await.expect("second");
    let pending = sync_state::queue_counts(app.engine.store.db())
        .await
        .expect("counts");
    if first == second {
        assert!(pending.pending + pending.running >= 1);
    }
    let sync_jobs = app.jobs_in(Some("jmz.sync_window")).await;
    assert!(
        sync_jobs <= 2,
        "at most the running one and one queued: {sync_jobs}"
    );
    app.drain().await;
    let job = app
        .api
        .get(&format!("/api/v1/jobs/{first}"))
        .await
        .expect("job");
    assert_eq!(job["state"], "done");
    assert_eq!(job["queue"], "jmz.sync_window");
    assert!(job["last_error"].is_null());
    app.stop().await;
}

/// GET /api/v1/meetings filters by user, state and time.
#[tokio::test]
async fn meetings_filters() {
    let app = spawn_app().await;
    app.sync().await;
    let by_user = app
        .api
        .get("/api/v1/meetings?user=10006")
        .await
        .expect("user filter");
    let rows = by_user["meetings"].as_array().expect("rows");
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|m| m["host_email"] == "ito@example.co.jp"));
    let skipped = app
        .api
        .get("/api/v1/meetings?state=skipped")
        .await
        .expect("state filter");
    assert!(
        skipped["meetings"]
            .as_array()
            .expect("rows")
            .iter()
            .all(|m| m["state"] == "skipped")
    );
    let december = app
        .api
        .get("/api/v1/meetings?from=2026-12-01&to=2027-01-01&state=created")
        .await
        .expect("time filter");
    let rows = december["meetings"].as_array().expect("rows");
    assert!(rows.iter().all(|m| {
        m["start"]
            .as_str()
            .is_some_and(|s| s.starts_with("2026-12"))
    }));
    assert!(!rows.is_empty());
    let status = app.api.get("/api/v1/status").await.expect("status");
    assert_eq!(status["meetings"]["created"], 16);
    assert_eq!(status["queue"]["pending"], 0);
    assert_eq!(status["enabled"], true);
    app.stop().await;
}

/// SPEC §5: a known path with another method is a JSON 405, an unknown path a JSON 404.
#[tokio::test]
async fn wrong_method_and_unknown_path_are_json_errors() {
    let app = spawn_app().await;
    for (method, path, status, code) in [
        (
            reqwest::Method::GET,
            "/api/v1/sync",
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/meetings",
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::GET,
            "/webhooks/groupware",
            405,
            "method_not_allowed",
        ),
        (reqwest::Method::POST, "/metrics", 405, "method_not_allowed"),
        (reqwest::Method::GET, "/nothing/here", 404, "not_found"),
    ] {
        let response = app
            .http
            .request(method.clone(), format!("{}{path}", app.address))
            .bearer_auth("demo-admin-token")
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        if status == 405 {
            assert!(response.headers().contains_key("allow"), "{method} {path}");
        }
        let body: Value = response.json().await.expect("JSON error body");
        assert_eq!(body["error"]["code"], code, "{method} {path}");
    }
    assert_eq!(jobs_in_queue(&app).await, 0);
    app.stop().await;
}

/// SPEC §5: every admin route (each operation the OpenAPI document secures with the admin
/// token, so a new one is covered too) answers 401 without the token, with a wrong one, or
/// with another scheme, before its handler runs.
#[tokio::test]
async fn every_admin_route_needs_the_token() {
    let app = spawn_app().await;
    let document = app.get_json("/api/openapi.json").await;
    let mut admin_routes = Vec::new();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            if operation["security"].to_string().contains("admin_token") {
                let method: reqwest::Method = method.to_uppercase().parse().expect("method");
                admin_routes.push((method, path.replace("{id}", "01JDW3V9K6Q0M2Z8Y4X7B5N1C3")));
            }
        }
    }
    assert_eq!(admin_routes.len(), 4, "{admin_routes:?}");
    for (method, path) in admin_routes {
        let url = format!("{}{path}", app.address);
        for request in [
            app.http.request(method.clone(), &url),
            app.http.request(method.clone(), &url).bearer_auth("nope"),
            app.http
                .request(method.clone(), &url)
                .basic_auth("admin", Some("demo-admin-token")),
        ] {
            let response = request.send().await.expect("answer");
            assert_eq!(response.status().as_u16(), 401, "{method} {path}");
            let body: Value = response.json().await.expect("JSON error body");
            assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
        }
    }
    assert_eq!(jobs_in_queue(&app).await, 0);
    app.stop().await;
}

/// A caller's own `x-request-id` is answered back when sane (printable ASCII, at most 128
/// characters); any other is replaced by a fresh id.
#[tokio::test]
async fn a_sane_request_id_is_kept_and_an_insane_one_replaced() {
    let app = spawn_app().await;
    let answered = |given: String| {
        let request = app
            .http
            .get(format!("{}/healthz", app.address))
            .header("x-request-id", given);
        async move {
            let response = request.send().await.expect("answer");
            assert_eq!(response.status().as_u16(), 200);
            response
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .expect("x-request-id")
                .to_owned()
        }
    };
    let sane = "caller-trace 42/a".to_owned();
    assert_eq!(answered(sane.clone()).await, sane);
    let longest = "r".repeat(128);
    assert_eq!(answered(longest.clone()).await, longest);
    for insane in ["r".repeat(129), "tab\tinside".to_owned()] {
        let fresh = answered(insane.clone()).await;
        assert_ne!(fresh, insane);
        assert!(
            !fresh.is_empty() && fresh.len() <= 128 && fresh.bytes().all(|b| b.is_ascii_graphic()),
            "{fresh:?}"
        );
    }
    app.stop().await;
}
