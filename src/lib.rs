//! jmotto-zoom: J-MOTTO Groupware schedule entries become Zoom meetings.
//!
//! See ARCHITECTURE.md for the map; SPEC.md (shared) for the rules each module cites.

pub mod checks;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod domain;
pub mod groupware;
pub mod http;
pub mod jobs;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod replay;
pub mod secrets;
pub mod signature;
pub mod store;
pub mod telemetry;
pub mod zoom;
