//! The values a dimension can take, with their spelling on the command line and in scenario
//! files (`zstd:3`, `all`, `max`, `5000`) and their librdkafka property values.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A compression codec (librdkafka `compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Codec {
    /// No compression.
    None,
    /// gzip (levels 0–9).
    Gzip,
    /// snappy (no levels).
    Snappy,
    /// lz4 (levels 0–12).
    Lz4,
    /// zstd (levels 1–12: zstd has 22, but librdkafka's `compression.level` stops at 12).
    Zstd,
}

impl Codec {
    /// The librdkafka name.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }

    /// The levels librdkafka accepts for this codec (`compression.level`), if any.
    pub fn levels(self) -> Option<(i32, i32)> {
        match self {
            Codec::None | Codec::Snappy => None,
            Codec::Gzip => Some((0, 9)),
            Codec::Lz4 => Some((0, 12)),
            Codec::Zstd => Some((1, 12)),
        }
    }
}

/// A compression codec and optional level: `none`, `lz4`, `zstd:3`, `gzip:6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Compression {
    /// The codec.
    pub codec: Codec,
    /// The level; `None` is the codec's default.
    pub level: Option<i32>,
}

impl Compression {
    /// No compression.
    pub const NONE: Compression = Compression { codec: Codec::None, level: None };
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let (name, level) = match s.split_once(':') {
            Some((name, level)) => (name, Some(level)),
            None => (s, None),
        };
        let codec = match name.trim().to_ascii_lowercase().as_str() {
            "none" => Codec::None,
            "gzip" => Codec::Gzip,
            "snappy" => Codec::Snappy,
            "lz4" => Codec::Lz4,
            "zstd" => Codec::Zstd,
            other => {
                return Err(Error::invalid(format!(
                    "compression `{other}` is unknown: use none, gzip, snappy, lz4 or zstd, optionally with a level (zstd:3)"
                )));
            }
        };
        let level = match level {
            None => None,
            Some(level) => {
                let level: i32 = level
                    .trim()
                    .parse()
                    .map_err(|_| Error::invalid(format!("compression level in `{s}` is not a number")))?;
                match codec.levels() {
                    None => {
                        return Err(Error::invalid(format!("compression {} takes no level (got `{s}`)", codec.name())));
                    }
                    Some((lo, hi)) if !(lo..=hi).contains(&level) => {
                        return Err(Error::invalid(format!(
                            "compression level {level} for {} is out of range: {lo}..={hi}",
                            codec.name()
                        )));
                    }
                    Some(_) => Some(level),
                }
            }
        };
        Ok(Compression { codec, level })
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            Some(level) => write!(f, "{}:{level}", self.codec.name()),
            None => f.write_str(self.codec.name()),
        }
    }
}

/// Producer acknowledgements (librdkafka `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Acks {
    /// Fire and forget.
    None,
    /// The leader's write.
    Leader,
    /// All in-sync replicas.
    All,
}

impl Acks {
    /// The librdkafka value.
    pub fn property(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

impl FromStr for Acks {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "0" | "none" => Ok(Acks::None),
            "1" | "leader" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(Error::invalid(format!("acks `{other}` is unknown: use 0, 1 or all"))),
        }
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.property())
    }
}

/// The load model of a step: as fast as the bounded in-flight window allows (closed loop) or a
/// fixed rate in messages per second across all producers (open loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rate {
    /// Closed loop: maximum throughput.
    Max,
    /// Open loop: this many messages per second.
    PerSecond(u64),
}

impl FromStr for Rate {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        let digits = s.strip_suffix("/s").unwrap_or(s).replace('_', "");
        match digits.parse::<u64>() {
            Ok(0) => Err(Error::invalid("rate 0 sends nothing: use `max` for closed-loop load or a positive msgs/s")),
            Ok(rate) => Ok(Rate::PerSecond(rate)),
            Err(_) => Err(Error::invalid(format!("rate `{s}` is not `max` or a number of messages per second"))),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::PerSecond(rate) => write!(f, "{rate}"),
        }
    }
}

/// A count that can be left to the tool (`auto`): replication factor, min.insync.replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Count {
    /// Chosen from the cluster (see the dimension).
    Auto,
    /// Exactly this many.
    N(u32),
}

impl Count {
    /// The count, or `auto` resolved to `default`.
    pub fn or(self, default: u32) -> u32 {
        match self {
            Count::Auto => default,
            Count::N(n) => n,
        }
    }
}

impl FromStr for Count {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Count::Auto);
        }
        match s.parse::<u32>() {
            Ok(n) if (1..=16).contains(&n) => Ok(Count::N(n)),
            _ => Err(Error::invalid(format!("`{s}` is not `auto` or a count of 1..=16"))),
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::Auto => f.write_str("auto"),
            Count::N(n) => write!(f, "{n}"),
        }
    }
}

