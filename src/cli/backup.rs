//! `jmotto-zoom backup --to FILE`: an online, consistent copy of the live SQLite database
//! (issue 10). Restore: stop the service, copy the file back over the database, start it.

use std::{path::Path, process::ExitCode};

use anyhow::Context;

use super::ConfigFile;
use crate::store::{Store, connect_options};

pub use crate::store::NOT_SQLITE;

/// Copies the database `config`'s `[database] url` names (only that key is read, with its
/// `JMZ__DATABASE__URL` override) into the new file `to`.
pub async fn run(config: &Path, to: &Path) -> anyhow::Result<ExitCode> {
    let file = ConfigFile::read(config)?;
    let url = match file.key("database", "url") {
        Some(url) => url,
        // Not set: the default, as the whole configuration reads it.
        None => crate::config::Settings::load(config)?.database.url,
    };
    backup(&url, to).await?;
    say!("backup written to {}", to.display());
    Ok(ExitCode::SUCCESS)
}

/// Copies the SQLite database at `url` into the new file `to` while the service may run.
pub async fn backup(url: &str, to: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(!crate::config::is_postgres_url(url), NOT_SQLITE);
    let options = connect_options(url).context(NOT_SQLITE)?;
    let database = options.get_filename();
    anyhow::ensure!(
        database.is_file(),
        "there is no database at {} (database.url {url:?})",
        database.display()
    );
    let store = Store::connect(url).await?;
    let copied = store.backup_to(to).await;
    store.close().await;
    copied
}
