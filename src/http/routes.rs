//! Handlers. Each reads or writes the store only.

use actix_web::{
    HttpMessage, HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{AppState, RequestId, errors::ApiError};
use crate::{
    domain::window::{SyncWindow as Window, resolve_local},
    jobs::worker::enqueue_sync,
    store::{
        MeetingRow, MeetingState,
        meetings::{MeetingFilter, count_by_state, list_meetings},
        parse_utc,
        sync_state::{self, QueueCounts},
        utc_text,
    },
};

/// Mounts every route; unknown paths answer a JSON 404.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .service(
            web::scope("/api/v1")
                .route("/sync", web::post().to(trigger_sync))
                .route("/status", web::get().to(status))
                .route("/meetings", web::get().to(meetings))
                .route("/jobs/{id}", web::get().to(job)),
        )
        .default_service(web::to(not_found));
}

async fn not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "there is no {} {} here",
        request.method(),
        request.path()
    )))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.engine.store.is_ready().await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(error) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "not_ready", "reason": format!("{error:#}")})),
    }
}

/// Checks `Authorization: Bearer <server.admin_token>` in constant time.
fn authorize(request: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized("send the admin token as `Authorization: Bearer <token>`")
        })?;
    let expected = state.engine.settings.server.admin_token.expose_secret();
    if constant_time_eq(given.trim().as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("the admin token is wrong"))
    }
}

/// Compares without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, byte) in a.iter().enumerate() {
        diff |= usize::from(byte ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

/// Reads the body up to `server.body_limit_bytes` (413 beyond).
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::client(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than {limit} bytes (server.body_limit_bytes)"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncRequest {
    #[serde(default)]
    users: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct Accepted {
    job_id: String,
    status_url: String,
}

/// `POST /api/v1/sync`: all enabled users, or the named ones.
async fn trigger_sync(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&request, &state)?;
    let engine = &state.engine;
    let body = read_body(payload, engine.settings.server.body_limit_bytes).await?;
    let parsed = if body.iter().all(u8::is_ascii_whitespace) {
        SyncRequest { users: None }
    } else {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::client(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        serde_json::from_slice::<SyncRequest>(&body).map_err(|e| {
            ApiError::bad_request(format!("the body is not a valid sync request: {e}"))
        })?
    };
    if let Some(users) = &parsed.users {
        if users.is_empty() {
            return Err(ApiError::invalid(
                "invalid_field",
                "`users` is empty: omit it to sync every enabled user",
            ));
        }
        for user in users {
            if !engine.enabled_users.contains(user) {
                return Err(ApiError::invalid(
                    "unknown_user",
                    format!(
                        "user {user:?} is not an enabled user of this integration ([[users]] with enabled = true)"
                    ),
                ));
            }
        }
    }
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    let job_id = enqueue_sync(engine, "manual", parsed.users.clone(), request_id, None).await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        status_url: format!("/api/v1/jobs/{job_id}"),
        job_id,
    }))
}

#[derive(Debug, Serialize)]
struct WindowView {
    from: String,
    to: String,
}

#[derive(Debug, Serialize)]
struct UserView {
    groupware_id: String,
    zoom_email: String,
    enabled: bool,
    last_sync_at: Option<String>,
    last_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct StatusView {
    enabled: bool,
    reasons: Vec<String>,
    window: WindowView,
    queue: QueueCounts,
    meetings: std::collections::BTreeMap<String, i64>,
    users: Vec<UserView>,
}

/// `GET /api/v1/status`. R-ENABLED here is the part this stage knows (users enabled, the
/// J-MOTTO login not refused); the per-service checks come with `doctor`.
async fn status(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&request, &state)?;
    let engine = &state.engine;
    let settings = &engine.settings;
    let tz = settings.groupware.timezone;
    let window = Window::containing(engine.clock.now(), tz, settings.sync.months)
        .map_err(|e| anyhow::anyhow!("cannot compute the window: {e}"))?;
    let states = sync_state::user_sync_states(engine.store.pool()).await?;
    let users: Vec<UserView> = settings
        .users
        .iter()
        .map(|u| {
            let known = states
                .iter()
                .find(|s| s.groupware_id == u.groupware_id.as_str());
            UserView {
                groupware_id: u.groupware_id.to_string(),
                zoom_email: u.zoom_email.to_string(),
                enabled: u.enabled,
                last_sync_at: known
                    .and_then(|s| s.last_sync_at.as_deref())
                    .and_then(|t| local_text(t, tz)),
                last_error: known.and_then(|s| s.last_error.clone()),
            }
        })
        .collect();
    let mut reasons = Vec::new();
    if engine.enabled_users.is_empty() {
        reasons.push("no user is enabled: add [[users]] with enabled = true".to_owned());
    }
    if users.iter().any(|u| {
        u.enabled
            && u.last_error
                .as_deref()
                .is_some_and(|e| e.contains("errorno 1001"))
    }) {
        reasons.push("the J-MOTTO administrator login fails: check [groupware]".to_owned());
    }
    let view = StatusView {
        enabled: reasons.is_empty(),
        reasons,
        window: WindowView {
            from: window.from.to_rfc3339(),
            to: window.to.to_rfc3339(),
        },
        queue: sync_state::queue_counts(engine.store.pool()).await?,
        meetings: count_by_state(engine.store.pool()).await?,
        users,
    };
    Ok(HttpResponse::Ok().json(view))
}

