//! The Zoom client (shared `api/zoom.md`): Server-to-Server OAuth token, e-mail check,
//! meeting create / update / delete, and a host's upcoming meetings.
//!
//! The token is cached until five minutes before it expires and fetched again once when
//! Zoom answers 401 code 124. Creates are paced by the Medium-category limiter, every other
//! call by the Light one. A create is never retried here (Zoom has no idempotency key): the
//! caller owns that decision. Every failure is classified by [`ZoomError`].

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::{groupware::describe_reqwest, store::pacing::Pacer};

/// Which of Zoom's limits a 429 (or the HTTP 300 variant) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// Per-second, per-category limit of the account.
    PerSecond,
    /// The account's daily limit of an API.
    AccountDaily,
    /// 100 creates/updates per host per UTC day.
    HostDaily,
}

/// How a Zoom call failed.
#[derive(Debug, thiserror::Error)]
pub enum ZoomError {
    /// 5xx, timeout, connection failure: retry with backoff. The request may have reached
    /// Zoom.
    #[error("Zoom call failed, worth retrying: {0}")]
    Retryable(String),
    /// The request never left for the API: its access token could not be fetched (the token
    /// endpoint answered 5xx or could not be reached), or the database could not give it a
    /// slot of the account's rate limit. Zoom did nothing and counted nothing; retry with
    /// backoff.
    #[error("Zoom call not sent, worth retrying: {0}")]
    NotSent(String),
    /// A rate limit; `retry_after` when Zoom said when.
    #[error("Zoom rate limit ({kind:?}): {message}")]
    Quota {
        kind: QuotaKind,
        retry_after: Option<DateTime<Utc>>,
        message: String,
    },
    /// The credentials or the token are refused (configuration).
    #[error("Zoom refused the credentials: {0}")]
    Auth(String),
    /// Zoom answered a 4xx that a retry cannot fix.
    #[error("Zoom refused the request (HTTP {status}, code {code}): {message}")]
    Permanent {
        status: u16,
        code: i64,
        message: String,
    },
}

impl ZoomError {
    /// Zoom's "does not exist" (404 / code 3001).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ZoomError::Permanent { status: 404, .. })
            || matches!(self, ZoomError::Permanent { code: 3001, .. })
    }

    /// A failed token fetch before an API call: a retryable failure becomes
    /// [`ZoomError::NotSent`] (the call never left); a refusal stays what it is.
    fn before_sending(self) -> ZoomError {
        match self {
            ZoomError::Retryable(message) => ZoomError::NotSent(message),
            other => other,
        }
    }
}

/// No slot from the shared limiter: the call is not sent (never sent unpaced).
fn not_paced(error: crate::store::pacing::PacingError) -> ZoomError {
    ZoomError::NotSent(error.to_string())
}

/// What Zoom's token endpoint granted.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    /// Granted scopes (space-separated in Zoom's answer).
    pub scopes: Vec<String>,
    /// The account's regional API URL (only logged).
    pub api_url: Option<String>,
}

/// Body of a create or an update (`type` 2: a scheduled meeting).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeetingRequest {
    pub topic: String,
    #[serde(rename = "type")]
    pub meeting_type: u8,
    /// UTC with `Z`, no fraction (R-TIME).
    pub start_time: String,
    pub duration: u32,
    pub timezone: String,
    pub agenda: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<MeetingSettings>,
}

/// `settings` of a meeting: only invitees, and only when `sync.invite_members` (R-ATTENDEES).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeetingSettings {
    pub meeting_invitees: Vec<Invitee>,
}

/// One invitee.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invitee {
    pub email: String,
}

/// What a create answers (parsed tolerantly).
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedMeeting {
    pub id: i64,
    #[serde(default)]
    pub join_url: Option<String>,
}

