//! The `entries` and `meetings` tables.
//!
//! Invariant (R-ONCE): a `meetings` row exists at most once per (schedule id, occurrence,
//! start, end) — the table's UNIQUE key — and only the job that moved a row from a
//! claimable state to `creating` may call Zoom to create its meeting.

use std::collections::HashMap;

use anyhow::Context;
use serde::Serialize;
use sqlx::SqliteConnection;

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

impl MeetingState {
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

    /// Parses stored text.
    pub fn parse(text: &str) -> anyhow::Result<MeetingState> {
        Ok(match text {
            "pending" => MeetingState::Pending,
            "creating" => MeetingState::Creating,
            "created" => MeetingState::Created,
            "deferred" => MeetingState::Deferred,
            "failed" => MeetingState::Failed,
            "skipped" => MeetingState::Skipped,
            "superseded" => MeetingState::Superseded,
            "deleted" => MeetingState::Deleted,
            other => anyhow::bail!("unknown meeting state {other:?} in the database"),
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

/// One `meetings` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MeetingRow {
    pub id: i64,
    pub schedule_id: String,
    pub occurrence: String,
    pub start_utc: String,
    pub end_utc: String,
    pub host_user_id: Option<String>,
    pub host_email: Option<String>,
    pub topic: String,
    pub agenda: String,
    pub duration_minutes: i64,
    pub timezone: String,
    pub invitees: String,
    pub state: String,
    pub reason: Option<String>,
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
    /// The row's state (a row with an unknown state cannot be written: CHECK constraint).
    pub fn state(&self) -> MeetingState {
        MeetingState::parse(&self.state).unwrap_or(MeetingState::Failed)
    }

    /// Does a Zoom meeting exist (or may one) for this row? Created or being created, or
    /// superseded by a reschedule and left in Zoom (R-RESCHEDULE `create_new`).
    pub fn holds_zoom_meeting(&self) -> bool {
        match self.state() {
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

/// What a new row holds; everything Zoom will be sent.
#[derive(Debug, Clone)]
pub struct NewMeeting<'a> {
    pub key: &'a EntryKey,
    pub start_utc: String,
    pub end_utc: String,
    pub host_user_id: Option<&'a str>,
    pub host_email: Option<&'a str>,
    pub topic: &'a str,
    pub agenda: &'a str,
    pub duration_minutes: i64,
    pub timezone: &'a str,
    pub invitees: &'a [String],
    pub state: MeetingState,
    pub reason: Option<&'a str>,
    pub replaces_meeting_id: Option<i64>,
}

const COLUMNS: &str = "id, schedule_id, occurrence, start_utc, end_utc, host_user_id, host_email, topic, agenda, duration_minutes, timezone, invitees, state, reason, zoom_meeting_id, join_url, replaces_meeting_id, attempts, next_attempt_at, claimed_at, created_at, updated_at, look_first";

fn now_text() -> String {
    super::utc_text(chrono::Utc::now())
}

/// Inserts a row unless its R-ONCE key exists; returns the new id, or `None` on conflict.
pub async fn insert_meeting(
    conn: &mut SqliteConnection,
    new: &NewMeeting<'_>,
) -> anyhow::Result<Option<i64>> {
    let now = now_text();
    let invitees = serde_json::to_string(new.invitees)?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO meetings (schedule_id, occurrence, start_utc, end_utc, host_user_id, host_email, \
         topic, agenda, duration_minutes, timezone, invitees, state, reason, replaces_meeting_id, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (schedule_id, occurrence, start_utc, end_utc) DO NOTHING RETURNING id",
    )
    .bind(&new.key.schedule_id)
    .bind(&new.key.occurrence)
    .bind(&new.start_utc)
    .bind(&new.end_utc)
    .bind(new.host_user_id)
    .bind(new.host_email)
    .bind(new.topic)
    .bind(new.agenda)
    .bind(new.duration_minutes)
    .bind(new.timezone)
    .bind(invitees)
    .bind(new.state.as_str())
    .bind(new.reason)
    .bind(new.replaces_meeting_id)
    .bind(&now)
    .bind(&now)
    .fetch_optional(&mut *conn)
    .await
    .context("cannot insert a meeting row")?;
    Ok(id)
}

/// The row of one R-ONCE key.
pub async fn meeting_by_key(
    conn: &mut SqliteConnection,
    key: &EntryKey,
    start_utc: &str,
    end_utc: &str,
) -> anyhow::Result<Option<MeetingRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM meetings WHERE schedule_id = ? AND occurrence = ? AND start_utc = ? AND end_utc = ?"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&key.schedule_id)
        .bind(&key.occurrence)
        .bind(start_utc)
        .bind(end_utc)
        .fetch_optional(&mut *conn)
        .await
        .context("cannot read a meeting row")
}

/// One row by id.
pub async fn meeting_by_id(
    conn: &mut SqliteConnection,
    id: i64,
) -> anyhow::Result<Option<MeetingRow>> {
    let sql = format!("SELECT {COLUMNS} FROM meetings WHERE id = ?");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .context("cannot read a meeting row")
}

/// Sets state and reason.
pub async fn set_state(
    conn: &mut SqliteConnection,
    id: i64,
    state: MeetingState,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE meetings SET state = ?, reason = ?, updated_at = ? WHERE id = ?")
        .bind(state.as_str())
        .bind(reason)
        .bind(now_text())
        .bind(id)
        .execute(&mut *conn)
        .await
        .context("cannot update a meeting row")?;
    Ok(())
}

/// Marks a row whose last create may have reached Zoom: its next create looks first.
pub async fn set_look_first(conn: &mut SqliteConnection, id: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE meetings SET look_first = 1 WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await
        .context("cannot flag a meeting row")?;
    Ok(())
}

/// Re-arms a row whose meeting is not in Zoom (skipped, failed, deleted) with fresh
/// content, including which meeting it replaces (`replace` policy: moving an entry back to
/// a time whose meeting was deleted must still delete the meeting it moved away from).
pub async fn rearm(
    conn: &mut SqliteConnection,
    id: i64,
    new: &NewMeeting<'_>,
) -> anyhow::Result<()> {
    let invitees = serde_json::to_string(new.invitees)?;
    sqlx::query(
        "UPDATE meetings SET host_user_id = ?, host_email = ?, topic = ?, agenda = ?, duration_minutes = ?, \
         timezone = ?, invitees = ?, state = ?, reason = ?, zoom_meeting_id = NULL, join_url = NULL, \
         attempts = 0, next_attempt_at = NULL, claimed_at = NULL, replaces_meeting_id = ?, updated_at = ? WHERE id = ?",
    )
    .bind(new.host_user_id)
    .bind(new.host_email)
    .bind(new.topic)
    .bind(new.agenda)
    .bind(new.duration_minutes)
    .bind(new.timezone)
    .bind(invitees)
    .bind(new.state.as_str())
    .bind(new.reason)
    .bind(new.replaces_meeting_id)
    .bind(now_text())
    .bind(id)
    .execute(&mut *conn)
    .await
    .context("cannot re-arm a meeting row")?;
    Ok(())
}

/// Replaces what Zoom should hold for an existing row (topic, agenda, time); used by the
/// `update` and `replace` policies before an UpdateMeeting job PATCHes it.
pub async fn set_content(
    conn: &mut SqliteConnection,
    id: i64,
    new: &NewMeeting<'_>,
) -> anyhow::Result<()> {
    let invitees = serde_json::to_string(new.invitees)?;
    sqlx::query(
        "UPDATE meetings SET start_utc = ?, end_utc = ?, topic = ?, agenda = ?, duration_minutes = ?, \
         timezone = ?, invitees = ?, updated_at = ? WHERE id = ?",
    )
    .bind(&new.start_utc)
    .bind(&new.end_utc)
    .bind(new.topic)
    .bind(new.agenda)
    .bind(new.duration_minutes)
    .bind(new.timezone)
    .bind(invitees)
    .bind(now_text())
    .bind(id)
    .execute(&mut *conn)
    .await
    .context("cannot update a meeting row's content")?;
    Ok(())
}

/// Claims a row for its create call: moves it to `creating`, counts the attempt and stamps
/// the claim. The caller decides, in the same write transaction, that the row may be
/// claimed: claimable, or `creating` with a claim too old to be in flight. Returns `None`
/// when the row is in neither state.
pub async fn claim_for_create(
    conn: &mut SqliteConnection,
    id: i64,
    claimed_by: &str,
) -> anyhow::Result<Option<MeetingRow>> {
    let sql = format!(
        "UPDATE meetings SET state = 'creating', attempts = attempts + 1, next_attempt_at = NULL, claimed_at = ?1, \
         claimed_by = ?3, updated_at = ?1 \
         WHERE id = ?2 AND state IN ('pending', 'deferred', 'failed', 'creating') RETURNING {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(now_text())
        .bind(id)
        .bind(claimed_by)
        .fetch_optional(&mut *conn)
        .await
        .context("cannot claim a meeting row")
}

/// At a graceful shutdown: the claims `claimed_by` still holds were cut off mid-call (the
/// process dropped those requests), so they end `grace` from now instead of a whole claim
/// duration after they began: long enough for Zoom to finish a request it had received.
/// Returns how many rows were shortened.
pub async fn shorten_claims(
    conn: &mut SqliteConnection,
    claimed_by: &str,
    claim_duration: chrono::Duration,
    grace: chrono::Duration,
) -> anyhow::Result<u64> {
    let claimed_at = super::utc_text(chrono::Utc::now() - claim_duration + grace);
    let changed = sqlx::query(
        "UPDATE meetings SET claimed_at = min(claimed_at, ?1) WHERE state = 'creating' AND claimed_by = ?2 AND claimed_at IS NOT NULL",
    )
    .bind(claimed_at)
    .bind(claimed_by)
    .execute(&mut *conn)
    .await
    .context("cannot shorten claims")?
    .rows_affected();
    Ok(changed)
}

/// One call's slot of a host's daily create/update quota (`host_daily_usage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSlot {
    pub host_email: String,
    /// `YYYY-MM-DD`, UTC.
    pub utc_day: String,
}

/// Reserves one of the host's `limit` calls of the day; false when all are taken. Run it in
/// the write transaction that claims the row, so that concurrent workers count exactly.
pub async fn reserve_host_slot(
    conn: &mut SqliteConnection,
    slot: &HostSlot,
    limit: u32,
) -> anyhow::Result<bool> {
    if limit == 0 {
        return Ok(false);
    }
    let used: Option<i64> = sqlx::query_scalar(
        "INSERT INTO host_daily_usage (host_email, utc_day, used) VALUES (?1, ?2, 1) \
         ON CONFLICT (host_email, utc_day) DO UPDATE SET used = used + 1 WHERE used < ?3 RETURNING used",
    )
    .bind(&slot.host_email)
    .bind(&slot.utc_day)
    .bind(i64::from(limit))
    .fetch_optional(&mut *conn)
    .await
    .context("cannot reserve a host's daily slot")?;
    Ok(used.is_some())
}

/// Gives a slot back: only for a call proven not to have made Zoom count it (Zoom answered
/// with an error, or no call was made).
pub async fn release_host_slot(conn: &mut SqliteConnection, slot: &HostSlot) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE host_daily_usage SET used = used - 1 WHERE host_email = ? AND utc_day = ? AND used > 0",
    )
    .bind(&slot.host_email)
    .bind(&slot.utc_day)
    .execute(&mut *conn)
    .await
    .context("cannot release a host's daily slot")?;
    Ok(())
}

/// Zoom says the host's day is used up (its count may include calls made by others): no
/// more slots that day.
pub async fn exhaust_host_day(
    conn: &mut SqliteConnection,
    slot: &HostSlot,
    limit: u32,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO host_daily_usage (host_email, utc_day, used) VALUES (?1, ?2, ?3) \
         ON CONFLICT (host_email, utc_day) DO UPDATE SET used = max(used, excluded.used)",
    )
    .bind(&slot.host_email)
    .bind(&slot.utc_day)
    .bind(i64::from(limit))
    .execute(&mut *conn)
    .await
    .context("cannot record a host's exhausted day")?;
    Ok(())
}

/// Calls reserved for the host on that day.
pub async fn host_slots_used(
    conn: &mut SqliteConnection,
    host_email: &str,
    utc_day: &str,
) -> anyhow::Result<i64> {
    let used: Option<i64> = sqlx::query_scalar(
        "SELECT used FROM host_daily_usage WHERE host_email = ? AND utc_day = ?",
    )
    .bind(host_email)
    .bind(utc_day)
    .fetch_optional(&mut *conn)
    .await
    .context("cannot read a host's daily usage")?;
    Ok(used.unwrap_or(0))
}

/// Records Zoom's answer to a create (its attempts are spent: the meeting's updates and
/// delete count their own).
pub async fn mark_created(
    conn: &mut SqliteConnection,
    id: i64,
    zoom_meeting_id: i64,
    join_url: Option<&str>,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE meetings SET state = 'created', zoom_meeting_id = ?, join_url = ?, reason = ?, look_first = 0, \
         claimed_at = NULL, attempts = 0, updated_at = ? WHERE id = ?",
    )
    .bind(zoom_meeting_id)
    .bind(join_url)
    .bind(reason)
    .bind(now_text())
    .bind(id)
    .execute(&mut *conn)
    .await
    .context("cannot record a created meeting")?;
    Ok(())
}

