//! Process flags. Component settings come from Init metadata instead (see [`crate::config`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

use crate::config::values;

/// Default sockets folder, as daprd's.
pub const DEFAULT_SOCKETS_FOLDER: &str = "/tmp/dapr-components-sockets";

/// A Dapr pluggable pub/sub component backed by Kafka.
#[derive(Debug, Parser)]
#[command(name = "kafka-pubsub-bridge", version, about)]
pub struct Args {
    /// Component name: the socket is `<sockets folder>/<name>.sock` and daprd registers the
    /// type `pubsub.<name>`.
    #[arg(long, env = "KAFKA_BRIDGE_COMPONENT_NAME", default_value = "kafka-bridge")]
    pub component_name: String,

    /// Sockets folder. Default: $DAPR_COMPONENTS_SOCKETS_FOLDER, then
    /// $DAPR_COMPONENT_SOCKETS_FOLDER, then /tmp/dapr-components-sockets.
    #[arg(long)]
    pub sockets_folder: Option<PathBuf>,

    /// Socket file mode (octal). 666 lets a daprd running as another user in the pod connect.
    #[arg(long, env = "KAFKA_BRIDGE_SOCKET_MODE", default_value = "666", value_parser = parse_mode)]
    pub socket_mode: u32,

    /// Run librdkafka's in-process mock cluster and use it for instances whose Init names no
    /// brokers. Nothing is durable: for trying the component, not for production.
    #[arg(long, env = "KAFKA_BRIDGE_EMBEDDED_KAFKA")]
    pub embedded_kafka: bool,

    /// Brokers in the embedded mock cluster.
    #[arg(long, default_value_t = 3)]
    pub embedded_brokers: i32,

    /// How long shutdown waits for calls in flight, and then for producers to flush
    /// (Go-style duration: 500ms, 10s, 1m).
    #[arg(long, env = "KAFKA_BRIDGE_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = values::duration)]
    pub shutdown_timeout: Duration,

    /// After SIGTERM, keep serving Publish and open streams this long (new streams are
    /// refused), as daprd keeps publishing while it drains; ends early once no connection is
    /// open. Keep it below the pod's terminationGracePeriodSeconds.
    #[arg(long, env = "KAFKA_BRIDGE_SHUTDOWN_GRACE", default_value = "20s", value_parser = values::duration)]
    pub shutdown_grace: Duration,

    /// How often Kafka is probed for gRPC health (NOT_SERVING while it does not answer).
    #[arg(long, env = "KAFKA_BRIDGE_HEALTH_INTERVAL", default_value = "5s", value_parser = values::duration)]
    pub health_interval: Duration,

    /// Largest gRPC request accepted (a Publish or BulkPublish); `maxMessageBytes` may not
    /// exceed it. tonic's default would be 4 MiB.
    #[arg(long, env = "KAFKA_BRIDGE_MAX_REQUEST_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_request_bytes: usize,

    /// Most component instances (distinct x-component-instance names).
    #[arg(long, env = "KAFKA_BRIDGE_MAX_INSTANCES", default_value_t = 64)]
    pub max_instances: usize,

    /// Most PullMessages streams per component instance.
    #[arg(long, env = "KAFKA_BRIDGE_MAX_STREAMS_PER_INSTANCE", default_value_t = 256)]
    pub max_streams_per_instance: usize,

    /// Accept a sockets folder other users can write to (a pod-private emptyDir, which
    /// kubelet creates world-writable). Otherwise such a folder is refused.
    #[arg(long, env = "KAFKA_BRIDGE_TRUST_SOCKET_FOLDER")]
    pub trust_socket_folder: bool,

    /// Serve Prometheus metrics at http://<addr>/metrics (e.g. 0.0.0.0:9464). Off by default.
    #[arg(long, env = "KAFKA_BRIDGE_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,

    /// Log filter (tracing `EnvFilter` syntax: info, debug, dapr_kafka_bridge=debug,...).
    #[arg(long, env = "KAFKA_BRIDGE_LOG", default_value = "info")]
    pub log: String,

    /// Log format.
    #[arg(long, env = "KAFKA_BRIDGE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Threads of the async runtime (gRPC, publish, acks). Default: half the CPUs the process
    /// may use, rounded up: librdkafka's own threads (one per broker, plus each stream's
    /// consumer thread) do the rest of the work, and on a small node a second runtime thread
    /// only adds wake-ups between threads (see the README's benchmarking section).
    #[arg(long, env = "KAFKA_BRIDGE_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,

    /// Print the component metadata keys (name, default, meaning) and exit.
    #[arg(long)]
    pub print_config_keys: bool,

    /// A tool instead of the bridge: `healthcheck` (exec probes) or `doctor` (diagnosis).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Tools that share the bridge's binary (distroless images have nothing else to run).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dial the bridge's socket and ask the gRPC health service; exit 0 when it is SERVING,
    /// 1 otherwise. For Kubernetes exec probes and Docker HEALTHCHECK (no shell needed). The
    /// socket is found as the bridge finds it (--component-name, --sockets-folder and their
    /// environment variables), so the probe needs no arguments in the bridge's container.
    Healthcheck(HealthcheckArgs),
    /// Walk a Component from its YAML to Kafka: metadata, socket, brokers, topics, consumer
    /// group. Prints ✓/✗ with a fix for every ✗; exits 1 if anything failed.
    Doctor(DoctorArgs),
}

