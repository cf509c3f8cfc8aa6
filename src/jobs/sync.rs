//! `SyncWindow` and `FetchSlice`: from "sync these users" to one decision per entry.

use std::{
    collections::{HashMap, HashSet},
    time::Instant,
};

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use super::{
    CreateMeeting, DeleteMeeting, Engine, FetchSlice, PushOptions, SyncWindow, UpdateMeeting, push,
};
use crate::{
    config::DeletePolicy,
    domain::{
        decision::{self, CurrentMeeting, Decision, GoneReason, Observation, SkipReason},
        host::{choose_host, invitees},
        ids::EntryKey,
        time::{meeting_time, zoom_timezone},
        topic::{build_agenda, build_topic},
        window::{MonthSlice, SyncWindow as Window},
    },
    groupware::{GroupwareError, ScheduleEntry},
    store::{
        MeetingRow, MeetingState,
        meetings::{self as rows, EntryRow, NewMeeting, ObservedEntry},
        parse_utc, sync_state, utc_text,
    },
};

/// How J-MOTTO's `updated` is stored (sortable as text).
const UPDATED_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Reason prefix of a row Zoom refused (a 4xx): retried only when its content changes.
pub const REJECTED: &str = "zoom_rejected";
/// Reason prefix of a row whose retries ran out after a request that may have reached Zoom.
pub const FAILED_AFTER_SEND: &str = "failed_after_send";

/// Computes the window (R-WINDOW, at the time the job runs) and pushes one `FetchSlice` per
/// (user, month), idempotently: a re-run pushes nothing twice.
pub async fn run_sync_window(engine: &Engine, job: &SyncWindow) -> anyhow::Result<()> {
    let settings = &engine.settings;
    let started = Instant::now();
    let window = Window::containing(
        engine.clock.now(),
        settings.groupware.timezone,
        settings.sync.months,
    )
    .context("cannot compute the sync window")?;
    let users: Vec<String> = match &job.users {
        Some(users) => users
            .iter()
            .filter(|u| engine.enabled_users.contains(u))
            .cloned()
            .collect(),
        None => engine
            .enabled_users
            .ids()
            .map(|id| id.as_str().to_owned())
            .collect(),
    };
    let mut tx = engine.store.begin_write().await?;
    sync_state::insert_sync_run(
        &mut tx,
        &job.sync_id,
        "job",
        job.users.as_deref(),
        job.request_id.as_deref(),
    )
    .await?;
    sync_state::set_sync_window(
        &mut tx,
        &job.sync_id,
        &utc_text(window.from_utc()),
        &utc_text(window.to_utc()),
    )
    .await?;
    for user in &users {
        for month in &window.months {
            let label = month.label();
            sync_state::insert_slice(&mut tx, &job.sync_id, user, &label).await?;
            let slice = FetchSlice {
                sync_id: job.sync_id.clone(),
                user_id: user.clone(),
                month: label.clone(),
                request_id: job.request_id.clone(),
            };
            let key = format!("{}:{}:{}", job.sync_id, user, label);
            push(
                &mut tx,
                &slice,
                PushOptions {
                    idempotency_key: Some(key),
                    ..PushOptions::default()
                },
            )
            .await?;
        }
    }
    tx.commit()
        .await
        .context("cannot commit the sync's slices")?;
    tracing::info!(
        sync.id = %job.sync_id,
        users = users.len(),
        months = window.months.len(),
        window.from = %window.from.to_rfc3339(),
        window.to = %window.to.to_rfc3339(),
        split_ms = started.elapsed().as_secs_f64() * 1e3,
        "sync window split into slices"
    );
    Ok(())
}

