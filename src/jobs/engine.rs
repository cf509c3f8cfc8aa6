//! What every job handler of a process shares: settings, the store, the two clients (with
//! the pacers inside them: per process, then per account through the database) and the clock.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::{
    config::Settings,
    domain::{host::EnabledUsers, location::LocationMatcher},
    groupware::GroupwareClient,
    store::{Store, pacing::Pacers},
    zoom::{ZoomClient, ZoomCredentials},
};

/// "Now" for the sync rules (window, R-PAST). Job run times always use the system clock.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The system clock.
    System,
    /// A fixed instant (`[clock] now`): the demo and the tests replay fixtures recorded at one
    /// instant.
    Fixed(DateTime<Utc>),
}

impl Clock {
    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(at) => *at,
        }
    }
}

/// The shared context of job handlers.
#[derive(Debug)]
pub struct Engine {
    pub settings: Settings,
    pub store: Store,
    pub groupware: GroupwareClient,
    pub zoom: ZoomClient,
    pub clock: Clock,
    pub enabled_users: EnabledUsers,
    pub location: LocationMatcher,
    /// This process's counters behind `/metrics` (flushed to the database by the worker).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This process's id in the rows it claims (`meetings.claimed_by`), so that its
    /// shutdown can tell which claims it cut off.
    pub instance: String,
}

impl Engine {
    /// Builds the clients (no network call yet) around an open store.
    pub fn new(settings: Settings, store: Store) -> anyhow::Result<Arc<Engine>> {
        let metrics: Arc<crate::metrics::Metrics> = Arc::default();
        let pacers = Pacers::new(&store, &settings);
        let http_timeout =
            std::time::Duration::from_secs(settings.worker.http_timeout_seconds.max(1));
        let groupware = GroupwareClient::new(
            &settings.groupware.base_url,
            &settings.groupware.admin_login_id,
            settings.groupware.admin_password.clone(),
            pacers.groupware,
            http_timeout,
        )?
        .with_metrics(metrics.clone());
        let zoom = ZoomClient::new(
            ZoomCredentials {
                oauth_url: settings.zoom.oauth_url.clone(),
                api_url: settings.zoom.api_url.trim_end_matches('/').to_owned(),
                account_id: settings.zoom.account_id.clone(),
                client_id: settings.zoom.client_id.clone(),
                client_secret: settings.zoom.client_secret.clone(),
            },
            pacers.zoom_create,
            pacers.zoom_light,
            http_timeout,
        )?
        .with_metrics(metrics.clone());
        let clock = match settings.clock.now {
            Some(at) => Clock::Fixed(at),
            None => Clock::System,
        };
        Ok(Arc::new(Engine {
            enabled_users: settings.enabled_users(),
            location: LocationMatcher::new(&settings.sync.location),
            metrics,
            instance: super::new_job_id().to_lowercase(),
            groupware,
            zoom,
            clock,
            store,
            settings,
        }))
    }

    /// Exponential backoff for the given attempt (1-based).
    pub fn retry_delay(&self, attempt: u32) -> std::time::Duration {
        super::backoff(
            std::time::Duration::from_secs(self.settings.worker.retry_base_seconds),
            attempt,
        )
    }

    /// How long a create's claim keeps other runs of its job away: an attempt still in
    /// flight ends (answer or client timeout) within two HTTP timeouts (a token request, then
    /// the create); a margin covers the pacing before the call.
    pub fn claim_duration(&self) -> chrono::Duration {
        // The attempt's bound plus one more client timeout and 10 s for its last write to
        // wait out a busy database (busy_timeout).
        let seconds = self
            .settings
            .worker
            .http_timeout_seconds
            .saturating_mul(3)
            .saturating_add(15);
        chrono::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000))
    }

    /// How long one create attempt may take (a token renewal, the look-up and the create);
    /// well inside [`Engine::claim_duration`].
    pub fn attempt_bound(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.settings
                .worker
                .http_timeout_seconds
                .saturating_mul(2)
                .saturating_add(5),
        )
    }

    /// Attempts per job before `failed`.
    pub fn max_attempts(&self) -> i64 {
        i64::from(self.settings.worker.max_attempts)
    }
}
