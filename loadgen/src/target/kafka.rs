//! The direct-Kafka target: librdkafka producers against a cluster, or against the
//! in-process mock cluster (the embedded default).
//!
//! Each publisher is a `BaseProducer` driven by its worker thread, as `rdkafka_performance`
//! drives it: `produce` never blocks, a full queue (`queue.buffering.max.messages`, the
//! closed-loop in-flight bound) returns `QueueFull` and the worker polls to make room, and
//! delivery reports run on the worker's thread during `poll`. The delivery opaque is the
//! message's [`Stamp`] (a plain integer), so the hot path allocates nothing per message
//! beyond what librdkafka copies.
//!
//! Topics on real brokers are created and deleted through the admin API. The mock cluster
//! does not serve CreateTopics, so for it topics are made through the cluster handle; it
//! cannot delete them, but keeps at most 5 MB per partition, so memory stays bounded.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig};

use super::mock::MockKafka;
use super::{PhaseHooks, Publisher, Sent, Target, TargetInfo, TopicSpec};
use crate::driver::{Recorder, Stamp};
use crate::error::{Error, Result};
use crate::scenario::{Scenario, StepConfig};

/// A stall injected into the embedded cluster: `after` into the measured phase every broker
/// answers with a round-trip delay of `length`, for `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// Delay from the start of the measured phase.
    pub after: Duration,
    /// Length of the stall and the injected round trip.
    pub length: Duration,
}

enum Topics {
    Admin(AdminClient<DefaultClientContext>),
    Embedded(Arc<MockKafka>),
}

/// Producers straight to Kafka.
pub struct DirectKafka {
    bootstrap: String,
    topics: Topics,
    timeout: Duration,
    brokers: usize,
    stall: Option<Stall>,
    stall_thread: Mutex<Option<JoinHandle<()>>>,
    message_max_bytes: Option<u64>,
    facts: Vec<String>,
}

