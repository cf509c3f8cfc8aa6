//! The store on PostgreSQL (SPEC §9, issue 11 item 1): it opens and migrates a fresh
//! database, and a write commits through the same API as on SQLite.

use jmotto_zoom::store::{Store, db};

use crate::postgres;

/// A new PostgreSQL database: apalis-postgres's and our migrations apply, the store is
/// ready (a write transaction commits), opening it again migrates nothing twice, and two
/// processes opening it at once both start.
#[tokio::test]
async fn a_postgres_store_migrates_and_commits() {
    let Some(url) = postgres::fresh_database().await else {
        return;
    };
    let (a, b) = tokio::join!(Store::connect(&url), Store::connect(&url));
    let (a, b) = (a.expect("first opens"), b.expect("second opens"));
    a.is_ready().await.expect("ready");
    let mut tx = a.begin_write().await.expect("write transaction");
    db::query("INSERT INTO rate_limiters (name, tat_us) VALUES ($1, $2)")
        .bind("test")
        .bind(42_i64)
        .execute(&mut *tx)
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
    let tat: i64 = db::query("SELECT tat_us FROM rate_limiters WHERE name = $1")
        .bind("test")
        .scalar(b.db())
        .await
        .expect("read by the other");
    assert_eq!(tat, 42);
    a.close().await;
    b.close().await;
    let again = Store::connect(&url).await.expect("opens again");
    again.is_ready().await.expect("ready again");
}

/// Registers the apalis-postgres worker `id` of `queue` (as apalis does when it starts).
async fn register_worker(store: &Store, id: &str, queue: &str) {
    db::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen) \
         VALUES ($1, $2, 'PostgresStorage', '', now())",
    )
    .bind(id)
    .bind(queue)
    .execute(store.db())
    .await
    .expect("worker registered");
}

/// What apalis-postgres hands the worker `id` when it asks for `count` jobs of `queue`.
async fn fetch(store: &Store, id: &str, queue: &str, count: i64) -> Vec<String> {
    let mut ids: Vec<String> =
        db::query("SELECT id::TEXT FROM apalis.get_jobs($1, $2, CAST($3 AS INTEGER))")
            .bind(id)
            .bind(queue)
            .bind(count)
            .scalars(store.db())
            .await
            .expect("fetched");
    ids.sort();
    ids
}

/// SPEC §9, a dead process's jobs run again within 15 s: on PostgreSQL the jobs put back
/// from a dead worker are the next ones apalis-postgres hands out, ahead of the backlog
/// pushed in the same second (apalis-postgres breaks a tie in `run_at` by the rows' place in
/// the table, where an updated row comes last: issue 11's benchmark saw a rescued create
/// wait 50 s behind a sync's creates).
#[tokio::test]
async fn a_rescued_job_is_handed_out_before_the_backlog_of_its_second() {
    use jmotto_zoom::jobs::{Job, PushOptions, SyncWindow, push};
    let Some(url) = postgres::fresh_database().await else {
        return;
    };
    let store = Store::connect(&url).await.expect("opens");
    let queue = SyncWindow::QUEUE;
    let same_second = chrono::Utc::now() - chrono::Duration::seconds(10);
    let mut tx = store.begin_write().await.expect("write transaction");
    for _ in 0..20 {
        let job = SyncWindow {
            sync_id: jmotto_zoom::jobs::new_job_id(),
            users: None,
            request_id: None,
        };
        push(&mut tx, &job, PushOptions::at(same_second))
            .await
            .expect("pushed");
    }
    tx.commit().await.expect("committed");

    register_worker(&store, "jmz-9-dead-sync-window", queue).await;
    let taken = fetch(&store, "jmz-9-dead-sync-window", queue, 3).await;
    assert_eq!(taken.len(), 3);
    let mut conn = store.db().acquire().await.expect("connection");
    let requeued = jmotto_zoom::store::queue::requeue_held_by(&mut conn, "jmz-9", "died")
        .await
        .expect("requeued");
    drop(conn);
    assert_eq!(requeued, 3);

    register_worker(&store, "jmz-8-alive-sync-window", queue).await;
    let next = fetch(&store, "jmz-8-alive-sync-window", queue, 3).await;
    assert_eq!(next, taken, "the rescued jobs come first");
    store.close().await;
}
