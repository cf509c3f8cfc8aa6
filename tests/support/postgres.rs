//! A throw-away PostgreSQL for the tests (issue 11 item 6). Shared by the test binaries and
//! the bench, each including this file with `#[path]`; it depends only on std, tokio, sqlx,
//! tempfile, anyhow and rand.
//!
//! * [`shared`] is one server per test process, started on first use from the highest
//!   version under `/usr/lib/postgresql/*/bin`, or the server `JMZ_TEST_DATABASE_URL` names
//!   (whose user may `CREATE DATABASE`; it is never stopped). Every test takes a database
//!   of its own from it with [`Cluster::create_database`].
//! * [`private`] is a server of the test's own, for a test that stops and starts it.
//! * A started server lives in a temporary directory (data and log), listens on a free
//!   port on 127.0.0.1 and runs as the `postgres` user when the tests run as root (PostgreSQL
//!   refuses root). A watchdog shell holds the read end of a pipe whose write end only the
//!   test process holds: when that process ends, however it ends, the watchdog stops the
//!   server and removes the directory. So the static shared server dies with the tests.
//! * Without PostgreSQL the tests say so in one line on stderr ([`SKIP_LINE`]) and skip,
//!   except under `CI=true`, where that is a failure.
#![allow(
    dead_code,
    reason = "each including binary uses a different part of this module"
)]

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::{Context, bail};

/// The environment variable naming an existing server to use instead of starting one.
pub const DATABASE_URL_VARIABLE: &str = "JMZ_TEST_DATABASE_URL";

/// Printed once per test process when no PostgreSQL can be found and none is named.
pub const SKIP_LINE: &str = "PostgreSQL tests skipped: no initdb under /usr/lib/postgresql/*/bin; install it with `apt-get install postgresql` or set JMZ_TEST_DATABASE_URL";

/// Where Debian installs each PostgreSQL version (`<root>/<version>/bin`).
const INSTALL_ROOT: &str = "/usr/lib/postgresql";

/// How long `pg_ctl` waits for the server to accept connections or to stop.
const PG_CTL_WAIT_SECONDS: &str = "30";

/// A running PostgreSQL server the tests create their databases in.
pub struct Cluster {
    /// Connects as a superuser (or a user that may `CREATE DATABASE`) to an existing database.
    admin_url: String,
    /// `None` for the server `JMZ_TEST_DATABASE_URL` names: not ours to stop.
    local: Option<LocalServer>,
}

/// A server this process started, in a temporary directory it owns.
struct LocalServer {
    binaries: PathBuf,
    port: u16,
    /// `Some("postgres")` when the tests run as root: every `initdb`/`pg_ctl` runs as that user.
    run_as: Option<&'static str>,
    /// Stops the server and removes `directory` when the test process ends (see the module doc).
    watchdog: Child,
    /// Holds `data/` and `server.log`; removed on drop.
    directory: tempfile::TempDir,
}

impl Cluster {
    /// The URL of the server's `postgres` database (or `JMZ_TEST_DATABASE_URL` itself), as a
    /// user that may create databases.
    pub fn admin_url(&self) -> String {
        self.admin_url.clone()
    }

    /// The data directory of a server this process started; `None` for `JMZ_TEST_DATABASE_URL`.
    pub fn data_directory(&self) -> Option<PathBuf> {
        self.local.as_ref().map(LocalServer::data_directory)
    }

    /// Creates a database no other test uses and returns its `postgres://` URL.
    pub async fn create_database(&self) -> anyhow::Result<String> {
        use sqlx::Connection as _;

        static CREATED: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "jmz_test_{}_{}_{:08x}",
            std::process::id(),
            CREATED.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let mut connection = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .with_context(|| format!("cannot connect to {}", redacted(&self.admin_url)))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        connection.close().await?;
        Ok(with_database(&self.admin_url, &name))
    }

    /// Stops the server (`pg_ctl stop -m fast`), keeping its data directory and port for
    /// [`Cluster::start`]. Fails for the server `JMZ_TEST_DATABASE_URL` names.
    pub fn stop(&self) -> anyhow::Result<()> {
        self.local_server()?.pg_ctl_stop("fast")
    }

    /// Starts the stopped server again on the same data directory and the same port, and
    /// returns once it accepts connections.
    pub fn start(&self) -> anyhow::Result<()> {
        self.local_server()?.pg_ctl_start()
    }

    fn local_server(&self) -> anyhow::Result<&LocalServer> {
        self.local.as_ref().with_context(|| {
            format!("the server {DATABASE_URL_VARIABLE} names is not the tests' to stop or start")
        })
    }
}

