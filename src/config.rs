//! Typed settings: one TOML file, every key overridable from the environment as
//! `JMZ__SECTION__KEY` (SPEC §4), layered by `figment`. The key names are an interface: keep
//! them.
//!
//! Secrets (Zoom client secret, J-MOTTO password, webhook secret, admin token, secret key)
//! are [`SecretString`] (the webhook secret: parsed [`SigningKeys`]; the secret key: a
//! parsed [`SecretKey`]) from the moment they are read, so `Debug` shows `[REDACTED]` and no
//! log line or error message can carry them. Every missing or invalid key of a file fails
//! here, at start-up, in one message that names each key (a `[[users]]` entry by its
//! `groupware_id`); a TOML syntax error names its line and column.

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
    value::{Dict, Value},
};
use secrecy::SecretString;
use serde::Deserialize;

pub use crate::domain::policy::ReschedulePolicy;
use crate::{
    domain::ids::{GroupwareUserId, ZoomEmail},
    secrets::SecretKey,
    signature::SigningKeys,
};

/// Everything a binary needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub database: DatabaseSettings,
    pub server: ServerSettings,
    /// Optional in the file: what it leaves out the console may store (SPEC §8).
    #[serde(default)]
    pub zoom: ZoomSettings,
    /// Optional in the file, as `[zoom]`.
    #[serde(default)]
    pub groupware: GroupwareSettings,
    #[serde(default)]
    pub sync: SyncSettings,
    #[serde(default)]
    pub worker: WorkerSettings,
    #[serde(default)]
    pub clock: ClockSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub users: Vec<UserSettings>,
    /// Optional: where alerts go (SPEC §10); the console may store what the file leaves out.
    #[serde(default)]
    pub alerts: AlertSettings,
    /// Which console-editable keys the file or the environment set (they win over the
    /// console's, which shows them read-only).
    #[serde(skip)]
    pub file_keys: std::collections::BTreeSet<String>,
    /// Stored console settings that could not be used (a secret that does not open under
    /// `server.secret_key`, a value no longer valid): each a sentence naming its key, shown
    /// as a reason for 無効 — never a silent empty value.
    #[serde(skip)]
    pub problems: Vec<String>,
}

/// The keys the console may store when the file and the environment leave them out (SPEC
/// §8), in the order its pages show them; `users` stands for the whole `[[users]]` list.
pub const CONSOLE_KEYS: [&str; 18] = [
    "zoom.account_id",
    "zoom.client_id",
    "zoom.client_secret",
    "groupware.base_url",
    "groupware.admin_login_id",
    "groupware.admin_password",
    "groupware.timezone",
    "sync.location",
    "sync.on_reschedule",
    "sync.on_delete",
    "sync.invite_members",
    "sync.poll_interval_seconds",
    "users",
    "alerts.email_to",
    "alerts.email_from",
    "alerts.smtp_url",
    "alerts.webhook_url",
    "alerts.webhook_secret",
];

/// True when `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The credentials without which the integration cannot run: an empty one is "not set"
/// (a reason for 無効, not a start-up error).
pub const CREDENTIAL_KEYS: [&str; 6] = [
    "zoom.account_id",
    "zoom.client_id",
    "zoom.client_secret",
    "groupware.base_url",
    "groupware.admin_login_id",
    "groupware.admin_password",
];

/// `[alerts]` (SPEC §10): every key optional; an e-mail channel needs `email_to`,
/// `email_from` and `smtp_url`, the webhook channel `webhook_url` (signed when
/// `webhook_secret` is set). `smtp_url` may hold a password: both it and `webhook_secret` are
/// secrets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// Where alert e-mails go; empty = no e-mail. In the environment (and the console): one
    /// text, addresses separated by commas or spaces.
    #[serde(default, deserialize_with = "deserialize_addresses")]
    pub email_to: Vec<String>,
    /// The sender address. Empty = not set.
    #[serde(default)]
    pub email_from: String,
    /// `smtp://host:port` (a local relay, no TLS), `smtp://user:password@host:587?tls=required`
    /// (STARTTLS) or `smtps://user:password@host:465` (implicit TLS).
    #[serde(default)]
    pub smtp_url: Option<SecretString>,
    /// One JSON POST per alert; empty = no webhook.
    #[serde(default)]
    pub webhook_url: String,
    /// Standard Webhooks secret (`whsec_<base64>`) that signs those POSTs.
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
}

