//! Standard Webhooks signatures: the signing keys and the HMAC math, for the receiving side
//! (`POST /webhooks/groupware`) and any sending side.
//!
//! The signed content is `"{webhook-id}.{webhook-timestamp}.{body}"`, signed with
//! HMAC-SHA256 under the secret's base64-decoded bytes (after the `whsec_` prefix);
//! `webhook-signature` holds one or more space-separated `v1,<base64>` signatures, and one
//! match is enough — so a sender can sign with an old and a new secret while a secret is
//! rotated. A receiver may hold several secrets separated by spaces for the same reason
//! ([`SigningKeys`]). Comparison is constant-time; the timestamp must be within ±5 minutes
//! of now. No I/O, no HTTP types: the caller hands over the three header values.

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// How far a `webhook-timestamp` may be from now, either way.
pub const TOLERANCE_SECONDS: i64 = 300;

/// The header holding the delivery id.
pub const ID_HEADER: &str = "webhook-id";
/// The header holding the seconds since the Unix epoch of the delivery.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The header holding the space-separated `v1,<base64>` signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// Why a delivery's signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    MissingHeaders,
    BadTimestamp,
    StaleTimestamp,
    NoMatch,
}

impl SignatureError {
    /// The metric label and the sentence for the refusal.
    pub fn describe(self) -> (&'static str, &'static str) {
        match self {
            SignatureError::MissingHeaders => (
                "missing_headers",
                "send the Standard Webhooks headers webhook-id, webhook-timestamp and webhook-signature",
            ),
            SignatureError::BadTimestamp => (
                "bad_timestamp",
                "webhook-timestamp must be whole seconds since the Unix epoch",
            ),
            SignatureError::StaleTimestamp => (
                "stale_timestamp",
                "webhook-timestamp is more than 5 minutes away from the server's clock",
            ),
            SignatureError::NoMatch => (
                "bad_signature",
                "no signature in webhook-signature matches the body under the configured secret",
            ),
        }
    }
}

/// One decoded signing secret (`whsec_<base64>`, or bare base64): never empty. `Debug`
/// shows `[REDACTED]`.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([REDACTED])")
    }
}

impl SigningKey {
    /// Decodes one secret; `None` when it is not base64 or decodes to nothing.
    pub fn parse(secret: &str) -> Option<SigningKey> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let bytes = BASE64.decode(encoded).ok()?;
        (!bytes.is_empty()).then_some(SigningKey(bytes))
    }

    /// The MAC over `id.timestamp.body` (HMAC takes keys of any length: never `None` for a
    /// parsed key, but no panic path either).
    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).ok()?;
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        Some(mac)
    }

    /// `v1,<base64>` for the given delivery (what a sender puts in `webhook-signature`).
    pub fn sign(&self, id: &str, timestamp: &str, body: &[u8]) -> Option<String> {
        let tag = self.mac(id, timestamp, body)?.finalize().into_bytes();
        Some(format!("v1,{}", BASE64.encode(tag)))
    }

    fn verifies(&self, id: &str, timestamp: &str, body: &[u8], signature: &[u8]) -> bool {
        // `verify_slice` compares in constant time.
        self.mac(id, timestamp, body)
            .is_some_and(|mac| mac.verify_slice(signature).is_ok())
    }
}

/// The receiving side's keys (`server.webhook_secret`): one secret, or several separated
/// by spaces while a secret is rotated. Never empty; parsed once, when the settings are
/// read. `Debug` shows `[REDACTED]`.
#[derive(Clone, Debug)]
pub struct SigningKeys(Vec<SigningKey>);

impl SigningKeys {
    /// Every secret of a space-separated list; `None` if any is not base64, or none is given.
    pub fn parse(secrets: &str) -> Option<SigningKeys> {
        let keys: Option<Vec<SigningKey>> =
            secrets.split_whitespace().map(SigningKey::parse).collect();
        keys.filter(|k| !k.is_empty()).map(SigningKeys)
    }

    /// The keys, in the configured order.
    pub fn keys(&self) -> &[SigningKey] {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for SigningKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let secret = SecretString::deserialize(deserializer)?;
        SigningKeys::parse(secret.expose_secret()).ok_or_else(|| {
            serde::de::Error::custom(
                "must be whsec_<base64> (several, separated by spaces, while rotating)",
            )
        })
    }
}

