//! Process-wide pacing: one governor limiter per Zoom category and one for J-MOTTO, shared
//! by every handler of a process (DESIGN.md).
//!
//! SPEC §6 reads "N per second" as "at most N calls in any one-second window", so the quota
//! is one call every 1/N s with a burst of one — `Quota::per_second(N)` would allow a burst
//! of N on top of the steady rate, up to 2N−1 calls in one second.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A limiter that lets through at most `per_second` calls in any one-second window
/// (`per_second` 0 is read as 1).
pub fn evenly_paced(per_second: u32) -> Arc<DefaultDirectRateLimiter> {
    let per_second = per_second.max(1);
    let period = Duration::from_secs(1) / per_second;
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(quota))
}

/// The limiters a process shares.
#[derive(Debug, Clone)]
pub struct Limiters {
    /// Zoom Medium category: meeting creates.
    pub zoom_create: Arc<DefaultDirectRateLimiter>,
    /// Zoom Light category: every other Zoom call.
    pub zoom_light: Arc<DefaultDirectRateLimiter>,
    /// J-MOTTO: every call.
    pub groupware: Arc<DefaultDirectRateLimiter>,
}

impl Limiters {
    /// Builds the three limiters from the configured rates.
    pub fn new(zoom_create: u32, zoom_light: u32, groupware: u32) -> Limiters {
        Limiters {
            zoom_create: evenly_paced(zoom_create),
            zoom_light: evenly_paced(zoom_light),
            groupware: evenly_paced(groupware),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC §6 rate limits: no burst above N in the first second.
    #[tokio::test]
    async fn no_burst_above_the_configured_rate() {
        let limiter = evenly_paced(5);
        let start = std::time::Instant::now();
        let mut immediate = 0;
        while limiter.check().is_ok() {
            immediate += 1;
        }
        assert_eq!(immediate, 1, "burst must be one call");
        limiter.until_ready().await;
        assert!(start.elapsed() >= Duration::from_millis(150));
    }
}
