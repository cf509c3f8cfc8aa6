//! The J-MOTTO user list as the console last fetched it (`directory_users`): the ユーザー
//! page searches and pages this copy, so a company of 1,000 users costs one J-MOTTO call
//! every few minutes, not one per page view. Replaced whole at each refresh.

use super::{db, parse_utc, utc_text};
use anyhow::Context;
use chrono::{DateTime, Utc};

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
pub async fn fetched_at(pool: &db::Pool) -> anyhow::Result<Option<DateTime<Utc>>> {
    let at: Option<String> = db::query("SELECT min(fetched_at) FROM directory_users")
        .scalar(pool)
        .await
        .context("cannot read the user list's age")?;
    at.as_deref().map(parse_utc).transpose()
}

/// Replaces the stored list with `users` (in J-MOTTO's order), fetched at `at`.
pub async fn replace_all(
    conn: &mut db::Conn,
    users: &[DirectoryUser],
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    db::query("DELETE FROM directory_users")
        .execute(&mut *conn)
        .await
        .context("cannot clear the user list")?;
    let at = utc_text(at);
    for (position, user) in users.iter().enumerate() {
        db::query(
            "INSERT INTO directory_users \
             (groupware_id, login_id, name, organization, email, position, fetched_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (groupware_id) DO UPDATE SET login_id = excluded.login_id, \
             name = excluded.name, organization = excluded.organization, \
             email = excluded.email, position = excluded.position, \
             fetched_at = excluded.fetched_at",
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
    pool: &db::Pool,
    search: &str,
    offset: i64,
    limit: i64,
) -> anyhow::Result<(Vec<DirectoryUser>, i64)> {
    // A literal substring (no LIKE wildcards): SQLite's `instr`, PostgreSQL's `strpos`.
    let position = match pool.backend() {
        db::Backend::Sqlite => "instr",
        db::Backend::Postgres => "strpos",
    };
    let matches = format!(
        "($1 = '' OR {position}(lower(name), lower($1)) > 0 \
         OR {position}(lower(organization), lower($1)) > 0 \
         OR {position}(lower(login_id), lower($1)) > 0)"
    );
    let total: i64 = db::query_owned(format!(
        "SELECT count(*) FROM directory_users WHERE {matches}"
    ))
    .bind(search)
    .scalar(pool)
    .await
    .context("cannot count the user list")?;
    let users = db::query_owned(format!(
        "SELECT groupware_id, login_id, name, organization, email FROM directory_users \
         WHERE {matches} ORDER BY position LIMIT $2 OFFSET $3"
    ))
    .bind(search)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
    .context("cannot read the user list")?;
    Ok((users, total))
}
