//! Every metric the bridge records, in one place. Labels follow Dapr's: `component` (the
//! Component name, `(default)` without the header) and `topic`, plus an `outcome` or `kind`
//! where it matters.
//!
//! Topic labels come from requests, so a caller could mint any number of series: past
//! [`MAX_TOPIC_LABELS`] distinct topics, further ones are counted under `topic="(other)"`.
//! The same holds for the component names of failed Inits ([`MAX_FAILED_INIT_LABELS`]).

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

/// Histogram buckets (seconds) for publish latency: 100 µs to 30 s.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Distinct topic label values before further topics share `(other)`.
pub const MAX_TOPIC_LABELS: usize = 1000;

/// Records handed to Kafka by Publish/BulkPublish, by outcome (`ok`, `failed`).
pub const PUBLISHED: &str = "kafka_bridge_published_records_total";
/// Time from a Publish/BulkPublish call to its last delivery report.
pub const PUBLISH_SECONDS: &str = "kafka_bridge_publish_duration_seconds";
/// Producers replaced after a fatal error.
pub const PRODUCER_REBUILDS: &str = "kafka_bridge_producer_rebuilds_total";
/// Messages sent to daprd on PullMessages streams (first deliveries and redeliveries).
pub const DELIVERED: &str = "kafka_bridge_delivered_messages_total";
/// Acks from daprd, by outcome (`acked`, `nacked`, `ignored`).
pub const ACKS: &str = "kafka_bridge_acks_total";
/// Redeliveries scheduled after a nack, by kind (`retry`; `exhausted` = retries used up and
/// no dead-letter topic; `dropped` = `consumeRetryEnabled: false` without a dead-letter topic).
pub const REDELIVERIES: &str = "kafka_bridge_redeliveries_total";
/// Dead-letter publishes, by outcome (`ok`, `failed`).
pub const DEAD_LETTERED: &str = "kafka_bridge_dead_lettered_total";
/// Offset commits, by outcome (`ok`, `failed`).
pub const COMMITS: &str = "kafka_bridge_commits_total";
/// How long a synchronous offset commit took.
pub const COMMIT_SECONDS: &str = "kafka_bridge_commit_duration_seconds";
/// Partition assignments and revocations, by kind (`assign`, `revoke`).
pub const REBALANCES: &str = "kafka_bridge_rebalance_partitions_total";
/// Errors librdkafka reported, by client (`producer`, `consumer`).
pub const KAFKA_ERRORS: &str = "kafka_bridge_kafka_errors_total";
/// Errors a stream survived, by kind (`authorization`, `group`, `fatal`, `other`).
pub const STREAM_ERRORS: &str = "kafka_bridge_stream_errors_total";
/// Partitions delivering nothing new, by reason (`uncommitted_cap`, `oversized`).
pub const BLOCKED_PARTITIONS: &str = "kafka_bridge_blocked_partitions";
/// Delivered and un-acked messages per stream.
pub const IN_FLIGHT: &str = "kafka_bridge_in_flight_messages";
/// Fetched messages waiting for room to be delivered.
pub const HELD: &str = "kafka_bridge_held_messages";
/// Partitions whose fetching is paused because their prefetch is full.
pub const PAUSED_PARTITIONS: &str = "kafka_bridge_paused_partitions";
/// High watermark minus committed offset, per partition (from librdkafka statistics).
pub const CONSUMER_LAG: &str = "kafka_bridge_consumer_lag_messages";
/// The group's committed offset per partition (from librdkafka statistics).
pub const COMMITTED_OFFSET: &str = "kafka_bridge_committed_offset";
/// 1 while Kafka answers the component's producer, 0 while it does not.
pub const BROKER_CONNECTED: &str = "kafka_bridge_broker_connected";
/// Init calls that failed.
pub const INIT_FAILURES: &str = "kafka_bridge_init_failures_total";
/// PullMessages streams open.
pub const STREAMS: &str = "kafka_bridge_streams";

