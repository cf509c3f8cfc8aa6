//! `POST /webhooks/groupware` (SPEC §5): Standard Webhooks verification over the raw body,
//! the body's validation (a refused body is looked up as a possible redelivery first); then
//! the delivery goes to the committer
//! ([`super::group_commit`]), whose transaction records the delivery id and enqueues a resync
//! of the named users' windows, shared with the deliveries that arrived at the same moment.
//! The 202 follows that commit. A redelivery (same `webhook-id`) answers 200 with the first
//! job's id and enqueues nothing.
//!
//! Verification is [`crate::signature`]'s (Standard Webhooks, ±5 minutes, constant-time),
//! under the keys parsed once from `server.webhook_secret` when the settings were read.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{
    access::RequestId,
    body::{parse_json, read_body, require_json, some_of},
    errors::ApiError,
    group_commit::{CommitError, Delivery, Recorded},
    state::AppState,
};
use crate::{metrics::WEBHOOK_VERIFICATIONS, signature, store::receiver};

/// The notification's body (SPEC §5). Unknown fields are ignored (a sender may add, e.g.,
/// the Standard Webhooks top-level `timestamp`; refusing them would make it retry forever).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct GroupwareEvent {
    /// `schedule.created`, `schedule.updated` or `schedule.deleted`.
    #[serde(rename = "type")]
    #[schema(
        example = "schedule.updated",
        pattern = "^schedule\\.(created|updated|deleted)$"
    )]
    pub event_type: String,
    pub data: GroupwareEventData,
}

/// What changed: one schedule entry and the users whose schedules hold it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct GroupwareEventData {
    /// Not blank.
    #[schema(
        example = "8801",
        pattern = "[^\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub schedule_id: String,
    /// Groupware ids; those not enabled here are ignored, at least one must be enabled (the
    /// served document lists them).
    #[schema(example = json!(["10002"]), min_items = 1)]
    pub user_ids: Vec<String>,
}

const EVENT_TYPES: [&str; 3] = ["schedule.created", "schedule.updated", "schedule.deleted"];

/// The answer to an accepted delivery.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookAccepted {
    /// The `SyncWindow` job (the first one, for a redelivery).
    #[schema(example = "01JDW3V9K6Q0M2Z8Y4X7B5N1C3")]
    pub job_id: String,
}

