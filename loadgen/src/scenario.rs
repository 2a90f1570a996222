//! The sweep spec and its expansion into steps.
//!
//! A [`Scenario`] lists values per dimension; the sweep runs their cartesian product (or the
//! explicit [`Scenario::cases`], each filling unset fields from the first value of every
//! dimension). Every step gets a fresh topic with its own partition count and runs three
//! phases: a warm-up (connections, metadata, the first batches: not measured), a measured phase
//! (fixed duration or message count) and a cool-down (load continues, so the last measured
//! messages do not see an unusually empty pipeline; not measured).
//!
//! Validation happens here, before the first message: librdkafka's idempotent producer forces
//! `acks=all`, so a sweep that pairs idempotence with `acks` 0 or 1 is rejected rather than
//! silently measuring something else; so are messages larger than `message.max.bytes`, zero
//! durations and typed settings also given as raw librdkafka properties.

#[macro_use]
mod dims;
pub mod values;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use values::{Acks, Codec, Compression, Count, Keys, PublishMode, Rate, TargetKind};

use crate::error::{Error, Result};
use values::human_duration;

/// Bytes at the start of every payload that carry the send timestamp and the measured flag.
pub const STAMP_BYTES: usize = 16;

/// Steps above this many are almost certainly a typo in a list.
pub const MAX_STEPS: usize = 1000;

/// A whole sweep: dimensions, phases, payload, and fixed producer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// A name for the reports.
    pub name: String,
    /// The values swept.
    pub dimensions: Dimensions,
    /// Explicit cases instead of the cartesian product.
    pub cases: Vec<Case>,
    /// Warm-up, measured phase and cool-down.
    pub phases: Phases,
    /// What the messages contain.
    pub payload: PayloadSpec,
    /// Closed-loop bound: messages queued or in flight per producer
    /// (librdkafka `queue.buffering.max.messages`).
    pub max_in_flight: u32,
    /// The largest message the broker accepts (Kafka's `message.max.bytes`); unset, it is
    /// read from the cluster (1 MB, Kafka's default, where the cluster does not say).
    pub max_message_bytes: Option<u64>,
    /// Seed of the payload generator and of the key choice (each producer adds its index).
    pub seed: u64,
    /// The thresholds of the pass rule (when a step counts as sustained).
    pub pass: PassRule,
    /// librdkafka `message.timeout.ms`: how long a message may wait for delivery.
    #[serde(with = "human_duration")]
    pub message_timeout: Duration,
    /// Extra librdkafka producer properties, applied last; may not repeat a swept setting.
    pub properties: BTreeMap<String, String>,
    /// Run the tool's own consumer for end-to-end latency (off for pure producer benchmarks).
    pub end_to_end: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "default".into(),
            dimensions: Dimensions::default(),
            cases: Vec::new(),
            phases: Phases::default(),
            payload: PayloadSpec::default(),
            max_in_flight: 10_000,
            max_message_bytes: None,
            seed: 42,
            pass: PassRule::default(),
            message_timeout: Duration::from_secs(30),
            properties: BTreeMap::new(),
            end_to_end: true,
        }
    }
}