/// Registers descriptions with the exporter.
pub fn describe() {
    describe_counter!(PUBLISHED, "Records handed to Kafka by Publish/BulkPublish, by outcome");
    describe_histogram!(
        PUBLISH_SECONDS,
        metrics::Unit::Seconds,
        "Publish/BulkPublish call until the last delivery report"
    );
    describe_counter!(PRODUCER_REBUILDS, "Producers replaced after a fatal librdkafka error");
    describe_counter!(DELIVERED, "Messages sent to daprd on PullMessages streams");
    describe_counter!(ACKS, "Acks from daprd, by outcome");
    describe_counter!(
        REDELIVERIES,
        "Redeliveries after a nack; kind=exhausted means a poison message without a dead-letter topic"
    );
    describe_counter!(DEAD_LETTERED, "Dead-letter publishes, by outcome");
    describe_counter!(COMMITS, "Offset commits, by outcome");
    describe_histogram!(COMMIT_SECONDS, metrics::Unit::Seconds, "Synchronous offset commit duration");
    describe_counter!(REBALANCES, "Partitions assigned or revoked");
    describe_counter!(KAFKA_ERRORS, "Errors reported by librdkafka");
    describe_counter!(STREAM_ERRORS, "Kafka errors a PullMessages stream survived, by kind");
    describe_gauge!(BLOCKED_PARTITIONS, "Partitions that deliver nothing new (poison message or oversized record)");
    describe_gauge!(IN_FLIGHT, "Delivered, un-acked messages per stream");
    describe_gauge!(HELD, "Fetched messages waiting to be delivered");
    describe_gauge!(PAUSED_PARTITIONS, "Partitions whose fetch is paused by flow control");
    describe_gauge!(CONSUMER_LAG, "High watermark minus committed offset");
    describe_gauge!(COMMITTED_OFFSET, "Committed offset of the group");
    describe_gauge!(BROKER_CONNECTED, "1 while Kafka answers, 0 while it does not");
    describe_counter!(INIT_FAILURES, "Init calls that failed");
    describe_gauge!(STREAMS, "PullMessages streams open");
}

/// Label values that come from callers, bounded: each value is its own label until `cap`
/// distinct ones were seen; later ones share `(other)`.
struct BoundedLabels {
    seen: Mutex<HashSet<String>>,
    cap: usize,
}

impl BoundedLabels {
    fn new(cap: usize) -> Self {
        Self { seen: Mutex::default(), cap }
    }

    fn label(&self, value: &str) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(value) {
            return value.to_owned();
        }
        if seen.len() < self.cap {
            seen.insert(value.to_owned());
            return value.to_owned();
        }
        "(other)".to_owned()
    }
}

/// `topic` as a label value: itself while fewer than [`MAX_TOPIC_LABELS`] topics were seen.
pub(crate) fn topic_label(topic: &str) -> String {
    static TOPICS: OnceLock<BoundedLabels> = OnceLock::new();
    TOPICS.get_or_init(|| BoundedLabels::new(MAX_TOPIC_LABELS)).label(topic)
}

/// Distinct component names a failed Init may add as label values. Instances that exist are
/// bounded by `--max-instances`; failed Inits are not (any caller on the socket can send any
/// name), so past this many their failures share `component="(other)"`.
pub const MAX_FAILED_INIT_LABELS: usize = 256;

/// The publish series of one component instance, with the handles of each topic resolved
/// on its first publish (a lookup by labels costs allocations and a hash per call).
pub(crate) struct PublishMetrics {
    component: String,
    duration: metrics::Histogram,
    /// `(ok, failed)` counters by topic (as the request named it).
    topics: std::sync::RwLock<std::collections::HashMap<String, (metrics::Counter, metrics::Counter)>>,
}

impl PublishMetrics {
    pub(crate) fn new(component: &str) -> Self {
        Self {
            component: component.to_owned(),
            duration: histogram!(PUBLISH_SECONDS, "component" => component.to_owned()),
            topics: Default::default(),
        }
    }

    /// A publish call finished.
    pub(crate) fn published(&self, topic: &str, ok: usize, failed: usize, took: Duration) {
        let known =
            self.topics.read().unwrap_or_else(|e| e.into_inner()).get(topic).map(|(o, f)| (o.clone(), f.clone()));
        let (ok_counter, failed_counter) = known.unwrap_or_else(|| {
            let label = topic_label(topic);
            let counters = (
                counter!(PUBLISHED, "component" => self.component.clone(), "topic" => label.clone(), "outcome" => "ok"),
                counter!(PUBLISHED, "component" => self.component.clone(), "topic" => label, "outcome" => "failed"),
            );
            let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
            // Bounded like the labels: past the cap, topics share `(other)` and are not kept.
            if topics.len() < MAX_TOPIC_LABELS {
                topics.insert(topic.to_owned(), counters.clone());
            }
            counters
        });
        ok_counter.increment(ok as u64);
        if failed > 0 {
            failed_counter.increment(failed as u64);
        }
        self.duration.record(took.as_secs_f64());
    }
}

/// A producer was replaced after a fatal error.
pub(crate) fn producer_rebuilt(component: &str) {
    counter!(PRODUCER_REBUILDS, "component" => component.to_owned()).increment(1);
}

/// Whether Kafka answers `component`'s producer.
pub(crate) fn broker_connected(component: &str, up: bool) {
    gauge!(BROKER_CONNECTED, "component" => component.to_owned()).set(if up { 1.0 } else { 0.0 });
}

/// An Init failed.
pub(crate) fn init_failed(component: &str) {
    static NAMES: OnceLock<BoundedLabels> = OnceLock::new();
    let label = NAMES.get_or_init(|| BoundedLabels::new(MAX_FAILED_INIT_LABELS)).label(component);
    counter!(INIT_FAILURES, "component" => label).increment(1);
}

