//! A client that talks to the bridge exactly as daprd does: gRPC over the Unix socket,
//! discovery through reflection v1alpha, the `x-component-instance` header on every call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dapr_kafka_proto::components::*;
use dapr_kafka_proto::{COMPONENT_INSTANCE_HEADER, PubSubClient};
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1alpha::ServerReflectionRequest;

/// Connects a channel to a Unix socket.
pub async fn channel(socket: &Path) -> Channel {
    let socket: PathBuf = socket.to_owned();
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move { tokio::net::UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
        .expect("connect to the bridge socket")
}

/// Lists services through reflection v1alpha, the way daprd discovers components.
pub async fn list_services_v1alpha(socket: &Path) -> Vec<String> {
    let mut client = ServerReflectionClient::new(channel(socket).await);
    let request = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
    let mut responses = client.server_reflection_info(futures::stream::iter([request])).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().expect("a reflection response");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => list.service.into_iter().map(|s| s.name).collect(),
        other => panic!("unexpected reflection response {other:?}"),
    }
}

/// daprd's view of one Component resource on the socket.
#[derive(Clone)]
pub struct Daprd {
    /// The generated client.
    pub client: PubSubClient<Channel>,
    instance: Option<String>,
}

impl Daprd {
    /// Connects as Component `instance` (`None`: no header, the default instance).
    pub async fn connect(socket: &Path, instance: Option<&str>) -> Self {
        Self { client: PubSubClient::new(channel(socket).await), instance: instance.map(str::to_owned) }
    }

    /// Wraps a message with the instance header.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(instance) = &self.instance {
            request.metadata_mut().insert(COMPONENT_INSTANCE_HEADER, instance.parse().unwrap());
        }
        request
    }

    /// Init with these metadata properties.
    pub async fn init(&mut self, properties: &[(&str, &str)]) -> Result<(), Status> {
        let properties = properties.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let request = self.request(PubSubInitRequest { metadata: Some(MetadataRequest { properties }) });
        self.client.init(request).await.map(|_| ())
    }

    /// Features.
    pub async fn features(&mut self) -> Vec<String> {
        let request = self.request(FeaturesRequest {});
        self.client.features(request).await.unwrap().into_inner().features
    }

    /// Publish one message with metadata.
    pub async fn publish(&mut self, topic: &str, data: &[u8], metadata: &[(&str, &str)]) -> Result<(), Status> {
        let request = self.request(PublishRequest {
            data: data.to_vec().into(),
            pubsub_name: "pubsub".into(),
            topic: topic.into(),
            metadata: map(metadata),
            content_type: String::new(),
        });
        self.client.publish(request).await.map(|_| ())
    }

    /// BulkPublish `(entry_id, data, metadata)` entries; returns the failed entries.
    pub async fn bulk_publish(
        &mut self,
        topic: &str,
        entries: Vec<(String, Vec<u8>, HashMap<String, String>)>,
    ) -> Result<Vec<BulkPublishResponseFailedEntry>, Status> {
        let entries = entries
            .into_iter()
            .map(|(entry_id, event, metadata)| BulkMessageEntry {
                entry_id,
                event: event.into(),
                content_type: "application/cloudevents+json".into(),
                metadata,
            })
            .collect();
        let request = self.request(BulkPublishRequest {
            entries,
            pubsub_name: "pubsub".into(),
            topic: topic.into(),
            metadata: HashMap::new(),
        });
        self.client.bulk_publish(request).await.map(|r| r.into_inner().failed_entries)
    }
}

/// A metadata map from pairs.
pub fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