/// How records are keyed, which decides how they spread over partitions (librdkafka's
/// default partitioner hashes the key; keyless records go to a sticky partition per batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Keys {
    /// No key: sticky keyless batching.
    None,
    /// Key `i mod K` for the i-th message.
    RoundRobin(u32),
    /// A key drawn uniformly from K.
    Uniform(u32),
    /// A key drawn from K with Zipf's law, exponent `s` (stored in thousandths): a few keys
    /// (and so a few partitions) carry most of the traffic.
    Zipf {
        /// How many keys.
        keys: u32,
        /// Exponent × 1000.
        s_milli: u32,
    },
}

impl Keys {
    /// The number of distinct keys (0 for none).
    pub fn count(self) -> u32 {
        match self {
            Keys::None => 0,
            Keys::RoundRobin(k) | Keys::Uniform(k) | Keys::Zipf { keys: k, .. } => k,
        }
    }
}

impl FromStr for Keys {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::invalid(format!(
                "keys `{s}` is unknown: use none, rr:K (round-robin), uniform:K or zipf:K[:S] (K keys, exponent S, default 1.0)"
            ))
        };
        let parts: Vec<&str> = s.trim().split(':').collect();
        let keys = |i: usize| -> Result<u32, Error> {
            let k: u32 = parts.get(i).ok_or_else(bad)?.trim().parse().map_err(|_| bad())?;
            if k == 0 || k > 10_000_000 {
                return Err(Error::invalid(format!("keys `{s}`: K must be 1..=10000000")));
            }
            Ok(k)
        };
        match parts[0].to_ascii_lowercase().as_str() {
            "none" if parts.len() == 1 => Ok(Keys::None),
            "rr" | "round-robin" if parts.len() == 2 => Ok(Keys::RoundRobin(keys(1)?)),
            "uniform" if parts.len() == 2 => Ok(Keys::Uniform(keys(1)?)),
            "zipf" if parts.len() == 2 || parts.len() == 3 => {
                let exponent: f64 = match parts.get(2) {
                    Some(e) => e.trim().parse().map_err(|_| bad())?,
                    None => 1.0,
                };
                if !(0.0..=5.0).contains(&exponent) {
                    return Err(Error::invalid(format!("keys `{s}`: the Zipf exponent must be 0..=5")));
                }
                Ok(Keys::Zipf { keys: keys(1)?, s_milli: (exponent * 1000.0).round() as u32 })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keys::None => f.write_str("none"),
            Keys::RoundRobin(k) => write!(f, "rr:{k}"),
            Keys::Uniform(k) => write!(f, "uniform:{k}"),
            Keys::Zipf { keys, s_milli } => write!(f, "zipf:{keys}:{}", *s_milli as f64 / 1000.0),
        }
    }
}

/// Strings or numbers in scenario files, so `rate: 5000` and `rate: "max"` both work.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Bool(bool),
}

impl Scalar {
    fn text(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// Which path the load takes: librdkafka straight to Kafka, a Dapr pluggable pub/sub
/// component over its Unix socket (as daprd drives it), or a Dapr sidecar's HTTP publish API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetKind {
    /// librdkafka producers straight to the brokers.
    Direct,
    /// The pluggable component's gRPC interface over its socket (`--socket` or `--spawn-bridge`).
    Component,
    /// A Dapr sidecar's HTTP publish and bulk publish API (`--dapr-http`).
    Dapr,
}

impl FromStr for TargetKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "direct" | "kafka" => Ok(TargetKind::Direct),
            "component" | "bridge" => Ok(TargetKind::Component),
            "dapr" | "daprd" => Ok(TargetKind::Dapr),
            other => Err(Error::invalid(format!("target `{other}` is unknown: use direct, component or dapr"))),
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetKind::Direct => "direct",
            TargetKind::Component => "component",
            TargetKind::Dapr => "dapr",
        })
    }
}

/// How a component or dapr target publishes: `unary:N` (N concurrent `Publish` calls per
/// producer, what daprd does for a component without `BULK_PUBSUB`), `bulk:ExC` (`BulkPublish`
/// calls of up to E entries, C of them concurrent). `native` is the direct target's own
/// producer (the only value a direct step takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PublishMode {
    /// The direct target's librdkafka producer.
    Native,
    /// Unary calls, this many concurrent.
    Unary(u32),
    /// Bulk calls of up to `entries` entries, `calls` concurrent.
    Bulk {
        /// Entries per call, at most.
        entries: u32,
        /// Concurrent calls.
        calls: u32,
    },
}

impl PublishMode {
    /// Calls in flight at most, and entries per call at most.
    pub fn shape(self) -> (u32, u32) {
        match self {
            PublishMode::Native => (1, 1),
            PublishMode::Unary(n) => (n, 1),
            PublishMode::Bulk { entries, calls } => (calls, entries),
        }
    }
}

