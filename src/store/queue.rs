//! apalis's own tables (apalis-sqlite's `Jobs` and `Workers`, apalis-postgres's `apalis.jobs`
//! and `apalis.workers`): every statement this product runs on them is here, and [`JobState`] is the one reading of a job's `status`.
//!
//! apalis writes these tables itself (push, fetch, ack, heartbeats); we read them for the
//! operator (`/api/v1/status`, `/metrics`, `jobs/{id}`, the CLI's `status`, all through
//! [`count_jobs`] or [`job`]), and write them only to put back the jobs of a worker that
//! died or stops ([`requeue_held_by`]) and to prune finished jobs ([`prune_finished`]).
//!
//! Our queues are the `jmz.` namespace of `job_type` ([`QUEUE_NAMESPACE`]; `jobs` checks
//! that each of its queue names is in it). The store sits below `jobs`, so it selects by
//! that namespace (a range on the text, which apalis's `job_type` index serves) rather than
//! by the list of job types.
//!
//! On PostgreSQL the same tables are apalis-postgres's `apalis.jobs` and `apalis.workers`,
//! whose columns differ in type, so every statement here is written per backend
//! ([`db::Query::per_backend`], same arguments, same columns and Rust types): `run_at`,
//! `lock_at`, `done_at` and `last_seen` are `timestamptz` (compared with `to_timestamp` of
//! the Unix seconds we bind, read back as Unix seconds), `attempts`/`max_attempts` are
//! `INTEGER` (cast to `BIGINT`), `job` is `BYTEA` (JSON bytes, as on SQLite), `last_result`
//! is `jsonb` (read as text), and a job's JSON fields are read with `->>` instead of
//! `json_extract`. Both backends compare with the time bound from Rust, never the
//! database's clock. Text ranges on PostgreSQL compare under `COLLATE "C"` (bytes,
//! as SQLite's `BINARY`): a locale collation may ignore the punctuation they turn on.

use anyhow::Context;
use serde::Serialize;

use super::db::{self, Backend};

/// The prefix of every queue this product owns (`jmz.sync_window`, …).
pub const QUEUE_NAMESPACE: &str = "jmz.";

/// `job_type` in our namespace: `>= 'jmz.' AND < 'jmz/'` ('/' follows '.'), no `LIKE`.
const OURS: &str = "job_type >= 'jmz.' AND job_type < 'jmz/'";

/// [`OURS`] on PostgreSQL: the same range, compared byte by byte.
const OURS_PG: &str = "job_type COLLATE \"C\" >= 'jmz.' AND job_type COLLATE \"C\" < 'jmz/'";

/// The job's JSON field `field` as text (NULL when absent or null), on each backend.
fn job_field(backend: Backend, table: &str, field: &str) -> String {
    match backend {
        Backend::Sqlite => format!("json_extract(CAST({table}job AS TEXT), '$.{field}')"),
        Backend::Postgres => format!("(convert_from({table}job, 'UTF8')::jsonb ->> '{field}')"),
    }
}

/// A `Jobs` row as [`JobRow`] reads it, `table` being `""` or an alias with its dot.
fn job_columns(backend: Backend, table: &str) -> String {
    match backend {
        Backend::Sqlite => format!(
            "{table}id, {table}job_type, {table}status, {table}lock_by IS NOT NULL, \
             {table}attempts, {table}max_attempts, {table}run_at, {table}last_result"
        ),
        Backend::Postgres => format!(
            "{table}id, {table}job_type, {table}status, {table}lock_by IS NOT NULL, \
             CAST({table}attempts AS BIGINT), CAST({table}max_attempts AS BIGINT), \
             CAST(floor(EXTRACT(EPOCH FROM {table}run_at)) AS BIGINT), \
             CAST({table}last_result AS TEXT)"
        ),
    }
}

/// What a job is doing, as every view shows it (SPEC §5 `queue`, `/metrics` `jmz_jobs`,
/// `GET /api/v1/jobs/{id}`), decoded from apalis's `status` once, here.
///
/// apalis's statuses: `Pending` (waiting), `Queued` (fetched by a worker, its handler not
/// started yet), `Running`, `Done`, `Failed` (fetched again while attempts are left),
/// `Killed`. **`Queued` counts as running**: the job is in a worker's hands (`lock_by`), no
/// other worker can take it, and a worker that dies holding it has it put back like a running
/// one. A `Failed` job with attempts left is waiting to run again (pending or scheduled by its
/// run time); failed means out of attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobState {
    /// Ready to run now.
    Pending,
    /// Waiting for a later run time.
    Scheduled,
    /// In a worker's hands (`Queued` or `Running`).
    Running,
    /// Finished.
    Done,
    /// Out of attempts.
    Failed,
    /// Killed (never runs again).
    Killed,
}

impl JobState {
    /// Every state, in the order views list them.
    pub const ALL: [JobState; 6] = [
        JobState::Pending,
        JobState::Scheduled,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Killed,
    ];