impl LocalServer {
    /// `initdb` in a fresh temporary directory, the test settings, then `pg_ctl start` on a
    /// free port (another one if that port was taken meanwhile).
    fn start(binaries: PathBuf) -> anyhow::Result<Self> {
        let run_as = running_as_root().then_some("postgres");
        // under root in /tmp: the `postgres` user may not be able to reach `$TMPDIR`
        let parent = match run_as {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let directory = tempfile::Builder::new()
            .prefix("jmz-postgres-")
            .tempdir_in(&parent)
            .with_context(|| {
                format!(
                    "cannot create a temporary directory for PostgreSQL in {}",
                    parent.display()
                )
            })?;
        if let Some(user) = run_as {
            run(Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:{user}"))
                .arg(directory.path()))?;
        }
        let watchdog = spawn_watchdog(&binaries, run_as, directory.path())?;
        let mut server = Self {
            binaries,
            port: 0,
            run_as,
            watchdog,
            directory,
        };
        let data = server.data_directory();
        run(server
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .arg("--locale=C"))?;
        // no Unix socket (a long `$TMPDIR` would overflow its path): TCP on 127.0.0.1 only
        append(
            &data.join("postgresql.conf"),
            "\n# jmotto-zoom tests: a throw-away server, fast and reachable on 127.0.0.1 only\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             max_connections = 300\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = ''\n",
        )?;
        let mut attempt = 1;
        loop {
            server.port = free_port()?;
            append(
                &data.join("postgresql.conf"),
                &format!("port = {}\n", server.port),
            )?;
            match server.pg_ctl_start() {
                Ok(()) => return Ok(server),
                Err(error) if attempt < 3 => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "PostgreSQL did not start on port {} (trying another): {error:#}",
                        server.port
                    );
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn data_directory(&self) -> PathBuf {
        self.directory.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.directory.path().join("server.log")
    }

    /// `binaries/program`, through `runuser -u postgres --` when the tests run as root, in
    /// the temporary directory (the `postgres` user may not enter the tests' own).
    fn command(&self, program: &str) -> Command {
        let mut command = as_user(self.run_as, &self.binaries.join(program));
        command
            .current_dir(self.directory.path())
            .stdin(Stdio::null());
        command
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let log = self.log_file();
        run(self
            .command("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(self.data_directory())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", PG_CTL_WAIT_SECONDS, "-s"]))
        .with_context(|| {
            format!(
                "PostgreSQL did not accept connections on 127.0.0.1:{} within {PG_CTL_WAIT_SECONDS} s; its log {}:\n{}",
                self.port,
                log.display(),
                tail(&log)
            )
        })
    }

    fn pg_ctl_stop(&self, mode: &str) -> anyhow::Result<()> {
        run(self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(self.data_directory())
            .args(["-m", mode, "-w", "-t", PG_CTL_WAIT_SECONDS, "-s"]))
        .with_context(|| {
            format!(
                "cannot stop PostgreSQL; its log {}",
                self.log_file().display()
            )
        })
    }
}

impl Drop for LocalServer {
    /// Stops the server at once; `TempDir` then removes the directory. The watchdog is killed
    /// first so that it does not race for the same directory.
    fn drop(&mut self) {
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        if self.data_directory().join("postmaster.pid").exists() {
            let _ = self.pg_ctl_stop("immediate");
        }
    }
}

/// The one server of this test process: `JMZ_TEST_DATABASE_URL`'s, or one started on first
/// use and stopped when the process ends. `None`, after printing [`SKIP_LINE`] once, when
/// there is no PostgreSQL here. Panics when a PostgreSQL here does not start, or when there
/// is none and `CI=true`.
pub fn shared() -> Option<&'static Cluster> {
    static SHARED: OnceLock<Result<Option<Cluster>, String>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        if let Some(url) = named_server() {
            return Ok(Some(Cluster {
                admin_url: url,
                local: None,
            }));
        }
        match start_local() {
            Ok(Some(cluster)) => Ok(Some(cluster)),
            Ok(None) => no_postgres_here()
                .map(|()| None)
                .map_err(|error| format!("{error:#}")),
            Err(error) => Err(format!("{error:#}")),
        }
    });
    match shared {
        Ok(cluster) => cluster.as_ref(),
        Err(error) => panic!("no shared test PostgreSQL: {error}"),
    }
}