impl AlertSettings {
    /// Whether alert e-mails can be sent: recipients, a sender and a server.
    pub fn email_configured(&self) -> bool {
        !self.email_to.is_empty()
            && !self.email_from.trim().is_empty()
            && self
                .smtp_url
                .as_ref()
                .is_some_and(|url| !secrecy::ExposeSecret::expose_secret(url).trim().is_empty())
    }

    /// Whether alerts are posted to a webhook.
    pub fn webhook_configured(&self) -> bool {
        !self.webhook_url.trim().is_empty()
    }
}

/// The addresses of a list, or of one text separated by commas, 「、」 or white space.
pub fn split_addresses(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c == '、' || c.is_whitespace())
        .map(str::trim)
        .filter(|address| !address.is_empty())
        .map(str::to_owned)
        .collect()
}

fn deserialize_addresses<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Addresses {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Addresses::deserialize(deserializer)? {
        Addresses::One(text) => split_addresses(&text),
        Addresses::Many(list) => list.iter().flat_map(|text| split_addresses(text)).collect(),
    })
}

/// What is wrong with an e-mail address, if anything.
pub fn email_address_problem(address: &str) -> Option<&'static str> {
    address
        .parse::<lettre::Address>()
        .is_err()
        .then_some("must be an e-mail address such as it@example.co.jp")
}

/// What is wrong with an `alerts.smtp_url`, if anything (never quoting it: it may hold a
/// password).
pub fn smtp_url_problem(url: &str) -> Option<&'static str> {
    let Ok(parsed) = url::Url::parse(url.trim()) else {
        return Some(SMTP_URL_FORM);
    };
    let tls = parsed
        .query_pairs()
        .find(|(name, _)| name == "tls")
        .map(|(_, value)| value.into_owned());
    let scheme_ok = matches!(
        (parsed.scheme(), tls.as_deref()),
        ("smtp", None | Some("required" | "opportunistic")) | ("smtps", None)
    );
    (!scheme_ok || parsed.host_str().is_none_or(str::is_empty)).then_some(SMTP_URL_FORM)
}

const SMTP_URL_FORM: &str = "must be smtp://host:port (a local relay), smtp://user:password@host:587?tls=required (STARTTLS) or smtps://user:password@host:465 (implicit TLS)";

/// What is wrong with an `alerts.webhook_url` or a `server.public_url`, if anything.
pub fn http_url_problem(url: &str) -> Option<&'static str> {
    match url::Url::parse(url.trim()) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => None,
        _ => Some("must be an http:// or https:// URL"),
    }
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
    /// Standard Webhooks secret (`whsec_<base64>`, several separated by spaces while
    /// rotating) for `/webhooks/groupware`, parsed into its keys once; unset = webhooks off.
    #[serde(default)]
    pub webhook_secret: Option<SigningKeys>,
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// No longer used: the jobs dashboard (apalis-board) was replaced by the console's
    /// ジョブ page. Still accepted, so an older file starts; the server logs a warning.
    #[serde(default)]
    pub dashboard_listen: Option<String>,
    /// How long a webhook delivery id is remembered (a redelivery within it enqueues
    /// nothing); older ids are pruned by the worker.
    #[serde(default = "default_webhook_dedup_days")]
    pub webhook_dedup_days: u32,
    /// Encrypts the secrets the console stores (SPEC §8): base64 of exactly 32 random bytes,
    /// parsed into its key once; unset = the console stores no secret.
    #[serde(default)]
    pub secret_key: Option<SecretKey>,
    /// How people reach this server (`https://zoom-sync.example.co.jp`): alerts link to
    /// `{public_url}/admin/`. Empty = not set, no link.
    #[serde(default)]
    pub public_url: String,
}

impl ServerSettings {
    /// `server.public_url` without its final `/`, when set.
    pub fn public_url(&self) -> Option<&str> {
        let url = self.public_url.trim().trim_end_matches('/');
        (!url.is_empty()).then_some(url)
    }
}

fn default_webhook_dedup_days() -> u32 {
    7
}

/// `server.listen` when the file leaves it out.
pub fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

fn default_body_limit() -> usize {
    65_536
}

/// `[zoom]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoomSettings {
    /// Empty = not set (the console may store it).
    #[serde(default)]
    pub account_id: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default = "empty_secret")]
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

impl Default for ZoomSettings {
    fn default() -> Self {
        Self {
            account_id: String::new(),
            client_id: String::new(),
            client_secret: empty_secret(),
            oauth_url: default_oauth_url(),
            api_url: default_api_url(),
            create_per_second: default_create_per_second(),
            requests_per_second: default_requests_per_second(),
            daily_host_limit: default_daily_host_limit(),
        }
    }
}

