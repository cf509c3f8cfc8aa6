//! The HTTP receiver (SPEC §5): health, the manual trigger and the read APIs.
//!
//! One module per resource (`health`, `metrics`, `sync`, `status`, `meetings`, `jobs`,
//! `webhooks`, `openapi`), the route table in `routing`, the body helpers in `body`, admin
//! authentication as the `auth::Admin` extractor, the request id and access log in `access`.
//!
//! Invariant: no handler calls J-MOTTO or Zoom — by type: their [`AppState`] holds the
//! store, the settings, the metrics and the enqueue API, not the clients. A trigger writes
//! its state and enqueues its job in one transaction, and answers; webhook deliveries share their transaction with the
//! other deliveries committed at the same moment ([`group_commit`]), and are answered only
//! after it has committed.

pub mod access;
pub mod auth;
pub(crate) mod body;
mod dashboard;
pub mod errors;
pub mod group_commit;
pub mod health;
pub mod jobs;
pub mod meetings;
pub mod metrics;
pub mod openapi;
mod routing;
pub mod state;
pub mod status;
pub mod sync;
pub mod webhooks;

use std::{future::Future, net::TcpListener, sync::Arc};

use actix_web::{App, HttpServer, dev::Server, middleware, web};
use anyhow::Context;

use crate::jobs::Engine;

pub use access::RequestId;
pub use errors::ApiError;
pub use state::AppState;

/// A bound, not yet running HTTP server (and the dashboard's, when configured).
pub struct Application {
    port: u16,
    server: Server,
    dashboard: Option<(u16, Server)>,
    committer: group_commit::Committer,
}

impl Application {
    /// Binds `server.listen` (port 0 picks a free port).
    pub fn build(engine: Arc<Engine>) -> anyhow::Result<Application> {
        let address = engine.settings.server.listen.clone();
        let listener = TcpListener::bind(&address)
            .with_context(|| format!("cannot listen on {address} (server.listen)"))?;
        Application::build_with_listener(engine, listener)
    }

    /// Serves on an already bound listener.
    pub fn build_with_listener(
        engine: Arc<Engine>,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        let port = listener.local_addr()?.port();
        let dashboard = match &engine.settings.server.dashboard_listen {
            None => None,
            Some(address) => {
                let listener = TcpListener::bind(address).with_context(|| {
                    format!("cannot listen on {address} (server.dashboard_listen)")
                })?;
                let port = listener.local_addr()?.port();
                let server = dashboard::build(
                    engine.store.pool().clone(),
                    engine.settings.server.admin_token.clone(),
                    listener,
                )?;
                Some((port, server))
            }
        };
        let (deliveries, committer) = group_commit::channel(engine.store.clone());
        let state = web::Data::new(AppState::new(&engine, deliveries));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(access::log_request))
                .configure(routing::configure)
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            server,
            dashboard,
            committer,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The dashboard's bound port, when `server.dashboard_listen` is set.
    pub fn dashboard_port(&self) -> Option<u16> {
        self.dashboard.as_ref().map(|(port, _)| *port)
    }

    /// Serves until `shutdown` resolves, then stops gracefully: requests in flight are
    /// answered, then the webhook committer commits what is still queued and ends.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let dashboard = self.dashboard.map(|(_, server)| server);
        let dashboard_handle = dashboard.as_ref().map(Server::handle);
        let (stop_committer, committer_stop) = tokio::sync::oneshot::channel::<()>();
        let committer = tokio::spawn(self.committer.run(async move {
            // Sent, or dropped: either way the server has stopped.
            let _ = committer_stop.await;
        }));
        let stopper = tokio::spawn(async move {
            shutdown.await;
            if let Some(handle) = dashboard_handle {
                handle.stop(true).await;
            }
            handle.stop(true).await;
        });
        let dashboard_task = dashboard.map(tokio::spawn);
        let result = self.server.await.context("the HTTP server failed");
        stopper.abort();
        if let Some(task) = dashboard_task {
            task.abort();
        }
        let _ = stop_committer.send(());
        let committed = committer.await.context("the webhook committer failed");
        result?;
        committed
    }
}
