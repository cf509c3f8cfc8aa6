//! `CreateMeeting`, `UpdateMeeting`, `DeleteMeeting`: the only code that writes to Zoom.
//!
//! R-ONCE: a create first claims its row (`pending|deferred|failed` → `creating`) in a
//! committed transaction, and only then calls Zoom. A job that finds its row already
//! `creating` is the retry of an attempt that may have reached Zoom (a crash, a timeout, a
//! 5xx): it looks for the meeting by its agenda marker, start and duration among the host's
//! upcoming meetings when the token may list them, and adopts it; without that scope it
//! creates again and flags the row `possible_duplicate`.

use anyhow::Context;
use chrono::{DateTime, Duration as ChronoDuration, Utc};

use super::{CreateMeeting, DeleteMeeting, Engine, PushOptions, UpdateMeeting, push};
use crate::{
    store::{MeetingRow, MeetingState, meetings as rows, parse_utc, sync_state},
    zoom::{Invitee, ListedMeeting, MeetingRequest, MeetingSettings, QuotaKind, ZoomError},
};

/// How long a claim protects an attempt in flight: the Zoom client's timeout and a margin.
const CLAIM_SECONDS: i64 = 60;

/// Until when a fresh claim (an attempt possibly still in flight) keeps other runs away.
fn claim_busy_until(row: &MeetingRow) -> Option<DateTime<Utc>> {
    let claimed = parse_utc(row.claimed_at.as_deref()?).ok()?;
    let until = claimed + ChronoDuration::seconds(CLAIM_SECONDS);
    (until > Utc::now()).then_some(until)
}

/// Zoom's list of a host's meetings cuts each agenda to this many characters.
const LISTED_AGENDA_CHARS: usize = 250;

/// Scope that lets a retried create look for its meeting (admin or user level).
const LIST_SCOPES: [&str; 2] = [
    "meeting:read:list_meetings:admin",
    "meeting:read:list_meetings",
];

fn meeting_request(row: &MeetingRow) -> MeetingRequest {
    let invitees = row.invitee_emails();
    MeetingRequest {
        topic: row.topic.clone(),
        meeting_type: 2,
        start_time: row.start_utc.clone(),
        duration: u32::try_from(row.duration_minutes).unwrap_or(u32::MAX),
        timezone: row.timezone.clone(),
        agenda: row.agenda.clone(),
        settings: (!invitees.is_empty()).then(|| MeetingSettings {
            meeting_invitees: invitees
                .into_iter()
                .map(|email| Invitee { email })
                .collect(),
        }),
    }
}

