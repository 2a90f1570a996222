//! `drain`: the subscribe side, through a pluggable component's `PullMessages` as daprd drives
//! it, next to librdkafka's own consumer on the same cluster.
//!
//! ```text
//!  per run (direct, then one per --ack behaviour), on a fresh topic:
//!   fill ─► N stamped messages (librdkafka producer, as fast as it goes)      "the backlog"
//!   drain ─► direct:    group consumer (fresh group, earliest) polls ─────────┐
//!            component: Init{consumerGroup, initialOffset=oldest, …}          │ per message:
//!                       PullMessages: Topic{rawPayload} then acks ──────────┤ seq + stamp
//!   live  ─► once the backlog is drained, R msgs/s for D more; each first     │ from the payload
//!            delivery's latency = delivery wall clock − stamp (≈ Kafka append)┘
//!   lag   ─► every second: produced so far − completed (acked, or dead-lettered)
//!   dlq   ─► nack runs: the dead-letter topic is read back from Kafka and counted
//! ```
//!
//! **Ack behaviours** (`--ack`), as daprd versions differ:
//! - `serial`: take one message, (handle it for `--handle-time`), ack, take the next — daprd
//!   1.16–1.18;
//! - `window=N`: take up to N messages that are already there, handle them together, ack them
//!   in reverse order (acks arrive in any order) — N in flight on the stream;
//! - `nack=P%`: serial, but P % of the messages (sequence numbers `seq % 100 < P`) are poison:
//!   nacked on every delivery. `Init` carries `maxRetries`, `retryBackoff` and
//!   `deadLetterTopic` (a fresh `<topic>-dlq`); a poison message is complete after
//!   `maxRetries + 1` deliveries, and the report counts redeliveries and what reached the
//!   dead-letter topic.
//!
//! **Latency.** The payload carries its sequence number and the wall clock (µs) at which the
//! tool handed it to librdkafka, linger 0, on loopback: that is Kafka's append time to within a
//! round trip, and finer than the record's `__timestamp` (milliseconds, CreateTime). Delivery
//! latency is only measured in the live phase (a backlog's age says nothing about the path).
//! Both sides wait for data with the consumer's `fetch.wait.max.ms` (`--fetch-wait-max`,
//! passed to the bridge as `kafka.fetch.wait.max.ms`): on brokers that hold an empty fetch for
//! the whole wait (Tansu, the mock) it bounds the latency from below, so it is in the report.
//!
//! **Drain rate** is the backlog divided by the time from the first delivery to the last
//! completion; the time to the first message (group join, assignment) is reported apart.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use clap::Args as ClapArgs;
use dapr_kafka_proto::components::{AckMessageError, PullMessagesRequest, Topic};
use futures::{FutureExt, StreamExt};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::histogram::{self, Latency, Percentiles};
use crate::target::component::{ComponentOptions, ComponentTarget};
use crate::target::process::{ProcessCost, ProcessMeter, SpawnedBridge};
use crate::target::{DirectKafka, PhaseHooks, Target, TargetInfo, TopicSpec};

/// The format tag of `drain.json`.
pub const FORMAT: &str = "kafka-loadgen-drain/1";

/// Bytes of the stamp at the start of every payload: sequence number, then wall-clock µs.
pub const STAMP: usize = 16;

/// `drain` flags.
#[derive(Debug, Clone, ClapArgs)]
pub struct DrainArgs {
    /// Kafka bootstrap servers; without it the run uses librdkafka's in-process mock cluster.
    #[arg(long, env = "LOADGEN_BROKERS")]
    pub brokers: Option<String>,
    /// Component: the pluggable component's socket (`<folder>/<name>.sock`).
    #[arg(long, env = "LOADGEN_SOCKET", conflicts_with = "spawn_bridge")]
    pub socket: Option<PathBuf>,
    /// Component: start the bridge binary on a private temporary socket.
    #[arg(long)]
    pub spawn_bridge: bool,
    /// The bridge binary for `--spawn-bridge` (default: `$BRIDGE_BIN`, next to this executable,
    /// then PATH).
    #[arg(long, env = "BRIDGE_BIN")]
    pub bridge_bin: Option<PathBuf>,
    /// Component: the `x-component-instance` header.
    #[arg(long, default_value = "loadgen")]
    pub component_instance: String,
    /// Component: extra `Init` metadata `key=value` (repeatable), applied last.
    #[arg(long = "component-metadata")]
    pub component_metadata: Vec<String>,
    /// Component: its process id when started elsewhere, for CPU and peak RSS.
    #[arg(long)]
    pub component_pid: Option<u32>,
    /// Component: deadline of reflection, `Init` and `Features`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub init_timeout: Duration,
    /// Ack behaviours of the component runs: `serial`, `window=N`, `nack=P%` (comma-separated).
    #[arg(long, default_value = "serial,window=64,nack=10%")]
    pub ack: String,
    /// Skip the direct librdkafka consumer's run.
    #[arg(long)]
    pub no_direct: bool,
    /// Backlog: messages written before the drain starts.
    #[arg(long, default_value_t = 20_000)]
    pub messages: u64,
    /// Payload size (at least 16 B: the stamp).
    #[arg(long, default_value = "100")]
    pub message_size: String,
    /// Partitions of each run's topic.
    #[arg(long, default_value_t = 2)]
    pub partitions: u32,
    /// Live phase after the drain: messages per second (0: no live phase, no delivery latency).
    #[arg(long, default_value_t = 500)]
    pub live_rate: u64,
    /// Live phase length.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    pub live_duration: Duration,
    /// Simulated handler time per message (serial) or per window.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub handle_time: Duration,
    /// nack runs: the bridge's `maxRetries`.
    #[arg(long, default_value_t = 2)]
    pub max_retries: u32,
    /// nack runs: the bridge's `retryBackoff` (first redelivery delay; it doubles).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10ms")]
    pub retry_backoff: Duration,
    /// The consumers' `fetch.wait.max.ms` (direct and, as `kafka.fetch.wait.max.ms`, the bridge).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10ms")]
    pub fetch_wait_max: Duration,
    /// A run ends as incomplete when nothing arrived for this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    pub idle_timeout: Duration,
    /// Output directory (default `loadgen-results/drain-<time>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// How the subscriber acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AckMode {
    /// One at a time.
    Serial,
    /// Up to N in flight.
    Window(u32),
    /// Serial; this percentage is poison (nacked on every delivery).
    Nack(u32),
}

