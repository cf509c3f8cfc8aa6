//! The two backends behind one API: an enum over a SQLite and a PostgreSQL pool, and
//! queries written once in portable SQL.
//!
//! Why an enum and portable SQL (SPEC §9, issue 11), not a trait or sqlx's `Any` driver: the
//! job queue needs each backend's own pool and connection (apalis-sqlite and
//! apalis-postgres push inside our transaction), and every other statement is the same
//! text on both. So a [`Query`] holds its SQL and its arguments as [`Value`]s, and binds
//! them to whichever connection runs it. The rules of portable SQL here:
//!
//! * placeholders are `$1, $2, …` (sqlx-sqlite binds `$N` to the N-th argument);
//! * integers are `BIGINT` on PostgreSQL (Rust `i64`); a `SUM` is cast back to `BIGINT`;
//! * flags are `BOOLEAN` on PostgreSQL, written `TRUE`/`FALSE` (SQLite reads them as 1/0);
//! * timestamps are RFC 3339 text on both, bound by the caller (no `now()` in SQL);
//! * `ON CONFLICT … DO NOTHING / DO UPDATE`, never `INSERT OR …`.
//!
//! What cannot be portable (JSON functions, the job tables of the two apalis backends) is
//! written per backend with [`Query::per_backend`].

use std::borrow::Cow;

use sqlx::{
    Arguments, Decode, Encode, FromRow, PgPool, Postgres, Sqlite, SqlitePool, Type,
    pool::PoolConnection, postgres::PgRow, sqlite::SqliteRow,
};

/// Which database a pool or connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool of either backend: cheap to clone.
#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    /// The backend this pool talks to.
    pub fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// A connection from the pool.
    pub async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(pool) => Conn::Sqlite(pool.acquire().await?),
            Pool::Postgres(pool) => Conn::Postgres(pool.acquire().await?),
        })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// The SQLite pool, when this is one.
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Pool::Sqlite(pool) => Some(pool),
            Pool::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, when this is one.
    pub fn as_postgres(&self) -> Option<&PgPool> {
        match self {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }
}

/// A pooled connection of either backend.
#[derive(Debug)]
pub enum Conn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Conn {
    /// The backend this connection talks to.
    pub fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// True while the connection is inside a transaction.
    pub fn is_in_transaction(&self) -> bool {
        use sqlx::Connection;
        match self {
            Conn::Sqlite(c) => c.is_in_transaction(),
            Conn::Postgres(c) => c.is_in_transaction(),
        }
    }

    /// Closes the connection when dropped instead of pooling it again.
    pub fn close_on_drop(&mut self) {
        match self {
            Conn::Sqlite(c) => c.close_on_drop(),
            Conn::Postgres(c) => c.close_on_drop(),
        }
    }

    /// Runs statements without arguments (`BEGIN`, `COMMIT`, a script).
    pub async fn raw(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        match self {
            Conn::Sqlite(c) => sqlx::raw_sql(sql).execute(&mut **c).await.map(drop),
            Conn::Postgres(c) => sqlx::raw_sql(sql).execute(&mut **c).await.map(drop),
        }
    }

    /// The SQLite connection, when this is one.
    pub fn as_sqlite(&mut self) -> Option<&mut sqlx::SqliteConnection> {
        match self {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres(_) => None,
        }
    }

    /// The PostgreSQL connection, when this is one.
    pub fn as_postgres(&mut self) -> Option<&mut sqlx::PgConnection> {
        match self {
            Conn::Postgres(c) => Some(c),
            Conn::Sqlite(_) => None,
        }
    }
}

/// Where a [`Query`] runs: a pool (any free connection) or one connection (a transaction's).
pub enum On<'c> {
    Pool(&'c Pool),
    Conn(&'c mut Conn),
}

impl<'c> From<&'c Pool> for On<'c> {
    fn from(pool: &'c Pool) -> On<'c> {
        On::Pool(pool)
    }
}

impl<'c> From<&'c mut Conn> for On<'c> {
    fn from(conn: &'c mut Conn) -> On<'c> {
        On::Conn(conn)
    }
}

impl On<'_> {
    fn backend(&self) -> Backend {
        match self {
            On::Pool(pool) => pool.backend(),
            On::Conn(conn) => conn.backend(),
        }
    }
}

/// The type of a NULL argument (PostgreSQL types every parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float,
    Bool,
    Text,
    Bytes,
}

/// One argument of a [`Query`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null(Kind),
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
}

