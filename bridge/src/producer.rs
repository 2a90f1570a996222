//! The publish path: Dapr Publish/BulkPublish → librdkafka's batching producer → Kafka.
//!
//! ```text
//!  Publish / BulkPublish (n entries)
//!     │ record_parts(): key, partition, headers          (bad metadata → that entry fails)
//!     ▼
//!  enqueue each record ──► librdkafka queue ──► batches per partition (linger, batch.size,
//!     │  QueueFull? wait for room                         compression) ──► broker, acks
//!     │  (Notify from delivery reports), never spin                    │
//!     ▼                                                                 ▼
//!  Batch::wait() ◄───────────────────────── delivery report per record (poll thread)
//!     │
//!     ▼  Ok / failed_entries: exactly the records Kafka did not take, with the reason
//! ```
//!
//! All entries of a bulk are handed to librdkafka before waiting, so they share batches and
//! requests; many Publish calls in flight share them too. A record counts as published only
//! when its delivery report says Kafka took it at the configured `acks`; with idempotence on
//! (the default) librdkafka's retries neither duplicate nor reorder it.

mod batch;
mod context;
pub mod record;

use std::collections::HashMap;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use regex::Regex;
use tokio::time::Instant;

use self::batch::{Batch, Pending};
use self::context::DeliveryContext;
use crate::config::ComponentConfig;
use crate::error::{Error, Result};
use crate::telemetry::metrics;

/// One message to publish, as daprd describes it.
pub struct Outgoing<'a> {
    /// Record value (a CloudEvent, or raw bytes).
    pub payload: &'a Bytes,
    /// Entry metadata (wins over `request_metadata`).
    pub metadata: &'a HashMap<String, String>,
    /// Content type, sent as a `content-type` header when non-empty.
    pub content_type: &'a str,
}

/// The Kafka producer of one component instance.
pub struct Publisher {
    instance: String,
    producer: ThreadedProducer<DeliveryContext>,
    exclude_headers: Option<Regex>,
    message_timeout: Duration,
}

impl Publisher {
    /// Creates the producer and checks, within `initTimeout`, that the cluster answers.
    pub async fn connect(config: &ComponentConfig, bootstrap: &str, instance: &str) -> Result<Arc<Self>> {
        let client_config = config.producer_config(bootstrap);
        let producer = ThreadedProducer::from_config_and_context(&client_config, DeliveryContext::default()).map_err(
            |e| match e {
                KafkaError::ClientConfig(_, description, property, value) => {
                    let secret = ["password", "secret", "key", "token"].iter().any(|s| property.contains(s));
                    let shown = if secret { "***" } else { value.as_str() };
                    Error::InvalidMetadata {
                        key: format!("kafka.{property}"),
                        reason: format!("= `{shown}` rejected by librdkafka: {description}"),
                    }
                }
                other => Error::kafka("creating the producer", other),
            },
        )?;
        let publisher = Arc::new(Self {
            instance: crate::instances::display_name(instance).to_owned(),
            producer,
            exclude_headers: config.exclude_header_regex.clone(),
            message_timeout: config.producer.message_timeout,
        });
        let probe = publisher.clone();
        let timeout = config.init_timeout;
        let answered =
            tokio::task::spawn_blocking(move || probe.producer.client().fetch_metadata(None, timeout).map(|_| ()))
                .await
                .expect("metadata probe panicked");
        if let Err(error) = answered {
            let last = publisher.producer.context().last_error.lock().unwrap_or_else(|e| e.into_inner()).take();
            let auth = matches!(
                last.as_ref().and_then(|(code, _)| *code),
                Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
            );
            let reason = match last {
                Some((_, reason)) => format!("no answer within {timeout:?} ({error}; last error: {reason})"),
                None => format!("no answer within {timeout:?} ({error})"),
            };
            // Nothing was sent yet, so there is nothing to flush; close only releases the client.
            let _ = publisher.close(Duration::ZERO).await;
            return Err(Error::ClusterUnavailable { brokers: bootstrap.to_owned(), reason, auth });
        }
        Ok(publisher)
    }

    /// Publishes `messages` to `topic` and waits for every delivery report. Returns the
    /// entries Kafka did not take, by index, with the reason.
    pub async fn publish(
        &self,
        topic: &str,
        request_metadata: &HashMap<String, String>,
        messages: impl ExactSizeIterator<Item = Outgoing<'_>>,
    ) -> Vec<(usize, Error)> {
        let count = messages.len();
        let batch = Batch::new(count);
        let started = Instant::now();
        let deadline = started + self.message_timeout;
        for (index, message) in messages.enumerate() {
            let parts = match record::record_parts(
                [message.metadata, request_metadata],
                message.content_type,
                self.exclude_headers.as_ref(),
            ) {
                Ok(parts) => parts,
                Err(error) => {
                    batch.complete(index, Err(error));
                    continue;
                }
            };
            let mut record = BaseRecord::with_opaque_to(topic, Box::new(Pending { batch: batch.clone(), index }))
                .payload(message.payload.as_ref());
            if let Some(key) = &parts.key {
                record = record.key(key.as_bytes());
            }
            if let Some(partition) = parts.partition {
                record = record.partition(partition);
            }
            if let Some(headers) = parts.headers {
                record = record.headers(headers);
            }
            if let Err(error) = self.enqueue(topic, record, deadline).await {
                batch.complete(index, Err(error));
            }
        }
        let failures = batch.wait().await;
        metrics::published(&self.instance, topic, count - failures.len(), failures.len(), started.elapsed());
        failures
    }

    /// Hands one record to librdkafka, waiting for room while its queue is full.
    async fn enqueue(
        &self,
        topic: &str,
        mut record: BaseRecord<'_, [u8], [u8], Box<Pending>>,
        deadline: Instant,
    ) -> Result<()> {
        loop {
            // Register for the "room" signal before trying, so a delivery report that
            // lands between a QueueFull and the wait is not missed.
            let mut room = pin!(self.producer.context().room.notified());
            room.as_mut().enable();
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    if Instant::now() >= deadline {
                        return Err(Error::QueueFull(format!("topic `{topic}`")));
                    }
                    // A short ceiling on the wait covers room made by purges, which send no report.
                    let _ =
                        tokio::time::timeout_at(deadline.min(Instant::now() + Duration::from_millis(100)), room).await;
                }
                Err((error, _)) => return Err(Error::kafka(format!("topic `{topic}`"), error)),
            }
        }
    }

    /// Messages handed to librdkafka and not yet reported.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Waits up to `timeout` for every queued record's delivery report, then closes the
    /// producer. Runs librdkafka's blocking flush off the async runtime.
    pub async fn close(self: Arc<Self>, timeout: Duration) -> Result<()> {
        tokio::task::spawn_blocking(move || {
            let flushed = self.producer.flush(timeout);
            drop(self);
            flushed
        })
        .await
        .expect("producer flush panicked")
        .map_err(|e| Error::kafka("flushing the producer", e))
    }
}
