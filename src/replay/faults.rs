//! Fault injection: a test makes the replay misbehave the way the real services do (shared
//! `api/zoom.md` and `api/jmotto.md`), for a given number of matching requests.
//!
//! A fault either replaces the recorded answer (5xx, each kind of Zoom 429, an expired token
//! or access key, J-MOTTO's 429) or wraps it: the request is served as usual (a create stores
//! its meeting) and then the answer comes late ([`Fault::Delay`]) or never
//! ([`Fault::LostResponse`]: the connection drops after the status line).

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::HttpResponse;
use serde_json::json;

use super::{RecordedRequest, status_code};

/// One way a real service fails.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Fault {
    /// An HTTP 5xx (the status given) with a JSON error body.
    ServerError(u16),
    /// An HTTP 200 whose body is not JSON at all (a proxy's error page, a truncated answer).
    Garbage,
    /// The request is served, and the answer is sent after this long: a slow answer, or, longer
    /// than the client's timeout, a timeout whose request took effect.
    Delay(Duration),
    /// The request is served (a create stores its meeting), then the connection drops before
    /// the body: the client never learns the answer.
    LostResponse,
    /// Zoom's per-second 429 (`X-RateLimit-Type: QPS`), with `Retry-After: N` when given.
    ZoomPerSecond { retry_after_seconds: Option<u64> },
    /// Zoom's account daily 429 (`X-RateLimit-Type: Daily-limit`) with an ISO `Retry-After`.
    ZoomAccountDaily { retry_after: String },
    /// Zoom's per-host daily limit of creates/updates: HTTP 429 without `Retry-After`, or the
    /// HTTP 300 spelling with its own message.
    ZoomHostDaily { http_300: bool },
    /// Zoom's 401 code 124: the access token is invalid or expired.
    ZoomExpiredToken,
    /// Zoom's 404 code 1001: the user (a create's host e-mail) is not in the account.
    ZoomUserNotFound,
    /// J-MOTTO's HTTP 429 with a plain body: more than ten requests queued.
    JmottoBusy,
    /// J-MOTTO's errorno 1002: the access key is invalid or expired.
    JmottoExpiredKey,
}

/// Which requests a fault applies to.
pub type Matcher = Arc<dyn Fn(&RecordedRequest) -> bool + Send + Sync>;

pub(super) struct Injection {
    pub(super) fault: Fault,
    pub(super) remaining: usize,
    pub(super) applies: Matcher,
}

impl std::fmt::Debug for Injection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injection")
            .field("fault", &self.fault)
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

/// Takes the first injected fault that applies to `request` (and counts it down).
pub(super) fn take(injections: &mut Vec<Injection>, request: &RecordedRequest) -> Option<Fault> {
    let index = injections
        .iter()
        .position(|i| i.remaining > 0 && (i.applies)(request))?;
    let injection = &mut injections[index];
    injection.remaining -= 1;
    let fault = injection.fault.clone();
    if injection.remaining == 0 {
        injections.remove(index);
    }
    Some(fault)
}

impl Fault {
    /// The answer that replaces the recorded one, or `None` when the fault wraps it.
    pub(super) fn answer(&self) -> Option<(u16, HttpResponse)> {
        let (status, response) = match self {
            Fault::Delay(_) | Fault::LostResponse => return None,
            Fault::ServerError(status) => (
                *status,
                HttpResponse::build(status_code(*status))
                    .json(json!({"code": status, "message": "Internal Server Error"})),
            ),
            Fault::Garbage => (
                200,
                HttpResponse::Ok()
                    .content_type("text/html")
                    .body("<html><body>502 Bad Gateway</body></html"),
            ),
            Fault::ZoomPerSecond {
                retry_after_seconds,
            } => {
                let mut builder = HttpResponse::TooManyRequests();
                builder.insert_header(("X-RateLimit-Type", "QPS"));
                if let Some(seconds) = retry_after_seconds {
                    builder.insert_header(("Retry-After", seconds.to_string()));
                }
                (
                    429,
                    builder.json(json!({"code": 429, "message": "You have reached the maximum per-second rate limit for this API. Try again later."})),
                )
            }
            Fault::ZoomAccountDaily { retry_after } => (
                429,
                HttpResponse::TooManyRequests()
                    .insert_header(("X-RateLimit-Type", "Daily-limit"))
                    .insert_header(("X-RateLimit-Remaining", "0"))
                    .insert_header(("Retry-After", retry_after.as_str()))
                    .json(json!({"code": 429, "message": "You have reached the maximum daily rate limit for this API. Refer to the response header for details on when you can make another request."})),
            ),
            Fault::ZoomHostDaily { http_300: false } => (
                429,
                HttpResponse::TooManyRequests().json(json!({"code": 429, "message": "You have exceeded the daily rate limit (100) of Meeting Create/Update API requests permitted for this particular user. You may resume these requests at GMT 00:00:00."})),
            ),
            Fault::ZoomHostDaily { http_300: true } => (
                300,
                HttpResponse::build(status_code(300)).json(json!({"code": 300, "message": "A maximum of 100 meetings can be created/updated for a single user in one day."})),
            ),
            Fault::ZoomExpiredToken => (
                401,
                HttpResponse::Unauthorized()
                    .json(json!({"code": 124, "message": "Invalid access token."})),
            ),
            Fault::ZoomUserNotFound => (
                404,
                HttpResponse::NotFound()
                    .json(json!({"code": 1001, "message": "User does not exist."})),
            ),
            Fault::JmottoBusy => (
                429,
                HttpResponse::TooManyRequests()
                    .content_type("text/plain")
                    .body("Too Many Requests"),
            ),
            Fault::JmottoExpiredKey => (
                200,
                HttpResponse::Ok().json(json!({"status": "ng", "errorno": 1002, "errormessage": "アクセスキーが無効です"})),
            ),
        };
        Some((status, response))
    }
}