/// A create that waits (a retry, a quota): when it runs next and how the row looks until.
#[derive(Debug, Clone)]
pub struct Wait<'a> {
    /// `pending`, `deferred` (a quota), or `creating` (the last attempt may have reached
    /// Zoom and nothing may change the row until the next attempt looked).
    pub state: MeetingState,
    pub reason: &'a str,
    pub next_attempt_at: String,
    /// The next attempt looks for the meeting before creating one.
    pub look_first: bool,
    /// The wait is not a failed attempt (a daily quota): the attempt is not counted.
    pub uncount_attempt: bool,
}

/// Records a wait: the row goes to `wait.state` with its reason, unclaimed.
pub async fn mark_retry(
    conn: &mut SqliteConnection,
    id: i64,
    wait: &Wait<'_>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE meetings SET state = ?, reason = ?, next_attempt_at = ?, claimed_at = NULL, look_first = ?, \
         attempts = max(0, attempts - ?), updated_at = ? WHERE id = ?",
    )
    .bind(wait.state.as_str())
    .bind(wait.reason)
    .bind(&wait.next_attempt_at)
    .bind(wait.look_first)
    .bind(i64::from(wait.uncount_attempt))
    .bind(now_text())
    .bind(id)
    .execute(&mut *conn)
    .await
    .context("cannot record a retry")?;
    Ok(())
}