/// One meeting of a host's upcoming list.
#[derive(Debug, Clone, Deserialize)]
pub struct ListedMeeting {
    pub id: i64,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub duration: Option<u32>,
    #[serde(default)]
    pub agenda: Option<String>,
    #[serde(default)]
    pub join_url: Option<String>,
}

#[derive(Deserialize)]
struct ListPage {
    #[serde(default)]
    meetings: Vec<ListedMeeting>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    api_url: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

struct CachedToken {
    access_token: SecretString,
    scopes: Vec<String>,
    renew_at: Instant,
}

/// Credentials and endpoints of the S2S app.
#[derive(Clone)]
pub struct ZoomCredentials {
    pub oauth_url: String,
    pub api_url: String,
    pub account_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
}

/// The Zoom client: one per process.
pub struct ZoomClient {
    http: reqwest::Client,
    credentials: ZoomCredentials,
    create_limiter: Pacer,
    light_limiter: Pacer,
    token: Mutex<Option<CachedToken>>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for ZoomClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoomClient")
            .field("api_url", &self.credentials.api_url)
            .field("client_id", &self.credentials.client_id)
            .finish_non_exhaustive()
    }
}

/// Renew the token this long before Zoom says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

enum Body<'a> {
    None,
    Json(&'a MeetingRequest),
}

