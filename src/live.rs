//! The settings every process runs with (SPEC §8 "Where settings live"): the file and the
//! environment win; each console-editable key they leave out comes from the database, where
//! the console stored it. A saved change bumps `settings_version` in its transaction; every
//! process compares that one number before a job (or a page) and rebuilds its settings when
//! it moved, so a change takes effect everywhere without a restart.
//!
//! A secret the console stores is sealed with `server.secret_key` ([`crate::secrets`]); the
//! key itself lives only in the file or the environment. A stored secret that does not open
//! (the key changed or was removed) leaves the setting unset and names itself in
//! [`Settings::problems`], so status says 無効 and why.

use std::{collections::BTreeSet, sync::Arc};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use crate::{
    config::{self, DeletePolicy, ReschedulePolicy, Settings, UserSettings},
    domain::ids::{GroupwareUserId, ZoomEmail},
    secrets,
    store::{
        Store, WriteTx,
        settings::{self as stored, StoredSettings, StoredUser},
    },
};

/// The Zoom連携設定 page's first form (the seed's §2.2 steps 2–3).
pub const ZOOM_KEYS: [&str; 3] = ["zoom.account_id", "zoom.client_id", "zoom.client_secret"];
/// Its second form (the seed's step 6).
pub const GROUPWARE_KEYS: [&str; 4] = [
    "groupware.base_url",
    "groupware.admin_login_id",
    "groupware.admin_password",
    "groupware.timezone",
];
/// The 同期設定 page.
pub const SYNC_KEYS: [&str; 5] = [
    "sync.location",
    "sync.on_reschedule",
    "sync.on_delete",
    "sync.invite_members",
    "sync.poll_interval_seconds",
];
/// The 通知設定 page (SPEC §10).
pub const ALERT_KEYS: [&str; 5] = [
    "alerts.email_to",
    "alerts.email_from",
    "alerts.smtp_url",
    "alerts.webhook_url",
    "alerts.webhook_secret",
];
/// The ユーザー page: the whole `[[users]]` list.
pub const USERS_KEY: &str = "users";

/// Whether `key` holds a secret (write-only on the pages, sealed in the database).
pub fn is_secret(key: &str) -> bool {
    matches!(
        key,
        "zoom.client_secret"
            | "groupware.admin_password"
            | "alerts.smtp_url"
            | "alerts.webhook_secret"
    )
}

/// One change a save made, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    /// The plain value before (`None`: not stored, or a secret).
    pub before: Option<String>,
    /// The plain value after (`None` for a secret).
    pub after: Option<String>,
}

impl Change {
    /// `zoom.account_id: a → b`, or `zoom.client_secret: 変更` for a secret.
    pub fn describe_ja(&self) -> String {
        if is_secret(&self.key) {
            return format!("{}: 変更", self.key);
        }
        let show = |value: &Option<String>| value.clone().unwrap_or_else(|| "（未設定）".into());
        format!(
            "{}: {} → {}",
            self.key,
            show(&self.before),
            show(&self.after)
        )
    }
}

/// A field the console refused, with the sentence shown beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub key: String,
    /// Japanese, never quoting a secret.
    pub message: String,
}

/// Why a save stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Some fields cannot be right; nothing of the form was stored.
    #[error("{} field(s) refused", .0.len())]
    Fields(Vec<FieldError>),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] anyhow::Error),
}

/// The file's settings over the database's, shared by every handler and job of a process.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: Settings,
    store: Store,
    /// The settings built from the last version read.
    cache: Mutex<Option<(i64, Arc<Settings>)>>,
}

impl LiveSettings {
    pub fn new(file: Settings, store: Store) -> LiveSettings {
        LiveSettings {
            inner: Arc::new(Inner {
                file,
                store,
                cache: Mutex::new(None),
            }),
        }
    }

    /// The file's (and the environment's) settings alone.
    pub fn file(&self) -> &Settings {
        &self.inner.file
    }

    /// The store the settings are kept in.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Whether the file or the environment sets `key` (the console shows it read-only with
    /// 「設定ファイルで指定」).
    pub fn set_by_file(&self, key: &str) -> bool {
        self.inner.file.file_keys.contains(key)
    }

