//! Zoom連携設定 `/admin/settings` (the seed's §2.2 steps 2–3, 6 and 7): the Zoom form
//! (「アカウントID」, 「クライアントID」, 「クライアントシークレット」, 「Zoom設定を更新」) and
//! the groupware form (「グループウェアURL」, 「グループウェア管理者ユーザーID」,
//! 「管理者モバイルパスワード」, 「管理者設定のタイムゾーン」, 「グループウェア設定を更新」).
//!
//! Saving stores the form (all or nothing, with its audit row), then runs the quick check
//! at once with clients built from the new settings (token, login, timezone: it calls Zoom
//! and J-MOTTO — the console's exception to "handlers never call the services") and shows
//! 有効 or 無効 and why. Settings too incomplete to build the clients show 無効 and what is
//! missing, without calling anything.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use maud::{Markup, html};

use super::{
    forms::{FieldKind, FieldSpec, FormState, save, settings_form},
    layout::{ConsoleError, Nav, Page},
    session::Console,
};
use crate::{
    checks::CheckResult,
    http::{AppState, status::status_view},
    jobs::Engine,
};

fn zoom_fields() -> [FieldSpec; 3] {
    [
        FieldSpec {
            key: "zoom.account_id",
            label: "アカウントID",
            kind: FieldKind::Text,
            note: Some(
                "Zoom App Marketplace › Manage › Server-to-Server OAuth アプリ › App Credentials の Account ID",
            ),
        },
        FieldSpec {
            key: "zoom.client_id",
            label: "クライアントID",
            kind: FieldKind::Text,
            note: Some("同じ画面の Client ID"),
        },
        FieldSpec {
            key: "zoom.client_secret",
            label: "クライアントシークレット",
            kind: FieldKind::Secret,
            note: Some("同じ画面の Client Secret（保存後は表示しません）"),
        },
    ]
}

fn groupware_fields() -> [FieldSpec; 4] {
    let zones = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|zone| (zone.name().to_owned(), zone.name().to_owned()))
        .collect();
    [
        FieldSpec {
            key: "groupware.base_url",
            label: "グループウェアURL",
            kind: FieldKind::Text,
            note: Some("例: https://gws44.j-motto.co.jp/cgi-bin/JM0000000/"),
        },
        FieldSpec {
            key: "groupware.admin_login_id",
            label: "グループウェア管理者ユーザーID",
            kind: FieldKind::Text,
            note: Some("J-MOTTO の管理者のログインID"),
        },
        FieldSpec {
            key: "groupware.admin_password",
            label: "管理者モバイルパスワード",
            kind: FieldKind::Secret,
            note: Some(
                "J-MOTTO TOP › プロフィール で設定するモバイルパスワード（保存後は表示しません）",
            ),
        },
        FieldSpec {
            key: "groupware.timezone",
            label: "管理者設定のタイムゾーン",
            kind: FieldKind::Select(zones),
            note: Some(
                "J-MOTTO TOP › 言語及びタイムゾーン設定 › タイムゾーン と同じものを選びます",
            ),
        },
    ]
}

const ZOOM_KEYS: [&str; 3] = crate::live::ZOOM_KEYS;
const GROUPWARE_KEYS: [&str; 4] = crate::live::GROUPWARE_KEYS;

/// Which form was posted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Zoom,
    Groupware,
}

/// `GET /admin/settings`.
pub async fn page(
    console: Console,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let zoom = FormState::current(&state, &ZOOM_KEYS).await?;
    let groupware = FormState::current(&state, &GROUPWARE_KEYS).await?;
    Ok(render(&console, &zoom, &groupware, None, StatusCode::OK))
}

/// `POST /admin/settings/zoom`: 「Zoom設定を更新」.
pub async fn save_zoom(
    console: Console,
    request: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    save_and_check(console, request, form, state, Which::Zoom).await
}

/// `POST /admin/settings/groupware`: 「グループウェア設定を更新」.
pub async fn save_groupware(
    console: Console,
    request: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    save_and_check(console, request, form, state, Which::Groupware).await
}

