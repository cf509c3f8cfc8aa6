//! SPEC §8 "Where settings live" and issue 10 items 2 and 5: every process runs on the live
//! settings (the file over what the console stored), a change saved in the database is used
//! by a running worker at its next job, the integration waits while it is 無効 and goes on
//! once a check passes, and the secrets the console stores are never seen in clear.

use std::time::Duration;

use jmotto_zoom::{
    cli::{AdminClient, demo::DEMO_ADMIN_TOKEN},
    config::{DeletePolicy, ReschedulePolicy, Settings},
    live::LiveSettings,
    replay::{Fault, RecordedRequest, ReplayServer, company, faults},
    secrets::SecretKey,
    store::{Store, settings::StoredUser},
    zoom::ZoomError,
};
use secrecy::SecretString;
use serde_json::json;

use crate::{
    binaries::{start_replays, start_run, write_config},
    helpers::{DECEMBER, NOVEMBER, TestApp, edit_replay_entry, spawn_app_with},
};

/// A `server.secret_key` for the tests (base64 of 32 bytes).
const SECRET_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The meetings the fixture company's sync creates.
const FIXTURE_MEETINGS: usize = 16;

/// Saves one form through the console's API of the settings, as the console does.
async fn save(live: &LiveSettings, form: &[(&str, &str)]) {
    let form: Vec<(&str, String)> = form.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    let mut tx = live.store().begin_write().await.expect("write turn");
    live.save(&mut tx, &form).await.expect("saved");
    tx.commit().await.expect("committed");
}

/// The Zoom creates and PATCHes a replay received.
fn zoom_writes(zoom: &ReplayServer, method: &str) -> Vec<RecordedRequest> {
    zoom.requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v2/meetings") || r.path.ends_with("/meetings"))
        .filter(|r| r.method == method)
        .collect()
}

/// Everything the database of `url` stores: on SQLite its file and WAL, read whole; on
/// PostgreSQL every row of every table of ours, as text.
async fn database_bytes(url: &str) -> Vec<u8> {
    if jmotto_zoom::config::is_postgres_url(url) {
        let store = Store::connect(url).await.expect("database opens");
        let tables: Vec<String> = jmotto_zoom::store::db::query(
            "SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .scalars(store.db())
        .await
        .expect("tables");
        let mut text = String::new();
        for table in tables {
            let rows: Option<String> = jmotto_zoom::store::db::query_owned(format!(
                "SELECT string_agg(t::TEXT, ' ') FROM \"{table}\" t"
            ))
            .scalar(store.db())
            .await
            .expect("rows");
            text.push_str(&rows.unwrap_or_default());
        }
        store.close().await;
        return text.into_bytes();
    }
    let path = url.trim_start_matches("sqlite://");
    let mut bytes = std::fs::read(path).expect("database file");
    if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
        bytes.extend(wal);
    }
    bytes
}

