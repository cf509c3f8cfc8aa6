//! `jmotto-zoom migrate --to postgres://…` (SPEC §9): a SQLite deployment's state copied
//! into an empty PostgreSQL database.
//!
//! What is copied: every app table (entries, meetings, users and console settings, the
//! audit log, webhook dedup rows, alerts, sync runs, quotas, limiters …: every table our
//! migrations made, so a new one is never forgotten), and the jobs still to run — pending,
//! scheduled, or held by a worker (they would be put back anyway) — as pending jobs with
//! their ids, run times, queues and idempotency keys. Finished jobs stay behind. A job's
//! apalis attempt count starts again at 0: every retry rule that matters counts its own
//! attempts in the app tables (`meetings.attempts`), which are copied.
//!
//! The source is opened read-only and never written. The target must be empty (no table
//! outside PostgreSQL's own schemas): it is migrated to this binary's schema, then filled
//! in ONE transaction, so a failed copy leaves nothing half-written. The source must be
//! migrated to exactly this binary's schema (run the service once on it first).

use std::str::FromStr;

use anyhow::Context;
use apalis::prelude::{TaskBuilder, TaskId};
use sqlx::{Row, sqlite::SqliteConnectOptions};
use ulid::Ulid;

use super::{Store, db, redact_url};

/// Tables that are not ours to copy: apalis-sqlite's queue (copied as jobs, below) and the
/// migration histories (the target has its own).
const NOT_COPIED: [&str; 4] = ["Jobs", "Workers", "_sqlx_migrations", "_app_migrations"];

/// Rows per INSERT statement.
const ROWS_PER_STATEMENT: usize = 200;

/// What a copy moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    /// (table, rows), in the order copied.
    pub tables: Vec<(String, u64)>,
    /// Jobs still to run, copied as pending.
    pub jobs: u64,
}

/// Copies the SQLite database at `from` into the empty PostgreSQL database at `to`.
pub async fn sqlite_to_postgres(from: &str, to: &str) -> anyhow::Result<Copied> {
    anyhow::ensure!(
        super::is_postgres_url(to),
        "--to must be a postgres://user:password@host:port/db URL"
    );
    let pool = open_source(from).await?;
    refuse_non_empty(to).await?;
    // Every read in one read transaction: one consistent snapshot of the source.
    let mut source = pool
        .acquire()
        .await
        .with_context(|| format!("cannot read {from}"))?;
    sqlx::raw_sql("BEGIN")
        .execute(&mut *source)
        .await
        .with_context(|| format!("cannot read {from}"))?;
    let target = Store::connect(to).await?;
    let db::Pool::Postgres(target_pool) = target.db() else {
        anyhow::bail!("--to must be a PostgreSQL database");
    };
    let mut tx = target_pool
        .begin()
        .await
        .with_context(|| format!("cannot begin the copy into {}", redact_url(to)))?;
    let mut copied = Copied::default();
    for table in source_tables(&mut source).await? {
        let rows = copy_table(&mut source, &mut tx, &table).await?;
        copied.tables.push((table, rows));
    }
    restart_identities(&mut tx).await?;
    copied.jobs = copy_jobs(&mut source, &mut tx).await?;
    tx.commit()
        .await
        .with_context(|| format!("cannot commit the copy into {}", redact_url(to)))?;
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *source).await;
    drop(source);
    pool.close().await;
    target.close().await;
    Ok(copied)
}

/// The source, read-only, after checking it is migrated to exactly this binary's schema.
async fn open_source(from: &str) -> anyhow::Result<sqlx::SqlitePool> {
    let options = SqliteConnectOptions::from_str(from)
        .with_context(|| format!("database.url {from:?} is not a SQLite URL"))?
        .read_only(true)
        .create_if_missing(false);
    anyhow::ensure!(
        options.get_filename().is_file(),
        "there is no SQLite database at {} (database.url {from:?})",
        options.get_filename().display()
    );
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot open {from} to read it"))?;
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _app_migrations WHERE success")
            .fetch_one(&pool)
            .await
            .with_context(|| format!("{from} is not a jmotto-zoom database"))?;
    let expected = sqlx::migrate!("./migrations")
        .iter()
        .map(|migration| migration.version)
        .max();
    anyhow::ensure!(
        applied == expected,
        "{from} is at schema version {applied:?}, this binary's is {expected:?}: start this \
         version of the service on it once (it migrates), stop it, then copy"
    );
    Ok(pool)
}

/// Refuses a target holding any table (ours, apalis's, or anyone's).
async fn refuse_non_empty(to: &str) -> anyhow::Result<()> {
    let shown = redact_url(to);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(to)
        .await
        .with_context(|| format!("cannot open the database {shown}"))?;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables \
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_one(&pool)
    .await
    .with_context(|| format!("cannot read the tables of {shown}"))?;
    pool.close().await;
    anyhow::ensure!(
        tables == 0,
        "the database {shown} is not empty ({tables} tables): migrate copies into an empty \
         database only, so that nothing there is overwritten or mixed"
    );
    Ok(())
}

/// Our tables in the source, in creation order (a table referred to comes first).
async fn source_tables(source: &mut sqlx::SqliteConnection) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY rowid",
    )
    .fetch_all(&mut *source)
    .await
    .context("cannot list the source's tables")?;
    Ok(names
        .into_iter()
        .filter(|name| !NOT_COPIED.contains(&name.as_str()))
        .collect())
}