impl ZoomClient {
    /// A client paced by `create_limiter` (creates) and `light_limiter` (every other call);
    /// `timeout` bounds each HTTP call.
    pub fn new(
        credentials: ZoomCredentials,
        create_limiter: Pacer,
        light_limiter: Pacer,
        timeout: Duration,
    ) -> anyhow::Result<ZoomClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent(concat!("jmotto-zoom/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ZoomClient {
            http,
            credentials,
            create_limiter,
            light_limiter,
            token: Mutex::new(None),
            metrics: Arc::default(),
        })
    }

    /// Counts this client's calls in `metrics` (by endpoint and outcome).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> ZoomClient {
        self.metrics = metrics;
        self
    }

    fn count_call<T>(&self, method: &Method, path: &str, result: &Result<T, ZoomError>) {
        let endpoint = endpoint_template(method, path);
        let outcome = match result {
            Ok(_) => "ok",
            Err(ZoomError::Retryable(_) | ZoomError::NotSent(_)) => "retryable",
            Err(ZoomError::Quota { kind, .. }) => {
                let kind = match kind {
                    QuotaKind::PerSecond => "per_second",
                    QuotaKind::AccountDaily => "account_daily",
                    QuotaKind::HostDaily => "host_daily",
                };
                self.metrics
                    .increment(crate::metrics::ZOOM_RATE_LIMITED, &[("kind", kind)]);
                "rate_limited"
            }
            Err(ZoomError::Auth(_)) => "auth",
            Err(error) if error.is_not_found() => "not_found",
            Err(ZoomError::Permanent { .. }) => "refused",
        };
        self.metrics.increment(
            crate::metrics::EXTERNAL_CALLS,
            &[
                ("service", "zoom"),
                ("endpoint", &endpoint),
                ("outcome", outcome),
            ],
        );
    }

    /// Requests a new token now and returns what it grants (doctor).
    pub async fn token_info(&self) -> Result<TokenInfo, ZoomError> {
        let mut cached = self.token.lock().await;
        let (token, info) = self.fetch_token().await?;
        *cached = Some(token);
        Ok(info)
    }

    /// The scopes of the current token (fetching one if needed).
    pub async fn scopes(&self) -> Result<Vec<String>, ZoomError> {
        self.bearer().await?;
        Ok(self
            .token
            .lock()
            .await
            .as_ref()
            .map(|t| t.scopes.clone())
            .unwrap_or_default())
    }

    /// `GET /users/email?email=` — does the address belong to a user of the account?
    pub async fn email_exists(&self, email: &str) -> Result<bool, ZoomError> {
        #[derive(Deserialize)]
        struct Answer {
            existed_email: bool,
        }
        let value = self
            .send(
                Method::GET,
                "/users/email",
                &[("email", email)],
                Body::None,
                false,
            )
            .await?;
        let answer: Answer = serde_json::from_value(value).map_err(|e| ZoomError::Permanent {
            status: 200,
            code: 0,
            message: format!("unexpected answer to the e-mail check: {e}"),
        })?;
        Ok(answer.existed_email)
    }

    /// `POST /users/{email}/meetings`. Never retried here except once after a token renewal
    /// on 401 code 124 (Zoom created nothing then).
    pub async fn create_meeting(
        &self,
        host_email: &str,
        request: &MeetingRequest,
    ) -> Result<CreatedMeeting, ZoomError> {
        let path = format!("/users/{}/meetings", urlencode(host_email));
        let value = self
            .send(Method::POST, &path, &[], Body::Json(request), true)
            .await?;
        // A 2xx we cannot read may still mean Zoom made the meeting: retryable, so the
        // retry looks for it before creating again.
        serde_json::from_value(value)
            .map_err(|e| ZoomError::Retryable(format!("unexpected answer to a create: {e}")))
    }

    /// `PATCH /meetings/{id}`.
    pub async fn update_meeting(
        &self,
        meeting_id: i64,
        request: &MeetingRequest,
    ) -> Result<(), ZoomError> {
        let path = format!("/meetings/{meeting_id}");
        self.send(Method::PATCH, &path, &[], Body::Json(request), false)
            .await?;
        Ok(())
    }

    /// `DELETE /meetings/{id}`; Ok(false) when Zoom says it does not exist (counts as done).
    pub async fn delete_meeting(&self, meeting_id: i64) -> Result<bool, ZoomError> {
        let path = format!("/meetings/{meeting_id}");
        match self
            .send(
                Method::DELETE,
                &path,
                &[("schedule_for_reminder", "false")],
                Body::None,
                false,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The host's upcoming meetings, all pages.
    pub async fn list_upcoming(&self, host_email: &str) -> Result<Vec<ListedMeeting>, ZoomError> {
        let path = format!("/users/{}/meetings", urlencode(host_email));
        let mut meetings = Vec::new();
        let mut page_token = String::new();
        for _ in 0..100 {
            let mut query = vec![("type", "upcoming"), ("page_size", "300")];
            if !page_token.is_empty() {
                query.push(("next_page_token", page_token.as_str()));
            }
            let value = self
                .send(Method::GET, &path, &query, Body::None, false)
                .await?;
            let page: ListPage =
                serde_json::from_value(value).map_err(|e| ZoomError::Permanent {
                    status: 200,
                    code: 0,
                    message: format!("unexpected meeting list: {e}"),
                })?;
            meetings.extend(page.meetings);
            match page.next_page_token {
                Some(next) if !next.is_empty() => page_token = next,
                _ => return Ok(meetings),
            }
        }
        Ok(meetings)
    }

    async fn bearer(&self) -> Result<SecretString, ZoomError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.renew_at
        {
            return Ok(token.access_token.clone());
        }
        let (token, info) = self.fetch_token().await?;
        tracing::info!(
            zoom.scopes = %info.scopes.join(" "),
            zoom.api_url = info.api_url.as_deref().unwrap_or(""),
            "fetched a Zoom access token"
        );
        let bearer = token.access_token.clone();
        *cached = Some(token);
        Ok(bearer)
    }

    async fn invalidate(&self, stale: &SecretString) {
        let mut cached = self.token.lock().await;
        if cached
            .as_ref()
            .is_some_and(|t| t.access_token.expose_secret() == stale.expose_secret())
        {
            *cached = None;
        }
    }

    async fn fetch_token(&self) -> Result<(CachedToken, TokenInfo), ZoomError> {
        let result = self.fetch_token_once().await;
        self.count_call(&Method::POST, "/oauth/token", &result);
        result
    }

    async fn fetch_token_once(&self) -> Result<(CachedToken, TokenInfo), ZoomError> {
        self.light_limiter.until_ready().await.map_err(not_paced)?;
        let form = [
            ("grant_type", "account_credentials"),
            ("account_id", self.credentials.account_id.as_str()),
        ];
        let response = self
            .http
            .post(&self.credentials.oauth_url)
            .basic_auth(
                &self.credentials.client_id,
                Some(self.credentials.client_secret.expose_secret()),
            )
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                ZoomError::Retryable(format!("token request: {}", describe_reqwest(&e)))
            })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            ZoomError::Retryable(format!("token request: {}", describe_reqwest(&e)))
        })?;
        if status.is_server_error() {
            return Err(ZoomError::Retryable(format!(
                "token request: HTTP {status}"
            )));
        }
        if !status.is_success() {
            let body: Option<ErrorBody> = serde_json::from_str(&text).ok();
            let why = body
                .and_then(|b| b.reason.or(b.message).or(b.error))
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(ZoomError::Auth(format!(
                "the token request was refused ({why}): check zoom.account_id, zoom.client_id and zoom.client_secret against the app's App Credentials page in the Zoom App Marketplace"
            )));
        }
        let token: TokenResponse = serde_json::from_str(&text)
            .map_err(|e| ZoomError::Auth(format!("unexpected token answer: {e}")))?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3599));
        let scopes: Vec<String> = token
            .scope
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        Ok((
            CachedToken {
                access_token: SecretString::from(token.access_token),
                scopes: scopes.clone(),
                renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
            },
            TokenInfo {
                scopes,
                api_url: token.api_url,
            },
        ))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Body<'_>,
        is_create: bool,
    ) -> Result<serde_json::Value, ZoomError> {
        let mut renewed = false;
        loop {
            // Without a token nothing goes to the API: the caller may treat the call as never
            // made (no quota slot used, nothing to look for).
            let bearer = self.bearer().await.map_err(ZoomError::before_sending)?;
            let pacer = if is_create {
                &self.create_limiter
            } else {
                &self.light_limiter
            };
            pacer.until_ready().await.map_err(not_paced)?;
            let url = format!("{}{}", self.credentials.api_url, path);
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(bearer.expose_secret())
                .query(query);
            if let Body::Json(json) = &body {
                request = request.json(json);
            }
            let answer = async {
                let response = request.send().await.map_err(|e| {
                    ZoomError::Retryable(format!("{method} {path}: {}", describe_reqwest(&e)))
                })?;
                let status = response.status();
                let headers = response.headers().clone();
                let text = response.text().await.map_err(|e| {
                    ZoomError::Retryable(format!("{method} {path}: {}", describe_reqwest(&e)))
                })?;
                if status.is_success() && status != StatusCode::MULTIPLE_CHOICES {
                    if text.trim().is_empty() {
                        return Ok(serde_json::Value::Null);
                    }
                    return serde_json::from_str(&text).map_err(|e| {
                        ZoomError::Retryable(format!("{method} {path}: answer is not JSON ({e})"))
                    });
                }
                Err(classify(status, &headers, &text))
            }
            .await;
            self.count_call(&method, path, &answer);
            let error = match answer {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            // `classify` answers `Auth` only for a 401 (code 124: the token expired).
            match error {
                ZoomError::Auth(_) if !renewed => {
                    tracing::info!("Zoom token refused (code 124); fetching a new one");
                    self.invalidate(&bearer).await;
                    renewed = true;
                }
                other => return Err(other),
            }
        }
    }
}

