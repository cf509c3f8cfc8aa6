//! The admin console (SPEC §8) over HTTP, as a browser without JavaScript uses it: a cookie
//! jar of one cookie, forms posted with their CSRF token, redirects not followed (so each
//! step's status and headers are seen).

use jmotto_zoom::{
    cli::demo::DEMO_ADMIN_TOKEN, replay::company, secrets::SecretKey, store::settings as stored,
};
use reqwest::{StatusCode, header::HeaderMap};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// Every console page (the sign-in and the style sheet are open to all).
const PAGES: [&str; 8] = [
    "/admin/",
    "/admin/settings",
    "/admin/users",
    "/admin/sync",
    "/admin/alerts",
    "/admin/meetings",
    "/admin/jobs",
    "/admin/audit",
];

/// A browser: one cookie (the session), no redirects followed.
pub(crate) struct Browser {
    http: reqwest::Client,
    address: String,
    cookie: Option<String>,
    /// The last `Set-Cookie` of the session cookie, whole.
    last_set_cookie: Option<String>,
}

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The page's CSRF token (the hidden field of its forms).
    pub(crate) fn csrf_token(&self) -> String {
        let marker = r#"name="csrf_token" value=""#;
        let start = self.body.find(marker).expect("a CSRF field") + marker.len();
        let end = self.body[start..].find('"').expect("end of the token") + start;
        self.body[start..end].to_owned()
    }
}

