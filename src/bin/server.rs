//! `jmotto-zoom-server --config F`: the HTTP receiver.

use std::process::ExitCode;

use jmotto_zoom::{cli, http::Application};

#[tokio::main]
async fn main() -> ExitCode {
    let args = cli::ConfigArg::parse_for("jmotto-zoom-server", "The jmotto-zoom HTTP receiver");
    let result = async {
        let application = Application::build(cli::start_service(&args).await?)?;
        tracing::info!(port = application.port(), "listening");
        application.run_until_stopped(cli::shutdown_signal()).await
    }
    .await;
    cli::report(result.map(|()| ExitCode::SUCCESS))
}
