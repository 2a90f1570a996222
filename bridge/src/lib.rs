//! A Dapr pluggable pub/sub component backed by Kafka through librdkafka.
//!
//! ```text
//!  daprd ──gRPC over <sockets folder>/<name>.sock──► server (reflection, health)
//!                                                     │
//!                                                  service (thin: header → instance)
//!                                                     │
//!                                  instances: one per x-component-instance header
//!                                     │ config (Dapr metadata → typed → librdkafka)
//!                                     ▼
//!                        producer (batching,            subscriber (one consumer thread
//!                        delivery reports,              per PullMessages stream, offsets:
//!                        back-pressure)                 commit only what daprd acked)
//!                                     ▼                  ▲
//!                                   Kafka (or the embedded mock cluster)
//! ```
//!
//! | module | what it knows |
//! |---|---|
//! | [`config`] | Dapr Kafka metadata names, validation, librdkafka properties |
//! | [`server`] | socket discovery rules, reflection v1alpha, health, shutdown order |
//! | [`service`] | the gRPC surface daprd calls |
//! | [`instances`] | per-Component state, re-Init |
//! | [`producer`] | delivery reports, bulk completion, queue back-pressure |
//! | [`subscriber`] | PullMessages streams, rebalances, retries, dead letters, flow control |
//! | [`offsets`] | the per-partition ack tracker (what is safe to commit) |
//! | [`embedded`] | the in-process mock cluster |
//! | [`topic`] | legal Kafka topic names; missing topics: what exists, creating them (`autoCreateTopics`) |
//! | [`error`] | the one error type and its gRPC codes |
//! | [`healthcheck`] | the `healthcheck` tool: exec probes without a shell |
//! | [`doctor`] | the `doctor` tool: YAML → socket → Kafka → topics → group, with fixes |

pub mod cli;
pub mod config;
pub mod doctor;
pub mod embedded;
pub mod error;
pub mod healthcheck;
pub mod instances;
pub mod offsets;
pub mod producer;
pub mod server;
pub mod service;
pub mod subscriber;
pub mod telemetry;
pub mod topic;

pub use error::{Error, Result};

use tokio_util::sync::CancellationToken;

/// The binary's entry point: one of the tools, or the bridge itself.
pub async fn main(args: cli::Args) -> anyhow::Result<std::process::ExitCode> {
    match &args.command {
        Some(cli::Command::Healthcheck(check)) => Ok(healthcheck::run(&args, check).await),
        Some(cli::Command::Doctor(doctor)) => Ok(doctor::run(doctor).await),
        None => run(args).await.map(|()| std::process::ExitCode::SUCCESS),
    }
}

/// Runs the bridge until SIGTERM or SIGINT.
pub async fn run(args: cli::Args) -> anyhow::Result<()> {
    if args.print_config_keys {
        for key in config::keys::KEYS {
            println!("{}\t{}\t{}", key.name, key.default, key.meaning);
        }
        return Ok(());
    }
    if let Some(addr) = args.metrics_addr {
        telemetry::serve_metrics(addr)?;
    }
    // The socket first, before any Kafka work: daprd scans the sockets folder once, at its
    // own start (dapr#6180), so the socket must be there within milliseconds.
    let bridge = server::Bridge::bind(server::ServerOptions {
        socket_path: args.socket_path(),
        socket_mode: args.socket_mode,
        embedded_bootstrap: None,
        shutdown_timeout: args.shutdown_timeout,
        shutdown_grace: args.shutdown_grace,
        health_interval: args.health_interval,
        limits: instances::Limits {
            max_instances: args.max_instances,
            max_streams_per_instance: args.max_streams_per_instance,
            max_request_bytes: args.max_request_bytes,
        },
        trust_socket_folder: args.trust_socket_folder,
    })?;
    let embedded = if args.embedded_kafka {
        let cluster = embedded::EmbeddedKafka::start(args.embedded_brokers)?;
        tracing::warn!(
            bootstrap = cluster.bootstrap(),
            "EMBEDDED Kafka (librdkafka mock cluster) is running in this process: NOTHING IS DURABLE"
        );
        bridge.use_embedded(cluster.bootstrap().to_owned());
        Some(cluster)
    } else {
        None
    };
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    let socket = args.socket_path();
    tokio::spawn(async move {
        let mut signals = Signals::listen();
        signals.next().await;
        on_signal.cancel();
        // A second signal means "now": an operator (or a supervisor's last warning) will not
        // wait for the drain. Acked but uncommitted messages are delivered again; publishes
        // not answered yet fail on daprd's side, which retries them.
        signals.next().await;
        tracing::warn!("second signal: exiting now, before the shutdown finished");
        let _ = std::fs::remove_file(&socket);
        std::process::exit(1);
    });
    bridge.serve(shutdown).await?;
    drop(embedded);
    Ok(())
}

/// SIGTERM and SIGINT, as one stream of shutdown requests.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
            int: signal(SignalKind::interrupt()).expect("SIGINT handler"),
        }
    }

    /// Waits for the next SIGTERM or SIGINT.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
    }
}
