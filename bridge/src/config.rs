//! Component metadata (the map daprd sends to `Init`) → typed configuration → librdkafka.
//!
//! ```text
//! Init.metadata.properties ──► Metadata (case-insensitive, like Dapr) ──► ComponentConfig::parse
//!                                                                          │ validate every key
//!                                                                          ▼
//!                          producer_config() / consumer_config() ──► rdkafka::ClientConfig
//!                          (typed keys first, `kafka.*` passthrough last)
//! ```
//!
//! Keys keep the spellings of Dapr's built-in `pubsub.kafka` component so existing Component
//! YAMLs work unchanged; the batching keys (`linger`, `batchBytes`, ...) are this bridge's own.
//! Every key is listed in [`keys::KEYS`]. A bad value is an [`Error::InvalidMetadata`] naming
//! the key and what is accepted; unknown keys are allowed (daprd adds its own) but one that
//! looks like a misspelling of a known key is reported in [`ComponentConfig::warnings`].

pub mod auth;
pub mod keys;
pub mod redact;
pub(crate) mod values;

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use regex::Regex;

pub use auth::{Auth, Secret};
pub use redact::Redactor;

use crate::error::{Error, Result};

/// daprd's gRPC client keeps grpc-go's default receive limit: a larger PullMessages response
/// fails daprd's stream, which daprd never reopens.
pub const DAPRD_MAX_RECEIVE_BYTES: usize = 4 * 1024 * 1024;

/// Default `unknownTopicTimeout`: a publish to a missing topic fails within a few seconds
/// (librdkafka's own default, 30 s, outlasts most callers' deadlines).
pub const DEFAULT_UNKNOWN_TOPIC_TIMEOUT: Duration = Duration::from_secs(5);

/// Default `metadataRefreshInterval`: a subscription notices a new topic or new partitions
/// within seconds (librdkafka's own default is 5 minutes).
pub const DEFAULT_METADATA_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// Prefix of the librdkafka passthrough keys (`kafka.linger.ms`, ...).
pub const PASSTHROUGH_PREFIX: &str = "kafka.";

/// The metadata map, looked up case-insensitively (Dapr decodes component metadata that way).
pub(crate) struct Metadata<'a> {
    by_lower: HashMap<String, (&'a str, &'a str)>,
}

impl<'a> Metadata<'a> {
    pub(crate) fn new(properties: &'a HashMap<String, String>) -> Self {
        let by_lower = properties.iter().map(|(k, v)| (k.to_ascii_lowercase(), (k.as_str(), v.as_str()))).collect();
        Self { by_lower }
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.by_lower.contains_key(&key.to_ascii_lowercase())
    }

    /// A present, non-blank value (blank values count as absent, as in Dapr YAMLs).
    pub(crate) fn text(&self, key: &str) -> Result<Option<&'a str>> {
        Ok(self.by_lower.get(&key.to_ascii_lowercase()).map(|(_, v)| v.trim()).filter(|v| !v.is_empty()))
    }

    pub(crate) fn required(&self, key: &str, needed_by: &str) -> Result<&'a str> {
        self.text(key)?.ok_or_else(|| self.invalid(key, format!("is required with {needed_by}")))
    }

    pub(crate) fn invalid(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::InvalidMetadata { key: key.to_owned(), reason: reason.into() }
    }

    fn parse<T>(&self, key: &str, parse: impl FnOnce(&str) -> std::result::Result<T, String>) -> Result<Option<T>> {
        self.text(key)?.map(|v| parse(v).map_err(|reason| self.invalid(key, reason))).transpose()
    }

    pub(crate) fn boolean(&self, key: &str) -> Result<Option<bool>> {
        self.parse(key, values::boolean)
    }

    fn duration(&self, key: &str, min: Duration, max: Duration) -> Result<Option<Duration>> {
        self.parse(key, |v| {
            let d = values::duration(v)?;
            if d < min || d > max {
                return Err(format!("{d:?} is out of range (accepted: {min:?} to {max:?})"));
            }
            Ok(d)
        })
    }

    fn integer(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>> {
        self.parse(key, |v| values::integer(v, min, max))
    }

    fn choice<T: Copy>(&self, key: &str, choices: &[(&str, T)]) -> Result<Option<T>> {
        self.parse(key, |v| {
            choices.iter().find(|(name, _)| name.eq_ignore_ascii_case(v)).map(|(_, value)| *value).ok_or_else(|| {
                let names: Vec<_> = choices.iter().map(|(n, _)| *n).collect();
                format!("`{v}` is not accepted (accepted: {})", names.join(", "))
            })
        })
    }

    fn keys(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.by_lower.values().copied()
    }
}

