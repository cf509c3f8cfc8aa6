//! SPEC §6 faults and R-ONCE, one fault class per test: the replay servers misbehave the way
//! J-MOTTO and Zoom do (`ReplayServer::inject`), and every test ends with each expected
//! meeting stored in the Zoom replay exactly once (counted per agenda marker) and each
//! entry's state and reason as the spec asks. Waits are rows in the database: a test checks
//! the wait, then lets its time pass (`advance_scheduled`) instead of sleeping.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::helpers::{DECEMBER, NOVEMBER, TestApp, spawn_app, spawn_app_with};
use jmotto_zoom::{
    domain::{meeting::Reason, policy::ReschedulePolicy},
    jobs::{CreateMeeting, FetchSlice, Job, meetings::next_utc_midnight},
    replay::{Fault, RecordedRequest, ReplayServer, faults},
    store::{db, meetings::host_slots_used},
};

/// Meetings the fixture company gets (fixtures/COMPANY.md).
const FIXTURE_MEETINGS: usize = 16;

/// R-ONCE: `expected` meetings are stored in Zoom, each marker exactly once, and each is the
/// meeting of a `created` row.
pub(crate) async fn assert_each_meeting_once(app: &TestApp, expected: usize) {
    let stored = app.stored_per_marker();
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "markers stored more than once: {twice:?}");
    assert_eq!(stored.len(), expected, "meetings stored in Zoom");
    let zoom_ids: std::collections::BTreeSet<i64> = app
        .zoom
        .zoom_meetings()
        .iter()
        .filter_map(|m| m["id"].as_i64())
        .collect();
    let created: Vec<Value> = app
        .meetings()
        .await
        .into_iter()
        .filter(|m| m["state"] == "created")
        .collect();
    assert_eq!(created.len(), expected, "created rows");
    for row in created {
        let id = row["zoom_meeting_id"]
            .as_i64()
            .expect("a created row has its id");
        assert!(zoom_ids.contains(&id), "{row} is not in Zoom");
    }
}

/// The jobs the workers of process `pid` hold (`Queued` or `Running`).
async fn held_by_process(app: &TestApp, pid: u32) -> Vec<String> {
    jmotto_zoom::store::queue::held_by(app.engine.store.db(), &format!("jmz-{pid}"))
        .await
        .expect("jobs")
}

/// The reason code of a meeting as the API shows it (`code` or `code: detail`).
fn code_of(row: &Value) -> Option<String> {
    let text = row["reason"].as_str()?;
    Reason::parse_api_text(text)
        .ok()
        .map(|reason| reason.code.to_string())
}

/// The `meetings` rows whose reason is `reason`.
async fn with_reason(app: &TestApp, reason: &str) -> Vec<Value> {
    app.meetings()
        .await
        .into_iter()
        .filter(|m| m["reason"] == reason)
        .collect()
}

fn rows_in<'a>(rows: &'a [Value], state: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["state"] == state).collect()
}

async fn next_attempt_at(app: &TestApp, schedule_id: &str) -> Vec<Option<String>> {
    db::query(
        "SELECT next_attempt_at FROM meetings WHERE schedule_id = $1 ORDER BY occurrence, start_utc",
    )
    .bind(schedule_id)
    .scalars(app.engine.store.db())
    .await
    .expect("meeting rows")
}

/// How many requests `server` received for which `applies` holds.
fn count(server: &ReplayServer, applies: impl Fn(&RecordedRequest) -> bool) -> usize {
    server.requests().iter().filter(|r| applies(r)).count()
}

/// Moves 8801 (tanaka's, November) to another local start and end.
fn move_8801(app: &TestApp, start: &str, end: &str) {
    app.edit_entry(&["10002"], NOVEMBER, "8801", |e| {
        e["start"] = json!(start);
        e["end"] = json!(end);
        true
    });
}

/// The next UTC day, as far as the quota is concerned: every host's count starts again.
async fn next_utc_day(app: &TestApp) {
    db::query("DELETE FROM host_daily_usage")
        .execute(app.engine.store.db())
        .await
        .expect("a new day");
}

fn unix(instant: DateTime<Utc>) -> i64 {
    instant.timestamp()
}