impl std::fmt::Display for AckMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AckMode::Serial => write!(f, "serial"),
            AckMode::Window(n) => write!(f, "window={n}"),
            AckMode::Nack(p) => write!(f, "nack={p}%"),
        }
    }
}

impl std::str::FromStr for AckMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<AckMode> {
        let s = s.trim();
        let bad = || Error::invalid(format!("ack behaviour `{s}` is not serial, window=N (N ≥ 1) or nack=P% (0–100)"));
        if s == "serial" {
            return Ok(AckMode::Serial);
        }
        if let Some(n) = s.strip_prefix("window=") {
            return n.parse().ok().filter(|n| *n >= 1).map(AckMode::Window).ok_or_else(bad);
        }
        if let Some(p) = s.strip_prefix("nack=") {
            return p.trim_end_matches('%').parse().ok().filter(|p| *p <= 100).map(AckMode::Nack).ok_or_else(bad);
        }
        Err(bad())
    }
}

impl AckMode {
    fn window(self) -> usize {
        match self {
            AckMode::Window(n) => n as usize,
            _ => 1,
        }
    }

    /// Whether `seq` is poison in this mode.
    pub fn poison(self, seq: u64) -> bool {
        matches!(self, AckMode::Nack(p) if seq % 100 < u64::from(p))
    }
}

/// What a drain run does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainSpec {
    /// Backlog size.
    pub messages: u64,
    /// Payload bytes.
    pub message_size: usize,
    /// Partitions.
    pub partitions: u32,
    /// Component runs.
    pub acks: Vec<AckMode>,
    /// Run the direct consumer too.
    pub direct: bool,
    /// Live phase rate (0: none).
    pub live_rate: u64,
    /// Live phase length.
    pub live_duration: Duration,
    /// Handler time.
    pub handle_time: Duration,
    /// `maxRetries` of nack runs.
    pub max_retries: u32,
    /// `retryBackoff` of nack runs.
    pub retry_backoff: Duration,
    /// `fetch.wait.max.ms` of both consumers.
    pub fetch_wait_max: Duration,
    /// Idle limit.
    pub idle_timeout: Duration,
}

impl DrainSpec {
    fn live_messages(&self) -> u64 {
        (self.live_rate as f64 * self.live_duration.as_secs_f64()).round() as u64
    }
}

/// One second of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LagSecond {
    /// Seconds since the run's drain started.
    pub second: u64,
    /// Messages written so far (backlog and live).
    pub produced: u64,
    /// Messages completed so far (acked, or poison that ran out of retries).
    pub completed: u64,
    /// `produced − completed`.
    pub lag: u64,
}

/// One run: the direct consumer, or the component with one ack behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainRun {
    /// `direct` or `component`.
    pub path: String,
    /// The ack behaviour (`–` for direct).
    pub ack: String,
    /// The run's topic.
    pub topic: String,
    /// `ok` or `failed`.
    pub status: String,
    /// Why it failed (incomplete, stream error, …).
    pub failure: Option<String>,
    /// What else is worth knowing.
    pub notes: Vec<String>,
    /// Backlog size.
    pub backlog: u64,
    /// Seconds from subscribing to the first delivery (group join, assignment).
    pub first_delivery_seconds: Option<f64>,
    /// Seconds from the first delivery to the backlog's last completion.
    pub drain_seconds: Option<f64>,
    /// Backlog / drain_seconds.
    pub drain_msgs_per_sec: Option<f64>,
    /// The same in MB/s of payload.
    pub drain_mb_per_sec: Option<f64>,
    /// Messages completed (backlog and live).
    pub completed: u64,
    /// Deliveries, redeliveries included.
    pub deliveries: u64,
    /// Deliveries of a message already delivered.
    pub redeliveries: u64,
    /// Acks sent (component).
    pub acked: u64,
    /// Nacks sent (component).
    pub nacked: u64,
    /// Poison messages in the backlog and live phase.
    pub poison: u64,
    /// Records found on the dead-letter topic (nack runs).
    pub dead_lettered: Option<u64>,
    /// Live-phase delivery latency (Kafka append → delivered), µs.
    pub delivery_latency: Option<Percentiles>,
    /// Lag, one entry per second.
    pub lag: Vec<LagSecond>,
    /// The component process's CPU and peak RSS over the drain (when its pid is known).
    pub process: Option<ProcessCost>,
}

