//! Issue 9: `GET /api/v1/status`, `/metrics`, `GET /api/v1/jobs/{id}` and `jmotto-zoom
//! status` read apalis's job statuses one way (`store::queue::JobState`), shown on one
//! database holding jobs in every state.

use std::collections::BTreeMap;

use crate::helpers::spawn_app;
use jmotto_zoom::cli::render_status;

/// A job as apalis may leave it — (queue, status, held by a worker, attempts, run in
/// seconds from now) — and the state every view must show.
type Case = (&'static str, &'static str, bool, i64, i64, &'static str);

const CASES: [Case; 11] = [
    ("jmz.create_meeting", "Pending", false, 0, -5, "pending"),
    ("jmz.create_meeting", "Pending", false, 0, 3600, "scheduled"),
    // Fetched by a worker, its handler not started: in the worker's hands.
    ("jmz.create_meeting", "Queued", true, 0, -5, "running"),
    ("jmz.fetch_slice", "Queued", true, 0, 3600, "running"),
    ("jmz.create_meeting", "Running", true, 1, -5, "running"),
    ("jmz.create_meeting", "Done", true, 1, -5, "done"),
    // Failed with attempts left: apalis fetches it again when its time comes.
    ("jmz.fetch_slice", "Failed", true, 2, -5, "pending"),
    ("jmz.fetch_slice", "Failed", true, 2, 3600, "scheduled"),
    ("jmz.fetch_slice", "Failed", true, 5, -5, "failed"),
    ("jmz.update_meeting", "Killed", true, 1, -5, "killed"),
    ("jmz.update_meeting", "Done", true, 1, -5, "done"),
];

/// R-ENABLED's `queue` and `/metrics`' `jmz_jobs` agree, job by job and in total, and so
/// does the CLI's `status`.
#[tokio::test]
async fn status_metrics_jobs_and_cli_count_jobs_alike() {
    let mut app = spawn_app().await;
    app.stop_worker().await;
    let pool = app.engine.store.db().as_sqlite().expect("the SQLite suite");
    sqlx::query("DELETE FROM Jobs")
        .execute(pool)
        .await
        .expect("empty queue");
    sqlx::query(
        "INSERT INTO Workers (id, worker_type, storage_name, last_seen) \
         VALUES ('jmz-1-test-create-meeting', 'test', 'test', strftime('%s', 'now'))",
    )
    .execute(pool)
    .await
    .expect("worker");
    let now = chrono::Utc::now().timestamp();
    let mut ids = Vec::new();
    for (i, (queue, status, held, attempts, run_in_seconds, _)) in CASES.iter().enumerate() {
        let id = ulid::Ulid::from_parts(1, i as u128).to_string();
        sqlx::query(
            "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, lock_by) \
             VALUES (x'7b7d', ?, ?, ?, ?, 5, ?, ?)",
        )
        .bind(&id)
        .bind(queue)
        .bind(status)
        .bind(attempts)
        .bind(now + run_in_seconds)
        .bind(held.then_some("jmz-1-test-create-meeting"))
        .execute(pool)
        .await
        .expect("job");
        ids.push(id);
    }
    // Another application's queue in the same file is not ours.
    sqlx::query(
        "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts) \
         VALUES (x'7b7d', ?, 'jmzother', 'Pending', 0, 5)",
    )
    .bind(ulid::Ulid::from_parts(2, 0).to_string())
    .execute(pool)
    .await
    .expect("other job");

    // Each job's own view.
    for (id, (queue, status, .., state)) in ids.iter().zip(&CASES) {
        let job = app
            .api
            .get(&format!("/api/v1/jobs/{id}"))
            .await
            .expect("job");
        assert_eq!(job["state"], *state, "{queue} {status}");
    }

    // `/metrics`: jobs by queue and state.
    let mut expected: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (queue, .., state) in &CASES {
        *expected
            .entry(((*queue).to_owned(), (*state).to_owned()))
            .or_insert(0) += 1;
    }
    let text = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let mut gauges: BTreeMap<(String, String), i64> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("jmz_jobs{")) {
        let (labels, value) = line.rsplit_once(' ').expect("sample");
        let label = |key: &str| {
            labels
                .split(&format!("{key}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("label")
                .to_owned()
        };
        gauges.insert(
            (label("queue"), label("state")),
            value.parse().expect("count"),
        );
    }
    assert_eq!(gauges, expected, "{text}");

    // `status` (SPEC §5 `queue`): failed = out of attempts or killed.
    let in_state = |state: &str| CASES.iter().filter(|case| case.5 == state).count() as i64;
    let (pending, running, scheduled, failed) = (
        in_state("pending"),
        in_state("running"),
        in_state("scheduled"),
        in_state("failed") + in_state("killed"),
    );
    assert_eq!((pending, running, scheduled, failed), (2, 3, 2, 2));
    let status = app.api.get("/api/v1/status").await.expect("status");
    let queue = &status["queue"];
    assert_eq!(
        (
            queue["pending"].as_i64(),
            queue["running"].as_i64(),
            queue["scheduled"].as_i64(),
            queue["failed"].as_i64()
        ),
        (Some(pending), Some(running), Some(scheduled), Some(failed)),
        "{status}"
    );

    // `jmotto-zoom status` prints the same.
    let view = app.api.status().await.expect("status view");
    let printed = render_status(&view);
    let line = format!(
        "Queue: {pending} pending, {running} running, {scheduled} scheduled, {failed} failed"
    );
    assert!(printed.contains(&line), "{printed}");
    app.stop().await;
}
