//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`). Secrets never reach
//! a log line: they are `SecretString` from the moment they are read, and no request or
//! response body is logged.

use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber once; later calls do nothing.
pub fn init(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
