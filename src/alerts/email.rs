//! Alert e-mail through `lettre` (SPEC §10): `alerts.smtp_url` is `smtp://host:port` (a
//! local relay, no TLS), `smtp://user:password@host:587?tls=required` (STARTTLS) or
//! `smtps://user:password@host:465` (implicit TLS, rustls). UTF-8 subject and body; the
//! body is sent base64-encoded, so no server needs 8BITMIME.

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, SinglePart, header::ContentTransferEncoding, header::ContentType},
};
use secrecy::ExposeSecret;

use super::{Alert, DELIVERY_TIMEOUT, DeliveryError, render};
use crate::config::Settings;

/// Sends `alert` to every `alerts.email_to` address in one message.
pub async fn send(
    settings: &Settings,
    alert: &Alert,
    message_id: &str,
) -> Result<(), DeliveryError> {
    let message = message(settings, alert, message_id)?;
    let Some(url) = settings.alerts.smtp_url.as_ref() else {
        return Err(DeliveryError::Settings(
            "alerts.smtp_url is not set".to_owned(),
        ));
    };
    let url = url.expose_secret().trim();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|error| {
            DeliveryError::Settings(format!(
                "alerts.smtp_url cannot be used: {}",
                without_secret(&error.to_string(), url)
            ))
        })?
        .timeout(Some(DELIVERY_TIMEOUT))
        .build();
    transport.send(message).await.map(|_| ()).map_err(|error| {
        let text = without_secret(&error.to_string(), url);
        DeliveryError::Failed(format!("the SMTP server did not take the alert: {text}"))
    })
}

/// The message: from `alerts.email_from` to every `alerts.email_to`, the Japanese subject,
/// the body as UTF-8 text.
fn message(settings: &Settings, alert: &Alert, message_id: &str) -> Result<Message, DeliveryError> {
    let alerts = &settings.alerts;
    let mailbox = |key: &str, address: &str| {
        address.trim().parse::<Mailbox>().map_err(|_| {
            DeliveryError::Settings(format!("{key} is not an e-mail address: {address:?}"))
        })
    };
    let mut builder = Message::builder()
        .from(mailbox("alerts.email_from", &alerts.email_from)?)
        .subject(render::subject(alert))
        .message_id(Some(format!("<{message_id}@jmotto-zoom>")));
    if alerts.email_to.is_empty() {
        return Err(DeliveryError::Settings(
            "alerts.email_to names nobody".to_owned(),
        ));
    }
    for address in &alerts.email_to {
        builder = builder.to(mailbox("alerts.email_to", address)?);
    }
    let body = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .header(ContentTransferEncoding::Base64)
        .body(render::body(alert, settings));
    builder
        .singlepart(body)
        .map_err(|error| DeliveryError::Settings(format!("cannot build the e-mail: {error}")))
}

/// `text` with the password of `url` (and the whole URL) masked: an error of `lettre` could
/// quote either.
fn without_secret(text: &str, url: &str) -> String {
    let mut text = text.replace(url, "alerts.smtp_url");
    if let Ok(parsed) = url::Url::parse(url)
        && let Some(password) = parsed.password()
        && !password.is_empty()
    {
        text = text.replace(password, "***");
        if let Ok(decoded) = percent_decoded(password) {
            text = text.replace(&decoded, "***");
        }
    }
    text
}

fn percent_decoded(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                index += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC §10: each documented form of `alerts.smtp_url` builds a transport — plain, STARTTLS
    /// (`?tls=required`) and implicit TLS (`smtps://`), so the TLS features are built in.
    #[test]
    fn every_documented_smtp_url_builds_a_transport() {
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://alerts:p%40ss@smtp.example.co.jp:587?tls=required",
            "smtps://alerts:pass@smtp.example.co.jp",
        ] {
            assert_eq!(crate::config::smtp_url_problem(url), None, "{url}");
            let built = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map(|b| b.build::<Tokio1Executor>());
            assert!(built.is_ok(), "{url}: {:?}", built.err());
        }
    }

    /// The SMTP password never appears in a delivery's error text, encoded or not.
    #[test]
    fn errors_never_quote_the_smtp_password() {
        let url = "smtp://alerts:p%40ss-w0rd@smtp.example.jp:587?tls=required";
        for text in [
            "auth failed for alerts:p@ss-w0rd",
            "cannot connect to smtp://alerts:p%40ss-w0rd@smtp.example.jp:587?tls=required",
        ] {
            let shown = without_secret(text, url);
            assert!(!shown.contains("p@ss-w0rd"), "{shown}");
            assert!(!shown.contains("p%40ss-w0rd"), "{shown}");
        }
    }
}
