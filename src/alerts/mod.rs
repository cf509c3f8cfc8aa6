//! Alerts (SPEC §10): what the administrator is told when the integration breaks, and how.
//!
//! A [`Condition`] is what happened (the five types of SPEC §10); an [`Alert`] is one
//! message about it: the condition started ([`Event::Opened`]) or cleared
//! ([`Event::Cleared`]). [`render`] writes its Japanese subject and body, [`email`] sends
//! it through `lettre`, [`webhook`] posts its JSON signed with Standard Webhooks headers.
//! Deciding *when* to alert and sending durably are `jobs::alerts`' part; nothing here
//! touches the database.
//!
//! Invariant: no error text of a delivery carries a secret (the SMTP password in
//! `alerts.smtp_url`, the webhook secret): they go to the log, the database and the console.

pub mod email;
pub mod render;
pub mod webhook;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Settings;

/// How many failed meetings one `meetings.failed` alert lists (the rest are counted).
pub const LISTED_FAILED_MEETINGS: usize = 50;

/// How long one delivery attempt may take (connect, TLS, the whole exchange).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// A meeting that ended `failed` or that Zoom refused, as a `meetings.failed` alert lists it
/// (display text, filled by the caller from the meeting row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedMeeting {
    /// J-MOTTO's schedule id.
    pub schedule_id: String,
    /// The meeting's topic.
    pub topic: String,
    /// When it starts, as people read it (e.g. `2026-12-03 10:00`).
    pub start: String,
    /// The host (J-MOTTO user id or Zoom e-mail).
    pub host: String,
    /// Why, in Japanese (the reason code's sentence, with its detail).
    pub reason: String,
}

impl FailedMeeting {
    /// The listing of a `meetings` row that ended `failed` (or Zoom refused): its start in
    /// `timezone` (the administrator's), its host's e-mail (or J-MOTTO id), its reason's
    /// Japanese sentence.
    pub fn from_row(row: &crate::domain::meeting::MeetingRow, timezone: chrono_tz::Tz) -> Self {
        let start = chrono::DateTime::parse_from_rfc3339(&row.start_utc)
            .map(|at| {
                at.with_timezone(&timezone)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_else(|_| row.start_utc.clone());
        let schedule_id = if row.occurrence.is_empty() {
            row.schedule_id.clone()
        } else {
            format!("{}/{}", row.schedule_id, row.occurrence)
        };
        FailedMeeting {
            schedule_id,
            topic: row.topic.clone(),
            start,
            host: row
                .host_email
                .clone()
                .or_else(|| row.host_user_id.clone())
                .unwrap_or_default(),
            reason: row
                .reason
                .as_ref()
                .map(crate::domain::meeting::Reason::sentence_ja)
                .unwrap_or_else(|| "作成できませんでした".to_owned()),
        }
    }
}

/// What an alert is about: the five types of SPEC §10 (and the console's test).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Condition {
    /// R-ENABLED turned false; `reasons` say why (Japanese or the checks' sentences).
    #[serde(rename = "integration.disabled")]
    IntegrationDisabled { reasons: Vec<String> },
    /// J-MOTTO refuses an enabled user's schedule (2001) or does not know the user (2002).
    #[serde(rename = "user.unreadable")]
    UserUnreadable { user_id: String, detail: String },
    /// An enabled user's Zoom e-mail is not in the Zoom account.
    #[serde(rename = "user.zoom_unknown")]
    UserZoomUnknown { user_id: String, email: String },
    /// Meetings of one sync run ended failed or were refused by Zoom: the first
    /// [`LISTED_FAILED_MEETINGS`] of `total`.
    #[serde(rename = "meetings.failed")]
    MeetingsFailed {
        sync_id: String,
        total: usize,
        entries: Vec<FailedMeeting>,
    },
    /// A host's daily create/update quota is used up for `utc_day` (`YYYY-MM-DD`).
    #[serde(rename = "host.daily_limit")]
    HostDailyLimit { host_email: String, utc_day: String },
    /// The console's 「テスト送信」.
    #[serde(rename = "test")]
    Test,
}

impl Condition {
    /// The condition's type (SPEC §10), e.g. `user.unreadable`.
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::IntegrationDisabled { .. } => "integration.disabled",
            Condition::UserUnreadable { .. } => "user.unreadable",
            Condition::UserZoomUnknown { .. } => "user.zoom_unknown",
            Condition::MeetingsFailed { .. } => "meetings.failed",
            Condition::HostDailyLimit { .. } => "host.daily_limit",
            Condition::Test => "test",
        }
    }

    /// What the condition is about, unique among the open ones of its type: `''` for the
    /// integration, the user id, the sync run, the host and day.
    pub fn subject(&self) -> String {
        match self {
            Condition::IntegrationDisabled { .. } | Condition::Test => String::new(),
            Condition::UserUnreadable { user_id, .. }
            | Condition::UserZoomUnknown { user_id, .. } => user_id.clone(),
            Condition::MeetingsFailed { sync_id, .. } => sync_id.clone(),
            Condition::HostDailyLimit {
                host_email,
                utc_day,
            } => format!("{host_email} {utc_day}"),
        }
    }

    /// Whether the condition clears (and its clearing is alerted), rather than being a
    /// one-off.
    pub fn clears(&self) -> bool {
        matches!(
            self,
            Condition::IntegrationDisabled { .. }
                | Condition::UserUnreadable { .. }
                | Condition::UserZoomUnknown { .. }
        )
    }
}

