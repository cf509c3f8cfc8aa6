//! The stored state of an entry and its meeting rows, as typed values: what a row's state
//! and reason mean, and what the per-entry rules read of them.
//!
//! The store decodes its rows into these types at its boundary: an unknown stored state or
//! reason is an error there, never a guess.

use std::fmt;

use serde::Serialize;

use crate::domain::ids::EntryKey;

/// A meeting row's state. `creating` is internal (the row is claimed and the Zoom call may
/// be in flight) and shows as `pending` in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingState {
    Pending,
    Creating,
    Created,
    Deferred,
    Failed,
    Skipped,
    Superseded,
    Deleted,
}

/// A stored value that is none of the known codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown meeting {what} {value:?} in the database")]
pub struct UnknownCode {
    /// `state` or `reason`.
    pub what: &'static str,
    /// The stored text.
    pub value: String,
}

impl MeetingState {
    const ALL: [MeetingState; 8] = [
        MeetingState::Pending,
        MeetingState::Creating,
        MeetingState::Created,
        MeetingState::Deferred,
        MeetingState::Failed,
        MeetingState::Skipped,
        MeetingState::Superseded,
        MeetingState::Deleted,
    ];

    /// The text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            MeetingState::Pending => "pending",
            MeetingState::Creating => "creating",
            MeetingState::Created => "created",
            MeetingState::Deferred => "deferred",
            MeetingState::Failed => "failed",
            MeetingState::Skipped => "skipped",
            MeetingState::Superseded => "superseded",
            MeetingState::Deleted => "deleted",
        }
    }

    /// The state SPEC §5 shows (`creating` is still `pending` to the outside).
    pub fn api_str(self) -> &'static str {
        match self {
            MeetingState::Creating => "pending",
            other => other.as_str(),
        }
    }

    /// Parses stored text; anything else is an error.
    pub fn parse(text: &str) -> Result<MeetingState, UnknownCode> {
        MeetingState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| UnknownCode {
                what: "state",
                value: text.to_owned(),
            })
    }

    /// The API states, in the order `status` lists them.
    pub const API_STATES: [&'static str; 7] = [
        "created",
        "pending",
        "deferred",
        "failed",
        "skipped",
        "superseded",
        "deleted",
    ];

    /// May a create job claim a row in this state?
    pub fn is_claimable(self) -> bool {
        matches!(
            self,
            MeetingState::Pending | MeetingState::Deferred | MeetingState::Failed
        )
    }

    /// Does (or may) a Zoom meeting exist for a row in this state?
    pub fn may_exist_in_zoom(self) -> bool {
        matches!(self, MeetingState::Creating | MeetingState::Created)
    }
}

/// Why a meeting row is in its state: a stable snake_case code (stored in
/// `meetings.reason_code`, shown by the API) that the rules may act on, and a sentence for
/// people ([`ReasonCode::sentence_ja`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    /// R-PAST: the entry had ended when the sync (or its create job) ran.
    Ended,
    /// R-HOST: no enabled, mapped member.
    NoEnabledHost,
    /// R-WINDOW: it starts outside the window.
    OutsideWindow,
    /// J-MOTTO's start or end could not be read.
    InvalidTimes,
    /// R-DELETE: a complete listing no longer holds the entry.
    EntryDeleted,
    /// R-DELETE: the entry lost the Zoom location.
    LocationRemoved,
    /// R-RESCHEDULE `create_new`: the entry moved; this row's time was left.
    Rescheduled,
    /// The entry moved back to this row's time, whose meeting was left in Zoom.
    RescheduledBack,
    /// R-RESCHEDULE `replace`: a newer meeting replaced this one.
    Replaced,
    /// A retried create found the meeting an earlier attempt made.
    Adopted,
    /// A retried create could not look for an earlier attempt's meeting and created again.
    PossibleDuplicate,
    /// Waits for the host's daily quota (SPEC §6).
    HostDailyLimit,
    /// Waits for the account's daily quota.
    AccountDailyLimit,
    /// Waits after a rate-limit answer.
    RateLimited,
    /// A create will be retried (detail: the error).
    Retrying,
    /// A create's attempts ran out before it reached Zoom (detail: the error).
    Failed,
    /// A create's attempts ran out after a request that may have reached Zoom: the next
    /// sync's create looks for the meeting first (detail: the error).
    FailedAfterSend,
    /// Zoom refused the create (a 4xx): retried when the content changes (detail: Zoom's
    /// answer).
    ZoomRejected,
    /// The meeting was PATCHed with the entry's new content.
    Updated,
    /// Zoom no longer has the meeting (a PATCH answered 404).
    MissingInZoom,
    /// Zoom refused the update (detail: Zoom's answer).
    UpdateRejected,
    /// The update's attempts ran out: the next sync PATCHes again (detail: the error).
    UpdateFailed,
    /// The update will be retried (detail: the error).
    UpdateRetrying,
    /// The update waits for the host's daily quota (detail: which quota).
    UpdateDeferred,
    /// Zoom refused the delete (in progress, ended): not retried (detail: Zoom's answer).
    DeleteRefused,
    /// The delete's attempts ran out: the host's next complete listing pushes it again
    /// (detail: the error).
    DeleteFailed,
    /// The integration is 無効 (the Zoom token check fails, or Zoom's credentials are
    /// unset): the create, update or delete waits, its attempts untouched, until a check
    /// passes (detail: why).
    IntegrationDisabled,
}

