//! Handlers. Each reads or writes the store only.

use actix_web::{
    HttpMessage, HttpRequest, HttpResponse, ResponseError,
    http::{StatusCode, header},
    web,
};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::{
    AppState, RequestId,
    errors::{ApiError, ErrorBody},
    openapi, webhooks,
};
use crate::{
    domain::window::{SyncWindow as Window, resolve_local},
    jobs::worker::enqueue_sync,
    store::{
        MeetingRow, MeetingState,
        meetings::{MeetingFilter, count_by_state, list_meetings},
        parse_utc, receiver,
        sync_state::{self, QueueCounts},
        utc_text,
    },
};

/// Mounts every route; unknown paths answer a JSON 404, a known path with another method
/// a JSON 405.
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(only("/healthz", "GET", healthz))
        .service(only("/readyz", "GET", readyz))
        .service(only("/metrics", "GET", metrics))
        .service(only("/api/openapi.json", "GET", openapi::serve))
        .service(only("/webhooks/groupware", "POST", webhooks::receive))
        .service(
            web::scope("/api/v1")
                .service(only("/sync", "POST", trigger_sync))
                .service(only("/status", "GET", status))
                .service(only("/meetings", "GET", meetings))
                .service(only("/jobs/{id}", "GET", job)),
        )
        .default_service(web::to(not_found));
}

/// `path` answering `method` with `handler` (a `GET` also answers `HEAD`), and a JSON 405
/// with `Allow` to any other method.
fn only<F, Args>(path: &str, method: &'static str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    let (resource, allowed) = match method {
        "POST" => (web::resource(path).route(web::post().to(handler)), "POST"),
        _ => (
            web::resource(path)
                .route(web::get().to(handler.clone()))
                .route(web::head().to(handler)),
            "GET, HEAD",
        ),
    };
    resource.default_service(web::to(move |request: HttpRequest| async move {
        method_not_allowed(request, allowed)
    }))
}

fn method_not_allowed(request: HttpRequest, allowed: &'static str) -> HttpResponse {
    let mut response = ApiError::client(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} accepts {allowed}, not {}",
            request.path(),
            request.method()
        ),
    )
    .error_response();
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allowed));
    response
}

async fn not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "there is no {} {} here",
        request.method(),
        request.path()
    )))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = HealthView)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// `{"status"}`, with `reason` when not ready.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthView {
    /// `ok`, `ready` or `not_ready`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Readiness: the database answers and is migrated.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = HealthView),
        (status = 503, description = "Not ready, with the reason", body = HealthView),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.engine.store.is_ready().await {
        Ok(()) => HttpResponse::Ok().json(HealthView {
            status: "ready".to_owned(),
            reason: None,
        }),
        Err(error) => HttpResponse::ServiceUnavailable().json(HealthView {
            status: "not_ready".to_owned(),
            reason: Some(format!("{error:#}")),
        }),
    }
}

/// Prometheus text: jobs by queue and state, meetings by state, Zoom and J-MOTTO calls by
/// endpoint and outcome, Zoom 429s by kind, webhook verifications by outcome, and the time
/// from trigger to meeting. Bind the server privately: it has no auth.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let engine = &state.engine;
    let text = engine.metrics.render(engine.store.pool()).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
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
pub(crate) async fn read_body(
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
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

/// 415 unless the request says `Content-Type: application/json`.
pub(crate) fn require_json(request: &HttpRequest) -> Result<(), ApiError> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::client(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ))
    }
}

/// Parses a JSON body: not JSON at all is a 400, JSON of the wrong shape a 422.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    serde_json::from_slice::<T>(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::invalid("invalid_field", format!("the body is not {what}: {e}"))
        }
        _ => ApiError::bad_request(format!("the body is not valid JSON: {e}")),
    })
}

/// The body of `POST /api/v1/sync` (optional).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Groupware ids of enabled users; omitted = every enabled user.
    #[serde(default)]
    #[schema(example = json!(["10002"]))]
    pub users: Option<Vec<String>>,
}

/// A queued job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    #[schema(example = "01JDW3V9K6Q0M2Z8Y4X7B5N1C3")]
    pub job_id: String,
    /// Where to follow it: `/api/v1/jobs/{job_id}`.
    pub status_url: String,
}

/// `POST /api/v1/sync`: all enabled users, or the named ones.
#[utoipa::path(post, path = "/api/v1/sync", tag = "admin",
    security(("admin_token" = [])),
    request_body(content = Option<SyncRequest>, content_type = "application/json",
        description = "Optional; an empty body syncs every enabled user"),
    responses(
        (status = 202, description = "Queued (or the identical full resync still queued)", body = Accepted),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 413, description = "The body is over server.body_limit_bytes", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "Unknown or disabled user, or a field of the wrong type", body = ErrorBody),
    ))]
pub async fn trigger_sync(
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
        require_json(&request)?;
        parse_json::<SyncRequest>(&body, "a sync request")?
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

/// The sync window (R-WINDOW): local midnights, RFC 3339.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WindowView {
    #[schema(example = "2026-11-01T00:00:00+09:00")]
    pub from: String,
    #[schema(example = "2027-02-01T00:00:00+09:00")]
    pub to: String,
}

/// One configured user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub groupware_id: String,
    pub zoom_email: String,
    pub enabled: bool,
    /// The end of the user's last complete listing (administrator's timezone).
    pub last_sync_at: Option<String>,
    /// Why the last listing failed, and where to fix it.
    pub last_error: Option<String>,
}

/// The last check of one part R-ENABLED names.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckView {
    /// `zoom`, `groupware` or `timezone`.
    pub service: String,
    pub ok: bool,
    pub detail: String,
    pub checked_at: String,
}

