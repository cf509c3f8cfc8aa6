//! What every job handler of a process shares: settings, the store, the two clients (with
//! the pacers inside them: per process, then per account through the database) and the
//! clock — and [`LiveEngine`], which rebuilds them when the live settings change (SPEC §8:
//! a saved change takes effect for the next job, in every process, without a restart).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::{
    config::Settings,
    domain::{host::EnabledUsers, location::LocationMatcher},
    groupware::GroupwareClient,
    live::LiveSettings,
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

/// The shared context of job handlers, built from one version of the settings
/// ([`LiveEngine`] builds a new one when a saved change moves them).
#[derive(Debug)]
pub struct Engine {
    /// The settings this engine was built from (the file's over the console's).
    pub settings: Arc<Settings>,
    pub store: Store,
    /// `None` while a J-MOTTO credential is unset: see [`Engine::groupware`].
    groupware: Option<GroupwareClient>,
    /// `None` while a Zoom credential is unset: see [`Engine::zoom`].
    zoom: Option<ZoomClient>,
    pub clock: Clock,
    pub enabled_users: EnabledUsers,
    pub location: LocationMatcher,
    /// This process's counters behind `/metrics` (flushed to the database by the worker).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This process's id in the rows it claims (`meetings.claimed_by`), so that its
    /// shutdown can tell which claims it cut off.
    pub instance: String,
}

/// A service whose credentials the settings leave unset: no client exists for it, so
/// nothing can call it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{service} is not set up: {} not set (enter it on the console's Zoom連携設定 page, or set it in the configuration file)",
    .keys.join(", ")
)]
pub struct NotSet {
    /// `Zoom` or `J-MOTTO`.
    pub service: &'static str,
    /// The unset keys, e.g. `zoom.client_secret`.
    pub keys: Vec<&'static str>,
}

/// The credentials of `service` (`zoom.` or `groupware.`) that `settings` leave unset.
fn unset_of(settings: &Settings, prefix: &str) -> Vec<&'static str> {
    settings
        .unset_credentials()
        .into_iter()
        .filter(|key| key.starts_with(prefix))
        .collect()
}

impl Engine {
    /// Builds the clients (no network call yet) around an open store, with fresh metrics, a
    /// new instance id and the settings' own pacers (tests and one-shot commands; the
    /// processes use [`LiveEngine`]).
    pub fn new(settings: Settings, store: Store) -> anyhow::Result<Arc<Engine>> {
        Engine::build(
            Arc::new(settings),
            store,
            Arc::default(),
            super::new_job_id().to_lowercase(),
        )
    }

