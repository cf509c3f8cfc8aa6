//! `jmotto-zoom-worker --config F`: runs the jobs; any number may share one database.

use std::process::ExitCode;

use jmotto_zoom::{cli, jobs::worker::Worker};

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::ConfigArg::parse_for("jmotto-zoom-worker", "The jmotto-zoom job worker");
    let result = async {
        Worker::build(cli::start_service(&args).await?)
            .run_until_stopped(cli::shutdown_signal())
            .await
    }
    .await;
    cli::report(result.map(|()| ExitCode::SUCCESS))
}
