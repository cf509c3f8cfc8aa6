//! What handlers share: the settings, the store, this process's metrics and the way onto
//! the job queue — and not the J-MOTTO or Zoom clients, so "handlers never call J-MOTTO or
//! Zoom" holds by type. What the console can change (users, timezone, sync settings) is
//! read from [`AppState::live`] per request; `settings` holds the file's, for what only the
//! file sets (listen, admin token, body limit, webhook secret).

use std::sync::Arc;

use anyhow::Context;

use super::group_commit::DeliveryQueue;
use crate::{
    config::Settings,
    jobs::{Clock, LiveEngine, worker::enqueue_sync_in},
    live::LiveSettings,
    metrics::Metrics,
    store::{
        Store,
        audit::{self, AuditEntry},
    },
};

/// The handlers' state (one per server, shared by its workers).
#[derive(Debug, Clone)]
pub struct AppState {
    /// The file's (and the environment's) settings: for the server-only keys.
    pub settings: Arc<Settings>,
    /// The settings in effect (the file over the console's): `live.current().await`.
    pub live: LiveSettings,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// "Now" for the window `status` shows.
    pub clock: Clock,
    /// The manual trigger's way onto the queue.
    pub queue: SyncQueue,
    /// The webhook deliveries' way to their transaction (served by the application's
    /// [`super::group_commit::Committer`] while it runs).
    pub deliveries: DeliveryQueue,
}

impl AppState {
    /// The parts of `engine` the handlers need (the `run` command's server and worker share
    /// one store and one set of live settings).
    pub fn new(engine: &LiveEngine, deliveries: DeliveryQueue) -> AppState {
        AppState {
            settings: Arc::new(engine.file().clone()),
            live: engine.live().clone(),
            store: engine.store().clone(),
            metrics: engine.metrics().clone(),
            clock: engine.latest().clock,
            queue: SyncQueue {
                store: engine.store().clone(),
            },
            deliveries,
        }
    }
}

/// The job queue as HTTP sees it: it can enqueue a sync, nothing else.
#[derive(Debug, Clone)]
pub struct SyncQueue {
    store: Store,
}

impl SyncQueue {
    /// Queues a manual sync (SPEC §5: a full resync still queued is returned instead); the
    /// job id.
    pub async fn enqueue_manual(
        &self,
        users: Option<Vec<String>>,
        request_id: Option<String>,
    ) -> anyhow::Result<String> {
        let mut tx = self.store.begin_write().await?;
        let id = enqueue_sync_in(&mut tx, "manual", users, request_id, None).await?;
        tx.commit().await.context("cannot commit the sync job")?;
        Ok(id)
    }

    /// Queues a full manual sync (the console's 「今すぐ同期」) and writes `audit` (its
    /// detail followed by the job id) in the same transaction; the job id.
    pub async fn enqueue_manual_audited(
        &self,
        request_id: Option<String>,
        mut audit: AuditEntry,
    ) -> anyhow::Result<String> {
        let mut tx = self.store.begin_write().await?;
        let id = enqueue_sync_in(&mut tx, "manual", None, request_id, None).await?;
        audit.detail = format!("{}（ジョブ {id}）", audit.detail);
        audit::record(&mut tx, &audit, chrono::Utc::now()).await?;
        tx.commit().await.context("cannot commit the sync job")?;
        Ok(id)
    }
}
