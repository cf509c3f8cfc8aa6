//! The service checks shared by the worker, HTTP and the command line: the quick check of
//! the three parts R-ENABLED names (Zoom credentials, J-MOTTO credentials, timezone),
//! recorded in `service_checks`, and R-ENABLED read back from those records and the
//! settings (unset credentials, stored values that cannot be used), in English for the API
//! ([`disabled_reasons`]) and in Japanese for people ([`disabled_reasons_ja`]). A passing
//! Zoom token check releases the jobs that waited while the integration was 無効. `doctor`
//! adds its full list on top.
//!
//! Invariant: no result carries a secret (messages name configuration keys, never values
//! of secrets).

use crate::{
    config::Settings,
    groupware::{AdminInfo, GroupwareClient, GroupwareError},
    store::{Store, queue, receiver},
    zoom::ZoomClient,
};

/// One checked item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// What was checked, e.g. `Zoom token`.
    pub item: String,
    pub ok: bool,
    /// `OK`, or what is wrong and where to fix it.
    pub detail: String,
}

impl CheckResult {
    pub(crate) fn pass(item: impl Into<String>, detail: impl Into<String>) -> CheckResult {
        CheckResult {
            item: item.into(),
            ok: true,
            detail: detail.into(),
        }
    }

    pub(crate) fn fail(item: impl Into<String>, detail: impl Into<String>) -> CheckResult {
        CheckResult {
            item: item.into(),
            ok: false,
            detail: detail.into(),
        }
    }

    /// An item that could not be checked because `prerequisite` failed: listed, so the
    /// administrator sees every item at once, and failed, since nothing vouches for it.
    pub(crate) fn not_checked(item: impl Into<String>, prerequisite: &str) -> CheckResult {
        CheckResult::fail(
            item,
            format!("{NOT_CHECKED}: {prerequisite} failed (fix that first)"),
        )
    }

    /// Was this item skipped because another failed?
    pub fn is_not_checked(&self) -> bool {
        !self.ok && self.detail.starts_with(NOT_CHECKED)
    }
}

const NOT_CHECKED: &str = "not checked";

/// Where the Zoom app's credentials and scopes are set.
pub(crate) const ZOOM_APP_SCREEN: &str =
    "Zoom App Marketplace (marketplace.zoom.us) › Manage › your Server-to-Server OAuth app";
const TIMEZONE_SCREEN: &str = "J-MOTTO TOP › 言語及びタイムゾーン設定 › タイムゾーン";
const LOGIN_SCREEN: &str = "J-MOTTO TOP › プロフィール (ログイン ID, パスワード)";

/// The worker's quick check (start-up, every `housekeeping::CHECK_EVERY`, and after a
/// saved change of the settings): the Zoom token, the J-MOTTO login and the timezone,
/// recorded for `status`. Costs two requests. A service without a client (`None`: its
/// credentials are unset) fails without a call, naming each unset setting. When the Zoom
/// token passes, the jobs deferred while the integration was 無効 run at once.
pub async fn quick_check(
    settings: &Settings,
    zoom: Option<&ZoomClient>,
    groupware: Option<&GroupwareClient>,
    store: &Store,
) -> Vec<CheckResult> {
    let token = match zoom {
        Some(zoom) => token_result(&zoom.token_info().await),
        None => unset_result(TOKEN_ITEM, settings, "zoom."),
    };
    let (login, timezone) = match groupware {
        Some(groupware) => {
            let login = groupware.login().await;
            (
                login_result(&login),
                timezone_check(settings, login.as_ref().ok()),
            )
        }
        None => (
            unset_result(LOGIN_ITEM, settings, "groupware."),
            timezone_check(settings, None),
        ),
    };
    let results = vec![token, login, timezone];
    record(store, &results).await;
    results
}

/// The screen's field label of a credential key, as the Zoom連携設定 page names it.
fn field_label(key: &str) -> &'static str {
    match key {
        "zoom.account_id" => "アカウントID",
        "zoom.client_id" => "クライアントID",
        "zoom.client_secret" => "クライアントシークレット",
        "groupware.base_url" => "グループウェアURL",
        "groupware.admin_login_id" => "グループウェア管理者ユーザーID",
        "groupware.admin_password" => "管理者モバイルパスワード",
        "groupware.timezone" => "管理者設定のタイムゾーン",
        _ => "設定",
    }
}

