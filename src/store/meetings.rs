//! The `entries` and `meetings` tables.
//!
//! Invariant (R-ONCE): a `meetings` row exists at most once per (schedule id, occurrence,
//! start, end) — the table's UNIQUE key — and only the job that moved a row from a
//! claimable state to `creating` may call Zoom to create its meeting.

use std::collections::HashMap;

use anyhow::Context;

use super::db::{self, Backend, Conn, Pool};
pub use crate::domain::meeting::{
    EntryRow, MeetingContent, MeetingRow, MeetingState, NewMeeting, ObservedEntry, Reason,
    ReasonCode,
};
use crate::domain::{
    decision::GoneReason,
    ids::EntryKey,
    plan::{RowChange, RowRef},
};

/// A stored code the domain does not know, as a decode error of its column.
fn unknown(column: &str, error: crate::domain::meeting::UnknownCode) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(error),
    }
}

// Decodes a row at the store boundary: state and reason are typed, an unknown stored value
// is an error.
crate::from_row!(MeetingRow, |row| {
    let state: String = row.try_get("state")?;
    let code: Option<String> = row.try_get("reason_code")?;
    let reason = match code {
        Some(code) => Some(Reason {
            code: ReasonCode::parse(&code).map_err(|e| unknown("reason_code", e))?,
            detail: row.try_get("reason_detail")?,
        }),
        None => None,
    };
    Ok(MeetingRow {
        id: row.try_get("id")?,
        schedule_id: row.try_get("schedule_id")?,
        occurrence: row.try_get("occurrence")?,
        start_utc: row.try_get("start_utc")?,
        end_utc: row.try_get("end_utc")?,
        host_user_id: row.try_get("host_user_id")?,
        host_email: row.try_get("host_email")?,
        topic: row.try_get("topic")?,
        agenda: row.try_get("agenda")?,
        duration_minutes: row.try_get("duration_minutes")?,
        timezone: row.try_get("timezone")?,
        invitees: row.try_get("invitees")?,
        state: MeetingState::parse(&state).map_err(|e| unknown("state", e))?,
        reason,
        zoom_meeting_id: row.try_get("zoom_meeting_id")?,
        join_url: row.try_get("join_url")?,
        replaces_meeting_id: row.try_get("replaces_meeting_id")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        claimed_at: row.try_get("claimed_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        look_first: row.try_get("look_first")?,
    })
});

crate::from_row!(EntryRow, |row| {
    Ok(EntryRow {
        schedule_id: row.try_get("schedule_id")?,
        occurrence: row.try_get("occurrence")?,
        owner: row.try_get("owner")?,
        members: row.try_get("members")?,
        start_utc: row.try_get("start_utc")?,
        end_utc: row.try_get("end_utc")?,
        host_user_id: row.try_get("host_user_id")?,
        current_meeting_id: row.try_get("current_meeting_id")?,
        gone_at: row.try_get("gone_at")?,
        listed_updated: row.try_get("listed_updated")?,
    })
});

const COLUMNS: &str = "id, schedule_id, occurrence, start_utc, end_utc, host_user_id, host_email, topic, agenda, duration_minutes, timezone, invitees, state, reason_code, reason_detail, zoom_meeting_id, join_url, replaces_meeting_id, attempts, next_attempt_at, claimed_at, created_at, updated_at, look_first";

fn now_text() -> String {
    super::utc_text(chrono::Utc::now())
}

/// Inserts a row unless its R-ONCE key exists; returns the new id, or `None` on conflict.
pub async fn insert_meeting(
    conn: &mut Conn,
    key: &EntryKey,
    new: &NewMeeting,
) -> anyhow::Result<Option<i64>> {
    let now = now_text();
    let content = &new.content;
    let reason = new.reason.as_ref();
    let id: Option<i64> = db::query(
        "INSERT INTO meetings (schedule_id, occurrence, start_utc, end_utc, host_user_id, host_email, \
         topic, agenda, duration_minutes, timezone, invitees, state, reason_code, reason_detail, replaces_meeting_id, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         ON CONFLICT (schedule_id, occurrence, start_utc, end_utc) DO NOTHING RETURNING id",
    )
    .bind(&key.schedule_id)
    .bind(&key.occurrence)
    .bind(&content.start_utc)
    .bind(&content.end_utc)
    .bind(&content.host_user_id)
    .bind(&content.host_email)
    .bind(&content.topic)
    .bind(&content.agenda)
    .bind(content.duration_minutes)
    .bind(&content.timezone)
    .bind(serde_json::to_string(&content.invitees)?)
    .bind(new.state.as_str())
    .bind(reason.map(|r| r.code.as_str()))
    .bind(reason.and_then(|r| r.detail.as_deref()))
    .bind(new.replaces_meeting_id)
    .bind(&now)
    .bind(&now)
    .scalar_optional(&mut *conn)
    .await
    .context("cannot insert a meeting row")?;
    Ok(id)
}

/// The row of one R-ONCE key.
pub async fn meeting_by_key(
    conn: &mut Conn,
    key: &EntryKey,
    start_utc: &str,
    end_utc: &str,
) -> anyhow::Result<Option<MeetingRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM meetings WHERE schedule_id = $1 AND occurrence = $2 AND start_utc = $3 AND end_utc = $4"
    );
    db::query_owned(sql)
        .bind(&key.schedule_id)
        .bind(&key.occurrence)
        .bind(start_utc)
        .bind(end_utc)
        .fetch_optional(&mut *conn)
        .await
        .context("cannot read a meeting row")
}