/// SPEC §6 5xx: a create answered 502 may have reached Zoom, so the retry looks among the
/// host's meetings first, finds nothing, and creates it (R-ONCE).
#[tokio::test]
async fn r_once_zoom_5xx_is_retried_with_backoff() {
    let app = spawn_app().await;
    app.zoom
        .inject(Fault::ServerError(502), 2, faults::zoom_create);
    app.sync().await;
    app.settle().await;
    assert_eq!(app.zoom.faulted().len(), 2);
    let looked = count(&app.zoom, faults::zoom_list);
    assert!(
        looked >= 2,
        "each retry after a 5xx looked first ({looked})"
    );
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// SPEC §6 timeouts and R-ONCE: Zoom stores the meeting but answers after the client's
/// timeout; the retry finds it by marker, start and duration and adopts it.
#[tokio::test]
async fn r_once_timeout_after_zoom_created_the_meeting_is_adopted() {
    let app = spawn_app_with(|s| s.worker.http_timeout_seconds = 2).await;
    app.zoom.inject(
        Fault::Delay(std::time::Duration::from_millis(5000)),
        1,
        faults::zoom_create_for("suzuki@example.co.jp"),
    );
    app.sync().await;
    app.settle().await;
    let adopted = with_reason(&app, "adopted").await;
    assert_eq!(adopted.len(), 1, "the timed-out create was adopted");
    assert_eq!(adopted[0]["host_email"], "suzuki@example.co.jp");
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// R-ONCE, lost response: Zoom creates the meeting and the connection drops before the
/// answer. With the list scope the retry adopts it; with only the seed's scopes it creates
/// again and flags the row `possible_duplicate` (SPEC R-ONCE).
#[tokio::test]
async fn r_once_lost_response() {
    let app = spawn_app_with(|s| s.worker.http_timeout_seconds = 3).await;
    app.zoom.inject(
        Fault::LostResponse,
        1,
        faults::zoom_create_for("ito@example.co.jp"),
    );
    app.sync().await;
    app.settle().await;
    let rows = app.meetings().await;
    let adopted: Vec<&Value> = rows.iter().filter(|m| m["reason"] == "adopted").collect();
    assert_eq!(adopted.len(), 1, "{rows:#?}");
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;

    let app = spawn_app_with(|s| s.worker.http_timeout_seconds = 3).await;
    let seed_scopes: jmotto_zoom::replay::Exchange = serde_json::from_value(json!({
        "name": "token with the seed's two scopes",
        "request": {"method": "POST", "path": "/oauth/token"},
        "response": {"status": 200, "json": {
            "access_token": "replay-access-token-1", "token_type": "bearer", "expires_in": 3599,
            "scope": "meeting:write:meeting:admin user:read:email:admin"}}
    }))
    .expect("exchange");
    app.zoom.override_exchange(seed_scopes);
    app.zoom.inject(
        Fault::LostResponse,
        1,
        faults::zoom_create_for("ito@example.co.jp"),
    );
    app.sync().await;
    app.settle().await;
    let flagged = with_reason(&app, "possible_duplicate").await;
    assert_eq!(flagged.len(), 1);
    let marker = format!(
        "jmotto-zoom: {}{}",
        flagged[0]["schedule_id"].as_str().expect("id"),
        match flagged[0]["occurrence"].as_str() {
            Some("") | None => String::new(),
            Some(o) => format!("/{o}"),
        }
    );
    assert_eq!(app.stored_per_marker()[&marker], 2, "the flagged duplicate");
    assert_eq!(app.zoom.zoom_meetings().len(), FIXTURE_MEETINGS + 1);
    assert!(!app.zoom.requests().iter().any(faults::zoom_list));
    app.stop().await;
}

/// SPEC §6: slow answers within the client's timeout are just slow — no retry, no look-up.
#[tokio::test]
async fn slow_zoom_answers_cost_no_retry() {
    let app = spawn_app().await;
    app.zoom.inject(
        Fault::Delay(std::time::Duration::from_millis(300)),
        8,
        faults::zoom_api,
    );
    app.sync().await;
    assert_eq!(app.creates().len(), FIXTURE_MEETINGS);
    assert!(!app.zoom.requests().iter().any(faults::zoom_list));
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// SPEC §6 per-second 429: with `Retry-After` seconds the row is `deferred` until then (a
/// scheduled job); without it, exponential backoff. Zoom answered, so no look-up is needed.
#[tokio::test]
async fn zoom_per_second_429_waits_retry_after_or_backs_off() {
    let app = spawn_app().await;
    app.zoom.inject(
        Fault::ZoomPerSecond {
            retry_after_seconds: Some(30),
        },
        1,
        faults::zoom_create_for("suzuki@example.co.jp"),
    );
    app.zoom.inject(
        Fault::ZoomPerSecond {
            retry_after_seconds: None,
        },
        2,
        faults::zoom_create_for("ito@example.co.jp"),
    );
    let before = Utc::now();
    app.sync().await;
    let deferred: Vec<Value> = app
        .meetings()
        .await
        .into_iter()
        .filter(|m| m["state"] == "deferred" && m["reason"] == "rate_limited")
        .collect();
    assert!(
        deferred
            .iter()
            .any(|m| m["host_email"] == "suzuki@example.co.jp"),
        "{deferred:#?}"
    );
    let waits = app.scheduled_run_times(CreateMeeting::QUEUE).await;
    assert!(
        waits
            .iter()
            .any(|&at| at >= unix(before) + 29 && at <= unix(Utc::now()) + 31),
        "a job waits for Retry-After: {waits:?}"
    );
    app.settle().await;
    assert_eq!(app.zoom.faulted().len(), 3);
    assert!(!app.zoom.requests().iter().any(faults::zoom_list));
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// SPEC §6 account daily 429: the create waits for the ISO `Retry-After` instant, durably —
/// `deferred`, `scheduled` in status, and still so after a worker restart — then runs.
#[tokio::test]
async fn zoom_account_daily_429_waits_for_the_iso_retry_after_across_a_restart() {
    let mut app = spawn_app().await;
    let resume = (Utc::now() + chrono::Duration::hours(20))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    app.zoom.inject(
        Fault::ZoomAccountDaily {
            retry_after: resume.clone(),
        },
        1,
        faults::zoom_create_for("tanaka@example.co.jp"),
    );
    app.sync().await;
    let check = |rows: Vec<Value>| {
        let deferred = rows_in(&rows, "deferred")
            .into_iter()
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(deferred.len(), 1, "{rows:#?}");
        assert_eq!(deferred[0]["reason"], "account_daily_limit");
    };
    check(app.meetings().await);
    let resume_at = DateTime::parse_from_rfc3339(&resume)
        .expect("iso")
        .timestamp();
    assert_eq!(
        app.scheduled_run_times(CreateMeeting::QUEUE).await,
        [resume_at]
    );
    let status = app.api.get("/api/v1/status").await.expect("status");
    assert_eq!(status["queue"]["scheduled"], 1, "{status}");
    assert_eq!(status["meetings"]["deferred"], 1, "{status}");

    app.restart_worker().await;
    app.drain().await;
    check(app.meetings().await);
    assert_eq!(
        app.scheduled_run_times(CreateMeeting::QUEUE).await,
        [resume_at]
    );

    app.settle().await;
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// SPEC §6 per-host daily limit, as HTTP 429 and as HTTP 300: that host's creates are
/// deferred to the next 00:00 UTC without further calls while the other hosts go on; on the
/// next UTC day they run.
#[tokio::test]
async fn zoom_host_daily_limit_defers_that_host_to_midnight() {
    for http_300 in [false, true] {
        let app = spawn_app().await;
        app.zoom.inject(
            Fault::ZoomHostDaily { http_300 },
            1,
            faults::zoom_create_for("tanaka@example.co.jp"),
        );
        let before = Utc::now();
        app.sync().await;
        let rows = app.meetings().await;
        let tanaka: Vec<&Value> = rows
            .iter()
            .filter(|r| r["host_email"] == "tanaka@example.co.jp" && r["reason"] != "ended")
            .collect();
        let deferred: Vec<&&Value> = tanaka.iter().filter(|r| r["state"] == "deferred").collect();
        assert!(!deferred.is_empty(), "http_300 = {http_300}: {rows:#?}");
        assert!(deferred.iter().all(|r| r["reason"] == "host_daily_limit"));
        let tanaka_created = tanaka.iter().filter(|r| r["state"] == "created").count();
        assert_eq!(tanaka_created + deferred.len(), tanaka.len());
        let tanaka_posts = count(&app.zoom, |r| {
            faults::zoom_create_for("tanaka@example.co.jp")(r)
        });
        assert_eq!(
            tanaka_posts,
            tanaka_created + 1,
            "no call for that host after Zoom's answer"
        );
        let others_created = rows
            .iter()
            .filter(|r| r["host_email"] != "tanaka@example.co.jp" && r["state"] == "created")
            .count();
        assert_eq!(others_created + tanaka.len(), FIXTURE_MEETINGS);
        let midnight = unix(next_utc_midnight(before));
        let waits = app.scheduled_run_times(CreateMeeting::QUEUE).await;
        assert_eq!(waits.len(), deferred.len());
        assert!(
            waits
                .iter()
                .all(|&at| at == midnight || at == unix(next_utc_midnight(Utc::now())))
        );

        next_utc_day(&app).await;
        app.settle().await;
        assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
        app.stop().await;
    }
}

/// An entry of the daily-quota company: one hour on a December day, hosted by `owner`.
fn bulk_entry(index: usize, owner: &str) -> Value {
    let day = 1 + index % 28;
    let hour = 8 + (index / 28) % 10;
    json!({
        "id": format!("{}", 9000 + index), "occurrence": "", "repeat": "none",
        "event": "会議", "detail": format!("一括 {index}"), "place": "ZOOM 会議",
        "place_detail": "", "memo": "", "allday": false,
        "start": format!("2026-12-{day:02}T{hour:02}:00:00"),
        "end": format!("2026-12-{day:02}T{hour:02}:30:00"),
        "owner": owner, "members": [owner], "private": false,
        "updated": "2026-11-20T09:00:00"
    })
}

/// SPEC §6 daily quota, counted by the worker: one host with 105 entries gets 100 meetings
/// (counted exactly in the database by concurrent jobs) and 5 rows `deferred` to the next
/// 00:00 UTC; the other hosts complete. And SPEC §6 pacing: 116 creates at the configured
/// rate draw no per-second 429 from a replay that enforces it.
#[tokio::test]
async fn daily_host_quota_creates_100_and_defers_5_to_midnight() {
    let app = spawn_app_with(|s| {
        s.zoom.create_per_second = 8;
        s.zoom.requests_per_second = 16;
        s.users.push(
            toml::from_str(
                "groupware_id = \"10009\"\nzoom_email = \"bulk@example.co.jp\"\nenabled = true",
            )
            .expect("a user"),
        );
    })
    .await;
    // SPEC §6 pacing as well: the replay answers Zoom's per-second 429 to any call over
    // Zoom's limits (10 creates/s, 20 other calls/s); the worker, configured within them,
    // must cause none.
    app.zoom.enforce_rate(10, 20);
    let entries: Vec<Value> = (0..105).map(|i| bulk_entry(i, "10009")).collect();
    app.jmotto
        .set_events("10009", NOVEMBER.0, NOVEMBER.1, 1, json!([]), None);
    app.jmotto.set_events(
        "10009",
        DECEMBER.0,
        DECEMBER.1,
        1,
        Value::Array(entries[..100].to_vec()),
        Some(2),
    );
    app.jmotto.set_events(
        "10009",
        DECEMBER.0,
        DECEMBER.1,
        2,
        Value::Array(entries[100..].to_vec()),
        None,
    );
    app.jmotto
        .set_events("10009", "2027-01-01", "2027-01-31", 1, json!([]), None);
    let before = Utc::now();
    app.sync().await;
    let rows = app.meetings().await;
    let bulk: Vec<&Value> = rows
        .iter()
        .filter(|r| r["host_email"] == "bulk@example.co.jp")
        .collect();
    assert_eq!(bulk.len(), 105);
    assert_eq!(bulk.iter().filter(|r| r["state"] == "created").count(), 100);
    let deferred: Vec<&&Value> = bulk.iter().filter(|r| r["state"] == "deferred").collect();
    assert_eq!(deferred.len(), 5);
    assert!(deferred.iter().all(|r| r["reason"] == "host_daily_limit"));
    let midnight = next_utc_midnight(before);
    let waits = app.scheduled_run_times(CreateMeeting::QUEUE).await;
    assert_eq!(waits.len(), 5);
    assert!(waits.iter().all(|&at| at == unix(midnight)), "{waits:?}");
    let stored_next: Vec<String> = db::query(
        "SELECT next_attempt_at FROM meetings WHERE host_email = 'bulk@example.co.jp' AND state = 'deferred'",
    )
    .scalars(app.engine.store.db())
    .await
    .expect("rows");
    assert!(
        stored_next
            .iter()
            .all(|t| *t == jmotto_zoom::store::utc_text(midnight))
    );
    let status = app.api.get("/api/v1/status").await.expect("status");
    assert_eq!(status["queue"]["scheduled"], 5, "{status}");
    assert_eq!(status["meetings"]["deferred"], 5, "{status}");
    let day = before.format("%Y-%m-%d").to_string();
    let mut conn = app.engine.store.db().acquire().await.expect("conn");
    assert_eq!(
        host_slots_used(&mut conn, "bulk@example.co.jp", &day)
            .await
            .expect("usage"),
        100
    );
    drop(conn);
    let bulk_posts = count(&app.zoom, |r| {
        faults::zoom_create_for("bulk@example.co.jp")(r)
    });
    assert_eq!(
        bulk_posts, 100,
        "the worker defers before Zoom would refuse"
    );
    assert_each_meeting_once(&app, FIXTURE_MEETINGS + 100).await;
    app.stop().await;
}

/// SPEC §6 expired token: a 401 code 124 makes the client fetch a new token once and
/// repeat the call; nothing fails or waits.
#[tokio::test]
async fn zoom_expired_token_is_renewed_once() {
    let app = spawn_app().await;
    app.zoom
        .inject(Fault::ZoomExpiredToken, 1, faults::zoom_create);
    app.sync_unchecked().await;
    let tokens = count(&app.zoom, |r| r.path == "/oauth/token");
    assert_eq!(tokens, 2, "one new token after the 401");
    assert_eq!(app.creates().len(), FIXTURE_MEETINGS + 1);
    assert!(
        app.meetings()
            .await
            .iter()
            .all(|m| m["state"] != "deferred")
    );
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// Rows whose next create would look for a meeting an earlier attempt may have made.
async fn looking_first(app: &TestApp) -> i64 {
    db::query("SELECT COUNT(*) FROM meetings WHERE look_first")
        .scalar(app.engine.store.db())
        .await
        .expect("rows")
}

/// SPEC §6 daily quota and R-ONCE: the access token expires (401 code 124) and Zoom's token
/// endpoint answers 500 five times while the creates run. The creates that could not get a
/// token never reached Zoom: they give their slot back and are retried as ordinary creates
/// (never `failed_after_send`, never looking first, never flagged a possible duplicate); in
/// the end each meeting is created once and the quota counts one slot per meeting.
#[tokio::test]
async fn failed_token_requests_use_no_quota_and_are_not_possibly_sent() {
    let app = spawn_app().await;
    let token_requests = || count(&app.zoom, |r| r.path == "/oauth/token");
    // The worker's start-up check fetches (and caches) the first token.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while token_requests() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no start-up token");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.zoom
        .inject(Fault::ZoomExpiredToken, 1, faults::zoom_create);
    app.zoom
        .inject(Fault::ServerError(500), 5, |r: &RecordedRequest| {
            r.path == "/oauth/token"
        });
    app.sync_unchecked().await;
    assert_eq!(app.zoom.faulted().len(), 6);
    assert_eq!(looking_first(&app).await, 0, "{:#?}", app.meetings().await);
    app.settle().await;
    assert_eq!(
        app.creates().len(),
        FIXTURE_MEETINGS + 1,
        "each create sent once, and the one answered 401"
    );
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    for reason in ["failed_after_send", "possible_duplicate", "adopted"] {
        let rows: Vec<Value> = app
            .meetings()
            .await
            .into_iter()
            .filter(|m| code_of(m).as_deref() == Some(reason))
            .collect();
        assert!(rows.is_empty(), "{reason}: {rows:#?}");
    }
    assert_eq!(looking_first(&app).await, 0);
    let used: i64 =
        db::query("SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT) FROM host_daily_usage")
            .scalar(app.engine.store.db())
            .await
            .expect("usage");
    assert_eq!(used, i64::try_from(FIXTURE_MEETINGS).expect("small"));
    app.stop().await;
}

/// SPEC §6 daily quota counts updates too, but only sent ones: an update whose token could
/// not be fetched (401 code 124, then the token endpoint answers 500) gives its slot back;
/// its retry PATCHes, and the host's day counts one slot for the update.
#[tokio::test]
async fn an_update_without_a_token_uses_no_quota() {
    let app = spawn_app_with(|s| s.sync.on_reschedule = ReschedulePolicy::Update).await;
    app.sync().await;
    let day = Utc::now().format("%Y-%m-%d").to_string();
    let used = || async {
        let mut conn = app.engine.store.db().acquire().await.expect("conn");
        host_slots_used(&mut conn, "tanaka@example.co.jp", &day)
            .await
            .expect("usage")
    };
    let before = used().await;
    app.zoom
        .inject(Fault::ZoomExpiredToken, 1, faults::zoom_update);
    app.zoom
        .inject(Fault::ServerError(500), 1, |r: &RecordedRequest| {
            r.path == "/oauth/token"
        });
    move_8801(&app, "2026-11-26T15:00:00", "2026-11-26T16:30:00");
    app.sync_unchecked().await;
    app.settle().await;
    assert_eq!(app.zoom.faulted().len(), 2);
    let row = &app.meetings_of("8801", "").await[0];
    assert_eq!(
        (&row["state"], &row["reason"]),
        (&json!("created"), &json!("updated")),
        "{row}"
    );
    assert_eq!(used().await, before + 1);
    app.stop().await;
}

/// SPEC §6 J-MOTTO 429: a busy J-MOTTO makes the slice wait ~10 s in the database (a
/// scheduled job), then it lists again; nothing is treated as deleted meanwhile (R-DELETE).
#[tokio::test]
async fn jmotto_429_burst_waits_ten_seconds_per_slice() {
    let app = spawn_app().await;
    app.jmotto
        .inject(Fault::JmottoBusy, 3, faults::jmotto_list_events);
    let before = Utc::now();
    app.sync().await;
    let waits = app.scheduled_run_times(FetchSlice::QUEUE).await;
    assert_eq!(waits.len(), 3, "three slices wait");
    assert!(
        waits
            .iter()
            .all(|&at| at >= unix(before) + 9 && at <= unix(Utc::now()) + 11),
        "{waits:?}"
    );
    let status = app.api.get("/api/v1/status").await.expect("status");
    assert!(status["queue"]["scheduled"].as_i64() >= Some(3), "{status}");
    app.settle().await;
    assert!(app.meetings().await.iter().all(|m| m["state"] != "deleted"));
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// J-MOTTO errorno 1002: the client logs in again once and repeats the call.
#[tokio::test]
async fn jmotto_expired_access_key_logs_in_again() {
    let app = spawn_app().await;
    app.jmotto
        .inject(Fault::JmottoExpiredKey, 1, faults::jmotto_list_events);
    app.sync_unchecked().await;
    let logins = count(&app.jmotto, |r| {
        r.form.get("action").map(String::as_str) == Some("login")
    });
    assert_eq!(logins, 2);
    assert_eq!(
        app.scheduled_run_times(FetchSlice::QUEUE).await,
        Vec::<i64>::new()
    );
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// SPEC §6 bounded attempts: a host whose creates always fail ends `failed` with the reason
/// after `worker.max_attempts`; the next sync tries again (looking first) and creates each
/// once.
#[tokio::test]
async fn r_once_bounded_attempts_then_failed_then_retried_by_the_next_sync() {
    let app = spawn_app_with(|s| s.worker.max_attempts = 2).await;
    app.zoom.inject(
        Fault::ServerError(500),
        usize::MAX,
        faults::zoom_create_for("suzuki@example.co.jp"),
    );
    app.sync().await;
    app.settle().await;
    let rows = app.meetings().await;
    let failed = rows_in(&rows, "failed");
    assert_eq!(failed.len(), 2, "{rows:#?}");
    for row in &failed {
        assert_eq!(row["host_email"], "suzuki@example.co.jp");
        let reason = row["reason"].as_str().unwrap_or("");
        assert_eq!(
            code_of(row).as_deref(),
            Some("failed_after_send"),
            "{reason}"
        );
        assert!(reason.contains("500"), "{reason}");
    }
    assert_eq!(next_attempt_at(&app, "8803").await.len(), 1);
    app.zoom.clear_faults();
    app.sync().await;
    app.settle().await;
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// R-RESCHEDULE `replace`, moved back: 8801 moves away and back; the meeting it moved away
/// from is deleted again, so Zoom holds exactly one meeting for the entry.
#[tokio::test]
async fn r_reschedule_replace_moving_back_deletes_the_middle_meeting() {
    let app = spawn_app_with(|s| s.sync.on_reschedule = ReschedulePolicy::Replace).await;
    app.sync().await;
    for (start, end) in [
        ("2026-11-26T15:00:00", "2026-11-26T16:30:00"),
        ("2026-11-26T14:00:00", "2026-11-26T15:00:00"),
    ] {
        move_8801(&app, start, end);
        app.sync().await;
    }
    let stored = app.stored_per_marker();
    assert_eq!(stored["jmotto-zoom: 8801"], 1, "{stored:?}");
    let rows = app.meetings_of("8801", "").await;
    let states: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["start"].as_str().unwrap_or(""),
                r["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("2026-11-26T14:00:00+09:00", "created"),
            ("2026-11-26T15:00:00+09:00", "deleted")
        ]
    );
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// R-RESCHEDULE `update`: an update whose retries ran out is PATCHed again by the next sync
/// (the row already holds the new content, Zoom may not).
#[tokio::test]
async fn r_reschedule_update_failed_update_is_retried_by_the_next_sync() {
    let app = spawn_app_with(|s| {
        s.sync.on_reschedule = ReschedulePolicy::Update;
        s.worker.max_attempts = 1;
    })
    .await;
    app.sync().await;
    app.zoom
        .inject(Fault::ServerError(500), 1, faults::zoom_update);
    move_8801(&app, "2026-11-26T15:00:00", "2026-11-26T16:30:00");
    app.sync().await;
    let row = &app.meetings_of("8801", "").await[0];
    assert_eq!(code_of(row).as_deref(), Some("update_failed"), "{row}");
    let zoom_id = row["zoom_meeting_id"].as_i64().expect("id");
    let in_zoom = |app: &TestApp| {
        app.zoom
            .zoom_meetings()
            .into_iter()
            .find(|m| m["id"] == zoom_id)
            .expect("the meeting")["start_time"]
            .clone()
    };
    assert_eq!(
        in_zoom(&app),
        "2026-11-26T05:00:00Z",
        "Zoom has the old time"
    );
    app.sync().await;
    assert_eq!(in_zoom(&app), "2026-11-26T06:00:00Z");
    let row = &app.meetings_of("8801", "").await[0];
    assert_eq!(row["reason"], "updated");
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// Waits (polling, bounded) until the Zoom replay has received a faulted request.
async fn until_faulted(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.zoom.faulted().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no faulted request");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Graceful shutdown: a create in flight when the worker is told to stop finishes within
/// `worker.shutdown_timeout_seconds`; one that takes longer is released — pending, unlocked,
/// ready at once for the next start — and that start adopts what Zoom made (R-ONCE).
#[tokio::test]
async fn shutdown_lets_running_jobs_finish_then_releases_the_rest() {
    // 9.5 s of slack for the create that finishes (a machine loaded by parallel builds
    // missed 5.5 s); the one cut off answers 4 s after the shutdown timeout, still inside
    // the HTTP timeout.
    for (delay_ms, finishes) in [(500, true), (14_000, false)] {
        let mut app = spawn_app_with(|s| {
            s.worker.shutdown_timeout_seconds = 10;
            s.worker.http_timeout_seconds = 18;
        })
        .await;
        app.zoom.inject(
            Fault::Delay(std::time::Duration::from_millis(delay_ms)),
            1,
            faults::zoom_create_for("suzuki@example.co.jp"),
        );
        app.api.trigger_sync(None).await.expect("sync accepted");
        until_faulted(&app).await;
        app.stop_worker().await;
        let held: Vec<(String, Option<String>)> = db::Query::per_backend(
            "SELECT status, lock_by FROM Jobs WHERE status IN ('Queued', 'Running')",
            "SELECT status, lock_by FROM apalis.jobs WHERE status IN ('Queued', 'Running')",
        )
        .fetch_all(app.engine.store.db())
        .await
        .expect("jobs");
        assert!(held.is_empty(), "no job left locked: {held:?}");
        let released: i64 = db::Query::per_backend(
            "SELECT count(*) FROM Jobs WHERE job_type = $1 AND last_result LIKE '%Released at worker shutdown%'",
            "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 \
             AND last_result::TEXT LIKE '%Released at worker shutdown%'",
        )
        .bind(CreateMeeting::QUEUE)
        .scalar(app.engine.store.db())
        .await
        .expect("jobs");
        let rows_at_stop = app.meetings().await;
        let suzuki_created_at_stop = rows_at_stop
            .iter()
            .filter(|m| m["host_email"] == "suzuki@example.co.jp" && m["state"] == "created")
            .count();
        if finishes {
            assert!(
                suzuki_created_at_stop >= 1,
                "the running create finished: {rows_at_stop:#?}"
            );
        } else {
            assert!(released >= 1, "the cut-off create was released");
        }
        app.start_worker().await;
        app.settle().await;
        // The delayed create (suzuki's first) is adopted exactly when it was cut off; any
        // other create in flight at the cut-off (a loaded machine) may be adopted too.
        let suzuki_adopted = with_reason(&app, "adopted")
            .await
            .iter()
            .filter(|m| m["host_email"] == "suzuki@example.co.jp")
            .count();
        if finishes {
            assert_eq!(suzuki_adopted, 0, "delay {delay_ms} ms");
        } else {
            assert!(suzuki_adopted >= 1, "delay {delay_ms} ms");
        }
        assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
        app.stop().await;
    }
}

/// Stops the app's own worker, starts the worker binary as a process on the app's database
/// (its `[worker]` settings changed by `worker_settings`), triggers a sync and waits until
/// that process is stuck in a create Zoom stored but does not answer for a minute.
async fn worker_process_in_a_create(
    app: &mut TestApp,
    worker_settings: &str,
) -> (tokio::process::Child, tempfile::TempDir) {
    app.stop_worker().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let config = folder.path().join("worker.toml");
    let text = jmotto_zoom::cli::demo::demo_config(
        &app.jmotto,
        &app.zoom,
        &app.engine.settings.database.url,
        "127.0.0.1:0",
    )
    .replace(
        "queue_poll_interval_ms = 50",
        &format!("queue_poll_interval_ms = 50\n{worker_settings}"),
    );
    std::fs::write(&config, text).expect("config written");
    app.zoom.inject(
        Fault::Delay(std::time::Duration::from_secs(60)),
        1,
        faults::zoom_create_for("ito@example.co.jp"),
    );
    let process = tokio::process::Command::new(env!("CARGO_BIN_EXE_jmotto-zoom-worker"))
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("worker process starts");
    app.api.trigger_sync(None).await.expect("sync accepted");
    until_faulted(app).await;
    (process, folder)
}

/// SPEC §6 dead worker: a worker *process* SIGKILLed in the middle of a create has its jobs
/// run again by a live worker of another process within 15 s (here: taken back through
/// the dead process's lock file, then the create looks and adopts what Zoom stored).
#[tokio::test]
async fn r_once_job_of_a_sigkilled_worker_process_runs_again_within_15_s() {
    let mut app = spawn_app_with(|s| s.worker.http_timeout_seconds = 30).await;
    let (mut process, _folder) = worker_process_in_a_create(&mut app, "").await;
    app.start_worker().await;
    process.start_kill().expect("SIGKILL");
    let killed_at = std::time::Instant::now();
    process.wait().await.expect("killed");
    let deadline = killed_at + std::time::Duration::from_secs(15);
    loop {
        if !with_reason(&app, "adopted").await.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the killed worker's create did not run again within 15 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.settle().await;
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// SPEC §6 dead worker, the fallback when its lock file is gone: apalis-sqlite's rescue. A
/// live worker re-enqueues, on its own heartbeat, the jobs of a worker whose last beat is
/// two heartbeats old — so within three heartbeats (and a few seconds of rounding and load).
#[tokio::test]
async fn dead_worker_jobs_are_rescued_by_the_heartbeat_without_a_lock_file() {
    const HEARTBEAT: u64 = 2;
    let mut app = spawn_app_with(|s| s.worker.heartbeat_seconds = HEARTBEAT).await;
    let (mut process, _folder) =
        worker_process_in_a_create(&mut app, &format!("heartbeat_seconds = {HEARTBEAT}")).await;
    let pid = process.id().expect("pid");
    let held = held_by_process(&app, pid).await;
    assert!(!held.is_empty(), "the process holds its create");
    if crate::helpers::on_postgres() {
        // PostgreSQL's lock: the process is no longer listed, so no rescuer tries it.
        db::query("DELETE FROM worker_processes")
            .execute(app.engine.store.db())
            .await
            .expect("worker processes forgotten");
    } else {
        let lock_folder = std::path::PathBuf::from(
            app.engine
                .settings
                .database
                .url
                .trim_start_matches("sqlite://")
                .to_owned()
                + ".workers",
        );
        for entry in std::fs::read_dir(&lock_folder)
            .expect("lock folder")
            .flatten()
        {
            std::fs::remove_file(entry.path()).expect("lock file removed");
        }
    }
    app.start_worker().await;
    process.start_kill().expect("SIGKILL");
    let killed_at = std::time::Instant::now();
    process.wait().await.expect("killed");
    // two missed beats, the live worker's next beat, then seconds of rounding and load
    // Orphan timeout (2 beats) + the live worker's next tick + rounding, with slack for a
    // loaded machine.
    let bound = std::time::Duration::from_secs(3 * HEARTBEAT + 10);
    loop {
        if held_by_process(&app, pid).await.is_empty() {
            break;
        }
        assert!(
            killed_at.elapsed() < bound,
            "not rescued within {bound:?} of the kill"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // the dead process's claim has no known end but its length: let that time pass
    db::query("UPDATE meetings SET claimed_at = '2000-01-01T00:00:00Z' WHERE state = 'creating'")
        .execute(app.engine.store.db())
        .await
        .expect("claims");
    app.settle().await;
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// Overlapping sync runs (R-RESCHEDULE `update`): a listing older than one already applied
/// — by J-MOTTO's `updated` — is not applied again, so a slow slice of an earlier run cannot
/// move a meeting back.
#[tokio::test]
async fn r_reschedule_an_older_listing_never_undoes_a_newer_one() {
    let app = spawn_app_with(|s| s.sync.on_reschedule = ReschedulePolicy::Update).await;
    app.sync().await;
    let original = app
        .jmotto
        .events("10002", NOVEMBER.0, NOVEMBER.1, 1)
        .expect("events");
    app.edit_entry(&["10002"], NOVEMBER, "8801", |e| {
        e["start"] = json!("2026-11-26T15:00:00");
        e["end"] = json!("2026-11-26T16:30:00");
        e["updated"] = json!("2026-11-25T09:30:00");
        true
    });
    app.sync().await;
    assert_eq!(
        app.meetings_of("8801", "").await[0]["start"],
        "2026-11-26T15:00:00+09:00"
    );
    app.zoom.clear_requests();
    // an earlier run's listing, answered late
    app.jmotto
        .set_events("10002", NOVEMBER.0, NOVEMBER.1, 1, original, None);
    app.sync().await;
    assert!(app.zoom_writes().is_empty(), "{:?}", app.zoom_writes());
    let rows = app.meetings_of("8801", "").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["start"], "2026-11-26T15:00:00+09:00");
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// R-DELETE `delete`: a delete whose retries ran out is recorded (`delete_failed`) and the
/// next complete listing deletes the meeting after all.
#[tokio::test]
async fn r_delete_failed_delete_is_retried_by_the_next_complete_listing() {
    let app = spawn_app_with(|s| {
        s.sync.on_delete = jmotto_zoom::domain::policy::DeletePolicy::Delete;
        s.worker.max_attempts = 1;
    })
    .await;
    app.sync().await;
    app.zoom
        .inject(Fault::ServerError(503), 1, faults::zoom_delete);
    app.edit_entry(&["10002"], NOVEMBER, "8801", |_| false);
    app.sync().await;
    let row = &app.meetings_of("8801", "").await[0];
    assert_eq!(row["state"], "created", "{row}");
    assert_eq!(code_of(row).as_deref(), Some("delete_failed"), "{row}");
    assert_eq!(app.stored_per_marker()["jmotto-zoom: 8801"], 1);
    app.sync().await;
    let row = &app.meetings_of("8801", "").await[0];
    assert_eq!(row["state"], "deleted", "{row}");
    assert_eq!(row["reason"], "entry_deleted");
    assert!(!app.stored_per_marker().contains_key("jmotto-zoom: 8801"));
    assert_each_meeting_once(&app, FIXTURE_MEETINGS - 1).await;
    app.stop().await;
}

/// SPEC §6 daily quota counts updates too: with tanaka's 11 creates filling a limit of 11,
/// a reschedule under `update` is not sent but deferred to 00:00 UTC (the meeting stays
/// `created`, reason `update_deferred…`), and PATCHed on the next UTC day.
#[tokio::test]
async fn daily_host_quota_defers_an_update_to_midnight() {
    let app = spawn_app_with(|s| {
        s.sync.on_reschedule = ReschedulePolicy::Update;
        s.zoom.daily_host_limit = 11;
    })
    .await;
    app.sync().await;
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.zoom.clear_requests();
    let before = Utc::now();
    move_8801(&app, "2026-11-26T15:00:00", "2026-11-26T16:30:00");
    app.sync().await;
    assert!(app.zoom_writes().is_empty(), "{:?}", app.zoom_writes());
    let row = &app.meetings_of("8801", "").await[0];
    assert_eq!(row["state"], "created");
    assert_eq!(row["reason"], "update_deferred: host_daily_limit");
    assert_eq!(
        app.scheduled_run_times(jmotto_zoom::jobs::UpdateMeeting::QUEUE)
            .await,
        [unix(next_utc_midnight(before))]
    );
    next_utc_day(&app).await;
    app.settle().await;
    let writes = app.zoom_writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "PATCH");
    assert_eq!(app.meetings_of("8801", "").await[0]["reason"], "updated");
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// Graceful shutdown of the worker binary on SIGTERM: it exits 0 after
/// `worker.shutdown_timeout_seconds` although a create hangs, leaves no job locked, and the
/// next worker adopts what Zoom stored at once (R-ONCE).
#[tokio::test]
async fn worker_process_stops_on_sigterm_and_releases_its_jobs() {
    let mut app = spawn_app().await;
    let (mut process, _folder) =
        worker_process_in_a_create(&mut app, "shutdown_timeout_seconds = 1").await;
    let pid = process.id().expect("pid");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), process.wait())
        .await
        .expect("the worker stops after SIGTERM")
        .expect("exit status");
    assert!(status.success(), "exit 0 on SIGTERM: {status:?}");
    let held = held_by_process(&app, pid).await;
    assert!(held.is_empty(), "the stopped worker holds no job: {held:?}");
    app.start_worker().await;
    app.settle().await;
    // The create held in Zoom is adopted; on a loaded machine other creates may have been
    // in flight at SIGTERM too, and are adopted the same way: never created twice.
    let adopted = with_reason(&app, "adopted").await;
    assert!(
        adopted
            .iter()
            .any(|row| row["host_email"] == "ito@example.co.jp"),
        "{adopted:#?}"
    );
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}

/// A queue's apalis worker that stops beating (seen under the benchmark's heavy load: that
/// queue's jobs were never fetched again) stops the worker process with an error naming it,
/// so its service manager restarts it; the restarted worker does the work (nothing lost).
#[tokio::test]
async fn a_stalled_queue_worker_stops_the_process() {
    if std::env::var("JMZ_TEST_LOG").is_ok() {
        jmotto_zoom::telemetry::init("info", jmotto_zoom::config::LogFormat::Text);
    }
    let mut app = spawn_app_with(|s| s.worker.heartbeat_seconds = 1).await;
    let pool = app.engine.store.db().clone();
    // From now on apalis's heartbeats of the sync-window queue change nothing.
    let freeze: &[&'static str] = if crate::helpers::on_postgres() {
        &[
            "CREATE FUNCTION test_freeze() RETURNS trigger LANGUAGE plpgsql AS \
             'BEGIN RETURN NULL; END'",
            "CREATE TRIGGER test_freeze_heartbeat BEFORE UPDATE OF last_seen ON apalis.workers \
             FOR EACH ROW WHEN (NEW.id LIKE '%-sync-window') EXECUTE FUNCTION test_freeze()",
        ]
    } else {
        &[
            "CREATE TRIGGER test_freeze_heartbeat BEFORE UPDATE OF last_seen ON Workers \
           WHEN NEW.id LIKE '%-sync-window' BEGIN SELECT RAISE(IGNORE); END",
        ]
    };
    for statement in freeze {
        db::query(statement).execute(&pool).await.expect("trigger");
    }
    let ended = app
        .worker_ended_within(std::time::Duration::from_secs(40))
        .await
        .expect("the worker stopped on its own");
    let error = format!("{:#}", ended.expect_err("with an error"));
    assert!(
        error.contains("sync-window") && error.contains("stopped beating"),
        "{error}"
    );
    db::Query::per_backend(
        "DROP TRIGGER test_freeze_heartbeat",
        "DROP TRIGGER test_freeze_heartbeat ON apalis.workers",
    )
    .execute(&pool)
    .await
    .expect("trigger dropped");
    app.start_worker().await;
    app.sync().await;
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}