/// Forgets the attempts of a row whose last call succeeded (the next update or delete gets
/// its own `worker.max_attempts`).
pub async fn reset_attempts(conn: &mut SqliteConnection, id: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE meetings SET attempts = 0 WHERE id = ?")
        .bind(id)
        .execute(&mut *conn)
        .await
        .context("cannot reset attempts")?;
    Ok(())
}

/// Counts a non-create attempt (update/delete) and returns the new count.
pub async fn count_attempt(conn: &mut SqliteConnection, id: i64) -> anyhow::Result<i64> {
    sqlx::query_scalar(
        "UPDATE meetings SET attempts = attempts + 1 WHERE id = ? RETURNING attempts",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await
    .context("cannot count an attempt")
}

/// Filters of `GET /api/v1/meetings`.
#[derive(Debug, Clone, Default)]
pub struct MeetingFilter {
    /// Host groupware id.
    pub user: Option<String>,
    /// Stored states to include (already mapped from the API state).
    pub states: Option<Vec<&'static str>>,
    /// start >= from (UTC text).
    pub from: Option<String>,
    /// start < to (UTC text).
    pub to: Option<String>,
}

/// Rows matching `filter`, by start time.
pub async fn list_meetings(
    pool: &sqlx::SqlitePool,
    filter: &MeetingFilter,
) -> anyhow::Result<Vec<MeetingRow>> {
    let states_json = filter
        .states
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    let sql = format!(
        "SELECT {COLUMNS} FROM meetings WHERE (?1 IS NULL OR host_user_id = ?1) \
         AND (?2 IS NULL OR state IN (SELECT value FROM json_each(?2))) \
         AND (?3 IS NULL OR start_utc >= ?3) AND (?4 IS NULL OR start_utc < ?4) \
         ORDER BY start_utc, schedule_id, occurrence, id"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&filter.user)
        .bind(states_json)
        .bind(&filter.from)
        .bind(&filter.to)
        .fetch_all(pool)
        .await
        .context("cannot list meetings")
}

/// Rows per API state.
pub async fn count_by_state(
    pool: &sqlx::SqlitePool,
) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, count(*) FROM meetings GROUP BY state")
            .fetch_all(pool)
            .await
            .context("cannot count meetings")?;
    let mut counts: std::collections::BTreeMap<String, i64> = MeetingState::API_STATES
        .iter()
        .map(|s| ((*s).to_owned(), 0))
        .collect();
    for (state, count) in rows {
        let api = MeetingState::parse(&state)?.api_str();
        *counts.entry(api.to_owned()).or_default() += count;
    }
    Ok(counts)
}

