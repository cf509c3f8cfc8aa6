//! `jmotto-zoom init --path F` (issue 10, item 7): the real binary writes a starter file
//! readable by its owner only, with three freshly generated secrets of the right shapes,
//! refuses to overwrite it, and prints the next steps without any secret.

use std::process::Output;

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};

fn init(path: &std::path::Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_jmotto-zoom"))
        .arg("init")
        .arg("--path")
        .arg(path)
        .output()
        .expect("jmotto-zoom init runs")
}

/// The value of `key = "…"` in the `[server]` section of `text`.
fn server_value(text: &str, key: &str) -> String {
    let table: toml::Table = text.parse().expect("valid TOML");
    table["server"][key]
        .as_str()
        .unwrap_or_else(|| panic!("server.{key} is set"))
        .to_owned()
}

#[test]
fn init_writes_a_private_starter_file_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("j.toml");
    let output = init(&path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path)
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let text = std::fs::read_to_string(&path).expect("written");

    let admin_token = server_value(&text, "admin_token");
    let webhook_secret = server_value(&text, "webhook_secret");
    let secret_key = server_value(&text, "secret_key");
    assert_eq!(
        URL_SAFE_NO_PAD.decode(&admin_token).map(|b| b.len()),
        Ok(32)
    );
    let webhook_key = webhook_secret
        .strip_prefix("whsec_")
        .expect("whsec_ prefix");
    assert_eq!(STANDARD.decode(webhook_key).map(|b| b.len()), Ok(32));
    assert_eq!(STANDARD.decode(&secret_key).map(|b| b.len()), Ok(32));
    assert!(admin_token != webhook_key && webhook_key != secret_key && admin_token != secret_key);
    jmotto_zoom::secrets::SecretKey::parse(&secret_key).expect("a valid secret key");

    // The next steps, and no secret.
    let shown = format!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        shown.contains(&format!("jmotto-zoom run --config {}", path.display())),
        "{shown}"
    );
    assert!(shown.contains("README"), "{shown}");
    for secret in [
        admin_token.as_str(),
        &webhook_secret,
        webhook_key,
        &secret_key,
    ] {
        assert!(!shown.contains(secret), "a secret was printed: {shown}");
    }

    // It loads as it is (SPEC §8: the console asks for the rest); every credential unset.
    let settings = jmotto_zoom::config::Settings::load(&path).expect("the starter file loads");
    assert_eq!(settings.unset_credentials().len(), 6);
    assert!(
        shown.contains("/admin/"),
        "the next steps lead to the console: {shown}"
    );

    // A second init refuses, and leaves the file as it was.
    let again = init(&path);
    assert!(!again.status.success());
    let refused = String::from_utf8_lossy(&again.stderr);
    assert!(refused.contains("already exists"), "{refused}");
    assert_eq!(std::fs::read_to_string(&path).expect("kept"), text);
}