/// The most attempts any meeting row counts.
async fn most_attempts(app: &TestApp) -> i64 {
    jmotto_zoom::store::db::query("SELECT COALESCE(MAX(attempts), 0) FROM meetings")
        .scalar(app.engine.store.db())
        .await
        .expect("attempts")
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Polls `status` until `done` holds (at most 30 s).
async fn status_until(
    client: &AdminClient,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.get("/api/v1/status").await.expect("status");
        if done(&status) {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// R-RESCHEDULE and SPEC §8: `jmotto-zoom run` is started with a file that leaves the Zoom
/// secret and `sync.on_reschedule` out. The test process saves the secret in the database:
/// the running process checks it at once and is 有効. After a first sync it saves
/// `on_reschedule = "update"`; the next sync of the same, unrestarted process PATCHes the
/// moved entry's meeting instead of creating one. No log line, no API answer and no byte of
/// the database holds the secret in clear.
#[tokio::test]
async fn a_running_worker_uses_a_saved_change_at_its_next_job() {
    let (jmotto, zoom) = start_replays().await;
    let folder = tempfile::tempdir().expect("temp dir");
    let (config, listen) = write_config(&folder, &jmotto, &zoom).await;
    let text = std::fs::read_to_string(&config).expect("config");
    let secret_line = format!("client_secret = \"{}\"\n", company::ZOOM_CLIENT_SECRET);
    assert!(text.contains(&secret_line) && !text.contains("on_reschedule"));
    let text = text.replace(&secret_line, "").replace(
        "[server]\n",
        &format!("[server]\nsecret_key = \"{SECRET_KEY}\"\n"),
    );
    std::fs::write(&config, text).expect("config written");
    let (run, logs) = start_run(&config, &listen, &[("RUST_LOG", "trace")]).await;
    let client = AdminClient::new(format!("http://{listen}"), DEMO_ADMIN_TOKEN).expect("client");
    let status = status_until(&client, |s| {
        !s["checks"].as_array().is_none_or(Vec::is_empty)
    })
    .await;
    assert_eq!(status["enabled"], json!(false));
    assert!(
        status["reasons"].to_string().contains("zoom.client_secret"),
        "{status:#}"
    );

    // The console's save, from another process on the same database file.
    let settings = Settings::load(&config).expect("settings");
    let store = Store::connect(&settings.database.url).await.expect("store");
    let live = LiveSettings::new(settings, store);
    save(
        &live,
        &[("zoom.client_secret", company::ZOOM_CLIENT_SECRET)],
    )
    .await;
    status_until(&client, |s| s["enabled"] == json!(true)).await;

    client.trigger_sync(None).await.expect("sync");
    let _: serde_json::Value = client
        .wait_until_idle(Duration::from_secs(60))
        .await
        .expect("idle");
    assert_eq!(zoom_writes(&zoom, "POST").len(), FIXTURE_MEETINGS);

    save(&live, &[("sync.on_reschedule", "update")]).await;
    edit_replay_entry(&jmotto, &["10002"], NOVEMBER, "8801", |entry| {
        entry["start"] = json!("2026-11-26T15:00:00");
        entry["end"] = json!("2026-11-26T16:30:00");
        true
    });
    client.trigger_sync(None).await.expect("sync");
    let _: serde_json::Value = client
        .wait_until_idle(Duration::from_secs(60))
        .await
        .expect("idle");
    assert_eq!(
        zoom_writes(&zoom, "POST").len(),
        FIXTURE_MEETINGS,
        "no new meeting"
    );
    let patches = zoom_writes(&zoom, "PATCH");
    assert_eq!(patches.len(), 1, "{patches:#?}");

    // SPEC §4, §8: the secret the console stored is nowhere in clear.
    let answers = format!(
        "{}{}",
        client.get("/api/v1/status").await.expect("status"),
        client.get("/api/v1/meetings").await.expect("meetings")
    );
    assert!(!answers.contains(company::ZOOM_CLIENT_SECRET));
    assert!(!contains(
        &database_bytes(&live.file().database.url).await,
        company::ZOOM_CLIENT_SECRET
    ));
    live.store().close().await;
    super::binaries::stop_run(run).await;
    let logs = logs.await.expect("logs");
    assert!(logs.contains("TRACE"), "trace logging was on");
    assert!(
        !logs.contains(company::ZOOM_CLIENT_SECRET),
        "a log line carries the stored secret"
    );
    jmotto.stop().await;
    zoom.stop().await;
}

/// Issue 10 item 5: a create that meets Zoom's refusal of the credentials (a 401 that a new
/// token does not cure) records the Zoom check as failed and waits, attempt given back; the
/// other creates then wait without calling Zoom. A passing quick check lets them all go:
/// each meeting is created once (R-ONCE).
#[tokio::test]
async fn a_refused_token_makes_every_create_wait_until_a_check_passes() {
    let app = spawn_app_with(|settings| settings.worker.concurrency = 1).await;
    app.zoom
        .inject(Fault::ZoomExpiredToken, 2, faults::zoom_create);
    app.sync().await;
    assert_eq!(app.zoom.faulted().len(), 2, "one create refused twice");
    assert_every_create_waits(&app).await;
    let checks = app.live.quick_check().await.expect("checked");
    assert!(checks[0].ok, "{checks:?}");
    assert_each_meeting_created_once(&app).await;
    app.stop().await;
}

/// The app whose file leaves the Zoom secret out (the console sets it), with a secret key.
async fn app_without_zoom_secret() -> TestApp {
    spawn_app_with(|settings| {
        settings.zoom.client_secret = SecretString::from("");
        settings.file_keys.remove("zoom.client_secret");
        settings.server.secret_key = Some(SecretKey::parse(SECRET_KEY).expect("a key"));
    })
    .await
}

/// Issue 10 item 5: every meeting of the sync waits `deferred` with the reason
/// `integration_disabled`, no attempt counted, and status says 無効.
async fn assert_every_create_waits(app: &TestApp) {
    let meetings = app.meetings().await;
    let waiting: Vec<_> = meetings
        .iter()
        .filter(|m| m["state"] == "deferred")
        .collect();
    assert_eq!(waiting.len(), FIXTURE_MEETINGS, "{meetings:#?}");
    assert!(
        waiting.iter().all(|m| m["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("integration_disabled"))),
        "{waiting:#?}"
    );
    assert_eq!(
        most_attempts(app).await,
        0,
        "no attempt counted while waiting"
    );
    let status = app.api.status().await.expect("status");
    assert!(!status.enabled);
}

/// R-ONCE after a fix: the waits were released (not advanced: no scheduled job is left to
/// wait for), and each meeting is created once.
async fn assert_each_meeting_created_once(app: &TestApp) {
    app.drain().await;
    assert_eq!(app.stored_per_marker().len(), FIXTURE_MEETINGS);
    assert!(app.stored_per_marker().values().all(|&count| count == 1));
    assert_eq!(app.count_in_state("created").await, FIXTURE_MEETINGS);
}

/// Issue 10 item 5, R-ONCE: with a wrong Zoom secret saved the integration is 無効, and the
/// creates wait deferred (not failed, no attempt counted, the reason shown) without calling
/// Zoom. Saving the right secret and running the quick check releases them at once: each
/// meeting is created once. The database file never holds either secret in clear.
#[tokio::test]
async fn creates_wait_while_disabled_and_a_fix_creates_each_once() {
    let app = app_without_zoom_secret().await;
    let live = app.live.live();
    save(live, &[("zoom.client_secret", "a-wrong-zoom-secret")]).await;
    let checks = app.live.quick_check().await.expect("checked");
    assert!(!checks[0].ok, "{checks:?}");
    app.sync().await;
    assert!(app.creates().is_empty(), "no create while disabled");
    assert_every_create_waits(&app).await;

    save(live, &[("zoom.client_secret", company::ZOOM_CLIENT_SECRET)]).await;
    let checks = app.live.quick_check().await.expect("checked");
    assert!(checks[0].ok, "{checks:?}");
    assert_each_meeting_created_once(&app).await;

    let bytes = database_bytes(&app.engine.settings.database.url).await;
    assert!(
        contains(&bytes, "@example.co.jp"),
        "the stored rows were read"
    );
    for secret in ["a-wrong-zoom-secret", company::ZOOM_CLIENT_SECRET] {
        assert!(!contains(&bytes, secret), "{secret} in the database");
    }
    app.stop().await;
}

/// SPEC §8: a file with only `[database]` and `[server]` starts `run`; status says 無効 and
/// names each credential the console still has to set.
#[tokio::test]
async fn a_bare_file_starts_and_status_names_what_is_missing() {
    let folder = tempfile::tempdir().expect("temp dir");
    let listen = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        listener.local_addr().expect("address").to_string()
    };
    let config = folder.path().join("bare.toml");
    let database = crate::helpers::test_database(&folder).await;
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{database}\"\n[server]\nlisten = \"{listen}\"\nadmin_token = \"{DEMO_ADMIN_TOKEN}\"\n"
        ),
    )
    .expect("config written");
    let (run, _logs) = start_run(&config, &listen, &[]).await;
    let client = AdminClient::new(format!("http://{listen}"), DEMO_ADMIN_TOKEN).expect("client");
    let status = client.get("/api/v1/status").await.expect("status");
    assert_eq!(status["enabled"], json!(false));
    let reasons = status["reasons"].to_string();
    for key in jmotto_zoom::config::CREDENTIAL_KEYS {
        assert!(reasons.contains(key), "{key}: {status:#}");
    }
    assert!(reasons.contains("no user is enabled"), "{status:#}");
    super::binaries::stop_run(run).await;
}

/// Issue 10 item 7, SPEC §3: `doctor` reads the live settings too. With a file that sets only
/// the database, the server and where the services are, and every credential and user
/// entered in the console (stored in the database), doctor passes and says 有効.
#[tokio::test]
async fn doctor_passes_a_setup_made_in_the_console() {
    let (jmotto, zoom) = start_replays().await;
    // R-ACCESS: the fixture company's user 10005 shares its schedule here.
    jmotto.set_events("10005", NOVEMBER.0, NOVEMBER.1, 1, json!([]), None);
    let folder = tempfile::tempdir().expect("temp dir");
    let config = folder.path().join("console.toml");
    let database = crate::helpers::test_database(&folder).await;
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{database}\"\n[server]\nadmin_token = \"{DEMO_ADMIN_TOKEN}\"\nsecret_key = \"{SECRET_KEY}\"\n\
             [zoom]\noauth_url = \"{zoom}/oauth/token\"\napi_url = \"{zoom}/v2\"\n[clock]\nnow = \"{now}\"\n",
            zoom = zoom.base_url(),
            now = company::RECORDED_AT,
        ),
    )
    .expect("config written");
    let live = jmotto_zoom::live::open(Settings::load(&config).expect("settings"))
        .await
        .expect("opens");
    let base_url = format!("{}{}", jmotto.base_url(), company::JMOTTO_BASE_PATH);
    save(
        &live,
        &[
            ("zoom.account_id", company::ZOOM_ACCOUNT_ID),
            ("zoom.client_id", company::ZOOM_CLIENT_ID),
            ("zoom.client_secret", company::ZOOM_CLIENT_SECRET),
            ("groupware.base_url", &base_url),
            ("groupware.admin_login_id", company::ADMIN_LOGIN_ID),
            ("groupware.admin_password", company::ADMIN_PASSWORD),
            ("groupware.timezone", company::TIMEZONE),
        ],
    )
    .await;
    let users: Vec<StoredUser> = company::USERS
        .iter()
        .map(|(id, email, enabled)| StoredUser {
            groupware_id: (*id).to_owned(),
            zoom_email: (*email).to_owned(),
            enabled: *enabled,
        })
        .collect();
    let mut tx = live.store().begin_write().await.expect("write turn");
    live.save_users(&mut tx, &users).await.expect("users saved");
    tx.commit().await.expect("committed");
    live.store().close().await;

    let doctor = tokio::process::Command::new(env!("CARGO_BIN_EXE_jmotto-zoom"))
        .args(["doctor", "--config"])
        .arg(&config)
        .output()
        .await
        .expect("doctor runs");
    let printed = String::from_utf8_lossy(&doctor.stdout);
    assert!(doctor.status.success(), "{printed}");
    assert_eq!(printed.lines().last(), Some("Zoom連携: 有効"), "{printed}");
    for secret in [company::ZOOM_CLIENT_SECRET, company::ADMIN_PASSWORD] {
        assert!(!printed.contains(secret));
    }
    jmotto.stop().await;
    zoom.stop().await;
}

