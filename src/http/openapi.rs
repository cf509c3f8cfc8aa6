//! `GET /api/openapi.json`: the OpenAPI 3 description, generated from the handlers'
//! annotations and the response types themselves, so it cannot drift from the code. It is
//! exactly as strict as the server: where the server accepts only the configured user ids,
//! the served document lists this configuration's ([`document`]).

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{errors, health, jobs, meetings, metrics, state::AppState, status, sync, webhooks};

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
    components(schemas(
        errors::ErrorBody,
        errors::ErrorDetail,
        meetings::MeetingStateName,
        meetings::Bound
    )),
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
pub async fn serve(state: web::Data<AppState>) -> Result<HttpResponse, errors::ApiError> {
    let settings = state.live.current().await?;
    Ok(HttpResponse::Ok().json(document(&settings)))
}

/// [`ApiDoc`] with this configuration's user ids where the server accepts only those: the
/// `user` filter of `GET /api/v1/meetings` takes a configured id (exactly), the trigger's
/// `users` and a notification's `data.user_ids` enabled ids (white space around them
/// ignored, as [`crate::domain::GroupwareUserId::parse`] does).
pub fn document(settings: &crate::config::Settings) -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    let configured: Vec<&str> = settings
        .users
        .iter()
        .map(|u| u.groupware_id.as_str())
        .collect();
    let enabled = json!({
        "type": "string",
        "pattern": enabled_pattern(settings.enabled_users().ids().map(|id| id.as_str())),
    });
    if let Some(parameters) = document
        .pointer_mut("/paths/~1api~1v1~1meetings/get/parameters")
        .and_then(Value::as_array_mut)
    {
        for parameter in parameters.iter_mut().filter(|p| p["name"] == "user") {
            parameter["schema"]["enum"] = json!(configured);
        }
    }
    for pointer in [
        "/components/schemas/SyncRequest/properties/users/items",
        "/components/schemas/GroupwareEventData/properties/user_ids/contains",
    ] {
        let Some((parent, key)) = pointer.rsplit_once('/') else {
            continue;
        };
        if let Some(Value::Object(parent)) = document.pointer_mut(parent) {
            parent.insert(key.to_owned(), enabled.clone());
        }
    }
    document
}

/// The characters `str::trim` removes (Unicode `White_Space`), as a regex class: JSON
/// Schema's `\s` is not the same set.
const TRIMMED: &str =
    r"[\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

/// A pattern matching exactly `ids`, with white space around allowed.
fn enabled_pattern<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let ids: Vec<String> = ids.map(escape).collect();
    format!("^{TRIMMED}*(?:{}){TRIMMED}*$", ids.join("|"))
}

/// `text` with every regex metacharacter escaped.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$/".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::enabled_pattern;

    #[test]
    fn the_enabled_pattern_names_each_id_escaped() {
        let pattern = enabled_pattern(["10002", "a.b"].into_iter());
        assert!(pattern.contains("(?:10002|a\\.b)"), "{pattern}");
        assert!(pattern.starts_with('^') && pattern.ends_with('$'));
    }
}
