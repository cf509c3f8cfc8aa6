//! When a meeting happens: J-MOTTO's local wall-clock times turned into the UTC start and
//! the duration Zoom wants (R-TIME, R-ALLDAY).

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::domain::DomainError;
use crate::domain::window::resolve_local;

/// Minutes in one all-day entry's day (R-ALLDAY).
const MINUTES_PER_DAY: i64 = 1440;

/// Start and end of an entry as J-MOTTO gives them: local wall-clock, no offset; for
/// all-day entries both are dates at T00:00:00 and `end` is the last day's start.
///
/// The times are in the administrator's zone (`groupware.timezone`); the zone is passed
/// alongside, never guessed. An all-day entry's times of day are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalSlot {
    /// When the entry starts (for an all-day entry: its first day at 00:00).
    pub start: NaiveDateTime,
    /// When the entry ends (for an all-day entry: its last day at 00:00).
    pub end: NaiveDateTime,
    /// Whether J-MOTTO marks the entry as all-day (no times).
    pub all_day: bool,
}

/// When a Zoom meeting happens, as Zoom's create/update API wants it.
///
/// Invariant (for values built by [`meeting_time`]): `start_utc <= end_utc` and
/// `duration_minutes >= 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeetingTime {
    /// The meeting's start instant.
    pub start_utc: DateTime<Utc>,
    /// The meeting's end instant (never before `start_utc`).
    pub end_utc: DateTime<Utc>,
    /// Zoom's `duration`: whole minutes, rounded up, at least 1.
    pub duration_minutes: u32,
}

impl MeetingTime {
    /// Zoom's `start_time`: `"YYYY-MM-DDTHH:MM:SSZ"`, UTC, no fraction.
    pub fn zoom_start_time(&self) -> String {
        utc_text(self.start_utc)
    }
}

/// An instant as the service writes it: `"YYYY-MM-DDTHH:MM:SSZ"` (sortable as text; the
/// store's rows and Zoom's `start_time` use it).
pub fn utc_text(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Turns an entry's local slot into the meeting's UTC start, end and duration.
///
/// Timed entries: start and end go through [`resolve_local`] (DST-correct); duration =
/// ceil(elapsed seconds / 60), at least 1 — across a DST change that is the real elapsed
/// time, not the wall-clock difference. An end that resolves to an instant before the start
/// (a start inside a DST gap, which moves it forward past the end) gives `end_utc =
/// start_utc` and 1 minute.
///
/// All-day entries (R-ALLDAY): start = local 00:00 of the first day; duration = (days from
/// the first to the last day, inclusive) × 1440; `end_utc` = start + duration.
///
/// An end before the start (compared as wall-clock values; as dates for all-day entries)
/// is [`DomainError::EndBeforeStart`]. The duration saturates at `u32::MAX` instead of
/// overflowing; nothing here panics.
pub fn meeting_time(slot: &LocalSlot, tz: Tz) -> Result<MeetingTime, DomainError> {
    if slot.all_day {
        all_day_meeting_time(slot.start.date(), slot.end.date(), tz)
    } else {
        timed_meeting_time(slot.start, slot.end, tz)
    }
}

fn timed_meeting_time(
    start: NaiveDateTime,
    end: NaiveDateTime,
    tz: Tz,
) -> Result<MeetingTime, DomainError> {
    if end < start {
        return Err(DomainError::EndBeforeStart {
            start: start.to_string(),
            end: end.to_string(),
        });
    }
    let start_utc = resolve_local(start, tz);
    let end_utc = resolve_local(end, tz).max(start_utc);
    let elapsed_seconds = (end_utc - start_utc).num_seconds();
    let minutes = elapsed_seconds.div_euclid(60) + i64::from(elapsed_seconds.rem_euclid(60) > 0);
    Ok(MeetingTime {
        start_utc,
        end_utc,
        duration_minutes: saturating_minutes(minutes.max(1)),
    })
}

fn all_day_meeting_time(
    first_day: NaiveDate,
    last_day: NaiveDate,
    tz: Tz,
) -> Result<MeetingTime, DomainError> {
    if last_day < first_day {
        return Err(DomainError::EndBeforeStart {
            start: first_day.to_string(),
            end: last_day.to_string(),
        });
    }
    let start_utc = resolve_local(first_day.and_time(NaiveTime::MIN), tz);
    let days = (last_day - first_day).num_days().saturating_add(1);
    let duration_minutes = saturating_minutes(days.saturating_mul(MINUTES_PER_DAY));
    let end_utc = TimeDelta::try_minutes(i64::from(duration_minutes))
        .and_then(|duration| start_utc.checked_add_signed(duration))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    Ok(MeetingTime {
        start_utc,
        end_utc,
        duration_minutes,
    })
}

/// A non-negative minute count as `u32`, `u32::MAX` when it does not fit.
fn saturating_minutes(minutes: i64) -> u32 {
    u32::try_from(minutes).unwrap_or(u32::MAX)
}

/// Zoom's `timezone` label for a meeting: `tz.name()` when it is one of Zoom's timezone ids
/// ([`ZOOM_TIMEZONES`]), else `"UTC"`. It is only a label: the start is always sent in UTC.
pub fn zoom_timezone(tz: Tz) -> &'static str {
    let name = tz.name();
    ZOOM_TIMEZONES
        .iter()
        .copied()
        .find(|zoom_id| *zoom_id == name)
        .unwrap_or("UTC")
}

