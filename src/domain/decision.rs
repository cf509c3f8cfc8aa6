//! The per-entry decision of a sync (R-TRIGGER, R-LATE, R-RESCHEDULE, R-DELETE, R-PAST):
//! what one listed entry, compared with the meeting row the store holds for it, asks for.
//!
//! Plain data in, plain data out: the store gathers the facts, this decides, the job applies.

use super::meeting::ReasonCode;
pub use super::policy::ReschedulePolicy;

/// Why an entry got no meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// R-PAST: it had ended when the sync ran.
    Ended,
    /// R-HOST: no enabled, mapped member.
    NoEnabledHost,
    /// R-WINDOW: it starts outside the window.
    OutsideWindow,
    /// J-MOTTO's start or end could not be read, or the end is before the start.
    InvalidTimes,
}

impl SkipReason {
    /// The reason as `meetings` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Ended => "ended",
            SkipReason::NoEnabledHost => "no_enabled_host",
            SkipReason::OutsideWindow => "outside_window",
            SkipReason::InvalidTimes => "invalid_times",
        }
    }

    /// The reason's code on a meeting row.
    pub fn code(self) -> ReasonCode {
        match self {
            SkipReason::Ended => ReasonCode::Ended,
            SkipReason::NoEnabledHost => ReasonCode::NoEnabledHost,
            SkipReason::OutsideWindow => ReasonCode::OutsideWindow,
            SkipReason::InvalidTimes => ReasonCode::InvalidTimes,
        }
    }
}

/// Why a live entry stopped being a Zoom entry (R-DELETE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    /// A complete listing of the host's window no longer holds it.
    EntryDeleted,
    /// It is listed, but its location is no longer the Zoom location.
    LocationRemoved,
}

impl GoneReason {
    /// The reason as `meetings` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            GoneReason::EntryDeleted => "entry_deleted",
            GoneReason::LocationRemoved => "location_removed",
        }
    }

    /// The reason's code on a meeting row.
    pub fn code(self) -> ReasonCode {
        match self {
            GoneReason::EntryDeleted => ReasonCode::EntryDeleted,
            GoneReason::LocationRemoved => ReasonCode::LocationRemoved,
        }
    }
}

/// What the listing says of the entry now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// Its location is the Zoom location (R-TRIGGER).
    pub matches_location: bool,
    /// An enabled, mapped member can host it (R-HOST).
    pub has_host: bool,
    /// It has ended at the time the job runs (R-PAST).
    pub ended: bool,
}

/// The entry's current meeting row, as far as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentMeeting {
    /// Its start and end equal the listed ones (same R-ONCE key).
    pub same_time: bool,
    /// A Zoom meeting exists, or may (created, or a create in flight).
    pub in_zoom: bool,
    /// A job will still act on it (pending, deferred, failed but retried).
    pub awaiting_create: bool,
    /// Topic, agenda and invitees equal what the listing asks for now.
    pub content_same: bool,
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing changes; no Zoom call.
    Nothing,
    /// Record a skipped row for the listed time.
    Skip(SkipReason),
    /// A new (or re-armed) row for the listed time, and a create job.
    Create,
    /// The row awaiting its create takes the new content (its job reads it when it runs).
    RefreshPending,
    /// create_new: the current row is superseded (its Zoom meeting, if any, is left alone)
    /// and a new row is created for the new time.
    CreateSuperseding,
    /// replace: a new row for the new time; the old meeting is deleted once the new exists.
    CreateReplacing,
    /// update (or a content change under update/replace): PATCH the current meeting;
    /// `retime` when its start or end moves.
    Update { retime: bool },
    /// The entry is no longer a Zoom entry: apply `sync.on_delete`.
    Gone(GoneReason),
}

