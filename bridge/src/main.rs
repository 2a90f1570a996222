//! `kafka-pubsub-bridge`: parses flags, sets up logging, runs the bridge (or one of its tools).

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: messages are allocated on a stream's thread and freed on the runtime's, which
/// glibc's allocator handles slowly (see the README's benchmarking section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<ExitCode> {
    let args = dapr_kafka_bridge::cli::Args::parse();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.runtime_threads(cpus)).enable_all().build()?;
    let outcome = runtime.block_on(async {
        dapr_kafka_bridge::telemetry::init(args.log_filter(), args.log_format)?;
        dapr_kafka_bridge::main(args).await
    });
    // Blocking work the shutdown left behind (a stream thread stuck in librdkafka, joined on
    // the blocking pool) must not hold the exit: dropping the runtime would wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    outcome
}
