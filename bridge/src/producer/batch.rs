//! Completion of a group of records (one Publish, or one BulkPublish) by delivery reports.
//!
//! ```text
//!  publish task                          events task (see `events`)
//!  ────────────                          ──────────────────────────
//!  Batch::new(n)  ─┐
//!  send(rec, Box<Pending{batch,i}>) ───► queue ──► broker ──► delivery report
//!  ...                                                         │ Batch::complete(i, result)
//!  batch.wait().await ◄── Notify (once, when the count hits 0) ─┘
//! ```
//!
//! One shared counter and one `Notify` per batch: no future, channel or task per message.
//! The batch finishes only when every record has a delivery report, so an entry is never
//! reported as delivered before Kafka acknowledged it at the configured `acks`.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::error::Error;

/// The delivery opaque of one record: which batch, which entry.
pub(crate) struct Pending {
    pub(crate) batch: Arc<Batch>,
    pub(crate) index: usize,
}

/// A group of records whose delivery the caller awaits together.
pub(crate) struct Batch {
    remaining: AtomicUsize,
    failures: Mutex<Vec<(usize, Error)>>,
    done: Notify,
}

impl Batch {
    pub(crate) fn new(records: usize) -> Arc<Self> {
        Arc::new(Self { remaining: AtomicUsize::new(records), failures: Mutex::new(Vec::new()), done: Notify::new() })
    }

    /// Records the outcome of entry `index`; wakes the waiter after the last one.
    pub(crate) fn complete(&self, index: usize, outcome: Result<(), Error>) {
        if let Err(error) = outcome {
            self.failures.lock().unwrap_or_else(|e| e.into_inner()).push((index, error));
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }

    /// Waits until every entry has completed, then returns the failed ones by index.
    pub(crate) async fn wait(&self) -> Vec<(usize, Error)> {
        while self.remaining.load(Ordering::Acquire) != 0 {
            self.done.notified().await;
        }
        let mut failures = std::mem::take(&mut *self.failures.lock().unwrap_or_else(|e| e.into_inner()));
        failures.sort_by_key(|(index, _)| *index);
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_every_entry_and_reports_failures_in_order() {
        let batch = Batch::new(3);
        let b = batch.clone();
        let waiter = tokio::spawn(async move { b.wait().await });
        batch.complete(2, Err(Error::InvalidRequest("two".into())));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        batch.complete(0, Ok(()));
        batch.complete(1, Err(Error::InvalidRequest("one".into())));
        let failures = waiter.await.unwrap();
        let indices: Vec<_> = failures.iter().map(|(i, _)| *i).collect();
        assert_eq!(indices, vec![1, 2]);
    }

    #[tokio::test]
    async fn completion_before_wait_is_not_missed() {
        let batch = Batch::new(1);
        batch.complete(0, Ok(()));
        assert!(batch.wait().await.is_empty());
    }
}
