//! The worker's housekeeping beside the queues: the quick check of the services R-ENABLED
//! names (at start-up, then every [`CHECK_EVERY`]), the flush of this process's metric
//! counters (every heartbeat, and at shutdown), and the pruning of old webhook delivery ids
//! (`server.webhook_dedup_days`).

use std::{sync::Arc, time::Duration};

use super::{Engine, LiveEngine};
use crate::store::receiver;

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
            prune_deliveries(&engine).await;
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
    match receiver::prune_deliveries(engine.store.pool(), before).await {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "pruned old webhook delivery ids"),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot prune webhook deliveries")
        }
    }
}