fn empty_secret() -> SecretString {
    SecretString::from(String::new())
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
    /// Ends with `/`; module `M` is at `{base_url}M.cgi`. Empty = not set.
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub admin_login_id: String,
    /// The administrator's mobile password.
    #[serde(default = "empty_secret")]
    pub admin_password: SecretString,
    /// The administrator's timezone (IANA name).
    #[serde(deserialize_with = "deserialize_tz", default = "default_timezone")]
    pub timezone: Tz,
    #[serde(default = "default_groupware_rps")]
    pub requests_per_second: u32,
}

fn default_groupware_rps() -> u32 {
    5
}

/// `groupware.timezone` when nothing sets it (the seed's default).
pub fn default_timezone() -> Tz {
    chrono_tz::Asia::Tokyo
}

impl Default for GroupwareSettings {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            admin_login_id: String::new(),
            admin_password: empty_secret(),
            timezone: default_timezone(),
            requests_per_second: default_groupware_rps(),
        }
    }
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

/// `[log]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    #[serde(default)]
    pub format: LogFormat,
}

/// How log lines are written to stderr (`log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event (colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line: the event's fields, its span and the spans above it
    /// (so the request id of the request or job it belongs to).
    Json,
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

/// A valid value for every required key. A missing key is reported, then given its stand-in
/// so that the rest of the file is still checked; a file that needed one fails, so a
/// stand-in never becomes a setting.
const STAND_INS: &str = r#"
[server]
admin_token = "stand-in"
[[users]]
groupware_id = "stand-in"
zoom_email = "stand-in@example.com"
"#;

/// How many bad keys one file may have before the check stops looking for more.
const MOST_MISTAKES: usize = 100;

impl Settings {
    /// Reads `path` (TOML), applies `JMZ__…` overrides from the process environment, and
    /// checks every key.
    pub fn load(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        Self::layered(&text, Some(Env::prefixed(ENV_PREFIX).split("__")))
            .with_context(|| format!("invalid configuration in {}", path.display()))
    }

    /// Parses TOML text alone (no environment overrides) and checks every key.
    pub fn from_toml_str(text: &str) -> anyhow::Result<Settings> {
        Self::layered(text, None)
    }

    fn layered(text: &str, environment: Option<Env>) -> anyhow::Result<Settings> {
        check_syntax(text)?;
        let mut figment = Figment::from(Toml::string(text));
        // Each variable's value stays the text it is (figment's `Env` would read `0123`
        // as the number 123); the extraction below reads it as the key's type.
        for (key, value) in environment.iter().flat_map(Env::iter) {
            figment = figment.merge(Serialized::default(key.as_str(), value));
        }
        let root: Dict = figment
            .extract()
            .map_err(|e| anyhow::anyhow!("cannot read the configuration: {e}"))?;
        let mut mistakes = Mistakes::default();
        let file_keys = CONSOLE_KEYS
            .iter()
            .filter(|key| is_set(&root, key))
            .map(|key| (*key).to_owned())
            .collect();
        let mut settings = deserialize_all(root, &mut mistakes);
        if let Some(settings) = &mut settings {
            settings.file_keys = file_keys;
            for (key, why) in settings.validate() {
                mistakes.add(format!("`{key}`"), why);
            }
        }
        match settings {
            Some(settings) if mistakes.0.is_empty() => Ok(settings),
            _ => Err(mistakes.into_error()),
        }
    }