    /// The name views show (`pending`, `scheduled`, `running`, `done`, `failed`, `killed`).
    pub fn name(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Killed => "killed",
        }
    }

    /// Reads apalis's `status` with the facts it depends on: the job is held by a worker
    /// (`lock_by` set), it has attempts left, its run time is still to come. An unknown
    /// status is an error, never a guess.
    pub fn decode(
        status: &str,
        held: bool,
        attempts_left: bool,
        later: bool,
    ) -> anyhow::Result<JobState> {
        let waiting = if later {
            JobState::Scheduled
        } else {
            JobState::Pending
        };
        Ok(match status {
            // A `Pending` row with a holder is one a worker is taking right now.
            "Pending" if held => JobState::Running,
            "Pending" => waiting,
            "Queued" | "Running" => JobState::Running,
            "Done" => JobState::Done,
            "Failed" if attempts_left => waiting,
            "Failed" => JobState::Failed,
            "Killed" => JobState::Killed,
            other => anyhow::bail!("the job queue holds a job with the unknown status {other:?}"),
        })
    }
}

/// Jobs of our queues by queue and state, read in one statement ([`count_jobs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobCounts {
    counts: std::collections::BTreeMap<(String, JobState), i64>,
}

impl JobCounts {
    /// (queue, state, count) for every queue and state with at least one job.
    pub fn by_queue_and_state(&self) -> impl Iterator<Item = (&str, JobState, i64)> {
        self.counts
            .iter()
            .map(|((queue, state), count)| (queue.as_str(), *state, *count))
    }

    /// Jobs in `state`, every queue together.
    pub fn in_state(&self, state: JobState) -> i64 {
        self.by_queue_and_state()
            .filter(|(_, s, _)| *s == state)
            .map(|(_, _, count)| count)
            .sum()
    }

    /// The operator's summary (SPEC §5 `queue`).
    pub fn summary(&self) -> QueueCounts {
        QueueCounts {
            pending: self.in_state(JobState::Pending),
            running: self.in_state(JobState::Running),
            scheduled: self.in_state(JobState::Scheduled),
            failed: self.in_state(JobState::Failed) + self.in_state(JobState::Killed),
        }
    }
}

/// Jobs by what an operator cares about (SPEC §5 `queue`), from [`JobCounts::summary`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    /// Ready to run now ([`JobState::Pending`]).
    pub pending: i64,
    /// In a worker's hands ([`JobState::Running`]: `Queued` or `Running`).
    pub running: i64,
    /// Waiting for a later run time ([`JobState::Scheduled`]).
    pub scheduled: i64,
    /// Out of attempts, or killed.
    pub failed: i64,
}

impl QueueCounts {
    /// Nothing ready or running (scheduled jobs may remain).
    pub fn is_idle(&self) -> bool {
        self.pending == 0 && self.running == 0
    }
}

/// Counts the jobs of our queues by queue and state: the one count behind `status`,
/// `/metrics` and the CLI.
pub async fn count_jobs(pool: &db::Pool) -> anyhow::Result<JobCounts> {
    let now = chrono::Utc::now().timestamp();
    let rows: Vec<(String, String, bool, bool, bool, i64)> = db::Query::per_backend(
        format!(
            "SELECT job_type, status, lock_by IS NOT NULL, attempts < max_attempts, \
             run_at > $1, count(*) FROM Jobs WHERE {OURS} GROUP BY 1, 2, 3, 4, 5"
        ),
        format!(
            "SELECT job_type, status, lock_by IS NOT NULL, attempts < max_attempts, \
             run_at > to_timestamp($1), count(*) FROM apalis.jobs WHERE {OURS_PG} \
             GROUP BY 1, 2, 3, 4, 5"
        ),
    )
    .bind(now)
    .fetch_all(pool)
    .await
    .context("cannot count jobs")?;
    let mut counts = JobCounts::default();
    for (queue, status, held, attempts_left, later, count) in rows {
        let state = JobState::decode(&status, held, attempts_left, later)?;
        *counts.counts.entry((queue, state)).or_insert(0) += count;
    }
    Ok(counts)
}

/// [`count_jobs`]' summary.
pub async fn queue_counts(pool: &db::Pool) -> anyhow::Result<QueueCounts> {
    Ok(count_jobs(pool).await?.summary())
}

/// One job as `GET /api/v1/jobs/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: String,
    pub queue: String,
    /// Its state when it was read.
    #[serde(serialize_with = "serialize_state")]
    pub state: JobState,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub last_result: Option<String>,
}

fn serialize_state<S: serde::Serializer>(state: &JobState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.name())
}

/// A job by id.
pub async fn job(pool: &db::Pool, id: &str) -> anyhow::Result<Option<JobView>> {
    let sql = |backend| {
        format!(
            "SELECT {} FROM {} WHERE id = $1",
            job_columns(backend, ""),
            jobs_table(backend)
        )
    };
    let row: Option<JobRow> = db::Query::per_backend(sql(Backend::Sqlite), sql(Backend::Postgres))
        .bind(id)
        .fetch_optional(pool)
        .await
        .context("cannot read a job")?;
    row.map(|row| job_view(row, chrono::Utc::now().timestamp()))
        .transpose()
}

/// apalis's table of jobs on `backend`.
fn jobs_table(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "Jobs",
        Backend::Postgres => "apalis.jobs",
    }
}

/// A `Jobs` row (id, queue, status, held, attempts, max_attempts, run_at, last_result)
/// decoded at `now` (Unix seconds).
type JobRow = (String, String, String, bool, i64, i64, i64, Option<String>);

fn job_view(row: JobRow, now: i64) -> anyhow::Result<JobView> {
    let (id, queue, status, held, attempts, max_attempts, run_at, last_result) = row;
    Ok(JobView {
        state: JobState::decode(&status, held, attempts < max_attempts, run_at > now)?,
        id,
        queue,
        attempts,
        max_attempts,
        run_at,
        last_result,
    })
}

