//! ユーザー `/admin/users` (the seed's step 4): every J-MOTTO user (name, organization,
//! login ID) with a checkbox 「連携」 and a field 「Zoomメールアドレス」 per row (each with its
//! own, visually hidden, label), button 「ユーザー設定を更新」; field 「検索」 filters by name,
//! organization or login ID; [`PAGE_SIZE`] rows a page.
//!
//! J-MOTTO's list is kept in `directory_users` and fetched again when older than
//! [`DIRECTORY_MAX_AGE`] or empty, so a page of a 1,000-user company is a database read.
//! After a save each enabled user's e-mail on the page is checked against Zoom
//! (`GET /users/email`), recorded, and shown 「確認済み」 or 「Zoomに存在しません」. These
//! calls are the console's exception to "handlers never call the services".

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    entry,
    layout::{ConsoleError, Nav, Page, pager},
    session::Console,
};
use crate::{
    http::AppState,
    jobs::Engine,
    live::{Change, FieldError, SaveError, USERS_KEY},
    store::{
        audit::{self, AuditKind},
        directory::{self, DirectoryUser},
        settings::{self as stored, StoredUser},
    },
};

/// Rows a page.
pub const PAGE_SIZE: i64 = 50;

/// The cached J-MOTTO list is fetched again after this long.
pub const DIRECTORY_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

#[derive(Debug, Default, Deserialize)]
pub struct UsersQuery {
    q: Option<String>,
    page: Option<i64>,
}

/// What one row shows.
struct Row {
    user: DirectoryUser,
    enabled: bool,
    email: String,
    /// The last Zoom check of this e-mail: found or not.
    found: Option<bool>,
    error: Option<String>,
}

/// `GET /admin/users`.
pub async fn page(
    console: Console,
    query: web::Query<UsersQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let search = query.q.as_deref().unwrap_or_default().trim().to_owned();
    let page_number = query.page.unwrap_or(1).max(1);
    let notices = refresh_directory(&state).await?;
    let values = stored_values(&state).await?;
    render(
        &console,
        &state,
        &search,
        page_number,
        &values,
        &[],
        notices,
        StatusCode::OK,
    )
    .await
}

/// Fetches J-MOTTO's list again when the stored one is empty or old; what went wrong.
async fn refresh_directory(state: &AppState) -> Result<Vec<Markup>, ConsoleError> {
    let pool = state.store.db();
    let now = chrono::Utc::now();
    if directory::fetched_at(pool)
        .await?
        .is_some_and(|at| now - at < DIRECTORY_MAX_AGE)
    {
        return Ok(Vec::new());
    }
    let engine = match engine_with(
        state,
        "groupware.",
        "J-MOTTOのユーザーを読み込めません。先に「Zoom連携設定」でグループウェアの設定を保存してください。",
    )
    .await?
    {
        Ok(engine) => engine,
        Err(notice) => return Ok(vec![notice]),
    };
    let listed = match engine.groupware() {
        Ok(client) => client.list_users().await,
        Err(unset) => return Ok(vec![not_set(&unset)]),
    };
    match listed {
        Ok(users) => {
            let users: Vec<DirectoryUser> = users
                .into_iter()
                .map(|u| DirectoryUser {
                    groupware_id: u.id,
                    login_id: u.login_id,
                    name: u.name,
                    organization: u.organization,
                    email: u.email,
                })
                .collect();
            let mut tx = state.store.begin_write().await?;
            directory::replace_all(&mut tx, &users, now).await?;
            tx.commit()
                .await
                .map_err(|e| anyhow::anyhow!("cannot store the user list: {e}"))?;
            Ok(Vec::new())
        }
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot list the J-MOTTO users");
            Ok(vec![html! {
                div.alert { p { "J-MOTTOからユーザーの一覧を読み込めませんでした（" (format!("{error:#}")) "）。前回読み込んだ一覧を表示しています。" } }
            }])
        }
    }
}

/// The clients built from the live settings, or a notice: `unset` when a credential whose
/// key starts with `part` is not set (nothing is called then), or why they cannot be built.
async fn engine_with(
    state: &AppState,
    part: &str,
    unset: &str,
) -> Result<Result<std::sync::Arc<Engine>, Markup>, ConsoleError> {
    let settings = state.live.current().await?;
    if settings
        .unset_credentials()
        .iter()
        .any(|key| key.starts_with(part))
    {
        return Ok(Err(html! { div.alert { p { (unset) } } }));
    }
    Ok(
        Engine::new((*settings).clone(), state.store.clone()).map_err(|error| {
            html! { div.alert { p { "クライアントを作れません: " (format!("{error:#}")) } } }
        }),
    )
}