    /// Every key whose value breaks a rule serde cannot express: (key, why).
    fn validate(&self) -> Vec<(&'static str, String)> {
        let mut mistakes = Vec::new();
        let mut check = |ok: bool, key: &'static str, why: &str| {
            if !ok {
                mistakes.push((key, why.to_owned()));
            }
        };
        check(
            self.database.url.starts_with("sqlite:") || is_postgres_url(&self.database.url),
            "database.url",
            "must be a sqlite: URL (the default) or a postgres://user:password@host:port/db URL",
        );
        check(
            self.server.listen.parse::<std::net::SocketAddr>().is_ok(),
            "server.listen",
            "must be an address and port such as 127.0.0.1:8080",
        );
        check(
            !secrecy::ExposeSecret::expose_secret(&self.server.admin_token).is_empty(),
            "server.admin_token",
            "must not be empty",
        );
        check(
            (1..=3650).contains(&self.server.webhook_dedup_days),
            "server.webhook_dedup_days",
            "must be between 1 and 3650 (a sender retries a delivery for hours)",
        );
        check(
            self.server.body_limit_bytes >= 1024,
            "server.body_limit_bytes",
            "must be at least 1024",
        );
        for (key, url) in [
            ("zoom.oauth_url", &self.zoom.oauth_url),
            ("zoom.api_url", &self.zoom.api_url),
        ] {
            check(
                url.starts_with("http://") || url.starts_with("https://"),
                key,
                "must be an http:// or https:// URL",
            );
        }
        // Empty = not set: the console may store it (SPEC §8), status names it.
        if !self.groupware.base_url.is_empty()
            && let Some(why) = base_url_problem(&self.groupware.base_url)
        {
            check(false, "groupware.base_url", why);
        }
        for (key, rate) in [
            ("zoom.create_per_second", self.zoom.create_per_second),
            ("zoom.requests_per_second", self.zoom.requests_per_second),
            (
                "groupware.requests_per_second",
                self.groupware.requests_per_second,
            ),
        ] {
            check(rate >= 1, key, "must be at least 1");
        }
        check(
            (1..=24).contains(&self.sync.months),
            "sync.months",
            "must be between 1 and 24",
        );
        check(
            !crate::domain::location::normalize_location(&self.sync.location).is_empty(),
            "sync.location",
            "must name a location item",
        );
        for (key, value) in [
            ("worker.concurrency", self.worker.concurrency as u64),
            ("worker.max_attempts", u64::from(self.worker.max_attempts)),
            (
                "worker.http_timeout_seconds",
                self.worker.http_timeout_seconds,
            ),
        ] {
            check(value >= 1, key, "must be at least 1");
        }
        self.validate_alerts(&mut check);
        let mut seen = std::collections::BTreeSet::new();
        for user in &self.users {
            check(
                seen.insert(user.groupware_id.clone()),
                "users.groupware_id",
                &format!("{} is listed twice", user.groupware_id),
            );
        }
        mistakes
    }

    /// `[alerts]` and `server.public_url`: every value that is set must be usable (an empty
    /// one is "not set"; the console may store it).
    fn validate_alerts(&self, check: &mut impl FnMut(bool, &'static str, &str)) {
        use secrecy::ExposeSecret;
        let alerts = &self.alerts;
        if let Some(problem) = alerts
            .email_to
            .iter()
            .find_map(|address| email_address_problem(address))
        {
            check(false, "alerts.email_to", problem);
        }
        if !alerts.email_from.trim().is_empty()
            && let Some(problem) = email_address_problem(alerts.email_from.trim())
        {
            check(false, "alerts.email_from", problem);
        }
        if let Some(url) = &alerts.smtp_url
            && !url.expose_secret().trim().is_empty()
            && let Some(problem) = smtp_url_problem(url.expose_secret())
        {
            check(false, "alerts.smtp_url", problem);
        }
        for (key, url) in [
            ("alerts.webhook_url", &alerts.webhook_url),
            ("server.public_url", &self.server.public_url),
        ] {
            if !url.trim().is_empty()
                && let Some(problem) = http_url_problem(url)
            {
                check(false, key, problem);
            }
        }
        if let Some(secret) = &alerts.webhook_secret
            && !secret.expose_secret().trim().is_empty()
        {
            check(
                crate::signature::SigningKey::parse(secret.expose_secret().trim()).is_some(),
                "alerts.webhook_secret",
                "must be whsec_<base64>",
            );
        }
    }

    /// The credentials ([`CREDENTIAL_KEYS`]) that nothing set: each a reason the integration
    /// cannot run.
    pub fn unset_credentials(&self) -> Vec<&'static str> {
        use secrecy::ExposeSecret;
        CREDENTIAL_KEYS
            .into_iter()
            .filter(|key| {
                let value = match *key {
                    "zoom.account_id" => self.zoom.account_id.as_str(),
                    "zoom.client_id" => self.zoom.client_id.as_str(),
                    "zoom.client_secret" => self.zoom.client_secret.expose_secret(),
                    "groupware.base_url" => self.groupware.base_url.as_str(),
                    "groupware.admin_login_id" => self.groupware.admin_login_id.as_str(),
                    _ => self.groupware.admin_password.expose_secret(),
                };
                value.trim().is_empty()
            })
            .collect()
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

/// A TOML syntax error with its line and column (1-based). The message never quotes the
/// file: the line at fault may hold a secret.
fn check_syntax(text: &str) -> anyhow::Result<()> {
    let Err(error) = text.parse::<toml::Table>() else {
        return Ok(());
    };
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before
                .rsplit('\n')
                .next()
                .map_or(0, |start| start.chars().count())
                + 1;
            anyhow::bail!("not valid TOML at line {line}, column {column}: {message}")
        }
        None => anyhow::bail!("not valid TOML: {message}"),
    }
}

