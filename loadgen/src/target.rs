//! Where the load goes: the [`Target`] trait and its peers — direct Kafka ([`DirectKafka`]),
//! a Dapr pluggable pub/sub component over its socket ([`component::ComponentTarget`], as daprd
//! drives it; optionally a bridge process the tool starts itself, [`process::SpawnedBridge`]),
//! and a Dapr sidecar's HTTP publish API ([`dapr::DaprTarget`]) — and [`Paths`], which runs
//! several of them in one sweep, interleaved (the `target` dimension picks one per step).
//!
//! Every target creates and deletes each step's topic, is configured once per step
//! ([`Target::configure`]: a component gets a fresh `Init` with the step's settings) and opens
//! [`Publisher`]s, one per producer thread. The tool's own consumer always reads the topic
//! straight from Kafka ([`Target::consumer_bootstrap`]), so end-to-end latency means the same
//! on every path: the payload's stamp survives because the bridge passes raw bytes.
//!
//! ```text
//!   worker thread ──Publisher::send──► direct:    librdkafka producer ───────────────┐
//!        ▲                             component: Publish/BulkPublish over UDS ─► bridge ─┤
//!        │                             dapr:      HTTP POST /v1.0/publish ─► daprd ─► … ─┤
//!        └──── Recorder ◄── delivery report / RPC answer ◄───────────────────────────────┘
//!   consumer thread ◄── Kafka topic (fresh per step) ── end-to-end latency
//! ```
//!
//! The trait is synchronous on purpose: the driver runs one OS thread per producer, the way
//! `rdkafka_performance` does, and the direct path's hot loop must not pay for a runtime. The
//! gRPC and HTTP targets own a tokio runtime and hand each call to it, so the driver sees the
//! same non-blocking `send`/`poll`/`flush` on every path. Fault injection is not part of the
//! trait: a target may expose [`PhaseHooks`] (the embedded cluster's `--inject-stall`).

pub mod component;
pub mod dapr;
pub mod kafka;
pub mod mock;
pub mod process;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use kafka::{DirectKafka, Stall};

use crate::driver::{Recorder, Stamp};
use crate::error::Result;
use crate::scenario::{Scenario, StepConfig, TargetKind};

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
    /// RPC targets: calls made and entries they carried (for entries per bulk call).
    fn calls(&self) -> Option<(u64, u64)> {
        None
    }
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
    /// Prepares `step` on the fresh `topic` before any publisher opens (a component gets a
    /// fresh `Init` with the step's settings). Returns notes for the report: what was applied,
    /// and what the target could not take.
    fn configure(&self, _scenario: &Scenario, _step: &StepConfig, _topic: &str) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// Opens a publisher for one producer thread of `step`; its reports go to `recorder`.
    fn publisher(
        &self,
        scenario: &Scenario,
        step: &StepConfig,
        topic: &str,
        recorder: Arc<Recorder>,
        stats_interval: Duration,
    ) -> Result<Box<dyn Publisher>>;
    /// A process on this step's path whose CPU and memory the report shows (the spawned bridge).
    fn process(&self, _step: &StepConfig) -> Option<u32> {
        None
    }
    /// Hooks at the measured phase's edges, if the target injects faults there.
    fn phase_hooks(&self) -> Option<&dyn PhaseHooks> {
        None
    }
}

/// Called at the edges of every step's measured phase (fault injection, process metering).
pub trait PhaseHooks: Sync {
    /// The measured phase starts.
    fn measured_phase_started(&self) {}
    /// The measured phase ends.
    fn measured_phase_ended(&self) {}
}

/// No hooks.
pub struct NoHooks;

impl PhaseHooks for NoHooks {}

