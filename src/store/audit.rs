//! The admin console's audit log (SPEC §8): one row per console POST — a sign-in that
//! succeeded or failed (with the client's address), a sign-out, each saved change, each
//! manual sync. A change's row is written in the transaction of the change, so the log
//! never shows a change that did not happen, nor misses one that did. Kept for good: the
//! retention job prunes finished jobs only.

use super::{db, utc_text};
use anyhow::Context;
use chrono::{DateTime, Utc};

/// What a row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// A sign-in with the right admin token.
    LoginSucceeded,
    /// A sign-in with a wrong token (counted by the rate limit).
    LoginFailed,
    /// A sign-in refused unread because of the rate limit (not counted again).
    LoginRefused,
    /// 「ログアウト」.
    Logout,
    /// 「今すぐ同期」.
    ManualSync,
    /// A saved settings form (Zoom, groupware, sync).
    Settings,
    /// A saved ユーザー form.
    Users,
    /// 通知設定's 「テスト送信」 (what each channel answered).
    AlertTest,
}

impl AuditKind {
    const ALL: [AuditKind; 8] = [
        AuditKind::LoginSucceeded,
        AuditKind::LoginFailed,
        AuditKind::LoginRefused,
        AuditKind::Logout,
        AuditKind::ManualSync,
        AuditKind::Settings,
        AuditKind::Users,
        AuditKind::AlertTest,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::LoginSucceeded => "login_ok",
            AuditKind::LoginFailed => "login_failed",
            AuditKind::LoginRefused => "login_refused",
            AuditKind::Logout => "logout",
            AuditKind::ManualSync => "sync",
            AuditKind::Settings => "settings",
            AuditKind::Users => "users",
            AuditKind::AlertTest => "alert_test",
        }
    }

    /// The name the console shows.
    pub fn label_ja(self) -> &'static str {
        match self {
            AuditKind::LoginSucceeded => "ログイン成功",
            AuditKind::LoginFailed => "ログイン失敗",
            AuditKind::LoginRefused => "ログイン拒否（試行回数の上限）",
            AuditKind::Logout => "ログアウト",
            AuditKind::ManualSync => "今すぐ同期",
            AuditKind::Settings => "設定の変更",
            AuditKind::Users => "ユーザー設定の変更",
            AuditKind::AlertTest => "テスト送信",
        }
    }

    /// Reads a stored name; an unknown one is an error, never a guess.
    pub fn parse(text: &str) -> anyhow::Result<AuditKind> {
        AuditKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .with_context(|| format!("the audit log holds the unknown kind {text:?}"))
    }
}

/// One row to write.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub kind: AuditKind,
    /// The client's address, when there is one.
    pub address: Option<String>,
    /// What happened, for people (keys changed, the job id…); never a secret.
    pub detail: String,
}

/// One row as read back.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    /// UTC text ([`utc_text`]).
    pub at: String,
    pub kind: AuditKind,
    pub address: Option<String>,
    pub detail: String,
}

/// Writes `entry` at `at` on `conn` (inside the change's transaction where there is one).
pub async fn record(
    conn: &mut db::Conn,
    entry: &AuditEntry,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    db::query("INSERT INTO audit_log (at, kind, address, detail) VALUES ($1, $2, $3, $4)")
        .bind(utc_text(at))
        .bind(entry.kind.as_str())
        .bind(&entry.address)
        .bind(&entry.detail)
        .execute(conn)
        .await
        .context("cannot write the audit log")?;
    Ok(())
}

/// Failed sign-ins from `address` at or after `since` (the sign-in rate limit, read from
/// the database so that it holds across server processes).
pub async fn failed_logins_since(
    pool: &db::Pool,
    address: &str,
    since: DateTime<Utc>,
) -> anyhow::Result<i64> {
    db::query("SELECT count(*) FROM audit_log WHERE kind = $1 AND address = $2 AND at >= $3")
        .bind(AuditKind::LoginFailed.as_str())
        .bind(address)
        .bind(utc_text(since))
        .scalar(pool)
        .await
        .context("cannot count failed sign-ins")
}

/// Rows newest first, `limit` from `offset`.
pub async fn page(pool: &db::Pool, offset: i64, limit: i64) -> anyhow::Result<Vec<AuditRow>> {
    let rows: Vec<(i64, String, String, Option<String>, String)> = db::query(
        "SELECT id, at, kind, address, detail FROM audit_log ORDER BY id DESC LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
    .context("cannot read the audit log")?;
    rows.into_iter()
        .map(|(id, at, kind, address, detail)| {
            Ok(AuditRow {
                id,
                at,
                kind: AuditKind::parse(&kind)?,
                address,
                detail,
            })
        })
        .collect()
}

/// How many rows the log holds.
pub async fn count(pool: &db::Pool) -> anyhow::Result<i64> {
    db::query("SELECT count(*) FROM audit_log")
        .scalar(pool)
        .await
        .context("cannot count the audit log")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind reads back as itself.
    #[test]
    fn kinds_round_trip() {
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.as_str()).expect("known"), kind);
            assert!(!kind.label_ja().is_empty());
        }
        assert!(AuditKind::parse("nonsense").is_err());
    }
}
