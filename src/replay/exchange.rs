//! The fixture format: `{"description", "exchanges": [{"name", "request", "response"}]}`.
//!
//! Request matching: `method` (or `ANY`) and `path` equal, where a `{name}` segment matches
//! any one segment and a final `{name*}` any rest; `form` equal to the request's form (or,
//! with `form_subset`, every listed field equal); `query` equal when present; every listed
//! header present with that value (names case-insensitive); and none of `unless_headers`
//! present with that value (for "wrong or missing key" fallbacks).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{RecordedRequest, status_code};

/// A fixture file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FixtureFile {
    #[serde(default)]
    pub description: String,
    pub exchanges: Vec<Exchange>,
}

/// One recorded exchange.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exchange {
    #[serde(default)]
    pub name: String,
    pub request: ExchangeRequest,
    pub response: ExchangeResponse,
}

/// What a request must look like.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExchangeRequest {
    pub method: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub form_subset: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unless_headers: BTreeMap<String, String>,
}

/// The recorded answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExchangeResponse {
    pub status: u16,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// Plain text body (e.g. a 429 without JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A stateful Zoom endpoint: `zoom_create_meeting`, `zoom_update_meeting`,
    /// `zoom_delete_meeting`, `zoom_list_meetings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<String>,
}

impl ExchangeResponse {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> ExchangeResponse {
        ExchangeResponse {
            status,
            headers: BTreeMap::new(),
            json: Some(body),
            text: None,
            dynamic: None,
        }
    }

    pub(super) fn to_http(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(status_code(self.status));
        for (name, value) in &self.headers {
            builder.insert_header((name.as_str(), value.as_str()));
        }
        match (&self.json, &self.text) {
            (Some(json), _) => builder.json(json),
            (None, Some(text)) => builder.content_type("text/plain").body(text.clone()),
            (None, None) => builder.finish(),
        }
    }
}

impl Exchange {
    /// A `list_events` request of the fixture tenant with the fixture access key matcher
    /// copied from nothing: callers replace the response.
    pub fn list_events(uid: &str, from: &str, to: &str, page: u32) -> Exchange {
        let form: BTreeMap<String, String> = [
            ("action", "list_events".to_owned()),
            ("uid", uid.to_owned()),
            ("from", from.to_owned()),
            ("to", to.to_owned()),
            ("page", page.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Exchange {
            name: format!("{uid} {from}..{to} page {page}"),
            request: ExchangeRequest {
                method: "POST".to_owned(),
                path: format!("{}schedule.cgi", super::company::JMOTTO_BASE_PATH),
                form: Some(form),
                form_subset: false,
                query: None,
                headers: BTreeMap::new(),
                unless_headers: BTreeMap::new(),
            },
            response: ExchangeResponse::json(200, Value::Null),
        }
    }

    /// The path captures when `request` matches, else `None`.
    pub fn matches(&self, request: &RecordedRequest) -> Option<BTreeMap<String, String>> {
        let want = &self.request;
        if want.method != "ANY" && !want.method.eq_ignore_ascii_case(&request.method) {
            return None;
        }
        let captures = match_path(&want.path, &request.path)?;
        if let Some(form) = &want.form {
            let ok = if want.form_subset {
                form.iter().all(|(k, v)| request.form.get(k) == Some(v))
            } else {
                *form == request.form
            };
            if !ok {
                return None;
            }
        }
        if let Some(query) = &want.query
            && *query != request.query
        {
            return None;
        }
        let header = |name: &str| request.headers.get(&name.to_ascii_lowercase());
        if !want.headers.iter().all(|(k, v)| header(k) == Some(v)) {
            return None;
        }
        if !want.unless_headers.is_empty()
            && want
                .unless_headers
                .iter()
                .all(|(k, v)| header(k) == Some(v))
        {
            return None;
        }
        Some(captures)
    }
}

fn match_path(pattern: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let mut captures = BTreeMap::new();
    let want: Vec<&str> = pattern.split('/').collect();
    let got: Vec<&str> = path.split('/').collect();
    for (i, segment) in want.iter().enumerate() {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix("*}")) {
            captures.insert(name.to_owned(), got.get(i..)?.join("/"));
            return Some(captures);
        }
        let actual = got.get(i)?;
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) if !actual.is_empty() => {
                captures.insert(name.to_owned(), decode(actual));
            }
            Some(_) => return None,
            None if segment == actual => {}
            None => return None,
        }
    }
    (want.len() == got.len()).then_some(captures)
}

fn decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_owned())
}

/// What a request looked like, for matching and for the record.
pub(super) fn record(request: &HttpRequest, body: &[u8]) -> RecordedRequest {
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(request.query_string().as_bytes())
            .into_owned()
            .collect();
    let headers: BTreeMap<String, String> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_ascii_lowercase(), v.to_owned()))
        })
        .collect();
    let content_type = headers.get("content-type").cloned().unwrap_or_default();
    let form = if content_type.starts_with("application/x-www-form-urlencoded") {
        url::form_urlencoded::parse(body).into_owned().collect()
    } else {
        BTreeMap::new()
    };
    let json = if content_type.starts_with("application/json") {
        serde_json::from_slice(body).ok()
    } else {
        None
    };
    RecordedRequest {
        method: request.method().as_str().to_owned(),
        path: request.path().to_owned(),
        query,
        form,
        headers,
        json,
        status: 0,
        fault: None,
    }
}

/// One line naming a request (never its secrets: form fields named password and the
/// authorization headers are left out).
pub(super) fn describe(request: &RecordedRequest) -> String {
    let form: BTreeMap<&String, &String> = request
        .form
        .iter()
        .filter(|(k, _)| !k.contains("password"))
        .collect();
    format!(
        "{} {} query={:?} form={:?}",
        request.method, request.path, request.query, form
    )
}
