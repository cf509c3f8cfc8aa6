//! `GET /metrics` in the Prometheus text format (version 0.0.4), encoded by
//! `prometheus-client`.
//!
//! Counters are counted in memory per process ([`Metrics`]): cumulative totals under a
//! process id. The worker writes its totals into the database (`metric_counters`, one row
//! per process and series, overwritten) every heartbeat and at shutdown, so a server in
//! another process shows the worker's calls. A scrape sums the database rows of every
//! *other* process and this process's own totals from memory — so a counter never goes down
//! while a flush is under way, and a flush interrupted half-way is simply redone. Gauges are
//! read live from the database (jobs by queue and state through `store::queue`, meetings by
//! state). A counter can lag a worker in another process by up to one heartbeat; a crash
//! loses at most one heartbeat's worth (metrics are not worth a write per call). Rows of
//! processes that ended keep their final totals, so the sums stay monotonic across restarts.
//!
//! Each scrape builds a fresh `Registry` from those numbers; the stored rows keep their
//! series as (sample name, `a="x",b="y"` label text), the format earlier versions wrote.

use std::{collections::BTreeMap, sync::Mutex};

use crate::store::{Store, db, queue};
use anyhow::Context;
use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet, prometheus_text},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

/// Calls to Zoom and J-MOTTO by endpoint and outcome.
pub const EXTERNAL_CALLS: &str = "jmz_external_calls_total";
/// Zoom 429s (and the HTTP 300 spelling of the per-host limit) by kind.
pub const ZOOM_RATE_LIMITED: &str = "jmz_zoom_rate_limited_total";
/// Webhook signature checks by outcome.
pub const WEBHOOK_VERIFICATIONS: &str = "jmz_webhook_verifications_total";
/// Seconds from the trigger (webhook, manual sync, poll) to the Zoom meeting's creation.
pub const TRIGGER_TO_MEETING: &str = "jmz_trigger_to_meeting_seconds";
/// Alert delivery attempts by alert type, channel and outcome (`sent`, `retrying`,
/// `failed`: SPEC §10).
pub const ALERTS: &str = "jmz_alerts_total";
/// A job whose run time passed this long ago without a worker taking it is overdue
/// (`jmz_jobs_overdue`): the queue is stuck or the workers are too few.
pub const OVERDUE_AFTER_SECONDS: i64 = 10 * 60;

/// The counter families, with their help lines (`prometheus-client` adds the period).
const COUNTERS: [(&str, &str); 4] = [
    (
        EXTERNAL_CALLS,
        "Calls to Zoom and J-MOTTO by service, endpoint and outcome",
    ),
    (
        ZOOM_RATE_LIMITED,
        "Zoom rate-limit answers by kind (per_second, account_daily, host_daily)",
    ),
    (
        WEBHOOK_VERIFICATIONS,
        "Webhook deliveries by verification outcome",
    ),
    (
        ALERTS,
        "Alert delivery attempts by type, channel and outcome (sent, retrying, failed)",
    ),
];

/// Upper bounds of the trigger-to-meeting histogram's buckets, in seconds.
const BUCKETS: [f64; 10] = [0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0];

/// Series key: the sample name and its stored label text (`a="x",b="y"`).
type Series = (String, String);

/// This process's counters (cumulative since the process started).
#[derive(Debug)]
pub struct Metrics {
    /// Identifies this process's rows in `metric_counters`.
    process: String,
    totals: Mutex<BTreeMap<Series, f64>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            process: ulid::Ulid::generate().to_string(),
            totals: Mutex::default(),
        }
    }
}

impl Metrics {
    /// Adds one to a counter.
    pub fn increment(&self, name: &'static str, labels: &[(&str, &str)]) {
        self.add(name.to_owned(), label_text(labels), 1.0);
    }

