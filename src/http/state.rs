//! What handlers share: the settings, the store, this process's metrics and the way onto
//! the job queue — and not the J-MOTTO or Zoom clients, so "handlers never call J-MOTTO or
//! Zoom" holds by type.

use std::sync::Arc;

use anyhow::Context;

use super::group_commit::DeliveryQueue;
use crate::{
    config::Settings,
    domain::host::EnabledUsers,
    jobs::{Clock, Engine, worker::enqueue_sync_in},
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
    pub settings: Arc<Settings>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// "Now" for the window `status` shows.
    pub clock: Clock,
    pub enabled_users: EnabledUsers,
    /// The manual trigger's way onto the queue.
    pub queue: SyncQueue,
    /// The webhook deliveries' way to their transaction (served by the application's
    /// [`super::group_commit::Committer`] while it runs).
    pub deliveries: DeliveryQueue,
    /// The file's settings over the console's (SPEC §8): what the console pages and
    /// `status` read, and what the console saves through.
    pub live: LiveSettings,
}

impl AppState {
    /// The parts of `engine` the handlers need (the `run` command's server and worker share
    /// one store).
    pub fn new(engine: &Engine, deliveries: DeliveryQueue) -> AppState {
        AppState {
            settings: Arc::new(engine.settings.clone()),
            store: engine.store.clone(),
            metrics: engine.metrics.clone(),
            clock: engine.clock,
            enabled_users: engine.enabled_users.clone(),
            queue: SyncQueue {
                store: engine.store.clone(),
            },
            deliveries,
            live: LiveSettings::new(engine.settings.clone(), engine.store.clone()),
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
