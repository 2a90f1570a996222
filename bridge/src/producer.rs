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
//!  Batch::wait() ◄───────────────────────── delivery report per record (on the runtime,
//!     │                                                                   see `events`)
//!     │
//!     ▼  Ok / failed_entries: exactly the records Kafka did not take, with the reason
//! ```
//!
//! All entries of a bulk are handed to librdkafka before waiting, so they share batches and
//! requests; many Publish calls in flight share them too. A record counts as published only
//! when its delivery report says Kafka took it at the configured `acks`; with idempotence on
//! (the default) librdkafka's retries neither duplicate nor reorder it.
//!
//! An idempotent producer can hit a *fatal* error (librdkafka gives up on its sequence state,
//! e.g. a broker answered the head-of-line request with `OUT_OF_ORDER_SEQUENCE_NUMBER`).
//! Every record it holds then fails, and so would every later one: the publisher builds a
//! fresh producer (a new producer id) the moment it sees one, so only the records that were
//! in flight at that moment fail, and are reported as failed, never as delivered.

mod batch;
mod context;
mod events;
pub mod record;

use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::ClientConfig;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use regex::Regex;
use tokio::time::Instant;

use self::batch::{Batch, Pending};
use self::context::DeliveryContext;
use self::events::EventProducer;
use crate::config::{ComponentConfig, TopicSpec};
use crate::error::{Error, Result};
use crate::telemetry::metrics;
use crate::topic::admin::TopicAdmin;

/// One message to publish, as daprd describes it.
pub struct Outgoing<'a> {
    /// Record value (a CloudEvent, or raw bytes).
    pub payload: &'a Bytes,
    /// Entry metadata (wins over `request_metadata`).
    pub metadata: &'a HashMap<String, String>,
    /// Content type, sent as a `content-type` header when non-empty.
    pub content_type: &'a str,
}

type KafkaProducer = EventProducer;

/// A record as librdkafka takes it: raw key and headers (dead-letter records keep the
/// original's bytes exactly).
pub(crate) struct RawRecord<'a> {
    pub(crate) payload: &'a [u8],
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) partition: Option<i32>,
    pub(crate) headers: Option<OwnedHeaders>,
}

/// The Kafka producer of one component instance.
pub struct Publisher {
    instance: String,
    client_config: ClientConfig,
    producer: RwLock<Arc<KafkaProducer>>,
    /// When the producer was last replaced after a fatal error, and how long until the next
    /// replacement may happen.
    rebuilds: std::sync::Mutex<RebuildPacing>,
    exclude_headers: Option<Regex>,
    message_timeout: Duration,
    /// How long a record waits for a missing topic (`unknownTopicTimeout`).
    unknown_topic_timeout: Duration,
    /// Creates missing topics, with `autoCreateTopics`.
    admin: Option<TopicAdmin>,
    metrics: metrics::PublishMetrics,
}

/// Creates a producer whose delivery reports are served on the current runtime.
fn create_producer(client_config: &ClientConfig, redact: &crate::config::Redactor) -> Result<Arc<KafkaProducer>> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|e| Error::Startup(format!("creating the producer outside the async runtime: {e}")))?;
    let producer =
        BaseProducer::from_config_and_context(client_config, DeliveryContext::default()).map_err(|e| match e {
            KafkaError::ClientConfig(_, description, property, value) => Error::InvalidMetadata {
                key: format!("kafka.{property}"),
                reason: format!(
                    "= `{}` rejected by librdkafka: {}",
                    redact.value_of(&property, &value),
                    redact.text(&description)
                ),
            },
            other => Error::kafka("creating the producer", other),
        })?;
    Ok(EventProducer::start(producer, &runtime))
}

