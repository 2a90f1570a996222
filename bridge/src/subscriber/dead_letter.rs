//! Publishing a message whose retries ran out to the dead-letter topic.
//!
//! The record keeps the original key, payload and headers and gains headers that say where it
//! came from and why it failed. The original message counts as handled (its offset can be
//! committed) only after Kafka acknowledged the dead-letter record; if that publish fails, the
//! message goes back to redelivery, so nothing is dropped.

use std::sync::{Arc, Mutex};

use rdkafka::message::{Header, OwnedHeaders};
use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;

use super::DeadLettered;
use super::message::Fetched;
use super::wakeup::Wakeup;
use crate::producer::{Publisher, RawRecord};

/// Header with the error daprd reported for the last attempt.
pub const ERROR_HEADER: &str = "dlq-error";
/// Header with the original topic.
pub const TOPIC_HEADER: &str = "dlq-original-topic";
/// Header with the original partition.
pub const PARTITION_HEADER: &str = "dlq-original-partition";
/// Header with the original offset.
pub const OFFSET_HEADER: &str = "dlq-original-offset";

/// Where exhausted messages go.
pub(crate) struct DeadLetter {
    pub(crate) topic: String,
    /// The topic the stream reads (the `dlq-original-topic` header).
    pub(crate) source: String,
    pub(crate) publisher: Arc<Publisher>,
    pub(crate) runtime: Handle,
    pub(crate) tasks: TaskTracker,
    /// Where outcomes go, for the stream thread, and how to wake it.
    pub(crate) outcomes: Arc<Mutex<Vec<DeadLettered>>>,
    pub(crate) wakeup: Arc<Wakeup>,
}

impl DeadLetter {
    /// Publishes `message` in the background; the outcome comes back as an [`Event`].
    ///
    /// The record is built from raw parts: key and header bytes are copied exactly, and no
    /// header is read as a publish control key (`partitionKey`, `partitionNumber`, `__key`),
    /// so a dead-letter record is the original plus the `dlq-*` headers, nothing else.
    pub(crate) fn send(&self, message: Fetched, epoch: u64, error: String) {
        let publisher = self.publisher.clone();
        let topic = self.topic.clone();
        let source = self.source.clone();
        let (outcomes, wakeup) = (self.outcomes.clone(), self.wakeup.clone());
        let (partition, offset) = (message.partition, message.offset);
        self.tasks.spawn_on(
            async move {
                let mut headers = OwnedHeaders::new_with_capacity(message.headers.len() + 4);
                for (name, value) in &message.headers {
                    headers = headers.insert(Header { key: name, value: Some(value) });
                }
                let original_partition = partition.to_string();
                let original_offset = offset.to_string();
                for (name, value) in [
                    (ERROR_HEADER, error.as_str()),
                    (TOPIC_HEADER, source.as_str()),
                    (PARTITION_HEADER, original_partition.as_str()),
                    (OFFSET_HEADER, original_offset.as_str()),
                ] {
                    headers = headers.insert(Header { key: name, value: Some(value) });
                }
                let record = RawRecord {
                    payload: message.value(),
                    key: message.key.as_deref(),
                    partition: None,
                    headers: Some(headers),
                };
                let failures = publisher.publish_raw(&topic, vec![record]).await;
                let outcome = match failures.into_iter().next() {
                    None => Ok(()),
                    Some((_, error)) => Err(error.to_string()),
                };
                outcomes.lock().unwrap_or_else(|e| e.into_inner()).push(DeadLettered {
                    partition,
                    offset,
                    epoch,
                    outcome,
                });
                wakeup.wake();
            },
            &self.runtime,
        );
    }
}