macro_rules! value_from {
    ($($ty:ty => |$v:ident| $make:expr, $kind:ident;)*) => {$(
        impl From<$ty> for Value {
            fn from($v: $ty) -> Value {
                $make
            }
        }
        impl From<Option<$ty>> for Value {
            fn from(value: Option<$ty>) -> Value {
                match value {
                    Some($v) => $make,
                    None => Value::Null(Kind::$kind),
                }
            }
        }
    )*};
}

value_from! {
    i64 => |v| Value::Int(v), Int;
    i32 => |v| Value::Int(i64::from(v)), Int;
    u32 => |v| Value::Int(i64::from(v)), Int;
    f64 => |v| Value::Float(v), Float;
    bool => |v| Value::Bool(v), Bool;
    String => |v| Value::Text(v), Text;
    &str => |v| Value::Text(v.to_owned()), Text;
    &String => |v| Value::Text(v.clone()), Text;
    Vec<u8> => |v| Value::Bytes(v), Bytes;
    &[u8] => |v| Value::Bytes(v.to_vec()), Bytes;
}

impl From<&Option<String>> for Value {
    fn from(value: &Option<String>) -> Value {
        Value::from(value.as_deref())
    }
}

macro_rules! value_from_ref {
    ($($ty:ty),*) => {$(
        impl From<&$ty> for Value {
            fn from(value: &$ty) -> Value {
                Value::from(*value)
            }
        }
    )*};
}

value_from_ref!(i64, i32, u32, f64, bool);

impl From<&Option<i64>> for Value {
    fn from(value: &Option<i64>) -> Value {
        Value::from(*value)
    }
}

/// Adds `value` to `arguments` of any backend whose types cover ours.
fn add<DB>(arguments: &mut DB::Arguments, value: Value) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> f64: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<f64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<bool>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Vec<u8>>: Encode<'q, DB> + Type<DB>,
{
    match value {
        Value::Null(Kind::Int) => arguments.add(None::<i64>),
        Value::Null(Kind::Float) => arguments.add(None::<f64>),
        Value::Null(Kind::Bool) => arguments.add(None::<bool>),
        Value::Null(Kind::Text) => arguments.add(None::<String>),
        Value::Null(Kind::Bytes) => arguments.add(None::<Vec<u8>>),
        Value::Int(v) => arguments.add(v),
        Value::Float(v) => arguments.add(v),
        Value::Bool(v) => arguments.add(v),
        Value::Text(v) => arguments.add(v),
        Value::Bytes(v) => arguments.add(v),
    }
    .map_err(sqlx::Error::Encode)
}

/// A row type both backends decode (every `#[derive(FromRow)]` struct and tuple of our
/// column types is one; hand-written decoders use [`from_row!`](crate::from_row)).
pub trait DbRow:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> DbRow for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// A single column both backends decode.
pub trait DbScalar:
    for<'r> Decode<'r, Sqlite>
    + Type<Sqlite>
    + for<'r> Decode<'r, Postgres>
    + Type<Postgres>
    + Send
    + Unpin
{
}

impl<T> DbScalar for T where
    T: for<'r> Decode<'r, Sqlite>
        + Type<Sqlite>
        + for<'r> Decode<'r, Postgres>
        + Type<Postgres>
        + Send
        + Unpin
{
}

/// Implements `FromRow` for both backends' rows with one body (`row` is the row; `Row` is
/// in scope for `try_get`).
#[macro_export]
macro_rules! from_row {
    ($ty:ty, |$row:ident| $body:block) => {
        impl<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> for $ty {
            fn from_row($row: &'r sqlx::sqlite::SqliteRow) -> Result<Self, sqlx::Error> {
                #[allow(unused_imports)]
                use sqlx::Row;
                $body
            }
        }
        impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for $ty {
            fn from_row($row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
                #[allow(unused_imports)]
                use sqlx::Row;
                $body
            }
        }
    };
}

/// A statement and its arguments, run on either backend.
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until it is run"]
pub struct Query {
    sqlite: Cow<'static, str>,
    /// `None`: the same text as `sqlite`.
    postgres: Option<Cow<'static, str>>,
    args: Vec<Value>,
}

/// A statement in portable SQL.
pub fn query(sql: &'static str) -> Query {
    Query {
        sqlite: Cow::Borrowed(sql),
        postgres: None,
        args: Vec::new(),
    }
}

/// A statement in portable SQL built at run time (from constants and placeholders only,
/// never from a value: values are arguments).
pub fn query_owned(sql: String) -> Query {
    Query {
        sqlite: Cow::Owned(sql),
        postgres: None,
        args: Vec::new(),
    }
}

impl Query {
    /// A statement each backend writes its own way (same arguments, same columns).
    pub fn per_backend(
        sqlite: impl Into<Cow<'static, str>>,
        postgres: impl Into<Cow<'static, str>>,
    ) -> Query {
        Query {
            sqlite: sqlite.into(),
            postgres: Some(postgres.into()),
            args: Vec::new(),
        }
    }

