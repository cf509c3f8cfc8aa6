//! The console's settings rows (SPEC §8 "Where settings live"): the keys the file and the
//! environment leave out, the user mapping, and the version every saved change bumps.
//!
//! This module stores text; which keys exist, how a value is checked and how a secret is
//! sealed is [`crate::live`]'s business.

use std::collections::BTreeMap;

use super::{db, utc_text};
use anyhow::Context;
use chrono::{DateTime, Utc};

/// One user as the console maps them (the seed's step 4).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredUser {
    pub groupware_id: String,
    pub zoom_email: String,
    pub enabled: bool,
}

/// Everything the console stored, at one version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredSettings {
    /// Bumped by every saved change.
    pub version: i64,
    /// Key (`zoom.account_id`) → its text; a secret's text is sealed.
    pub values: BTreeMap<String, String>,
    /// Ordered by groupware id.
    pub users: Vec<StoredUser>,
}

/// The last Zoom e-mail check of a user (`GET /users/email`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EmailCheck {
    pub groupware_id: String,
    pub zoom_email: String,
    pub found: bool,
    pub checked_at: String,
}

/// The current version (0 before the first saved change).
pub async fn version(pool: &db::Pool) -> anyhow::Result<i64> {
    db::query("SELECT version FROM settings_version WHERE id = 1")
        .scalar(pool)
        .await
        .context("cannot read the settings version")
}

/// Everything stored, read in one transaction so the version matches the rows.
pub async fn load(pool: &db::Pool) -> anyhow::Result<StoredSettings> {
    let mut conn = pool.acquire().await.context("cannot read the settings")?;
    // One snapshot for every statement: PostgreSQL's default (READ COMMITTED) takes one
    // per statement, so it needs REPEATABLE READ; a SQLite read transaction is one already.
    let begin = match conn.backend() {
        db::Backend::Sqlite => "BEGIN",
        db::Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    };
    let read = async {
        conn.raw(begin).await.context("cannot read the settings")?;
        let stored = load_in(&mut conn).await?;
        conn.raw("COMMIT")
            .await
            .context("cannot read the settings")?;
        anyhow::Ok(stored)
    }
    .await;
    if read.is_err() {
        // Never pool a connection that may still be inside the transaction.
        conn.close_on_drop();
    }
    read
}

/// Everything stored, read on `conn` (e.g. inside the write transaction that will change it).
pub async fn load_in(conn: &mut db::Conn) -> anyhow::Result<StoredSettings> {
    let version: i64 = db::query("SELECT version FROM settings_version WHERE id = 1")
        .scalar(&mut *conn)
        .await
        .context("cannot read the settings version")?;
    let values: Vec<(String, String)> =
        db::query("SELECT key, value FROM console_settings ORDER BY key")
            .fetch_all(&mut *conn)
            .await
            .context("cannot read the stored settings")?;
    let users: Vec<StoredUser> = db::query(
        "SELECT groupware_id, zoom_email, enabled FROM console_users ORDER BY groupware_id",
    )
    .fetch_all(&mut *conn)
    .await
    .context("cannot read the stored users")?;
    Ok(StoredSettings {
        version,
        values: values.into_iter().collect(),
        users,
    })
}

/// Stores each (key, text), replacing what was there, and bumps the version (inside the
/// caller's write transaction).
pub async fn put_values(conn: &mut db::Conn, values: &[(&str, String)]) -> anyhow::Result<()> {
    let now = utc_text(Utc::now());
    for (key, value) in values {
        db::query(
            "INSERT INTO console_settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
        )
        .bind(*key)
        .bind(value)
        .bind(&now)
        .execute(&mut *conn)
        .await
        .with_context(|| format!("cannot store the setting {key}"))?;
    }
    bump(conn).await
}

/// Stores each user (insert or replace by groupware id) and bumps the version.
pub async fn put_users(conn: &mut db::Conn, users: &[StoredUser]) -> anyhow::Result<()> {
    let now = utc_text(Utc::now());
    for user in users {
        db::query(
            "INSERT INTO console_users (groupware_id, zoom_email, enabled, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (groupware_id) DO UPDATE SET \
             zoom_email = excluded.zoom_email, enabled = excluded.enabled, \
             updated_at = excluded.updated_at",
        )
        .bind(&user.groupware_id)
        .bind(&user.zoom_email)
        .bind(user.enabled)
        .bind(&now)
        .execute(&mut *conn)
        .await
        .context("cannot store a user")?;
    }
    bump(conn).await
}

async fn bump(conn: &mut db::Conn) -> anyhow::Result<()> {
    db::query("UPDATE settings_version SET version = version + 1 WHERE id = 1")
        .execute(conn)
        .await
        .context("cannot bump the settings version")?;
    Ok(())
}

/// Records the outcome of a user's e-mail check (replacing the previous one).
pub async fn record_email_check(
    pool: &db::Pool,
    groupware_id: &str,
    zoom_email: &str,
    found: bool,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    db::query(
        "INSERT INTO zoom_email_checks (groupware_id, zoom_email, found, checked_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (groupware_id) DO UPDATE SET \
         zoom_email = excluded.zoom_email, found = excluded.found, \
         checked_at = excluded.checked_at",
    )
    .bind(groupware_id)
    .bind(zoom_email)
    .bind(found)
    .bind(utc_text(at))
    .execute(pool)
    .await
    .context("cannot record an e-mail check")?;
    Ok(())
}

/// Every recorded e-mail check, by groupware id.
pub async fn email_checks(pool: &db::Pool) -> anyhow::Result<Vec<EmailCheck>> {
    db::query(
        "SELECT groupware_id, zoom_email, found, checked_at FROM zoom_email_checks \
         ORDER BY groupware_id",
    )
    .fetch_all(pool)
    .await
    .context("cannot read the e-mail checks")
}
