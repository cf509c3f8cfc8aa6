//! Secrets encrypted at rest (SPEC §8): a secret the console stores in the database is
//! sealed with XChaCha20-Poly1305 under `server.secret_key`, which is never stored there.
//!
//! A stored value is `v1:<base64 of nonce || ciphertext>`: a fresh random 24-byte nonce per
//! write, and the setting's key name (e.g. `zoom.client_secret`) as associated data, so a
//! value copied under another key does not open. A wrong key, a changed byte or a moved
//! value is a [`SecretError`] with a sentence saying so, never a panic or an empty secret.
//! No I/O here.

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use secrecy::{ExposeSecret, SecretString};

/// The configuration key holding the key (named in every message about it).
pub const SECRET_KEY_SETTING: &str = "server.secret_key";

/// Bytes of a key.
const KEY_LEN: usize = 32;

/// Bytes of a nonce (XChaCha20's extended nonce: random nonces never collide in practice).
const NONCE_LEN: usize = 24;

/// The version prefix of a stored value.
const PREFIX: &str = "v1:";

/// The key that seals stored secrets (`server.secret_key`: base64 of exactly 32 random
/// bytes). Parsed once, when the settings are read; `Debug` shows `[REDACTED]`; its bytes
/// are wiped when it is dropped.
#[derive(Clone)]
pub struct SecretKey([u8; KEY_LEN]);

impl Drop for SecretKey {
    fn drop(&mut self) {
        secrecy::zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey([REDACTED])")
    }
}

/// Why a `server.secret_key` text is not a key. The message names the key and never
/// quotes its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{SECRET_KEY_SETTING}` {0}")]
pub struct InvalidSecretKey(String);

impl InvalidSecretKey {
    /// What is wrong, without the key's name (a configuration mistake names it itself).
    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl SecretKey {
    /// Decodes the key text (standard base64, surrounding spaces ignored).
    pub fn parse(text: &str) -> Result<SecretKey, InvalidSecretKey> {
        let hint = "(`jmotto-zoom init` writes one; or `openssl rand -base64 32`)";
        let bytes = BASE64.decode(text.trim()).map_err(|_| {
            InvalidSecretKey(format!(
                "must be base64 of exactly {KEY_LEN} random bytes, and is not base64 {hint}"
            ))
        })?;
        let length = bytes.len();
        <[u8; KEY_LEN]>::try_from(bytes)
            .map(SecretKey)
            .map_err(|_| {
                InvalidSecretKey(format!(
                    "must be base64 of exactly {KEY_LEN} random bytes, and decodes to {length} {hint}"
                ))
            })
    }

    /// A fresh random key.
    pub fn generate() -> SecretKey {
        SecretKey(rand::random())
    }

    /// The key as `server.secret_key` holds it.
    pub fn to_text(&self) -> SecretString {
        SecretString::from(BASE64.encode(self.0))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

impl<'de> serde::Deserialize<'de> for SecretKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = SecretString::deserialize(deserializer)?;
        SecretKey::parse(text.expose_secret())
            .map_err(|invalid| serde::de::Error::custom(invalid.reason()))
    }
}

/// Why a stored secret does not open. Names the setting, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not `v1:<base64>` of at least a nonce and a tag.
    #[error(
        "cannot decrypt the stored `{setting}`: it is not a value this program encrypted (expected v1:<base64>); enter it again"
    )]
    Malformed { setting: String },
    /// The tag does not verify: another key, a changed byte, or a value stored under another
    /// setting.
    #[error(
        "cannot decrypt the stored `{setting}`: {SECRET_KEY_SETTING} differs from the key it was stored with (or the stored value was altered); restore that key, or enter the secret again"
    )]
    WrongKey { setting: String },
}

/// Seals `plaintext` for storage under the setting `setting` (its key name, e.g.
/// `zoom.client_secret`), with a fresh random nonce: two calls never give the same text.
pub fn encrypt(key: &SecretKey, setting: &str, plaintext: &str) -> String {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let payload = Payload {
        msg: plaintext.as_bytes(),
        aad: setting.as_bytes(),
    };
    // Encryption fails only for a message longer than the cipher's 256 GiB limit, which
    // no setting reaches; the empty result would then fail to decrypt, never open as empty.
    let sealed = key
        .cipher()
        .encrypt(&XNonce::from(nonce), payload)
        .unwrap_or_default();
    let mut stored = Vec::with_capacity(NONCE_LEN + sealed.len());
    stored.extend_from_slice(&nonce);
    stored.extend_from_slice(&sealed);
    format!("{PREFIX}{}", BASE64.encode(stored))
}

