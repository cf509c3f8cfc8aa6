//! Who hosts a shared entry's one meeting, and who is invited (R-USERS, R-HOST,
//! R-ATTENDEES).

use std::collections::BTreeMap;

use crate::domain::ids::{GroupwareUserId, ZoomEmail};

/// The host of a meeting: an enabled groupware user and the Zoom account they map to.
///
/// Invariant (for values built by [`choose_host`]): `user_id` is enabled and `zoom_email` is
/// the address the administrator mapped it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The groupware user the meeting is made for.
    pub user_id: GroupwareUserId,
    /// The Zoom account (`userId` in Zoom's API) that owns the meeting.
    pub zoom_email: ZoomEmail,
}

/// The users the administrator enabled, each mapped to a Zoom e-mail (disabled users are
/// simply absent).
///
/// Invariant: each user id appears once (the last pair given for an id wins), and every
/// user in it may host or be invited (R-USERS).
#[derive(Debug, Clone, Default)]
pub struct EnabledUsers {
    zoom_email_by_user: BTreeMap<GroupwareUserId, ZoomEmail>,
}

impl EnabledUsers {
    /// Builds the set from `(user id, Zoom e-mail)` pairs of enabled users; a repeated id
    /// keeps its last e-mail.
    pub fn new(pairs: impl IntoIterator<Item = (GroupwareUserId, ZoomEmail)>) -> Self {
        Self {
            zoom_email_by_user: pairs.into_iter().collect(),
        }
    }

    /// The Zoom e-mail of user `id` (surrounding white space ignored), or `None` when the
    /// user is not enabled or `id` is not a valid user id.
    pub fn get(&self, id: &str) -> Option<&ZoomEmail> {
        self.get_key_value(id).map(|(_, zoom_email)| zoom_email)
    }

    /// Whether user `id` (surrounding white space ignored) is enabled.
    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// The enabled user ids, in ascending order.
    pub fn ids(&self) -> impl Iterator<Item = &GroupwareUserId> {
        self.zoom_email_by_user.keys()
    }

    /// How many users are enabled.
    pub fn len(&self) -> usize {
        self.zoom_email_by_user.len()
    }

    /// Whether no user is enabled (then nothing is ever synced).
    pub fn is_empty(&self) -> bool {
        self.zoom_email_by_user.is_empty()
    }

    fn get_key_value(&self, id: &str) -> Option<(&GroupwareUserId, &ZoomEmail)> {
        let id = GroupwareUserId::parse(id).ok()?;
        self.zoom_email_by_user.get_key_value(&id)
    }

    fn host(&self, id: &str) -> Option<Host> {
        self.get_key_value(id).map(|(user_id, zoom_email)| Host {
            user_id: user_id.clone(),
            zoom_email: zoom_email.clone(),
        })
    }
}

/// The host of an entry's one meeting (R-HOST): the owner if enabled, else the first
/// enabled member in member order; `None` when no member is enabled (the entry is then
/// not synced, reason `no_enabled_host`).
pub fn choose_host(owner: &str, members: &[String], enabled: &EnabledUsers) -> Option<Host> {
    enabled
        .host(owner)
        .or_else(|| members.iter().find_map(|member| enabled.host(member)))
}

/// The Zoom e-mails of the other enabled members, member order, no duplicates, host
/// excluded (used only when `sync.invite_members = true`, R-ATTENDEES).
///
/// The owner counts as a participant ahead of the members, so an enabled owner who is not
/// the host is invited too. Users mapped to the host's own address are left out, and an
/// address shared by several users appears once.
pub fn invitees(
    host: &Host,
    owner: &str,
    members: &[String],
    enabled: &EnabledUsers,
) -> Vec<ZoomEmail> {
    let mut invited: Vec<ZoomEmail> = Vec::new();
    let participants = std::iter::once(owner).chain(members.iter().map(String::as_str));
    for participant in participants {
        let Some((user_id, zoom_email)) = enabled.get_key_value(participant) else {
            continue;
        };
        let is_host = *user_id == host.user_id || *zoom_email == host.zoom_email;
        if !is_host && !invited.contains(zoom_email) {
            invited.push(zoom_email.clone());
        }
    }
    invited
}

#[cfg(test)]
mod tests {
    // R-USERS, R-HOST, R-ATTENDEES
    use super::*;

    fn email(address: &str) -> ZoomEmail {
        ZoomEmail::parse(address).unwrap()
    }

    /// Users 10001..10003 and 10005 enabled; 10004 (and everyone else) disabled.
    fn enabled_users() -> EnabledUsers {
        EnabledUsers::new(
            [
                ("10001", "sato@example.jp"),
                ("10002", "tanaka@example.jp"),
                ("10003", "suzuki@example.jp"),
                ("10005", "tanaka@example.jp"),
            ]
            .map(|(id, address)| (GroupwareUserId::parse(id).unwrap(), email(address))),
        )
    }