/// Which replicas must have a record before Kafka acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Every in-sync replica (`acks=all`).
    All,
    /// The partition leader only (`acks=1`).
    Leader,
    /// Nobody: fire and forget (`acks=0`).
    None,
}

/// Producer compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The accepted `compression.level` range, if the codec has levels.
    fn levels(self) -> Option<(u64, u64)> {
        match self {
            Compression::Gzip => Some((0, 9)),
            Compression::Lz4 => Some((0, 12)),
            // zstd has 22 levels, but librdkafka's `compression.level` stops at 12: a higher
            // one would fail the producer under a key the user never wrote.
            Compression::Zstd => Some((1, 12)),
            Compression::None | Compression::Snappy => None,
        }
    }
}

/// Producer batching and delivery settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSettings {
    /// `acks`.
    pub acks: Acks,
    /// `enable.idempotence`.
    pub idempotence: bool,
    /// `compression.type`.
    pub compression: Compression,
    /// `compression.level`.
    pub compression_level: Option<u64>,
    /// `linger.ms`.
    pub linger: Duration,
    /// `batch.size`.
    pub batch_bytes: Option<u64>,
    /// `batch.num.messages`.
    pub batch_messages: Option<u64>,
    /// `max.in.flight.requests.per.connection`.
    pub max_in_flight: Option<u64>,
    /// `queue.buffering.max.messages`.
    pub queue_max_messages: Option<u64>,
    /// `queue.buffering.max.kbytes`.
    pub queue_max_kbytes: Option<u64>,
    /// `message.timeout.ms`: the delivery deadline of a record, retries included.
    pub message_timeout: Duration,
    /// `message.max.bytes`.
    pub max_message_bytes: Option<u64>,
    /// `topic.metadata.propagation.max.ms`: how long a record waits for its topic to appear
    /// before it fails with `UnknownTopic` (NOT_FOUND).
    pub unknown_topic_timeout: Duration,
}

/// How a missing topic is created (`autoCreateTopics`), with its per-subscription overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    /// Partitions of a created topic; `None`: the broker's default (`num.partitions`).
    pub partitions: Option<i32>,
    /// Replication factor of a created topic; `None`: the broker's default
    /// (`default.replication.factor`).
    pub replication_factor: Option<i32>,
}

impl TopicSpec {
    /// This spec with the overrides a subscription's Topic metadata carries
    /// (`topicPartitions`, `topicReplicationFactor`).
    pub fn with_overrides(self, metadata: &HashMap<String, String>) -> Result<Self> {
        let meta = Metadata::new(metadata);
        Ok(Self {
            partitions: meta.integer("topicPartitions", 1, MAX_TOPIC_PARTITIONS)?.map(|n| n as i32).or(self.partitions),
            replication_factor: meta
                .integer("topicReplicationFactor", 1, MAX_REPLICATION_FACTOR)?
                .map(|n| n as i32)
                .or(self.replication_factor),
        })
    }
}

const MAX_TOPIC_PARTITIONS: u64 = 100_000;
const MAX_REPLICATION_FACTOR: u64 = 32_767;

/// Where a consumer group with no committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialOffset {
    /// Only messages produced after the group joined (`auto.offset.reset=latest`).
    Newest,
    /// From the beginning of the partition (`auto.offset.reset=earliest`).
    Oldest,
}

