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
    time::{LocalSlot, MeetingTime, meeting_time, utc_text, zoom_timezone},
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
#[expect(
    clippy::large_enum_variant,
    reason = "a plan holds a few effects for a moment; boxing row changes buys nothing"
)]
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
    let existing = stored.entry;
    let reading = match read_listing(listed, existing, rules) {
        Ok(reading) => reading,
        Err(plan) => return plan,
    };
    let host = choose_host(listed.owner, listed.members, rules.enabled_users);
    let content = desired_content(listed, rules, &host, &reading.time);
    let at_time = stored.meetings.iter().find(|row| content.same_time(row));
    let start = reading.time.start_utc;
    if !(rules.window.0 <= start && start < rules.window.1) {
        return outside_window(reading.matches_location, content, at_time);
    }
    let mut plan = EntryPlan::default();
    plan.row(observe(listed, existing, &content, reading.listed_updated));
    let current = existing
        .and_then(|e| e.current_meeting_id)
        .and_then(|id| stored.meetings.iter().find(|row| row.id == id));
    if current.is_some_and(create_in_flight) {
        // Deciding now could lose the change or make a second meeting. The next sync decides.
        return plan;
    }
    let came_back = reading.matches_location && existing.is_some_and(|e| e.gone_at.is_some());
    if came_back && let Some(row) = current.filter(|r| r.state == MeetingState::Created) {
        // Restored (or the location re-added) while its meeting was kept: no longer gone.
        plan.row(RowChange::SetState {
            id: row.id,
            state: MeetingState::Created,
            reason: None,
        });
    }
    let observation = Observation {
        matches_location: reading.matches_location,
        has_host: host.is_some(),
        ended: reading.time.end_utc <= rules.now,
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

/// The entry's observation is stored, or — when nothing but "last listed" would change —
/// touched.
fn observe(
    listed: &ListedEntry<'_>,
    existing: Option<&EntryRow>,
    content: &MeetingContent,
    listed_updated: Option<String>,
) -> RowChange {
    let observed = ObservedEntry {
        owner: listed.owner.to_owned(),
        members: listed.members.to_vec(),
        start_utc: content.start_utc.clone(),
        end_utc: content.end_utc.clone(),
        host_user_id: content.host_user_id.clone(),
        updated: listed_updated,
    };
    if existing.is_some_and(|e| e.same_observation(&observed)) {
        RowChange::TouchEntry
    } else {
        RowChange::StoreEntry(observed)
    }
}

/// What the listing says once read: the meeting's time, the location check, J-MOTTO's
/// `updated` as stored.
struct Reading {
    time: MeetingTime,
    matches_location: bool,
    listed_updated: Option<String>,
}

/// Reads the listing, or ends the entry's plan early: an older listing than the one
/// applied, unreadable times, or an entry that is not and never was a Zoom entry.
fn read_listing(
    listed: &ListedEntry<'_>,
    existing: Option<&EntryRow>,
    rules: &SliceRules<'_>,
) -> Result<Reading, EntryPlan> {
    let mut plan = EntryPlan::default();
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
        return Err(plan);
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
            return Err(plan);
        }
    };
    if !matches_location && existing.is_none_or(|e| e.gone_at.is_some()) {
        // R-TRIGGER: not a Zoom entry, and never was one — or it lost the location and
        // that was already handled (by this run's listing of another member, say).
        return Err(plan);
    }
    Ok(Reading {
        time,
        matches_location,
        listed_updated,
    })
}

/// R-WINDOW: a Zoom entry starting outside the window is recorded once, so the operator
/// sees why. (J-MOTTO lists only the window's days: an entry listed in the wrong month.)
fn outside_window(
    matches_location: bool,
    content: MeetingContent,
    at_time: Option<&MeetingRow>,
) -> EntryPlan {
    let mut plan = EntryPlan::default();
    if matches_location && at_time.is_none() {
        let reason = Some(SkipReason::OutsideWindow.code());
        plan.row(RowChange::InsertMeeting(new_row(
            &content,
            MeetingState::Skipped,
            reason,
        )));
        plan.tally = Some(Tally::Skipped);
    }
    plan
}