    /// The settings in effect now: one `SELECT` of the version, and a reload only when a
    /// saved change moved it.
    pub async fn current(&self) -> anyhow::Result<Arc<Settings>> {
        let version = stored::version(self.inner.store.db()).await?;
        let mut cache = self.inner.cache.lock().await;
        if let Some((cached, settings)) = cache.as_ref()
            && *cached == version
        {
            return Ok(settings.clone());
        }
        let rows = stored::load(self.inner.store.db()).await?;
        let settings = Arc::new(effective(&self.inner.file, &rows));
        for problem in &settings.problems {
            tracing::warn!(problem = %problem, "a stored console setting cannot be used");
        }
        *cache = Some((rows.version, settings.clone()));
        Ok(settings)
    }

    /// The stored plain value of `key` (for a form); `None` when not stored or a secret.
    pub async fn stored_value(&self, key: &str) -> anyhow::Result<Option<String>> {
        if is_secret(key) {
            return Ok(None);
        }
        let rows = stored::load(self.inner.store.db()).await?;
        Ok(rows.values.get(key).cloned())
    }

    /// Whether a value of `key` is stored (for a secret: 「設定済み」).
    pub async fn is_stored(&self, key: &str) -> anyhow::Result<bool> {
        let rows = stored::load(self.inner.store.db()).await?;
        Ok(rows.values.contains_key(key))
    }

    /// Checks every (key, text) of one form and stores them all, or none, in `tx` (the caller
    /// commits, with its audit row). An empty secret keeps the stored one. Returns what
    /// changed.
    pub async fn save(
        &self,
        tx: &mut WriteTx,
        form: &[(&str, String)],
    ) -> Result<Vec<Change>, SaveError> {
        let secret_key = self.inner.file.server.secret_key.as_ref();
        let mut errors = Vec::new();
        let mut accepted = Vec::new();
        for (key, text) in form {
            if self.set_by_file(key) {
                errors.push(field(
                    key,
                    "設定ファイルで指定されているため、ここでは変更できません。",
                ));
                continue;
            }
            if is_secret(key) {
                if text.is_empty() {
                    continue;
                }
                if secret_key.is_none() {
                    errors.push(field(key, NO_SECRET_KEY));
                    continue;
                }
            }
            match normalize(key, text) {
                Ok(value) => accepted.push((*key, value)),
                Err(message) => errors.push(field(key, message)),
            }
        }
        if !errors.is_empty() {
            return Err(SaveError::Fields(errors));
        }
        let before = stored::load_in(tx).await?;
        let mut changes = Vec::new();
        let mut rows = Vec::new();
        for (key, value) in accepted {
            let old = before.values.get(key);
            if is_secret(key) {
                let Some(secret_key) = secret_key else {
                    continue;
                };
                let same = old.is_some_and(|sealed| {
                    secrets::decrypt(secret_key, key, sealed)
                        .is_ok_and(|open| open.expose_secret() == value)
                });
                if !same {
                    rows.push((key, secrets::encrypt(secret_key, key, &value)));
                    changes.push(Change {
                        key: key.to_owned(),
                        before: None,
                        after: None,
                    });
                }
            } else if old != Some(&value) {
                changes.push(Change {
                    key: key.to_owned(),
                    before: old.cloned(),
                    after: Some(value.clone()),
                });
                rows.push((key, value));
            }
        }
        if !rows.is_empty() {
            stored::put_values(tx, &rows).await?;
        }
        Ok(changes)
    }