/// Subscription (PullMessages) settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberSettings {
    /// `auto.offset.reset`.
    pub initial_offset: InitialOffset,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Option<Duration>,
    /// `session.timeout.ms`.
    pub session_timeout: Option<Duration>,
    /// `partition.assignment.strategy`.
    pub assignment_strategy: Option<&'static str>,
    /// URL-escape header values of delivered messages.
    pub escape_headers: bool,
    /// Un-acked messages one stream may hold.
    pub max_in_flight_per_stream: usize,
    /// Un-acked messages per partition before it is paused.
    pub max_in_flight_per_partition: usize,
    /// Redeliveries of a nacked message; `None` means forever.
    pub max_retries: Option<u32>,
    /// First redelivery delay (doubles each retry).
    pub retry_backoff: Duration,
    /// Largest redelivery delay.
    pub max_retry_backoff: Duration,
    /// Dead-letter topic for messages whose retries ran out.
    pub dead_letter_topic: Option<String>,
    /// Commit period.
    pub commit_interval: Duration,
    /// Wait for outstanding acks of revoked partitions.
    pub revoke_ack_timeout: Duration,
    /// What a nack means: retry (with the backoff above) or give up at once.
    pub on_nack: OnNack,
    /// Delivered messages a partition may hold behind its oldest un-acked one.
    pub max_uncommitted_per_partition: usize,
    /// Largest PullMessages response (encoded) daprd can receive.
    pub max_delivery_bytes: usize,
}

/// What the bridge does with a message daprd nacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnNack {
    /// Redeliver with backoff up to `maxRetries`, then dead-letter (or keep redelivering).
    Retry,
    /// `consumeRetryEnabled: false`, as `pubsub.kafka`: no redelivery; dead-letter it, or
    /// drop it (commit past it) with an error log.
    GiveUp,
}

/// The typed configuration of one component instance.
#[derive(Debug, Clone)]
pub struct ComponentConfig {
    /// Bootstrap brokers; `None` means "use the embedded mock cluster".
    pub brokers: Option<String>,
    /// `client.id`.
    pub client_id: String,
    /// `consumerGroup`, else `consumerID`.
    pub consumer_group: Option<String>,
    /// Authentication and TLS.
    pub auth: Auth,
    /// Producer settings.
    pub producer: ProducerSettings,
    /// Subscription settings.
    pub subscriber: SubscriberSettings,
    /// Publish metadata keys matching this do not become headers.
    pub exclude_header_regex: Option<Regex>,
    /// `autoCreateTopics`: create a missing topic through the admin API, like this.
    pub auto_create_topics: Option<TopicSpec>,
    /// `topic.metadata.refresh.interval.ms`: how soon new topics and partitions are noticed.
    pub metadata_refresh_interval: Duration,
    /// How long Init waits for the cluster.
    pub init_timeout: Duration,
    /// `kafka.*` properties, applied last.
    pub passthrough: Vec<(String, String)>,
    /// Non-fatal findings (likely misspelt keys), to be logged by the caller.
    pub warnings: Vec<String>,
}

/// librdkafka properties that typed keys own: a `kafka.` passthrough of one of these is a
/// clash when the typed key is also given.
const OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "brokers"),
    ("metadata.broker.list", "brokers"),
    ("client.id", "clientID"),
    ("group.id", "consumerGroup"),
    ("auto.offset.reset", "initialOffset"),
    ("heartbeat.interval.ms", "heartbeatInterval"),
    ("session.timeout.ms", "sessionTimeout"),
    ("partition.assignment.strategy", "consumerGroupRebalanceStrategy"),
    ("message.max.bytes", "maxMessageBytes"),
    ("compression.type", "compression"),
    ("compression.codec", "compression"),
    ("compression.level", "compressionLevel"),
    ("acks", "producerRequiredAcks"),
    ("request.required.acks", "producerRequiredAcks"),
    ("enable.idempotence", "enableIdempotence"),
    ("linger.ms", "linger"),
    ("queue.buffering.max.ms", "linger"),
    ("batch.size", "batchBytes"),
    ("batch.num.messages", "batchMessages"),
    ("max.in.flight.requests.per.connection", "maxInFlight"),
    ("max.in.flight", "maxInFlight"),
    ("queue.buffering.max.messages", "queueMaxMessages"),
    ("queue.buffering.max.kbytes", "queueMaxKBytes"),
    ("message.timeout.ms", "messageTimeout"),
    ("delivery.timeout.ms", "messageTimeout"),
    ("topic.metadata.propagation.max.ms", "unknownTopicTimeout"),
    ("topic.metadata.refresh.interval.ms", "metadataRefreshInterval"),
];

