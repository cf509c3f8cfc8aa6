//! The request id and the access log: every request runs in a `request` span carrying its
//! id, answers with the id in `x-request-id`, and leaves one INFO line (method, path,
//! status, duration, id). The line names the path only: no query string, no header, so no
//! token or secret reaches the log.

use std::time::Instant;

use actix_web::{
    HttpMessage,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{HeaderMap, HeaderName, HeaderValue},
    middleware::Next,
};
use tracing::Instrument;

/// The request id of one HTTP request (also carried into the jobs it enqueues).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The header that carries the request id both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest caller-given request id that is kept.
const MAX_REQUEST_ID_CHARS: usize = 128;

/// The caller's own `x-request-id` when it is sane (1 to 128 printable ASCII characters),
/// else a fresh id.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_sane(id))
        .map_or_else(crate::jobs::new_job_id, str::to_owned)
}

fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_CHARS
        && id.bytes().all(|b| (b' '..=b'~').contains(&b))
}

/// The middleware: span, request id, access-log line.
pub async fn log_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id(request.headers());
    let method = request.method().clone();
    let path = request.path().to_owned();
    let span = tracing::info_span!("request", request.id = %id, method = %method, path = %path);
    request.extensions_mut().insert(RequestId(id.clone()));
    let started = Instant::now();
    async move {
        let answered = next.call(request).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let status = match &answered {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        tracing::info!(
            method = %method,
            path = %path,
            status = status.as_u16(),
            duration_ms,
            request.id = %id,
            "request answered"
        );
        let mut response = answered?;
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        Ok(response)
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_caller_id_is_kept_and_any_other_replaced() {
        let given = |raw: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(raw) = raw {
                headers.insert(
                    REQUEST_ID_HEADER,
                    HeaderValue::from_str(raw).expect("value"),
                );
            }
            request_id(&headers)
        };
        assert_eq!(given(Some("trace-42/a b")), "trace-42/a b");
        let longest = "x".repeat(128);
        assert_eq!(given(Some(&longest)), longest);
        for insane in [None, Some(""), Some(&*"x".repeat(129)), Some("tab\there")] {
            let id = given(insane);
            assert_ne!(Some(id.as_str()), insane, "{insane:?} kept");
            assert!(is_sane(&id), "{id:?}");
        }
    }

    /// Everything the subscriber writes, for the test to read.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// One INFO line per request with method, path, status, duration and id; neither the
    /// token nor the query string reaches it; the caller's sane id is answered back.
    #[tokio::test(flavor = "current_thread")]
    async fn one_access_line_per_request_without_secrets() {
        use actix_web::{App, HttpResponse, middleware, test, web};
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = test::init_service(
            App::new()
                .wrap(middleware::from_fn(log_request))
                .route("/x", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let request = test::TestRequest::get()
            .uri("/x?token=hunter2")
            .insert_header(("authorization", "Bearer s3cret-token"))
            .insert_header(("x-request-id", "trace-42"))
            .to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(
            response
                .headers()
                .get(REQUEST_ID_HEADER)
                .map(HeaderValue::as_bytes),
            Some(&b"trace-42"[..])
        );
        let log = String::from_utf8(captured.0.lock().expect("log buffer").clone()).expect("utf-8");
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("request answered"))
            .collect();
        assert_eq!(lines.len(), 1, "{log}");
        for field in [
            "INFO",
            "method=GET",
            "path=/x",
            "status=200",
            "duration_ms=",
            "trace-42",
        ] {
            assert!(lines[0].contains(field), "{field} missing: {}", lines[0]);
        }
        assert!(
            !log.contains("hunter2") && !log.contains("s3cret-token"),
            "{log}"
        );
    }
}
