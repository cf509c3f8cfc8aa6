//! The J-MOTTO wire layer: every module name, action and field name of shared
//! `api/jmotto.md` lives here and nowhere else, so it can be corrected in one place against a
//! real tenant.

use serde::{Deserialize, Deserializer};

/// Module of `login`.
pub const LOGIN_MODULE: &str = "dneo.cgi";
/// Module of `list_users`.
pub const USERS_MODULE: &str = "zrconst.cgi";
/// Module of `list_places` and `list_events`.
pub const SCHEDULE_MODULE: &str = "schedule.cgi";
/// Header carrying the access key on every call but login.
pub const AUTH_HEADER: &str = "X-Desknets-Auth";

/// errorno: wrong login ID or password.
pub const ERR_LOGIN_FAILED: i64 = 1001;
/// errorno: access key invalid or expired.
pub const ERR_ACCESS_KEY: i64 = 1002;
/// errorno: no permission to view this user's schedule.
pub const ERR_FORBIDDEN: i64 = 2001;
/// errorno: no such user.
pub const ERR_NO_SUCH_USER: i64 = 2002;
/// errorno: internal error.
pub const ERR_INTERNAL: i64 = 9000;

/// The `status: ok | ng` envelope's failure half.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub status: String,
    #[serde(default)]
    pub errorno: Option<i64>,
    #[serde(default)]
    pub errormessage: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginResponse {
    pub access_key: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub user: Option<LoginUser>,
}

#[derive(Debug, Deserialize)]
pub struct LoginUser {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct UsersResponse {
    #[serde(default)]
    pub users: Vec<WireUser>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WireUser {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub login_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub organization: String,
}

#[derive(Debug, Deserialize)]
pub struct PlacesResponse {
    #[serde(default)]
    pub places: Vec<WirePlace>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WirePlace {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct EventsResponse {
    #[serde(default)]
    pub events: Vec<WireEvent>,
    #[serde(default)]
    pub next_page: Option<u32>,
}

/// One item of `list_events`: an entry, or one occurrence of a repeating entry.
#[derive(Debug, Clone, Deserialize)]
pub struct WireEvent {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default)]
    pub occurrence: Option<String>,
    #[serde(default)]
    pub repeat: Option<String>,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub place: Option<String>,
    #[serde(default)]
    pub memo: Option<String>,
    #[serde(default)]
    pub allday: bool,
    pub start: String,
    pub end: String,
    #[serde(deserialize_with = "string_or_number")]
    pub owner: String,
    #[serde(default, deserialize_with = "strings_or_numbers")]
    pub members: Vec<String>,
    /// When the entry was last changed (local time, no offset).
    #[serde(default)]
    pub updated: Option<String>,
}

/// The request field naming the call within a module.
pub const ACTION_FIELD: &str = "action";

/// Request fields of `login`: the administrator's login ID and mobile password (the form
/// holds the password only while the request is sent).
pub fn login_form(login_id: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        (ACTION_FIELD, "login".to_owned()),
        ("login_id", login_id.to_owned()),
        ("password", password.to_owned()),
    ]
}

/// Request fields of `list_users`.
pub fn list_users_form() -> Vec<(&'static str, String)> {
    vec![(ACTION_FIELD, "list_users".to_owned())]
}

/// Request fields of `list_places`.
pub fn list_places_form() -> Vec<(&'static str, String)> {
    vec![(ACTION_FIELD, "list_places".to_owned())]
}

/// Request fields of `list_events`.
pub fn list_events_form(uid: &str, from: &str, to: &str, page: u32) -> Vec<(&'static str, String)> {
    vec![
        (ACTION_FIELD, "list_events".to_owned()),
        ("uid", uid.to_owned()),
        ("from", from.to_owned()),
        ("to", to.to_owned()),
        ("page", page.to_string()),
    ]
}

fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(i64),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(s) => s,
        Id::Number(n) => n.to_string(),
    })
}

fn strings_or_numbers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(i64),
    }
    Ok(Vec::<Id>::deserialize(deserializer)?
        .into_iter()
        .map(|id| match id {
            Id::Text(s) => s,
            Id::Number(n) => n.to_string(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request fields of shared `api/jmotto.md`, each call's from this module alone.
    #[test]
    fn request_fields_follow_the_api() {
        assert_eq!(
            login_form("admin", "pw"),
            vec![
                ("action", "login".to_owned()),
                ("login_id", "admin".to_owned()),
                ("password", "pw".to_owned()),
            ]
        );
        assert_eq!(list_users_form(), vec![("action", "list_users".to_owned())]);
        assert_eq!(
            list_places_form(),
            vec![("action", "list_places".to_owned())]
        );
        assert_eq!(
            list_events_form("10002", "2026-11-01", "2026-11-30", 2),
            vec![
                ("action", "list_events".to_owned()),
                ("uid", "10002".to_owned()),
                ("from", "2026-11-01".to_owned()),
                ("to", "2026-11-30".to_owned()),
                ("page", "2".to_owned()),
            ]
        );
    }
}
