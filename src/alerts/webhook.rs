//! Alert webhook (SPEC §10): `POST alerts.webhook_url` with the JSON document
//! `{"type", "occurred_at", "summary", "text", "details"}` (`summary` = `text` = the
//! Japanese subject, so a Slack-compatible endpoint shows it), signed with the Standard
//! Webhooks headers under `alerts.webhook_secret` by [`crate::signature`] — the receiver's
//! own signing code, here on the sending side.

use secrecy::ExposeSecret;
use serde::Serialize;

use super::{Alert, DELIVERY_TIMEOUT, DeliveryError, render};
use crate::{
    config::Settings,
    signature::{ID_HEADER, SIGNATURE_HEADER, SigningKey, TIMESTAMP_HEADER},
};

/// The document posted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookAlert {
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339, UTC.
    pub occurred_at: String,
    /// The Japanese subject.
    pub summary: String,
    /// The same as `summary` (what a Slack-compatible endpoint shows).
    pub text: String,
    pub details: serde_json::Value,
}

impl WebhookAlert {
    /// The document of `alert`.
    pub fn new(alert: &Alert) -> WebhookAlert {
        let subject = render::subject(alert);
        WebhookAlert {
            kind: alert.type_name(),
            occurred_at: crate::store::utc_text(alert.occurred_at),
            summary: subject.clone(),
            text: subject,
            details: render::details(alert),
        }
    }
}

/// Posts `alert` (a 2xx answer is success; anything else, or no answer, is a failure to
/// retry). `message_id` is the `webhook-id`.
pub async fn send(
    settings: &Settings,
    alert: &Alert,
    message_id: &str,
) -> Result<(), DeliveryError> {
    let document = WebhookAlert::new(alert);
    let url = settings.alerts.webhook_url.trim();
    if url.is_empty() {
        return Err(DeliveryError::Settings(
            "alerts.webhook_url is not set".to_owned(),
        ));
    }
    let body = serde_json::to_vec(&document)
        .map_err(|error| DeliveryError::Settings(format!("cannot encode the alert: {error}")))?;
    let client = reqwest::Client::builder()
        .timeout(DELIVERY_TIMEOUT)
        .connect_timeout(std::time::Duration::from_secs(5))
        .user_agent(concat!("jmotto-zoom/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| DeliveryError::Failed(format!("cannot build an HTTP client: {error}")))?;
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(ID_HEADER, message_id)
        .header(TIMESTAMP_HEADER, &timestamp);
    if let Some(secret) = &settings.alerts.webhook_secret
        && !secret.expose_secret().trim().is_empty()
    {
        let signature = SigningKey::parse(secret.expose_secret().trim())
            .and_then(|key| key.sign(message_id, &timestamp, &body))
            .ok_or_else(|| {
                DeliveryError::Settings("alerts.webhook_secret is not whsec_<base64>".to_owned())
            })?;
        request = request.header(SIGNATURE_HEADER, signature);
    }
    let answer = request.body(body).send().await.map_err(|error| {
        // reqwest's error names the URL; a webhook URL (Slack's) is itself a credential.
        let what = if error.is_timeout() {
            "no answer in time"
        } else if error.is_connect() {
            "cannot connect"
        } else {
            "the request failed"
        };
        DeliveryError::Failed(format!("alerts.webhook_url: {what}"))
    })?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(DeliveryError::Failed(format!(
            "alerts.webhook_url answered HTTP {}",
            status.as_u16()
        )))
    }
}