/// The file `drain.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainResult {
    /// [`FORMAT`].
    pub format: String,
    /// What ran.
    pub spec: DrainSpec,
    /// Against what.
    pub target: TargetInfo,
    /// Start, RFC 3339.
    pub started_at: String,
    /// Runs in order.
    pub runs: Vec<DrainRun>,
}

fn wall_micros() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// `(seq, stamp µs)` of a payload written by this tool.
pub fn read_stamp(data: &[u8]) -> Option<(u64, u64)> {
    if data.len() < STAMP {
        return None;
    }
    let seq = u64::from_le_bytes(data[0..8].try_into().ok()?);
    let at = u64::from_le_bytes(data[8..16].try_into().ok()?);
    Some((seq, at))
}

/// Writes `seqs` to `topic`, as fast as librdkafka goes or at `rate` msgs/s (linger 0).
fn produce(
    bootstrap: &str,
    topic: &str,
    seqs: std::ops::Range<u64>,
    size: usize,
    rate: Option<u64>,
    produced: &AtomicU64,
) -> Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", if rate.is_some() { "0" } else { "5" })
        .set("queue.buffering.max.messages", "200000")
        .create()
        .map_err(|e| Error::kafka("creating the backlog producer", e))?;
    let mut buf: Vec<u8> = (0..size.max(STAMP)).map(|i| b'a' + (i % 26) as u8).collect();
    let start = Instant::now();
    for (i, seq) in seqs.enumerate() {
        if let Some(r) = rate.filter(|r| *r > 0) {
            let due = start + Duration::from_secs_f64(i as f64 / r as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        buf[0..8].copy_from_slice(&seq.to_le_bytes());
        buf[8..16].copy_from_slice(&wall_micros().to_le_bytes());
        loop {
            match producer.send(BaseRecord::<(), [u8]>::to(topic).payload(&buf[..])) {
                Ok(()) => break,
                Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(Error::kafka("writing the backlog", e)),
            }
        }
        producer.poll(Duration::ZERO);
        produced.fetch_add(1, Ordering::Relaxed);
    }
    producer.flush(Timeout::After(Duration::from_secs(60))).map_err(|e| Error::kafka("flushing the backlog", e))
}

/// Counts the records of `topic` (all partitions, from the beginning) until `expected` or
/// `idle` passes without a record.
fn count_topic(bootstrap: &str, topic: &str, expected: u64, idle: Duration) -> Result<u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{topic}-counter"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| Error::kafka("creating the dead-letter reader", e))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| Error::kafka("reading the dead-letter topic's metadata", e))?;
    let mut assignment = TopicPartitionList::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let _ = assignment.add_partition_offset(topic, p.id(), Offset::Beginning);
    }
    consumer.assign(&assignment).map_err(|e| Error::kafka("assigning the dead-letter reader", e))?;
    let mut count = 0;
    let mut last = Instant::now();
    while count < expected && last.elapsed() < idle {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            count += 1;
            last = Instant::now();
        }
    }
    // Anything beyond `expected` (duplicates) shows up within a short grace.
    let grace = Instant::now();
    while grace.elapsed() < Duration::from_millis(300) {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(50)) {
            count += 1;
        }
    }
    Ok(count)
}

/// Bookkeeping shared by both paths.
struct Tally {
    backlog: u64,
    total: u64,
    done_after: u32,
    mode: Option<AckMode>,
    deliveries_of: Vec<u16>,
    completed_of: Vec<bool>,
    completed: u64,
    backlog_completed: u64,
    deliveries: u64,
    redeliveries: u64,
    acked: u64,
    nacked: u64,
    bytes: u64,
    latency: Latency,
    subscribed: Instant,
    first: Option<Instant>,
    drained: Option<Instant>,
    last_activity: Instant,
    lag: Vec<LagSecond>,
    produced: Arc<AtomicU64>,
}

enum Verdict {
    Ack,
    Nack,
}