/// Zoom's published list of timezone ids (the "Timezones" table of Zoom's API
/// abbreviation lists), in Zoom's order. It includes Zoom's non-IANA ids (`SST`, `CET`) and
/// old link names (`Asia/Calcutta`, `Asia/Saigon`, `America/Godthab`) exactly as Zoom
/// spells them.
pub const ZOOM_TIMEZONES: &[&str] = &[
    "Pacific/Midway",
    "Pacific/Pago_Pago",
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Juneau",
    "America/Vancouver",
    "America/Los_Angeles",
    "America/Tijuana",
    "America/Phoenix",
    "America/Edmonton",
    "America/Denver",
    "America/Mazatlan",
    "America/Regina",
    "America/Guatemala",
    "America/El_Salvador",
    "America/Managua",
    "America/Costa_Rica",
    "America/Tegucigalpa",
    "America/Chihuahua",
    "America/Winnipeg",
    "America/Chicago",
    "America/Mexico_City",
    "America/Panama",
    "America/Bogota",
    "America/Lima",
    "America/Monterrey",
    "America/Montreal",
    "America/New_York",
    "America/Indianapolis",
    "America/Puerto_Rico",
    "America/Caracas",
    "America/Santiago",
    "America/La_Paz",
    "America/Guyana",
    "America/Halifax",
    "America/Montevideo",
    "America/Araguaina",
    "America/Argentina/Buenos_Aires",
    "America/Sao_Paulo",
    "Canada/Atlantic",
    "America/St_Johns",
    "America/Godthab",
    "Atlantic/Cape_Verde",
    "Atlantic/Azores",
    "UTC",
    "Etc/Greenwich",
    "Atlantic/Reykjavik",
    "Africa/Nouakchott",
    "Europe/Dublin",
    "Europe/London",
    "Europe/Lisbon",
    "Africa/Casablanca",
    "Africa/Bangui",
    "Africa/Algiers",
    "Africa/Tunis",
    "Europe/Belgrade",
    "CET",
    "Europe/Oslo",
    "Europe/Copenhagen",
    "Europe/Brussels",
    "Europe/Berlin",
    "Europe/Amsterdam",
    "Europe/Rome",
    "Europe/Stockholm",
    "Europe/Vienna",
    "Europe/Luxembourg",
    "Europe/Paris",
    "Europe/Zurich",
    "Europe/Madrid",
    "Africa/Harare",
    "Europe/Warsaw",
    "Europe/Prague",
    "Europe/Budapest",
    "Africa/Tripoli",
    "Africa/Cairo",
    "Africa/Johannesburg",
    "Africa/Khartoum",
    "Europe/Helsinki",
    "Africa/Nairobi",
    "Europe/Sofia",
    "Europe/Istanbul",
    "Europe/Athens",
    "Europe/Bucharest",
    "Asia/Nicosia",
    "Asia/Beirut",
    "Asia/Damascus",
    "Asia/Jerusalem",
    "Asia/Amman",
    "Europe/Moscow",
    "Asia/Baghdad",
    "Asia/Kuwait",
    "Asia/Riyadh",
    "Asia/Bahrain",
    "Asia/Qatar",
    "Asia/Aden",
    "Africa/Djibouti",
    "Africa/Mogadishu",
    "Europe/Kiev",
    "Europe/Minsk",
    "Asia/Dubai",
    "Asia/Muscat",
    "Asia/Baku",
    "Asia/Tehran",
    "Asia/Kabul",
    "Asia/Yekaterinburg",
    "Asia/Tashkent",
    "Asia/Calcutta",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Almaty",
    "Asia/Dacca",
    "Asia/Dhaka",
    "Asia/Rangoon",
    "Asia/Novosibirsk",
    "Asia/Krasnoyarsk",
    "Asia/Bangkok",
    "Asia/Saigon",
    "Asia/Jakarta",
    "Asia/Irkutsk",
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Kuala_Lumpur",
    "Asia/Singapore",
    "Australia/Perth",
    "Asia/Yakutsk",
    "Asia/Seoul",
    "Asia/Tokyo",
    "Australia/Darwin",
    "Australia/Adelaide",
    "Asia/Vladivostok",
    "Pacific/Port_Moresby",
    "Australia/Brisbane",
    "Australia/Sydney",
    "Australia/Hobart",
    "Asia/Magadan",
    "SST",
    "Pacific/Noumea",
    "Asia/Kamchatka",
    "Pacific/Fiji",
    "Pacific/Auckland",
    "Pacific/Apia",
];

