//! Logs and metrics.
//!
//! Logs: `tracing` with an `EnvFilter`, as text or JSON lines on stderr. Metrics: the
//! `metrics` facade with a Prometheus exporter on `--metrics-addr`; every metric the bridge
//! records is named and documented in [`metrics`], next to the event that counts it.

pub mod metrics;

use std::net::SocketAddr;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global log subscriber. `filter` uses `EnvFilter` syntax.
pub fn init(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| anyhow::anyhow!(e))
}

/// Serves Prometheus metrics at `http://<addr>/metrics`. Must run inside the tokio runtime.
pub fn serve_metrics(addr: SocketAddr) -> anyhow::Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(metrics::LATENCY_BUCKETS)?
        .install()?;
    metrics::describe();
    tracing::info!(%addr, "Prometheus metrics at /metrics");
    Ok(())
}