/// The PostgreSQL type of each column of `table`, in the target's order.
async fn target_columns(
    tx: &mut sqlx::PgConnection,
    table: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::TEXT, data_type::TEXT FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *tx)
    .await
    .with_context(|| format!("cannot read the columns of {table} in the target"))?;
    anyhow::ensure!(
        !columns.is_empty(),
        "the target has no table {table}: the two schemas differ"
    );
    Ok(columns)
}

/// Copies every row of `table`; the target's rows seeded by its migrations are replaced.
async fn copy_table(
    source: &mut sqlx::SqliteConnection,
    tx: &mut sqlx::PgConnection,
    table: &str,
) -> anyhow::Result<u64> {
    let columns = target_columns(tx, table).await?;
    let names: Vec<String> = columns.iter().map(|(name, _)| quoted(name)).collect();
    let list = names.join(", ");
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {list} FROM {}",
        quoted(table)
    )))
    .fetch_all(&mut *source)
    .await
    .with_context(|| format!("cannot read {table} (do its columns match the target's?)"))?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {}",
        quoted(table)
    )))
    .execute(&mut *tx)
    .await
    .with_context(|| format!("cannot empty {table} in the target"))?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut values = Vec::with_capacity(chunk.len() * columns.len());
        let mut tuples = Vec::with_capacity(chunk.len());
        for row in chunk {
            let first = values.len() + 1;
            tuples.push(format!("({})", db::placeholders(first, columns.len())));
            for (index, (name, kind)) in columns.iter().enumerate() {
                values.push(
                    value_of(row, index, kind)
                        .with_context(|| format!("cannot read {table}.{name}"))?,
                );
            }
        }
        let sql = format!(
            "INSERT INTO {} ({list}) VALUES {}",
            quoted(table),
            tuples.join(", ")
        );
        db::query_owned(sql)
            .bind_all(values)
            .execute_postgres(&mut *tx)
            .await
            .with_context(|| format!("cannot copy the rows of {table}"))?;
    }
    Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
}

/// `name` as a quoted identifier (the names come from the schemas, never from a person).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Column `index` of a source row as the value the target's column `kind` takes.
fn value_of(row: &sqlx::sqlite::SqliteRow, index: usize, kind: &str) -> anyhow::Result<db::Value> {
    Ok(match kind {
        "bigint" | "integer" | "smallint" => db::Value::from(row.try_get::<Option<i64>, _>(index)?),
        "boolean" => db::Value::from(row.try_get::<Option<bool>, _>(index)?),
        "double precision" | "real" | "numeric" => {
            db::Value::from(row.try_get::<Option<f64>, _>(index)?)
        }
        "bytea" => db::Value::from(row.try_get::<Option<Vec<u8>>, _>(index)?),
        "text" | "character varying" => db::Value::from(row.try_get::<Option<String>, _>(index)?),
        other => anyhow::bail!("a column of PostgreSQL type {other} has no copy rule"),
    })
}

/// Moves each identity column's sequence past the ids copied, so new rows get new ids.
async fn restart_identities(tx: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    let identities: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns \
         WHERE table_schema = 'public' AND is_identity = 'YES'",
    )
    .fetch_all(&mut *tx)
    .await
    .context("cannot list the target's identity columns")?;
    for (table, column) in identities {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(max({column}), 0) + 1, false) \
             FROM {table}",
            column = quoted(&column),
            table = quoted(&table)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&table)
            .bind(&column)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("cannot move the ids of {table} past those copied"))?;
    }
    Ok(())
}

/// A job still to run in the source.
#[derive(sqlx::FromRow)]
struct SourceJob {
    id: String,
    job_type: String,
    job: Vec<u8>,
    max_attempts: i64,
    run_at: i64,
    idempotency_key: Option<String>,
}

/// Copies our jobs still to run (pending, scheduled, failed with attempts left, or held by
/// a worker) into apalis-postgres's queue, as pending, with their ids and run times.
async fn copy_jobs(
    source: &mut sqlx::SqliteConnection,
    tx: &mut sqlx::PgConnection,
) -> anyhow::Result<u64> {
    let jobs: Vec<SourceJob> = sqlx::query_as(
        "SELECT id, job_type, CAST(job AS BLOB) AS job, max_attempts, run_at, idempotency_key \
         FROM Jobs WHERE job_type >= 'jmz.' AND job_type < 'jmz/' \
         AND (status IN ('Pending', 'Queued', 'Running') \
              OR (status = 'Failed' AND attempts < max_attempts)) \
         ORDER BY run_at, id",
    )
    .fetch_all(&mut *source)
    .await
    .context("cannot read the source's jobs")?;
    let count = u64::try_from(jobs.len()).unwrap_or(u64::MAX);
    for job in jobs {
        let ulid = Ulid::from_string(&job.id)
            .with_context(|| format!("the source's job id {} is not a ULID", job.id))?;
        let mut builder = TaskBuilder::new(job.job)
            .task_id(TaskId::from_ulid(ulid))
            .max_attempts(usize::try_from(job.max_attempts).unwrap_or(1))
            .run_at_timestamp(u64::try_from(job.run_at).unwrap_or(0));
        if let Some(key) = &job.idempotency_key {
            builder = builder.idempotency_key(key);
        }
        apalis_postgres::queries::push_tasks(&mut *tx, &job.job_type, vec![builder.build()])
            .await
            .with_context(|| format!("cannot copy the job {}", job.id))?;
    }
    Ok(count)
}
