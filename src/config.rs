//! Typed settings: one TOML file, every key overridable from the environment as
//! `JMZ__SECTION__KEY` (SPEC §4). The key names are an interface: keep them.
//!
//! Secrets (Zoom client secret, J-MOTTO password, webhook secret, admin token) are
//! [`SecretString`] from the moment they are read, so `Debug` shows `[REDACTED]` and no log
//! line or error message can carry them. A missing or invalid key fails here, at start-up,
//! with a message naming the key.

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::ids::{GroupwareUserId, ZoomEmail};
pub use crate::domain::policy::ReschedulePolicy;

/// Everything a binary needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub database: DatabaseSettings,
    pub server: ServerSettings,
    pub zoom: ZoomSettings,
    pub groupware: GroupwareSettings,
    #[serde(default)]
    pub sync: SyncSettings,
    #[serde(default)]
    pub worker: WorkerSettings,
    #[serde(default)]
    pub clock: ClockSettings,
    #[serde(default)]
    pub users: Vec<UserSettings>,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path` (relative to the working directory; created if missing).
    #[serde(default = "default_database_url")]
    pub url: String,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: default_database_url(),
        }
    }
}

fn default_database_url() -> String {
    "sqlite://data/jmotto-zoom.db".to_owned()
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer token for `/api/v1/*`.
    pub admin_token: SecretString,
    /// Standard Webhooks secret (`whsec_<base64>`) for `/webhooks/groupware`.
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// Where the jobs dashboard listens (its own listener, read-only, Basic auth with the
    /// admin token); unset = no dashboard.
    #[serde(default)]
    pub dashboard_listen: Option<String>,
    /// How long a webhook delivery id is remembered (a redelivery within it enqueues
    /// nothing); older ids are pruned by the worker.
    #[serde(default = "default_webhook_dedup_days")]
    pub webhook_dedup_days: u32,
}

fn default_webhook_dedup_days() -> u32 {
    7
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

fn default_body_limit() -> usize {
    65_536
}

/// `[zoom]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoomSettings {
    pub account_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    #[serde(default = "default_oauth_url")]
    pub oauth_url: String,
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Medium category (creates): at most this many in any one second.
    #[serde(default = "default_create_per_second")]
    pub create_per_second: u32,
    /// Light category (every other call): at most this many in any one second.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: u32,
    /// Creates + updates per host per UTC day.
    #[serde(default = "default_daily_host_limit")]
    pub daily_host_limit: u32,
}

fn default_oauth_url() -> String {
    "https://zoom.us/oauth/token".to_owned()
}

fn default_api_url() -> String {
    "https://api.zoom.us/v2".to_owned()
}

fn default_create_per_second() -> u32 {
    10
}

fn default_requests_per_second() -> u32 {
    20
}

fn default_daily_host_limit() -> u32 {
    100
}

/// `[groupware]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupwareSettings {
    /// Ends with `/`; module `M` is at `{base_url}M.cgi`.
    pub base_url: String,
    pub admin_login_id: String,
    /// The administrator's mobile password.
    pub admin_password: SecretString,
    /// The administrator's timezone (IANA name).
    #[serde(deserialize_with = "deserialize_tz")]
    pub timezone: Tz,
    #[serde(default = "default_groupware_rps")]
    pub requests_per_second: u32,
}

fn default_groupware_rps() -> u32 {
    5
}

pub use crate::domain::policy::DeletePolicy;

/// `[sync]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    #[serde(default = "default_location")]
    pub location: String,
    #[serde(default = "default_months")]
    pub months: u32,
    #[serde(default = "default_poll_interval")]
    pub poll_interval_seconds: u64,
    #[serde(default)]
    pub on_reschedule: ReschedulePolicy,
    #[serde(default)]
    pub on_delete: DeletePolicy,
    #[serde(default)]
    pub invite_members: bool,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            location: default_location(),
            months: default_months(),
            poll_interval_seconds: default_poll_interval(),
            on_reschedule: ReschedulePolicy::default(),
            on_delete: DeletePolicy::default(),
            invite_members: false,
        }
    }
}

fn default_location() -> String {
    "ZOOM 会議".to_owned()
}

fn default_months() -> u32 {
    3
}

fn default_poll_interval() -> u64 {
    300
}

/// `[worker]` — queue tuning beyond SPEC §4 (all optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// How often an idle worker looks for jobs pushed by another process.
    #[serde(default = "default_queue_poll_ms")]
    pub queue_poll_interval_ms: u64,
    /// Worker heartbeat; a dead worker's jobs run again after two missed beats.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_seconds: u64,
    /// Jobs of one queue running at once in one process.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Attempts per job before it is `failed`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt, with jitter.
    #[serde(default = "default_retry_base")]
    pub retry_base_seconds: u64,
    /// On SIGTERM/SIGINT, how long running jobs may finish before the rest are released
    /// (put back as pending, so the next start runs them at once).
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout_seconds: u64,
    /// Finished jobs (done, killed, failed for good) are deleted after this many days.
    #[serde(default = "default_retention_days")]
    pub retention_days: u64,
    /// Total timeout of one J-MOTTO or Zoom HTTP call (connect timeout: at most 5 s).
    #[serde(default = "default_http_timeout")]
    pub http_timeout_seconds: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            queue_poll_interval_ms: default_queue_poll_ms(),
            heartbeat_seconds: default_heartbeat(),
            concurrency: default_concurrency(),
            max_attempts: default_max_attempts(),
            retry_base_seconds: default_retry_base(),
            shutdown_timeout_seconds: default_shutdown_timeout(),
            retention_days: default_retention_days(),
            http_timeout_seconds: default_http_timeout(),
        }
    }
}

fn default_queue_poll_ms() -> u64 {
    250
}

fn default_heartbeat() -> u64 {
    5
}

fn default_concurrency() -> usize {
    4
}

fn default_max_attempts() -> u32 {
    5
}

fn default_retry_base() -> u64 {
    2
}

fn default_shutdown_timeout() -> u64 {
    30
}

fn default_retention_days() -> u64 {
    7
}

fn default_http_timeout() -> u64 {
    30
}

/// `[clock]` — a fixed "now" for the demo and tests, which replay fixtures recorded at one
/// instant; production leaves it unset and uses the system clock.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSettings {
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
}

/// `[[users]]` — one groupware user the administrator mapped (R-USERS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    pub groupware_id: GroupwareUserId,
    pub zoom_email: ZoomEmail,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_true() -> bool {
    true
}

fn deserialize_tz<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Tz, D::Error> {
    let name = String::deserialize(deserializer)?;
    name.parse::<Tz>().map_err(|_| {
        serde::de::Error::custom(format!(
            "{name:?} is not an IANA timezone name (e.g. \"Asia/Tokyo\")"
        ))
    })
}

/// The prefix of environment overrides: `JMZ__ZOOM__CLIENT_SECRET` sets `zoom.client_secret`.
pub const ENV_PREFIX: &str = "JMZ__";

impl Settings {
    /// Reads `path` (TOML), applies `JMZ__…` overrides from the process environment, and
    /// checks every key.
    pub fn load(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        Self::from_toml_str(&text, std::env::vars())
            .with_context(|| format!("invalid configuration in {}", path.display()))
    }

    /// Parses TOML text with the given environment overrides applied.
    pub fn from_toml_str(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Settings> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("not valid TOML: {}", e.message()))?;
        apply_env_overrides(&mut table, env)?;
        let settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if path == "." {
                    anyhow::anyhow!("{}", inner.message())
                } else {
                    anyhow::anyhow!("key `{path}`: {}", inner.message())
                }
            })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        fn check(ok: bool, key: &str, why: &str) -> anyhow::Result<()> {
            if ok {
                Ok(())
            } else {
                Err(anyhow::anyhow!("key `{key}`: {why}"))
            }
        }
        check(
            self.database.url.starts_with("sqlite:"),
            "database.url",
            "must be a sqlite: URL (postgres is not built into this binary)",
        )?;
        check(
            self.server.listen.parse::<std::net::SocketAddr>().is_ok(),
            "server.listen",
            "must be an address and port such as 127.0.0.1:8080",
        )?;
        check(
            !secrecy::ExposeSecret::expose_secret(&self.server.admin_token).is_empty(),
            "server.admin_token",
            "must not be empty",
        )?;
        if let Some(secret) = &self.server.webhook_secret {
            check(
                crate::http::webhooks::SigningKey::parse_all(secrecy::ExposeSecret::expose_secret(
                    secret,
                ))
                .is_some(),
                "server.webhook_secret",
                "must be whsec_<base64> (several, separated by spaces, while rotating)",
            )?;
        }
        check(
            (1..=3650).contains(&self.server.webhook_dedup_days),
            "server.webhook_dedup_days",
            "must be between 1 and 3650 (a sender retries a delivery for hours)",
        )?;
        if let Some(address) = &self.server.dashboard_listen {
            check(
                address.parse::<std::net::SocketAddr>().is_ok(),
                "server.dashboard_listen",
                "must be an address and port such as 127.0.0.1:8081",
            )?;
        }
        check(
            self.server.body_limit_bytes >= 1024,
            "server.body_limit_bytes",
            "must be at least 1024",
        )?;
        for (key, url) in [
            ("zoom.oauth_url", &self.zoom.oauth_url),
            ("zoom.api_url", &self.zoom.api_url),
            ("groupware.base_url", &self.groupware.base_url),
        ] {
            check(
                url.starts_with("http://") || url.starts_with("https://"),
                key,
                "must be an http:// or https:// URL",
            )?;
        }
        check(
            self.groupware.base_url.ends_with('/'),
            "groupware.base_url",
            "must end with `/`",
        )?;
        for (key, value) in [
            ("zoom.account_id", &self.zoom.account_id),
            ("zoom.client_id", &self.zoom.client_id),
            ("groupware.admin_login_id", &self.groupware.admin_login_id),
        ] {
            check(!value.trim().is_empty(), key, "must not be empty")?;
        }
        for (key, rate) in [
            ("zoom.create_per_second", self.zoom.create_per_second),
            ("zoom.requests_per_second", self.zoom.requests_per_second),
            (
                "groupware.requests_per_second",
                self.groupware.requests_per_second,
            ),
        ] {
            check(rate >= 1, key, "must be at least 1")?;
        }
        check(
            (1..=24).contains(&self.sync.months),
            "sync.months",
            "must be between 1 and 24",
        )?;
        check(
            !crate::domain::location::normalize_location(&self.sync.location).is_empty(),
            "sync.location",
            "must name a location item",
        )?;
        check(
            self.worker.concurrency >= 1,
            "worker.concurrency",
            "must be at least 1",
        )?;
        check(
            self.worker.max_attempts >= 1,
            "worker.max_attempts",
            "must be at least 1",
        )?;
        check(
            self.worker.http_timeout_seconds >= 1,
            "worker.http_timeout_seconds",
            "must be at least 1",
        )?;
        let mut seen = std::collections::BTreeSet::new();
        for user in &self.users {
            check(
                seen.insert(user.groupware_id.clone()),
                "users.groupware_id",
                &format!("{} is listed twice", user.groupware_id),
            )?;
        }
        Ok(())
    }

    /// The users that are enabled and mapped (R-USERS).
    pub fn enabled_users(&self) -> crate::domain::host::EnabledUsers {
        crate::domain::host::EnabledUsers::new(
            self.users
                .iter()
                .filter(|u| u.enabled)
                .map(|u| (u.groupware_id.clone(), u.zoom_email.clone())),
        )
    }
}

/// `JMZ__SECTION__KEY=value` → `section.key = value`. The value is read as a TOML value
/// when it is one (numbers, booleans, quoted strings) and as a plain string otherwise.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<()> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        if path.iter().any(|p| p.is_empty()) {
            anyhow::bail!("environment variable {name}: empty key segment");
        }
        let value = parse_env_value(&raw);
        let mut current = &mut *table;
        let (last, parents) = path.split_last().context("empty override")?;
        for part in parents {
            let entry = current
                .entry(part.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            current = entry.as_table_mut().with_context(|| {
                format!("environment variable {name}: `{part}` is not a section")
            })?;
        }
        current.insert(last.clone(), value);
    }
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(mut t) => match t.remove("v") {
            Some(
                v @ (toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Float(_)),
            ) => v,
            Some(toml::Value::String(s)) if raw.trim_start().starts_with('"') => {
                toml::Value::String(s)
            }
            _ => toml::Value::String(raw.to_owned()),
        },
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const MINIMAL: &str = r#"
[server]
admin_token = "admin-token"
[zoom]
account_id = "acc"
client_id = "cid"
client_secret = "zoom-secret"
[groupware]
base_url = "https://gws44.j-motto.co.jp/cgi-bin/JM0344760/"
admin_login_id = "admin"
admin_password = "pw"
timezone = "Asia/Tokyo"
[[users]]
groupware_id = "10002"
zoom_email = "tanaka@example.co.jp"
"#;

    fn load(extra_env: &[(&str, &str)]) -> anyhow::Result<Settings> {
        Settings::from_toml_str(
            MINIMAL,
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn defaults_follow_the_spec() {
        let s = load(&[]).expect("valid");
        assert_eq!(s.sync.location, "ZOOM 会議");
        assert_eq!(s.sync.months, 3);
        assert_eq!(s.sync.on_reschedule, ReschedulePolicy::CreateNew);
        assert_eq!(s.sync.on_delete, DeletePolicy::Keep);
        assert!(!s.sync.invite_members);
        assert_eq!(s.zoom.create_per_second, 10);
        assert_eq!(s.zoom.requests_per_second, 20);
        assert_eq!(s.zoom.daily_host_limit, 100);
        assert_eq!(s.groupware.requests_per_second, 5);
        assert_eq!(s.server.body_limit_bytes, 65_536);
        assert!(s.users[0].enabled);
        assert_eq!(s.worker.shutdown_timeout_seconds, 30);
        assert_eq!(s.worker.retention_days, 7);
        assert_eq!(s.worker.http_timeout_seconds, 30);
    }

    #[test]
    fn env_overrides_any_key() {
        let s = load(&[
            ("JMZ__ZOOM__CLIENT_SECRET", "from-env"),
            ("JMZ__ZOOM__CREATE_PER_SECOND", "3"),
            ("JMZ__SYNC__ON_DELETE", "delete"),
            ("JMZ__SYNC__INVITE_MEMBERS", "true"),
            ("OTHER", "ignored"),
        ])
        .expect("valid");
        assert_eq!(s.zoom.client_secret.expose_secret(), "from-env");
        assert_eq!(s.zoom.create_per_second, 3);
        assert_eq!(s.sync.on_delete, DeletePolicy::Delete);
        assert!(s.sync.invite_members);
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("JMZ__GROUPWARE__TIMEZONE", "Tokyo")],
                "groupware.timezone",
            ),
            (
                &[("JMZ__SYNC__ON_RESCHEDULE", "sometimes")],
                "sync.on_reschedule",
            ),
            (&[("JMZ__SYNC__MONTHS", "0")], "sync.months"),
            (
                &[("JMZ__ZOOM__CREATE_PER_SECOND", "fast")],
                "zoom.create_per_second",
            ),
            (
                &[("JMZ__GROUPWARE__BASE_URL", "https://x/cgi")],
                "groupware.base_url",
            ),
            (&[("JMZ__SERVER__LISTEN", "nowhere")], "server.listen"),
            (&[("JMZ__ZOOM__TYPO", "1")], "typo"),
        ];
        for (env, key) in cases {
            let err = format!("{:#}", load(env).expect_err("must fail"));
            assert!(err.contains(key), "{err:?} should name {key}");
        }
        let missing = MINIMAL.replace("client_secret = \"zoom-secret\"\n", "");
        let err = format!(
            "{:#}",
            Settings::from_toml_str(&missing, []).expect_err("missing key")
        );
        assert!(err.contains("client_secret"), "{err}");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = load(&[]).expect("valid");
        let shown = format!("{s:?}");
        for secret in ["admin-token", "zoom-secret", "\"pw\""] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
    }
}
