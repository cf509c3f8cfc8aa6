//! `jmotto-zoom doctor` (SPEC §3): verifies the administrator's setup against the live
//! services, item by item, and says where to fix what is wrong — in Zoom's and J-MOTTO's
//! own screen names (the seed manual's). Its results of the three parts R-ENABLED names are
//! recorded like the worker's quick check ([`crate::checks`]).
//!
//! Invariant: no result carries a secret (messages name configuration keys, never values
//! of secrets).

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate};

pub use crate::checks::CheckResult;
use crate::{
    checks::{
        LOGIN_ITEM, TOKEN_ITEM, ZOOM_APP_SCREEN, login_result, record, timezone_check,
        token_result, unset_result,
    },
    config::{DeletePolicy, Settings},
    domain::decision::ReschedulePolicy,
    groupware::{GroupwareClient, GroupwareError},
    jobs::Engine,
};

const SCHEDULE_ACCESS_SCREEN: &str =
    "J-MOTTO スケジュール › 設定（歯車） › 各ユーザーのアクセス権設定";
const PLACE_SCREEN: &str = "J-MOTTO スケジュール › 設定（歯車） › 場所項目設定";
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

    // Zoom: the token, its scopes, every mapped e-mail (no call while a credential is unset).
    let token = match engine.zoom() {
        Ok(zoom) => {
            let token = zoom.token_info().await;
            results.push(token_result(&token));
            token.ok().map(|info| (zoom, info))
        }
        Err(_) => {
            results.push(unset_result(TOKEN_ITEM, settings, "zoom."));
            None
        }
    };
    let Some((zoom, info)) = &token else {
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
            match zoom.email_exists(user.zoom_email.as_str()).await {
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

/// R-ENABLED as `doctor`'s last line says it, from the checks recorded (by [`run`], just
/// before): `Zoom連携: 有効`, or `Zoom連携: 無効 (…reasons…)`.
pub async fn verdict(engine: &Engine) -> anyhow::Result<String> {
    let checks = crate::store::receiver::checks(engine.store.db()).await?;
    Ok(verdict_line(&crate::checks::disabled_reasons(
        &engine.settings,
        &checks,
    )))
}

/// The verdict line of the reasons the integration is not enabled (none: enabled).
pub fn verdict_line(reasons: &[String]) -> String {
    if reasons.is_empty() {
        "Zoom連携: 有効".to_owned()
    } else {
        format!("Zoom連携: 無効 ({})", reasons.join("; "))
    }
}

/// J-MOTTO: the login, the timezone it reports, the location item, each schedule; then
/// records the R-ENABLED parts of all `results`.
async fn groupware_checks(engine: &Engine, mut results: Vec<CheckResult>) -> Vec<CheckResult> {
    let settings = &engine.settings;
    let groupware = match engine.groupware() {
        Ok(groupware) => {
            let login = groupware.login().await;
            results.push(login_result(&login));
            results.push(timezone_check(settings, login.as_ref().ok()));
            login.is_ok().then_some(groupware)
        }
        Err(_) => {
            results.push(unset_result(LOGIN_ITEM, settings, "groupware."));
            results.push(timezone_check(settings, None));
            None
        }
    };
    let place_item = format!("J-MOTTO location item {}", settings.sync.location);
    let month = first_of_month(engine);
    let enabled = settings.users.iter().filter(|u| u.enabled);
    match groupware {
        Some(groupware) => {
            results.push(place_check(engine, groupware).await);
            for user in enabled {
                let id = user.groupware_id.as_str();
                results.push(schedule_check(groupware, id, month).await);
            }
        }
        None => {
            results.push(CheckResult::not_checked(place_item, "the J-MOTTO login"));
            for user in enabled {
                let item = format!("J-MOTTO schedule of user {}", user.groupware_id);
                results.push(CheckResult::not_checked(item, "the J-MOTTO login"));
            }
        }
    }
    record(&engine.store, &results).await;
    results
}

async fn place_check(engine: &Engine, groupware: &GroupwareClient) -> CheckResult {
    let wanted = &engine.settings.sync.location;
    let item = format!("J-MOTTO location item {wanted}");
    match groupware.list_places().await {
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

async fn schedule_check(groupware: &GroupwareClient, user: &str, month: NaiveDate) -> CheckResult {
    let item = format!("J-MOTTO schedule of user {user}");
    let last = month
        .checked_add_months(chrono::Months::new(1))
        .and_then(|d| d.pred_opt())
        .unwrap_or(month);
    match groupware.list_events(user, month, last).await {
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

#[cfg(test)]
mod tests {
    use super::verdict_line;

    /// R-ENABLED: doctor's last line says the verdict, with every reason when 無効.
    #[test]
    fn the_verdict_line_names_every_reason() {
        assert_eq!(verdict_line(&[]), "Zoom連携: 有効");
        let reasons = [
            "no user is enabled".to_owned(),
            "the last check failed".to_owned(),
        ];
        assert_eq!(
            verdict_line(&reasons),
            "Zoom連携: 無効 (no user is enabled; the last check failed)"
        );
    }
}
