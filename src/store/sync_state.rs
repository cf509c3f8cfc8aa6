//! Sync runs, their per-(user, month) slices, each user's last sync and last error.
//!
//! The views of apalis's `Jobs` table that `status` and `jobs/{id}` show live in
//! [`super::queue`]; they are re-exported here for the HTTP layer.

use anyhow::Context;

pub use super::queue::{JobView, QueueCounts, job, queue_counts};
use super::{db, utc_text};

fn now_text() -> String {
    utc_text(chrono::Utc::now())
}

/// Records a sync run (the SyncWindow job's id) in the transaction that enqueues it.
pub async fn insert_sync_run(
    conn: &mut db::Conn,
    id: &str,
    trigger: &str,
    users: Option<&[String]>,
    request_id: Option<&str>,
) -> anyhow::Result<()> {
    db::query(
        "INSERT INTO sync_runs (id, trigger, users, request_id, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(trigger)
    .bind(users.map(serde_json::to_string).transpose()?)
    .bind(request_id)
    .bind(now_text())
    .execute(&mut *conn)
    .await
    .context("cannot record a sync run")?;
    Ok(())
}

/// Stores the window a sync run computed (R-WINDOW: at the time the job runs).
pub async fn set_sync_window(
    conn: &mut db::Conn,
    id: &str,
    from: &str,
    to: &str,
) -> anyhow::Result<()> {
    db::query("UPDATE sync_runs SET window_from = $1, window_to = $2 WHERE id = $3")
        .bind(from)
        .bind(to)
        .bind(id)
        .execute(&mut *conn)
        .await
        .context("cannot record a sync window")?;
    Ok(())
}

/// Registers a slice as pending (idempotent: a re-run SyncWindow resets nothing done).
pub async fn insert_slice(
    conn: &mut db::Conn,
    sync_id: &str,
    user: &str,
    month: &str,
) -> anyhow::Result<()> {
    db::query(
        "INSERT INTO slice_runs (sync_id, user_id, month, state) VALUES ($1, $2, $3, 'pending') ON CONFLICT DO NOTHING",
    )
    .bind(sync_id)
    .bind(user)
    .bind(month)
    .execute(&mut *conn)
    .await
    .context("cannot record a slice")?;
    Ok(())
}

/// Marks a pending slice done or failed; returns true when this call finished the last
/// slice of (sync, user) and every slice is done. A slice that already finished (its job ran
/// again after a crash) changes nothing and returns false, so deletions are decided once.
pub async fn finish_slice(
    conn: &mut db::Conn,
    sync_id: &str,
    user: &str,
    month: &str,
    error: Option<&str>,
) -> anyhow::Result<bool> {
    let changed = db::query(
        "UPDATE slice_runs SET state = $1, error = $2, attempts = attempts + 1 \
         WHERE sync_id = $3 AND user_id = $4 AND month = $5 AND state = 'pending'",
    )
    .bind(if error.is_some() { "failed" } else { "done" })
    .bind(error)
    .bind(sync_id)
    .bind(user)
    .bind(month)
    .execute(&mut *conn)
    .await
    .context("cannot finish a slice")?;
    if changed == 0 {
        return Ok(false);
    }
    let not_done: i64 = db::query(
        "SELECT count(*) FROM slice_runs WHERE sync_id = $1 AND user_id = $2 AND state != 'done'",
    )
    .bind(sync_id)
    .bind(user)
    .scalar(&mut *conn)
    .await
    .context("cannot count slices")?;
    Ok(not_done == 0)
}

/// Counts an attempt at a slice without finishing it (a retry was scheduled).
pub async fn count_slice_attempt(
    conn: &mut db::Conn,
    sync_id: &str,
    user: &str,
    month: &str,
    error: &str,
) -> anyhow::Result<i64> {
    db::query(
        "UPDATE slice_runs SET attempts = attempts + 1, error = $1 WHERE sync_id = $2 AND user_id = $3 AND month = $4 RETURNING attempts",
    )
    .bind(error)
    .bind(sync_id)
    .bind(user)
    .bind(month)
    .scalar_optional(&mut *conn)
    .await
    .context("cannot count a slice attempt")
    .map(|n| n.unwrap_or(1))
}

/// The window of a sync run, once its SyncWindow job ran.
pub async fn sync_window(
    conn: &mut db::Conn,
    id: &str,
) -> anyhow::Result<Option<(String, String)>> {
    let row: Option<(Option<String>, Option<String>)> =
        db::query("SELECT window_from, window_to FROM sync_runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .context("cannot read a sync run")?;
    Ok(row.and_then(|(from, to)| from.zip(to)))
}

/// Records a user's successful listing (clears the last error when `error` is None).
pub async fn record_user_sync(
    conn: &mut db::Conn,
    user: &str,
    error: Option<&str>,
) -> anyhow::Result<()> {
    let now = now_text();
    if let Some(error) = error {
        db::query(
            "INSERT INTO user_sync_state (groupware_id, last_error, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (groupware_id) DO UPDATE SET last_error = excluded.last_error, updated_at = excluded.updated_at",
        )
        .bind(user)
        .bind(error)
        .bind(&now)
        .execute(&mut *conn)
        .await
    } else {
        db::query(
            "INSERT INTO user_sync_state (groupware_id, last_sync_at, last_error, updated_at) VALUES ($1, $2, NULL, $3) \
             ON CONFLICT (groupware_id) DO UPDATE SET last_sync_at = excluded.last_sync_at, last_error = NULL, updated_at = excluded.updated_at",
        )
        .bind(user)
        .bind(&now)
        .bind(&now)
        .execute(&mut *conn)
        .await
    }
    .context("cannot record a user's sync")?;
    Ok(())
}

/// One user's row of `status`.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct UserSyncState {
    pub groupware_id: String,
    pub last_sync_at: Option<String>,
    pub last_error: Option<String>,
}

/// Every user's last sync and last error.
pub async fn user_sync_states(pool: &db::Pool) -> anyhow::Result<Vec<UserSyncState>> {
    db::query("SELECT groupware_id, last_sync_at, last_error FROM user_sync_state")
        .fetch_all(pool)
        .await
        .context("cannot read user sync states")
}

/// When a sync run was triggered (its row's creation), if it exists.
pub async fn sync_run_created_at(
    pool: &db::Pool,
    sync_id: &str,
) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    let created: Option<String> = db::query("SELECT created_at FROM sync_runs WHERE id = $1")
        .bind(sync_id)
        .scalar_optional(pool)
        .await
        .context("cannot read a sync run")?;
    created.as_deref().map(super::parse_utc).transpose()
}