    fn members(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    fn check_host(owner: &str, member_ids: &[&str], expected: Option<(&str, &str)>) {
        let host = choose_host(owner, &members(member_ids), &enabled_users());
        let host = host
            .as_ref()
            .map(|host| (host.user_id.as_str(), host.zoom_email.as_str()));
        assert_eq!(host, expected, "owner {owner:?}, members {member_ids:?}");
    }

    /// Owner, members, and the expected host's id and e-mail.
    type HostCase = (
        &'static str,
        &'static [&'static str],
        Option<(&'static str, &'static str)>,
    );

    #[test]
    fn r_host_choose_host() {
        let cases: &[HostCase] = &[
            // The enabled owner hosts.
            (
                "10002",
                &["10001", "10002"],
                Some(("10002", "tanaka@example.jp")),
            ),
            ("10002", &[], Some(("10002", "tanaka@example.jp"))),
            (" 10002 ", &[], Some(("10002", "tanaka@example.jp"))),
            // A disabled owner: the first enabled member in member order.
            (
                "10004",
                &["10004", "10003", "10001"],
                Some(("10003", "suzuki@example.jp")),
            ),
            (
                "",
                &["99999", "bad id", "10001"],
                Some(("10001", "sato@example.jp")),
            ),
            // No enabled member: no meeting.
            ("10004", &["10004", "99999"], None),
            ("10004", &[], None),
        ];
        for (owner, member_ids, expected) in cases {
            check_host(owner, member_ids, *expected);
        }
    }

    fn check_invitees(owner: &str, member_ids: &[&str], expected: &[&str]) {
        let enabled = enabled_users();
        let members = members(member_ids);
        let host = choose_host(owner, &members, &enabled).unwrap();
        let invited = invitees(&host, owner, &members, &enabled);
        let invited: Vec<&str> = invited.iter().map(ZoomEmail::as_str).collect();
        assert_eq!(invited, expected, "owner {owner:?}, members {member_ids:?}");
    }

    #[test]
    fn r_attendees_invitees() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("10001", &[], &[]),
            ("10001", &["10001"], &[]),
            // Member order, host left out, disabled users left out.
            (
                "10001",
                &["10003", "10004", "10001", "10002"],
                &["suzuki@example.jp", "tanaka@example.jp"],
            ),
            // No duplicates, even when a member is listed twice.
            ("10001", &["10003", "10003"], &["suzuki@example.jp"]),
            // 10005 shares the host's address: not invited to its own meeting.
            ("10002", &["10005", "10003"], &["suzuki@example.jp"]),
            // A disabled owner is not invited; the host (first enabled member) neither.
            ("10004", &["10003", "10001"], &["sato@example.jp"]),
        ];
        for (owner, member_ids, expected) in cases {
            check_invitees(owner, member_ids, expected);
        }
    }

    #[test]
    fn r_attendees_enabled_owner_who_is_not_the_host_is_invited() {
        let enabled = enabled_users();
        let host = Host {
            user_id: GroupwareUserId::parse("10003").unwrap(),
            zoom_email: email("suzuki@example.jp"),
        };
        let invited = invitees(&host, "10001", &members(&["10003", "10002"]), &enabled);
        assert_eq!(
            invited,
            vec![email("sato@example.jp"), email("tanaka@example.jp")]
        );
    }

    #[test]
    fn r_users_enabled_users() {
        let enabled = enabled_users();
        assert_eq!(enabled.len(), 4);
        assert!(!enabled.is_empty());
        let cases = [
            ("10001", Some("sato@example.jp")),
            (" 10001\t", Some("sato@example.jp")),
            ("10004", None),
            ("", None),
            ("100 01", None),
        ];
        for (id, expected) in cases {
            assert_eq!(
                enabled.get(id).map(ZoomEmail::as_str),
                expected,
                "id {id:?}"
            );
            assert_eq!(enabled.contains(id), expected.is_some(), "id {id:?}");
        }
        let ids: Vec<&str> = enabled.ids().map(GroupwareUserId::as_str).collect();
        assert_eq!(ids, ["10001", "10002", "10003", "10005"]);

        let empty = EnabledUsers::default();
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        assert!(choose_host("10001", &members(&["10001"]), &empty).is_none());
    }

    #[test]
    fn r_users_a_repeated_id_keeps_its_last_address() {
        let id = GroupwareUserId::parse("10001").unwrap();
        let enabled = EnabledUsers::new([
            (id.clone(), email("old@example.jp")),
            (id, email("new@example.jp")),
        ]);
        assert_eq!(enabled.len(), 1);
        assert_eq!(enabled.get("10001"), Some(&email("new@example.jp")));
    }
}