dimensions! {
    /// librdkafka `batch.size` in bytes.
    batch_size: u32 = [16_384], flag "batch", unit "", legacy 16_384, parse parse_u32_size;
    /// librdkafka `linger.ms`.
    linger_ms: u32 = [0, 5], flag "linger", unit "ms", legacy 5, parse parse_u32_size;
    /// `compression.type` and `compression.level`: none, gzip, snappy, lz4, zstd, with optional level (`zstd:3`).
    compression: Compression = [Compression::NONE, Compression { codec: Codec::Lz4, level: None }],
        flag "compression", unit "", legacy Compression::NONE, parse parse_text;
    /// Partitions of the step's topic.
    partitions: u32 = [3], flag "partitions", unit "", legacy 1, parse parse_u32_size;
    /// Payload bytes per message (`100,1KiB`).
    message_size: u32 = [1024], flag "size", unit "", legacy 1024, parse parse_u32_size;
    /// `acks`: 0, 1, all.
    acks: Acks = [Acks::All], flag "acks", unit "", legacy Acks::All, parse parse_text;
    /// `enable.idempotence`: true, false.
    idempotence: bool = [false], flag "idempotence", unit "", legacy false, parse parse_bool;
    /// Producer instances (one thread and one librdkafka instance each): the concurrency dimension.
    producers: u32 = [1], flag "producers", unit "", legacy 1, parse parse_u32_size;
    /// Replication factor of the step's topic: `auto` is min(3, brokers).
    replication_factor: Count = [Count::Auto], flag "rf", unit "", legacy Count::N(1), parse parse_text;
    /// The topic's `min.insync.replicas`: `auto` is replication factor − 1 (at least 1).
    min_insync_replicas: Count = [Count::Auto], flag "min_isr", unit "", legacy Count::Auto, parse parse_text;
    /// Record keys: `none`, `rr:K` (round-robin over K keys), `uniform:K`, `zipf:K:S` (exponent S).
    keys: Keys = [Keys::None], flag "keys", unit "", legacy Keys::None, parse parse_text;
    /// How a component or dapr target publishes: `unary:N` (N concurrent Publish calls per producer) or `bulk:ExC` (BulkPublish of up to E entries, C calls concurrent); direct steps are `native`.
    publish: PublishMode = [PublishMode::Unary(100)], flag "publish", unit "", legacy PublishMode::Native, parse parse_text;
    /// `max` (closed loop) or msgs/s across all producers (open loop).
    rate: Rate = [Rate::PerSecond(2_000), Rate::PerSecond(10_000), Rate::PerSecond(40_000)],
        flag "rate", unit "", legacy Rate::Max, parse parse_text;
    /// Where the load goes: `direct` (librdkafka), `component` (a Dapr pluggable component's socket), `dapr` (a sidecar's HTTP API). Varies fastest, so targets run interleaved.
    target: TargetKind = [TargetKind::Direct], flag "target", unit "", legacy TargetKind::Direct, parse parse_text;
}

fn parse_text<T: std::str::FromStr<Err = Error>>(s: &str) -> Result<T> {
    s.parse()
}

fn parse_u32_size(s: &str) -> Result<u32> {
    let n = crate::cli::parse_size(s)?;
    u32::try_from(n).map_err(|_| Error::invalid(format!("`{s}` is too large")))
}

fn parse_bool(s: &str) -> Result<bool> {
    s.trim().parse().map_err(|_| Error::invalid(format!("`{s}` is not true or false")))
}

/// When an open-loop step counts as *sustained*: it delivered (almost) everything it was
/// offered, nothing failed, the generator itself kept its schedule, and the tool's consumer
/// kept up. A step that falls short says which part failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PassRule {
    /// Achieved / offered must reach this (0.995).
    pub min_achieved_ratio: f64,
    /// Send delay p99 (how late sends left against the schedule) must stay below this.
    #[serde(with = "human_duration")]
    pub max_send_delay_p99: Duration,
    /// Consumer lag may grow by at most this many seconds of the offered rate over the
    /// measured phase.
    pub max_lag_growth_seconds: f64,
}

impl Default for PassRule {
    fn default() -> Self {
        PassRule {
            min_achieved_ratio: 0.995,
            max_send_delay_p99: Duration::from_millis(10),
            max_lag_growth_seconds: 0.1,
        }
    }
}

/// The librdkafka default of `message.max.bytes`, assumed when the cluster does not say.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 1_000_000;

/// Phase lengths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Phases {
    /// Load before measuring.
    #[serde(with = "human_duration")]
    pub warmup: Duration,
    /// Length of the measured phase (ignored when `messages` is set).
    #[serde(with = "human_duration")]
    pub duration: Duration,
    /// Measure this many messages instead of a fixed duration.
    pub messages: Option<u64>,
    /// Load after measuring.
    #[serde(with = "human_duration")]
    pub cooldown: Duration,
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            messages: None,
            cooldown: Duration::from_millis(500),
        }
    }
}

/// Message contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PayloadSpec {
    /// Target compression ratio (uncompressed / compressed, zstd); 1.0 is random bytes.
    pub compressibility: f64,
    /// Sample real messages from this file (one per line) instead of generating them.
    pub file: Option<String>,
}

impl Default for PayloadSpec {
    fn default() -> Self {
        PayloadSpec { compressibility: 3.0, file: None }
    }
}