impl Tally {
    fn new(spec: &DrainSpec, mode: Option<AckMode>, produced: Arc<AtomicU64>) -> Tally {
        let total = spec.messages + spec.live_messages();
        Tally {
            backlog: spec.messages,
            total,
            done_after: spec.max_retries + 1,
            mode,
            deliveries_of: vec![0; total as usize],
            completed_of: vec![false; total as usize],
            completed: 0,
            backlog_completed: 0,
            deliveries: 0,
            redeliveries: 0,
            acked: 0,
            nacked: 0,
            bytes: 0,
            latency: histogram::new(),
            subscribed: Instant::now(),
            first: None,
            drained: None,
            last_activity: Instant::now(),
            lag: Vec::new(),
            produced,
        }
    }

    fn complete(&mut self, seq: u64) {
        let i = seq as usize;
        if !self.completed_of[i] {
            self.completed_of[i] = true;
            self.completed += 1;
            if seq < self.backlog {
                self.backlog_completed += 1;
                if self.backlog_completed == self.backlog {
                    self.drained = Some(Instant::now());
                }
            }
        }
    }

    /// A delivery of `data`: what the subscriber answers.
    fn delivered(&mut self, data: &[u8]) -> Verdict {
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.last_activity = now;
        self.deliveries += 1;
        self.bytes += data.len() as u64;
        let Some((seq, at)) = read_stamp(data).filter(|(seq, _)| *seq < self.total) else {
            // Not ours: ack it and move on.
            self.acked += 1;
            return Verdict::Ack;
        };
        let i = seq as usize;
        self.deliveries_of[i] = self.deliveries_of[i].saturating_add(1);
        if self.deliveries_of[i] > 1 {
            self.redeliveries += 1;
        } else if seq >= self.backlog {
            histogram::record(&mut self.latency, Duration::from_micros(wall_micros().saturating_sub(at)));
        }
        if self.mode.is_some_and(|m| m.poison(seq)) {
            self.nacked += 1;
            if u32::from(self.deliveries_of[i]) >= self.done_after {
                self.complete(seq);
            }
            Verdict::Nack
        } else {
            self.acked += 1;
            self.complete(seq);
            Verdict::Ack
        }
    }

    fn sample(&mut self) {
        let second = self.subscribed.elapsed().as_secs();
        if self.lag.last().is_none_or(|l| l.second < second) {
            let produced = self.produced.load(Ordering::Relaxed);
            self.lag.push(LagSecond {
                second,
                produced,
                completed: self.completed,
                lag: produced.saturating_sub(self.completed),
            });
        }
    }

    fn finished(&self) -> bool {
        self.completed >= self.total
    }

    fn idle(&self, limit: Duration) -> bool {
        self.last_activity.elapsed() > limit
    }

    fn into_run(mut self, run: &mut DrainRun, spec: &DrainSpec) {
        // The series ends with the final state, whatever second it falls in.
        let second = self.subscribed.elapsed().as_secs();
        if self.lag.last().is_some_and(|l| l.second == second) {
            self.lag.pop();
        }
        self.sample();
        run.first_delivery_seconds = self.first.map(|f| f.duration_since(self.subscribed).as_secs_f64());
        if let (Some(first), Some(drained)) = (self.first, self.drained) {
            let s = drained.duration_since(first).as_secs_f64().max(1e-6);
            run.drain_seconds = Some(s);
            run.drain_msgs_per_sec = Some(self.backlog as f64 / s);
            run.drain_mb_per_sec = Some(self.backlog as f64 * spec.message_size.max(STAMP) as f64 / 1e6 / s);
        }
        run.completed = self.completed;
        run.deliveries = self.deliveries;
        run.redeliveries = self.redeliveries;
        run.acked = self.acked;
        run.nacked = self.nacked;
        run.poison = self.mode.map_or(0, |m| (0..self.total).filter(|s| m.poison(*s)).count() as u64);
        run.delivery_latency = (!self.latency.is_empty()).then(|| Percentiles::of(&self.latency));
        run.lag = self.lag;
        if self.completed < self.total {
            run.status = "failed".into();
            run.failure.get_or_insert_with(|| {
                format!(
                    "incomplete: {} of {} messages completed ({} of the backlog)",
                    self.completed, self.total, self.backlog_completed
                )
            });
        }
    }
}

fn new_run(path: &str, ack: String, topic: &str, spec: &DrainSpec) -> DrainRun {
    DrainRun {
        path: path.into(),
        ack,
        topic: topic.into(),
        status: "ok".into(),
        failure: None,
        notes: Vec::new(),
        backlog: spec.messages,
        first_delivery_seconds: None,
        drain_seconds: None,
        drain_msgs_per_sec: None,
        drain_mb_per_sec: None,
        completed: 0,
        deliveries: 0,
        redeliveries: 0,
        acked: 0,
        nacked: 0,
        poison: 0,
        dead_lettered: None,
        delivery_latency: None,
        lag: Vec::new(),
        process: None,
    }
}