/// `POST /webhooks/groupware`.
#[utoipa::path(
    post,
    path = "/webhooks/groupware",
    tag = "webhooks",
    request_body(content = GroupwareEvent, content_type = "application/json"),
    params(
        ("webhook-id" = String, Header, description = "Delivery id; a repeated id is answered with the first job"),
        ("webhook-timestamp" = String, Header, description = "Seconds since the Unix epoch, within ±5 minutes"),
        ("webhook-signature" = String, Header, description = "Space-separated `v1,<base64 HMAC-SHA256>` signatures"),
    ),
    responses(
        (status = 202, description = "Accepted: a resync of the named users' windows is queued", body = WebhookAccepted),
        (status = 200, description = "A redelivery: the first delivery's job, nothing queued", body = WebhookAccepted),
        (status = 400, description = "The body is not JSON", body = super::errors::ErrorBody),
        (status = 401, description = "Missing, bad or stale signature", body = super::errors::ErrorBody),
        (status = 404, description = "Webhooks are not configured (server.webhook_secret)", body = super::errors::ErrorBody),
        (status = 408, description = "The body did not arrive within a few seconds", body = super::errors::ErrorBody),
        (status = 413, description = "The body is over server.body_limit_bytes (a declared Content-Length over it is refused before the body is read)", body = super::errors::ErrorBody),
        (status = 415, description = "The body is not application/json", body = super::errors::ErrorBody),
        (status = 422, description = "Unknown event type, or no enabled user", body = super::errors::ErrorBody),
        (status = 503, description = "Deliveries cannot be recorded now (the server is stopping): send it again later", body = super::errors::ErrorBody),
    )
)]
pub async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let engine = &*state;
    let Some(keys) = &engine.settings.server.webhook_secret else {
        return Err(ApiError::not_found(
            "webhooks are off here: set server.webhook_secret to receive them",
        ));
    };
    let body = read_body(&request, payload, engine.settings.server.body_limit_bytes).await?;
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let webhook_id = match signature::verify(keys.keys(), header, &body, Utc::now()) {
        Ok(id) => {
            engine
                .metrics
                .increment(WEBHOOK_VERIFICATIONS, &[("outcome", "ok")]);
            id
        }
        Err(error) => {
            let (label, message) = error.describe();
            engine
                .metrics
                .increment(WEBHOOK_VERIFICATIONS, &[("outcome", label)]);
            tracing::info!(outcome = label, "webhook refused");
            return Err(ApiError::client(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "bad_signature",
                message,
            ));
        }
    };
    // A valid body goes straight to the committer, whose transaction looks the id up (a
    // redelivery answers 200 there). A body refused now may still be a redelivery of one
    // accepted before (the configuration may have changed since): that answers with its
    // first job, as the sender expects; only a new delivery gets the refusal.
    let enabled = engine.live.current().await?.enabled_users();
    let (event, users) = match judge(&request, &body, &enabled) {
        Ok(judged) => judged,
        Err(refusal) => {
            let mut conn = engine
                .store
                .db()
                .acquire()
                .await
                .map_err(|e| anyhow::anyhow!("cannot look up a webhook delivery: {e}"))?;
            if let Some(job_id) = receiver::delivery_job(&mut conn, &webhook_id).await? {
                return Ok(redelivered(&webhook_id, job_id));
            }
            return Err(refusal);
        }
    };
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    let delivery = Delivery {
        webhook_id: webhook_id.clone(),
        users,
        event_type: event.event_type.clone(),
        request_id,
    };
    // Answers only after the transaction holding the delivery has committed.
    match state.deliveries.record(delivery).await {
        Ok(Recorded::Queued { job_id }) => {
            tracing::info!(
                webhook.id = %webhook_id,
                webhook.type = %event.event_type,
                schedule.id = %event.data.schedule_id,
                job.id = %job_id,
                "webhook accepted"
            );
            Ok(HttpResponse::Accepted().json(WebhookAccepted { job_id }))
        }
        // A race with a delivery of the same id, decided in the transaction.
        Ok(Recorded::Redelivery { job_id }) => Ok(redelivered(&webhook_id, job_id)),
        Err(CommitError::Stopped) => Err(ApiError::unavailable(
            "the server cannot record deliveries now; send this one again later",
        )),
        Err(CommitError::Failed(error)) => Err(error.into()),
    }
}

/// The notification in `body`, and its enabled users, or why it is refused (SPEC §5: 415,
/// 400, 422).
fn judge(
    request: &HttpRequest,
    body: &[u8],
    enabled: &crate::domain::host::EnabledUsers,
) -> Result<(GroupwareEvent, Vec<String>), ApiError> {
    require_json(request)?;
    let event: GroupwareEvent = parse_json(body, "a groupware notification")?;
    if !EVENT_TYPES.contains(&event.event_type.as_str()) {
        return Err(ApiError::invalid(
            "invalid_field",
            format!(
                "`type` must be one of {}, not {:?}",
                EVENT_TYPES.join(", "),
                event.event_type
            ),
        ));
    }
    if event.data.schedule_id.trim().is_empty() {
        return Err(ApiError::invalid(
            "invalid_field",
            "`data.schedule_id` is empty",
        ));
    }
    let mut users: Vec<String> = event
        .data
        .user_ids
        .iter()
        .filter(|u| enabled.contains(u))
        .cloned()
        .collect();
    users.sort();
    users.dedup();
    if users.is_empty() {
        return Err(ApiError::invalid(
            "unknown_user",
            format!(
                "none of data.user_ids ({}) is an enabled user of this integration ([[users]] with enabled = true)",
                some_of(&event.data.user_ids)
            ),
        ));
    }
    Ok((event, users))
}

/// The answer to a delivery id seen before: its first job, nothing queued.
fn redelivered(webhook_id: &str, job_id: String) -> HttpResponse {
    tracing::info!(webhook.id = %webhook_id, job.id = %job_id, "webhook redelivered");
    HttpResponse::Ok().json(WebhookAccepted { job_id })
}
