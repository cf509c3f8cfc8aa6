//! Which entries are synced at all: those whose 場所 is the configured Zoom location
//! (R-TRIGGER).

use unicode_normalization::UnicodeNormalization;

/// Normalizes a location name for comparison (R-TRIGGER): Unicode NFKC, then case-folded,
/// then every character for which `char::is_whitespace` holds removed.
///
/// Case folding is done with `str::to_lowercase`, Unicode's full lowercase mapping. For the
/// scripts location names use (Latin, full-width Latin, kana, kanji) it gives the same
/// result as full case folding; it differs only for a few characters such as `ß` or Greek
/// final sigma, which never appear in a J-MOTTO location item. NFKC maps full-width letters
/// (`ＺＯＯＭ`) to ASCII and the ideographic space to an ordinary one, so `ZOOM 会議`,
/// `Zoom会議` and `ＺＯＯＭ　会議` all normalize to `zoom会議`.
pub fn normalize_location(s: &str) -> String {
    s.nfkc()
        .collect::<String>()
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// Decides whether an entry's 場所 is the configured Zoom location (`sync.location`).
///
/// Invariant: holds the configured name already normalized with [`normalize_location`], so
/// each comparison normalizes only the entry's side. An empty place never matches, even when
/// the configured name is itself empty or all white space.
#[derive(Debug, Clone)]
pub struct LocationMatcher {
    normalized_configured_location: String,
}

impl LocationMatcher {
    /// Builds a matcher for the configured location name (default `ZOOM 会議`).
    pub fn new(configured: &str) -> Self {
        Self {
            normalized_configured_location: normalize_location(configured),
        }
    }

    /// Whether `place` is the configured location once both are normalized; an empty (or
    /// all white space) place never matches.
    pub fn matches(&self, place: &str) -> bool {
        let normalized_place = normalize_location(place);
        !normalized_place.is_empty() && normalized_place == self.normalized_configured_location
    }
}

#[cfg(test)]
mod tests {
    // R-TRIGGER
    use super::*;

    fn check(place: &str, expected: bool) {
        let matcher = LocationMatcher::new("ZOOM 会議");
        assert_eq!(matcher.matches(place), expected, "place {place:?}");
    }

    #[test]
    fn r_trigger_matches_the_configured_location_however_spelled() {
        let cases = [
            ("ZOOM 会議", true),
            ("Zoom会議", true),
            ("ＺＯＯＭ　会議", true),
            ("zoom\t会議 ", true),
            ("  ZOOM\u{3000}\u{3000}会議\n", true),
            ("ｚｏｏｍ会議", true),
            ("会議室A", false),
            ("", false),
            ("   ", false),
            ("ZOOM", false),
            ("ZOOM 会議室", false),
            ("Teams 会議", false),
        ];
        for (place, expected) in cases {
            check(place, expected);
        }
    }

    #[test]
    fn r_trigger_normalize_location() {
        let cases = [
            ("ZOOM 会議", "zoom会議"),
            ("ＺＯＯＭ　会議", "zoom会議"),
            // Half-width katakana become full-width under NFKC.
            ("ｽﾞｰﾑ 会議", "ズーム会議"),
            ("", ""),
            (" \t\u{3000}", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_location(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn r_trigger_empty_configured_location_matches_nothing() {
        let matcher = LocationMatcher::new("  ");
        for place in ["", " ", "ZOOM 会議"] {
            assert!(!matcher.matches(place), "place {place:?}");
        }
    }

    #[test]
    fn r_trigger_other_configured_location() {
        let matcher = LocationMatcher::new("Web会議");
        for (place, expected) in [("ＷＥＢ 会議", true), ("ZOOM 会議", false)] {
            assert_eq!(matcher.matches(place), expected, "place {place:?}");
        }
    }
}
