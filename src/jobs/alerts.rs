//! Alerts as durable jobs (SPEC §10).
//!
//! The engine reports what it learns through the functions below, each inside the caller's
//! write transaction: a condition that starts is recorded in `alert_conditions` and, only
//! when it was not already open, one [`DeliverAlert`] job per channel is pushed in the same
//! transaction; a condition that clears closes its row and pushes the clearing's deliveries.
//! So an open condition is alerted once — across restarts and across processes (the table's
//! unique indexes decide, under SQLite's write lock) — and so is its clearing, and a crash
//! loses none: the rows and the jobs commit together.
//!
//! A [`DeliverAlert`] renders and sends one alert through one channel. A refused or
//! timed-out delivery is retried with backoff as a new task with a future run time (a wait
//! in the database, like every wait here: a restart honours it), up to
//! [`DELIVERY_ATTEMPTS`], then recorded `failed` (shown in 状態 through
//! `store::alerts::troubled_deliveries`). Each attempt is counted in `jmz_alerts_total{type,
//! channel, outcome}`. Nothing here is awaited by a sync: its jobs only push rows.
//!
//! Deliveries are pushed for every channel; whether a channel is configured is read when
//! its job runs (the caller's transaction has no settings at hand), and a channel that is
//! not is recorded `skipped` and counted nowhere.
//!
//! Where the engine calls in: see each function.

use std::future::Future;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Engine, Job, JobHandler, PushOptions, push};
pub use crate::alerts::{Channel, Condition, FailedMeeting};
use crate::{
    alerts::{self, Alert, Event, LISTED_FAILED_MEETINGS},
    config::Settings,
    metrics,
    store::{alerts as rows, db, parse_utc},
};

/// Attempts per delivery before it is `failed`: with the worker's backoff (2 s doubled per
/// attempt, at most an hour) the last is about two hours after the first, long enough for a
/// mail server's restart or a short outage.
pub const DELIVERY_ATTEMPTS: i64 = 12;

/// Sends one alert through one channel: the delivery row `delivery_id`
/// (`alert_deliveries`), which names its condition, its event and its channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliverAlert {
    pub delivery_id: i64,
}

impl Job for DeliverAlert {
    const QUEUE: &'static str = "jmz.deliver_alert";
}

impl JobHandler for DeliverAlert {
    fn request_id(&self) -> Option<&str> {
        None
    }

    fn run(&self, engine: &Engine) -> impl Future<Output = anyhow::Result<()>> + Send {
        run_delivery(engine, self)
    }
}

/// Records `condition` as started, unless it is open already; then (only then) pushes its
/// deliveries. True when it was new (an alert will go out). For the conditions that clear.
pub async fn open(conn: &mut db::Conn, condition: &Condition) -> anyhow::Result<bool> {
    record(conn, condition, false).await
}

/// Closes the open condition `kind` (e.g. `user.unreadable`) of `subject` (see
/// [`Condition::subject`]) and pushes its clearing's deliveries. True when one was open.
pub async fn clear(conn: &mut db::Conn, kind: &str, subject: &str) -> anyhow::Result<bool> {
    let now = Utc::now();
    let id = rows::clear_condition(conn, kind, subject, now).await?;
    push_deliveries(conn, id, Event::Cleared, now).await
}

/// Records a one-off alert (`meetings.failed`, `host.daily_limit`) unless one was recorded
/// for its subject before, and pushes its deliveries. True when it was new.
pub async fn once(conn: &mut db::Conn, condition: &Condition) -> anyhow::Result<bool> {
    record(conn, condition, true).await
}

/// [`open`] (`once` false) or [`once`]; the condition's type must match (a one-off is
/// recorded over at once, and only its type's index keeps it unique).
async fn record(conn: &mut db::Conn, condition: &Condition, once: bool) -> anyhow::Result<bool> {
    anyhow::ensure!(
        condition.clears() != once && *condition != Condition::Test,
        "a {} alert is recorded with {}",
        condition.kind(),
        if condition.clears() { "open" } else { "once" }
    );
    let now = Utc::now();
    let details = serde_json::to_string(condition).context("cannot encode an alert condition")?;
    let (kind, subject) = (condition.kind(), condition.subject());
    let id = rows::insert_condition(conn, kind, &subject, &details, now, once).await?;
    push_deliveries(conn, id, Event::Opened, now).await
}

async fn push_deliveries(
    conn: &mut db::Conn,
    condition_id: Option<i64>,
    event: Event,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let Some(condition_id) = condition_id else {
        return Ok(false);
    };
    for channel in Channel::ALL {
        let delivery_id =
            rows::insert_delivery(conn, condition_id, event.name(), channel.name(), now).await?;
        push(conn, &DeliverAlert { delivery_id }, PushOptions::default()).await?;
    }
    Ok(true)
}