/// The direct path: a librdkafka group consumer drains the backlog, then reads the live phase.
fn direct_run(kafka: &DirectKafka, spec: &DrainSpec, topic: &str) -> Result<DrainRun> {
    let mut run = new_run("direct", "–".into(), topic, spec);
    let bootstrap = kafka.consumer_bootstrap();
    let produced = Arc::new(AtomicU64::new(0));
    produce(&bootstrap, topic, 0..spec.messages, spec.message_size, None, &produced)?;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("{topic}-direct"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    for (k, v) in kafka.consumer_properties() {
        config.set(k, v);
    }
    config.set("fetch.wait.max.ms", spec.fetch_wait_max.as_millis().max(1).to_string());
    let consumer: BaseConsumer = config.create().map_err(|e| Error::kafka("creating the direct consumer", e))?;
    consumer.subscribe(&[topic]).map_err(|e| Error::kafka("subscribing the direct consumer", e))?;
    let mut tally = Tally::new(spec, None, Arc::clone(&produced));
    let live_failed = std::thread::scope(|scope| {
        let mut live = None;
        while !tally.finished() && !tally.idle(spec.idle_timeout) {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                tally.delivered(m.payload().unwrap_or_default());
            }
            tally.sample();
            if live.is_none() && tally.drained.is_some() && tally.total > tally.backlog {
                let (bootstrap, produced) = (&bootstrap, &produced);
                live = Some(scope.spawn(move || {
                    produce(
                        bootstrap,
                        topic,
                        spec.messages..tally_total(spec),
                        spec.message_size,
                        Some(spec.live_rate),
                        produced,
                    )
                }));
            }
        }
        live.and_then(|h| h.join().ok()).and_then(|r| r.err())
    });
    if let Some(e) = live_failed {
        run.notes.push(format!("live producer: {e}"));
    }
    tally.into_run(&mut run, spec);
    Ok(run)
}

fn tally_total(spec: &DrainSpec) -> u64 {
    spec.messages + spec.live_messages()
}

/// The component path: `Init`, a PullMessages stream, acks as `mode` says.
fn component_run(component: &ComponentTarget, spec: &DrainSpec, mode: AckMode, topic: &str) -> Result<DrainRun> {
    let kafka = component.kafka();
    let bootstrap = kafka.consumer_bootstrap();
    let mut run = new_run("component", mode.to_string(), topic, spec);
    let mut properties: HashMap<String, String> = HashMap::new();
    properties.insert("brokers".into(), bootstrap.clone());
    properties.insert("consumerGroup".into(), format!("{topic}-component"));
    properties.insert("initialOffset".into(), "oldest".into());
    properties.insert("kafka.fetch.wait.max.ms".into(), spec.fetch_wait_max.as_millis().max(1).to_string());
    let dlq = format!("{topic}-dlq");
    if matches!(mode, AckMode::Nack(_)) {
        kafka.create_topic(&dlq, &TopicSpec { partitions: 1, replication_factor: 1, min_insync_replicas: 1 })?;
        properties.insert("maxRetries".into(), spec.max_retries.to_string());
        properties.insert("retryBackoff".into(), format!("{}ms", spec.retry_backoff.as_millis().max(1)));
        properties.insert("deadLetterTopic".into(), dlq.clone());
    }
    let mut keys: Vec<String> = properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
    keys.sort();
    run.notes.push(format!("fresh Init with {}", keys.join(" ")));
    component.init_with(properties)?;

    let produced = Arc::new(AtomicU64::new(0));
    produce(&bootstrap, topic, 0..spec.messages, spec.message_size, None, &produced)?;
    let meter = component.process(&crate::scenario::StepConfig::default()).map(ProcessMeter::new);
    let mut tally = Tally::new(spec, Some(mode), Arc::clone(&produced));
    let live_started = AtomicBool::new(false);
    let outcome: std::result::Result<Option<String>, String> = std::thread::scope(|scope| {
        let mut live = None;
        let result = component.runtime().block_on(async {
            let (tx, rx) = tokio::sync::mpsc::channel::<PullMessagesRequest>(4096);
            let first = PullMessagesRequest {
                topic: Some(Topic {
                    name: topic.to_owned(),
                    metadata: HashMap::from([("rawPayload".into(), "true".into())]),
                }),
                ack_message_id: String::new(),
                ack_error: None,
            };
            tx.send(first).await.map_err(|_| "the request stream closed".to_owned())?;
            let outbound = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
            if let Some(m) = &meter {
                m.measured_phase_started();
            }
            let mut inbound = component
                .client()
                .pull_messages(component.with_instance(outbound, None))
                .await
                .map_err(|s| format!("PullMessages failed: {:?}: {}", s.code(), s.message()))?
                .into_inner();
            let mut ended = false;
            while !tally.finished() && !ended {
                let first = match tokio::time::timeout(Duration::from_millis(200), inbound.next()).await {
                    Err(_) => {
                        tally.sample();
                        if tally.idle(spec.idle_timeout) {
                            break;
                        }
                        continue;
                    }
                    Ok(None) => return Err("the component ended the PullMessages stream".to_owned()),
                    Ok(Some(Err(s))) => {
                        return Err(format!("PullMessages stream failed: {:?}: {}", s.code(), s.message()));
                    }
                    Ok(Some(Ok(m))) => m,
                };
                let mut batch = vec![(tally.delivered(&first.data), first.id)];
                while batch.len() < mode.window() {
                    match inbound.next().now_or_never() {
                        Some(Some(Ok(m))) => batch.push((tally.delivered(&m.data), m.id)),
                        Some(_) => {
                            ended = true;
                            break;
                        }
                        None => break,
                    }
                }
                if !spec.handle_time.is_zero() {
                    tokio::time::sleep(spec.handle_time).await;
                }
                // Acks in any order: a window answers newest first.
                for (verdict, id) in batch.into_iter().rev() {
                    let ack_error = match verdict {
                        Verdict::Ack => None,
                        Verdict::Nack => Some(AckMessageError { message: "loadgen: poison message".into() }),
                    };
                    let ack = PullMessagesRequest { topic: None, ack_message_id: id, ack_error };
                    tx.send(ack).await.map_err(|_| "the request stream closed".to_owned())?;
                }
                tally.sample();
                if tally.drained.is_some() {
                    if let Some(m) = &meter {
                        m.measured_phase_ended();
                    }
                    if tally.total > tally.backlog && !live_started.swap(true, Ordering::Relaxed) {
                        let (bootstrap, produced) = (&bootstrap, &produced);
                        live = Some(scope.spawn(move || {
                            produce(
                                bootstrap,
                                topic,
                                spec.messages..tally_total(spec),
                                spec.message_size,
                                Some(spec.live_rate),
                                produced,
                            )
                        }));
                    }
                }
            }
            drop(tx);
            Ok(())
        });
        let live_error = live.and_then(|h| h.join().ok()).and_then(|r| r.err()).map(|e| e.to_string());
        result.map(|()| live_error)
    });
    match outcome {
        Ok(Some(live_error)) => run.notes.push(format!("live producer: {live_error}")),
        Ok(None) => {}
        Err(why) => {
            run.status = "failed".into();
            run.failure = Some(why);
        }
    }
    if let Some(m) = &meter {
        run.process = m.finish(tally.backlog_completed * spec.message_size.max(STAMP) as u64);
    }
    tally.into_run(&mut run, spec);
    if matches!(mode, AckMode::Nack(_)) {
        let expected = run.poison;
        run.dead_lettered = Some(count_topic(&bootstrap, &dlq, expected, Duration::from_secs(5))?);
    }
    Ok(run)
}