/// Jobs of `queue` not finished (`Pending`, `Queued`, `Running`), whatever their run time.
/// By equality on the queue, so SQLite counts in apalis's `(job_type, status, run_at)`
/// index (a harness polls it every few milliseconds on 100k jobs).
pub async fn unfinished_in(pool: &db::Pool, queue: &str) -> anyhow::Result<i64> {
    db::Query::per_backend(
        "SELECT count(*) FROM Jobs WHERE job_type = $1 \
         AND status IN ('Pending', 'Queued', 'Running')",
        "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 \
         AND status IN ('Pending', 'Queued', 'Running')",
    )
    .bind(queue)
    .scalar(pool)
    .await
    .context("cannot count unfinished jobs")
}

/// Jobs of our queues that are done (through the status index: polled by the harnesses).
pub async fn done_count(pool: &db::Pool) -> anyhow::Result<i64> {
    db::Query::per_backend(
        format!("SELECT count(*) FROM Jobs WHERE status = 'Done' AND {OURS}"),
        format!("SELECT count(*) FROM apalis.jobs WHERE status = 'Done' AND {OURS_PG}"),
    )
    .scalar(pool)
    .await
    .context("cannot count done jobs")
}

/// The state of each job of `ids` that exists, with the worker holding it (`lock_by`).
pub async fn states_of(
    pool: &db::Pool,
    ids: &[String],
) -> anyhow::Result<Vec<(JobState, Option<String>)>> {
    let rows: Vec<(String, Option<String>, bool, bool)> = db::Query::per_backend(
        format!(
            "SELECT status, lock_by, attempts < max_attempts, run_at > $2 FROM Jobs \
             WHERE id IN ({})",
            db::json_strings(Backend::Sqlite, 1)
        ),
        format!(
            "SELECT status, lock_by, attempts < max_attempts, run_at > to_timestamp($2) \
             FROM apalis.jobs WHERE id IN ({})",
            db::json_strings(Backend::Postgres, 1)
        ),
    )
    .bind(serde_json::to_string(ids).context("cannot encode job ids")?)
    .bind(chrono::Utc::now().timestamp())
    .fetch_all(pool)
    .await
    .context("cannot read jobs")?;
    rows.into_iter()
        .map(|(status, lock_by, left, later)| {
            Ok((
                JobState::decode(&status, lock_by.is_some(), left, later)?,
                lock_by,
            ))
        })
        .collect()
}

/// One unfinished job as the console's ジョブ page lists it.
#[derive(Debug, Clone)]
pub struct JobListing {
    pub job: JobView,
    /// The user it concerns: a slice's user, a meeting job's host, a sync's users (JSON).
    pub user: Option<String>,
}

/// Our jobs not done, by run time, `limit` from `offset` (the console's ジョブ page).
pub async fn unfinished_jobs(
    pool: &db::Pool,
    limit: i64,
    offset: i64,
) -> anyhow::Result<Vec<JobListing>> {
    type Row = (
        String,
        String,
        String,
        bool,
        i64,
        i64,
        i64,
        Option<String>,
        Option<String>,
    );
    let sql = |backend| {
        let field = |name| job_field(backend, "j.", name);
        // The meeting a meeting job names (`$.meeting_id`, a number).
        let meeting = match backend {
            Backend::Sqlite => field("meeting_id"),
            Backend::Postgres => format!("CAST({} AS BIGINT)", field("meeting_id")),
        };
        let ours = match backend {
            Backend::Sqlite => OURS.replace("job_type", "j.job_type"),
            Backend::Postgres => OURS_PG.replace("job_type", "j.job_type"),
        };
        format!(
            "SELECT {}, coalesce({}, m.host_user_id, {}) FROM {} j \
             LEFT JOIN meetings m ON m.id = {meeting} \
             WHERE {ours} AND j.status != 'Done' ORDER BY j.run_at, j.id LIMIT $1 OFFSET $2",
            job_columns(backend, "j."),
            field("user_id"),
            field("users"),
            jobs_table(backend),
        )
    };
    let rows: Vec<Row> = db::Query::per_backend(sql(Backend::Sqlite), sql(Backend::Postgres))
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await
        .context("cannot list jobs")?;
    let now = chrono::Utc::now().timestamp();
    rows.into_iter()
        .map(
            |(id, queue, status, held, attempts, max_attempts, run_at, last_result, user)| {
                Ok(JobListing {
                    job: job_view(
                        (
                            id,
                            queue,
                            status,
                            held,
                            attempts,
                            max_attempts,
                            run_at,
                            last_result,
                        ),
                        now,
                    )?,
                    user: user.map(compact_json_array),
                })
            },
        )
        .collect()
}

/// A JSON array as SQLite prints it (`["a","b"]`); PostgreSQL's jsonb prints `["a", "b"]`.
/// Any other text stays as it is.
fn compact_json_array(text: String) -> String {
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(array @ serde_json::Value::Array(_)) => array.to_string(),
        _ => text,
    }
}

/// The id of the job of `queue` pushed with `idempotency_key`, if any.
pub async fn job_with_idempotency_key(
    conn: &mut db::Conn,
    queue: &str,
    idempotency_key: &str,
) -> anyhow::Result<Option<String>> {
    db::Query::per_backend(
        "SELECT id FROM Jobs WHERE job_type = $1 AND idempotency_key = $2",
        "SELECT id FROM apalis.jobs WHERE job_type = $1 AND idempotency_key = $2",
    )
    .bind(queue)
    .bind(idempotency_key)
    .scalar_optional(conn)
    .await
    .context("cannot read back an idempotent job")
}

