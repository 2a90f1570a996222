//! The gRPC server on the component socket: the PubSub service, reflection (v1alpha, which
//! daprd uses for discovery, and v1), and the standard health service.
//!
//! Shutdown order, once the token is cancelled:
//! 1. health turns NOT_SERVING and the server stops accepting connections and calls;
//! 2. PullMessages streams stop delivering, wait briefly for outstanding acks, commit the
//!    acked prefix and end;
//! 3. calls in flight finish (an acknowledged publish has its delivery report), bounded by
//!    the drain deadline;
//! 4. every producer is flushed within the shutdown timeout;
//! 5. the socket file is removed.

pub mod socket;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dapr_kafka_proto::PubSubServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;

use self::socket::SocketFile;
use crate::error::{Error, Result};
use crate::instances::Instances;
use crate::service::PubSubService;

/// What the server needs to know.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Socket path: `<sockets folder>/<component name>.sock`.
    pub socket_path: PathBuf,
    /// Socket file mode.
    pub socket_mode: u32,
    /// Bootstrap servers of the embedded mock cluster, for instances without `brokers`.
    pub embedded_bootstrap: Option<String>,
    /// How long shutdown waits for calls in flight, then for producers to flush.
    pub shutdown_timeout: Duration,
}

/// A bridge bound to its socket, ready to serve.
pub struct Bridge {
    listener: UnixListener,
    socket: SocketFile,
    instances: Arc<Instances>,
    shutdown_timeout: Duration,
}

impl Bridge {
    /// Binds the socket. After this returns, daprd can connect.
    pub fn bind(options: ServerOptions) -> Result<Self> {
        let (listener, socket) = SocketFile::bind(&options.socket_path, options.socket_mode)?;
        let instances = Arc::new(Instances::new(options.embedded_bootstrap, options.shutdown_timeout));
        Ok(Self { listener, socket, instances, shutdown_timeout: options.shutdown_timeout })
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        self.socket.path()
    }

    /// Serves until `shutdown` is cancelled, then shuts down in order.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<()> {
        let Bridge { listener, socket, instances, shutdown_timeout } = self;
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<PubSubServer<PubSubService>>().await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(dapr_kafka_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1alpha =
            reflection().build_v1alpha().map_err(|e| Error::Startup(format!("reflection: {e}")))?;
        let reflection_v1 = reflection().build_v1().map_err(|e| Error::Startup(format!("reflection: {e}")))?;

        tracing::info!(socket = %socket.path().display(), "serving dapr.proto.components.v1.PubSub");
        let stopping = shutdown.clone();
        let ending = instances.clone();
        let server = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1alpha)
            .add_service(reflection_v1)
            .add_service(PubSubServer::new(PubSubService::new(instances.clone())))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
                stopping.cancelled().await;
                health.set_not_serving::<PubSubServer<PubSubService>>().await;
                tracing::info!("shutting down: no new calls; ending streams; waiting for calls in flight");
                // Streams end by themselves only when daprd closes them: end them here (each
                // commits what was acked) so the server's graceful shutdown can complete.
                ending.end_streams();
            });
        let drain_deadline = async {
            shutdown.cancelled().await;
            tokio::time::sleep(shutdown_timeout).await;
        };
        tokio::select! {
            served = server => served?,
            () = drain_deadline => tracing::warn!(?shutdown_timeout, "calls still in flight at the drain deadline; closing"),
        }
        instances.shutdown(shutdown_timeout).await;
        drop(socket);
        tracing::info!("stopped");
        Ok(())
    }
}
