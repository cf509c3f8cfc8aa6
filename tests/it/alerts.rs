//! SPEC §10 alerts, end to end: conditions recorded through `jobs::alerts`, delivered by the
//! app's own in-process worker (the `jmz.deliver_alert` jobs, drained as every other test
//! drains) to a local SMTP server and a local HTTP receiver started here.
//!
//! The SMTP server speaks just enough of RFC 5321 (EHLO, MAIL, RCPT, DATA, QUIT) for
//! `lettre`, captures each message, and can refuse the first N connections with a 421.
//! The HTTP receiver captures each POST's headers and body and answers 200.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use secrecy::SecretString;
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

use crate::helpers::{TestApp, spawn_app_with};
use jmotto_zoom::{
    jobs::alerts::{self, Channel, FailedMeeting},
    signature::{SigningKey, SigningKeys, verify},
    store::Store,
};

/// The Standard Webhooks specification's published test vector.
pub(crate) const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PUBLIC_URL: &str = "https://zoom-sync.example.co.jp";

/// One e-mail as the SMTP server received it.
#[derive(Debug, Clone)]
pub(crate) struct Mail {
    pub(crate) recipients: Vec<String>,
    pub(crate) subject: String,
    pub(crate) body: String,
}

/// A minimal SMTP server on 127.0.0.1.
pub(crate) struct SmtpServer {
    port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    connections: Arc<AtomicUsize>,
}

impl SmtpServer {
    /// Starts it; the first `refuse_first` connections get `421` and are closed.
    pub(crate) async fn start(refuse_first: usize) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("address").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (kept, count) = (mails.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let number = count.fetch_add(1, Ordering::SeqCst);
                let mails = kept.clone();
                tokio::spawn(async move {
                    let _ = converse(stream, number < refuse_first, mails).await;
                });
            }
        });
        SmtpServer {
            port,
            mails,
            connections,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub(crate) fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }

    pub(crate) fn subjects(&self) -> Vec<String> {
        self.mails().into_iter().map(|m| m.subject).collect()
    }
}

/// One SMTP session.
async fn converse(
    stream: tokio::net::TcpStream,
    refuse: bool,
    mails: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    if refuse {
        write
            .write_all(b"421 4.3.2 Service not available, try again later\r\n")
            .await?;
        return Ok(());
    }
    write.write_all(b"220 localhost ESMTP test\r\n").await?;
    let mut lines = BufReader::new(read);
    let mut recipients = Vec::new();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_ascii_uppercase();
        let answer: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
            b"250-localhost\r\n250 8BITMIME\r\n"
        } else if command.starts_with("MAIL FROM") {
            recipients.clear();
            b"250 2.1.0 OK\r\n"
        } else if command.starts_with("RCPT TO") {
            recipients.push(line.trim_end()[8..].trim().to_owned());
            b"250 2.1.5 OK\r\n"
        } else if command == "DATA" {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                let mut line = String::new();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            mails
                .lock()
                .expect("lock")
                .push(parse_mail(&data, std::mem::take(&mut recipients)));
            b"250 2.0.0 queued\r\n"
        } else if command == "QUIT" {
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            b"250 OK\r\n"
        };
        write.write_all(answer).await?;
    }
}

/// Reads the subject (RFC 2047 encoded words) and the base64 body of a message.
fn parse_mail(data: &str, recipients: Vec<String>) -> Mail {
    let (head, body) = data.split_once("\r\n\r\n").expect("headers, then a body");
    let head = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let subject = head
        .lines()
        .find_map(|line| line.strip_prefix("Subject: "))
        .expect("a Subject header");
    let mut bytes = Vec::new();
    for word in subject.split_whitespace() {
        let lower = word.to_ascii_lowercase();
        match lower
            .strip_prefix("=?utf-8?b?")
            .and_then(|w| w.strip_suffix("?="))
        {
            Some(_) => bytes.extend(
                BASE64
                    .decode(&word[10..word.len() - 2])
                    .expect("base64 word"),
            ),
            None => {
                if !bytes.is_empty() {
                    bytes.push(b' ');
                }
                bytes.extend(word.as_bytes());
            }
        }
    }
    assert!(
        head.to_ascii_lowercase()
            .contains("content-transfer-encoding: base64"),
        "{head}"
    );
    let body = BASE64
        .decode(body.replace(['\r', '\n'], ""))
        .expect("base64 body");
    Mail {
        recipients,
        subject: String::from_utf8(bytes).expect("UTF-8 subject"),
        body: String::from_utf8(body).expect("UTF-8 body"),
    }
}