/// The window Zoom's per-second limits are checked over: one second less a 50 ms allowance
/// for the jitter between when a paced client sends and when the replay sees a request.
pub const RATE_WINDOW: Duration = Duration::from_millis(950);

/// The largest number of `times` (in any order) that fall in one half-open window
/// `[t, t + window)`: with [`RATE_WINDOW`], how many calls Zoom's per-second limit saw at once.
pub fn peak_in_window(times: &[Instant], window: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let mut first = 0;
    let mut peak = 0;
    for (last, at) in sorted.iter().enumerate() {
        while at.duration_since(sorted[first]) >= window {
            first += 1;
        }
        peak = peak.max(last + 1 - first);
    }
    peak
}

/// Zoom's per-second limits, per category, over a sliding window.
#[derive(Debug)]
pub(super) struct RateLimit {
    medium: (usize, VecDeque<Instant>),
    light: (usize, VecDeque<Instant>),
}

impl RateLimit {
    pub(super) fn new(creates_per_second: u32, requests_per_second: u32) -> RateLimit {
        let limit = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        RateLimit {
            medium: (limit(creates_per_second), VecDeque::new()),
            light: (limit(requests_per_second), VecDeque::new()),
        }
    }

    /// The per-second 429 when `request` goes over its category's limit, else counts it.
    pub(super) fn check(&mut self, request: &RecordedRequest, now: Instant) -> Option<Fault> {
        if !zoom_api(request) {
            return None;
        }
        let (limit, recent) = if zoom_create(request) {
            &mut self.medium
        } else {
            &mut self.light
        };
        while recent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= RATE_WINDOW)
        {
            recent.pop_front();
        }
        if recent.len() >= *limit {
            return Some(Fault::ZoomPerSecond {
                retry_after_seconds: None,
            });
        }
        recent.push_back(now);
        None
    }
}

/// An answer whose status line goes out and whose body never arrives: the connection drops.
pub(super) fn lost(status: u16) -> HttpResponse {
    let body = futures::stream::once(async {
        Err::<actix_web::web::Bytes, std::io::Error>(std::io::Error::other(
            "replay: connection dropped before the answer",
        ))
    });
    HttpResponse::build(status_code(status))
        .content_type("application/json")
        .streaming(body)
}

/// Zoom's meeting create (`POST /v2/users/{email}/meetings`).
pub fn zoom_create(request: &RecordedRequest) -> bool {
    request.method == "POST"
        && request.path.starts_with("/v2/users/")
        && request.path.ends_with("/meetings")
}

/// A create for the host `email`.
pub fn zoom_create_for(email: &str) -> impl Fn(&RecordedRequest) -> bool + Send + Sync + 'static {
    let path = format!("/v2/users/{email}/meetings");
    move |request: &RecordedRequest| request.method == "POST" && request.path == path
}

/// Zoom's meeting PATCH.
pub fn zoom_update(request: &RecordedRequest) -> bool {
    request.method == "PATCH" && request.path.starts_with("/v2/meetings/")
}

/// Zoom's meeting DELETE.
pub fn zoom_delete(request: &RecordedRequest) -> bool {
    request.method == "DELETE" && request.path.starts_with("/v2/meetings/")
}

/// Zoom's list of a host's upcoming meetings.
pub fn zoom_list(request: &RecordedRequest) -> bool {
    request.method == "GET"
        && request.path.starts_with("/v2/users/")
        && request.path.ends_with("/meetings")
}

/// Any Zoom API call (not the token endpoint).
pub fn zoom_api(request: &RecordedRequest) -> bool {
    request.path.starts_with("/v2/")
}

/// J-MOTTO's `list_events`.
pub fn jmotto_list_events(request: &RecordedRequest) -> bool {
    request.form.get("action").map(String::as_str) == Some("list_events")
}