/// The notice for a service whose credentials are not set.
fn not_set(unset: &crate::jobs::engine::NotSet) -> Markup {
    html! { div.alert { p { (unset.service) "の設定が済んでいません（「Zoom連携設定」: " (unset.keys.join(", ")) "）。" } } }
}

/// Each user's stored (or file-set) e-mail and enable flag, by groupware id.
async fn stored_values(state: &AppState) -> Result<BTreeMap<String, (bool, String)>, ConsoleError> {
    if state.live.set_by_file(USERS_KEY) {
        let settings = state.live.current().await?;
        return Ok(settings
            .users
            .iter()
            .map(|u| {
                (
                    u.groupware_id.to_string(),
                    (u.enabled, u.zoom_email.to_string()),
                )
            })
            .collect());
    }
    Ok(stored::load(state.store.db())
        .await?
        .users
        .into_iter()
        .map(|u| (u.groupware_id, (u.enabled, u.zoom_email)))
        .collect())
}

/// `POST /admin/users`: 「ユーザー設定を更新」 for the rows of the page.
pub async fn save(
    console: Console,
    request: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let fields = console.checked_form(form)?;
    let search = fields.get("q").unwrap_or_default().trim().to_owned();
    let page_number = fields
        .get("page")
        .and_then(|p| p.parse::<i64>().ok())
        .unwrap_or(1)
        .max(1);
    let submitted: Vec<StoredUser> = fields
        .all("user")
        .map(|id| StoredUser {
            groupware_id: id.to_owned(),
            zoom_email: fields
                .get(&format!("email.{id}"))
                .unwrap_or_default()
                .trim()
                .to_owned(),
            enabled: fields.get(&format!("enabled.{id}")) == Some("true"),
        })
        .collect();
    let mut tx = state.store.begin_write().await?;
    let saved = state.live.save_users(&mut tx, &submitted).await;
    let changes: Vec<Change> = match saved {
        Ok(changes) => changes,
        Err(SaveError::Fields(errors)) => {
            tx.rollback()
                .await
                .map_err(|e| anyhow::anyhow!("cannot roll back the users: {e}"))?;
            let mut values = stored_values(&state).await?;
            for user in &submitted {
                values.insert(
                    user.groupware_id.clone(),
                    (user.enabled, user.zoom_email.clone()),
                );
            }
            let notice = super::forms::refused_notice("ユーザー設定");
            return render(
                &console,
                &state,
                &search,
                page_number,
                &values,
                &errors,
                vec![notice],
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Err(SaveError::Storage(error)) => return Err(ConsoleError::Internal(error)),
    };
    let detail = if changes.is_empty() {
        "変更なし".to_owned()
    } else {
        changes
            .iter()
            .map(Change::describe_ja)
            .collect::<Vec<_>>()
            .join("、")
    };
    audit::record(
        &mut tx,
        &entry(&request, AuditKind::Users, detail),
        chrono::Utc::now(),
    )
    .await?;
    tx.commit()
        .await
        .map_err(|e| anyhow::anyhow!("cannot commit the users: {e}"))?;
    let mut notices = vec![html! {
        div.notice role="status" { p { "ユーザー設定を保存しました" @if changes.is_empty() { "（変更はありません）" } "。" } }
    }];
    notices.extend(check_emails(&state, &submitted).await?);
    let values = stored_values(&state).await?;
    render(
        &console,
        &state,
        &search,
        page_number,
        &values,
        &[],
        notices,
        StatusCode::OK,
    )
    .await
}

/// Checks each enabled user's e-mail against Zoom and records the outcome; what could not be
/// checked.
async fn check_emails(state: &AppState, users: &[StoredUser]) -> Result<Vec<Markup>, ConsoleError> {
    let enabled: Vec<&StoredUser> = users
        .iter()
        .filter(|u| u.enabled && !u.zoom_email.is_empty())
        .collect();
    if enabled.is_empty() {
        return Ok(Vec::new());
    }
    let engine = match engine_with(
        state,
        "zoom.",
        "Zoomの設定が済んでいないため、メールアドレスをZoomで確認できません（「Zoom連携設定」）。",
    )
    .await?
    {
        Ok(engine) => engine,
        Err(notice) => return Ok(vec![notice]),
    };
    let zoom = match engine.zoom() {
        Ok(client) => client,
        Err(unset) => return Ok(vec![not_set(&unset)]),
    };
    let mut problems = Vec::new();
    for user in enabled {
        match zoom.email_exists(&user.zoom_email).await {
            Ok(found) => {
                stored::record_email_check(
                    state.store.db(),
                    &user.groupware_id,
                    &user.zoom_email,
                    found,
                    chrono::Utc::now(),
                )
                .await?;
            }
            Err(error) => problems.push(format!("{}: {error}", user.zoom_email)),
        }
    }
    Ok(if problems.is_empty() {
        Vec::new()
    } else {
        vec![html! {
            div.alert {
                p { "Zoomで確認できなかったメールアドレスがあります:" }
                ul { @for problem in &problems { li { (problem) } } }
            }
        }]
    })
}

#[expect(
    clippy::too_many_arguments,
    reason = "one page, drawn from what GET and POST know"
)]
async fn render(
    console: &Console,
    state: &AppState,
    search: &str,
    page_number: i64,
    values: &BTreeMap<String, (bool, String)>,
    errors: &[FieldError],
    notices: Vec<Markup>,
    status: StatusCode,
) -> Result<HttpResponse, ConsoleError> {
    let pool = state.store.db();
    let (users, total) =
        directory::search(pool, search, (page_number - 1) * PAGE_SIZE, PAGE_SIZE).await?;
    let checks = stored::email_checks(pool).await?;
    let by_file = state.live.set_by_file(USERS_KEY);
    let rows: Vec<Row> = users
        .into_iter()
        .map(|user| {
            let (enabled, email) = values.get(&user.groupware_id).cloned().unwrap_or_default();
            let found = checks
                .iter()
                .find(|c| c.groupware_id == user.groupware_id && c.zoom_email == email)
                .map(|c| c.found);
            let error = errors
                .iter()
                .find(|e| {
                    e.key == format!("users.{}.zoom_email", user.groupware_id)
                        || e.key == format!("users.{}", user.groupware_id)
                })
                .map(|e| e.message.clone());
            Row {
                user,
                enabled,
                email,
                found,
                error,
            }
        })
        .collect();
    let other_errors: Vec<&FieldError> = errors
        .iter()
        .filter(|e| {
            !rows.iter().any(|row| {
                e.key == format!("users.{}.zoom_email", row.user.groupware_id)
                    || e.key == format!("users.{}", row.user.groupware_id)
            })
        })
        .collect();
    let kept_query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("q", search)
        .finish();
    let body = html! {
        @for notice in &notices { (notice) }
        @for error in &other_errors { div.alert { p { (error.message) } } }
        form.filters method="get" action="/admin/users" role="search" {
            div.field {
                label for="search" { "検索" }
                input type="search" id="search" name="q" value=(search) placeholder="名前・組織・ログインID";
            }
            div.field { button type="submit" { "絞り込む" } }
        }
        p { (total) "人" }
        @if by_file {
            p.note { "ユーザーは設定ファイル（[[users]]）で指定されています（設定ファイルで指定）。ここでは変更できません。" }
        }
        form method="post" action="/admin/users" novalidate {
            (console.csrf_field())
            input type="hidden" name="q" value=(search);
            input type="hidden" name="page" value=(page_number);
            div.table-wrap {
                table.stack id="users" {
                    thead { tr { th { "名前" } th { "組織" } th { "ログインID" } th { "連携" } th { "Zoomメールアドレス" } th { "Zoomでの確認" } } }
                    tbody { @for row in &rows { (user_row(row, by_file)) } }
                }
            }
            @if !by_file { button type="submit" { "ユーザー設定を更新" } }
        }
        (pager("/admin/users", &kept_query, page_number, page_number * PAGE_SIZE < total))
    };
    Ok(Page::new(Nav::Users, "ユーザー", body)
        .with_status(status)
        .render(console))
}

