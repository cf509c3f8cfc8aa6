//! 通知設定 `/admin/alerts` (SPEC §10): where alerts go — 「通知先メールアドレス」,
//! 「送信元メールアドレス」, 「SMTPサーバー」, 「Webhook URL」, 「Webhook署名シークレット」 and
//! 「通知設定を更新」 — under the rules of §8 (the file wins, secrets write-only and sealed,
//! a refused value beside its field and nothing stored), and 「テスト送信」.
//!
//! 「テスト送信」 sends a test alert through every channel the saved settings configure, at
//! once (not as a job: the administrator waits for the answer), and shows what each channel
//! answered — 「送信しました」 or the error (the SMTP server's refusal, a webhook's status),
//! which never holds a secret ([`crate::alerts`]' invariant). It is audited with those
//! outcomes.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use maud::{Markup, html};

use super::{
    entry,
    forms::{FieldKind, FieldSpec, FormState, save as save_form, settings_form},
    layout::{ConsoleError, Nav, Page},
    record_alone,
    session::Console,
};
use crate::{
    alerts::{self, Channel},
    config::Settings,
    http::AppState,
    store::audit::AuditKind,
};

const ALERT_KEYS: [&str; 5] = crate::live::ALERT_KEYS;
const FORM_NAME: &str = "通知設定";

fn alert_fields() -> [FieldSpec; 5] {
    [
        FieldSpec {
            key: "alerts.email_to",
            label: "通知先メールアドレス",
            kind: FieldKind::Lines,
            note: Some(
                "通知を受け取る人のアドレス。複数はカンマか改行で区切ります。空欄ならメールは送りません。",
            ),
        },
        FieldSpec {
            key: "alerts.email_from",
            label: "送信元メールアドレス",
            kind: FieldKind::Text,
            note: Some("通知メールの差出人（例: jmotto-zoom@example.co.jp）"),
        },
        FieldSpec {
            key: "alerts.smtp_url",
            label: "SMTPサーバー",
            kind: FieldKind::Secret,
            note: Some(
                "smtp://ユーザー:パスワード@ホスト:587?tls=required（STARTTLS）、smtps://ユーザー:パスワード@ホスト:465（TLS）、社内の中継サーバーなら smtp://ホスト:25（パスワードを含むため、保存後は表示しません）",
            ),
        },
        FieldSpec {
            key: "alerts.webhook_url",
            label: "Webhook URL",
            kind: FieldKind::Text,
            note: Some(
                "通知ごとに JSON を POST する先（Slack の Incoming Webhook など）。空欄なら送りません。",
            ),
        },
        FieldSpec {
            key: "alerts.webhook_secret",
            label: "Webhook署名シークレット",
            kind: FieldKind::Secret,
            note: Some(
                "whsec_ で始まる Standard Webhooks のシークレット。設定すると POST に署名します（保存後は表示しません）。",
            ),
        },
    ]
}

/// `GET /admin/alerts`.
pub async fn page(
    console: Console,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let form = FormState::current(&state, &ALERT_KEYS).await?;
    let settings = state.live.current().await?;
    Ok(render(&console, &form, &settings, None, StatusCode::OK))
}

/// `POST /admin/alerts`: 「通知設定を更新」.
pub async fn save(
    console: Console,
    request: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let fields = console.checked_form(form)?;
    let saved = save_form(&state, &request, FORM_NAME, &alert_fields(), &fields).await?;
    let (form, notice, status) = match saved {
        Err(errors) => (
            FormState::refused(&state, &ALERT_KEYS, &fields, errors).await?,
            super::forms::refused_notice(FORM_NAME),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Ok(changes) => (
            FormState::current(&state, &ALERT_KEYS).await?,
            html! {
                div.notice role="status" {
                    p { (FORM_NAME) "を保存しました" @if changes.is_empty() { "（変更はありません）" } "。「テスト送信」で届くか確かめられます。" }
                }
            },
            StatusCode::OK,
        ),
    };
    let settings = state.live.current().await?;
    Ok(render(&console, &form, &settings, Some(notice), status))
}

/// `POST /admin/alerts/test`: 「テスト送信」 through every configured channel of the saved
/// settings; each channel's outcome on the page and in the audit log.
pub async fn send_test(
    console: Console,
    request: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    console.checked_form(form)?;
    let settings = state.live.current().await?;
    let outcomes = alerts::send_test(&settings).await;
    let detail = if outcomes.is_empty() {
        "通知先が設定されていません".to_owned()
    } else {
        outcomes
            .iter()
            .map(|(channel, outcome)| match outcome {
                Ok(()) => format!("{}: 送信しました", channel.name()),
                Err(error) => format!("{}: {error}", channel.name()),
            })
            .collect::<Vec<_>>()
            .join("、")
    };
    record_alone(&state.store, &entry(&request, AuditKind::AlertTest, detail)).await?;
    let form = FormState::current(&state, &ALERT_KEYS).await?;
    Ok(render(
        &console,
        &form,
        &settings,
        Some(test_result(&outcomes)),
        StatusCode::OK,
    ))
}

fn channel_ja(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "メール",
        Channel::Webhook => "Webhook",
    }
}

