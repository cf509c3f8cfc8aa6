//! 監査ログ `/admin/audit`: every console POST (sign-ins with the client's address, saved
//! changes, manual syncs, sign-outs), newest first, paged; never pruned.

use actix_web::{HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::{
    layout::{ConsoleError, Nav, Page, local_time, pager},
    session::Console,
};
use crate::{http::AppState, store::audit};

const PAGE_SIZE: i64 = 100;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    page: Option<i64>,
}

/// `GET /admin/audit`.
pub async fn page(
    console: Console,
    query: web::Query<AuditQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let settings = state.live.current().await?;
    let tz = settings.groupware.timezone;
    let pool = state.store.db();
    let page_number = query.page.unwrap_or(1).max(1);
    let total = audit::count(pool).await?;
    let rows = audit::page(pool, (page_number - 1) * PAGE_SIZE, PAGE_SIZE).await?;
    let has_next = page_number * PAGE_SIZE < total;
    let body = html! {
        p { "全" (total) "件（新しい順）" }
        div.table-wrap {
            table id="audit" {
                thead { tr { th { "日時" } th { "操作" } th { "アドレス" } th { "内容" } } }
                tbody {
                    @for row in &rows {
                        tr {
                            td { (local_time(&row.at, tz)) }
                            td { (row.kind.label_ja()) }
                            td { (row.address.as_deref().unwrap_or("—")) }
                            td { (row.detail) }
                        }
                    }
                }
            }
        }
        (pager("/admin/audit", "", page_number, has_next))
    };
    Ok(Page::new(Nav::Audit, "監査ログ", body).render(&console))
}