/// Next 00:00 UTC after `now` (Zoom's per-host daily quota resets then).
pub fn next_utc_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    tomorrow.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// Runs one create.
pub async fn run_create(engine: &Engine, job: &CreateMeeting) -> anyhow::Result<()> {
    let (row, retry_of_claim) = {
        let mut tx = engine.store.begin_write().await?;
        let claimed = rows::claim_for_create(&mut tx, job.meeting_id).await?;
        let result = match claimed {
            Some(row) => (row, false),
            None => match rows::meeting_by_id(&mut tx, job.meeting_id).await? {
                Some(row) if row.state() == MeetingState::Creating => {
                    // Another attempt took the row moments ago and may still be talking to
                    // Zoom (a job re-run while its first run is alive): look later, not now.
                    if let Some(busy_until) = claim_busy_until(&row) {
                        push(&mut tx, job, PushOptions::at(busy_until)).await?;
                        tx.commit().await?;
                        return Ok(());
                    }
                    (row, true)
                }
                // created, superseded, skipped…: nothing left to do (R-ONCE)
                _ => return Ok(()),
            },
        };
        tx.commit().await?;
        result
    };
    let end = parse_utc(&row.end_utc)?;
    if end <= engine.clock.now() {
        // R-PAST: ended before its job ran.
        let mut conn = engine.store.pool().acquire().await?;
        return rows::set_state(&mut conn, row.id, MeetingState::Skipped, Some("ended")).await;
    }
    let Some(host_email) = row.host_email.clone() else {
        let mut conn = engine.store.pool().acquire().await?;
        return rows::set_state(
            &mut conn,
            row.id,
            MeetingState::Skipped,
            Some("no_enabled_host"),
        )
        .await;
    };
    let mut flag = None;
    if retry_of_claim {
        match find_existing(engine, &row, &host_email).await {
            Ok(Some((zoom_id, join_url))) => {
                tracing::info!(
                    meeting.row = row.id,
                    zoom.meeting_id = zoom_id,
                    "adopted the meeting an earlier attempt created"
                );
                return record_created(
                    engine,
                    job,
                    &row,
                    zoom_id,
                    join_url.as_deref(),
                    Some("adopted"),
                )
                .await;
            }
            Ok(None) => {}
            Err(ListUnavailable::NoScope) => flag = Some("possible_duplicate"),
            Err(ListUnavailable::Failed(error)) => {
                return schedule_retry(engine, job, &row, &error, MeetingState::Creating).await;
            }
        }
    }
    match engine
        .zoom
        .create_meeting(&host_email, &meeting_request(&row))
        .await
    {
        Ok(created) => {
            tracing::info!(
                request.id = job.request_id.as_deref().unwrap_or(""),
                schedule.id = %row.schedule_id,
                occurrence = %row.occurrence,
                zoom.meeting_id = created.id,
                host = %host_email,
                "created Zoom meeting"
            );
            record_created(
                engine,
                job,
                &row,
                created.id,
                created.join_url.as_deref(),
                flag,
            )
            .await
        }
        // Zoom answered before creating anything: the row can be claimed afresh.
        // Zoom answered before creating anything; but if an earlier attempt may have
        // reached Zoom, the next one must still look first.
        Err(error @ ZoomError::Quota { .. }) | Err(error @ ZoomError::Auth(_)) => {
            let waiting = if retry_of_claim {
                MeetingState::Creating
            } else {
                MeetingState::Pending
            };
            schedule_retry(engine, job, &row, &error, waiting).await
        }
        // The request may have reached Zoom: keep the claim so the retry looks first.
        Err(error @ ZoomError::Retryable(_)) => {
            schedule_retry(engine, job, &row, &error, MeetingState::Creating).await
        }
        Err(error @ ZoomError::Permanent { .. }) => {
            let mut conn = engine.store.pool().acquire().await?;
            tracing::warn!(meeting.row = row.id, error = %error, "Zoom refused a create");
            rows::set_state(
                &mut conn,
                row.id,
                MeetingState::Failed,
                Some(&format!("{}: {error}", super::sync::REJECTED)),
            )
            .await
        }
    }
}

enum ListUnavailable {
    NoScope,
    Failed(ZoomError),
}

async fn find_existing(
    engine: &Engine,
    row: &MeetingRow,
    host_email: &str,
) -> Result<Option<(i64, Option<String>)>, ListUnavailable> {
    let scopes = engine
        .zoom
        .scopes()
        .await
        .map_err(ListUnavailable::Failed)?;
    if !scopes.iter().any(|s| LIST_SCOPES.contains(&s.as_str())) {
        return Err(ListUnavailable::NoScope);
    }
    let meetings = engine
        .zoom
        .list_upcoming(host_email)
        .await
        .map_err(ListUnavailable::Failed)?;
    Ok(meetings
        .into_iter()
        .find(|m| is_same_meeting(m, row))
        .map(|m| (m.id, m.join_url)))
}

/// Is `listed` the meeting of `row`? Same start and duration (an older meeting of a
/// rescheduled entry carries the same marker), and the agenda's last line is the row's
/// marker — or, since Zoom's list cuts agendas to 250 characters, the listed agenda is a
/// cut of the row's and the topic is the row's.
fn is_same_meeting(listed: &ListedMeeting, row: &MeetingRow) -> bool {
    let same_start = listed.start_time.as_deref().and_then(|s| parse_utc(s).ok())
        == parse_utc(&row.start_utc).ok();
    let same_duration = listed.duration.map(i64::from) == Some(row.duration_minutes);
    if !same_start || !same_duration {
        return false;
    }
    let Some(agenda) = listed.agenda.as_deref() else {
        return false;
    };
    let marker = row.entry_key().marker();
    if agenda.lines().last().map(str::trim) == Some(marker.as_str()) {
        return true;
    }
    // Zoom's cut is 250 characters; a shorter listed agenda is a whole one.
    let cut = agenda.trim_end_matches("...").trim_end_matches('…');
    agenda.chars().count() >= LISTED_AGENDA_CHARS - 3
        && cut.len() < row.agenda.len()
        && row.agenda.starts_with(cut)
        && listed.topic.as_deref() == Some(row.topic.as_str())
}

