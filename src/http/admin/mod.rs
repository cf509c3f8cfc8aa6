//! The admin console (SPEC §8): the seed's setup screens in a browser, under `/admin/` on
//! the server's own listener.
//!
//! * Server-rendered HTML from compile-checked `maud` templates, `lang="ja"`, complete
//!   without JavaScript; one layout ([`layout`]) with the navigation; one style sheet of ours
//!   served by the binary (`/admin/static/admin.css`, `include_str!`), no CDN, no inline
//!   script or style. A sync in progress refreshes 状態 by `<meta http-equiv="refresh">`.
//! * Labels and button texts are SPEC §8's, exactly: the browser suite finds fields by
//!   label text and buttons by their text.
//! * Security: sessions in [`session`] (cookie flags, idle limit, a changed admin token ends
//!   them), CSRF tokens in [`csrf`] on every form including the sign-in, the sign-in rate
//!   limit counted in the audit log ([`login`]), [`SECURITY_HEADERS`] on every answer of the
//!   scope, and an audit row for every POST ([`crate::store::audit`]), in the transaction of
//!   the change where there is one.
//!
//! Exception to the HTTP layer's rule: the `/api` and `/webhooks` handlers never call
//! J-MOTTO or Zoom; the console's may — saving settings runs the quick check at once, the
//! ユーザー page lists J-MOTTO's users (cached in the database for a few minutes) and
//! checks the saved e-mails against Zoom. They build their clients from the live settings
//! for that request; nothing in [`super::AppState`] holds a client.

mod alerts;
mod audit;
mod csrf;
mod forms;
mod jobs;
mod layout;
mod login;
mod meetings;
mod session;
mod settings;
mod status;
mod sync_settings;
mod users;

use actix_web::{
    HttpRequest, HttpResponse, dev::HttpServiceFactory, http::header, middleware, web,
};

pub use session::SessionKey;

use crate::store::{
    Store,
    audit::{AuditEntry, AuditKind, record},
};
use layout::ConsoleError;

/// The headers of every console answer (pages, redirects, errors, the style sheet).
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
];

/// Largest form the console reads (the ユーザー page posts one row per listed user).
const FORM_LIMIT_BYTES: usize = 512 * 1024;

/// The `/admin` scope: every console route, inside the session middleware and the headers.
pub fn scope(key: &SessionKey) -> impl HttpServiceFactory + 'static {
    let mut headers = middleware::DefaultHeaders::new();
    for (name, value) in SECURITY_HEADERS {
        headers = headers.add((name, value));
    }
    web::scope("/admin")
        .app_data(
            web::FormConfig::default()
                .limit(FORM_LIMIT_BYTES)
                .error_handler(|error, _| ConsoleError::BadRequest(error.to_string()).into()),
        )
        .app_data(
            web::QueryConfig::default()
                .error_handler(|error, _| ConsoleError::BadRequest(error.to_string()).into()),
        )
        .wrap(key.middleware())
        .wrap(middleware::from_fn(session::secure_cookie_over_https))
        .wrap(headers)
        .route("", web::get().to(to_status))
        .route("/", web::get().to(status::page))
        .route("/sync-now", web::post().to(status::sync_now))
        .route("/login", web::get().to(login::form))
        .route("/login", web::post().to(login::sign_in))
        .route("/logout", web::post().to(login::sign_out))
        .route("/meetings", web::get().to(meetings::page))
        .route("/jobs", web::get().to(jobs::page))
        .route("/audit", web::get().to(audit::page))
        .route("/settings", web::get().to(settings::page))
        .route("/settings/zoom", web::post().to(settings::save_zoom))
        .route(
            "/settings/groupware",
            web::post().to(settings::save_groupware),
        )
        .route("/users", web::get().to(users::page))
        .route("/users", web::post().to(users::save))
        .route("/sync", web::get().to(sync_settings::page))
        .route("/sync", web::post().to(sync_settings::save_sync))
        .route("/alerts", web::get().to(alerts::page))
        .route("/alerts", web::post().to(alerts::save))
        .route("/alerts/test", web::post().to(alerts::send_test))
        .route("/static/admin.css", web::get().to(style_sheet))
        .default_service(web::to(not_found))
}

async fn to_status() -> HttpResponse {
    layout::see_other("/admin/")
}

async fn style_sheet() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .body(include_str!("static/admin.css"))
}

async fn not_found() -> HttpResponse {
    layout::bare_page(
        actix_web::http::StatusCode::NOT_FOUND,
        "ページが見つかりません",
        maud::html! { p { a href="/admin/" { "状態" } "へ戻る" } },
    )
}

/// A POSTed form as its (name, value) pairs, in order (a name may repeat).
pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    /// The pairs of a form body.
    pub fn new(form: web::Form<Vec<(String, String)>>) -> FormFields {
        FormFields(form.into_inner())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The client's address: the connection's peer (a proxy's `X-Forwarded-For` is not
/// trusted: anyone can send it).
pub fn client_address(request: &HttpRequest) -> Option<String> {
    request.peer_addr().map(|peer| peer.ip().to_string())
}

/// An audit entry for `request`.
fn entry(request: &HttpRequest, kind: AuditKind, detail: impl Into<String>) -> AuditEntry {
    AuditEntry {
        kind,
        address: client_address(request),
        detail: detail.into(),
    }
}

/// Writes an audit row in a transaction of its own (a POST that changes nothing else).
async fn record_alone(store: &Store, entry: &AuditEntry) -> anyhow::Result<()> {
    let mut tx = store.begin_write().await?;
    record(&mut tx, entry, chrono::Utc::now()).await?;
    tx.commit()
        .await
        .map_err(|e| anyhow::anyhow!("cannot commit the audit log: {e}"))?;
    Ok(())
}
