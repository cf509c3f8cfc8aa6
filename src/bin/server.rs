//! `jmotto-zoom-server --config F`: the HTTP receiver.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use jmotto_zoom::{cli, config::Settings, http::Application};

#[derive(Parser)]
#[command(
    name = "jmotto-zoom-server",
    version,
    about = "The jmotto-zoom HTTP receiver"
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
        let application = Application::build(engine)?;
        tracing::info!(port = application.port(), "listening");
        application.run_until_stopped(cli::shutdown_signal()).await
    }
    .await;
    cli::report(result.map(|()| ExitCode::SUCCESS))
}
