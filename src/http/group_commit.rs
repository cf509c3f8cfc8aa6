//! Group commit for `POST /webhooks/groupware` (SPEC §5, issue 5): several concurrent
//! deliveries share one transaction, so they share one WAL sync.
//!
//! With `synchronous = FULL` (`store::SYNCHRONOUS`) every commit syncs the WAL, and a 202 is
//! sent only after the transaction holding its job has committed. One transaction per
//! request would cap accepted deliveries at the disk's sync rate. Instead a handler, once the
//! delivery is verified and its body valid, hands it to the one
//! [`Committer`] of its server through a bounded channel ([`DeliveryQueue::record`]) and
//! waits for the answer. The committer:
//!
//! * takes the first delivery waiting and whatever else is already queued, up to
//!   [`MAX_BATCH`]. It never waits for company: a lone request is committed at once;
//! * writes them in one `BEGIN IMMEDIATE` transaction, each under its own `SAVEPOINT`: an
//!   item whose writes fail is rolled back to its savepoint, and only its request gets the
//!   error;
//! * looks each delivery id up inside the transaction: an id already in the table, or
//!   written earlier in the same batch, is answered with the first job (200), as a
//!   redelivery is, and writes nothing;
//! * commits once, and only then answers each request. When the transaction cannot begin
//!   or commit, every request of the batch gets an error: nothing was written, so the
//!   sender's retry is right.
//!
//! When the committer is gone (the channel is closed, or it dropped a reply) the handler
//! answers 503; it never answers 202 on its own. At shutdown the server stops gracefully
//! first, so every request in flight gets its answer from the committer, which is still
//! running; then [`Committer::run`]'s stop closes the channel, commits what is still
//! queued, and ends.

use std::future::Future;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::{
    jobs::worker::enqueue_sync_in,
    store::{self, Store, WriteTx, receiver},
};

/// The most deliveries committed in one transaction.
pub const MAX_BATCH: usize = 128;

/// How many deliveries may wait for the committer before handlers wait to hand theirs over.
const QUEUE_CAPACITY: usize = 2 * MAX_BATCH;

/// A delivery that passed verification and validation.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `webhook-id` (the dedup key).
    pub webhook_id: String,
    /// The enabled users named, sorted, without repeats, never empty.
    pub users: Vec<String>,
    pub event_type: String,
    /// Carried into the job's arguments.
    pub request_id: Option<String>,
}

/// What a committed transaction holds for a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A new delivery: its dedup row, sync run and job (202).
    Queued { job_id: String },
    /// A delivery id seen before (in the table or earlier in the batch): the first job, and
    /// nothing written (200).
    Redelivery { job_id: String },
}

/// Why a delivery was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The committer is gone (the server is stopping, or it failed).
    #[error("the webhook committer has stopped")]
    Stopped,
    /// Its writes, or its batch's transaction, failed: nothing of it was committed.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

type Reply = oneshot::Sender<anyhow::Result<Recorded>>;

#[derive(Debug)]
struct Pending {
    delivery: Delivery,
    reply: Reply,
}

/// The handlers' side: hands a delivery to the committer and waits for its commit.
#[derive(Debug, Clone)]
pub struct DeliveryQueue {
    sender: mpsc::Sender<Pending>,
}

impl DeliveryQueue {
    /// Records `delivery`; returns only after the transaction holding it has committed (or
    /// failed).
    pub async fn record(&self, delivery: Delivery) -> Result<Recorded, CommitError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Pending { delivery, reply })
            .await
            .map_err(|_| CommitError::Stopped)?;
        // A dropped reply: the committer ended without answering (nothing says whether the
        // batch committed; a redelivery will tell the sender).
        Ok(answer.await.map_err(|_| CommitError::Stopped)??)
    }
}

/// The task that writes queued deliveries, a batch per transaction.
pub struct Committer {
    receiver: mpsc::Receiver<Pending>,
    store: Store,
}

/// A queue for handlers and the committer that serves it.
pub fn channel(store: Store) -> (DeliveryQueue, Committer) {
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    (DeliveryQueue { sender }, Committer { receiver, store })
}

