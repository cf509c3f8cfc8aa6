//! `GET /api/v1/status`: enabled or why not (R-ENABLED), the window, the queue, meetings by
//! state, the users.

use actix_web::{HttpResponse, web};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{
    auth::Admin,
    errors::{ApiError, ErrorBody},
    state::AppState,
};
use crate::{
    checks::disabled_reasons,
    domain::window::SyncWindow as Window,
    store::{
        meetings::count_by_state,
        parse_utc, receiver,
        sync_state::{self, QueueCounts},
    },
};

/// The sync window (R-WINDOW): local midnights, RFC 3339.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WindowView {
    #[schema(example = "2026-11-01T00:00:00+09:00")]
    pub from: String,
    #[schema(example = "2027-02-01T00:00:00+09:00")]
    pub to: String,
}

/// One configured user.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckView {
    /// `zoom`, `groupware` or `timezone`.
    pub service: String,
    pub ok: bool,
    pub detail: String,
    pub checked_at: String,
}

/// Jobs ready or running now, deferred to later, and failed.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueView {
    pub pending: i64,
    pub running: i64,
    pub scheduled: i64,
    pub failed: i64,
}

impl QueueView {
    /// No job is ready or running (deferred ones may wait).
    pub fn is_idle(&self) -> bool {
        self.pending == 0 && self.running == 0
    }
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
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
pub async fn status(_admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(status_view(&state).await?))
}

/// What `GET /api/v1/status` answers (also the console's 状態 page).
pub async fn status_view(state: &AppState) -> anyhow::Result<StatusView> {
    let settings = &*state.live.current().await?;
    let pool = state.store.db();
    let tz = settings.groupware.timezone;
    let window = Window::containing(state.clock.now(), tz, settings.sync.months)
        .map_err(|e| anyhow::anyhow!("cannot compute the window: {e}"))?;
    let states = sync_state::user_sync_states(pool).await?;
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
    let checks = receiver::checks(pool).await?;
    let reasons = disabled_reasons(settings, &checks);
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
        queue: sync_state::queue_counts(state.store.db()).await?.into(),
        meetings: count_by_state(state.store.db()).await?,
        users,
    };
    Ok(view)
}

/// A stored UTC instant as RFC 3339 in the administrator's timezone.
pub(crate) fn local_text(utc: &str, tz: Tz) -> Option<String> {
    parse_utc(utc)
        .ok()
        .map(|t| t.with_timezone(&tz).to_rfc3339())
}
