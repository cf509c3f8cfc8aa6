//! `GET /metrics` in the Prometheus text format (version 0.0.4).
//!
//! Counters are counted in memory per process ([`Metrics`]): cumulative totals under a
//! process id. The worker writes its totals into the database (`metric_counters`, one row
//! per process and series, overwritten) every heartbeat and at shutdown, so a server in
//! another process shows the worker's calls. A scrape sums the database rows of every
//! *other* process and this process's own totals from memory — so a counter never goes down
//! while a flush is under way, and a flush interrupted half-way is simply redone. Gauges are
//! read live from the database (jobs by queue and state, meetings by state). A counter can
//! lag a worker in another process by up to one heartbeat; a crash loses at most one
//! heartbeat's worth (metrics are not worth a write per call). Rows of processes that ended
//! keep their final totals, so the sums stay monotonic across restarts.

use std::{collections::BTreeMap, fmt::Write as _, sync::Mutex};

use anyhow::Context;
use sqlx::SqlitePool;

/// A metric family: its name, type and help line.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

/// Calls to Zoom and J-MOTTO by endpoint and outcome.
pub const EXTERNAL_CALLS: &str = "jmz_external_calls_total";
/// Zoom 429s (and the HTTP 300 spelling of the per-host limit) by kind.
pub const ZOOM_RATE_LIMITED: &str = "jmz_zoom_rate_limited_total";
/// Webhook signature checks by outcome.
pub const WEBHOOK_VERIFICATIONS: &str = "jmz_webhook_verifications_total";
/// Seconds from the trigger (webhook, manual sync, poll) to the Zoom meeting's creation.
pub const TRIGGER_TO_MEETING: &str = "jmz_trigger_to_meeting_seconds";

const FAMILIES: [Family; 6] = [
    Family {
        name: "jmz_jobs",
        kind: "gauge",
        help: "Jobs in the queue by queue and state (pending = ready now, scheduled = later).",
    },
    Family {
        name: "jmz_meetings",
        kind: "gauge",
        help: "Meeting rows by state, as GET /api/v1/meetings shows them.",
    },
    Family {
        name: EXTERNAL_CALLS,
        kind: "counter",
        help: "Calls to Zoom and J-MOTTO by service, endpoint and outcome.",
    },
    Family {
        name: ZOOM_RATE_LIMITED,
        kind: "counter",
        help: "Zoom rate-limit answers by kind (per_second, account_daily, host_daily).",
    },
    Family {
        name: WEBHOOK_VERIFICATIONS,
        kind: "counter",
        help: "Webhook deliveries by verification outcome.",
    },
    Family {
        name: TRIGGER_TO_MEETING,
        kind: "histogram",
        help: "Seconds from the trigger of a sync to the creation of a Zoom meeting it decided.",
    },
];

/// Upper bounds of the trigger-to-meeting histogram's buckets, in seconds.
const BUCKETS: [f64; 10] = [0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0];

