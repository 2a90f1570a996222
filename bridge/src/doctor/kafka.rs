//! The Kafka layers: brokers, topics, consumer group. Blocking librdkafka calls: run on a
//! blocking thread.
//!
//! The client is configured exactly as the bridge's consumers are (`consumer_config`: the
//! Component's brokers, TLS and SASL settings and `kafka.*` passthrough), with the Component's
//! consumer group as `group.id`. It never subscribes, so it never joins the group: reading
//! committed offsets (OffsetFetch) and describing the group do not disturb the members.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::component::Found;
use super::{Check, Layer};

/// Keeps what librdkafka reports (authentication failures arrive here, not as return values).
#[derive(Default)]
struct Recorder {
    errors: Mutex<Vec<String>>,
}

impl ClientContext for Recorder {
    fn log(&self, _level: RDKafkaLogLevel, _facility: &str, _message: &str) {}

    fn error(&self, error: KafkaError, reason: &str) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        let line = format!("{error} ({reason})");
        if !errors.contains(&line) {
            errors.push(line);
        }
    }
}

impl ConsumerContext for Recorder {}

/// The group id used when the Component names none (only to read metadata).
const NO_GROUP: &str = "kafka-pubsub-bridge-doctor";

/// Runs the kafka, topics and group layers.
pub(crate) fn check(found: &Found, timeout: Duration, checks: &mut Vec<Check>) {
    let Some(config) = &found.config else { return };
    let Some(brokers) = &config.brokers else {
        for name in ["kafka", "topics", "group"] {
            Layer { name, checks }.skip("no brokers to check");
        }
        return;
    };
    let mut kafka = Layer { name: "kafka", checks };
    let group = found.group.as_deref().unwrap_or(NO_GROUP);
    let consumer: BaseConsumer<Recorder> =
        match config.consumer_config(brokers, group).create_with_context(Recorder::default()) {
            Ok(consumer) => consumer,
            Err(e) => {
                kafka.fail(
                    format!("librdkafka refuses the settings: {e}"),
                    "correct the `kafka.*` passthrough property it names",
                );
                Layer { name: "topics", checks }.skip("no Kafka client");
                Layer { name: "group", checks }.skip("no Kafka client");
                return;
            }
        };
    let metadata = match consumer.fetch_metadata(None, timeout) {
        Ok(metadata) => metadata,
        Err(e) => {
            // Errors (authentication, connection refused) reach the context only when polled.
            for _ in 0..3 {
                let _ = consumer.poll(Duration::from_millis(50));
            }
            let reported = consumer.context().errors.lock().map(|e| e.join("; ")).unwrap_or_default();
            let detail = if reported.is_empty() { e.to_string() } else { format!("{e}: {reported}") };
            let lower = detail.to_lowercase();
            let fix = if lower.contains("sasl") || lower.contains("authentic") || lower.contains("credentials") {
                "check saslUsername/saslPassword (the secret's value) and saslMechanism (PLAINTEXT, SHA-256, SHA-512) \
                 against the cluster's users"
            } else if lower.contains("ssl") || lower.contains("certificate") || lower.contains("handshake") {
                "check TLS: caCert for a private CA, disableTls for a plaintext listener, the port of the TLS listener"
            } else {
                "check `brokers` (host:port of a listener this pod can reach: DNS, network policy, firewall) and \
                 that the listener's protocol matches authType/disableTls"
            };
            kafka.fail(format!("cannot reach Kafka at {brokers} within {timeout:?}: {detail}"), fix);
            Layer { name: "topics", checks }.skip("Kafka is not reachable");
            Layer { name: "group", checks }.skip("Kafka is not reachable");
            return;
        }
    };
    let broker_list: Vec<String> =
        metadata.brokers().iter().map(|b| format!("{}:{} (id {})", b.host(), b.port(), b.id())).collect();
    kafka.pass(format!("connected to {brokers} with these credentials; brokers: {}", broker_list.join(", ")));

    let mut topics = Layer { name: "topics", checks };
    let dead_letter = config.subscriber.dead_letter_topic.clone();
    let mut existing = Vec::new();
    if found.topics.is_empty() && dead_letter.is_none() {
        topics.skip(format!("no Subscription for {} in the file and no --topic: no topic to check", found.name));
    }
    for topic in &found.topics {
        if check_topic(&metadata, topic, "topic", &mut topics) {
            existing.push(topic.clone());
        }
    }
    if let Some(topic) = &dead_letter {
        check_topic(&metadata, topic, "dead-letter topic", &mut topics);
    } else if !found.topics.is_empty() {
        topics.warn(
            "no deadLetterTopic: a message that fails every retry is redelivered forever and holds its partition's commits",
            "set metadata deadLetterTopic (and create that topic)",
        );
    }

    let mut group_layer = Layer { name: "group", checks };
    let Some(group) = found.group.as_deref() else {
        group_layer.skip("no consumerGroup (pass --app-id if daprd's app id is the group)");
        return;
    };
    match consumer.fetch_group_list(Some(group), timeout) {
        Ok(list) => match list.groups().iter().find(|g| g.name() == group) {
            Some(g) if g.state() == "Stable" => {
                let members: Vec<String> =
                    g.members().iter().map(|m| format!("{}@{}", m.client_id(), m.client_host())).collect();
                group_layer.pass(format!("group {group}: Stable, {} members ({})", members.len(), members.join(", ")));
            }
            Some(g) if g.state() == "Empty" || g.state() == "Dead" => group_layer.warn(
                format!("group {group}: {}, no members: nothing consumes right now", g.state()),
                "is the app running with its subscription, and is the Component scoped to it?",
            ),
            Some(g) => group_layer.warn(
                format!("group {group}: {} with {} members", g.state(), g.members().len()),
                "rebalancing: if it lasts, look for restarting pods or a sessionTimeout that is too short",
            ),
            None => group_layer.warn(
                format!("group {group} does not exist yet: no subscriber has joined"),
                "start the app with its subscription",
            ),
        },
        Err(e) => {
            group_layer.warn(format!("cannot describe group {group}: {e}"), "the user may lack Describe on the group")
        }
    }
    for topic in &existing {
        lag(&consumer, &metadata, topic, group, timeout, &mut group_layer);
    }
}