/// `item` failed because the credentials of `prefix` (`zoom.`, `groupware.`) are unset:
/// each named, in Japanese and English, with the console page to enter it on. No call made.
pub(crate) fn unset_result(item: &str, settings: &Settings, prefix: &str) -> CheckResult {
    let unset: Vec<&str> = settings
        .unset_credentials()
        .into_iter()
        .filter(|key| key.starts_with(prefix))
        .collect();
    let japanese: Vec<String> = unset
        .iter()
        .map(|key| format!("「{}」（{key}）", field_label(key)))
        .collect();
    CheckResult::fail(
        item,
        format!(
            "{} が設定されていません。このコンソールの「Zoom連携設定」ページで入力してください / not set: {} (enter it on the console's Zoom連携設定 page, or set it in the configuration file)",
            japanese.join("、"),
            unset.join(", ")
        ),
    )
}

/// A create, update or delete met Zoom's refusal of the credentials: recorded as the last
/// check of the Zoom token, so that the integration shows 無効 and the other jobs wait
/// without calling Zoom until a quick check passes again.
pub async fn record_token_refusal(store: &Store, error: &crate::zoom::ZoomError) {
    let result = CheckResult::fail(
        TOKEN_ITEM,
        format!("{error} ({ZOOM_APP_SCREEN} › App Credentials)"),
    );
    record(store, std::slice::from_ref(&result)).await;
}

/// Whether the last recorded check of the Zoom token failed (the integration is 無効 and
/// Zoom's writes wait). Never checked is not failed: the worker checks at its start.
pub async fn zoom_token_failed(store: &Store) -> anyhow::Result<bool> {
    let checks = receiver::checks(store.db()).await?;
    Ok(checks
        .iter()
        .any(|c| c.service == ENABLED_PARTS[0].0 && !c.ok))
}

/// Stores the R-ENABLED parts of `results` (`zoom`, `groupware`, `timezone`). A passing
/// Zoom token lets the jobs deferred while the integration was 無効 go at once
/// ([`queue::release_disabled_waits`]): a fix creates them all, each once (the claim logic
/// holds R-ONCE).
pub(crate) async fn record(store: &Store, results: &[CheckResult]) {
    let now = chrono::Utc::now();
    for (service, item, _) in ENABLED_PARTS {
        let Some(result) = results.iter().find(|r| r.item == item) else {
            continue;
        };
        if let Err(error) =
            receiver::record_check(store.db(), service, result.ok, &result.detail, now).await
        {
            tracing::warn!(error = %format!("{error:#}"), "cannot record a service check");
        }
    }
    if results.iter().any(|r| r.item == TOKEN_ITEM && r.ok) {
        match queue::release_disabled_waits(store.db()).await {
            Ok(0) => {}
            Ok(released) => tracing::info!(
                jobs = released,
                "the Zoom token check passed: the jobs deferred while the integration was disabled run now"
            ),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "cannot release the deferred jobs")
            }
        }
    }
}

/// The parts R-ENABLED names: the service's key in `service_checks`, the item whose result
/// stands for it, and how `status` names it.
const ENABLED_PARTS: [(&str, &str, &str); 3] = [
    ("zoom", TOKEN_ITEM, "the Zoom credentials ([zoom])"),
    (
        "groupware",
        LOGIN_ITEM,
        "the J-MOTTO credentials ([groupware])",
    ),
    (
        "timezone",
        TIMEZONE_ITEM,
        "the timezone (groupware.timezone)",
    ),
];

pub(crate) const TOKEN_ITEM: &str = "Zoom token";
pub(crate) const LOGIN_ITEM: &str = "J-MOTTO login";
const TIMEZONE_ITEM: &str = "timezone";

pub(crate) fn token_result<T>(token: &Result<T, crate::zoom::ZoomError>) -> CheckResult {
    match token {
        Ok(_) => CheckResult::pass(TOKEN_ITEM, "OK"),
        Err(error) => CheckResult::fail(
            TOKEN_ITEM,
            format!("{error} ({ZOOM_APP_SCREEN} › App Credentials)"),
        ),
    }
}

