//! The worker's housekeeping beside the queues: the quick check of the services R-ENABLED
//! names (at start-up, then every [`CHECK_EVERY`]), the flush of this process's metric
//! counters (every heartbeat, and at shutdown), and the pruning of old webhook delivery ids
//! (`server.webhook_dedup_days`).
//!
//! Alerts (SPEC §10) found here: with each quick check, each enabled user's Zoom e-mail is
//! checked (`user.zoom_unknown` opens or clears); every heartbeat, the sync runs whose jobs
//! have ended get their one `meetings.failed` alert.
//!
//! When a run's jobs "have ended" (the decision for `meetings.failed`): a create that ends
//! `failed` or refused notes (run, meeting) in `run_failures` in the transaction that records
//! it (`jobs::meetings`, from the `CreateMeeting`'s `sync_id`). A run with such notes is
//! over when none of its slices is still pending and no `CreateMeeting` of the run is
//! unfinished with a run time within [`RUN_OVER_HORIZON`] (a create deferred to the next
//! 00:00 UTC by a daily quota does not hold the alert back for a day). Then, in one write
//! transaction, the notes are taken (deleted), the rows still `failed` are listed
//! (`FailedMeeting::from_row`) and `jobs::alerts::meetings_failed` records the run's alert,
//! unique per run in the database: a second worker or a restart sends nothing twice. A
//! failed meeting of a later run lists in that run's alert.

use std::{sync::Arc, time::Duration};

use super::{CreateMeeting, Engine, Job, LiveEngine};
use crate::store::{MeetingState, meetings, queue, receiver, sync_state};

/// A run's create due later than this does not keep its `meetings.failed` alert waiting.
pub const RUN_OVER_HORIZON: Duration = Duration::from_secs(60 * 60);

/// How often the worker re-checks Zoom's token, the J-MOTTO login and the timezone.
pub const CHECK_EVERY: Duration = Duration::from_secs(15 * 60);

/// Runs until aborted. The quick check runs with the current engine: at start-up, every
/// [`CHECK_EVERY`], and at once when a saved change of the settings rebuilt the engine (a
/// fix entered in the console passes here and lets the deferred jobs go).
pub async fn run(live: LiveEngine) {
    let file = live.latest();
    let beat = Duration::from_secs(file.settings.worker.heartbeat_seconds.max(1));
    let mut next_check = tokio::time::Instant::now();
    let mut checked: Option<Arc<crate::config::Settings>> = None;
    let mut interval = tokio::time::interval(beat);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let engine = match live.current().await {
            Ok(engine) => engine,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "cannot read the settings");
                live.latest()
            }
        };
        let changed = checked
            .as_ref()
            .is_some_and(|settings| !Arc::ptr_eq(settings, &engine.settings));
        if changed || tokio::time::Instant::now() >= next_check {
            next_check = tokio::time::Instant::now() + CHECK_EVERY;
            checked = Some(engine.settings.clone());
            quick_check(&engine).await;
            check_zoom_emails(&engine).await;
            prune_deliveries(&engine).await;
        }
        if let Err(error) = alert_ended_runs(&engine).await {
            tracing::warn!(error = %format!("{error:#}"), "cannot alert the failed meetings of a sync run");
        }
        flush_metrics(&engine).await;
    }
}

/// The quick check with `engine`'s clients, each failure logged.
async fn quick_check(engine: &Engine) {
    for failed in engine.quick_check().await.iter().filter(|r| !r.ok) {
        tracing::warn!(check = %failed.item, detail = %failed.detail, "service check failed");
    }
}

/// SPEC §10: each enabled user's Zoom e-mail against the Zoom account (recorded for the
/// ユーザー page): not found opens `user.zoom_unknown`, found clears it. A check that cannot
/// be made (no Zoom client, a refused token, a network error) changes nothing.
async fn check_zoom_emails(engine: &Engine) {
    let Ok(zoom) = engine.zoom() else {
        return;
    };
    for user in engine.settings.users.iter().filter(|u| u.enabled) {
        let (id, email) = (user.groupware_id.as_str(), user.zoom_email.as_str());
        if email.is_empty() {
            continue;
        }
        let found = match zoom.email_exists(email).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(user.id = %id, error = %error, "cannot check a user's Zoom e-mail");
                continue;
            }
        };
        super::meetings::record_email_check(engine, id, email, found).await;
        if let Err(error) = report_email(engine, id, email, found).await {
            tracing::warn!(error = %format!("{error:#}"), "cannot record a user's e-mail alert");
        }
    }
}

async fn report_email(engine: &Engine, id: &str, email: &str, found: bool) -> anyhow::Result<()> {
    let mut tx = engine.store.begin_write().await?;
    if found {
        super::alerts::user_zoom_found(&mut tx, id).await?;
    } else {
        super::alerts::user_zoom_unknown(&mut tx, id, email).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The `meetings.failed` alert of each sync run whose jobs have ended (see the module's
/// doc for the decision).
async fn alert_ended_runs(engine: &Engine) -> anyhow::Result<()> {
    let horizon = i64::try_from(RUN_OVER_HORIZON.as_secs()).unwrap_or(i64::MAX);
    let before = chrono::Utc::now().timestamp().saturating_add(horizon);
    for sync_id in sync_state::runs_with_failures(engine.store.db()).await? {
        if queue::run_has_unfinished(engine.store.db(), CreateMeeting::QUEUE, &sync_id, before)
            .await?
        {
            continue;
        }
        let mut tx = engine.store.begin_write().await?;
        let mut entries = Vec::new();
        for id in sync_state::take_run_failures(&mut tx, &sync_id).await? {
            if let Some(row) = meetings::meeting_by_id(&mut tx, id).await?
                && row.state() == MeetingState::Failed
            {
                let timezone = engine.settings.groupware.timezone;
                entries.push(super::alerts::FailedMeeting::from_row(&row, timezone));
            }
        }
        let new = super::alerts::meetings_failed(&mut tx, &sync_id, &entries).await?;
        tx.commit().await?;
        if new {
            tracing::info!(sync.id = %sync_id, failed = entries.len(), "failed meetings of a sync run alerted");
        }
    }
    Ok(())
}

/// Moves this process's counters into the database (also called at shutdown).
pub async fn flush_metrics(engine: &Engine) {
    if let Err(error) = engine.metrics.flush(&engine.store).await {
        tracing::warn!(error = %format!("{error:#}"), "cannot flush metrics");
    }
}

async fn prune_deliveries(engine: &Engine) {
    let days = i64::from(engine.settings.server.webhook_dedup_days);
    let Some(before) =
        chrono::Duration::try_days(days).and_then(|age| chrono::Utc::now().checked_sub_signed(age))
    else {
        return;
    };
    match receiver::prune_deliveries(engine.store.db(), before).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "pruned old webhook delivery ids"),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot prune webhook deliveries")
        }
    }
}
