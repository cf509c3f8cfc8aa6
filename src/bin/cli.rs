//! `jmotto-zoom`: demo, sync, run.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    jmotto_zoom::cli::main().await
}