/// Series key: the sample name and its rendered label set (`a="x",b="y"`).
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
        self.add(name.to_owned(), render_labels(labels), 1.0);
    }

    /// Records one observation of the trigger-to-meeting histogram.
    pub fn observe_trigger_to_meeting(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        for bound in BUCKETS {
            if seconds <= bound {
                let le = format_number(bound);
                self.add(
                    format!("{TRIGGER_TO_MEETING}_bucket"),
                    render_labels(&[("le", &le)]),
                    1.0,
                );
            }
        }
        let all = render_labels(&[("le", "+Inf")]);
        self.add(format!("{TRIGGER_TO_MEETING}_bucket"), all, 1.0);
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

    /// Writes this process's totals into the database (one transaction, overwriting its
    /// previous flush). Idempotent: a failed or interrupted flush is redone by the next.
    pub async fn flush(&self, pool: &SqlitePool) -> anyhow::Result<()> {
        let totals = self.snapshot();
        if totals.is_empty() {
            return Ok(());
        }
        write_totals(pool, &self.process, &totals).await
    }

    /// The exposition: every other process's stored totals plus this process's own, and the
    /// gauges.
    pub async fn render(&self, pool: &SqlitePool) -> anyhow::Result<String> {
        let mut series: BTreeMap<Series, f64> = BTreeMap::new();
        let stored: Vec<(String, String, f64)> = sqlx::query_as(
            "SELECT name, labels, sum(value) FROM metric_counters WHERE process <> ? \
             GROUP BY name, labels",
        )
        .bind(&self.process)
        .fetch_all(pool)
        .await
        .context("cannot read the stored counters")?;
        for (name, labels, value) in stored {
            *series.entry((name, labels)).or_insert(0.0) += value;
        }
        for (key, value) in self.snapshot() {
            *series.entry(key).or_insert(0.0) += value;
        }
        // Every bucket from the start (zeros), so rate() sees each bucket's first increase.
        for bound in BUCKETS
            .map(format_number)
            .into_iter()
            .chain(["+Inf".to_owned()])
        {
            series
                .entry((
                    format!("{TRIGGER_TO_MEETING}_bucket"),
                    render_labels(&[("le", &bound)]),
                ))
                .or_insert(0.0);
        }
        for suffix in ["_sum", "_count"] {
            series
                .entry((format!("{TRIGGER_TO_MEETING}{suffix}"), String::new()))
                .or_insert(0.0);
        }
        for (queue, state, count) in job_gauges(pool).await? {
            let labels = render_labels(&[("queue", &queue), ("state", &state)]);
            series.insert(("jmz_jobs".to_owned(), labels), count);
        }
        for (state, count) in crate::store::meetings::count_by_state(pool).await? {
            let labels = render_labels(&[("state", &state)]);
            series.insert(("jmz_meetings".to_owned(), labels), count as f64);
        }
        let mut text = String::new();
        for family in FAMILIES {
            let _ = writeln!(text, "# HELP {} {}", family.name, family.help);
            let _ = writeln!(text, "# TYPE {} {}", family.name, family.kind);
            let mut samples: Vec<(&Series, &f64)> = series
                .iter()
                .filter(|((name, _), _)| family_of(name) == family.name)
                .collect();
            // A histogram's buckets must come in increasing `le` order, before sum and count.
            samples.sort_by(|(a, _), (b, _)| {
                let (a, b) = (sample_order(a), sample_order(b));
                a.0.cmp(&b.0).then(a.1.total_cmp(&b.1))
            });
            for ((name, labels), value) in samples {
                if labels.is_empty() {
                    let _ = writeln!(text, "{name} {}", format_number(*value));
                } else {
                    let _ = writeln!(text, "{name}{{{labels}}} {}", format_number(*value));
                }
            }
        }
        Ok(text)
    }
}

async fn write_totals(
    pool: &SqlitePool,
    process: &str,
    totals: &BTreeMap<Series, f64>,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await.context("cannot flush metrics")?;
    for ((name, labels), value) in totals {
        sqlx::query(
            "INSERT INTO metric_counters (process, name, labels, value) VALUES (?, ?, ?, ?) \
             ON CONFLICT (process, name, labels) DO UPDATE SET value = excluded.value",
        )
        .bind(process)
        .bind(name)
        .bind(labels)
        .bind(value)
        .execute(&mut *tx)
        .await
        .context("cannot flush metrics")?;
    }
    tx.commit().await.context("cannot flush metrics")
}

/// Jobs of our queues by queue and state: `pending` (ready now), `scheduled` (later),
/// `running`, `done`, `failed`, `killed`.
async fn job_gauges(pool: &SqlitePool) -> anyhow::Result<Vec<(String, String, f64)>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT job_type, CASE \
             WHEN status IN ('Pending', 'Queued') AND run_at > unixepoch() THEN 'scheduled' \
             WHEN status IN ('Pending', 'Queued') THEN 'pending' \
             ELSE lower(status) END AS state, count(*) \
         FROM Jobs WHERE job_type LIKE 'jmz.%' GROUP BY 1, 2",
    )
    .fetch_all(pool)
    .await
    .context("cannot count jobs")?;
    Ok(rows
        .into_iter()
        .map(|(queue, state, count)| (queue, state, count as f64))
        .collect())
}

