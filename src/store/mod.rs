//! The one SQLite file that holds both the app tables and apalis's job queue, so that a
//! state change and the job it implies commit together (or not at all).
//!
//! Every pragma is on the [`SqliteConnectOptions`], so each pooled connection gets it (never
//! `SqliteStorage::setup()`, which turns `synchronous` OFF on one connection). apalis's
//! migrations keep `_sqlx_migrations`; ours keep `_app_migrations`.

pub mod alerts;
pub mod audit;
pub mod copy;
pub mod db;
pub mod directory;
pub mod meetings;
pub mod pacing;
pub mod queue;
pub mod receiver;
pub mod settings;
pub mod sync_state;
pub mod wake;

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use meetings::{MeetingRow, MeetingState};

/// A write transaction that took SQLite's write lock at `BEGIN` (so no read-then-write
/// upgrade can fail with `SQLITE_BUSY` half-way), and this process's write turn with it.
///
/// The write turn: the process's write transactions queue for one async mutex before
/// `BEGIN IMMEDIATE`, so they take SQLite's lock one after another in arrival order. Left
/// to SQLite, writers that find the lock taken sleep in its busy handler (1, 2, 5 … up to
/// 100 ms a try) while the lock may already be free: with dozens of jobs writing at once
/// (issue 5's 100,000-entry sync) statements waited over a second and throughput fell
/// tenfold. Other processes, and apalis's own statements, still meet SQLite's lock and
/// `busy_timeout`. Dereferences to the transaction's connection.
///
/// Invariant (issue 13): its connection goes back to the pool only after a `COMMIT` or
/// `ROLLBACK` that succeeded. When either fails (a full disk, an immutable file), or the
/// transaction is dropped unfinished, the connection is closed instead (closing rolls back
/// whatever SQLite still holds), so no pooled connection is ever left inside a transaction
/// and the next write opens a fresh one the moment the fault ends.
pub struct WriteTx {
    connection: db::Conn,
    /// Set once `COMMIT` or `ROLLBACK` succeeded: the connection may be pooled again.
    finished: bool,
    /// The connection's key in [`wake`]: the queues pushed to in this transaction.
    wake_key: usize,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    /// Commits; the write turn passes on once the commit has returned. Then the queues
    /// that jobs were pushed to are woken ([`wake`]): their jobs can be seen now.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.end("COMMIT").await?;
        wake::committed(self.wake_key);
        Ok(())
    }

    /// Rolls back; the write turn passes on once the rollback has returned.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        self.end("ROLLBACK").await?;
        wake::discarded(self.wake_key);
        Ok(())
    }

    /// Runs `COMMIT` or `ROLLBACK`; the connection may be pooled again only if it succeeded.
    async fn end(&mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        self.connection.raw(statement).await?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if !self.finished {
            wake::discarded(self.wake_key);
            self.connection.close_on_drop();
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = db::Conn;

    fn deref(&self) -> &Self::Target {
        &self.connection
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.connection
    }
}

/// A storage fault: the database cannot be written or read now (full disk, read-only or
/// immutable file, locked, removed or replaced). The request may succeed later (503).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StorageFault(pub String);

/// True when `error`'s chain holds a fault of the storage rather than of the request: a
/// [`StorageFault`], an I/O error, a pool that cannot give a connection, or SQLite's own
/// codes for a busy, locked, full, read-only, unopenable or failing file.
pub fn is_storage_fault(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        if cause.is::<StorageFault>() || cause.is::<std::io::Error>() {
            return true;
        }
        match cause.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(database))
                if database
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some() =>
            {
                database.code().is_some_and(|code| is_postgres_fault(&code))
            }
            Some(sqlx::Error::Database(database)) => database
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                .is_some_and(|code| STORAGE_FAULT_CODES.contains(&(code & 0xff))),
            Some(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => true,
            _ => false,
        }
    })
}

/// PostgreSQL's SQLSTATEs of a storage fault: a connection exception (class 08), a server
/// shutting down or starting (57P01–57P03), insufficient resources (class 53: disk full,
/// out of memory, too many connections), a read-only transaction (25006).
fn is_postgres_fault(sqlstate: &str) -> bool {
    sqlstate.starts_with("08")
        || sqlstate.starts_with("53")
        || matches!(sqlstate, "57P01" | "57P02" | "57P03" | "25006")
}

