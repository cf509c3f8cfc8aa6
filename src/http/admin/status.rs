//! 状態 `/admin/`: 有効 or 無効 in large type (R-ENABLED, as `GET /api/v1/status` computes
//! it), each failing part with what to do, the window, the queue, each enabled user's last
//! sync and last error; 「今すぐ同期」 queues a full resync (as `POST /api/v1/sync`) with its
//! audit row in the same transaction, then the page follows that run (`?run=<job id>`) and
//! reloads itself every few seconds until the queue is idle.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    entry,
    jobs::job_state_ja,
    layout::{ConsoleError, Nav, Page, local_time, see_other},
    meetings::meeting_state_ja,
    session::Console,
};
use crate::{
    checks,
    http::{
        AppState, RequestId,
        status::{StatusView, status_view},
    },
    store::{alerts as alert_store, audit::AuditKind, queue::JobState, receiver, sync_state},
};

/// Seconds between reloads while a sync runs.
const REFRESH_SECONDS: u32 = 3;

/// How many failing alert deliveries 状態 lists.
const TROUBLED_DELIVERIES_SHOWN: i64 = 20;

#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    /// The job id of the sync started from this page.
    run: Option<String>,
}

/// `GET /admin/`.
pub async fn page(
    console: Console,
    query: web::Query<StatusQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let view = status_view(&state).await?;
    let settings = state.live.current().await?;
    let checks = receiver::checks(state.store.db()).await?;
    let reasons_ja = checks::disabled_reasons_ja(&settings, &checks);
    let progress = match &query.run {
        Some(run) => Some(run_progress(&state, run).await?),
        None => None,
    };
    let active = progress.as_ref().is_some_and(|p| p.active);
    let alerts = alerts_section(&state, settings.groupware.timezone).await?;
    let body = html! {
        section aria-labelledby="verdict-heading" {
            h2 id="verdict-heading" { "Zoom連携" }
            @if view.enabled {
                p.verdict.ok id="verdict" { "有効" }
            } @else {
                p.verdict.ng id="verdict" { "無効" }
                (what_to_do(&view, &reasons_ja))
            }
        }
        section {
            h2 { "同期" }
            form method="post" action="/admin/sync-now" {
                (console.csrf_field())
                p.note { "有効なすべてのユーザーの予定を、いまから読み直します。" }
                button type="submit" { "今すぐ同期" }
            }
            @if let Some(progress) = &progress { (progress.markup.clone()) }
        }
        (alerts)
        (overview(&view))
    };
    let mut page = Page::new(Nav::Status, "状態", body);
    if active {
        page.refresh_seconds = Some(REFRESH_SECONDS);
    }
    Ok(page.render(&console))
}

/// The failing parts of R-ENABLED, each with where to fix it
/// ([`checks::disabled_reasons_ja`]), and the API's own wording folded below.
fn what_to_do(view: &StatusView, reasons_ja: &[String]) -> Markup {
    html! {
        h3 { "有効にするには" }
        ul id="reasons" {
            @for reason in reasons_ja { li { (reason) } }
        }
        details {
            summary { "詳細（API と同じ理由）" }
            ul { @for reason in &view.reasons { li { (reason) } } }
        }
    }
}

