//! CSRF tokens: one random token per session (the sign-in form's too, in the visitor's
//! session), in a hidden field `csrf_token` of every form; a POST whose field does not equal
//! the session's token (compared in constant time) is refused with 403 before anything is
//! read or changed. With SameSite=Strict cookies this is belt and braces.

use base64::Engine as _;
use maud::{Markup, html};
use rand::RngCore;

use super::{FormFields, layout::ConsoleError};
use crate::http::auth::constant_time_eq;

/// The session key and the form field holding the token.
pub const SESSION_KEY: &str = "csrf";
pub const FIELD: &str = "csrf_token";

/// 32 random bytes, URL-safe base64.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The hidden field.
pub fn field(token: &str) -> Markup {
    html! { input type="hidden" name=(FIELD) value=(token); }
}

/// 403 unless `form` carries `expected`.
pub fn check(expected: &str, form: &FormFields) -> Result<(), ConsoleError> {
    match form.get(FIELD) {
        Some(given)
            if !expected.is_empty() && constant_time_eq(given.as_bytes(), expected.as_bytes()) =>
        {
            Ok(())
        }
        _ => Err(ConsoleError::Forbidden),
    }
}
