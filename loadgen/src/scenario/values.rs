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
    /// zstd (levels 1–22).
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
            Codec::Zstd => Some((1, 22)),
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

serde_as_text!(Compression, Acks, Rate);

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
        assert!("zstd:0".parse::<Compression>().unwrap_err().to_string().contains("1..=22"));
        assert!("snappy:2".parse::<Compression>().unwrap_err().to_string().contains("takes no level"));
        assert!("brotli".parse::<Compression>().unwrap_err().to_string().contains("none, gzip, snappy, lz4 or zstd"));
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