/// A sync run's slices (user × month) by state: pending, done, failed (the console's
/// progress of 「今すぐ同期」).
pub async fn slice_progress(
    pool: &db::Pool,
    sync_id: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> =
        db::query("SELECT state, count(*) FROM slice_runs WHERE sync_id = $1 GROUP BY state")
            .bind(sync_id)
            .fetch_all(pool)
            .await
            .context("cannot read a sync run's slices")?;
    Ok(rows.into_iter().collect())
}

/// How a sync run was triggered (`manual`, `webhook`, `poll`), if the run exists.
pub async fn sync_trigger(pool: &db::Pool, sync_id: &str) -> anyhow::Result<Option<String>> {
    db::query("SELECT trigger FROM sync_runs WHERE id = $1")
        .bind(sync_id)
        .scalar_optional(pool)
        .await
        .context("cannot read a sync run's trigger")
}

/// Notes that a create decided by `sync_id` ended `failed` or refused by Zoom (for the run's
/// `meetings.failed` alert); idempotent.
pub async fn record_run_failure(
    conn: &mut db::Conn,
    sync_id: &str,
    meeting_id: i64,
) -> anyhow::Result<()> {
    db::query(
        "INSERT INTO run_failures (sync_id, meeting_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(sync_id)
    .bind(meeting_id)
    .execute(&mut *conn)
    .await
    .context("cannot note a failed meeting of a sync run")?;
    Ok(())
}

/// The sync runs with failures not alerted yet whose slices have all finished, oldest first.
pub async fn runs_with_failures(pool: &db::Pool) -> anyhow::Result<Vec<String>> {
    db::query(
        "SELECT DISTINCT f.sync_id FROM run_failures f WHERE NOT EXISTS \
         (SELECT 1 FROM slice_runs s WHERE s.sync_id = f.sync_id AND s.state = 'pending') \
         ORDER BY f.sync_id",
    )
    .scalars(pool)
    .await
    .context("cannot read the sync runs with failed meetings")
}

/// Takes (reads and deletes) the failed meetings noted for `sync_id`: the ids of their rows.
pub async fn take_run_failures(conn: &mut db::Conn, sync_id: &str) -> anyhow::Result<Vec<i64>> {
    db::query("DELETE FROM run_failures WHERE sync_id = $1 RETURNING meeting_id")
        .bind(sync_id)
        .scalars(&mut *conn)
        .await
        .context("cannot read a sync run's failed meetings")
}