impl Browser {
    pub(crate) fn new(app: &TestApp) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            address: app.address.clone(),
            cookie: None,
            last_set_cookie: None,
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let request = match &self.cookie {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        };
        let response = request.send().await.expect("answer");
        let status = response.status();
        let headers = response.headers().clone();
        for value in headers.get_all("set-cookie") {
            let text = value.to_str().expect("ASCII cookie").to_owned();
            let pair = text.split(';').next().unwrap_or_default().trim().to_owned();
            if let Some(value) = pair.strip_prefix("jmz_admin=") {
                self.cookie =
                    (!value.is_empty() && !text.contains("Max-Age=0")).then(|| pair.clone());
                self.last_set_cookie = Some(text);
            }
        }
        let body = response.text().await.expect("body");
        Answer {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Answer {
        let request = self.http.get(format!("{}{path}", self.address));
        self.send(request).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let request = self.http.post(format!("{}{path}", self.address)).form(form);
        self.send(request).await
    }

    /// Signs in with `token`; the answer to the POST.
    async fn sign_in_with(&mut self, token: &str) -> Answer {
        let form = self.get("/admin/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.csrf_token();
        self.post(
            "/admin/login",
            &[("csrf_token", csrf.as_str()), ("admin_token", token)],
        )
        .await
    }

    /// Signs in with the right token; the CSRF token of the session.
    pub(crate) async fn sign_in(&mut self) -> String {
        let answer = self.sign_in_with(DEMO_ADMIN_TOKEN).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        assert_eq!(answer.location(), "/admin/");
        let page = self.get("/admin/").await;
        assert_eq!(page.status, StatusCode::OK);
        page.csrf_token()
    }
}

pub(crate) async fn audit_rows(app: &TestApp) -> Vec<(String, Option<String>, String)> {
    jmotto_zoom::store::db::query("SELECT kind, address, detail FROM audit_log ORDER BY id")
        .fetch_all(app.engine.store.db())
        .await
        .expect("audit rows")
}

/// The demo app with every console key left to the console (as if the file set only
/// `[database]` and `[server]`, with `server.secret_key`).
pub(crate) async fn spawn_console_app() -> TestApp {
    spawn_app_with(|settings| {
        settings.file_keys.clear();
        settings.server.secret_key = Some(SecretKey::generate());
    })
    .await
}

/// SPEC §8 sign-in: a wrong token shows the message with 401; the right one leads to
/// `/admin/` with a new session cookie (HttpOnly, SameSite=Strict, Path=/admin; not Secure
/// over plain http); both are in the audit log with the client's address.
#[tokio::test]
async fn sign_in_wrong_then_right() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let login = browser.get("/admin/login").await;
    assert!(
        login
            .body
            .contains(r#"<label for="admin_token">管理者トークン</label>"#)
    );
    assert!(
        login
            .body
            .contains(r#"<button type="submit">ログイン</button>"#)
    );
    let wrong = browser.sign_in_with("not-the-token").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("管理者トークンが正しくありません"));
    let visitor_cookie = browser.cookie.clone();
    let right = browser.sign_in_with(DEMO_ADMIN_TOKEN).await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);
    assert_eq!(right.location(), "/admin/");
    assert_ne!(
        browser.cookie, visitor_cookie,
        "the session is renewed at sign-in"
    );
    let flags = browser.last_set_cookie.clone().expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(flags.contains(flag), "{flag} in {flags}");
    }
    assert!(!flags.contains("Secure"), "plain http: {flags}");
    let status = browser.get("/admin/").await;
    assert_eq!(status.status, StatusCode::OK);
    assert!(status.body.contains("有効") || status.body.contains("無効"));
    assert!(
        status
            .body
            .contains(r#"<button type="submit">今すぐ同期</button>"#)
    );
    let rows = audit_rows(&app).await;
    let kinds: Vec<&str> = rows.iter().map(|(kind, _, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["login_failed", "login_ok"]);
    assert!(
        rows.iter()
            .all(|(_, address, _)| address.as_deref() == Some("127.0.0.1"))
    );
    let audit_page = browser.get("/admin/audit").await;
    assert!(audit_page.body.contains("ログイン失敗") && audit_page.body.contains("127.0.0.1"));
}

/// SPEC §8: from the 11th failed sign-in in a minute from one address on, 429 — even with
/// the right token.
#[tokio::test]
async fn the_eleventh_failed_sign_in_in_a_minute_is_429() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    for attempt in 1..=10 {
        let answer = browser.sign_in_with("wrong").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let eleventh = browser.sign_in_with("wrong").await;
    assert_eq!(eleventh.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(eleventh.body.contains("試行回数"));
    assert_eq!(eleventh.headers["retry-after"], "60");
    let right = browser.sign_in_with(DEMO_ADMIN_TOKEN).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(browser.get("/admin/").await.status == StatusCode::SEE_OTHER);
}

/// SPEC §8: a POST without a valid CSRF token is refused (403, in Japanese) and changes
/// nothing: no job, no setting, no audit row.
#[tokio::test]
async fn a_post_without_a_valid_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_console_app().await;
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in().await;
    let rows_before = audit_rows(&app).await.len();
    let version_before = stored::version(app.engine.store.db())
        .await
        .expect("version");
    let cases: [(&str, Vec<(&str, &str)>); 4] = [
        ("/admin/sync-now", vec![]),
        ("/admin/sync-now", vec![("csrf_token", "forged")]),
        (
            "/admin/sync",
            vec![
                ("sync.on_reschedule", "update"),
                ("sync.location", "ZOOM 会議"),
            ],
        ),
        (
            "/admin/settings/zoom",
            vec![("csrf_token", ""), ("zoom.account_id", "evil")],
        ),
    ];
    for (path, form) in cases {
        let answer = browser.post(path, &form).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path} {form:?}");
        assert!(answer.body.contains("何も変更していません"), "{path}");
    }
    let mut stranger = Browser::new(&app);
    let answer = stranger
        .post("/admin/sync-now", &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(
        answer.status,
        StatusCode::FORBIDDEN,
        "no session, no valid token"
    );
    let login_without = stranger
        .post("/admin/login", &[("admin_token", DEMO_ADMIN_TOKEN)])
        .await;
    assert_eq!(login_without.status, StatusCode::FORBIDDEN);
    // No sync was started (an `integration.disabled` alert may be queued: no user yet).
    assert_eq!(app.jobs_in(Some("jmz.sync_window")).await, 0);
    assert_eq!(audit_rows(&app).await.len(), rows_before);
    assert_eq!(
        stored::version(app.engine.store.db())
            .await
            .expect("version"),
        version_before
    );
}

/// SPEC §8: every page sends the CSP without inline scripts and `X-Frame-Options: DENY`;
/// `lang="ja"`, no script; a visitor without a session is led to the sign-in.
#[tokio::test]
async fn every_page_sends_csp_and_frame_headers_and_needs_a_session() {
    let app = spawn_console_app().await;
    let mut visitor = Browser::new(&app);
    for path in PAGES {
        let answer = visitor.get(path).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(answer.location(), "/admin/login", "{path}");
        assert_eq!(answer.headers["content-security-policy"], CSP, "{path}");
    }
    let mut browser = Browser::new(&app);
    browser.sign_in().await;
    for path in PAGES
        .iter()
        .chain(&["/admin/login", "/admin/static/admin.css"])
    {
        let answer = browser.get(path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        assert_eq!(answer.headers["content-security-policy"], CSP, "{path}");
        assert_eq!(answer.headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(answer.headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(answer.headers["cache-control"], "no-store", "{path}");
        if path.ends_with(".css") {
            continue;
        }
        assert!(answer.body.contains(r#"<html lang="ja">"#), "{path}");
        assert!(!answer.body.contains("<script"), "{path}");
        assert!(!answer.body.contains(" style="), "{path}");
    }
}

/// 「今すぐ同期」 queues a full resync with its audit row; the page follows the run, reloading
/// itself until it ends; 「ログアウト」 ends the session.
#[tokio::test]
async fn sync_now_is_audited_and_followed_and_logout_ends_the_session() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in().await;
    let answer = browser
        .post("/admin/sync-now", &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let run_page = answer.location().to_owned();
    let job_id = run_page
        .strip_prefix("/admin/?run=")
        .expect("the run's page")
        .to_owned();
    let rows = audit_rows(&app).await;
    let (kind, _, detail) = rows.last().expect("a row");
    assert_eq!(kind, "sync");
    assert!(detail.contains(&job_id), "{detail}");
    app.settle().await;
    let page = browser.get(&run_page).await;
    assert!(page.body.contains("同期が終わりました"), "{}", page.body);
    assert!(!page.body.contains("http-equiv=\"refresh\""));
    // R-ACCESS: the fixture's user 10005 does not share its schedule; 最終エラー says so in
    // Japanese, J-MOTTO's own words folded under 詳細.
    assert!(
        page.body
            .contains("このユーザーのスケジュールを参照する権限がありません"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<summary>詳細</summary><code>J-MOTTO refused to show user 10005")
    );
    // 最終同期 to the minute, as the window's bounds are (not the stored RFC 3339 text).
    let users = page.body.split("id=\"users\"").nth(1).unwrap_or_default();
    assert!(!users.contains("+09:00"), "{users}");
    assert!(users.contains("<td>2026-"), "{users}");
    let meetings = browser.get("/admin/meetings").await;
    assert!(meetings.body.contains("https://"), "join URLs are listed");
    assert!(meetings.body.contains("作成済み"));
    let logout = browser
        .post("/admin/logout", &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER);
    assert!(browser.cookie.is_none(), "the cookie is removed");
    let kinds: Vec<String> = audit_rows(&app)
        .await
        .into_iter()
        .map(|(k, _, _)| k)
        .collect();
    assert_eq!(kinds.last().map(String::as_str), Some("logout"));
    assert_eq!(browser.get("/admin/").await.status, StatusCode::SEE_OTHER);
}

/// SPEC §8 Zoom連携設定: saving stores the fields, shows 「設定済み」 beside the empty secret
/// field, never shows the secret (page, audit log), stores it sealed, and runs the quick check
/// at once (有効 against the replays).
#[tokio::test]
async fn saving_zoom_settings_stores_them_and_never_echoes_the_secret() {
    let app = spawn_console_app().await;
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in().await;
    let page = browser.get("/admin/settings").await;
    for label in [
        "アカウントID",
        "クライアントID",
        "クライアントシークレット",
        "グループウェアURL",
        "グループウェア管理者ユーザーID",
        "管理者モバイルパスワード",
        "管理者設定のタイムゾーン",
    ] {
        assert!(page.body.contains(&format!(">{label}</label>")), "{label}");
    }
    assert!(
        page.body
            .contains(r#"<option value="Asia/Tokyo" selected>"#)
    );
    let saved = browser
        .post(
            "/admin/settings/zoom",
            &[
                ("csrf_token", csrf.as_str()),
                ("zoom.account_id", company::ZOOM_ACCOUNT_ID),
                ("zoom.client_id", company::ZOOM_CLIENT_ID),
                ("zoom.client_secret", company::ZOOM_CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert!(saved.body.contains("設定済み"));
    assert!(!saved.body.contains(company::ZOOM_CLIENT_SECRET));
    assert!(saved.body.contains("確認結果"));
    assert!(
        saved.body.contains("<p class=\"verdict ok\">有効</p>"),
        "{}",
        saved.body
    );
    let values = stored::load(app.engine.store.db())
        .await
        .expect("stored")
        .values;
    assert_eq!(values["zoom.account_id"], company::ZOOM_ACCOUNT_ID);
    assert_ne!(values["zoom.client_secret"], company::ZOOM_CLIENT_SECRET);
    assert!(!values["zoom.client_secret"].contains(company::ZOOM_CLIENT_SECRET));
    let again = browser.get("/admin/settings").await;
    assert!(again.body.contains("設定済み"));
    assert!(!again.body.contains(company::ZOOM_CLIENT_SECRET));
    let rows = audit_rows(&app).await;
    let (kind, _, detail) = rows.last().expect("a row");
    assert_eq!(kind, "settings");
    assert!(detail.contains("zoom.client_secret: 変更"), "{detail}");
    assert!(!detail.contains(company::ZOOM_CLIENT_SECRET));
}

/// SPEC §8: a value that cannot be right is refused with a sentence beside its field (422)
/// and nothing of that form is stored.
#[tokio::test]
async fn a_refused_field_is_shown_beside_it_and_nothing_of_the_form_is_stored() {
    let app = spawn_console_app().await;
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in().await;
    let refused = browser
        .post(
            "/admin/settings/groupware",
            &[
                ("csrf_token", csrf.as_str()),
                ("groupware.base_url", "not a url"),
                ("groupware.admin_login_id", "someone-else"),
                ("groupware.admin_password", ""),
                ("groupware.timezone", "Asia/Tokyo"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let label = refused
        .body
        .find(">グループウェアURL</label>")
        .expect("the field");
    let error = refused
        .body
        .find(r#"id="groupware_base_url_error""#)
        .expect("its error");
    let input = refused
        .body
        .find(r#"id="groupware_base_url""#)
        .expect("its input");
    assert!(
        label < error && error < input,
        "the sentence is beside its field"
    );
    assert!(
        refused.body.contains("someone-else"),
        "the typed values are kept"
    );
    let values = stored::load(app.engine.store.db())
        .await
        .expect("stored")
        .values;
    assert!(values.is_empty(), "{values:?}");
}

/// SPEC §8 ユーザー: J-MOTTO's users listed with 「連携」 and 「Zoomメールアドレス」 per row;
/// after saving, each enabled user's e-mail is checked against Zoom: 「確認済み」 or
/// 「Zoomに存在しません」. 「検索」 filters.
#[tokio::test]
async fn the_users_page_saves_and_checks_each_enabled_email() {
    let app = spawn_console_app().await;
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in().await;
    let page = browser.get("/admin/users").await;
    assert_eq!(page.status, StatusCode::OK);
    for name in ["田中 花子", "鈴木 一郎", "伊藤 美咲"] {
        assert!(page.body.contains(name), "{name}");
    }
    assert!(
        page.body
            .contains(r#"<label class="visually-hidden" for="enabled_10002">連携</label>"#)
    );
    assert!(page.body.contains(
        r#"<label class="visually-hidden" for="email_10002">Zoomメールアドレス</label>"#
    ));
    let found = browser.get("/admin/users?q=%E7%B7%8F%E5%8B%99").await; // 総務
    assert!(found.body.contains("伊藤 美咲") && !found.body.contains("田中 花子"));
    let saved = browser
        .post(
            "/admin/users",
            &[
                ("csrf_token", csrf.as_str()),
                ("user", "10002"),
                ("enabled.10002", "true"),
                ("email.10002", "tanaka@example.co.jp"),
                ("user", "10003"),
                ("enabled.10003", "true"),
                ("email.10003", "nobody@example.co.jp"),
                ("user", "10004"),
                ("email.10004", ""),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert!(saved.body.contains("確認済み"));
    assert!(saved.body.contains("Zoomに存在しません"));
    let users = stored::load(app.engine.store.db())
        .await
        .expect("stored")
        .users;
    assert_eq!(users.len(), 2, "{users:?}");
    let refused = browser
        .post(
            "/admin/users",
            &[
                ("csrf_token", csrf.as_str()),
                ("user", "10005"),
                ("enabled.10005", "true"),
                ("email.10005", "not-an-email"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains(r#"id="email_10005_error""#));
    let users_after = stored::load(app.engine.store.db())
        .await
        .expect("stored")
        .users;
    assert_eq!(users_after, users);
}

/// SPEC §8 同期設定: the five fields and their button; a saved policy is stored and shown.
#[tokio::test]
async fn sync_settings_are_saved() {
    let app = spawn_console_app().await;
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in().await;
    let page = browser.get("/admin/sync").await;
    for label in [
        "場所項目名",
        "時間変更時",
        "削除時",
        "参加者を招待",
        "定期同期の間隔（秒）",
    ] {
        assert!(page.body.contains(&format!(">{label}</label>")), "{label}");
    }
    assert!(
        page.body
            .contains(r#"<button type="submit">同期設定を更新</button>"#)
    );
    let saved = browser
        .post(
            "/admin/sync",
            &[
                ("csrf_token", csrf.as_str()),
                ("sync.location", "ZOOM 会議"),
                ("sync.on_reschedule", "update"),
                ("sync.on_delete", "keep"),
                ("sync.poll_interval_seconds", "0"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert!(saved.body.contains(r#"<option value="update" selected>"#));
    let values = stored::load(app.engine.store.db())
        .await
        .expect("stored")
        .values;
    assert_eq!(values["sync.on_reschedule"], "update");
    assert_eq!(values["sync.invite_members"], "false");
}

/// SPEC §8: a company of 1,000 users stays usable — the page lists 50 of them from the
/// stored copy of J-MOTTO's list (no J-MOTTO call while it is fresh), and 「検索」 narrows.
#[tokio::test]
async fn a_thousand_users_are_paged_from_the_stored_list() {
    use jmotto_zoom::store::directory::{self, DirectoryUser};
    let app = spawn_console_app().await;
    let users: Vec<DirectoryUser> = (0..1000)
        .map(|n| DirectoryUser {
            groupware_id: format!("{}", 20_000 + n),
            login_id: format!("user{n:04}"),
            name: format!("社員 {n:04}"),
            organization: if n % 10 == 0 {
                "経理部"
            } else {
                "営業部"
            }
            .to_owned(),
            email: format!("user{n:04}@example.co.jp"),
        })
        .collect();
    let mut tx = app.engine.store.begin_write().await.expect("write");
    directory::replace_all(&mut tx, &users, chrono::Utc::now())
        .await
        .expect("stored");
    tx.commit().await.expect("commit");
    let mut browser = Browser::new(&app);
    browser.sign_in().await;
    // The page reads the stored list: no user listing at J-MOTTO (the worker's own calls,
    // e.g. its quick check's login, are not the page's).
    let user_listings = || {
        app.jmotto
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("zrconst.cgi"))
            .count()
    };
    let calls_before = user_listings();
    let page = browser.get("/admin/users?page=2").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("1000人"));
    assert_eq!(page.body.matches(r#"name="user""#).count(), 50);
    assert!(page.body.contains("社員 0050") && !page.body.contains("社員 0049"));
    let search = browser.get("/admin/users?q=%E7%B5%8C%E7%90%86").await; // 経理
    assert!(search.body.contains("100人"), "one in ten is in 経理部");
    assert_eq!(user_listings(), calls_before, "no J-MOTTO user listing");
}