impl ReasonCode {
    const ALL: [ReasonCode; 27] = [
        ReasonCode::Ended,
        ReasonCode::NoEnabledHost,
        ReasonCode::OutsideWindow,
        ReasonCode::InvalidTimes,
        ReasonCode::EntryDeleted,
        ReasonCode::LocationRemoved,
        ReasonCode::Rescheduled,
        ReasonCode::RescheduledBack,
        ReasonCode::Replaced,
        ReasonCode::Adopted,
        ReasonCode::PossibleDuplicate,
        ReasonCode::HostDailyLimit,
        ReasonCode::AccountDailyLimit,
        ReasonCode::RateLimited,
        ReasonCode::Retrying,
        ReasonCode::Failed,
        ReasonCode::FailedAfterSend,
        ReasonCode::ZoomRejected,
        ReasonCode::Updated,
        ReasonCode::MissingInZoom,
        ReasonCode::UpdateRejected,
        ReasonCode::UpdateFailed,
        ReasonCode::UpdateRetrying,
        ReasonCode::UpdateDeferred,
        ReasonCode::DeleteRefused,
        ReasonCode::DeleteFailed,
        ReasonCode::IntegrationDisabled,
    ];

    /// The stable code, as stored and as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::Ended => "ended",
            ReasonCode::NoEnabledHost => "no_enabled_host",
            ReasonCode::OutsideWindow => "outside_window",
            ReasonCode::InvalidTimes => "invalid_times",
            ReasonCode::EntryDeleted => "entry_deleted",
            ReasonCode::LocationRemoved => "location_removed",
            ReasonCode::Rescheduled => "rescheduled",
            ReasonCode::RescheduledBack => "rescheduled_back",
            ReasonCode::Replaced => "replaced",
            ReasonCode::Adopted => "adopted",
            ReasonCode::PossibleDuplicate => "possible_duplicate",
            ReasonCode::HostDailyLimit => "host_daily_limit",
            ReasonCode::AccountDailyLimit => "account_daily_limit",
            ReasonCode::RateLimited => "rate_limited",
            ReasonCode::Retrying => "retrying",
            ReasonCode::Failed => "failed",
            ReasonCode::FailedAfterSend => "failed_after_send",
            ReasonCode::ZoomRejected => "zoom_rejected",
            ReasonCode::Updated => "updated",
            ReasonCode::MissingInZoom => "missing_in_zoom",
            ReasonCode::UpdateRejected => "update_rejected",
            ReasonCode::UpdateFailed => "update_failed",
            ReasonCode::UpdateRetrying => "update_retrying",
            ReasonCode::UpdateDeferred => "update_deferred",
            ReasonCode::DeleteRefused => "delete_refused",
            ReasonCode::DeleteFailed => "delete_failed",
            ReasonCode::IntegrationDisabled => "integration_disabled",
        }
    }

    /// Parses a stored code; anything else is an error.
    pub fn parse(text: &str) -> Result<ReasonCode, UnknownCode> {
        ReasonCode::ALL
            .into_iter()
            .find(|code| code.as_str() == text)
            .ok_or_else(|| UnknownCode {
                what: "reason",
                value: text.to_owned(),
            })
    }

    /// The reason as a sentence for people (the CLI, the console).
    pub fn sentence_ja(self) -> &'static str {
        match self {
            ReasonCode::Ended => "同期の時点で予定が終わっていました。",
            ReasonCode::NoEnabledHost => "有効なユーザーが参加していないため、ホストがいません。",
            ReasonCode::OutsideWindow => "同期の対象期間の外に始まる予定です。",
            ReasonCode::InvalidTimes => "予定の開始・終了時刻を読み取れませんでした。",
            ReasonCode::EntryDeleted => "予定が削除されました。",
            ReasonCode::LocationRemoved => "予定の場所が Zoom ではなくなりました。",
            ReasonCode::Rescheduled => "予定の日時が変わり、新しい会議に移りました。",
            ReasonCode::RescheduledBack => "予定が元の日時に戻り、この会議を再び使います。",
            ReasonCode::Replaced => "日時の変更で新しい会議に置き換えられました。",
            ReasonCode::Adopted => "前回の試行で作られた会議を引き継ぎました。",
            ReasonCode::PossibleDuplicate => {
                "前回の試行の会議を確認できずに作成したため、重複している可能性があります。"
            }
            ReasonCode::HostDailyLimit => {
                "ホストの1日の作成上限に達したため、翌日(UTC)に作成します。"
            }
            ReasonCode::AccountDailyLimit => "アカウントの1日の上限に達したため、後で作成します。",
            ReasonCode::RateLimited => "Zoom の呼び出し制限のため、後で作成します。",
            ReasonCode::Retrying => "会議の作成に失敗したため、再試行します。",
            ReasonCode::Failed => "会議の作成に失敗しました。次の同期で再試行します。",
            ReasonCode::FailedAfterSend => {
                "会議の作成に失敗しました。次の同期で既存の会議を確認してから再試行します。"
            }
            ReasonCode::ZoomRejected => {
                "Zoom が会議の作成を拒否しました。予定の内容が変わると再試行します。"
            }
            ReasonCode::Updated => "予定の変更を会議に反映しました。",
            ReasonCode::MissingInZoom => "会議が Zoom にありません。",
            ReasonCode::UpdateRejected => "Zoom が会議の更新を拒否しました。",
            ReasonCode::UpdateFailed => "会議の更新に失敗しました。次の同期で再試行します。",
            ReasonCode::UpdateRetrying => "会議の更新に失敗したため、再試行します。",
            ReasonCode::UpdateDeferred => "ホストの1日の上限に達したため、翌日(UTC)に更新します。",
            ReasonCode::DeleteRefused => "Zoom が会議の削除を拒否しました。",
            ReasonCode::DeleteFailed => "会議の削除に失敗しました。次の同期で再試行します。",
            ReasonCode::IntegrationDisabled => {
                "Zoom連携が無効のため待機しています（Zoomの認証情報を確認できません）。「Zoom連携設定」で直すと、すぐに再開します。"
            }
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A row's reason: its code, and free text for people (e.g. Zoom's error message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: ReasonCode,
    /// Free text; never read by a rule.
    pub detail: Option<String>,
}