/// Checks a delivery against `keys` at `now`; `header` looks up a header's value by name
/// ([`ID_HEADER`], [`TIMESTAMP_HEADER`], [`SIGNATURE_HEADER`]). Returns the delivery id.
pub fn verify<'a>(
    keys: &[SigningKey],
    header: impl Fn(&'static str) -> Option<&'a str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<String, SignatureError> {
    let present = |name| header(name).map(str::trim).filter(|v| !v.is_empty());
    let (Some(id), Some(timestamp), Some(signatures)) = (
        present(ID_HEADER),
        present(TIMESTAMP_HEADER),
        present(SIGNATURE_HEADER),
    ) else {
        return Err(SignatureError::MissingHeaders);
    };
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // `abs_diff`: a timestamp of i64::MIN must be refused, not overflow.
    if now.timestamp().abs_diff(seconds) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::StaleTimestamp);
    }
    let candidates: Vec<Vec<u8>> = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| BASE64.decode(s).ok())
        .collect();
    let matched = keys.iter().any(|key| {
        candidates
            .iter()
            .any(|candidate| key.verifies(id, timestamp, body, candidate))
    });
    if matched {
        Ok(id.to_owned())
    } else {
        Err(SignatureError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's published test vector.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: &str = "1614265330";
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    /// The three Standard Webhooks headers of one delivery.
    struct Headers<'a>([(&'static str, &'a str); 3]);

    impl<'a> Headers<'a> {
        fn new(id: &'a str, timestamp: &'a str, signature: &'a str) -> Headers<'a> {
            Headers([
                (ID_HEADER, id),
                (TIMESTAMP_HEADER, timestamp),
                (SIGNATURE_HEADER, signature),
            ])
        }

        fn get(&self, name: &str) -> Option<&'a str> {
            self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        }
    }

    fn check_headers(
        keys: &[SigningKey],
        headers: &Headers<'_>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<String, SignatureError> {
        verify(keys, |name| headers.get(name), body, now)
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("instant")
    }

    #[test]
    fn signs_and_verifies_the_published_test_vector() {
        let key = SigningKey::parse(VECTOR_SECRET).expect("vector secret decodes");
        assert_eq!(
            key.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
                .as_deref(),
            Some(VECTOR_SIGNATURE)
        );
        let headers = Headers::new(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE);
        assert_eq!(
            check_headers(&[key], &headers, VECTOR_BODY, at(1_614_265_330)),
            Ok(VECTOR_ID.to_owned())
        );
    }

    #[test]
    fn refusals_by_class() {
        let keys = SigningKeys::parse(VECTOR_SECRET).expect("secret");
        let now = at(1_614_265_330);
        let check = |headers: Headers<'_>, body: &[u8], now, expected| {
            assert_eq!(
                check_headers(keys.keys(), &headers, body, now),
                Err(expected)
            );
        };
        // A changed body, a changed id, a signature of another secret.
        check(
            Headers::new(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE),
            br#"{"test": 2432232315}"#,
            now,
            SignatureError::NoMatch,
        );
        check(
            Headers::new("msg_other", VECTOR_TIMESTAMP, VECTOR_SIGNATURE),
            VECTOR_BODY,
            now,
            SignatureError::NoMatch,
        );
        check(
            Headers::new(VECTOR_ID, VECTOR_TIMESTAMP, "v1,AAAA"),
            VECTOR_BODY,
            now,
            SignatureError::NoMatch,
        );
        check(
            Headers::new(
                VECTOR_ID,
                VECTOR_TIMESTAMP,
                "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            VECTOR_BODY,
            now,
            SignatureError::NoMatch,
        );
        // Five minutes and one second away, both ways; the edge itself is accepted.
        check(
            Headers::new(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE),
            VECTOR_BODY,
            at(1_614_265_330 + 301),
            SignatureError::StaleTimestamp,
        );
        check(
            Headers::new(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE),
            VECTOR_BODY,
            at(1_614_265_330 - 301),
            SignatureError::StaleTimestamp,
        );
        assert!(
            check_headers(
                keys.keys(),
                &Headers::new(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE),
                VECTOR_BODY,
                at(1_614_265_330 + 300)
            )
            .is_ok()
        );
        check(
            Headers::new(VECTOR_ID, "-9223372036854775808", VECTOR_SIGNATURE),
            VECTOR_BODY,
            now,
            SignatureError::StaleTimestamp,
        );
        check(
            Headers::new(VECTOR_ID, "yesterday", VECTOR_SIGNATURE),
            VECTOR_BODY,
            now,
            SignatureError::BadTimestamp,
        );
        check(
            Headers::new(VECTOR_ID, VECTOR_TIMESTAMP, " "),
            VECTOR_BODY,
            now,
            SignatureError::MissingHeaders,
        );
        assert_eq!(
            verify(keys.keys(), |_| None, VECTOR_BODY, now),
            Err(SignatureError::MissingHeaders)
        );
    }

    #[test]
    fn rotation_on_either_side() {
        let new_secret = format!("whsec_{}", BASE64.encode([7u8; 32]));
        let new = SigningKey::parse(&new_secret).expect("new");
        let now = at(1_614_265_330);
        // The sender signs with both secrets: a receiver holding either one accepts.
        let both = format!(
            "{} {}",
            new.sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
                .expect("signature"),
            VECTOR_SIGNATURE
        );
        let headers_both = Headers::new(VECTOR_ID, VECTOR_TIMESTAMP, &both);
        for receiver_secret in [VECTOR_SECRET, new_secret.as_str()] {
            let keys = SigningKeys::parse(receiver_secret).expect("keys");
            assert!(check_headers(keys.keys(), &headers_both, VECTOR_BODY, now).is_ok());
        }
        // The receiver holds both secrets: a sender using either one is accepted.
        let keys = SigningKeys::parse(&format!("{new_secret} {VECTOR_SECRET}")).expect("keys");
        let only_old = Headers::new(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE);
        assert!(check_headers(keys.keys(), &only_old, VECTOR_BODY, now).is_ok());
        assert!(SigningKeys::parse("whsec_not base64!").is_none());
        assert!(SigningKeys::parse("").is_none());
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let keys = SigningKeys::parse(VECTOR_SECRET).expect("secret");
        let shown = format!("{keys:?}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
        assert!(
            !shown.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "{shown}"
        );
    }
}
