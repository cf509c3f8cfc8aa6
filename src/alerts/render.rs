//! The words of an alert (SPEC §10): a Japanese subject starting with 「[Zoom連携]」 that
//! names the condition, a body saying what happened, for whom, and what to do in the
//! services' own screen names (and the console's page names), with a link to the console
//! when `server.public_url` is set; and the webhook's `details`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::{Alert, Condition, Event, FailedMeeting, LISTED_FAILED_MEETINGS};
use crate::{checks::ZOOM_APP_SCREEN, config::Settings};

/// Every subject starts with this.
pub const SUBJECT_PREFIX: &str = "[Zoom連携]";

/// Where J-MOTTO grants 参照 on a user's schedule (as `doctor` names it).
const SCHEDULE_ACCESS_SCREEN: &str =
    "J-MOTTO スケジュール › 設定（歯車） › 各ユーザーのアクセス権設定";
/// Where Zoom lists the account's users.
const ZOOM_USERS_SCREEN: &str = "Zoom 管理画面 › ユーザー管理 › ユーザー";

/// The subject: 「[Zoom連携] 」 and the condition in Japanese.
pub fn subject(alert: &Alert) -> String {
    let what = match (&alert.condition, alert.event) {
        (Condition::IntegrationDisabled { .. }, Event::Opened) => {
            "Zoom連携が無効になりました".to_owned()
        }
        (Condition::IntegrationDisabled { .. }, Event::Cleared) => {
            "Zoom連携が有効に戻りました".to_owned()
        }
        (Condition::UserUnreadable { user_id, .. }, Event::Opened) => {
            format!("スケジュールを参照できないユーザーがいます（{user_id}）")
        }
        (Condition::UserUnreadable { user_id, .. }, Event::Cleared) => {
            format!("ユーザー {user_id} のスケジュールを参照できるようになりました")
        }
        (Condition::UserZoomUnknown { email, .. }, Event::Opened) => {
            format!("Zoomアカウントに存在しないユーザーがいます（{email}）")
        }
        (Condition::UserZoomUnknown { email, .. }, Event::Cleared) => {
            format!("{email} がZoomアカウントで見つかりました")
        }
        (Condition::MeetingsFailed { total, .. }, _) => {
            format!("Zoom会議を作成できなかった予定があります（{total}件）")
        }
        (Condition::HostDailyLimit { host_email, .. }, _) => {
            format!("{host_email} の1日あたりの会議作成・更新の上限に達しました")
        }
        (Condition::Test, _) => "テスト送信".to_owned(),
    };
    format!("{SUBJECT_PREFIX} {what}")
}