/// One row by id.
pub async fn meeting_by_id(conn: &mut Conn, id: i64) -> anyhow::Result<Option<MeetingRow>> {
    let sql = format!("SELECT {COLUMNS} FROM meetings WHERE id = $1");
    db::query_owned(sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .context("cannot read a meeting row")
}

/// Sets state and reason.
pub async fn set_state(
    conn: &mut Conn,
    id: i64,
    state: MeetingState,
    reason: Option<Reason>,
) -> anyhow::Result<()> {
    let reason = reason.as_ref();
    db::query(
        "UPDATE meetings SET state = $1, reason_code = $2, reason_detail = $3, updated_at = $4 WHERE id = $5",
    )
    .bind(state.as_str())
    .bind(reason.map(|r| r.code.as_str()))
    .bind(reason.and_then(|r| r.detail.as_deref()))
    .bind(now_text())
    .bind(id)
    .execute(&mut *conn)
    .await
    .context("cannot update a meeting row")?;
    Ok(())
}

/// Removes a row that holds no meeting (the entry moves to its time under `update`).
pub async fn delete_meeting_row(conn: &mut Conn, id: i64) -> anyhow::Result<()> {
    db::query("DELETE FROM meetings WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .context("cannot remove a meeting row")?;
    Ok(())
}

/// Marks a row whose last create may have reached Zoom: its next create looks first.
pub async fn set_look_first(conn: &mut Conn, id: i64) -> anyhow::Result<()> {
    db::query("UPDATE meetings SET look_first = TRUE WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .context("cannot flag a meeting row")?;
    Ok(())
}

/// Re-arms a row whose meeting is not in Zoom (skipped, failed, deleted) with fresh
/// content, including which meeting it replaces (`replace` policy: moving an entry back to
/// a time whose meeting was deleted must still delete the meeting it moved away from).
pub async fn rearm(conn: &mut Conn, id: i64, new: &NewMeeting) -> anyhow::Result<()> {
    let content = &new.content;
    let reason = new.reason.as_ref();
    db::query(
        "UPDATE meetings SET host_user_id = $1, host_email = $2, topic = $3, agenda = $4, duration_minutes = $5, \
         timezone = $6, invitees = $7, state = $8, reason_code = $9, reason_detail = $10, zoom_meeting_id = NULL, \
         join_url = NULL, attempts = 0, next_attempt_at = NULL, claimed_at = NULL, replaces_meeting_id = $11, \
         updated_at = $12 WHERE id = $13",
    )
    .bind(&content.host_user_id)
    .bind(&content.host_email)
    .bind(&content.topic)
    .bind(&content.agenda)
    .bind(content.duration_minutes)
    .bind(&content.timezone)
    .bind(serde_json::to_string(&content.invitees)?)
    .bind(new.state.as_str())
    .bind(reason.map(|r| r.code.as_str()))
    .bind(reason.and_then(|r| r.detail.as_deref()))
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
pub async fn set_content(conn: &mut Conn, id: i64, content: &MeetingContent) -> anyhow::Result<()> {
    db::query(
        "UPDATE meetings SET start_utc = $1, end_utc = $2, topic = $3, agenda = $4, duration_minutes = $5, \
         timezone = $6, invitees = $7, updated_at = $8 WHERE id = $9",
    )
    .bind(&content.start_utc)
    .bind(&content.end_utc)
    .bind(&content.topic)
    .bind(&content.agenda)
    .bind(content.duration_minutes)
    .bind(&content.timezone)
    .bind(serde_json::to_string(&content.invitees)?)
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
    conn: &mut Conn,
    id: i64,
    claimed_by: &str,
) -> anyhow::Result<Option<MeetingRow>> {
    let sql = format!(
        "UPDATE meetings SET state = 'creating', attempts = attempts + 1, next_attempt_at = NULL, claimed_at = $1, \
         claimed_by = $3, updated_at = $1 \
         WHERE id = $2 AND state IN ('pending', 'deferred', 'failed', 'creating') RETURNING {COLUMNS}"
    );
    db::query_owned(sql)
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
    conn: &mut Conn,
    claimed_by: &str,
    claim_duration: chrono::Duration,
    grace: chrono::Duration,
) -> anyhow::Result<u64> {
    let claimed_at = super::utc_text(chrono::Utc::now() - claim_duration + grace);
    // The earlier of the two instants (RFC 3339 UTC text orders as time does).
    let changed = db::query(
        "UPDATE meetings SET claimed_at = CASE WHEN claimed_at < $1 THEN claimed_at ELSE $1 END \
         WHERE state = 'creating' AND claimed_by = $2 AND claimed_at IS NOT NULL",
    )
    .bind(claimed_at)
    .bind(claimed_by)
    .execute(&mut *conn)
    .await
    .context("cannot shorten claims")?;
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
    conn: &mut Conn,
    slot: &HostSlot,
    limit: u32,
) -> anyhow::Result<bool> {
    if limit == 0 {
        return Ok(false);
    }
    // The stored row's column is named by its table: PostgreSQL finds a bare `used` in an
    // upsert ambiguous (it might be `excluded.used`).
    let used: Option<i64> = db::query(
        "INSERT INTO host_daily_usage (host_email, utc_day, used) VALUES ($1, $2, 1) \
         ON CONFLICT (host_email, utc_day) DO UPDATE SET used = host_daily_usage.used + 1 \
         WHERE host_daily_usage.used < $3 RETURNING used",
    )
    .bind(&slot.host_email)
    .bind(&slot.utc_day)
    .bind(i64::from(limit))
    .scalar_optional(&mut *conn)
    .await
    .context("cannot reserve a host's daily slot")?;
    Ok(used.is_some())
}

/// Gives a slot back: only for a call proven not to have made Zoom count it (Zoom answered
/// with an error, or no call was made).
pub async fn release_host_slot(conn: &mut Conn, slot: &HostSlot) -> anyhow::Result<()> {
    db::query(
        "UPDATE host_daily_usage SET used = used - 1 WHERE host_email = $1 AND utc_day = $2 AND used > 0",
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
pub async fn exhaust_host_day(conn: &mut Conn, slot: &HostSlot, limit: u32) -> anyhow::Result<()> {
    // The greater of the stored and the new count.
    db::query(
        "INSERT INTO host_daily_usage (host_email, utc_day, used) VALUES ($1, $2, $3) \
         ON CONFLICT (host_email, utc_day) DO UPDATE SET used = CASE \
         WHEN host_daily_usage.used > excluded.used THEN host_daily_usage.used ELSE excluded.used END",
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
    conn: &mut Conn,
    host_email: &str,
    utc_day: &str,
) -> anyhow::Result<i64> {
    let used: Option<i64> =
        db::query("SELECT used FROM host_daily_usage WHERE host_email = $1 AND utc_day = $2")
            .bind(host_email)
            .bind(utc_day)
            .scalar_optional(&mut *conn)
            .await
            .context("cannot read a host's daily usage")?;
    Ok(used.unwrap_or(0))
}

/// Records Zoom's answer to a create (its attempts are spent: the meeting's updates and
/// delete count their own).
pub async fn mark_created(
    conn: &mut Conn,
    id: i64,
    zoom_meeting_id: i64,
    join_url: Option<&str>,
    reason: Option<ReasonCode>,
) -> anyhow::Result<()> {
    db::query(
        "UPDATE meetings SET state = 'created', zoom_meeting_id = $1, join_url = $2, reason_code = $3, \
         reason_detail = NULL, look_first = FALSE, claimed_at = NULL, attempts = 0, updated_at = $4 WHERE id = $5",
    )
    .bind(zoom_meeting_id)
    .bind(join_url)
    .bind(reason.map(ReasonCode::as_str))
    .bind(now_text())
    .bind(id)
    .execute(&mut *conn)
    .await
    .context("cannot record a created meeting")?;
    Ok(())
}

/// A create that waits (a retry, a quota): when it runs next and how the row looks until.
#[derive(Debug, Clone)]
pub struct Wait {
    /// `pending`, `deferred` (a quota), or `creating` (the last attempt may have reached
    /// Zoom and nothing may change the row until the next attempt looked).
    pub state: MeetingState,
    pub reason: Reason,
    pub next_attempt_at: String,
    /// The next attempt looks for the meeting before creating one.
    pub look_first: bool,
    /// The wait is not a failed attempt (a daily quota): the attempt is not counted.
    pub uncount_attempt: bool,
}

/// Records a wait: the row goes to `wait.state` with its reason, unclaimed.
pub async fn mark_retry(conn: &mut Conn, id: i64, wait: &Wait) -> anyhow::Result<()> {
    db::query(
        "UPDATE meetings SET state = $1, reason_code = $2, reason_detail = $3, next_attempt_at = $4, claimed_at = NULL, \
         look_first = $5, attempts = CASE WHEN attempts > $6 THEN attempts - $6 ELSE 0 END, updated_at = $7 \
         WHERE id = $8",
    )
    .bind(wait.state.as_str())
    .bind(wait.reason.code.as_str())
    .bind(&wait.reason.detail)
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
pub async fn reset_attempts(conn: &mut Conn, id: i64) -> anyhow::Result<()> {
    db::query("UPDATE meetings SET attempts = 0 WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .context("cannot reset attempts")?;
    Ok(())
}

/// Counts a non-create attempt (update/delete) and returns the new count.
pub async fn count_attempt(conn: &mut Conn, id: i64) -> anyhow::Result<i64> {
    db::query("UPDATE meetings SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts")
        .bind(id)
        .scalar(&mut *conn)
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
pub async fn list_meetings(pool: &Pool, filter: &MeetingFilter) -> anyhow::Result<Vec<MeetingRow>> {
    let states_json = filter
        .states
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    let sql = format!(
        "SELECT {COLUMNS} FROM meetings WHERE ($1 IS NULL OR host_user_id = $1) \
         AND ($2 IS NULL OR state IN ({})) \
         AND ($3 IS NULL OR start_utc >= $3) AND ($4 IS NULL OR start_utc < $4) \
         ORDER BY start_utc, schedule_id, occurrence, id",
        db::json_strings(pool.backend(), 2)
    );
    db::query_owned(sql)
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
    pool: &Pool,
) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = db::query("SELECT state, count(*) FROM meetings GROUP BY state")
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

const ENTRY_COLUMNS: &str = "schedule_id, occurrence, owner, members, start_utc, end_utc, host_user_id, current_meeting_id, gone_at, listed_updated";

/// The stored observation of one entry.
pub async fn entry(conn: &mut Conn, key: &EntryKey) -> anyhow::Result<Option<EntryRow>> {
    let sql =
        format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE schedule_id = $1 AND occurrence = $2");
    db::query_owned(sql)
        .bind(&key.schedule_id)
        .bind(&key.occurrence)
        .fetch_optional(&mut *conn)
        .await
        .context("cannot read an entry")
}

/// `keys` as a JSON array of `[schedule_id, occurrence]` pairs, for [`keys_of_json`].
fn keys_json(keys: &[EntryKey]) -> anyhow::Result<String> {
    let pairs: Vec<[&str; 2]> = keys
        .iter()
        .map(|k| [k.schedule_id.as_str(), k.occurrence.as_str()])
        .collect();
    Ok(serde_json::to_string(&pairs)?)
}

/// The `(schedule_id, occurrence)` pairs of a [`keys_json`] parameter `$n`, as a sub-select
/// of two columns.
fn keys_of_json(backend: Backend, n: usize) -> String {
    db::json_pairs(backend, n)
}

/// The stored observations of `keys`, read in one statement (a slice's listing at once).
pub async fn entries_by_key(
    conn: &mut Conn,
    keys: &[EntryKey],
) -> anyhow::Result<HashMap<EntryKey, EntryRow>> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM entries WHERE (schedule_id, occurrence) IN ({})",
        keys_of_json(conn.backend(), 1)
    );
    let found: Vec<EntryRow> = db::query_owned(sql)
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

/// Every meeting row of each of `keys` (any time), read in one statement.
pub async fn meetings_of_entries(
    conn: &mut Conn,
    keys: &[EntryKey],
) -> anyhow::Result<HashMap<EntryKey, Vec<MeetingRow>>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM meetings WHERE (schedule_id, occurrence) IN ({}) ORDER BY id",
        keys_of_json(conn.backend(), 1)
    );
    let found: Vec<MeetingRow> = db::query_owned(sql)
        .bind(keys_json(keys)?)
        .fetch_all(&mut *conn)
        .await
        .context("cannot read a slice's meeting rows")?;
    let mut by_key: HashMap<EntryKey, Vec<MeetingRow>> = HashMap::new();
    for row in found {
        by_key.entry(row.entry_key()).or_default().push(row);
    }
    Ok(by_key)
}

/// Every meeting row of one entry key (any time).
pub async fn meetings_of_entry(conn: &mut Conn, key: &EntryKey) -> anyhow::Result<Vec<MeetingRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM meetings WHERE schedule_id = $1 AND occurrence = $2 ORDER BY id"
    );
    db::query_owned(sql)
        .bind(&key.schedule_id)
        .bind(&key.occurrence)
        .fetch_all(&mut *conn)
        .await
        .context("cannot read an entry's meeting rows")
}

/// Applies one row change of a plan ([`crate::domain::plan`]) to the rows of `key`.
/// `inserted` holds the id of the row the plan inserted, once it is.
pub async fn apply_row_change(
    conn: &mut Conn,
    key: &EntryKey,
    change: &RowChange,
    inserted: &mut Option<i64>,
) -> anyhow::Result<()> {
    match change {
        RowChange::StoreEntry(observed) => upsert_entry(conn, key, observed).await,
        RowChange::TouchEntry => touch_entries(conn, std::slice::from_ref(key)).await,
        RowChange::MarkGone(reason) => mark_gone(conn, key, *reason).await,
        RowChange::SetCurrent(row) => {
            set_current_meeting(conn, key, Some(resolve(*row, *inserted)?)).await
        }
        RowChange::InsertMeeting(new) => {
            let id = insert_meeting(conn, key, new).await?.with_context(|| {
                format!(
                    "a meeting row of {key:?} at {} exists already",
                    new.content.start_utc
                )
            })?;
            *inserted = Some(id);
            Ok(())
        }
        RowChange::Rearm { id, row } => rearm(conn, *id, row).await,
        RowChange::SetContent { id, content } => set_content(conn, *id, content).await,
        RowChange::SetState { id, state, reason } => {
            set_state(conn, *id, *state, reason.clone()).await
        }
        RowChange::DeleteMeeting { id } => delete_meeting_row(conn, *id).await,
    }
}

/// The id a [`RowRef`] names.
pub fn resolve(row: RowRef, inserted: Option<i64>) -> anyhow::Result<i64> {
    match row {
        RowRef::Id(id) => Ok(id),
        RowRef::Inserted => inserted.context("a plan refers to a row it did not insert"),
    }
}

/// Marks entries listed again with nothing changed (see [`EntryRow::same_observation`]):
/// only `updated_at`, which says when an entry was last listed, moves — as
/// [`upsert_entry`] would have moved it.
pub async fn touch_entries(conn: &mut Conn, keys: &[EntryKey]) -> anyhow::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE entries SET updated_at = $1 WHERE (schedule_id, occurrence) IN ({})",
        keys_of_json(conn.backend(), 2)
    );
    db::query_owned(sql)
        .bind(now_text())
        .bind(keys_json(keys)?)
        .execute(&mut *conn)
        .await
        .context("cannot mark entries as listed")?;
    Ok(())
}

/// Stores the latest observation; clears `gone_at` (the entry is listed again).
pub async fn upsert_entry(
    conn: &mut Conn,
    key: &EntryKey,
    observed: &ObservedEntry,
) -> anyhow::Result<()> {
    // `entries.listed_updated`: the stored row's (a bare name is ambiguous to PostgreSQL).
    db::query(
        "INSERT INTO entries (schedule_id, occurrence, owner, members, start_utc, end_utc, host_user_id, updated_at, listed_updated) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (schedule_id, occurrence) DO UPDATE SET owner = excluded.owner, members = excluded.members, \
         start_utc = excluded.start_utc, end_utc = excluded.end_utc, host_user_id = excluded.host_user_id, \
         gone_at = NULL, gone_reason = NULL, updated_at = excluded.updated_at, \
         listed_updated = COALESCE(excluded.listed_updated, entries.listed_updated)",
    )
    .bind(&key.schedule_id)
    .bind(&key.occurrence)
    .bind(&observed.owner)
    .bind(serde_json::to_string(&observed.members)?)
    .bind(&observed.start_utc)
    .bind(&observed.end_utc)
    .bind(&observed.host_user_id)
    .bind(now_text())
    .bind(&observed.updated)
    .execute(&mut *conn)
    .await
    .context("cannot store an entry")?;
    Ok(())
}

/// Points the entry at its live meeting row.
pub async fn set_current_meeting(
    conn: &mut Conn,
    key: &EntryKey,
    meeting_id: Option<i64>,
) -> anyhow::Result<()> {
    db::query(
        "UPDATE entries SET current_meeting_id = $1 WHERE schedule_id = $2 AND occurrence = $3",
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
pub async fn mark_gone(conn: &mut Conn, key: &EntryKey, reason: GoneReason) -> anyhow::Result<()> {
    db::query(
        "UPDATE entries SET gone_at = $1, gone_reason = $2 WHERE schedule_id = $3 AND occurrence = $4 AND gone_at IS NULL",
    )
    .bind(now_text())
    .bind(reason.as_str())
    .bind(&key.schedule_id)
    .bind(&key.occurrence)
    .execute(&mut *conn)
    .await
    .context("cannot mark an entry gone")?;
    Ok(())
}

/// Meetings of `host_user_id` that still exist in Zoom although they should not — the
/// entry is gone (R-DELETE `delete`) or another row replaced them (`replace`) — because
/// their delete ran out of attempts (reason `delete_failed`), with the reason to delete.
pub async fn failed_deletes(
    conn: &mut Conn,
    host_user_id: &str,
) -> anyhow::Result<Vec<(i64, ReasonCode)>> {
    let found: Vec<(i64, String)> = db::query(
        "SELECT m.id, CASE WHEN e.current_meeting_id = m.id THEN COALESCE(e.gone_reason, 'entry_deleted') \
         ELSE 'replaced' END FROM meetings m JOIN entries e ON e.schedule_id = m.schedule_id AND e.occurrence = m.occurrence \
         WHERE m.host_user_id = $1 AND m.state = 'created' AND m.reason_code = 'delete_failed' \
         AND (e.gone_at IS NOT NULL OR e.current_meeting_id IS NULL OR e.current_meeting_id <> m.id) ORDER BY m.id",
    )
    .bind(host_user_id)
    .fetch_all(&mut *conn)
    .await
    .context("cannot list failed deletes")?;
    found
        .into_iter()
        .map(|(id, reason)| Ok((id, ReasonCode::parse(&reason)?)))
        .collect()
}

/// Records that `user`'s listing in sync `sync_id` held each of `keys` (one statement).
pub async fn record_sightings(
    conn: &mut Conn,
    sync_id: &str,
    user: &str,
    keys: &[EntryKey],
) -> anyhow::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    // `WHERE true` lets SQLite parse the upsert clause after a SELECT; PostgreSQL wants the
    // sub-select named.
    let sql = format!(
        "INSERT INTO slice_sightings (sync_id, user_id, schedule_id, occurrence) \
         SELECT $1, $2, k.a, k.b FROM ({}) AS k WHERE true ON CONFLICT DO NOTHING",
        keys_of_json(conn.backend(), 3)
    );
    db::query_owned(sql)
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
    conn: &mut Conn,
    user: &str,
    from: &str,
    to: &str,
    sync_id: &str,
) -> anyhow::Result<Vec<EntryRow>> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM entries e WHERE host_user_id = $1 AND start_utc >= $2 AND start_utc < $3 \
         AND gone_at IS NULL AND NOT EXISTS (SELECT 1 FROM slice_sightings s WHERE s.sync_id = $4 AND s.user_id = $1 \
         AND s.schedule_id = e.schedule_id AND s.occurrence = e.occurrence) \
         AND e.updated_at <= (SELECT created_at FROM sync_runs WHERE id = $4) ORDER BY start_utc"
    );
    let unseen = db::query_owned(sql)
        .bind(user)
        .bind(from)
        .bind(to)
        .bind(sync_id)
        .fetch_all(&mut *conn)
        .await
        .context("cannot list unseen entries")?;
    db::query("DELETE FROM slice_sightings WHERE sync_id = $1 AND user_id = $2")
        .bind(sync_id)
        .bind(user)
        .execute(&mut *conn)
        .await
        .context("cannot forget sightings")?;
    Ok(unseen)
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;

    /// A row whose stored state or reason is no known code fails to decode: it is never
    /// read as some other state (a silent `failed` once).
    #[tokio::test]
    async fn unknown_stored_state_or_reason_is_an_error() {
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", folder.path().join("codes.db").display());
        let store = crate::store::Store::connect(&url)
            .await
            .expect("database opens");
        let mut conn = store.db().acquire().await.expect("connection");
        // SQLite only: lets the test store codes the CHECK constraints refuse.
        conn.raw("PRAGMA ignore_check_constraints = ON")
            .await
            .expect("pragma");
        let cases = [
            ("created", Some("delete_failed"), true),
            ("created", Some("delete_failed_twice"), false),
            ("vanished", None, false),
        ];
        for (id, (state, reason, readable)) in (1_i64..).zip(cases) {
            db::query(
                "INSERT INTO meetings (id, schedule_id, occurrence, start_utc, end_utc, topic, agenda, \
                 duration_minutes, timezone, state, reason_code, created_at, updated_at) \
                 VALUES ($1, $2, '', 's', 'e', 't', 'a', 60, 'Asia/Tokyo', $3, $4, 'c', 'u')",
            )
            .bind(id)
            .bind(format!("88{id}"))
            .bind(state)
            .bind(reason)
            .execute(&mut conn)
            .await
            .expect("row written");
            let read = meeting_by_id(&mut conn, id).await;
            assert_eq!(read.is_ok(), readable, "{state} {reason:?}: {read:?}");
        }
    }

    /// A slice reads every meeting row of its listed keys through the R-ONCE key's index,
    /// not by scanning `meetings` (issue 5: a no-change resync of 100k entries).
    #[tokio::test]
    async fn a_slice_reads_its_meeting_rows_by_key() {
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", folder.path().join("plan.db").display());
        let store = crate::store::Store::connect(&url)
            .await
            .expect("database opens");
        // SQLite's plan (PostgreSQL plans by its own statistics).
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT {COLUMNS} FROM meetings WHERE (schedule_id, occurrence) IN ({})",
            keys_of_json(Backend::Sqlite, 1)
        );
        let plan: Vec<(i64, i64, i64, String)> = db::query_owned(sql)
            .bind("[]")
            .fetch_all(store.db())
            .await
            .expect("plan");
        let steps: Vec<&str> = plan.iter().map(|step| step.3.as_str()).collect();
        assert!(
            steps
                .iter()
                .any(|s| s.contains("sqlite_autoindex_meetings_1 (schedule_id=? AND occurrence=?)")),
            "{steps:?}"
        );
    }

    /// The migration splits today's reason texts into a code and its detail, so the API
    /// shows the same text afterwards.
    #[tokio::test]
    async fn migration_splits_reason_texts() {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .expect("memory database");
        sqlx::raw_sql("CREATE TABLE meetings (id INTEGER PRIMARY KEY, reason TEXT)")
            .execute(&mut conn)
            .await
            .expect("table");
        let texts = [
            None,
            Some("adopted"),
            Some("update_deferred: host_daily_limit"),
            Some("failed_after_send: Zoom answered 500: try: later"),
        ];
        for text in texts {
            sqlx::query("INSERT INTO meetings (reason) VALUES (?)")
                .bind(text)
                .execute(&mut conn)
                .await
                .expect("row");
        }
        sqlx::raw_sql(include_str!(
            "../../migrations/20261201030001_meeting_reason_code.sql"
        ))
        .execute(&mut conn)
        .await
        .expect("migration");
        let rows: Vec<(Option<String>, Option<String>)> =
            sqlx::query_as("SELECT reason_code, reason_detail FROM meetings ORDER BY id")
                .fetch_all(&mut conn)
                .await
                .expect("read");
        for (text, (code, detail)) in texts.into_iter().zip(rows) {
            let reason = code.map(|code| Reason {
                code: ReasonCode::parse(&code).expect("known code"),
                detail,
            });
            assert_eq!(reason.map(|r| r.api_text()).as_deref(), text);
        }
    }
}
