//! `POST /api/v1/sync`: the manual trigger.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::{
    access::RequestId,
    auth::Admin,
    body::{parse_json, read_body, require_json, some_of},
    errors::{ApiError, ErrorBody},
    state::AppState,
};

/// The body of `POST /api/v1/sync` (optional).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Groupware ids of enabled users (the served document lists them); omitted or null =
    /// every enabled user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = json!(["10002"]), min_items = 1)]
    pub users: Option<Vec<String>>,
}

/// A queued job.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
        (status = 408, description = "The body did not arrive within a few seconds", body = ErrorBody),
        (status = 413, description = "The body is over server.body_limit_bytes (a declared Content-Length over it is refused before the body is read)", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "Unknown or disabled user, or a field of the wrong type", body = ErrorBody),
    ))]
pub async fn trigger_sync(
    _admin: Admin,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&request, payload, state.settings.server.body_limit_bytes).await?;
    let parsed = if body.iter().all(u8::is_ascii_whitespace) {
        SyncRequest { users: None }
    } else {
        require_json(&request)?;
        // The body is optional, and `null` is no body (the document allows both); anything
        // else must be an object (serde would also take a struct as a list).
        match parse_json::<Option<serde_json::Map<String, serde_json::Value>>>(
            &body,
            "a sync request object",
        )? {
            None => SyncRequest { users: None },
            Some(object) => {
                serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| {
                    ApiError::invalid(
                        "invalid_field",
                        format!("the body is not a sync request: {e}"),
                    )
                })?
            }
        }
    };
    if let Some(users) = &parsed.users {
        if users.is_empty() {
            return Err(ApiError::invalid(
                "invalid_field",
                "`users` is empty: omit it to sync every enabled user",
            ));
        }
        let enabled = state.live.current().await?.enabled_users();
        let unknown: Vec<String> = users
            .iter()
            .filter(|user| !enabled.contains(user))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::invalid(
                "unknown_user",
                format!(
                    "not enabled users of this integration ([[users]] with enabled = true): {}",
                    some_of(&unknown)
                ),
            ));
        }
    }
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    let job_id = state.queue.enqueue_manual(parsed.users, request_id).await?;
    Ok(HttpResponse::Accepted().json(Accepted {
        status_url: format!("/api/v1/jobs/{job_id}"),
        job_id,
    }))
}