async fn save_and_check(
    console: Console,
    request: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<AppState>,
    which: Which,
) -> Result<HttpResponse, ConsoleError> {
    let fields = console.checked_form(form)?;
    let (name, saved) = match which {
        Which::Zoom => (
            "Zoom設定",
            save(&state, &request, "Zoom設定", &zoom_fields(), &fields).await?,
        ),
        Which::Groupware => (
            "グループウェア設定",
            save(
                &state,
                &request,
                "グループウェア設定",
                &groupware_fields(),
                &fields,
            )
            .await?,
        ),
    };
    match saved {
        Err(errors) => {
            let (zoom, groupware) = match which {
                Which::Zoom => (
                    FormState::refused(&state, &ZOOM_KEYS, &fields, errors).await?,
                    FormState::current(&state, &GROUPWARE_KEYS).await?,
                ),
                Which::Groupware => (
                    FormState::current(&state, &ZOOM_KEYS).await?,
                    FormState::refused(&state, &GROUPWARE_KEYS, &fields, errors).await?,
                ),
            };
            let notice = super::forms::refused_notice(name);
            Ok(render(
                &console,
                &zoom,
                &groupware,
                Some(notice),
                StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
        Ok(changes) => {
            let verdict = check_now(&state).await?;
            let notice = html! {
                div.notice role="status" {
                    p { (name) "を保存しました" @if changes.is_empty() { "（変更はありません）" } "。" }
                }
                (verdict)
            };
            let zoom = FormState::current(&state, &ZOOM_KEYS).await?;
            let groupware = FormState::current(&state, &GROUPWARE_KEYS).await?;
            Ok(render(
                &console,
                &zoom,
                &groupware,
                Some(notice),
                StatusCode::OK,
            ))
        }
    }
}

/// The seed's step 7: the quick check with the settings just saved, and its verdict.
async fn check_now(state: &AppState) -> Result<Markup, ConsoleError> {
    let settings = state.live.current().await?;
    let unset = settings.unset_credentials();
    let results: Vec<CheckResult> = if !unset.is_empty() {
        Vec::new()
    } else {
        match Engine::new((*settings).clone(), state.store.clone()) {
            Ok(engine) => engine.quick_check().await,
            Err(error) => {
                return Ok(html! {
                    section id="check" {
                        h2 { "確認結果" }
                        p.verdict.ng { "無効" }
                        p { "設定からクライアントを作れません: " (format!("{error:#}")) }
                    }
                });
            }
        }
    };
    let passed = unset.is_empty() && results.iter().all(|r| r.ok);
    let others = status_view(state).await?;
    Ok(html! {
        section id="check" {
            h2 { "確認結果" }
            @if passed { p.verdict.ok { "有効" } } @else { p.verdict.ng { "無効" } }
            @if !unset.is_empty() {
                p { "まだ設定されていない項目があります:" }
                ul { @for key in &unset { li { (label_of(key)) "（" (key) "）" } } }
            }
            @if !results.is_empty() {
                ul {
                    @for result in &results {
                        li {
                            (item_ja(&result.item)) ": "
                            @if result.ok { "OK" } @else { strong { "NG" } " — " (result.detail) }
                        }
                    }
                }
            }
            @if passed && !others.enabled {
                p.note { "Zoom と J-MOTTO の設定は確認できました。連携を有効にするには、残りの項目も済ませてください（「状態」を参照）。" }
            }
        }
    })
}

fn label_of(key: &str) -> &'static str {
    zoom_fields()
        .into_iter()
        .chain(groupware_fields())
        .find(|spec| spec.key == key)
        .map_or("", |spec| spec.label)
}

fn item_ja(item: &str) -> &str {
    match item {
        "Zoom token" => "Zoomのトークン取得",
        "J-MOTTO login" => "J-MOTTOへのログイン",
        "timezone" => "タイムゾーン",
        other => other,
    }
}

fn render(
    console: &Console,
    zoom: &FormState<'_>,
    groupware: &FormState<'_>,
    notice: Option<Markup>,
    status: StatusCode,
) -> HttpResponse {
    let body = html! {
        @if let Some(notice) = notice { (notice) }
        section {
            h2 { "Zoom" }
            (settings_form(console, "/admin/settings/zoom", zoom, &zoom_fields(), "Zoom設定を更新"))
        }
        section {
            h2 { "グループウェア（J-MOTTO）" }
            (settings_form(console, "/admin/settings/groupware", groupware, &groupware_fields(), "グループウェア設定を更新"))
        }
    };
    Page::new(Nav::Settings, "Zoom連携設定", body)
        .with_status(status)
        .render(console)
}
