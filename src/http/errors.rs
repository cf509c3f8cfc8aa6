//! The one place errors become HTTP: `{"error": {"code", "message"}}` (SPEC §5). A 4xx says
//! what the caller got wrong; a 5xx says nothing internal (the chain goes to the log).

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde::{Deserialize, Serialize};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The error body of every endpoint (SPEC §5).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// snake_case, stable: `malformed_request`, `unauthorized`, `bad_signature`,
    /// `body_too_large`, `body_timeout`, `unsupported_media_type`, `invalid_field`,
    /// `unknown_user`, `not_found`, `method_not_allowed`, `internal_error`, `unavailable`.
    #[schema(example = "unknown_user")]
    pub code: String,
    /// A sentence for a person.
    pub message: String,
}

impl ApiError {
    /// A caller's mistake (4xx) with a sentence saying what is wrong.
    pub fn client(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::client(StatusCode::BAD_REQUEST, "malformed_request", message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::client(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::client(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::client(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 503: the server cannot take the request now (a part of it has stopped); the caller
    /// may send it again later.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// What a 503 for a storage fault says.
pub const STORAGE_UNAVAILABLE: &str =
    "the server cannot store requests now; send this one again later";

/// A storage fault (full disk, read-only, locked or removed database: see
/// [`crate::store::is_storage_fault`]) is a 503 the sender may retry, never a 500; anything
/// else is a 500. Either way the chain goes to the log only.
impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> ApiError {
        if crate::store::is_storage_fault(&error) {
            tracing::error!(error = %format!("{error:#}"), "request refused: storage fault");
            return ApiError::unavailable(STORAGE_UNAVAILABLE);
        }
        tracing::error!(error = %format!("{error:#}"), "request failed");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal_error",
            message: "the server could not complete the request; see its log".to_owned(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13 (SPEC §5, 503 is retryable): a storage fault anywhere in the chain is a 503;
    /// a bug is a 500.
    #[test]
    fn storage_faults_are_503_and_bugs_500() {
        let check = |error: anyhow::Error, expected: u16| {
            let described = format!("{error:#}");
            assert_eq!(
                ApiError::from(error).status().as_u16(),
                expected,
                "{described}"
            );
        };
        check(
            anyhow::Error::new(crate::store::StorageFault("gone".to_owned())).context("outer"),
            503,
        );
        check(
            anyhow::Error::new(sqlx::Error::PoolTimedOut).context("cannot take a connection"),
            503,
        );
        check(
            anyhow::Error::new(std::io::Error::other("disk")).context("cannot write"),
            503,
        );
        check(anyhow::anyhow!("a bug"), 500);
        check(
            anyhow::Error::new(sqlx::Error::RowNotFound).context("lookup"),
            500,
        );
    }
}
