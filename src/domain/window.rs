//! The sync window: which entries are looked at, by their start (R-WINDOW), and how local
//! wall-clock times become instants.

use chrono::{
    DateTime, Datelike, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use chrono_tz::{GapInfo, Tz};

use crate::domain::DomainError;

/// Shortest window accepted for `sync.months`.
const MIN_MONTHS: u32 = 1;
/// Longest window accepted for `sync.months`.
const MAX_MONTHS: u32 = 24;

/// One calendar month of the window as J-MOTTO's inclusive date range.
///
/// Invariant (for values built by this module): `first_day` is the 1st of a month and
/// `last_day` the last day of the same month. It is the unit of one `FetchSlice` job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MonthSlice {
    /// The 1st of the month.
    pub first_day: NaiveDate,
    /// The last day of the month (inclusive, as J-MOTTO's date range wants it).
    pub last_day: NaiveDate,
}

impl MonthSlice {
    /// The month as `"YYYY-MM"`, e.g. `"2026-12"`; [`MonthSlice::parse_label`] reads it back.
    pub fn label(&self) -> String {
        format!("{:04}-{:02}", self.first_day.year(), self.first_day.month())
    }

    /// Reads a label written by [`MonthSlice::label`]: `"2026-12"` gives Dec 1 to Dec 31.
    /// Anything else (another shape, month 0 or 13, a year beyond chrono's range) is `None`.
    pub fn parse_label(label: &str) -> Option<MonthSlice> {
        let (year, month) = label.split_once('-')?;
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if year.len() != 4 || month.len() != 2 || !all_digits(year) || !all_digits(month) {
            return None;
        }
        month_slice(year.parse().ok()?, month.parse().ok()?)
    }
}

/// The slice of the month `month` of `year`, or `None` if there is no such month.
fn month_slice(year: i32, month: u32) -> Option<MonthSlice> {
    let first_day = NaiveDate::from_ymd_opt(year, month, 1)?;
    let last_day = first_day.checked_add_months(Months::new(1))?.pred_opt()?;
    Some(MonthSlice {
        first_day,
        last_day,
    })
}

/// The sync window (R-WINDOW): entries starting in `from <= start < to` are synced.
///
/// Invariant (for values built by [`SyncWindow::containing`]): `from` is the first instant
/// of a month in the administrator's zone, `to` the first instant of the month `months.len()`
/// months later, and `months` lists each calendar month in between, in order, without gaps.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncWindow {
    /// Local 00:00 on the 1st of the first month (the first instant of that day when
    /// 00:00 falls into a DST gap).
    pub from: DateTime<Tz>,
    /// Local 00:00 on the 1st of the month after the last one, exclusive.
    pub to: DateTime<Tz>,
    /// Each calendar month of the window, first to last.
    pub months: Vec<MonthSlice>,
}