    /// Builds an engine for `settings` sharing a process's metrics and instance
    /// id. A service whose credentials are unset gets no client (never an error).
    pub fn build(
        settings: Arc<Settings>,
        store: Store,
        metrics: Arc<crate::metrics::Metrics>,
        instance: String,
    ) -> anyhow::Result<Arc<Engine>> {
        // Built with the engine, so a changed account or J-MOTTO address paces under its own
        // name; the rows in the database carry the pacing across rebuilds and processes.
        let pacers = Pacers::new(&store, &settings);
        let http_timeout =
            std::time::Duration::from_secs(settings.worker.http_timeout_seconds.max(1));
        let groupware = if unset_of(&settings, "groupware.").is_empty() {
            Some(
                GroupwareClient::new(
                    &settings.groupware.base_url,
                    &settings.groupware.admin_login_id,
                    settings.groupware.admin_password.clone(),
                    pacers.groupware,
                    http_timeout,
                )?
                .with_metrics(metrics.clone()),
            )
        } else {
            None
        };
        let zoom = if unset_of(&settings, "zoom.").is_empty() {
            Some(
                ZoomClient::new(
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
                .with_metrics(metrics.clone()),
            )
        } else {
            None
        };
        let clock = match settings.clock.now {
            Some(at) => Clock::Fixed(at),
            None => Clock::System,
        };
        Ok(Arc::new(Engine {
            enabled_users: settings.enabled_users(),
            location: LocationMatcher::new(&settings.sync.location),
            metrics,
            instance,
            groupware,
            zoom,
            clock,
            store,
            settings,
        }))
    }

    /// The Zoom client, or the Zoom credentials that are not set.
    pub fn zoom(&self) -> Result<&ZoomClient, NotSet> {
        self.zoom.as_ref().ok_or_else(|| NotSet {
            service: "Zoom",
            keys: unset_of(&self.settings, "zoom."),
        })
    }

    /// The J-MOTTO client, or the J-MOTTO credentials that are not set.
    pub fn groupware(&self) -> Result<&GroupwareClient, NotSet> {
        self.groupware.as_ref().ok_or_else(|| NotSet {
            service: "J-MOTTO",
            keys: unset_of(&self.settings, "groupware."),
        })
    }

    /// The quick check R-ENABLED reads (token, login, timezone; recorded), with this
    /// engine's clients: an unset service fails without a call. Then R-ENABLED as it now
    /// stands goes to the alerts (`integration.disabled` when it turned false,
    /// `integration.enabled` when true again: [`super::alerts::report_integration`]); every
    /// quick check of a process passes here (the worker's, a console save's, a manual sync's).
    pub async fn quick_check(&self) -> Vec<crate::checks::CheckResult> {
        let results = crate::checks::quick_check(
            &self.settings,
            self.zoom.as_ref(),
            self.groupware.as_ref(),
            &self.store,
        )
        .await;
        if let Err(error) = super::alerts::report_integration(self).await {
            tracing::warn!(error = %format!("{error:#}"), "cannot record the integration's alert");
        }
        results
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

/// The engine of a process that follows the live settings: the file (and the environment)
/// over what the console stored. [`LiveEngine::current`] builds a new [`Engine`] (new
/// clients, enabled users, location matcher) when a saved change moved the settings, and
/// hands out the same one otherwise; the process's metrics and instance id stay (the
/// pacers are rebuilt with it: their state is in the database).
#[derive(Debug, Clone)]
pub struct LiveEngine {
    inner: Arc<LiveInner>,
}

#[derive(Debug)]
struct LiveInner {
    live: LiveSettings,
    metrics: Arc<crate::metrics::Metrics>,
    instance: String,
    /// The last engine built (its `settings` is the `Arc` it was built from).
    built: std::sync::Mutex<Arc<Engine>>,
}

impl LiveEngine {
    /// Reads the settings in effect and builds the first engine.
    pub async fn start(live: LiveSettings) -> anyhow::Result<LiveEngine> {
        let settings = live.current().await?;
        let metrics: Arc<crate::metrics::Metrics> = Arc::default();
        let instance = super::new_job_id().to_lowercase();
        let engine = Engine::build(
            settings,
            live.store().clone(),
            metrics.clone(),
            instance.clone(),
        )?;
        Ok(LiveEngine {
            inner: Arc::new(LiveInner {
                live,
                metrics,
                instance,
                built: std::sync::Mutex::new(engine),
            }),
        })
    }

    /// The engine for the settings in effect now: one `SELECT` of the settings version, and a
    /// new engine only when a saved change moved it.
    pub async fn current(&self) -> anyhow::Result<Arc<Engine>> {
        let settings = self.inner.live.current().await?;
        let last = self.latest();
        if Arc::ptr_eq(&last.settings, &settings) {
            return Ok(last);
        }
        let engine = Engine::build(
            settings,
            self.inner.live.store().clone(),
            self.inner.metrics.clone(),
            self.inner.instance.clone(),
        )?;
        let mut built = self
            .inner
            .built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !Arc::ptr_eq(&built.settings, &engine.settings) {
            tracing::info!("the settings changed: clients rebuilt");
            *built = engine.clone();
        }
        Ok(built.clone())
    }

    /// The last engine built, without looking for a change: for what only the file sets
    /// (`[worker]`, `[server]`, `[database]`), the store, the metrics and the instance.
    pub fn latest(&self) -> Arc<Engine> {
        self.inner
            .built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The live settings this engine follows.
    pub fn live(&self) -> &LiveSettings {
        &self.inner.live
    }

    /// The file's (and the environment's) settings alone.
    pub fn file(&self) -> &Settings {
        self.inner.live.file()
    }

    /// The process's store.
    pub fn store(&self) -> &Store {
        self.inner.live.store()
    }

    /// This process's counters.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.inner.metrics
    }

    /// This process's id in the claims it takes.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Runs the quick check with the current engine (a saved fix lets the deferred jobs go:
    /// [`crate::checks::quick_check`]).
    pub async fn quick_check(&self) -> anyhow::Result<Vec<crate::checks::CheckResult>> {
        Ok(self.current().await?.quick_check().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that sets the Zoom secret and leaves the rest of the credentials out.
    const ALMOST_BARE: &str = "[server]\nadmin_token = \"t\"\n[zoom]\nclient_secret = \"s\"\n";

    /// SPEC §8: a file without credentials builds an engine (no client for an unset service, no error),
    /// and the same engine is handed out until a saved change moves the settings; then a
    /// new one, with the process's metrics and instance kept.
    #[tokio::test]
    async fn a_saved_change_rebuilds_the_engine_once() {
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", folder.path().join("e.db").display());
        let settings =
            Settings::from_toml_str(&format!("[database]\nurl = {url:?}\n{ALMOST_BARE}"))
                .expect("valid");
        let live = crate::live::open(settings).await.expect("opens");
        let engine = LiveEngine::start(live.clone()).await.expect("starts");
        let first = engine.current().await.expect("current");
        let not_set = first.zoom().expect_err("no Zoom client");
        assert_eq!(not_set.keys, ["zoom.account_id", "zoom.client_id"]);
        assert!(first.groupware().is_err());
        assert!(Arc::ptr_eq(
            &first,
            &engine.current().await.expect("current")
        ));
        let mut tx = live.store().begin_write().await.expect("tx");
        live.save(
            &mut tx,
            &[
                ("zoom.account_id", "acc".to_owned()),
                ("zoom.client_id", "cid".to_owned()),
            ],
        )
        .await
        .expect("saved");
        tx.commit().await.expect("commit");
        let second = engine.current().await.expect("current");
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(second.zoom().is_ok());
        assert!(Arc::ptr_eq(&first.metrics, &second.metrics));
        assert_eq!(first.instance, second.instance);
        assert!(Arc::ptr_eq(
            &second,
            &engine.current().await.expect("current")
        ));
        live.store().close().await;
    }
}