/// What the listing asks Zoom to hold for the entry.
fn desired_content(
    listed: &ListedEntry<'_>,
    rules: &SliceRules<'_>,
    host: &Option<Host>,
    time: &MeetingTime,
) -> MeetingContent {
    let invited = match (host, rules.invite_members) {
        (Some(host), true) => invitees(host, listed.owner, listed.members, rules.enabled_users)
            .into_iter()
            .map(|e| e.as_str().to_owned())
            .collect(),
        _ => Vec::new(),
    };
    MeetingContent {
        start_utc: utc_text(time.start_utc),
        end_utc: utc_text(time.end_utc),
        host_user_id: host.as_ref().map(|h| h.user_id.as_str().to_owned()),
        host_email: host.as_ref().map(|h| h.zoom_email.as_str().to_owned()),
        topic: build_topic(listed.event, listed.detail),
        agenda: build_agenda(listed.memo, listed.key),
        duration_minutes: i64::from(time.duration_minutes),
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

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::domain::ids::{GroupwareUserId, ZoomEmail};
    use ReasonCode as Code;

    /// A listing of entry 8801 (owned; [`Listing::view`] borrows it).
    #[derive(Clone)]
    struct Listing {
        key: EntryKey,
        place: &'static str,
        owner: &'static str,
        slot: Result<LocalSlot, String>,
        updated: Option<NaiveDateTime>,
    }

    impl Listing {
        fn view<'a>(&'a self, members: &'a [String]) -> ListedEntry<'a> {
            ListedEntry {
                key: &self.key,
                event: "打合せ",
                detail: "",
                place: self.place,
                memo: "",
                slot: &self.slot,
                owner: self.owner,
                members,
                updated: self.updated,
            }
        }
    }

    fn local(day: u32, hour: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, day)
            .and_then(|d| d.and_hms_opt(hour, 0, 0))
            .expect("valid")
    }

    /// Entry 8801 in the Zoom location, 26 Nov `hour`:00–+1h Tokyo, hosted by 10002.
    fn listing(hour: u32) -> Listing {
        Listing {
            key: EntryKey {
                schedule_id: "8801".into(),
                occurrence: String::new(),
            },
            place: "Zoom",
            owner: "10002",
            slot: Ok(LocalSlot {
                start: local(26, hour),
                end: local(26, hour + 1),
                all_day: false,
            }),
            updated: None,
        }
    }

    fn utc(hour: u32) -> String {
        format!("2026-11-26T{:02}:00:00Z", hour - 9)
    }

    fn content(hour: u32, host: bool) -> MeetingContent {
        MeetingContent {
            start_utc: utc(hour),
            end_utc: utc(hour + 1),
            host_user_id: host.then(|| "10002".to_owned()),
            host_email: host.then(|| "tanaka@example.jp".to_owned()),
            topic: "打合せ".into(),
            agenda: build_agenda("", &listing(hour).key),
            duration_minutes: 60,
            timezone: "Asia/Tokyo".into(),
            invitees: Vec::new(),
        }
    }

    fn observed(hour: u32, host: bool) -> ObservedEntry {
        ObservedEntry {
            owner: "10002".into(),
            members: vec!["10002".into()],
            start_utc: utc(hour),
            end_utc: utc(hour + 1),
            host_user_id: host.then(|| "10002".to_owned()),
            updated: None,
        }
    }

    /// The stored entry as listed at `hour`, pointing at row `current`.
    fn entry(hour: u32, current: i64, gone: bool) -> EntryRow {
        EntryRow {
            schedule_id: "8801".into(),
            occurrence: String::new(),
            owner: "10002".into(),
            members: r#"["10002"]"#.into(),
            start_utc: utc(hour),
            end_utc: utc(hour + 1),
            host_user_id: Some("10002".into()),
            current_meeting_id: Some(current),
            gone_at: gone.then(|| "2026-11-20T00:00:00Z".to_owned()),
            listed_updated: None,
        }
    }

    fn row(id: i64, hour: u32, state: MeetingState, reason: Option<Code>) -> MeetingRow {
        let content = content(hour, true);
        MeetingRow {
            id,
            schedule_id: "8801".into(),
            occurrence: String::new(),
            start_utc: content.start_utc,
            end_utc: content.end_utc,
            host_user_id: content.host_user_id,
            host_email: content.host_email,
            topic: content.topic,
            agenda: content.agenda,
            duration_minutes: 60,
            timezone: content.timezone,
            invitees: "[]".into(),
            state,
            reason: reason.map(Reason::from),
            zoom_meeting_id: state.may_exist_in_zoom().then_some(9000 + id),
            join_url: None,
            replaces_meeting_id: None,
            attempts: 0,
            next_attempt_at: None,
            claimed_at: None,
            created_at: String::new(),
            updated_at: String::new(),
            look_first: false,
        }
    }

    fn retitled(mut row: MeetingRow) -> MeetingRow {
        row.topic = "旧件名".into();
        row
    }

    fn new_meeting(hour: u32, state: MeetingState, reason: Option<Code>) -> NewMeeting {
        new_row(&content(hour, true), state, reason)
    }

    fn set_state(id: i64, state: MeetingState, reason: Option<Code>) -> Effect {
        Effect::Row(RowChange::SetState {
            id,
            state,
            reason: reason.map(Reason::from),
        })
    }

    use Effect::{Push, Row};
    use MeetingState::*;
    use RowChange::*;

    fn create_at(row: RowRef) -> [Effect; 2] {
        [Row(SetCurrent(row)), Push(JobToPush::Create(row))]
    }

    fn update(id: i64, hour: u32) -> [Effect; 2] {
        [
            Row(SetContent {
                id,
                content: content(hour, true),
            }),
            Push(JobToPush::Update { meeting_id: id }),
        ]
    }

    /// The entry stored and a skipped row for 14:00 made current.
    fn skipped_at_14(code: Code) -> Vec<Effect> {
        vec![
            Row(StoreEntry(observed(14, true))),
            Row(InsertMeeting(new_meeting(14, Skipped, Some(code)))),
            Row(SetCurrent(RowRef::Inserted)),
        ]
    }

    struct Case {
        name: &'static str,
        listed: Listing,
        owner_disabled: bool,
        entry: Option<EntryRow>,
        meetings: Vec<MeetingRow>,
        on_reschedule: ReschedulePolicy,
        on_delete: DeletePolicy,
        ended: bool,
        effects: Vec<Effect>,
        tally: Option<Tally>,
        note: Option<Note>,
    }

    /// A case with the seed policies, nothing stored, no effects.
    fn case(name: &'static str, listed: Listing) -> Case {
        Case {
            name,
            listed,
            owner_disabled: false,
            entry: None,
            meetings: Vec::new(),
            on_reschedule: ReschedulePolicy::CreateNew,
            on_delete: DeletePolicy::Keep,
            ended: false,
            effects: Vec::new(),
            tally: None,
            note: None,
        }
    }

    fn check(case: Case) {
        let enabled = EnabledUsers::new([(
            GroupwareUserId::parse("10002").expect("id"),
            ZoomEmail::parse("tanaka@example.jp").expect("email"),
        )]);
        let location = LocationMatcher::new("Zoom");
        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .expect("instant")
                .with_timezone(&Utc)
        };
        let rules = SliceRules {
            window: (at("2026-10-31T15:00:00Z"), at("2027-01-31T15:00:00Z")),
            now: at(if case.ended {
                "2026-11-27T00:00:00Z"
            } else {
                "2026-11-25T00:00:00Z"
            }),
            timezone: chrono_tz::Asia::Tokyo,
            enabled_users: &enabled,
            location: &location,
            invite_members: false,
            on_reschedule: case.on_reschedule,
            on_delete: case.on_delete,
        };
        let mut listed = case.listed.clone();
        let members = if case.owner_disabled {
            listed.owner = "10009";
            vec!["10009".to_owned()]
        } else {
            vec!["10002".to_owned()]
        };
        let stored = StoredEntry {
            entry: case.entry.as_ref(),
            meetings: &case.meetings,
        };
        let plan = plan_entry(&listed.view(&members), stored, &rules);
        let expected = EntryPlan {
            effects: case.effects,
            tally: case.tally,
            note: case.note,
        };
        assert_eq!(plan, expected, "{}", case.name);
    }

    fn moved(mut entry: EntryRow, hour: u32) -> EntryRow {
        entry.start_utc = utc(hour);
        entry.end_utc = utc(hour + 1);
        entry
    }

    /// R-TRIGGER, R-WINDOW, R-HOST, R-PAST and the guards before any decision.
    #[test]
    fn first_sight_and_guards() {
        let unreadable = Listing {
            slot: Err("bad start".into()),
            ..listing(14)
        };
        let older = Listing {
            updated: Some(local(1, 0)),
            ..listing(14)
        };
        let mut applied = entry(14, 1, false);
        applied.listed_updated = Some("2026-11-02T00:00:00".into());
        let mut outside = listing(14);
        outside.slot = Ok(LocalSlot {
            start: local(26, 14) + chrono::Duration::days(120),
            end: local(26, 15) + chrono::Duration::days(120),
            all_day: false,
        });
        let outside_content = MeetingContent {
            start_utc: "2027-03-26T05:00:00Z".into(),
            end_utc: "2027-03-26T06:00:00Z".into(),
            ..content(14, true)
        };
        let mut outside_row = row(5, 14, Skipped, Some(Code::OutsideWindow));
        outside_row.start_utc = outside_content.start_utc.clone();
        outside_row.end_utc = outside_content.end_utc.clone();
        let cases = [
            Case {
                effects: vec![
                    Row(StoreEntry(observed(14, true))),
                    Row(InsertMeeting(new_meeting(14, Pending, None))),
                ]
                .into_iter()
                .chain(create_at(RowRef::Inserted))
                .collect(),
                tally: Some(Tally::Created),
                ..case("R-TRIGGER: a new Zoom entry is created", listing(14))
            },
            case(
                "R-TRIGGER: never a Zoom entry",
                Listing {
                    place: "会議室",
                    ..listing(14)
                },
            ),
            Case {
                entry: Some(applied),
                meetings: vec![row(1, 14, Created, None)],
                note: Some(Note::OlderListing {
                    listed: "2026-11-01T00:00:00".into(),
                    applied: "2026-11-02T00:00:00".into(),
                }),
                ..case("an older listing is ignored", older)
            },
            Case {
                note: Some(Note::UnreadableTimes("bad start".into())),
                tally: Some(Tally::Skipped),
                ..case("unreadable times are skipped", unreadable.clone())
            },
            case(
                "unreadable times of a non-Zoom entry",
                Listing {
                    place: "会議室",
                    ..unreadable
                },
            ),
            Case {
                effects: vec![Row(InsertMeeting(new_row(
                    &outside_content,
                    Skipped,
                    Some(Code::OutsideWindow),
                )))],
                tally: Some(Tally::Skipped),
                ..case("R-WINDOW: recorded as skipped", outside.clone())
            },
            Case {
                meetings: vec![outside_row],
                ..case("R-WINDOW: recorded once", outside)
            },
            Case {
                owner_disabled: true,
                effects: vec![
                    Row(StoreEntry(ObservedEntry {
                        owner: "10009".into(),
                        members: vec!["10009".into()],
                        ..observed(14, false)
                    })),
                    Row(InsertMeeting(new_row(
                        &content(14, false),
                        Skipped,
                        Some(Code::NoEnabledHost),
                    ))),
                    Row(SetCurrent(RowRef::Inserted)),
                ],
                tally: Some(Tally::Skipped),
                ..case("R-HOST: no enabled member", listing(14))
            },
            Case {
                ended: true,
                effects: skipped_at_14(Code::Ended),
                tally: Some(Tally::Skipped),
                ..case("R-PAST: ended before the sync", listing(14))
            },
        ];
        cases.into_iter().for_each(check);
    }

    /// R-ONCE: unchanged entries, creates in flight, rows that wait or failed.
    #[test]
    fn same_time() {
        let mut look_first = row(1, 14, Pending, Some(Code::Retrying));
        look_first.look_first = true;
        let cases = [
            Case {
                entry: Some(entry(14, 1, false)),
                meetings: vec![row(1, 14, Created, None)],
                effects: vec![Row(TouchEntry)],
                ..case("unchanged: no Zoom call", listing(14))
            },
            Case {
                entry: Some(entry(14, 1, false)),
                meetings: vec![retitled(row(1, 14, Creating, None))],
                effects: vec![Row(TouchEntry)],
                ..case("a create in flight waits for the next sync", listing(14))
            },
            Case {
                entry: Some(entry(14, 1, false)),
                meetings: vec![retitled(look_first)],
                effects: vec![Row(TouchEntry)],
                ..case("a create that looks first waits too", listing(14))
            },
            Case {
                entry: Some(entry(14, 1, true)),
                meetings: vec![row(1, 14, Created, Some(Code::EntryDeleted))],
                effects: vec![
                    Row(StoreEntry(observed(14, true))),
                    set_state(1, Created, None),
                ],
                ..case("restored while its meeting was kept", listing(14))
            },
            Case {
                entry: Some(entry(14, 1, false)),
                meetings: vec![retitled(row(1, 14, Pending, None))],
                effects: vec![
                    Row(TouchEntry),
                    Row(SetContent {
                        id: 1,
                        content: content(14, true),
                    }),
                ],
                ..case("a pending row takes the new content", listing(14))
            },
            Case {
                entry: Some(entry(14, 1, false)),
                meetings: vec![row(1, 14, Failed, Some(Code::ZoomRejected))],
                effects: vec![Row(TouchEntry)],
                ..case("refused by Zoom: waits for a change", listing(14))
            },
            Case {
                entry: Some(entry(14, 1, false)),
                meetings: vec![retitled(row(1, 14, Failed, Some(Code::ZoomRejected)))],
                effects: [
                    Row(TouchEntry),
                    Row(Rearm {
                        id: 1,
                        row: new_meeting(14, Pending, None),
                    }),
                ]
                .into_iter()
                .chain(create_at(RowRef::Id(1)))
                .collect(),
                tally: Some(Tally::Created),
                ..case("refused by Zoom, then changed: re-armed", listing(14))
            },
            Case {
                entry: Some(entry(14, 1, false)),
                meetings: vec![row(1, 14, Failed, Some(Code::FailedAfterSend))],
                effects: [
                    Row(TouchEntry),
                    Row(Rearm {
                        id: 1,
                        row: new_meeting(14, Creating, None),
                    }),
                ]
                .into_iter()
                .chain(create_at(RowRef::Id(1)))
                .collect(),
                tally: Some(Tally::Created),
                ..case("failed after a send: the retry looks first", listing(14))
            },
            Case {
                owner_disabled: true,
                meetings: vec![row(1, 14, Skipped, Some(Code::NoEnabledHost))],
                effects: vec![
                    Row(StoreEntry(ObservedEntry {
                        owner: "10009".into(),
                        members: vec!["10009".into()],
                        ..observed(14, false)
                    })),
                    Row(SetCurrent(RowRef::Id(1))),
                ],
                tally: Some(Tally::Skipped),
                ..case("a skip links the row the time already has", listing(14))
            },
            Case {
                entry: Some(entry(14, 1, false)),
                meetings: vec![row(1, 14, Created, Some(Code::UpdateFailed))],
                on_reschedule: ReschedulePolicy::Update,
                effects: [Row(TouchEntry)].into_iter().chain(update(1, 14)).collect(),
                tally: Some(Tally::Updated),
                ..case("an update that ran out is sent again", listing(14))
            },
            Case {
                owner_disabled: true,
                entry: Some(entry(14, 1, false)),
                meetings: vec![retitled(row(1, 14, Created, None))],
                on_reschedule: ReschedulePolicy::Update,
                effects: vec![Row(StoreEntry(ObservedEntry {
                    owner: "10009".into(),
                    members: vec!["10009".into()],
                    ..observed(14, false)
                }))],
                ..case(
                    "R-HOST: no host any more, the meeting keeps its own",
                    listing(14),
                )
            },
        ];
        cases.into_iter().for_each(check);
    }

    /// R-RESCHEDULE: the entry moved from 13:00 to 14:00, under each policy.
    #[test]
    fn moved_entries() {
        let before = || Some(moved(entry(14, 1, false), 13));
        // Superseded by an earlier move, its meeting left in Zoom.
        let mut kept = row(2, 14, Superseded, Some(Code::Rescheduled));
        kept.zoom_meeting_id = Some(9002);
        let cases = [
            Case {
                entry: before(),
                meetings: vec![row(1, 13, Created, None)],
                effects: [
                    Row(StoreEntry(observed(14, true))),
                    set_state(1, Superseded, Some(Code::Rescheduled)),
                    Row(InsertMeeting(new_meeting(14, Pending, None))),
                ]
                .into_iter()
                .chain(create_at(RowRef::Inserted))
                .collect(),
                tally: Some(Tally::Created),
                ..case("create_new: a new meeting, the old one stays", listing(14))
            },
            Case {
                entry: before(),
                meetings: vec![row(1, 13, Created, None)],
                on_reschedule: ReschedulePolicy::Replace,
                effects: [
                    Row(StoreEntry(observed(14, true))),
                    Row(InsertMeeting(NewMeeting {
                        replaces_meeting_id: Some(1),
                        ..new_meeting(14, Pending, None)
                    })),
                ]
                .into_iter()
                .chain(create_at(RowRef::Inserted))
                .collect(),
                tally: Some(Tally::Created),
                ..case("replace: a new meeting replacing the old", listing(14))
            },
            Case {
                entry: before(),
                meetings: vec![row(1, 13, Created, None)],
                on_reschedule: ReschedulePolicy::Update,
                effects: [Row(StoreEntry(observed(14, true)))]
                    .into_iter()
                    .chain(update(1, 14))
                    .collect(),
                tally: Some(Tally::Updated),
                ..case("update: the meeting is PATCHed", listing(14))
            },
            Case {
                entry: before(),
                meetings: vec![row(1, 13, Created, None), kept.clone()],
                on_reschedule: ReschedulePolicy::Update,
                effects: vec![
                    Row(StoreEntry(observed(14, true))),
                    set_state(2, Created, Some(Code::RescheduledBack)),
                    set_state(1, Superseded, Some(Code::Rescheduled)),
                    Row(SetCurrent(RowRef::Id(2))),
                ],
                ..case("update: moved back to a kept meeting", listing(14))
            },
            Case {
                entry: before(),
                meetings: vec![
                    row(1, 13, Created, None),
                    row(2, 14, Skipped, Some(Code::Ended)),
                ],
                on_reschedule: ReschedulePolicy::Update,
                effects: [
                    Row(StoreEntry(observed(14, true))),
                    Row(DeleteMeeting { id: 2 }),
                ]
                .into_iter()
                .chain(update(1, 14))
                .collect(),
                tally: Some(Tally::Updated),
                ..case("update: a row without meeting gives way", listing(14))
            },
            Case {
                entry: before(),
                meetings: vec![row(1, 13, Created, None), kept],
                effects: vec![
                    Row(StoreEntry(observed(14, true))),
                    set_state(1, Superseded, Some(Code::Rescheduled)),
                    set_state(2, Created, Some(Code::RescheduledBack)),
                    Row(SetCurrent(RowRef::Id(2))),
                ],
                ..case("create_new: moved back to a kept meeting", listing(14))
            },
            Case {
                entry: before(),
                meetings: vec![row(1, 13, Deferred, Some(Code::HostDailyLimit))],
                on_reschedule: ReschedulePolicy::Update,
                effects: [
                    Row(StoreEntry(observed(14, true))),
                    set_state(1, Superseded, Some(Code::Rescheduled)),
                    Row(InsertMeeting(new_meeting(14, Pending, None))),
                ]
                .into_iter()
                .chain(create_at(RowRef::Inserted))
                .collect(),
                tally: Some(Tally::Created),
                ..case(
                    "never reached Zoom: moves on whatever the policy",
                    listing(14),
                )
            },
            Case {
                entry: before(),
                meetings: vec![row(1, 13, Created, None)],
                ended: true,
                effects: skipped_at_14(Code::Ended),
                tally: Some(Tally::Skipped),
                ..case("R-PAST: moved into the past", listing(14))
            },
        ];
        cases.into_iter().for_each(check);
    }

    /// R-DELETE: the Zoom location removed, under each policy and state.
    #[test]
    fn location_removed() {
        let removed = || Listing {
            place: "会議室",
            ..listing(14)
        };
        let gone = Row(MarkGone(GoneReason::LocationRemoved));
        let cases = [
            Case {
                entry: Some(entry(14, 1, false)),
                meetings: vec![row(1, 14, Created, None)],
                effects: vec![
                    Row(TouchEntry),
                    gone.clone(),
                    set_state(1, Created, Some(Code::LocationRemoved)),
                ],
                tally: Some(Tally::Gone),
                ..case("keep: the meeting stays, with the reason", removed())
            },
            Case {
                entry: Some(entry(14, 1, false)),
                meetings: vec![row(1, 14, Created, None)],
                on_delete: DeletePolicy::Delete,
                effects: vec![
                    Row(TouchEntry),
                    gone.clone(),
                    Push(JobToPush::Delete {
                        meeting_id: 1,
                        reason: Code::LocationRemoved,
                    }),
                ],
                tally: Some(Tally::Gone),
                ..case("delete: the meeting is deleted", removed())
            },
            Case {
                entry: Some(entry(14, 1, false)),
                meetings: vec![row(1, 14, Pending, None)],
                on_delete: DeletePolicy::Delete,
                effects: vec![
                    Row(TouchEntry),
                    gone,
                    set_state(1, Skipped, Some(Code::LocationRemoved)),
                ],
                tally: Some(Tally::Gone),
                ..case("before its create: skipped", removed())
            },
            Case {
                entry: Some(entry(14, 1, true)),
                meetings: vec![row(1, 14, Created, Some(Code::LocationRemoved))],
                ..case("already handled", removed())
            },
        ];
        cases.into_iter().for_each(check);
    }

    /// R-DELETE for an entry a complete listing lost, and the retry of failed deletes.
    #[test]
    fn gone_entries_and_failed_deletes() {
        let gone = Row(MarkGone(GoneReason::EntryDeleted));
        let delete = |id| {
            Push(JobToPush::Delete {
                meeting_id: id,
                reason: Code::EntryDeleted,
            })
        };
        let created = row(1, 14, Created, None);
        let cases = [
            (None, DeletePolicy::Delete, vec![gone.clone()], None),
            (
                Some(created.clone()),
                DeletePolicy::Keep,
                vec![
                    gone.clone(),
                    set_state(1, Created, Some(Code::EntryDeleted)),
                ],
                Some(Tally::Gone),
            ),
            (
                Some(created),
                DeletePolicy::Delete,
                vec![gone.clone(), delete(1)],
                Some(Tally::Gone),
            ),
            (
                Some(row(1, 14, Deferred, None)),
                DeletePolicy::Delete,
                vec![
                    gone.clone(),
                    set_state(1, Skipped, Some(Code::EntryDeleted)),
                ],
                Some(Tally::Gone),
            ),
            (
                Some(row(1, 14, Deleted, None)),
                DeletePolicy::Delete,
                vec![gone],
                Some(Tally::Gone),
            ),
        ];
        for (current, policy, effects, tally) in cases {
            let expected = EntryPlan {
                effects,
                tally,
                note: None,
            };
            assert_eq!(plan_gone(current.as_ref(), policy), expected, "{current:?}");
        }
        use DeletePolicy::{Delete, Keep};
        use ReschedulePolicy::{CreateNew, Replace};
        let wanted = [
            (Code::Replaced, Keep, Replace, true),
            (Code::Replaced, Delete, CreateNew, false),
            (Code::EntryDeleted, Delete, CreateNew, true),
            (Code::LocationRemoved, Keep, Replace, false),
        ];
        for (reason, on_delete, on_reschedule, expected) in wanted {
            assert_eq!(
                failed_delete_wanted(reason, on_delete, on_reschedule),
                expected,
                "{reason}"
            );
        }
    }
}
