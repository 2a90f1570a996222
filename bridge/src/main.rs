//! `kafka-pubsub-bridge`: parses flags, sets up logging, runs the bridge (or one of its tools).

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: messages are allocated on a stream's thread and freed on the runtime's, which
/// glibc's allocator handles slowly (see the README's benchmarking section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = dapr_kafka_bridge::cli::Args::parse();
    dapr_kafka_bridge::telemetry::init(args.log_filter(), args.log_format)?;
    dapr_kafka_bridge::main(args).await
}
