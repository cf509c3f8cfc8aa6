//! Pacing arithmetic, without I/O: the per-process governor limiters and the GCRA that
//! `store::pacing` keeps in the database for every process sharing it (SPEC §9).
//!
//! SPEC §6 reads "N per second" as "at most N calls in any one-second window", so the quota
//! is one call every 1/N s with a burst of one — `Quota::per_second(N)` would allow a burst
//! of N on top of the steady rate, up to 2N−1 calls in one second.
//!
//! How the two combine (`store::pacing::Pacer`): a call first waits for its process's
//! governor limiter, which spaces the process's own callers 1/N s apart (so a process asks
//! the database at most N times a second per limiter), then reserves the account's next slot
//! with [`Gcra`] in one short write transaction and sleeps until it. The database's slots
//! alone bound the sum over all processes; governor only smooths within a process.

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

/// The generic cell rate algorithm with no burst tolerance: one slot every `interval_us`
/// microseconds, the next free one kept as the theoretical arrival time (TAT).
///
/// Invariant: two slots it grants are at least `interval_us` apart, and N intervals are at
/// least one second and [`JITTER_ALLOWANCE_US`] long, so any half-open one-second window
/// holds at most N slots (k slots in it span (k − 1) × interval < 1 s, so k − 1 < N), and
/// so does any one-second window of the calls' arrivals at the service as long as one call
/// does not reach it later than another by the allowance or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// The emission interval: 1/N s in microseconds, rounded up.
    pub interval_us: i64,
}

/// What one [`Gcra::reserve`] grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// When the call may start (microseconds since the Unix epoch); at or after `now`.
    pub slot_us: i64,
    /// The theoretical arrival time to store for the next caller.
    pub next_tat_us: i64,
}

/// How much later one paced call may reach the service than another (scheduling, the
/// network) and the service still see at most N in one second: N intervals span one second
/// plus this. It costs 4 % of the configured rate. 20 ms was too little on a loaded
/// 2-core machine (issue 11's kill test on PostgreSQL: one create 20–50 ms after its slot,
/// the next on time, 7 in a second at N = 6); a call woken later than half of it takes the
/// next slot instead (`store::pacing::LATE_LIMIT_US`).
pub const JITTER_ALLOWANCE_US: i64 = 40_000;

impl Gcra {
    /// At most `per_second` slots in any one-second window (`per_second` 0 is read as 1),
    /// one every (1 s + [`JITTER_ALLOWANCE_US`]) ÷ `per_second`, rounded up.
    pub fn per_second(per_second: u32) -> Gcra {
        let per_second = i64::from(per_second.max(1));
        let span = 1_000_000 + JITTER_ALLOWANCE_US;
        Gcra {
            interval_us: (span + per_second - 1) / per_second,
        }
    }

    /// The slot of a caller asking at `now_us` when the stored TAT is `tat_us` (`None`:
    /// never used): the later of the two, and the TAT one interval after it.
    ///
    /// A TAT is never dropped for being far ahead: after a wall clock that went back, callers
    /// wait out the step rather than break the window bound.
    pub fn reserve(&self, tat_us: Option<i64>, now_us: i64) -> Reservation {
        self.reserve_many(tat_us, now_us, 1)
    }

    /// [`Gcra::reserve`] of `count` consecutive slots at once: the first is `slot_us`, the
    /// others follow one interval apart, and the TAT moves past the last.
    pub fn reserve_many(&self, tat_us: Option<i64>, now_us: i64, count: i64) -> Reservation {
        let slot_us = tat_us.map_or(now_us, |tat| tat.max(now_us));
        Reservation {
            slot_us,
            next_tat_us: slot_us.saturating_add(self.interval_us.saturating_mul(count.max(1))),
        }
    }

    /// How many slots one reservation takes: those of [`BLOCK_US`], at least one. At 20
    /// calls a second or fewer that is one slot per reservation; at high rates (a benchmark
    /// lifting the limits) it keeps the database writes of pacing to about 20 a second per
    /// limiter and process.
    pub fn block_len(&self) -> i64 {
        (BLOCK_US / self.interval_us).max(1)
    }
}

/// The span of slots one reservation may take at once.
pub const BLOCK_US: i64 = 50_000;

/// Slots a process has reserved and not used yet: `next_us`, one interval later, … before
/// `end_us` (the TAT its reservation stored). They are its alone, so handing them out keeps
/// the window bound of [`Gcra`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotBlock {
    pub next_us: i64,
    pub end_us: i64,
}

impl SlotBlock {
    /// The reserved slots of `granted`.
    pub fn of(granted: Reservation) -> SlotBlock {
        SlotBlock {
            next_us: granted.slot_us,
            end_us: granted.next_tat_us,
        }
    }