impl Publisher {
    /// Creates the producer and checks, within `initTimeout`, that the cluster answers.
    pub async fn connect(config: &ComponentConfig, bootstrap: &str, instance: &str) -> Result<Arc<Self>> {
        let client_config = config.producer_config(bootstrap);
        let producer = create_producer(&client_config, &config.redactor())?;
        let display = crate::instances::display_name(instance);
        let admin = config
            .auto_create_topics
            .map(|spec| TopicAdmin::new(&client_config, spec, config.producer.unknown_topic_timeout, display))
            .transpose()?;
        let publisher = Arc::new(Self {
            instance: display.to_owned(),
            client_config,
            producer: RwLock::new(producer),
            rebuilds: std::sync::Mutex::new(RebuildPacing::default()),
            exclude_headers: config.exclude_header_regex.clone(),
            message_timeout: config.producer.message_timeout,
            unknown_topic_timeout: config.producer.unknown_topic_timeout,
            admin,
            metrics: metrics::PublishMetrics::new(display),
        });
        let timeout = config.init_timeout;
        if let Err(error) = publisher.probe(timeout).await {
            let last = publisher.current().context().last_error.lock().unwrap_or_else(|e| e.into_inner()).take();
            let auth = matches!(
                last.as_ref().and_then(|(code, _)| *code),
                Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
            );
            let redact = config.redactor();
            let reason = match last {
                Some((_, reason)) => {
                    format!("no answer within {timeout:?} ({error}; last error: {})", redact.text(&reason))
                }
                None => format!("no answer within {timeout:?} ({error})"),
            };
            // Nothing was sent yet, so there is nothing to flush; close only releases the client.
            let _ = publisher.close(Duration::ZERO).await;
            return Err(Error::ClusterUnavailable { brokers: bootstrap.to_owned(), reason, auth });
        }
        Ok(publisher)
    }

