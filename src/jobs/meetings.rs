//! `CreateMeeting`, `UpdateMeeting`, `DeleteMeeting`: the only code that writes to Zoom.
//!
//! R-ONCE: a create first claims its row (`pending|deferred|failed` → `creating`) in a
//! committed transaction, and only then calls Zoom. A job that finds its row already
//! `creating` is the retry of an attempt that may have reached Zoom (a crash, a timeout, a
//! 5xx): it looks for the meeting by its agenda marker, start and duration among the host's
//! upcoming meetings when the token may list them, and adopts it; without that scope it
//! creates again and flags the row `possible_duplicate`.
//!
//! While the integration is 無効 (Zoom's credentials unset, the last Zoom token check
//! failed, or a call met Zoom's refusal of the credentials) none of the three calls Zoom:
//! each is pushed again as a durable wait tagged for release, its row shows
//! `integration_disabled`, and no attempt is counted. A quick check that passes makes the
//! waits due at once (`checks::record`).

use anyhow::Context;
use chrono::{DateTime, Duration as ChronoDuration, Utc};

use super::{CreateMeeting, DeleteMeeting, Engine, Job, PushOptions, UpdateMeeting, push};
use crate::{
    store::{
        MeetingRow, MeetingState, db,
        meetings::{self as rows, HostSlot, Reason, ReasonCode},
        parse_utc, queue, sync_state,
    },
    zoom::{Invitee, ListedMeeting, MeetingRequest, MeetingSettings, QuotaKind, ZoomError},
};

/// Until when a fresh claim (an attempt possibly still in flight) keeps other runs away.
fn claim_busy_until(
    engine: &Engine,
    row: &MeetingRow,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let claimed = parse_utc(row.claimed_at.as_deref()?).ok()?;
    let until = claimed + engine.claim_duration();
    (until > now).then_some(until)
}