/// One `entries` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    pub schedule_id: String,
    pub occurrence: String,
    pub owner: String,
    pub members: String,
    pub start_utc: String,
    pub end_utc: String,
    pub host_user_id: Option<String>,
    pub current_meeting_id: Option<i64>,
    pub gone_at: Option<String>,
    /// J-MOTTO's `updated` of the listing last applied (`YYYY-MM-DDTHH:MM:SS`).
    pub listed_updated: Option<String>,
}

const ENTRY_COLUMNS: &str = "schedule_id, occurrence, owner, members, start_utc, end_utc, host_user_id, current_meeting_id, gone_at, listed_updated";

/// The stored observation of one entry.
pub async fn entry(
    conn: &mut SqliteConnection,
    key: &EntryKey,
) -> anyhow::Result<Option<EntryRow>> {
    let sql =
        format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE schedule_id = ? AND occurrence = ?");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&key.schedule_id)
        .bind(&key.occurrence)
        .fetch_optional(&mut *conn)
        .await
        .context("cannot read an entry")
}

/// `keys` as a JSON array of `[schedule_id, occurrence]` pairs, for `json_each`.
fn keys_json(keys: &[EntryKey]) -> anyhow::Result<String> {
    let pairs: Vec<[&str; 2]> = keys
        .iter()
        .map(|k| [k.schedule_id.as_str(), k.occurrence.as_str()])
        .collect();
    Ok(serde_json::to_string(&pairs)?)
}

