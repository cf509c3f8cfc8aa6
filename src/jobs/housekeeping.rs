//! The worker's housekeeping beside the queues: the quick check of the services R-ENABLED
//! names (at start-up, then every [`CHECK_EVERY`]), the flush of this process's metric
//! counters (every heartbeat, and at shutdown), and the pruning of old webhook delivery ids
//! (`server.webhook_dedup_days`).

use std::{sync::Arc, time::Duration};

use super::Engine;
use crate::store::receiver;

/// How often the worker re-checks Zoom's token, the J-MOTTO login and the timezone.
pub const CHECK_EVERY: Duration = Duration::from_secs(15 * 60);

/// Runs until aborted.
pub async fn run(engine: Arc<Engine>) {
    let beat = Duration::from_secs(engine.settings.worker.heartbeat_seconds.max(1));
    let mut next_check = tokio::time::Instant::now();
    let mut interval = tokio::time::interval(beat);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if tokio::time::Instant::now() >= next_check {
            next_check = tokio::time::Instant::now() + CHECK_EVERY;
            let results = crate::checks::quick_check(
                &engine.settings,
                &engine.zoom,
                &engine.groupware,
                &engine.store,
            )
            .await;
            for failed in results.iter().filter(|r| !r.ok) {
                tracing::warn!(check = %failed.item, detail = %failed.detail, "service check failed");
            }
            prune_deliveries(&engine).await;
        }
        flush_metrics(&engine).await;
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
