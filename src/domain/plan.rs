//! Every per-entry rule of a sync, as one pure function: [`plan_entry`] takes what a
//! listing says of one entry, what the store holds for it (its `entries` row and every
//! meeting row of its key) and the sync's context, and returns the effects — row changes
//! and jobs to push, in the order they apply — as plain data. The job loads the snapshot,
//! applies the effects in its transaction and pushes the jobs; it decides nothing.
//!
//! [`plan_gone`] is R-DELETE for an entry a complete listing lost, and
//! [`failed_delete_wanted`] says which deletes that ran out of attempts are pushed again.

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;

use crate::domain::{
    decision::{self, CurrentMeeting, Decision, GoneReason, Observation, SkipReason},
    host::{EnabledUsers, Host, choose_host, invitees},
    ids::EntryKey,
    location::LocationMatcher,
    meeting::{
        EntryRow, MeetingContent, MeetingRow, MeetingState, NewMeeting, ObservedEntry, Reason,
        ReasonCode,
    },
    policy::{DeletePolicy, ReschedulePolicy},
    time::{LocalSlot, meeting_time, utc_text, zoom_timezone},
    topic::{build_agenda, build_topic},
};

/// How J-MOTTO's `updated` is stored (sortable as text).
const UPDATED_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// What a listing says of one entry (borrowed from the client's entry).
#[derive(Debug, Clone, Copy)]
pub struct ListedEntry<'a> {
    pub key: &'a EntryKey,
    /// 予定 preset item.
    pub event: &'a str,
    /// 予定詳細.
    pub detail: &'a str,
    /// 場所 item name.
    pub place: &'a str,
    pub memo: &'a str,
    /// Local start and end; `Err` (why) when J-MOTTO's times cannot be read.
    pub slot: &'a Result<LocalSlot, String>,
    pub owner: &'a str,
    /// 登録先 in display order.
    pub members: &'a [String],
    /// When the entry was last changed in J-MOTTO.
    pub updated: Option<NaiveDateTime>,
}

/// What the store holds for one entry key.
#[derive(Debug, Clone, Copy)]
pub struct StoredEntry<'a> {
    /// The `entries` row, if the entry was stored before.
    pub entry: Option<&'a EntryRow>,
    /// Every meeting row of the key (any time).
    pub meetings: &'a [MeetingRow],
}

/// The context of a slice's decisions.
#[derive(Debug, Clone, Copy)]
pub struct SliceRules<'a> {
    /// The sync's window, `[from, to)` (R-WINDOW).
    pub window: (DateTime<Utc>, DateTime<Utc>),
    /// When the job runs (R-PAST).
    pub now: DateTime<Utc>,
    /// The administrator's time zone (`groupware.timezone`).
    pub timezone: Tz,
    pub enabled_users: &'a EnabledUsers,
    pub location: &'a LocationMatcher,
    pub invite_members: bool,
    pub on_reschedule: ReschedulePolicy,
    pub on_delete: DeletePolicy,
}

/// A meeting row an effect acts on: an existing one, or the one this plan inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowRef {
    Id(i64),
    /// The row of this plan's [`RowChange::InsertMeeting`].
    Inserted,
}

/// A change to the entry's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowChange {
    /// Store the listing's observation (clears `gone_at`).
    StoreEntry(ObservedEntry),
    /// Listed again with nothing changed: only "last listed" moves.
    TouchEntry,
    /// The entry is no longer a Zoom entry (R-DELETE).
    MarkGone(GoneReason),
    /// Point the entry at its live meeting row.
    SetCurrent(RowRef),
    /// A new row for the listed time (the key has none yet).
    InsertMeeting(NewMeeting),
    /// A row not in Zoom takes fresh content and a new create (attempts forgotten).
    Rearm { id: i64, row: NewMeeting },
    /// What Zoom should hold for a row changes (time included).
    SetContent { id: i64, content: MeetingContent },
    SetState {
        id: i64,
        state: MeetingState,
        reason: Option<Reason>,
    },
    /// A row with no meeting, at the time the entry moves to, gives way.
    DeleteMeeting { id: i64 },
}

/// A job the plan pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobToPush {
    Create(RowRef),
    Update { meeting_id: i64 },
    Delete { meeting_id: i64, reason: ReasonCode },
}

/// One effect, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Row(RowChange),
    Push(JobToPush),
}

/// Which of the slice's counters an entry adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    Created,
    Updated,
    Skipped,
    Gone,
}

/// Something the job logs about an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Overlapping runs: a newer listing was already applied; this one is ignored.
    OlderListing { listed: String, applied: String },
    /// J-MOTTO's times cannot be read (a Zoom entry is skipped).
    UnreadableTimes(String),
}