/// Issue 10 item 5 for the other two writes: after the Zoom check failed, an update (R-RESCHEDULE
/// `update`) and a delete (R-DELETE `delete`) wait without calling Zoom, their meetings still
/// `created` with the reason shown and no attempt counted; a passing check sends each once.
#[tokio::test]
async fn updates_and_deletes_wait_while_disabled() {
    let app = spawn_app_with(|settings| {
        settings.sync.on_reschedule = ReschedulePolicy::Update;
        settings.sync.on_delete = DeletePolicy::Delete;
    })
    .await;
    app.sync().await;
    app.zoom.clear_requests();
    let refused = ZoomError::Auth("the token request was refused (invalid_client)".to_owned());
    jmotto_zoom::checks::record_token_refusal(&app.engine.store, &refused).await;
    app.edit_entry(&["10002"], NOVEMBER, "8801", |entry| {
        entry["start"] = json!("2026-11-26T15:00:00");
        entry["end"] = json!("2026-11-26T16:30:00");
        true
    });
    app.edit_entry(&["10003", "10002", "10006"], DECEMBER, "8803", |entry| {
        entry["place"] = json!("会議室B");
        true
    });
    app.sync_unchecked().await;
    assert!(app.zoom_writes().is_empty(), "{:#?}", app.zoom_writes());
    for id in ["8801", "8803"] {
        let row = &app.meetings_of(id, "").await[0];
        assert_eq!(row["state"], "created", "{row}");
        assert!(
            row["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("integration_disabled")),
            "{row}"
        );
    }
    assert_eq!(most_attempts(&app).await, 0);

    let checks = app.live.quick_check().await.expect("checked");
    assert!(checks[0].ok, "{checks:?}");
    app.drain().await;
    let mut methods: Vec<String> = app.zoom_writes().into_iter().map(|r| r.method).collect();
    methods.sort();
    assert_eq!(methods, ["DELETE", "PATCH"]);
    assert_eq!(app.meetings_of("8801", "").await[0]["reason"], "updated");
    assert_eq!(app.meetings_of("8803", "").await[0]["state"], "deleted");
    app.stop().await;
}
