//! Fixture replay servers: recorded J-MOTTO and Zoom exchanges (request → response) served
//! on 127.0.0.1, for the tests and for `demo`.
//!
//! A request is answered by the first exchange that matches it (test overrides first, then
//! the listings set by [`ReplayServer::set_events`] — indexed by path and form, so a
//! generated company of thousands of listings answers as fast as five — then the fixture
//! files in order). A request that matches nothing is answered HTTP 599 naming
//! the request, and is remembered in [`ReplayServer::unmatched`] so the test fails naming it.
//! Zoom's meeting endpoints are *dynamic* exchanges: a create answers the fixture's template
//! with a fresh 64-bit id and the request's fields, and the replay keeps the meetings so
//! PATCH, DELETE and the upcoming list behave like Zoom.

mod exchange;
pub mod faults;
pub mod generated;

use std::{
    collections::{BTreeMap, HashMap},
    net::TcpListener,
    sync::{Arc, Mutex, MutexGuard},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, dev::ServerHandle, web};
use serde::Serialize;
use serde_json::{Value, json};

pub use exchange::{Exchange, ExchangeRequest, ExchangeResponse, FixtureFile};
pub use faults::Fault;

/// Constants of the fixture company (fixtures/COMPANY.md): the demo's configuration and the
/// tests use them.
pub mod company {
    /// Path of the tenant under the J-MOTTO replay's address.
    pub const JMOTTO_BASE_PATH: &str = "/cgi-bin/JM0344760/";
    /// The groupware administrator's login ID.
    pub const ADMIN_LOGIN_ID: &str = "admin";
    /// The administrator's mobile password.
    pub const ADMIN_PASSWORD: &str = "demo-mobile-password";
    /// The S2S app's Account ID.
    pub const ZOOM_ACCOUNT_ID: &str = "demo-account-id";
    /// The S2S app's Client ID.
    pub const ZOOM_CLIENT_ID: &str = "demo-client-id";
    /// The S2S app's Client Secret.
    pub const ZOOM_CLIENT_SECRET: &str = "demo-client-secret";
    /// The administrator's timezone.
    pub const TIMEZONE: &str = "Asia/Tokyo";
    /// The instant the fixtures were recorded at (the demo's and the tests' clock).
    pub const RECORDED_AT: &str = "2026-11-25T10:00:00+09:00";
    /// (groupware id, Zoom e-mail, enabled) of the administrator's mapping.
    pub const USERS: &[(&str, &str, bool)] = &[
        ("10002", "tanaka@example.co.jp", true),
        ("10003", "suzuki@example.co.jp", true),
        ("10004", "sato@example.co.jp", false),
        ("10005", "takahashi@example.co.jp", true),
        ("10006", "ito@example.co.jp", true),
    ];
}

/// The admin token of the demo's throw-away server.
pub const DEMO_ADMIN_TOKEN: &str = "demo-admin-token";

/// The demo's Standard Webhooks secret (`whsec_` + base64 of 32 bytes).
pub const DEMO_WEBHOOK_SECRET: &str = "whsec_ZGVtby13ZWJob29rLXNlY3JldC0zMi1ieXRlcyEh";

/// The configuration of the replayed company as TOML text, pointed at the replay servers and
/// listening on `listen`: the same file an administrator writes (SPEC §4). The demo, the
/// tests and the generated company start from it.
pub fn demo_config(
    jmotto: &ReplayServer,
    zoom: &ReplayServer,
    database_url: &str,
    listen: &str,
) -> String {
    let mut text = format!(
        r#"
[database]
url = "{database_url}"

[server]
listen = "{listen}"
admin_token = "{DEMO_ADMIN_TOKEN}"
webhook_secret = "{DEMO_WEBHOOK_SECRET}"

[zoom]
account_id = "{account}"
client_id = "{client}"
client_secret = "{secret}"
oauth_url = "{zoom}/oauth/token"
api_url = "{zoom}/v2"

[groupware]
base_url = "{jmotto}{base_path}"
admin_login_id = "{login}"
admin_password = "{password}"
timezone = "{timezone}"
requests_per_second = 50

[sync]
poll_interval_seconds = 0

[worker]
queue_poll_interval_ms = 50

[clock]
now = "{now}"
"#,
        account = company::ZOOM_ACCOUNT_ID,
        client = company::ZOOM_CLIENT_ID,
        secret = company::ZOOM_CLIENT_SECRET,
        zoom = zoom.base_url(),
        jmotto = jmotto.base_url(),
        base_path = company::JMOTTO_BASE_PATH,
        login = company::ADMIN_LOGIN_ID,
        password = company::ADMIN_PASSWORD,
        timezone = company::TIMEZONE,
        now = company::RECORDED_AT,
    );
    for (id, email, enabled) in company::USERS {
        text.push_str(&format!(
            "\n[[users]]\ngroupware_id = \"{id}\"\nzoom_email = \"{email}\"\nenabled = {enabled}\n"
        ));
    }
    text
}

