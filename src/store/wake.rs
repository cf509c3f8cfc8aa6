//! Wakes this process's queue workers the moment a job pushed for them has committed (issue
//! 11: each hop of a sync — SyncWindow → FetchSlice → CreateMeeting — waited for its queue's
//! next poll, about one second from a trigger to its meeting).
//!
//! `jobs::push` marks the job's queue against its connection with [`pushed`];
//! [`super::WriteTx::commit`] wakes the queues marked on its connection once its `COMMIT`
//! has returned, never before (a worker woken earlier would look, find nothing and sleep
//! until its next tick); a rollback or an abandoned transaction drops its marks. A
//! connection is known by its SQLite handle, which stays the same while the transaction
//! moves around. Each queue worker's poll strategy waits on [`signal`] beside its interval;
//! workers in other processes find the job at their next tick.
//!
//! On PostgreSQL nothing is marked here: PostgreSQL itself delivers a `NOTIFY` when the
//! transaction that sent it commits, and drops it when it rolls back, and apalis-postgres's
//! workers `LISTEN` on `apalis::job::insert` (in every process). apalis-postgres's trigger
//! `notify_workers` sends it for each row inserted into `apalis.jobs`, but only when its
//! `run_at` is not after `now()` — the *transaction's* start: a job due now pushed in a
//! transaction that began in an earlier second (`run_at` is whole seconds) would wait for
//! the next poll. So [`pushed`] sends the trigger's own notification for the job in the
//! pushing transaction (PostgreSQL folds identical notifications of one transaction into
//! one), and [`connection_key`] gives PostgreSQL connections the key [`NO_MARKS`].

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex, MutexGuard},
};

use tokio::sync::Notify;

use super::db;

/// Queues pushed to in open transactions, by connection.
static PENDING: Mutex<Vec<(usize, &'static str)>> = Mutex::new(Vec::new());

/// One signal per queue, for every worker of that queue in this process.
static SIGNALS: LazyLock<Mutex<HashMap<&'static str, Arc<Notify>>>> = LazyLock::new(Mutex::default);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The key of a connection that never holds marks (a PostgreSQL connection; no SQLite
/// handle has this address).
pub const NO_MARKS: usize = 0;

/// The key of `connection`'s marks: its SQLite handle's address; [`NO_MARKS`] on
/// PostgreSQL.
pub(super) async fn connection_key(connection: &mut db::Conn) -> Result<usize, sqlx::Error> {
    match connection {
        db::Conn::Sqlite(connection) => sqlite_key(connection).await,
        db::Conn::Postgres(_) => Ok(NO_MARKS),
    }
}

/// A SQLite connection's key: its handle's address.
async fn sqlite_key(connection: &mut sqlx::SqliteConnection) -> Result<usize, sqlx::Error> {
    let mut handle = connection.lock_handle().await?;
    Ok(handle.as_raw_handle().as_ptr().addr())
}

/// The job `id`, due now, was pushed to `queue` in `connection`'s write transaction: wake
/// its workers when that transaction commits. On PostgreSQL, apalis-postgres's own insert
/// notification for the job, sent in the transaction (see the module's doc).
pub async fn pushed(
    connection: &mut db::Conn,
    queue: &'static str,
    id: &str,
) -> Result<(), sqlx::Error> {
    if connection.backend() == db::Backend::Postgres {
        // The payload of apalis-postgres's trigger `notify_workers`, to the character.
        db::query(
            "SELECT pg_notify('apalis::job::insert', json_build_object('job_type', job_type, \
             'id', id, 'run_at', run_at)::text) FROM apalis.jobs WHERE id = $1",
        )
        .bind(id)
        .execute(connection)
        .await?;
        return Ok(());
    }
    let key = connection_key(connection).await?;
    mark(key, queue);
    Ok(())
}

fn mark(key: usize, queue: &'static str) {
    let mut pending = lock(&PENDING);
    if !pending.contains(&(key, queue)) {
        pending.push((key, queue));
    }
}

/// The signal the workers of `queue` wait on.
pub fn signal(queue: &'static str) -> Arc<Notify> {
    lock(&SIGNALS).entry(queue).or_default().clone()
}

/// The transaction on the connection `key` committed: wake the queues pushed to in it.
pub(super) fn committed(key: usize) {
    for queue in take(key) {
        signal(queue).notify_waiters();
    }
}

/// The transaction on the connection `key` rolled back or was abandoned: its pushes are
/// gone.
pub(super) fn discarded(key: usize) {
    take(key);
}

fn take(key: usize) -> Vec<&'static str> {
    let mut pending = lock(&PENDING);
    let mut taken = Vec::new();
    pending.retain(|(of, queue)| {
        let mine = *of == key;
        if mine {
            taken.push(*queue);
        }
        !mine
    });
    taken
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn woken(notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), notified)
            .await
            .is_ok()
    }

    /// Issue 11 item 8: a worker waiting on its queue is woken by the commit of the
    /// transaction that pushed — not by the push itself (the job cannot be seen before the
    /// commit), not by a rolled-back push, not by another transaction's commit.
    #[tokio::test]
    async fn a_push_wakes_its_queue_at_its_commit_only() {
        const QUEUE: &str = "test.wake_at_commit";
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", folder.path().join("wake.db").display());
        let store = super::super::Store::connect(&url)
            .await
            .expect("database opens");
        let signal = signal(QUEUE);
        let notified = signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut rolled_back = store.begin_write().await.expect("tx");
        pushed(&mut rolled_back, QUEUE, "01J00000000000000000000000")
            .await
            .expect("marked");
        rolled_back.rollback().await.expect("rollback");
        store.probe_write().await.expect("another commit");
        assert!(
            !woken(notified.as_mut()).await,
            "woken without a commit of a push"
        );
        let mut tx = store.begin_write().await.expect("tx");
        pushed(&mut tx, QUEUE, "01J00000000000000000000000")
            .await
            .expect("marked");
        assert!(!woken(notified.as_mut()).await, "woken before the commit");
        tx.commit().await.expect("commit");
        tokio::time::timeout(Duration::from_secs(1), notified)
            .await
            .expect("woken at the commit");
    }
}
