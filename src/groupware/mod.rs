//! The J-MOTTO client (shared `api/jmotto.md`): login, users, location items and schedule
//! entries, read as the administrator.
//!
//! It paces itself with the process's J-MOTTO limiter, logs in again once when the access
//! key has expired (errorno 1002), and maps every failure to a [`GroupwareError`] that says
//! whether a retry can help. HTTP 429 (J-MOTTO's queue is full, ~10 s) is
//! [`GroupwareError::Busy`]: the caller schedules its retry in the database. Wire types stay
//! in [`wire`]; callers get domain values.

pub mod wire;

use std::{sync::Arc, time::Duration};

use chrono::NaiveDateTime;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::{
    domain::{ids::EntryKey, time::LocalSlot},
    store::pacing::Pacer,
};

/// How a J-MOTTO call failed.
#[derive(Debug, thiserror::Error)]
pub enum GroupwareError {
    /// errorno 1001: the login ID or mobile password is wrong (configuration).
    #[error(
        "J-MOTTO refused the administrator login (errorno 1001): check groupware.admin_login_id and groupware.admin_password (the administrator's mobile password)"
    )]
    LoginFailed,
    /// errorno 2001: the administrator may not view this user's schedule (R-ACCESS).
    #[error(
        "J-MOTTO refused to show user {user}'s schedule (errorno 2001): grant 参照 (view) to the Everyone role, the administrator or the administrator's organization in スケジュール › 設定 › 各ユーザーのアクセス権設定"
    )]
    Forbidden { user: String },
    /// errorno 2002.
    #[error("J-MOTTO has no user {user} (errorno 2002): fix users.groupware_id")]
    NoSuchUser { user: String },
    /// HTTP 429: more than ten requests queued; lasts about ten seconds.
    #[error("J-MOTTO is busy (HTTP 429)")]
    Busy,
    /// 5xx, timeouts, errorno 9000, a repeated 1002: worth retrying later.
    #[error("J-MOTTO call failed: {0}")]
    Transient(String),
    /// An answer that does not follow the contract.
    #[error("J-MOTTO answered something unexpected: {0}")]
    Protocol(String),
}

impl GroupwareError {
    /// What a stored message of this type (its `Display`, kept as a user's last error) means,
    /// in Japanese for the console (issue 10: the office administrator reads 状態 in
    /// Japanese); `None` for a message that is not one of these.
    pub fn explain_ja(message: &str) -> Option<&'static str> {
        const MEANINGS: [(&str, &str); 6] = [
            (
                "J-MOTTO refused the administrator login",
                "J-MOTTO が管理者のログインを拒否しました（errorno 1001）。Zoom連携設定の管理者ログインIDとモバイル用パスワードを確認してください。",
            ),
            (
                "J-MOTTO refused to show user",
                "このユーザーのスケジュールを参照する権限がありません（errorno 2001）。スケジュール › 設定 › 各ユーザーのアクセス権設定で、管理者に「参照」を許可してください。",
            ),
            (
                "J-MOTTO has no user",
                "J-MOTTO にこのユーザーがいません（errorno 2002）。ユーザー設定のユーザーIDを確認してください。",
            ),
            (
                "J-MOTTO is busy",
                "J-MOTTO が混み合っていて予定を読めませんでした（HTTP 429）。次の同期で読み直します。",
            ),
            (
                "J-MOTTO call failed",
                "J-MOTTO に接続できませんでした。次の同期で読み直します。",
            ),
            (
                "J-MOTTO answered something unexpected",
                "J-MOTTO から想定外の応答がありました。続く場合はサポートに連絡してください。",
            ),
        ];
        MEANINGS
            .iter()
            .find(|(prefix, _)| message.starts_with(prefix))
            .map(|(_, meaning)| *meaning)
    }

    /// Can a later retry succeed without anyone changing anything?
    pub fn is_retryable(&self) -> bool {
        matches!(self, GroupwareError::Busy | GroupwareError::Transient(_))
    }
}

/// What a login tells about the administrator.
#[derive(Debug, Clone)]
pub struct AdminInfo {
    pub user_id: String,
    pub name: String,
    /// The administrator's timezone as J-MOTTO has it (doctor compares it).
    pub timezone: Option<String>,
}

/// A J-MOTTO user.
pub type GroupwareUser = wire::WireUser;

