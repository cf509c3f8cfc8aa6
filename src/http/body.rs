//! Reading request bodies: the size limit (413, at once for a declared length over it), the
//! time a body may take to arrive (408), the media type (415) and JSON that is not JSON (400)
//! or of the wrong shape (422), shared by every handler that takes a body.

use std::time::Duration;

use actix_web::{HttpRequest, http::StatusCode, http::header, web};
use futures::StreamExt;

use super::errors::ApiError;

/// How long a whole body may take to arrive once the head has: a client that declares a body
/// and stalls (or trickles it) holds a connection and a file descriptor only this long. Our
/// bodies are at most `server.body_limit_bytes` (64 KiB by default): seconds are plenty.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the body up to `server.body_limit_bytes`: 413 beyond, and at once, before reading
/// anything, when `Content-Length` declares more; 408 when it has not all arrived within
/// [`BODY_TIMEOUT`].
pub(crate) async fn read_body(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large(limit));
    }
    tokio::time::timeout(BODY_TIMEOUT, read_up_to(payload, limit))
        .await
        .map_err(|_| {
            ApiError::client(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            )
        })?
}

async fn read_up_to(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::client(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body is larger than {limit} bytes (server.body_limit_bytes)"),
    )
}

/// How many submitted values an error message names before it only counts the rest.
const NAMED_AT_MOST: usize = 3;

/// The longest submitted value an error message repeats (longer ones are cut, with `…`).
const QUOTED_AT_MOST_CHARS: usize = 64;

/// `text` as an error message repeats a caller's value: quoted, and cut when long, so an
/// answer never grows with what was sent.
pub(crate) fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTED_AT_MOST_CHARS) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}…", &text[..end]),
    }
}

/// A few of `values` (quoted) and how many more there are: `"a", "b", "c" and 997 more`.
pub(crate) fn some_of(values: &[String]) -> String {
    let named: Vec<String> = values
        .iter()
        .take(NAMED_AT_MOST)
        .map(|v| quoted(v))
        .collect();
    let named = named.join(", ");
    match values.len().saturating_sub(NAMED_AT_MOST) {
        0 => named,
        more => format!("{named} and {more} more"),
    }
}

/// 415 unless the request says `Content-Type: application/json`.
pub(crate) fn require_json(request: &HttpRequest) -> Result<(), ApiError> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::client(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ))
    }
}

/// Parses a JSON body: not JSON at all is a 400, JSON of the wrong shape a 422.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    serde_json::from_slice::<T>(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::invalid("invalid_field", format!("the body is not {what}: {e}"))
        }
        _ => ApiError::bad_request(format!("the body is not valid JSON: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_json, quoted, some_of};

    /// Issue 13: an error names a few submitted values, each cut short, and counts the rest.
    #[test]
    fn errors_repeat_only_a_few_short_values() {
        let many: Vec<String> = (0..1000).map(|i| format!("id-{i}")).collect();
        assert_eq!(some_of(&many), r#""id-0", "id-1", "id-2" and 997 more"#);
        assert_eq!(some_of(&many[..2]), r#""id-0", "id-1""#);
        let long = "x".repeat(10_000);
        assert!(quoted(&long).chars().count() < 70);
        assert_eq!(quoted("10002"), r#""10002""#);
    }

    #[test]
    fn not_json_is_400_and_the_wrong_shape_422() {
        let status = |body: &[u8]| {
            parse_json::<Vec<String>>(body, "a list")
                .err()
                .map(|e| e.status().as_u16())
        };
        assert_eq!(status(b"[\"a\"]"), None);
        assert_eq!(status(b"not json"), Some(400));
        assert_eq!(status(b"[\"a\","), Some(400));
        assert_eq!(status(b"{\"a\": 1}"), Some(422));
    }
}