/// The e-mail's body (plain text): what happened, for whom, what to do, the console's link
/// and when.
pub fn body(alert: &Alert, settings: &Settings) -> String {
    let mut text = match (&alert.condition, alert.event) {
        (Condition::IntegrationDisabled { reasons }, Event::Opened) => {
            integration_disabled(reasons)
        }
        (Condition::IntegrationDisabled { .. }, Event::Cleared) => {
            "Zoom連携が有効に戻りました。J-MOTTOの予定から再びZoom会議が作成されます。\n\n\
             無効だった間に登録・変更された予定は、次の同期で反映されます。急ぐ場合は管理画面の\
             「状態」で「今すぐ同期」を押してください。\n"
                .to_owned()
        }
        (Condition::UserUnreadable { user_id, detail }, Event::Opened) => format!(
            "J-MOTTOがユーザー {user_id} のスケジュールの参照を拒否したか、そのユーザーが見つかりません。\
             このユーザーの予定にはZoom会議が作成されません。\n\n\
             対象: J-MOTTOのユーザー {user_id}\n詳細: {detail}\n\n\
             対処: {SCHEDULE_ACCESS_SCREEN} で、このユーザーのスケジュールの「参照」を\
             「全員」、管理者、または管理者の所属組織に許可してください。ユーザーが削除・変更された場合は、\
             管理画面の「ユーザー」で連携を外してください。\n"
        ),
        (Condition::UserUnreadable { user_id, .. }, Event::Cleared) => format!(
            "ユーザー {user_id} のスケジュールを再び参照できるようになりました。このユーザーの予定にも\
             Zoom会議が作成されます。\n"
        ),
        (Condition::UserZoomUnknown { user_id, email }, Event::Opened) => format!(
            "連携するユーザーのZoomメールアドレスが、Zoomアカウントのユーザーにありません。\
             このユーザーがホストの予定にはZoom会議が作成されません。\n\n\
             対象: J-MOTTOのユーザー {user_id}（Zoomメールアドレス {email}）\n\n\
             対処: {ZOOM_USERS_SCREEN} でこのアドレスのユーザーを追加するか、管理画面の「ユーザー」で\
             「Zoomメールアドレス」を正しいアドレスに直してください。\n"
        ),
        (Condition::UserZoomUnknown { user_id, email }, Event::Cleared) => format!(
            "J-MOTTOのユーザー {user_id} のZoomメールアドレス {email} が、Zoomアカウントで\
             見つかりました。このユーザーの予定にもZoom会議が作成されます。\n"
        ),
        (
            Condition::MeetingsFailed {
                sync_id,
                total,
                entries,
            },
            _,
        ) => meetings_failed(sync_id, *total, entries),
        (
            Condition::HostDailyLimit {
                host_email,
                utc_day,
            },
            _,
        ) => format!(
            "ホスト {host_email} は {utc_day}（UTC）の会議の作成・更新の上限（zoom.daily_host_limit）に\
             達しました。この日の残りの作成・更新は待機し、翌日 0:00（UTC）に自動で行われます。\n\n\
             対象: {host_email}\n\n\
             対処: 急ぐ予定は、J-MOTTOで別の連携ユーザーが登録した予定にしてください（その人がホストに\
             なります）。この上限はZoomが1ユーザーに1日に許す件数で、Zoomのアプリの設定では変えられません。\n"
        ),
        (Condition::Test, _) => "jmotto-zoom からのテスト送信です。このメッセージが届いていれば、\
             通知設定は正しく動作しています。\n"
            .to_owned(),
    };
    if let (Event::Cleared, Some(opened_at)) = (alert.event, alert.opened_at) {
        text.push_str(&format!(
            "（{} から続いていました）\n",
            local_time(opened_at, settings.groupware.timezone)
        ));
    }
    if let Some(url) = settings.server.public_url() {
        text.push_str(&format!("\n管理画面: {url}/admin/\n"));
    }
    text.push_str(&format!(
        "\n発生日時: {}\n\n-- \njmotto-zoom（J-MOTTO と Zoom の連携）からの自動送信です。\n",
        local_time(alert.occurred_at, settings.groupware.timezone)
    ));
    text
}

fn integration_disabled(reasons: &[String]) -> String {
    let mut text =
        "Zoom連携が無効になりました。直るまで、J-MOTTOの予定にZoom会議は作成されません。\n\n\
         理由:\n"
            .to_owned();
    for reason in reasons {
        text.push_str(&format!("・{reason}\n"));
    }
    if reasons.is_empty() {
        text.push_str("・（理由は管理画面の「状態」を見てください）\n");
    }
    text.push_str(&format!(
        "\n対処: Zoomの認証情報は {ZOOM_APP_SCREEN} › App Credentials、J-MOTTOの管理者は \
         J-MOTTO TOP › プロフィール で確かめ、管理画面の「Zoom連携設定」で設定し直してください。\
         直ると自動で有効に戻り、そのこともお知らせします。\n"
    ));
    text
}

fn meetings_failed(sync_id: &str, total: usize, entries: &[FailedMeeting]) -> String {
    let mut text = format!(
        "同期（{sync_id}）で、Zoom会議を作成できなかった予定が {total} 件あります（再試行を使い切ったか、\
         Zoomが拒否しました）。\n\n"
    );
    for entry in entries.iter().take(LISTED_FAILED_MEETINGS) {
        text.push_str(&format!(
            "・{} {}（ホスト {}、予定ID {}）: {}\n",
            entry.start, entry.topic, entry.host, entry.schedule_id, entry.reason
        ));
    }
    let rest = total.saturating_sub(entries.len().min(LISTED_FAILED_MEETINGS));
    if rest > 0 {
        text.push_str(&format!("ほか {rest} 件\n"));
    }
    text.push_str(
        "\n対処: 管理画面の「ミーティング」で状態「failed」の予定と理由を確かめてください。\
         再試行を使い切った予定は次の同期でもう一度作成されます。Zoomが拒否した予定は、\
         理由を直して予定を更新すると作成されます。\n",
    );
    text
}

/// `2026-12-01 14:05 (Asia/Tokyo)`.
fn local_time(at: DateTime<Utc>, timezone: Tz) -> String {
    format!(
        "{} ({})",
        at.with_timezone(&timezone).format("%Y-%m-%d %H:%M"),
        timezone.name()
    )
}