/// R-ENABLED as the last checks say (`checks::disabled_reasons` empty = enabled): opens
/// `integration.disabled` with `reasons_ja` when it turned false, sends
/// `integration.enabled` when it is true again. Idempotent: call it after every quick check
/// (the worker's at start and every 15 minutes — `jobs::housekeeping` —, a console save, a
/// manual sync's check first).
pub async fn integration_changed(
    conn: &mut db::Conn,
    enabled: bool,
    reasons_ja: &[String],
) -> anyhow::Result<bool> {
    if enabled {
        clear(conn, "integration.disabled", "").await
    } else {
        let condition = Condition::IntegrationDisabled {
            reasons: reasons_ja.to_vec(),
        };
        open(conn, &condition).await
    }
}

/// R-ENABLED now, from `engine`'s settings and the recorded checks, reported through
/// [`integration_changed`] in a write transaction of its own. Called after every recording of
/// the quick check's outcome ([`Engine::quick_check`]: the worker's at start and every 15
/// minutes, a console save, a manual sync's check first) and after a call met Zoom's refusal
/// of the credentials (`jobs::meetings`). True when an alert was recorded.
pub async fn report_integration(engine: &Engine) -> anyhow::Result<bool> {
    let checks = crate::store::receiver::checks(engine.store.db()).await?;
    let enabled = crate::checks::disabled_reasons(&engine.settings, &checks).is_empty();
    let reasons = crate::checks::disabled_reasons_ja(&engine.settings, &checks);
    let mut tx = engine.store.begin_write().await?;
    let new = integration_changed(&mut tx, enabled, &reasons).await?;
    tx.commit()
        .await
        .context("cannot record the integration's alert")?;
    if new {
        tracing::info!(enabled, "the integration changed: alert recorded");
    }
    Ok(new)
}

/// J-MOTTO refused an enabled user's schedule (2001) or does not know the user (2002):
/// opens `user.unreadable` (call it where a slice records that error, `jobs::sync`).
pub async fn user_unreadable(
    conn: &mut db::Conn,
    user_id: &str,
    detail: &str,
) -> anyhow::Result<bool> {
    let condition = Condition::UserUnreadable {
        user_id: user_id.to_owned(),
        detail: detail.to_owned(),
    };
    open(conn, &condition).await
}

/// A listing of `user_id` succeeded: clears `user.unreadable` if it was open (one
/// statement; call it in the transaction that records the slice's listing).
pub async fn user_readable(conn: &mut db::Conn, user_id: &str) -> anyhow::Result<bool> {
    clear(conn, "user.unreadable", user_id).await
}

/// An enabled user's Zoom e-mail is not in the Zoom account (the e-mail check at start and
/// every 15 minutes, or a create refused with Zoom's code 1001): opens `user.zoom_unknown`.
pub async fn user_zoom_unknown(
    conn: &mut db::Conn,
    user_id: &str,
    email: &str,
) -> anyhow::Result<bool> {
    let condition = Condition::UserZoomUnknown {
        user_id: user_id.to_owned(),
        email: email.to_owned(),
    };
    open(conn, &condition).await
}

/// The user's Zoom e-mail was found: clears `user.zoom_unknown` if it was open.
pub async fn user_zoom_found(conn: &mut db::Conn, user_id: &str) -> anyhow::Result<bool> {
    clear(conn, "user.zoom_unknown", user_id).await
}

/// The meetings of sync run `sync_id` that ended `failed` (retries ran out) or were refused
/// by Zoom: one `meetings.failed` alert per run, listing the first
/// [`LISTED_FAILED_MEETINGS`] and counting the rest. Call it once per run, when the run's
/// jobs have ended (a second call for the same run sends nothing). Nothing when `entries`
/// is empty.
pub async fn meetings_failed(
    conn: &mut db::Conn,
    sync_id: &str,
    entries: &[FailedMeeting],
) -> anyhow::Result<bool> {
    if entries.is_empty() {
        return Ok(false);
    }
    let condition = Condition::MeetingsFailed {
        sync_id: sync_id.to_owned(),
        total: entries.len(),
        entries: entries
            .iter()
            .take(LISTED_FAILED_MEETINGS)
            .cloned()
            .collect(),
    };
    once(conn, &condition).await
}

