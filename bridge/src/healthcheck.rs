//! `kafka-pubsub-bridge healthcheck`: the probe for images without a shell.
//!
//! The runtime image is distroless (no shell, no `grpc_health_probe`), so Kubernetes exec
//! probes and Docker's `HEALTHCHECK` run the bridge's own binary. It dials the Unix socket the
//! bridge serves (found exactly as the bridge finds it: `--component-name`,
//! `--sockets-folder`, then `DAPR_COMPONENTS_SOCKETS_FOLDER`, `DAPR_COMPONENT_SOCKETS_FOLDER`,
//! the default), calls `grpc.health.v1.Health/Check` and exits 0 only when the answer is
//! `SERVING`. By default it asks about the server as a whole (""), which is SERVING until
//! shutdown starts: what a liveness probe should see. The PubSub service's health also follows
//! Kafka (NOT_SERVING while an instance's Kafka does not answer); a liveness probe must not
//! ask that, since daprd does not Init a restarted bridge again (`--service` asks it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::cli::{Args, HealthcheckArgs};

/// Runs the probe and prints one line: `SERVING` on stdout, or the reason on stderr.
pub async fn run(args: &Args, check: &HealthcheckArgs) -> ExitCode {
    let socket = check.socket.clone().unwrap_or_else(|| args.socket_path());
    match serving_status(&socket, &check.service, check.timeout).await {
        Ok(ServingStatus::Serving) => {
            println!("SERVING {}", socket.display());
            ExitCode::SUCCESS
        }
        Ok(status) => {
            eprintln!("{}: {} is {}", socket.display(), service_name(&check.service), status.as_str_name());
            ExitCode::FAILURE
        }
        Err(reason) => {
            eprintln!("{}: {reason}", socket.display());
            ExitCode::FAILURE
        }
    }
}

fn service_name(service: &str) -> &str {
    if service.is_empty() { "the server" } else { service }
}

/// Connects a gRPC channel to a Unix socket (the URI is a placeholder; the connector dials
/// the socket). grpc-go, like daprd, sends `:authority localhost`; so does tonic here.
pub async fn channel(socket: &Path, timeout: Duration) -> Result<Channel, String> {
    let path: PathBuf = socket.to_owned();
    let endpoint = Endpoint::try_from("http://localhost").map_err(|e| e.to_string())?.connect_timeout(timeout);
    endpoint
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { tokio::net::UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|e| {
            let source = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
            format!("cannot connect{source}")
        })
}

/// Asks the health service about `service` ("" for the whole server).
pub async fn serving_status(socket: &Path, service: &str, timeout: Duration) -> Result<ServingStatus, String> {
    let ask = async {
        let mut client = HealthClient::new(channel(socket, timeout).await?);
        let response = client
            .check(HealthCheckRequest { service: service.to_owned() })
            .await
            .map_err(|status| format!("health check failed: {} {}", status.code(), status.message()))?;
        Ok(ServingStatus::try_from(response.into_inner().status).unwrap_or(ServingStatus::Unknown))
    };
    tokio::time::timeout(timeout, ask).await.map_err(|_| format!("no answer within {timeout:?}"))?
}