    /// The producer in use now.
    fn current(&self) -> Arc<KafkaProducer> {
        self.producer.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks the cluster for metadata within `timeout` (off the async runtime): whether Kafka
    /// answers this producer now.
    pub async fn probe(&self, timeout: Duration) -> Result<()> {
        let producer = self.current();
        tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout).map(|_| ()))
            .await
            .map_err(|e| Error::Startup(format!("metadata probe: {e}")))?
            .map_err(|e| Error::kafka("asking the cluster for metadata", e))
    }

    /// Publishes `messages` to `topic` and waits for every delivery report. Returns the
    /// entries Kafka did not take, by index, with the reason.
    pub async fn publish(
        &self,
        topic: &str,
        request_metadata: &HashMap<String, String>,
        messages: impl ExactSizeIterator<Item = Outgoing<'_>>,
    ) -> Vec<(usize, Error)> {
        let exclude = self.exclude_headers.as_ref();
        let records = messages.map(|message| {
            record::record_parts([message.metadata, request_metadata], message.content_type, exclude)
                .map(|parts| (message.payload.as_ref(), parts))
        });
        let count = records.len();
        let batch = Batch::new(count);
        let started = Instant::now();
        let known = self.create_if_missing(topic, None).await;
        let deadline = started + self.message_timeout;
        let producer = self.current();
        // Once an entry found no room before the deadline, the later ones fail too, untried:
        // one of them taken now could overtake a failed earlier entry of the same key when
        // daprd's caller retries the failed ones.
        let mut out_of_room = false;
        for (index, record) in records.enumerate() {
            let outcome = match record {
                Ok(_) if out_of_room => {
                    Err(Error::QueueFull(format!("topic `{topic}` (an earlier entry found no room)")))
                }
                Ok((payload, parts)) => {
                    let raw = RawRecord {
                        payload,
                        key: parts.key.as_deref().map(str::as_bytes),
                        partition: parts.partition,
                        headers: parts.headers,
                    };
                    self.enqueue(&producer, topic, raw, &batch, index, deadline).await
                }
                Err(error) => Err(error),
            };
            if let Err(error) = outcome {
                out_of_room |= matches!(error, Error::QueueFull(_));
                batch.complete(index, Err(error));
            }
        }
        self.finish(topic, count, batch, started, producer, known).await
    }

    /// Publishes records given as raw parts (dead-letter records) and waits for their reports.
    pub(crate) async fn publish_raw(&self, topic: &str, records: Vec<RawRecord<'_>>) -> Vec<(usize, Error)> {
        let count = records.len();
        let batch = Batch::new(count);
        let started = Instant::now();
        let known = self.create_if_missing(topic, None).await;
        let deadline = started + self.message_timeout;
        let producer = self.current();
        for (index, raw) in records.into_iter().enumerate() {
            if let Err(error) = self.enqueue(&producer, topic, raw, &batch, index, deadline).await {
                batch.complete(index, Err(error));
            }
        }
        self.finish(topic, count, batch, started, producer, known).await
    }

    async fn finish(
        &self,
        topic: &str,
        count: usize,
        batch: Arc<Batch>,
        started: Instant,
        producer: Arc<KafkaProducer>,
        topic_known: bool,
    ) -> Vec<(usize, Error)> {
        let failures: Vec<_> =
            batch.wait().await.into_iter().map(|(index, error)| (index, self.explain_missing(topic, error))).collect();
        self.metrics.published(topic, count - failures.len(), failures.len(), started.elapsed());
        // A record Kafka took proves the topic exists (after a creation that seemed to fail).
        if !topic_known && failures.len() < count {
            if let Some(admin) = &self.admin {
                admin.exists(topic);
            }
        }
        if !failures.is_empty() {
            self.rebuild_if_fatal(producer);
        }
        failures
    }

    /// With `autoCreateTopics`, creates `topic` as `spec` (the instance's defaults if `None`)
    /// unless it is known to exist. A failure is logged and remembered; the caller goes on
    /// (a missing topic then fails its records with NOT_FOUND, naming the creation error).
    /// Returns whether the topic exists now (false without `autoCreateTopics`).
    pub(crate) async fn create_if_missing(&self, topic: &str, spec: Option<TopicSpec>) -> bool {
        match &self.admin {
            Some(admin) => admin.ensure(topic, spec).await.is_ok(),
            None => false,
        }
    }

    /// The defaults a created topic gets, if this instance creates topics.
    pub(crate) fn auto_create_defaults(&self) -> Option<TopicSpec> {
        self.admin.as_ref().map(TopicAdmin::defaults)
    }

    /// Turns librdkafka's "unknown topic" into an error that names the topic and says what
    /// to do about it.
    fn explain_missing(&self, topic: &str, error: Error) -> Error {
        let missing = matches!(
            &error,
            Error::Kafka { source, .. }
                if matches!(source.rdkafka_error_code(), Some(RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition))
        );
        if !missing {
            return error;
        }
        let waited = self.unknown_topic_timeout;
        let reason = match self.admin.as_ref().map(|admin| admin.failure(topic)) {
            Some(Some(failure)) => format!("autoCreateTopics could not create it ({failure})"),
            Some(None) => format!("it did not appear within unknownTopicTimeout ({waited:?}) after autoCreateTopics"),
            None => format!(
                "it did not appear within unknownTopicTimeout ({waited:?}); create it, or set autoCreateTopics: true"
            ),
        };
        Error::TopicNotFound { topic: topic.to_owned(), reason }
    }

    /// Replaces `failed` with a fresh producer if librdkafka declared it dead (a fatal
    /// error), unless another call already did, or the last replacement was too recent (see
    /// [`RebuildPacing`]): meanwhile publishes fail at once with the fatal error.
    fn rebuild_if_fatal(&self, failed: Arc<KafkaProducer>) {
        let Some((code, reason)) = failed.client().fatal_error() else { return };
        if !Arc::ptr_eq(&self.current(), &failed) {
            return;
        }
        if !self.rebuilds.lock().unwrap_or_else(|e| e.into_inner()).allow(std::time::Instant::now()) {
            tracing::debug!(instance = %self.instance, ?code, "producer is dead; the next replacement is paced");
            return;
        }
        let mut current = self.producer.write().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&current, &failed) {
            return;
        }
        match create_producer(&self.client_config, &crate::config::Redactor::default()) {
            Ok(fresh) => {
                tracing::error!(instance = %self.instance, ?code, reason, "producer hit a fatal error: replaced it with a new one (records in flight on it failed)");
                metrics::producer_rebuilt(&self.instance);
                let old = std::mem::replace(&mut *current, fresh);
                drop(current);
                retire(old);
            }
            Err(error) => {
                tracing::error!(instance = %self.instance, %error, "producer hit a fatal error and could not be replaced")
            }
        }
    }

    /// Hands one record to librdkafka, waiting for room while its queue is full.
    async fn enqueue(
        &self,
        producer: &KafkaProducer,
        topic: &str,
        raw: RawRecord<'_>,
        batch: &Arc<Batch>,
        index: usize,
        deadline: Instant,
    ) -> Result<()> {
        let mut record =
            BaseRecord::with_opaque_to(topic, Box::new(Pending { batch: batch.clone(), index })).payload(raw.payload);
        if let Some(key) = raw.key {
            record = record.key(key);
        }
        if let Some(partition) = raw.partition {
            record = record.partition(partition);
        }
        if let Some(headers) = raw.headers {
            record = record.headers(headers);
        }
        // The fast path touches nothing shared but librdkafka's queue; only a full queue
        // registers for the "room" signal (and then tries once more before waiting, so a
        // delivery report that lands in between is not missed).
        let context = producer.context();
        let mut registered = false;
        loop {
            // Counted, then registered, then the send: a report before the send made room
            // the send sees; one after it finds us counted and registered.
            let _waiting = registered.then(|| context.waiting());
            let mut room = pin!(context.room.notified());
            if registered {
                room.as_mut().enable();
            }
            match producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    if !registered {
                        registered = true;
                        continue;
                    }
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
        self.current().in_flight_count()
    }

    /// Waits up to `timeout` for every queued record's delivery report, then closes the
    /// producer. Runs librdkafka's blocking flush off the async runtime.
    pub async fn close(self: Arc<Self>, timeout: Duration) -> Result<()> {
        tokio::task::spawn_blocking(move || {
            let flushed = self.current().flush(timeout);
            drop(self);
            flushed
        })
        .await
        .expect("producer flush panicked")
        .map_err(|e| Error::kafka("flushing the producer", e))
    }
}

