//! Topics that do not exist yet: what exists now, and creating a missing one.
//!
//! `autoCreateTopics` creates a missing topic through Kafka's admin API (CreateTopics), with
//! `topicPartitions` and `topicReplicationFactor` (absent: the broker's own defaults), on the
//! first publish to it and when a subscription to it opens. This is independent of the
//! broker's `auto.create.topics.enable`, which creates a topic with the broker's defaults
//! when a producer asks for its metadata (librdkafka's producer allows that; its consumer does
//! not). A CreateTopics answered with `TOPIC_ALREADY_EXISTS` counts as success, so several
//! bridges racing to create one topic all go on.
//!
//! Each topic costs one CreateTopics request per instance: afterwards it is known to exist
//! (as it is once a record was delivered to it). Concurrent publishes to a new topic wait for
//! one CreateTopics between them, not one each. A failed creation (no `CREATE` right, a replication factor above the broker count, a
//! broker without the admin API such as librdkafka's mock cluster) is logged, remembered for
//! [`RETRY_AFTER`] and not retried before then; the publish goes ahead anyway, and fails with
//! NOT_FOUND naming the topic (and the creation error) if the topic really is missing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::types::RDKafkaRespErr;

use crate::config::TopicSpec;
use crate::error::{Error, Result};

/// How long a failed creation is remembered before it is tried again.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(10);