/// Whether the topic exists (and reports it).
fn check_topic(metadata: &Metadata, topic: &str, what: &str, layer: &mut Layer<'_>) -> bool {
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic && t.error().is_none()) else {
        layer.fail(
            format!("{what} {topic} does not exist"),
            format!(
                "create it (kafka-topics.sh --create --topic {topic} --partitions <n> --replication-factor 3, a \
                 Strimzi KafkaTopic, or your provider's console); the bridge does not create topics"
            ),
        );
        return false;
    };
    let partitions = found.partitions();
    let replication = partitions.iter().map(|p| p.replicas().len()).max().unwrap_or(0);
    let leaderless: Vec<i32> = partitions.iter().filter(|p| p.leader() < 0).map(|p| p.id()).collect();
    if !leaderless.is_empty() {
        layer.fail(
            format!("{what} {topic}: partitions {leaderless:?} have no leader"),
            "brokers holding those replicas are down: check the cluster",
        );
    } else if replication == 1 {
        layer.warn(
            format!("{what} {topic}: {} partitions, replication 1", partitions.len()),
            "one broker lost loses data: use replication factor 3 in production",
        );
    } else {
        layer.pass(format!("{what} {topic}: {} partitions, replication {replication}", partitions.len()));
    }
    true
}

/// Committed offset and lag (high watermark - committed) per partition.
fn lag(
    consumer: &BaseConsumer<Recorder>,
    metadata: &Metadata,
    topic: &str,
    group: &str,
    timeout: Duration,
    layer: &mut Layer<'_>,
) {
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else { return };
    let mut list = TopicPartitionList::new();
    for partition in found.partitions() {
        list.add_partition(topic, partition.id());
    }
    let committed = match consumer.committed_offsets(list, timeout) {
        Ok(committed) => committed,
        Err(e) => {
            layer.warn(
                format!("{topic}: cannot read committed offsets of {group}: {e}"),
                "the user may lack Describe/Read on the group",
            );
            return;
        }
    };
    let mut total = 0;
    let mut lines = Vec::new();
    for element in committed.elements() {
        let partition = element.partition();
        let high = match consumer.fetch_watermarks(topic, partition, timeout) {
            Ok((_, high)) => high,
            Err(e) => {
                lines.push(format!("[{partition}] watermarks unavailable: {e}"));
                continue;
            }
        };
        match element.offset() {
            Offset::Offset(offset) => {
                let lag = (high - offset).max(0);
                total += lag;
                lines.push(format!("[{partition}] committed {offset}, end {high}, lag {lag}"));
            }
            _ => lines.push(format!("[{partition}] nothing committed, end {high}")),
        }
    }
    let message = format!("{topic}: lag {total} for group {group}: {}", lines.join("; "));
    layer.pass(message);
}
