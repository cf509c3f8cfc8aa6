//! What a meeting is called and what its agenda says (R-TOPIC).

use crate::domain::ids::EntryKey;

/// Zoom's limit for a meeting topic, in Unicode scalar values.
pub const TOPIC_MAX_CHARS: usize = 200;
/// Zoom's limit for a meeting agenda, in Unicode scalar values.
pub const AGENDA_MAX_CHARS: usize = 2000;

/// The topic used when an entry has neither a 予定 item nor a 予定詳細.
const UNTITLED_TOPIC: &str = "(件名なし)";

/// The meeting topic (R-TOPIC): 予定 item and 予定詳細, each trimmed, joined by one space
/// when both are non-empty, cut to 200 Unicode scalar values, trailing white space removed.
/// When the result is empty: `"(件名なし)"`.
///
/// Invariant of the result: non-empty, at most [`TOPIC_MAX_CHARS`] characters, no leading
/// or trailing white space, never cut inside a character.
pub fn build_topic(event: &str, detail: &str) -> String {
    let parts: Vec<&str> = [event.trim(), detail.trim()]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect();
    let joined = parts.join(" ");
    let topic = cut_to_chars(&joined, TOPIC_MAX_CHARS);
    if topic.is_empty() {
        UNTITLED_TOPIC.to_owned()
    } else {
        topic.to_owned()
    }
}

/// The meeting agenda (R-TOPIC): the memo trimmed; no memo -> the marker alone; else memo +
/// `"\n\n"` + marker, the memo cut (by chars, then trailing white space removed) so the whole
/// stays within 2000 chars. The marker is always the last line, intact.
///
/// Invariant of the result: it ends with `key.marker()`, and it is at most
/// [`AGENDA_MAX_CHARS`] characters unless the marker alone is longer (then it is the marker
/// alone: the marker is never cut).
pub fn build_agenda(memo: &str, key: &EntryKey) -> String {
    const SEPARATOR: &str = "\n\n";
    let marker = key.marker();
    let memo_budget = AGENDA_MAX_CHARS
        .saturating_sub(marker.chars().count())
        .saturating_sub(SEPARATOR.chars().count());
    let memo = cut_to_chars(memo.trim(), memo_budget);
    if memo.is_empty() {
        marker
    } else {
        format!("{memo}{SEPARATOR}{marker}")
    }
}

/// The first `max_chars` Unicode scalar values of `s`, trailing white space removed.
fn cut_to_chars(s: &str, max_chars: usize) -> &str {
    let end = s
        .char_indices()
        .nth(max_chars)
        .map_or(s.len(), |(byte_index, _)| byte_index);
    s.get(..end).unwrap_or(s).trim_end()
}

#[cfg(test)]
mod tests {
    // R-TOPIC
    use super::*;

    fn check_topic(event: &str, detail: &str, expected: &str) {
        let topic = build_topic(event, detail);
        assert_eq!(topic, expected, "event {event:?}, detail {detail:?}");
        assert!(topic.chars().count() <= TOPIC_MAX_CHARS);
    }

    #[test]
    fn r_topic_build_topic() {
        let long_japanese = "会".repeat(250);
        let cut_japanese = "会".repeat(200);
        // The 200th character is a space: the cut leaves it trailing, and it goes.
        let space_at_cut = format!("{} {}", "a".repeat(199), "b".repeat(10));
        let cases = [
            ("定例会議", "営業部", "定例会議 営業部"),
            ("  定例会議\u{3000}", "\t営業部 ", "定例会議 営業部"),
            ("定例会議", "", "定例会議"),
            ("", "営業部", "営業部"),
            ("定例会議", "   ", "定例会議"),
            ("", "", "(件名なし)"),
            (" \u{3000}", "\n", "(件名なし)"),
            (long_japanese.as_str(), "", cut_japanese.as_str()),
            (space_at_cut.as_str(), "", &"a".repeat(199)),
            (&"x".repeat(200), "詳細", &"x".repeat(200)),
            (&"x".repeat(199), "詳細", &"x".repeat(199)),
            (&"x".repeat(198), "詳細", &format!("{} 詳", "x".repeat(198))),
        ];
        for (event, detail, expected) in cases {
            check_topic(event, detail, expected);
        }
    }

    #[test]
    fn r_topic_long_japanese_title_is_cut_at_a_character_boundary() {
        let topic = build_topic(&"予定会議🎉".repeat(50), "");
        assert_eq!(topic.chars().count(), TOPIC_MAX_CHARS);
        assert!(std::str::from_utf8(topic.as_bytes()).is_ok());
        assert!(topic.ends_with('🎉'));
    }

    fn key(schedule_id: &str, occurrence: &str) -> EntryKey {
        EntryKey {
            schedule_id: schedule_id.to_owned(),
            occurrence: occurrence.to_owned(),
        }
    }

    fn check_agenda(memo: &str, key: &EntryKey, expected: &str) {
        let agenda = build_agenda(memo, key);
        assert_eq!(agenda, expected, "memo {memo:?}");
        assert!(agenda.chars().count() <= AGENDA_MAX_CHARS);
        assert_eq!(agenda.lines().last(), Some(key.marker().as_str()));
    }

    #[test]
    fn r_topic_build_agenda() {
        let single = key("4711", "");
        let occurrence = key("4711", "2026-12-03");
        let cases = [
            ("", &single, "jmotto-zoom: 4711"),
            ("  \n\u{3000}", &single, "jmotto-zoom: 4711"),
            ("議題: 予算", &single, "議題: 予算\n\njmotto-zoom: 4711"),
            (
                "\n 議題: 予算\n資料は共有フォルダ \n",
                &occurrence,
                "議題: 予算\n資料は共有フォルダ\n\njmotto-zoom: 4711/2026-12-03",
            ),
            ("", &occurrence, "jmotto-zoom: 4711/2026-12-03"),
        ];
        for (memo, key, expected) in cases {
            check_agenda(memo, key, expected);
        }
    }

    #[test]
    fn r_topic_long_memo_is_cut_so_the_agenda_fits_with_its_marker() {
        for entry in [key("4711", ""), key("4711", "2026-12-03")] {
            let marker = entry.marker();
            let budget = AGENDA_MAX_CHARS - marker.chars().count() - 2;

            let agenda = build_agenda(&"議".repeat(3000), &entry);
            assert_eq!(agenda.chars().count(), AGENDA_MAX_CHARS);
            assert_eq!(agenda, format!("{}\n\n{marker}", "議".repeat(budget)));

            // A cut that lands just after white space drops it: the agenda gets shorter.
            let memo = format!("{} {}", "a".repeat(budget - 1), "b".repeat(100));
            let agenda = build_agenda(&memo, &entry);
            assert_eq!(agenda, format!("{}\n\n{marker}", "a".repeat(budget - 1)));

            // A memo that fits exactly is kept whole.
            let memo = "c".repeat(budget);
            assert_eq!(build_agenda(&memo, &entry), format!("{memo}\n\n{marker}"));
        }
    }

    #[test]
    fn r_topic_marker_longer_than_the_agenda_limit_stays_intact() {
        let entry = key(&"9".repeat(2500), "");
        assert_eq!(build_agenda("memo", &entry), entry.marker());
    }
}
