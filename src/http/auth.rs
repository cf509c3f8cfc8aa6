//! Admin authentication as an extractor: a handler that takes [`Admin`] runs only for a
//! request bearing `Authorization: Bearer <server.admin_token>`, and the router mounts admin
//! routes only for handlers whose first argument is [`Admin`] ([`AdminFirst`]), so an admin
//! route without the check does not compile.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use secrecy::ExposeSecret;

use super::{errors::ApiError, state::AppState};

/// Proof that the request carries the admin token (compared in constant time).
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Admin, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authorize(request))
    }
}

fn authorize(request: &HttpRequest) -> Result<Admin, ApiError> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| anyhow::anyhow!("the application state is not mounted"))?;
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or_else(|| {
            ApiError::unauthorized("send the admin token as `Authorization: Bearer <token>`")
        })?;
    let expected = state.settings.server.admin_token.expose_secret();
    if constant_time_eq(given.trim().as_bytes(), expected.as_bytes()) {
        Ok(Admin)
    } else {
        Err(ApiError::unauthorized("the admin token is wrong"))
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme's name is
/// case-insensitive (RFC 7235 §2.1), so `bearer` and `BEARER` are the same scheme.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// Handler argument lists that begin with [`Admin`]: the only handlers the router mounts on
/// an admin route.
pub trait AdminFirst {}

impl AdminFirst for (Admin,) {}
impl<A> AdminFirst for (Admin, A) {}
impl<A, B> AdminFirst for (Admin, A, B) {}
impl<A, B, C> AdminFirst for (Admin, A, B, C) {}

/// Compares without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, byte) in a.iter().enumerate() {
        diff |= usize::from(byte ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::{bearer_token, constant_time_eq};

    /// RFC 7235: the scheme is case-insensitive; another scheme is no bearer token.
    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR t0k"] {
            assert_eq!(bearer_token(value), Some("t0k"), "{value}");
        }
        for value in ["Basic t0k", "Bearert0k", "Bearer", "t0k"] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"x", b""));
    }
}