impl Reason {
    /// A reason with a detail, e.g. the error that caused it.
    pub fn with_detail(code: ReasonCode, detail: impl fmt::Display) -> Reason {
        Reason {
            code,
            detail: Some(detail.to_string()),
        }
    }

    /// The text the API shows: `code`, or `code: detail`.
    pub fn api_text(&self) -> String {
        match &self.detail {
            Some(detail) => format!("{}: {detail}", self.code),
            None => self.code.as_str().to_owned(),
        }
    }

    /// Reads [`Reason::api_text`] back (the CLI reads the API).
    pub fn parse_api_text(text: &str) -> Result<Reason, UnknownCode> {
        let (code, detail) = match text.split_once(": ") {
            Some((code, detail)) => (code, Some(detail.to_owned())),
            None => (text, None),
        };
        Ok(Reason {
            code: ReasonCode::parse(code)?,
            detail,
        })
    }

    /// The sentence for people, with the detail after it.
    pub fn sentence_ja(&self) -> String {
        match &self.detail {
            Some(detail) => format!("{} ({detail})", self.code.sentence_ja()),
            None => self.code.sentence_ja().to_owned(),
        }
    }
}

impl From<ReasonCode> for Reason {
    fn from(code: ReasonCode) -> Reason {
        Reason { code, detail: None }
    }
}

/// One `meetings` row, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingRow {
    pub id: i64,
    pub schedule_id: String,
    pub occurrence: String,
    /// UTC text ([`crate::domain::time::utc_text`]).
    pub start_utc: String,
    pub end_utc: String,
    pub host_user_id: Option<String>,
    pub host_email: Option<String>,
    pub topic: String,
    pub agenda: String,
    pub duration_minutes: i64,
    pub timezone: String,
    /// JSON array of e-mails.
    pub invitees: String,
    pub state: MeetingState,
    pub reason: Option<Reason>,
    pub zoom_meeting_id: Option<i64>,
    pub join_url: Option<String>,
    pub replaces_meeting_id: Option<i64>,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub claimed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// An earlier create attempt may have reached Zoom: look before creating (R-ONCE).
    pub look_first: bool,
}

impl MeetingRow {
    /// The row's state.
    pub fn state(&self) -> MeetingState {
        self.state
    }

    /// The reason's code, if any.
    pub fn reason_code(&self) -> Option<ReasonCode> {
        self.reason.as_ref().map(|reason| reason.code)
    }

    /// The reason as the API shows it (`code` or `code: detail`).
    pub fn reason_text(&self) -> Option<String> {
        self.reason.as_ref().map(Reason::api_text)
    }

