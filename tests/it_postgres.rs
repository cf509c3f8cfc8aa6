//! The integration suite on PostgreSQL (SPEC §9, issue 11 item 6): the modules of
//! `tests/it` that exercise the service through its store, each test on a database of its
//! own on the tests' throw-away PostgreSQL (`tests/support/postgres.rs`). `helpers::
//! on_postgres` tells the two halves apart (by this crate's name).
//!
//! The process-level modules (`binaries`, `cli_verdicts`, `exit_codes`, `live_settings`) run
//! the real binaries on a configuration naming the test's PostgreSQL database.
//!
//! Left out, because what they test is SQLite's own: `backup` (`VACUUM INTO`; PostgreSQL
//! deployments use pg_dump), `storage_faults` (a full, read-only or removed database file;
//! PostgreSQL's outage has its own test), `init` (it writes the starter file, whose database
//! is a SQLite file), `pg_*`/`migrate` (already PostgreSQL's, or from SQLite to it), and
//! `queue_counts` (it writes apalis-sqlite's rows by hand; `store::queue`'s own test covers
//! every queue statement on PostgreSQL). `tests/pacing.rs` runs on both backends alone.

#[path = "it/alert_hooks.rs"]
mod alert_hooks;
#[path = "it/alerts.rs"]
mod alerts;
#[path = "it/binaries.rs"]
mod binaries;
#[path = "it/cli_verdicts.rs"]
mod cli_verdicts;
#[path = "it/console.rs"]
mod console;
#[path = "it/console_alerts.rs"]
mod console_alerts;
#[path = "it/exit_codes.rs"]
mod exit_codes;
#[path = "it/faults.rs"]
mod faults;
#[path = "it/helpers.rs"]
mod helpers;
#[path = "it/http_api.rs"]
mod http_api;
#[path = "it/http_edges.rs"]
mod http_edges;
#[path = "it/live_settings.rs"]
mod live_settings;
#[path = "it/operator.rs"]
mod operator;
#[path = "support/postgres.rs"]
mod postgres;
#[path = "it/sync_rules.rs"]
mod sync_rules;
#[path = "it/webhooks.rs"]
mod webhooks;