/// SQLite's primary result codes of a storage fault: PERM, BUSY, LOCKED, READONLY, IOERR,
/// CORRUPT, FULL, CANTOPEN, NOTADB.
const STORAGE_FAULT_CODES: [i64; 9] = [3, 5, 6, 8, 10, 11, 13, 14, 26];

/// The database file as it was when opened: its device and inode.
#[derive(Debug, Clone)]
struct OpenedFile {
    path: std::path::PathBuf,
    device: u64,
    inode: u64,
}

impl OpenedFile {
    fn of(path: &std::path::Path) -> anyhow::Result<OpenedFile> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path)
            .with_context(|| format!("cannot read the metadata of {}", path.display()))?;
        Ok(OpenedFile {
            path: path.to_owned(),
            device: metadata.dev(),
            inode: metadata.ino(),
        })
    }

    /// `Err(StorageFault)` when the path no longer names the file opened.
    fn check(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&self.path) {
            Ok(now) if now.dev() == self.device && now.ino() == self.inode => Ok(()),
            Ok(_) => Err(StorageFault(format!(
                "the database file {} was replaced since it was opened",
                self.path.display()
            ))
            .into()),
            Err(error) => Err(anyhow::Error::new(error).context(StorageFault(format!(
                "the database file {} is gone since it was opened",
                self.path.display()
            )))),
        }
    }
}

/// Handle on the database: cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: db::Pool,
    /// This process's write turn (see [`WriteTx`]).
    write_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The file opened (`None` in memory): every write transaction first checks that its
    /// path still names it, so a removed database refuses writes instead of taking them
    /// into an unlinked file.
    opened: Option<OpenedFile>,
}

