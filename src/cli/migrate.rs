//! `jmotto-zoom migrate --config F --to postgres://…` (SPEC §9): a SQLite deployment's
//! state copied into an empty PostgreSQL database (`store::copy`). Stop the service first:
//! a job a running worker finishes after the copy is finished twice, once on each side.

use std::{path::Path, process::ExitCode};

use super::ConfigFile;
use crate::store::{copy, redact_url};

/// Copies the database `config`'s `[database] url` names (only that key is read, with its
/// `JMZ__DATABASE__URL` override) into the empty PostgreSQL database `to`, and says what it
/// copied and what to change next.
pub async fn run(config: &Path, to: &str) -> anyhow::Result<ExitCode> {
    let file = ConfigFile::read(config)?;
    let from = match file.key("database", "url") {
        Some(url) => url,
        None => crate::config::Settings::load(config)?.database.url,
    };
    anyhow::ensure!(
        from.starts_with("sqlite:"),
        "the configuration's database is not SQLite: migrate copies a SQLite deployment into PostgreSQL"
    );
    let copied = copy::sqlite_to_postgres(&from, to).await?;
    let shown = redact_url(to);
    for (table, rows) in &copied.tables {
        say!("  {table:<24} {rows:>8} rows");
    }
    say!(
        "  {:<24} {:>8} (pending and scheduled)",
        "jobs",
        copied.jobs
    );
    say!("copied {from} into {shown}; the source is unchanged");
    say!(
        "next: set database.url to the PostgreSQL URL in {}, then start the service",
        config.display()
    );
    Ok(ExitCode::SUCCESS)
}