/// What one entry asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryPlan {
    pub effects: Vec<Effect>,
    pub tally: Option<Tally>,
    pub note: Option<Note>,
}

impl EntryPlan {
    fn row(&mut self, change: RowChange) {
        self.effects.push(Effect::Row(change));
    }

    fn push(&mut self, job: JobToPush) {
        self.effects.push(Effect::Push(job));
    }
}

/// Decides for one listed entry (R-TRIGGER, R-WINDOW, R-HOST, R-PAST, R-LATE, R-ONCE,
/// R-RESCHEDULE, R-DELETE). Pure: everything it reads is in its arguments.
pub fn plan_entry(
    listed: &ListedEntry<'_>,
    stored: StoredEntry<'_>,
    rules: &SliceRules<'_>,
) -> EntryPlan {
    let mut plan = EntryPlan::default();
    let existing = stored.entry;
    let matches_location = rules.location.matches(listed.place);
    let listed_updated = listed.updated.map(|t| t.format(UPDATED_FORMAT).to_string());
    if let (Some(listed_at), Some(applied)) = (
        listed_updated.as_deref(),
        existing.and_then(|e| e.listed_updated.as_deref()),
    ) && listed_at < applied
    {
        // Overlapping runs: a newer listing of this entry was already applied; this older
        // one must not undo it (it still counts as a sighting: the entry exists).
        plan.note = Some(Note::OlderListing {
            listed: listed_at.to_owned(),
            applied: applied.to_owned(),
        });
        return plan;
    }
    let time = match listed.slot {
        Ok(slot) => meeting_time(slot, rules.timezone).map_err(|e| e.to_string()),
        Err(why) => Err(why.clone()),
    };
    let time = match time {
        Ok(time) => time,
        Err(why) => {
            if matches_location {
                plan.note = Some(Note::UnreadableTimes(why));
                plan.tally = Some(Tally::Skipped);
            }
            return plan;
        }
    };
    if !matches_location && existing.is_none_or(|e| e.gone_at.is_some()) {
        // R-TRIGGER: not a Zoom entry, and never was one — or it lost the location and
        // that was already handled (by this run's listing of another member, say).
        return plan;
    }
    let host = choose_host(listed.owner, listed.members, rules.enabled_users);
    let content = desired_content(
        listed,
        rules,
        &host,
        time.start_utc,
        time.end_utc,
        time.duration_minutes,
    );
    let at_time = stored.meetings.iter().find(|row| content.same_time(row));
    let in_window = rules.window.0 <= time.start_utc && time.start_utc < rules.window.1;
    if !in_window {
        // R-WINDOW: recorded once, so the operator sees why. (J-MOTTO lists only the window's
        // days, so this is an entry it listed in the wrong month.)
        if matches_location && at_time.is_none() {
            plan.row(RowChange::InsertMeeting(new_row(
                &content,
                MeetingState::Skipped,
                Some(SkipReason::OutsideWindow.code()),
            )));
            plan.tally = Some(Tally::Skipped);
        }
        return plan;
    }
    let observed = ObservedEntry {
        owner: listed.owner.to_owned(),
        members: listed.members.to_vec(),
        start_utc: content.start_utc.clone(),
        end_utc: content.end_utc.clone(),
        host_user_id: content.host_user_id.clone(),
        updated: listed_updated,
    };
    if existing.is_some_and(|e| e.same_observation(&observed)) {
        plan.row(RowChange::TouchEntry);
    } else {
        plan.row(RowChange::StoreEntry(observed));
    }
    let current = existing
        .and_then(|e| e.current_meeting_id)
        .and_then(|id| stored.meetings.iter().find(|row| row.id == id));
    if current.is_some_and(create_in_flight) {
        // Deciding now could lose the change or make a second meeting. The next sync decides.
        return plan;
    }
    let came_back = matches_location && existing.is_some_and(|e| e.gone_at.is_some());
    if came_back && let Some(row) = current.filter(|r| r.state == MeetingState::Created) {
        // Restored (or the location re-added) while its meeting was kept: no longer gone.
        plan.row(RowChange::SetState {
            id: row.id,
            state: MeetingState::Created,
            reason: None,
        });
    }
    let observation = Observation {
        matches_location,
        has_host: host.is_some(),
        ended: time.end_utc <= rules.now,
    };
    let facts = current.map(|row| current_facts(row, &content));
    let decision = decision::decide(observation, facts, rules.on_reschedule);
    let mut planner = Planner {
        plan,
        content,
        current,
        at_time,
        on_delete: rules.on_delete,
    };
    planner.apply(decision);
    planner.plan
}