/// A fresh database on [`shared`]'s server, as a `postgres://` URL; `None` when the
/// PostgreSQL tests are skipped. Panics when the database cannot be created.
pub async fn fresh_database() -> Option<String> {
    let cluster = shared()?;
    match cluster.create_database().await {
        Ok(url) => Some(url),
        Err(error) => panic!("cannot create a test database: {error:#}"),
    }
}

/// A server of the caller's own (to stop and start), stopped and removed on drop; `None`
/// when there is no PostgreSQL here (after [`SKIP_LINE`]; an error under `CI=true`). It
/// starts one even when `JMZ_TEST_DATABASE_URL` is set: that server is not the tests' to stop.
pub fn private() -> anyhow::Result<Option<Cluster>> {
    let cluster = start_local()?;
    if cluster.is_none() {
        no_postgres_here()?;
    }
    Ok(cluster)
}

/// The server `JMZ_TEST_DATABASE_URL` names, when set and not empty.
fn named_server() -> Option<String> {
    std::env::var(DATABASE_URL_VARIABLE)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

fn start_local() -> anyhow::Result<Option<Cluster>> {
    let Some(binaries) = installed_binaries() else {
        return Ok(None);
    };
    let server = LocalServer::start(binaries)?;
    Ok(Some(Cluster {
        admin_url: format!("postgres://postgres@127.0.0.1:{}/postgres", server.port),
        local: Some(server),
    }))
}

/// Prints [`SKIP_LINE`] once per process, straight to stderr (past the test harness's output
/// capture, so that a passing run shows it); fails instead under `CI=true`, where a skipped
/// PostgreSQL half would pass silently.
fn no_postgres_here() -> anyhow::Result<()> {
    static PRINTED: OnceLock<()> = OnceLock::new();
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        bail!(
            "CI=true, where the PostgreSQL tests may not be skipped, and no initdb under \
             {INSTALL_ROOT}/*/bin; install it with `apt-get install postgresql` or set \
             {DATABASE_URL_VARIABLE}"
        );
    }
    PRINTED.get_or_init(|| {
        let _ = writeln!(std::io::stderr(), "{SKIP_LINE}");
    });
    Ok(())
}

/// `/usr/lib/postgresql/<version>/bin` of the highest version that has `initdb` and `pg_ctl`.
pub fn installed_binaries() -> Option<PathBuf> {
    std::fs::read_dir(INSTALL_ROOT)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let binaries = entry.path().join("bin");
            (binaries.join("initdb").is_file() && binaries.join("pg_ctl").is_file())
                .then_some((version, binaries))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, binaries)| binaries)
}

/// `url` with its database (the path) replaced by `database`, query string kept.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |index| authority_start + index);
    format!("{}/{database}{query}", &base[..path_start])
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    let Some(authority_start) = url.find("://").map(|index| index + 3) else {
        return url.to_owned();
    };
    let authority_end = url[authority_start..]
        .find('/')
        .map_or(url.len(), |index| authority_start + index);
    let authority = &url[authority_start..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:[REDACTED]{}",
            &url[..authority_start],
            &authority[..colon],
            &url[authority_start + at..]
        ),
        _ => url.to_owned(),
    }
}

/// Whether this process's effective user is root (the second `Uid:` field of
/// `/proc/self/status`; `id -u` where there is no `/proc`).
fn running_as_root() -> bool {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|id| id == "0"))
        });
    from_proc.unwrap_or_else(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
    })
}

/// `program`, through `runuser -u <user> --` when `user` is given.
fn as_user(user: Option<&str>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A shell that waits until the test process closes its pipe (by ending, however it ends),
/// then stops the server immediately and removes `directory`. It runs in its own process
/// group and ignores the terminal's signals, so that a Ctrl-C of the tests reaches it only as
/// the end of the pipe.
fn spawn_watchdog(
    binaries: &Path,
    run_as: Option<&str>,
    directory: &Path,
) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt as _;

    let stop = as_user(run_as, &binaries.join("pg_ctl"));
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"trap '' INT HUP TERM; read -r _; "$@"; rm -rf -- "$0""#)
        .arg(directory)
        .arg(stop.get_program())
        .args(stop.get_args())
        .args(["stop", "-m", "immediate", "-s", "-D"])
        .arg(directory.join("data"))
        .current_dir(directory)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    command
        .spawn()
        .context("cannot start the PostgreSQL watchdog shell")
}

/// Runs `command` to its end; fails with its output when it fails.
fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    if !output.status.success() {
        bail!(
            "{:?} {:?} failed ({}): {}{}",
            command.get_program(),
            command.get_args().collect::<Vec<_>>(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .with_context(|| format!("cannot append to {}", path.display()))
}

/// The last lines of a log file, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