    /// Checks and stores the ユーザー page's rows (all or none), in `tx`. An enabled user
    /// needs a valid e-mail; a disabled one may keep an empty field. Returns what changed.
    pub async fn save_users(
        &self,
        tx: &mut WriteTx,
        users: &[StoredUser],
    ) -> Result<Vec<Change>, SaveError> {
        if self.set_by_file(USERS_KEY) {
            return Err(SaveError::Fields(vec![field(
                USERS_KEY,
                "ユーザーは設定ファイル（[[users]]）で指定されているため、ここでは変更できません。",
            )]));
        }
        let mut errors = Vec::new();
        let mut accepted = Vec::new();
        for user in users {
            let key = format!("users.{}.zoom_email", user.groupware_id);
            if GroupwareUserId::parse(&user.groupware_id).is_err() {
                errors.push(FieldError {
                    key: format!("users.{}", user.groupware_id),
                    message: "J-MOTTOのユーザーIDではありません。".into(),
                });
                continue;
            }
            let email = user.zoom_email.trim();
            let zoom_email = if email.is_empty() {
                if user.enabled {
                    errors.push(FieldError {
                        key,
                        message: "連携するユーザーにはZoomメールアドレスを入力してください。"
                            .into(),
                    });
                    continue;
                }
                String::new()
            } else {
                match ZoomEmail::parse(email) {
                    Ok(parsed) => parsed.as_str().to_owned(),
                    Err(_) => {
                        errors.push(FieldError {
                            key,
                            message:
                                "メールアドレスの形式ではありません（例: tanaka@example.co.jp）。"
                                    .into(),
                        });
                        continue;
                    }
                }
            };
            accepted.push(StoredUser {
                groupware_id: user.groupware_id.clone(),
                zoom_email,
                enabled: user.enabled,
            });
        }
        if !errors.is_empty() {
            return Err(SaveError::Fields(errors));
        }
        let before = stored::load_in(tx).await?;
        let describe = |user: &StoredUser| {
            let state = if user.enabled {
                "連携"
            } else {
                "連携なし"
            };
            format!("{state} {}", user.zoom_email)
        };
        let mut changes = Vec::new();
        let mut rows = Vec::new();
        for user in accepted {
            let old = before
                .users
                .iter()
                .find(|u| u.groupware_id == user.groupware_id);
            if old == Some(&user) || (old.is_none() && !user.enabled && user.zoom_email.is_empty())
            {
                continue;
            }
            changes.push(Change {
                key: format!("users.{}", user.groupware_id),
                before: old.map(describe),
                after: Some(describe(&user)),
            });
            rows.push(user);
        }
        if !rows.is_empty() {
            stored::put_users(tx, &rows).await?;
        }
        Ok(changes)
    }
}

const NO_SECRET_KEY: &str = "server.secret_key が設定されていないため、秘密の値を保存できません。設定ファイルの [server] に secret_key（`jmotto-zoom init` が生成します）を設定して再起動するか、この値を設定ファイルか環境変数で指定してください。";

fn field(key: &str, message: &str) -> FieldError {
    FieldError {
        key: key.to_owned(),
        message: message.to_owned(),
    }
}

