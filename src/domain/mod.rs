//! The pure core of the service: plain data and plain functions, no I/O.
//!
//! Everything here is decided from its arguments alone (the clock and the time zone are
//! passed in), so every rule of SPEC §2 that lives here is tested without a database, a
//! server or the network. Values that reach this layer are parsed once at the edge into
//! types whose invariants hold by construction (`GroupwareUserId`, `ZoomEmail`,
//! `SyncWindow`, `LocalSlot`); nothing below re-checks them.

pub mod decision;
pub mod host;
pub mod ids;
pub mod location;
pub mod meeting;
pub mod plan;
pub mod policy;
pub mod time;
pub mod topic;
pub mod window;

/// Errors from parsing or combining domain values.
///
/// Each variant names the offending value so that the edge can turn it into a sentence for
/// the caller (a 422, or a start-up error naming the configuration key) without guessing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    /// A groupware user id that is empty, too long, or contains white space or control
    /// characters.
    #[error("invalid groupware user id {0:?}: it must be 1-64 characters with no white space")]
    InvalidUserId(String),
    /// A string that is not a plausible e-mail address for a Zoom account.
    #[error("invalid e-mail address {0:?}")]
    InvalidEmail(String),
    /// A schedule entry whose end lies before its start (both as J-MOTTO gave them).
    #[error("the entry ends ({end}) before it starts ({start})")]
    EndBeforeStart {
        /// The entry's start as J-MOTTO gave it (local wall-clock).
        start: String,
        /// The entry's end as J-MOTTO gave it (local wall-clock).
        end: String,
    },
    /// A sync window length (`sync.months`) outside 1..=24, or one that would run past the
    /// last date chrono can represent.
    #[error("months must be between 1 and 24, got {0}")]
    InvalidMonths(u32),
}