impl Committer {
    /// Commits batches until `stop` resolves; then refuses new deliveries, commits those
    /// still queued, and returns.
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut stopping = false;
        loop {
            let first = if stopping {
                self.receiver.recv().await
            } else {
                tokio::select! {
                    biased;
                    () = &mut stop => {
                        // Closing refuses new deliveries; those already queued are still
                        // received, and committed, before `recv` gives `None`.
                        stopping = true;
                        self.receiver.close();
                        continue;
                    }
                    first = self.receiver.recv() => first,
                }
            };
            let Some(first) = first else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.receiver.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            self.commit(batch).await;
        }
    }

    /// Writes and commits one batch, then answers each of its requests.
    async fn commit(&self, batch: Vec<Pending>) {
        let (deliveries, replies): (Vec<Delivery>, Vec<Reply>) = batch
            .into_iter()
            .map(|pending| (pending.delivery, pending.reply))
            .unzip();
        match write_batch(&self.store, &deliveries, Utc::now()).await {
            Ok(outcomes) => {
                tracing::debug!(deliveries = deliveries.len(), "webhook batch committed");
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A handler that is gone (its client hung up) needs no answer.
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                // Each request gets the chain as text; a storage fault stays one (a 503).
                let message = format!("{error:#}");
                let storage_fault = store::is_storage_fault(&error);
                for reply in replies {
                    let copy = if storage_fault {
                        anyhow::Error::new(store::StorageFault(message.clone()))
                    } else {
                        anyhow::anyhow!("{message}")
                    };
                    let _ = reply.send(Err(copy));
                }
            }
        }
    }
}

/// Writes `deliveries` in one transaction, each under its own savepoint, and commits. `Ok`
/// holds one outcome per delivery, in order (an item's own failure is its `Err`, and none of
/// its writes is committed); `Err` means nothing was committed.
async fn write_batch(
    store: &Store,
    deliveries: &[Delivery],
    received_at: DateTime<Utc>,
) -> anyhow::Result<Vec<anyhow::Result<Recorded>>> {
    let mut tx = store.begin_write().await?;
    let mut outcomes = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        tx.raw("SAVEPOINT webhook_delivery")
            .await
            .context("cannot open a savepoint for a webhook delivery")?;
        let outcome = write_delivery(&mut tx, delivery, received_at)
            .await
            .with_context(|| format!("cannot record webhook delivery {}", delivery.webhook_id));
        if outcome.is_err() {
            // Fails when SQLite has rolled the whole transaction back: then the batch fails.
            tx.raw("ROLLBACK TO SAVEPOINT webhook_delivery")
                .await
                .context("cannot roll back a failed webhook delivery")?;
        }
        tx.raw("RELEASE SAVEPOINT webhook_delivery")
            .await
            .context("cannot release the savepoint of a webhook delivery")?;
        outcomes.push(outcome);
    }
    tx.commit().await.with_context(|| {
        format!(
            "cannot commit a batch of {} webhook deliveries",
            deliveries.len()
        )
    })?;
    Ok(outcomes)
}