/// The value to store for `key`, or the sentence saying why `text` cannot be right.
fn normalize(key: &str, text: &str) -> Result<String, &'static str> {
    let text = text.trim();
    let required = |value: &str| {
        if value.is_empty() {
            Err("入力してください。")
        } else if value.chars().count() > 512 || value.chars().any(char::is_control) {
            Err("使えない文字が含まれているか、長すぎます。")
        } else {
            Ok(value.to_owned())
        }
    };
    match key {
        "zoom.account_id" | "zoom.client_id" | "groupware.admin_login_id" => {
            let value = required(text)?;
            if value.chars().any(char::is_whitespace) {
                return Err("空白を含めずに入力してください。");
            }
            Ok(value)
        }
        "zoom.client_secret" | "groupware.admin_password" => required(text),
        "groupware.base_url" => {
            // The seed's URL is shown without its final `/` as often as with it.
            let url = if text.is_empty() || text.ends_with('/') {
                text.to_owned()
            } else {
                format!("{text}/")
            };
            match config::base_url_problem(&url) {
                None => Ok(url),
                Some(_) => Err(
                    "http:// または https:// で始まるURLを入力してください（例: https://gws44.j-motto.co.jp/cgi-bin/JM0000000/）。",
                ),
            }
        }
        "groupware.timezone" => text
            .parse::<chrono_tz::Tz>()
            .map(|zone| zone.name().to_owned())
            .map_err(|_| "IANAタイムゾーン名を選んでください（例: Asia/Tokyo）。"),
        "sync.location" => {
            let value = required(text)?;
            if crate::domain::location::normalize_location(&value).is_empty() {
                return Err("場所項目名を入力してください（例: ZOOM 会議）。");
            }
            Ok(value)
        }
        "sync.on_reschedule" => reschedule_policy(text)
            .map(|_| text.to_owned())
            .ok_or("create_new、update、replace のどれかを選んでください。"),
        "sync.on_delete" => delete_policy(text)
            .map(|_| text.to_owned())
            .ok_or("keep か delete を選んでください。"),
        "sync.invite_members" => match text {
            "true" | "on" => Ok("true".into()),
            "false" | "" => Ok("false".into()),
            _ => Err("はい（true）かいいえ（false）で指定してください。"),
        },
        "sync.poll_interval_seconds" => match text.parse::<u64>() {
            Ok(seconds) if seconds == 0 || (60..=86_400).contains(&seconds) => {
                Ok(seconds.to_string())
            }
            _ => Err("0（定期同期なし）か、60 から 86400 までの秒数を入力してください。"),
        },
        "alerts.email_to" => {
            let addresses = config::split_addresses(text);
            if addresses
                .iter()
                .any(|address| config::email_address_problem(address).is_some())
            {
                return Err(
                    "メールアドレスをカンマ区切りで入力してください（例: it@example.co.jp, soumu@example.co.jp）。",
                );
            }
            Ok(addresses.join(", "))
        }
        "alerts.email_from" => match config::email_address_problem(text) {
            _ if text.is_empty() => Ok(String::new()),
            None => Ok(text.to_owned()),
            Some(_) => Err("メールアドレスの形式ではありません（例: jmotto-zoom@example.co.jp）。"),
        },
        "alerts.smtp_url" => match config::smtp_url_problem(text) {
            None => Ok(text.to_owned()),
            Some(_) => Err(
                "smtp://ホスト:ポート（社内の中継サーバー）、smtp://ユーザー:パスワード@ホスト:587?tls=required（STARTTLS）、smtps://ユーザー:パスワード@ホスト:465（TLS）のどれかの形で入力してください。",
            ),
        },
        "alerts.webhook_url" => match config::http_url_problem(text) {
            _ if text.is_empty() => Ok(String::new()),
            None => Ok(text.to_owned()),
            Some(_) => Err("http:// または https:// で始まるURLを入力してください。"),
        },
        "alerts.webhook_secret" => match crate::signature::SigningKey::parse(text) {
            Some(_) => Ok(text.to_owned()),
            None => Err("whsec_ で始まる Standard Webhooks のシークレットを入力してください。"),
        },
        _ => Err("この画面では変更できない設定です。"),
    }
}

fn reschedule_policy(text: &str) -> Option<ReschedulePolicy> {
    match text {
        "create_new" => Some(ReschedulePolicy::CreateNew),
        "update" => Some(ReschedulePolicy::Update),
        "replace" => Some(ReschedulePolicy::Replace),
        _ => None,
    }
}

fn delete_policy(text: &str) -> Option<DeletePolicy> {
    match text {
        "keep" => Some(DeletePolicy::Keep),
        "delete" => Some(DeletePolicy::Delete),
        _ => None,
    }
}

/// `file` with each key it leaves out taken from `rows`. What cannot be used is left as the
/// file has it and named in [`Settings::problems`].
pub fn effective(file: &Settings, rows: &StoredSettings) -> Settings {
    let mut settings = file.clone();
    for (key, text) in &rows.values {
        if file.file_keys.contains(key) {
            continue;
        }
        if let Err(problem) = apply(&mut settings, key, text) {
            settings.problems.push(problem);
        }
    }
    if !file.file_keys.contains(USERS_KEY) {
        let mut seen = BTreeSet::new();
        settings.users = rows
            .users
            .iter()
            .filter(|user| !user.zoom_email.is_empty() && seen.insert(&user.groupware_id))
            .filter_map(|user| {
                Some(UserSettings {
                    groupware_id: GroupwareUserId::parse(&user.groupware_id).ok()?,
                    zoom_email: ZoomEmail::parse(&user.zoom_email).ok()?,
                    enabled: user.enabled,
                })
            })
            .collect();
    }
    settings
}

