//! The console's 通知設定 page `/admin/alerts` (SPEC §10 under the rules of §8) over HTTP:
//! saving, secrets never echoed, a refused value beside its field, 「テスト送信」 arriving at
//! the local SMTP server and HTTP receiver of [`crate::alerts`], CSRF; and 状態 listing the
//! alert deliveries that keep failing.

use jmotto_zoom::{secrets::SecretKey, store::alerts as alert_store, store::settings as stored};
use reqwest::StatusCode;
use std::collections::BTreeMap;

use crate::{
    alerts::{HttpReceiver, SmtpServer},
    console::{Answer, Browser, audit_rows, spawn_console_app},
    helpers::{TestApp, spawn_app_with},
};

/// The Standard Webhooks specification's published test secret.
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SMTP_PASSWORD: &str = "s3cret-pass-never-shown";

/// The page's five labels and two buttons, exactly as SPEC §10 names them.
const LABELS: [&str; 5] = [
    "通知先メールアドレス",
    "送信元メールアドレス",
    "SMTPサーバー",
    "Webhook URL",
    "Webhook署名シークレット",
];

/// The form of 「通知設定を更新」 pointing both channels at `smtp_url` and `webhook_url`.
fn alert_form<'a>(
    csrf: &'a str,
    smtp_url: &'a str,
    webhook_url: &'a str,
) -> Vec<(&'a str, &'a str)> {
    form_of(
        csrf,
        [
            "it@example.co.jp\nsoumu@example.co.jp",
            "jmotto-zoom@example.co.jp",
            smtp_url,
            webhook_url,
            WEBHOOK_SECRET,
        ],
    )
}

/// The form with the CSRF token and one value per key of the page, in its order.
fn form_of<'a>(csrf: &'a str, values: [&'a str; 5]) -> Vec<(&'a str, &'a str)> {
    let keys = [
        "alerts.email_to",
        "alerts.email_from",
        "alerts.smtp_url",
        "alerts.webhook_url",
        "alerts.webhook_secret",
    ];
    std::iter::once(("csrf_token", csrf))
        .chain(keys.into_iter().zip(values))
        .collect()
}

/// Presses 「テスト送信」; the page it answers (always 200: the outcome is on the page).
async fn press_test_send(browser: &mut Browser, csrf: &str) -> Answer {
    let answer = browser
        .post("/admin/alerts/test", &[("csrf_token", csrf)])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer
}

/// The console settings stored in the database.
async fn stored_values(app: &TestApp) -> BTreeMap<String, String> {
    stored::load(app.engine.store.db())
        .await
        .expect("stored")
        .values
}