/// Runs the direct drain (unless `spec.direct` is false) and one component drain per ack
/// behaviour, each on a fresh topic. The component runs' topics (and dead-letter topics) are
/// left in place: the component still holds their subscriptions, and deleting a topic under a
/// live subscription crashes the bridge on Tansu (SIGSEGV, seen while building this). Call
/// [`cleanup`] once the component is gone.
pub fn run(kafka: &DirectKafka, component: Option<&ComponentTarget>, spec: &DrainSpec) -> Result<DrainResult> {
    if spec.message_size < STAMP {
        return Err(Error::invalid(format!("--message-size must be at least {STAMP} B (the stamp)")));
    }
    if spec.messages == 0 {
        return Err(Error::invalid("--messages must be at least 1"));
    }
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let run_id = crate::sweep::run_id();
    let topic_spec = TopicSpec { partitions: spec.partitions.max(1), replication_factor: 1, min_insync_replicas: 1 };
    let mut runs = Vec::new();
    let mut plan: Vec<Option<AckMode>> = Vec::new();
    if spec.direct {
        plan.push(None);
    }
    if component.is_some() {
        plan.extend(spec.acks.iter().copied().map(Some));
    }
    for (i, mode) in plan.into_iter().enumerate() {
        let topic = format!("loadgen-drain-{run_id}-{:02}", i + 1);
        let mut notes = kafka.create_topic(&topic, &topic_spec)?;
        let result = match (mode, component) {
            (None, _) => direct_run(kafka, spec, &topic),
            (Some(mode), Some(c)) => component_run(c, spec, mode, &topic),
            (Some(_), None) => unreachable!("component runs are planned only with a component"),
        };
        let mut run = result.unwrap_or_else(|e| {
            let mut r = new_run(
                if mode.is_some() { "component" } else { "direct" },
                mode.map_or("–".into(), |m| m.to_string()),
                &topic,
                spec,
            );
            r.status = "failed".into();
            r.failure = Some(e.to_string());
            r
        });
        run.notes.append(&mut notes);
        if let (true, Some(bridge)) = (run.status != "ok", component.and_then(ComponentTarget::spawned_bridge)) {
            run.notes.push(bridge.post_mortem(8));
        }
        if mode.is_none() {
            if let Err(e) = kafka.delete_topic(&topic) {
                run.notes.push(format!("topic not deleted: {e}"));
            }
        }
        runs.push(run);
    }
    let target = match component {
        Some(c) => c.info(),
        None => kafka.info(),
    };
    Ok(DrainResult { format: FORMAT.into(), spec: spec.clone(), target, started_at, runs })
}

