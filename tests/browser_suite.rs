//! The admin console's browser suite (`just browser-test`, run by `.ci/run`): issue 10's
//! first "done when", SPEC §8, in Debian's Chromium driven by `playwright-core`.
//!
//! It starts the J-MOTTO and Zoom replay servers in this process, writes a fresh
//! configuration with `jmotto-zoom init` (only its `[server] listen` and `[database] url`
//! changed, to a free port and a temporary file), starts `jmotto-zoom run --config` as a
//! child process, and runs `node tests/browser/console.spec.mjs`, which does the seed's
//! whole setup in the console. The test-only settings come from the environment of the
//! child, not the file, so the file stays `[database]` + `[server]` as a newcomer's:
//! `JMZ__CLOCK__NOW` (the replayed listings were recorded for the window of
//! `company::RECORDED_AT`; with the machine's clock the service would ask J-MOTTO for months
//! the fixtures do not hold) and `JMZ__ZOOM__OAUTH_URL` / `JMZ__ZOOM__API_URL` (Zoom's two
//! addresses are not console settings; they point the service at the Zoom replay).
//!
//! The script reaches this harness through a small control endpoint: `POST /move-entry`
//! moves entry 8801 in the running J-MOTTO replay (no process restarts), `GET
//! /zoom-requests` lists what the Zoom replay received. For 通知設定 (SPEC §10) the harness
//! also runs a local SMTP responder (enough of RFC 5321 for `lettre`) and takes alert
//! webhooks at `POST /alert-webhook` on the same endpoint; `GET /alerts-received` lists what
//! both got (each e-mail's recipients and decoded subject; each webhook's JSON and whether
//! its Standard Webhooks signature verifies under [`ALERT_WEBHOOK_SECRET`]). After the script ends the harness
//! checks that the service process is the one it started (never restarted) and that the
//! replays were asked nothing their fixtures do not cover, then stops every child.
//!
//! `harness = false` and `test = false`: a browser run of a minute or two, outside `cargo
//! test --all-targets`. `JMZ_BROWSER_DOC_SCREENSHOTS=1` also copies the 状態, ユーザー and
//! 通知設定 screenshots to `docs/screenshots/` (the README's and docs/console.md's).

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context;
use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use jmotto_zoom::{
    replay::{ReplayServer, company},
    signature::{SigningKeys, verify},
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[path = "support/processes.rs"]
#[expect(
    dead_code,
    reason = "the shared helpers of the process-level harnesses"
)]
mod processes;

