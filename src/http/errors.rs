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
    /// `body_too_large`, `unsupported_media_type`, `invalid_field`, `unknown_user`,
    /// `not_found`, `internal_error`, `unavailable`.
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

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> ApiError {
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