/// Deletes the topics of `result`'s component runs (after the component stopped).
pub fn cleanup(kafka: &DirectKafka, result: &mut DrainResult) {
    for run in result.runs.iter_mut().filter(|r| r.path == "component") {
        let mut topics = vec![run.topic.clone()];
        if run.dead_lettered.is_some() {
            topics.push(format!("{}-dlq", run.topic));
        }
        for topic in topics {
            match kafka.delete_topic(&topic) {
                Ok(()) => {}
                Err(e) => run.notes.push(format!("topic {topic} not deleted: {e}")),
            }
        }
    }
}

/// The spec of a command line.
pub fn spec_of(args: &DrainArgs) -> Result<DrainSpec> {
    Ok(DrainSpec {
        messages: args.messages,
        message_size: crate::cli::parse_size(&args.message_size)? as usize,
        partitions: args.partitions,
        acks: args.ack.split(',').filter(|s| !s.trim().is_empty()).map(str::parse).collect::<Result<_>>()?,
        direct: !args.no_direct,
        live_rate: args.live_rate,
        live_duration: args.live_duration,
        handle_time: args.handle_time,
        max_retries: args.max_retries,
        retry_backoff: args.retry_backoff,
        fetch_wait_max: args.fetch_wait_max,
        idle_timeout: args.idle_timeout,
    })
}

/// Runs `drain` from the command line and writes `drain.json`, `drain.md` and `drain.html`.
pub fn drain_command(args: &DrainArgs) -> Result<DrainResult> {
    let spec = spec_of(args)?;
    let kafka = Arc::new(match &args.brokers {
        Some(b) => DirectKafka::connect(b, Duration::from_secs(10))?,
        None => {
            eprintln!("No --brokers: running on librdkafka's in-process mock cluster.");
            DirectKafka::embedded(1, None)?
        }
    });
    let component = if args.spawn_bridge || args.socket.is_some() {
        let bridge = if args.spawn_bridge {
            Some(SpawnedBridge::start(&SpawnedBridge::locate(args.bridge_bin.as_deref()), Duration::from_secs(30))?)
        } else {
            None
        };
        let socket =
            bridge.as_ref().map(|b| b.socket().to_owned()).or_else(|| args.socket.clone()).expect("one of them");
        let mut metadata = Vec::new();
        for kv in &args.component_metadata {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| Error::invalid(format!("--component-metadata `{kv}` is not key=value")))?;
            metadata.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        let options = ComponentOptions {
            socket,
            instance: args.component_instance.clone(),
            metadata,
            foreign: false,
            init_timeout: args.init_timeout,
            pid: args.component_pid,
        };
        Some(ComponentTarget::connect(Arc::clone(&kafka), options, bridge)?)
    } else {
        eprintln!("No --socket or --spawn-bridge: only the direct consumer runs.");
        None
    };
    let mut result = run(&kafka, component.as_ref(), &spec)?;
    let spawned = component.as_ref().is_some_and(|c| c.spawned_bridge().is_some());
    drop(component);
    if spawned || args.socket.is_none() {
        cleanup(&kafka, &mut result);
    } else {
        eprintln!(
            "The component runs' topics are left in place: the component at --socket still subscribes to them \
             (loadgen-drain-*)."
        );
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string().replace(':', "-");
        PathBuf::from("loadgen-results").join(format!("drain-{stamp}"))
    });
    let files = write_all(&result, &out)?;
    println!("{}", markdown(&result));
    for f in files {
        println!("  {}", f.display());
    }
    Ok(result)
}

/// Writes `drain.json`, `drain.md`, `drain.html` into `out`.
pub fn write_all(result: &DrainResult, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(format!("creating {}", out.display()), e))?;
    let json = out.join("drain.json");
    let text = serde_json::to_string_pretty(result).map_err(|e| Error::Step(format!("encoding drain.json: {e}")))?;
    crate::report::write(&json, &text)?;
    let md = out.join("drain.md");
    crate::report::write(&md, &markdown(result))?;
    let html = out.join("drain.html");
    crate::report::write(
        &html,
        &format!(
            "<!doctype html><meta charset=utf-8><title>drain</title><style>body{{font-family:sans-serif}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}</style>{}",
            crate::report::paths::markdown_to_html(&markdown(result))
        ),
    )?;
    Ok(vec![json, md, html])
}

fn ms(micros: u64) -> String {
    format!("{:.2}", micros as f64 / 1000.0)
}