/// The earliest job of `queue` still waiting for a worker whose arguments have no `users`
/// (a full sync), if any.
pub async fn waiting_full_sync(conn: &mut db::Conn, queue: &str) -> anyhow::Result<Option<String>> {
    let sql = |backend| {
        format!(
            "SELECT id FROM {} WHERE job_type = $1 AND status = 'Pending' AND lock_by IS NULL \
             AND {} IS NULL ORDER BY run_at LIMIT 1",
            jobs_table(backend),
            job_field(backend, "", "users")
        )
    };
    db::Query::per_backend(sql(Backend::Sqlite), sql(Backend::Postgres))
        .bind(queue)
        .scalar_optional(conn)
        .await
        .context("cannot look for a queued sync")
}

/// `column` names a worker of the process `$1` (`<process>-<queue>`): a range from
/// `<process>-` up to `<process>.` ('.' follows '-'), no `LIKE`.
fn of_process(backend: Backend, column: &str) -> String {
    match backend {
        Backend::Sqlite => format!("{column} >= $1 || '-' AND {column} < $1 || '.'"),
        Backend::Postgres => {
            format!("{column} COLLATE \"C\" >= $1 || '-' AND {column} COLLATE \"C\" < $1 || '.'")
        }
    }
}

/// Puts the jobs the workers of process `process` hold (`Queued` or `Running`) back in the
/// queue, ready now and ahead of the jobs not started yet (priority 1: they were taken
/// first, and SPEC §9 wants a dead worker's jobs running again within 15 s, not after
/// the backlog), with `why` as their last result; returns how many.
///
/// The priority matters on PostgreSQL: apalis-postgres orders by priority and `run_at`
/// (whole seconds) only, and an updated row moves to the end of its table, so a rescued
/// job sat behind every job pushed in the same second (issue 11's benchmark: 50 s behind
/// a 400-create sync). apalis-sqlite breaks the tie by id, which put it first already.
pub async fn requeue_held_by(conn: &mut db::Conn, process: &str, why: &str) -> anyhow::Result<u64> {
    db::Query::per_backend(
        format!(
            "UPDATE Jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL, done_at = NULL, \
             priority = max(priority, 1), last_result = json_object('Err', $2) \
             WHERE status IN ('Queued', 'Running') AND {}",
            of_process(Backend::Sqlite, "lock_by")
        ),
        format!(
            "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL, \
             done_at = NULL, priority = GREATEST(priority, 1), \
             last_result = jsonb_build_object('Err', CAST($2 AS TEXT)) \
             WHERE status IN ('Queued', 'Running') AND {}",
            of_process(Backend::Postgres, "lock_by")
        ),
    )
    .bind(process)
    .bind(why)
    .execute(conn)
    .await
    .context("cannot re-enqueue a worker's jobs")
}

/// The ids of the jobs the workers of process `process` hold (`Queued` or `Running`).
pub async fn held_by(pool: &db::Pool, process: &str) -> anyhow::Result<Vec<String>> {
    db::Query::per_backend(
        format!(
            "SELECT id FROM Jobs WHERE status IN ('Queued', 'Running') AND {} ORDER BY id",
            of_process(Backend::Sqlite, "lock_by")
        ),
        format!(
            "SELECT id FROM apalis.jobs WHERE status IN ('Queued', 'Running') AND {} \
             ORDER BY id COLLATE \"C\"",
            of_process(Backend::Postgres, "lock_by")
        ),
    )
    .bind(process)
    .scalars(pool)
    .await
    .context("cannot read the jobs a worker holds")
}

/// The queue workers of process `process` (`Workers.id` = `<process>-<queue>`) whose last
/// heartbeat is more than `stale_after_seconds` old.
pub async fn silent_workers(
    pool: &db::Pool,
    process: &str,
    stale_after_seconds: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let heard_before = chrono::Utc::now()
        .timestamp()
        .saturating_sub(stale_after_seconds);
    db::Query::per_backend(
        format!(
            "SELECT id FROM Workers WHERE {} AND last_seen < $2 ORDER BY id",
            of_process(Backend::Sqlite, "id")
        ),
        format!(
            "SELECT id FROM apalis.workers WHERE {} AND last_seen < to_timestamp($2) \
             ORDER BY id COLLATE \"C\"",
            of_process(Backend::Postgres, "id")
        ),
    )
    .bind(process)
    .bind(heard_before)
    .scalars(pool)
    .await
}

/// The idempotency keys of the waits pushed while the integration is 無効 (a create,
/// update or delete deferred until the Zoom token passes a check) start with this; the
/// rest of each key is unique (a fresh ULID), so no wait is ever merged into another.
pub const DISABLED_WAIT_KEY: &str = "disabled-wait:";

/// A fresh idempotency key for one wait while the integration is 無効.
pub fn disabled_wait_key() -> String {
    format!("{DISABLED_WAIT_KEY}{}", ulid::Ulid::generate())
}

