//! `jmotto-zoom init [--path F]`: writes a starter configuration file with freshly generated
//! secrets (admin token, webhook secret, secret key), readable by its owner only, and prints
//! the next steps. It never overwrites a file, and never prints a secret.

use std::{io::Write as _, path::Path, process::ExitCode};

use anyhow::Context;
use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD},
};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    config::{DatabaseSettings, Settings, default_listen},
    secrets::SecretKey,
};

/// The three secrets a new installation needs, generated once by `init`.
pub struct StarterSecrets {
    /// `server.admin_token`: URL-safe base64 of 32 random bytes (43 characters).
    pub admin_token: SecretString,
    /// `server.webhook_secret`: `whsec_` + base64 of 32 random bytes.
    pub webhook_secret: SecretString,
    /// `server.secret_key`: base64 of 32 random bytes.
    pub secret_key: SecretString,
}

impl StarterSecrets {
    /// Fresh random secrets.
    pub fn generate() -> StarterSecrets {
        let admin_token: [u8; 32] = rand::random();
        let webhook_secret: [u8; 32] = rand::random();
        StarterSecrets {
            admin_token: URL_SAFE_NO_PAD.encode(admin_token).into(),
            webhook_secret: format!("whsec_{}", BASE64.encode(webhook_secret)).into(),
            secret_key: SecretKey::generate().to_text(),
        }
    }
}

/// The starter file: `[database]` and `[server]` set (with `secrets`), the other sections
/// commented out, each key explained in one line.
pub fn starter_file(secrets: &StarterSecrets) -> String {
    let database_url = DatabaseSettings::default().url;
    let listen = default_listen();
    let admin_token = secrets.admin_token.expose_secret();
    let webhook_secret = secrets.webhook_secret.expose_secret();
    let secret_key = secrets.secret_key.expose_secret();
    format!(
        r#"# jmotto-zoom configuration, written by `jmotto-zoom init`.
# It holds secrets: keep it private (mode 0600). Any key may also be set from the
# environment as JMZ__SECTION__KEY (e.g. JMZ__ZOOM__CLIENT_SECRET), which wins over the file.

[database]
# The SQLite database (relative to the working directory; file and folder created if missing).
url = "{database_url}"

[server]
# The address and port the service listens on.
listen = "{listen}"
# Bearer token for the admin API (/api/v1/*) and the `status` and `sync` commands.
admin_token = "{admin_token}"
# Standard Webhooks secret J-MOTTO signs its webhooks to /webhooks/groupware with.
webhook_secret = "{webhook_secret}"
# Encrypts the secrets stored in the database; keep a copy, without it they cannot be read.
secret_key = "{secret_key}"
# How people reach this server (e.g. "https://zoom-sync.example.co.jp"): alert e-mails then
# link to its console. Empty = no link.
# public_url = ""

# Everything below may be left out: the console (http://{listen}/admin/) asks for it and
# keeps it in the database (secrets encrypted with secret_key). A key set here wins and is
# shown read-only there.

# The Zoom Server-to-Server OAuth app (Zoom App Marketplace, scopes for meetings and users).
# [zoom]
# account_id = ""                 # the app's Account ID
# client_id = ""                  # the app's Client ID
# client_secret = ""              # the app's Client Secret

# The J-MOTTO Groupware administrator the service reads schedules as.
# [groupware]
# base_url = ""                   # your J-MOTTO address up to and including the last `/`
# admin_login_id = ""             # the administrator's login id
# admin_password = ""             # the administrator's mobile password
# timezone = "Asia/Tokyo"         # the administrator's timezone (IANA name)

# How entries become meetings (the values shown are the defaults).
# [sync]
# location = "ZOOM 会議"          # the 場所 (location item) that makes an entry a Zoom meeting
# months = 3                      # months synced, from the 1st of the current month
# poll_interval_seconds = 300     # a sync at start-up, then every interval; 0 = only on request
# on_reschedule = "create_new"    # a moved entry: "create_new", "update" or "replace" its meeting
# on_delete = "keep"              # a deleted entry: "keep" or "delete" its meeting
# invite_members = false          # true = the entry's other members are invited

# One entry per J-MOTTO user whose entries become meetings in their Zoom account.
# [[users]]
# groupware_id = ""               # the user's J-MOTTO user id
# zoom_email = ""                 # the user's Zoom account e-mail (the meetings' host)

# Where alerts go when the integration breaks (the console's 通知設定 page; SPEC §10).
# Either channel, both or none; smtp_url and webhook_secret are secrets.
# [alerts]
# email_to = []                   # who gets alert e-mails, e.g. ["it@example.co.jp"]; empty = no e-mail
# email_from = ""                 # the e-mails' sender, e.g. "jmotto-zoom@example.co.jp"
# smtp_url = ""                   # "smtp://user:password@host:587?tls=required" (STARTTLS), "smtps://user:password@host:465" (TLS), "smtp://host:25" (a local relay only)
# webhook_url = ""                # one signed JSON POST per alert (a Slack-compatible endpoint shows its text); empty = none
# webhook_secret = ""             # "whsec_<base64>": signs those POSTs (Standard Webhooks headers)
"#
    )
}

