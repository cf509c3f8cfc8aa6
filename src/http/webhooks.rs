//! `POST /webhooks/groupware` (SPEC §5): Standard Webhooks verification over the raw body,
//! the body's validation (a refused body is looked up as a possible redelivery first); then
//! the delivery goes to the committer
//! ([`super::group_commit`]), whose transaction records the delivery id and enqueues a resync
//! of the named users' windows, shared with the deliveries that arrived at the same moment.
//! The 202 follows that commit. A redelivery (same `webhook-id`) answers 200 with the first
//! job's id and enqueues nothing.
//!
//! Verification follows the Standard Webhooks specification: the signed content is
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, signed with HMAC-SHA256 under the secret's
//! base64-decoded bytes (after the `whsec_` prefix); `webhook-signature` holds one or more
//! space-separated `v1,<base64>` signatures, and one match is enough — so a sender can sign
//! with an old and a new secret while a secret is rotated. `server.webhook_secret` may hold
//! several secrets separated by spaces for the same reason on this side. Comparison is
//! constant-time; the timestamp must be within ±5 minutes of now.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, http::header::HeaderMap, web};
use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{
    access::RequestId,
    body::{parse_json, read_body, require_json},
    errors::ApiError,
    group_commit::{CommitError, Delivery, Recorded},
    state::AppState,
};
use crate::{metrics::WEBHOOK_VERIFICATIONS, store::receiver};

/// How far a `webhook-timestamp` may be from now, either way.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a delivery's signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    MissingHeaders,
    BadTimestamp,
    StaleTimestamp,
    NoMatch,
}

impl SignatureError {
    /// The metric label and the sentence for the 401.
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            SignatureError::MissingHeaders => (
                "missing_headers",
                "send the Standard Webhooks headers webhook-id, webhook-timestamp and webhook-signature",
            ),
            SignatureError::BadTimestamp => (
                "bad_timestamp",
                "webhook-timestamp must be whole seconds since the Unix epoch",
            ),
            SignatureError::StaleTimestamp => (
                "stale_timestamp",
                "webhook-timestamp is more than 5 minutes away from the server's clock",
            ),
            SignatureError::NoMatch => (
                "bad_signature",
                "no signature in webhook-signature matches the body under the configured secret",
            ),
        }
    }
}

/// A decoded signing secret (`whsec_<base64>`, or bare base64).
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// Decodes one secret; `None` when it is not base64.
    pub fn parse(secret: &str) -> Option<SigningKey> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let bytes = BASE64.decode(encoded).ok()?;
        (!bytes.is_empty()).then_some(SigningKey(bytes))
    }

    /// Every secret of a space-separated list (rotation); `None` if any is not base64.
    pub fn parse_all(secrets: &str) -> Option<Vec<SigningKey>> {
        let keys: Option<Vec<SigningKey>> =
            secrets.split_whitespace().map(SigningKey::parse).collect();
        keys.filter(|k| !k.is_empty())
    }

    /// The MAC over `id.timestamp.body` (HMAC takes keys of any length: never `None` for a
    /// parsed key, but no panic path either).
    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).ok()?;
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        Some(mac)
    }

    /// `v1,<base64>` for the given delivery (what a sender puts in `webhook-signature`).
    pub fn sign(&self, id: &str, timestamp: &str, body: &[u8]) -> Option<String> {
        let tag = self.mac(id, timestamp, body)?.finalize().into_bytes();
        Some(format!("v1,{}", BASE64.encode(tag)))
    }

    fn verifies(&self, id: &str, timestamp: &str, body: &[u8], signature: &[u8]) -> bool {
        // `verify_slice` compares in constant time.
        self.mac(id, timestamp, body)
            .is_some_and(|mac| mac.verify_slice(signature).is_ok())
    }
}

/// Checks a delivery's headers and body against `keys` at `now`; returns the delivery id.
pub fn verify(
    keys: &[SigningKey],
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<String, SignatureError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let (Some(id), Some(timestamp), Some(signatures)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return Err(SignatureError::MissingHeaders);
    };
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // `abs_diff`: a timestamp of i64::MIN must be refused, not overflow.
    if now.timestamp().abs_diff(seconds) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::StaleTimestamp);
    }
    let candidates: Vec<Vec<u8>> = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| BASE64.decode(s).ok())
        .collect();
    let matched = keys.iter().any(|key| {
        candidates
            .iter()
            .any(|candidate| key.verifies(id, timestamp, body, candidate))
    });
    if matched {
        Ok(id.to_owned())
    } else {
        Err(SignatureError::NoMatch)
    }
}

/// The notification's body (SPEC §5). Unknown fields are ignored (a sender may add, e.g.,
/// the Standard Webhooks top-level `timestamp`; refusing them would make it retry forever).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct GroupwareEvent {
    /// `schedule.created`, `schedule.updated` or `schedule.deleted`.
    #[serde(rename = "type")]
    #[schema(example = "schedule.updated")]
    pub event_type: String,
    pub data: GroupwareEventData,
}

/// What changed: one schedule entry and the users whose schedules hold it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct GroupwareEventData {
    #[schema(example = "8801")]
    pub schedule_id: String,
    /// Groupware ids; those not enabled here are ignored, at least one must be enabled.
    #[schema(example = json!(["10002"]))]
    pub user_ids: Vec<String>,
}