/// `healthcheck` options.
#[derive(Debug, Clone, ClapArgs)]
pub struct HealthcheckArgs {
    /// Socket to dial (default: the bridge's own, from --component-name and --sockets-folder).
    #[arg(long)]
    pub socket: Option<PathBuf>,

    /// Give up after this long (Go-style duration).
    #[arg(long, default_value = "2s", value_parser = values::duration)]
    pub timeout: Duration,

    /// Service to ask about. The default, "", asks about the server as a whole: SERVING while
    /// it serves, NOT_SERVING once it shuts down; the question for liveness and startup probes.
    /// `dapr.proto.components.v1.PubSub` asks whether every instance's Kafka answers: for
    /// monitoring or a readiness check, never for liveness (restarting the bridge does not
    /// bring Kafka back, and daprd does not Init a restarted bridge again).
    #[arg(long, default_value = "")]
    pub service: String,
}

/// `doctor` options.
#[derive(Debug, Clone, ClapArgs)]
pub struct DoctorArgs {
    /// The Component YAML (Subscriptions in the same file name the topics to check).
    #[arg(long)]
    pub component: PathBuf,

    /// Check the socket in this folder too (where daprd and the bridge share sockets).
    #[arg(long = "sockets-folder", id = "doctor_sockets_folder")]
    pub sockets_folder: Option<PathBuf>,

    /// Metadata values to use instead of the YAML's, e.g. for `secretKeyRef`s the doctor
    /// cannot resolve: `--set saslPassword=...` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,

    /// Topics to check besides the Subscriptions' (repeatable).
    #[arg(long = "topic")]
    pub topics: Vec<String>,

    /// The Dapr app id: daprd sends it as `consumerID`, the group when `consumerGroup` is unset.
    #[arg(long)]
    pub app_id: Option<String>,

    /// How long each Kafka request may take.
    #[arg(long, default_value = "10s", value_parser = values::duration)]
    pub timeout: Duration,

    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_key_value(value: &str) -> Result<(String, String), String> {
    value
        .split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{value}` is not KEY=VALUE"))
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_mode(value: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(value.trim_start_matches("0o"), 8)
        .map_err(|_| format!("`{value}` is not an octal mode"))?;
    if mode > 0o777 {
        return Err(format!("`{value}` is not a file mode (000 to 777)"));
    }
    Ok(mode)
}

impl Args {
    /// The sockets folder: the flag, then the plural env var, then the singular, then the default.
    pub fn sockets_folder(&self) -> PathBuf {
        let from_env = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        self.sockets_folder
            .clone()
            .or_else(|| from_env("DAPR_COMPONENTS_SOCKETS_FOLDER"))
            .or_else(|| from_env("DAPR_COMPONENT_SOCKETS_FOLDER"))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKETS_FOLDER))
    }

    /// The log filter: the tools (`healthcheck`, `doctor`) log only warnings unless --log
    /// says otherwise, so their own output stays readable.
    pub fn log_filter(&self) -> &str {
        match (&self.command, self.log.as_str()) {
            (Some(_), "info") => "warn",
            (_, filter) => filter,
        }
    }

    /// Threads for the async runtime: `--worker-threads`, else half of `cpus` rounded up.
    pub fn runtime_threads(&self, cpus: usize) -> usize {
        self.worker_threads.map_or(cpus.div_ceil(2).max(1), usize::from)
    }

    /// `<sockets folder>/<component name>.sock`.
    pub fn socket_path(&self) -> PathBuf {
        self.sockets_folder().join(format!("{}.sock", self.component_name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_paths() {
        assert_eq!(parse_mode("666").unwrap(), 0o666);
        assert_eq!(parse_mode("0o600").unwrap(), 0o600);
        assert!(parse_mode("999").is_err());
        let args = Args::parse_from(["bridge", "--component-name", "orders", "--sockets-folder", "/run/x"]);
        assert_eq!(args.socket_path(), PathBuf::from("/run/x/orders.sock"));
        assert_eq!(args.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(args.shutdown_grace, Duration::from_secs(20));
        assert_eq!(args.max_request_bytes, 64 * 1024 * 1024);
    }

    #[test]
    fn runtime_threads_default_to_half_the_cpus() {
        let args = Args::parse_from(["bridge"]);
        assert_eq!([1, 2, 3, 4, 8].map(|cpus| args.runtime_threads(cpus)), [1, 1, 2, 2, 4]);
        let args = Args::parse_from(["bridge", "--worker-threads", "3"]);
        assert_eq!(args.runtime_threads(2), 3);
        assert!(Args::try_parse_from(["bridge", "--worker-threads", "0"]).is_err());
    }
}