pub(crate) fn login_result<T>(login: &Result<T, GroupwareError>) -> CheckResult {
    match login {
        Ok(_) => CheckResult::pass(LOGIN_ITEM, "OK"),
        Err(error) => CheckResult::fail(LOGIN_ITEM, login_problem(error)),
    }
}

fn login_problem(error: &GroupwareError) -> String {
    match error {
        GroupwareError::LoginFailed => format!(
            "J-MOTTO refused the administrator login: check groupware.admin_login_id and groupware.admin_password (the administrator's mobile password; {LOGIN_SCREEN})"
        ),
        other => format!("cannot log in to J-MOTTO at groupware.base_url: {other}"),
    }
}

pub(crate) fn timezone_check(settings: &Settings, admin: Option<&AdminInfo>) -> CheckResult {
    let configured = settings.groupware.timezone.name();
    match admin.and_then(|a| a.timezone.as_deref()) {
        None if admin.is_none() => CheckResult::fail(
            TIMEZONE_ITEM,
            format!(
                "groupware.timezone = \"{configured}\" is a valid IANA name, but J-MOTTO's could not be read (the login failed)"
            ),
        ),
        None => CheckResult::pass(
            TIMEZONE_ITEM,
            format!("OK (\"{configured}\"; J-MOTTO did not report the administrator's timezone)"),
        ),
        Some(reported) if reported == configured => CheckResult::pass(TIMEZONE_ITEM, "OK"),
        Some(reported) => CheckResult::fail(
            TIMEZONE_ITEM,
            format!(
                "groupware.timezone is \"{configured}\" but J-MOTTO reports \"{reported}\" for the administrator: set groupware.timezone = \"{reported}\", or change {TIMEZONE_SCREEN}"
            ),
        ),
    }
}

/// R-ENABLED from the settings and the recorded checks: the reasons the integration is not
/// enabled (empty: enabled), in English (the API's `reasons`). A part whose credentials are
/// unset says so instead of its last check.
pub fn disabled_reasons(settings: &Settings, checks: &[receiver::ServiceCheck]) -> Vec<String> {
    let mut reasons = Vec::new();
    if !settings.users.iter().any(|u| u.enabled) {
        reasons.push("no user is enabled: add [[users]] with enabled = true".to_owned());
    }
    let unset = settings.unset_credentials();
    for key in &unset {
        reasons.push(format!(
            "{key} is not set: enter it on the console's Zoom連携設定 page (or set it in the configuration file)"
        ));
    }
    reasons.extend(settings.problems.iter().cloned());
    for (service, _, what) in ENABLED_PARTS {
        if part_unset(service, &unset) {
            continue;
        }
        match checks.iter().find(|c| c.service == service) {
            None => reasons.push(format!(
                "{what} have not been checked yet: start the worker or run `jmotto-zoom doctor`"
            )),
            Some(check) if !check.ok => {
                reasons.push(format!("the last check of {what} failed: {}", check.detail));
            }
            Some(_) => {}
        }
    }
    reasons
}

/// Whether the credentials a part's check needs are unset (the check cannot tell more).
fn part_unset(service: &str, unset: &[&str]) -> bool {
    let prefix = match service {
        "zoom" => "zoom.",
        // The timezone is read at the J-MOTTO login.
        _ => "groupware.",
    };
    unset.iter().any(|key| key.starts_with(prefix))
}

const CONSOLE_SETTINGS_PAGE: &str = "このコンソールの「Zoom連携設定」ページ";
const ZOOM_APP_SCREEN_JA: &str = "Zoom App Marketplace（marketplace.zoom.us）› Manage › Server-to-Server OAuth アプリ › App Credentials";

