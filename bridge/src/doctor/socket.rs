//! The second layer: the sockets folder as daprd sees it at start-up.
//!
//! daprd scans the folder once, dials every `*.sock` in it and asks reflection v1alpha for
//! the services; a socket file with no listener behind it (a bridge that crashed) can stall
//! that scan, and reflection failing on any socket means daprd registers no pluggable
//! component at all. So every socket in the folder is dialled, not only this Component's.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

use super::Layer;
use crate::healthcheck;

const TIMEOUT: Duration = Duration::from_secs(3);
const PUBSUB_SERVICE: &str = "dapr.proto.components.v1.PubSub";

/// Checks the folder, this Component's socket, and the other sockets daprd would dial.
pub(crate) async fn check(folder: &Path, socket_name: &str, layer: &mut Layer<'_>) {
    let metadata = match std::fs::metadata(folder) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => {
            layer.fail(format!("{} is not a directory", folder.display()), "point --sockets-folder at the folder");
            return;
        }
        Err(e) => {
            layer.fail(
                format!("sockets folder {}: {e}", folder.display()),
                "start the bridge (it creates the folder), and mount the same volume in daprd and the bridge \
                 (on Kubernetes the injector does; keep the default /tmp/dapr-components-sockets)",
            );
            return;
        }
    };
    let mode = metadata.permissions().mode() & 0o777;
    layer.pass(format!("sockets folder {} (mode {mode:o})", folder.display()));

    let socket = folder.join(format!("{socket_name}.sock"));
    match std::fs::metadata(&socket) {
        Err(_) => layer.fail(
            format!("{} does not exist: daprd will not find pubsub.{socket_name}", socket.display()),
            format!(
                "start the bridge with --component-name {socket_name} and the same sockets folder \
                 (DAPR_COMPONENTS_SOCKETS_FOLDER); then restart daprd, which scans the folder only at start-up"
            ),
        ),
        Ok(m) if !m.file_type().is_socket() => layer
            .fail(format!("{} is not a socket", socket.display()), "remove the file; the bridge creates the socket"),
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o006 != 0o006 {
                layer.warn(
                    format!(
                        "{} has mode {mode:o}: a daprd running as another user (uid 65532) cannot connect",
                        socket.display()
                    ),
                    "run the bridge with --socket-mode 666 (the default)",
                );
            } else {
                layer.pass(format!("{} (mode {mode:o})", socket.display()));
            }
        }
    }

    // Every socket daprd would dial.
    let mut sockets: Vec<_> = std::fs::read_dir(folder)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    sockets.retain(|p| p.extension().is_some_and(|e| e == "sock"));
    sockets.sort();
    for path in sockets {
        let ours = path == socket;
        if std::os::unix::net::UnixStream::connect(&path).is_err() {
            layer.fail(
                format!("{} is stale: nobody listens on it", path.display()),
                "delete it, or restart the component that owns it (the bridge removes its own stale socket \
                 when it starts); a dead socket can stall daprd's start-up scan",
            );
            continue;
        }
        match list_services(&path).await {
            Ok(services) if services.iter().any(|s| s == PUBSUB_SERVICE) => {
                layer.pass(format!("{}: reflection v1alpha lists {PUBSUB_SERVICE}", path.display()))
            }
            Ok(services) if ours => layer.fail(
                format!("{}: reflection lists {services:?}, not {PUBSUB_SERVICE}", path.display()),
                "is another program listening under the bridge's name? Stop it and start the bridge",
            ),
            Ok(_) => layer.pass(format!("{}: reflection v1alpha answers (another component)", path.display())),
            Err(e) => layer.fail(
                format!("{}: reflection v1alpha failed: {e}", path.display()),
                "daprd registers no pluggable component when reflection fails on any socket: fix or remove it",
            ),
        }
        if ours {
            match healthcheck::serving_status(&path, PUBSUB_SERVICE, TIMEOUT).await {
                Ok(ServingStatus::Serving) => layer.pass("health: SERVING"),
                Ok(status) => layer.fail(
                    format!("health: {}", status.as_str_name()),
                    "the bridge is shutting down or unhealthy: see its logs",
                ),
                Err(e) => layer.fail(format!("health: {e}"), "see the bridge's logs"),
            }
        }
    }
}

async fn list_services(socket: &Path) -> Result<Vec<String>, String> {
    let ask = async {
        let mut client = ServerReflectionClient::new(healthcheck::channel(socket, TIMEOUT).await?);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = client
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .map_err(|s| format!("{} {}", s.code(), s.message()))?
            .into_inner();
        match responses.message().await.map_err(|s| format!("{} {}", s.code(), s.message()))? {
            Some(response) => match response.message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    Ok(list.service.into_iter().map(|s| s.name).collect())
                }
                other => Err(format!("unexpected answer {other:?}")),
            },
            None => Err("no answer".to_owned()),
        }
    };
    tokio::time::timeout(TIMEOUT, ask).await.map_err(|_| format!("no answer within {TIMEOUT:?}"))?
}
