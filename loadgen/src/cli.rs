//! Command-line flags. Lists are comma-separated (`--linger-ms 0,5,50`); a flag given on the
//! command line overrides the same setting in `--scenario`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, Subcommand};

use crate::error::{Error, Result};
use crate::scenario::{Acks, Compression, Rate, Scenario};

/// Kafka load generator: parameter sweeps with honest latency percentiles.
#[derive(Debug, Parser)]
#[command(name = "kafka-loadgen", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing `EnvFilter` syntax). librdkafka's own warnings are errors-only by
    /// default: failures are recorded per step, and the mock cluster's offset resets (it
    /// keeps 5 MB per partition) would only scroll over the progress bar.
    #[arg(long, env = "LOADGEN_LOG", default_value = "warn,librdkafka=error", global = true)]
    pub log: String,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a sweep (with no options: a one-minute default sweep on an in-process mock cluster).
    Sweep(Box<SweepArgs>),
    /// Re-render the Markdown and HTML reports from a result JSON.
    Report {
        /// The `results.json` of a sweep.
        result: PathBuf,
        /// Where to write `summary.md` and `report.html` (default: next to the JSON).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Create a topic through the admin API (for other tools, e.g. the benchmark script).
    CreateTopic {
        /// Kafka bootstrap servers.
        #[arg(long, env = "LOADGEN_BROKERS")]
        brokers: String,
        /// Partitions.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Topic name.
        topic: String,
    },
    /// Compare two results side by side (Markdown on stdout).
    Compare {
        /// Baseline `results.json`.
        a: PathBuf,
        /// The other `results.json`.
        b: PathBuf,
        /// Also write the comparison to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// `sweep` flags.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct SweepArgs {
    /// Kafka bootstrap servers; without it the sweep runs on librdkafka's in-process mock cluster.
    #[arg(long, env = "LOADGEN_BROKERS")]
    pub brokers: Option<String>,
    /// Brokers in the embedded mock cluster.
    #[arg(long, default_value_t = 3)]
    pub embedded_brokers: i32,
    /// Scenario file (YAML or TOML); flags below override its settings.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Name shown in the reports.
    #[arg(long)]
    pub name: Option<String>,
    /// batch.size values in bytes (`16384,1MB`).
    #[arg(long, value_delimiter = ',')]
    pub batch_size: Vec<String>,
    /// linger.ms values.
    #[arg(long, value_delimiter = ',')]
    pub linger_ms: Vec<u32>,
    /// Compression values: none, gzip, snappy, lz4, zstd, with optional level (`zstd:3`).
    #[arg(long, value_delimiter = ',')]
    pub compression: Vec<String>,
    /// Partition counts.
    #[arg(long, value_delimiter = ',')]
    pub partitions: Vec<u32>,
    /// Message sizes in bytes (`100,1KiB,10KiB`).
    #[arg(long, value_delimiter = ',')]
    pub message_size: Vec<String>,
    /// acks values: 0, 1, all.
    #[arg(long, value_delimiter = ',')]
    pub acks: Vec<String>,
    /// enable.idempotence values: true, false.
    #[arg(long, value_delimiter = ',')]
    pub idempotence: Vec<bool>,
    /// Producer counts (one thread and one librdkafka instance each).
    #[arg(long, value_delimiter = ',')]
    pub producers: Vec<u32>,
    /// Rates: `max` (closed loop) or msgs/s across all producers (open loop).
    #[arg(long, value_delimiter = ',')]
    pub rate: Vec<String>,
    /// Warm-up before measuring.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    /// Length of the measured phase.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Measure this many messages instead of a duration.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Load after measuring.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub cooldown: Option<Duration>,
    /// Target payload compressibility (zstd ratio; 1 = random bytes).
    #[arg(long)]
    pub compressibility: Option<f64>,
    /// Sample payloads from this file (one message per line).
    #[arg(long)]
    pub payload_file: Option<PathBuf>,
    /// Closed-loop bound: messages queued or in flight per producer.
    #[arg(long)]
    pub max_in_flight: Option<u32>,
    /// The largest message the broker accepts (`1MB`).
    #[arg(long)]
    pub max_message_bytes: Option<String>,
    /// How long a message may wait for delivery (librdkafka message.timeout.ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub message_timeout: Option<Duration>,
    /// Extra librdkafka producer property `key=value` (repeatable).
    #[arg(short = 'X', long = "property")]
    pub property: Vec<String>,
    /// Do not run the end-to-end consumer (pure producer benchmark).
    #[arg(long)]
    pub no_end_to_end: bool,
    /// Output directory (default `loadgen-results/<time>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Timeout for reaching the cluster and for topic admin operations.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub admin_timeout: Duration,
    /// Embedded cluster only: stall every broker for LENGTH starting AFTER into each measured
    /// phase (`AFTER+LENGTH`, e.g. `500ms+1s`), to see coordinated omission at work.
    #[arg(long)]
    pub inject_stall: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// `1024`, `16k`/`16KiB` (×1024), `1KB` (×1000), `1MiB`/`1m`, `1MB`.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '_').unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 =
        digits.replace('_', "").parse().map_err(|_| Error::invalid(format!("size `{s}` is not a number of bytes")))?;
    let factor = match unit.trim() {
        "" | "B" | "b" => 1,
        "k" | "K" | "KiB" | "kib" => 1024,
        "KB" | "kB" | "kb" => 1000,
        "m" | "M" | "MiB" | "mib" => 1 << 20,
        "MB" | "mb" => 1_000_000,
        other => {
            return Err(Error::invalid(format!("size unit `{other}` in `{s}` is unknown: use B, KiB, KB, MiB or MB")));
        }
    };
    n.checked_mul(factor).ok_or_else(|| Error::invalid(format!("size `{s}` is too large")))
}

fn parse_list<T>(values: &[String], parse: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    values.iter().map(|v| parse(v)).collect()
}

fn to_u32(what: &str) -> impl Fn(&str) -> Result<u32> + '_ {
    move |s| {
        let n = parse_size(s)?;
        u32::try_from(n).map_err(|_| Error::invalid(format!("{what} `{s}` is too large")))
    }
}

