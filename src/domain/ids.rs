//! Identifiers: who a groupware user is, which Zoom account they map to, and which
//! schedule entry a meeting belongs to.

use std::fmt;

use crate::domain::DomainError;

/// Longest groupware user id accepted, in Unicode scalar values.
const USER_ID_MAX_CHARS: usize = 64;
/// Longest e-mail address accepted, in Unicode scalar values (RFC 5321's path limit).
const EMAIL_MAX_CHARS: usize = 254;

/// A J-MOTTO (desknet's NEO) user id, such as `"10002"`.
///
/// Invariant: trimmed, 1 to 64 characters, no white space and no control characters. It is
/// the key of `EnabledUsers` and the value compared against an entry's owner and members.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct GroupwareUserId(String);

impl GroupwareUserId {
    /// Parses a user id, trimming surrounding white space first.
    ///
    /// Fails with [`DomainError::InvalidUserId`] (carrying the input as given) when the
    /// trimmed id is empty, longer than 64 characters, or contains white space or control
    /// characters.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let trimmed = s.trim();
        let length = trimmed.chars().count();
        let has_forbidden_char = trimmed.chars().any(|c| c.is_whitespace() || c.is_control());
        if length == 0 || length > USER_ID_MAX_CHARS || has_forbidden_char {
            return Err(DomainError::InvalidUserId(s.to_owned()));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The id as J-MOTTO spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupwareUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for GroupwareUserId {
    type Error = DomainError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<GroupwareUserId> for String {
    fn from(value: GroupwareUserId) -> Self {
        value.0
    }
}

/// The e-mail address of a Zoom user, used as the `userId` of Zoom's meeting API.
///
/// Invariant: trimmed, lowercased, at most 254 characters, no white space or control
/// characters, exactly one `@` with a non-empty local part before it and a domain after it
/// that contains a `.` and no empty label (so `a@.jp`, `a@example.` and `a@x..jp` are
/// refused). Two addresses that differ only in case are the same `ZoomEmail`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ZoomEmail(String);

impl ZoomEmail {
    /// Parses an address, trimming and lowercasing it first.
    ///
    /// Fails with [`DomainError::InvalidEmail`] (carrying the input as given) when the
    /// result breaks any part of the type's invariant.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let normalized = s.trim().to_lowercase();
        if is_plausible_email(&normalized) {
            Ok(Self(normalized))
        } else {
            Err(DomainError::InvalidEmail(s.to_owned()))
        }
    }

    /// The address, lowercased.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether an already trimmed and lowercased string meets `ZoomEmail`'s invariant.
fn is_plausible_email(address: &str) -> bool {
    if address.is_empty() || address.chars().count() > EMAIL_MAX_CHARS {
        return false;
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local_part, domain)) = address.split_once('@') else {
        return false;
    };
    !local_part.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
}

impl fmt::Display for ZoomEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ZoomEmail {
    type Error = DomainError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ZoomEmail> for String {
    fn from(value: ZoomEmail) -> Self {
        value.0
    }
}

/// Identifies one entry across edits: a single entry has occurrence `""`; an occurrence of
/// a repeating entry has its original date `"YYYY-MM-DD"`.
///
/// The key stays the same when the entry is moved or retitled, so it is what ties an entry
/// to the Zoom meetings made for it (R-ONCE, R-RESCHEDULE).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct EntryKey {
    /// J-MOTTO's schedule id of the entry (shared by every occurrence of a repeat).
    pub schedule_id: String,
    /// `""` for a single entry, else the occurrence's original date `"YYYY-MM-DD"`.
    pub occurrence: String,
}

impl EntryKey {
    /// The agenda marker line: `"jmotto-zoom: <schedule id>"` or
    /// `"jmotto-zoom: <schedule id>/<occurrence>"` (R-TOPIC).
    ///
    /// It is the last line of every agenda this service writes, so a meeting found in Zoom
    /// can be traced back to its entry.
    pub fn marker(&self) -> String {
        if self.occurrence.is_empty() {
            format!("jmotto-zoom: {}", self.schedule_id)
        } else {
            format!("jmotto-zoom: {}/{}", self.schedule_id, self.occurrence)
        }
    }
}

#[cfg(test)]
mod tests {
    // R-USERS: the ids and addresses that map enabled users to Zoom accounts.
    use super::*;

    fn check_user_id(input: &str, expected: Option<&str>) {
        let parsed = GroupwareUserId::parse(input);
        match expected {
            Some(id) => assert_eq!(
                parsed.as_ref().map(GroupwareUserId::as_str),
                Ok(id),
                "input {input:?}"
            ),
            None => assert_eq!(
                parsed,
                Err(DomainError::InvalidUserId(input.to_owned())),
                "input {input:?}"
            ),
        }
    }

    #[test]
    fn r_users_groupware_user_id_parse() {
        let sixty_four = "9".repeat(64);
        let sixty_five = "9".repeat(65);
        let cases: &[(&str, Option<&str>)] = &[
            ("10002", Some("10002")),
            ("  10002\t", Some("10002")),
            ("a", Some("a")),
            ("田中", Some("田中")),
            (&sixty_four, Some(&sixty_four)),
            (&sixty_five, None),
            ("", None),
            ("   ", None),
            ("100 02", None),
            ("100\u{3000}02", None),
            ("100\u{0}02", None),
            ("100\u{7f}02", None),
        ];
        for (input, expected) in cases {
            check_user_id(input, *expected);
        }
    }

    fn check_email(input: &str, expected: Option<&str>) {
        let parsed = ZoomEmail::parse(input);
        match expected {
            Some(address) => assert_eq!(
                parsed.as_ref().map(ZoomEmail::as_str),
                Ok(address),
                "input {input:?}"
            ),
            None => assert_eq!(
                parsed,
                Err(DomainError::InvalidEmail(input.to_owned())),
                "input {input:?}"
            ),
        }
    }

    #[test]
    fn r_users_zoom_email_parse() {
        let longest = format!("{}@example.jp", "a".repeat(254 - 11));
        let too_long = format!("{}@example.jp", "a".repeat(255 - 11));
        let cases: &[(&str, Option<&str>)] = &[
            ("tanaka@example.co.jp", Some("tanaka@example.co.jp")),
            (" Tanaka@Example.CO.JP\n", Some("tanaka@example.co.jp")),
            ("a.b+zoom@x.io", Some("a.b+zoom@x.io")),
            (&longest, Some(&longest)),
            (&too_long, None),
            ("", None),
            ("tanaka", None),
            ("@example.jp", None),
            ("tanaka@", None),
            ("tanaka@localhost", None),
            ("tanaka@@example.jp", None),
            ("ta@naka@example.jp", None),
            ("tanaka@.jp", None),
            ("tanaka@example.", None),
            ("tanaka@example..jp", None),
            ("tan aka@example.jp", None),
            ("tanaka@exa\u{3000}mple.jp", None),
            ("tanaka@example.jp\u{0}", None),
        ];
        for (input, expected) in cases {
            check_email(input, *expected);
        }
    }

    #[test]
    fn r_users_ids_round_trip_through_serde_and_refuse_bad_values() {
        let id: GroupwareUserId = serde_json::from_str("\" 10002 \"").unwrap();
        assert_eq!(id.as_str(), "10002");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"10002\"");
        assert!(serde_json::from_str::<GroupwareUserId>("\"10 02\"").is_err());

        let email: ZoomEmail = serde_json::from_str("\"Tanaka@Example.jp\"").unwrap();
        assert_eq!(email.as_str(), "tanaka@example.jp");
        assert_eq!(
            serde_json::to_string(&email).unwrap(),
            "\"tanaka@example.jp\""
        );
        assert!(serde_json::from_str::<ZoomEmail>("\"not-an-address\"").is_err());

        assert_eq!(id.to_string(), "10002");
        assert_eq!(String::from(email.clone()), email.to_string());
        assert_eq!(
            GroupwareUserId::try_from("10002".to_owned()),
            Ok(id.clone())
        );
        assert_eq!(String::from(id), "10002");
    }

    #[test]
    fn r_users_error_messages_name_the_value() {
        let cases = [
            (
                DomainError::InvalidUserId("a b".to_owned()),
                "invalid groupware user id \"a b\": it must be 1-64 characters with no white space",
            ),
            (
                DomainError::InvalidEmail("x".to_owned()),
                "invalid e-mail address \"x\"",
            ),
            (
                DomainError::InvalidMonths(0),
                "months must be between 1 and 24, got 0",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.to_string(), expected);
        }
    }

    fn check_marker(schedule_id: &str, occurrence: &str, expected: &str) {
        let key = EntryKey {
            schedule_id: schedule_id.to_owned(),
            occurrence: occurrence.to_owned(),
        };
        assert_eq!(key.marker(), expected);
    }

    #[test]
    fn r_topic_marker_for_single_entry_and_occurrence() {
        let cases = [
            ("4711", "", "jmotto-zoom: 4711"),
            ("4711", "2026-12-03", "jmotto-zoom: 4711/2026-12-03"),
        ];
        for (schedule_id, occurrence, expected) in cases {
            check_marker(schedule_id, occurrence, expected);
        }
    }
}