impl StepConfig {
    /// The librdkafka producer properties this step sets.
    pub fn producer_properties(&self, scenario: &Scenario) -> Vec<(String, String)> {
        let mut props = vec![
            ("batch.size".to_owned(), self.batch_size.to_string()),
            ("linger.ms".to_owned(), self.linger_ms.to_string()),
            ("compression.type".to_owned(), self.compression.codec.name().to_owned()),
            ("acks".to_owned(), self.acks.property().to_owned()),
            ("enable.idempotence".to_owned(), self.idempotence.to_string()),
            ("queue.buffering.max.messages".to_owned(), scenario.max_in_flight.to_string()),
            (
                "message.max.bytes".to_owned(),
                scenario.max_message_bytes().max(u64::from(self.batch_size)).min(1_000_000_000).to_string(),
            ),
            ("message.timeout.ms".to_owned(), scenario.message_timeout.as_millis().to_string()),
        ];
        if let Some(level) = self.compression.level {
            props.push(("compression.level".to_owned(), level.to_string()));
        }
        props.extend(scenario.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        props
    }
}

/// Librdkafka properties the sweep owns; `properties` may not set them.
const TYPED_PROPERTIES: [&str; 12] = [
    "batch.size",
    "linger.ms",
    "queue.buffering.max.ms",
    "compression.type",
    "compression.codec",
    "compression.level",
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "queue.buffering.max.messages",
    "message.max.bytes",
    "message.timeout.ms",
];

impl Scenario {
    /// Reads a YAML (`.yaml`, `.yml`) or TOML (`.toml`) scenario file.
    pub fn from_file(path: &Path) -> Result<Scenario> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let parse_error = |reason: String| Error::Parse { path: path.display().to_string(), reason };
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => toml::from_str(&text).map_err(|e| parse_error(e.to_string())),
            Some("yaml" | "yml") => serde_yaml::from_str(&text).map_err(|e| parse_error(e.to_string())),
            _ => Err(parse_error("scenario files end in .yaml, .yml or .toml".into())),
        }
    }

    /// The steps, in run order: explicit cases (unset fields take the dimension's first
    /// value), or the cartesian product (last dimension varies fastest).
    pub fn steps(&self) -> Vec<StepConfig> {
        let steps = if self.cases.is_empty() {
            self.dimensions.product()
        } else {
            self.cases.iter().map(|c| c.fill(&self.dimensions)).collect()
        };
        // A direct step has no publish mode: it is `native`, and the copies the publish
        // dimension would make of it run once (at the place of the first).
        let mut seen = std::collections::HashSet::new();
        steps
            .into_iter()
            .filter_map(|mut s| {
                let normalised = s.target == TargetKind::Direct && s.publish != PublishMode::Native;
                if normalised {
                    s.publish = PublishMode::Native;
                }
                (seen.insert(s) || !normalised).then_some(s)
            })
            .collect()
    }

    /// Dimensions with more than one value across the steps (what the charts plot).
    pub fn varied_dimensions(steps: &[StepConfig]) -> Vec<&'static str> {
        DIMENSIONS
            .iter()
            .copied()
            .filter(|dim| {
                let mut values: Vec<String> = steps.iter().map(|s| s.value(dim)).collect();
                values.sort();
                values.dedup();
                values.len() > 1
            })
            .collect()
    }

    /// `message.max.bytes` as known (set, or read from the cluster), else Kafka's default.
    pub fn max_message_bytes(&self) -> u64 {
        self.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES)
    }

    /// Checks the steps against what the cluster says: replication factor and min ISR within
    /// its broker count. `auto` resolves to min(3, brokers) and RF − 1.
    pub fn resolve(&self, steps: &mut [StepConfig], brokers: usize) -> Result<()> {
        let brokers = u32::try_from(brokers.max(1)).unwrap_or(u32::MAX);
        for step in steps.iter_mut() {
            let rf = step.replication_factor.or(brokers.min(3));
            if rf > brokers {
                return Err(Error::invalid(format!(
                    "replication factor {rf} is more than the cluster's {brokers} broker(s)"
                )));
            }
            let min_isr = step.min_insync_replicas.or(rf.saturating_sub(1).max(1));
            if min_isr > rf {
                return Err(Error::invalid(format!(
                    "min.insync.replicas {min_isr} is more than the replication factor {rf}"
                )));
            }
            step.replication_factor = Count::N(rf);
            step.min_insync_replicas = Count::N(min_isr);
        }
        Ok(())
    }

    /// Rejects contradictory or impossible settings, naming the setting and what is accepted.
    pub fn validate(&self) -> Result<Vec<StepConfig>> {
        let d = &self.dimensions;
        if self.cases.is_empty()
            && let Some(name) = d.first_empty()
        {
            return Err(Error::invalid(format!("dimension `{name}` has no values: give at least one")));
        }
        if self.dimensions.product_len().is_none_or(|n| n > MAX_STEPS) {
            return Err(Error::invalid(format!(
                "the sweep has more than {MAX_STEPS} steps: shorten a dimension list or give explicit cases"
            )));
        }
        let p = &self.phases;
        if p.messages == Some(0) {
            return Err(Error::invalid("measured message count is 0: measure at least one message"));
        }
        if p.messages.is_none() && p.duration.is_zero() {
            return Err(Error::invalid(
                "measured duration is zero: give a positive duration (e.g. 5s) or a message count",
            ));
        }
        if self.max_in_flight == 0 {
            return Err(Error::invalid("max_in_flight is 0: at least one message must be allowed in flight"));
        }
        if self.message_timeout < Duration::from_millis(100) {
            return Err(Error::invalid("message_timeout below 100ms would fail nearly every message"));
        }
        if !(self.payload.compressibility >= 1.0 && self.payload.compressibility <= 100.0) {
            return Err(Error::invalid(format!(
                "payload compressibility {} is out of range: 1.0 (random bytes) to 100",
                self.payload.compressibility
            )));
        }
        if let Some(clash) = self.properties.keys().find(|k| TYPED_PROPERTIES.contains(&k.as_str())) {
            return Err(Error::invalid(format!(
                "property `{clash}` is a swept or typed setting: set it through its dimension or option, not as a raw property"
            )));
        }
        if self.properties.keys().any(|k| k == "bootstrap.servers") {
            return Err(Error::invalid("property `bootstrap.servers` comes from --brokers"));
        }
        let steps = self.steps();
        if steps.is_empty() {
            return Err(Error::invalid("the sweep has no steps"));
        }
        if steps.len() > MAX_STEPS {
            return Err(Error::invalid(format!(
                "the sweep has {} steps (more than {MAX_STEPS}): shorten a dimension list or give explicit cases",
                steps.len()
            )));
        }
        for (i, step) in steps.iter().enumerate() {
            let at = || format!("step {} ({})", i + 1, step.label());
            if step.idempotence && step.acks != Acks::All {
                return Err(Error::invalid(format!(
                    "{}: idempotence=true requires acks=all (librdkafka's idempotent producer forces it); \
                     drop acks {} from the sweep, set idempotence=false, or list explicit cases",
                    at(),
                    step.acks
                )));
            }
            if step.partitions == 0 || step.partitions > 10_000 {
                return Err(Error::invalid(format!("{}: partitions must be 1..=10000", at())));
            }
            if step.target != TargetKind::Direct && step.publish == PublishMode::Native {
                return Err(Error::invalid(format!(
                    "{}: publish mode `native` is the direct target's; a {} target takes unary:N or bulk:ExC",
                    at(),
                    step.target
                )));
            }
            if step.producers == 0 || step.producers > 256 {
                return Err(Error::invalid(format!("{}: producers must be 1..=256", at())));
            }
            if step.batch_size == 0 || step.batch_size > i32::MAX as u32 {
                return Err(Error::invalid(format!("{}: batch_size must be 1..=2147483647 bytes", at())));
            }
            if step.linger_ms > 900_000 {
                return Err(Error::invalid(format!("{}: linger_ms must be 0..=900000 (librdkafka's limit)", at())));
            }
            if self.payload.file.is_none() && (step.message_size as usize) < STAMP_BYTES {
                return Err(Error::invalid(format!(
                    "{}: message_size must be at least {STAMP_BYTES} bytes: each message carries its send time",
                    at()
                )));
            }
            if u64::from(step.message_size) > self.max_message_bytes() {
                return Err(Error::invalid(format!(
                    "{}: message_size {} is larger than the broker allows (max_message_bytes {}); \
                     raise max_message_bytes only if the broker's message.max.bytes is raised too",
                    at(),
                    step.message_size,
                    self.max_message_bytes()
                )));
            }
            if let Rate::PerSecond(rate) = step.rate {
                if rate < u64::from(step.producers) {
                    return Err(Error::invalid(format!(
                        "{}: rate {rate} msgs/s is below one message per second per producer",
                        at()
                    )));
                }
                if let Some(messages) = p.messages
                    && messages / rate > 3600
                {
                    return Err(Error::invalid(format!(
                        "{}: {messages} messages at {rate}/s would take over an hour",
                        at()
                    )));
                }
            }
        }
        Ok(steps)
    }

    /// The planned length of one step (for the ETA): warm-up + measured + cool-down; a
    /// message-count phase is estimated at its rate, or at 50 000 msgs/s in a closed loop.
    pub fn planned_step_length(&self, step: &StepConfig) -> Duration {
        let measured = match (self.phases.messages, step.rate) {
            (None, _) => self.phases.duration,
            (Some(n), Rate::PerSecond(rate)) => Duration::from_secs_f64(n as f64 / rate as f64),
            (Some(n), Rate::Max) => Duration::from_secs_f64(n as f64 / 50_000.0),
        };
        self.phases.warmup + measured + self.phases.cooldown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_sweep_is_small_and_steps_the_rate_below_and_above_saturation() {
        let scenario = Scenario::default();
        let steps = scenario.validate().unwrap();
        assert_eq!(steps.len(), 12);
        assert_eq!(Scenario::varied_dimensions(&steps), vec!["linger_ms", "compression", "rate"]);
        assert!(steps.iter().all(|s| matches!(s.rate, Rate::PerSecond(_))), "open loop: rates below saturation");
        let total: Duration = steps.iter().map(|s| scenario.planned_step_length(s)).sum();
        assert!(total < Duration::from_secs(120), "{total:?}");
    }

    #[test]
    fn cartesian_product_covers_every_combination_once() {
        let mut scenario = Scenario::default();
        scenario.dimensions.linger_ms = vec![0, 5];
        scenario.dimensions.partitions = vec![1, 6];
        scenario.dimensions.rate = vec![Rate::Max, Rate::PerSecond(1000)];
        let steps = scenario.validate().unwrap();
        assert_eq!(steps.len(), 2 * 2 * 2 * 2);
        let unique: std::collections::HashSet<_> = steps.iter().collect();
        assert_eq!(unique.len(), steps.len());
        // The last dimension varies fastest.
        assert_eq!(steps[0].rate, Rate::Max);
        assert_eq!(steps[1].rate, Rate::PerSecond(1000));
        assert_eq!(steps[0].batch_size, steps[steps.len() / 2 - 1].batch_size);
    }

    #[test]
    fn explicit_cases_fill_gaps_from_the_first_value() {
        let scenario = Scenario {
            cases: vec![
                Case { linger_ms: Some(20), ..Case::default() },
                Case { compression: Some("zstd:7".parse().unwrap()), partitions: Some(6), ..Case::default() },
            ],
            ..Scenario::default()
        };
        let steps = scenario.validate().unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].linger_ms, 20);
        assert_eq!(steps[0].batch_size, 16_384);
        assert_eq!(steps[1].compression.to_string(), "zstd:7");
        assert_eq!(steps[1].partitions, 6);
        assert_eq!(steps[1].linger_ms, 0);
    }

    fn rejected(change: impl FnOnce(&mut Scenario)) -> String {
        let mut scenario = Scenario::default();
        change(&mut scenario);
        scenario.validate().unwrap_err().to_string()
    }

    #[test]
    fn bad_input_is_rejected_with_a_clear_message() {
        let msg = rejected(|s| {
            s.dimensions.idempotence = vec![true];
            s.dimensions.acks = vec![Acks::Leader];
        });
        assert!(msg.contains("idempotence=true requires acks=all"), "{msg}");
        let msg = rejected(|s| s.dimensions.message_size = vec![2_000_000]);
        assert!(msg.contains("larger than the broker allows"), "{msg}");
        let msg = rejected(|s| s.phases.duration = Duration::ZERO);
        assert!(msg.contains("duration is zero"), "{msg}");
        let msg = rejected(|s| s.phases.messages = Some(0));
        assert!(msg.contains("message count is 0"), "{msg}");
        let msg = rejected(|s| s.dimensions.message_size = vec![8]);
        assert!(msg.contains("at least 16 bytes"), "{msg}");
        let msg = rejected(|s| s.dimensions.partitions = vec![0]);
        assert!(msg.contains("partitions must be"), "{msg}");
        let msg = rejected(|s| s.dimensions.linger_ms = vec![]);
        assert!(msg.contains("`linger_ms` has no values"), "{msg}");
        let msg = rejected(|s| {
            s.properties.insert("linger.ms".into(), "7".into());
        });
        assert!(msg.contains("`linger.ms` is a swept or typed setting"), "{msg}");
        let msg = rejected(|s| s.payload.compressibility = 0.5);
        assert!(msg.contains("compressibility"), "{msg}");
        let msg = rejected(|s| s.dimensions.batch_size = (1..200).collect());
        assert!(msg.contains("more than 1000"), "{msg}");
    }

    #[test]
    fn auto_replication_is_three_on_three_brokers_and_min_isr_one_less() {
        let mut steps = Scenario::default().validate().unwrap();
        Scenario::default().resolve(&mut steps, 3).unwrap();
        assert_eq!(steps[0].replication_factor, Count::N(3));
        assert_eq!(steps[0].min_insync_replicas, Count::N(2));
        let mut one = Scenario::default().validate().unwrap();
        Scenario::default().resolve(&mut one, 1).unwrap();
        assert_eq!((one[0].replication_factor, one[0].min_insync_replicas), (Count::N(1), Count::N(1)));
        let mut s = Scenario::default();
        s.dimensions.replication_factor = vec![Count::N(3)];
        let mut steps = s.validate().unwrap();
        assert!(s.resolve(&mut steps, 1).unwrap_err().to_string().contains("more than the cluster's 1 broker"));
    }

    #[test]
    fn a_new_dimension_is_in_labels_flags_and_the_product() {
        let mut s = Scenario::default();
        s.dimensions.keys = vec![Keys::None, "zipf:100:1.1".parse().unwrap()];
        let steps = s.validate().unwrap();
        assert_eq!(steps.len(), 24);
        assert!(steps[3].label().contains("keys=zipf:100:1.1"), "{}", steps[3].label());
        assert!(Scenario::varied_dimensions(&steps).contains(&"keys"));
        assert_eq!(steps[3].value("keys"), "zipf:100:1.1");
        assert!(!steps[3].label_without_rate().contains("rate="));
        // A result written before the dimension existed reads as what it meant then.
        let old: StepConfig = serde_json::from_str(r#"{"batch_size":1,"linger_ms":5,"rate":"max"}"#).unwrap();
        assert_eq!(old.replication_factor, Count::N(1));
        assert_eq!(old.keys, Keys::None);
    }

    #[test]
    fn scenario_files_in_yaml_and_toml() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("s.yaml");
        std::fs::write(
            &yaml,
            "name: y\ndimensions:\n  linger_ms: [0, 5]\n  compression: [none, \"zstd:3\"]\n  rate: [max, 5000]\nphases:\n  duration: 3s\n  warmup: 500ms\n",
        )
        .unwrap();
        let s = Scenario::from_file(&yaml).unwrap();
        assert_eq!(s.name, "y");
        assert_eq!(s.dimensions.rate, vec![Rate::Max, Rate::PerSecond(5000)]);
        assert_eq!(s.phases.duration, Duration::from_secs(3));
        assert_eq!(s.phases.warmup, Duration::from_millis(500));
        assert_eq!(s.validate().unwrap().len(), 2 * 2 * 2);

        let toml = dir.path().join("s.toml");
        std::fs::write(
            &toml,
            "name = \"t\"\n[dimensions]\npartitions = [1, 6]\nacks = [\"1\", \"all\"]\n[[cases]]\nlinger_ms = 50\n[properties]\n\"socket.nagle.disable\" = \"true\"\n",
        )
        .unwrap();
        let s = Scenario::from_file(&toml).unwrap();
        assert_eq!(s.cases.len(), 1);
        assert_eq!(s.validate().unwrap()[0].linger_ms, 50);
        assert_eq!(s.properties["socket.nagle.disable"], "true");

        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "dimensions:\n  lingr_ms: [1]\n").unwrap();
        let msg = Scenario::from_file(&bad).unwrap_err().to_string();
        assert!(msg.contains("lingr_ms"), "{msg}");
    }

    #[test]
    fn a_direct_step_runs_once_per_configuration_and_a_component_step_needs_a_publish_mode() {
        let mut s = Scenario::default();
        s.dimensions.linger_ms = vec![0];
        s.dimensions.compression = vec![Compression::NONE];
        s.dimensions.rate = vec![Rate::PerSecond(1000)];
        s.dimensions.publish = vec![PublishMode::Unary(1), PublishMode::Bulk { entries: 10, calls: 2 }];
        s.dimensions.target = vec![TargetKind::Direct, TargetKind::Component];
        let steps = s.validate().unwrap();
        let paths: Vec<String> = steps.iter().map(|s| format!("{}/{}", s.target, s.publish)).collect();
        assert_eq!(paths, ["direct/native", "component/unary:1", "component/bulk:10x2"]);
        s.dimensions.publish = vec![PublishMode::Native];
        assert!(s.validate().unwrap_err().to_string().contains("takes unary:N or bulk:ExC"));
    }
}