/// SPEC §10 / §8: the page has its fields and buttons; saving stores the values (the e-mail
/// list from one address a line), seals `smtp_url` and `webhook_secret`, shows 「設定済み」
/// beside their empty fields and never shows them (page, audit log); an empty secret field
/// keeps the stored value.
#[tokio::test]
async fn saving_alert_settings_stores_them_and_never_echoes_the_secrets() {
    let app = spawn_console_app().await;
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in().await;
    let page = browser.get("/admin/alerts").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for label in LABELS {
        assert!(page.body.contains(&format!(">{label}</label>")), "{label}");
    }
    for button in ["通知設定を更新", "テスト送信"] {
        assert!(
            page.body
                .contains(&format!(r#"<button type="submit">{button}</button>"#)),
            "{button}"
        );
    }
    assert!(
        page.body
            .contains(r#"href="/admin/alerts" aria-current="page">通知設定</a>"#)
    );
    let smtp_url = format!("smtp://alerts:{SMTP_PASSWORD}@127.0.0.1:2525");
    let saved = browser
        .post(
            "/admin/alerts",
            &alert_form(&csrf, &smtp_url, "https://hooks.example.co.jp/x"),
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert!(saved.body.contains("通知設定を保存しました"));
    assert_eq!(saved.body.matches("設定済み").count(), 2, "{}", saved.body);
    for shown in [&saved, &browser.get("/admin/alerts").await] {
        assert!(!shown.body.contains(SMTP_PASSWORD));
        assert!(!shown.body.contains(WEBHOOK_SECRET));
        assert!(shown.body.contains("it@example.co.jp\nsoumu@example.co.jp"));
        assert!(
            shown
                .body
                .contains(r#"value="https://hooks.example.co.jp/x""#)
        );
    }
    let values = stored_values(&app).await;
    assert_eq!(
        values["alerts.email_to"],
        "it@example.co.jp, soumu@example.co.jp"
    );
    assert_eq!(values["alerts.email_from"], "jmotto-zoom@example.co.jp");
    assert!(!values["alerts.smtp_url"].contains(SMTP_PASSWORD));
    assert!(!values["alerts.webhook_secret"].contains("MfKQ9r8"));
    let (kind, _, detail) = audit_rows(&app).await.pop().expect("a row");
    assert_eq!(kind, "settings");
    assert!(detail.contains("alerts.smtp_url: 変更"), "{detail}");
    assert!(detail.contains("alerts.webhook_secret: 変更"), "{detail}");
    assert!(!detail.contains(SMTP_PASSWORD) && !detail.contains("MfKQ9r8"));
    // Empty secret fields keep what is stored.
    let kept = browser
        .post(
            "/admin/alerts",
            &form_of(
                &csrf,
                [
                    "it@example.co.jp",
                    "jmotto-zoom@example.co.jp",
                    "",
                    "https://hooks.example.co.jp/x",
                    "",
                ],
            ),
        )
        .await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    let settings = app.live.live().current().await.expect("settings");
    assert_eq!(settings.alerts.email_to, ["it@example.co.jp"]);
    assert!(settings.alerts.email_configured() && settings.alerts.webhook_configured());
    assert!(settings.alerts.webhook_secret.is_some());
}

/// SPEC §10 「テスト送信」: a test alert arrives at the SMTP server and at the HTTP receiver,
/// and the page says so per channel; a refusing server's answer is shown (never the
/// password); with no channel configured the page says nothing was sent. Each is audited.
#[tokio::test]
async fn test_send_arrives_at_both_channels_and_the_page_says_so() {
    let smtp = SmtpServer::start(0).await;
    let receiver = HttpReceiver::start().await;
    let app = spawn_console_app().await;
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in().await;
    let nothing = press_test_send(&mut browser, &csrf).await;
    assert!(
        nothing
            .body
            .contains("通知先が設定されていないため、何も送っていません")
    );
    let saved = browser
        .post(
            "/admin/alerts",
            &alert_form(&csrf, &smtp.url(), &receiver.url()),
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let sent = press_test_send(&mut browser, &csrf).await;
    assert!(sent.body.contains("テスト送信の結果"));
    for channel in ["email", "webhook"] {
        let at = sent
            .body
            .find(&format!(r#"id="test-{channel}""#))
            .unwrap_or_else(|| panic!("{channel}'s result: {}", sent.body));
        let line = &sent.body[at..at + 200.min(sent.body.len() - at)];
        assert!(line.contains("送信しました"), "{channel}: {line}");
    }
    // The console app has no user yet, so `integration.disabled` may arrive too (SPEC §10
    // R-ENABLED): only the test alerts are counted here.
    let tests: Vec<_> = smtp
        .mails()
        .into_iter()
        .filter(|m| m.subject == "[Zoom連携] テスト送信")
        .collect();
    assert_eq!(tests.len(), 1, "{tests:?}");
    assert_eq!(tests[0].recipients.len(), 2, "{:?}", tests[0].recipients);
    assert_eq!(test_posts(&receiver), 1);
    let (kind, _, detail) = audit_rows(&app).await.pop().expect("a row");
    assert_eq!(kind, "alert_test");
    assert!(detail.contains("email: 送信しました"), "{detail}");
    // A server that refuses: its answer is on the page, the password is not.
    let refusing = SmtpServer::start(10).await;
    let with_password = refusing
        .url()
        .replace("smtp://", &format!("smtp://alerts:{SMTP_PASSWORD}@"));
    let saved = browser
        .post(
            "/admin/alerts",
            &alert_form(&csrf, &with_password, &receiver.url()),
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let refused = press_test_send(&mut browser, &csrf).await;
    assert!(
        refused.body.contains("送信できませんでした"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("421"), "{}", refused.body);
    assert!(!refused.body.contains(SMTP_PASSWORD));
    assert_eq!(test_posts(&receiver), 2);
    let (_, _, detail) = audit_rows(&app).await.pop().expect("a row");
    assert!(!detail.contains(SMTP_PASSWORD), "{detail}");
}

/// How many test alerts the receiver got (other alert types may arrive beside them).
fn test_posts(receiver: &HttpReceiver) -> usize {
    receiver.types().iter().filter(|t| *t == "test").count()
}

/// SPEC §8 under §10: a value that cannot be right (not an e-mail, not a URL) is refused
/// with a sentence beside its field (422), the typed values are kept, nothing is stored.
#[tokio::test]
async fn a_bad_alert_value_is_refused_beside_its_field_and_nothing_is_stored() {
    let app = spawn_console_app().await;
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in().await;
    let refused = browser
        .post(
            "/admin/alerts",
            &form_of(
                &csrf,
                [
                    "it@example.co.jp, nobody",
                    "jmotto-zoom@example.co.jp",
                    "smtp://127.0.0.1:2525",
                    "hooks.example.co.jp/x",
                    WEBHOOK_SECRET,
                ],
            ),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    for (label, id) in [
        ("通知先メールアドレス", "alerts_email_to"),
        ("Webhook URL", "alerts_webhook_url"),
    ] {
        let label = refused
            .body
            .find(&format!(">{label}</label>"))
            .expect("the field");
        let error = refused
            .body
            .find(&format!(r#"id="{id}_error""#))
            .expect("its error");
        let input = refused
            .body
            .find(&format!(r#"id="{id}""#))
            .expect("its input");
        assert!(
            label < error && error < input,
            "{id}: the sentence is beside its field"
        );
    }
    assert!(refused.body.contains("nobody"), "the typed values are kept");
    assert!(!refused.body.contains(WEBHOOK_SECRET));
    let values = stored_values(&app).await;
    assert!(values.is_empty(), "{values:?}");
}

/// SPEC §8: a POST to 通知設定 or 「テスト送信」 without a valid CSRF token is 403 and
/// changes nothing: no setting, no audit row, nothing sent.
#[tokio::test]
async fn alert_posts_without_a_csrf_token_are_refused() {
    let smtp = SmtpServer::start(0).await;
    let receiver = HttpReceiver::start().await;
    let (smtp_url, webhook_url) = (smtp.url(), receiver.url());
    let app = spawn_app_with(move |settings| {
        settings.file_keys.clear();
        settings.server.secret_key = Some(SecretKey::generate());
        settings.alerts.email_to = vec!["it@example.co.jp".into()];
        settings.alerts.email_from = "jmotto-zoom@example.co.jp".into();
        settings.alerts.smtp_url = Some(smtp_url.into());
        settings.alerts.webhook_url = webhook_url;
    })
    .await;
    let mut browser = Browser::new(&app);
    browser.sign_in().await;
    let rows_before = audit_rows(&app).await.len();
    for (path, form) in [
        (
            "/admin/alerts",
            vec![("alerts.email_from", "evil@example.jp")],
        ),
        (
            "/admin/alerts",
            vec![
                ("csrf_token", "forged"),
                ("alerts.email_from", "evil@example.jp"),
            ],
        ),
        ("/admin/alerts/test", vec![]),
        ("/admin/alerts/test", vec![("csrf_token", "forged")]),
    ] {
        let answer = browser.post(path, &form).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path} {form:?}");
    }
    assert!(stored_values(&app).await.is_empty());
    assert_eq!(audit_rows(&app).await.len(), rows_before);
    // No test alert went out (the engine's own alerts, e.g. the demo's unreadable user, may).
    assert!(
        !smtp
            .mails()
            .iter()
            .any(|m| m.subject == "[Zoom連携] テスト送信")
    );
    assert_eq!(test_posts(&receiver), 0);
}

/// SPEC §8: a key the file sets is shown read-only with 「設定ファイルで指定」 and not
/// submitted; the others stay editable.
#[tokio::test]
async fn alert_keys_the_file_sets_are_read_only() {
    let app = spawn_app_with(|settings| {
        settings.file_keys.clear();
        settings.file_keys.insert("alerts.webhook_url".into());
        settings.alerts.webhook_url = "https://hooks.example.co.jp/from-file".into();
        settings.server.secret_key = Some(SecretKey::generate());
    })
    .await;
    let mut browser = Browser::new(&app);
    let csrf = browser.sign_in().await;
    let page = browser.get("/admin/alerts").await;
    assert!(page.body.contains("設定ファイルで指定"));
    assert!(page.body.contains("https://hooks.example.co.jp/from-file"));
    let saved = browser
        .post(
            "/admin/alerts",
            &[
                ("csrf_token", csrf.as_str()),
                ("alerts.email_to", ""),
                ("alerts.email_from", "jmotto-zoom@example.co.jp"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    let values = stored_values(&app).await;
    assert!(!values.contains_key("alerts.webhook_url"), "{values:?}");
    assert_eq!(values["alerts.email_from"], "jmotto-zoom@example.co.jp");
}

/// SPEC §10: an alert delivery that keeps failing, and an open condition, are visible in
/// 状態 with the last error.
#[tokio::test]
async fn the_status_page_lists_failing_alert_deliveries() {
    let app = spawn_console_app().await;
    let now = chrono::Utc::now();
    let mut tx = app.engine.store.begin_write().await.expect("write");
    let condition =
        alert_store::insert_condition(&mut tx, "user.unreadable", "10002", "{}", now, false)
            .await
            .expect("recorded")
            .expect("new");
    let delivery = alert_store::insert_delivery(&mut tx, condition, "opened", "email", now)
        .await
        .expect("delivery");
    alert_store::set_delivery_state(
        &mut tx,
        delivery,
        "failed",
        5,
        Some("421 4.3.2 Service not available"),
        now,
    )
    .await
    .expect("failed");
    tx.commit().await.expect("commit");
    let mut browser = Browser::new(&app);
    browser.sign_in().await;
    let page = browser.get("/admin/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("送信できていない通知"), "{}", page.body);
    assert!(page.body.contains("421 4.3.2 Service not available"));
    assert!(page.body.contains("送信失敗"));
    assert!(
        page.body
            .contains("スケジュールを参照できないユーザー（10002）")
    );
}