/// The mistakes found so far, each once, in the order found: (key as shown, why).
#[derive(Default)]
struct Mistakes(Vec<(String, String)>);

impl Mistakes {
    fn add(&mut self, key: String, why: String) {
        if !self.0.iter().any(|(known, _)| *known == key) {
            self.0.push((key, why));
        }
    }

    /// One error listing every mistake, each naming its key.
    fn into_error(self) -> anyhow::Error {
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|(key, why)| format!("key {key}: {why}"))
            .collect();
        match lines.as_slice() {
            [one] => anyhow::anyhow!("{one}"),
            _ => anyhow::anyhow!("{} mistakes:\n  {}", lines.len(), lines.join("\n  ")),
        }
    }
}

/// Deserializes `root`, recording every bad or missing key in `mistakes`: a bad value is
/// removed (so its default, or a missing-key mistake, follows), a missing key gets its
/// stand-in, and deserializing starts again, until the rest is read. The settings, unless a
/// mistake could not be stepped over.
fn deserialize_all(mut root: Dict, mistakes: &mut Mistakes) -> Option<Settings> {
    let stand_ins: Dict = Figment::from(Toml::string(STAND_INS))
        .extract()
        .unwrap_or_default();
    for _ in 0..MOST_MISTAKES {
        // Lossy: a text value is read as the number or boolean its key needs (the
        // environment gives only text).
        let error = match Figment::from(Serialized::defaults(Value::from(root.clone())))
            .extract_lossy::<Settings>()
        {
            Ok(settings) => return Some(settings),
            Err(error) => error,
        };
        let mut path = error.path.clone();
        let missing = matches!(error.kind, figment::error::Kind::MissingField(_));
        if let figment::error::Kind::MissingField(field) = &error.kind {
            path.push(field.to_string());
        }
        let why = if missing {
            "missing".to_owned()
        } else {
            error.kind.to_string()
        };
        mistakes.add(name_key(&root, &path), why);
        let stepped_over = if missing {
            stand_in_for(&stand_ins, &path).is_some_and(|value| insert(&mut root, &path, value))
        } else {
            remove(&mut root, &path)
        };
        if !stepped_over {
            return None;
        }
    }
    None
}

/// A key as shown in a mistake: `server.listen`, or for a `[[users]]` entry the key and the
/// entry's `groupware_id` (its position only when it has none).
fn name_key(root: &Dict, path: &[String]) -> String {
    if let [section, index, rest @ ..] = path
        && section == "users"
        && let Ok(index) = index.parse::<usize>()
    {
        let key = std::iter::once("users")
            .chain(rest.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(".");
        let groupware_id = root
            .get("users")
            .and_then(Value::as_array)
            .and_then(|entries| entries.get(index))
            .and_then(|entry| entry.find_ref("groupware_id"))
            .and_then(|id| match id {
                Value::String(_, text) => Some(text.clone()),
                Value::Num(_, number) => number.to_u128().map(|n| n.to_string()),
                _ => None,
            });
        return match groupware_id {
            Some(id) => format!("`{key}` of the [[users]] entry with groupware_id = {id:?}"),
            None => format!(
                "`{key}` of [[users]] entry number {} (it has no groupware_id)",
                index + 1
            ),
        };
    }
    format!("`{}`", path.join("."))
}

/// A table or an array inside the configuration, to change in place.
enum Container<'a> {
    Table(&'a mut Dict),
    Array(&'a mut Vec<Value>),
}

/// The table or array at `path` below `root`.
fn container<'a>(root: &'a mut Dict, path: &[String]) -> Option<Container<'a>> {
    path.iter()
        .try_fold(Container::Table(root), |container, key| {
            let value = match container {
                Container::Table(table) => table.get_mut(key)?,
                Container::Array(array) => array.get_mut(key.parse::<usize>().ok()?)?,
            };
            match value {
                Value::Dict(_, table) => Some(Container::Table(table)),
                Value::Array(_, array) => Some(Container::Array(array)),
                _ => None,
            }
        })
}

/// Removes the value at `path`; false when there is none.
fn remove(root: &mut Dict, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    match container(root, parents) {
        Some(Container::Table(table)) => table.remove(last).is_some(),
        Some(Container::Array(array)) => match last.parse::<usize>() {
            Ok(index) if index < array.len() => {
                array.remove(index);
                true
            }
            _ => false,
        },
        None => false,
    }
}

