//! `jmotto-zoom doctor` (SPEC §3): verifies the administrator's setup against the live
//! services, item by item, and says where to fix what is wrong — in Zoom's and J-MOTTO's
//! own screen names (the seed manual's). Also the worker's quick check of the three parts
//! R-ENABLED names (Zoom credentials, J-MOTTO credentials, timezone), recorded in
//! `service_checks` so `status` can say whether the integration is enabled.
//!
//! Invariant: no result carries a secret (messages name configuration keys, never values
//! of secrets).

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate};

use crate::{
    config::{DeletePolicy, Settings},
    domain::decision::ReschedulePolicy,
    groupware::{AdminInfo, GroupwareError},
    jobs::Engine,
    store::receiver,
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
    fn pass(item: impl Into<String>, detail: impl Into<String>) -> CheckResult {
        CheckResult {
            item: item.into(),
            ok: true,
            detail: detail.into(),
        }
    }

    fn fail(item: impl Into<String>, detail: impl Into<String>) -> CheckResult {
        CheckResult {
            item: item.into(),
            ok: false,
            detail: detail.into(),
        }
    }

    /// An item that could not be checked because `prerequisite` failed: listed, so the
    /// administrator sees every item at once, and failed, since nothing vouches for it.
    fn not_checked(item: impl Into<String>, prerequisite: &str) -> CheckResult {
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

const ZOOM_APP_SCREEN: &str =
    "Zoom App Marketplace (marketplace.zoom.us) › Manage › your Server-to-Server OAuth app";
const SCHEDULE_ACCESS_SCREEN: &str =
    "J-MOTTO スケジュール › 設定（歯車） › 各ユーザーのアクセス権設定";
const PLACE_SCREEN: &str = "J-MOTTO スケジュール › 設定（歯車） › 場所項目設定";
const TIMEZONE_SCREEN: &str = "J-MOTTO TOP › 言語及びタイムゾーン設定 › タイムゾーン";
const LOGIN_SCREEN: &str = "J-MOTTO TOP › プロフィール (ログイン ID, パスワード)";

/// A scope the configuration needs: the admin name or the user-level name both do.
struct NeededScope {
    admin: &'static str,
    user: &'static str,
    why: &'static str,
    /// Marketplace's name of the scope, as "+ Add Scopes" shows it.
    screen_name: &'static str,
}

/// The scopes the configured policies need (SPEC §3).
fn needed_scopes(settings: &Settings) -> Vec<NeededScope> {
    let mut needed = vec![
        NeededScope {
            admin: "meeting:write:meeting:admin",
            user: "meeting:write:meeting",
            why: "to create meetings",
            screen_name: "Create a meeting for a user",
        },
        NeededScope {
            admin: "user:read:email:admin",
            user: "user:read:email",
            why: "to verify the users' e-mail addresses",
            screen_name: "Verify a user's email",
        },
    ];
    if matches!(
        settings.sync.on_reschedule,
        ReschedulePolicy::Update | ReschedulePolicy::Replace
    ) {
        needed.push(NeededScope {
            admin: "meeting:update:meeting:admin",
            user: "meeting:update:meeting",
            why: "for sync.on_reschedule = \"update\" or \"replace\"",
            screen_name: "Update a meeting",
        });
    }
    if settings.sync.on_delete == DeletePolicy::Delete
        || settings.sync.on_reschedule == ReschedulePolicy::Replace
    {
        needed.push(NeededScope {
            admin: "meeting:delete:meeting:admin",
            user: "meeting:delete:meeting",
            why: "for sync.on_delete = \"delete\" or sync.on_reschedule = \"replace\"",
            screen_name: "Delete a meeting",
        });
    }
    needed
}

/// Runs every check of SPEC §3 and records the R-ENABLED parts. Calls the services.
pub async fn run(engine: &Engine) -> Vec<CheckResult> {
    let settings = &engine.settings;
    let mut results = Vec::new();
    results.push(CheckResult::pass(
        "timezone name",
        format!(
            "OK (groupware.timezone = \"{}\" is an IANA name)",
            settings.groupware.timezone.name()
        ),
    ));

    // Zoom: the token, its scopes, every mapped e-mail.
    let token = engine.zoom.token_info().await;
    results.push(token_result(&token));
    let Ok(info) = &token else {
        for scope in needed_scopes(settings) {
            results.push(CheckResult::not_checked(
                format!("Zoom scope {}", scope.admin),
                "the Zoom token request",
            ));
        }
        for user in settings.users.iter().filter(|u| u.enabled) {
            results.push(CheckResult::not_checked(
                format!("Zoom user {} ({})", user.zoom_email, user.groupware_id),
                "the Zoom token request",
            ));
        }
        return groupware_checks(engine, results).await;
    };
    {
        let granted: BTreeSet<&str> = info.scopes.iter().map(String::as_str).collect();
        for scope in needed_scopes(settings) {
            let item = format!("Zoom scope {}", scope.admin);
            if granted.contains(scope.admin) || granted.contains(scope.user) {
                results.push(CheckResult::pass(item, "OK"));
            } else {
                results.push(CheckResult::fail(
                    item,
                    format!(
                        "the token lacks {} (or {}), needed {}: add \"{}\" in {ZOOM_APP_SCREEN} › Scopes › + Add Scopes",
                        scope.admin, scope.user, scope.why, scope.screen_name
                    ),
                ));
            }
        }
        let list = "meeting:read:list_meetings:admin";
        if granted.contains(list) || granted.contains("meeting:read:list_meetings") {
            results.push(CheckResult::pass(
                format!("Zoom scope {list}"),
                "OK (a retried create can find a meeting Zoom made before a lost answer)",
            ));
        } else {
            results.push(CheckResult::pass(
                format!("Zoom scope {list}"),
                format!(
                    "OK without it, but a create whose answer was lost is retried and flagged possible_duplicate; add \"List meetings\" in {ZOOM_APP_SCREEN} › Scopes to rule that out"
                ),
            ));
        }
        for user in settings.users.iter().filter(|u| u.enabled) {
            let item = format!("Zoom user {} ({})", user.zoom_email, user.groupware_id);
            match engine.zoom.email_exists(user.zoom_email.as_str()).await {
                Ok(true) => results.push(CheckResult::pass(item, "OK")),
                Ok(false) => results.push(CheckResult::fail(
                    item,
                    format!(
                        "{} is not a user of the Zoom account: add it in Zoom's User Management › Users, or fix zoom_email of [[users]] groupware_id = \"{}\"",
                        user.zoom_email, user.groupware_id
                    ),
                )),
                Err(error) => results.push(CheckResult::fail(
                    item,
                    format!("cannot check the address: {error}"),
                )),
            }
        }
    }

    groupware_checks(engine, results).await
}

/// J-MOTTO: the login, the timezone it reports, the location item, each schedule; then
/// records the R-ENABLED parts of all `results`.
async fn groupware_checks(engine: &Engine, mut results: Vec<CheckResult>) -> Vec<CheckResult> {
    let settings = &engine.settings;
    let login = engine.groupware.login().await;
    results.push(login_result(&login));
    results.push(timezone_check(settings, login.as_ref().ok()));
    let place_item = format!("J-MOTTO location item {}", settings.sync.location);
    let month = first_of_month(engine);
    check_after_login(&mut results, login.is_ok(), place_item, place_check(engine)).await;
    for user in settings.users.iter().filter(|u| u.enabled) {
        let id = user.groupware_id.as_str();
        check_after_login(
            &mut results,
            login.is_ok(),
            format!("J-MOTTO schedule of user {id}"),
            schedule_check(engine, id, month),
        )
        .await;
    }
    record(engine, &results).await;
    results
}

/// Runs `check` when its prerequisite (the J-MOTTO login) passed, else lists it as not
/// checked.
async fn check_after_login(
    results: &mut Vec<CheckResult>,
    login_ok: bool,
    item: String,
    check: impl std::future::Future<Output = CheckResult>,
) {
    if login_ok {
        results.push(check.await);
    } else {
        results.push(CheckResult::not_checked(item, "the J-MOTTO login"));
    }
}

/// The worker's quick check (start-up and every `housekeeping::CHECK_EVERY`): the Zoom
/// token, the J-MOTTO login and the timezone, recorded for `status`. Costs two requests.
pub async fn quick_check(engine: &Engine) -> Vec<CheckResult> {
    let token = engine.zoom.token_info().await;
    let login = engine.groupware.login().await;
    let results = vec![
        token_result(&token),
        login_result(&login),
        timezone_check(&engine.settings, login.as_ref().ok()),
    ];
    record(engine, &results).await;
    results
}

/// Stores the R-ENABLED parts of `results` (`zoom`, `groupware`, `timezone`).
async fn record(engine: &Engine, results: &[CheckResult]) {
    let now = chrono::Utc::now();
    for (service, item, _) in ENABLED_PARTS {
        let Some(result) = results.iter().find(|r| r.item == item) else {
            continue;
        };
        if let Err(error) =
            receiver::record_check(engine.store.pool(), service, result.ok, &result.detail, now)
                .await
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

fn token_result<T>(token: &Result<T, crate::zoom::ZoomError>) -> CheckResult {
    match token {
        Ok(_) => CheckResult::pass(TOKEN_ITEM, "OK"),
        Err(error) => CheckResult::fail(
            TOKEN_ITEM,
            format!("{error} ({ZOOM_APP_SCREEN} › App Credentials)"),
        ),
    }
}

fn login_result<T>(login: &Result<T, GroupwareError>) -> CheckResult {
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

fn timezone_check(settings: &Settings, admin: Option<&AdminInfo>) -> CheckResult {
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

async fn place_check(engine: &Engine) -> CheckResult {
    let wanted = &engine.settings.sync.location;
    let item = format!("J-MOTTO location item {wanted}");
    match engine.groupware.list_places().await {
        Ok(places) if places.iter().any(|p| engine.location.matches(p)) => {
            CheckResult::pass(item, "OK")
        }
        Ok(places) => CheckResult::fail(
            item,
            format!(
                "no location item named \"{wanted}\" (sync.location) among {} item(s): register it with 場所項目の登録 in {PLACE_SCREEN}",
                places.len()
            ),
        ),
        Err(error) => CheckResult::fail(item, format!("cannot list the location items: {error}")),
    }
}

async fn schedule_check(engine: &Engine, user: &str, month: NaiveDate) -> CheckResult {
    let item = format!("J-MOTTO schedule of user {user}");
    let last = month
        .checked_add_months(chrono::Months::new(1))
        .and_then(|d| d.pred_opt())
        .unwrap_or(month);
    match engine.groupware.list_events(user, month, last).await {
        Ok(_) => CheckResult::pass(item, "OK"),
        Err(GroupwareError::Forbidden { .. }) => CheckResult::fail(
            item,
            format!(
                "J-MOTTO refuses the administrator a view of user {user}'s schedule (errorno 2001): grant 参照 to Everyone, the administrator or the administrator's organization in {SCHEDULE_ACCESS_SCREEN}"
            ),
        ),
        Err(error) => CheckResult::fail(item, format!("cannot read the schedule: {error}")),
    }
}

/// The 1st of the current month in the administrator's timezone (the window's first slice).
fn first_of_month(engine: &Engine) -> NaiveDate {
    let local = engine
        .clock
        .now()
        .with_timezone(&engine.settings.groupware.timezone)
        .date_naive();
    local.with_day(1).unwrap_or(local)
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