impl<T: Target + ?Sized> Target for Arc<T> {
    fn info(&self) -> TargetInfo {
        (**self).info()
    }
    fn consumer_bootstrap(&self) -> String {
        (**self).consumer_bootstrap()
    }
    fn consumer_properties(&self) -> Vec<(String, String)> {
        (**self).consumer_properties()
    }
    fn create_topic(&self, topic: &str, spec: &TopicSpec) -> Result<Vec<String>> {
        (**self).create_topic(topic, spec)
    }
    fn delete_topic(&self, topic: &str) -> Result<()> {
        (**self).delete_topic(topic)
    }
    fn configure(&self, scenario: &Scenario, step: &StepConfig, topic: &str) -> Result<Vec<String>> {
        (**self).configure(scenario, step, topic)
    }
    fn publisher(
        &self,
        scenario: &Scenario,
        step: &StepConfig,
        topic: &str,
        recorder: Arc<Recorder>,
        stats_interval: Duration,
    ) -> Result<Box<dyn Publisher>> {
        (**self).publisher(scenario, step, topic, recorder, stats_interval)
    }
    fn process(&self, step: &StepConfig) -> Option<u32> {
        (**self).process(step)
    }
    fn phase_hooks(&self) -> Option<&dyn PhaseHooks> {
        (**self).phase_hooks()
    }
}

/// Several targets over one Kafka cluster, one per [`TargetKind`]; each step goes to the
/// target its `target` dimension names. Topics, the tool's consumer and the cluster facts come
/// from the first target (they all write to the same cluster).
pub struct Paths {
    targets: Vec<(TargetKind, Box<dyn Target>)>,
}

impl Paths {
    /// `targets` must not be empty; the first one owns topics and the consumer.
    pub fn new(targets: Vec<(TargetKind, Box<dyn Target>)>) -> Paths {
        assert!(!targets.is_empty(), "Paths needs at least one target");
        Paths { targets }
    }

    /// The kinds this runs.
    pub fn kinds(&self) -> Vec<TargetKind> {
        self.targets.iter().map(|(k, _)| *k).collect()
    }

    fn first(&self) -> &dyn Target {
        self.targets[0].1.as_ref()
    }

    fn of(&self, kind: TargetKind) -> Result<&dyn Target> {
        self.targets.iter().find(|(k, _)| *k == kind).map(|(_, t)| t.as_ref()).ok_or_else(|| {
            crate::error::Error::invalid(format!(
                "a step asks for target `{kind}`, which this run was not given (--target {})",
                self.kinds().iter().map(|k| k.to_string()).collect::<Vec<_>>().join(",")
            ))
        })
    }
}

impl Target for Paths {
    fn info(&self) -> TargetInfo {
        let mut info = self.first().info();
        if self.targets.len() > 1 || self.targets[0].0 != TargetKind::Direct {
            info.kind = self.kinds().iter().map(|k| k.to_string()).collect::<Vec<_>>().join(",");
            for (_, target) in &self.targets[1..] {
                let other = target.info();
                info.description = format!("{}; {}", info.description, other.description);
                info.facts.extend(other.facts.into_iter().filter(|f| !info.facts.contains(f)).collect::<Vec<_>>());
            }
        }
        info
    }
    fn consumer_bootstrap(&self) -> String {
        self.first().consumer_bootstrap()
    }
    fn consumer_properties(&self) -> Vec<(String, String)> {
        self.first().consumer_properties()
    }
    fn create_topic(&self, topic: &str, spec: &TopicSpec) -> Result<Vec<String>> {
        self.first().create_topic(topic, spec)
    }
    fn delete_topic(&self, topic: &str) -> Result<()> {
        self.first().delete_topic(topic)
    }
    fn configure(&self, scenario: &Scenario, step: &StepConfig, topic: &str) -> Result<Vec<String>> {
        self.of(step.target)?.configure(scenario, step, topic)
    }
    fn publisher(
        &self,
        scenario: &Scenario,
        step: &StepConfig,
        topic: &str,
        recorder: Arc<Recorder>,
        stats_interval: Duration,
    ) -> Result<Box<dyn Publisher>> {
        self.of(step.target)?.publisher(scenario, step, topic, recorder, stats_interval)
    }
    fn process(&self, step: &StepConfig) -> Option<u32> {
        self.of(step.target).ok()?.process(step)
    }
    fn phase_hooks(&self) -> Option<&dyn PhaseHooks> {
        self.targets.iter().find_map(|(_, t)| t.phase_hooks())
    }
}