async fn record_created(
    engine: &Engine,
    job: &CreateMeeting,
    row: &MeetingRow,
    zoom_meeting_id: i64,
    join_url: Option<&str>,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    let mut tx = engine.store.begin_write().await?;
    rows::mark_created(&mut tx, row.id, zoom_meeting_id, join_url, reason).await?;
    if let Some(old) = row.replaces_meeting_id {
        // R-RESCHEDULE `replace`: the new meeting exists, now the old one goes.
        let delete = DeleteMeeting {
            meeting_id: old,
            reason: "replaced".to_owned(),
            request_id: job.request_id.clone(),
        };
        push(&mut tx, &delete, PushOptions::default()).await?;
    }
    tx.commit()
        .await
        .context("cannot record a created meeting")?;
    if let Some(sync_id) = &job.sync_id
        && let Ok(Some(triggered)) =
            sync_state::sync_run_created_at(engine.store.pool(), sync_id).await
    {
        let seconds = (Utc::now() - triggered).num_milliseconds() as f64 / 1000.0;
        engine.metrics.observe_trigger_to_meeting(seconds);
    }
    Ok(())
}

/// Records a failed attempt: a durable retry (a new task with a future run time) while
/// attempts remain, else `failed` with the reason.
async fn schedule_retry(
    engine: &Engine,
    job: &CreateMeeting,
    row: &MeetingRow,
    error: &ZoomError,
    state_while_waiting: MeetingState,
) -> anyhow::Result<()> {
    let now = Utc::now();
    let (state, run_at, reason) = match error {
        ZoomError::Quota {
            kind: QuotaKind::HostDaily,
            retry_after,
            ..
        } => (
            MeetingState::Deferred,
            retry_after.unwrap_or_else(|| next_utc_midnight(now)),
            "host_daily_limit".to_owned(),
        ),
        ZoomError::Quota {
            retry_after: Some(at),
            kind,
            ..
        } => (
            state_while_waiting,
            (*at).max(now),
            format!("rate_limited: {kind:?}"),
        ),
        other => {
            let attempt = u32::try_from(row.attempts).unwrap_or(u32::MAX);
            let delay = ChronoDuration::from_std(engine.retry_delay(attempt))
                .unwrap_or(ChronoDuration::seconds(60));
            (
                state_while_waiting,
                now + delay,
                format!("retrying: {other}"),
            )
        }
    };
    let mut tx = engine.store.begin_write().await?;
    if row.attempts >= engine.max_attempts() && state != MeetingState::Deferred {
        tracing::warn!(meeting.row = row.id, error = %error, "create failed; attempts exhausted");
        // The next sync tries a failed row again; after a request that may have reached Zoom
        // it looks for the meeting first.
        let prefix = if state_while_waiting == MeetingState::Creating {
            super::sync::FAILED_AFTER_SEND
        } else {
            "failed"
        };
        let reason = format!("{prefix}: {error}");
        rows::set_state(&mut tx, row.id, MeetingState::Failed, Some(&reason)).await?;
    } else {
        rows::mark_retry(
            &mut tx,
            row.id,
            state,
            &reason,
            &crate::store::utc_text(run_at),
        )
        .await?;
        push(&mut tx, job, PushOptions::at(run_at)).await?;
        tracing::info!(meeting.row = row.id, retry_at = %run_at, error = %error, "create will be retried");
    }
    tx.commit().await.context("cannot record a retry")
}

/// While a create is in flight, updates and deletes of that row wait for it.
const WAIT_FOR_CREATE_SECONDS: i64 = 30;

/// Runs one update (R-RESCHEDULE `update`, or a title/memo change under update/replace).
/// No database connection is held across the Zoom call.
pub async fn run_update(engine: &Engine, job: &UpdateMeeting) -> anyhow::Result<()> {
    let pool = engine.store.pool();
    let Some(row) = rows::meeting_by_id(&mut *pool.acquire().await?, job.meeting_id).await? else {
        return Ok(());
    };
    if row.state() == MeetingState::Creating {
        return wait_for_create(engine, job).await;
    }
    let (MeetingState::Created, Some(zoom_id)) = (row.state(), row.zoom_meeting_id) else {
        return Ok(());
    };
    let attempts = rows::count_attempt(&mut *pool.acquire().await?, row.id).await?;
    let result = engine
        .zoom
        .update_meeting(zoom_id, &meeting_request(&row))
        .await;
    let mut conn = pool.acquire().await?;
    match result {
        Ok(()) => {
            tracing::info!(zoom.meeting_id = zoom_id, schedule.id = %row.schedule_id, "updated Zoom meeting");
            rows::set_state(&mut conn, row.id, MeetingState::Created, Some("updated")).await
        }
        Err(error) if error.is_not_found() => {
            rows::set_state(
                &mut conn,
                row.id,
                MeetingState::Deleted,
                Some("missing_in_zoom"),
            )
            .await
        }
        Err(error) => {
            // The meeting stays `created` (it exists); only the change waits or is given up.
            if matches!(error, ZoomError::Permanent { .. }) || attempts >= engine.max_attempts() {
                let reason = format!("update_failed: {error}");
                return rows::set_state(&mut conn, row.id, MeetingState::Created, Some(&reason))
                    .await;
            }
            drop(conn);
            retry_later(engine, job, &error, attempts).await
        }
    }
}

