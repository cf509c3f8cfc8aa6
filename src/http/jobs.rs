//! `GET /api/v1/jobs/{id}`: one job's state, attempts and last error.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{
    auth::Admin,
    errors::{ApiError, ErrorBody},
    state::AppState,
};
use crate::store::sync_state;

/// One job (SPEC §5: state, attempts, last error).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
    _admin: Admin,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    match sync_state::job(state.store.db(), &id).await? {
        Some(job) => Ok(HttpResponse::Ok().json(JobStatus::from_view(
            job,
            Utc::now(),
            state.live.current().await?.groupware.timezone,
        ))),
        None => Err(ApiError::not_found(format!("there is no job {id:?}"))),
    }
}