/// Whether an alert says a condition started or cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Opened,
    Cleared,
}

impl Event {
    /// The stored name (`alert_deliveries.event`).
    pub fn name(self) -> &'static str {
        match self {
            Event::Opened => "opened",
            Event::Cleared => "cleared",
        }
    }

    /// Reads [`Event::name`] back.
    pub fn parse(name: &str) -> Option<Event> {
        match name {
            "opened" => Some(Event::Opened),
            "cleared" => Some(Event::Cleared),
            _ => None,
        }
    }
}

/// One message: a condition that started or cleared, at `occurred_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub condition: Condition,
    pub event: Event,
    pub occurred_at: DateTime<Utc>,
    /// When the condition started (given for a clearing).
    pub opened_at: Option<DateTime<Utc>>,
}

impl Alert {
    /// The alert's type as sent (SPEC §10): the condition's, `integration.enabled` when the
    /// integration is enabled again, `<type>.cleared` for another condition that cleared.
    pub fn type_name(&self) -> String {
        match (&self.condition, self.event) {
            (condition, Event::Opened) => condition.kind().to_owned(),
            (Condition::IntegrationDisabled { .. }, Event::Cleared) => {
                "integration.enabled".to_owned()
            }
            (condition, Event::Cleared) => format!("{}.cleared", condition.kind()),
        }
    }
}

/// A way alerts are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    /// Every channel, in the order deliveries are recorded.
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Webhook];

    /// The stored name and the metric label.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }

    /// Reads [`Channel::name`] back.
    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether `settings` configure this channel.
    pub fn is_configured(self, settings: &Settings) -> bool {
        match self {
            Channel::Email => settings.alerts.email_configured(),
            Channel::Webhook => settings.alerts.webhook_configured(),
        }
    }
}

/// Why a delivery did not go through. The text never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The channel's settings cannot work (an address, a URL): retrying will not help until
    /// they change.
    #[error("{0}")]
    Settings(String),
    /// The server refused, did not answer in time, or could not be reached: retry later.
    #[error("{0}")]
    Failed(String),
}

/// Sends `alert` through `channel` under `settings`, within [`DELIVERY_TIMEOUT`].
/// `message_id` names the message for the receiver (the webhook's `webhook-id`, the
/// e-mail's `Message-ID`): the same for every attempt of one delivery, so a receiver can
/// drop a repeat.
pub async fn send(
    channel: Channel,
    settings: &Settings,
    alert: &Alert,
    message_id: &str,
) -> Result<(), DeliveryError> {
    let attempt = async {
        match channel {
            Channel::Email => email::send(settings, alert, message_id).await,
            Channel::Webhook => webhook::send(settings, alert, message_id).await,
        }
    };
    match tokio::time::timeout(DELIVERY_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(DeliveryError::Failed(format!(
            "no answer within {} s",
            DELIVERY_TIMEOUT.as_secs()
        ))),
    }
}