/// Makes every job still waiting because the integration was 無効 (pushed with a
/// [`disabled_wait_key`], not yet taken by a worker) due now; returns how many. Nothing else
/// changes: each runs once, through the same claim as any other run (R-ONCE).
pub async fn release_disabled_waits(pool: &db::Pool) -> anyhow::Result<u64> {
    // `disabled-wait:` up to `disabled-wait;` (';' follows ':'): a range, no `LIKE`.
    let end = format!("{};", DISABLED_WAIT_KEY.trim_end_matches(':'));
    db::Query::per_backend(
        format!(
            "UPDATE Jobs SET run_at = $3 WHERE {OURS} \
             AND idempotency_key >= $1 AND idempotency_key < $2 \
             AND status = 'Pending' AND lock_by IS NULL AND run_at > $3"
        ),
        format!(
            "UPDATE apalis.jobs SET run_at = to_timestamp($3) WHERE {OURS_PG} \
             AND idempotency_key COLLATE \"C\" >= $1 AND idempotency_key COLLATE \"C\" < $2 \
             AND status = 'Pending' AND lock_by IS NULL AND run_at > to_timestamp($3)"
        ),
    )
    .bind(DISABLED_WAIT_KEY)
    .bind(end)
    .bind(chrono::Utc::now().timestamp())
    .execute(pool)
    .await
    .context("cannot release the jobs deferred while the integration was disabled")
}

/// Deletes our jobs that will never run again (`Done`, `Killed`, `Failed` out of attempts)
/// finished before `cutoff`; returns how many.
pub async fn prune_finished(
    conn: &mut db::Conn,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<u64> {
    const FINISHED: &str = "(status IN ('Done', 'Killed') \
                            OR (status = 'Failed' AND attempts >= max_attempts))";
    db::Query::per_backend(
        format!(
            "DELETE FROM Jobs WHERE {OURS} AND done_at IS NOT NULL AND done_at < $1 \
             AND {FINISHED}"
        ),
        format!(
            "DELETE FROM apalis.jobs WHERE {OURS_PG} AND done_at IS NOT NULL \
             AND done_at < to_timestamp($1) AND {FINISHED}"
        ),
    )
    .bind(cutoff.timestamp())
    .execute(conn)
    .await
    .context("cannot prune finished jobs")
}

/// Whether `queue` holds an unfinished job whose payload names sync run `sync_id`
/// (`$.sync_id`) due before `before` (unix seconds): a job waiting for a later day does not
/// count.
pub async fn run_has_unfinished(
    pool: &db::Pool,
    queue: &str,
    sync_id: &str,
    before: i64,
) -> anyhow::Result<bool> {
    let sql = |backend| {
        let before = match backend {
            Backend::Sqlite => "$2",
            Backend::Postgres => "to_timestamp($2)",
        };
        format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE job_type = $1 \
             AND status IN ('Pending', 'Queued', 'Running') AND run_at < {before} \
             AND {} = $3)",
            jobs_table(backend),
            job_field(backend, "", "sync_id")
        )
    };
    db::Query::per_backend(sql(Backend::Sqlite), sql(Backend::Postgres))
        .bind(queue)
        .bind(before)
        .bind(sync_id)
        .scalar(pool)
        .await
        .context("cannot read a sync run's jobs")
}

