//! `GET /healthz` and `GET /readyz`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::state::AppState;

/// `{"status"}`, with `reason` when not ready.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HealthView {
    /// `ok`, `ready` or `not_ready`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = HealthView)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthView {
        status: "ok".to_owned(),
        reason: None,
    })
}

/// What `/readyz` says when the database does not answer; the error chain goes to the log.
pub const NOT_READY_REASON: &str =
    "the database does not answer, is not migrated or cannot be written; see the server's log";

/// Readiness: the database answers and is migrated, its path still names the file the
/// server opened, and a write commits (`Store::is_ready`): a removed, read-only, full or
/// immutable database answers 503, as the webhooks it would refuse do.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = HealthView),
        (status = 503, description = "Not ready, with the reason", body = HealthView),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    readiness(state.store.is_ready().await)
}

/// The answer to a readiness check's result: a 503 says a short sentence, and the error
/// chain goes to the log only.
fn readiness(ready: anyhow::Result<()>) -> HttpResponse {
    match ready {
        Ok(()) => HttpResponse::Ok().json(HealthView {
            status: "ready".to_owned(),
            reason: None,
        }),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "not ready");
            HttpResponse::ServiceUnavailable().json(HealthView {
                status: "not_ready".to_owned(),
                reason: Some(NOT_READY_REASON.to_owned()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody;

    use super::*;

    /// SPEC §5 (a 5xx says nothing internal): not ready answers 503 with the short sentence,
    /// not the error chain.
    #[test]
    fn not_ready_hides_the_error_chain() {
        let error = anyhow::anyhow!("no such table: _sqlx_migrations at /srv/secret/path.db")
            .context("cannot check the database");
        let response = readiness(Err(error));
        assert_eq!(response.status().as_u16(), 503);
        let body = response.into_body().try_into_bytes().expect("a whole body");
        let view: HealthView = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(view.status, "not_ready");
        assert_eq!(view.reason.as_deref(), Some(NOT_READY_REASON));
    }
}