/// The console's 「テスト送信」: a test alert through every configured channel at once (not
/// as a job), each channel's outcome — `Err` with what went wrong, such as the SMTP server's
/// answer, never a secret. Empty when no channel is configured.
pub async fn send_test(settings: &Settings) -> Vec<(Channel, Result<(), String>)> {
    let alert = Alert {
        condition: Condition::Test,
        event: Event::Opened,
        occurred_at: Utc::now(),
        opened_at: None,
    };
    let message_id = format!(
        "jmz-test-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    let sends = Channel::ALL
        .into_iter()
        .filter(|channel| channel.is_configured(settings))
        .map(|channel| {
            let (alert, message_id) = (&alert, &message_id);
            async move {
                let outcome = send(channel, settings, alert, message_id)
                    .await
                    .map_err(|error| error.to_string());
                (channel, outcome)
            }
        });
    futures::future::join_all(sends).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC §10: the type names sent for each condition opening and clearing.
    #[test]
    fn type_names_follow_the_spec() {
        let at = Utc::now();
        let alert = |condition: Condition, event| Alert {
            condition,
            event,
            occurred_at: at,
            opened_at: None,
        };
        let disabled = Condition::IntegrationDisabled { reasons: vec![] };
        let unreadable = Condition::UserUnreadable {
            user_id: "10002".into(),
            detail: "2001".into(),
        };
        let cases = [
            (
                alert(disabled.clone(), Event::Opened),
                "integration.disabled",
            ),
            (alert(disabled, Event::Cleared), "integration.enabled"),
            (alert(unreadable.clone(), Event::Opened), "user.unreadable"),
            (alert(unreadable, Event::Cleared), "user.unreadable.cleared"),
        ];
        for (alert, expected) in cases {
            assert_eq!(alert.type_name(), expected);
        }
        let stored = serde_json::to_value(Condition::HostDailyLimit {
            host_email: "a@example.jp".into(),
            utc_day: "2026-12-01".into(),
        })
        .expect("json");
        assert_eq!(stored["type"], "host.daily_limit");
    }

    /// A failed row is listed with its local start, its host and its reason's sentence.
    #[test]
    fn a_failed_row_is_listed_for_people() {
        use crate::domain::meeting::{MeetingRow, MeetingState, Reason, ReasonCode};
        let row = MeetingRow {
            id: 1,
            schedule_id: "8801".into(),
            occurrence: "20261203".into(),
            start_utc: "2026-12-03T01:00:00Z".into(),
            end_utc: "2026-12-03T02:00:00Z".into(),
            host_user_id: Some("10002".into()),
            host_email: Some("tanaka@example.co.jp".into()),
            topic: "定例会議".into(),
            agenda: String::new(),
            duration_minutes: 60,
            timezone: "Asia/Tokyo".into(),
            invitees: "[]".into(),
            state: MeetingState::Failed,
            reason: Some(Reason::with_detail(ReasonCode::ZoomRejected, "300")),
            zoom_meeting_id: None,
            join_url: None,
            replaces_meeting_id: None,
            attempts: 5,
            next_attempt_at: None,
            claimed_at: None,
            created_at: String::new(),
            updated_at: String::new(),
            look_first: false,
        };
        let listed = FailedMeeting::from_row(&row, chrono_tz::Asia::Tokyo);
        assert_eq!(listed.schedule_id, "8801/20261203");
        assert_eq!(listed.start, "2026-12-03 10:00");
        assert_eq!(listed.host, "tanaka@example.co.jp");
        assert_eq!(
            listed.reason,
            Reason::with_detail(ReasonCode::ZoomRejected, "300").sentence_ja()
        );
    }
}