/// Sets the value at `path` (in a table); false when its parent is not a table.
fn insert(root: &mut Dict, path: &[String], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    match container(root, parents) {
        Some(Container::Table(table)) => table.insert(last.clone(), value).is_none(),
        _ => false,
    }
}

/// What is wrong with a `groupware.base_url`, if anything.
pub fn base_url_problem(url: &str) -> Option<&'static str> {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {
            (!url.ends_with('/')).then_some("must end with `/`")
        }
        _ => Some("must be an http:// or https:// URL"),
    }
}

/// Whether `key` (`section.name`, or a top-level name) has a value in `root`.
fn is_set(root: &Dict, key: &str) -> bool {
    let mut parts = key.split('.');
    let Some(first) = parts.next() else {
        return false;
    };
    let mut value = root.get(first);
    for part in parts {
        value = value
            .and_then(|v| v.as_dict())
            .and_then(|table| table.get(part));
    }
    value.is_some()
}

/// The stand-in of a required key (any `[[users]]` entry's from the first stand-in entry).
fn stand_in_for(stand_ins: &Dict, path: &[String]) -> Option<Value> {
    let (first, rest) = path.split_first()?;
    let mut value = stand_ins.get(first)?;
    for key in rest {
        value = match value {
            Value::Dict(_, table) => table.get(key)?,
            Value::Array(_, array) => array.first()?,
            _ => return None,
        };
    }
    Some(value.clone())
}