const JMOTTO_FIXTURES: &[(&str, &str)] = &[
    (
        "jmotto/session.json",
        include_str!("../../fixtures/jmotto/session.json"),
    ),
    (
        "jmotto/events-10002.json",
        include_str!("../../fixtures/jmotto/events-10002.json"),
    ),
    (
        "jmotto/events-10003.json",
        include_str!("../../fixtures/jmotto/events-10003.json"),
    ),
    (
        "jmotto/events-10005.json",
        include_str!("../../fixtures/jmotto/events-10005.json"),
    ),
    (
        "jmotto/events-10006.json",
        include_str!("../../fixtures/jmotto/events-10006.json"),
    ),
];

const ZOOM_FIXTURES: &[(&str, &str)] = &[(
    "zoom/api.json",
    include_str!("../../fixtures/zoom/api.json"),
)];

/// One request the replay received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub form: BTreeMap<String, String>,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub json: Option<Value>,
    /// What the replay answered.
    pub status: u16,
    /// The injected fault that shaped the answer, if any.
    pub fault: Option<Fault>,
}

/// Why a replay could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("fixture {file} is not a valid exchange file: {reason}")]
    BadFixture { file: String, reason: String },
    #[error("cannot start a replay server: {0}")]
    Bind(#[from] std::io::Error),
}

#[derive(Debug, Default)]
struct State {
    overrides: Vec<Exchange>,
    /// `set_events` listings by (path, exact form).
    listings: HashMap<ListingKey, Exchange>,
    exchanges: Vec<Exchange>,
    requests: Vec<RecordedRequest>,
    /// When each of `requests` arrived (same order).
    received_at: Vec<std::time::Instant>,
    unmatched: Vec<String>,
    meetings: BTreeMap<i64, Value>,
    next_meeting_id: i64,
    injections: Vec<faults::Injection>,
    rate: Option<faults::RateLimit>,
}

type Shared = Arc<Mutex<State>>;

/// A `list_events` request's path and exact form.
type ListingKey = (String, BTreeMap<String, String>);

fn listing_key(path: &str, form: &BTreeMap<String, String>) -> ListingKey {
    (path.to_owned(), form.clone())
}

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running replay server.
pub struct ReplayServer {
    base_url: String,
    state: Shared,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for ReplayServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayServer")
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// The first Zoom meeting id the replay hands out (above 2^32, like Zoom's).
pub const FIRST_MEETING_ID: i64 = 85_000_000_001;

impl ReplayServer {
    /// The J-MOTTO replay with the embedded `fixtures/jmotto/*.json`.
    pub async fn start_jmotto() -> Result<ReplayServer, ReplayError> {
        ReplayServer::start(load(JMOTTO_FIXTURES)?).await
    }

    /// The Zoom replay with the embedded `fixtures/zoom/*.json`.
    pub async fn start_zoom() -> Result<ReplayServer, ReplayError> {
        ReplayServer::start(load(ZOOM_FIXTURES)?).await
    }