impl SweepArgs {
    /// The scenario: the file (or the default), then every flag given on top.
    pub fn scenario(&self) -> Result<Scenario> {
        let mut s = match &self.scenario {
            Some(path) => Scenario::from_file(path)?,
            None => Scenario::default(),
        };
        let d = &mut s.dimensions;
        if !self.batch_size.is_empty() {
            d.batch_size = parse_list(&self.batch_size, to_u32("batch size"))?;
        }
        if !self.linger_ms.is_empty() {
            d.linger_ms = self.linger_ms.clone();
        }
        if !self.compression.is_empty() {
            d.compression = parse_list(&self.compression, |v| v.parse::<Compression>())?;
        }
        if !self.partitions.is_empty() {
            d.partitions = self.partitions.clone();
        }
        if !self.message_size.is_empty() {
            d.message_size = parse_list(&self.message_size, to_u32("message size"))?;
        }
        if !self.acks.is_empty() {
            d.acks = parse_list(&self.acks, |v| v.parse::<Acks>())?;
        }
        if !self.idempotence.is_empty() {
            d.idempotence = self.idempotence.clone();
        }
        if !self.producers.is_empty() {
            d.producers = self.producers.clone();
        }
        if !self.rate.is_empty() {
            d.rate = parse_list(&self.rate, |v| v.parse::<Rate>())?;
        }
        if let Some(name) = &self.name {
            s.name = name.clone();
        }
        if let Some(w) = self.warmup {
            s.phases.warmup = w;
        }
        if let Some(d) = self.duration {
            s.phases.duration = d;
            s.phases.messages = None;
        }
        if let Some(n) = self.messages {
            s.phases.messages = Some(n);
        }
        if let Some(c) = self.cooldown {
            s.phases.cooldown = c;
        }
        if let Some(c) = self.compressibility {
            s.payload.compressibility = c;
        }
        if let Some(f) = &self.payload_file {
            s.payload.file = Some(f.display().to_string());
        }
        if let Some(n) = self.max_in_flight {
            s.max_in_flight = n;
        }
        if let Some(m) = &self.max_message_bytes {
            s.max_message_bytes = parse_size(m)?;
        }
        if let Some(t) = self.message_timeout {
            s.message_timeout = t;
        }
        if self.no_end_to_end {
            s.end_to_end = false;
        }
        for p in &self.property {
            let (k, v) = p.split_once('=').ok_or_else(|| Error::invalid(format!("property `{p}` is not key=value")))?;
            s.properties.insert(k.trim().to_owned(), v.trim().to_owned());
        }
        Ok(s)
    }