/// Writes the starter file at `path` (never over an existing file) and prints the next
/// steps.
pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let secrets = StarterSecrets::generate();
    let text = starter_file(&secrets);
    write_new_private(path, &text)?;
    let mut out = std::io::stdout().lock();
    // A closed stdout (`| head`) loses only the advice: the file is written.
    let _ = out.write_all(next_steps(path, &text).as_bytes());
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}

/// What `init` prints after writing `path` (holding `text`): the next two steps, no secret.
fn next_steps(path: &Path, text: &str) -> String {
    let shown = path.display();
    let start = format!("jmotto-zoom run --config {shown}");
    let first = match Settings::from_toml_str(text) {
        Ok(_) => format!("  1. Start the service: {start}\n"),
        // The configuration's messages name keys and never quote values.
        Err(error) => {
            let missing = format!("{error:#}")
                .lines()
                .filter(|line| line.contains("key "))
                .map(|line| format!("       {}\n", line.trim()))
                .collect::<String>();
            format!(
                "  1. Fix what start-up refuses in {shown}:\n{missing}     then start the service: {start}\n"
            )
        }
    };
    format!(
        "Wrote {shown} (readable by you only): a new admin token, webhook secret and secret key are in it.\n\
         Next:\n\
         {first}\
         \x20 2. Open the console at http://{listen}/admin/ , sign in with the admin_token of {shown}, and follow its steps (Zoom連携設定, ユーザー) until 状態 shows 有効 (the README explains each step).\n",
        listen = default_listen(),
    )
}

/// Creates `path` with `text`, mode 0600, refusing an existing file.
fn write_new_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
            "{} already exists; init never overwrites a configuration (it holds secrets): choose another --path, or move the file away first",
            path.display()
        ),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot create {}", path.display()));
        }
    };
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> StarterSecrets {
        StarterSecrets::generate()
    }

    /// The file is valid TOML with only `[database]` and `[server]`; it loads (SPEC §8: the
    /// console asks for the rest), every credential unset.
    #[test]
    fn the_starter_file_loads_with_the_rest_left_to_the_console() {
        let text = starter_file(&secrets());
        let parsed: toml::Table = text.parse().expect("valid TOML");
        let sections: Vec<&String> = parsed.keys().collect();
        assert_eq!(sections, ["database", "server"]);
        let settings = Settings::from_toml_str(&text).expect("loads");
        assert_eq!(settings.unset_credentials().len(), 6);
        assert!(settings.file_keys.is_empty(), "{:?}", settings.file_keys);
    }

    /// Every commented-out key is a real key: uncommented and filled in, the file loads.
    #[test]
    fn every_commented_key_is_a_real_key() {
        let text = starter_file(&secrets());
        let uncommented: String = text
            .lines()
            .map(|line| {
                let rest = line.strip_prefix("# ").unwrap_or(line);
                let is_key = rest.starts_with('[')
                    || rest.split_once(" = ").is_some_and(|(key, _)| {
                        key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    });
                if is_key { rest } else { line }
            })
            .collect::<Vec<_>>()
            .join("\n")
            .replace(
                "base_url = \"\"",
                "base_url = \"https://example.invalid/cgi-bin/\"",
            )
            .replace("zoom_email = \"\"", "zoom_email = \"tanaka@example.co.jp\"")
            .replace(
                "public_url = \"\"",
                "public_url = \"https://zoom-sync.example.co.jp\"",
            )
            .replace("email_to = []", "email_to = [\"it@example.co.jp\"]")
            .replace(
                "email_from = \"\"",
                "email_from = \"jmotto-zoom@example.co.jp\"",
            )
            .replace("smtp_url = \"\"", "smtp_url = \"smtp://127.0.0.1:25\"")
            .replace(
                "webhook_url = \"\"",
                "webhook_url = \"https://hooks.example.co.jp/x\"",
            )
            .replace(
                "webhook_secret = \"\"",
                "webhook_secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"",
            )
            .replace(" = \"\"", " = \"filled-in\"");
        let settings = Settings::from_toml_str(&uncommented).expect("loads");
        assert_eq!(settings.users.len(), 1);
        assert!(settings.server.secret_key.is_some());
        assert!(settings.server.webhook_secret.is_some());
        // SPEC §10: the [alerts] keys and server.public_url are among them.
        assert!(settings.alerts.email_configured() && settings.alerts.webhook_configured());
        assert_eq!(
            settings.server.public_url(),
            Some("https://zoom-sync.example.co.jp")
        );
    }

    #[test]
    fn the_next_steps_show_no_secret() {
        let secrets = secrets();
        let text = starter_file(&secrets);
        let shown = next_steps(Path::new("j.toml"), &text);
        assert!(shown.contains("jmotto-zoom run --config j.toml"), "{shown}");
        assert!(shown.contains("README"), "{shown}");
        for secret in [
            &secrets.admin_token,
            &secrets.webhook_secret,
            &secrets.secret_key,
        ] {
            assert!(!shown.contains(secret.expose_secret()), "{shown}");
        }
    }
}