fn local_text(utc: &str, tz: Tz) -> Option<String> {
    parse_utc(utc)
        .ok()
        .map(|t| t.with_timezone(&tz).to_rfc3339())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeetingQuery {
    user: Option<String>,
    state: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// One meeting as `GET /api/v1/meetings` shows it.
#[derive(Debug, Serialize)]
pub struct MeetingView {
    pub schedule_id: String,
    pub occurrence: String,
    pub host_user_id: Option<String>,
    pub host_email: Option<String>,
    pub topic: String,
    pub start: String,
    pub end: String,
    pub duration_minutes: i64,
    pub zoom_meeting_id: Option<i64>,
    pub join_url: Option<String>,
    pub state: &'static str,
    pub reason: Option<String>,
}

impl MeetingView {
    /// The row as the API shows it, instants in the administrator's timezone.
    pub fn from_row(row: MeetingRow, tz: Tz) -> MeetingView {
        MeetingView {
            start: local_text(&row.start_utc, tz).unwrap_or_else(|| row.start_utc.clone()),
            end: local_text(&row.end_utc, tz).unwrap_or_else(|| row.end_utc.clone()),
            state: row.state().api_str(),
            schedule_id: row.schedule_id,
            occurrence: row.occurrence,
            host_user_id: row.host_user_id,
            host_email: row.host_email,
            topic: row.topic,
            duration_minutes: row.duration_minutes,
            zoom_meeting_id: row.zoom_meeting_id,
            join_url: row.join_url,
            reason: row.reason,
        }
    }
}

/// `from`/`to` as RFC 3339 or a local date (its 00:00 in the administrator's timezone).
fn parse_bound(name: &str, text: &str, tz: Tz) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(resolve_local(date.and_time(chrono::NaiveTime::MIN), tz));
    }
    Err(ApiError::invalid(
        "invalid_field",
        format!("`{name}` must be an RFC 3339 instant or a date YYYY-MM-DD, not {text:?}"),
    ))
}

/// `GET /api/v1/meetings` with filters `user`, `state`, `from`, `to`.
async fn meetings(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&request, &state)?;
    let engine = &state.engine;
    let tz = engine.settings.groupware.timezone;
    let query = web::Query::<MeetingQuery>::from_query(request.query_string())
        .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?
        .into_inner();
    if let Some(user) = &query.user
        && !engine
            .settings
            .users
            .iter()
            .any(|u| u.groupware_id.as_str() == user)
    {
        return Err(ApiError::invalid(
            "unknown_user",
            format!("user {user:?} is not in [[users]]"),
        ));
    }
    let states = match query.state.as_deref() {
        None => None,
        Some("pending") => Some(vec![
            MeetingState::Pending.as_str(),
            MeetingState::Creating.as_str(),
        ]),
        Some(other) => match MeetingState::API_STATES.iter().find(|s| **s == other) {
            Some(state) => Some(vec![*state]),
            None => {
                return Err(ApiError::invalid(
                    "invalid_field",
                    format!(
                        "`state` must be one of {}",
                        MeetingState::API_STATES.join(", ")
                    ),
                ));
            }
        },
    };
    let filter = MeetingFilter {
        user: query.user,
        states,
        from: query
            .from
            .as_deref()
            .map(|t| parse_bound("from", t, tz))
            .transpose()?
            .map(utc_text),
        to: query
            .to
            .as_deref()
            .map(|t| parse_bound("to", t, tz))
            .transpose()?
            .map(utc_text),
    };
    let rows = list_meetings(engine.store.pool(), &filter).await?;
    let meetings: Vec<MeetingView> = rows
        .into_iter()
        .map(|r| MeetingView::from_row(r, tz))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "meetings": meetings })))
}

/// `GET /api/v1/jobs/{id}`.
async fn job(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&request, &state)?;
    let id = path.into_inner();
    match sync_state::job(state.engine.store.pool(), &id).await? {
        Some(job) => Ok(HttpResponse::Ok().json(job)),
        None => Err(ApiError::not_found(format!("there is no job {id:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"x", b""));
    }
}