/// Jobs ready or running now, deferred to later, and failed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueView {
    pub pending: i64,
    pub running: i64,
    pub scheduled: i64,
    pub failed: i64,
}

impl From<QueueCounts> for QueueView {
    fn from(counts: QueueCounts) -> QueueView {
        QueueView {
            pending: counts.pending,
            running: counts.running,
            scheduled: counts.scheduled,
            failed: counts.failed,
        }
    }
}

/// `GET /api/v1/status`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusView {
    /// R-ENABLED (有効): credentials and timezone set and their last checks succeeded.
    pub enabled: bool,
    /// Why not enabled (empty when enabled).
    pub reasons: Vec<String>,
    pub checks: Vec<CheckView>,
    pub window: WindowView,
    pub queue: QueueView,
    /// Meeting rows by state.
    #[schema(example = json!({"created": 16, "skipped": 4}))]
    pub meetings: std::collections::BTreeMap<String, i64>,
    pub users: Vec<UserView>,
}

/// `GET /api/v1/status`.
#[utoipa::path(get, path = "/api/v1/status", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Enabled or why not, window, queue, meetings, users", body = StatusView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub async fn status(
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
    let checks = receiver::checks(engine.store.pool()).await?;
    let reasons = crate::doctor::disabled_reasons(settings, &checks);
    let view = StatusView {
        enabled: reasons.is_empty(),
        reasons,
        checks: checks
            .into_iter()
            .map(|c| CheckView {
                checked_at: local_text(&c.checked_at, tz).unwrap_or(c.checked_at),
                service: c.service,
                ok: c.ok,
                detail: c.detail,
            })
            .collect(),
        window: WindowView {
            from: window.from.to_rfc3339(),
            to: window.to.to_rfc3339(),
        },
        queue: sync_state::queue_counts(engine.store.pool()).await?.into(),
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

/// Filters of `GET /api/v1/meetings`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MeetingQuery {
    /// A configured groupware id: meetings it hosts.
    user: Option<String>,
    /// One of created, pending, deferred, failed, skipped, superseded, deleted.
    #[param(value_type = Option<MeetingStateName>)]
    state: Option<String>,
    /// Starting at or after: RFC 3339, or a date (its local 00:00).
    from: Option<String>,
    /// Starting before: RFC 3339, or a date (its local 00:00).
    to: Option<String>,
}

/// A meeting state as the API names it (the `state` filter's values).
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum MeetingStateName {
    Created,
    Pending,
    Deferred,
    Failed,
    Skipped,
    Superseded,
    Deleted,
}

/// `{"meetings": [...]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeetingList {
    pub meetings: Vec<MeetingView>,
}

/// One meeting as `GET /api/v1/meetings` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
    /// created, pending, deferred, failed, skipped, superseded, deleted.
    pub state: String,
    pub reason: Option<String>,
}

impl MeetingView {
    /// The row as the API shows it, instants in the administrator's timezone.
    pub fn from_row(row: MeetingRow, tz: Tz) -> MeetingView {
        MeetingView {
            start: local_text(&row.start_utc, tz).unwrap_or_else(|| row.start_utc.clone()),
            end: local_text(&row.end_utc, tz).unwrap_or_else(|| row.end_utc.clone()),
            state: row.state().api_str().to_owned(),
            schedule_id: row.schedule_id,
            occurrence: row.occurrence,
            host_user_id: row.host_user_id,
            host_email: row.host_email,
            topic: row.topic,
            duration_minutes: row.duration_minutes,
            zoom_meeting_id: row.zoom_meeting_id,
            join_url: row.join_url,
            reason: row.reason.map(|reason| reason.api_text()),
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
#[utoipa::path(get, path = "/api/v1/meetings", tag = "admin",
    security(("admin_token" = [])),
    params(MeetingQuery),
    responses(
        (status = 200, description = "Meetings and entries that got none (skipped, with the reason)", body = MeetingList),
        (status = 400, description = "A query string that cannot be read", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 422, description = "Unknown user, state or bound", body = ErrorBody),
    ))]
pub async fn meetings(
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
    Ok(HttpResponse::Ok().json(MeetingList { meetings }))
}

/// One job (SPEC §5: state, attempts, last error).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobStatus {
    pub id: String,
    /// `jmz.sync_window`, `jmz.fetch_slice`, `jmz.create_meeting`, …
    pub queue: String,
    /// pending, scheduled, running, done, failed, killed.
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    /// When it runs (or ran), RFC 3339 in the administrator's timezone.
    pub run_at: String,
    /// The handler's error of the last attempt, if it failed.
    pub last_error: Option<String>,
}

impl JobStatus {
    fn from_view(job: sync_state::JobView, now: DateTime<Utc>, tz: Tz) -> JobStatus {
        let run_at = DateTime::from_timestamp(job.run_at, 0).unwrap_or(now);
        // apalis stores `{"Err": "…"}` / `{"Ok": …}`; only an error is worth showing.
        let last_error = job
            .last_result
            .as_deref()
            .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
            .and_then(|v| {
                v.get("Err")
                    .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
            });
        JobStatus {
            id: job.id,
            queue: job.queue,
            state: job.state.name().to_owned(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            run_at: run_at.with_timezone(&tz).to_rfc3339(),
            last_error,
        }
    }
}

/// `GET /api/v1/jobs/{id}`.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "admin",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "A job id (ULID) from a 202")),
    responses(
        (status = 200, description = "The job", body = JobStatus),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
pub async fn job(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&request, &state)?;
    let id = path.into_inner();
    let engine = &state.engine;
    match sync_state::job(engine.store.pool(), &id).await? {
        Some(job) => Ok(HttpResponse::Ok().json(JobStatus::from_view(
            job,
            Utc::now(),
            engine.settings.groupware.timezone,
        ))),
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
