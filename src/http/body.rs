//! Reading request bodies: the size limit (413), the media type (415) and JSON that is not
//! JSON (400) or of the wrong shape (422), shared by every handler that takes a body.

use actix_web::{HttpRequest, http::StatusCode, http::header, web};
use futures::StreamExt;

use super::errors::ApiError;

/// Reads the body up to `server.body_limit_bytes` (413 beyond).
pub(crate) async fn read_body(
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::client(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than {limit} bytes (server.body_limit_bytes)"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
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
    use super::parse_json;

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