/// One delivery's dedup row, sync run and job; or the first job of its id.
async fn write_delivery(
    tx: &mut WriteTx,
    delivery: &Delivery,
    received_at: DateTime<Utc>,
) -> anyhow::Result<Recorded> {
    if let Some(job_id) = receiver::delivery_job(tx, &delivery.webhook_id).await? {
        return Ok(Recorded::Redelivery { job_id });
    }
    let job_id = enqueue_sync_in(
        tx,
        "webhook",
        Some(delivery.users.clone()),
        delivery.request_id.clone(),
        None,
    )
    .await?;
    receiver::insert_delivery(
        tx,
        &delivery.webhook_id,
        &job_id,
        &delivery.event_type,
        received_at,
    )
    .await?;
    Ok(Recorded::Queued { job_id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db;

    fn delivery(webhook_id: &str) -> Delivery {
        Delivery {
            webhook_id: webhook_id.to_owned(),
            users: vec!["10002".to_owned()],
            event_type: "schedule.updated".to_owned(),
            request_id: Some(format!("request-{webhook_id}")),
        }
    }

    async fn count(store: &Store, sql: &'static str) -> i64 {
        db::query(sql).scalar(store.db()).await.expect("count")
    }

    /// Issue 5 group commit: one delivery whose writes fail is rolled back to its savepoint
    /// and only it gets the error; the others of the batch commit, and an id repeated in the
    /// batch is answered with the first job (SPEC §5 redelivery).
    #[tokio::test]
    async fn a_failing_delivery_fails_alone_in_its_batch() {
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", folder.path().join("batch.db").display());
        let store = Store::connect(&url).await.expect("database opens");
        // The dedup row is written after the job: a failure there must take the job back.
        // A SQLite trigger: this test runs on SQLite only.
        db::query(
            "CREATE TRIGGER poisoned_delivery BEFORE INSERT ON webhook_deliveries \
             WHEN NEW.webhook_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
        )
        .execute(store.db())
        .await
        .expect("trigger");
        let batch = [
            delivery("first"),
            delivery("poison"),
            delivery("first"),
            delivery("last"),
        ];
        let outcomes = write_batch(&store, &batch, Utc::now())
            .await
            .expect("the batch commits");
        assert_eq!(outcomes.len(), 4);
        let Ok(Recorded::Queued { job_id: first }) = &outcomes[0] else {
            panic!("first: {:?}", outcomes[0]);
        };
        let poisoned = outcomes[1]
            .as_ref()
            .expect_err("the poisoned delivery fails");
        assert!(format!("{poisoned:#}").contains("poisoned"), "{poisoned:#}");
        assert_eq!(
            outcomes[2].as_ref().ok(),
            Some(&Recorded::Redelivery {
                job_id: first.clone()
            })
        );
        let Ok(Recorded::Queued { job_id: last }) = &outcomes[3] else {
            panic!("last: {:?}", outcomes[3]);
        };
        assert_ne!(first, last);

        let jobs: Vec<String> =
            db::query("SELECT id FROM Jobs WHERE job_type = 'jmz.sync_window' ORDER BY id")
                .scalars(store.db())
                .await
                .expect("jobs");
        let mut expected = vec![first.clone(), last.clone()];
        expected.sort();
        assert_eq!(
            jobs, expected,
            "the poisoned delivery's job was rolled back"
        );
        assert_eq!(count(&store, "SELECT count(*) FROM sync_runs").await, 2);
        let deliveries: Vec<(String, String)> =
            db::query("SELECT webhook_id, job_id FROM webhook_deliveries ORDER BY webhook_id")
                .fetch_all(store.db())
                .await
                .expect("deliveries");
        assert_eq!(
            deliveries,
            vec![
                ("first".to_owned(), first.clone()),
                ("last".to_owned(), last.clone())
            ]
        );
        store.close().await;
    }

    /// Issue 5 group commit: a stopped committer answers every queued request after its
    /// commit, and the queue refuses what comes later (the handler's 503).
    #[tokio::test]
    async fn stopping_commits_what_is_queued_and_refuses_the_rest() {
        let folder = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", folder.path().join("stop.db").display());
        let store = Store::connect(&url).await.expect("database opens");
        let (queue, committer) = channel(store.clone());
        let waiting: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|id| {
                let queue = queue.clone();
                tokio::spawn(async move { queue.record(delivery(id)).await })
            })
            .collect();
        // Let the three requests reach the queue before the committer runs at all.
        while queue.sender.capacity() > QUEUE_CAPACITY - 3 {
            tokio::task::yield_now().await;
        }
        committer.run(async {}).await;
        for request in waiting {
            let recorded = request.await.expect("joins").expect("recorded");
            assert!(matches!(recorded, Recorded::Queued { .. }), "{recorded:?}");
        }
        assert_eq!(
            count(&store, "SELECT count(*) FROM webhook_deliveries").await,
            3
        );
        assert!(matches!(
            queue.record(delivery("late")).await,
            Err(CommitError::Stopped)
        ));
        store.close().await;
    }
}