/// Properties the bridge manages itself: at-least-once depends on them.
const MANAGED_PROPERTIES: &[(&str, &str)] = &[
    ("enable.auto.commit", OFFSETS_MANAGED),
    ("enable.auto.offset.store", OFFSETS_MANAGED),
    ("enable.partition.eof", OFFSETS_MANAGED),
    // Without a report for a delivered record, its Publish would wait until daprd's deadline
    // and be answered as failed although Kafka has it.
    (
        "delivery.report.only.error",
        "is managed by the bridge (a Publish is answered when the delivery report of each of its records arrives)",
    ),
];

const OFFSETS_MANAGED: &str = "is managed by the bridge (offsets are committed only after daprd acks)";

impl ComponentConfig {
    /// Parses and validates Init metadata.
    pub fn parse(properties: &HashMap<String, String>) -> Result<Self> {
        let meta = Metadata::new(properties);
        let ms = Duration::from_millis;

        // librdkafka takes C strings: a NUL byte would otherwise surface later as an opaque
        // "FFI nul error" from the client constructor (found by `tests/bad_input.rs`).
        if let Some((key, _)) = properties.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
            return Err(meta.invalid(&key.escape_debug().to_string(), "contains a NUL byte"));
        }

        let brokers = meta.text("brokers")?.map(|b| parse_brokers(&meta, b)).transpose()?;
        let acks = meta
            .choice("producerRequiredAcks", &[("all", Acks::All), ("local", Acks::Leader), ("none", Acks::None)])?
            .unwrap_or(Acks::All);
        let idempotence = match meta.boolean("enableIdempotence")? {
            Some(true) if acks != Acks::All => {
                return Err(meta.invalid(
                    "enableIdempotence",
                    "needs `producerRequiredAcks: all` (an idempotent producer must wait for every in-sync replica)",
                ));
            }
            Some(explicit) => explicit,
            None => acks == Acks::All,
        };
        let compression = meta
            .choice(
                "compression",
                &[
                    ("none", Compression::None),
                    ("gzip", Compression::Gzip),
                    ("snappy", Compression::Snappy),
                    ("lz4", Compression::Lz4),
                    ("zstd", Compression::Zstd),
                ],
            )?
            .unwrap_or(Compression::None);
        let compression_level = match (meta.text("compressionLevel")?, compression.levels()) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(meta.invalid(
                    "compressionLevel",
                    format!("compression `{}` has no levels (levels exist for gzip, lz4, zstd)", compression.as_str()),
                ));
            }
            (Some(_), Some((min, max))) => meta.integer("compressionLevel", min, max)?,
        };
        let max_in_flight = meta.integer("maxInFlight", 1, 1_000_000)?;
        if idempotence && max_in_flight.is_some_and(|n| n > 5) {
            return Err(meta.invalid("maxInFlight", "must be at most 5 with an idempotent producer (accepted: 1 to 5)"));
        }
        let producer = ProducerSettings {
            acks,
            idempotence,
            compression,
            compression_level,
            linger: meta.duration("linger", Duration::ZERO, ms(900_000))?.unwrap_or(ms(5)),
            batch_bytes: meta.integer("batchBytes", 1, i32::MAX as u64)?,
            batch_messages: meta.integer("batchMessages", 1, 1_000_000)?,
            max_in_flight,
            queue_max_messages: meta.integer("queueMaxMessages", 1, i32::MAX as u64)?,
            queue_max_kbytes: meta.integer("queueMaxKBytes", 1, i32::MAX as u64)?,
            message_timeout: meta
                .duration("messageTimeout", ms(1), ms(i32::MAX as u64))?
                .unwrap_or(Duration::from_secs(30)),
            max_message_bytes: meta.integer("maxMessageBytes", 1000, 1_000_000_000)?,
            unknown_topic_timeout: meta
                .duration("unknownTopicTimeout", ms(1), ms(3_600_000))?
                .unwrap_or(DEFAULT_UNKNOWN_TOPIC_TIMEOUT),
        };
        let topic_spec = TopicSpec {
            partitions: meta.integer("topicPartitions", 1, MAX_TOPIC_PARTITIONS)?.map(|n| n as i32),
            replication_factor: meta.integer("topicReplicationFactor", 1, MAX_REPLICATION_FACTOR)?.map(|n| n as i32),
        };
        let auto_create_topics = meta.boolean("autoCreateTopics")?.unwrap_or(false).then_some(topic_spec);

        let session_timeout = meta.duration("sessionTimeout", ms(1), ms(3_600_000))?;
        let heartbeat_interval = meta.duration("heartbeatInterval", ms(1), ms(3_600_000))?;
        if let (Some(hb), Some(st)) = (heartbeat_interval, session_timeout) {
            if hb >= st {
                return Err(
                    meta.invalid("heartbeatInterval", format!("{hb:?} must be shorter than sessionTimeout {st:?}"))
                );
            }
        }
        // `consumeRetryEnabled`/`consumeRetryInterval` mean what they mean for `pubsub.kafka`:
        // true retries at a constant interval, forever by default; false never retries.
        let consume_retry = meta.boolean("consumeRetryEnabled")?;
        let consume_retry_interval = meta.duration("consumeRetryInterval", ms(1), ms(3_600_000))?.unwrap_or(ms(100));
        let constant = consume_retry == Some(true);
        let retry_backoff = meta.duration("retryBackoff", ms(1), ms(3_600_000))?.unwrap_or(if constant {
            consume_retry_interval
        } else {
            Duration::from_secs(1)
        });
        let max_retry_backoff = meta
            .duration("maxRetryBackoff", ms(1), ms(86_400_000))?
            .unwrap_or(if constant { retry_backoff } else { Duration::from_secs(30) })
            .max(retry_backoff);
        let max_retries = match meta.text("maxRetries")? {
            Some("-1") => None,
            Some(_) => meta.integer("maxRetries", 0, u32::MAX as u64)?.map(|n| n as u32),
            None if constant => None,
            None => Some(3),
        };
        let dead_letter_topic = meta
            .text("deadLetterTopic")?
            .map(|t| crate::topic::validate(t).map(|()| t.to_owned()).map_err(|e| meta.invalid("deadLetterTopic", e)))
            .transpose()?;
        let max_in_flight_per_stream = meta.integer("maxInFlightPerStream", 1, 1_000_000)?.unwrap_or(1000) as usize;
        let subscriber = SubscriberSettings {
            initial_offset: meta
                .choice("initialOffset", &[("newest", InitialOffset::Newest), ("oldest", InitialOffset::Oldest)])?
                .unwrap_or(InitialOffset::Newest),
            heartbeat_interval,
            session_timeout,
            assignment_strategy: meta.choice(
                "consumerGroupRebalanceStrategy",
                &[
                    ("range", "range"),
                    ("roundrobin", "roundrobin"),
                    ("cooperative-sticky", "cooperative-sticky"),
                    ("sticky", "cooperative-sticky"),
                ],
            )?,
            escape_headers: meta.boolean("escapeHeaders")?.unwrap_or(false),
            max_in_flight_per_stream,
            max_in_flight_per_partition: meta
                .integer("maxInFlightPerPartition", 1, 1_000_000)?
                .map(|n| n as usize)
                .unwrap_or(500)
                .min(max_in_flight_per_stream),
            max_retries,
            retry_backoff,
            max_retry_backoff,
            dead_letter_topic,
            commit_interval: meta.duration("commitInterval", ms(10), ms(3_600_000))?.unwrap_or(Duration::from_secs(1)),
            revoke_ack_timeout: meta
                .duration("revokeAckTimeout", Duration::ZERO, ms(600_000))?
                .unwrap_or(Duration::from_secs(5)),
            on_nack: if consume_retry == Some(false) { OnNack::GiveUp } else { OnNack::Retry },
            max_uncommitted_per_partition: meta
                .integer("maxUncommittedPerPartition", 1, 10_000_000)?
                .map_or(10_000, |n| n as usize),
            max_delivery_bytes: meta
                .integer("maxDeliveryBytes", 1024, i32::MAX as u64)?
                .map_or(DAPRD_MAX_RECEIVE_BYTES, |n| n as usize),
        };

        let exclude_header_regex = meta
            .text("excludeHeaderMetaRegex")?
            .map(|r| {
                Regex::new(r).map_err(|e| meta.invalid("excludeHeaderMetaRegex", format!("is not a valid regex: {e}")))
            })
            .transpose()?;

        let mut passthrough = Vec::new();
        let mut warnings = Vec::new();
        for (key, value) in meta.keys() {
            // `get`, not indexing: a key whose 6th byte is inside a multi-byte character must
            // not panic (found by the property test below).
            let property = key
                .get(..PASSTHROUGH_PREFIX.len())
                .filter(|prefix| prefix.eq_ignore_ascii_case(PASSTHROUGH_PREFIX))
                .and_then(|_| key.get(PASSTHROUGH_PREFIX.len()..))
                .filter(|property| !property.is_empty());
            if let Some(property) = property {
                if let Some((_, why)) = MANAGED_PROPERTIES.iter().find(|(p, _)| *p == property) {
                    return Err(meta.invalid(key, *why));
                }
                if let Some((_, typed)) =
                    OWNED_PROPERTIES.iter().chain(auth::OWNED_PROPERTIES).find(|(p, _)| *p == property)
                {
                    if meta.contains(typed) {
                        return Err(meta.invalid(key, format!("clashes with `{typed}`; set only one of them")));
                    }
                }
                passthrough.push((property.to_owned(), value.to_owned()));
            } else if keys::find(key).is_none() {
                if let Some(known) = keys::likely_misspelling(key) {
                    warnings.push(format!("metadata key `{key}` is unknown; did you mean `{known}`?"));
                }
            }
        }
        passthrough.sort();

        Ok(Self {
            brokers,
            client_id: meta.text("clientID")?.unwrap_or("kafka-pubsub-bridge").to_owned(),
            consumer_group: meta.text("consumerGroup")?.or(meta.text("consumerID")?).map(str::to_owned),
            auth: Auth::parse(&meta)?,
            producer,
            subscriber,
            exclude_header_regex,
            auto_create_topics,
            metadata_refresh_interval: meta
                .duration("metadataRefreshInterval", ms(100), ms(3_600_000))?
                .unwrap_or(DEFAULT_METADATA_REFRESH_INTERVAL),
            init_timeout: meta.duration("initTimeout", ms(100), ms(600_000))?.unwrap_or(Duration::from_secs(4)),
            passthrough,
            warnings,
        })
    }

    /// A redactor for this configuration's secrets: the auth secrets, and the values of
    /// `kafka.*` properties that are sensitive or unknown to librdkafka.
    pub fn redactor(&self) -> Redactor {
        let auth = self.auth.secret_values();
        let passthrough = self
            .passthrough
            .iter()
            .filter(|(property, _)| !redact::is_showable_property(property))
            .map(|(_, value)| value.clone());
        Redactor::new(auth.into_iter().chain(passthrough))
    }

    fn common_config(&self, bootstrap: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", bootstrap);
        config.set("client.id", &self.client_id);
        config.set("topic.metadata.refresh.interval.ms", self.metadata_refresh_interval.as_millis().to_string());
        self.auth.apply(&mut config);
        config
    }

    fn apply_passthrough(&self, config: &mut ClientConfig) {
        for (property, value) in &self.passthrough {
            config.set(property, value);
        }
    }

    /// The librdkafka configuration of the producer.
    pub fn producer_config(&self, bootstrap: &str) -> ClientConfig {
        let p = &self.producer;
        let mut config = self.common_config(bootstrap);
        config.set(
            "acks",
            match p.acks {
                Acks::All => "all",
                Acks::Leader => "1",
                Acks::None => "0",
            },
        );
        config.set("enable.idempotence", p.idempotence.to_string());
        config.set("compression.type", p.compression.as_str());
        config.set("linger.ms", p.linger.as_millis().to_string());
        config.set("message.timeout.ms", p.message_timeout.as_millis().to_string());
        config.set("topic.metadata.propagation.max.ms", p.unknown_topic_timeout.as_millis().to_string());
        let optional = [
            ("compression.level", p.compression_level),
            ("batch.size", p.batch_bytes),
            ("batch.num.messages", p.batch_messages),
            ("max.in.flight.requests.per.connection", p.max_in_flight),
            ("queue.buffering.max.messages", p.queue_max_messages),
            ("queue.buffering.max.kbytes", p.queue_max_kbytes),
            ("message.max.bytes", p.max_message_bytes),
        ];
        for (property, value) in optional {
            if let Some(value) = value {
                config.set(property, value.to_string());
            }
        }
        self.apply_passthrough(&mut config);
        config
    }

    /// The librdkafka configuration of a group consumer. Auto-commit and automatic offset
    /// storage are off: the bridge commits only offsets that daprd acked.
    pub fn consumer_config(&self, bootstrap: &str, group: &str) -> ClientConfig {
        let s = &self.subscriber;
        let mut config = self.common_config(bootstrap);
        config.set("group.id", group);
        config.set("enable.auto.commit", "false");
        config.set("enable.auto.offset.store", "false");
        config.set(
            "auto.offset.reset",
            match s.initial_offset {
                InitialOffset::Newest => "latest",
                InitialOffset::Oldest => "earliest",
            },
        );
        if let Some(hb) = s.heartbeat_interval {
            config.set("heartbeat.interval.ms", hb.as_millis().to_string());
        }
        if let Some(st) = s.session_timeout {
            config.set("session.timeout.ms", st.as_millis().to_string());
        }
        if let Some(strategy) = s.assignment_strategy {
            config.set("partition.assignment.strategy", strategy);
        }
        if let Some(max) = self.producer.max_message_bytes {
            config.set("message.max.bytes", max.to_string());
        }
        // Consumer lag and committed offsets for the metrics come from the statistics.
        config.set("statistics.interval.ms", "5000");
        // Messages wait in librdkafka's per-partition queues until a stream has room for them
        // (no pause): bound that prefetch per partition at 16 MB rather than librdkafka's 64 MB,
        // and at 10 000 messages rather than 100 000. Small records reach the count first, and
        // each costs librdkafka a few hundred bytes besides its payload: with 100 B records and
        // a slow daprd, 100 000 per partition held about 65 MB of RSS per partition.
        config.set("queued.max.messages.kbytes", "16384");
        config.set("queued.min.messages", "10000");
        // Once a partition's queue is over those bounds librdkafka postpones its next fetch by
        // `fetch.queue.backoff.ms` (1 s by default): a daprd that drains 10 000 messages in
        // less than that would then wait for the fetch. Look again after 10 ms instead.
        config.set("fetch.queue.backoff.ms", "10");
        self.apply_passthrough(&mut config);
        config
    }
}

fn parse_brokers(meta: &Metadata<'_>, brokers: &str) -> Result<String> {
    let list: Vec<&str> = brokers.split(',').map(str::trim).filter(|b| !b.is_empty()).collect();
    for broker in &list {
        let port = broker.rsplit_once(':').map(|(_, p)| p);
        if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
            return Err(meta.invalid("brokers", format!("`{broker}` is not host:port")));
        }
    }
    if list.is_empty() {
        return Err(meta.invalid("brokers", "names no broker (expected host:port[,host:port...])"));
    }
    Ok(list.join(","))
}

#[cfg(test)]
mod tests;
