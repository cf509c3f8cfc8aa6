//! `jmotto-zoom migrate --to postgres://…` (SPEC §9, issue 11 item 5): a populated SQLite
//! deployment copied into an empty PostgreSQL database goes on there without creating any
//! meeting twice, and its scheduled jobs run.

use jmotto_zoom::{
    jobs::{CreateMeeting, Job},
    replay::{Fault, faults},
    store::{copy, db},
};

use crate::{
    helpers::{TestApp, spawn_app, spawn_app_with},
    postgres,
};

/// Meetings the fixture company gets (fixtures/COMPANY.md).
const FIXTURE_MEETINGS: usize = 16;

/// R-ONCE across a migration: meetings created on SQLite, creates deferred to midnight by
/// Zoom's host daily limit (scheduled jobs), and a console setting are copied; the service on
/// the copy runs the deferred creates (and only those) and a full sync creates nothing.
/// The source is untouched; a second copy into the now non-empty database is refused.
#[tokio::test]
async fn a_migrated_deployment_creates_nothing_twice_and_runs_its_scheduled_jobs() {
    let Some(target) = postgres::fresh_database().await else {
        return;
    };
    let mut source = spawn_app().await;
    source.zoom.inject(
        Fault::ZoomHostDaily { http_300: false },
        1,
        faults::zoom_create_for("tanaka@example.co.jp"),
    );
    source.sync().await;
    let rows = source.meetings().await;
    let created = rows.iter().filter(|r| r["state"] == "created").count();
    let deferred = rows.iter().filter(|r| r["state"] == "deferred").count();
    assert!(
        deferred > 0 && created + deferred == FIXTURE_MEETINGS,
        "{rows:#?}"
    );
    let waits = source.scheduled_run_times(CreateMeeting::QUEUE).await;
    assert_eq!(
        waits.len(),
        deferred,
        "each deferred create waits for midnight"
    );
    let form = [("sync.on_reschedule", "update".to_owned())];
    let mut tx = source.engine.store.begin_write().await.expect("write turn");
    source
        .live
        .live()
        .save(&mut tx, &form)
        .await
        .expect("saved");
    tx.commit().await.expect("committed");
    source.stop_worker().await;
    let from = source.engine.settings.database.url.clone();
    let before = db::query("SELECT count(*) FROM meetings")
        .scalar::<i64>(source.engine.store.db())
        .await
        .expect("rows");

    let copied = copy::sqlite_to_postgres(&from, &target)
        .await
        .expect("copied");
    assert!(
        copied.jobs >= u64::try_from(deferred).expect("small"),
        "{copied:?}"
    );
    let meetings_copied = copied
        .tables
        .iter()
        .find(|(table, _)| table == "meetings")
        .map(|(_, rows)| *rows);
    assert_eq!(meetings_copied, Some(u64::try_from(before).expect("small")));
    let refused = copy::sqlite_to_postgres(&from, &target).await;
    let message = format!("{:#}", refused.expect_err("the target is not empty now"));
    assert!(message.contains("not empty"), "{message}");
    let after = db::query("SELECT count(*) FROM meetings")
        .scalar::<i64>(source.engine.store.db())
        .await
        .expect("rows");
    assert_eq!(after, before, "the source is untouched");

    let copy = spawn_app_with(|settings| settings.database.url = target.clone()).await;
    let stored = jmotto_zoom::store::settings::load(copy.engine.store.db())
        .await
        .expect("settings");
    assert!(
        format!("{stored:?}").contains("sync.on_reschedule"),
        "the console setting was copied: {stored:?}"
    );
    assert_eq!(
        copy.scheduled_run_times(CreateMeeting::QUEUE).await.len(),
        deferred,
        "the scheduled jobs were copied as scheduled"
    );
    next_utc_day(&copy).await;
    copy.settle().await;
    assert_eq!(
        copy.creates().len(),
        deferred,
        "only the deferred creates ran on the copy"
    );
    copy.sync().await;
    next_utc_day(&copy).await;
    copy.settle().await;
    assert_eq!(
        copy.creates().len(),
        deferred,
        "a full sync creates nothing again"
    );
    let rows = copy.meetings().await;
    assert_eq!(
        rows.iter().filter(|r| r["state"] == "created").count(),
        FIXTURE_MEETINGS,
        "{rows:#?}"
    );
    copy.stop().await;
    source.stop().await;
}

/// The next UTC day, as far as the hosts' quota is concerned (the copied usage row says
/// tanaka's day is used up until midnight).
async fn next_utc_day(app: &TestApp) {
    db::query("DELETE FROM host_daily_usage")
        .execute(app.engine.store.db())
        .await
        .expect("a new day");
}