/// `host_email` has used its daily create/update quota for `utc_day` (`YYYY-MM-DD`): one
/// `host.daily_limit` alert per host and UTC day (call it where a create or update is
/// deferred to 00:00 UTC, `jobs::meetings`).
pub async fn host_daily_limit(
    conn: &mut db::Conn,
    host_email: &str,
    utc_day: &str,
) -> anyhow::Result<bool> {
    let condition = Condition::HostDailyLimit {
        host_email: host_email.to_owned(),
        utc_day: utc_day.to_owned(),
    };
    once(conn, &condition).await
}

/// The console's 「テスト送信」: a test alert through every configured channel at once, not
/// as a job; each channel's outcome (the SMTP server's error text on failure, never a
/// secret). Empty when no channel is configured.
pub async fn send_test(settings: &Settings) -> Vec<(Channel, Result<(), String>)> {
    alerts::send_test(settings).await
}

/// Runs one delivery: sends it, or records why not and schedules the next attempt.
pub async fn run_delivery(engine: &Engine, job: &DeliverAlert) -> anyhow::Result<()> {
    let Some(row) = rows::delivery(engine.store.db(), job.delivery_id).await? else {
        return Ok(());
    };
    if row.state != "pending" {
        return Ok(()); // sent, failed for good or skipped: a second run changes nothing
    }
    let alert = alert_of(&row)?;
    let channel = Channel::parse(&row.channel)
        .with_context(|| format!("unknown alert channel {:?}", row.channel))?;
    // The engine of this job is built from the live settings (the file over the console's).
    let settings = engine.settings.clone();
    let kind = alert.type_name();
    if !channel.is_configured(&settings) {
        tracing::debug!(alert.type = %kind, alert.channel = channel.name(), "alert channel not configured; skipped");
        return record_outcome(engine, &row, "skipped", row.attempts, None).await;
    }
    let attempts = row.attempts + 1;
    let message_id = format!("jmz-alert-{}", row.id);
    let count = |outcome: &str| {
        engine.metrics.increment(
            metrics::ALERTS,
            &[
                ("type", &kind),
                ("channel", channel.name()),
                ("outcome", outcome),
            ],
        );
    };
    match alerts::send(channel, &settings, &alert, &message_id).await {
        Ok(()) => {
            record_outcome(engine, &row, "sent", attempts, None).await?;
            count("sent");
            tracing::info!(alert.type = %kind, alert.channel = channel.name(), attempts, "alert sent");
            Ok(())
        }
        Err(error) if attempts >= DELIVERY_ATTEMPTS => {
            record_outcome(engine, &row, "failed", attempts, Some(&error.to_string())).await?;
            count("failed");
            tracing::error!(alert.type = %kind, alert.channel = channel.name(), attempts, error = %error, "alert delivery failed; attempts exhausted");
            Ok(())
        }
        Err(error) => {
            let delay = engine.retry_delay(u32::try_from(attempts).unwrap_or(u32::MAX));
            let run_at = Utc::now()
                + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
            let mut tx = engine.store.begin_write().await?;
            let text = error.to_string();
            rows::set_delivery_state(
                &mut tx,
                row.id,
                "pending",
                attempts,
                Some(&text),
                Utc::now(),
            )
            .await?;
            push(&mut tx, job, PushOptions::at(run_at)).await?;
            tx.commit()
                .await
                .context("cannot schedule an alert delivery's retry")?;
            count("retrying");
            tracing::warn!(alert.type = %kind, alert.channel = channel.name(), attempts, retry_at = %run_at, error = %error, "alert delivery failed; will retry");
            Ok(())
        }
    }
}

/// The alert a delivery row describes.
fn alert_of(row: &rows::DeliveryRow) -> anyhow::Result<Alert> {
    let stored = &row.condition;
    let condition: Condition = serde_json::from_str(&stored.details).with_context(|| {
        format!(
            "stored alert condition {} cannot be read",
            stored.condition_id
        )
    })?;
    let event =
        Event::parse(&row.event).with_context(|| format!("unknown alert event {:?}", row.event))?;
    let opened_at = parse_utc(&stored.opened_at)?;
    Ok(match (event, stored.cleared_at.as_deref()) {
        (Event::Cleared, Some(cleared_at)) => Alert {
            condition,
            event,
            occurred_at: parse_utc(cleared_at)?,
            opened_at: Some(opened_at),
        },
        _ => Alert {
            condition,
            event,
            occurred_at: opened_at,
            opened_at: None,
        },
    })
}

async fn record_outcome(
    engine: &Engine,
    row: &rows::DeliveryRow,
    state: &str,
    attempts: i64,
    last_error: Option<&str>,
) -> anyhow::Result<()> {
    let mut tx = engine.store.begin_write().await?;
    rows::set_delivery_state(&mut tx, row.id, state, attempts, last_error, Utc::now()).await?;
    tx.commit()
        .await
        .context("cannot record an alert delivery's outcome")
}