/// `POST /users/{userId}/meetings` for `/users/a%40b/meetings`: the metric label of a path
/// (no e-mail address or meeting id in a label).
fn endpoint_template(method: &Method, path: &str) -> String {
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            if segment.contains('@') || segment.contains("%40") {
                "{userId}"
            } else if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
                "{meetingId}"
            } else {
                segment
            }
        })
        .collect();
    format!("{method} {}", segments.join("/"))
}

fn urlencode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace("%40", "@")
}

/// Maps a failed answer to a [`ZoomError`] (HTTP 300 is Zoom's other spelling of the
/// per-host daily limit).
pub fn classify(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &str) -> ZoomError {
    let parsed: Option<ErrorBody> = serde_json::from_str(body).ok();
    let code = parsed.as_ref().and_then(|b| b.code).unwrap_or(0);
    let message = parsed
        .and_then(|b| b.message.or(b.reason))
        .unwrap_or_else(|| format!("HTTP {status}"));
    let lower = message.to_lowercase();
    let host_daily = (lower.contains("daily rate limit") && lower.contains("particular user"))
        || lower.contains("for a single user in one day");
    if status == StatusCode::TOO_MANY_REQUESTS || host_daily {
        let rate_type = headers
            .get("x-ratelimit-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let kind = if host_daily {
            QuotaKind::HostDaily
        } else if rate_type.contains("daily") || lower.contains("maximum daily rate limit") {
            QuotaKind::AccountDaily
        } else {
            QuotaKind::PerSecond
        };
        let retry_after = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        return ZoomError::Quota {
            kind,
            retry_after,
            message,
        };
    }
    if status == StatusCode::UNAUTHORIZED {
        return ZoomError::Auth(format!("HTTP 401 code {code}: {message}"));
    }
    if status.is_server_error() {
        return ZoomError::Retryable(format!("HTTP {status}: {message}"));
    }
    ZoomError::Permanent {
        status: status.as_u16(),
        code,
        message,
    }
}