/// What the listing asks Zoom to hold for the entry.
fn desired_content(
    listed: &ListedEntry<'_>,
    rules: &SliceRules<'_>,
    host: &Option<Host>,
    start_utc: DateTime<Utc>,
    end_utc: DateTime<Utc>,
    duration_minutes: u32,
) -> MeetingContent {
    let invited = match (host, rules.invite_members) {
        (Some(host), true) => invitees(host, listed.owner, listed.members, rules.enabled_users)
            .into_iter()
            .map(|e| e.as_str().to_owned())
            .collect(),
        _ => Vec::new(),
    };
    MeetingContent {
        start_utc: utc_text(start_utc),
        end_utc: utc_text(end_utc),
        host_user_id: host.as_ref().map(|h| h.user_id.as_str().to_owned()),
        host_email: host.as_ref().map(|h| h.zoom_email.as_str().to_owned()),
        topic: build_topic(listed.event, listed.detail),
        agenda: build_agenda(listed.memo, listed.key),
        duration_minutes: i64::from(duration_minutes),
        timezone: zoom_timezone(rules.timezone).to_owned(),
        invitees: invited,
    }
}

/// A create is in flight (or its job waits to look for what an earlier attempt may have
/// made). Failed or skipped rows have no job left; a re-armed row keeps `look_first`.
fn create_in_flight(row: &MeetingRow) -> bool {
    row.state == MeetingState::Creating
        || (row.look_first && matches!(row.state, MeetingState::Pending | MeetingState::Deferred))
}

/// The current row, as far as [`decision::decide`] needs it.
fn current_facts(row: &MeetingRow, content: &MeetingContent) -> CurrentMeeting {
    CurrentMeeting {
        same_time: content.same_time(row),
        in_zoom: row.state.may_exist_in_zoom(),
        // A row that Zoom refused waits for a change of its content; one whose retries ran
        // out is tried again by this sync.
        awaiting_create: matches!(row.state, MeetingState::Pending | MeetingState::Deferred)
            || (row.state == MeetingState::Failed
                && row.reason_code() == Some(ReasonCode::ZoomRejected)),
        // An update whose retries ran out is sent again: Zoom may still hold the old content
        // (the row already holds the new one).
        content_same: content.same_content(row)
            && row.reason_code() != Some(ReasonCode::UpdateFailed),
    }
}

fn new_row(
    content: &MeetingContent,
    state: MeetingState,
    reason: Option<ReasonCode>,
) -> NewMeeting {
    NewMeeting {
        content: content.clone(),
        state,
        reason: reason.map(Reason::from),
        replaces_meeting_id: None,
    }
}

/// Turns a [`Decision`] into effects, given the entry's current row and the row its key
/// holds at the listed time.
struct Planner<'a> {
    plan: EntryPlan,
    content: MeetingContent,
    current: Option<&'a MeetingRow>,
    at_time: Option<&'a MeetingRow>,
    on_delete: DeletePolicy,
}

