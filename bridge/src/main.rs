//! `kafka-pubsub-bridge`: parses flags, sets up logging, runs the bridge.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = dapr_kafka_bridge::cli::Args::parse();
    dapr_kafka_bridge::telemetry::init(&args.log, args.log_format)?;
    dapr_kafka_bridge::run(args).await
}