impl Store {
    /// Opens (creating file and folder when missing) and migrates the database at `url`.
    /// A folder it creates is owner-only (0700), and so is a file (0600): they hold e-mail
    /// addresses, topics and join URLs. SQLite gives its `-wal` and `-shm` files the
    /// database file's mode.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        if is_postgres_url(url) {
            return Store::connect_postgres(url).await;
        }
        let options = connect_options(url)?;
        let file = database_file(options.get_filename());
        if let Some(file) = &file {
            create_owner_only(file)?;
        }
        // Processes started together (a server and a worker) would both switch a new file
        // to WAL and apply apalis's migrations; one fails ("database is locked", or a column
        // the other just added). Opening and migrating happen one process at a time.
        let lock = match migration_lock_path(options.get_filename()) {
            Some(path) => Some(lock_file(path).await?),
            None => None,
        };
        let open = || async {
            SqlitePoolOptions::new()
                .max_connections(8)
                // A connection still inside a transaction (a COMMIT or ROLLBACK that failed,
                // here or in apalis) is closed rather than pooled again (issue 13). The ping
                // first runs a rollback sqlx may have queued when a transaction was dropped.
                .after_release(|connection, _| {
                    Box::pin(async move {
                        use sqlx::Connection;
                        connection.ping().await?;
                        Ok(!connection.is_in_transaction())
                    })
                })
                .connect_with(options.clone())
                .await
                .with_context(|| format!("cannot open the database {url}"))
        };
        let opened = match &file {
            Some(path) => Some(OpenedFile::of(path)?),
            None => None,
        };
        let migrating = Store {
            pool: db::Pool::Sqlite(open().await?),
            write_turn: std::sync::Arc::default(),
            opened: opened.clone(),
        };
        migrating.migrate().await?;
        // A connection reads the planner statistics when it loads the schema: the pool that
        // migrated may predate the queue's hints (migrations/…_queue_planner_hints.sql).
        migrating.close().await;
        let store = Store {
            pool: db::Pool::Sqlite(open().await?),
            write_turn: std::sync::Arc::default(),
            opened,
        };
        drop(lock);
        Ok(store)
    }

    /// Opens and migrates the PostgreSQL database at `url` (SPEC §9). Errors name the
    /// database without its password. Processes started together migrate one at a time:
    /// sqlx's migrator holds a session advisory lock while it runs.
    async fn connect_postgres(url: &str) -> anyhow::Result<Store> {
        let shown = redact_url(url);
        let options = sqlx::postgres::PgConnectOptions::from_str(url)
            .with_context(|| format!("database.url {shown} is not a PostgreSQL URL"))?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(POSTGRES_CONNECTIONS)
            // A PostgreSQL that is down answers "not ready" within seconds (SPEC §9: 503
            // while it lasts), never after sqlx's 30 s default.
            .acquire_timeout(Duration::from_secs(5))
            .after_release(|connection, _| {
                Box::pin(async move {
                    use sqlx::Connection;
                    Ok(!connection.is_in_transaction())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the database {shown}"))?;
        let store = Store {
            pool: db::Pool::Postgres(pool),
            write_turn: std::sync::Arc::default(),
            opened: None,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Runs the job queue's migrations (apalis-sqlite's or apalis-postgres's, in their own
    /// `_sqlx_migrations`), then ours (`_app_migrations`; `migrations/` on SQLite,
    /// `migrations/postgres/` on PostgreSQL: the same versions, each in its dialect).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.pool {
            db::Pool::Sqlite(pool) => {
                let ours = sqlx::migrate!("./migrations");
                apply(apalis_sqlite::SqliteStorage::migrations(), ours, pool).await
            }
            db::Pool::Postgres(pool) => {
                let ours = sqlx::migrate!("./migrations/postgres");
                apply(apalis_postgres::PostgresStorage::migrations(), ours, pool).await
            }
        }
    }

    /// True when the database answers, both migration sets are applied, its path still
    /// names the file opened, and a write commits (the one row of `write_probe` is
    /// rewritten): a read-only, full, immutable or removed database is not ready.
    pub async fn is_ready(&self) -> anyhow::Result<()> {
        let applied: i64 = db::query("SELECT count(*) FROM _app_migrations")
            .scalar(&self.pool)
            .await
            .context("the database does not answer")?;
        anyhow::ensure!(applied > 0, "the app tables are not migrated");
        self.probe_write().await
    }

    /// Rewrites the one row of `write_probe` in a write transaction: `Ok` proves that this
    /// process can commit to the file it opened.
    pub async fn probe_write(&self) -> anyhow::Result<()> {
        let mut tx = self.begin_write().await?;
        // A new value every time (to the nanosecond): SQLite may skip writing a row that
        // does not change, and then nothing would be proved.
        db::query("UPDATE write_probe SET touched_at = $1 WHERE id = 1")
            .bind(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
            .execute(&mut *tx)
            .await
            .context("cannot write to the database")?;
        tx.commit()
            .await
            .context("cannot commit a write to the database")?;
        Ok(())
    }

    /// The pool (shared with the apalis backends).
    pub fn db(&self) -> &db::Pool {
        &self.pool
    }

    /// Begins a write transaction holding the write lock from the start; a [`StorageFault`]
    /// when the database file was removed or replaced since it was opened.
    pub async fn begin_write(&self) -> anyhow::Result<WriteTx> {
        let turn = self.write_turn.clone().lock_owned().await;
        if let Some(opened) = &self.opened {
            opened.check()?;
        }
        let mut connection = self
            .pool
            .acquire()
            .await
            .context("cannot take a database connection")?;
        if connection.is_in_transaction() {
            // Never expected (`after_release` closes such connections); a fresh one is sure.
            connection.close_on_drop();
            drop(connection);
            connection = self
                .pool
                .acquire()
                .await
                .context("cannot take a database connection")?;
        }
        let wake_key = wake::connection_key(&mut connection)
            .await
            .context("cannot take a database connection")?;
        let mut tx = WriteTx {
            connection,
            finished: false,
            wake_key,
            _turn: turn,
        };
        // By hand, not `Pool::begin_with`: a `Transaction` that fails to commit goes back to
        // the pool still counted inside a transaction (issue 13's "begin_with at non-zero
        // transaction depth" on every later write).
        let begin = match tx.connection.backend() {
            db::Backend::Sqlite => "BEGIN IMMEDIATE",
            // Write transactions take one transaction-level advisory lock, so they run one
            // after another across every process, as SQLite's write lock makes them on one
            // file: every read-then-write of the engine (claims, plans, quotas, limiters)
            // sees the last commit. Reads do not wait. The lock ends with the transaction,
            // or with the connection of a process that died.
            db::Backend::Postgres => "BEGIN; SELECT pg_advisory_xact_lock(7405, 1)",
        };
        tx.connection
            .raw(begin)
            .await
            .context("cannot begin a database transaction")?;
        Ok(tx)
    }

    /// Closes every connection (after this, the file may be removed).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Copies the database into the new file `target` (`jmotto-zoom backup`), online: SQLite's
    /// `VACUUM INTO` reads one consistent snapshot (a read transaction, which in WAL mode
    /// blocks no writer) and writes it as a standalone database. Refuses a `target` that
    /// exists; the copy is owner-only (0600) like the database. A copy that fails is removed.
    pub async fn backup_to(&self, target: &std::path::Path) -> anyhow::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let db::Pool::Sqlite(pool) = &self.pool else {
            anyhow::bail!(NOT_SQLITE);
        };
        anyhow::ensure!(
            self.opened.is_some(),
            "an in-memory database has no file to back up"
        );
        // SQLite writes into an existing file if it is empty: created here, it has our mode.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)
            .with_context(|| {
                format!(
                    "cannot create the backup file {} (an existing file is never overwritten)",
                    target.display()
                )
            })?;
        let name = target
            .to_str()
            .with_context(|| format!("the backup path {} is not UTF-8", target.display()))?;
        let copied = sqlx::query("VACUUM INTO ?").bind(name).execute(pool).await;
        if let Err(error) = copied {
            let _ = std::fs::remove_file(target);
            return Err(error)
                .with_context(|| format!("cannot copy the database into {}", target.display()));
        }
        // SQLite does not sync the file `VACUUM INTO` wrote: a backup must survive a crash.
        std::fs::File::open(target)
            .and_then(|file| file.sync_all())
            .with_context(|| format!("cannot sync the backup file {}", target.display()))
    }
}

/// Runs the job queue's migrations, then ours under `_app_migrations`.
async fn apply<'a, A>(
    queue: sqlx::migrate::Migrator,
    mut ours: sqlx::migrate::Migrator,
    pool: A,
) -> anyhow::Result<()>
where
    A: sqlx::Acquire<'a> + Copy,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    queue
        .run(pool)
        .await
        .context("cannot migrate the job queue tables")?;
    ours.dangerous_set_table_name("_app_migrations");
    ours.run(pool)
        .await
        .context("cannot migrate the app tables")?;
    Ok(())
}

/// Connections each process keeps to PostgreSQL (its queue workers, its requests, its
/// limiters). `max_connections` of the server bounds the sum over every process.
const POSTGRES_CONNECTIONS: u32 = 16;

pub use crate::config::is_postgres_url;

/// Why a PostgreSQL database has no `backup` (the message of `jmotto-zoom backup`).
pub const NOT_SQLITE: &str = "backup copies SQLite databases; for PostgreSQL use pg_dump";

/// `url` with its password (if any) replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials
                .split_once(':')
                .map_or(credentials, |(user, _)| user);
            let hidden = if credentials.contains(':') {
                ":***"
            } else {
                ""
            };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// `synchronous` as set on every connection, for a benchmark to report the mode it measured.
pub const SYNCHRONOUS: &str = "FULL";

/// The options every connection of [`Store::connect`] opens with (every pragma), public so
/// a benchmark can open a connection exactly like the service's.
///
/// `synchronous = FULL` in WAL mode syncs the WAL at every commit: a committed transaction
/// survives power loss, not only a process crash, so "202 only after commit" means durable.
/// The webhook receiver commits concurrent deliveries together (`http::group_commit`) to
/// pay one sync for many. Measured in BENCHMARKS.md.
pub fn connect_options(url: &str) -> anyhow::Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(url)
        .with_context(|| format!("database.url {url:?} is not a SQLite URL"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .pragma("temp_store", "MEMORY")
        .pragma("cache_size", "-16000"))
}

/// The database's file; `None` in memory.
fn database_file(database: &std::path::Path) -> Option<std::path::PathBuf> {
    let name = database.file_name()?.to_str()?;
    // sqlx names a `sqlite::memory:` database `file:sqlx-in-memory-N` (a URI, no file).
    let in_memory = name == ":memory:" || name.starts_with("file:sqlx-in-memory-");
    (!name.is_empty() && !in_memory).then(|| database.to_owned())
}

/// Creates `file`'s missing folders (0700) and the file itself when missing (0600, empty:
/// SQLite takes an empty file for a new database). Existing ones keep their modes.
fn create_owner_only(file: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = file.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("cannot create the database folder {}", parent.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("cannot create the database file {}", file.display()))?;
    Ok(())
}

/// `<database>.open.lock` next to a database file; `None` in memory.
fn migration_lock_path(database: &std::path::Path) -> Option<std::path::PathBuf> {
    let name = database_file(database)?;
    let name = name.file_name()?.to_str()?;
    Some(database.with_file_name(format!("{name}.open.lock")))
}

/// Opens (creating it owner-only, 0600) a lock file for writing.
pub fn open_lock_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
}