/// What each channel answered to 「テスト送信」.
fn test_result(outcomes: &[(Channel, Result<(), String>)]) -> Markup {
    let failed = outcomes.iter().any(|(_, outcome)| outcome.is_err());
    html! {
        section id="test-result" role="status" {
            h2 { "テスト送信の結果" }
            @if outcomes.is_empty() {
                p.alert { "通知先が設定されていないため、何も送っていません。メール（通知先メールアドレス、送信元メールアドレス、SMTPサーバー）か Webhook URL を設定して「通知設定を更新」してから、もう一度お試しください。" }
            } @else {
                ul {
                    @for (channel, outcome) in outcomes {
                        li id=(format!("test-{}", channel.name())) {
                            strong { (channel_ja(*channel)) } ": "
                            @match outcome {
                                Ok(()) => { "送信しました" }
                                Err(error) => { span.error { "送信できませんでした — " (error) } }
                            }
                        }
                    }
                }
                @if failed {
                    p.note { "設定を直して「通知設定を更新」し、もう一度「テスト送信」してください。" }
                }
            }
        }
    }
}

/// Which channels the settings in effect configure, and what each lacks.
fn channels(settings: &Settings) -> Markup {
    let alerts = &settings.alerts;
    let email_missing: Vec<&str> = [
        (alerts.email_to.is_empty(), "通知先メールアドレス"),
        (alerts.email_from.trim().is_empty(), "送信元メールアドレス"),
        (
            !Channel::Email.is_configured(settings)
                && !alerts.email_to.is_empty()
                && !alerts.email_from.trim().is_empty(),
            "SMTPサーバー",
        ),
    ]
    .into_iter()
    .filter_map(|(missing, label)| missing.then_some(label))
    .collect();
    html! {
        section id="channels" {
            h2 { "通知先" }
            dl {
                dt { "メール" }
                dd {
                    @if Channel::Email.is_configured(settings) {
                        "送ります（" (alerts.email_to.join("、")) "）"
                    } @else {
                        "送りません（未設定: " (email_missing.join("、")) "）"
                    }
                }
                dt { "Webhook" }
                dd {
                    @if Channel::Webhook.is_configured(settings) {
                        @if alerts.webhook_secret.is_some() { "送ります（署名あり）" } @else { "送ります（署名なし）" }
                    } @else {
                        "送りません（未設定: Webhook URL）"
                    }
                }
            }
            p.note { "Zoom連携が無効になったとき、スケジュールを参照できないユーザーやZoomに存在しないユーザーがいるとき、会議を作成できなかったとき、ホストの1日の上限に達したときに、ここに送ります。" }
        }
    }
}

fn render(
    console: &Console,
    form: &FormState<'_>,
    settings: &Settings,
    notice: Option<Markup>,
    status: StatusCode,
) -> HttpResponse {
    let body = html! {
        @if let Some(notice) = notice { (notice) }
        (channels(settings))
        section {
            h2 { "設定" }
            (settings_form(console, "/admin/alerts", form, &alert_fields(), "通知設定を更新"))
        }
        section {
            h2 { "テスト送信" }
            form method="post" action="/admin/alerts/test" {
                (console.csrf_field())
                p.note { "保存済みの設定で、設定されているすべての通知先にテストの通知を送り、結果をこのページに表示します。" }
                button type="submit" { "テスト送信" }
            }
        }
    };
    Page::new(Nav::Alerts, "通知設定", body)
        .with_status(status)
        .render(console)
}
