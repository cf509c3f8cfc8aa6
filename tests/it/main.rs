//! The one integration-test binary: the whole service against the replay servers.

mod alert_hooks;
mod alerts;
mod backup;
mod binaries;
mod cli_verdicts;
mod console;
mod console_alerts;
mod exit_codes;
mod faults;
mod helpers;
mod http_api;
mod http_edges;
mod init;
mod live_settings;
mod migrate;
mod operator;
mod pg_harness;
mod pg_outage;
mod pg_store;
mod queue_counts;
mod storage_faults;
mod sync_rules;
mod webhooks;

#[path = "../support/postgres.rs"]
mod postgres;
