//! The producer's librdkafka context: delivery reports, errors and logs.
//!
//! Delivery reports and errors run on the async runtime, from the task that serves the
//! producer's events (see `events`), or inside a flush. The delivery callback completes
//! the record's [`Batch`](super::batch::Batch) entry; the events task then signals that the
//! queue has room ([`DeliveryContext::room_made`]), which is what a Publish blocked on a full
//! queue waits for.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use tokio::sync::Notify;

use super::batch::Pending;
use crate::error::Error;

/// The context shared by the producer and the task that serves its events.
#[derive(Default)]
pub(crate) struct DeliveryContext {
    /// Signalled after a delivery report while a publish waits for room in librdkafka's
    /// full queue.
    pub(crate) room: Arc<Notify>,
    /// Publishes waiting for `room` (the delivery callback skips the signal without them).
    waiting: AtomicUsize,
    /// The last client-level error librdkafka reported (connection refused, auth failed).
    pub(crate) last_error: Mutex<Option<(Option<RDKafkaErrorCode>, String)>>,
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "librdkafka producer error");
        crate::telemetry::metrics::kafka_error("producer");
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((error.rdkafka_error_code(), reason.to_owned()));
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((error, message)) => Err(Error::kafka(format!("topic `{}`", message.topic()), error.clone())),
        };
        pending.batch.complete(pending.index, outcome);
    }
}

impl DeliveryContext {
    /// Signals publishes waiting for room. Called once librdkafka has destroyed the served
    /// events: it counts a record out of its queue only then, after every delivery callback
    /// of the event has run, so a signal from the callback could wake a publish whose retry
    /// still finds the queue full.
    pub(crate) fn room_made(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Counts a publish as waiting for `room` until the guard drops. Take it before the
    /// `Notified` is enabled and the send is tried again.
    pub(crate) fn waiting(&self) -> WaitingForRoom<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        WaitingForRoom(&self.waiting)
    }
}

/// A publish waiting for room in the producer queue.
pub(crate) struct WaitingForRoom<'a>(&'a AtomicUsize);

impl Drop for WaitingForRoom<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