/// Creates missing topics for one component instance.
pub(crate) struct TopicAdmin {
    client: AdminClient<DefaultClientContext>,
    defaults: TopicSpec,
    timeout: Duration,
    instance: String,
    /// Topics created here or found to exist: no CreateTopics for them again.
    known: Mutex<HashSet<String>>,
    /// Topics whose creation failed: when, and why.
    failed: Mutex<HashMap<String, (Instant, String)>>,
    /// One creation at a time per topic: callers that arrive during it wait for its outcome.
    creating: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TopicAdmin {
    /// An admin client with the producer's connection settings; each request waits up to
    /// `timeout`.
    pub(crate) fn new(config: &ClientConfig, defaults: TopicSpec, timeout: Duration, instance: &str) -> Result<Self> {
        let client = config.create().map_err(|e| Error::kafka("creating the admin client (autoCreateTopics)", e))?;
        Ok(Self {
            client,
            defaults,
            timeout,
            instance: instance.to_owned(),
            known: Mutex::default(),
            failed: Mutex::default(),
            creating: Mutex::default(),
        })
    }

    /// The instance's defaults (`topicPartitions`, `topicReplicationFactor`).
    pub(crate) fn defaults(&self) -> TopicSpec {
        self.defaults
    }

    /// Makes sure `topic` exists, creating it as `spec` (the defaults if `None`) if it does
    /// not. Returns why it could not, if it could not.
    pub(crate) async fn ensure(&self, topic: &str, spec: Option<TopicSpec>) -> Result<(), String> {
        if let Some(known) = self.settled(topic) {
            return known;
        }
        let turn = lock(&self.creating).entry(topic.to_owned()).or_default().clone();
        let _turn = turn.lock().await;
        // Whoever held the turn before may have settled it.
        if let Some(known) = self.settled(topic) {
            return known;
        }
        let outcome = self.create(topic, spec).await;
        lock(&self.creating).remove(topic);
        outcome
    }

    /// What is known of `topic` without asking the cluster: it exists, or its creation failed
    /// less than [`RETRY_AFTER`] ago.
    fn settled(&self, topic: &str) -> Option<Result<(), String>> {
        if lock(&self.known).contains(topic) {
            return Some(Ok(()));
        }
        match lock(&self.failed).get(topic) {
            Some((at, reason)) if at.elapsed() < RETRY_AFTER => Some(Err(reason.clone())),
            _ => None,
        }
    }

    /// Records that `topic` exists (Kafka took a record for it): no CreateTopics for it again.
    pub(crate) fn exists(&self, topic: &str) {
        if !lock(&self.known).contains(topic) {
            lock(&self.failed).remove(topic);
            lock(&self.known).insert(topic.to_owned());
        }
    }

    /// Sends one CreateTopics for `topic` and records the outcome.
    async fn create(&self, topic: &str, spec: Option<TopicSpec>) -> Result<(), String> {
        let spec = spec.unwrap_or(self.defaults);
        let replication = TopicReplication::Fixed(spec.replication_factor.unwrap_or(-1));
        let new = NewTopic::new(topic, spec.partitions.unwrap_or(-1), replication);
        let options = AdminOptions::new().request_timeout(Some(self.timeout)).operation_timeout(Some(self.timeout));
        let outcome = match self.client.create_topics(&[new], &options).await {
            Ok(mut results) => match results.pop() {
                Some(Ok(_)) => Ok(true),
                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(false),
                Some(Err((_, code))) => Err(format!("CreateTopics refused: {code}")),
                None => Err("CreateTopics answered nothing".to_owned()),
            },
            Err(error) => Err(format!("CreateTopics failed: {error}")),
        };
        match outcome {
            Ok(created) => {
                if created {
                    tracing::info!(instance = %self.instance, topic, partitions = ?spec.partitions, replication_factor = ?spec.replication_factor, "created topic (autoCreateTopics)");
                }
                lock(&self.failed).remove(topic);
                lock(&self.known).insert(topic.to_owned());
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(instance = %self.instance, topic, %reason, "autoCreateTopics could not create the topic");
                lock(&self.failed).insert(topic.to_owned(), (Instant::now(), reason.clone()));
                Err(reason)
            }
        }
    }

    /// Why creating `topic` failed last, if it did.
    pub(crate) fn failure(&self, topic: &str) -> Option<String> {
        lock(&self.failed).get(topic).map(|(_, reason)| reason.clone())
    }
}

/// The partitions `topic` has now, or `None` if the cluster says it does not exist. Blocks up
/// to `timeout`: call it off the async runtime. Any other answer (no answer, no right to
/// describe the topic) is an error.
pub(crate) fn partitions_now<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<Vec<i32>>> {
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| Error::kafka(format!("describing topic `{topic}`"), e))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else { return Ok(None) };
    match found.error() {
        None | Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) => {
            Ok(Some(found.partitions().iter().map(|p| p.id()).collect()))
        }
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => Ok(None),
        Some(other) => Err(Error::kafka(
            format!("describing topic `{topic}`"),
            rdkafka::error::KafkaError::MetadataFetch(RDKafkaErrorCode::from(other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedKafka;

    /// The mock cluster never answers CreateTopics: a creation fails after the timeout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_creation_is_remembered_shared_and_cleared_by_a_delivery() {
        let cluster = EmbeddedKafka::start(1).unwrap();
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", cluster.bootstrap());
        let spec = TopicSpec { partitions: Some(1), replication_factor: None };
        let admin = Arc::new(TopicAdmin::new(&config, spec, Duration::from_millis(300), "test").unwrap());

        // Concurrent callers wait for one attempt (one turn per topic) and share its outcome.
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let admin = admin.clone();
                tokio::spawn(async move { admin.ensure("orders", None).await })
            })
            .collect();
        let mut reasons = HashSet::new();
        for caller in callers {
            reasons.insert(caller.await.unwrap().expect_err("the mock does not create topics"));
        }
        assert_eq!(reasons.len(), 1, "one outcome: {reasons:?}");
        // Remembered: the next caller does not ask again.
        assert_eq!(admin.failure("orders"), reasons.into_iter().next());
        assert!(admin.settled("orders").is_some_and(|r| r.is_err()));

        // A record Kafka took proves the topic exists.
        admin.exists("orders");
        assert_eq!(admin.ensure("orders", None).await, Ok(()));
        assert_eq!(admin.failure("orders"), None);
    }
}
