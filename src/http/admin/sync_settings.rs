//! 同期設定 `/admin/sync`: 「場所項目名」, 「時間変更時」 (create_new / update / replace,
//! each explained in one sentence), 「削除時」 (keep / delete), 「参加者を招待」,
//! 「定期同期の間隔（秒）」, button 「同期設定を更新」. A saved change is used by the next
//! job of every process (the settings version), without a restart.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use maud::{Markup, html};

use super::{
    forms::{FieldKind, FieldSpec, FormState, save, settings_form},
    layout::{ConsoleError, Nav, Page},
    session::Console,
};
use crate::{http::AppState, live::SYNC_KEYS};

const RESCHEDULE: [(&str, &str); 3] = [
    (
        "create_new",
        "create_new: 元のミーティングは残し、新しい日時でミーティングをもう一つ作ります（J-MOTTO標準の動き）。",
    ),
    (
        "update",
        "update: 作成済みのミーティングの日時を新しい日時に変更します（参加URLは変わりません）。",
    ),
    (
        "replace",
        "replace: 新しい日時でミーティングを作り直し、元のミーティングは削除します。",
    ),
];

const DELETE: [(&str, &str); 2] = [
    (
        "keep",
        "keep: 予定が削除されても、Zoomのミーティングは残します（J-MOTTO標準の動き）。",
    ),
    (
        "delete",
        "delete: 予定が削除されたら、Zoomのミーティングも削除します。",
    ),
];

fn options(choices: &[(&str, &str)]) -> Vec<(String, String)> {
    choices
        .iter()
        .map(|(value, text)| ((*value).to_owned(), (*text).to_owned()))
        .collect()
}

fn sync_fields() -> [FieldSpec; 5] {
    [
        FieldSpec {
            key: "sync.location",
            label: "場所項目名",
            kind: FieldKind::Text,
            note: Some(
                "スケジュール › 設定 › 場所項目設定 に登録した名前（例: ZOOM 会議）。この場所の予定だけがミーティングになります。",
            ),
        },
        FieldSpec {
            key: "sync.on_reschedule",
            label: "時間変更時",
            kind: FieldKind::Select(options(&RESCHEDULE)),
            note: None,
        },
        FieldSpec {
            key: "sync.on_delete",
            label: "削除時",
            kind: FieldKind::Select(options(&DELETE)),
            note: None,
        },
        FieldSpec {
            key: "sync.invite_members",
            label: "参加者を招待",
            kind: FieldKind::Checkbox,
            note: Some("予定の参加者をミーティングの招待者に加えます。"),
        },
        FieldSpec {
            key: "sync.poll_interval_seconds",
            label: "定期同期の間隔（秒）",
            kind: FieldKind::Number,
            note: Some("0 で定期同期なし。60〜86400 秒。"),
        },
    ]
}

/// `GET /admin/sync`.
pub async fn page(
    console: Console,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let form = FormState::current(&state, &SYNC_KEYS).await?;
    Ok(render(&console, &form, None, StatusCode::OK))
}

/// `POST /admin/sync`: 「同期設定を更新」.
pub async fn save_sync(
    console: Console,
    request: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let fields = console.checked_form(form)?;
    match save(&state, &request, "同期設定", &sync_fields(), &fields).await? {
        Ok(changes) => {
            let form = FormState::current(&state, &SYNC_KEYS).await?;
            let notice = html! {
                div.notice role="status" {
                    p { "同期設定を保存しました" @if changes.is_empty() { "（変更はありません）" } "。次のジョブから使われます。" }
                }
            };
            Ok(render(&console, &form, Some(notice), StatusCode::OK))
        }
        Err(errors) => {
            let form = FormState::refused(&state, &SYNC_KEYS, &fields, errors).await?;
            let notice = super::forms::refused_notice("同期設定");
            Ok(render(
                &console,
                &form,
                Some(notice),
                StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
    }
}

fn render(
    console: &Console,
    form: &FormState<'_>,
    notice: Option<Markup>,
    status: StatusCode,
) -> HttpResponse {
    let body = html! {
        @if let Some(notice) = notice { (notice) }
        section {
            (settings_form(console, "/admin/sync", form, &sync_fields(), "同期設定を更新"))
        }
        section {
            h2 { "選択肢の意味" }
            h3 { "時間変更時" }
            ul { @for (_, text) in RESCHEDULE { li { (text) } } }
            h3 { "削除時" }
            ul { @for (_, text) in DELETE { li { (text) } } }
        }
    };
    Page::new(Nav::Sync, "同期設定", body)
        .with_status(status)
        .render(console)
}
