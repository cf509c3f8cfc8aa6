//! What the administrator chose for moved and deleted entries (`[sync]` `on_reschedule`,
//! `on_delete`). Plain values: `config` reads them, the per-entry rules take them.

/// What `sync.on_reschedule` asks for (R-RESCHEDULE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReschedulePolicy {
    /// Seed behaviour: the old meeting stays, a new one is created.
    #[default]
    CreateNew,
    /// The existing meeting is PATCHed.
    Update,
    /// A new meeting is created, then the old one deleted.
    Replace,
}

/// What to do when a synced entry disappears or loses its Zoom location (R-DELETE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletePolicy {
    /// Seed behaviour: the Zoom meeting stays.
    #[default]
    Keep,
    /// Delete the Zoom meeting.
    Delete,
}
