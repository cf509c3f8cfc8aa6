//! The console's one layout (head, navigation, main) and its error pages.
//!
//! Every page is `lang="ja"`, links only the style sheet served by the binary, and has no
//! inline script or style (the CSP of [`super::SECURITY_HEADERS`] forbids both). The
//! navigation's 「ログアウト」 is a form button (a POST carrying the CSRF token).

use actix_web::{
    HttpResponse, ResponseError,
    http::{StatusCode, header},
};
use maud::{DOCTYPE, Markup, html};

/// The pages of the navigation, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Status,
    Settings,
    Users,
    Sync,
    Alerts,
    Meetings,
    Jobs,
    Audit,
}

impl Nav {
    const ALL: [Nav; 8] = [
        Nav::Status,
        Nav::Settings,
        Nav::Users,
        Nav::Sync,
        Nav::Alerts,
        Nav::Meetings,
        Nav::Jobs,
        Nav::Audit,
    ];

    fn path(self) -> &'static str {
        match self {
            Nav::Status => "/admin/",
            Nav::Settings => "/admin/settings",
            Nav::Users => "/admin/users",
            Nav::Sync => "/admin/sync",
            Nav::Alerts => "/admin/alerts",
            Nav::Meetings => "/admin/meetings",
            Nav::Jobs => "/admin/jobs",
            Nav::Audit => "/admin/audit",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Nav::Status => "状態",
            Nav::Settings => "Zoom連携設定",
            Nav::Users => "ユーザー",
            Nav::Sync => "同期設定",
            Nav::Alerts => "通知設定",
            Nav::Meetings => "ミーティング",
            Nav::Jobs => "ジョブ",
            Nav::Audit => "監査ログ",
        }
    }
}

/// What a page's navigation needs of the session: the CSRF field of its 「ログアウト」 form
/// (implemented by the signed-in session).
pub trait SessionForms {
    fn csrf_field(&self) -> Markup;
}

/// One page of a signed-in administrator.
pub struct Page {
    pub nav: Nav,
    pub title: &'static str,
    pub body: Markup,
    /// Seconds after which the browser loads the page again (a sync in progress).
    pub refresh_seconds: Option<u32>,
    pub status: StatusCode,
}

impl Page {
    /// A 200 page.
    pub fn new(nav: Nav, title: &'static str, body: Markup) -> Page {
        Page {
            nav,
            title,
            body,
            refresh_seconds: None,
            status: StatusCode::OK,
        }
    }

    /// The page with another status (a refused form: 422).
    pub fn with_status(mut self, status: StatusCode) -> Page {
        self.status = status;
        self
    }

    /// The page as a response, with the navigation for `console`'s session.
    pub fn render(self, console: &impl SessionForms) -> HttpResponse {
        let markup = document(
            self.title,
            self.refresh_seconds,
            html! {
                header {
                    nav aria-label="メニュー" {
                        ul {
                            @for item in Nav::ALL {
                                li {
                                    @if item == self.nav {
                                        a href=(item.path()) aria-current="page" { (item.label()) }
                                    } @else {
                                        a href=(item.path()) { (item.label()) }
                                    }
                                }
                            }
                            li {
                                form method="post" action="/admin/logout" {
                                    (console.csrf_field())
                                    button type="submit" { "ログアウト" }
                                }
                            }
                        }
                    }
                }
                main {
                    h1 { (self.title) }
                    (self.body)
                }
            },
        );
        html_response(self.status, markup)
    }
}

/// `303 See Other` to `location` (after a POST, and to the sign-in).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A page without navigation (sign-in, errors).
pub fn bare_page(status: StatusCode, title: &str, body: Markup) -> HttpResponse {
    html_response(
        status,
        document(
            title,
            None,
            html! {
                main {
                    h1 { (title) }
                    (body)
                }
            },
        ),
    )
}

fn document(title: &str, refresh_seconds: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="ja" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                @if let Some(seconds) = refresh_seconds {
                    meta http-equiv="refresh" content=(seconds);
                }
                title { (title) " — jmotto-zoom 管理" }
                link rel="stylesheet" href="/admin/static/admin.css";
            }
            body { (body) }
        }
    }
}

fn html_response(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .body(markup.into_string())
}

/// Why a console request ends without its page: every variant is a Japanese page (or the
/// redirect to the sign-in), never JSON.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// A page asked for without a session: to the sign-in.
    #[error("not signed in")]
    NotSignedIn,
    /// A POST without a valid session and CSRF token: refused, nothing changed.
    #[error("the CSRF token is missing or wrong")]
    Forbidden,
    /// Too many failed sign-ins from one address within a minute.
    #[error("too many failed sign-ins")]
    TooManyAttempts { retry_after_seconds: i64 },
    /// A form or query that cannot be read.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The server's own fault (logged with its chain; the page says nothing internal).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::NotSignedIn => StatusCode::SEE_OTHER,
            ConsoleError::Forbidden => StatusCode::FORBIDDEN,
            ConsoleError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Internal(error) if crate::store::is_storage_fault(error) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            ConsoleError::NotSignedIn => see_other("/admin/login"),
            ConsoleError::Forbidden => bare_page(
                status,
                "送信を受け付けられません",
                html! {
                    p { "このフォームは無効か期限切れです（CSRFトークンがありません、または正しくありません）。何も変更していません。" }
                    p { a href="/admin/" { "管理画面を開き直して" } "、もう一度送信してください。" }
                },
            ),
            ConsoleError::TooManyAttempts {
                retry_after_seconds,
            } => {
                let mut response = bare_page(
                    status,
                    "ログインの試行回数が多すぎます",
                    html! {
                        p { "1分間にログインに失敗した回数が上限を超えました。しばらく（約" (retry_after_seconds) "秒）待ってから、もう一度お試しください。" }
                        p { a href="/admin/login" { "ログイン画面へ" } }
                    },
                );
                if let Ok(value) = header::HeaderValue::from_str(&retry_after_seconds.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            ConsoleError::BadRequest(what) => bare_page(
                status,
                "リクエストを読み取れません",
                html! { p { "送信された内容を読み取れませんでした（" (what) "）。" } },
            ),
            ConsoleError::Internal(error) => {
                tracing::error!(error = %format!("{error:#}"), "console request failed");
                let sentence = if status == StatusCode::SERVICE_UNAVAILABLE {
                    "データベースに書き込めません。ディスクの空きとデータベースファイルを確認してから、もう一度お試しください。"
                } else {
                    "サーバー内部でエラーが発生しました。詳しくはサーバーのログを確認してください。"
                };
                bare_page(status, "エラー", html! { p { (sentence) } })
            }
        }
    }
}

/// A page of a list: "前へ" / "次へ" links keeping `query` (already URL-encoded pairs).
pub fn pager(path: &str, query: &str, page: i64, has_next: bool) -> Markup {
    let link = |to: i64| {
        if query.is_empty() {
            format!("{path}?page={to}")
        } else {
            format!("{path}?{query}&page={to}")
        }
    };
    html! {
        nav.pager aria-label="ページ" {
            @if page > 1 { a href=(link(page - 1)) { "前へ" } }
            span { (page) "ページ目" }
            @if has_next { a href=(link(page + 1)) { "次へ" } }
        }
    }
}

/// A stored UTC instant shown in the administrator's timezone, `YYYY-MM-DD HH:MM`.
pub fn local_time(utc: &str, tz: chrono_tz::Tz) -> String {
    crate::store::parse_utc(utc).map_or_else(
        |_| utc.to_owned(),
        |t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
    )
}