/// Opens a value [`encrypt`] wrote for the same `setting` under the same key.
pub fn decrypt(key: &SecretKey, setting: &str, stored: &str) -> Result<SecretString, SecretError> {
    let malformed = || SecretError::Malformed {
        setting: setting.to_owned(),
    };
    let bytes = stored
        .strip_prefix(PREFIX)
        .and_then(|encoded| BASE64.decode(encoded).ok())
        .ok_or_else(malformed)?;
    // A nonce and at least the 16-byte tag.
    if bytes.len() < NONCE_LEN + 16 {
        return Err(malformed());
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| malformed())?;
    let payload = Payload {
        msg: sealed,
        aad: setting.as_bytes(),
    };
    let wrong_key = || SecretError::WrongKey {
        setting: setting.to_owned(),
    };
    let opened = key
        .cipher()
        .decrypt(&XNonce::from(nonce), payload)
        .map_err(|_| wrong_key())?;
    String::from_utf8(opened)
        .map(SecretString::from)
        .map_err(|_| wrong_key())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTING: &str = "zoom.client_secret";

    fn key() -> SecretKey {
        SecretKey::generate()
    }

    #[test]
    fn a_secret_round_trips() {
        let key = key();
        let stored = encrypt(&key, SETTING, "zoom-secret ✓");
        assert!(stored.starts_with("v1:"), "{stored}");
        assert!(!stored.contains("zoom-secret"), "{stored}");
        let opened = decrypt(&key, SETTING, &stored).expect("opens");
        assert_eq!(opened.expose_secret(), "zoom-secret ✓");
        // The empty secret is a value too, and stays one.
        let empty = encrypt(&key, SETTING, "");
        assert_eq!(
            decrypt(&key, SETTING, &empty)
                .expect("opens")
                .expose_secret(),
            ""
        );
    }

    #[test]
    fn every_write_has_a_fresh_nonce() {
        let key = key();
        let first = encrypt(&key, SETTING, "same");
        let second = encrypt(&key, SETTING, "same");
        assert_ne!(first, second);
        let nonce = |stored: &str| {
            BASE64
                .decode(stored.trim_start_matches(PREFIX))
                .expect("base64")[..NONCE_LEN]
                .to_vec()
        };
        assert_ne!(nonce(&first), nonce(&second));
    }

    #[test]
    fn another_key_does_not_open_it() {
        let stored = encrypt(&key(), SETTING, "zoom-secret");
        let error = decrypt(&key(), SETTING, &stored).expect_err("wrong key");
        assert_eq!(
            error,
            SecretError::WrongKey {
                setting: SETTING.to_owned()
            }
        );
        let message = error.to_string();
        assert!(
            message.contains("server.secret_key differs from the key it was stored with"),
            "{message}"
        );
        assert!(message.contains(SETTING), "{message}");
    }

    #[test]
    fn a_changed_byte_does_not_open() {
        let key = key();
        let stored = encrypt(&key, SETTING, "zoom-secret");
        let mut bytes = BASE64
            .decode(stored.trim_start_matches(PREFIX))
            .expect("base64");
        for index in [0, NONCE_LEN, bytes.len() - 1] {
            let original = bytes[index];
            bytes[index] ^= 0x01;
            let tampered = format!("{PREFIX}{}", BASE64.encode(&bytes));
            assert!(
                matches!(
                    decrypt(&key, SETTING, &tampered),
                    Err(SecretError::WrongKey { .. })
                ),
                "byte {index}"
            );
            bytes[index] = original;
        }
        for garbage in [
            "",
            "v1:",
            "v1:not base64!",
            "v2:AAAA",
            "zoom-secret",
            "v1:AAAA",
        ] {
            assert!(
                matches!(
                    decrypt(&key, SETTING, garbage),
                    Err(SecretError::Malformed { .. })
                ),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn a_value_moved_to_another_setting_does_not_open() {
        let key = key();
        let stored = encrypt(&key, "zoom.client_secret", "zoom-secret");
        assert!(matches!(
            decrypt(&key, "groupware.admin_password", &stored),
            Err(SecretError::WrongKey { setting }) if setting == "groupware.admin_password"
        ));
    }

    #[test]
    fn a_key_text_round_trips() {
        let key = key();
        let text = key.to_text();
        assert_eq!(text.expose_secret().len(), 44);
        let again = SecretKey::parse(text.expose_secret()).expect("valid");
        let stored = encrypt(&key, SETTING, "s");
        assert!(decrypt(&again, SETTING, &stored).is_ok());
        assert_eq!(format!("{key:?}"), "SecretKey([REDACTED])");
    }

    #[test]
    fn a_bad_key_text_names_the_setting_without_its_value() {
        let short = BASE64.encode([7u8; 16]);
        let long = BASE64.encode([7u8; 33]);
        for text in ["not base64 at all!", "", short.as_str(), long.as_str()] {
            let error = SecretKey::parse(text).expect_err("refused").to_string();
            assert!(error.contains("server.secret_key"), "{error}");
            assert!(error.contains("32 random bytes"), "{error}");
            if !text.is_empty() {
                assert!(!error.contains(text), "{error} quotes the value");
            }
        }
    }
}
