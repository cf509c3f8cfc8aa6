//! The one integration-test binary: the whole service against the replay servers.

mod binaries;
mod faults;
mod helpers;
mod http_api;
mod http_edges;
mod operator;
mod queue_counts;
mod sync_rules;
mod webhooks;
