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
