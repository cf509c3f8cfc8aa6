//! `GET /api/openapi.json`: the OpenAPI 3 description, generated from the handlers'
//! annotations and the response types themselves, so it cannot drift from the code.

use actix_web::HttpResponse;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{errors, health, jobs, meetings, metrics, status, sync, webhooks};

/// The whole HTTP interface of SPEC §5.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "jmotto-zoom",
        description = "J-MOTTO Groupware schedule entries become Zoom meetings: the receiver's HTTP interface."
    ),
    paths(
        health::healthz,
        health::readyz,
        metrics::metrics,
        sync::trigger_sync,
        status::status,
        meetings::meetings,
        jobs::job,
        webhooks::receive,
        serve,
    ),
    components(schemas(errors::ErrorBody, errors::ErrorDetail, meetings::MeetingStateName)),
    modifiers(&AdminToken),
    tags(
        (name = "admin", description = "Bearer `server.admin_token`"),
        (name = "webhooks", description = "Standard Webhooks signature with `server.webhook_secret`"),
        (name = "operations", description = "No auth: bind the server privately"),
    )
)]
pub struct ApiDoc;

struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "admin_token",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("server.admin_token"))
                        .build(),
                ),
            );
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3 description of this interface", content_type = "application/json")))]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
