//! The alerts' rows (SPEC §10): `alert_conditions` (a condition that started, open until it
//! clears) and `alert_deliveries` (one per alert and channel, sent by a job).
//!
//! Invariant: at most one open row per (type, subject) and one row ever per (type, subject)
//! of a one-off type, held by the table's unique indexes — so recording a condition that is
//! already open (another process, a restart) inserts nothing, and its caller pushes no
//! delivery.

use super::{db, utc_text};
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Records that `(kind, subject)` started at `at`: open (until [`clear_condition`]) unless
/// it is open already, or with `once` a one-off (over at once) unless one was recorded for
/// that subject before. The new row's id, or `None` when nothing was recorded.
pub async fn insert_condition(
    conn: &mut db::Conn,
    kind: &str,
    subject: &str,
    details: &str,
    at: DateTime<Utc>,
    once: bool,
) -> anyhow::Result<Option<i64>> {
    let at = utc_text(at);
    db::query(
        "INSERT INTO alert_conditions (type, subject, details, opened_at, cleared_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(kind)
    .bind(subject)
    .bind(details)
    .bind(&at)
    .bind(once.then_some(&at))
    .scalar_optional(conn)
    .await
    .context("cannot record an alert condition")
}

/// Closes the open row of `(kind, subject)` at `at`: its id, or `None` when none was open.
pub async fn clear_condition(
    conn: &mut db::Conn,
    kind: &str,
    subject: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<Option<i64>> {
    db::query(
        "UPDATE alert_conditions SET cleared_at = $1 \
         WHERE type = $2 AND subject = $3 AND cleared_at IS NULL RETURNING id",
    )
    .bind(utc_text(at))
    .bind(kind)
    .bind(subject)
    .scalar_optional(conn)
    .await
    .context("cannot clear an alert condition")
}

/// Adds the delivery of one alert (`event`: `opened` or `cleared`) through `channel`,
/// pending; its id.
pub async fn insert_delivery(
    conn: &mut db::Conn,
    condition_id: i64,
    event: &str,
    channel: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<i64> {
    let at = utc_text(at);
    db::query(
        "INSERT INTO alert_deliveries (condition_id, event, channel, state, created_at, updated_at) \
         VALUES ($1, $2, $3, 'pending', $4, $5) RETURNING id",
    )
    .bind(condition_id)
    .bind(event)
    .bind(channel)
    .bind(&at)
    .bind(&at)
    .scalar(conn)
    .await
    .context("cannot record an alert delivery")
}

/// One condition, as 状態 shows it and as a delivery names it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ConditionRow {
    pub condition_id: i64,
    /// The condition's type, e.g. `user.unreadable`.
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    pub subject: String,
    /// The condition as JSON (what the alert says).
    pub details: String,
    pub opened_at: String,
    /// `None` while open.
    pub cleared_at: Option<String>,
}

/// One delivery with its condition, as its job reads it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub event: String,
    pub channel: String,
    /// `pending`, `sent`, `failed`, `skipped`.
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub updated_at: String,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub condition: ConditionRow,
}

const DELIVERY_COLUMNS: &str = "SELECT d.id, d.event, d.channel, d.state, d.attempts, \
     d.last_error, d.updated_at, c.id AS condition_id, c.type, c.subject, c.details, \
     c.opened_at, c.cleared_at \
     FROM alert_deliveries d JOIN alert_conditions c ON c.id = d.condition_id";

/// The delivery `id`, if it exists.
pub async fn delivery(pool: &db::Pool, id: i64) -> anyhow::Result<Option<DeliveryRow>> {
    db::query_owned(format!("{DELIVERY_COLUMNS} WHERE d.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
        .context("cannot read an alert delivery")
}

/// Deliveries that failed for good or are still being retried after a failure, newest
/// first, at most `limit` (for 状態).
pub async fn troubled_deliveries(pool: &db::Pool, limit: i64) -> anyhow::Result<Vec<DeliveryRow>> {
    db::query_owned(format!(
        "{DELIVERY_COLUMNS} WHERE d.state = 'failed' OR (d.state = 'pending' AND d.attempts > 0) \
         ORDER BY d.updated_at DESC, d.id DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("cannot read the failing alert deliveries")
}

/// Every open condition, oldest first.
pub async fn open_conditions(pool: &db::Pool) -> anyhow::Result<Vec<ConditionRow>> {
    db::query(
        "SELECT id AS condition_id, type, subject, details, opened_at, cleared_at \
         FROM alert_conditions WHERE cleared_at IS NULL ORDER BY opened_at, id",
    )
    .fetch_all(pool)
    .await
    .context("cannot read the open alert conditions")
}

/// Sets a delivery's state (`sent`, `failed`, `skipped`, or `pending` for a retry), its
/// attempts so far and its last error.
pub async fn set_delivery_state(
    conn: &mut db::Conn,
    id: i64,
    state: &str,
    attempts: i64,
    last_error: Option<&str>,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    db::query(
        "UPDATE alert_deliveries SET state = $1, attempts = $2, last_error = $3, updated_at = $4 \
         WHERE id = $5",
    )
    .bind(state)
    .bind(attempts)
    .bind(last_error)
    .bind(utc_text(at))
    .bind(id)
    .execute(conn)
    .await
    .context("cannot record an alert delivery's outcome")?;
    Ok(())
}