/// The last reference to a publisher can go on an async worker: at the end of a retire or
/// shutdown task, or in the last Publish handler to finish. Dropping librdkafka clients
/// blocks (a producer purges and waits up to 500 ms for those reports; `rd_kafka_destroy`
/// joins the client's threads, one of which may be inside a DNS, TLS or token call), so the
/// producer and the admin client go to a plain thread when a runtime is around.
impl Drop for Publisher {
    fn drop(&mut self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return; // outside any runtime: drop in place
        }
        if let Some(admin) = self.admin.take() {
            std::thread::spawn(move || drop(admin));
        }
        // Holds the producer until the field that drops after this is gone, then drops it.
        retire(self.current());
    }
}

/// How often a dead producer is replaced. A fatal error that every new producer hits again
/// (no IdempotentWrite permission, a broker without idempotence support) would otherwise
/// build a new client, with its threads and connections, for every publish. The first
/// replacement is immediate; one that follows within four waits of the previous doubles the
/// wait (1 s up to 60 s); a producer that lived longer resets it.
#[derive(Debug)]
struct RebuildPacing {
    last: Option<std::time::Instant>,
    wait: Duration,
}

impl RebuildPacing {
    const FIRST_WAIT: Duration = Duration::from_secs(1);
    const MAX_WAIT: Duration = Duration::from_secs(60);

    /// Whether a replacement may happen `now`; if so, it counts as done.
    fn allow(&mut self, now: std::time::Instant) -> bool {
        if let Some(last) = self.last {
            let since = now.saturating_duration_since(last);
            if since < self.wait {
                return false;
            }
            self.wait = if since < self.wait * 4 { (self.wait * 2).min(Self::MAX_WAIT) } else { Self::FIRST_WAIT };
        }
        self.last = Some(now);
        true
    }
}

impl Default for RebuildPacing {
    fn default() -> Self {
        Self { last: None, wait: Self::FIRST_WAIT }
    }
}

/// Drops a replaced producer off the async runtime once no call uses it any more (dropping
/// purges what it still holds, which fails those records, and waits for those reports).
fn retire(old: Arc<KafkaProducer>) {
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while Arc::strong_count(&old) > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(old);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacements_are_paced_and_the_pace_resets_after_a_long_life() {
        let t0 = std::time::Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut pacing = RebuildPacing::default();
        assert!(pacing.allow(at(0)), "the first replacement is immediate");
        assert!(!pacing.allow(at(10)) && !pacing.allow(at(999)), "then one per second at most");
        assert!(pacing.allow(at(1_000)));
        assert!(!pacing.allow(at(2_999)), "dead again soon: the wait doubled to 2 s");
        assert!(pacing.allow(at(3_000)));
        assert!(!pacing.allow(at(6_999)) && pacing.allow(at(7_000)), "4 s");
        for _ in 0..10 {
            let next = pacing.last.unwrap() + pacing.wait;
            assert!(pacing.allow(next));
        }
        assert_eq!(pacing.wait, RebuildPacing::MAX_WAIT, "capped");
        let much_later = pacing.last.unwrap() + RebuildPacing::MAX_WAIT * 4;
        assert!(pacing.allow(much_later));
        assert_eq!(pacing.wait, RebuildPacing::FIRST_WAIT, "a producer that lived long resets the pace");
    }
}