/// Lists one (user, month), decides per entry, and — when this was the user's last slice of
/// the run and every slice succeeded — decides which of the user's entries are gone.
pub async fn run_fetch_slice(engine: &Engine, job: &FetchSlice) -> anyhow::Result<()> {
    let month = MonthSlice::parse_label(&job.month)
        .with_context(|| format!("bad month {:?} in a FetchSlice job", job.month))?;
    let window = {
        let mut conn = engine.store.pool().acquire().await?;
        let (from, to) = sync_state::sync_window(&mut conn, &job.sync_id)
            .await?
            .with_context(|| format!("sync run {} has no window", job.sync_id))?;
        (parse_utc(&from)?, parse_utc(&to)?)
    };
    let started = Instant::now();
    let listing = engine
        .groupware
        .list_events(&job.user_id, month.first_day, month.last_day)
        .await;
    let listed = started.elapsed();
    let entries = match listing {
        Ok(entries) => entries,
        Err(error) => return record_listing_failure(engine, job, error).await,
    };
    let now = engine.clock.now();
    let asked = Instant::now();
    let mut tx = engine.store.begin_write().await?;
    let began = Instant::now();
    let keys: Vec<EntryKey> = entries.iter().map(|e| e.key.clone()).collect();
    rows::record_sightings(&mut tx, &job.sync_id, &job.user_id, &keys).await?;
    let mut work = SliceWork {
        snapshot: SliceSnapshot::load(&mut tx, &keys).await?,
        unchanged: Vec::new(),
        counts: SliceCounts::default(),
    };
    for entry in &entries {
        decide_entry(engine, &mut tx, job, entry, window, now, &mut work).await?;
    }
    rows::touch_entries(&mut tx, &work.unchanged).await?;
    let mut counts = work.counts;
    let complete =
        sync_state::finish_slice(&mut tx, &job.sync_id, &job.user_id, &job.month, None).await?;
    if complete {
        let (from, to) = (utc_text(window.0), utc_text(window.1));
        let unseen =
            rows::take_unseen_entries(&mut tx, &job.user_id, &from, &to, &job.sync_id).await?;
        for entry in unseen {
            let key = EntryKey {
                schedule_id: entry.schedule_id.clone(),
                occurrence: entry.occurrence.clone(),
            };
            rows::mark_gone(&mut tx, &key, GoneReason::EntryDeleted.as_str()).await?;
            if let Some(id) = entry.current_meeting_id
                && let Some(row) = rows::meeting_by_id(&mut tx, id).await?
            {
                apply_gone(engine, &mut tx, job, &row, GoneReason::EntryDeleted).await?;
                counts.gone += 1;
            }
        }
        retry_failed_deletes(engine, &mut tx, job).await?;
        sync_state::record_user_sync(&mut tx, &job.user_id, None).await?;
    }
    tx.commit()
        .await
        .context("cannot commit a slice's decisions")?;
    tracing::info!(
        // Where a slice's time went: the listing, waiting for the write turn (and SQLite's
        // lock), and the write transaction itself (issue 5's resync figures).
        listing_ms = listed.as_secs_f64() * 1e3,
        write_wait_ms = (began - asked).as_secs_f64() * 1e3,
        write_ms = began.elapsed().as_secs_f64() * 1e3,
        sync.id = %job.sync_id,
        user.id = %job.user_id,
        month = %job.month,
        entries = entries.len(),
        creates = counts.creates,
        updates = counts.updates,
        skipped = counts.skipped,
        gone = counts.gone,
        "slice decided"
    );
    Ok(())
}

