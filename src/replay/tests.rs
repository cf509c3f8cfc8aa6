//! The replay servers themselves, and the shape of every embedded fixture.

use super::*;

async fn post_form(
    server: &ReplayServer,
    path: &str,
    form: &[(&str, &str)],
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .form(form);
    if let Some(key) = key {
        request = request.header("X-Desknets-Auth", key);
    }
    let response = request.send().await.expect("answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

const SCHEDULE: &str = "/cgi-bin/JM0344760/schedule.cgi";

#[tokio::test]
async fn jmotto_login_keys_and_unmatched_requests() {
    let server = ReplayServer::start_jmotto().await.expect("starts");
    let login = "/cgi-bin/JM0344760/dneo.cgi";
    let (_, ok) = post_form(
        &server,
        login,
        &[
            ("action", "login"),
            ("login_id", "admin"),
            ("password", company::ADMIN_PASSWORD),
        ],
        None,
    )
    .await;
    let key = ok["access_key"].as_str().expect("key").to_owned();
    let (_, bad) = post_form(
        &server,
        login,
        &[
            ("action", "login"),
            ("login_id", "admin"),
            ("password", "x"),
        ],
        None,
    )
    .await;
    assert_eq!(bad["errorno"], 1001);
    let month = [
        ("action", "list_events"),
        ("uid", "10002"),
        ("from", "2026-12-01"),
        ("to", "2026-12-31"),
        ("page", "1"),
    ];
    let (_, page) = post_form(&server, SCHEDULE, &month, Some(&key)).await;
    assert_eq!(page["next_page"], 2);
    let (_, stale) = post_form(&server, SCHEDULE, &month, Some("stale")).await;
    assert_eq!(stale["errorno"], 1002);
    let forbidden = [
        ("action", "list_events"),
        ("uid", "10005"),
        ("from", "2026-12-01"),
        ("to", "2026-12-31"),
        ("page", "1"),
    ];
    assert_eq!(
        post_form(&server, SCHEDULE, &forbidden, Some(&key)).await.1["errorno"],
        2001
    );
    let other = [
        ("action", "list_events"),
        ("uid", "10002"),
        ("from", "2027-03-01"),
        ("to", "2027-03-31"),
        ("page", "1"),
    ];
    assert_eq!(
        post_form(&server, SCHEDULE, &other, Some(&key)).await.0,
        599
    );
    assert_eq!(server.unmatched().len(), 1);
    assert!(server.unmatched()[0].contains("2027-03-01"));
    server.stop().await;
}

#[tokio::test]
async fn overrides_win_and_events_round_trip() {
    let server = ReplayServer::start_jmotto().await.expect("starts");
    let events = server
        .events("10003", "2026-12-01", "2026-12-31", 1)
        .expect("fixture");
    assert!(!events.as_array().expect("array").is_empty());
    server.set_events("10003", "2026-12-01", "2026-12-31", 1, json!([]), None);
    assert_eq!(
        server.events("10003", "2026-12-01", "2026-12-31", 1),
        Some(json!([]))
    );
    server.stop().await;
}

#[tokio::test]
async fn zoom_meetings_are_stateful_with_fresh_64_bit_ids() {
    let server = ReplayServer::start_zoom().await.expect("starts");
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/oauth/token", server.base_url()))
        .basic_auth(company::ZOOM_CLIENT_ID, Some(company::ZOOM_CLIENT_SECRET))
        .form(&[
            ("grant_type", "account_credentials"),
            ("account_id", company::ZOOM_ACCOUNT_ID),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let bearer = token["access_token"].as_str().expect("token").to_owned();
    let create = |topic: &'static str| {
        http.post(format!("{}/v2/users/tanaka@example.co.jp/meetings", server.base_url()))
            .bearer_auth(&bearer)
            .json(&json!({"topic": topic, "type": 2, "start_time": "2026-12-01T01:00:00Z", "duration": 30, "timezone": "Asia/Tokyo", "agenda": "jmotto-zoom: 1"}))
            .send()
    };
    let first: Value = create("a")
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let second: Value = create("b")
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    assert!(first["id"].as_i64().expect("id") > i64::from(u32::MAX));
    assert_ne!(first["id"], second["id"]);
    assert_eq!(first["topic"], "a");
    let url = |id: &Value| format!("{}/v2/meetings/{id}", server.base_url());
    let patched = http
        .patch(url(&first["id"]))
        .bearer_auth(&bearer)
        .json(&json!({"topic": "c"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status().as_u16(), 204);
    let deleted = http
        .delete(url(&second["id"]))
        .bearer_auth(&bearer)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status().as_u16(), 204);
    let again = http
        .delete(url(&second["id"]))
        .bearer_auth(&bearer)
        .send()
        .await
        .expect("delete");
    assert_eq!(again.status().as_u16(), 404);
    let listed: Value = http
        .get(format!(
            "{}/v2/users/tanaka@example.co.jp/meetings?type=upcoming&page_size=300",
            server.base_url()
        ))
        .bearer_auth(&bearer)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["meetings"].as_array().expect("list").len(), 1);
    let too_long = http
        .post(format!("{}/v2/users/tanaka@example.co.jp/meetings", server.base_url()))
        .bearer_auth(&bearer)
        .json(&json!({"topic": "x".repeat(201), "type": 2, "start_time": "2026-12-01T10:00:00+09:00", "duration": 30}))
        .send()
        .await
        .expect("create");
    assert_eq!(
        too_long.status().as_u16(),
        400,
        "Zoom validates like the real one"
    );
    assert_eq!(server.zoom_meetings()[0]["topic"], "c");
    let unauthorized = http
        .get(format!("{}/v2/users/email?email=x@y.jp", server.base_url()))
        .bearer_auth("old")
        .send()
        .await
        .expect("answer");
    assert_eq!(unauthorized.status().as_u16(), 401);
    assert!(server.unmatched().is_empty());
    server.stop().await;
}

/// Every entry has every field of api/jmotto.md with its JSON type, and a shared entry is
/// identical in each listing that holds it.
#[test]
fn fixture_entries_follow_the_contract() {
    let exchanges = load(JMOTTO_FIXTURES).expect("fixtures parse");
    let mut seen: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut count = 0;
    for exchange in &exchanges {
        let Some(events) = exchange
            .response
            .json
            .as_ref()
            .and_then(|b| b.get("events"))
        else {
            continue;
        };
        for event in events.as_array().expect("events is an array") {
            count += 1;
            for field in [
                "id",
                "occurrence",
                "repeat",
                "event",
                "detail",
                "place",
                "place_detail",
                "memo",
                "start",
                "end",
                "owner",
                "updated",
            ] {
                assert!(event[field].is_string(), "{field} of {event}");
            }
            assert!(event["allday"].is_boolean() && event["private"].is_boolean());
            assert!(
                event["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().all(Value::is_string))
            );
            let key = (
                event["id"].as_str().unwrap_or("").to_owned(),
                event["occurrence"].as_str().unwrap_or("").to_owned(),
            );
            if let Some(previous) = seen.insert(key, event.clone()) {
                assert_eq!(&previous, event, "a shared entry differs between listings");
            }
        }
    }
    assert!(count >= 20, "{count} entries");
    load(ZOOM_FIXTURES).expect("zoom fixtures parse");
}

fn request(method: &str, path: &str) -> RecordedRequest {
    RecordedRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query: BTreeMap::new(),
        form: BTreeMap::new(),
        headers: BTreeMap::new(),
        json: None,
        status: 0,
        fault: None,
    }
}

/// SPEC §6: Zoom's per-second limits, per category, in any window (less the jitter
/// allowance); the token endpoint is not counted.
#[test]
fn rate_limit_answers_429_over_the_limit_per_category() {
    let mut rate = faults::RateLimit::new(2, 3);
    let create = request("POST", "/v2/users/a@example.co.jp/meetings");
    let patch = request("PATCH", "/v2/meetings/1");
    let token = request("POST", "/oauth/token");
    let t0 = std::time::Instant::now();
    let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
    let limited = |fault: Option<Fault>| fault.is_some();
    let cases = [
        (&create, 0, false),
        (&create, 100, false),
        (&create, 200, true),
        (&patch, 200, false),
        (&patch, 210, false),
        (&patch, 220, false),
        (&patch, 230, true),
        (&token, 230, false),
        (&create, 949, true),
        (&create, 950, false),
        (&create, 1049, true),
        (&create, 1050, false),
    ];
    for (req, ms, expected) in cases {
        assert_eq!(
            limited(rate.check(req, at(ms))),
            expected,
            "{} {} at {ms} ms",
            req.method,
            req.path
        );
    }
}

/// SPEC §9 pacing is checked at the Zoom replay: the peak counts calls in half-open windows
/// (a call exactly one window after another is not in its window).
#[test]
fn peak_in_window_counts_half_open_windows() {
    use std::time::{Duration, Instant};
    let start = Instant::now();
    let at = |ms: u64| start + Duration::from_millis(ms);
    let second = Duration::from_secs(1);
    let check = |times: &[Instant], peak: usize| {
        assert_eq!(faults::peak_in_window(times, second), peak, "{times:?}");
    };
    check(&[], 0);
    check(&[at(0)], 1);
    check(&[at(0), at(250), at(500), at(750), at(1000)], 4);
    check(&[at(1000), at(0), at(999), at(250)], 3);
    check(&[at(0), at(250), at(500), at(750), at(999)], 5);
    check(&[at(0), at(0), at(2000), at(2000), at(2000)], 3);
}