fn overview(view: &StatusView) -> Markup {
    html! {
        section {
            h2 { "同期の範囲" }
            p id="window" { (minute_text(&view.window.from)) " から " (minute_text(&view.window.to)) " の前まで（管理者設定のタイムゾーン）" }
        }
        section {
            h2 { "ジョブ" }
            dl id="queue" {
                dt { "実行待ち" } dd { (view.queue.pending) }
                dt { "実行中" } dd { (view.queue.running) }
                dt { "予約済み" } dd { (view.queue.scheduled) }
                dt { "失敗" } dd { (view.queue.failed) }
            }
            p { a href="/admin/jobs" { "ジョブの一覧" } }
        }
        section {
            h2 { "ミーティング" }
            @if view.meetings.is_empty() {
                p { "まだありません。" }
            } @else {
                dl {
                    @for (state, count) in &view.meetings {
                        dt { (meeting_state_ja(state)) } dd { (count) }
                    }
                }
            }
        }
        section {
            h2 { "連携ユーザー" }
            div.table-wrap {
                table id="users" {
                    thead { tr { th { "ユーザーID" } th { "Zoomメールアドレス" } th { "最終同期" } th { "最終エラー" } } }
                    tbody {
                        @for user in view.users.iter().filter(|u| u.enabled) {
                            tr {
                                td { (user.groupware_id) }
                                td { (user.zoom_email) }
                                td { (user.last_sync_at.as_deref().map_or_else(|| "—".to_owned(), minute_text)) }
                                td { (last_error_cell(user.last_error.as_deref())) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A user's last error in Japanese (its meaning), with J-MOTTO's own words folded away
/// under 詳細; 「なし」 when there is none.
fn last_error_cell(error: Option<&str>) -> Markup {
    let Some(error) = error else {
        return html! { "なし" };
    };
    match crate::groupware::GroupwareError::explain_ja(error) {
        Some(meaning) => html! {
            (meaning)
            details { summary { "詳細" } code { (error) } }
        },
        None => html! { (error) },
    }
}

/// SPEC §10 on 状態: the open alert conditions and the alert deliveries that keep failing
/// (each with its last error, never a secret), or nothing when there are neither.
async fn alerts_section(state: &AppState, tz: chrono_tz::Tz) -> anyhow::Result<Markup> {
    let pool = state.store.db();
    let open = alert_store::open_conditions(pool).await?;
    let troubled = alert_store::troubled_deliveries(pool, TROUBLED_DELIVERIES_SHOWN).await?;
    if open.is_empty() && troubled.is_empty() {
        return Ok(html! {});
    }
    Ok(html! {
        section id="alerts" {
            h2 { "通知" }
            @if !open.is_empty() {
                h3 { "続いている問題" }
                ul id="open-conditions" {
                    @for condition in &open {
                        li {
                            (condition_ja(&condition.kind))
                            @if !condition.subject.is_empty() { "（" (condition.subject) "）" }
                            " — " (local_time(&condition.opened_at, tz)) " から"
                        }
                    }
                }
            }
            @if !troubled.is_empty() {
                h3 { "送信できていない通知" }
                p.note { "再試行中のものは自動で送り直します。失敗したままのものは " a href="/admin/alerts" { "通知設定" } " を確認してください。" }
                div.table-wrap {
                    table id="alert-deliveries" {
                        thead { tr { th { "通知" } th { "送信先" } th { "状態" } th { "試行" } th { "最後のエラー" } th { "更新" } } }
                        tbody {
                            @for delivery in &troubled {
                                tr {
                                    td { (condition_ja(&delivery.condition.kind)) @if delivery.event == "cleared" { "（解消）" } }
                                    td { (if delivery.channel == "email" { "メール" } else { "Webhook" }) }
                                    td { (if delivery.state == "failed" { "送信失敗" } else { "再試行中" }) }
                                    td { (delivery.attempts) }
                                    td { (delivery.last_error.as_deref().unwrap_or("—")) }
                                    td { (local_time(&delivery.updated_at, tz)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// An alert condition's type (SPEC §10) in Japanese.
fn condition_ja(kind: &str) -> &str {
    match kind {
        "integration.disabled" => "Zoom連携が無効",
        "user.unreadable" => "スケジュールを参照できないユーザー",
        "user.zoom_unknown" => "Zoomに存在しないユーザー",
        "meetings.failed" => "作成できなかった会議",
        "host.daily_limit" => "ホストの1日の上限",
        "test" => "テスト送信",
        other => other,
    }
}

/// `2026-11-01T00:00:00+09:00` as `2026-11-01 00:00` (the window's bounds, a user's last
/// sync: both already in the administrator's timezone).
fn minute_text(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or_else(
        |_| rfc3339.to_owned(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// A sync started from this page: its job, its slices, and whether it still runs.
struct Progress {
    markup: Markup,
    active: bool,
}

async fn run_progress(state: &AppState, run: &str) -> anyhow::Result<Progress> {
    let Some(job) = sync_state::job(state.store.db(), run).await? else {
        return Ok(Progress {
            markup: html! { p.notice { "同期ジョブ " (run) " は見つかりません（完了後に整理された可能性があります）。" } },
            active: false,
        });
    };
    let slices = sync_state::slice_progress(state.store.db(), run).await?;
    let queue = sync_state::queue_counts(state.store.db()).await?;
    let job_running = matches!(
        job.state,
        JobState::Pending | JobState::Scheduled | JobState::Running
    );
    let active = job_running || !queue.is_idle();
    let count = |name: &str| slices.get(name).copied().unwrap_or(0);
    let total: i64 = slices.values().sum();
    let markup = html! {
        div.notice id="progress" role="status" {
            @if active {
                p { strong { "同期中です。" } "このページは" (REFRESH_SECONDS) "秒ごとに更新されます。" }
            } @else {
                p { strong { "同期が終わりました。" } }
            }
            p { "同期ジョブ: " (job_state_ja(job.state)) "（" (job.id) "）" }
            @if total > 0 {
                p { "ユーザー×月の読み込み: 完了 " (count("done")) " / 失敗 " (count("failed")) " / 全 " (total) }
            }
            p { "ジョブ: 実行待ち " (queue.pending) "、実行中 " (queue.running) "、予約済み " (queue.scheduled) }
            @if !active { p { a href="/admin/meetings" { "ミーティングを見る" } } }
        }
    };
    Ok(Progress { markup, active })
}

/// `POST /admin/sync-now`: 「今すぐ同期」.
pub async fn sync_now(
    console: Console,
    request: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    console.checked_form(form)?;
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    let job_id = state
        .queue
        .enqueue_manual_audited(
            request_id,
            entry(&request, AuditKind::ManualSync, "有効なすべてのユーザー"),
        )
        .await?;
    Ok(see_other(&format!("/admin/?run={job_id}")))
}
