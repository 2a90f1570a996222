//! Publishing a message whose retries ran out to the dead-letter topic.
//!
//! The record keeps the original key, payload and headers and gains headers that say where it
//! came from and why it failed. The original message counts as handled (its offset can be
//! committed) only after Kafka acknowledged the dead-letter record; if that publish fails, the
//! message goes back to redelivery, so nothing is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;

use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;

use super::Event;
use super::message::Fetched;
use crate::producer::record::PARTITION_KEY;
use crate::producer::{Outgoing, Publisher};

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
    pub(crate) publisher: Arc<Publisher>,
    pub(crate) runtime: Handle,
    pub(crate) tasks: TaskTracker,
    pub(crate) events: mpsc::Sender<Event>,
}

impl DeadLetter {
    /// Publishes `message` in the background; the outcome comes back as an [`Event`].
    pub(crate) fn send(&self, message: Fetched, epoch: u64, error: String) {
        let mut metadata: HashMap<String, String> =
            message.headers.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect();
        if let Some(key) = &message.key {
            metadata.insert(PARTITION_KEY.into(), String::from_utf8_lossy(key).into_owned());
        }
        metadata.insert(ERROR_HEADER.into(), error);
        metadata.insert(TOPIC_HEADER.into(), message.response.topic_name.clone());
        metadata.insert(PARTITION_HEADER.into(), message.partition.to_string());
        metadata.insert(OFFSET_HEADER.into(), message.offset.to_string());
        let publisher = self.publisher.clone();
        let topic = self.topic.clone();
        let events = self.events.clone();
        let (partition, offset) = (message.partition, message.offset);
        self.tasks.spawn_on(
            async move {
                let outgoing = Outgoing { payload: &message.response.data, metadata: &metadata, content_type: "" };
                let failures = publisher.publish(&topic, &HashMap::new(), std::iter::once(outgoing)).await;
                let outcome = match failures.into_iter().next() {
                    None => Ok(()),
                    Some((_, error)) => Err(error.to_string()),
                };
                let _ = events.send(Event::DeadLettered { partition, offset, epoch, outcome });
            },
            &self.runtime,
        );
    }
}
