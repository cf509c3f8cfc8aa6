//! ミーティング `/admin/meetings`: what `GET /api/v1/meetings` lists, as a table — 日時 in
//! the administrator's zone, 件名, ホスト, 状態, 理由 (the reason code's Japanese
//! sentence), 参加URL as a link — filtered by user, state and month (a GET form), paged.

use actix_web::{HttpResponse, web};
use chrono::{Datelike, NaiveDate};
use chrono_tz::Tz;
use maud::{Markup, html};
use serde::Deserialize;

use super::{
    layout::{ConsoleError, Nav, Page, local_time, pager},
    session::Console,
};
use crate::{
    domain::window::resolve_local,
    http::AppState,
    store::{
        MeetingRow, MeetingState,
        meetings::{MeetingFilter, list_meetings},
        utc_text,
    },
};

/// Rows per page.
const PAGE_SIZE: usize = 50;

/// The filters (empty fields of the GET form count as absent).
#[derive(Debug, Default, Deserialize)]
pub struct MeetingsQuery {
    user: Option<String>,
    state: Option<String>,
    /// `YYYY-MM`.
    month: Option<String>,
    page: Option<i64>,
}

/// A meeting state (an API name) as the console shows it.
pub fn meeting_state_ja(state: &str) -> &'static str {
    match state {
        "created" => "作成済み",
        "pending" => "作成待ち",
        "deferred" => "保留中",
        "failed" => "失敗",
        "skipped" => "対象外",
        "superseded" => "置き換え済み",
        "deleted" => "削除済み",
        _ => "不明",
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The local month `YYYY-MM` as [from, to) in UTC text.
fn month_bounds(month: &str, tz: Tz) -> Option<(String, String)> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)?
    };
    let midnight =
        |date: NaiveDate| utc_text(resolve_local(date.and_time(chrono::NaiveTime::MIN), tz));
    Some((midnight(first), midnight(next)))
}

/// `GET /admin/meetings`.
pub async fn page(
    console: Console,
    query: web::Query<MeetingsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let settings = state.live.current().await?;
    let tz = settings.groupware.timezone;
    let user = non_empty(&query.user);
    let state_name = non_empty(&query.state).filter(|s| MeetingState::API_STATES.contains(s));
    let month = non_empty(&query.month);
    let bounds = month.and_then(|m| month_bounds(m, tz));
    let bad_month = month.is_some() && bounds.is_none();
    let states = state_name.map(|name| {
        if name == MeetingState::Pending.api_str() {
            vec![
                MeetingState::Pending.as_str(),
                MeetingState::Creating.as_str(),
            ]
        } else {
            MeetingState::API_STATES
                .iter()
                .copied()
                .filter(|s| *s == name)
                .collect()
        }
    });
    let (from, to) = bounds.unzip();
    let filter = MeetingFilter {
        user: user.map(str::to_owned),
        states,
        from,
        to,
    };
    let rows = list_meetings(state.store.db(), &filter).await?;
    let page_number = query.page.unwrap_or(1).max(1);
    let skip = usize::try_from(page_number - 1)
        .unwrap_or(0)
        .saturating_mul(PAGE_SIZE);
    let shown: Vec<&MeetingRow> = rows.iter().skip(skip).take(PAGE_SIZE).collect();
    let has_next = rows.len() > skip + PAGE_SIZE;
    let users: Vec<String> = settings
        .users
        .iter()
        .map(|u| u.groupware_id.to_string())
        .collect();
    let kept_query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("user", user.unwrap_or_default()),
            ("state", state_name.unwrap_or_default()),
            ("month", month.unwrap_or_default()),
        ])
        .finish();
    let body = html! {
        form.filters method="get" action="/admin/meetings" {
            div.field {
                label for="filter_user" { "ユーザー" }
                select id="filter_user" name="user" {
                    option value="" { "すべて" }
                    @for id in &users {
                        option value=(id) selected[user == Some(id.as_str())] { (id) }
                    }
                }
            }
            div.field {
                label for="filter_state" { "状態" }
                select id="filter_state" name="state" {
                    option value="" { "すべて" }
                    @for name in MeetingState::API_STATES {
                        option value=(name) selected[state_name == Some(name)] { (meeting_state_ja(name)) }
                    }
                }
            }
            div.field {
                label for="filter_month" { "月" }
                input type="month" id="filter_month" name="month" value=(month.unwrap_or_default()) placeholder="2026-12";
                @if bad_month { p.error { "月は YYYY-MM の形で入力してください（この条件は使っていません）。" } }
            }
            div.field { button type="submit" { "絞り込む" } }
        }
        p { (rows.len()) "件" }
        div.table-wrap {
            table.stack id="meetings" {
                thead { tr { th { "日時" } th { "件名" } th { "ホスト" } th { "状態" } th { "理由" } th { "参加URL" } } }
                tbody {
                    @for row in &shown { (meeting_row(row, tz)) }
                }
            }
        }
        (pager("/admin/meetings", &kept_query, page_number, has_next))
    };
    Ok(Page::new(Nav::Meetings, "ミーティング", body).render(&console))
}

fn meeting_row(row: &MeetingRow, tz: Tz) -> Markup {
    let start = local_time(&row.start_utc, tz);
    let end = local_time(&row.end_utc, tz);
    let end_shown = match (start.split_once(' '), end.split_once(' ')) {
        (Some((start_day, _)), Some((end_day, end_time))) if start_day == end_day => {
            end_time.to_owned()
        }
        _ => end.clone(),
    };
    html! {
        tr {
            td data-label="日時" { (start) "–" (end_shown) }
            td data-label="件名" { (row.topic) }
            td data-label="ホスト" { (row.host_email.as_deref().or(row.host_user_id.as_deref()).unwrap_or("—")) }
            td data-label="状態" { (meeting_state_ja(row.state().api_str())) }
            td data-label="理由" { @if let Some(reason) = &row.reason { (reason.sentence_ja()) } @else { "—" } }
            td data-label="参加URL" {
                @if let Some(url) = row.join_url.as_deref().filter(|u| u.starts_with("https://") || u.starts_with("http://")) {
                    a href=(url) rel="noopener noreferrer" target="_blank" { (url) }
                } @else { "—" }
            }
        }
    }
}