/// The `(schedule_id, occurrence)` pairs of a `keys_json` parameter, as a sub-select.
const KEYS_OF_JSON: &str =
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)";

/// The stored observations of `keys`, read in one statement (a slice's listing at once).
pub async fn entries_by_key(
    conn: &mut SqliteConnection,
    keys: &[EntryKey],
) -> anyhow::Result<HashMap<EntryKey, EntryRow>> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM entries WHERE (schedule_id, occurrence) IN ({KEYS_OF_JSON})"
    );
    let found: Vec<EntryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(keys_json(keys)?)
        .fetch_all(&mut *conn)
        .await
        .context("cannot read a slice's entries")?;
    Ok(found
        .into_iter()
        .map(|row| {
            let key = EntryKey {
                schedule_id: row.schedule_id.clone(),
                occurrence: row.occurrence.clone(),
            };
            (key, row)
        })
        .collect())
}

/// Meeting rows by id, read in one statement.
pub async fn meetings_by_ids(
    conn: &mut SqliteConnection,
    ids: &[i64],
) -> anyhow::Result<HashMap<i64, MeetingRow>> {
    let sql =
        format!("SELECT {COLUMNS} FROM meetings WHERE id IN (SELECT value FROM json_each(?))");
    let found: Vec<MeetingRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(serde_json::to_string(ids)?)
        .fetch_all(&mut *conn)
        .await
        .context("cannot read a slice's meeting rows")?;
    Ok(found.into_iter().map(|row| (row.id, row)).collect())
}