impl DirectKafka {
    /// A real cluster at `bootstrap`; fails if it does not answer within `timeout`.
    pub fn connect(bootstrap: &str, timeout: Duration) -> Result<DirectKafka> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .map_err(|e| Error::kafka("creating the admin client", e))?;
        let metadata = admin
            .inner()
            .fetch_metadata(None, timeout)
            .map_err(|e| Error::kafka(format!("cannot reach Kafka at {bootstrap}"), e))?;
        let broker_ids: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
        let mut facts = Vec::new();
        let message_max_bytes =
            match read_broker_config(&admin, broker_ids.first().copied(), "message.max.bytes", timeout) {
                Ok(v) => {
                    facts.push(format!("broker message.max.bytes = {v} (read with DescribeConfigs)"));
                    Some(v)
                }
                Err(why) => {
                    facts.push(format!("broker message.max.bytes could not be read ({why}); assumed 1000000"));
                    None
                }
            };
        Ok(DirectKafka {
            bootstrap: bootstrap.to_owned(),
            brokers: metadata.brokers().len(),
            topics: Topics::Admin(admin),
            timeout,
            stall: None,
            stall_thread: Mutex::new(None),
            message_max_bytes,
            facts,
        })
    }

    /// The mock cluster, when this is the embedded target (for injecting round-trip time).
    pub fn mock(&self) -> Option<&MockKafka> {
        match &self.topics {
            Topics::Embedded(cluster) => Some(cluster),
            Topics::Admin(_) => None,
        }
    }

    /// The embedded default: a mock cluster of `brokers` brokers in this process.
    pub fn embedded(brokers: i32, stall: Option<Stall>) -> Result<DirectKafka> {
        let cluster = MockKafka::start(brokers)?;
        Ok(DirectKafka {
            bootstrap: cluster.bootstrap().to_owned(),
            brokers: brokers.max(0) as usize,
            topics: Topics::Embedded(Arc::new(cluster)),
            timeout: Duration::from_secs(10),
            stall: None,
            stall_thread: Mutex::new(None),
            message_max_bytes: None,
            facts: vec![
                "the mock cluster does not serve DescribeConfigs: message.max.bytes assumed 1000000".into(),
                "the mock cluster keeps replicas in its metadata but ignores min.insync.replicas".into(),
            ],
        }
        .with_stall(stall))
    }

    fn with_stall(mut self, stall: Option<Stall>) -> Self {
        self.stall = stall;
        self
    }

    /// Waits until `topic` has `partitions`; returns the replicas per partition it reports.
    fn wait_for_topic(&self, topic: &str, partitions: u32) -> Result<usize> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .map_err(|e| Error::kafka("creating a metadata client", e))?;
        let started = Instant::now();
        loop {
            let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(2));
            if let Ok(m) = &md
                && let Some(t) = m.topics().first()
                && t.error().is_none()
                && t.partitions().len() == partitions as usize
            {
                return Ok(t.partitions().iter().map(|p| p.replicas().len()).min().unwrap_or(0));
            }
            if started.elapsed() > self.timeout {
                return Err(Error::Step(format!(
                    "topic {topic} did not appear with {partitions} partitions within {:?}",
                    self.timeout
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Target for DirectKafka {
    fn info(&self) -> TargetInfo {
        match self.topics {
            Topics::Embedded(_) => TargetInfo {
                kind: "embedded-mock".into(),
                bootstrap: self.bootstrap.clone(),
                brokers: self.brokers,
                in_process: true,
                description: "librdkafka's in-process mock cluster (no --brokers given). An in-process broker \
                              measures client-side costs only: no disk, no replication, no real network."
                    .into(),
                message_max_bytes: self.message_max_bytes,
                facts: self.facts.clone(),
            },
            Topics::Admin(_) => TargetInfo {
                kind: "kafka".into(),
                bootstrap: self.bootstrap.clone(),
                brokers: self.brokers,
                in_process: false,
                description: format!(
                    "Kafka at {} ({} brokers), producing directly with librdkafka",
                    self.bootstrap, self.brokers
                ),
                message_max_bytes: self.message_max_bytes,
                facts: self.facts.clone(),
            },
        }
    }

    fn consumer_bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    fn consumer_properties(&self) -> Vec<(String, String)> {
        match self.topics {
            // The mock holds an empty fetch for the full fetch.wait.max.ms even when data
            // arrives meanwhile (a real broker answers as soon as fetch.min.bytes are there),
            // so a long wait would show up as end-to-end latency that real Kafka does not have.
            Topics::Embedded(_) => vec![("fetch.wait.max.ms".into(), "5".into())],
            Topics::Admin(_) => Vec::new(),
        }
    }

    fn create_topic(&self, topic: &str, spec: &TopicSpec) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        match &self.topics {
            Topics::Embedded(cluster) => {
                cluster.create_topic(topic, spec.partitions as i32, spec.replication_factor as i32)?
            }
            Topics::Admin(admin) => {
                let options =
                    AdminOptions::new().operation_timeout(Some(self.timeout)).request_timeout(Some(self.timeout));
                let min_isr = spec.min_insync_replicas.to_string();
                let new = NewTopic::new(
                    topic,
                    spec.partitions as i32,
                    TopicReplication::Fixed(spec.replication_factor as i32),
                )
                .set("min.insync.replicas", &min_isr);
                let results = futures::executor::block_on(admin.create_topics(&[new], &options))
                    .map_err(|e| Error::kafka(format!("creating topic {topic}"), e))?;
                for result in results {
                    result.map_err(|(t, code)| Error::Step(format!("creating topic {t}: {code}")))?;
                }
            }
        }
        let replicas = self.wait_for_topic(topic, spec.partitions)?;
        if replicas < spec.replication_factor as usize {
            notes.push(format!(
                "the cluster keeps {replicas} replica(s) per partition for a requested replication factor of {}: \
                 acks=all waits for fewer copies than asked",
                spec.replication_factor
            ));
        }
        if let Topics::Admin(admin) = &self.topics {
            match read_config(admin, ResourceSpecifier::Topic(topic), "min.insync.replicas", self.timeout) {
                Ok(v) if v == u64::from(spec.min_insync_replicas) => {}
                Ok(v) => notes.push(format!(
                    "the topic reports min.insync.replicas = {v}, not the requested {}",
                    spec.min_insync_replicas
                )),
                Err(why) => notes.push(format!("min.insync.replicas could not be verified ({why})")),
            }
        }
        Ok(notes)
    }

    fn delete_topic(&self, topic: &str) -> Result<()> {
        match &self.topics {
            Topics::Embedded(_) => Ok(()),
            Topics::Admin(admin) => {
                let options =
                    AdminOptions::new().operation_timeout(Some(self.timeout)).request_timeout(Some(self.timeout));
                let results = futures::executor::block_on(admin.delete_topics(&[topic], &options))
                    .map_err(|e| Error::kafka(format!("deleting topic {topic}"), e))?;
                for result in results {
                    result.map_err(|(t, code)| Error::Step(format!("deleting topic {t}: {code}")))?;
                }
                Ok(())
            }
        }
    }

    fn publisher(
        &self,
        scenario: &Scenario,
        step: &StepConfig,
        topic: &str,
        recorder: Arc<Recorder>,
        stats_interval: Duration,
    ) -> Result<Box<dyn Publisher>> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config.set("statistics.interval.ms", stats_interval.as_millis().to_string());
        for (key, value) in step.producer_properties(scenario) {
            config.set(key, value);
        }
        let producer: BaseProducer<LoadContext> =
            config.create_with_context(LoadContext { recorder }).map_err(|e| Error::kafka("creating a producer", e))?;
        Ok(Box::new(KafkaPublisher { producer, topic: topic.to_owned() }))
    }

    fn phase_hooks(&self) -> Option<&dyn PhaseHooks> {
        self.stall.is_some().then_some(self as &dyn PhaseHooks)
    }
}

/// `--inject-stall`: fault injection into the embedded cluster, outside the load interface.
impl PhaseHooks for DirectKafka {
    fn measured_phase_started(&self) {
        let (Some(stall), Topics::Embedded(cluster)) = (self.stall, &self.topics) else { return };
        let cluster = Arc::clone(cluster);
        let thread = std::thread::Builder::new()
            .name("loadgen-stall".into())
            .spawn(move || {
                std::thread::sleep(stall.after);
                let _ = cluster.set_round_trip_time(stall.length);
                std::thread::sleep(stall.length);
                let _ = cluster.set_round_trip_time(Duration::ZERO);
            })
            .ok();
        *self.stall_thread.lock().unwrap_or_else(|e| e.into_inner()) = thread;
    }

    fn measured_phase_ended(&self) {
        if let Some(thread) = self.stall_thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// Routes librdkafka's callbacks to the worker's recorder.
struct LoadContext {
    recorder: Arc<Recorder>,
}

impl ClientContext for LoadContext {
    fn stats_raw(&self, statistics: &[u8]) {
        self.recorder.statistics(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.recorder.client_error(&error_kind(&error), reason);
    }
}

impl ProducerContext for LoadContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let stamp = Stamp(opaque as u64);
        match result {
            Ok(message) => self.recorder.delivered(stamp, message.payload_len()),
            Err((error, _)) => self.recorder.failed(stamp, &error_kind(error)),
        }
    }
}

/// Reads one config value of a broker (`None`: the first broker) as a number.
fn read_broker_config(
    admin: &AdminClient<DefaultClientContext>,
    broker: Option<i32>,
    name: &str,
    timeout: Duration,
) -> std::result::Result<u64, String> {
    let broker = broker.ok_or("no broker in the metadata")?;
    read_config(admin, ResourceSpecifier::Broker(broker), name, timeout)
}

fn read_config(
    admin: &AdminClient<DefaultClientContext>,
    resource: ResourceSpecifier<'_>,
    name: &str,
    timeout: Duration,
) -> std::result::Result<u64, String> {
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let results =
        futures::executor::block_on(admin.describe_configs([&resource], &options)).map_err(|e| e.to_string())?;
    let resource = results.into_iter().next().ok_or("no answer")?.map_err(|code| format!("{code:?}"))?;
    let entry = resource.get(name).ok_or_else(|| format!("{name} not in the answer"))?;
    let value = entry.value.as_deref().ok_or_else(|| format!("{name} has no value"))?;
    value.trim().parse().map_err(|_| format!("{name} = `{value}` is not a number"))
}

/// A short, stable name for an error, used as the key of the error counts.
pub(crate) fn error_kind(error: &KafkaError) -> String {
    match error.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => error.to_string().split(':').next().unwrap_or("error").trim().to_owned(),
    }
}

struct KafkaPublisher {
    producer: BaseProducer<LoadContext>,
    topic: String,
}

impl Publisher for KafkaPublisher {
    fn send(&mut self, payload: &[u8], key: Option<&[u8]>, stamp: Stamp) -> Sent {
        let mut record =
            BaseRecord::<[u8], [u8], usize>::with_opaque_to(&self.topic, stamp.0 as usize).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        match self.producer.send(record) {
            Ok(()) => Sent::Queued,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Sent::Full,
            Err((error, _)) => Sent::Failed(error_kind(&error)),
        }
    }

    fn poll(&mut self, timeout: Duration) {
        self.producer.poll(timeout);
    }

    fn flush(&mut self, timeout: Duration) -> std::result::Result<(), String> {
        self.producer.flush(timeout).map_err(|e| e.to_string())
    }

    fn purge(&mut self) {
        self.producer.purge(PurgeConfig::default().queue().inflight());
        self.producer.poll(Duration::ZERO);
    }
}