/// The UTC day a quota slot belongs to.
fn utc_day(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%d").to_string()
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

/// A row this run of a create job may call Zoom for.
struct Claim {
    row: MeetingRow,
    host_email: String,
    /// An earlier attempt may have reached Zoom: look before creating.
    look_first: bool,
    /// The host's daily slot reserved for this attempt.
    slot: HostSlot,
}

/// In one write transaction: decides whether this run may act (the row is claimable, or its
/// claim is too old to be in flight), applies R-PAST and R-HOST, reserves the host's daily
/// slot — or defers the row to 00:00 UTC when the host has used its quota, or lets it wait
/// while the integration is 無効 — and claims the row. `None`: nothing to do now (done,
/// skipped, deferred, or another attempt in flight).
async fn claim(engine: &Engine, job: &CreateMeeting) -> anyhow::Result<Option<Claim>> {
    let now = Utc::now();
    let disabled = integration_waits(engine).await?;
    let mut tx = engine.store.begin_write().await?;
    let Some(row) = rows::meeting_by_id(&mut tx, job.meeting_id).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    let look_first = match row.state() {
        state if state.is_claimable() => row.look_first,
        MeetingState::Creating => {
            // Another attempt took the row moments ago and may still be talking to Zoom (a
            // job re-run while its first run is alive): look later, not now.
            if let Some(busy_until) = claim_busy_until(engine, &row, now) {
                push(&mut tx, job, PushOptions::at(busy_until)).await?;
                tx.commit().await?;
                return Ok(None);
            }
            true
        }
        // created, superseded, skipped…: nothing left to do (R-ONCE)
        _ => {
            tx.rollback().await?;
            return Ok(None);
        }
    };
    let skip = if parse_utc(&row.end_utc)? <= engine.clock.now() {
        Some(ReasonCode::Ended) // R-PAST: ended before its job ran
    } else if row.host_email.is_none() {
        Some(ReasonCode::NoEnabledHost)
    } else {
        None
    };
    let (Some(host_email), None) = (row.host_email.clone(), skip) else {
        rows::set_state(
            &mut tx,
            row.id,
            MeetingState::Skipped,
            skip.map(Reason::from),
        )
        .await?;
        tx.commit().await?;
        return Ok(None);
    };
    if let Some(reason) = disabled {
        // Issue 10 item 5: no call, no attempt counted; a passing check releases it.
        wait_while_disabled(
            &mut tx,
            job,
            &row,
            (MeetingState::Deferred, look_first),
            reason,
            false,
        )
        .await?;
        tx.commit().await?;
        return Ok(None);
    }
    let slot = HostSlot {
        host_email: host_email.clone(),
        utc_day: utc_day(now),
    };
    if !rows::reserve_host_slot(&mut tx, &slot, engine.settings.zoom.daily_host_limit).await? {
        super::alerts::host_daily_limit(&mut tx, &slot.host_email, &slot.utc_day).await?;
        return defer_to_midnight(tx, job, &row, look_first, now)
            .await
            .map(|()| None);
    }
    let Some(row) = rows::claim_for_create(&mut tx, row.id, &engine.instance).await? else {
        // Nothing claimed: the slot reserved above goes back with the rollback.
        tx.rollback().await?;
        return Ok(None);
    };
    tx.commit().await.context("cannot claim a meeting row")?;
    Ok(Some(Claim {
        row,
        host_email,
        look_first,
        slot,
    }))
}

/// The host has used its daily quota: the row waits, `deferred`, for the next 00:00 UTC,
/// and so does its job.
async fn defer_to_midnight(
    mut tx: crate::store::WriteTx,
    job: &CreateMeeting,
    row: &MeetingRow,
    look_first: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let run_at = next_utc_midnight(now);
    let wait = rows::Wait {
        state: MeetingState::Deferred,
        reason: ReasonCode::HostDailyLimit.into(),
        next_attempt_at: crate::store::utc_text(run_at),
        look_first,
        uncount_attempt: false,
    };
    rows::mark_retry(&mut tx, row.id, &wait).await?;
    push(&mut tx, job, PushOptions::at(run_at)).await?;
    tx.commit().await?;
    tracing::info!(meeting.row = row.id, host.user_id = row.host_user_id.as_deref().unwrap_or(""), retry_at = %run_at, "host's daily quota used; create deferred to 00:00 UTC");
    Ok(())
}

/// How long a create, update or delete waits while the integration is 無効 before it looks
/// again; a quick check that passes lets it go at once (`queue::release_disabled_waits`).
const DISABLED_WAIT_SECONDS: i64 = 60;

/// Why Zoom must not be called now (R-ENABLED, issue 10 item 5): Zoom's credentials are
/// unset, or the last check of the Zoom token failed. `None`: go on.
async fn integration_waits(engine: &Engine) -> anyhow::Result<Option<Reason>> {
    if let Err(not_set) = engine.zoom() {
        return Ok(Some(Reason::with_detail(
            ReasonCode::IntegrationDisabled,
            format!("not set: {}", not_set.keys.join(", ")),
        )));
    }
    if crate::checks::zoom_token_failed(&engine.store).await? {
        return Ok(Some(Reason::with_detail(
            ReasonCode::IntegrationDisabled,
            "the last check of the Zoom token failed",
        )));
    }
    Ok(None)
}

/// Pushes `job` again as a durable wait while the integration is 無効: a new task due in
/// [`DISABLED_WAIT_SECONDS`], tagged so that a passing check releases it; its row shows
/// `reason` in `state` (and keeps `look_first`). `uncount_attempt`: this run had counted an
/// attempt, which the wait gives back (a wait is not a failed attempt).
async fn wait_while_disabled<J: Job>(
    tx: &mut db::Conn,
    job: &J,
    row: &MeetingRow,
    (state, look_first): (MeetingState, bool),
    reason: Reason,
    uncount_attempt: bool,
) -> anyhow::Result<()> {
    let run_at = Utc::now() + ChronoDuration::seconds(DISABLED_WAIT_SECONDS);
    tracing::info!(meeting.row = row.id, queue = J::QUEUE, retry_at = %run_at, reason = %reason.api_text(), "the integration is disabled: the job waits");
    let wait = rows::Wait {
        state,
        reason,
        next_attempt_at: crate::store::utc_text(run_at),
        look_first,
        uncount_attempt,
    };
    rows::mark_retry(tx, row.id, &wait).await?;
    let options = PushOptions {
        run_at: Some(run_at),
        idempotency_key: Some(queue::disabled_wait_key()),
        ..PushOptions::default()
    };
    push(tx, job, options).await.map(|_| ())
}

/// The reason a job shows after Zoom refused the credentials (`error`).
fn refused_reason(error: &ZoomError) -> Reason {
    Reason::with_detail(ReasonCode::IntegrationDisabled, error)
}

/// Runs one create.
pub async fn run_create(engine: &Engine, job: &CreateMeeting) -> anyhow::Result<()> {
    let Some(claim) = claim(engine, job).await? else {
        return Ok(());
    };
    let row = claim.row.clone();
    // The claim keeps other attempts away for `claim_duration`; this attempt's calls must end
    // well inside it, so its last write lands before any other attempt may look or create.
    let bound = engine.attempt_bound();
    match tokio::time::timeout(bound, attempt_create(engine, job, claim)).await {
        Ok(result) => result,
        Err(_) => {
            let error = ZoomError::Retryable(format!(
                "the attempt took longer than {} s",
                bound.as_secs()
            ));
            schedule_retry(engine, job, &row, &error, true, None).await
        }
    }
}

/// One claimed attempt: look first when an earlier one may have reached Zoom, then create.
async fn attempt_create(engine: &Engine, job: &CreateMeeting, claim: Claim) -> anyhow::Result<()> {
    let Claim {
        row,
        host_email,
        look_first,
        slot,
    } = claim;
    let mut flag = None;
    if look_first {
        match find_existing(engine, &row, &host_email).await {
            Ok(Some(found)) => return adopt(engine, job, &row, found, &slot).await,
            Ok(None) => {}
            Err(ListUnavailable::NoScope) => flag = Some(ReasonCode::PossibleDuplicate),
            Err(ListUnavailable::Failed(error)) => {
                return schedule_retry(engine, job, &row, &error, true, Some(&slot)).await;
            }
        }
    }
    match engine
        .zoom()?
        .create_meeting(&host_email, &meeting_request(&row))
        .await
    {
        Ok(created) => {
            tracing::info!(
                request.id = job.request_id.as_deref().unwrap_or(""),
                schedule.id = %row.schedule_id,
                occurrence = %row.occurrence,
                zoom.meeting_id = created.id,
                host.user_id = row.host_user_id.as_deref().unwrap_or(""),
                "created Zoom meeting"
            );
            record_created(
                engine,
                job,
                &row,
                Created {
                    zoom_meeting_id: created.id,
                    join_url: created.join_url.as_deref(),
                    reason: flag,
                    unused_slot: None,
                },
            )
            .await
        }
        // Zoom answered before creating anything, or the request never left (no token): the
        // slot goes back; but if an earlier attempt may have reached Zoom, the next one must
        // still look first.
        Err(error @ (ZoomError::Quota { .. } | ZoomError::Auth(_) | ZoomError::NotSent(_))) => {
            schedule_retry(engine, job, &row, &error, look_first, Some(&slot)).await
        }
        // The request may have reached Zoom: the slot stays used, and the retry looks first.
        Err(error @ ZoomError::Retryable(_)) => {
            schedule_retry(engine, job, &row, &error, true, None).await
        }
        Err(error @ ZoomError::Permanent { .. }) => {
            tracing::warn!(meeting.row = row.id, error = %error, "Zoom refused a create");
            let mut tx = engine.store.begin_write().await?;
            if zoom_refused(&error) {
                rows::release_host_slot(&mut tx, &slot).await?;
            }
            let reason = Reason::with_detail(ReasonCode::ZoomRejected, &error);
            rows::set_state(&mut tx, row.id, MeetingState::Failed, Some(reason)).await?;
            note_run_failure(&mut tx, job, &row).await?;
            let unknown = matches!(
                error,
                ZoomError::Permanent {
                    code: USER_NOT_FOUND,
                    ..
                }
            );
            let user = row.host_user_id.as_deref().unwrap_or(&host_email);
            if unknown {
                // SPEC §10: the host's e-mail is not in the account; alerted at once.
                super::alerts::user_zoom_unknown(&mut tx, user, &host_email).await?;
            }
            tx.commit()
                .await
                .context("cannot record a refused create")?;
            if unknown {
                record_email_check(engine, user, &host_email, false).await;
            }
            Ok(())
        }
    }
}

/// Zoom's code for "the user does not exist" (the host's e-mail is not in the account).
const USER_NOT_FOUND: i64 = 1001;

/// A create of `sync_id`'s run ended `failed` or refused: noted for the run's one
/// `meetings.failed` alert (`jobs::housekeeping` sends it when the run's jobs have ended).
async fn note_run_failure(
    tx: &mut db::Conn,
    job: &CreateMeeting,
    row: &MeetingRow,
) -> anyhow::Result<()> {
    match &job.sync_id {
        Some(sync_id) => sync_state::record_run_failure(tx, sync_id, row.id).await,
        None => Ok(()),
    }
}

/// Records the outcome of a user's Zoom e-mail check, as the console's ユーザー page shows it
/// (a failure is logged: the alert does not depend on it).
pub(super) async fn record_email_check(engine: &Engine, user_id: &str, email: &str, found: bool) {
    if let Err(error) = crate::store::settings::record_email_check(
        engine.store.db(),
        user_id,
        email,
        found,
        Utc::now(),
    )
    .await
    {
        tracing::warn!(error = %format!("{error:#}"), "cannot record an e-mail check");
    }
}

/// Records the meeting an earlier attempt created (found by `find_existing`) as this row's.
async fn adopt(
    engine: &Engine,
    job: &CreateMeeting,
    row: &MeetingRow,
    (zoom_id, join_url): (i64, Option<String>),
    slot: &HostSlot,
) -> anyhow::Result<()> {
    tracing::info!(
        meeting.row = row.id,
        zoom.meeting_id = zoom_id,
        "adopted the meeting an earlier attempt created"
    );
    // This attempt made no create call: its slot goes back.
    let adopted = Created {
        zoom_meeting_id: zoom_id,
        join_url: join_url.as_deref(),
        reason: Some(ReasonCode::Adopted),
        unused_slot: Some(slot),
    };
    record_created(engine, job, row, adopted).await
}

/// Zoom refused the credentials: recorded as the last token check (the integration is 無効)
/// and reported to the alerts (`integration.disabled`).
async fn credentials_refused(engine: &Engine, error: &ZoomError) {
    crate::checks::record_token_refusal(&engine.store, error).await;
    if let Err(error) = super::alerts::report_integration(engine).await {
        tracing::warn!(error = %format!("{error:#}"), "cannot record the integration's alert");
    }
}

/// Gives back the slot of a call Zoom refused; when Zoom says the host's day is used up,
/// marks it so (Zoom also counts calls other apps made for that host) and alerts it
/// (`host.daily_limit`, once per host and UTC day).
async fn give_back_slot(
    engine: &Engine,
    tx: &mut db::Conn,
    slot: &HostSlot,
    error: &ZoomError,
) -> anyhow::Result<()> {
    rows::release_host_slot(tx, slot).await?;
    if let ZoomError::Quota {
        kind: QuotaKind::HostDaily,
        ..
    } = error
    {
        rows::exhaust_host_day(tx, slot, engine.settings.zoom.daily_host_limit).await?;
        super::alerts::host_daily_limit(tx, &slot.host_email, &slot.utc_day).await?;
    }
    Ok(())
}

/// Did Zoom answer with an error status, or was the call never sent (so it created or
/// changed nothing and did not count against the host's daily quota)? A 2xx whose body could
/// not be read did count.
fn zoom_refused(error: &ZoomError) -> bool {
    match error {
        ZoomError::Quota { .. } | ZoomError::Auth(_) | ZoomError::NotSent(_) => true,
        ZoomError::Permanent { status, .. } => *status >= 300,
        ZoomError::Retryable(_) => false,
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
    let zoom = engine
        .zoom()
        .map_err(|not_set| ListUnavailable::Failed(ZoomError::NotSent(not_set.to_string())))?;
    let scopes = zoom.scopes().await.map_err(ListUnavailable::Failed)?;
    if !scopes.iter().any(|s| LIST_SCOPES.contains(&s.as_str())) {
        return Err(ListUnavailable::NoScope);
    }
    let meetings = zoom
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

/// What a create (or an adoption) ends with.
struct Created<'a> {
    zoom_meeting_id: i64,
    join_url: Option<&'a str>,
    reason: Option<ReasonCode>,
    /// The attempt's slot when it made no create call (an adoption).
    unused_slot: Option<&'a HostSlot>,
}

async fn record_created(
    engine: &Engine,
    job: &CreateMeeting,
    row: &MeetingRow,
    created: Created<'_>,
) -> anyhow::Result<()> {
    // Zoom's answer is in hand: a busy database must not turn it into a retry that creates
    // again (or flags a possible duplicate), so the write itself is retried here.
    let mut pause = std::time::Duration::from_millis(500);
    for _ in 0..3 {
        match write_created(engine, job, row, &created).await {
            Ok(()) => return observe_created(engine, job).await,
            Err(error) => {
                tracing::warn!(meeting.row = row.id, error = %format!("{error:#}"), "cannot record a created meeting yet; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
    write_created(engine, job, row, &created).await?;
    observe_created(engine, job).await
}

async fn write_created(
    engine: &Engine,
    job: &CreateMeeting,
    row: &MeetingRow,
    created: &Created<'_>,
) -> anyhow::Result<()> {
    let mut tx = engine.store.begin_write().await?;
    rows::mark_created(
        &mut tx,
        row.id,
        created.zoom_meeting_id,
        created.join_url,
        created.reason,
    )
    .await?;
    if let Some(slot) = created.unused_slot {
        rows::release_host_slot(&mut tx, slot).await?;
    }
    if let Some(old) = row.replaces_meeting_id {
        // R-RESCHEDULE `replace`: the new meeting exists, now the old one goes.
        let delete = DeleteMeeting {
            meeting_id: old,
            reason: ReasonCode::Replaced.as_str().to_owned(),
            request_id: job.request_id.clone(),
        };
        push(&mut tx, &delete, PushOptions::default()).await?;
    }
    tx.commit().await.context("cannot record a created meeting")
}

/// The trigger-to-meeting time of a meeting just recorded.
async fn observe_created(engine: &Engine, job: &CreateMeeting) -> anyhow::Result<()> {
    if let Some(sync_id) = &job.sync_id
        && let Ok(Some(triggered)) =
            sync_state::sync_run_created_at(engine.store.db(), sync_id).await
    {
        let seconds = (Utc::now() - triggered).num_milliseconds() as f64 / 1000.0;
        engine.metrics.observe_trigger_to_meeting(seconds);
    }
    Ok(())
}

/// Records a failed attempt: a durable retry (a new task with a future run time) while
/// attempts remain, else `failed` with the reason. A quota wait shows as `deferred`; a
/// daily quota (the host's or the account's) is not a failed attempt and is not counted.
/// `unused_slot`: the attempt's host slot, given back because Zoom created nothing.
async fn schedule_retry(
    engine: &Engine,
    job: &CreateMeeting,
    row: &MeetingRow,
    error: &ZoomError,
    look_first: bool,
    unused_slot: Option<&HostSlot>,
) -> anyhow::Result<()> {
    if let ZoomError::Auth(_) = error {
        // Zoom refused the credentials: the integration is 無効 until a check passes.
        credentials_refused(engine, error).await;
        let mut tx = engine.store.begin_write().await?;
        if let Some(slot) = unused_slot {
            give_back_slot(engine, &mut tx, slot, error).await?;
        }
        let waiting = (MeetingState::Deferred, look_first);
        wait_while_disabled(&mut tx, job, row, waiting, refused_reason(error), true).await?;
        return tx.commit().await.context("cannot record a wait");
    }
    let run_at = retry_at(engine, error, row.attempts, Utc::now());
    let (state, reason, daily) = create_wait(error, look_first);
    let mut tx = engine.store.begin_write().await?;
    if let Some(slot) = unused_slot {
        give_back_slot(engine, &mut tx, slot, error).await?;
    }
    if row.attempts >= engine.max_attempts() && !daily {
        tracing::warn!(meeting.row = row.id, error = %error, "create failed; attempts exhausted");
        // The next sync tries a failed row again; after a request that may have reached Zoom
        // it looks for the meeting first.
        let code = if look_first {
            ReasonCode::FailedAfterSend
        } else {
            ReasonCode::Failed
        };
        let reason = Reason::with_detail(code, error);
        rows::set_state(&mut tx, row.id, MeetingState::Failed, Some(reason)).await?;
        note_run_failure(&mut tx, job, row).await?;
        if look_first {
            // Whatever happens to the row next (skipped, re-armed), its next create looks
            // for the meeting this attempt may have made.
            rows::set_look_first(&mut tx, row.id).await?;
        }
    } else {
        let wait = rows::Wait {
            state,
            reason,
            next_attempt_at: crate::store::utc_text(run_at),
            look_first,
            uncount_attempt: daily,
        };
        rows::mark_retry(&mut tx, row.id, &wait).await?;
        push(&mut tx, job, PushOptions::at(run_at)).await?;
        tracing::info!(meeting.row = row.id, retry_at = %run_at, error = %error, "create will be retried");
    }
    tx.commit().await.context("cannot record a retry")
}

/// How a create that will be retried waits: its state, its reason, and whether the wait is
/// a daily quota (not a failed attempt). After a request that may have reached Zoom
/// (`look_first`) the row stays `creating` so that nothing changes it before the retry looked.
fn create_wait(error: &ZoomError, look_first: bool) -> (MeetingState, Reason, bool) {
    let deferred = |code: ReasonCode, daily| (MeetingState::Deferred, Reason::from(code), daily);
    match error {
        ZoomError::Quota {
            kind: QuotaKind::HostDaily,
            ..
        } => deferred(ReasonCode::HostDailyLimit, true),
        ZoomError::Quota {
            kind: QuotaKind::AccountDaily,
            ..
        } => deferred(ReasonCode::AccountDailyLimit, true),
        ZoomError::Quota { .. } => deferred(ReasonCode::RateLimited, false),
        other => {
            let waiting = if look_first {
                MeetingState::Creating
            } else {
                MeetingState::Pending
            };
            (
                waiting,
                Reason::with_detail(ReasonCode::Retrying, other),
                false,
            )
        }
    }
}

/// While a create is in flight, updates and deletes of that row wait for it.
const WAIT_FOR_CREATE_SECONDS: i64 = 30;

/// Runs one update (R-RESCHEDULE `update`, or a title/memo change under update/replace).
/// An update counts against the host's daily quota like a create: its slot is reserved in
/// the transaction that counts the attempt. No database connection is held across the Zoom
/// call.
pub async fn run_update(engine: &Engine, job: &UpdateMeeting) -> anyhow::Result<()> {
    let Some(started) = start_update(engine, job).await? else {
        return Ok(());
    };
    let StartedUpdate {
        row,
        zoom_id,
        attempts,
        slot,
    } = started;
    let result = engine
        .zoom()?
        .update_meeting(zoom_id, &meeting_request(&row))
        .await;
    if let Err(error @ ZoomError::Auth(_)) = &result {
        // Before the write turn: recording takes its own.
        credentials_refused(engine, error).await;
    }
    let mut tx = engine.store.begin_write().await?;
    if let Err(error) = &result
        && zoom_refused(error)
    {
        give_back_slot(engine, &mut tx, &slot, error).await?;
    }
    match result {
        Ok(()) => {
            tracing::info!(zoom.meeting_id = zoom_id, schedule.id = %row.schedule_id, "updated Zoom meeting");
            let updated = Some(ReasonCode::Updated.into());
            rows::set_state(&mut tx, row.id, MeetingState::Created, updated).await?;
            rows::reset_attempts(&mut tx, row.id).await?;
        }
        Err(error) if error.is_not_found() => {
            let missing = Some(ReasonCode::MissingInZoom.into());
            rows::set_state(&mut tx, row.id, MeetingState::Deleted, missing).await?;
        }
        Err(error) => record_update_failure(engine, &mut tx, job, &row, attempts, error).await?,
    }
    tx.commit().await.context("cannot record an update")
}

/// An update this run may send: its row, Zoom's meeting id, the attempt's count and slot.
struct StartedUpdate {
    row: MeetingRow,
    zoom_id: i64,
    attempts: i64,
    slot: HostSlot,
}

/// In one write transaction: waits for a create in flight, reserves the host's daily slot
/// (or defers the update to 00:00 UTC) and counts the attempt. `None`: nothing to send now.
async fn start_update(
    engine: &Engine,
    job: &UpdateMeeting,
) -> anyhow::Result<Option<StartedUpdate>> {
    let now = Utc::now();
    let disabled = integration_waits(engine).await?;
    let mut tx = engine.store.begin_write().await?;
    let Some(row) = rows::meeting_by_id(&mut tx, job.meeting_id).await? else {
        return Ok(None);
    };
    if row.state() == MeetingState::Creating {
        drop(tx);
        wait_for_create(engine, job).await?;
        return Ok(None);
    }
    let (MeetingState::Created, Some(zoom_id), Some(host_email)) =
        (row.state(), row.zoom_meeting_id, row.host_email.clone())
    else {
        return Ok(None);
    };
    if let Some(reason) = disabled {
        let waiting = (MeetingState::Created, row.look_first);
        wait_while_disabled(&mut tx, job, &row, waiting, reason, false).await?;
        tx.commit().await?;
        return Ok(None);
    }
    let slot = HostSlot {
        host_email,
        utc_day: utc_day(now),
    };
    if !rows::reserve_host_slot(&mut tx, &slot, engine.settings.zoom.daily_host_limit).await? {
        super::alerts::host_daily_limit(&mut tx, &slot.host_email, &slot.utc_day).await?;
        let run_at = next_utc_midnight(now);
        let deferred = Reason::with_detail(ReasonCode::UpdateDeferred, ReasonCode::HostDailyLimit);
        rows::set_state(&mut tx, row.id, MeetingState::Created, Some(deferred)).await?;
        push(&mut tx, job, PushOptions::at(run_at)).await?;
        tx.commit().await?;
        tracing::info!(meeting.row = row.id, retry_at = %run_at, "host's daily quota used; update deferred to 00:00 UTC");
        return Ok(None);
    }
    let attempts = rows::count_attempt(&mut tx, row.id).await?;
    tx.commit().await.context("cannot start an update")?;
    Ok(Some(StartedUpdate {
        row,
        zoom_id,
        attempts,
        slot,
    }))
}

/// A failed PATCH: the meeting stays `created` (it exists); only the change waits, is given
/// up (Zoom refused it), or waits for the next sync (attempts ran out).
async fn record_update_failure(
    engine: &Engine,
    tx: &mut db::Conn,
    job: &UpdateMeeting,
    row: &MeetingRow,
    attempts: i64,
    error: ZoomError,
) -> anyhow::Result<()> {
    let daily = matches!(
        error,
        ZoomError::Quota {
            kind: QuotaKind::HostDaily | QuotaKind::AccountDaily,
            ..
        }
    );
    let zoom_id = row.zoom_meeting_id;
    if let ZoomError::Auth(_) = error {
        let waiting = (MeetingState::Created, row.look_first);
        wait_while_disabled(tx, job, row, waiting, refused_reason(&error), true).await
    } else if let ZoomError::Permanent { .. } = error {
        tracing::warn!(meeting.row = row.id, zoom.meeting_id = zoom_id, error = %error, "Zoom refused an update");
        let reason = Reason::with_detail(ReasonCode::UpdateRejected, &error);
        rows::set_state(tx, row.id, MeetingState::Created, Some(reason)).await
    } else if attempts >= engine.max_attempts() && !daily {
        tracing::warn!(meeting.row = row.id, zoom.meeting_id = zoom_id, error = %error, "update failed; attempts exhausted");
        // The next sync sees this reason and PATCHes again (`domain::plan`).
        let reason = Reason::with_detail(ReasonCode::UpdateFailed, &error);
        rows::set_state(tx, row.id, MeetingState::Created, Some(reason)).await
    } else {
        let run_at = retry_at(engine, &error, attempts, Utc::now());
        let reason = Reason::with_detail(ReasonCode::UpdateRetrying, &error);
        rows::set_state(tx, row.id, MeetingState::Created, Some(reason)).await?;
        push(tx, job, PushOptions::at(run_at)).await.map(|_| ())
    }
}

/// Runs one delete (R-DELETE `delete`, R-RESCHEDULE `replace`). Zoom's 404 counts as done.
/// No database connection is held across the Zoom call.
pub async fn run_delete(engine: &Engine, job: &DeleteMeeting) -> anyhow::Result<()> {
    let reason = ReasonCode::parse(&job.reason).context("a DeleteMeeting job with a bad reason")?;
    let pool = engine.store.db();
    let Some(row) = rows::meeting_by_id(&mut pool.acquire().await?, job.meeting_id).await? else {
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
        return rows::set_state(
            &mut conn,
            row.id,
            MeetingState::Deleted,
            Some(reason.into()),
        )
        .await;
    };
    if reason != ReasonCode::Replaced && entry_is_back(engine, &row).await? {
        // The entry was restored (or got its location back) while this delete waited.
        return Ok(());
    }
    if let Some(reason) = integration_waits(engine).await? {
        let mut tx = engine.store.begin_write().await?;
        wait_while_disabled(
            &mut tx,
            job,
            &row,
            (row.state(), row.look_first),
            reason,
            false,
        )
        .await?;
        return tx.commit().await.context("cannot record a wait");
    }
    let attempts = rows::count_attempt(&mut pool.acquire().await?, row.id).await?;
    let result = engine.zoom()?.delete_meeting(zoom_id).await;
    if let Err(error @ ZoomError::Auth(_)) = &result {
        credentials_refused(engine, error).await;
        let mut tx = engine.store.begin_write().await?;
        let waiting = (row.state(), row.look_first);
        wait_while_disabled(&mut tx, job, &row, waiting, refused_reason(error), true).await?;
        return tx.commit().await.context("cannot record a wait");
    }
    let mut conn = pool.acquire().await?;
    match result {
        Ok(_) => {
            tracing::info!(zoom.meeting_id = zoom_id, reason = %reason, "deleted Zoom meeting");
            rows::set_state(
                &mut conn,
                row.id,
                MeetingState::Deleted,
                Some(reason.into()),
            )
            .await
        }
        Err(error) => {
            // 3002 in progress, 3007 already ended (permanent): recorded, not retried.
            // Attempts exhausted: recorded; the user's next complete listing tries again.
            if matches!(error, ZoomError::Permanent { .. }) {
                tracing::warn!(meeting.row = row.id, zoom.meeting_id = zoom_id, error = %error, "Zoom refused a delete");
                let reason = Reason::with_detail(ReasonCode::DeleteRefused, &error);
                return rows::set_state(&mut conn, row.id, row.state(), Some(reason)).await;
            }
            if attempts >= engine.max_attempts() {
                tracing::warn!(meeting.row = row.id, zoom.meeting_id = zoom_id, error = %error, "delete failed; attempts exhausted");
                let reason = Reason::with_detail(ReasonCode::DeleteFailed, &error);
                return rows::set_state(&mut conn, row.id, row.state(), Some(reason)).await;
            }
            drop(conn);
            retry_later(engine, job, &error, attempts).await
        }
    }
}

/// Is `row` its entry's current meeting again, with the entry no longer gone?
async fn entry_is_back(engine: &Engine, row: &MeetingRow) -> anyhow::Result<bool> {
    let mut conn = engine.store.db().acquire().await?;
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
        PushOptions::at(retry_at(engine, error, attempts, Utc::now())),
    )
    .await?;
    tx.commit().await.context("cannot schedule a retry")
}

/// When to try again: Zoom's `Retry-After`; the next 00:00 UTC for a host's daily limit
/// (SPEC §6); else exponential backoff.
fn retry_at(
    engine: &Engine,
    error: &ZoomError,
    attempts: i64,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
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
        // The account's daily limit without a date: it resets at 00:00 UTC (not a busy loop).
        ZoomError::Quota {
            kind: QuotaKind::AccountDaily,
            retry_after: None,
            ..
        } => next_utc_midnight(now),
        // The request may still be running in Zoom: the retry, which looks for its meeting
        // first, waits at least one client timeout so Zoom has finished what it started.
        ZoomError::Retryable(_) => {
            let delay = engine.retry_delay(u32::try_from(attempts).unwrap_or(u32::MAX));
            let grace = std::time::Duration::from_secs(engine.settings.worker.http_timeout_seconds);
            now + ChronoDuration::from_std(delay.max(grace)).unwrap_or(ChronoDuration::seconds(60))
        }
        _ => {
            let delay = engine.retry_delay(u32::try_from(attempts).unwrap_or(u32::MAX));
            now + ChronoDuration::from_std(delay).unwrap_or(ChronoDuration::seconds(60))
        }
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    async fn engine(folder: &tempfile::TempDir) -> std::sync::Arc<Engine> {
        let url = format!("sqlite://{}", folder.path().join("r.db").display());
        let text = format!(
            r#"
[database]
url = "{url}"
[server]
admin_token = "t"
[zoom]
account_id = "a"
client_id = "c"
client_secret = "s"
[groupware]
base_url = "http://127.0.0.1:9/"
admin_login_id = "admin"
admin_password = "p"
timezone = "Asia/Tokyo"
[worker]
http_timeout_seconds = 20
retry_base_seconds = 1
[[users]]
groupware_id = "10002"
zoom_email = "tanaka@example.co.jp"
"#
        );
        let settings = crate::config::Settings::from_toml_str(&text).expect("settings");
        let store = crate::store::Store::connect(&settings.database.url)
            .await
            .expect("store");
        Engine::new(settings, store).expect("engine")
    }

    /// SPEC §6 durable waits: an account-daily 429 without a date waits for 00:00 UTC (not a
    /// loop of short backoffs); a create that may still be running in Zoom is looked for no
    /// sooner than one client timeout later (R-ONCE); a claim outlives its attempt's bound.
    #[tokio::test]
    async fn waits_by_error_kind() {
        let folder = tempfile::tempdir().expect("temp dir");
        let engine = engine(&folder).await;
        let now = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .expect("instant")
            .with_timezone(&Utc);
        let account_daily = ZoomError::Quota {
            kind: QuotaKind::AccountDaily,
            retry_after: None,
            message: "daily limit".to_owned(),
        };
        assert_eq!(
            retry_at(&engine, &account_daily, 1, now),
            next_utc_midnight(now)
        );
        let lost = ZoomError::Retryable("timed out".to_owned());
        assert!(retry_at(&engine, &lost, 1, now) >= now + ChronoDuration::seconds(20));
        let refused = ZoomError::Quota {
            kind: QuotaKind::PerSecond,
            retry_after: None,
            message: "qps".to_owned(),
        };
        assert!(retry_at(&engine, &refused, 1, now) < now + ChronoDuration::seconds(5));
        let bound = ChronoDuration::from_std(engine.attempt_bound()).expect("bound");
        assert!(engine.claim_duration() >= bound + ChronoDuration::seconds(20));
        engine.store.close().await;
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
            state: MeetingState::Creating,
            reason: None,
            zoom_meeting_id: None,
            join_url: None,
            replaces_meeting_id: None,
            attempts: 1,
            next_attempt_at: None,
            claimed_at: None,
            created_at: String::new(),
            updated_at: String::new(),
            look_first: false,
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

    /// SPEC §6 waits: a quota defers the row (a daily one without counting the attempt);
    /// any other retry keeps the row `creating` when the request may have reached Zoom.
    #[test]
    fn create_waits_by_error_kind() {
        use MeetingState::{Creating, Deferred, Pending};
        let quota = |kind| ZoomError::Quota {
            kind,
            retry_after: None,
            message: "limit".into(),
        };
        let cases = [
            (
                quota(QuotaKind::HostDaily),
                false,
                Deferred,
                ReasonCode::HostDailyLimit,
                true,
            ),
            (
                quota(QuotaKind::AccountDaily),
                true,
                Deferred,
                ReasonCode::AccountDailyLimit,
                true,
            ),
            (
                quota(QuotaKind::PerSecond),
                false,
                Deferred,
                ReasonCode::RateLimited,
                false,
            ),
            (
                ZoomError::Retryable("lost".into()),
                true,
                Creating,
                ReasonCode::Retrying,
                false,
            ),
            (
                ZoomError::Auth("expired".into()),
                false,
                Pending,
                ReasonCode::Retrying,
                false,
            ),
            (
                ZoomError::NotSent("token: HTTP 500".into()),
                false,
                Pending,
                ReasonCode::Retrying,
                false,
            ),
        ];
        for (error, look_first, state, code, daily) in cases {
            let (got_state, reason, got_daily) = create_wait(&error, look_first);
            assert_eq!(
                (got_state, reason.code, got_daily),
                (state, code, daily),
                "{error}"
            );
        }
    }

    /// SPEC §6 daily quota: only a call that may have reached Zoom keeps its slot; one that
    /// never left (its token could not be fetched) gives it back.
    #[test]
    fn only_a_call_that_may_have_reached_zoom_keeps_its_slot() {
        assert!(zoom_refused(&ZoomError::NotSent("token: HTTP 500".into())));
        assert!(!zoom_refused(&ZoomError::Retryable("HTTP 500".into())));
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
