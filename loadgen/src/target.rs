//! Where the load goes: the [`Target`] trait and its direct-Kafka implementation.
//!
//! A target creates and deletes each step's topic and opens [`Publisher`]s, one per producer
//! thread. The tool's own consumer always reads the topic straight from Kafka
//! ([`Target::consumer_bootstrap`]), so a later target that publishes *through the bridge*
//! only has to implement `publisher` differently and its end-to-end latency is comparable.
//!
//! ```text
//!   worker thread ──Publisher::send──► target (direct Kafka: librdkafka producer)
//!        ▲                                   │ delivery report
//!        └──────── Recorder ◄────────────────┘
//!   consumer thread ◄── Kafka topic (fresh per step) ── end-to-end latency
//! ```

pub mod kafka;
pub mod mock;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use kafka::{DirectKafka, Stall};

use crate::driver::{Recorder, Stamp};
use crate::error::Result;
use crate::scenario::{Scenario, StepConfig};

/// What a report says about the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// `embedded-mock` or `kafka`.
    pub kind: String,
    /// Bootstrap servers.
    pub bootstrap: String,
    /// Brokers in the cluster's metadata.
    pub brokers: usize,
    /// True when the broker runs in this process: results show client-side costs only.
    pub in_process: bool,
    /// A sentence for the report.
    pub description: String,
    /// The brokers' `message.max.bytes`, when the cluster says (DescribeConfigs).
    #[serde(default)]
    pub message_max_bytes: Option<u64>,
    /// What the tool learned about the cluster, and what it could not check.
    #[serde(default)]
    pub facts: Vec<String>,
}

/// A step's topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    /// Partitions.
    pub partitions: u32,
    /// Replicas per partition.
    pub replication_factor: u32,
    /// `min.insync.replicas`.
    pub min_insync_replicas: u32,
}

/// The outcome of handing one message to a publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Accepted; a delivery report will follow.
    Queued,
    /// The bounded in-flight window is full: poll and retry.
    Full,
    /// Rejected at once; the kind of error.
    Failed(String),
}

/// One producer instance, used from one thread.
pub trait Publisher {
    /// Hands over a message (with its key, if any); never blocks.
    fn send(&mut self, payload: &[u8], key: Option<&[u8]>, stamp: Stamp) -> Sent;
    /// Serves delivery reports and statistics for up to `timeout`.
    fn poll(&mut self, timeout: Duration);
    /// Waits until everything queued is delivered or failed.
    fn flush(&mut self, timeout: Duration) -> std::result::Result<(), String>;
    /// Drops everything queued (a step that is being abandoned).
    fn purge(&mut self);
}

/// A system under load.
pub trait Target: Send + Sync {
    /// For the report.
    fn info(&self) -> TargetInfo;
    /// Where the tool's own consumer reads from.
    fn consumer_bootstrap(&self) -> String;
    /// Extra properties for the tool's own consumer.
    fn consumer_properties(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Creates `topic` and waits until its metadata is visible. Returns what the cluster did
    /// differently from what was asked (a replication factor it does not keep, a topic
    /// config it ignores), for the report.
    fn create_topic(&self, topic: &str, spec: &TopicSpec) -> Result<Vec<String>>;
    /// Deletes `topic` (best effort; some brokers cannot).
    fn delete_topic(&self, topic: &str) -> Result<()>;
    /// Opens a publisher for one producer thread of `step`; its reports go to `recorder`.
    fn publisher(
        &self,
        scenario: &Scenario,
        step: &StepConfig,
        topic: &str,
        recorder: Arc<Recorder>,
        stats_interval: Duration,
    ) -> Result<Box<dyn Publisher>>;
    /// Called when the measured phase starts (fault injection hooks in here).
    fn measured_phase_started(&self) {}
    /// Called when the measured phase ends.
    fn measured_phase_ended(&self) {}
}
