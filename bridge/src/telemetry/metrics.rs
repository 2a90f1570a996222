//! Every metric the bridge records, in one place. Labels: `instance` (the Component name,
//! `(default)` without the header), `topic`, and an `outcome` or `kind` where it matters.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_histogram, histogram};

/// Histogram buckets (seconds) for publish latency: 100 µs to 30 s.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Records handed to Kafka by Publish/BulkPublish, by outcome (`ok`, `failed`).
pub const PUBLISHED: &str = "kafka_bridge_published_records_total";
/// Time from a Publish/BulkPublish call to its last delivery report.
pub const PUBLISH_SECONDS: &str = "kafka_bridge_publish_duration_seconds";
/// Messages sent to daprd on PullMessages streams (first deliveries and redeliveries).
pub const DELIVERED: &str = "kafka_bridge_delivered_messages_total";
/// Acks from daprd, by outcome (`acked`, `nacked`, `ignored`).
pub const ACKS: &str = "kafka_bridge_acks_total";
/// Redeliveries scheduled after a nack, by kind (`retry`; `exhausted` = retries used up and
/// no dead-letter topic, so the message is redelivered forever and holds its partition's
/// commits: alert on this).
pub const REDELIVERIES: &str = "kafka_bridge_redeliveries_total";
/// Dead-letter publishes, by outcome (`ok`, `failed`).
pub const DEAD_LETTERED: &str = "kafka_bridge_dead_lettered_total";
/// Offset commits, by outcome (`ok`, `failed`).
pub const COMMITS: &str = "kafka_bridge_commits_total";
/// Partition assignments and revocations, by kind (`assign`, `revoke`).
pub const REBALANCES: &str = "kafka_bridge_rebalance_partitions_total";
/// Errors librdkafka reported, by client (`producer`, `consumer`).
pub const KAFKA_ERRORS: &str = "kafka_bridge_kafka_errors_total";

/// Registers descriptions with the exporter.
pub fn describe() {
    describe_counter!(PUBLISHED, "Records handed to Kafka by Publish/BulkPublish, by outcome");
    describe_histogram!(
        PUBLISH_SECONDS,
        metrics::Unit::Seconds,
        "Publish/BulkPublish call until the last delivery report"
    );
    describe_counter!(DELIVERED, "Messages sent to daprd on PullMessages streams");
    describe_counter!(ACKS, "Acks from daprd, by outcome");
    describe_counter!(
        REDELIVERIES,
        "Redeliveries after a nack; kind=exhausted means a poison message without a dead-letter topic"
    );
    describe_counter!(DEAD_LETTERED, "Dead-letter publishes, by outcome");
    describe_counter!(COMMITS, "Offset commits, by outcome");
    describe_counter!(REBALANCES, "Partitions assigned or revoked");
    describe_counter!(KAFKA_ERRORS, "Errors reported by librdkafka");
}

/// A publish call finished.
pub(crate) fn published(instance: &str, topic: &str, ok: usize, failed: usize, took: Duration) {
    counter!(PUBLISHED, "instance" => instance.to_owned(), "topic" => topic.to_owned(), "outcome" => "ok")
        .increment(ok as u64);
    if failed > 0 {
        counter!(PUBLISHED, "instance" => instance.to_owned(), "topic" => topic.to_owned(), "outcome" => "failed")
            .increment(failed as u64);
    }
    histogram!(PUBLISH_SECONDS, "instance" => instance.to_owned()).record(took.as_secs_f64());
}

/// Labels of one stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamLabels {
    pub(crate) instance: String,
    pub(crate) topic: String,
}

impl StreamLabels {
    pub(crate) fn delivered(&self, n: usize) {
        if n > 0 {
            counter!(DELIVERED, "instance" => self.instance.clone(), "topic" => self.topic.clone()).increment(n as u64);
        }
    }

    pub(crate) fn ack(&self, outcome: &'static str) {
        counter!(ACKS, "instance" => self.instance.clone(), "topic" => self.topic.clone(), "outcome" => outcome)
            .increment(1);
    }

    pub(crate) fn redelivery(&self, kind: &'static str) {
        counter!(REDELIVERIES, "instance" => self.instance.clone(), "topic" => self.topic.clone(), "kind" => kind)
            .increment(1);
    }

    pub(crate) fn dead_lettered(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        counter!(DEAD_LETTERED, "instance" => self.instance.clone(), "topic" => self.topic.clone(), "outcome" => outcome).increment(1);
    }

    pub(crate) fn commit(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        counter!(COMMITS, "instance" => self.instance.clone(), "topic" => self.topic.clone(), "outcome" => outcome)
            .increment(1);
    }

    pub(crate) fn rebalance(&self, kind: &'static str, partitions: usize) {
        counter!(REBALANCES, "instance" => self.instance.clone(), "topic" => self.topic.clone(), "kind" => kind)
            .increment(partitions as u64);
    }
}

/// librdkafka reported an error.
pub(crate) fn kafka_error(client: &'static str) {
    counter!(KAFKA_ERRORS, "client" => client).increment(1);
}
