//! Pacing per account (SPEC §9): `zoom.create_per_second`, `zoom.requests_per_second` and
//! `groupware.requests_per_second` bound the sum over every process sharing the database.
//!
//! Each limiter is one `rate_limiters` row named after its account (`zoom.create:<account
//! id>`, `zoom.requests:<account id>`, `groupware:<base URL>`) holding its GCRA theoretical
//! arrival time ([`crate::limits::Gcra`]). A caller reserves its slot in one short write
//! transaction (the clock is read once the write lock is held, so no other process can
//! reserve in between) and sleeps until that slot outside any transaction. A [`Pacer`] first
//! waits for its process's governor limiter, which spaces the process's own callers, then
//! asks the database.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use governor::DefaultDirectRateLimiter;

use super::{Store, db};
use crate::limits::{Gcra, Reservation, SlotBlock, evenly_paced};

/// The database could not give a slot: the call must not go out unpaced. The caller fails
/// it as retryable (nothing was sent).
#[derive(Debug, thiserror::Error)]
#[error("cannot pace the call through the database: {0:#}")]
pub struct PacingError(anyhow::Error);

/// One limiter kept in the database, shared by every process that opens it.
#[derive(Debug, Clone)]
pub struct SharedLimiter {
    store: Store,
    name: String,
    gcra: Gcra,
    /// The slots this process reserved and has not handed out (more than one only at high
    /// rates: [`Gcra::block_len`]).
    held: Arc<tokio::sync::Mutex<SlotBlock>>,
}

impl SharedLimiter {
    /// The limiter `name` (its row is created by the first reservation), at most `per_second`
    /// slots in any one-second window.
    pub fn new(store: Store, name: String, per_second: u32) -> SharedLimiter {
        SharedLimiter {
            store,
            name,
            gcra: Gcra::per_second(per_second),
            held: Arc::default(),
        }
    }

    /// The limiter's row name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reserves the next `count` slots in one write transaction.
    async fn reserve(&self, count: i64) -> anyhow::Result<Reservation> {
        let mut tx = self.store.begin_write().await?;
        // Read under the write lock: every reservation of every process is ordered by it.
        let now_us = now_us()?;
        let tat_us: Option<i64> = db::query("SELECT tat_us FROM rate_limiters WHERE name = $1")
            .bind(&self.name)
            .scalar_optional(&mut *tx)
            .await
            .with_context(|| format!("cannot read the rate limiter {}", self.name))?;
        let granted = self.gcra.reserve_many(tat_us, now_us, count);
        db::query(
            "INSERT INTO rate_limiters (name, tat_us) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET tat_us = excluded.tat_us",
        )
        .bind(&self.name)
        .bind(granted.next_tat_us)
        .execute(&mut *tx)
        .await
        .with_context(|| format!("cannot advance the rate limiter {}", self.name))?;
        tx.commit()
            .await
            .with_context(|| format!("cannot commit the rate limiter {}", self.name))?;
        Ok(granted)
    }

    /// Takes this process's next slot (reserving more in the database when none is held);
    /// returns how long to wait for it.
    pub async fn next_slot(&self) -> anyhow::Result<Duration> {
        let slot_us = self.take_slot().await?;
        let wait_us = u64::try_from(slot_us - now_us()?).unwrap_or(0);
        Ok(Duration::from_micros(wait_us))
    }

    /// Takes this process's next slot (microseconds since the Unix epoch).
    async fn take_slot(&self) -> anyhow::Result<i64> {
        let mut held = self.held.lock().await;
        let slot_us = match held.take(now_us()?, self.gcra.interval_us) {
            Some(slot_us) => slot_us,
            None => {
                let granted = self.reserve(self.gcra.block_len()).await?;
                *held = SlotBlock::of(granted);
                // The first slot is ours even if the reservation took a moment.
                held.take(granted.slot_us, self.gcra.interval_us)
                    .context("a reservation gave no slot")?
            }
        };
        drop(held);
        Ok(slot_us)
    }

    /// Takes a slot and sleeps until it (no transaction is held while sleeping). A caller
    /// woken later than [`LATE_LIMIT_US`] after its slot (a loaded machine) lets it go and
    /// takes the next one, up to [`LATE_RETRIES`] times: sent that late, it could reach the
    /// service close enough to the calls of the following slots to make N + 1 in one second.
    pub async fn until_ready(&self) -> anyhow::Result<()> {
        for _ in 0..=LATE_RETRIES {
            let slot_us = self.take_slot().await?;
            let wait_us = u64::try_from(slot_us - now_us()?).unwrap_or(0);
            if wait_us > 0 {
                tokio::time::sleep(Duration::from_micros(wait_us)).await;
            }
            let late_us = now_us()? - slot_us;
            if late_us <= LATE_LIMIT_US {
                return Ok(());
            }
            tracing::debug!(limiter = %self.name, late_ms = late_us / 1000, "woken too late for a paced slot; taking the next one");
        }
        // Every slot missed (an overloaded machine): go rather than starve; the allowance
        // left for the network still covers this one's lateness up to the bound.
        Ok(())
    }
}