/// Runs one delete (R-DELETE `delete`, R-RESCHEDULE `replace`). Zoom's 404 counts as done.
/// No database connection is held across the Zoom call.
pub async fn run_delete(engine: &Engine, job: &DeleteMeeting) -> anyhow::Result<()> {
    let pool = engine.store.pool();
    let Some(row) = rows::meeting_by_id(&mut *pool.acquire().await?, job.meeting_id).await? else {
        return Ok(());
    };
    match row.state() {
        MeetingState::Deleted => return Ok(()),
        // The meeting may be about to exist: deleting "nothing" now would leave it in Zoom.
        MeetingState::Creating => return wait_for_create(engine, job).await,
        _ => {}
    }
    let Some(zoom_id) = row.zoom_meeting_id else {
        let mut conn = pool.acquire().await?;
        return rows::set_state(&mut conn, row.id, MeetingState::Deleted, Some(&job.reason)).await;
    };
    if job.reason != "replaced" && entry_is_back(engine, &row).await? {
        // The entry was restored (or got its location back) while this delete waited.
        return Ok(());
    }
    let attempts = rows::count_attempt(&mut *pool.acquire().await?, row.id).await?;
    let result = engine.zoom.delete_meeting(zoom_id).await;
    let mut conn = pool.acquire().await?;
    match result {
        Ok(_) => {
            tracing::info!(zoom.meeting_id = zoom_id, reason = %job.reason, "deleted Zoom meeting");
            rows::set_state(&mut conn, row.id, MeetingState::Deleted, Some(&job.reason)).await
        }
        Err(error) => {
            // 3002 in progress, 3007 already ended (permanent), or attempts exhausted:
            // recorded, not retried.
            if matches!(error, ZoomError::Permanent { .. }) || attempts >= engine.max_attempts() {
                let reason = format!("delete_failed: {error}");
                return rows::set_state(&mut conn, row.id, row.state(), Some(&reason)).await;
            }
            drop(conn);
            retry_later(engine, job, &error, attempts).await
        }
    }
}

/// Is `row` its entry's current meeting again, with the entry no longer gone?
async fn entry_is_back(engine: &Engine, row: &MeetingRow) -> anyhow::Result<bool> {
    let mut conn = engine.store.pool().acquire().await?;
    let entry = rows::entry(&mut conn, &row.entry_key()).await?;
    Ok(entry.is_some_and(|e| e.gone_at.is_none() && e.current_meeting_id == Some(row.id)))
}

/// Pushes `job` again a little later, while its row's create is in flight.
async fn wait_for_create<J: super::Job>(engine: &Engine, job: &J) -> anyhow::Result<()> {
    let mut tx = engine.store.begin_write().await?;
    let run_at = Utc::now() + ChronoDuration::seconds(WAIT_FOR_CREATE_SECONDS);
    push(&mut tx, job, PushOptions::at(run_at)).await?;
    tx.commit().await.context("cannot schedule a wait")
}

/// Pushes `job` again with a future run time (Zoom's `Retry-After`, else backoff).
async fn retry_later<J: super::Job>(
    engine: &Engine,
    job: &J,
    error: &ZoomError,
    attempts: i64,
) -> anyhow::Result<()> {
    let mut tx = engine.store.begin_write().await?;
    push(
        &mut tx,
        job,
        PushOptions::at(retry_at(engine, error, attempts)),
    )
    .await?;
    tx.commit().await.context("cannot schedule a retry")
}