/// What became of an ack from daprd (the `outcome` label of [`ACKS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    Acked,
    Nacked,
    /// Unknown, stale or repeated.
    Ignored,
}

/// Labels of one stream, with the handles of the series it updates per message resolved
/// once (a lookup by labels costs allocations and a hash per call).
#[derive(Clone)]
pub(crate) struct StreamLabels {
    pub(crate) component: String,
    pub(crate) topic: String,
    delivered: metrics::Counter,
    acked: metrics::Counter,
    nacked: metrics::Counter,
    ignored: metrics::Counter,
    in_flight: metrics::Gauge,
    held: metrics::Gauge,
    paused: metrics::Gauge,
}

impl std::fmt::Debug for StreamLabels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamLabels").field("component", &self.component).field("topic", &self.topic).finish()
    }
}

impl StreamLabels {
    pub(crate) fn new(component: &str, topic: &str) -> Self {
        let (component, topic) = (component.to_owned(), topic_label(topic));
        let labels = [("component", component.clone()), ("topic", topic.clone())];
        let ack = |outcome: &'static str| counter!(ACKS, "component" => component.clone(), "topic" => topic.clone(), "outcome" => outcome);
        Self {
            delivered: counter!(DELIVERED, &labels),
            acked: ack("acked"),
            nacked: ack("nacked"),
            ignored: ack("ignored"),
            in_flight: gauge!(IN_FLIGHT, &labels),
            held: gauge!(HELD, &labels),
            paused: gauge!(PAUSED_PARTITIONS, &labels),
            component,
            topic,
        }
    }

    pub(crate) fn delivered(&self, n: usize) {
        if n > 0 {
            self.delivered.increment(n as u64);
        }
    }

    pub(crate) fn ack(&self, outcome: AckOutcome) {
        match outcome {
            AckOutcome::Acked => self.acked.increment(1),
            AckOutcome::Nacked => self.nacked.increment(1),
            AckOutcome::Ignored => self.ignored.increment(1),
        }
    }

    pub(crate) fn redelivery(&self, kind: &'static str) {
        counter!(REDELIVERIES, "component" => self.component.clone(), "topic" => self.topic.clone(), "kind" => kind)
            .increment(1);
    }

    pub(crate) fn dead_lettered(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        counter!(DEAD_LETTERED, "component" => self.component.clone(), "topic" => self.topic.clone(), "outcome" => outcome).increment(1);
    }

    pub(crate) fn commit(&self, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "failed" };
        counter!(COMMITS, "component" => self.component.clone(), "topic" => self.topic.clone(), "outcome" => outcome)
            .increment(1);
        histogram!(COMMIT_SECONDS, "component" => self.component.clone()).record(took.as_secs_f64());
    }

    pub(crate) fn rebalance(&self, kind: &'static str, partitions: usize) {
        counter!(REBALANCES, "component" => self.component.clone(), "topic" => self.topic.clone(), "kind" => kind)
            .increment(partitions as u64);
    }

    pub(crate) fn stream_error(&self, kind: &'static str) {
        counter!(STREAM_ERRORS, "component" => self.component.clone(), "topic" => self.topic.clone(), "kind" => kind)
            .increment(1);
    }

    /// Adds `delta` to the blocked-partition gauge for `reason`.
    pub(crate) fn blocked(&self, reason: &'static str, delta: f64) {
        gauge!(BLOCKED_PARTITIONS, "component" => self.component.clone(), "topic" => self.topic.clone(), "reason" => reason)
            .increment(delta);
    }

    /// Flow-control gauges of one stream: deltas since the last report.
    pub(crate) fn flow(&self, in_flight: f64, held: f64, paused: f64) {
        self.in_flight.increment(in_flight);
        self.held.increment(held);
        self.paused.increment(paused);
    }

    /// Lag and committed offset of one partition.
    pub(crate) fn partition_offsets(&self, partition: i32, lag: i64, committed: i64) {
        let labels = [
            ("component", self.component.clone()),
            ("topic", self.topic.clone()),
            ("partition", partition.to_string()),
        ];
        gauge!(CONSUMER_LAG, &labels).set(lag as f64);
        gauge!(COMMITTED_OFFSET, &labels).set(committed as f64);
    }

    pub(crate) fn stream_open(&self, delta: f64) {
        gauge!(STREAMS, "component" => self.component.clone()).increment(delta);
    }
}

/// librdkafka reported an error.
pub(crate) fn kafka_error(client: &'static str) {
    counter!(KAFKA_ERRORS, "client" => client).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_made_labels_are_bounded() {
        let labels = BoundedLabels::new(3);
        for name in ["a", "b", "c"] {
            assert_eq!(labels.label(name), name);
        }
        assert_eq!(labels.label("d"), "(other)", "past the cap, new values share one label");
        assert_eq!(labels.label("b"), "b", "values seen before keep theirs");
    }
}
