//! `jmotto-zoom-worker --config F`: runs the jobs; any number may share one database.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use jmotto_zoom::{cli, config::Settings, jobs::worker::Worker};

#[derive(Parser)]
#[command(
    name = "jmotto-zoom-worker",
    version,
    about = "The jmotto-zoom job worker"
)]
struct Args {
    #[arg(long, default_value = "jmotto-zoom.toml")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = async {
        let settings = Settings::load(&args.config)?;
        jmotto_zoom::telemetry::init("info", settings.log.format);
        let engine = cli::connect(settings).await?;
        Worker::build(engine)
            .run_until_stopped(cli::shutdown_signal())
            .await
    }
    .await;
    cli::report(result.map(|()| ExitCode::SUCCESS))
}