/// Opens `path` and waits for an exclusive lock on it (released when the file is dropped,
/// or when the process dies).
async fn lock_file(path: std::path::PathBuf) -> anyhow::Result<std::fs::File> {
    tokio::task::spawn_blocking(move || {
        let file =
            open_lock_file(&path).with_context(|| format!("cannot create {}", path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(file)
    })
    .await
    .context("the migration lock task failed")?
}

/// Instants are stored as `YYYY-MM-DDTHH:MM:SSZ`: sortable as text, and exactly what Zoom
/// is sent.
pub fn utc_text(instant: DateTime<Utc>) -> String {
    crate::domain::time::utc_text(instant)
}

/// Reads an instant written by [`utc_text`] (or any RFC 3339 text).
pub fn parse_utc(text: &str) -> anyhow::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("stored instant {text:?} is not RFC 3339"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory database names no file: opening one creates nothing in the working
    /// directory (it once left `file:sqlx-in-memory-N` files behind).
    #[test]
    fn an_in_memory_database_has_no_file() {
        let options = connect_options("sqlite::memory:").expect("valid");
        assert_eq!(database_file(options.get_filename()), None);
        let options = connect_options("sqlite://data/x.db").expect("valid");
        assert!(database_file(options.get_filename()).is_some());
    }

    /// Secrets never reach a message: a PostgreSQL URL's password is hidden, the rest kept.
    #[test]
    fn a_database_urls_password_is_hidden() {
        let cases = [
            (
                "postgres://jmz:s3cr@t@db.example:5432/jmz?sslmode=require",
                "postgres://jmz:***@db.example:5432/jmz?sslmode=require",
            ),
            ("postgresql://jmz@db/jmz", "postgresql://jmz@db/jmz"),
            ("postgres://db/jmz", "postgres://db/jmz"),
            (
                "sqlite://data/jmotto-zoom.db",
                "sqlite://data/jmotto-zoom.db",
            ),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    /// A server and a worker opening a new database at the same moment both start.
    #[tokio::test]
    async fn concurrent_first_opens_both_migrate() {
        for round in 0..5 {
            let folder = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", folder.path().join("new.db").display());
            let (a, b) = tokio::join!(Store::connect(&url), Store::connect(&url));
            assert!(a.is_ok() && b.is_ok(), "round {round}: {a:?} {b:?}");
        }
    }

    /// Issue 5: a host's failed deletes are found through the host's meetings, on every
    /// pooled connection of a new database (apalis's lock query: `queue`'s tests).
    #[tokio::test]
    async fn hot_queries_use_their_selective_indexes() {
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", folder.path().join("plan.db").display());
        let store = Store::connect(&url).await.expect("database opens");
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut conn = store
                .db()
                .as_sqlite()
                .expect("SQLite")
                .acquire()
                .await
                .expect("connection");
            // `meetings::failed_deletes`, run for each user whose window was listed: by host.
            let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
                "EXPLAIN QUERY PLAN SELECT m.id FROM meetings m JOIN entries e ON e.schedule_id = m.schedule_id \
                 AND e.occurrence = m.occurrence WHERE m.host_user_id = ? AND m.state = 'created' \
                 AND m.reason_code = 'delete_failed' ORDER BY m.id",
            )
            .bind("10002")
            .fetch_all(&mut *conn)
            .await
            .expect("plan");
            let steps: Vec<&str> = plan.iter().map(|step| step.3.as_str()).collect();
            assert!(
                steps.iter().any(|s| s.contains("meetings_host")),
                "{steps:?}"
            );
            held.push(conn);
        }
    }

    /// Issue 5's durability mode: every pooled connection runs in the mode [`SYNCHRONOUS`]
    /// names (a benchmark prints that name), in WAL.
    #[tokio::test]
    async fn every_connection_runs_in_the_named_synchronous_mode() {
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", folder.path().join("mode.db").display());
        let store = Store::connect(&url).await.expect("database opens");
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut conn = store
                .db()
                .as_sqlite()
                .expect("SQLite")
                .acquire()
                .await
                .expect("connection");
            let mode: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .expect("synchronous");
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .expect("journal_mode");
            let name = ["OFF", "NORMAL", "FULL", "EXTRA"]
                .get(usize::try_from(mode).expect("mode"))
                .copied();
            assert_eq!(name, Some(SYNCHRONOUS));
            assert_eq!(journal, "wal");
            held.push(conn);
        }
    }
}