/// The smallest valid configuration, for tests here and in other modules.
#[cfg(test)]
pub(crate) const MINIMAL: &str = r#"
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

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    /// `MINIMAL` from a file, with `env` set in the process environment (in figment's
    /// sandbox, which also holds a lock so that no other test sees these variables).
    #[expect(
        clippy::result_large_err,
        reason = "the closure's error type is figment's, fixed by `Jail::expect_with`"
    )]
    fn load(env: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let mut result = None;
        figment::Jail::expect_with(|jail| {
            jail.create_file("jmotto-zoom.toml", MINIMAL)?;
            for (name, value) in env {
                jail.set_env(name, value);
            }
            result = Some(Settings::load(Path::new("jmotto-zoom.toml")));
            Ok(())
        });
        result.unwrap_or_else(|| Err(anyhow::anyhow!("the sandbox did not run")))
    }

    fn error_of(text: &str) -> String {
        format!(
            "{:#}",
            Settings::from_toml_str(text).expect_err("must be refused")
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
        assert!(s.server.webhook_secret.is_none());
        assert!(s.users[0].enabled);
        assert_eq!(s.worker.shutdown_timeout_seconds, 30);
        assert_eq!(s.worker.retention_days, 7);
        assert_eq!(s.worker.http_timeout_seconds, 30);
        assert_eq!(s.log.format, LogFormat::Text);
    }

    #[test]
    fn env_overrides_any_key() {
        let s = load(&[
            ("JMZ__ZOOM__CLIENT_SECRET", "from-env"),
            ("JMZ__ZOOM__CREATE_PER_SECOND", "3"),
            ("JMZ__SYNC__ON_DELETE", "delete"),
            ("JMZ__SYNC__INVITE_MEMBERS", "true"),
            ("JMZ__LOG__FORMAT", "json"),
            ("JMZ__GROUPWARE__ADMIN_PASSWORD", "0123456"),
            ("JMZ__ZOOM__ACCOUNT_ID", "-42"),
            (
                "JMZ__SERVER__WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            ("OTHER", "ignored"),
        ])
        .expect("valid");
        assert_eq!(s.zoom.client_secret.expose_secret(), "from-env");
        assert_eq!(s.zoom.create_per_second, 3);
        assert_eq!(s.sync.on_delete, DeletePolicy::Delete);
        assert!(s.sync.invite_members);
        assert_eq!(s.log.format, LogFormat::Json);
        // Digits are text where a key is text, as given.
        assert_eq!(s.groupware.admin_password.expose_secret(), "0123456");
        assert_eq!(s.zoom.account_id, "-42");
        assert_eq!(
            s.server.webhook_secret.map(|keys| keys.keys().len()),
            Some(1)
        );
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
            (&[("JMZ__ZOOM__TYPO", "1")], "zoom.typo"),
            (&[("JMZ__LOG__FORMAT", "xml")], "log.format"),
            (
                &[("JMZ__SERVER__WEBHOOK_SECRET", "whsec_not base64!")],
                "server.webhook_secret",
            ),
        ];
        for (env, key) in cases {
            let err = format!("{:#}", load(env).expect_err("must fail"));
            assert!(err.contains(key), "{err:?} should name {key}");
        }
        let missing = MINIMAL.replace("admin_token = \"admin-token\"\n", "");
        let err = error_of(&missing);
        assert!(err.contains("server.admin_token"), "{err}");
    }

    /// A file with three mistakes (a bad value, a rule broken, a key missing) is refused with
    /// all three, each naming its key.
    #[test]
    fn every_mistake_of_a_file_is_reported_at_once() {
        let text = MINIMAL
            .replace("timezone = \"Asia/Tokyo\"", "timezone = \"Tokyo\"")
            .replace("zoom_email = \"tanaka@example.co.jp\"\n", "")
            .replace("[server]\n", "[server]\nbody_limit_bytes = 10\n");
        let err = error_of(&text);
        for key in [
            "groupware.timezone",
            "users.zoom_email",
            "server.body_limit_bytes",
        ] {
            assert!(err.contains(&format!("`{key}`")), "{err} should name {key}");
        }
        assert!(err.starts_with("3 mistakes"), "{err}");
        // Several bad values in one section, and a missing section.
        let text = MINIMAL
            .replace("create_per_second", "")
            .replace(
                "client_id = \"cid\"",
                "client_id = 7\ncreate_per_second = \"fast\"",
            )
            .replace("admin_token = \"admin-token\"", "admin_token = \"\"");
        let text = text.replace("[groupware]", "[groupware_typo]");
        let err = error_of(&text);
        for key in [
            "zoom.client_id",
            "zoom.create_per_second",
            "server.admin_token",
            "groupware_typo",
        ] {
            assert!(err.contains(key), "{err} should name {key}");
        }
    }

    #[test]
    fn a_syntax_error_names_its_line_and_column() {
        let text = MINIMAL.replace("client_id = \"cid\"", "client_id = \"cid");
        let err = error_of(&text);
        assert!(err.contains("line 6, column 17"), "{err}");
        assert!(
            !err.contains("zoom-secret"),
            "the file is never quoted: {err}"
        );
        let err = error_of("[server]\nlisten 127.0.0.1\n");
        assert!(err.contains("line 2, column 8"), "{err}");
    }

    /// R-USERS: a bad `[[users]]` entry is named by its groupware_id, not its position.
    #[test]
    fn a_bad_user_entry_names_its_groupware_id() {
        let text = format!(
            "{MINIMAL}\n[[users]]\ngroupware_id = \"10003\"\nzoom_email = \"not an address\"\n\n[[users]]\nzoom_email = \"x@example.jp\"\n"
        );
        let err = error_of(&text);
        assert!(
            err.contains("`users.zoom_email` of the [[users]] entry with groupware_id = \"10003\""),
            "{err}"
        );
        assert!(
            err.contains("`users.groupware_id` of [[users]] entry number 3"),
            "{err}"
        );
        assert!(
            !err.contains("10002"),
            "the good entry is not blamed: {err}"
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = load(&[(
            "JMZ__SERVER__WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )])
        .expect("valid");
        let shown = format!("{s:?}");
        for secret in [
            "admin-token",
            "zoom-secret",
            "\"pw\"",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
    }

    /// SPEC §8: `server.secret_key` is parsed into its key once, at load; unset is no error.
    #[test]
    fn the_secret_key_is_parsed_at_load() {
        assert!(load(&[]).expect("valid").server.secret_key.is_none());
        let text = crate::secrets::SecretKey::generate().to_text();
        let s = load(&[("JMZ__SERVER__SECRET_KEY", text.expose_secret())]).expect("valid");
        let key = s.server.secret_key.as_ref().expect("parsed");
        let stored = crate::secrets::encrypt(key, "zoom.client_secret", "zoom-secret");
        let again = crate::secrets::SecretKey::parse(text.expose_secret()).expect("valid");
        assert!(crate::secrets::decrypt(&again, "zoom.client_secret", &stored).is_ok());
        let shown = format!("{:?}", s.server);
        assert!(!shown.contains(text.expose_secret()), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }

    /// A bad `server.secret_key` fails at start-up naming the key, never quoting its value,
    /// alongside the file's other mistakes.
    #[test]
    fn a_bad_secret_key_is_named_without_its_value() {
        let short = "c2hvcnQta2V5LXRleHQ=";
        let text = MINIMAL
            .replace(
                "[server]\n",
                &format!("[server]\nsecret_key = \"{short}\"\n"),
            )
            .replace("timezone = \"Asia/Tokyo\"", "timezone = \"Tokyo\"");
        let err = error_of(&text);
        assert!(err.starts_with("2 mistakes"), "{err}");
        assert!(err.contains("`server.secret_key`"), "{err}");
        assert!(err.contains("32 random bytes"), "{err}");
        assert!(err.contains("`groupware.timezone`"), "{err}");
        assert!(!err.contains(short), "the value is never quoted: {err}");
        let err = format!(
            "{:#}",
            load(&[("JMZ__SERVER__SECRET_KEY", "not base64 at all!")]).expect_err("refused")
        );
        assert!(err.contains("`server.secret_key`"), "{err}");
        assert!(!err.contains("not base64 at all"), "{err}");
    }

    /// SPEC §10 `[alerts]` and §4 `server.public_url`: every key optional; `email_to` a list
    /// in the file or one text in the environment; secrets redacted; a bad value fails at
    /// start-up naming its key, never quoting the SMTP URL (it may hold a password).
    #[test]
    fn alert_settings_are_read_checked_and_redacted() {
        let s = load(&[]).expect("valid");
        assert!(!s.alerts.email_configured() && !s.alerts.webhook_configured());
        assert_eq!(s.server.public_url(), None);
        let s = load(&[
            (
                "JMZ__ALERTS__EMAIL_TO",
                "it@example.co.jp, soumu@example.co.jp",
            ),
            ("JMZ__ALERTS__EMAIL_FROM", "jmotto-zoom@example.co.jp"),
            (
                "JMZ__ALERTS__SMTP_URL",
                "smtp://alerts:s3cret-pass@smtp.example.co.jp:587?tls=required",
            ),
            ("JMZ__ALERTS__WEBHOOK_URL", "https://hooks.example.co.jp/x"),
            (
                "JMZ__ALERTS__WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
            (
                "JMZ__SERVER__PUBLIC_URL",
                "https://zoom-sync.example.co.jp/",
            ),
        ])
        .expect("valid");
        assert_eq!(
            s.alerts.email_to,
            ["it@example.co.jp", "soumu@example.co.jp"]
        );
        assert!(s.alerts.email_configured() && s.alerts.webhook_configured());
        assert_eq!(
            s.server.public_url(),
            Some("https://zoom-sync.example.co.jp")
        );
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret-pass"), "{shown}");
        assert!(
            !shown.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "{shown}"
        );
        let listed = Settings::from_toml_str(&format!(
            "{MINIMAL}\n[alerts]\nemail_to = [\"a@example.jp\", \"b@example.jp\"]\n"
        ))
        .expect("valid");
        assert_eq!(listed.alerts.email_to, ["a@example.jp", "b@example.jp"]);
        for (variable, value, key) in [
            (
                "JMZ__ALERTS__EMAIL_TO",
                "it@example.co.jp, nobody",
                "alerts.email_to",
            ),
            (
                "JMZ__ALERTS__EMAIL_FROM",
                "not an address",
                "alerts.email_from",
            ),
            (
                "JMZ__ALERTS__SMTP_URL",
                "http://user:s3cret-pass@smtp.example.co.jp",
                "alerts.smtp_url",
            ),
            (
                "JMZ__ALERTS__SMTP_URL",
                "smtp://smtp.example.co.jp?tls=sometimes",
                "alerts.smtp_url",
            ),
            (
                "JMZ__ALERTS__WEBHOOK_URL",
                "hooks.example.co.jp",
                "alerts.webhook_url",
            ),
            (
                "JMZ__ALERTS__WEBHOOK_SECRET",
                "whsec_not base64!",
                "alerts.webhook_secret",
            ),
            ("JMZ__SERVER__PUBLIC_URL", "zoom-sync", "server.public_url"),
        ] {
            let err = format!("{:#}", load(&[(variable, value)]).expect_err("refused"));
            assert!(err.contains(&format!("`{key}`")), "{err} should name {key}");
            assert!(!err.contains("s3cret-pass"), "{err}");
        }
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://u:p@smtp.example.jp:587?tls=required",
            "smtps://u:p@smtp.example.jp",
        ] {
            assert_eq!(smtp_url_problem(url), None, "{url}");
        }
    }

    /// The stand-ins are a valid configuration, so a missing key never hides the next one.
    #[test]
    fn stand_ins_are_valid() {
        Settings::from_toml_str(STAND_INS).expect("stand-ins are valid");
    }
}
