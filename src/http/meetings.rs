//! `GET /api/v1/meetings`: meeting rows and the entries that got none, filtered.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{
    auth::Admin,
    body::quoted,
    errors::{ApiError, ErrorBody},
    state::AppState,
    status::local_text,
};
use crate::{
    domain::window::resolve_local,
    store::{
        MeetingRow, MeetingState,
        meetings::{MeetingFilter, list_meetings},
        utc_text,
    },
};

/// Filters of `GET /api/v1/meetings`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MeetingQuery {
    /// A configured groupware id: meetings it hosts (the served document lists them).
    user: Option<String>,
    /// One of created, pending, deferred, failed, skipped, superseded, deleted.
    #[param(value_type = Option<MeetingStateName>)]
    state: Option<String>,
    /// Starting at or after: RFC 3339, or a date (its local 00:00).
    #[param(value_type = Option<Bound>)]
    from: Option<String>,
    /// Starting before: RFC 3339, or a date (its local 00:00).
    #[param(value_type = Option<Bound>)]
    to: Option<String>,
}

/// The schema of a `from`/`to` bound: an RFC 3339 instant or a date ([`parse_bound`]).
pub struct Bound;

impl utoipa::PartialSchema for Bound {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type,
        };
        let string = |format| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(format)))
        };
        AnyOfBuilder::new()
            .item(string(KnownFormat::Date))
            .item(string(KnownFormat::DateTime))
            .into()
    }
}

impl utoipa::ToSchema for Bound {}

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
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MeetingList {
    pub meetings: Vec<MeetingView>,
}

/// One meeting as `GET /api/v1/meetings` shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
        format!(
            "`{name}` must be an RFC 3339 instant or a date YYYY-MM-DD, not {}",
            quoted(text)
        ),
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
    _admin: Admin,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let settings = state.live.current().await?;
    let tz = settings.groupware.timezone;
    let query = web::Query::<MeetingQuery>::from_query(request.query_string())
        .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?
        .into_inner();
    if let Some(user) = &query.user
        && !settings
            .users
            .iter()
            .any(|u| u.groupware_id.as_str() == user)
    {
        return Err(ApiError::invalid(
            "unknown_user",
            format!("user {} is not in [[users]]", quoted(user)),
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
    let rows = list_meetings(state.store.db(), &filter).await?;
    let meetings: Vec<MeetingView> = rows
        .into_iter()
        .map(|r| MeetingView::from_row(r, tz))
        .collect();
    Ok(HttpResponse::Ok().json(MeetingList { meetings }))
}