    /// Records one observation of the trigger-to-meeting histogram (stored cumulative:
    /// each bucket whose bound it is within, and `+Inf`).
    pub fn observe_trigger_to_meeting(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        for bound in BUCKETS.into_iter().filter(|bound| seconds <= *bound) {
            self.add(
                bucket_name(),
                label_text(&[("le", &bound.to_string())]),
                1.0,
            );
        }
        self.add(bucket_name(), label_text(&[("le", "+Inf")]), 1.0);
        self.add(format!("{TRIGGER_TO_MEETING}_sum"), String::new(), seconds);
        self.add(format!("{TRIGGER_TO_MEETING}_count"), String::new(), 1.0);
    }

    fn add(&self, name: String, labels: String, value: f64) {
        let mut totals = self
            .totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *totals.entry((name, labels)).or_insert(0.0) += value;
    }

    fn snapshot(&self) -> BTreeMap<Series, f64> {
        self.totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Writes this process's totals into the database (one write transaction, in the
    /// process's write turn, overwriting its previous flush). Idempotent: a failed or
    /// interrupted flush is redone by the next.
    pub async fn flush(&self, store: &Store) -> anyhow::Result<()> {
        let totals = self.snapshot();
        if totals.is_empty() {
            return Ok(());
        }
        let mut tx = store.begin_write().await.context("cannot flush metrics")?;
        for ((name, labels), value) in &totals {
            db::query(
                "INSERT INTO metric_counters (process, name, labels, value) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (process, name, labels) DO UPDATE SET value = excluded.value",
            )
            .bind(&self.process)
            .bind(name)
            .bind(labels)
            .bind(value)
            .execute(&mut *tx)
            .await
            .context("cannot flush metrics")?;
        }
        tx.commit().await.context("cannot flush metrics")
    }

    /// The exposition: every other process's stored totals plus this process's own, and the
    /// gauges. `enabled` is R-ENABLED now (`checks::disabled_reasons` is empty), shown as
    /// `jmz_enabled` 1 or 0 (the caller reads it: the checks sit above this module).
    pub async fn render(&self, store: &Store, enabled: bool) -> anyhow::Result<String> {
        let mut totals: BTreeMap<Series, f64> = BTreeMap::new();
        let stored: Vec<(String, String, f64)> = db::query(
            "SELECT name, labels, sum(value) FROM metric_counters WHERE process <> $1 \
             GROUP BY name, labels",
        )
        .bind(&self.process)
        .fetch_all(store.db())
        .await
        .context("cannot read the stored counters")?;
        for (name, labels, value) in stored {
            *totals.entry((name, labels)).or_insert(0.0) += value;
        }
        for (key, value) in self.snapshot() {
            *totals.entry(key).or_insert(0.0) += value;
        }
        let pool = store.db();
        let jobs = queue::count_jobs(pool).await?;
        let overdue_since = chrono::Utc::now().timestamp() - OVERDUE_AFTER_SECONDS;
        let overdue = queue::overdue_jobs(pool, overdue_since).await?;
        let meetings = crate::store::meetings::count_by_state(pool).await?;

        let mut registry = Registry::default();
        registry.register(
            "jmz_enabled",
            "1 when the integration is enabled (R-ENABLED), 0 when not",
            ConstGauge::new(i64::from(enabled)),
        );
        registry.register(
            "jmz_jobs",
            "Jobs in the queue by queue and state (pending = ready now, scheduled = later)",
            SortedFamily::new(
                jobs.by_queue_and_state().map(|(queue, state, count)| {
                    let labels = [("queue", queue), ("state", state.name())];
                    (owned(&labels), ConstGauge::new(count))
                }),
                MetricType::Gauge,
            ),
        );
        registry.register(
            "jmz_jobs_overdue",
            "Jobs ready to run for more than 10 minutes that no worker has taken",
            ConstGauge::new(overdue),
        );
        registry.register(
            "jmz_meetings",
            "Meeting rows by state, as GET /api/v1/meetings shows them",
            SortedFamily::new(
                meetings
                    .iter()
                    .map(|(state, count)| (owned(&[("state", state)]), ConstGauge::new(*count))),
                MetricType::Gauge,
            ),
        );
        for (name, help) in COUNTERS {
            let series = totals
                .iter()
                .filter(|((sample, _), _)| sample == name)
                .map(|((_, labels), value)| {
                    Ok((parse_label_text(labels)?, ConstCounter::new(*value as u64)))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            // `prometheus-client` appends `_total` to a counter's name.
            let family = name.strip_suffix("_total").unwrap_or(name);
            registry.register(
                family,
                help,
                SortedFamily::new(series.into_iter(), MetricType::Counter),
            );
        }
        registry.register(
            TRIGGER_TO_MEETING,
            "Seconds from the trigger of a sync to the creation of a Zoom meeting it decided",
            StoredHistogram::from_totals(&totals)?,
        );
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).context("cannot encode the metrics")?;
        Ok(text)
    }
}

fn owned(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn bucket_name() -> String {
    format!("{TRIGGER_TO_MEETING}_bucket")
}

/// One family's series in label order (`prometheus-client`'s `Family` lists them in hash
/// order, so two scrapes would differ for nothing).
#[derive(Debug)]
struct SortedFamily<M> {
    series: Vec<(Vec<(String, String)>, M)>,
    kind: MetricType,
}

impl<M> SortedFamily<M> {
    fn new(series: impl Iterator<Item = (Vec<(String, String)>, M)>, kind: MetricType) -> Self {
        let mut series: Vec<_> = series.collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        SortedFamily { series, kind }
    }
}

impl<M: EncodeMetric> EncodeMetric for SortedFamily<M> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, metric) in &self.series {
            metric.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }
}

/// The trigger-to-meeting histogram from summed totals (every bucket, zeros included, so
/// `rate()` sees each bucket's first increase).
#[derive(Debug)]
struct StoredHistogram {
    /// (upper bound, observations in this bucket only), finite bounds.
    buckets: Vec<(f64, u64)>,
    sum: f64,
    count: u64,
}

impl StoredHistogram {
    fn from_totals(totals: &BTreeMap<Series, f64>) -> anyhow::Result<StoredHistogram> {
        let total = |suffix: &str| {
            totals
                .get(&(format!("{TRIGGER_TO_MEETING}{suffix}"), String::new()))
                .copied()
                .unwrap_or(0.0)
        };
        let mut cumulative: BTreeMap<u64, f64> = BTreeMap::new();
        for ((name, labels), value) in totals {
            if *name != bucket_name() {
                continue;
            }
            let labels = parse_label_text(labels)?;
            let le = labels
                .iter()
                .find(|(key, _)| key == "le")
                .map(|(_, le)| le.as_str())
                .unwrap_or("+Inf");
            if let Ok(bound) = le.parse::<f64>()
                && bound.is_finite()
            {
                *cumulative.entry(bound.to_bits()).or_insert(0.0) += value;
            }
        }
        let mut below = 0;
        let buckets = BUCKETS
            .into_iter()
            .map(|bound| {
                let within = cumulative.get(&bound.to_bits()).copied().unwrap_or(0.0) as u64;
                let own = within.saturating_sub(below);
                below = below.max(within);
                (bound, own)
            })
            .collect();
        Ok(StoredHistogram {
            buckets,
            sum: total("_sum"),
            count: total("_count") as u64,
        })
    }
}

impl EncodeMetric for StoredHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// How a series' labels are stored in `metric_counters.labels`: `a="x",b="y"`, values
/// escaped as in the exposition (`\\`, `\"`, `\n`).
fn label_text(labels: &[(&str, &str)]) -> String {
    labels
        .iter()
        .map(|(key, value)| {
            let escaped = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{key}=\"{escaped}\"")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads [`label_text`] back; stored text it did not write is an error.
fn parse_label_text(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .with_context(|| format!("stored metric labels {text:?} are not key=\"value\""))?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, escaped)) => value.push(escaped),
                    None => anyhow::bail!("stored metric labels {text:?} end in an escape"),
                },
                Some((at, '"')) => break at,
                Some((_, c)) => value.push(c),
                None => anyhow::bail!("stored metric labels {text:?} are not closed"),
            }
        };
        labels.push((key.to_owned(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored label text reads back to what was written, escapes included.
    #[test]
    fn stored_labels_read_back() {
        let cases: [&[(&str, &str)]; 3] = [
            &[("a", "x"), ("b", "q\"\\\n,=")],
            &[],
            &[("endpoint", "POST /users/{userId}/meetings")],
        ];
        for labels in cases {
            let text = label_text(labels);
            let read: Vec<(String, String)> = parse_label_text(&text).expect("parses");
            let read: Vec<(&str, &str)> =
                read.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(read, labels, "{text}");
        }
        assert_eq!(
            label_text(&[("a", "x"), ("b", "q\"\\\n")]),
            "a=\"x\",b=\"q\\\"\\\\\\n\""
        );
        assert!(parse_label_text("a=\"x").is_err());
    }
}

#[cfg(test)]
mod flush_tests {
    use super::*;

    async fn pool() -> (tempfile::TempDir, crate::store::Store) {
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", folder.path().join("m.db").display());
        let store = crate::store::Store::connect(&url).await.expect("store");
        (folder, store)
    }

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    /// Two processes' counters add up; a flush never changes what a scrape shows; the
    /// totals of an ended process stay.
    #[tokio::test]
    async fn totals_add_up_across_processes_and_flushes() {
        let (_folder, store) = pool().await;
        let worker = Metrics::default();
        let server = Metrics::default();
        let calls = "jmz_external_calls_total{service=\"zoom\",endpoint=\"x\",outcome=\"ok\"}";
        for _ in 0..3 {
            worker.increment(
                EXTERNAL_CALLS,
                &[("service", "zoom"), ("endpoint", "x"), ("outcome", "ok")],
            );
        }
        server.increment(
            EXTERNAL_CALLS,
            &[("service", "zoom"), ("endpoint", "x"), ("outcome", "ok")],
        );
        async fn seen(m: &Metrics, store: &Store, series: &str) -> Option<f64> {
            sample(&m.render(store, true).await.expect("render"), series)
        }
        assert_eq!(
            seen(&worker, &store, calls).await,
            Some(3.0),
            "own totals before any flush"
        );
        assert_eq!(
            seen(&server, &store, calls).await,
            Some(1.0),
            "the worker has not flushed yet"
        );
        worker.flush(&store).await.expect("flush");
        worker
            .flush(&store)
            .await
            .expect("a second flush changes nothing");
        assert_eq!(seen(&worker, &store, calls).await, Some(3.0));
        assert_eq!(seen(&server, &store, calls).await, Some(4.0));
        worker.increment(
            EXTERNAL_CALLS,
            &[("service", "zoom"), ("endpoint", "x"), ("outcome", "ok")],
        );
        worker.flush(&store).await.expect("flush");
        drop(worker);
        assert_eq!(
            seen(&server, &store, calls).await,
            Some(5.0),
            "an ended process's totals stay"
        );
        let text = server.render(&store, true).await.expect("render");
        assert!(
            text.contains("jmz_trigger_to_meeting_seconds_bucket{le=\"0.5\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("jmz_trigger_to_meeting_seconds_count 0"),
            "{text}"
        );
        store.close().await;
    }
}

#[cfg(test)]
mod exposition_tests {
    use super::*;

    /// SPEC §5 `/metrics`: every family's name, type, labels and sample lines, as the text
    /// format 0.0.4 names them (counters' `# TYPE` names end in `_total`).
    #[tokio::test]
    async fn exposition_keeps_every_name_label_and_type() {
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", folder.path().join("e.db").display());
        let store = crate::store::Store::connect(&url).await.expect("store");
        let metrics = Metrics::default();
        metrics.increment(
            EXTERNAL_CALLS,
            &[
                ("service", "zoom"),
                ("endpoint", "POST /users/{userId}/meetings"),
                ("outcome", "ok"),
            ],
        );
        metrics.increment(ZOOM_RATE_LIMITED, &[("kind", "per_second")]);
        metrics.increment(WEBHOOK_VERIFICATIONS, &[("outcome", "ok")]);
        metrics.observe_trigger_to_meeting(2.0);
        metrics.observe_trigger_to_meeting(40.0);
        metrics.increment(
            ALERTS,
            &[
                ("type", "integration.disabled"),
                ("channel", "email"),
                ("outcome", "sent"),
            ],
        );
        let text = metrics.render(&store, false).await.expect("render");
        let meetings: String = [
            "created",
            "deferred",
            "deleted",
            "failed",
            "pending",
            "skipped",
            "superseded",
        ]
        .iter()
        .map(|state| format!("jmz_meetings{{state=\"{state}\"}} 0\n"))
        .collect();
        let expected = format!(
            r#"# HELP jmz_enabled 1 when the integration is enabled (R-ENABLED), 0 when not.
# TYPE jmz_enabled gauge
jmz_enabled 0
# HELP jmz_jobs Jobs in the queue by queue and state (pending = ready now, scheduled = later).
# TYPE jmz_jobs gauge
# HELP jmz_jobs_overdue Jobs ready to run for more than 10 minutes that no worker has taken.
# TYPE jmz_jobs_overdue gauge
jmz_jobs_overdue 0
# HELP jmz_meetings Meeting rows by state, as GET /api/v1/meetings shows them.
# TYPE jmz_meetings gauge
{meetings}# HELP jmz_external_calls_total Calls to Zoom and J-MOTTO by service, endpoint and outcome.
# TYPE jmz_external_calls_total counter
jmz_external_calls_total{{service="zoom",endpoint="POST /users/{{userId}}/meetings",outcome="ok"}} 1
# HELP jmz_zoom_rate_limited_total Zoom rate-limit answers by kind (per_second, account_daily, host_daily).
# TYPE jmz_zoom_rate_limited_total counter
jmz_zoom_rate_limited_total{{kind="per_second"}} 1
# HELP jmz_webhook_verifications_total Webhook deliveries by verification outcome.
# TYPE jmz_webhook_verifications_total counter
jmz_webhook_verifications_total{{outcome="ok"}} 1
# HELP jmz_alerts_total Alert delivery attempts by type, channel and outcome (sent, retrying, failed).
# TYPE jmz_alerts_total counter
jmz_alerts_total{{type="integration.disabled",channel="email",outcome="sent"}} 1
# HELP jmz_trigger_to_meeting_seconds Seconds from the trigger of a sync to the creation of a Zoom meeting it decided.
# TYPE jmz_trigger_to_meeting_seconds histogram
jmz_trigger_to_meeting_seconds_bucket{{le="0.5"}} 0
jmz_trigger_to_meeting_seconds_bucket{{le="1"}} 0
jmz_trigger_to_meeting_seconds_bucket{{le="2.5"}} 1
jmz_trigger_to_meeting_seconds_bucket{{le="5"}} 1
jmz_trigger_to_meeting_seconds_bucket{{le="10"}} 1
jmz_trigger_to_meeting_seconds_bucket{{le="30"}} 1
jmz_trigger_to_meeting_seconds_bucket{{le="60"}} 2
jmz_trigger_to_meeting_seconds_bucket{{le="300"}} 2
jmz_trigger_to_meeting_seconds_bucket{{le="3600"}} 2
jmz_trigger_to_meeting_seconds_bucket{{le="86400"}} 2
jmz_trigger_to_meeting_seconds_bucket{{le="+Inf"}} 2
jmz_trigger_to_meeting_seconds_sum 42.0
jmz_trigger_to_meeting_seconds_count 2
"#
        );
        assert_eq!(text, expected);
        store.close().await;
    }
}