/// One POST as the HTTP receiver got it.
#[derive(Debug, Clone)]
pub(crate) struct Post {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Post {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// A minimal HTTP/1.1 receiver on 127.0.0.1 that answers every request 200.
pub(crate) struct HttpReceiver {
    port: u16,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl HttpReceiver {
    pub(crate) async fn start() -> HttpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let port = listener.local_addr().expect("address").port();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let kept = posts.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let posts = kept.clone();
                tokio::spawn(async move {
                    let _ = receive(stream, posts).await;
                });
            }
        });
        HttpReceiver { port, posts }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/alerts", self.port)
    }

    pub(crate) fn posts(&self) -> Vec<Post> {
        self.posts.lock().expect("lock").clone()
    }

    pub(crate) fn types(&self) -> Vec<String> {
        self.posts()
            .iter()
            .map(|p| p.json()["type"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

async fn receive(
    stream: tokio::net::TcpStream,
    posts: Arc<Mutex<Vec<Post>>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut headers = BTreeMap::new();
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        posts.lock().expect("lock").push(Post { headers, body });
        write
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await?;
    }
}

/// The app with both channels pointed at `smtp` and `receiver`, and a public URL.
async fn app_alerting_to(smtp: &SmtpServer, receiver: &HttpReceiver) -> TestApp {
    app_alerting_with_retry_base(smtp, receiver, 1).await
}

/// The same, with the first retry after `retry_base_seconds`.
async fn app_alerting_with_retry_base(
    smtp: &SmtpServer,
    receiver: &HttpReceiver,
    retry_base_seconds: u64,
) -> TestApp {
    app_alerting_with(smtp, receiver, |settings| {
        settings.worker.retry_base_seconds = retry_base_seconds;
    })
    .await
}

/// The app alerting to `smtp` and `receiver`, with `adjust`ed settings, once the worker's
/// start-up checks are recorded.
pub(crate) async fn app_alerting_with(
    smtp: &SmtpServer,
    receiver: &HttpReceiver,
    adjust: impl FnOnce(&mut jmotto_zoom::config::Settings),
) -> TestApp {
    let (smtp_url, webhook_url) = (smtp.url(), receiver.url());
    let app = spawn_app_with(move |settings| {
        adjust(settings);
        settings.alerts.email_to = vec!["it@example.co.jp".into(), "soumu@example.co.jp".into()];
        settings.alerts.email_from = "jmotto-zoom@example.co.jp".into();
        settings.alerts.smtp_url = Some(SecretString::from(smtp_url));
        settings.alerts.webhook_url = webhook_url;
        settings.alerts.webhook_secret = Some(SecretString::from(VECTOR_SECRET));
        settings.server.public_url = PUBLIC_URL.into();
    })
    .await;
    start_checks_done(&app).await;
    app
}

/// Waits until the worker's start-up checks are recorded — the quick check (and, when it
/// failed, the `integration.disabled` it opens), then each enabled user's Zoom e-mail — so
/// that they do not clear or open anything behind a test's back.
pub(crate) async fn start_checks_done(app: &TestApp) {
    let enabled = app.live.file().users.iter().filter(|u| u.enabled).count();
    let pool = app.engine.store.db();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let checks = jmotto_zoom::store::receiver::checks(pool)
            .await
            .expect("checks");
        let open = jmotto_zoom::store::alerts::open_conditions(pool)
            .await
            .expect("conditions");
        let emails = jmotto_zoom::store::settings::email_checks(pool)
            .await
            .expect("e-mail checks");
        let done = if checks.iter().any(|c| !c.ok) {
            open.iter().any(|c| c.kind == "integration.disabled")
        } else {
            checks.len() == 3 && emails.len() == enabled
        };
        if done {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{checks:?} {emails:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Runs `report` in one write transaction of `store` (as the engine's callers will), and
/// says whether it recorded something new.
async fn in_tx<F>(store: &Store, report: F) -> bool
where
    F: AsyncFnOnce(&mut jmotto_zoom::store::db::Conn) -> anyhow::Result<bool>,
{
    let mut tx = store.begin_write().await.expect("write");
    let new = report(&mut *tx).await.expect("recorded");
    tx.commit().await.expect("commit");
    new
}

/// Opens every condition of SPEC §10 once; true for each that was new.
async fn open_all(store: &Store) -> Vec<bool> {
    let reasons = vec!["Zoomの認証に失敗しました".to_owned()];
    let failed = failed_meetings(3);
    vec![
        in_tx(store, async |c| {
            alerts::integration_changed(c, false, &reasons).await
        })
        .await,
        in_tx(store, async |c| {
            alerts::user_unreadable(c, "10002", "errorno 2001").await
        })
        .await,
        in_tx(store, async |c| {
            alerts::user_zoom_unknown(c, "10003", "suzuki@example.co.jp").await
        })
        .await,
        in_tx(store, async |c| {
            alerts::meetings_failed(c, "run-1", &failed).await
        })
        .await,
        in_tx(store, async |c| {
            alerts::host_daily_limit(c, "tanaka@example.co.jp", "2026-12-01").await
        })
        .await,
    ]
}

async fn clear_all(store: &Store) -> Vec<bool> {
    vec![
        in_tx(store, async |c| {
            alerts::integration_changed(c, true, &[]).await
        })
        .await,
        in_tx(store, async |c| alerts::user_readable(c, "10002").await).await,
        in_tx(store, async |c| alerts::user_zoom_found(c, "10003").await).await,
    ]
}

fn failed_meetings(count: usize) -> Vec<FailedMeeting> {
    (0..count)
        .map(|n| FailedMeeting {
            schedule_id: format!("90{n:03}"),
            topic: format!("定例会議 {n}"),
            start: "2026-12-03 10:00".into(),
            host: "10002".into(),
            reason: "Zoomが作成を拒否しました".into(),
        })
        .collect()
}

/// SPEC §10: each of the five types is alerted once when it starts, through e-mail and the
/// webhook; a second report (a second sync), a restarted worker and another process's
/// store send nothing new for an open condition; the three that clear are alerted once
/// when they clear (`integration.enabled`, `….cleared`), and clearing again sends nothing.
/// The Zoom secret is wrong here, so the worker's own check at start (and at its restart)
/// agrees that the integration is 無効: it opened `integration.disabled` before the test.
#[tokio::test]
async fn each_condition_is_alerted_once_when_it_starts_and_once_when_it_clears() {
    let smtp = SmtpServer::start(0).await;
    let receiver = HttpReceiver::start().await;
    let mut app = app_alerting_with(&smtp, &receiver, |settings| {
        settings.zoom.client_secret = SecretString::from("wrong");
    })
    .await;
    let store = app.engine.store.clone();

    assert_eq!(open_all(&store).await, [false, true, true, true, true]);
    app.drain().await;
    let opened = [
        "integration.disabled",
        "user.unreadable",
        "user.zoom_unknown",
        "meetings.failed",
        "host.daily_limit",
    ];
    let mut types = receiver.types();
    types.sort();
    let mut expected = opened.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(types, expected);
    assert_eq!(smtp.mails().len(), 5);
    for mail in smtp.mails() {
        assert!(mail.subject.starts_with("[Zoom連携] "), "{}", mail.subject);
        assert!(
            mail.body.contains(&format!("{PUBLIC_URL}/admin/")),
            "{}",
            mail.body
        );
        assert_eq!(mail.recipients.len(), 2, "{:?}", mail.recipients);
    }
    assert!(
        smtp.subjects()
            .contains(&"[Zoom連携] Zoom連携が無効になりました".to_owned())
    );
    assert!(
        smtp.subjects()
            .contains(&"[Zoom連携] スケジュールを参照できないユーザーがいます（10002）".to_owned())
    );

    // A second sync reports the same conditions: nothing new.
    assert_eq!(open_all(&store).await, [false; 5]);
    // A restarted worker, and another process with its own connection to the file. The new
    // worker's check at start fetches a token, reports R-ENABLED (still 無効: nothing new),
    // then fetches one for the first e-mail check: wait for that second request.
    let before = token_requests(&app.zoom);
    app.restart_worker().await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while token_requests(&app.zoom) < before + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no check at restart"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let other = Store::connect(&app.engine.settings.database.url)
        .await
        .expect("a second store opens");
    assert_eq!(open_all(&other).await, [false; 5]);
    app.drain().await;
    assert_eq!(smtp.mails().len(), 5);
    assert_eq!(receiver.posts().len(), 5);

    assert_eq!(clear_all(&other).await, [true; 3]);
    assert_eq!(clear_all(&store).await, [false; 3]);
    app.drain().await;
    let cleared: Vec<String> = receiver.types().split_off(5);
    let mut cleared_sorted = cleared.clone();
    cleared_sorted.sort();
    assert_eq!(
        cleared_sorted,
        [
            "integration.enabled",
            "user.unreadable.cleared",
            "user.zoom_unknown.cleared"
        ]
    );
    assert_eq!(smtp.mails().len(), 8);
    assert!(
        smtp.subjects()
            .contains(&"[Zoom連携] Zoom連携が有効に戻りました".to_owned())
    );
    let enabled = receiver
        .posts()
        .into_iter()
        .map(|p| p.json())
        .find(|d| d["type"] == "integration.enabled")
        .expect("integration.enabled posted");
    assert!(enabled["details"]["opened_at"].is_string(), "{enabled}");

    // The condition can start again after it cleared.
    assert!(!in_tx(&store, async |c| alerts::user_readable(c, "10002").await).await);
    assert!(
        in_tx(&store, async |c| alerts::user_unreadable(
            c,
            "10002",
            "errorno 2002"
        )
        .await)
        .await
    );
    app.drain().await;
    assert_eq!(smtp.mails().len(), 9);
    other.close().await;
    app.stop().await;
}

/// SPEC §10: 120 failed meetings of one sync run make one `meetings.failed` alert that lists
/// 50 and counts the other 70; a second report of that run sends nothing.
#[tokio::test]
async fn one_meetings_failed_alert_per_run_lists_fifty_then_the_count() {
    let smtp = SmtpServer::start(0).await;
    let receiver = HttpReceiver::start().await;
    let app = app_alerting_to(&smtp, &receiver).await;
    let store = app.engine.store.clone();
    let failed = failed_meetings(120);
    assert!(
        in_tx(&store, async |c| alerts::meetings_failed(
            c, "run-7", &failed
        )
        .await)
        .await
    );
    assert!(
        !in_tx(&store, async |c| alerts::meetings_failed(
            c, "run-7", &failed
        )
        .await)
        .await
    );
    app.drain().await;

    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(
        mail.subject,
        "[Zoom連携] Zoom会議を作成できなかった予定があります（120件）"
    );
    assert_eq!(mail.body.matches("定例会議").count(), 50, "{}", mail.body);
    assert!(mail.body.contains("定例会議 49（"), "{}", mail.body);
    assert!(!mail.body.contains("定例会議 50（"), "{}", mail.body);
    assert!(mail.body.contains("ほか 70 件"), "{}", mail.body);

    let posts = receiver.posts();
    assert_eq!(posts.len(), 1);
    let document = posts[0].json();
    assert_eq!(document["type"], "meetings.failed");
    assert_eq!(document["summary"], mail.subject.as_str());
    assert_eq!(document["text"], document["summary"]);
    assert_eq!(document["details"]["total"], 120);
    assert_eq!(document["details"]["not_listed"], 70);
    assert_eq!(
        document["details"]["entries"].as_array().map(Vec::len),
        Some(50)
    );
    // host.daily_limit: once per host and UTC day.
    for (host, day, new) in [
        ("tanaka@example.co.jp", "2026-12-01", true),
        ("tanaka@example.co.jp", "2026-12-01", false),
        ("tanaka@example.co.jp", "2026-12-02", true),
        ("suzuki@example.co.jp", "2026-12-01", true),
    ] {
        assert_eq!(
            in_tx(&store, async |c| alerts::host_daily_limit(c, host, day)
                .await)
            .await,
            new,
            "{host} {day}"
        );
    }
    app.drain().await;
    assert_eq!(smtp.mails().len(), 4);
    app.stop().await;
}

/// SPEC §10: the webhook carries `{"type", "occurred_at", "summary", "text", "details"}` and
/// Standard Webhooks headers that the receiver's own `verify` accepts under the secret,
/// signed by the method of the specification's published test vector.
#[tokio::test]
async fn the_webhook_is_signed_and_verifies() {
    // The signing method reproduces the published vector.
    let key = SigningKey::parse(VECTOR_SECRET).expect("vector secret");
    assert_eq!(
        key.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#
        )
        .as_deref(),
        Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    );
    let smtp = SmtpServer::start(0).await;
    let receiver = HttpReceiver::start().await;
    let app = app_alerting_to(&smtp, &receiver).await;
    let store = app.engine.store.clone();
    in_tx(&store, async |c| {
        alerts::user_zoom_unknown(c, "10003", "suzuki@example.co.jp").await
    })
    .await;
    app.drain().await;
    let posts = receiver.posts();
    assert_eq!(posts.len(), 1);
    let post = &posts[0];
    let keys = SigningKeys::parse(VECTOR_SECRET).expect("keys");
    let id = verify(
        keys.keys(),
        |name| post.headers.get(name).map(String::as_str),
        &post.body,
        chrono::Utc::now(),
    )
    .expect("the signature verifies");
    assert!(id.starts_with("jmz-alert-"), "{id}");
    let other = SigningKeys::parse("whsec_c2VjcmV0LW90aGVyLXRoYW4tdGhlLXZlY3Rvcg==").expect("keys");
    assert!(
        verify(
            other.keys(),
            |name| post.headers.get(name).map(String::as_str),
            &post.body,
            chrono::Utc::now()
        )
        .is_err()
    );
    let document = post.json();
    let mut fields: Vec<&str> = document
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["details", "occurred_at", "summary", "text", "type"]
    );
    assert_eq!(document["details"]["email"], "suzuki@example.co.jp");
    // `/metrics` shows R-ENABLED as `jmz_enabled` 1 or 0.
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains("jmz_enabled 1\n") || metrics.contains("jmz_enabled 0\n"),
        "{metrics}"
    );
    assert_eq!(
        document["text"],
        "[Zoom連携] Zoomアカウントに存在しないユーザーがいます（suzuki@example.co.jp）"
    );
    app.stop().await;
}

/// SPEC §10 "a failed delivery is retried with backoff": an SMTP server that refuses the
/// first two connections still gets the alert, through durable retries (scheduled jobs);
/// `jmz_alerts_total` counts each attempt's outcome.
#[tokio::test]
async fn an_smtp_server_that_refuses_twice_still_gets_the_alert() {
    let smtp = SmtpServer::start(2).await;
    let receiver = HttpReceiver::start().await;
    // Retries wait 30 s and more: only `settle` (time passing for the database) runs them.
    let app = app_alerting_with_retry_base(&smtp, &receiver, 30).await;
    let store = app.engine.store.clone();
    let reasons = vec!["Zoomの認証に失敗しました".to_owned()];
    in_tx(&store, async |c| {
        alerts::integration_changed(c, false, &reasons).await
    })
    .await;
    app.drain().await;
    assert!(smtp.mails().is_empty(), "the first attempt was refused");
    assert!(
        !app.scheduled_run_times("jmz.deliver_alert")
            .await
            .is_empty(),
        "the retry waits in the database"
    );
    // 状態 can show the delivery that is failing, and the open condition.
    let troubled = jmotto_zoom::store::alerts::troubled_deliveries(store.db(), 10)
        .await
        .expect("deliveries");
    assert_eq!(troubled.len(), 1, "{troubled:?}");
    assert_eq!(
        (troubled[0].channel.as_str(), troubled[0].attempts),
        ("email", 1)
    );
    let error = troubled[0].last_error.as_deref().unwrap_or("");
    assert!(error.contains("421"), "{error}");
    let open = jmotto_zoom::store::alerts::open_conditions(store.db())
        .await
        .expect("conditions");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].kind, "integration.disabled");
    app.settle().await;
    assert_eq!(smtp.connections.load(Ordering::SeqCst), 3);
    assert_eq!(smtp.subjects(), ["[Zoom連携] Zoom連携が無効になりました"]);
    assert_eq!(
        receiver.posts().len(),
        1,
        "the webhook went through at once"
    );
    let text = app
        .engine
        .metrics
        .render(&store, false)
        .await
        .expect("metrics");
    for (series, value) in [
        (
            r#"jmz_alerts_total{type="integration.disabled",channel="email",outcome="retrying"}"#,
            2,
        ),
        (
            r#"jmz_alerts_total{type="integration.disabled",channel="email",outcome="sent"}"#,
            1,
        ),
        (
            r#"jmz_alerts_total{type="integration.disabled",channel="webhook",outcome="sent"}"#,
            1,
        ),
    ] {
        assert!(
            text.contains(&format!("{series} {value}\n")),
            "{series} {value} in\n{text}"
        );
    }
    assert!(text.contains("jmz_enabled 0\n"), "{text}");
    let troubled = jmotto_zoom::store::alerts::troubled_deliveries(store.db(), 10)
        .await
        .expect("deliveries");
    assert!(troubled.is_empty(), "{troubled:?}");
    app.stop().await;
}

/// The console's 「テスト送信」: a test alert through each configured channel at once, each
/// channel's result; a refusing SMTP server's answer is the error shown.
#[tokio::test]
async fn send_test_reports_each_channel() {
    let smtp = SmtpServer::start(1).await;
    let receiver = HttpReceiver::start().await;
    let app = app_alerting_to(&smtp, &receiver).await;
    let settings = app.engine.settings.clone();
    let first = alerts::send_test(&settings).await;
    assert_eq!(first.len(), 2);
    let email = first
        .iter()
        .find(|(channel, _)| *channel == Channel::Email)
        .expect("e-mail tried");
    let error = email
        .1
        .clone()
        .expect_err("the first connection is refused");
    assert!(error.contains("421"), "{error}");
    assert!(
        first
            .iter()
            .any(|(channel, result)| *channel == Channel::Webhook && result.is_ok())
    );
    let second = alerts::send_test(&settings).await;
    assert!(
        second.iter().all(|(_, result)| result.is_ok()),
        "{second:?}"
    );
    assert_eq!(smtp.subjects(), ["[Zoom連携] テスト送信"]);
    assert_eq!(receiver.types(), ["test", "test"]);
    let mut without = (*settings).clone();
    without.alerts.webhook_url.clear();
    without.alerts.email_to.clear();
    assert!(alerts::send_test(&without).await.is_empty());
    app.stop().await;
}

/// How many token requests the Zoom replay received.
fn token_requests(zoom: &jmotto_zoom::replay::ReplayServer) -> usize {
    zoom.requests()
        .iter()
        .filter(|r| r.path == "/oauth/token")
        .count()
}

/// `GET /metrics` as text.
pub(crate) async fn metrics_text(app: &TestApp) -> String {
    app.http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text")
}
