//! `kafka-loadgen`: parses flags, sets up logging, runs the command.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = kafka_loadgen::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log)?)
        .with_writer(std::io::stderr)
        .init();
    kafka_loadgen::run(cli.command)?;
    Ok(())
}
