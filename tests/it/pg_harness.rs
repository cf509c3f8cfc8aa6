//! The tests' own throw-away PostgreSQL (`tests/support/postgres.rs`, issue 11 item 6): a
//! database per test, a private server that stops and starts on the same URL, nothing left
//! behind. Without PostgreSQL each test returns after the one skip line.

use std::time::Duration;

use sqlx::Connection as _;

use crate::postgres;

/// `SELECT 1` through a pool on `url`.
async fn select_one(url: &str) -> anyhow::Result<i32> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await?;
    let one = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
    pool.close().await;
    Ok(one)
}

async fn current_database(url: &str) -> String {
    let mut connection = sqlx::PgConnection::connect(url)
        .await
        .expect("connects to the test database");
    sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut connection)
        .await
        .expect("current_database()")
}

#[tokio::test]
async fn postgres_harness_gives_each_test_its_own_database() {
    let Some(cluster) = postgres::shared() else {
        return;
    };
    let first = cluster.create_database().await.expect("first database");
    let second = cluster.create_database().await.expect("second database");
    assert_ne!(first, second);
    for url in [&first, &second] {
        assert_eq!(select_one(url).await.expect("SELECT 1"), 1, "{url}");
    }
    let first_name = current_database(&first).await;
    let second_name = current_database(&second).await;
    assert_ne!(first_name, second_name);
    assert!(first.ends_with(&format!("/{first_name}")), "{first}");

    // a table made in one is not in the other
    let mut connection = sqlx::PgConnection::connect(&first).await.expect("connects");
    sqlx::query("CREATE TABLE only_in_first (id BIGINT PRIMARY KEY)")
        .execute(&mut connection)
        .await
        .expect("CREATE TABLE");
    let mut other = sqlx::PgConnection::connect(&second)
        .await
        .expect("connects");
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'only_in_first'",
    )
    .fetch_one(&mut other)
    .await
    .expect("count tables");
    assert_eq!(tables, 0);
}

#[tokio::test]
async fn postgres_harness_private_cluster_stops_and_starts_on_the_same_url() {
    let Some(cluster) = postgres::private().expect("private PostgreSQL starts") else {
        return;
    };
    let url = cluster.create_database().await.expect("database");
    assert_eq!(select_one(&url).await.expect("up"), 1);

    cluster.stop().expect("pg_ctl stop");
    let down = sqlx::PgConnection::connect(&url).await;
    assert!(down.is_err(), "connected to a stopped server at {url}");
    if let Some(shared) = postgres::shared() {
        let other = shared.create_database().await.expect("shared still up");
        assert_eq!(select_one(&other).await.expect("shared SELECT 1"), 1);
    }

    cluster.start().expect("pg_ctl start");
    assert_eq!(select_one(&url).await.expect("up again"), 1);
}

#[tokio::test]
async fn postgres_harness_drop_stops_the_server_and_removes_its_directory() {
    let Some(cluster) = postgres::private().expect("private PostgreSQL starts") else {
        return;
    };
    let url = cluster.create_database().await.expect("database");
    let directory = cluster.data_directory().expect("a local server");
    assert!(directory.join("postmaster.pid").exists());

    drop(cluster);
    assert!(!directory.exists(), "{} left behind", directory.display());
    assert!(sqlx::PgConnection::connect(&url).await.is_err());
}

#[test]
fn postgres_harness_puts_the_database_name_into_the_url() {
    let check = |url: &str, expected: &str| {
        assert_eq!(
            postgres::with_database(url, "jmz_test_1"),
            expected,
            "{url}"
        );
    };
    check(
        "postgres://postgres@127.0.0.1:5432/postgres",
        "postgres://postgres@127.0.0.1:5432/jmz_test_1",
    );
    check(
        "postgres://user:p%2Fw@db.internal/app?sslmode=disable",
        "postgres://user:p%2Fw@db.internal/jmz_test_1?sslmode=disable",
    );
    check(
        "postgres://user:pw@localhost:5433",
        "postgres://user:pw@localhost:5433/jmz_test_1",
    );
    check(
        "postgresql://localhost?user=me",
        "postgresql://localhost/jmz_test_1?user=me",
    );
}