    /// A replay of the given exchanges.
    pub async fn start(exchanges: Vec<Exchange>) -> Result<ReplayServer, ReplayError> {
        let state: Shared = Arc::new(Mutex::new(State {
            exchanges,
            next_meeting_id: FIRST_MEETING_ID,
            ..State::default()
        }));
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .default_service(web::to(serve))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Ok(ReplayServer {
            base_url: format!("http://127.0.0.1:{port}"),
            state,
            handle,
            task,
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// Forgets the recorded requests (not the unmatched ones).
    pub fn clear_requests(&self) {
        let mut state = lock(&self.state);
        state.requests.clear();
        state.received_at.clear();
    }

    /// Requests no exchange matched, each described.
    pub fn unmatched(&self) -> Vec<String> {
        lock(&self.state).unmatched.clone()
    }

    /// Puts `exchange` in front of all others; a later override wins over an earlier one.
    pub fn override_exchange(&self, exchange: Exchange) {
        lock(&self.state).overrides.insert(0, exchange);
    }

    /// Makes the next `times` requests for which `applies` holds fail with `fault` (earlier
    /// injections first; `usize::MAX` for every one). See [`faults`] for matchers.
    pub fn inject(
        &self,
        fault: Fault,
        times: usize,
        applies: impl Fn(&RecordedRequest) -> bool + Send + Sync + 'static,
    ) {
        lock(&self.state).injections.push(faults::Injection {
            fault,
            remaining: times,
            applies: Arc::new(applies),
        });
    }

    /// Makes the Zoom replay enforce Zoom's per-second limits per category: a create (Medium)
    /// beyond `creates_per_second`, or any other API call (Light) beyond
    /// `requests_per_second`, in a sliding window gets the per-second 429.
    pub fn enforce_rate(&self, creates_per_second: u32, requests_per_second: u32) {
        lock(&self.state).rate = Some(faults::RateLimit::new(
            creates_per_second,
            requests_per_second,
        ));
    }

    /// Drops every injected fault not used up yet.
    pub fn clear_faults(&self) {
        lock(&self.state).injections.clear();
    }

    /// Requests answered with an injected fault.
    pub fn faulted(&self) -> Vec<RecordedRequest> {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.fault.is_some())
            .cloned()
            .collect()
    }

    /// How many requests received so far `applies` to (without copying them).
    pub fn request_count(&self, applies: impl Fn(&RecordedRequest) -> bool) -> usize {
        lock(&self.state)
            .requests
            .iter()
            .filter(|r| applies(r))
            .count()
    }

    /// When each request received so far that `applies` to arrived, in order (e.g. the
    /// creates, to check a rate per window with [`faults::peak_in_window`]).
    pub fn request_times(
        &self,
        applies: impl Fn(&RecordedRequest) -> bool,
    ) -> Vec<std::time::Instant> {
        let state = lock(&self.state);
        state
            .requests
            .iter()
            .zip(&state.received_at)
            .filter(|(request, _)| applies(request))
            .map(|(_, at)| *at)
            .collect()
    }

    /// How many meetings the Zoom replay holds.
    pub fn meeting_count(&self) -> usize {
        lock(&self.state).meetings.len()
    }

    /// Overrides the `list_events` answer of one (uid, from, to, page) request. A later
    /// call wins over an earlier `set_events` or `override_exchange` of the same request;
    /// a later `override_exchange` wins over it.
    pub fn set_events(
        &self,
        uid: &str,
        from: &str,
        to: &str,
        page: u32,
        events: Value,
        next_page: Option<u32>,
    ) {
        let template = self.events_exchange(uid, from, to, page);
        let mut exchange = template.unwrap_or_else(|| Exchange::list_events(uid, from, to, page));
        exchange.name = format!("override: {uid} {from}..{to} page {page}");
        exchange.response = ExchangeResponse::json(
            200,
            json!({"status": "ok", "page": page, "next_page": next_page, "events": events}),
        );
        let form = exchange.request.form.clone().unwrap_or_default();
        let key = listing_key(&exchange.request.path, &form);
        let mut state = lock(&self.state);
        state.overrides.retain(|e| {
            e.request.form_subset
                || e.request.path != key.0
                || e.request.form.as_ref() != Some(&key.1)
        });
        state.listings.insert(key, exchange);
    }

    /// The events the replay currently answers for one (uid, from, to, page) request.
    pub fn events(&self, uid: &str, from: &str, to: &str, page: u32) -> Option<Value> {
        self.events_exchange(uid, from, to, page)
            .and_then(|e| e.response.json)
            .and_then(|body| body.get("events").cloned())
    }

    fn events_exchange(&self, uid: &str, from: &str, to: &str, page: u32) -> Option<Exchange> {
        let probe = Exchange::list_events(uid, from, to, page).request;
        let same = |e: &&Exchange| {
            e.request.form.as_ref() == probe.form.as_ref() && e.request.path == probe.path
        };
        let state = lock(&self.state);
        let form = probe.form.clone().unwrap_or_default();
        state
            .overrides
            .iter()
            .find(same)
            .or_else(|| state.listings.get(&listing_key(&probe.path, &form)))
            .or_else(|| state.exchanges.iter().find(same))
            .cloned()
    }

    /// The meetings the Zoom replay holds (created and not deleted), by id.
    pub fn zoom_meetings(&self) -> Vec<Value> {
        lock(&self.state).meetings.values().cloned().collect()
    }

    /// Stops the server.
    pub async fn stop(self) {
        // Not graceful: an injected delay must not hold the test up.
        self.handle.stop(false).await;
        let _ = self.task.await;
    }
}

fn load(files: &[(&str, &str)]) -> Result<Vec<Exchange>, ReplayError> {
    let mut all = Vec::new();
    for (file, text) in files {
        let parsed: exchange::FixtureFile =
            serde_json::from_str(text).map_err(|e| ReplayError::BadFixture {
                file: (*file).to_owned(),
                reason: e.to_string(),
            })?;
        all.extend(parsed.exchanges);
    }
    Ok(all)
}

async fn serve(request: HttpRequest, body: web::Bytes, state: web::Data<Shared>) -> HttpResponse {
    let received_at = std::time::Instant::now();
    let recorded = exchange::record(&request, &body);
    let (response, delay) = {
        let mut guard = lock(&state);
        let fault = faults::take(&mut guard.injections, &recorded).or_else(|| {
            guard
                .rate
                .as_mut()
                .and_then(|rate| rate.check(&recorded, std::time::Instant::now()))
        });
        let (status, response) = match fault.as_ref().and_then(Fault::answer) {
            Some(answer) => answer,
            None => answer(&mut guard, &recorded),
        };
        let (response, delay) = match &fault {
            Some(Fault::LostResponse) => (faults::lost(status), None),
            Some(Fault::Delay(delay)) => (response, Some(*delay)),
            _ => (response, None),
        };
        guard.requests.push(RecordedRequest {
            status,
            fault,
            ..recorded
        });
        guard.received_at.push(received_at);
        (response, delay)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    response
}

/// The recorded (or dynamic) answer to `recorded`.
fn answer(state: &mut State, recorded: &RecordedRequest) -> (u16, HttpResponse) {
    let listing = state
        .listings
        .get(&listing_key(&recorded.path, &recorded.form));
    let found = state
        .overrides
        .iter()
        .chain(listing)
        .chain(state.exchanges.iter())
        .find_map(|e| e.matches(recorded).map(|captures| (e.clone(), captures)));
    match found {
        Some((exchange, captures)) => match exchange.response.dynamic.as_deref() {
            Some(kind) => dynamic(state, kind, &exchange, &captures, recorded),
            None => (exchange.response.status, exchange.response.to_http()),
        },
        None => {
            let description = exchange::describe(recorded);
            state.unmatched.push(description.clone());
            tracing::warn!(request = %description, "replay: unmatched request");
            (
                599,
                HttpResponse::build(status_code(599))
                    .json(json!({"replay_error": format!("unmatched request: {description}")})),
            )
        }
    }
}

fn status_code(status: u16) -> actix_web::http::StatusCode {
    actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
}

fn not_found(id: &str) -> (u16, HttpResponse) {
    (
        404,
        HttpResponse::NotFound()
            .json(json!({"code": 3001, "message": format!("Meeting does not exist: {id}.")})),
    )
}

/// Zoom's validation of a meeting body (api/zoom.md): topic ≤ 200 and agenda ≤ 2000
/// characters, `start_time` UTC with `Z` and no fraction, `duration` a positive integer.
fn invalid_meeting(body: &Value) -> Option<String> {
    let chars = |field: &str| body[field].as_str().map(|t| t.chars().count()).unwrap_or(0);
    if chars("topic") > 200 {
        return Some("Validation Failed: topic is longer than 200 characters.".into());
    }
    if chars("agenda") > 2000 {
        return Some("Validation Failed: agenda is longer than 2000 characters.".into());
    }
    if let Some(start) = body.get("start_time") {
        let ok = start.as_str().is_some_and(|t| {
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%SZ").is_ok()
        });
        if !ok {
            return Some(format!(
                "Validation Failed: start_time {start} is not yyyy-MM-ddTHH:mm:ssZ."
            ));
        }
    }
    if let Some(duration) = body.get("duration")
        && duration.as_u64().is_none_or(|d| d == 0)
    {
        return Some(format!(
            "Validation Failed: duration {duration} is not a positive integer."
        ));
    }
    None
}

/// Zoom's stateful endpoints.
fn dynamic(
    state: &mut State,
    kind: &str,
    exchange: &Exchange,
    captures: &BTreeMap<String, String>,
    request: &RecordedRequest,
) -> (u16, HttpResponse) {
    let body = request.json.clone().unwrap_or(Value::Null);
    if matches!(kind, "zoom_create_meeting" | "zoom_update_meeting")
        && let Some(problem) = invalid_meeting(&body)
    {
        return (
            400,
            HttpResponse::BadRequest().json(json!({"code": 300, "message": problem})),
        );
    }
    match kind {
        "zoom_create_meeting" => {
            let id = state.next_meeting_id;
            state.next_meeting_id += 1;
            let mut meeting = exchange.response.json.clone().unwrap_or_else(|| json!({}));
            let host = captures.get("email").cloned().unwrap_or_default();
            for field in [
                "topic",
                "type",
                "start_time",
                "duration",
                "timezone",
                "agenda",
            ] {
                if let Some(value) = body.get(field) {
                    meeting[field] = value.clone();
                }
            }
            if let Some(invitees) = body.pointer("/settings/meeting_invitees") {
                meeting["settings"]["meeting_invitees"] = invitees.clone();
            }
            meeting["id"] = json!(id);
            meeting["uuid"] = json!(format!("replay-uuid-{id}"));
            meeting["host_email"] = json!(host);
            meeting["host_id"] = json!(format!("host-{host}"));
            meeting["join_url"] = json!(format!("https://zoom.us/j/{id}"));
            meeting["start_url"] = json!(format!("https://zoom.us/s/{id}?zak=replay"));
            meeting["password"] = json!("replay");
            meeting["created_at"] = json!("2026-11-25T01:00:00Z");
            state.meetings.insert(id, meeting.clone());
            (201, HttpResponse::Created().json(meeting))
        }
        "zoom_update_meeting" => {
            let id = captures.get("id").cloned().unwrap_or_default();
            let Some(meeting) = id
                .parse::<i64>()
                .ok()
                .and_then(|id| state.meetings.get_mut(&id))
            else {
                return not_found(&id);
            };
            if let Value::Object(fields) = body {
                for (key, value) in fields {
                    meeting[key.as_str()] = value;
                }
            }
            (204, HttpResponse::NoContent().finish())
        }
        "zoom_delete_meeting" => {
            let id = captures.get("id").cloned().unwrap_or_default();
            match id
                .parse::<i64>()
                .ok()
                .and_then(|id| state.meetings.remove(&id))
            {
                Some(_) => (204, HttpResponse::NoContent().finish()),
                None => not_found(&id),
            }
        }
        "zoom_list_meetings" => {
            let host = captures.get("email").cloned().unwrap_or_default();
            let meetings: Vec<Value> = state
                .meetings
                .values()
                .filter(|m| m["host_email"] == host.as_str())
                .map(|m| {
                    json!({
                        "id": m["id"], "uuid": m["uuid"], "host_id": m["host_id"], "topic": m["topic"],
                        "type": m["type"], "start_time": m["start_time"], "duration": m["duration"],
                        "timezone": m["timezone"], "join_url": m["join_url"],
                        // Zoom's list cuts each agenda to 250 characters
                        "agenda": m["agenda"].as_str().map(|a| a.chars().take(250).collect::<String>()),
                        "created_at": m["created_at"],
                    })
                })
                .collect();
            let body = json!({"page_size": 300, "total_records": meetings.len(), "next_page_token": "", "meetings": meetings});
            (200, HttpResponse::Ok().json(body))
        }
        other => (
            599,
            HttpResponse::build(status_code(599))
                .json(json!({"replay_error": format!("unknown dynamic exchange {other:?}")})),
        ),
    }
}

#[cfg(test)]
mod tests;