    /// Adds the next argument (`$1`, then `$2`, …).
    pub fn bind(mut self, value: impl Into<Value>) -> Query {
        self.args.push(value.into());
        self
    }

    /// Adds several arguments in order.
    pub fn bind_all(mut self, values: impl IntoIterator<Item = Value>) -> Query {
        self.args.extend(values);
        self
    }

    fn sql(&self, backend: Backend) -> sqlx::AssertSqlSafe<Cow<'static, str>> {
        let text = match (backend, &self.postgres) {
            (Backend::Postgres, Some(postgres)) => postgres.clone(),
            _ => self.sqlite.clone(),
        };
        sqlx::AssertSqlSafe(text)
    }

    fn sqlite_args(&self) -> Result<<Sqlite as sqlx::Database>::Arguments, sqlx::Error> {
        let mut arguments = <Sqlite as sqlx::Database>::Arguments::default();
        for value in &self.args {
            add::<Sqlite>(&mut arguments, value.clone())?;
        }
        Ok(arguments)
    }

    fn postgres_args(&self) -> Result<<Postgres as sqlx::Database>::Arguments, sqlx::Error> {
        let mut arguments = <Postgres as sqlx::Database>::Arguments::default();
        for value in &self.args {
            add::<Postgres>(&mut arguments, value.clone())?;
        }
        Ok(arguments)
    }

    /// Runs the statement; the number of rows it changed.
    pub async fn execute<'c>(self, on: impl Into<On<'c>>) -> Result<u64, sqlx::Error> {
        let on = on.into();
        let sql = self.sql(on.backend());
        let done = match on {
            On::Pool(Pool::Sqlite(pool)) => sqlx::query_with(sql, self.sqlite_args()?)
                .execute(pool)
                .await?
                .rows_affected(),
            On::Conn(Conn::Sqlite(conn)) => sqlx::query_with(sql, self.sqlite_args()?)
                .execute(&mut **conn)
                .await?
                .rows_affected(),
            On::Pool(Pool::Postgres(pool)) => sqlx::query_with(sql, self.postgres_args()?)
                .execute(pool)
                .await?
                .rows_affected(),
            On::Conn(Conn::Postgres(conn)) => sqlx::query_with(sql, self.postgres_args()?)
                .execute(&mut **conn)
                .await?
                .rows_affected(),
        };
        Ok(done)
    }

    /// Runs the statement on a PostgreSQL connection outside any pool (a `sqlx`
    /// transaction's); the number of rows it changed.
    pub async fn execute_postgres(self, conn: &mut sqlx::PgConnection) -> Result<u64, sqlx::Error> {
        let sql = self.sql(Backend::Postgres);
        Ok(sqlx::query_with(sql, self.postgres_args()?)
            .execute(conn)
            .await?
            .rows_affected())
    }

    /// Every row, decoded as `T`.
    pub async fn fetch_all<'c, T: DbRow>(
        self,
        on: impl Into<On<'c>>,
    ) -> Result<Vec<T>, sqlx::Error> {
        let on = on.into();
        let sql = self.sql(on.backend());
        match on {
            On::Pool(Pool::Sqlite(pool)) => {
                sqlx::query_as_with(sql, self.sqlite_args()?)
                    .fetch_all(pool)
                    .await
            }
            On::Conn(Conn::Sqlite(conn)) => {
                sqlx::query_as_with(sql, self.sqlite_args()?)
                    .fetch_all(&mut **conn)
                    .await
            }
            On::Pool(Pool::Postgres(pool)) => {
                sqlx::query_as_with(sql, self.postgres_args()?)
                    .fetch_all(pool)
                    .await
            }
            On::Conn(Conn::Postgres(conn)) => {
                sqlx::query_as_with(sql, self.postgres_args()?)
                    .fetch_all(&mut **conn)
                    .await
            }
        }
    }

    /// The first row, if any, decoded as `T`.
    pub async fn fetch_optional<'c, T: DbRow>(
        self,
        on: impl Into<On<'c>>,
    ) -> Result<Option<T>, sqlx::Error> {
        let on = on.into();
        let sql = self.sql(on.backend());
        match on {
            On::Pool(Pool::Sqlite(pool)) => {
                sqlx::query_as_with(sql, self.sqlite_args()?)
                    .fetch_optional(pool)
                    .await
            }
            On::Conn(Conn::Sqlite(conn)) => {
                sqlx::query_as_with(sql, self.sqlite_args()?)
                    .fetch_optional(&mut **conn)
                    .await
            }
            On::Pool(Pool::Postgres(pool)) => {
                sqlx::query_as_with(sql, self.postgres_args()?)
                    .fetch_optional(pool)
                    .await
            }
            On::Conn(Conn::Postgres(conn)) => {
                sqlx::query_as_with(sql, self.postgres_args()?)
                    .fetch_optional(&mut **conn)
                    .await
            }
        }
    }

    /// The one row, decoded as `T`; `RowNotFound` when there is none.
    pub async fn fetch_one<'c, T: DbRow>(self, on: impl Into<On<'c>>) -> Result<T, sqlx::Error> {
        self.fetch_optional(on)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// The first column of every row.
    pub async fn scalars<'c, T: DbScalar>(
        self,
        on: impl Into<On<'c>>,
    ) -> Result<Vec<T>, sqlx::Error> {
        let rows: Vec<(T,)> = self.fetch_all(on).await?;
        Ok(rows.into_iter().map(|(value,)| value).collect())
    }

    /// The first column of the first row, if any.
    pub async fn scalar_optional<'c, T: DbScalar>(
        self,
        on: impl Into<On<'c>>,
    ) -> Result<Option<T>, sqlx::Error> {
        let row: Option<(T,)> = self.fetch_optional(on).await?;
        Ok(row.map(|(value,)| value))
    }

    /// The first column of the one row; `RowNotFound` when there is none.
    pub async fn scalar<'c, T: DbScalar>(self, on: impl Into<On<'c>>) -> Result<T, sqlx::Error> {
        self.scalar_optional(on)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

/// `$first, $first+1, …` for `count` arguments: the placeholders of a list built at run time.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of a JSON array argument `$n` of strings, as a sub-select of one column `value`.
pub fn json_strings(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => format!("SELECT value FROM json_each(${n})"),
        Backend::Postgres => format!("SELECT value FROM jsonb_array_elements_text(${n}::jsonb)"),
    }
}