/// Decides for one listed entry. `current` is the entry's current row, if any.
pub fn decide(
    observation: Observation,
    current: Option<CurrentMeeting>,
    policy: ReschedulePolicy,
) -> Decision {
    if !observation.matches_location {
        // R-LATE's counterpart: an entry that never matched has nothing to undo.
        return match current {
            Some(c) if c.in_zoom || c.awaiting_create => {
                Decision::Gone(GoneReason::LocationRemoved)
            }
            _ => Decision::Nothing,
        };
    }
    let Some(current) = current else {
        return if !observation.has_host {
            Decision::Skip(SkipReason::NoEnabledHost)
        } else if observation.ended {
            Decision::Skip(SkipReason::Ended)
        } else {
            Decision::Create
        };
    };
    if !observation.has_host {
        // The meeting, if any, keeps its host; nothing new can be hosted.
        return Decision::Nothing;
    }
    if current.same_time {
        if current.in_zoom {
            return match (current.content_same, policy) {
                (true, _) | (false, ReschedulePolicy::CreateNew) => Decision::Nothing,
                (false, ReschedulePolicy::Update | ReschedulePolicy::Replace) => {
                    Decision::Update { retime: false }
                }
            };
        }
        if current.awaiting_create {
            return if current.content_same {
                Decision::Nothing
            } else {
                Decision::RefreshPending
            };
        }
        // Skipped, deleted or superseded earlier: the entry is a Zoom entry again.
        return if observation.ended {
            Decision::Nothing
        } else {
            Decision::Create
        };
    }
    // The start or end moved.
    if observation.ended {
        return Decision::Skip(SkipReason::Ended);
    }
    if !current.in_zoom {
        // Nothing in Zoom to keep, patch or delete: just move on to the new time.
        return Decision::CreateSuperseding;
    }
    match policy {
        ReschedulePolicy::CreateNew => Decision::CreateSuperseding,
        ReschedulePolicy::Update => Decision::Update { retime: true },
        ReschedulePolicy::Replace => Decision::CreateReplacing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReschedulePolicy::*;

    const LIVE: Observation = Observation {
        matches_location: true,
        has_host: true,
        ended: false,
    };

    fn current(same_time: bool, in_zoom: bool, content_same: bool) -> Option<CurrentMeeting> {
        Some(CurrentMeeting {
            same_time,
            in_zoom,
            awaiting_create: !in_zoom,
            content_same,
        })
    }

    fn check(
        observation: Observation,
        current: Option<CurrentMeeting>,
        policy: ReschedulePolicy,
        expected: Decision,
    ) {
        assert_eq!(
            decide(observation, current, policy),
            expected,
            "{observation:?} {current:?} {policy:?}"
        );
    }

    /// R-TRIGGER, R-LATE, R-HOST, R-PAST: first sight of an entry.
    #[test]
    fn first_sight() {
        let no_zoom = Observation {
            matches_location: false,
            ..LIVE
        };
        check(no_zoom, None, CreateNew, Decision::Nothing);
        check(LIVE, None, CreateNew, Decision::Create);
        let no_host = Observation {
            has_host: false,
            ..LIVE
        };
        check(
            no_host,
            None,
            CreateNew,
            Decision::Skip(SkipReason::NoEnabledHost),
        );
        let ended = Observation {
            ended: true,
            ..LIVE
        };
        check(ended, None, CreateNew, Decision::Skip(SkipReason::Ended));
    }

    /// R-RESCHEDULE: the three policies, for a time change and for a title/memo change.
    #[test]
    fn reschedule_policies() {
        let table = [
            (current(true, true, true), CreateNew, Decision::Nothing),
            (current(true, true, true), Update, Decision::Nothing),
            (current(true, true, false), CreateNew, Decision::Nothing),
            (
                current(true, true, false),
                Update,
                Decision::Update { retime: false },
            ),
            (
                current(true, true, false),
                Replace,
                Decision::Update { retime: false },
            ),
            (
                current(false, true, true),
                CreateNew,
                Decision::CreateSuperseding,
            ),
            (
                current(false, true, false),
                Update,
                Decision::Update { retime: true },
            ),
            (
                current(false, true, true),
                Replace,
                Decision::CreateReplacing,
            ),
            // never reached Zoom: move on whatever the policy
            (
                current(false, false, true),
                Update,
                Decision::CreateSuperseding,
            ),
            (
                current(false, false, true),
                Replace,
                Decision::CreateSuperseding,
            ),
            (
                current(true, false, false),
                CreateNew,
                Decision::RefreshPending,
            ),
        ];
        for (cur, policy, expected) in table {
            check(LIVE, cur, policy, expected);
        }
    }

    /// R-PAST: a reschedule into the past creates nothing.
    #[test]
    fn reschedule_into_the_past() {
        let ended = Observation {
            ended: true,
            ..LIVE
        };
        check(
            ended,
            current(false, true, true),
            Update,
            Decision::Skip(SkipReason::Ended),
        );
        check(
            ended,
            current(true, true, true),
            CreateNew,
            Decision::Nothing,
        );
    }

    /// R-DELETE: removing the Zoom location.
    #[test]
    fn location_removed() {
        let no_zoom = Observation {
            matches_location: false,
            ..LIVE
        };
        check(
            no_zoom,
            current(true, true, true),
            CreateNew,
            Decision::Gone(GoneReason::LocationRemoved),
        );
        let skipped = Some(CurrentMeeting {
            same_time: true,
            in_zoom: false,
            awaiting_create: false,
            content_same: true,
        });
        check(no_zoom, skipped, CreateNew, Decision::Nothing);
        // R-LATE: a skipped entry whose host appears later is created
        check(LIVE, skipped, CreateNew, Decision::Create);
    }
}