#[cfg(test)]
mod tests {
    // R-TIME, R-ALLDAY
    use super::*;

    fn naive(s: &str) -> NaiveDateTime {
        s.parse().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn zone(name: &str) -> Tz {
        name.parse().unwrap()
    }

    /// `(start, end)` local wall-clock in `tz`, all-day or not, and the expected Zoom
    /// `start_time`, end instant and duration.
    fn check(tz: &str, (start, end, all_day): (&str, &str, bool), expected: (&str, &str, u32)) {
        let slot = LocalSlot {
            start: naive(start),
            end: naive(end),
            all_day,
        };
        let time = meeting_time(&slot, zone(tz)).unwrap();
        let context = format!("{start} - {end} (all day: {all_day}) in {tz}");
        assert_eq!(time.zoom_start_time(), expected.0, "start, {context}");
        assert_eq!(time.end_utc, utc(expected.1), "end, {context}");
        assert_eq!(time.duration_minutes, expected.2, "duration, {context}");
        assert!(time.start_utc <= time.end_utc, "{context}");
    }

    #[test]
    fn r_time_timed_entries() {
        let cases = [
            (
                "Asia/Tokyo",
                ("2026-06-01T10:00:00", "2026-06-01T11:00:00", false),
                ("2026-06-01T01:00:00Z", "2026-06-01T02:00:00Z", 60),
            ),
            // Zero length still gets Zoom's minimum of one minute.
            (
                "Asia/Tokyo",
                ("2026-06-01T10:00:00", "2026-06-01T10:00:00", false),
                ("2026-06-01T01:00:00Z", "2026-06-01T01:00:00Z", 1),
            ),
            (
                "Asia/Tokyo",
                ("2026-06-01T10:00:00", "2026-06-01T10:00:30", false),
                ("2026-06-01T01:00:00Z", "2026-06-01T01:00:30Z", 1),
            ),
            // Partial minutes round up.
            (
                "Asia/Tokyo",
                ("2026-06-01T10:00:00", "2026-06-01T10:01:30", false),
                ("2026-06-01T01:00:00Z", "2026-06-01T01:01:30Z", 2),
            ),
            (
                "Asia/Tokyo",
                ("2026-06-01T23:30:00", "2026-06-02T00:30:00", false),
                ("2026-06-01T14:30:00Z", "2026-06-01T15:30:00Z", 60),
            ),
            (
                "Asia/Kathmandu",
                ("2026-06-01T10:00:00", "2026-06-01T11:30:00", false),
                ("2026-06-01T04:15:00Z", "2026-06-01T05:45:00Z", 90),
            ),
            // Fall-back: 00:30 EDT to 03:00 EST is 3.5 real hours, not 2.5.
            (
                "America/New_York",
                ("2026-11-01T00:30:00", "2026-11-01T03:00:00", false),
                ("2026-11-01T04:30:00Z", "2026-11-01T08:00:00Z", 210),
            ),
            // Spring forward: 01:30 EST to 03:30 EDT is one real hour.
            (
                "America/New_York",
                ("2026-03-08T01:30:00", "2026-03-08T03:30:00", false),
                ("2026-03-08T06:30:00Z", "2026-03-08T07:30:00Z", 60),
            ),
            // A start inside the gap moves past the end: the meeting still gets a minute.
            (
                "America/New_York",
                ("2026-03-08T02:30:00", "2026-03-08T03:00:00", false),
                ("2026-03-08T07:30:00Z", "2026-03-08T07:30:00Z", 1),
            ),
        ];
        for (tz, slot, expected) in cases {
            check(tz, slot, expected);
        }
    }

    #[test]
    fn r_allday_entries() {
        let cases = [
            // One day in Tokyo starts at 15:00Z the day before.
            (
                "Asia/Tokyo",
                ("2026-06-01T00:00:00", "2026-06-01T00:00:00", true),
                ("2026-05-31T15:00:00Z", "2026-06-01T15:00:00Z", 1440),
            ),
            (
                "Asia/Tokyo",
                ("2026-06-01T00:00:00", "2026-06-02T00:00:00", true),
                ("2026-05-31T15:00:00Z", "2026-06-02T15:00:00Z", 2880),
            ),
            // Times of day on an all-day entry are ignored.
            (
                "Asia/Tokyo",
                ("2026-06-01T09:00:00", "2026-06-01T18:00:00", true),
                ("2026-05-31T15:00:00Z", "2026-06-01T15:00:00Z", 1440),
            ),
            (
                "America/New_York",
                ("2026-11-01T00:00:00", "2026-11-01T00:00:00", true),
                ("2026-11-01T04:00:00Z", "2026-11-02T04:00:00Z", 1440),
            ),
            // Santiago skips local midnight on 2026-09-06: the day starts at 01:00 (-03).
            (
                "America/Santiago",
                ("2026-09-06T00:00:00", "2026-09-06T00:00:00", true),
                ("2026-09-06T04:00:00Z", "2026-09-07T04:00:00Z", 1440),
            ),
        ];
        for (tz, slot, expected) in cases {
            check(tz, slot, expected);
        }
    }

    #[test]
    fn r_time_end_before_start_is_an_error() {
        let cases = [
            (
                ("2026-06-01T11:00:00", "2026-06-01T10:59:59", false),
                ("2026-06-01 11:00:00", "2026-06-01 10:59:59"),
            ),
            (
                ("2026-06-02T00:00:00", "2026-06-01T00:00:00", true),
                ("2026-06-02", "2026-06-01"),
            ),
        ];
        for ((start, end, all_day), (expected_start, expected_end)) in cases {
            let slot = LocalSlot {
                start: naive(start),
                end: naive(end),
                all_day,
            };
            let error = DomainError::EndBeforeStart {
                start: expected_start.to_owned(),
                end: expected_end.to_owned(),
            };
            assert_eq!(
                error.to_string(),
                format!("the entry ends ({expected_end}) before it starts ({expected_start})")
            );
            assert_eq!(meeting_time(&slot, zone("Asia/Tokyo")), Err(error));
        }
    }

    #[test]
    fn r_time_extreme_slots_saturate_instead_of_panicking() {
        let slots = [
            (NaiveDateTime::MIN, NaiveDateTime::MAX, false),
            (NaiveDateTime::MIN, NaiveDateTime::MAX, true),
            (NaiveDateTime::MAX, NaiveDateTime::MAX, true),
            (NaiveDateTime::MIN, NaiveDateTime::MIN, false),
        ];
        for (start, end, all_day) in slots {
            for tz in ["Asia/Tokyo", "America/New_York", "Pacific/Kiritimati"] {
                let slot = LocalSlot {
                    start,
                    end,
                    all_day,
                };
                let time = meeting_time(&slot, zone(tz)).unwrap();
                assert!(time.duration_minutes >= 1);
                assert!(time.start_utc <= time.end_utc);
                let _ = time.zoom_start_time();
            }
        }
        let whole_range = LocalSlot {
            start: NaiveDateTime::MIN,
            end: NaiveDateTime::MAX,
            all_day: false,
        };
        let time = meeting_time(&whole_range, zone("Asia/Tokyo")).unwrap();
        assert_eq!(time.duration_minutes, u32::MAX);
    }

    #[test]
    fn r_time_zoom_timezone() {
        let cases = [
            ("Asia/Tokyo", "Asia/Tokyo"),
            ("America/New_York", "America/New_York"),
            ("Asia/Kolkata", "Asia/Kolkata"),
            ("Asia/Calcutta", "Asia/Calcutta"),
            ("UTC", "UTC"),
            ("Antarctica/Troll", "UTC"),
            ("Etc/UTC", "UTC"),
            ("Asia/Tbilisi", "UTC"),
        ];
        for (tz, expected) in cases {
            assert_eq!(zoom_timezone(zone(tz)), expected, "zone {tz}");
        }
    }

    #[test]
    fn r_time_every_zoom_timezone_is_a_known_zone_and_labels_itself() {
        // SST is Zoom's own id (Solomon Islands), not an IANA name.
        for id in ZOOM_TIMEZONES.iter().filter(|id| **id != "SST") {
            let tz: Tz = id
                .parse()
                .unwrap_or_else(|_| panic!("{id} is not an IANA zone"));
            assert_eq!(zoom_timezone(tz), *id);
        }
        let mut sorted = ZOOM_TIMEZONES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ZOOM_TIMEZONES.len(), "no id twice");
    }
}