/// One entry of a listing, converted at the edge.
#[derive(Debug, Clone)]
pub struct ScheduleEntry {
    pub key: EntryKey,
    /// 予定 preset item.
    pub event: String,
    /// 予定詳細.
    pub detail: String,
    /// 場所 item name.
    pub place: String,
    pub memo: String,
    /// Local wall-clock start and end; `Err` when J-MOTTO's times cannot be read.
    pub slot: Result<LocalSlot, String>,
    pub owner: String,
    /// 登録先 in display order.
    pub members: Vec<String>,
    /// When the entry was last changed in J-MOTTO (`None` when absent or unreadable): a
    /// listing older than one already applied is not applied again.
    pub updated: Option<NaiveDateTime>,
}

struct Session {
    access_key: SecretString,
}

/// The J-MOTTO client: one per process, cheap to share behind an `Arc`.
pub struct GroupwareClient {
    http: reqwest::Client,
    base_url: String,
    login_id: String,
    password: SecretString,
    limiter: Pacer,
    session: Mutex<Option<Session>>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for GroupwareClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupwareClient")
            .field("base_url", &self.base_url)
            .field("login_id", &self.login_id)
            .finish_non_exhaustive()
    }
}

const PAGE_LIMIT: u32 = 1000;

impl GroupwareClient {
    /// A client for `base_url` (ending with `/`), logging in as `login_id`; `timeout` bounds
    /// each HTTP call.
    pub fn new(
        base_url: &str,
        login_id: &str,
        password: SecretString,
        limiter: Pacer,
        timeout: Duration,
    ) -> anyhow::Result<GroupwareClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent(concat!("jmotto-zoom/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(GroupwareClient {
            http,
            base_url: base_url.to_owned(),
            login_id: login_id.to_owned(),
            password,
            limiter,
            session: Mutex::new(None),
            metrics: Arc::default(),
        })
    }

    /// Counts this client's calls in `metrics` (by action and outcome).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> GroupwareClient {
        self.metrics = metrics;
        self
    }

    /// Logs in (always a fresh login) and returns what J-MOTTO says of the administrator.
    pub async fn login(&self) -> Result<AdminInfo, GroupwareError> {
        let mut session = self.session.lock().await;
        let (key, info) = self.login_call().await?;
        *session = Some(Session { access_key: key });
        Ok(info)
    }

    async fn login_call(&self) -> Result<(SecretString, AdminInfo), GroupwareError> {
        let form = wire::login_form(&self.login_id, self.password.expose_secret());
        let value = self.post(wire::LOGIN_MODULE, &form, None).await?;
        match envelope_error(&value) {
            Some((wire::ERR_LOGIN_FAILED, _)) => return Err(GroupwareError::LoginFailed),
            Some((errorno, message)) => return Err(classify(errorno, message, "")),
            None => {}
        }
        let login: wire::LoginResponse = decode(value)?;
        let user = login.user;
        Ok((
            SecretString::from(login.access_key),
            AdminInfo {
                user_id: user.as_ref().map(|u| u.id.clone()).unwrap_or_default(),
                name: user.as_ref().map(|u| u.name.clone()).unwrap_or_default(),
                timezone: user.and_then(|u| u.timezone),
            },
        ))
    }

    /// Every J-MOTTO user the administrator can see.
    pub async fn list_users(&self) -> Result<Vec<GroupwareUser>, GroupwareError> {
        let form = wire::list_users_form();
        let value = self.call(wire::USERS_MODULE, &form, "").await?;
        Ok(decode::<wire::UsersResponse>(value)?.users)
    }

    /// The location items (場所項目).
    pub async fn list_places(&self) -> Result<Vec<String>, GroupwareError> {
        let form = wire::list_places_form();
        let value = self.call(wire::SCHEDULE_MODULE, &form, "").await?;
        Ok(decode::<wire::PlacesResponse>(value)?
            .places
            .into_iter()
            .map(|p| p.name)
            .collect())
    }

    /// Every entry of `user` starting on a day in `[from, to]` (inclusive local dates), all
    /// pages. Either the whole listing or an error: a partial listing is never returned.
    pub async fn list_events(
        &self,
        user: &str,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<ScheduleEntry>, GroupwareError> {
        let (from, to) = (from.to_string(), to.to_string());
        let mut entries = Vec::new();
        let mut page = 1;
        loop {
            let form = wire::list_events_form(user, &from, &to, page);
            let value = self.call(wire::SCHEDULE_MODULE, &form, user).await?;
            let response: wire::EventsResponse = decode(value)?;
            entries.extend(response.events.into_iter().map(convert_event));
            match response.next_page {
                Some(next) if next > page && next <= PAGE_LIMIT => page = next,
                Some(next) if next <= page => {
                    return Err(GroupwareError::Protocol(format!(
                        "list_events page {page} points back to page {next}"
                    )));
                }
                Some(_) => {
                    return Err(GroupwareError::Protocol(format!(
                        "list_events has more than {PAGE_LIMIT} pages"
                    )));
                }
                None => return Ok(entries),
            }
        }
    }

    /// A call with the session's access key; on errorno 1002, one new login and one repeat.
    async fn call(
        &self,
        module: &str,
        form: &[(&str, String)],
        user: &str,
    ) -> Result<serde_json::Value, GroupwareError> {
        let mut relogged = false;
        loop {
            let key = self.access_key().await?;
            let value = self.post(module, form, Some(&key)).await?;
            match envelope_error(&value) {
                None => return Ok(value),
                Some((wire::ERR_ACCESS_KEY, _)) if !relogged => {
                    tracing::info!("J-MOTTO access key expired; logging in again");
                    self.forget_session(&key).await;
                    relogged = true;
                }
                Some((errorno, message)) => return Err(classify(errorno, message, user)),
            }
        }
    }

    async fn access_key(&self) -> Result<SecretString, GroupwareError> {
        let mut session = self.session.lock().await;
        if let Some(s) = session.as_ref() {
            return Ok(s.access_key.clone());
        }
        let (key, _) = self.login_call().await?;
        *session = Some(Session {
            access_key: key.clone(),
        });
        Ok(key)
    }

    async fn forget_session(&self, stale: &SecretString) {
        let mut session = self.session.lock().await;
        if session
            .as_ref()
            .is_some_and(|s| s.access_key.expose_secret() == stale.expose_secret())
        {
            *session = None;
        }
    }

    async fn post(
        &self,
        module: &str,
        form: &[(&str, String)],
        access_key: Option<&SecretString>,
    ) -> Result<serde_json::Value, GroupwareError> {
        let result = self.post_once(module, form, access_key).await;
        let action = form
            .iter()
            .find(|(name, _)| *name == wire::ACTION_FIELD)
            .map_or(module, |(_, value)| value.as_str());
        let outcome = match &result {
            Ok(value) => match envelope_error(value) {
                None => "ok".to_owned(),
                Some((wire::ERR_LOGIN_FAILED, _)) => "login_failed".to_owned(),
                Some((wire::ERR_ACCESS_KEY, _)) => "access_key_expired".to_owned(),
                Some((wire::ERR_FORBIDDEN, _)) => "forbidden".to_owned(),
                Some((wire::ERR_NO_SUCH_USER, _)) => "no_such_user".to_owned(),
                Some((errorno, _)) => format!("errorno_{errorno}"),
            },
            Err(GroupwareError::Busy) => "busy".to_owned(),
            Err(GroupwareError::Transient(_)) => "transient".to_owned(),
            Err(_) => "protocol".to_owned(),
        };
        self.metrics.increment(
            crate::metrics::EXTERNAL_CALLS,
            &[
                ("service", "jmotto"),
                ("endpoint", action),
                ("outcome", &outcome),
            ],
        );
        result
    }

    async fn post_once(
        &self,
        module: &str,
        form: &[(&str, String)],
        access_key: Option<&SecretString>,
    ) -> Result<serde_json::Value, GroupwareError> {
        // No slot from the shared limiter: not sent (never sent unpaced), retryable.
        self.limiter
            .until_ready()
            .await
            .map_err(|error| GroupwareError::Transient(format!("{module}: {error}")))?;
        let url = format!("{}{}", self.base_url, module);
        let mut request = self.http.post(&url).form(form);
        if let Some(key) = access_key {
            request = request.header(wire::AUTH_HEADER, key.expose_secret());
        }
        let response = request.send().await.map_err(|e| {
            GroupwareError::Transient(format!("{module}: {}", describe_reqwest(&e)))
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(GroupwareError::Busy);
        }
        if status.is_server_error() {
            return Err(GroupwareError::Transient(format!(
                "{module}: HTTP {status}"
            )));
        }
        if !status.is_success() {
            return Err(GroupwareError::Protocol(format!("{module}: HTTP {status}")));
        }
        response.json::<serde_json::Value>().await.map_err(|e| {
            GroupwareError::Protocol(format!("{module}: not JSON ({})", describe_reqwest(&e)))
        })
    }
}

/// reqwest's message without the URL (it could carry nothing secret here, but stays short).
pub(crate) fn describe_reqwest(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else if error.is_decode() {
        "cannot decode the answer".to_owned()
    } else {
        let text = error.to_string();
        match error.url() {
            Some(url) => text.replace(url.as_str(), "<url>"),
            None => text,
        }
    }
}

fn envelope_error(value: &serde_json::Value) -> Option<(i64, String)> {
    let envelope: wire::Envelope = serde_json::from_value(value.clone()).ok()?;
    if envelope.status == "ok" {
        return None;
    }
    Some((
        envelope.errorno.unwrap_or(0),
        envelope.errormessage.unwrap_or_default(),
    ))
}

fn classify(errorno: i64, message: String, user: &str) -> GroupwareError {
    match errorno {
        wire::ERR_LOGIN_FAILED => GroupwareError::LoginFailed,
        wire::ERR_FORBIDDEN => GroupwareError::Forbidden {
            user: user.to_owned(),
        },
        wire::ERR_NO_SUCH_USER => GroupwareError::NoSuchUser {
            user: user.to_owned(),
        },
        wire::ERR_INTERNAL | wire::ERR_ACCESS_KEY => {
            GroupwareError::Transient(format!("errorno {errorno}: {message}"))
        }
        other => GroupwareError::Protocol(format!("errorno {other}: {message}")),
    }
}

fn decode<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, GroupwareError> {
    serde_json::from_value(value).map_err(|e| GroupwareError::Protocol(e.to_string()))
}

fn convert_event(event: wire::WireEvent) -> ScheduleEntry {
    let slot = parse_slot(&event.start, &event.end, event.allday);
    let updated = event
        .updated
        .as_deref()
        .and_then(|text| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").ok());
    ScheduleEntry {
        key: EntryKey {
            schedule_id: event.id,
            occurrence: event.occurrence.unwrap_or_default(),
        },
        event: event.event.unwrap_or_default(),
        detail: event.detail.unwrap_or_default(),
        place: event.place.unwrap_or_default(),
        memo: event.memo.unwrap_or_default(),
        slot,
        owner: event.owner,
        members: event.members,
        updated,
    }
}

fn parse_slot(start: &str, end: &str, all_day: bool) -> Result<LocalSlot, String> {
    let parse = |text: &str| {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
            .or_else(|_| {
                chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map(|d| d.and_time(chrono::NaiveTime::MIN))
            })
            .map_err(|_| format!("unreadable time {text:?}"))
    };
    Ok(LocalSlot {
        start: parse(start)?,
        end: parse(end)?,
        all_day,
    })
}

#[cfg(test)]
mod tests {
    use super::GroupwareError;

    /// Issue 10 (the console in Japanese): every kind of listing failure a user's last error
    /// can hold has its Japanese meaning on 状態, and anything else has none.
    #[test]
    fn every_listing_failure_has_a_japanese_meaning() {
        let user = || "10002".to_owned();
        for error in [
            GroupwareError::LoginFailed,
            GroupwareError::Forbidden { user: user() },
            GroupwareError::NoSuchUser { user: user() },
            GroupwareError::Busy,
            GroupwareError::Transient("HTTP 503".to_owned()),
            GroupwareError::Protocol("not JSON".to_owned()),
        ] {
            let meaning = GroupwareError::explain_ja(&error.to_string());
            assert!(
                meaning.is_some_and(|m| m.contains("J-MOTTO") || m.contains("スケジュール")),
                "{error}"
            );
        }
        assert_eq!(GroupwareError::explain_ja("something else"), None);
        assert_ne!(
            GroupwareError::explain_ja(&GroupwareError::Busy.to_string()),
            GroupwareError::explain_ja(&GroupwareError::LoginFailed.to_string())
        );
    }
}
