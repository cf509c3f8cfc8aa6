//! The J-MOTTO user list as the console last fetched it (`directory_users`): the ユーザー
//! page searches and pages this copy, so a company of 1,000 users costs one J-MOTTO call
//! every few minutes, not one per page view. Replaced whole at each refresh.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::{SqliteConnection, SqlitePool};

use super::{parse_utc, utc_text};

/// One J-MOTTO user.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DirectoryUser {
    pub groupware_id: String,
    pub login_id: String,
    pub name: String,
    pub organization: String,
    pub email: String,
}

/// When the stored list was fetched; `None` when it is empty.
pub async fn fetched_at(pool: &SqlitePool) -> anyhow::Result<Option<DateTime<Utc>>> {
    let at: Option<String> = sqlx::query_scalar("SELECT min(fetched_at) FROM directory_users")
        .fetch_one(pool)
        .await
        .context("cannot read the user list's age")?;
    at.as_deref().map(parse_utc).transpose()
}

/// Replaces the stored list with `users` (in J-MOTTO's order), fetched at `at`.
pub async fn replace_all(
    conn: &mut SqliteConnection,
    users: &[DirectoryUser],
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM directory_users")
        .execute(&mut *conn)
        .await
        .context("cannot clear the user list")?;
    let at = utc_text(at);
    for (position, user) in users.iter().enumerate() {
        sqlx::query(
            "INSERT OR REPLACE INTO directory_users \
             (groupware_id, login_id, name, organization, email, position, fetched_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&user.groupware_id)
        .bind(&user.login_id)
        .bind(&user.name)
        .bind(&user.organization)
        .bind(&user.email)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(&at)
        .execute(&mut *conn)
        .await
        .context("cannot store the user list")?;
    }
    Ok(())
}

/// Users whose name, organization or login ID contains `search` (all when empty), in
/// J-MOTTO's order, `limit` from `offset`; and how many match in all.
pub async fn search(
    pool: &SqlitePool,
    search: &str,
    offset: i64,
    limit: i64,
) -> anyhow::Result<(Vec<DirectoryUser>, i64)> {
    const MATCHES: &str = "(?1 = '' OR instr(lower(name), lower(?1)) > 0 \
         OR instr(lower(organization), lower(?1)) > 0 OR instr(lower(login_id), lower(?1)) > 0)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM directory_users WHERE {MATCHES}"
    )))
    .bind(search)
    .fetch_one(pool)
    .await
    .context("cannot count the user list")?;
    let users = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT groupware_id, login_id, name, organization, email FROM directory_users \
         WHERE {MATCHES} ORDER BY position LIMIT ?2 OFFSET ?3"
    )))
    .bind(search)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
    .context("cannot read the user list")?;
    Ok((users, total))
}