/// Marks entries listed again with nothing changed (see [`EntryRow::same_observation`]):
/// only `updated_at`, which says when an entry was last listed, moves — as
/// [`upsert_entry`] would have moved it.
pub async fn touch_entries(conn: &mut SqliteConnection, keys: &[EntryKey]) -> anyhow::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE entries SET updated_at = ? WHERE (schedule_id, occurrence) IN ({KEYS_OF_JSON})"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now_text())
        .bind(keys_json(keys)?)
        .execute(&mut *conn)
        .await
        .context("cannot mark entries as listed")?;
    Ok(())
}

impl EntryRow {
    /// Whether storing `observed` ([`upsert_entry`]) would change nothing but `updated_at`.
    pub fn same_observation(&self, observed: &ObservedEntry<'_>) -> bool {
        self.gone_at.is_none()
            && self.owner == observed.owner
            && self.start_utc == observed.start_utc
            && self.end_utc == observed.end_utc
            && self.host_user_id.as_deref() == observed.host_user_id
            && observed
                .updated
                .as_ref()
                .is_none_or(|u| self.listed_updated.as_ref() == Some(u))
            && serde_json::from_str::<Vec<String>>(&self.members)
                .is_ok_and(|members| members == observed.members)
    }
}

/// What a listing says of one entry.
#[derive(Debug, Clone)]
pub struct ObservedEntry<'a> {
    pub key: &'a EntryKey,
    pub owner: &'a str,
    pub members: &'a [String],
    pub start_utc: String,
    pub end_utc: String,
    pub host_user_id: Option<&'a str>,
    /// J-MOTTO's `updated` (`YYYY-MM-DDTHH:MM:SS`), when the listing has it.
    pub updated: Option<String>,
}

/// Stores the latest observation; clears `gone_at` (the entry is listed again).
pub async fn upsert_entry(
    conn: &mut SqliteConnection,
    observed: &ObservedEntry<'_>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO entries (schedule_id, occurrence, owner, members, start_utc, end_utc, host_user_id, updated_at, listed_updated) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (schedule_id, occurrence) DO UPDATE SET owner = excluded.owner, members = excluded.members, \
         start_utc = excluded.start_utc, end_utc = excluded.end_utc, host_user_id = excluded.host_user_id, \
         gone_at = NULL, gone_reason = NULL, updated_at = excluded.updated_at, \
         listed_updated = coalesce(excluded.listed_updated, listed_updated)",
    )
    .bind(&observed.key.schedule_id)
    .bind(&observed.key.occurrence)
    .bind(observed.owner)
    .bind(serde_json::to_string(observed.members)?)
    .bind(&observed.start_utc)
    .bind(&observed.end_utc)
    .bind(observed.host_user_id)
    .bind(now_text())
    .bind(&observed.updated)
    .execute(&mut *conn)
    .await
    .context("cannot store an entry")?;
    Ok(())
}

/// Points the entry at its live meeting row.
pub async fn set_current_meeting(
    conn: &mut SqliteConnection,
    key: &EntryKey,
    meeting_id: Option<i64>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE entries SET current_meeting_id = ? WHERE schedule_id = ? AND occurrence = ?",
    )
    .bind(meeting_id)
    .bind(&key.schedule_id)
    .bind(&key.occurrence)
    .execute(&mut *conn)
    .await
    .context("cannot update an entry")?;
    Ok(())
}