/// How late after its slot a paced call may still start: half of
/// [`crate::limits::JITTER_ALLOWANCE_US`], the other half left for the way to the service.
pub const LATE_LIMIT_US: i64 = crate::limits::JITTER_ALLOWANCE_US / 2;

/// How many slots a call woken too late lets go before it starts anyway.
const LATE_RETRIES: usize = 3;

/// Microseconds since the Unix epoch.
fn now_us() -> anyhow::Result<i64> {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    i64::try_from(since_epoch.as_micros()).context("the system clock is out of range")
}

/// What a client awaits before each call: its process's governor limiter, then (when the
/// process has a database) the account's [`SharedLimiter`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pacer {
    local: Arc<DefaultDirectRateLimiter>,
    shared: Option<SharedLimiter>,
}

impl Pacer {
    /// Per process only: `per_second` for this process alone.
    pub fn local(per_second: u32) -> Pacer {
        Pacer {
            local: evenly_paced(per_second),
            shared: None,
        }
    }

    /// `per_second` for the sum over every process sharing `store`, under the name `name`.
    pub fn shared(store: &Store, name: String, per_second: u32) -> Pacer {
        Pacer {
            local: evenly_paced(per_second),
            shared: Some(SharedLimiter::new(store.clone(), name, per_second)),
        }
    }

    /// Waits until this call may start; a database that cannot give a slot is an error,
    /// never an unpaced call.
    pub async fn until_ready(&self) -> Result<(), PacingError> {
        self.local.until_ready().await;
        if let Some(shared) = &self.shared {
            shared.until_ready().await.map_err(PacingError)?;
        }
        Ok(())
    }
}

/// The three pacers of a process, each named after the account it paces.
#[derive(Debug, Clone)]
pub struct Pacers {
    /// Zoom Medium category: meeting creates (`zoom.create_per_second`).
    pub zoom_create: Pacer,
    /// Zoom Light category: every other Zoom call (`zoom.requests_per_second`).
    pub zoom_light: Pacer,
    /// J-MOTTO: every call (`groupware.requests_per_second`).
    pub groupware: Pacer,
}

impl Pacers {
    /// The pacers of the accounts `settings` names, kept in `store`.
    pub fn new(store: &Store, settings: &crate::config::Settings) -> Pacers {
        let zoom = &settings.zoom;
        let groupware = &settings.groupware;
        Pacers {
            zoom_create: Pacer::shared(
                store,
                format!("zoom.create:{}", zoom.account_id),
                zoom.create_per_second,
            ),
            zoom_light: Pacer::shared(
                store,
                format!("zoom.requests:{}", zoom.account_id),
                zoom.requests_per_second,
            ),
            groupware: Pacer::shared(
                store,
                format!("groupware:{}", groupware.base_url),
                groupware.requests_per_second,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(folder: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}", folder.path().join("pacing.db").display());
        Store::connect(&url).await.expect("database opens")
    }

    /// SPEC §9 pacing: two handles on one database (two processes) share one limiter: the
    /// slots they are given interleave one interval apart, and another account's limiter is
    /// not slowed by them.
    #[tokio::test]
    async fn handles_on_one_database_share_the_limiter_of_their_account() {
        let folder = tempfile::tempdir().expect("temp dir");
        let (first, second) = (store(&folder).await, store(&folder).await);
        let a = SharedLimiter::new(first, "zoom.create:A".to_owned(), 4);
        let b = SharedLimiter::new(second.clone(), "zoom.create:A".to_owned(), 4);
        let other = SharedLimiter::new(second, "zoom.create:B".to_owned(), 4);
        let mut waits = Vec::new();
        for _ in 0..4 {
            waits.push(a.next_slot().await.expect("slot"));
            waits.push(b.next_slot().await.expect("slot"));
        }
        // The eighth slot is seven intervals (7 × 260 ms) after the first, less the time the
        // loop took.
        let last = waits.last().copied().unwrap_or_default();
        assert!(last > Duration::from_millis(1_600), "{waits:?}");
        assert!(last <= Duration::from_millis(1_820), "{waits:?}");
        assert!(other.next_slot().await.expect("slot") < Duration::from_millis(50));
    }

    /// A database that cannot be written gives no slot: an error, not an unpaced call.
    #[tokio::test]
    async fn a_database_fault_is_an_error_not_a_free_pass() {
        let folder = tempfile::tempdir().expect("temp dir");
        let store = store(&folder).await;
        // 20/s: one slot per reservation, so each call asks the database.
        let pacer = Pacer::shared(&store, "groupware:x".to_owned(), 20);
        pacer.until_ready().await.expect("paced");
        store.close().await;
        assert!(pacer.until_ready().await.is_err());
    }
}