fn family_of(sample: &str) -> &str {
    let is_histogram_sample = ["_bucket", "_sum", "_count"]
        .iter()
        .any(|suffix| sample.strip_suffix(suffix) == Some(TRIGGER_TO_MEETING));
    if is_histogram_sample {
        TRIGGER_TO_MEETING
    } else {
        sample
    }
}

/// Order within a family: buckets by bound (`+Inf` last), then sum, then count; other
/// samples keep their label order.
fn sample_order((name, labels): &Series) -> (u8, f64) {
    if name.ends_with("_bucket") {
        let le = labels
            .strip_prefix("le=\"")
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or("+Inf");
        return (0, le.parse::<f64>().unwrap_or(f64::INFINITY));
    }
    if name.ends_with("_sum") {
        return (1, 0.0);
    }
    if name.ends_with("_count") {
        return (2, 0.0);
    }
    (0, 0.0)
}

/// `a="x",b="y"` with Prometheus escaping of `\`, `"` and newlines.
fn render_labels(labels: &[(&str, &str)]) -> String {
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

fn format_number(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(
            render_labels(&[("a", "x"), ("b", "q\"\\\n")]),
            "a=\"x\",b=\"q\\\"\\\\\\n\""
        );
        assert_eq!(render_labels(&[]), "");
    }

    #[test]
    fn histogram_samples_belong_to_their_family_in_order() {
        assert_eq!(
            family_of("jmz_trigger_to_meeting_seconds_bucket"),
            TRIGGER_TO_MEETING
        );
        assert_eq!(
            family_of("jmz_trigger_to_meeting_seconds_count"),
            TRIGGER_TO_MEETING
        );
        assert_eq!(family_of(EXTERNAL_CALLS), EXTERNAL_CALLS);
        let bucket = |le: &str| {
            (
                format!("{TRIGGER_TO_MEETING}_bucket"),
                render_labels(&[("le", le)]),
            )
        };
        assert!(sample_order(&bucket("0.5")) < sample_order(&bucket("10")));
        assert!(sample_order(&bucket("86400")) < sample_order(&bucket("+Inf")));
        let sum = (format!("{TRIGGER_TO_MEETING}_sum"), String::new());
        let count = (format!("{TRIGGER_TO_MEETING}_count"), String::new());
        assert!(sample_order(&bucket("+Inf")).1.is_infinite());
        assert!(sample_order(&bucket("+Inf")).0 < sample_order(&sum).0);
        assert!(sample_order(&sum).0 < sample_order(&count).0);
    }

    #[test]
    fn numbers_render_as_prometheus_reads_them() {
        assert_eq!(format_number(3.0), "3");
        assert_eq!(format_number(0.5), "0.5");
        assert_eq!(format_number(f64::INFINITY), "+Inf");
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
        async fn seen(m: &Metrics, pool: &SqlitePool, series: &str) -> Option<f64> {
            sample(&m.render(pool).await.expect("render"), series)
        }
        assert_eq!(
            seen(&worker, store.pool(), calls).await,
            Some(3.0),
            "own totals before any flush"
        );
        assert_eq!(
            seen(&server, store.pool(), calls).await,
            Some(1.0),
            "the worker has not flushed yet"
        );
        worker.flush(store.pool()).await.expect("flush");
        worker
            .flush(store.pool())
            .await
            .expect("a second flush changes nothing");
        assert_eq!(seen(&worker, store.pool(), calls).await, Some(3.0));
        assert_eq!(seen(&server, store.pool(), calls).await, Some(4.0));
        worker.increment(
            EXTERNAL_CALLS,
            &[("service", "zoom"), ("endpoint", "x"), ("outcome", "ok")],
        );
        worker.flush(store.pool()).await.expect("flush");
        drop(worker);
        assert_eq!(
            seen(&server, store.pool(), calls).await,
            Some(5.0),
            "an ended process's totals stay"
        );
        let text = server.render(store.pool()).await.expect("render");
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