/// `Retry-After` as seconds or as an ISO/HTTP date.
pub fn parse_retry_after(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<i64>() {
        return Some(Utc::now() + chrono::Duration::seconds(seconds.max(0)));
    }
    if let Ok(instant) = DateTime::parse_from_rfc3339(value) {
        return Some(instant.with_timezone(&Utc));
    }
    DateTime::parse_from_rfc2822(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    /// SPEC §9 pacing: a database that cannot give a slot fails the call as not sent
    /// (retryable, its host slot given back) — nothing reaches Zoom unpaced, neither the
    /// token request nor the create.
    #[tokio::test]
    async fn a_call_the_database_cannot_pace_is_not_sent() {
        let zoom = crate::replay::ReplayServer::start_zoom()
            .await
            .expect("replay");
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", folder.path().join("zoom.db").display());
        let store = crate::store::Store::connect(&url).await.expect("database");
        let client = ZoomClient::new(
            ZoomCredentials {
                oauth_url: format!("{}/oauth/token", zoom.base_url()),
                api_url: format!("{}/v2", zoom.base_url()),
                account_id: "account".to_owned(),
                client_id: "client".to_owned(),
                client_secret: SecretString::from("secret"),
            },
            Pacer::shared(&store, "zoom.create:account".to_owned(), 10),
            Pacer::shared(&store, "zoom.requests:account".to_owned(), 20),
            Duration::from_secs(5),
        )
        .expect("client");
        store.close().await;
        let request = MeetingRequest {
            topic: "会議".to_owned(),
            meeting_type: 2,
            start_time: "2026-12-01T01:00:00Z".to_owned(),
            duration: 30,
            timezone: "Asia/Tokyo".to_owned(),
            agenda: String::new(),
            settings: None,
        };
        let result = client.create_meeting("user@example.co.jp", &request).await;
        assert!(matches!(result, Err(ZoomError::NotSent(_))), "{result:?}");
        assert!(zoom.requests().is_empty(), "{:?}", zoom.requests());
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    /// SPEC §6: every 429 kind and the HTTP 300 variant are told apart.
    #[test]
    fn classifies_rate_limits_by_kind() {
        let per_second = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &headers(&[("x-ratelimit-type", "QPS")]),
            r#"{"code":429,"message":"You have reached the maximum per-second rate limit for this API. Try again later."}"#,
        );
        assert!(matches!(
            per_second,
            ZoomError::Quota {
                kind: QuotaKind::PerSecond,
                ..
            }
        ));
        let account = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &headers(&[
                ("x-ratelimit-type", "Daily-limit"),
                ("retry-after", "2026-12-01T00:00:00Z"),
            ]),
            r#"{"code":429,"message":"You have reached the maximum daily rate limit for this API."}"#,
        );
        match account {
            ZoomError::Quota {
                kind: QuotaKind::AccountDaily,
                retry_after: Some(at),
                ..
            } => {
                assert_eq!(at.to_rfc3339(), "2026-12-01T00:00:00+00:00");
            }
            other => panic!("unexpected {other:?}"),
        }
        let host = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &HeaderMap::new(),
            r#"{"code":429,"message":"You have exceeded the daily rate limit (100) of Meeting Create/Update API requests permitted for this particular user. You may resume these requests at GMT 00:00:00."}"#,
        );
        assert!(matches!(
            host,
            ZoomError::Quota {
                kind: QuotaKind::HostDaily,
                ..
            }
        ));
        let host_300 = classify(
            StatusCode::MULTIPLE_CHOICES,
            &HeaderMap::new(),
            r#"{"code":300,"message":"A maximum of 100 meetings can be created/updated for a single user in one day."}"#,
        );
        assert!(matches!(
            host_300,
            ZoomError::Quota {
                kind: QuotaKind::HostDaily,
                ..
            }
        ));
    }

    #[test]
    fn classifies_other_errors() {
        let cases = [
            (StatusCode::INTERNAL_SERVER_ERROR, "", "retryable"),
            (StatusCode::BAD_GATEWAY, "<html>", "retryable"),
            (
                StatusCode::UNAUTHORIZED,
                r#"{"code":124,"message":"Invalid access token."}"#,
                "auth",
            ),
            (
                StatusCode::NOT_FOUND,
                r#"{"code":3001,"message":"Meeting does not exist"}"#,
                "not_found",
            ),
            (
                StatusCode::BAD_REQUEST,
                r#"{"code":300,"message":"Validation Failed."}"#,
                "permanent",
            ),
            (
                StatusCode::BAD_REQUEST,
                r#"{"code":4711,"message":"Invalid access token, does not contain scopes:[meeting:write:meeting:admin]."}"#,
                "permanent",
            ),
        ];
        for (status, body, expected) in cases {
            let error = classify(status, &HeaderMap::new(), body);
            let got = match &error {
                ZoomError::Retryable(_) | ZoomError::NotSent(_) => "retryable",
                ZoomError::Auth(_) => "auth",
                e if e.is_not_found() => "not_found",
                ZoomError::Permanent { .. } => "permanent",
                ZoomError::Quota { .. } => "quota",
            };
            assert_eq!(got, expected, "{status} {body}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let in_ten = parse_retry_after("10").expect("seconds");
        assert!((in_ten - Utc::now()).num_seconds() <= 10);
        assert!(parse_retry_after("2026-12-01T00:00:00Z").is_some());
        assert!(parse_retry_after("Tue, 01 Dec 2026 00:00:00 GMT").is_some());
        assert!(parse_retry_after("soon").is_none());
    }

    /// R-TIME / R-ATTENDEES: the create body carries UTC with Z and no invitees by default.
    #[test]
    fn request_body_shape() {
        let request = MeetingRequest {
            topic: "会議".into(),
            meeting_type: 2,
            start_time: "2026-12-03T01:00:00Z".into(),
            duration: 60,
            timezone: "Asia/Tokyo".into(),
            agenda: "jmotto-zoom: 1".into(),
            settings: None,
        };
        let json = serde_json::to_value(&request).expect("serializes");
        assert_eq!(json["type"], 2);
        assert_eq!(json["start_time"], "2026-12-03T01:00:00Z");
        assert!(json.get("settings").is_none());
    }
}