    /// Does a Zoom meeting exist (or may one) for this row? Created or being created, or
    /// superseded by a reschedule and left in Zoom (R-RESCHEDULE `create_new`).
    pub fn holds_zoom_meeting(&self) -> bool {
        match self.state {
            MeetingState::Creating | MeetingState::Created => true,
            MeetingState::Superseded => self.zoom_meeting_id.is_some(),
            _ => false,
        }
    }

    /// The entry this row belongs to.
    pub fn entry_key(&self) -> EntryKey {
        EntryKey {
            schedule_id: self.schedule_id.clone(),
            occurrence: self.occurrence.clone(),
        }
    }

    /// The invitee e-mails (R-ATTENDEES).
    pub fn invitee_emails(&self) -> Vec<String> {
        serde_json::from_str(&self.invitees).unwrap_or_default()
    }
}

/// One `entries` row: the latest applied observation of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRow {
    pub schedule_id: String,
    pub occurrence: String,
    pub owner: String,
    /// JSON array of groupware ids, display order.
    pub members: String,
    pub start_utc: String,
    pub end_utc: String,
    pub host_user_id: Option<String>,
    pub current_meeting_id: Option<i64>,
    pub gone_at: Option<String>,
    /// J-MOTTO's `updated` of the listing last applied (`YYYY-MM-DDTHH:MM:SS`).
    pub listed_updated: Option<String>,
}

impl EntryRow {
    /// Whether storing `observed` would change nothing but `updated_at`.
    pub fn same_observation(&self, observed: &ObservedEntry) -> bool {
        self.gone_at.is_none()
            && self.owner == observed.owner
            && self.start_utc == observed.start_utc
            && self.end_utc == observed.end_utc
            && self.host_user_id == observed.host_user_id
            && observed
                .updated
                .as_ref()
                .is_none_or(|u| self.listed_updated.as_ref() == Some(u))
            && serde_json::from_str::<Vec<String>>(&self.members)
                .is_ok_and(|members| members == observed.members)
    }
}

/// What a listing says of one entry, as `entries` stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedEntry {
    pub owner: String,
    pub members: Vec<String>,
    pub start_utc: String,
    pub end_utc: String,
    pub host_user_id: Option<String>,
    /// J-MOTTO's `updated` (`YYYY-MM-DDTHH:MM:SS`), when the listing has it.
    pub updated: Option<String>,
}

/// What Zoom should hold for an entry at one time: everything a create or update sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingContent {
    pub start_utc: String,
    pub end_utc: String,
    pub host_user_id: Option<String>,
    pub host_email: Option<String>,
    pub topic: String,
    pub agenda: String,
    pub duration_minutes: i64,
    pub timezone: String,
    pub invitees: Vec<String>,
}

impl MeetingContent {
    /// Topic, agenda, duration, time zone and invitees equal the row's (what a PATCH sends
    /// besides the time).
    pub fn same_content(&self, row: &MeetingRow) -> bool {
        row.topic == self.topic
            && row.agenda == self.agenda
            && row.duration_minutes == self.duration_minutes
            && row.timezone == self.timezone
            && row.invitee_emails() == self.invitees
    }

    /// Starts and ends when the row does (the same R-ONCE key).
    pub fn same_time(&self, row: &MeetingRow) -> bool {
        row.start_utc == self.start_utc && row.end_utc == self.end_utc
    }
}

/// A row to write: its content, state and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMeeting {
    pub content: MeetingContent,
    pub state: MeetingState,
    pub reason: Option<Reason>,
    /// `replace` policy: the meeting to delete once this one exists.
    pub replaces_meeting_id: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unknown stored state or reason is an error, never a silent `failed`.
    #[test]
    fn unknown_codes_are_errors() {
        assert!(MeetingState::parse("bogus").is_err());
        assert!(ReasonCode::parse("delete_failed_later").is_err());
        assert!(Reason::parse_api_text("whatever: detail").is_err());
        for state in MeetingState::ALL {
            assert_eq!(MeetingState::parse(state.as_str()), Ok(state));
        }
        for code in ReasonCode::ALL {
            assert_eq!(ReasonCode::parse(code.as_str()), Ok(code));
            assert!(!code.sentence_ja().is_empty());
        }
    }

    /// The API keeps today's reason texts: `code` or `code: detail`.
    #[test]
    fn api_text_round_trips() {
        let cases = [
            (Reason::from(ReasonCode::Adopted), "adopted"),
            (
                Reason::with_detail(ReasonCode::UpdateDeferred, "host_daily_limit"),
                "update_deferred: host_daily_limit",
            ),
            (
                Reason::with_detail(ReasonCode::FailedAfterSend, "Zoom 500: oops: again"),
                "failed_after_send: Zoom 500: oops: again",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.api_text(), text);
            assert_eq!(Reason::parse_api_text(text), Ok(reason));
        }
    }
}