fn user_row(row: &Row, by_file: bool) -> Markup {
    let id = &row.user.groupware_id;
    let enabled_id = format!("enabled_{id}");
    let email_id = format!("email_{id}");
    let error_id = format!("email_{id}_error");
    html! {
        tr {
            td data-label="名前" { (row.user.name) }
            td data-label="組織" { (row.user.organization) }
            td data-label="ログインID" { (row.user.login_id) }
            td data-label="連携" {
                input type="hidden" name="user" value=(id);
                input type="checkbox" id=(enabled_id) name=(format!("enabled.{id}")) value="true"
                    checked[row.enabled] disabled[by_file];
                label.visually-hidden for=(enabled_id) { "連携" }
            }
            td data-label="Zoomメールアドレス" {
                label.visually-hidden for=(email_id) { "Zoomメールアドレス" }
                input type="email" id=(email_id) name=(format!("email.{id}")) value=(row.email)
                    disabled[by_file] aria-describedby=[row.error.as_ref().map(|_| error_id.clone())];
                @if let Some(error) = &row.error { p.error id=(error_id) role="alert" { (error) } }
            }
            td data-label="Zoomでの確認" {
                @match (row.enabled, row.found) {
                    (true, Some(true)) => span.stored { "確認済み" },
                    (true, Some(false)) => span.error { "Zoomに存在しません" },
                    _ => "—",
                }
            }
        }
    }
}
