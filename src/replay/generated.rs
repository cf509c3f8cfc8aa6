//! A generated company for load runs (the kill test, the benchmarks): any number of users,
//! each with entries at 「ZOOM 会議」 spread over December and January of the fixture clock's
//! window (November lists nothing), one listing page per (user, month), and the demo's
//! configuration with those users enabled.

use serde_json::{Value, json};

use super::{ReplayServer, demo_config};

/// The months the entries fall in: (first day, last day, year, month).
const MONTHS: [(&str, &str, i32, u32); 2] = [
    ("2026-12-01", "2026-12-31", 2026, 12),
    ("2027-01-01", "2027-01-31", 2027, 1),
];

/// The window's first month, listed empty.
const NOVEMBER: (&str, &str) = ("2026-11-01", "2026-11-30");

/// The first schedule id handed out; entry `i` of the company is `FIRST_SCHEDULE_ID + i`.
pub const FIRST_SCHEDULE_ID: usize = 70_000;

/// Users (groupware id, Zoom e-mail) and how many entries each owns.
#[derive(Debug, Clone)]
pub struct GeneratedCompany {
    pub users: Vec<(String, String)>,
    pub entries_per_user: usize,
}

impl GeneratedCompany {
    /// `users` users named `2xxxx` / `user-xxxx@example.co.jp`, `entries_per_user` each.
    pub fn new(users: usize, entries_per_user: usize) -> GeneratedCompany {
        GeneratedCompany {
            users: (0..users)
                .map(|i| {
                    (
                        format!("{}", 20_000 + i),
                        format!("user-{i:04}@example.co.jp"),
                    )
                })
                .collect(),
            entries_per_user,
        }
    }

    /// The given users, `entries` spread over them round-robin (the kill test's company).
    pub fn with_users(users: &[(&str, &str)], entries_per_user: usize) -> GeneratedCompany {
        GeneratedCompany {
            users: users
                .iter()
                .map(|(id, email)| ((*id).to_owned(), (*email).to_owned()))
                .collect(),
            entries_per_user,
        }
    }

    /// Entries in all.
    pub fn entry_count(&self) -> usize {
        self.users.len() * self.entries_per_user
    }

    /// The agenda marker of every entry (`jmotto-zoom: <schedule id>`), to count meetings by.
    pub fn markers(&self) -> Vec<String> {
        (0..self.entry_count())
            .map(|i| format!("jmotto-zoom: {}", FIRST_SCHEDULE_ID + i))
            .collect()
    }

    /// Puts every user's listings on the J-MOTTO replay.
    pub fn load(&self, jmotto: &ReplayServer) {
        for (user_index, (user, _)) in self.users.iter().enumerate() {
            jmotto.set_events(user, NOVEMBER.0, NOVEMBER.1, 1, json!([]), None);
            let mut by_month: [Vec<Value>; 2] = [Vec::new(), Vec::new()];
            for n in 0..self.entries_per_user {
                let index = user_index * self.entries_per_user + n;
                by_month[n % 2].push(entry(index, n, user, MONTHS[n % 2]));
            }
            for ((from, to, _, _), events) in MONTHS.into_iter().zip(by_month) {
                jmotto.set_events(user, from, to, 1, Value::Array(events), None);
            }
        }
    }

    /// The demo's configuration (SPEC §4) with these users enabled and `extra` TOML tables
    /// merged over it (e.g. `[worker]` settings, `zoom.create_per_second`).
    pub fn config(
        &self,
        jmotto: &ReplayServer,
        zoom: &ReplayServer,
        database_url: &str,
        listen: &str,
        extra: &str,
    ) -> anyhow::Result<String> {
        let mut table: toml::Table =
            toml::from_str(&demo_config(jmotto, zoom, database_url, listen))?;
        let users = self
            .users
            .iter()
            .map(|(id, email)| {
                toml::Value::Table(toml::Table::from_iter([
                    ("groupware_id".to_owned(), toml::Value::from(id.as_str())),
                    ("zoom_email".to_owned(), toml::Value::from(email.as_str())),
                    ("enabled".to_owned(), toml::Value::from(true)),
                ]))
            })
            .collect();
        table.insert("users".to_owned(), toml::Value::Array(users));
        let extra: toml::Table = toml::from_str(extra)?;
        for (section, values) in extra {
            match (table.get_mut(&section), values) {
                (Some(toml::Value::Table(existing)), toml::Value::Table(values)) => {
                    existing.extend(values);
                }
                (_, values) => {
                    table.insert(section, values);
                }
            }
        }
        Ok(toml::to_string(&table)?)
    }
}

/// Entry `index` of the company (the user's `n`-th): 29 minutes on a day of `month`,
/// owned and hosted by `owner`.
fn entry(index: usize, n: usize, owner: &str, month: (&str, &str, i32, u32)) -> Value {
    let (_, _, year, month) = month;
    let day = 1 + (n / 2) % 28;
    let minute = 30 * ((n / 56) % 16);
    let (hour, minute) = (8 + minute / 60, minute % 60);
    json!({
        "id": format!("{}", FIRST_SCHEDULE_ID + index), "occurrence": "", "repeat": "none",
        "event": "会議", "detail": format!("generated {index}"), "place": "ZOOM 会議",
        "place_detail": "", "memo": "", "allday": false,
        "start": format!("{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:00"),
        "end": format!("{year}-{month:02}-{day:02}T{hour:02}:{:02}:00", minute + 29),
        "owner": owner, "members": [owner], "private": false,
        "updated": "2026-11-20T09:00:00"
    })
}
