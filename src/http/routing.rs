//! The route table: every path, its method, its handler. Unknown paths answer a JSON 404, a
//! known path with another method a JSON 405. Admin routes are mounted through [`AdminScope`],
//! which takes only handlers whose first argument is the [`Admin`](super::auth::Admin)
//! extractor.

use actix_web::{
    FromRequest, Handler, HttpRequest, HttpResponse, Responder, ResponseError,
    http::{StatusCode, header},
    web,
};

use super::{
    admin, auth::AdminFirst, errors::ApiError, health, jobs, meetings, metrics, openapi, status,
    sync, webhooks,
};

/// Mounts every route (the console's `/admin` scope with its session key).
pub fn configure(config: &mut web::ServiceConfig, session_key: &admin::SessionKey) {
    config
        .service(admin::scope(session_key))
        .service(only("/healthz", "GET", health::healthz))
        .service(only("/readyz", "GET", health::readyz))
        .service(only("/metrics", "GET", metrics::metrics))
        .service(only("/api/openapi.json", "GET", openapi::serve))
        .service(only("/webhooks/groupware", "POST", webhooks::receive))
        .service(
            AdminScope::new("/api/v1")
                .route("/sync", "POST", sync::trigger_sync)
                .route("/status", "GET", status::status)
                .route("/meetings", "GET", meetings::meetings)
                .route("/jobs/{id}", "GET", jobs::job)
                .into_scope(),
        )
        .default_service(web::to(not_found));
}

/// The admin API's scope: it mounts admin routes only, each through [`only`] with a
/// handler that takes [`Admin`](super::auth::Admin) first, so the route answers 401 before
/// the handler runs unless the request bears the admin token.
struct AdminScope(actix_web::Scope);

impl AdminScope {
    fn new(path: &str) -> AdminScope {
        AdminScope(web::scope(path))
    }

    fn route<F, Args>(self, path: &str, method: &'static str, handler: F) -> AdminScope
    where
        F: Handler<Args> + Clone,
        Args: FromRequest + AdminFirst + 'static,
        F::Output: Responder + 'static,
    {
        AdminScope(self.0.service(only(path, method, handler)))
    }

    fn into_scope(self) -> actix_web::Scope {
        self.0
    }
}

/// `path` answering `method` with `handler` (a `GET` also answers `HEAD`), and a JSON 405
/// with `Allow` to any other method.
fn only<F, Args>(path: &str, method: &'static str, handler: F) -> actix_web::Resource
where
    F: Handler<Args> + Clone,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let (resource, allowed) = match method {
        "POST" => (web::resource(path).route(web::post().to(handler)), "POST"),
        _ => (
            web::resource(path)
                .route(web::get().to(handler.clone()))
                .route(web::head().to(handler)),
            "GET, HEAD",
        ),
    };
    resource.default_service(web::to(move |request: HttpRequest| async move {
        method_not_allowed(request, allowed)
    }))
}

fn method_not_allowed(request: HttpRequest, allowed: &'static str) -> HttpResponse {
    let mut response = ApiError::client(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} accepts {allowed}, not {}",
            request.path(),
            request.method()
        ),
    )
    .error_response();
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allowed));
    response
}

async fn not_found(request: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!(
        "there is no {} {} here",
        request.method(),
        request.path()
    )))
}
