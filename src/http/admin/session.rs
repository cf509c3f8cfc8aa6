//! Console sessions: `actix-session`'s cookie store (the whole session, encrypted and
//! authenticated, in the cookie `jmz_admin`), so every server process serving the same
//! configuration reads every other's sessions and no session table is needed.
//!
//! * The cookie key is SHA-512 over a fixed context, the admin token and (when set)
//!   `server.secret_key`: changing the admin token ends every session (old cookies no longer
//!   open and read as no session).
//! * Cookie: HttpOnly, SameSite=Strict, Path=/admin; Secure when the connection itself is
//!   https (`AppConfig::secure`, never `X-Forwarded-Proto`: [`secure_cookie_over_https`]).
//! * The session holds a random session id (a new one, with `renew`, at sign-in), the CSRF
//!   token ([`super::csrf`]) and the last-seen time; more than [`IDLE_LIMIT`] idle ends it,
//!   as does 「ログアウト」 (`purge`).
//! * Before sign-in a session holds only the CSRF token of the sign-in form.

use std::future::{Ready, ready};

use actix_session::{
    Session, SessionExt, SessionMiddleware, config::CookieContentSecurity,
    storage::CookieSessionStore,
};
use actix_web::{
    FromRequest, HttpRequest,
    body::MessageBody,
    cookie::{Key, SameSite},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{Method, header},
    middleware::Next,
};
use maud::Markup;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha512};

use super::{csrf, layout::ConsoleError};
use crate::config::Settings;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "jmz_admin";

/// A session idle longer than this is over (SPEC §8: 8 hours).
pub const IDLE_LIMIT: chrono::TimeDelta = chrono::TimeDelta::hours(8);

const SIGNED_IN: &str = "signed_in";
const SESSION_ID: &str = "sid";
const LAST_SEEN: &str = "seen";

/// The key that seals the console's session cookies (derived, never stored).
#[derive(Clone)]
pub struct SessionKey(Key);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey([REDACTED])")
    }
}

impl SessionKey {
    /// SHA-512 over a fixed context, the admin token and `server.secret_key` (when set).
    pub fn derive(settings: &Settings) -> anyhow::Result<SessionKey> {
        let mut hash = Sha512::new();
        hash.update(b"jmotto-zoom admin console session cookie v1\0");
        hash.update(settings.server.admin_token.expose_secret().as_bytes());
        hash.update(b"\0");
        if let Some(key) = &settings.server.secret_key {
            hash.update(key.to_text().expose_secret().as_bytes());
        }
        let bytes = hash.finalize();
        Key::try_from(bytes.as_slice())
            .map(SessionKey)
            .map_err(|e| anyhow::anyhow!("cannot derive the console's cookie key: {e}"))
    }

    /// The session middleware of the `/admin` scope.
    pub fn middleware(&self) -> SessionMiddleware<CookieSessionStore> {
        SessionMiddleware::builder(CookieSessionStore::default(), self.0.clone())
            .cookie_name(COOKIE_NAME.to_owned())
            .cookie_path("/admin".to_owned())
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Strict)
            // Set per request by `secure_cookie_over_https`.
            .cookie_secure(false)
            .cookie_content_security(CookieContentSecurity::Private)
            .build()
    }
}