impl SyncWindow {
    /// The window of `months` calendar months that starts with the month containing `now`
    /// in `tz`: `from` = local 00:00 on the 1st of that month; `to` = local 00:00 on the 1st
    /// of the month `months` later; `months` = each calendar month in between.
    ///
    /// `months` outside 1..=24 is [`DomainError::InvalidMonths`]; so is a window that would
    /// run past the last date chrono can represent (only possible for absurd `now`).
    pub fn containing(now: DateTime<Utc>, tz: Tz, months: u32) -> Result<SyncWindow, DomainError> {
        if !(MIN_MONTHS..=MAX_MONTHS).contains(&months) {
            return Err(DomainError::InvalidMonths(months));
        }
        let out_of_range = || DomainError::InvalidMonths(months);
        // `DateTime::date_naive` panics when the local time is out of chrono's range.
        let offset = tz.offset_from_utc_datetime(&now.naive_utc()).fix();
        let local_today = now
            .naive_utc()
            .checked_add_offset(offset)
            .ok_or_else(out_of_range)?
            .date();
        let first_day = local_today.with_day(1).ok_or_else(out_of_range)?;
        let end_day = first_day
            .checked_add_months(Months::new(months))
            .ok_or_else(out_of_range)?;
        let slices = (0..months)
            .map(|offset| {
                let month_start = first_day.checked_add_months(Months::new(offset))?;
                month_slice(month_start.year(), month_start.month())
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(out_of_range)?;
        let local_midnight =
            |day: NaiveDate| resolve_local(day.and_time(NaiveTime::MIN), tz).with_timezone(&tz);
        Ok(SyncWindow {
            from: local_midnight(first_day),
            to: local_midnight(end_day),
            months: slices,
        })
    }

    /// Whether an entry starting at `start` is inside the window: `from <= start < to`,
    /// compared as instants.
    pub fn contains_start(&self, start: DateTime<Utc>) -> bool {
        self.from_utc() <= start && start < self.to_utc()
    }

    /// The window's start as a UTC instant.
    pub fn from_utc(&self) -> DateTime<Utc> {
        self.from.with_timezone(&Utc)
    }

    /// The window's (exclusive) end as a UTC instant.
    pub fn to_utc(&self) -> DateTime<Utc> {
        self.to.with_timezone(&Utc)
    }
}

/// A wall-clock time in `tz` as an instant: unique -> it; ambiguous (DST fold) -> the
/// earlier instant; nonexistent (DST gap) -> shifted forward by the length of the gap (i.e.
/// interpreted with the offset in force just before the gap), like java.time. Never panics.
///
/// At the very edges of chrono's range, where no offset can be applied without overflow,
/// the wall-clock time is taken as UTC.
pub fn resolve_local(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    if let Some(instant) = tz.from_local_datetime(&naive).earliest() {
        return instant.with_timezone(&Utc);
    }
    GapInfo::new(&naive, &tz)
        .and_then(|gap| gap.begin)
        .and_then(|(_, offset_before_gap)| naive.checked_sub_offset(offset_before_gap.fix()))
        .map_or_else(|| naive.and_utc(), |utc| utc.and_utc())
}

#[cfg(test)]
mod tests {
    // R-WINDOW
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn naive(s: &str) -> NaiveDateTime {
        s.parse().unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn zone(name: &str) -> Tz {
        name.parse().unwrap()
    }

    /// One window case: `now` in `tz` with `months`, and the expected instants of `from` and
    /// `to` (RFC 3339 with the local offset) and month labels.
    struct WindowCase {
        now: &'static str,
        tz: &'static str,
        months: u32,
        from: &'static str,
        to: &'static str,
        labels: &'static [&'static str],
    }

    fn check(case: &WindowCase) {
        let window = SyncWindow::containing(utc(case.now), zone(case.tz), case.months).unwrap();
        let context = format!("now {} in {}, {} months", case.now, case.tz, case.months);
        assert_eq!(window.from.to_rfc3339(), case.from, "from, {context}");
        assert_eq!(window.to.to_rfc3339(), case.to, "to, {context}");
        let labels: Vec<String> = window.months.iter().map(MonthSlice::label).collect();
        assert_eq!(labels, case.labels, "months, {context}");
        assert_eq!(window.from_utc(), window.from.with_timezone(&Utc));
        assert_eq!(window.to_utc(), window.to.with_timezone(&Utc));
        for pair in window.months.windows(2) {
            assert_eq!(
                pair[0].last_day.succ_opt(),
                Some(pair[1].first_day),
                "{context}"
            );
        }
    }

    #[test]
    fn r_window_containing() {
        let cases = [
            // The default: current month and the next two.
            WindowCase {
                now: "2026-05-15T03:00:00Z",
                tz: "Asia/Tokyo",
                months: 3,
                from: "2026-05-01T00:00:00+09:00",
                to: "2026-08-01T00:00:00+09:00",
                labels: &["2026-05", "2026-06", "2026-07"],
            },
            // Jan 31: adding months must not clamp to Feb 28 or skip February.
            WindowCase {
                now: "2026-01-31T10:00:00Z",
                tz: "Asia/Tokyo",
                months: 3,
                from: "2026-01-01T00:00:00+09:00",
                to: "2026-04-01T00:00:00+09:00",
                labels: &["2026-01", "2026-02", "2026-03"],
            },
            // December rolls over into the next year.
            WindowCase {
                now: "2026-12-10T00:00:00Z",
                tz: "Asia/Tokyo",
                months: 3,
                from: "2026-12-01T00:00:00+09:00",
                to: "2027-03-01T00:00:00+09:00",
                labels: &["2026-12", "2027-01", "2027-02"],
            },
            // 2026-11-30T15:30Z is already Dec 1 in Tokyo.
            WindowCase {
                now: "2026-11-30T15:30:00Z",
                tz: "Asia/Tokyo",
                months: 1,
                from: "2026-12-01T00:00:00+09:00",
                to: "2027-01-01T00:00:00+09:00",
                labels: &["2026-12"],
            },
            // The last instant of November in Tokyo is still November.
            WindowCase {
                now: "2026-11-30T14:59:59Z",
                tz: "Asia/Tokyo",
                months: 1,
                from: "2026-11-01T00:00:00+09:00",
                to: "2026-12-01T00:00:00+09:00",
                labels: &["2026-11"],
            },
            // Vice versa: already December in UTC, still November in New York.
            WindowCase {
                now: "2026-12-01T04:59:59Z",
                tz: "America/New_York",
                months: 1,
                from: "2026-11-01T00:00:00-04:00",
                to: "2026-12-01T00:00:00-05:00",
                labels: &["2026-11"],
            },
            // A window spanning the fall-back of Nov 1 2026 (EDT at from, EST at to).
            WindowCase {
                now: "2026-10-20T12:00:00Z",
                tz: "America/New_York",
                months: 3,
                from: "2026-10-01T00:00:00-04:00",
                to: "2027-01-01T00:00:00-05:00",
                labels: &["2026-10", "2026-11", "2026-12"],
            },
            // London: from in GMT, to in BST.
            WindowCase {
                now: "2026-02-28T23:59:59Z",
                tz: "Europe/London",
                months: 3,
                from: "2026-02-01T00:00:00+00:00",
                to: "2026-05-01T00:00:00+01:00",
                labels: &["2026-02", "2026-03", "2026-04"],
            },
            // 2026-03-31T23:30Z is already April in London (BST).
            WindowCase {
                now: "2026-03-31T23:30:00Z",
                tz: "Europe/London",
                months: 1,
                from: "2026-04-01T00:00:00+01:00",
                to: "2026-05-01T00:00:00+01:00",
                labels: &["2026-04"],
            },
            // Leap February 2028 ends on the 29th.
            WindowCase {
                now: "2028-02-29T12:00:00Z",
                tz: "Asia/Tokyo",
                months: 1,
                from: "2028-02-01T00:00:00+09:00",
                to: "2028-03-01T00:00:00+09:00",
                labels: &["2028-02"],
            },
            // Twelve months cross into the next year.
            WindowCase {
                now: "2026-06-15T00:00:00Z",
                tz: "Asia/Tokyo",
                months: 12,
                from: "2026-06-01T00:00:00+09:00",
                to: "2027-06-01T00:00:00+09:00",
                labels: &[
                    "2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11", "2026-12",
                    "2027-01", "2027-02", "2027-03", "2027-04", "2027-05",
                ],
            },
            // Havana 2012-04-01 00:00 did not exist (clocks jumped to 01:00 CDT): the month
            // starts at the first instant of the day.
            WindowCase {
                now: "2012-04-15T12:00:00Z",
                tz: "America/Havana",
                months: 1,
                from: "2012-04-01T01:00:00-04:00",
                to: "2012-05-01T00:00:00-04:00",
                labels: &["2012-04"],
            },
            WindowCase {
                now: "2012-03-15T12:00:00Z",
                tz: "America/Havana",
                months: 1,
                from: "2012-03-01T00:00:00-05:00",
                to: "2012-04-01T01:00:00-04:00",
                labels: &["2012-03"],
            },
            // Havana 2026-11-01 00:00 happens twice (01:00 CDT falls back to 00:00 CST): the
            // month starts at the earlier one.
            WindowCase {
                now: "2026-11-10T12:00:00Z",
                tz: "America/Havana",
                months: 1,
                from: "2026-11-01T00:00:00-04:00",
                to: "2026-12-01T00:00:00-05:00",
                labels: &["2026-11"],
            },
        ];
        for case in &cases {
            check(case);
        }
    }

    #[test]
    fn r_window_months_outside_1_to_24_are_refused() {
        let now = utc("2026-05-15T03:00:00Z");
        let tz = zone("Asia/Tokyo");
        for months in [0, 25, u32::MAX] {
            assert_eq!(
                SyncWindow::containing(now, tz, months),
                Err(DomainError::InvalidMonths(months))
            );
        }
        for months in [1, 24] {
            let window = SyncWindow::containing(now, tz, months).unwrap();
            assert_eq!(window.months.len(), months as usize);
        }
    }

    #[test]
    fn r_window_at_the_edges_of_time_never_panics() {
        for now in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            for tz in [zone("Asia/Tokyo"), zone("America/New_York"), zone("UTC")] {
                for months in [1, 24] {
                    // Either a window or InvalidMonths; what matters is no panic.
                    let _ = SyncWindow::containing(now, tz, months);
                }
            }
        }
        for local in [NaiveDateTime::MIN, NaiveDateTime::MAX] {
            for tz in [
                zone("Asia/Tokyo"),
                zone("America/New_York"),
                zone("Pacific/Apia"),
            ] {
                let _ = resolve_local(local, tz);
            }
        }
    }

    #[test]
    fn r_window_contains_start() {
        let window =
            SyncWindow::containing(utc("2026-05-15T03:00:00Z"), zone("Asia/Tokyo"), 3).unwrap();
        let cases = [
            ("2026-04-30T14:59:59Z", false),
            ("2026-04-30T15:00:00Z", true),
            ("2026-06-15T00:00:00Z", true),
            ("2026-07-31T14:59:59Z", true),
            ("2026-07-31T15:00:00Z", false),
        ];
        for (start, expected) in cases {
            assert_eq!(window.contains_start(utc(start)), expected, "start {start}");
        }
    }

    fn check_resolve(local: &str, tz: &str, expected: &str) {
        assert_eq!(
            resolve_local(naive(local), zone(tz)),
            utc(expected),
            "{local} in {tz}"
        );
    }

    #[test]
    fn r_time_resolve_local() {
        let cases = [
            ("2026-06-01T10:00:00", "Asia/Tokyo", "2026-06-01T01:00:00Z"),
            (
                "2026-06-01T10:00:00",
                "Asia/Kathmandu",
                "2026-06-01T04:15:00Z",
            ),
            // Fold: 01:30 happens in EDT and again in EST; the earlier one wins.
            (
                "2026-11-01T01:30:00",
                "America/New_York",
                "2026-11-01T05:30:00Z",
            ),
            (
                "2026-11-01T01:00:00",
                "Europe/London",
                "2026-11-01T01:00:00Z",
            ),
            (
                "2026-10-25T01:30:00",
                "Europe/London",
                "2026-10-25T00:30:00Z",
            ),
            // Gap: 02:30 does not exist; read with EST it is 03:30 EDT.
            (
                "2026-03-08T02:30:00",
                "America/New_York",
                "2026-03-08T07:30:00Z",
            ),
            (
                "2026-03-08T02:00:00",
                "America/New_York",
                "2026-03-08T07:00:00Z",
            ),
            (
                "2026-03-08T02:59:59",
                "America/New_York",
                "2026-03-08T07:59:59Z",
            ),
            (
                "2026-03-29T01:15:00",
                "Europe/London",
                "2026-03-29T01:15:00Z",
            ),
            // Santiago skips local midnight: 2026-09-06 00:00 (-04) is 01:00 (-03).
            (
                "2026-09-06T00:00:00",
                "America/Santiago",
                "2026-09-06T04:00:00Z",
            ),
            (
                "2026-09-06T00:30:00",
                "America/Santiago",
                "2026-09-06T04:30:00Z",
            ),
            (
                "2026-09-06T01:00:00",
                "America/Santiago",
                "2026-09-06T04:00:00Z",
            ),
            // Samoa skipped all of 2011-12-30 (-10 to +14).
            (
                "2011-12-30T12:00:00",
                "Pacific/Apia",
                "2011-12-30T22:00:00Z",
            ),
        ];
        for (local, tz, expected) in cases {
            check_resolve(local, tz, expected);
        }
    }

    fn check_label(label: &str, expected: Option<(&str, &str)>) {
        let expected = expected.map(|(first, last)| MonthSlice {
            first_day: date(first),
            last_day: date(last),
        });
        assert_eq!(MonthSlice::parse_label(label), expected, "label {label:?}");
    }

    #[test]
    fn r_window_month_slice_labels() {
        let cases = [
            ("2026-12", Some(("2026-12-01", "2026-12-31"))),
            ("2027-02", Some(("2027-02-01", "2027-02-28"))),
            ("2028-02", Some(("2028-02-01", "2028-02-29"))),
            ("2026-04", Some(("2026-04-01", "2026-04-30"))),
            ("0001-01", Some(("0001-01-01", "0001-01-31"))),
            ("2026-13", None),
            ("2026-00", None),
            ("2026-1", None),
            ("26-12", None),
            ("2026/12", None),
            ("2026-12-01", None),
            ("+026-12", None),
            ("2026-+1", None),
            ("２０２６-12", None),
            ("", None),
        ];
        for (label, expected) in cases {
            check_label(label, expected);
        }
        let slice = MonthSlice::parse_label("2026-12").unwrap();
        assert_eq!(slice.label(), "2026-12");
    }
}