/// Our jobs ready to run (`Pending`, held by no worker) whose run time is before `before`
/// (unix seconds): `jmz_jobs_overdue`.
pub async fn overdue_jobs(pool: &db::Pool, before: i64) -> anyhow::Result<i64> {
    db::Query::per_backend(
        format!(
            "SELECT count(*) FROM Jobs WHERE {OURS} AND status = 'Pending' AND lock_by IS NULL \
             AND run_at < $1"
        ),
        format!(
            "SELECT count(*) FROM apalis.jobs WHERE {OURS_PG} AND status = 'Pending' \
             AND lock_by IS NULL AND run_at < to_timestamp($1)"
        ),
    )
    .bind(before)
    .scalar(pool)
    .await
    .context("cannot count overdue jobs")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 9: one reading of apalis's statuses (`Queued` is running; a `Failed` job with
    /// attempts left waits; an unknown status is an error).
    #[test]
    fn statuses_decode_to_one_state_each() {
        // (status, held, attempts left, later, state)
        let cases = [
            ("Pending", false, true, false, Some(JobState::Pending)),
            ("Pending", false, true, true, Some(JobState::Scheduled)),
            ("Pending", true, true, false, Some(JobState::Running)),
            ("Queued", true, true, false, Some(JobState::Running)),
            ("Queued", true, true, true, Some(JobState::Running)),
            ("Running", true, true, false, Some(JobState::Running)),
            ("Done", true, true, false, Some(JobState::Done)),
            ("Failed", true, true, false, Some(JobState::Pending)),
            ("Failed", true, true, true, Some(JobState::Scheduled)),
            ("Failed", true, false, false, Some(JobState::Failed)),
            ("Killed", true, true, false, Some(JobState::Killed)),
            ("Paused", false, true, false, None),
        ];
        for (status, held, left, later, expected) in cases {
            let state = JobState::decode(status, held, left, later).ok();
            assert_eq!(
                state, expected,
                "{status} held={held} left={left} later={later}"
            );
        }
    }

    async fn store() -> (tempfile::TempDir, super::super::Store) {
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", folder.path().join("q.db").display());
        let store = super::super::Store::connect(&url)
            .await
            .expect("database opens");
        (folder, store)
    }

    async fn insert(
        pool: &sqlx::SqlitePool,
        id: &str,
        queue: &str,
        status: &str,
        lock_by: Option<&str>,
    ) {
        // A worker heard from an hour ago (`Jobs.lock_by` refers to `Workers.id`).
        sqlx::query(
            "INSERT OR IGNORE INTO Workers (id, worker_type, storage_name, last_seen) \
             VALUES (?, 'test', 'test', strftime('%s', 'now') - 3600)",
        )
        .bind(lock_by)
        .execute(pool)
        .await
        .expect("worker inserted");
        sqlx::query(
            "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, lock_by) \
             VALUES (x'7b7d', ?, ?, ?, 0, 5, ?)",
        )
        .bind(id)
        .bind(queue)
        .bind(status)
        .bind(lock_by)
        .execute(pool)
        .await
        .expect("job inserted");
    }

    /// The console shows a sync's users alike on both backends.
    #[test]
    fn a_json_array_of_users_reads_the_same_from_either_backend() {
        for text in [r#"["10001", "10002"]"#, r#"["10001","10002"]"#] {
            assert_eq!(compact_json_array(text.to_owned()), r#"["10001","10002"]"#);
        }
        assert_eq!(compact_json_array("10001".to_owned()), "10001");
    }

    /// Only the jobs of `process`'s own workers are held by it: not those of a process whose
    /// name merely starts alike (the same for its silent workers), and only our queues are
    /// counted.
    #[tokio::test]
    async fn a_process_holds_only_its_own_workers_jobs_and_counts_see_our_queues() {
        let (_folder, store) = store().await;
        let db = store.db();
        let pool = db.as_sqlite().expect("a SQLite store");
        insert(
            pool,
            "a",
            "jmz.fetch_slice",
            "Running",
            Some("jmz-1-x-fetch-slice"),
        )
        .await;
        insert(
            pool,
            "b",
            "jmz.fetch_slice",
            "Queued",
            Some("jmz-1-x-sync-window"),
        )
        .await;
        insert(
            pool,
            "c",
            "jmz.fetch_slice",
            "Running",
            Some("jmz-1-xy-fetch-slice"),
        )
        .await;
        insert(
            pool,
            "d",
            "jmz.fetch_slice",
            "Done",
            Some("jmz-1-x-fetch-slice"),
        )
        .await;
        insert(pool, "e", "other", "Pending", None).await;
        assert_eq!(held_by(db, "jmz-1-x").await.expect("held"), ["a", "b"]);
        assert_eq!(
            silent_workers(db, "jmz-1-x", 60).await.expect("workers"),
            ["jmz-1-x-fetch-slice", "jmz-1-x-sync-window"]
        );
        assert!(
            silent_workers(db, "jmz-1-x", 7200)
                .await
                .expect("workers")
                .is_empty()
        );
        let counts = count_jobs(db).await.expect("counts");
        assert_eq!(counts.in_state(JobState::Running), 3);
        assert_eq!(
            counts.in_state(JobState::Pending),
            0,
            "other queues are not ours"
        );
        let mut conn = db.acquire().await.expect("connection");
        let requeued = requeue_held_by(&mut conn, "jmz-1-x", "test")
            .await
            .expect("requeued");
        assert_eq!(requeued, 2);
        drop(conn);
        assert_eq!(
            queue_counts(db).await.expect("counts"),
            QueueCounts {
                pending: 2,
                running: 1,
                scheduled: 0,
                failed: 0
            }
        );
        store.close().await;
    }

    /// Issue 10 item 5: a passing check releases exactly the waits pushed while the
    /// integration was 無効 — not a backoff, not a job a worker holds, not another queue's.
    #[tokio::test]
    async fn only_the_waits_of_a_disabled_integration_are_released() {
        let (_folder, store) = store().await;
        let db = store.db();
        let pool = db.as_sqlite().expect("a SQLite store");
        let later = chrono::Utc::now().timestamp() + 3600;
        let cases = [
            ("a", "jmz.create_meeting", Some(disabled_wait_key()), None),
            ("b", "jmz.update_meeting", Some(disabled_wait_key()), None),
            ("c", "jmz.create_meeting", None, None),
            ("d", "jmz.create_meeting", Some("poll:1".to_owned()), None),
            ("e", "other", Some(disabled_wait_key()), None),
            (
                "f",
                "jmz.delete_meeting",
                Some(disabled_wait_key()),
                Some("w"),
            ),
        ];
        for (id, queue, key, lock_by) in &cases {
            sqlx::query(
                "INSERT OR IGNORE INTO Workers (id, worker_type, storage_name, last_seen) \
                 VALUES ('w', 'test', 'test', strftime('%s', 'now'))",
            )
            .execute(pool)
            .await
            .expect("worker");
            sqlx::query(
                "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, \
                 idempotency_key, lock_by) VALUES (x'7b7d', ?, ?, 'Pending', 0, 5, ?, ?, ?)",
            )
            .bind(id)
            .bind(queue)
            .bind(later)
            .bind(key)
            .bind(lock_by)
            .execute(pool)
            .await
            .expect("job inserted");
        }
        assert_eq!(release_disabled_waits(db).await.expect("released"), 2);
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM Jobs WHERE run_at <= strftime('%s', 'now') ORDER BY id",
        )
        .fetch_all(pool)
        .await
        .expect("due");
        assert_eq!(due, ["a", "b"]);
        store.close().await;
    }

    /// Issue 5: on every pooled connection of a new database, apalis's lock query looks the
    /// job ids up (planner hints) instead of reading every pending job through the status
    /// index.
    #[tokio::test]
    async fn apalis_lock_query_looks_up_job_ids() {
        let (_folder, store) = store().await;
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut conn = store
                .db()
                .as_sqlite()
                .expect("a SQLite store")
                .acquire()
                .await
                .expect("connection");
            let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
                "EXPLAIN QUERY PLAN UPDATE Jobs SET status = 'Running', lock_by = ?2 \
                 WHERE id IN (SELECT value FROM json_each(?1)) \
                 AND (status = 'Queued' OR status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))",
            )
            .bind("[]")
            .bind("worker")
            .fetch_all(&mut *conn)
            .await
            .expect("plan");
            let steps: Vec<&str> = plan.iter().map(|step| step.3.as_str()).collect();
            assert!(
                steps
                    .iter()
                    .any(|s| s.contains("sqlite_autoindex_Jobs_1 (id=?)")),
                "{steps:?}"
            );
            held.push(conn);
        }
    }

    /// A job row in apalis-postgres's table: `run_at` and `done_at` in Unix seconds.
    struct PgJob<'a> {
        id: &'a str,
        queue: &'a str,
        status: &'a str,
        lock_by: Option<&'a str>,
        job: &'a str,
        run_at: i64,
        key: Option<String>,
        done_at: Option<i64>,
    }

    async fn pg_insert(pool: &sqlx::PgPool, job: PgJob<'_>) {
        sqlx::query(
            "INSERT INTO apalis.jobs (job, id, job_type, status, attempts, max_attempts, \
             lock_by, run_at, idempotency_key, done_at) VALUES (convert_to($1, 'UTF8'), $2, $3, \
             $4, 0, 5, $5, to_timestamp($6), $7, to_timestamp($8))",
        )
        .bind(job.job)
        .bind(job.id)
        .bind(job.queue)
        .bind(job.status)
        .bind(job.lock_by)
        .bind(job.run_at)
        .bind(job.key)
        .bind(job.done_at)
        .execute(pool)
        .await
        .expect("job inserted");
    }

    /// Issue 11: every statement of this module (and `jobs::push`, with its wake) runs on
    /// PostgreSQL 15 against apalis-postgres's own tables and reads what the SQLite tests
    /// read, in a database of its own created on the server `JMZ_TEST_PG_URL` names.
    #[tokio::test]
    async fn every_statement_runs_on_postgres() {
        use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
        let Ok(url) = std::env::var("JMZ_TEST_PG_URL") else {
            println!("skipped: JMZ_TEST_PG_URL is not set (a PostgreSQL 15 server to test on)");
            return;
        };
        let server: PgConnectOptions = url.parse().expect("a PostgreSQL URL");
        let name = format!("jmz_queue_{}", ulid::Ulid::generate()).to_lowercase();
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(server.clone())
            .await
            .expect("server");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("database created");
        let pg = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(server.clone().database(&name))
            .await
            .expect("database opens");
        apalis_postgres::PostgresStorage::<()>::migrations()
            .run(&pg)
            .await
            .expect("apalis-postgres's migrations");
        sqlx::raw_sql("CREATE TABLE meetings (id BIGINT PRIMARY KEY, host_user_id TEXT)")
            .execute(&pg)
            .await
            .expect("meetings");
        sqlx::raw_sql(
            "INSERT INTO meetings VALUES (7, 'host-7'); \
             INSERT INTO apalis.workers (id, worker_type, storage_name, last_seen) VALUES \
             ('jmz-1-x-fetch-slice', 't', 't', now() - interval '1 hour'), \
             ('jmz-1-x-sync-window', 't', 't', now() - interval '1 hour'), \
             ('jmz-1-xy-fetch-slice', 't', 't', now() - interval '1 hour')",
        )
        .execute(&pg)
        .await
        .expect("workers");
        let db = db::Pool::Postgres(pg.clone());
        let now = chrono::Utc::now().timestamp();
        let job = |id, queue, status, lock_by, job| PgJob {
            id,
            queue,
            status,
            lock_by,
            job,
            run_at: now - 60,
            key: None,
            done_at: None,
        };
        for row in [
            job(
                "a",
                "jmz.fetch_slice",
                "Running",
                Some("jmz-1-x-fetch-slice"),
                r#"{"sync_id":"s1","user_id":"u1"}"#,
            ),
            job(
                "b",
                "jmz.fetch_slice",
                "Queued",
                Some("jmz-1-x-sync-window"),
                "{}",
            ),
            job(
                "c",
                "jmz.fetch_slice",
                "Running",
                Some("jmz-1-xy-fetch-slice"),
                "{}",
            ),
            PgJob {
                done_at: Some(now - 10 * 86_400),
                ..job(
                    "d",
                    "jmz.fetch_slice",
                    "Done",
                    Some("jmz-1-x-fetch-slice"),
                    "{}",
                )
            },
            job("e", "other", "Pending", None, "{}"),
            PgJob {
                run_at: now + 3600,
                key: Some(disabled_wait_key()),
                ..job(
                    "f",
                    "jmz.create_meeting",
                    "Pending",
                    None,
                    r#"{"meeting_id":7}"#,
                )
            },
            PgJob {
                run_at: now + 3600,
                key: Some("poll:1".to_owned()),
                ..job("g", "jmz.create_meeting", "Pending", None, "{}")
            },
        ] {
            pg_insert(&pg, row).await;
        }

        assert_eq!(held_by(&db, "jmz-1-x").await.expect("held"), ["a", "b"]);
        assert_eq!(
            silent_workers(&db, "jmz-1-x", 60).await.expect("workers"),
            ["jmz-1-x-fetch-slice", "jmz-1-x-sync-window"]
        );
        assert!(
            silent_workers(&db, "jmz-1-x", 7200)
                .await
                .expect("workers")
                .is_empty()
        );
        let counts = count_jobs(&db).await.expect("counts");
        assert_eq!(counts.in_state(JobState::Running), 3);
        assert_eq!(counts.in_state(JobState::Scheduled), 2);
        assert_eq!(counts.in_state(JobState::Pending), 0, "other queues");
        let a = job_by_id(&db, "a").await;
        assert_eq!(
            (
                a.queue.as_str(),
                a.state,
                a.attempts,
                a.max_attempts,
                a.run_at
            ),
            ("jmz.fetch_slice", JobState::Running, 0, 5, now - 60)
        );
        assert!(super::job(&db, "zz").await.expect("job").is_none());
        assert_eq!(unfinished_in(&db, "jmz.fetch_slice").await.expect("n"), 3);
        assert_eq!(done_count(&db).await.expect("done"), 1);
        let states = states_of(&db, &["a".to_owned(), "d".to_owned(), "zz".to_owned()])
            .await
            .expect("states");
        assert_eq!(states.len(), 2);
        let listed = unfinished_jobs(&db, 10, 0).await.expect("listing");
        let users: Vec<(&str, Option<&str>)> = listed
            .iter()
            .map(|l| (l.job.id.as_str(), l.user.as_deref()))
            .collect();
        assert_eq!(
            users,
            [
                ("a", Some("u1")),
                ("b", None),
                ("c", None),
                ("f", Some("host-7")),
                ("g", None)
            ]
        );
        assert!(
            run_has_unfinished(&db, "jmz.fetch_slice", "s1", now)
                .await
                .expect("run")
        );
        assert!(
            !run_has_unfinished(&db, "jmz.fetch_slice", "s2", now)
                .await
                .expect("run")
        );
        assert_eq!(overdue_jobs(&db, now + 7200).await.expect("overdue"), 2);
        assert_eq!(overdue_jobs(&db, now).await.expect("overdue"), 0);

        let mut conn = db.acquire().await.expect("connection");
        assert_eq!(
            requeue_held_by(&mut conn, "jmz-1-x", "test")
                .await
                .expect("requeued"),
            2
        );
        assert_eq!(
            job_by_id(&db, "a").await.last_result.as_deref(),
            Some(r#"{"Err": "test"}"#)
        );
        assert_eq!(
            prune_finished(&mut conn, chrono::Utc::now() - chrono::Duration::days(7))
                .await
                .expect("pruned"),
            1
        );
        drop(conn);
        assert_eq!(release_disabled_waits(&db).await.expect("released"), 1);
        assert_eq!(job_by_id(&db, "f").await.state, JobState::Pending);
        assert_eq!(job_by_id(&db, "g").await.state, JobState::Scheduled);
        assert_eq!(
            queue_counts(&db).await.expect("counts"),
            QueueCounts {
                pending: 3,
                running: 1,
                scheduled: 1,
                failed: 0
            }
        );

        // A push due now: its notification (apalis-postgres's own payload, once) comes at
        // the commit, not before; a second push of the same key gives the first id.
        let mut listener = PgListener::connect_with(&pg).await.expect("listener");
        listener
            .listen("apalis::job::insert")
            .await
            .expect("listening");
        let mut conn = db.acquire().await.expect("connection");
        conn.raw("BEGIN").await.expect("begin");
        let sync = crate::jobs::SyncWindow {
            sync_id: "s9".to_owned(),
            users: None,
            request_id: None,
        };
        let options = || crate::jobs::PushOptions {
            idempotency_key: Some("k".to_owned()),
            ..crate::jobs::PushOptions::default()
        };
        let id = crate::jobs::push(&mut conn, &sync, options())
            .await
            .expect("pushed");
        let again = crate::jobs::push(&mut conn, &sync, options())
            .await
            .expect("pushed again");
        assert_eq!(again, id);
        let quiet = std::time::Duration::from_millis(300);
        assert!(
            tokio::time::timeout(quiet, listener.recv()).await.is_err(),
            "notified before the commit"
        );
        assert_eq!(
            waiting_full_sync(&mut conn, "jmz.sync_window")
                .await
                .expect("waiting"),
            Some(id.clone())
        );
        assert_eq!(
            job_with_idempotency_key(&mut conn, "jmz.sync_window", "k")
                .await
                .expect("key"),
            Some(id.clone())
        );
        conn.raw("COMMIT").await.expect("commit");
        let notified = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
            .await
            .expect("notified at the commit")
            .expect("notification");
        assert!(notified.payload().contains(&id), "{}", notified.payload());
        assert!(
            tokio::time::timeout(quiet, listener.recv()).await.is_err(),
            "notified twice"
        );
        let pushed = job_by_id(&db, &id).await;
        assert_eq!((pushed.state, pushed.max_attempts), (JobState::Pending, 5));
        let args: Vec<u8> = sqlx::query_scalar("SELECT job FROM apalis.jobs WHERE id = $1")
            .bind(&id)
            .fetch_one(&pg)
            .await
            .expect("args");
        assert_eq!(
            serde_json::from_slice::<crate::jobs::SyncWindow>(&args).expect("JSON args"),
            sync
        );
        drop(conn);
        drop(listener);
        db.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("database dropped");
    }

    async fn job_by_id(db: &db::Pool, id: &str) -> JobView {
        super::job(db, id)
            .await
            .expect("job")
            .expect("the job exists")
    }
}
