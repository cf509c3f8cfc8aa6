//! ジョブ `/admin/jobs`: the queue by state (through `store::queue`, the one reading of
//! apalis's tables) — counts per kind and state, then every unfinished job with its kind,
//! user, attempts, last error and next run, grouped by state, paged.

use actix_web::{HttpResponse, web};
use chrono::DateTime;
use maud::html;
use serde::Deserialize;

use super::{
    layout::{ConsoleError, Nav, Page, pager},
    session::Console,
};
use crate::{
    http::AppState,
    store::queue::{JobListing, JobState, count_jobs, unfinished_jobs},
};

const PAGE_SIZE: i64 = 100;

#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    page: Option<i64>,
}

/// A job state as the console shows it.
pub fn job_state_ja(state: JobState) -> &'static str {
    match state {
        JobState::Pending => "実行待ち",
        JobState::Scheduled => "予約済み",
        JobState::Running => "実行中",
        JobState::Done => "完了",
        JobState::Failed => "失敗",
        JobState::Killed => "中止",
    }
}

/// A queue (`jmz.*`) as the console shows it.
fn kind_ja(queue: &str) -> String {
    let kind = match queue {
        "jmz.sync_window" => "同期（全体）",
        "jmz.fetch_slice" => "予定の読み込み（ユーザー×月）",
        "jmz.create_meeting" => "ミーティング作成",
        "jmz.update_meeting" => "ミーティング更新",
        "jmz.delete_meeting" => "ミーティング削除",
        "jmz.deliver_alert" => "通知の送信",
        other => return other.to_owned(),
    };
    kind.to_owned()
}

/// apalis stores `{"Err": "…"}` / `{"Ok": …}`; only an error is shown.
fn last_error(listing: &JobListing) -> Option<String> {
    let value: serde_json::Value =
        serde_json::from_str(listing.job.last_result.as_deref()?).ok()?;
    let error = value.get("Err")?;
    Some(
        error
            .as_str()
            .map_or_else(|| error.to_string(), str::to_owned),
    )
}

/// `GET /admin/jobs`.
pub async fn page(
    console: Console,
    query: web::Query<JobsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let settings = state.live.current().await?;
    let tz = settings.groupware.timezone;
    let pool = state.store.db();
    let counts = count_jobs(pool).await?;
    let page_number = query.page.unwrap_or(1).max(1);
    let mut jobs = unfinished_jobs(pool, PAGE_SIZE + 1, (page_number - 1) * PAGE_SIZE).await?;
    let has_next = i64::try_from(jobs.len()).unwrap_or(i64::MAX) > PAGE_SIZE;
    jobs.truncate(usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX));
    let body = html! {
        section {
            h2 { "状態ごとの件数" }
            div.table-wrap {
                table id="job-counts" {
                    thead { tr { th { "種類" } @for s in JobState::ALL { th { (job_state_ja(s)) } } } }
                    tbody {
                        @for queue in counts.by_queue_and_state().map(|(q, _, _)| q).collect::<std::collections::BTreeSet<_>>() {
                            tr {
                                td { (kind_ja(queue)) }
                                @for s in JobState::ALL {
                                    td { (counts.by_queue_and_state().filter(|(q, st, _)| *q == queue && *st == s).map(|(_, _, n)| n).sum::<i64>()) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @for s in JobState::ALL.into_iter().filter(|s| *s != JobState::Done) {
            @let in_state: Vec<&JobListing> = jobs.iter().filter(|j| j.job.state == s).collect();
            @if !in_state.is_empty() {
                section {
                    h2 { (job_state_ja(s)) }
                    div.table-wrap {
                        table {
                            thead { tr { th { "種類" } th { "ユーザー" } th { "試行" } th { "最後のエラー" } th { "次の実行" } th { "ジョブID" } } }
                            tbody {
                                @for job in in_state {
                                    tr {
                                        td { (kind_ja(&job.job.queue)) }
                                        td { (job.user.as_deref().unwrap_or("全員")) }
                                        td { (job.job.attempts) " / " (job.job.max_attempts) }
                                        td { (last_error(job).unwrap_or_else(|| "—".to_owned())) }
                                        td { (DateTime::from_timestamp(job.job.run_at, 0).map_or_else(String::new, |t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())) }
                                        td { (job.job.id) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if jobs.is_empty() { p { "未完了のジョブはありません。" } }
        (pager("/admin/jobs", "", page_number, has_next))
    };
    Ok(Page::new(Nav::Jobs, "ジョブ", body).render(&console))
}

#[cfg(test)]
mod tests {
    /// The console is in Japanese (issue 10): every queue of the product has its name on
    /// the ジョブ page (the alerts' queue was shown as `jmz.deliver_alert`).
    #[test]
    fn every_queue_has_a_japanese_name() {
        for queue in crate::jobs::queues() {
            assert_ne!(super::kind_ja(queue), queue, "{queue}");
        }
    }
}