    /// Takes the first slot at or after `now_us` (slots already past are dropped: a call
    /// made late on an old slot could crowd the next second); `None` when none is left.
    pub fn take(&mut self, now_us: i64, interval_us: i64) -> Option<i64> {
        let interval_us = interval_us.max(1);
        if self.next_us < now_us {
            let behind = now_us - self.next_us;
            let skipped = (behind + interval_us - 1) / interval_us;
            self.next_us = self
                .next_us
                .saturating_add(skipped.saturating_mul(interval_us));
        }
        if self.next_us >= self.end_us {
            return None;
        }
        let slot = self.next_us;
        self.next_us = slot.saturating_add(interval_us);
        Some(slot)
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

    /// The largest number of `slots` in any half-open one-second window.
    fn peak_in_one_second(slots: &[i64]) -> usize {
        let mut sorted = slots.to_vec();
        sorted.sort_unstable();
        let mut peak = 0;
        let mut first = 0;
        for (last, slot) in sorted.iter().enumerate() {
            while sorted[first] <= slot - 1_000_000 {
                first += 1;
            }
            peak = peak.max(last - first + 1);
        }
        peak
    }

    /// SPEC §9 pacing: the emission interval is (1 s + the jitter allowance) ÷ N rounded
    /// up, so N intervals never fit in less than that.
    #[test]
    fn the_interval_is_one_nth_of_a_second_and_the_allowance_rounded_up() {
        for (per_second, interval_us) in [
            (0, 1_040_000),
            (1, 1_040_000),
            (3, 346_667),
            (4, 260_000),
            (7, 148_572),
            (1_000_000, 2),
            (u32::MAX, 1),
        ] {
            let gcra = Gcra::per_second(per_second);
            assert_eq!(gcra.interval_us, interval_us, "{per_second}/s");
            assert!(i64::from(per_second.max(1)) * gcra.interval_us >= 1_000_000);
        }
    }

    /// SPEC §9 pacing, the GCRA step: a free limiter grants now, a busy one its TAT, and the
    /// TAT moves one interval past the slot; a TAT in the past is read as "free now".
    #[test]
    fn a_reservation_takes_the_later_of_now_and_the_stored_tat() {
        let gcra = Gcra::per_second(4);
        let check = |tat: Option<i64>, now: i64, slot: i64| {
            assert_eq!(
                gcra.reserve(tat, now),
                Reservation {
                    slot_us: slot,
                    next_tat_us: slot + 260_000
                },
                "tat {tat:?}, now {now}"
            );
        };
        check(None, 5_000_000, 5_000_000);
        check(Some(4_000_000), 5_000_000, 5_000_000);
        check(Some(5_000_000), 5_000_000, 5_000_000);
        check(Some(5_100_000), 5_000_000, 5_100_000);
        check(Some(900_000_000), 5_000_000, 900_000_000);
    }

    /// SPEC §9 pacing at high rates: one reservation takes the slots of 50 ms (one at 20/s
    /// or less), handed out in order; slots already past are dropped, never used late.
    #[test]
    fn a_block_of_slots_is_handed_out_in_order_and_never_late() {
        for (per_second, block_len) in [(4, 1), (20, 1), (100, 4), (1_000_000, 25_000)] {
            assert_eq!(
                Gcra::per_second(per_second).block_len(),
                block_len,
                "{per_second}/s"
            );
        }
        let gcra = Gcra::per_second(100);
        let granted = gcra.reserve_many(Some(1_000_000), 0, 4);
        assert_eq!(
            granted,
            Reservation {
                slot_us: 1_000_000,
                next_tat_us: 1_041_600
            }
        );
        let mut block = SlotBlock::of(granted);
        assert_eq!(block.take(0, gcra.interval_us), Some(1_000_000));
        // 20 ms later the second slot (1,010,400) is past: the third is taken.
        assert_eq!(block.take(1_020_000, gcra.interval_us), Some(1_020_800));
        assert_eq!(block.take(1_020_000, gcra.interval_us), Some(1_031_200));
        assert_eq!(block.take(1_020_000, gcra.interval_us), None);
        let mut stale = SlotBlock::of(gcra.reserve_many(None, 0, 4));
        assert_eq!(stale.take(50_000, gcra.interval_us), None);
    }

    /// SPEC §9: at most N calls in any one-second window, however callers arrive (bursts,
    /// many processes asking at once, gaps) — also where they arrive up to the jitter
    /// allowance late — and under steady demand at least 0.95 × N a second.
    #[test]
    fn no_one_second_window_holds_more_than_n_slots() {
        use rand::{Rng, SeedableRng};
        for per_second in [1, 3, 4, 7, 10, 20] {
            let gcra = Gcra::per_second(per_second);
            let mut random = rand::rngs::StdRng::seed_from_u64(u64::from(per_second));
            let mut tat = None;
            let mut now: i64 = 1_700_000_000_000_000;
            let mut slots = Vec::new();
            for _ in 0..5_000 {
                // Bursts of simultaneous askers, small steps and long gaps.
                now += match random.random_range(0..10) {
                    0..=4 => 0,
                    5..=8 => random.random_range(0..300_000),
                    _ => random.random_range(0..3_000_000),
                };
                let granted = gcra.reserve(tat, now);
                assert!(granted.slot_us >= now);
                tat = Some(granted.next_tat_us);
                slots.push(granted.slot_us);
            }
            let limit = usize::try_from(per_second).expect("small");
            assert_eq!(peak_in_one_second(&slots), limit, "{per_second}/s");
            let arrivals: Vec<i64> = slots
                .iter()
                .map(|slot| slot + random.random_range(0..JITTER_ALLOWANCE_US))
                .collect();
            assert!(peak_in_one_second(&arrivals) <= limit, "{per_second}/s");
        }
        // Steady demand (everyone asks at once): evenly paced, N in each second.
        let gcra = Gcra::per_second(4);
        let mut tat = None;
        let slots: Vec<i64> = (0..40)
            .map(|_| {
                let granted = gcra.reserve(tat, 0);
                tat = Some(granted.next_tat_us);
                granted.slot_us
            })
            .collect();
        assert_eq!(slots[39], 39 * 260_000);
        assert_eq!(peak_in_one_second(&slots), 4);
        let rate = 39.0 / (slots[39] as f64 / 1e6);
        assert!(rate >= 0.95 * 4.0, "{rate}");
    }
}