/// A complete listing of the user's window pushes again the deletes that ran out of attempts
/// (a meeting that should be gone must not stay in Zoom for good), as far as the policies
/// still ask for them.
async fn retry_failed_deletes(
    engine: &Engine,
    tx: &mut SqliteConnection,
    job: &FetchSlice,
) -> anyhow::Result<()> {
    let sync = &engine.settings.sync;
    for (meeting_id, reason) in rows::failed_deletes(tx, &job.user_id).await? {
        let wanted = if reason == "replaced" {
            sync.on_reschedule == crate::config::ReschedulePolicy::Replace
        } else {
            sync.on_delete == DeletePolicy::Delete
        };
        if wanted {
            let delete = DeleteMeeting {
                meeting_id,
                reason,
                request_id: job.request_id.clone(),
            };
            push(tx, &delete, PushOptions::default()).await?;
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct SliceCounts {
    creates: u32,
    updates: u32,
    skipped: u32,
    gone: u32,
}

/// One slice's decisions in progress.
struct SliceWork {
    snapshot: SliceSnapshot,
    /// Listed entries whose stored observation was already up to date.
    unchanged: Vec<EntryKey>,
    counts: SliceCounts,
}

/// What the database held for a slice's listed entries, read in two statements at the start
/// of the slice's transaction instead of two per entry (issue 5: a no-change resync of 100k
/// entries). A decision touches only its own entry's rows, so a key's snapshot is exact the
/// first time the key is decided; a key the listing holds twice is read again.
struct SliceSnapshot {
    entries: HashMap<EntryKey, EntryRow>,
    meetings: HashMap<i64, MeetingRow>,
    decided: HashSet<EntryKey>,
}

impl SliceSnapshot {
    async fn load(tx: &mut SqliteConnection, keys: &[EntryKey]) -> anyhow::Result<SliceSnapshot> {
        let entries = rows::entries_by_key(tx, keys).await?;
        let ids: Vec<i64> = entries
            .values()
            .filter_map(|e| e.current_meeting_id)
            .collect();
        let meetings = rows::meetings_by_ids(tx, &ids).await?;
        Ok(SliceSnapshot {
            entries,
            meetings,
            decided: HashSet::new(),
        })
    }

    /// The entry's stored row and its current meeting row.
    async fn take(
        &mut self,
        tx: &mut SqliteConnection,
        key: &EntryKey,
    ) -> anyhow::Result<(Option<EntryRow>, Option<MeetingRow>)> {
        if self.decided.insert(key.clone()) {
            let entry = self.entries.remove(key);
            let meeting = entry
                .as_ref()
                .and_then(|e| e.current_meeting_id)
                .and_then(|id| self.meetings.get(&id).cloned());
            return Ok((entry, meeting));
        }
        let entry = rows::entry(tx, key).await?;
        let meeting = match entry.as_ref().and_then(|e| e.current_meeting_id) {
            Some(id) => rows::meeting_by_id(tx, id).await?,
            None => None,
        };
        Ok((entry, meeting))
    }
}

async fn record_listing_failure(
    engine: &Engine,
    job: &FetchSlice,
    error: GroupwareError,
) -> anyhow::Result<()> {
    let message = error.to_string();
    let mut tx = engine.store.begin_write().await?;
    if error.is_retryable() {
        let attempts = sync_state::count_slice_attempt(
            &mut tx,
            &job.sync_id,
            &job.user_id,
            &job.month,
            &message,
        )
        .await?;
        if attempts < engine.max_attempts() {
            let delay = match error {
                // J-MOTTO's queue is full for about ten seconds.
                GroupwareError::Busy => std::time::Duration::from_secs(10),
                _ => engine.retry_delay(u32::try_from(attempts).unwrap_or(u32::MAX)),
            };
            let run_at = Utc::now()
                + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(10));
            push(&mut tx, job, PushOptions::at(run_at)).await?;
            tx.commit().await?;
            tracing::warn!(user.id = %job.user_id, month = %job.month, attempt = attempts, retry_at = %run_at, error = %message, "J-MOTTO listing failed; retry scheduled");
            return Ok(());
        }
    }
    // R-ACCESS and every exhausted or permanent failure: the slice failed, so nothing of this
    // user's is treated as deleted in this run; the user's last_error says why.
    sync_state::finish_slice(
        &mut tx,
        &job.sync_id,
        &job.user_id,
        &job.month,
        Some(&message),
    )
    .await?;
    sync_state::record_user_sync(&mut tx, &job.user_id, Some(&message)).await?;
    tx.commit().await?;
    tracing::warn!(user.id = %job.user_id, month = %job.month, error = %message, "J-MOTTO listing failed");
    Ok(())
}

/// What the listing asks Zoom to hold for one entry.
struct Desired {
    key: EntryKey,
    start_utc: String,
    end_utc: String,
    end: DateTime<Utc>,
    topic: String,
    agenda: String,
    duration_minutes: i64,
    timezone: &'static str,
    host_user_id: Option<String>,
    host_email: Option<String>,
    invitees: Vec<String>,
}

impl Desired {
    fn row(&self, state: MeetingState, reason: Option<&'static str>) -> NewMeeting<'_> {
        NewMeeting {
            key: &self.key,
            start_utc: self.start_utc.clone(),
            end_utc: self.end_utc.clone(),
            host_user_id: self.host_user_id.as_deref(),
            host_email: self.host_email.as_deref(),
            topic: &self.topic,
            agenda: &self.agenda,
            duration_minutes: self.duration_minutes,
            timezone: self.timezone,
            invitees: &self.invitees,
            state,
            reason,
            replaces_meeting_id: None,
        }
    }

    fn same_content(&self, row: &MeetingRow) -> bool {
        row.topic == self.topic
            && row.agenda == self.agenda
            && row.duration_minutes == self.duration_minutes
            && row.timezone == self.timezone
            && row.invitee_emails() == self.invitees
    }
}

async fn decide_entry(
    engine: &Engine,
    tx: &mut SqliteConnection,
    job: &FetchSlice,
    entry: &ScheduleEntry,
    window: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    work: &mut SliceWork,
) -> anyhow::Result<()> {
    let settings = &engine.settings;
    let tz = settings.groupware.timezone;
    let counts = &mut work.counts;
    let matches_location = engine.location.matches(&entry.place);
    let (existing, current) = work.snapshot.take(tx, &entry.key).await?;
    let listed_updated = entry.updated.map(|t| t.format(UPDATED_FORMAT).to_string());
    if let (Some(listed), Some(applied)) = (
        listed_updated.as_deref(),
        existing.as_ref().and_then(|e| e.listed_updated.as_deref()),
    ) && listed < applied
    {
        // Overlapping runs: a newer listing of this entry was already applied; this older
        // one must not undo it (it still counts as a sighting: the entry exists).
        tracing::info!(schedule.id = %entry.key.schedule_id, occurrence = %entry.key.occurrence, listed, applied, "older listing of an entry ignored");
        return Ok(());
    }
    let time = entry
        .slot
        .clone()
        .and_then(|slot| meeting_time(&slot, tz).map_err(|e| e.to_string()));
    let time = match time {
        Ok(time) => time,
        Err(why) => {
            if matches_location {
                tracing::warn!(schedule.id = %entry.key.schedule_id, occurrence = %entry.key.occurrence, why = %why, "entry skipped: unreadable times");
                counts.skipped += 1;
            }
            return Ok(());
        }
    };
    let in_window = window.0 <= time.start_utc && time.start_utc < window.1;
    if !matches_location && existing.as_ref().is_none_or(|e| e.gone_at.is_some()) {
        // R-TRIGGER: not a Zoom entry, and never was one — or it lost the location and
        // that was already handled (by this run's listing of another member, say).
        return Ok(());
    }
    let host = choose_host(&entry.owner, &entry.members, &engine.enabled_users);
    let desired = Desired {
        key: entry.key.clone(),
        start_utc: utc_text(time.start_utc),
        end_utc: utc_text(time.end_utc),
        end: time.end_utc,
        topic: build_topic(&entry.event, &entry.detail),
        agenda: build_agenda(&entry.memo, &entry.key),
        duration_minutes: i64::from(time.duration_minutes),
        timezone: zoom_timezone(tz),
        host_user_id: host.as_ref().map(|h| h.user_id.as_str().to_owned()),
        host_email: host.as_ref().map(|h| h.zoom_email.as_str().to_owned()),
        invitees: match (&host, settings.sync.invite_members) {
            (Some(host), true) => {
                invitees(host, &entry.owner, &entry.members, &engine.enabled_users)
                    .into_iter()
                    .map(|e| e.as_str().to_owned())
                    .collect()
            }
            _ => Vec::new(),
        },
    };
    if !in_window {
        // R-WINDOW: recorded once, so the operator sees why. (J-MOTTO lists only the window's
        // days, so this is an entry it listed in the wrong month.)
        if matches_location {
            let inserted = rows::insert_meeting(
                tx,
                &desired.row(
                    MeetingState::Skipped,
                    Some(SkipReason::OutsideWindow.as_str()),
                ),
            )
            .await?;
            if inserted.is_some() {
                counts.skipped += 1;
            }
        }
        return Ok(());
    }
    let observed = ObservedEntry {
        key: &entry.key,
        owner: &entry.owner,
        members: &entry.members,
        start_utc: desired.start_utc.clone(),
        end_utc: desired.end_utc.clone(),
        host_user_id: desired.host_user_id.as_deref(),
        updated: listed_updated,
    };
    if existing
        .as_ref()
        .is_some_and(|e| e.same_observation(&observed))
    {
        work.unchanged.push(entry.key.clone());
    } else {
        rows::upsert_entry(tx, &observed).await?;
    }
    let came_back = matches_location && existing.as_ref().is_some_and(|e| e.gone_at.is_some());
    if current.as_ref().is_some_and(|r| {
        r.state() == MeetingState::Creating
            || (r.look_first && matches!(r.state(), MeetingState::Pending | MeetingState::Deferred))
    }) {
        // A create is in flight (or its job waits to look for what an earlier attempt may
        // have made): deciding now could lose the change or make a second meeting. The next
        // sync decides. (Failed or skipped rows have no job left: they are decided below,
        // and a re-armed row keeps `look_first`.)
        return Ok(());
    }
    if came_back
        && let Some(row) = current
            .as_ref()
            .filter(|r| r.state() == MeetingState::Created)
    {
        // Restored (or the location re-added) while its meeting was kept: no longer gone.
        rows::set_state(tx, row.id, MeetingState::Created, None).await?;
    }
    let facts = current.as_ref().map(|row| {
        let state = row.state();
        CurrentMeeting {
            same_time: row.start_utc == desired.start_utc && row.end_utc == desired.end_utc,
            in_zoom: state.may_exist_in_zoom(),
            // A row that Zoom refused waits for a change of its content; one whose retries
            // ran out is tried again by this sync (see `create_row`).
            awaiting_create: matches!(state, MeetingState::Pending | MeetingState::Deferred)
                || (state == MeetingState::Failed
                    && row
                        .reason
                        .as_deref()
                        .is_some_and(|r| r.starts_with(REJECTED))),
            // An update whose retries ran out is sent again: Zoom may still hold the old
            // content (the row already holds the new one).
            content_same: desired.same_content(row)
                && !row
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with(super::meetings::UPDATE_FAILED)),
        }
    });
    let observation = Observation {
        matches_location,
        has_host: host.is_some(),
        ended: desired.end <= now,
    };
    let decision = decision::decide(observation, facts, settings.sync.on_reschedule);
    apply_decision(
        engine,
        tx,
        job,
        &desired,
        current.as_ref(),
        decision,
        counts,
    )
    .await
}

async fn apply_decision(
    engine: &Engine,
    tx: &mut SqliteConnection,
    job: &FetchSlice,
    desired: &Desired,
    current: Option<&MeetingRow>,
    decision: Decision,
    counts: &mut SliceCounts,
) -> anyhow::Result<()> {
    match decision {
        Decision::Nothing => Ok(()),
        Decision::Skip(reason) => {
            let row = desired.row(MeetingState::Skipped, Some(reason.as_str()));
            let id = match rows::insert_meeting(tx, &row).await? {
                Some(id) => id,
                None => match rows::meeting_by_key(
                    tx,
                    &desired.key,
                    &desired.start_utc,
                    &desired.end_utc,
                )
                .await?
                {
                    Some(existing) => existing.id,
                    None => return Ok(()),
                },
            };
            rows::set_current_meeting(tx, &desired.key, Some(id)).await?;
            counts.skipped += 1;
            Ok(())
        }
        Decision::Create => create_row(tx, job, desired, None, counts).await,
        Decision::RefreshPending => {
            if current.is_some_and(|c| c.state() == MeetingState::Failed) {
                // Zoom refused the old content; the new content gets a new attempt.
                return create_row(tx, job, desired, None, counts).await;
            }
            if let Some(current) = current {
                rows::set_content(tx, current.id, &desired.row(MeetingState::Pending, None))
                    .await?;
            }
            Ok(())
        }
        Decision::CreateSuperseding => {
            if let Some(current) = current {
                rows::set_state(
                    tx,
                    current.id,
                    MeetingState::Superseded,
                    Some("rescheduled"),
                )
                .await?;
            }
            create_row(tx, job, desired, None, counts).await
        }
        Decision::CreateReplacing => {
            create_row(tx, job, desired, current.map(|c| c.id), counts).await
        }
        Decision::Update { retime } => {
            let Some(current) = current else {
                return Ok(());
            };
            if retime
                && let Some(conflict) =
                    rows::meeting_by_key(tx, &desired.key, &desired.start_utc, &desired.end_utc)
                        .await?
            {
                if conflict.holds_zoom_meeting() {
                    // The entry moved back to a time that still has its own meeting: that
                    // one becomes current again; R-ONCE forbids a second meeting there.
                    revive(tx, &conflict).await?;
                    rows::set_state(
                        tx,
                        current.id,
                        MeetingState::Superseded,
                        Some("rescheduled"),
                    )
                    .await?;
                    rows::set_current_meeting(tx, &desired.key, Some(conflict.id)).await?;
                    return Ok(());
                }
                sqlx::query("DELETE FROM meetings WHERE id = ?")
                    .bind(conflict.id)
                    .execute(&mut *tx)
                    .await?;
            }
            rows::set_content(tx, current.id, &desired.row(MeetingState::Created, None)).await?;
            push(
                tx,
                &UpdateMeeting {
                    meeting_id: current.id,
                    request_id: job.request_id.clone(),
                },
                PushOptions::default(),
            )
            .await?;
            counts.updates += 1;
            Ok(())
        }
        Decision::Gone(reason) => {
            if let Some(current) = current {
                rows::mark_gone(tx, &desired.key, reason.as_str()).await?;
                apply_gone(engine, tx, job, current, reason).await?;
                counts.gone += 1;
            }
            Ok(())
        }
    }
}

/// A superseded row whose meeting was left in Zoom becomes the entry's live meeting again.
async fn revive(tx: &mut SqliteConnection, row: &MeetingRow) -> anyhow::Result<()> {
    if row.state() == MeetingState::Superseded {
        rows::set_state(tx, row.id, MeetingState::Created, Some("rescheduled_back")).await?;
    }
    Ok(())
}

/// A pending row for the listed time (re-arming one that exists but never reached Zoom),
/// made current, with its create job, in the caller's transaction.
async fn create_row(
    tx: &mut SqliteConnection,
    job: &FetchSlice,
    desired: &Desired,
    replaces: Option<i64>,
    counts: &mut SliceCounts,
) -> anyhow::Result<()> {
    let mut row = desired.row(MeetingState::Pending, None);
    row.replaces_meeting_id = replaces;
    let id = match rows::insert_meeting(tx, &row).await? {
        Some(id) => id,
        None => {
            let Some(existing) =
                rows::meeting_by_key(tx, &desired.key, &desired.start_utc, &desired.end_utc)
                    .await?
            else {
                return Ok(());
            };
            let state = existing.state();
            if existing.holds_zoom_meeting()
                || matches!(state, MeetingState::Pending | MeetingState::Deferred)
            {
                // R-ONCE: this time already has its meeting (or a create on the way), e.g.
                // the entry moved back to a time whose meeting was left in Zoom.
                revive(tx, &existing).await?;
                rows::set_current_meeting(tx, &desired.key, Some(existing.id)).await?;
                return Ok(());
            }
            if state == MeetingState::Failed
                && existing
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with(FAILED_AFTER_SEND))
            {
                // The last attempt may have reached Zoom: the job looks before it creates.
                row.state = MeetingState::Creating;
            }
            rows::rearm(tx, existing.id, &row).await?;
            existing.id
        }
    };
    rows::set_current_meeting(tx, &desired.key, Some(id)).await?;
    push(
        tx,
        &CreateMeeting {
            meeting_id: id,
            request_id: job.request_id.clone(),
            sync_id: Some(job.sync_id.clone()),
        },
        PushOptions::default(),
    )
    .await?;
    counts.creates += 1;
    Ok(())
}

/// R-DELETE: the entry is no longer a Zoom entry.
async fn apply_gone(
    engine: &Engine,
    tx: &mut SqliteConnection,
    job: &FetchSlice,
    row: &MeetingRow,
    reason: GoneReason,
) -> anyhow::Result<()> {
    let state = row.state();
    if state.is_claimable() {
        // Not in Zoom yet: nothing to keep or delete; the queued create will find it skipped.
        return rows::set_state(tx, row.id, MeetingState::Skipped, Some(reason.as_str())).await;
    }
    if !state.may_exist_in_zoom() {
        return Ok(());
    }
    match engine.settings.sync.on_delete {
        DeletePolicy::Keep => rows::set_state(tx, row.id, state, Some(reason.as_str())).await,
        DeletePolicy::Delete => {
            let job = DeleteMeeting {
                meeting_id: row.id,
                reason: reason.as_str().to_owned(),
                request_id: job.request_id.clone(),
            };
            push(tx, &job, PushOptions::default()).await.map(|_| ())
        }
    }
}
