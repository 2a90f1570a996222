//! The gRPC contract between daprd and a pluggable pub/sub component.
//!
//! ```text
//! proto/dapr/proto/components/v1/
//!   common.proto   MetadataRequest, FeaturesRequest/Response, PingRequest/Response
//!   pubsub.proto   service PubSub { Init, Features, Publish, BulkPublish,
//!                                   PullMessages (bidi stream), Pause, Resume, Ping }
//! ```
//!
//! Names, field numbers and types match the upstream Dapr definitions, because daprd is
//! compiled against those. `bytes` fields are generated as [`bytes::Bytes`]-like
//! `prost::bytes::Bytes` so payloads are shared, not copied, on their way to Kafka.
//!
//! [`FILE_DESCRIPTOR_SET`] is what the bridge hands to gRPC reflection: daprd discovers a
//! component by calling `grpc.reflection.v1alpha.ServerReflection/ListServices` and looking
//! for [`PUBSUB_SERVICE`].

/// Generated messages, client and server for `dapr.proto.components.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod components {
    tonic::include_proto!("dapr.proto.components.v1");
}

/// The generated server: as `components`, except that PullMessages streams
/// [`encoded::EncodedPullResponse`].
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod server {
    include!(concat!(env!("OUT_DIR"), "/server/dapr.proto.components.v1.rs"));
}

pub mod encoded;

pub use components::pub_sub_client::PubSubClient;
pub use encoded::EncodedPullResponse;
pub use server::pub_sub_server::{PubSub, PubSubServer};

/// The encoded `FileDescriptorSet` of every file above, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

/// The fully qualified service name daprd looks for during discovery.
pub const PUBSUB_SERVICE: &str = "dapr.proto.components.v1.PubSub";

/// The gRPC metadata header daprd sends on every call: the Component resource's name.
pub const COMPONENT_INSTANCE_HEADER: &str = "x-component-instance";