/// The Markdown report: the subscribe paths side by side.
pub fn markdown(result: &DrainResult) -> String {
    let s = &result.spec;
    let mut md = String::new();
    let _ = writeln!(md, "## Subscribe paths compared: PullMessages through the component vs the direct consumer\n");
    let _ = writeln!(
        md,
        "Backlog of {} × {} B on {} partition(s), then a live phase of {} msgs/s for {:?}; `fetch.wait.max.ms` = {} ms \
         on both paths (on Tansu and the mock it bounds delivery latency from below). Target: {}.\n",
        s.messages,
        s.message_size,
        s.partitions,
        s.live_rate,
        s.live_duration,
        s.fetch_wait_max.as_millis(),
        result.target.description
    );
    let direct = result.runs.iter().find(|r| r.path == "direct").and_then(|r| r.drain_msgs_per_sec);
    let _ = writeln!(
        md,
        "| path | ack | status | first msg (s) | drain msgs/s | vs direct | drain MB/s | delivery p50 ms | p99 | p99.9 | max | deliveries | redeliveries | nacked | dead-lettered | CPU millicores per MB/s | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in &result.runs {
        let f = |v: Option<f64>, d: usize| v.map_or("–".to_owned(), |v| format!("{v:.d$}"));
        let lat = r.delivery_latency;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.path,
            r.ack,
            if r.status == "ok" {
                "ok".to_owned()
            } else {
                format!("**failed**: {}", r.failure.clone().unwrap_or_default())
            },
            f(r.first_delivery_seconds, 2),
            f(r.drain_msgs_per_sec, 0),
            match (direct, r.drain_msgs_per_sec) {
                (Some(d), Some(x)) if d > 0.0 && r.path != "direct" => format!("{:.2}×", x / d),
                _ => "–".into(),
            },
            f(r.drain_mb_per_sec, 2),
            lat.filter(|l| histogram::supports(l.count, 0.5)).map_or("–".into(), |l| ms(l.p50)),
            lat.filter(|l| histogram::supports(l.count, 0.99)).map_or("–".into(), |l| ms(l.p99)),
            lat.filter(|l| histogram::supports(l.count, 0.999)).map_or("–".into(), |l| ms(l.p999)),
            lat.map_or("–".into(), |l| ms(l.max)),
            r.deliveries,
            r.redeliveries,
            r.nacked,
            r.dead_lettered.map_or("–".into(), |d| format!("{d} of {} poison", r.poison)),
            r.process.as_ref().and_then(|p| p.millicores_per_mb_s).map_or("–".into(), |m| format!("{m:.0}")),
            r.process
                .as_ref()
                .and_then(|p| p.peak_rss_bytes)
                .map_or("–".into(), |b| format!("{:.1} MiB", b as f64 / (1 << 20) as f64)),
        );
    }
    let _ = writeln!(md, "\n### Lag over time (produced − completed, one value per second)\n");
    let _ = writeln!(md, "| path | ack | lag per second |\n|---|---|---|");
    for r in &result.runs {
        let series: Vec<String> = r.lag.iter().map(|l| l.lag.to_string()).collect();
        let _ = writeln!(md, "| {} | {} | {} |", r.path, r.ack, series.join(" "));
    }
    let notes: Vec<String> =
        result.runs.iter().flat_map(|r| r.notes.iter().map(move |n| format!("- {} {}: {n}", r.path, r.ack))).collect();
    if !notes.is_empty() {
        let _ = writeln!(md, "\n### Notes\n\n{}", notes.join("\n"));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_modes_parse_and_name_bad_input() {
        assert_eq!("serial".parse::<AckMode>().unwrap(), AckMode::Serial);
        assert_eq!("window=16".parse::<AckMode>().unwrap(), AckMode::Window(16));
        assert_eq!("nack=10%".parse::<AckMode>().unwrap(), AckMode::Nack(10));
        for bad in ["window=0", "nack=200%", "sometimes"] {
            assert!(bad.parse::<AckMode>().unwrap_err().to_string().contains(bad), "{bad}");
        }
        assert_eq!(AckMode::Nack(10).to_string(), "nack=10%");
        assert_eq!((0..1000).filter(|s| AckMode::Nack(10).poison(*s)).count(), 100);
    }

    #[test]
    fn a_poison_message_completes_after_its_last_retry_and_counts_redeliveries() {
        let spec = DrainSpec {
            messages: 2,
            message_size: 16,
            partitions: 1,
            acks: vec![],
            direct: false,
            live_rate: 0,
            live_duration: Duration::ZERO,
            handle_time: Duration::ZERO,
            max_retries: 2,
            retry_backoff: Duration::ZERO,
            fetch_wait_max: Duration::ZERO,
            idle_timeout: Duration::from_secs(1),
        };
        let mut t = Tally::new(&spec, Some(AckMode::Nack(1)), Arc::new(AtomicU64::new(2)));
        let msg = |seq: u64| {
            let mut d = seq.to_le_bytes().to_vec();
            d.extend_from_slice(&wall_micros().to_le_bytes());
            d
        };
        assert!(matches!(t.delivered(&msg(0)), Verdict::Nack));
        assert!(matches!(t.delivered(&msg(1)), Verdict::Ack));
        assert!(matches!(t.delivered(&msg(0)), Verdict::Nack));
        assert!(!t.finished());
        assert!(matches!(t.delivered(&msg(0)), Verdict::Nack));
        assert!(t.finished() && t.drained.is_some());
        let mut run = new_run("component", "nack=1%".into(), "t", &spec);
        t.into_run(&mut run, &spec);
        assert_eq!((run.deliveries, run.redeliveries, run.nacked, run.acked, run.poison), (4, 2, 3, 1, 1));
        assert_eq!(run.status, "ok");
    }
}
