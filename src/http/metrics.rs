//! `GET /metrics`.

use actix_web::{HttpResponse, web};

use super::{errors::ApiError, state::AppState};

/// Prometheus text: jobs by queue and state, meetings by state, Zoom and J-MOTTO calls by
/// endpoint and outcome, Zoom 429s by kind, webhook verifications by outcome, and the time
/// from trigger to meeting. Bind the server privately: it has no auth.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let checks = crate::store::receiver::checks(state.store.db()).await?;
    let enabled = crate::checks::disabled_reasons(&state.settings, &checks).is_empty();
    let text = state.metrics.render(&state.store, enabled).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}
