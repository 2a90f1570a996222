//! Command-line flags. Lists are comma-separated (`--linger-ms 0,5,50`); a flag given on the
//! command line overrides the same setting in `--scenario`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, Subcommand};

use crate::error::{Error, Result};
use crate::scenario::{DimensionArgs, Scenario};

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
    /// Find each configuration's maximum sustainable rate at a latency SLO (open-loop ramp,
    /// then bisection), repeat it for a confidence interval, and size a deployment.
    Capacity(Box<CapacityArgs>),
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
    /// Merge the result directories of distributed workers (worker mode) into one report:
    /// histograms are added from their `.hlog` files, so the percentiles are exact.
    Merge(crate::merge::MergeArgs),
    /// The subscribe side: drain a prepared backlog and deliver a live phase through a
    /// component's PullMessages (ack behaviours serial, window=N, nack=P%) next to the direct
    /// librdkafka consumer; delivery latency, drain rate, lag over time, redeliveries and
    /// dead-lettered counts.
    Drain(Box<crate::drain::DrainArgs>),
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
    /// The swept dimensions.
    #[command(flatten)]
    pub dimensions: DimensionArgs,
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
    /// The largest message the broker accepts (`1MB`); default: read from the cluster.
    #[arg(long)]
    pub max_message_bytes: Option<String>,
    /// Pass rule: the highest send-delay p99 (lateness against the schedule) of a sustained step.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_send_delay: Option<Duration>,
    /// Seed of payloads and key choice.
    #[arg(long)]
    pub seed: Option<u64>,
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
    /// Component target: the Dapr pluggable pub/sub component's socket (`<folder>/<name>.sock`).
    /// Given without `--target`, the sweep runs `--target direct,component`.
    #[arg(long, env = "LOADGEN_SOCKET", conflicts_with = "spawn_bridge")]
    pub socket: Option<PathBuf>,
    /// Component target: start the bridge binary on a private temporary socket and measure
    /// through it (its brokers: `--brokers`, else the embedded mock cluster). Given without
    /// `--target`, the sweep runs `--target direct,component`.
    #[arg(long)]
    pub spawn_bridge: bool,
    /// The bridge binary for `--spawn-bridge` (default: `$BRIDGE_BIN`, next to this
    /// executable, then `kafka-pubsub-bridge` on PATH).
    #[arg(long, env = "BRIDGE_BIN")]
    pub bridge_bin: Option<PathBuf>,
    /// Component target: the `x-component-instance` header (the Component's `metadata.name`).
    #[arg(long, default_value = "loadgen")]
    pub component_instance: String,
    /// Component target: extra `Init` metadata `key=value` (repeatable), applied last.
    #[arg(long = "component-metadata")]
    pub component_metadata: Vec<String>,
    /// Component target: not the kafka-pubsub-bridge; do not send the bridge's producer keys
    /// (`linger`, `batchBytes`, …) and say in the report which swept settings it did not get.
    #[arg(long)]
    pub foreign_component: bool,
    /// Component target started elsewhere (`--socket`): its process id, to report its CPU and
    /// peak RSS from `/proc/<pid>` as for a spawned bridge.
    #[arg(long)]
    pub component_pid: Option<u32>,
    /// Component target: deadline of reflection, `Init` and `Features` (daprd's default is 5s).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub init_timeout: Duration,
    /// Worker mode (distributed load): `--worker-index`, `--workers`, `--start-at`, `--run-id`,
    /// `--step-gap` (see `crate::worker`).
    #[command(flatten)]
    pub worker: crate::worker::WorkerArgs,
    /// Dapr target (`--target dapr`): daprd's HTTP address, loopback only (`127.0.0.1:3500`).
    #[arg(long, env = "LOADGEN_DAPR_HTTP")]
    pub dapr_http: Option<std::net::SocketAddr>,
    /// Dapr target: the pub/sub Component's name in daprd.
    #[arg(long, default_value = "pubsub")]
    pub dapr_pubsub: String,
}

/// `capacity` flags: every `sweep` flag (the `--rate` dimension is replaced by the search),
/// plus the SLO, the search's budget and the sizing inputs.
#[derive(Debug, Clone, ClapArgs)]
pub struct CapacityArgs {
    /// Where, what and how long each probe runs (`--duration` is a probe's measured phase).
    #[command(flatten)]
    pub sweep: SweepArgs,
    /// Publish-latency SLO: a probe passes only if its publish p99 is at most this.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20ms")]
    pub slo_p99: Duration,
    /// Optional end-to-end SLO (send → read by the tool's consumer), p99.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub slo_e2e_p99: Option<Duration>,
    /// Upper bound of the whole search; configurations not reached are reported as such.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub budget: Duration,
    /// Repeats of the final (highest passing) probe, for the confidence interval.
    #[arg(long, default_value_t = 3)]
    pub repeats: u32,
    /// First rate of the geometric ramp, msgs/s.
    #[arg(long, default_value_t = 1000)]
    pub start_rate: u64,
    /// Highest rate tried, msgs/s.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_rate: u64,
    /// Bisection stops when the bracket is this narrow, relative (0.05 = 5 %).
    #[arg(long, default_value_t = 0.05)]
    pub precision: f64,
    /// Sizing: the rate to plan for, `50MB/s` or msgs/s (`20000`).
    #[arg(long)]
    pub target_rate: Option<String>,
    /// Sizing: growth headroom on top of the target rate (`50%`).
    #[arg(long, default_value = "25%")]
    pub growth: String,
    /// Sizing: how long the topic keeps data.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "7days")]
    pub retention: Duration,
    /// Sizing: consumer groups reading the topic.
    #[arg(long, default_value_t = 1)]
    pub consumer_groups: u32,
    /// Sizing: what one application consumer processes, msgs/s or `MB/s` (default: what the
    /// tool's own consumer read at the sustained rate).
    #[arg(long)]
    pub consumer_rate: Option<String>,
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

impl SweepArgs {
    /// The scenario: the file (or the default), then every flag given on top.
    pub fn scenario(&self) -> Result<Scenario> {
        let mut s = match &self.scenario {
            Some(path) => Scenario::from_file(path)?,
            None => Scenario::default(),
        };
        self.dimensions.apply(&mut s.dimensions)?;
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
            s.max_message_bytes = Some(parse_size(m)?);
        }
        if let Some(d) = self.max_send_delay {
            s.pass.max_send_delay_p99 = d;
        }
        if let Some(seed) = self.seed {
            s.seed = seed;
        }
        if let Some(t) = self.message_timeout {
            s.message_timeout = t;
        }
        if self.no_end_to_end {
            s.end_to_end = false;
        }
        if (self.socket.is_some() || self.spawn_bridge) && self.dimensions.target.is_empty() && s.cases.is_empty() {
            s.dimensions.target = vec![crate::scenario::TargetKind::Direct, crate::scenario::TargetKind::Component];
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
        assert_eq!(s.dimensions.rate, vec![crate::scenario::Rate::Max, crate::scenario::Rate::PerSecond(5000)]);
        assert_eq!(s.phases.duration, Duration::from_secs(3));
        assert_eq!(s.properties["socket.nagle.disable"], "true");
        assert_eq!(s.validate().unwrap().len(), 2 * 3 * 3 * 2 * 2);
        let s = parse(&["--keys", "rr:8,zipf:100", "--replication-factor", "1", "--min-insync-replicas", "1"])
            .scenario()
            .unwrap();
        assert_eq!(s.dimensions.keys.len(), 2);
        assert_eq!(s.dimensions.replication_factor, vec![crate::scenario::Count::N(1)]);
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
