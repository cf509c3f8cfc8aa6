//! 「ログイン」 and 「ログアウト」.
//!
//! Sign-in `/admin/login`: field 「管理者トークン」 (`server.admin_token`, compared in
//! constant time), button 「ログイン」, the CSRF token of the visitor's session. A wrong
//! token answers 401 with 「管理者トークンが正しくありません」. Rate limit: the failed
//! sign-ins of the client's address in the last minute are counted in the audit log (so the
//! limit holds across server processes); with [`MAX_FAILURES`] of them, every further
//! attempt is answered 429 until the minute has passed (those refusals are logged, not
//! counted).

use actix_session::SessionExt;
use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use maud::{Markup, html};
use secrecy::ExposeSecret;

use super::{
    FormFields, client_address, csrf, entry,
    layout::{ConsoleError, see_other},
    record_alone, session,
    session::Console,
};
use crate::{
    http::{AppState, auth::constant_time_eq},
    store::audit::{self, AuditKind},
};

/// Failed sign-ins from one address allowed within [`WINDOW`]; the next is answered 429.
pub const MAX_FAILURES: i64 = 10;
const WINDOW: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The message of a wrong token (SPEC §8).
pub const WRONG_TOKEN: &str = "管理者トークンが正しくありません";

/// `GET /admin/login`.
pub async fn form(request: HttpRequest) -> Result<HttpResponse, ConsoleError> {
    let token = session::visitor_csrf_token(&request.get_session())?;
    Ok(page(StatusCode::OK, &token, None))
}

fn page(status: StatusCode, csrf_token: &str, error: Option<&str>) -> HttpResponse {
    super::layout::bare_page(status, "ログイン", login_form(csrf_token, error))
}

fn login_form(csrf_token: &str, error: Option<&str>) -> Markup {
    html! {
        section {
            form method="post" action="/admin/login" {
                (csrf::field(csrf_token))
                div.field {
                    label for="admin_token" { "管理者トークン" }
                    @if let Some(error) = error {
                        p.error id="admin_token_error" role="alert" { (error) }
                    }
                    input type="password" id="admin_token" name="admin_token"
                        autocomplete="current-password" required;
                    p.note { "設定ファイルの server.admin_token（または環境変数 JMZ__SERVER__ADMIN_TOKEN）の値です。" }
                }
                button type="submit" { "ログイン" }
            }
        }
    }
}

/// `POST /admin/login`.
pub async fn sign_in(
    request: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let form = FormFields::new(form);
    let session = request.get_session();
    let expected = session
        .get::<String>(csrf::SESSION_KEY)
        .ok()
        .flatten()
        .unwrap_or_default();
    csrf::check(&expected, &form)?;
    let address = client_address(&request).unwrap_or_default();
    let now = chrono::Utc::now();
    let failures = audit::failed_logins_since(state.store.db(), &address, now - WINDOW).await?;
    if failures >= MAX_FAILURES {
        record_alone(
            &state.store,
            &entry(
                &request,
                AuditKind::LoginRefused,
                "試行回数の上限（1分間に10回）",
            ),
        )
        .await?;
        return Err(ConsoleError::TooManyAttempts {
            retry_after_seconds: WINDOW.num_seconds(),
        });
    }
    let given = form.get("admin_token").unwrap_or_default();
    let right = state.settings.server.admin_token.expose_secret();
    if !constant_time_eq(given.trim().as_bytes(), right.as_bytes()) {
        record_alone(&state.store, &entry(&request, AuditKind::LoginFailed, "")).await?;
        return Ok(page(StatusCode::UNAUTHORIZED, &expected, Some(WRONG_TOKEN)));
    }
    record_alone(
        &state.store,
        &entry(&request, AuditKind::LoginSucceeded, ""),
    )
    .await?;
    session::sign_in(&session)?;
    Ok(see_other("/admin/"))
}

/// `POST /admin/logout`: the session ends (its cookie is removed).
pub async fn sign_out(
    console: Console,
    request: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    console.checked_form(form)?;
    record_alone(&state.store, &entry(&request, AuditKind::Logout, "")).await?;
    console.sign_out();
    Ok(see_other("/admin/login"))
}