/// The webhook's `details`: the condition's fields (for `meetings.failed` the listed
/// entries and `not_listed`), and for a clearing the condition's `opened_at` when known.
pub fn details(alert: &Alert) -> Value {
    let mut details = match &alert.condition {
        Condition::IntegrationDisabled { reasons } => json!({ "reasons": reasons }),
        Condition::UserUnreadable { user_id, detail } => {
            json!({ "user_id": user_id, "detail": detail })
        }
        Condition::UserZoomUnknown { user_id, email } => {
            json!({ "user_id": user_id, "email": email })
        }
        Condition::MeetingsFailed {
            sync_id,
            total,
            entries,
        } => {
            let listed: Vec<&FailedMeeting> = entries.iter().take(LISTED_FAILED_MEETINGS).collect();
            json!({
                "sync_id": sync_id,
                "total": total,
                "not_listed": total.saturating_sub(listed.len()),
                "entries": listed,
            })
        }
        Condition::HostDailyLimit {
            host_email,
            utc_day,
        } => json!({ "host_email": host_email, "utc_day": utc_day }),
        Condition::Test => json!({}),
    };
    if alert.event == Event::Cleared
        && let (Some(opened_at), Some(object)) = (alert.opened_at, details.as_object_mut())
    {
        object.insert(
            "opened_at".into(),
            Value::from(crate::store::utc_text(opened_at)),
        );
    }
    details
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(public_url: &str) -> Settings {
        let text = crate::config::MINIMAL.replace(
            "[server]\n",
            &format!("[server]\npublic_url = \"{public_url}\"\n"),
        );
        Settings::from_toml_str(&text).expect("valid settings")
    }

    fn alert(condition: Condition, event: Event) -> Alert {
        Alert {
            condition,
            event,
            occurred_at: "2026-12-01T05:05:00Z".parse().expect("instant"),
            opened_at: None,
        }
    }

    /// SPEC §10: the subject starts with 「[Zoom連携]」 and names the condition; the body
    /// says what to do in the services' screen names, links the console when
    /// `server.public_url` is set, and gives the time in the administrator's zone.
    #[test]
    fn subjects_and_bodies_say_what_and_where() {
        let cases = [
            (
                alert(
                    Condition::IntegrationDisabled {
                        reasons: vec!["the Zoom token was refused".into()],
                    },
                    Event::Opened,
                ),
                "[Zoom連携] Zoom連携が無効になりました",
                "App Credentials",
            ),
            (
                alert(
                    Condition::UserUnreadable {
                        user_id: "10002".into(),
                        detail: "errorno 2001".into(),
                    },
                    Event::Opened,
                ),
                "[Zoom連携] スケジュールを参照できないユーザーがいます（10002）",
                SCHEDULE_ACCESS_SCREEN,
            ),
            (
                alert(
                    Condition::UserZoomUnknown {
                        user_id: "10002".into(),
                        email: "tanaka@example.co.jp".into(),
                    },
                    Event::Opened,
                ),
                "[Zoom連携] Zoomアカウントに存在しないユーザーがいます（tanaka@example.co.jp）",
                ZOOM_USERS_SCREEN,
            ),
        ];
        for (alert, expected_subject, screen) in cases {
            assert_eq!(subject(&alert), expected_subject);
            let text = body(&alert, &settings("https://zoom-sync.example.co.jp/"));
            assert!(text.contains(screen), "{text}");
            assert!(
                text.contains("管理画面: https://zoom-sync.example.co.jp/admin/"),
                "{text}"
            );
            assert!(text.contains("2026-12-01 14:05 (Asia/Tokyo)"), "{text}");
            assert!(!body(&alert, &settings("")).contains("/admin/"));
        }
    }

    /// SPEC §10: a `meetings.failed` alert lists 50 entries, then counts the rest.
    #[test]
    fn failed_meetings_list_fifty_then_a_count() {
        let entries: Vec<FailedMeeting> = (0..50)
            .map(|n| FailedMeeting {
                schedule_id: format!("s{n}"),
                topic: format!("会議{n}"),
                start: "2026-12-03 10:00".into(),
                host: "10002".into(),
                reason: "再試行を使い切りました".into(),
            })
            .collect();
        let failed = alert(
            Condition::MeetingsFailed {
                sync_id: "run".into(),
                total: 120,
                entries,
            },
            Event::Opened,
        );
        let text = body(&failed, &settings(""));
        assert_eq!(text.matches("・").count(), 50, "{text}");
        assert!(text.contains("ほか 70 件"), "{text}");
        assert_eq!(
            subject(&failed),
            "[Zoom連携] Zoom会議を作成できなかった予定があります（120件）"
        );
        let details = details(&failed);
        assert_eq!(details["not_listed"], 70);
        assert_eq!(details["entries"].as_array().map(Vec::len), Some(50));
    }
}