/// Adds `Secure` to the session cookie when the connection is https. The server's own
/// listener speaks plain HTTP; a proxy's `X-Forwarded-Proto` is not trusted (anyone can
/// send it), so behind a TLS proxy the cookie is not marked Secure by us.
pub async fn secure_cookie_over_https(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let secure = request.app_config().secure();
    let mut response = next.call(request).await?;
    if secure {
        let cookies: Vec<header::HeaderValue> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .cloned()
            .collect();
        let headers = response.headers_mut();
        headers.remove(header::SET_COOKIE);
        for cookie in cookies {
            let text = cookie.to_str().unwrap_or_default();
            let value = if text.contains("; Secure") || text.is_empty() {
                cookie
            } else {
                header::HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or(cookie)
            };
            headers.append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// A signed-in administrator's session (the extractor of every console page but the
/// sign-in). Without one a GET is led to `/admin/login` (303) and a POST refused (403:
/// without a session no CSRF token can be valid).
pub struct Console {
    session: Session,
    csrf_token: String,
}

impl FromRequest for Console {
    type Error = ConsoleError;
    type Future = Ready<Result<Console, ConsoleError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(signed_in(request))
    }
}

fn signed_in(request: &HttpRequest) -> Result<Console, ConsoleError> {
    let refused = || {
        if request.method() == Method::GET || request.method() == Method::HEAD {
            ConsoleError::NotSignedIn
        } else {
            ConsoleError::Forbidden
        }
    };
    let session = request.get_session();
    let is_signed_in = session.get::<bool>(SIGNED_IN).ok().flatten() == Some(true);
    let last_seen = session.get::<i64>(LAST_SEEN).ok().flatten();
    let csrf_token = session.get::<String>(csrf::SESSION_KEY).ok().flatten();
    let now = chrono::Utc::now().timestamp();
    let (true, Some(seen), Some(csrf_token)) = (is_signed_in, last_seen, csrf_token) else {
        return Err(refused());
    };
    if idle_over(seen, now) {
        session.purge();
        return Err(refused());
    }
    session
        .insert(LAST_SEEN, now)
        .map_err(|e| anyhow::anyhow!("cannot update the session: {e}"))?;
    Ok(Console {
        session,
        csrf_token,
    })
}

/// Whether a session last seen at `seen` is over at `now` (Unix seconds): idle longer than
/// [`IDLE_LIMIT`].
fn idle_over(seen: i64, now: i64) -> bool {
    now.saturating_sub(seen) > IDLE_LIMIT.num_seconds()
}

impl super::layout::SessionForms for Console {
    fn csrf_field(&self) -> Markup {
        self.csrf_field()
    }
}

impl Console {
    /// The hidden CSRF field every form of the page carries.
    pub fn csrf_field(&self) -> Markup {
        csrf::field(&self.csrf_token)
    }

    /// The POSTed form, or 403 when it does not carry this session's CSRF token.
    pub fn checked_form(
        &self,
        form: actix_web::web::Form<Vec<(String, String)>>,
    ) -> Result<super::FormFields, ConsoleError> {
        let fields = super::FormFields::new(form);
        csrf::check(&self.csrf_token, &fields)?;
        Ok(fields)
    }

    /// Ends the session (「ログアウト」): the cookie is removed.
    pub fn sign_out(self) {
        self.session.purge();
    }
}

/// The sign-in form's session: the CSRF token of a visitor not signed in (created on first
/// sight).
pub fn visitor_csrf_token(session: &Session) -> Result<String, ConsoleError> {
    if let Some(token) = session.get::<String>(csrf::SESSION_KEY).ok().flatten() {
        return Ok(token);
    }
    let token = csrf::new_token();
    session
        .insert(csrf::SESSION_KEY, &token)
        .map_err(|e| anyhow::anyhow!("cannot start a session: {e}"))?;
    Ok(token)
}

/// Signs the session in: a new session (cookie renewed), a new session id and CSRF token.
pub fn sign_in(session: &Session) -> Result<(), ConsoleError> {
    session.renew();
    session.clear();
    let store = |key: &str, value: serde_json::Value| {
        session
            .insert(key, value)
            .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("cannot start a session: {e}")))
    };
    store(SIGNED_IN, serde_json::Value::Bool(true))?;
    store(SESSION_ID, serde_json::Value::String(csrf::new_token()))?;
    store(
        LAST_SEEN,
        serde_json::Value::from(chrono::Utc::now().timestamp()),
    )?;
    store(
        csrf::SESSION_KEY,
        serde_json::Value::String(csrf::new_token()),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(admin_token: &str) -> Settings {
        let mut settings = Settings::from_toml_str(crate::config::MINIMAL).expect("valid settings");
        settings.server.admin_token = admin_token.to_owned().into();
        settings
    }

    fn master(key: &SessionKey) -> Vec<u8> {
        key.0.master().to_vec()
    }

    /// SPEC §8: a changed admin token ends every session — the cookie key follows it (and
    /// `server.secret_key`), and is the same in every process with the same settings.
    #[test]
    fn the_cookie_key_follows_the_admin_token() {
        let one = SessionKey::derive(&settings("token-one")).expect("key");
        let again = SessionKey::derive(&settings("token-one")).expect("key");
        let two = SessionKey::derive(&settings("token-two")).expect("key");
        assert_eq!(master(&one), master(&again));
        assert_ne!(master(&one), master(&two));
        let mut with_secret = settings("token-one");
        with_secret.server.secret_key = Some(crate::secrets::SecretKey::generate());
        let sealed = SessionKey::derive(&with_secret).expect("key");
        assert_ne!(master(&one), master(&sealed));
    }

    /// SPEC §8: a session ends after 8 hours idle.
    #[test]
    fn a_session_ends_after_eight_idle_hours() {
        let hours = |h: i64| h * 3600;
        assert!(!idle_over(0, hours(8)));
        assert!(idle_over(0, hours(8) + 1));
        assert!(!idle_over(hours(1), hours(2)));
    }
}
