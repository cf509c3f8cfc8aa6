//! The service checks shared by the worker, HTTP and the command line: the quick check of
//! the three parts R-ENABLED names (Zoom credentials, J-MOTTO credentials, timezone),
//! recorded in `service_checks`, and R-ENABLED read back from those records. `doctor` adds
//! its full list on top.
//!
//! Invariant: no result carries a secret (messages name configuration keys, never values
//! of secrets).

use crate::{
    config::Settings,
    groupware::{AdminInfo, GroupwareClient, GroupwareError},
    store::{Store, receiver},
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

/// The worker's quick check (start-up and every `housekeeping::CHECK_EVERY`): the Zoom
/// token, the J-MOTTO login and the timezone, recorded for `status`. Costs two requests.
pub async fn quick_check(
    settings: &Settings,
    zoom: &ZoomClient,
    groupware: &GroupwareClient,
    store: &Store,
) -> Vec<CheckResult> {
    let token = zoom.token_info().await;
    let login = groupware.login().await;
    let results = vec![
        token_result(&token),
        login_result(&login),
        timezone_check(settings, login.as_ref().ok()),
    ];
    record(store, &results).await;
    results
}

/// Stores the R-ENABLED parts of `results` (`zoom`, `groupware`, `timezone`).
pub(crate) async fn record(store: &Store, results: &[CheckResult]) {
    let now = chrono::Utc::now();
    for (service, item, _) in ENABLED_PARTS {
        let Some(result) = results.iter().find(|r| r.item == item) else {
            continue;
        };
        if let Err(error) =
            receiver::record_check(store.pool(), service, result.ok, &result.detail, now).await
        {
            tracing::warn!(error = %format!("{error:#}"), "cannot record a service check");
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

const TOKEN_ITEM: &str = "Zoom token";
const LOGIN_ITEM: &str = "J-MOTTO login";
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

/// R-ENABLED from the recorded checks: the reasons the integration is not enabled (empty:
/// enabled).
pub fn disabled_reasons(settings: &Settings, checks: &[receiver::ServiceCheck]) -> Vec<String> {
    let mut reasons = Vec::new();
    if !settings.users.iter().any(|u| u.enabled) {
        reasons.push("no user is enabled: add [[users]] with enabled = true".to_owned());
    }
    for (service, _, what) in ENABLED_PARTS {
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
}
