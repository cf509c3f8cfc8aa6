//! SPEC §2, rule by rule: HTTP trigger → worker → replayed J-MOTTO and Zoom, checking the
//! exact Zoom requests and the stored state. Expected outcomes: fixtures/COMPANY.md.

use serde_json::{Value, json};

use crate::helpers::{DECEMBER, NOVEMBER, spawn_app, spawn_app_with};
use jmotto_zoom::domain::{
    meeting::{Reason, ReasonCode},
    policy::{DeletePolicy, ReschedulePolicy},
};

fn body(request: &jmotto_zoom::replay::RecordedRequest) -> &Value {
    request.json.as_ref().expect("a JSON body")
}

/// R-DIR: the service only reads J-MOTTO (login and list actions) and only writes Zoom.
#[tokio::test]
async fn r_dir_reads_jmotto_and_writes_only_zoom() {
    let app = spawn_app().await;
    app.sync().await;
    let actions: std::collections::BTreeSet<String> = app
        .jmotto
        .requests()
        .iter()
        .map(|r| r.form.get("action").cloned().unwrap_or_default())
        .collect();
    let expected: std::collections::BTreeSet<String> = ["login", "list_events"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(actions, expected, "J-MOTTO is only read");
    assert!(!app.creates().is_empty(), "Zoom is written");
    app.stop().await;
}

/// R-TRIGGER: the location matches after NFKC, case folding and white-space removal; other
/// locations (and none) are not synced.
#[tokio::test]
async fn r_trigger_matches_normalized_location_only() {
    let app = spawn_app().await;
    app.sync().await;
    assert_eq!(app.create_for("jmotto-zoom: 8801").len(), 1, "ZOOM 会議");
    assert_eq!(app.create_for("jmotto-zoom: 8803").len(), 1, "Zoom会議");
    assert_eq!(
        app.create_for("jmotto-zoom: 8804").len(),
        1,
        "ＺＯＯＭ　会議"
    );
    for not_zoom in ["8807", "8808"] {
        assert!(
            app.create_for(&format!("jmotto-zoom: {not_zoom}"))
                .is_empty()
        );
        assert!(
            app.meetings_of(not_zoom, "").await.is_empty(),
            "{not_zoom} is not a Zoom entry"
        );
    }
    app.stop().await;
}

/// R-LATE: an entry that gets the Zoom location later is synced from then on.
#[tokio::test]
async fn r_late_location_added_later_is_synced() {
    let app = spawn_app().await;
    app.sync().await;
    assert!(app.create_for("jmotto-zoom: 8807").is_empty());
    app.edit_entry(&["10002"], NOVEMBER, "8807", |e| {
        e["place"] = json!("ZOOM 会議");
        true
    });
    app.sync().await;
    let creates = app.create_for("jmotto-zoom: 8807");
    assert_eq!(creates.len(), 1);
    assert_eq!(body(&creates[0])["start_time"], "2026-11-27T01:00:00Z");
    assert_eq!(app.meetings_of("8807", "").await[0]["state"], "created");
    app.stop().await;
}

/// R-WINDOW: the current month and the next two in the administrator's timezone; entries
/// starting outside are skipped with a reason.
#[tokio::test]
async fn r_window_lists_three_months_and_skips_outside() {
    let app = spawn_app().await;
    app.sync().await;
    let months: std::collections::BTreeSet<(String, String)> = app
        .jmotto
        .requests()
        .iter()
        .filter(|r| r.form.get("action").map(String::as_str) == Some("list_events"))
        .map(|r| (r.form["from"].clone(), r.form["to"].clone()))
        .collect();
    let expected: std::collections::BTreeSet<(String, String)> = [
        ("2026-11-01", "2026-11-30"),
        ("2026-12-01", "2026-12-31"),
        ("2027-01-01", "2027-01-31"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(months, expected);
    for outside in ["8811", "8812"] {
        let rows = app.meetings_of(outside, "").await;
        assert_eq!(rows.len(), 1, "{outside}");
        assert_eq!(rows[0]["state"], "skipped");
        assert_eq!(rows[0]["reason"], "outside_window");
        assert!(
            app.create_for(&format!("jmotto-zoom: {outside}"))
                .is_empty()
        );
    }
    let status = app.api.get("/api/v1/status").await.expect("status");
    assert_eq!(status["window"]["from"], "2026-11-01T00:00:00+09:00");
    assert_eq!(status["window"]["to"], "2027-02-01T00:00:00+09:00");
    app.stop().await;
}

/// R-USERS: only enabled users are read; meetings are hosted by their mapped Zoom e-mail;
/// a disabled user cannot be named in a trigger.
#[tokio::test]
async fn r_users_only_enabled_users_are_synced() {
    let app = spawn_app().await;
    app.sync().await;
    let listed: std::collections::BTreeSet<String> = app
        .jmotto
        .requests()
        .iter()
        .filter_map(|r| r.form.get("uid").cloned())
        .collect();
    let expected: std::collections::BTreeSet<String> = ["10002", "10003", "10005", "10006"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(listed, expected, "10004 is disabled, 10001 not mapped");
    for create in app.creates() {
        assert!(
            !create.path.contains("sato@"),
            "disabled user hosts nothing"
        );
    }
    let refused = app
        .http
        .post(format!("{}/api/v1/sync", app.address))
        .bearer_auth("demo-admin-token")
        .json(&json!({"users": ["10004"]}))
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status().as_u16(), 422);
    app.stop().await;
}

/// R-HOST: a shared entry yields one meeting, hosted by its owner, or by the first enabled
/// member when the owner is disabled; no enabled member: skipped with the reason.
#[tokio::test]
async fn r_host_one_meeting_per_shared_entry() {
    let app = spawn_app().await;
    app.sync().await;
    let shared = app.create_for("jmotto-zoom: 8803");
    assert_eq!(shared.len(), 1, "listed by three users, created once");
    assert_eq!(shared[0].path, "/v2/users/suzuki@example.co.jp/meetings");
    let owner_disabled = app.create_for("jmotto-zoom: 8804");
    assert_eq!(owner_disabled.len(), 1);
    assert_eq!(
        owner_disabled[0].path,
        "/v2/users/ito@example.co.jp/meetings"
    );
    let nobody = app.meetings_of("8810", "").await;
    assert_eq!(nobody[0]["state"], "skipped");
    assert_eq!(nobody[0]["reason"], "no_enabled_host");
    app.stop().await;
}

/// R-ATTENDEES: no invitees by default; `invite_members` adds the other enabled members.
#[tokio::test]
async fn r_attendees_none_unless_configured() {
    let app = spawn_app().await;
    app.sync().await;
    for create in app.creates() {
        assert!(
            body(&create).get("settings").is_none(),
            "no invitees: {:?}",
            create.json
        );
    }
    app.stop().await;

    let app = spawn_app_with(|s| s.sync.invite_members = true).await;
    app.sync().await;
    let shared = app.create_for("jmotto-zoom: 8803");
    assert_eq!(
        body(&shared[0])["settings"]["meeting_invitees"],
        json!([{"email": "tanaka@example.co.jp"}, {"email": "ito@example.co.jp"}])
    );
    app.stop().await;
}

/// R-TIME: UTC with Z, no fraction; duration in real minutes; Zoom's timezone label.
#[tokio::test]
async fn r_time_utc_start_and_duration() {
    let app = spawn_app().await;
    app.sync().await;
    let cases = [
        ("jmotto-zoom: 8801", "2026-11-26T05:00:00Z", 60),
        ("jmotto-zoom: 8803", "2026-12-02T04:00:00Z", 90),
        ("jmotto-zoom: 8804", "2026-12-10T00:30:00Z", 30),
        ("jmotto-zoom: 8813", "2026-12-15T02:00:00Z", 45),
        ("jmotto-zoom: 8805/2026-12-03", "2026-12-03T01:00:00Z", 60),
    ];
    for (marker, start, duration) in cases {
        let creates = app.create_for(marker);
        assert_eq!(creates.len(), 1, "{marker}");
        let sent = body(&creates[0]);
        assert_eq!(sent["start_time"], start, "{marker}");
        assert_eq!(sent["duration"], duration, "{marker}");
        assert_eq!(sent["timezone"], "Asia/Tokyo", "{marker}");
        assert_eq!(sent["type"], 2, "{marker}");
    }
    let row = &app.meetings_of("8801", "").await[0];
    assert_eq!(row["start"], "2026-11-26T14:00:00+09:00");
    assert!(row["zoom_meeting_id"].as_i64().expect("integer id") > i64::from(u32::MAX));
    app.stop().await;
}

/// R-ALLDAY: 00:00 local of the first day, whole days × 1440 minutes.
#[tokio::test]
async fn r_allday_whole_days() {
    let app = spawn_app().await;
    app.sync().await;
    let creates = app.create_for("jmotto-zoom: 8806");
    assert_eq!(creates.len(), 1);
    assert_eq!(body(&creates[0])["start_time"], "2026-12-23T15:00:00Z");
    assert_eq!(body(&creates[0])["duration"], 2880);
    app.stop().await;
}

/// R-TOPIC: 予定 + 予定詳細, cut to 200 characters; agenda = memo, blank line, marker.
#[tokio::test]
async fn r_topic_and_agenda() {
    let app = spawn_app().await;
    app.sync().await;
    let first = body(&app.create_for("jmotto-zoom: 8801")[0]).clone();
    assert_eq!(first["topic"], "打合せ A社 提案");
    assert_eq!(
        first["agenda"],
        "資料は共有フォルダにあります\n\njmotto-zoom: 8801"
    );
    let long = body(&app.create_for("jmotto-zoom: 8809")[0]).clone();
    let topic = long["topic"].as_str().expect("topic");
    assert_eq!(topic.chars().count(), 200);
    assert_eq!(
        long["agenda"], "jmotto-zoom: 8809",
        "no memo: the marker alone"
    );
    let weekly = body(&app.create_for("jmotto-zoom: 8805/2026-11-26")[0]).clone();
    assert_eq!(weekly["topic"], "会議 週次定例");
    assert_eq!(
        weekly["agenda"],
        "議題: 予算\n\njmotto-zoom: 8805/2026-11-26"
    );
    assert_eq!(
        app.creates()
            .iter()
            .filter(|r| body(r)["agenda"]
                .as_str()
                .is_some_and(|a| a.contains("8805/")))
            .count(),
        10
    );
    app.stop().await;
}

fn move_8801(app: &crate::helpers::TestApp) {
    app.edit_entry(&["10002"], NOVEMBER, "8801", |e| {
        e["start"] = json!("2026-11-26T15:00:00");
        e["end"] = json!("2026-11-26T16:30:00");
        true
    });
}

/// R-RESCHEDULE `create_new` (seed): the old meeting stays, a new one is created; a title
/// change alone changes nothing.
#[tokio::test]
async fn r_reschedule_create_new() {
    let app = spawn_app().await;
    app.sync().await;
    app.zoom.clear_requests();
    app.edit_entry(&["10002"], NOVEMBER, "8801", |e| {
        e["detail"] = json!("A社 提案 (改)");
        true
    });
    app.sync().await;
    assert!(
        app.zoom_writes().is_empty(),
        "title change alone: nothing under create_new"
    );
    move_8801(&app);
    app.sync().await;
    let writes = app.zoom_writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "POST");
    assert_eq!(body(&writes[0])["start_time"], "2026-11-26T06:00:00Z");
    assert_eq!(body(&writes[0])["duration"], 90);
    let rows = app.meetings_of("8801", "").await;
    let states: Vec<&str> = rows
        .iter()
        .map(|r| r["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states, ["superseded", "created"]);
    assert_eq!(
        app.zoom.zoom_meetings().len(),
        17,
        "the old meeting is still in Zoom"
    );
    app.stop().await;
}

/// R-RESCHEDULE `update`: the existing meeting is PATCHed (time and title).
#[tokio::test]
async fn r_reschedule_update() {
    let app = spawn_app_with(|s| s.sync.on_reschedule = ReschedulePolicy::Update).await;
    app.sync().await;
    let zoom_id = app.meetings_of("8801", "").await[0]["zoom_meeting_id"].clone();
    app.zoom.clear_requests();
    move_8801(&app);
    app.sync().await;
    let writes = app.zoom_writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "PATCH");
    assert_eq!(writes[0].path, format!("/v2/meetings/{zoom_id}"));
    assert_eq!(body(&writes[0])["start_time"], "2026-11-26T06:00:00Z");
    assert_eq!(body(&writes[0])["duration"], 90);
    let rows = app.meetings_of("8801", "").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["state"], "created");
    assert_eq!(rows[0]["start"], "2026-11-26T15:00:00+09:00");
    app.zoom.clear_requests();
    app.edit_entry(&["10002"], NOVEMBER, "8801", |e| {
        e["memo"] = json!("新しいメモ");
        true
    });
    app.sync().await;
    let writes = app.zoom_writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(
        body(&writes[0])["agenda"],
        "新しいメモ\n\njmotto-zoom: 8801"
    );
    app.stop().await;
}

/// R-RESCHEDULE `replace`: the new meeting is created, then the old one deleted.
#[tokio::test]
async fn r_reschedule_replace() {
    let app = spawn_app_with(|s| s.sync.on_reschedule = ReschedulePolicy::Replace).await;
    app.sync().await;
    let old_id = app.meetings_of("8801", "").await[0]["zoom_meeting_id"].clone();
    app.zoom.clear_requests();
    move_8801(&app);
    app.sync().await;
    let writes: Vec<(String, String)> = app
        .zoom_writes()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(
        writes,
        [
            (
                "POST".to_owned(),
                "/v2/users/tanaka@example.co.jp/meetings".to_owned()
            ),
            ("DELETE".to_owned(), format!("/v2/meetings/{old_id}")),
        ]
    );
    let rows = app.meetings_of("8801", "").await;
    let states: Vec<&str> = rows
        .iter()
        .map(|r| r["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states, ["deleted", "created"]);
    app.stop().await;
}

/// R-DELETE `keep` (seed): a deleted entry's meeting stays in Zoom.
#[tokio::test]
async fn r_delete_keep() {
    let app = spawn_app().await;
    app.sync().await;
    app.zoom.clear_requests();
    app.edit_entry(&["10002"], NOVEMBER, "8801", |_| false);
    app.sync().await;
    assert!(app.zoom_writes().is_empty());
    let row = &app.meetings_of("8801", "").await[0];
    assert_eq!(row["state"], "created");
    assert_eq!(row["reason"], "entry_deleted");

    // restored: the kept meeting is its meeting again, nothing is created
    let fixture = jmotto_zoom::replay::ReplayServer::start_jmotto()
        .await
        .expect("replay");
    let original = fixture
        .events("10002", NOVEMBER.0, NOVEMBER.1, 1)
        .expect("events");
    fixture.stop().await;
    app.jmotto
        .set_events("10002", NOVEMBER.0, NOVEMBER.1, 1, original, None);
    app.sync().await;
    assert!(app.zoom_writes().is_empty());
    let row = &app.meetings_of("8801", "").await[0];
    assert_eq!(row["state"], "created");
    assert!(row["reason"].is_null(), "{row}");
    app.stop().await;
}

/// R-DELETE `delete`: the meeting is deleted after a complete listing lost the entry, or
/// when its location was removed; never after a failed listing.
#[tokio::test]
async fn r_delete_delete() {
    let app = spawn_app_with(|s| s.sync.on_delete = DeletePolicy::Delete).await;
    app.sync().await;
    let deleted_id = app.meetings_of("8801", "").await[0]["zoom_meeting_id"].clone();
    let moved_id = app.meetings_of("8803", "").await[0]["zoom_meeting_id"].clone();
    app.zoom.clear_requests();
    app.edit_entry(&["10002"], NOVEMBER, "8801", |_| false);
    app.edit_entry(&["10003", "10002", "10006"], DECEMBER, "8803", |e| {
        e["place"] = json!("会議室B");
        true
    });
    app.sync().await;
    let mut writes: Vec<(String, String)> = app
        .zoom_writes()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    writes.sort();
    let mut expected = vec![
        ("DELETE".to_owned(), format!("/v2/meetings/{deleted_id}")),
        ("DELETE".to_owned(), format!("/v2/meetings/{moved_id}")),
    ];
    expected.sort();
    assert_eq!(writes, expected);
    assert_eq!(
        app.meetings_of("8801", "").await[0]["reason"],
        "entry_deleted"
    );
    assert_eq!(app.meetings_of("8803", "").await[0]["state"], "deleted");
    assert_eq!(
        app.meetings_of("8803", "").await[0]["reason"],
        "location_removed"
    );
    app.stop().await;
}

/// R-DELETE: a listing that failed (here J-MOTTO errorno 9000 on every attempt for one
/// month) deletes nothing of that user's, even entries missing from the months that listed.
#[tokio::test]
async fn r_delete_never_after_a_failed_listing() {
    let app = spawn_app_with(|s| {
        s.sync.on_delete = DeletePolicy::Delete;
        s.worker.max_attempts = 1;
    })
    .await;
    app.sync().await;
    app.zoom.clear_requests();
    app.edit_entry(&["10002"], NOVEMBER, "8801", |_| false);
    let failing: jmotto_zoom::replay::Exchange = serde_json::from_value(json!({
        "name": "December listing of tanaka fails",
        "request": {"method": "POST", "path": "/cgi-bin/JM0344760/schedule.cgi",
                    "form": {"action": "list_events", "uid": "10002", "from": "2026-12-01", "to": "2026-12-31", "page": "1"}},
        "response": {"status": 200, "json": {"status": "ng", "errorno": 9000, "errormessage": "内部エラー"}}
    }))
    .expect("exchange");
    app.jmotto.override_exchange(failing);
    app.sync().await;
    assert!(
        app.zoom_writes().is_empty(),
        "nothing deleted: {:?}",
        app.zoom_writes()
    );
    assert_eq!(app.meetings_of("8801", "").await[0]["state"], "created");
    app.stop().await;
}

/// R-PAST: an entry that has ended is not created; one in progress would be.
#[tokio::test]
async fn r_past_ended_entries_are_skipped() {
    let app = spawn_app().await;
    app.sync().await;
    let row = &app.meetings_of("8802", "").await[0];
    assert_eq!(row["state"], "skipped");
    assert_eq!(row["reason"], "ended");
    assert!(app.create_for("jmotto-zoom: 8802").is_empty());
    app.stop().await;

    // the clock at 14:30 JST on 2026-11-26: 8801 (14:00–15:00) has started, not ended
    let app =
        spawn_app_with(|s| s.clock.now = Some("2026-11-26T05:30:00Z".parse().expect("instant")))
            .await;
    app.sync().await;
    assert_eq!(app.create_for("jmotto-zoom: 8801").len(), 1);
    assert_eq!(
        app.meetings_of("8805", "2026-11-26").await[0]["state"],
        "skipped",
        "10:00–11:00 ended"
    );
    app.stop().await;
}

/// R-ACCESS: a forbidden schedule names the J-MOTTO screen to fix, the others sync.
#[tokio::test]
async fn r_access_forbidden_user_is_reported_and_others_sync() {
    let app = spawn_app().await;
    app.sync().await;
    let status = app.api.get("/api/v1/status").await.expect("status");
    let users = status["users"].as_array().expect("users");
    let takahashi = users
        .iter()
        .find(|u| u["groupware_id"] == "10005")
        .expect("10005");
    let error = takahashi["last_error"].as_str().expect("an error");
    assert!(error.contains("2001"), "{error}");
    assert!(
        error.contains("スケジュール › 設定 › 各ユーザーのアクセス権設定"),
        "{error}"
    );
    assert!(takahashi["last_sync_at"].is_null());
    let tanaka = users
        .iter()
        .find(|u| u["groupware_id"] == "10002")
        .expect("10002");
    assert!(tanaka["last_error"].is_null());
    assert!(tanaka["last_sync_at"].is_string());
    assert_eq!(app.creates().len(), 16, "every other user's meetings");
    app.stop().await;
}

/// R-ONCE: a second sync with nothing changed makes no Zoom call; concurrent triggers
/// still create each meeting once.
#[tokio::test]
async fn r_once_unchanged_and_concurrent_syncs() {
    let app = spawn_app().await;
    let (a, b, c) = tokio::join!(
        app.api
            .trigger_sync(Some(vec!["10002".into(), "10003".into()])),
        app.api
            .trigger_sync(Some(vec!["10003".into(), "10006".into()])),
        app.api.trigger_sync(None)
    );
    a.expect("a");
    b.expect("b");
    c.expect("c");
    app.drain().await;
    let creates = app.creates();
    assert_eq!(creates.len(), 16);
    let mut markers: Vec<String> = creates
        .iter()
        .map(|r| {
            body(r)["agenda"]
                .as_str()
                .unwrap_or("")
                .lines()
                .last()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    markers.sort();
    markers.dedup();
    assert_eq!(markers.len(), 16, "each meeting once");
    app.zoom.clear_requests();
    app.sync().await;
    let zoom_calls: Vec<_> = app
        .zoom
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v2/"))
        .collect();
    assert!(
        zoom_calls.is_empty(),
        "no Zoom call when nothing changed: {zoom_calls:?}"
    );
    assert_eq!(app.count_in_state("created").await, 16);
    app.stop().await;
}

/// R-ONCE: a listing that holds one new entry twice (J-MOTTO's pages shifted while it was
/// moved) makes one meeting, at the time listed last — the slice reads its rows once for all
/// entries, and a key it meets again is read afresh (a stale read would create both times).
#[tokio::test]
async fn r_once_entry_listed_twice_in_one_slice() {
    let app = spawn_app().await;
    app.sync().await;
    app.zoom.clear_requests();
    let mut events = app
        .jmotto
        .events("10002", NOVEMBER.0, NOVEMBER.1, 1)
        .and_then(|e| e.as_array().cloned())
        .expect("events");
    let mut new_entry = events
        .iter()
        .find(|e| e["id"] == "8801")
        .cloned()
        .expect("8801 listed");
    new_entry["id"] = json!("8899");
    events.insert(0, new_entry.clone());
    new_entry["start"] = json!("2026-11-26T15:00:00");
    new_entry["end"] = json!("2026-11-26T16:30:00");
    events.push(new_entry);
    let next = app
        .jmotto
        .events("10002", NOVEMBER.0, NOVEMBER.1, 2)
        .map(|_| 2);
    app.jmotto.set_events(
        "10002",
        NOVEMBER.0,
        NOVEMBER.1,
        1,
        Value::Array(events),
        next,
    );
    app.sync().await;
    let writes = app.zoom_writes();
    assert_eq!(writes.len(), 1, "one create: {writes:?}");
    let creates = app.create_for("jmotto-zoom: 8899");
    assert_eq!(creates.len(), 1);
    assert_eq!(body(&creates[0])["start_time"], "2026-11-26T06:00:00Z");
    let rows = app.meetings_of("8899", "").await;
    let in_zoom: Vec<&Value> = rows
        .iter()
        .filter(|r| !r["zoom_meeting_id"].is_null())
        .collect();
    assert_eq!(in_zoom.len(), 1, "{rows:?}");
    assert_eq!(in_zoom[0]["state"], "created");
    assert_eq!(in_zoom[0]["start"], "2026-11-26T15:00:00+09:00");
    app.zoom.clear_requests();
    app.sync().await;
    assert!(app.zoom_writes().is_empty(), "{:?}", app.zoom_writes());
    app.stop().await;
}

/// R-ONCE: a create whose retries ran out after requests that may have reached Zoom is
/// tried again by the next sync, which first looks among the host's meetings.
#[tokio::test]
async fn r_once_failed_create_is_retried_by_the_next_sync() {
    let app = spawn_app_with(|s| s.worker.max_attempts = 1).await;
    let exchange = |response: Value| -> jmotto_zoom::replay::Exchange {
        serde_json::from_value(json!({
            "name": "create",
            "request": {"method": "POST", "path": "/v2/users/{email}/meetings"},
            "response": response
        }))
        .expect("exchange")
    };
    app.zoom.override_exchange(exchange(
        json!({"status": 500, "json": {"code": 500, "message": "Internal error"}}),
    ));
    app.sync().await;
    let row = &app.meetings_of("8801", "").await[0];
    assert_eq!(row["state"], "failed");
    assert!(
        row["reason"]
            .as_str()
            .and_then(|r| Reason::parse_api_text(r).ok())
            .is_some_and(|r| r.code == ReasonCode::FailedAfterSend),
        "{row}"
    );
    assert!(app.zoom.zoom_meetings().is_empty());

    app.zoom.override_exchange(exchange(
        json!({"status": 201, "dynamic": "zoom_create_meeting", "json": {}}),
    ));
    app.zoom.clear_requests();
    app.sync().await;
    let listed = app
        .zoom
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/v2/users/tanaka@example.co.jp/meetings")
        .count();
    assert!(listed >= 1, "the retry looked for the meeting first");
    assert_eq!(app.create_for("jmotto-zoom: 8801").len(), 1);
    assert_eq!(app.meetings_of("8801", "").await[0]["state"], "created");
    assert_eq!(app.zoom.zoom_meetings().len(), 16);
    app.stop().await;
}

/// R-DELETE / R-ONCE: a FetchSlice that runs again after its run completed (a crash between
/// commit and ack) decides nothing as deleted.
#[tokio::test]
async fn r_delete_not_repeated_when_a_slice_runs_twice() {
    let app = spawn_app_with(|s| s.sync.on_delete = DeletePolicy::Delete).await;
    app.sync().await;
    let sync_id: String = jmotto_zoom::store::db::query("SELECT id FROM sync_runs LIMIT 1")
        .scalar(app.engine.store.db())
        .await
        .expect("a sync run");
    app.zoom.clear_requests();
    let again = jmotto_zoom::jobs::FetchSlice {
        sync_id,
        user_id: "10002".into(),
        month: "2026-11".into(),
        request_id: None,
    };
    jmotto_zoom::jobs::sync::run_fetch_slice(&app.engine, &again)
        .await
        .expect("slice runs again");
    app.drain().await;
    assert!(app.zoom_writes().is_empty(), "{:?}", app.zoom_writes());
    assert_eq!(app.count_in_state("created").await, 16);
    app.stop().await;
}