    /// The injected stall, if any.
    pub fn stall(&self) -> Result<Option<crate::target::Stall>> {
        let Some(spec) = &self.inject_stall else { return Ok(None) };
        if self.brokers.is_some() {
            return Err(Error::invalid("--inject-stall works only on the embedded mock cluster (no --brokers)"));
        }
        let bad = || Error::invalid(format!("--inject-stall `{spec}` is not AFTER+LENGTH (e.g. 500ms+1s)"));
        let (after, length) = spec.split_once('+').ok_or_else(bad)?;
        let after = humantime::parse_duration(after.trim()).map_err(|_| bad())?;
        let length = humantime::parse_duration(length.trim()).map_err(|_| bad())?;
        if length.is_zero() {
            return Err(Error::invalid("--inject-stall length must be positive"));
        }
        Ok(Some(crate::target::Stall { after, length }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> SweepArgs {
        let mut argv = vec!["kafka-loadgen", "sweep"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Sweep(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_become_a_scenario() {
        let a = parse(&[
            "--linger-ms",
            "0,5,50",
            "--compression",
            "none,lz4,zstd:3",
            "--partitions",
            "1,6",
            "--batch-size",
            "16KiB,1MB",
            "--rate",
            "max,5000",
            "--duration",
            "3s",
            "--message-size",
            "512",
            "-X",
            "socket.nagle.disable=true",
        ]);
        let s = a.scenario().unwrap();
        assert_eq!(s.dimensions.linger_ms, vec![0, 5, 50]);
        assert_eq!(s.dimensions.batch_size, vec![16_384, 1_000_000]);
        assert_eq!(s.dimensions.compression[2].to_string(), "zstd:3");
        assert_eq!(s.dimensions.rate, vec![Rate::Max, Rate::PerSecond(5000)]);
        assert_eq!(s.phases.duration, Duration::from_secs(3));
        assert_eq!(s.properties["socket.nagle.disable"], "true");
        assert_eq!(s.validate().unwrap().len(), 2 * 3 * 3 * 2 * 2);
    }

    #[test]
    fn bad_flags_are_named() {
        assert!(parse(&["--compression", "brotli"]).scenario().unwrap_err().to_string().contains("brotli"));
        assert!(parse(&["--message-size", "1 parsec"]).scenario().unwrap_err().to_string().contains("unknown"));
        assert!(parse(&["-X", "nokey"]).scenario().unwrap_err().to_string().contains("key=value"));
        assert!(parse(&["--inject-stall", "1s"]).stall().unwrap_err().to_string().contains("AFTER+LENGTH"));
        assert!(
            parse(&["--brokers", "x:1", "--inject-stall", "1s+1s"])
                .stall()
                .unwrap_err()
                .to_string()
                .contains("embedded")
        );
        let stall = parse(&["--inject-stall", "500ms+1s"]).stall().unwrap().unwrap();
        assert_eq!(stall.after, Duration::from_millis(500));
        assert_eq!(stall.length, Duration::from_secs(1));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("16KiB").unwrap(), 16_384);
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert!(parse_size("x").is_err());
    }
}
