//! PostgreSQL down in the middle of a sync (SPEC §9, issue 11 item 4): `/readyz` and
//! webhooks answer 503 while it lasts (never a 202 that did not commit), the worker keeps
//! running and reconnects by itself, and every meeting is created once.

use std::time::{Duration, Instant};

use jmotto_zoom::{
    cli::demo::DEMO_WEBHOOK_SECRET,
    replay::{Fault, faults},
};

use crate::{
    faults::assert_each_meeting_once,
    helpers::spawn_app_with,
    postgres,
    webhooks::{deliver_signed, event},
};

/// Meetings the fixture company gets (fixtures/COMPANY.md).
const FIXTURE_MEETINGS: usize = 16;

async fn readyz(app: &crate::helpers::TestApp) -> u16 {
    app.http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .map(|answer| answer.status().as_u16())
        .unwrap_or(0)
}

/// R-ONCE and SPEC §9 outages: Zoom's creates are slow, so PostgreSQL stops while some are
/// in flight; while it is down `/readyz` and a webhook answer 503, and the worker does not
/// end; once it is back, `/readyz` answers 200 again by itself, the webhook is taken (202),
/// and the sync ends with each meeting created exactly once.
#[tokio::test]
async fn postgres_stopped_mid_sync_answers_503_and_every_meeting_is_created_once() {
    if std::env::var("JMZ_TEST_LOG").is_ok() {
        jmotto_zoom::telemetry::init("info", jmotto_zoom::config::LogFormat::Text);
    }
    let Some(cluster) = postgres::private().expect("a PostgreSQL for the outage test") else {
        return;
    };
    let url = cluster.create_database().await.expect("database");
    let mut app = spawn_app_with(|settings| settings.database.url = url.clone()).await;
    app.zoom.inject(
        Fault::Delay(Duration::from_millis(1500)),
        6,
        faults::zoom_create,
    );
    app.api.trigger_sync(None).await.expect("sync accepted");
    let started = Instant::now();
    while app.zoom.request_count(faults::zoom_create) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no create began"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.stop().expect("PostgreSQL stops");

    assert_eq!(
        readyz(&app).await,
        503,
        "not ready while PostgreSQL is down"
    );
    let (status, answer) =
        deliver_signed(&app, DEMO_WEBHOOK_SECRET, "msg_outage", event(&["10002"])).await;
    assert_eq!(status, 503, "{answer}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        app.worker_ended_within(Duration::from_millis(10))
            .await
            .is_none(),
        "the worker keeps running while PostgreSQL is down"
    );

    cluster.start().expect("PostgreSQL starts again");
    let back = Instant::now();
    while readyz(&app).await != 200 {
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, answer) =
        deliver_signed(&app, DEMO_WEBHOOK_SECRET, "msg_after", event(&["10002"])).await;
    assert_eq!(status, 202, "{answer}");
    app.settle().await;
    assert_each_meeting_once(&app, FIXTURE_MEETINGS).await;
    app.stop().await;
}