impl Planner<'_> {
    fn apply(&mut self, decision: Decision) {
        match decision {
            Decision::Nothing => {}
            Decision::Skip(reason) => self.skip(reason),
            Decision::Create => self.create(None),
            Decision::RefreshPending => self.refresh_pending(),
            Decision::CreateSuperseding => {
                if let Some(current) = self.current {
                    self.supersede(current.id);
                }
                self.create(None);
            }
            Decision::CreateReplacing => self.create(self.current.map(|c| c.id)),
            Decision::Update { retime } => self.update(retime),
            Decision::Gone(reason) => {
                if let Some(current) = self.current {
                    self.plan.row(RowChange::MarkGone(reason));
                    gone_effects(&mut self.plan, current, reason, self.on_delete);
                    self.plan.tally = Some(Tally::Gone);
                }
            }
        }
    }

    /// A skipped row for the listed time (or the row already there) becomes current.
    fn skip(&mut self, reason: SkipReason) {
        let target = match self.at_time {
            Some(existing) => RowRef::Id(existing.id),
            None => {
                let row = new_row(&self.content, MeetingState::Skipped, Some(reason.code()));
                self.plan.row(RowChange::InsertMeeting(row));
                RowRef::Inserted
            }
        };
        self.plan.row(RowChange::SetCurrent(target));
        self.plan.tally = Some(Tally::Skipped);
    }

    fn refresh_pending(&mut self) {
        let Some(current) = self.current else {
            return;
        };
        if current.state == MeetingState::Failed {
            // Zoom refused the old content; the new content gets a new attempt.
            return self.create(None);
        }
        self.plan.row(RowChange::SetContent {
            id: current.id,
            content: self.content.clone(),
        });
    }

    fn supersede(&mut self, id: i64) {
        self.plan.row(RowChange::SetState {
            id,
            state: MeetingState::Superseded,
            reason: Some(ReasonCode::Rescheduled.into()),
        });
    }

    /// A superseded row whose meeting was left in Zoom becomes the entry's live one again.
    fn revive(&mut self, row: &MeetingRow) {
        if row.state == MeetingState::Superseded {
            self.plan.row(RowChange::SetState {
                id: row.id,
                state: MeetingState::Created,
                reason: Some(ReasonCode::RescheduledBack.into()),
            });
        }
    }

    /// A pending row for the listed time (re-arming one that exists but never reached
    /// Zoom), made current, with its create job.
    fn create(&mut self, replaces: Option<i64>) {
        let mut row = new_row(&self.content, MeetingState::Pending, None);
        row.replaces_meeting_id = replaces;
        let target = match self.at_time {
            None => {
                self.plan.row(RowChange::InsertMeeting(row));
                RowRef::Inserted
            }
            Some(existing)
                if existing.holds_zoom_meeting()
                    || matches!(
                        existing.state,
                        MeetingState::Pending | MeetingState::Deferred
                    ) =>
            {
                // R-ONCE: this time already has its meeting (or a create on the way), e.g.
                // the entry moved back to a time whose meeting was left in Zoom.
                self.revive(existing);
                self.plan
                    .row(RowChange::SetCurrent(RowRef::Id(existing.id)));
                return;
            }
            Some(existing) => {
                if existing.state == MeetingState::Failed
                    && existing.reason_code() == Some(ReasonCode::FailedAfterSend)
                {
                    // The last attempt may have reached Zoom: the job looks before it creates.
                    row.state = MeetingState::Creating;
                }
                self.plan.row(RowChange::Rearm {
                    id: existing.id,
                    row,
                });
                RowRef::Id(existing.id)
            }
        };
        self.plan.row(RowChange::SetCurrent(target));
        self.plan.push(JobToPush::Create(target));
        self.plan.tally = Some(Tally::Created);
    }

    fn update(&mut self, retime: bool) {
        let Some(current) = self.current else {
            return;
        };
        if retime && let Some(conflict) = self.at_time {
            if conflict.holds_zoom_meeting() {
                // The entry moved back to a time that still has its own meeting: that one
                // becomes current again; R-ONCE forbids a second meeting there.
                self.revive(conflict);
                self.supersede(current.id);
                self.plan
                    .row(RowChange::SetCurrent(RowRef::Id(conflict.id)));
                return;
            }
            self.plan.row(RowChange::DeleteMeeting { id: conflict.id });
        }
        self.plan.row(RowChange::SetContent {
            id: current.id,
            content: self.content.clone(),
        });
        self.plan.push(JobToPush::Update {
            meeting_id: current.id,
        });
        self.plan.tally = Some(Tally::Updated);
    }
}

/// R-DELETE: the entry of `row` is no longer a Zoom entry.
fn gone_effects(plan: &mut EntryPlan, row: &MeetingRow, reason: GoneReason, policy: DeletePolicy) {
    let state = row.state;
    if state.is_claimable() {
        // Not in Zoom yet: nothing to keep or delete; the queued create will find it skipped.
        plan.row(RowChange::SetState {
            id: row.id,
            state: MeetingState::Skipped,
            reason: Some(reason.code().into()),
        });
    } else if state.may_exist_in_zoom() {
        match policy {
            DeletePolicy::Keep => plan.row(RowChange::SetState {
                id: row.id,
                state,
                reason: Some(reason.code().into()),
            }),
            DeletePolicy::Delete => plan.push(JobToPush::Delete {
                meeting_id: row.id,
                reason: reason.code(),
            }),
        }
    }
}

/// R-DELETE for an entry a complete listing of its host's window no longer holds: the entry
/// is marked gone and its current row (if any) follows `sync.on_delete`.
pub fn plan_gone(current: Option<&MeetingRow>, policy: DeletePolicy) -> EntryPlan {
    let mut plan = EntryPlan::default();
    plan.row(RowChange::MarkGone(GoneReason::EntryDeleted));
    if let Some(row) = current {
        gone_effects(&mut plan, row, GoneReason::EntryDeleted, policy);
        plan.tally = Some(Tally::Gone);
    }
    plan
}

/// Is a delete that ran out of attempts (`reason`: why the meeting should go) still asked
/// for by the policies?
pub fn failed_delete_wanted(
    reason: ReasonCode,
    on_delete: DeletePolicy,
    on_reschedule: ReschedulePolicy,
) -> bool {
    if reason == ReasonCode::Replaced {
        on_reschedule == ReschedulePolicy::Replace
    } else {
        on_delete == DeletePolicy::Delete
    }
}