/// Sets `key` of `settings` from its stored text.
fn apply(settings: &mut Settings, key: &str, text: &str) -> Result<(), String> {
    let unusable = |why: &str| format!("the stored `{key}` cannot be used: {why}");
    if is_secret(key) {
        let Some(secret_key) = settings.server.secret_key.as_ref() else {
            return Err(format!(
                "the stored `{key}` cannot be decrypted: server.secret_key is not set (set the key it was stored with, or enter the value again in the console)"
            ));
        };
        let open: SecretString =
            secrets::decrypt(secret_key, key, text).map_err(|error| error.to_string())?;
        match key {
            "zoom.client_secret" => settings.zoom.client_secret = open,
            "alerts.smtp_url" => settings.alerts.smtp_url = Some(open),
            "alerts.webhook_secret" => settings.alerts.webhook_secret = Some(open),
            _ => settings.groupware.admin_password = open,
        }
        return Ok(());
    }
    let value = normalize(key, text).map_err(unusable)?;
    match key {
        "zoom.account_id" => settings.zoom.account_id = value,
        "zoom.client_id" => settings.zoom.client_id = value,
        "groupware.base_url" => settings.groupware.base_url = value,
        "groupware.admin_login_id" => settings.groupware.admin_login_id = value,
        "groupware.timezone" => {
            settings.groupware.timezone = value.parse().map_err(|_| unusable("not a zone"))?;
        }
        "sync.location" => settings.sync.location = value,
        "sync.on_reschedule" => {
            settings.sync.on_reschedule =
                reschedule_policy(&value).ok_or_else(|| unusable("unknown policy"))?;
        }
        "sync.on_delete" => {
            settings.sync.on_delete =
                delete_policy(&value).ok_or_else(|| unusable("unknown policy"))?;
        }
        "sync.invite_members" => settings.sync.invite_members = value == "true",
        "sync.poll_interval_seconds" => {
            settings.sync.poll_interval_seconds =
                value.parse().map_err(|_| unusable("not a number"))?;
        }
        "alerts.email_to" => settings.alerts.email_to = config::split_addresses(&value),
        "alerts.email_from" => settings.alerts.email_from = value,
        "alerts.webhook_url" => settings.alerts.webhook_url = value,
        _ => return Err(unusable("not a console setting")),
    }
    Ok(())
}