const CLI: &str = env!("CARGO_BIN_EXE_jmotto-zoom");
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
/// The script may not take longer than this.
const NODE_DEADLINE: Duration = Duration::from_secs(600);
/// The entry the script moves, in the J-MOTTO replay's November listing of its owner.
const MOVED_ENTRY: (&str, &str) = ("10002", "8801");
const NOVEMBER: (&str, &str) = ("2026-11-01", "2026-11-30");
/// Its new time (it was 14:00–15:00 that day).
const MOVED_TO: (&str, &str) = ("2026-11-26T15:00:00", "2026-11-26T16:30:00");
/// The 「Webhook署名シークレット」 the script types (the Standard Webhooks test vector's).
const ALERT_WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => {
            println!("browser suite: passed");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("browser suite: FAILED: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let browser_dir = Path::new(MANIFEST_DIR).join("tests/browser");
    install_script_dependencies(&browser_dir)?;
    warn_without_japanese_font();
    let screenshots = screenshot_folder()?;

    let jmotto = Arc::new(ReplayServer::start_jmotto().await?);
    let zoom = Arc::new(ReplayServer::start_zoom().await?);
    let folder = tempfile::tempdir().context("cannot create a temporary folder")?;
    let config = folder.path().join("jmotto-zoom.toml");
    let (listen, admin_token) = write_configuration(&config, folder.path())?;

    let log = folder.path().join("service.log");
    let mut service = spawn_service(&config, &log, &zoom)?;
    let started = Instant::now();
    let outcome = async {
        processes::wait_ready(&listen, started, Duration::from_secs(120), &log).await?;
        let received = Arc::new(Received::default());
        let smtp_port = start_smtp_responder(received.clone()).await?;
        let control = Control::start(jmotto.clone(), zoom.clone(), received)?;
        let script = run_script(
            &browser_dir,
            &listen,
            &admin_token,
            &jmotto,
            &control,
            smtp_port,
            &screenshots,
        )
        .await;
        control.stop().await;
        script?;
        anyhow::ensure!(
            service.try_wait()?.is_none(),
            "the service process exited during the suite (it must run throughout, never restarted)"
        );
        let unmatched: Vec<String> = jmotto
            .unmatched()
            .into_iter()
            .chain(zoom.unmatched())
            .collect();
        anyhow::ensure!(
            unmatched.is_empty(),
            "requests the replay fixtures do not cover: {unmatched:?}"
        );
        copy_doc_screenshots(&screenshots)
    }
    .await;
    stop_service(&mut service).await;
    let outcome = outcome.and_then(|()| no_secret_in_clear(folder.path()));
    let kept = screenshots.join("service.log");
    if std::fs::copy(&log, &kept).is_ok() {
        println!("browser suite: the service's log: {}", kept.display());
    }
    if outcome.is_err() {
        eprintln!("--- the service's log (last 80 lines):\n{}", tail(&log, 80));
    }
    for replay in [jmotto, zoom] {
        if let Ok(replay) = Arc::try_unwrap(replay) {
            replay.stop().await;
        }
    }
    outcome
}

/// `npm ci` in `tests/browser` when its `node_modules` is missing.
fn install_script_dependencies(browser_dir: &Path) -> anyhow::Result<()> {
    if browser_dir.join("node_modules/playwright-core").is_dir() {
        return Ok(());
    }
    println!("browser suite: npm ci in {}", browser_dir.display());
    let status = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(browser_dir)
        .status()
        .context("cannot run npm (install Node.js 20 and npm)")?;
    anyhow::ensure!(
        status.success(),
        "npm ci failed in {}",
        browser_dir.display()
    );
    Ok(())
}

/// The checks pass without one, but every Japanese character of a screenshot is a box.
fn warn_without_japanese_font() {
    let fonts = std::process::Command::new("fc-list")
        .arg(":lang=ja")
        .output()
        .map(|output| output.stdout)
        .unwrap_or_default();
    if fonts.is_empty() {
        eprintln!(
            "browser suite: warning: no Japanese font (fc-list :lang=ja); the screenshots will show boxes (apt-get install fonts-noto-cjk)"
        );
    }
}

/// `<target>/browser-screenshots`, emptied.
fn screenshot_folder() -> anyhow::Result<PathBuf> {
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let folder = target_tmp
        .parent()
        .unwrap_or(target_tmp)
        .join("browser-screenshots");
    if folder.exists() {
        std::fs::remove_dir_all(&folder)
            .with_context(|| format!("cannot empty {}", folder.display()))?;
    }
    std::fs::create_dir_all(&folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    Ok(folder)
}

/// Runs `jmotto-zoom init --path config`, then sets `[server] listen` to a free port and
/// `[database] url` to a file in `folder`; returns the address and the generated admin token.
fn write_configuration(config: &Path, folder: &Path) -> anyhow::Result<(String, String)> {
    let output = std::process::Command::new(CLI)
        .arg("init")
        .arg("--path")
        .arg(config)
        .output()
        .context("cannot run jmotto-zoom init")?;
    anyhow::ensure!(
        output.status.success(),
        "jmotto-zoom init failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(config).context("cannot read init's file")?;
    let mut table: toml::Table = text.parse().context("init's file is not TOML")?;
    let listen = format!("127.0.0.1:{}", processes::free_port()?);
    let database = format!("sqlite://{}", folder.join("jmotto-zoom.db").display());
    let section = |table: &mut toml::Table, name: &str| -> anyhow::Result<toml::Table> {
        match table.remove(name) {
            Some(toml::Value::Table(section)) => Ok(section),
            _ => anyhow::bail!("init's file has no [{name}] section"),
        }
    };
    let mut server = section(&mut table, "server")?;
    let mut database_section = section(&mut table, "database")?;
    let admin_token = server
        .get("admin_token")
        .and_then(toml::Value::as_str)
        .context("init's file has no server.admin_token")?
        .to_owned();
    server.insert("listen".into(), toml::Value::String(listen.clone()));
    database_section.insert("url".into(), toml::Value::String(database));
    table.insert("database".into(), toml::Value::Table(database_section));
    table.insert("server".into(), toml::Value::Table(server));
    let sections: Vec<&String> = table.keys().collect();
    anyhow::ensure!(
        sections.len() == 2,
        "a newcomer's file holds only [database] and [server]; init wrote {sections:?}"
    );
    std::fs::write(config, toml::to_string(&table)?).context("cannot write the configuration")?;
    Ok((listen, admin_token))
}

/// `jmotto-zoom run --config config`, its output appended to `log`, with the test-only
/// settings (module doc) in its environment and no other `JMZ__` variable.
fn spawn_service(
    config: &Path,
    log: &Path,
    zoom: &ReplayServer,
) -> anyhow::Result<tokio::process::Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    let mut command = tokio::process::Command::new(CLI);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("JMZ__") {
            command.env_remove(name);
        }
    }
    command
        .arg("run")
        .arg("--config")
        .arg(config)
        .env("JMZ__CLOCK__NOW", company::RECORDED_AT)
        .env(
            "JMZ__ZOOM__OAUTH_URL",
            format!("{}/oauth/token", zoom.base_url()),
        )
        .env("JMZ__ZOOM__API_URL", format!("{}/v2", zoom.base_url()))
        .env(
            "RUST_LOG",
            std::env::var("CHILD_RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
        )
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start jmotto-zoom run")
}

/// SIGTERM, then SIGKILL after 15 s.
async fn stop_service(service: &mut tokio::process::Child) {
    if let Some(pid) = service.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    if tokio::time::timeout(Duration::from_secs(15), service.wait())
        .await
        .is_err()
    {
        let _ = service.kill().await;
    }
}

/// `node tests/browser/console.spec.mjs` with what it needs in its environment; fails when
/// the script fails or outlives [`NODE_DEADLINE`].
/// Issue 10: after the secrets were typed into the console, no file the service wrote (the
/// database, its `-wal` and `-shm`, the log) holds one in clear: the console seals them with
/// `server.secret_key`, and no log line shows one.
fn no_secret_in_clear(folder: &Path) -> anyhow::Result<()> {
    let secrets = [
        company::ZOOM_CLIENT_SECRET,
        company::ADMIN_PASSWORD,
        ALERT_WEBHOOK_SECRET,
    ];
    let mut read = 0;
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !path.is_file() || name == "jmotto-zoom.toml" {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        for secret in secrets {
            anyhow::ensure!(
                !bytes
                    .windows(secret.len())
                    .any(|window| window == secret.as_bytes()),
                "{name} holds a secret typed into the console in clear"
            );
        }
        read += 1;
    }
    anyhow::ensure!(
        read >= 2,
        "the database and the log were not found in {}",
        folder.display()
    );
    println!(
        "ok   - no secret typed into the console is in clear in the database files or the log ({read} files)"
    );
    Ok(())
}

async fn run_script(
    browser_dir: &Path,
    listen: &str,
    admin_token: &str,
    jmotto: &ReplayServer,
    control: &Control,
    smtp_port: u16,
    screenshots: &Path,
) -> anyhow::Result<()> {
    let mut node = tokio::process::Command::new("node")
        .arg(browser_dir.join("console.spec.mjs"))
        .current_dir(MANIFEST_DIR)
        .env("CONSOLE_URL", format!("http://{listen}/admin/"))
        .env("SERVER_URL", format!("http://{listen}"))
        .env("ADMIN_TOKEN", admin_token)
        .env(
            "GROUPWARE_URL",
            format!("{}{}", jmotto.base_url(), company::JMOTTO_BASE_PATH),
        )
        .env("GROUPWARE_LOGIN_ID", company::ADMIN_LOGIN_ID)
        .env("GROUPWARE_PASSWORD", company::ADMIN_PASSWORD)
        .env("GROUPWARE_TIMEZONE", company::TIMEZONE)
        .env("ZOOM_ACCOUNT_ID", company::ZOOM_ACCOUNT_ID)
        .env("ZOOM_CLIENT_ID", company::ZOOM_CLIENT_ID)
        .env("ZOOM_CLIENT_SECRET", company::ZOOM_CLIENT_SECRET)
        .env("REPLAY_CONTROL_URL", &control.base_url)
        .env("ALERT_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}"))
        .env(
            "ALERT_WEBHOOK_URL",
            format!("{}/alert-webhook", control.base_url),
        )
        .env("ALERT_WEBHOOK_SECRET", ALERT_WEBHOOK_SECRET)
        .env("SCREENSHOT_DIR", screenshots)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start node (install Node.js 20)")?;
    let status = tokio::time::timeout(NODE_DEADLINE, node.wait())
        .await
        .map_err(|_| anyhow::anyhow!("the browser script ran longer than {NODE_DEADLINE:?}"))??;
    anyhow::ensure!(
        status.success(),
        "the browser script failed ({status}); see its output above"
    );
    Ok(())
}

/// With `JMZ_BROWSER_DOC_SCREENSHOTS=1`: the docs' screenshots from this run.
fn copy_doc_screenshots(screenshots: &Path) -> anyhow::Result<()> {
    if std::env::var("JMZ_BROWSER_DOC_SCREENSHOTS").as_deref() != Ok("1") {
        return Ok(());
    }
    let docs = Path::new(MANIFEST_DIR).join("docs/screenshots");
    std::fs::create_dir_all(&docs)?;
    for (from, to) in [
        ("status-after-sync-1280.png", "status.png"),
        ("users-saved-1280.png", "users.png"),
        ("alerts-test-sent-1280.png", "alerts.png"),
    ] {
        std::fs::copy(screenshots.join(from), docs.join(to))
            .with_context(|| format!("cannot copy {from} to docs/screenshots/{to}"))?;
        println!("browser suite: docs/screenshots/{to} updated");
    }
    Ok(())
}

fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The replays, as the control endpoint's handlers see them.
struct Replays {
    jmotto: Arc<ReplayServer>,
    zoom: Arc<ReplayServer>,
    received: Arc<Received>,
}

/// What the local alert channels received, as `GET /alerts-received` lists it.
#[derive(Default)]
struct Received {
    mails: Mutex<Vec<Value>>,
    webhooks: Mutex<Vec<Value>>,
}

impl Received {
    fn push(list: &Mutex<Vec<Value>>, item: Value) {
        if let Ok(mut list) = list.lock() {
            list.push(item);
        }
    }

    fn list(list: &Mutex<Vec<Value>>) -> Vec<Value> {
        list.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// A local SMTP responder on 127.0.0.1 (its port): takes every message and records its
/// recipients and subject.
async fn start_smtp_responder(received: Arc<Received>) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let received = received.clone();
            tokio::spawn(async move {
                if let Err(error) = smtp_session(stream, &received).await {
                    eprintln!("browser suite: the SMTP responder's session failed: {error}");
                }
            });
        }
    });
    Ok(port)
}

