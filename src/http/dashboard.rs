//! The jobs dashboard (apalis-board's UI and API) on its own listener,
//! `server.dashboard_listen`.
//!
//! Why its own listener (DESIGN.md): the board's UI fetches a hard-coded `/api/v1`, which is
//! ours, and it registers a catch-all route that answers every unknown path 200 with its
//! page — mounted into the API it would swallow the API's JSON 404s. Its API also takes
//! `PUT …/tasks` with no auth, which would let anyone insert jobs. So here every request
//! needs HTTP Basic auth with the admin token as password (any user name; a browser asks
//! for it), and only `GET`/`HEAD` pass: the dashboard shows the queue, it cannot change it.

use std::net::TcpListener;

use actix_web::{
    App, HttpResponse, HttpServer,
    dev::{Server, Service, ServiceResponse},
    http::{Method, header},
    web,
};
use apalis_board::actix::{framework::ApiBuilder, framework::RegisterRoute, ui::ServeUI};
use apalis_sqlite::{Config, SqliteStorage};
use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use futures::future::{Either, ready};
use secrecy::{ExposeSecret, SecretString};
use sqlx::SqlitePool;

use super::auth::constant_time_eq;
use crate::jobs::{JobHandler, JobTypeVisitor, for_each_job_type};

/// Adds each job type's queue to the board.
struct Queues<'a> {
    api: Option<ApiBuilder<actix_web::Scope>>,
    pool: &'a SqlitePool,
}

impl JobTypeVisitor for Queues<'_> {
    fn visit<J: JobHandler>(&mut self) {
        let storage =
            SqliteStorage::<J>::new(self.pool).with_config(Config::default().queue(J::QUEUE));
        self.api = self.api.take().map(|api| api.register(J::QUEUE, storage));
    }
}

/// Is `Authorization: Basic <user:token>` the admin token?
fn basic_auth_ok(value: Option<&header::HeaderValue>, token: &SecretString) -> bool {
    let Some(encoded) = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = BASE64.decode(encoded.trim()) else {
        return false;
    };
    let password = match decoded.iter().position(|b| *b == b':') {
        Some(colon) => &decoded[colon + 1..],
        None => return false,
    };
    constant_time_eq(password, token.expose_secret().as_bytes())
}

/// Binds the dashboard's server on `listener` (read-only, behind the admin token).
pub fn build(
    pool: SqlitePool,
    token: SecretString,
    listener: TcpListener,
) -> anyhow::Result<Server> {
    let server = HttpServer::new(move || {
        let token = token.clone();
        let mut queues = Queues {
            api: Some(ApiBuilder::new(web::scope("/api/v1"))),
            pool: &pool,
        };
        for_each_job_type(&mut queues);
        let api = queues
            .api
            .map_or_else(|| web::scope("/api/v1"), ApiBuilder::build);
        App::new()
            .wrap_fn(move |request, service| {
                let refusal = if !basic_auth_ok(request.headers().get(header::AUTHORIZATION), &token)
                {
                    Some(
                        HttpResponse::Unauthorized()
                            .insert_header((
                                header::WWW_AUTHENTICATE,
                                "Basic realm=\"jmotto-zoom dashboard\", charset=\"UTF-8\"",
                            ))
                            .json(serde_json::json!({"error": {
                                "code": "unauthorized",
                                "message": "log in with any user name and the admin token (server.admin_token) as password"
                            }})),
                    )
                } else if request.method() != Method::GET && request.method() != Method::HEAD {
                    Some(HttpResponse::MethodNotAllowed().json(serde_json::json!({"error": {
                        "code": "method_not_allowed",
                        "message": "the dashboard is read-only"
                    }})))
                } else {
                    None
                };
                match refusal {
                    Some(response) => {
                        let (request, _) = request.into_parts();
                        Either::Left(ready(Ok(ServiceResponse::new(
                            request,
                            response.map_into_right_body(),
                        ))))
                    }
                    None => {
                        let call = service.call(request);
                        Either::Right(async move {
                            call.await.map(ServiceResponse::map_into_left_body)
                        })
                    }
                }
            })
            .service(api)
            .service(ServeUI::new())
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_takes_the_admin_token_as_password() {
        let token = SecretString::from("s3cret");
        let header = |raw: &str| header::HeaderValue::from_str(raw).expect("header");
        let encoded = |pair: &str| format!("Basic {}", BASE64.encode(pair));
        assert!(basic_auth_ok(
            Some(&header(&encoded("admin:s3cret"))),
            &token
        ));
        assert!(basic_auth_ok(Some(&header(&encoded(":s3cret"))), &token));
        assert!(!basic_auth_ok(
            Some(&header(&encoded("admin:wrong"))),
            &token
        ));
        assert!(!basic_auth_ok(Some(&header(&encoded("s3cret"))), &token));
        assert!(!basic_auth_ok(Some(&header("Bearer s3cret")), &token));
        assert!(!basic_auth_ok(None, &token));
    }
}