/// Opens the store named by `settings` and wraps it (for the CLI's one-shot commands).
pub async fn open(settings: Settings) -> anyhow::Result<LiveSettings> {
    let store = Store::connect(&settings.database.url)
        .await
        .context("cannot open the database")?;
    store.migrate().await?;
    Ok(LiveSettings::new(settings, store))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARE: &str = r#"
[server]
admin_token = "admin-token"
secret_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
"#;

    /// The settings of `text` over a fresh database file (kept until the process ends).
    async fn live(text: &str) -> LiveSettings {
        let folder = tempfile::tempdir().expect("temp dir").keep();
        let url = format!("sqlite://{}", folder.join("live.db").display());
        let text = format!("[database]\nurl = {url:?}\n{text}");
        let settings = Settings::from_toml_str(&text).expect("valid");
        open(settings).await.expect("opens")
    }

    async fn save(live: &LiveSettings, form: &[(&str, &str)]) -> Result<Vec<Change>, SaveError> {
        let form: Vec<(&str, String)> = form.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        let mut tx = live.store().begin_write().await.expect("tx");
        let changes = live.save(&mut tx, &form).await;
        tx.commit().await.expect("commit");
        changes
    }

    /// SPEC §8: a file with only [database] and [server] loads; the credentials are unset.
    #[tokio::test]
    async fn a_bare_file_starts_with_every_credential_unset() {
        let live = live(BARE).await;
        let settings = live.current().await.expect("current");
        assert_eq!(settings.unset_credentials().len(), 6);
        assert!(settings.users.is_empty());
        assert_eq!(settings.groupware.timezone, chrono_tz::Asia::Tokyo);
    }

    /// SPEC §8: a saved change is seen at the next `current()`, a secret sealed in the
    /// database (never in clear), an empty secret keeps the stored one.
    #[tokio::test]
    async fn saved_settings_take_effect_and_secrets_are_sealed() {
        let live = live(BARE).await;
        let before = live.current().await.expect("current");
        let changes = save(
            &live,
            &[
                ("zoom.account_id", "acc-1"),
                ("zoom.client_id", "cid-1"),
                ("zoom.client_secret", "very-secret-value"),
            ],
        )
        .await
        .expect("saved");
        assert_eq!(changes.len(), 3);
        assert_eq!(changes[2].describe_ja(), "zoom.client_secret: 変更");
        let after = live.current().await.expect("current");
        assert!(!Arc::ptr_eq(&before, &after));
        assert_eq!(after.zoom.account_id, "acc-1");
        assert_eq!(
            after.zoom.client_secret.expose_secret(),
            "very-secret-value"
        );
        let rows = stored::load(live.store().db()).await.expect("rows");
        let sealed = rows.values.get("zoom.client_secret").expect("stored");
        assert!(!sealed.contains("very-secret-value"));
        // Empty keeps it; the same value again changes nothing.
        let changes = save(
            &live,
            &[("zoom.client_secret", ""), ("zoom.account_id", "acc-1")],
        )
        .await
        .expect("saved");
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(
            live.current()
                .await
                .expect("current")
                .zoom
                .client_secret
                .expose_secret(),
            "very-secret-value"
        );
        assert!(live.is_stored("zoom.client_secret").await.expect("read"));
        assert_eq!(
            live.stored_value("zoom.client_secret").await.expect("read"),
            None
        );
    }

    /// SPEC §8: a value that cannot be right is refused with a sentence, and nothing of its
    /// form is stored.
    #[tokio::test]
    async fn a_bad_field_stores_nothing_of_its_form() {
        let live = live(BARE).await;
        let error = save(
            &live,
            &[
                ("groupware.base_url", "not a url"),
                ("groupware.admin_login_id", "admin"),
                ("groupware.timezone", "Tokyo"),
            ],
        )
        .await
        .expect_err("refused");
        let SaveError::Fields(fields) = error else {
            panic!("a field error")
        };
        let keys: Vec<&str> = fields.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["groupware.base_url", "groupware.timezone"]);
        assert!(
            !live
                .is_stored("groupware.admin_login_id")
                .await
                .expect("read")
        );
        // A URL without its final slash is taken with one.
        save(
            &live,
            &[("groupware.base_url", "https://gw.example.jp/cgi-bin/X")],
        )
        .await
        .expect("saved");
        assert_eq!(
            live.current().await.expect("current").groupware.base_url,
            "https://gw.example.jp/cgi-bin/X/"
        );
    }

    /// SPEC §8: the file wins; its keys are refused by the console.
    #[tokio::test]
    async fn keys_the_file_sets_win_and_are_read_only() {
        let text = format!("{BARE}[sync]\non_delete = \"delete\"\n");
        let live = live(&text).await;
        assert!(live.set_by_file("sync.on_delete"));
        assert!(!live.set_by_file("sync.on_reschedule"));
        let error = save(&live, &[("sync.on_delete", "keep")])
            .await
            .expect_err("refused");
        assert!(matches!(error, SaveError::Fields(_)));
        save(&live, &[("sync.on_reschedule", "update")])
            .await
            .expect("saved");
        let settings = live.current().await.expect("current");
        assert_eq!(settings.sync.on_delete, DeletePolicy::Delete);
        assert_eq!(settings.sync.on_reschedule, ReschedulePolicy::Update);
    }

    /// Without `server.secret_key` the console refuses a secret and says how to set one; a
    /// secret stored under another key is named as a problem, never opened as empty.
    #[tokio::test]
    async fn secrets_need_the_secret_key() {
        let without = BARE.replace("secret_key", "# secret_key");
        let live_without = live(&without).await;
        let error = save(&live_without, &[("zoom.client_secret", "s3cret")])
            .await
            .expect_err("refused");
        let SaveError::Fields(fields) = error else {
            panic!("a field error")
        };
        assert!(fields[0].message.contains("server.secret_key"));
        // A secret sealed under one key, read with none.
        let live_with = live(BARE).await;
        save(&live_with, &[("zoom.client_secret", "s3cret")])
            .await
            .expect("saved");
        let rows = stored::load(live_with.store().db()).await.expect("rows");
        let settings = effective(live_without.file(), &rows);
        assert!(settings.zoom.client_secret.expose_secret().is_empty());
        assert!(
            settings.problems[0].contains("zoom.client_secret"),
            "{:?}",
            settings.problems
        );
    }

    /// SPEC §10: the 通知設定 keys are stored by the console, `smtp_url` and
    /// `webhook_secret` sealed (never in clear), and a value that cannot be right refused.
    #[tokio::test]
    async fn alert_settings_are_stored_and_secrets_sealed() {
        let live = live(BARE).await;
        let error = save(
            &live,
            &[
                ("alerts.email_to", "it@example.co.jp, nobody"),
                ("alerts.smtp_url", "mail.example.co.jp"),
                ("alerts.webhook_secret", "not base64!"),
            ],
        )
        .await
        .expect_err("refused");
        let SaveError::Fields(fields) = error else {
            panic!("a field error")
        };
        assert_eq!(fields.len(), 3, "{fields:?}");
        save(
            &live,
            &[
                ("alerts.email_to", "it@example.co.jp、soumu@example.co.jp"),
                ("alerts.email_from", "jmotto-zoom@example.co.jp"),
                (
                    "alerts.smtp_url",
                    "smtp://alerts:s3cret-pass@smtp.example.co.jp:587?tls=required",
                ),
                ("alerts.webhook_url", "https://hooks.example.co.jp/x"),
                (
                    "alerts.webhook_secret",
                    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                ),
            ],
        )
        .await
        .expect("saved");
        let settings = live.current().await.expect("current");
        assert_eq!(
            settings.alerts.email_to,
            ["it@example.co.jp", "soumu@example.co.jp"]
        );
        assert!(settings.alerts.email_configured());
        assert!(settings.alerts.webhook_configured());
        assert_eq!(
            settings
                .alerts
                .smtp_url
                .as_ref()
                .map(|url| url.expose_secret().to_owned())
                .as_deref(),
            Some("smtp://alerts:s3cret-pass@smtp.example.co.jp:587?tls=required")
        );
        let rows = stored::load(live.store().db()).await.expect("rows");
        for key in ["alerts.smtp_url", "alerts.webhook_secret"] {
            let sealed = rows.values.get(key).expect("stored");
            assert!(
                !sealed.contains("s3cret") && !sealed.contains("MfKQ9r8"),
                "{key}"
            );
            assert_eq!(live.stored_value(key).await.expect("read"), None);
        }
        assert!(
            ALERT_KEYS
                .iter()
                .all(|key| config::CONSOLE_KEYS.contains(key))
        );
    }

    /// R-USERS from the console: enabled users need an e-mail; the file's [[users]] win.
    #[tokio::test]
    async fn console_users_map_when_the_file_has_none() {
        let live = live(BARE).await;
        let user = |id: &str, email: &str, enabled| StoredUser {
            groupware_id: id.into(),
            zoom_email: email.into(),
            enabled,
        };
        let mut tx = live.store().begin_write().await.expect("tx");
        let error = live
            .save_users(&mut tx, &[user("10002", "", true)])
            .await
            .expect_err("refused");
        assert!(matches!(error, SaveError::Fields(_)));
        let changes = live
            .save_users(
                &mut tx,
                &[
                    user("10002", "Tanaka@Example.co.jp", true),
                    user("10003", "", false),
                ],
            )
            .await
            .expect("saved");
        tx.commit().await.expect("commit");
        assert_eq!(changes.len(), 1);
        let settings = live.current().await.expect("current");
        assert_eq!(settings.users.len(), 1);
        assert_eq!(
            settings.users[0].zoom_email.as_str(),
            "tanaka@example.co.jp"
        );
        assert_eq!(settings.enabled_users().len(), 1);
    }
}