/// When to try again: Zoom's `Retry-After`; the next 00:00 UTC for a host's daily limit
/// (SPEC §6); else exponential backoff.
fn retry_at(engine: &Engine, error: &ZoomError, attempts: i64) -> DateTime<Utc> {
    let now = Utc::now();
    match error {
        ZoomError::Quota {
            kind: QuotaKind::HostDaily,
            retry_after,
            ..
        } => retry_after
            .unwrap_or_else(|| next_utc_midnight(now))
            .max(now),
        ZoomError::Quota {
            retry_after: Some(at),
            ..
        } => (*at).max(now),
        _ => {
            let delay = engine.retry_delay(u32::try_from(attempts).unwrap_or(u32::MAX));
            now + ChronoDuration::from_std(delay).unwrap_or(ChronoDuration::seconds(60))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(agenda: &str) -> MeetingRow {
        MeetingRow {
            id: 1,
            schedule_id: "8801".into(),
            occurrence: String::new(),
            start_utc: "2026-11-26T05:00:00Z".into(),
            end_utc: "2026-11-26T06:00:00Z".into(),
            host_user_id: Some("10002".into()),
            host_email: Some("tanaka@example.co.jp".into()),
            topic: "打合せ".into(),
            agenda: agenda.into(),
            duration_minutes: 60,
            timezone: "Asia/Tokyo".into(),
            invitees: "[]".into(),
            state: "creating".into(),
            reason: None,
            zoom_meeting_id: None,
            join_url: None,
            replaces_meeting_id: None,
            attempts: 1,
            next_attempt_at: None,
            claimed_at: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn listed(start: &str, duration: u32, topic: &str, agenda: Option<&str>) -> ListedMeeting {
        ListedMeeting {
            id: 9,
            topic: Some(topic.into()),
            start_time: Some(start.into()),
            duration: Some(duration),
            agenda: agenda.map(str::to_owned),
            join_url: None,
        }
    }

    /// R-ONCE: a retried create adopts only its own meeting.
    #[test]
    fn adopts_only_the_same_meeting() {
        let long_memo = "議".repeat(400);
        let long_agenda = format!("{long_memo}\n\njmotto-zoom: 8801");
        let cut: String = long_agenda.chars().take(250).collect();
        let cases = [
            (
                "marker, same time",
                row("jmotto-zoom: 8801"),
                listed("2026-11-26T05:00:00Z", 60, "x", Some("jmotto-zoom: 8801")),
                true,
            ),
            (
                "marker, older time",
                row("jmotto-zoom: 8801"),
                listed("2026-11-26T04:00:00Z", 60, "x", Some("jmotto-zoom: 8801")),
                false,
            ),
            (
                "marker, other duration",
                row("jmotto-zoom: 8801"),
                listed("2026-11-26T05:00:00Z", 30, "x", Some("jmotto-zoom: 8801")),
                false,
            ),
            (
                "other entry",
                row("jmotto-zoom: 8801"),
                listed("2026-11-26T05:00:00Z", 60, "x", Some("jmotto-zoom: 88011")),
                false,
            ),
            (
                "cut agenda, same topic",
                row(&long_agenda),
                listed("2026-11-26T05:00:00Z", 60, "打合せ", Some(&cut)),
                true,
            ),
            (
                "cut agenda, other topic",
                row(&long_agenda),
                listed("2026-11-26T05:00:00Z", 60, "別件", Some(&cut)),
                false,
            ),
            (
                "a short agenda is whole, not cut",
                row("jmotto-zoom: 8801"),
                listed(
                    "2026-11-26T05:00:00Z",
                    60,
                    "打合せ",
                    Some("jmotto-zoom: 880"),
                ),
                false,
            ),
            (
                "no agenda",
                row("jmotto-zoom: 8801"),
                listed("2026-11-26T05:00:00Z", 60, "打合せ", None),
                false,
            ),
        ];
        for (name, row, listed, expected) in cases {
            assert_eq!(is_same_meeting(&listed, &row), expected, "{name}");
        }
    }

    #[test]
    fn next_midnight_is_the_following_utc_day() {
        let cases = [
            ("2026-11-25T10:00:00Z", "2026-11-26T00:00:00Z"),
            ("2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z"),
            ("2026-11-25T00:00:00Z", "2026-11-26T00:00:00Z"),
        ];
        for (now, expected) in cases {
            let now = parse_utc(now).expect("valid");
            assert_eq!(crate::store::utc_text(next_utc_midnight(now)), expected);
        }
    }
}