/// One SMTP conversation: greeting, then one reply per command; DATA up to the lone `.`.
async fn smtp_session(stream: tokio::net::TcpStream, received: &Received) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 harness ESMTP\r\n").await?;
    let mut recipients: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 harness\r\n",
            "RCPT" => {
                let address = line.trim_end().rsplit(':').next().unwrap_or_default();
                recipients.push(address.trim().trim_matches(['<', '>']).to_owned());
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                let mut message = String::new();
                loop {
                    let mut data = String::new();
                    if reader.read_line(&mut data).await? == 0 || data == ".\r\n" {
                        break;
                    }
                    message.push_str(&data);
                }
                let mail = json!({
                    "recipients": std::mem::take(&mut recipients),
                    "subject": decoded_subject(&message),
                });
                Received::push(&received.mails, mail);
                b"250 queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"250 OK\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The `Subject:` header of `message`, its RFC 2047 `=?utf-8?b?…?=` words decoded.
fn decoded_subject(message: &str) -> String {
    let head = message.split("\r\n\r\n").next().unwrap_or_default();
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let Some(subject) = unfolded.lines().find_map(|l| l.strip_prefix("Subject: ")) else {
        return String::new();
    };
    let mut bytes = Vec::new();
    for (index, word) in subject.split(' ').enumerate() {
        let encoded = word
            .get(..10)
            .filter(|prefix| prefix.eq_ignore_ascii_case("=?utf-8?b?"))
            .and_then(|_| word.get(10..)?.strip_suffix("?="));
        match encoded.and_then(|text| BASE64.decode(text).ok()) {
            Some(decoded) => bytes.extend(decoded),
            None => {
                if index > 0 {
                    bytes.push(b' ');
                }
                bytes.extend(word.as_bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The harness's control endpoint for the script (module doc).
struct Control {
    base_url: String,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Control {
    fn start(
        jmotto: Arc<ReplayServer>,
        zoom: Arc<ReplayServer>,
        received: Arc<Received>,
    ) -> anyhow::Result<Control> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let replays = web::Data::new(Replays {
            jmotto,
            zoom,
            received,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(replays.clone())
                .route("/move-entry", web::post().to(move_entry))
                .route("/zoom-requests", web::get().to(zoom_requests))
                .route("/alert-webhook", web::post().to(alert_webhook))
                .route("/alerts-received", web::get().to(alerts_received))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        Ok(Control {
            base_url: format!("http://127.0.0.1:{port}"),
            handle,
            task: tokio::spawn(server),
        })
    }

    async fn stop(self) {
        self.handle.stop(false).await;
        let _ = self.task.await;
    }
}

/// Moves [`MOVED_ENTRY`] to [`MOVED_TO`] in the running J-MOTTO replay; answers how many
/// requests the Zoom replay had received before, and the entry's new times.
async fn move_entry(replays: web::Data<Replays>) -> HttpResponse {
    let (uid, id) = MOVED_ENTRY;
    let Some(events) = replays.jmotto.events(uid, NOVEMBER.0, NOVEMBER.1, 1) else {
        return HttpResponse::InternalServerError().body("the replay has no such listing");
    };
    let mut events = events.as_array().cloned().unwrap_or_default();
    let Some(entry) = events.iter_mut().find(|e| e["id"] == id) else {
        return HttpResponse::InternalServerError().body(format!("entry {id} is not listed"));
    };
    entry["start"] = json!(MOVED_TO.0);
    entry["end"] = json!(MOVED_TO.1);
    let next_page = replays
        .jmotto
        .events(uid, NOVEMBER.0, NOVEMBER.1, 2)
        .map(|_| 2);
    let requests_before = replays.zoom.requests().len();
    replays.jmotto.set_events(
        uid,
        NOVEMBER.0,
        NOVEMBER.1,
        1,
        Value::Array(events),
        next_page,
    );
    HttpResponse::Ok().json(json!({
        "schedule_id": id,
        "start": MOVED_TO.0,
        "end": MOVED_TO.1,
        "zoom_requests_before": requests_before,
    }))
}

/// What the Zoom replay received, in order: method, path, status (no headers).
async fn zoom_requests(replays: web::Data<Replays>) -> HttpResponse {
    let requests: Vec<Value> = replays
        .zoom
        .requests()
        .into_iter()
        .map(|r| json!({"method": r.method, "path": r.path, "status": r.status}))
        .collect();
    HttpResponse::Ok().json(requests)
}

/// An alert webhook from the service: its JSON and whether its signature verifies.
async fn alert_webhook(
    replays: web::Data<Replays>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let verified = SigningKeys::parse(ALERT_WEBHOOK_SECRET).is_some_and(|keys| {
        verify(
            keys.keys(),
            |name| request.headers().get(name).and_then(|v| v.to_str().ok()),
            &body,
            chrono::Utc::now(),
        )
        .is_ok()
    });
    let document = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    Received::push(
        &replays.received.webhooks,
        json!({"document": document, "verified": verified}),
    );
    HttpResponse::Ok().finish()
}

/// What the SMTP responder and the webhook receiver got, in order.
async fn alerts_received(replays: web::Data<Replays>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "mails": Received::list(&replays.received.mails),
        "webhooks": Received::list(&replays.received.webhooks),
    }))
}