/// The rows of a JSON array argument `$n` of `[a, b]` string pairs, as a sub-select of two
/// columns `a` and `b`.
pub fn json_pairs(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => format!(
            "SELECT json_extract(value, '$[0]') AS a, json_extract(value, '$[1]') AS b \
             FROM json_each(${n})"
        ),
        Backend::Postgres => {
            format!("SELECT value->>0 AS a, value->>1 AS b FROM jsonb_array_elements(${n}::jsonb)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, sqlx::FromRow)]
    struct Item {
        id: i64,
        name: Option<String>,
        flag: bool,
    }

    async fn sqlite() -> Pool {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("memory database");
        Pool::Sqlite(pool)
    }

    /// `$N` placeholders, NULLs of each type, flags and rows decode the same way on SQLite
    /// (the PostgreSQL half runs in the integration suite against a real server).
    #[tokio::test]
    async fn portable_statements_bind_and_decode_on_sqlite() {
        let pool = sqlite().await;
        query("CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT, flag BOOLEAN NOT NULL)")
            .execute(&pool)
            .await
            .expect("table");
        let mut conn = pool.acquire().await.expect("connection");
        for (id, name, flag) in [(1, Some("a"), true), (2, None, false)] {
            let changed = query("INSERT INTO items (id, name, flag) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(name)
                .bind(flag)
                .execute(&mut conn)
                .await
                .expect("insert");
            assert_eq!(changed, 1);
        }
        drop(conn);
        let items: Vec<Item> = query("SELECT id, name, flag FROM items WHERE id >= $1 ORDER BY id")
            .bind(1_i64)
            .fetch_all(&pool)
            .await
            .expect("rows");
        assert_eq!(
            items,
            [
                Item {
                    id: 1,
                    name: Some("a".into()),
                    flag: true
                },
                Item {
                    id: 2,
                    name: None,
                    flag: false
                }
            ]
        );
        // The same argument twice, and a list built at run time.
        let sql = format!(
            "SELECT count(*) FROM items WHERE id IN ({}) AND ($1 = 1 OR $1 = 2)",
            placeholders(1, 2)
        );
        let count: i64 = query_owned(sql)
            .bind(1_i64)
            .bind(2_i64)
            .scalar(&pool)
            .await
            .expect("count");
        assert_eq!(count, 2);
        let names: Vec<String> = query_owned(format!(
            "SELECT name FROM items WHERE name IN ({})",
            json_strings(Backend::Sqlite, 1)
        ))
        .bind(r#"["a","b"]"#)
        .scalars(&pool)
        .await
        .expect("names");
        assert_eq!(names, ["a"]);
        let none: Option<i64> = query("SELECT id FROM items WHERE id = $1")
            .bind(9_i64)
            .scalar_optional(&pool)
            .await
            .expect("none");
        assert_eq!(none, None);
    }
}