/// [`disabled_reasons`] in Japanese, for the console's 状態 page and people: each reason
/// says what to do, in the services' own screen names (Zoom App Marketplace, J-MOTTO's
/// screens) and this console's pages (「Zoom連携設定」, 「ユーザー」).
pub fn disabled_reasons_ja(settings: &Settings, checks: &[receiver::ServiceCheck]) -> Vec<String> {
    let mut reasons = Vec::new();
    if !settings.users.iter().any(|u| u.enabled) {
        reasons.push(if settings.file_keys.contains("users") {
            "連携するユーザーがいません。設定ファイルの [[users]] に enabled = true のユーザーを追加してください。".to_owned()
        } else {
            "連携するユーザーがいません。このコンソールの「ユーザー」ページで「連携」にチェックを入れ、Zoomメールアドレスを入力してください。".to_owned()
        });
    }
    let unset = settings.unset_credentials();
    for key in &unset {
        let source = if key.starts_with("zoom.") {
            format!("{ZOOM_APP_SCREEN_JA} に表示される値を")
        } else if *key == "groupware.base_url" {
            "J-MOTTO にログインしたときのアドレス（例: https://gws44.j-motto.co.jp/cgi-bin/JM0000000/）を".to_owned()
        } else {
            format!("{LOGIN_SCREEN} の値を")
        };
        reasons.push(format!(
            "「{}」（{key}）が設定されていません。{source}{CONSOLE_SETTINGS_PAGE}で入力してください。",
            field_label(key)
        ));
    }
    for problem in &settings.problems {
        let key = problem.split('`').nth(1).unwrap_or("");
        reasons.push(format!(
            "保存されている「{}」（{key}）を使えません（{problem}）。{CONSOLE_SETTINGS_PAGE}で入力し直してください。",
            field_label(key)
        ));
    }
    for (service, _, _) in ENABLED_PARTS {
        if part_unset(service, &unset) {
            continue;
        }
        let what = match service {
            "zoom" => "Zoom の認証情報",
            "groupware" => "J-MOTTO の管理者ログイン",
            _ => "タイムゾーン",
        };
        match checks.iter().find(|c| c.service == service) {
            None => reasons.push(format!(
                "{what}はまだ確認されていません。ワーカーを起動するか、`jmotto-zoom doctor` を実行してください。"
            )),
            Some(check) if !check.ok => {
                let fix = match service {
                    "zoom" => format!(
                        "{ZOOM_APP_SCREEN_JA} のアカウントID・クライアントID・クライアントシークレットを確かめ、{CONSOLE_SETTINGS_PAGE}で入力し直してください。"
                    ),
                    "groupware" => format!(
                        "{LOGIN_SCREEN} のログインIDと管理者モバイルパスワード、グループウェアURLを確かめ、{CONSOLE_SETTINGS_PAGE}で入力し直してください。"
                    ),
                    _ => format!(
                        "{TIMEZONE_SCREEN} と、{CONSOLE_SETTINGS_PAGE}の「管理者設定のタイムゾーン」を合わせてください。"
                    ),
                };
                reasons.push(format!(
                    "{what}の確認に失敗しました（{}）。{fix}",
                    check.detail
                ));
            }
            Some(_) => {}
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(user_enabled: bool) -> Settings {
        let text = format!("{}enabled = {user_enabled}\n", crate::config::MINIMAL);
        Settings::from_toml_str(&text).expect("valid settings")
    }

    fn check(service: &str, ok: bool) -> receiver::ServiceCheck {
        receiver::ServiceCheck {
            service: service.to_owned(),
            ok,
            detail: if ok { "OK" } else { "refused" }.to_owned(),
            checked_at: "2026-11-25T01:00:00Z".to_owned(),
        }
    }

    /// R-ENABLED: enabled only with an enabled user and the last checks of the Zoom
    /// credentials, the J-MOTTO credentials and the timezone all passed; each reason names
    /// its part.
    #[test]
    fn disabled_reasons_name_each_missing_part() {
        let all_ok = || {
            vec![
                check("zoom", true),
                check("groupware", true),
                check("timezone", true),
            ]
        };
        let cases: Vec<(&str, bool, Vec<receiver::ServiceCheck>, Vec<&str>)> = vec![
            ("everything checked OK", true, all_ok(), vec![]),
            (
                "no user enabled",
                false,
                all_ok(),
                vec!["no user is enabled"],
            ),
            (
                "never checked",
                true,
                vec![],
                vec![
                    "the Zoom credentials ([zoom]) have not been checked yet",
                    "the J-MOTTO credentials ([groupware]) have not been checked yet",
                    "the timezone (groupware.timezone) have not been checked yet",
                ],
            ),
            (
                "Zoom refused",
                true,
                vec![
                    check("zoom", false),
                    check("groupware", true),
                    check("timezone", true),
                ],
                vec!["the last check of the Zoom credentials ([zoom]) failed: refused"],
            ),
        ];
        for (case, user_enabled, checks, expected) in cases {
            let reasons = disabled_reasons(&settings(user_enabled), &checks);
            assert_eq!(reasons.len(), expected.len(), "{case}: {reasons:?}");
            for (reason, start) in reasons.iter().zip(expected) {
                assert!(reason.starts_with(start), "{case}: {reason:?}");
            }
        }
    }

    const BARE: &str = "[database]\nurl = \"sqlite://bare.db\"\n[server]\nadmin_token = \"t\"\n";

    /// SPEC §8, R-ENABLED: with a bare file every credential is a reason of its own (in
    /// English for the API, in Japanese naming the console's pages and the services'
    /// screens), a part whose credentials are unset is not also "not checked", and a stored
    /// value that cannot be used is named.
    #[test]
    fn a_bare_file_names_each_unset_credential_in_both_languages() {
        let mut settings = Settings::from_toml_str(BARE).expect("a bare file loads");
        settings
            .problems
            .push("the stored `groupware.timezone` cannot be used: not a zone".to_owned());
        let english = disabled_reasons(&settings, &[]);
        let japanese = disabled_reasons_ja(&settings, &[]);
        assert_eq!(english.len(), 1 + 6 + 1, "{english:#?}");
        assert_eq!(japanese.len(), english.len(), "{japanese:#?}");
        for key in crate::config::CREDENTIAL_KEYS {
            assert!(english.iter().any(|r| r.starts_with(key)), "{key}");
            assert!(
                japanese
                    .iter()
                    .any(|r| r.contains(key) && r.contains("「Zoom連携設定」")),
                "{key}: {japanese:#?}"
            );
        }
        assert!(!english.iter().any(|r| r.contains("checked yet")));
        assert!(
            japanese[0].contains("「ユーザー」ページ"),
            "{}",
            japanese[0]
        );
        assert!(
            japanese[1].contains("Zoom App Marketplace"),
            "{}",
            japanese[1]
        );
        assert!(
            japanese
                .last()
                .is_some_and(|r| r.contains("groupware.timezone")),
            "{japanese:#?}"
        );
    }

    /// R-ENABLED in Japanese: a failed check says what to do in the services' screen names.
    #[test]
    fn failed_checks_say_where_to_fix_in_japanese() {
        let checks = vec![
            check("zoom", false),
            check("groupware", false),
            check("timezone", false),
        ];
        let japanese = disabled_reasons_ja(&settings(true), &checks);
        assert_eq!(japanese.len(), 3, "{japanese:#?}");
        assert!(japanese[0].contains("App Credentials") && japanese[0].contains("refused"));
        assert!(japanese[1].contains("J-MOTTO TOP › プロフィール"));
        assert!(japanese[2].contains("タイムゾーン"));
        assert!(
            disabled_reasons_ja(&settings(true), &[])
                .iter()
                .all(|r| r.contains("doctor"))
        );
    }

    /// SPEC §8: the quick check of unset credentials fails each part without a client (no
    /// call can be made), naming each unset setting and the console page, and records it.
    #[tokio::test]
    async fn the_quick_check_of_unset_credentials_calls_nothing() {
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", folder.path().join("c.db").display());
        let store = Store::connect(&url).await.expect("store");
        let settings = Settings::from_toml_str(BARE).expect("a bare file loads");
        let results = quick_check(&settings, None, None, &store).await;
        assert!(results.iter().all(|r| !r.ok), "{results:#?}");
        for key in ["zoom.account_id", "zoom.client_id", "zoom.client_secret"] {
            assert!(results[0].detail.contains(key), "{}", results[0].detail);
        }
        assert!(results[0].detail.contains("「Zoom連携設定」ページ"));
        assert!(results[0].detail.contains("クライアントシークレット"));
        assert!(results[1].detail.contains("groupware.admin_password"));
        let recorded = receiver::checks(store.db()).await.expect("checks");
        assert_eq!(recorded.len(), 3);
        assert!(zoom_token_failed(&store).await.expect("read"));
        store.close().await;
    }
}