/// Records that a complete listing no longer holds the entry, or that it lost the location.
pub async fn mark_gone(
    conn: &mut SqliteConnection,
    key: &EntryKey,
    reason: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE entries SET gone_at = ?, gone_reason = ? WHERE schedule_id = ? AND occurrence = ? AND gone_at IS NULL",
    )
    .bind(now_text())
    .bind(reason)
    .bind(&key.schedule_id)
    .bind(&key.occurrence)
    .execute(&mut *conn)
    .await
    .context("cannot mark an entry gone")?;
    Ok(())
}

/// Meetings of `host_user_id` that still exist in Zoom although they should not — the
/// entry is gone (R-DELETE `delete`) or another row replaced them (`replace`) — because
/// their delete ran out of attempts (reason `delete_failed…`), with the reason to delete.
pub async fn failed_deletes(
    conn: &mut SqliteConnection,
    host_user_id: &str,
) -> anyhow::Result<Vec<(i64, String)>> {
    sqlx::query_as(
        "SELECT m.id, CASE WHEN e.current_meeting_id = m.id THEN coalesce(e.gone_reason, 'entry_deleted') \
         ELSE 'replaced' END FROM meetings m JOIN entries e ON e.schedule_id = m.schedule_id AND e.occurrence = m.occurrence \
         WHERE m.host_user_id = ? AND m.state = 'created' AND m.reason LIKE 'delete_failed%' \
         AND (e.gone_at IS NOT NULL OR e.current_meeting_id IS NOT m.id) ORDER BY m.id",
    )
    .bind(host_user_id)
    .fetch_all(&mut *conn)
    .await
    .context("cannot list failed deletes")
}

/// Records that `user`'s listing in sync `sync_id` held each of `keys` (one statement).
pub async fn record_sightings(
    conn: &mut SqliteConnection,
    sync_id: &str,
    user: &str,
    keys: &[EntryKey],
) -> anyhow::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    // `WHERE true` lets SQLite parse the upsert clause after a SELECT.
    let sql = format!(
        "INSERT INTO slice_sightings (sync_id, user_id, schedule_id, occurrence) \
         SELECT ?, ?, * FROM ({KEYS_OF_JSON}) WHERE true ON CONFLICT DO NOTHING"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(sync_id)
        .bind(user)
        .bind(keys_json(keys)?)
        .execute(&mut *conn)
        .await
        .context("cannot record sightings")?;
    Ok(())
}

/// Entries hosted by `user` that start in `[from, to)`, not gone yet, that `user`'s listings
/// in sync `sync_id` did not hold. Call only once every slice of that user's window listed
/// successfully: then these are gone (R-DELETE). Only entries last listed before the run
/// began count: one first recorded by a newer run is not judged by an older listing.
/// Forgets the run's sightings of `user`.
pub async fn take_unseen_entries(
    conn: &mut SqliteConnection,
    user: &str,
    from: &str,
    to: &str,
    sync_id: &str,
) -> anyhow::Result<Vec<EntryRow>> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM entries e WHERE host_user_id = ?1 AND start_utc >= ?2 AND start_utc < ?3 \
         AND gone_at IS NULL AND NOT EXISTS (SELECT 1 FROM slice_sightings s WHERE s.sync_id = ?4 AND s.user_id = ?1 \
         AND s.schedule_id = e.schedule_id AND s.occurrence = e.occurrence) \
         AND e.updated_at <= (SELECT created_at FROM sync_runs WHERE id = ?4) ORDER BY start_utc"
    );
    let unseen = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(user)
        .bind(from)
        .bind(to)
        .bind(sync_id)
        .fetch_all(&mut *conn)
        .await
        .context("cannot list unseen entries")?;
    sqlx::query("DELETE FROM slice_sightings WHERE sync_id = ? AND user_id = ?")
        .bind(sync_id)
        .bind(user)
        .execute(&mut *conn)
        .await
        .context("cannot forget sightings")?;
    Ok(unseen)
}
