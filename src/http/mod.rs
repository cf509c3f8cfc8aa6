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
//!
//! Limits on clients (issue 13): a declared body over `server.body_limit_bytes` is refused
//! (413) before it is read and a body must arrive within [`body::BODY_TIMEOUT`]; a head
//! within `HEAD_TIMEOUT`; connections are capped per worker under the open-file limit,
//! which is raised to the hard limit at start ([`raise_open_file_limit`]).
//!
//! What is not SPEC §5 JSON: a request whose head actix-http's HTTP/1 codec cannot parse
//! never reaches the application, and no hook of actix-web 4 / actix-http 3 (`App`,
//! middleware, `HttpServer`, `HttpServiceBuilder`) sees it: the dispatcher writes its own
//! empty-bodied answer and closes the connection. That is a 400 for a repeated
//! `Content-Length`, `Content-Length` with `Transfer-Encoding`, any other malformed header,
//! or a URI over 65,534 bytes (the `http` crate's limit: a 100k-character URL); and a 431
//! for a head over 128 KiB. Such a request is refused (4xx, no job, nothing logged by the
//! access log), only without the JSON body (`tests/it/http_edges.rs` pins this).

pub mod access;
pub mod admin;
pub mod auth;
pub(crate) mod body;
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

use std::{future::Future, net::TcpListener, time::Duration};

use actix_web::{App, HttpServer, dev::Server, middleware, web};
use anyhow::Context;

use crate::jobs::LiveEngine;

pub use access::RequestId;
pub use errors::ApiError;
pub use state::AppState;

/// The HTTP workers (threads) of the server.
const WORKERS: usize = 2;

/// At most this many connections open at once per worker (so twice this in all): well under
/// the open-file limit this process gets ([`raise_open_file_limit`]), with room left for the
/// database and the clients. Past it the server stops accepting until one
/// closes, instead of running out of file descriptors and answering nobody.
const MAX_CONNECTIONS_PER_WORKER: usize = 512;

/// File descriptors kept for everything but the server's connections (database files,
/// logs, outgoing calls).
const RESERVED_FILES: u64 = 256;

/// Connection handshakes each worker runs at once (actix counts TLS handshakes; the server
/// speaks plain HTTP, so this holds for the day it terminates TLS itself).
const MAX_CONNECTION_RATE: usize = 256;

/// How long a client may take to send a request's head (the body's limit is
/// [`body::BODY_TIMEOUT`]).
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Raises this process's soft open-file limit to its hard limit, and returns the soft limit
/// now in force (a service holding many connections would otherwise stop at the usual
/// 1,024). Failing to raise it is only logged: the connection cap follows the limit.
pub fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-file limit; keeping the current one");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// The connections each of `workers` may hold under an open-file limit of `files`.
fn connections_per_worker(files: u64, workers: usize) -> usize {
    let spare = files.saturating_sub(RESERVED_FILES) / (workers.max(1) as u64);
    usize::try_from(spare)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_CONNECTIONS_PER_WORKER)
}

/// A bound, not yet running HTTP server.
pub struct Application {
    port: u16,
    server: Server,
    committer: group_commit::Committer,
}

impl Application {
    /// Binds `server.listen` (port 0 picks a free port).
    pub fn build(engine: LiveEngine) -> anyhow::Result<Application> {
        let address = engine.file().server.listen.clone();
        let listener = TcpListener::bind(&address)
            .with_context(|| format!("cannot listen on {address} (server.listen)"))?;
        Application::build_with_listener(engine, listener)
    }

    /// Serves on an already bound listener.
    pub fn build_with_listener(
        engine: LiveEngine,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        let port = listener.local_addr()?.port();
        let max_connections = connections_per_worker(raise_open_file_limit(), WORKERS);
        if engine.file().server.dashboard_listen.is_some() {
            tracing::warn!(
                "server.dashboard_listen is ignored: the jobs dashboard was replaced by the console's ジョブ page (/admin/jobs)"
            );
        }
        let (deliveries, committer) = group_commit::channel(engine.store().clone());
        let state = web::Data::new(AppState::new(&engine, deliveries));
        let session_key = admin::SessionKey::derive(engine.file())?;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(access::log_request))
                .configure(|config| routing::configure(config, &session_key))
        })
        .workers(WORKERS)
        .max_connections(max_connections)
        .max_connection_rate(MAX_CONNECTION_RATE)
        .client_request_timeout(HEAD_TIMEOUT)
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            server,
            committer,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves, then stops gracefully: requests in flight are
    /// answered, then the webhook committer commits what is still queued and ends.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let (stop_committer, committer_stop) = tokio::sync::oneshot::channel::<()>();
        let committer = tokio::spawn(self.committer.run(async move {
            // Sent, or dropped: either way the server has stopped.
            let _ = committer_stop.await;
        }));
        let stopper = tokio::spawn(async move {
            shutdown.await;
            handle.stop(true).await;
        });
        let result = self.server.await.context("the HTTP server failed");
        stopper.abort();
        let _ = stop_committer.send(());
        let committed = committer.await.context("the webhook committer failed");
        result?;
        committed
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_CONNECTIONS_PER_WORKER, connections_per_worker, raise_open_file_limit};

    /// Issue 13: connections are capped under the open-file limit, whatever it is.
    #[test]
    fn connections_stay_under_the_open_file_limit() {
        assert_eq!(connections_per_worker(1024, 2), 384);
        assert_eq!(
            connections_per_worker(1 << 20, 2),
            MAX_CONNECTIONS_PER_WORKER
        );
        assert_eq!(connections_per_worker(100, 2), 1);
    }

    /// Issue 13: at start the soft open-file limit is raised to the hard one.
    #[test]
    fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
        let soft = raise_open_file_limit();
        let (now, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("limits");
        assert_eq!(soft, now);
        assert_eq!(now, hard);
    }
}
