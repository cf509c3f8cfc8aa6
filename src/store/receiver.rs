//! The receiver's rows: webhook deliveries seen (dedup by delivery id) and the last check of
//! each service (R-ENABLED).

use super::{db, utc_text};
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The job a delivery id was first answered with, if it was seen before.
pub async fn delivery_job(conn: &mut db::Conn, webhook_id: &str) -> anyhow::Result<Option<String>> {
    db::query("SELECT job_id FROM webhook_deliveries WHERE webhook_id = $1")
        .bind(webhook_id)
        .scalar_optional(conn)
        .await
        .context("cannot look up a webhook delivery")
}

/// Records a delivery (inside the transaction that enqueues its job).
pub async fn insert_delivery(
    conn: &mut db::Conn,
    webhook_id: &str,
    job_id: &str,
    event_type: &str,
    received_at: DateTime<Utc>,
) -> anyhow::Result<()> {
    db::query(
        "INSERT INTO webhook_deliveries (webhook_id, job_id, event_type, received_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(webhook_id)
    .bind(job_id)
    .bind(event_type)
    .bind(utc_text(received_at))
    .execute(conn)
    .await
    .context("cannot record a webhook delivery")?;
    Ok(())
}

/// Forgets deliveries received before `before` (a redelivery older than that is accepted
/// as new: the sender's retry schedule is hours, the retention days). Returns how many.
pub async fn prune_deliveries(pool: &db::Pool, before: DateTime<Utc>) -> anyhow::Result<u64> {
    db::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
        .bind(utc_text(before))
        .execute(pool)
        .await
        .context("cannot prune webhook deliveries")
}

/// The last check of one service.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ServiceCheck {
    pub service: String,
    pub ok: bool,
    /// `OK`, or what is wrong and where to fix it (never a secret).
    pub detail: String,
    pub checked_at: String,
}

/// Records the outcome of a check of `service` (replacing the previous one).
pub async fn record_check(
    pool: &db::Pool,
    service: &str,
    ok: bool,
    detail: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    db::query(
        "INSERT INTO service_checks (service, ok, detail, checked_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (service) DO UPDATE SET ok = excluded.ok, detail = excluded.detail, \
         checked_at = excluded.checked_at",
    )
    .bind(service)
    .bind(ok)
    .bind(detail)
    .bind(utc_text(at))
    .execute(pool)
    .await
    .context("cannot record a service check")?;
    Ok(())
}

/// Every recorded check.
pub async fn checks(pool: &db::Pool) -> anyhow::Result<Vec<ServiceCheck>> {
    db::query("SELECT service, ok, detail, checked_at FROM service_checks ORDER BY service")
        .fetch_all(pool)
        .await
        .context("cannot read the service checks")
}
