//! The gRPC server on the component socket: the PubSub service, reflection (v1alpha, which
//! daprd uses for discovery, and v1), and the standard health service.
//!
//! Shutdown order, once the token is cancelled (SIGTERM). In Kubernetes daprd gets its SIGTERM
//! at the same moment and keeps publishing while it drains (up to 30 s), so the bridge does not
//! stop serving at once:
//! 1. health turns NOT_SERVING; new PullMessages streams are refused; Publish, BulkPublish and
//!    the open streams go on for the grace period (`--shutdown-grace`), which ends early once
//!    no connection is open (daprd is gone);
//! 2. the server stops accepting connections and calls; PullMessages streams stop delivering,
//!    wait briefly for outstanding acks, commit the acked prefix and end;
//! 3. calls in flight finish (an acknowledged publish has its delivery report), bounded by
//!    the drain deadline;
//! 4. every producer is flushed within the shutdown timeout;
//! 5. the socket file is removed.
//!
//! While serving, a health task asks each instance's cluster for metadata every
//! `--health-interval`: health is NOT_SERVING while any instance's Kafka does not answer
//! (dapr#8343), and `kafka_bridge_broker_connected` says which.
//!
//! The gRPC request limit (`--max-request-bytes`) replaces tonic's 4 MiB default, so a
//! Publish as large as `maxMessageBytes` allows is not refused before it reaches Kafka.
//!
//! The HTTP/2 connection window is [`CONNECTION_WINDOW`], not hyper's 1 MiB. h2 (0.4.20 on)
//! guards against floods of small DATA frames: every frame under 256 bytes that has arrived
//! and is not read yet takes `256 - its size` from a budget of half the connection window,
//! and when the budget runs out the server ends the *whole connection* (GOAWAY
//! ENHANCE_YOUR_CALM). daprd's acks are exactly such frames (about 20 bytes each), all of its
//! streams share one connection, and a stream's reader stops reading while it hands a nack
//! to a busy stream thread. With 1 MiB that allowed about 2 200 unread acks on the connection,
//! two streams' worth at the default `maxInFlightPerStream`; losing the connection ends every
//! stream, and daprd does not reopen them. With 16 MiB it is about 35 000. The bench's no-op
//! server, which has no such pause, lost its connection this way under a 100 k-message drain.

mod connections;
pub mod socket;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use self::connections::Connections;
use crate::instances::Limits;

use dapr_kafka_proto::PubSubServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;

use self::socket::SocketFile;
use crate::error::{Error, Result};
use crate::instances::Instances;
use crate::service::PubSubService;

/// The HTTP/2 connection flow-control window: the most daprd may send before the bridge
/// reads it, and twice h2's budget for unread small DATA frames (see the module's docs).
pub const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

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
    /// How long Publish stays served after the shutdown signal (ends early once no
    /// connection is open).
    pub shutdown_grace: Duration,
    /// How often Kafka is probed for the health status.
    pub health_interval: Duration,
    /// Bounds on what callers can make the bridge hold.
    pub limits: Limits,
    /// Accept a sockets folder that other users can write to (a pod's `emptyDir`).
    pub trust_socket_folder: bool,
}

impl ServerOptions {
    /// Options with defaults for everything but the socket path.
    pub fn new(socket_path: PathBuf) -> Self {
        Self {
            socket_path,
            socket_mode: 0o666,
            embedded_bootstrap: None,
            shutdown_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::ZERO,
            health_interval: Duration::from_secs(5),
            limits: Limits::default(),
            trust_socket_folder: false,
        }
    }
}

/// A bridge bound to its socket, ready to serve.
pub struct Bridge {
    listener: UnixListener,
    socket: SocketFile,
    instances: Arc<Instances>,
    options: ServerOptions,
}

impl Bridge {
    /// Binds the socket. After this returns, daprd can connect.
    pub fn bind(options: ServerOptions) -> Result<Self> {
        let (listener, socket) =
            SocketFile::bind(&options.socket_path, options.socket_mode, options.trust_socket_folder)?;
        let instances =
            Arc::new(Instances::new(options.embedded_bootstrap.clone(), options.shutdown_timeout, options.limits));
        Ok(Self { listener, socket, instances, options })
    }

    /// Serves Inits without `brokers` from the embedded cluster at `bootstrap`.
    pub fn use_embedded(&self, bootstrap: String) {
        self.instances.use_embedded(bootstrap);
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        self.socket.path()
    }

    /// Serves until `shutdown` is cancelled, then shuts down in order.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<()> {
        let Bridge { listener, socket, instances, options } = self;
        let shutdown_timeout = options.shutdown_timeout;
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
        let connections = Connections::default();
        let incoming = connections.track(UnixListenerStream::new(listener));
        let stop_serving = CancellationToken::new();
        let stopping = stop_serving.clone();
        let ending = instances.clone();
        let pubsub = PubSubServer::new(PubSubService::new(instances.clone()))
            .max_decoding_message_size(options.limits.max_request_bytes);
        let server = tonic::transport::Server::builder()
            .initial_connection_window_size(CONNECTION_WINDOW)
            .add_service(health_service)
            .add_service(reflection_v1alpha)
            .add_service(reflection_v1)
            .add_service(pubsub)
            .serve_with_incoming_shutdown(incoming, async move {
                stopping.cancelled().await;
                tracing::info!("shutting down: no new calls; ending streams; waiting for calls in flight");
                // Streams end by themselves only when daprd closes them: end them here (each
                // commits what was acked) so the server's graceful shutdown can complete.
                ending.end_streams();
            });

        let health_task = {
            let (health, instances, shutdown) = (health.clone(), instances.clone(), shutdown.clone());
            let interval = options.health_interval;
            tokio::spawn(async move {
                let mut serving = true;
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        () = shutdown.cancelled() => break,
                    }
                    let usable = instances.kafka_usable(interval.min(Duration::from_secs(2))).await;
                    if shutdown.is_cancelled() {
                        break;
                    }
                    if usable != serving {
                        serving = usable;
                        if usable {
                            tracing::info!("Kafka answers again: health SERVING");
                            health.set_serving::<PubSubServer<PubSubService>>().await;
                        } else {
                            tracing::warn!("Kafka does not answer: health NOT_SERVING");
                            health.set_not_serving::<PubSubServer<PubSubService>>().await;
                        }
                    }
                }
            })
        };

        let grace = options.shutdown_grace;
        let sequence = async {
            shutdown.cancelled().await;
            health.set_not_serving::<PubSubServer<PubSubService>>().await;
            // The server as a whole too: liveness probes ask about it ("").
            health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
            instances.start_draining();
            if !grace.is_zero() {
                tracing::info!(?grace, "shutdown signal: still serving Publish and open streams; refusing new streams");
                tokio::select! {
                    () = tokio::time::sleep(grace) => tracing::info!("grace period over"),
                    () = connections.none_open() => tracing::info!("no connection open any more: ending the grace period"),
                }
            }
            stop_serving.cancel();
            tokio::time::sleep(shutdown_timeout).await;
        };
        tokio::select! {
            served = server => served?,
            () = sequence => tracing::warn!(?shutdown_timeout, "calls still in flight at the drain deadline; closing"),
        }
        health_task.abort();
        instances.shutdown(shutdown_timeout).await;
        drop(socket);
        tracing::info!("stopped");
        Ok(())
    }
}