impl FromStr for PublishMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim().to_ascii_lowercase();
        let bad = || Error::invalid(format!("publish mode `{s}` is not native, unary:N or bulk:ExC (e.g. bulk:100x4)"));
        let count = |v: &str| match v.trim().replace('_', "").parse::<u32>() {
            Ok(n) if (1..=100_000).contains(&n) => Ok(n),
            _ => Err(Error::invalid(format!("publish mode `{s}`: counts must be 1..=100000"))),
        };
        if t == "native" {
            return Ok(PublishMode::Native);
        }
        if let Some(n) = t.strip_prefix("unary:") {
            return Ok(PublishMode::Unary(count(n)?));
        }
        if let Some(rest) = t.strip_prefix("bulk:") {
            let (e, c) = rest.split_once('x').unwrap_or((rest, "1"));
            return Ok(PublishMode::Bulk { entries: count(e)?, calls: count(c)? });
        }
        Err(bad())
    }
}

impl fmt::Display for PublishMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishMode::Native => f.write_str("native"),
            PublishMode::Unary(n) => write!(f, "unary:{n}"),
            PublishMode::Bulk { entries, calls } => write!(f, "bulk:{entries}x{calls}"),
        }
    }
}

macro_rules! serde_as_text {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Scalar::deserialize(deserializer)?.text().parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_text!(Compression, Acks, Rate, Count, Keys, TargetKind, PublishMode);

/// Human-readable durations (`500ms`, `2s`) in scenario and result files.
pub mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `2s`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    /// Reads `2s` or `500ms`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| serde::de::Error::custom(format!("duration `{text}`: {e}")))
    }

    /// The same for optional durations.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes `2s` or null.
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        /// Reads `2s`, or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => humantime::parse_duration(&text)
                    .map(Some)
                    .map_err(|e| serde::de::Error::custom(format!("duration `{text}`: {e}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_spellings() {
        assert_eq!("zstd:3".parse::<Compression>().unwrap(), Compression { codec: Codec::Zstd, level: Some(3) });
        assert_eq!("LZ4".parse::<Compression>().unwrap().to_string(), "lz4");
        assert!("zstd:0".parse::<Compression>().unwrap_err().to_string().contains("1..=12"));
        assert!("zstd:13".parse::<Compression>().is_err(), "librdkafka's compression.level stops at 12");
        assert!("snappy:2".parse::<Compression>().unwrap_err().to_string().contains("takes no level"));
        assert!("brotli".parse::<Compression>().unwrap_err().to_string().contains("none, gzip, snappy, lz4 or zstd"));
    }

    #[test]
    fn key_and_count_spellings() {
        assert_eq!("none".parse::<Keys>().unwrap(), Keys::None);
        assert_eq!("rr:16".parse::<Keys>().unwrap(), Keys::RoundRobin(16));
        assert_eq!("uniform:100".parse::<Keys>().unwrap().to_string(), "uniform:100");
        assert_eq!("zipf:1000:1.2".parse::<Keys>().unwrap(), Keys::Zipf { keys: 1000, s_milli: 1200 });
        assert_eq!("zipf:10".parse::<Keys>().unwrap().to_string(), "zipf:10:1");
        assert!("zipf:0".parse::<Keys>().unwrap_err().to_string().contains("1..=10000000"));
        assert!("hash".parse::<Keys>().unwrap_err().to_string().contains("rr:K"));
        assert_eq!("auto".parse::<Count>().unwrap(), Count::Auto);
        assert_eq!("3".parse::<Count>().unwrap().or(1), 3);
        assert!("0".parse::<Count>().is_err());
    }

    #[test]
    fn target_and_publish_spellings() {
        assert_eq!("direct".parse::<TargetKind>().unwrap(), TargetKind::Direct);
        assert_eq!("Component".parse::<TargetKind>().unwrap().to_string(), "component");
        assert!("grpc".parse::<TargetKind>().unwrap_err().to_string().contains("direct, component or dapr"));
        assert_eq!("unary:100".parse::<PublishMode>().unwrap(), PublishMode::Unary(100));
        assert_eq!("bulk:100x4".parse::<PublishMode>().unwrap(), PublishMode::Bulk { entries: 100, calls: 4 });
        assert_eq!("bulk:50".parse::<PublishMode>().unwrap().to_string(), "bulk:50x1");
        assert!("unary:0".parse::<PublishMode>().unwrap_err().to_string().contains("1..=100000"));
        assert!("batch".parse::<PublishMode>().unwrap_err().to_string().contains("bulk:ExC"));
    }

    #[test]
    fn rate_and_acks_spellings() {
        assert_eq!("max".parse::<Rate>().unwrap(), Rate::Max);
        assert_eq!("10_000/s".parse::<Rate>().unwrap(), Rate::PerSecond(10_000));
        assert!("0".parse::<Rate>().unwrap_err().to_string().contains("sends nothing"));
        assert_eq!("-1".parse::<Acks>().unwrap(), Acks::All);
        assert!("2".parse::<Acks>().is_err());
    }
}
