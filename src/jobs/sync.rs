//! `SyncWindow` and `FetchSlice`: from "sync these users" to one plan per entry.
//!
//! Every per-entry rule is in `domain::plan`; this module lists, loads what the store holds
//! for the listed entries, applies each entry's plan in the slice's transaction (through
//! `store::meetings`) and pushes the plan's jobs.

use std::{
    collections::{HashMap, HashSet},
    time::Instant,
};

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{
    CreateMeeting, DeleteMeeting, Engine, FetchSlice, PushOptions, SyncWindow, UpdateMeeting, push,
};
use crate::{
    domain::{
        ids::EntryKey,
        plan::{
            Effect, EntryPlan, JobToPush, ListedEntry, Note, RowChange, SliceRules, StoredEntry,
            Tally, failed_delete_wanted, plan_entry, plan_gone,
        },
        window::{MonthSlice, SyncWindow as Window},
    },
    groupware::{GroupwareError, ScheduleEntry},
    store::{
        MeetingRow, db,
        meetings::{self as rows, EntryRow},
        parse_utc, sync_state, utc_text,
    },
};

/// Computes the window (R-WINDOW, at the time the job runs) and pushes one `FetchSlice` per
/// (user, month), idempotently: a re-run pushes nothing twice.
///
/// A manual run (the API, the console, the CLI: trigger `manual`) first runs the quick check
/// (SPEC §10), here rather than in the HTTP handler, which never calls the services: a fixed
/// credential turns the integration 有効 at once (and sends `integration.enabled`), and the
/// creates deferred while it was 無効 are released.
pub async fn run_sync_window(engine: &Engine, job: &SyncWindow) -> anyhow::Result<()> {
    if sync_state::sync_trigger(engine.store.db(), &job.sync_id)
        .await?
        .as_deref()
        == Some("manual")
    {
        for failed in engine.quick_check().await.iter().filter(|r| !r.ok) {
            tracing::warn!(sync.id = %job.sync_id, check = %failed.item, detail = %failed.detail, "service check before a manual sync failed");
        }
    }
    let settings = &engine.settings;
    let started = Instant::now();
    let window = Window::containing(
        engine.clock.now(),
        settings.groupware.timezone,
        settings.sync.months,
    )
    .context("cannot compute the sync window")?;
    let users = users_to_sync(engine, job);
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
    push_slices(&mut tx, job, &users, &window).await?;
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

/// The enabled users the job names (all of them when it names none).
fn users_to_sync(engine: &Engine, job: &SyncWindow) -> Vec<String> {
    match &job.users {
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
    }
}

/// One slice row and one `FetchSlice` per (user, month) of the window.
async fn push_slices(
    tx: &mut db::Conn,
    job: &SyncWindow,
    users: &[String],
    window: &Window,
) -> anyhow::Result<()> {
    for user in users {
        for month in &window.months {
            let label = month.label();
            sync_state::insert_slice(tx, &job.sync_id, user, &label).await?;
            let slice = FetchSlice {
                sync_id: job.sync_id.clone(),
                user_id: user.clone(),
                month: label.clone(),
                request_id: job.request_id.clone(),
            };
            let key = format!("{}:{}:{}", job.sync_id, user, label);
            let options = PushOptions {
                idempotency_key: Some(key),
                ..PushOptions::default()
            };
            push(tx, &slice, options).await?;
        }
    }
    Ok(())
}

/// Lists one (user, month), plans and applies each entry, and — when this was the user's
/// last slice of the run and every slice succeeded — handles the user's entries that are
/// gone.
pub async fn run_fetch_slice(engine: &Engine, job: &FetchSlice) -> anyhow::Result<()> {
    let month = MonthSlice::parse_label(&job.month)
        .with_context(|| format!("bad month {:?} in a FetchSlice job", job.month))?;
    let window = {
        let mut conn = engine.store.db().acquire().await?;
        let (from, to) = sync_state::sync_window(&mut conn, &job.sync_id)
            .await?
            .with_context(|| format!("sync run {} has no window", job.sync_id))?;
        (parse_utc(&from)?, parse_utc(&to)?)
    };
    let groupware = match engine.groupware() {
        Ok(groupware) => groupware,
        // J-MOTTO's credentials are unset (issue 10): the slice fails, saying which, and
        // nothing of the user's is treated as deleted.
        Err(not_set) => {
            let tx = engine.store.begin_write().await?;
            return record_failed_slice(tx, job, &not_set.to_string()).await;
        }
    };
    let started = Instant::now();
    let listing = groupware
        .list_events(&job.user_id, month.first_day, month.last_day)
        .await;
    let listed = started.elapsed();
    let entries = match listing {
        Ok(entries) => entries,
        Err(error) => return record_listing_failure(engine, job, error).await,
    };
    let rules = slice_rules(engine, window);
    let asked = Instant::now();
    let mut tx = engine.store.begin_write().await?;
    let began = Instant::now();
    let mut counts = decide_slice(&mut tx, job, &entries, &rules).await?;
    // SPEC §10: a listing that succeeds clears the user's `user.unreadable`.
    super::alerts::user_readable(&mut tx, &job.user_id).await?;
    let complete =
        sync_state::finish_slice(&mut tx, &job.sync_id, &job.user_id, &job.month, None).await?;
    if complete {
        finish_user_window(engine, &mut tx, job, window, &mut counts).await?;
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

/// The context of this slice's plans.
fn slice_rules(engine: &Engine, window: (DateTime<Utc>, DateTime<Utc>)) -> SliceRules<'_> {
    let settings = &engine.settings;
    SliceRules {
        window,
        now: engine.clock.now(),
        timezone: settings.groupware.timezone,
        enabled_users: &engine.enabled_users,
        location: &engine.location,
        invite_members: settings.sync.invite_members,
        on_reschedule: settings.sync.on_reschedule,
        on_delete: settings.sync.on_delete,
    }
}

/// Records the listing's sightings, then plans and applies each listed entry.
async fn decide_slice(
    tx: &mut db::Conn,
    job: &FetchSlice,
    entries: &[ScheduleEntry],
    rules: &SliceRules<'_>,
) -> anyhow::Result<SliceCounts> {
    let keys: Vec<EntryKey> = entries.iter().map(|e| e.key.clone()).collect();
    rows::record_sightings(tx, &job.sync_id, &job.user_id, &keys).await?;
    let mut snapshot = SliceSnapshot::load(tx, &keys).await?;
    let mut counts = SliceCounts::default();
    let mut unchanged = Vec::new();
    for entry in entries {
        let (stored, meetings) = snapshot.take(tx, &entry.key).await?;
        let stored = StoredEntry {
            entry: stored.as_ref(),
            meetings: &meetings,
        };
        let plan = plan_entry(&listed_entry(entry), stored, rules);
        log_note(entry, &plan);
        counts.add(plan.tally);
        apply_plan(tx, job, &entry.key, &plan, &mut unchanged).await?;
    }
    rows::touch_entries(tx, &unchanged).await?;
    Ok(counts)
}

/// The domain's view of a listed entry.
fn listed_entry(entry: &ScheduleEntry) -> ListedEntry<'_> {
    ListedEntry {
        key: &entry.key,
        event: &entry.event,
        detail: &entry.detail,
        place: &entry.place,
        memo: &entry.memo,
        slot: &entry.slot,
        owner: &entry.owner,
        members: &entry.members,
        updated: entry.updated,
    }
}

fn log_note(entry: &ScheduleEntry, plan: &EntryPlan) {
    let key = &entry.key;
    match &plan.note {
        Some(Note::OlderListing { listed, applied }) => {
            tracing::info!(schedule.id = %key.schedule_id, occurrence = %key.occurrence, listed, applied, "older listing of an entry ignored");
        }
        Some(Note::UnreadableTimes(why)) => {
            tracing::warn!(schedule.id = %key.schedule_id, occurrence = %key.occurrence, why = %why, "entry skipped: unreadable times");
        }
        None => {}
    }
}

/// Applies a plan's effects in order: row changes through the store, jobs pushed in the
/// same transaction. An entry listed with nothing changed joins `unchanged` (touched in
/// one statement for the slice).
async fn apply_plan(
    tx: &mut db::Conn,
    job: &FetchSlice,
    key: &EntryKey,
    plan: &EntryPlan,
    unchanged: &mut Vec<EntryKey>,
) -> anyhow::Result<()> {
    let mut inserted = None;
    for effect in &plan.effects {
        match effect {
            Effect::Row(RowChange::TouchEntry) => unchanged.push(key.clone()),
            Effect::Row(change) => rows::apply_row_change(tx, key, change, &mut inserted).await?,
            Effect::Push(wanted) => push_planned(tx, job, wanted, inserted).await?,
        }
    }
    Ok(())
}

async fn push_planned(
    tx: &mut db::Conn,
    job: &FetchSlice,
    wanted: &JobToPush,
    inserted: Option<i64>,
) -> anyhow::Result<()> {
    let request_id = job.request_id.clone();
    match wanted {
        JobToPush::Create(row) => {
            let create = CreateMeeting {
                meeting_id: rows::resolve(*row, inserted)?,
                request_id,
                sync_id: Some(job.sync_id.clone()),
            };
            push(tx, &create, PushOptions::default()).await?;
        }
        JobToPush::Update { meeting_id } => {
            let update = UpdateMeeting {
                meeting_id: *meeting_id,
                request_id,
            };
            push(tx, &update, PushOptions::default()).await?;
        }
        JobToPush::Delete { meeting_id, reason } => {
            let delete = DeleteMeeting {
                meeting_id: *meeting_id,
                reason: reason.as_str().to_owned(),
                request_id,
            };
            push(tx, &delete, PushOptions::default()).await?;
        }
    }
    Ok(())
}

/// Every slice of the user's window listed: the entries no listing held are gone
/// (R-DELETE), deletes that ran out of attempts are pushed again, the user's sync recorded.
async fn finish_user_window(
    engine: &Engine,
    tx: &mut db::Conn,
    job: &FetchSlice,
    window: (DateTime<Utc>, DateTime<Utc>),
    counts: &mut SliceCounts,
) -> anyhow::Result<()> {
    let (from, to) = (utc_text(window.0), utc_text(window.1));
    let unseen = rows::take_unseen_entries(tx, &job.user_id, &from, &to, &job.sync_id).await?;
    let mut ignored = Vec::new();
    for entry in unseen {
        let current = match entry.current_meeting_id {
            Some(id) => rows::meeting_by_id(tx, id).await?,
            None => None,
        };
        let plan = plan_gone(current.as_ref(), engine.settings.sync.on_delete);
        counts.add(plan.tally);
        let key = EntryKey {
            schedule_id: entry.schedule_id,
            occurrence: entry.occurrence,
        };
        apply_plan(tx, job, &key, &plan, &mut ignored).await?;
    }
    retry_failed_deletes(engine, tx, job).await?;
    sync_state::record_user_sync(tx, &job.user_id, None).await
}

/// A complete listing of the user's window pushes again the deletes that ran out of attempts
/// (a meeting that should be gone must not stay in Zoom for good), as far as the policies
/// still ask for them.
async fn retry_failed_deletes(
    engine: &Engine,
    tx: &mut db::Conn,
    job: &FetchSlice,
) -> anyhow::Result<()> {
    let sync = &engine.settings.sync;
    for (meeting_id, reason) in rows::failed_deletes(tx, &job.user_id).await? {
        if failed_delete_wanted(reason, sync.on_delete, sync.on_reschedule) {
            let delete = DeleteMeeting {
                meeting_id,
                reason: reason.as_str().to_owned(),
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

impl SliceCounts {
    fn add(&mut self, tally: Option<Tally>) {
        match tally {
            Some(Tally::Created) => self.creates += 1,
            Some(Tally::Updated) => self.updates += 1,
            Some(Tally::Skipped) => self.skipped += 1,
            Some(Tally::Gone) => self.gone += 1,
            None => {}
        }
    }
}

/// What the database held for a slice's listed entries, read in two statements at the start
/// of the slice's transaction instead of two per entry (issue 5: a no-change resync of 100k
/// entries). A plan touches only its own entry's rows, so a key's snapshot is exact the
/// first time the key is planned; a key the listing holds twice is read again.
struct SliceSnapshot {
    entries: HashMap<EntryKey, EntryRow>,
    meetings: HashMap<EntryKey, Vec<MeetingRow>>,
    decided: HashSet<EntryKey>,
}

impl SliceSnapshot {
    async fn load(tx: &mut db::Conn, keys: &[EntryKey]) -> anyhow::Result<SliceSnapshot> {
        Ok(SliceSnapshot {
            entries: rows::entries_by_key(tx, keys).await?,
            meetings: rows::meetings_of_entries(tx, keys).await?,
            decided: HashSet::new(),
        })
    }

    /// The entry's stored row and every meeting row of its key.
    async fn take(
        &mut self,
        tx: &mut db::Conn,
        key: &EntryKey,
    ) -> anyhow::Result<(Option<EntryRow>, Vec<MeetingRow>)> {
        if self.decided.insert(key.clone()) {
            let entry = self.entries.remove(key);
            let meetings = self.meetings.remove(key).unwrap_or_default();
            return Ok((entry, meetings));
        }
        Ok((
            rows::entry(tx, key).await?,
            rows::meetings_of_entry(tx, key).await?,
        ))
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
    if matches!(
        error,
        GroupwareError::Forbidden { .. } | GroupwareError::NoSuchUser { .. }
    ) {
        // R-ACCESS (2001) or an unknown user (2002): SPEC §10's `user.unreadable`, opened
        // once however many slices and syncs meet it.
        super::alerts::user_unreadable(&mut tx, &job.user_id, &message).await?;
    }
    record_failed_slice(tx, job, &message).await
}

/// R-ACCESS and every exhausted or permanent failure: the slice failed, so nothing of this
/// user's is treated as deleted in this run; the user's last_error says why.
async fn record_failed_slice(
    mut tx: crate::store::WriteTx,
    job: &FetchSlice,
    message: &str,
) -> anyhow::Result<()> {
    sync_state::finish_slice(
        &mut tx,
        &job.sync_id,
        &job.user_id,
        &job.month,
        Some(message),
    )
    .await?;
    sync_state::record_user_sync(&mut tx, &job.user_id, Some(message)).await?;
    tx.commit().await?;
    tracing::warn!(user.id = %job.user_id, month = %job.month, error = %message, "J-MOTTO listing failed");
    Ok(())
}