const EVENT_TYPES: [&str; 3] = ["schedule.created", "schedule.updated", "schedule.deleted"];

/// The answer to an accepted delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
        (status = 413, description = "The body is over server.body_limit_bytes", body = super::errors::ErrorBody),
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
    let Some(secret) = &engine.settings.server.webhook_secret else {
        return Err(ApiError::not_found(
            "webhooks are off here: set server.webhook_secret to receive them",
        ));
    };
    let body = read_body(payload, engine.settings.server.body_limit_bytes).await?;
    let keys = SigningKey::parse_all(secret.expose_secret()).ok_or_else(|| {
        anyhow::anyhow!("server.webhook_secret is not whsec_<base64> (checked at start-up)")
    })?;
    let webhook_id = match verify(&keys, request.headers(), &body, Utc::now()) {
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
    let (event, users) = match judge(&request, &body, engine) {
        Ok(judged) => judged,
        Err(refusal) => {
            let mut conn = engine
                .store
                .pool()
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
    engine: &AppState,
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
        .filter(|u| engine.enabled_users.contains(u))
        .cloned()
        .collect();
    users.sort();
    users.dedup();
    if users.is_empty() {
        return Err(ApiError::invalid(
            "unknown_user",
            format!(
                "none of data.user_ids {:?} is an enabled user of this integration ([[users]] with enabled = true)",
                event.data.user_ids
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

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    /// The Standard Webhooks specification's published test vector.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: &str = "1614265330";
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(id: &str, timestamp: &str, signature: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in [
            ("webhook-id", id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signature),
        ] {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        map
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("instant")
    }

    #[test]
    fn signs_and_verifies_the_published_test_vector() {
        let key = SigningKey::parse(VECTOR_SECRET).expect("vector secret decodes");
        assert_eq!(
            key.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
                .as_deref(),
            Some(VECTOR_SIGNATURE)
        );
        let headers = headers(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE);
        assert_eq!(
            verify(&[key], &headers, VECTOR_BODY, at(1_614_265_330)),
            Ok(VECTOR_ID.to_owned())
        );
    }

    #[test]
    fn refusals_by_class() {
        let keys = SigningKey::parse_all(VECTOR_SECRET).expect("secret");
        let now = at(1_614_265_330);
        let check = |headers: HeaderMap, body: &[u8], now, expected| {
            assert_eq!(verify(&keys, &headers, body, now), Err(expected));
        };
        // A changed body, a changed id, a signature of another secret.
        check(
            headers(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE),
            br#"{"test": 2432232315}"#,
            now,
            SignatureError::NoMatch,
        );
        check(
            headers("msg_other", VECTOR_TIMESTAMP, VECTOR_SIGNATURE),
            VECTOR_BODY,
            now,
            SignatureError::NoMatch,
        );
        check(
            headers(VECTOR_ID, VECTOR_TIMESTAMP, "v1,AAAA"),
            VECTOR_BODY,
            now,
            SignatureError::NoMatch,
        );
        check(
            headers(
                VECTOR_ID,
                VECTOR_TIMESTAMP,
                "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            VECTOR_BODY,
            now,
            SignatureError::NoMatch,
        );
        // Five minutes and one second away, both ways; the edge itself is accepted.
        check(
            headers(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE),
            VECTOR_BODY,
            at(1_614_265_330 + 301),
            SignatureError::StaleTimestamp,
        );
        check(
            headers(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE),
            VECTOR_BODY,
            at(1_614_265_330 - 301),
            SignatureError::StaleTimestamp,
        );
        assert!(
            verify(
                &keys,
                &headers(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE),
                VECTOR_BODY,
                at(1_614_265_330 + 300)
            )
            .is_ok()
        );
        check(
            headers(VECTOR_ID, "-9223372036854775808", VECTOR_SIGNATURE),
            VECTOR_BODY,
            now,
            SignatureError::StaleTimestamp,
        );
        check(
            headers(VECTOR_ID, "yesterday", VECTOR_SIGNATURE),
            VECTOR_BODY,
            now,
            SignatureError::BadTimestamp,
        );
        check(
            HeaderMap::new(),
            VECTOR_BODY,
            now,
            SignatureError::MissingHeaders,
        );
    }

    #[test]
    fn rotation_on_either_side() {
        let new_secret = format!("whsec_{}", BASE64.encode([7u8; 32]));
        let new = SigningKey::parse(&new_secret).expect("new");
        let now = at(1_614_265_330);
        // The sender signs with both secrets: a receiver holding either one accepts.
        let both = format!(
            "{} {}",
            new.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
                .expect("signature"),
            VECTOR_SIGNATURE
        );
        let headers_both = headers(VECTOR_ID, VECTOR_TIMESTAMP, &both);
        for receiver_secret in [VECTOR_SECRET, new_secret.as_str()] {
            let keys = SigningKey::parse_all(receiver_secret).expect("keys");
            assert!(verify(&keys, &headers_both, VECTOR_BODY, now).is_ok());
        }
        // The receiver holds both secrets: a sender using either one is accepted.
        let keys = SigningKey::parse_all(&format!("{new_secret} {VECTOR_SECRET}")).expect("keys");
        let only_old = headers(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE);
        assert!(verify(&keys, &only_old, VECTOR_BODY, now).is_ok());
        assert!(SigningKey::parse_all("whsec_not base64!").is_none());
        assert!(SigningKey::parse_all("").is_none());
    }
}
