//! A client that talks to the bridge exactly as daprd does: gRPC over the Unix socket,
//! discovery through reflection v1alpha, the `x-component-instance` header on every call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dapr_kafka_proto::components::*;
use dapr_kafka_proto::{COMPONENT_INSTANCE_HEADER, PubSubClient};
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

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
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
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

/// One PullMessages stream, driven as daprd drives it.
pub struct Subscription {
    requests: tokio::sync::mpsc::Sender<PullMessagesRequest>,
    responses: tonic::Streaming<PullMessagesResponse>,
}

impl Daprd {
    /// Opens a PullMessages stream for `topic` (the first request names it).
    pub async fn subscribe(&mut self, topic: &str, metadata: &[(&str, &str)]) -> Result<Subscription, Status> {
        let (requests, rx) = tokio::sync::mpsc::channel(1024);
        requests
            .send(PullMessagesRequest {
                topic: Some(Topic { name: topic.into(), metadata: map(metadata) }),
                ack_message_id: String::new(),
                ack_error: None,
            })
            .await
            .unwrap();
        let request = self.request(tokio_stream::wrappers::ReceiverStream::new(rx));
        let responses = self.client.pull_messages(request).await?.into_inner();
        Ok(Subscription { requests, responses })
    }

    /// Pause.
    pub async fn pause(&mut self) {
        let request = self.request(PauseRequest {});
        self.client.pause(request).await.unwrap();
    }

    /// Resume.
    pub async fn resume(&mut self) {
        let request = self.request(ResumeRequest {});
        self.client.resume(request).await.unwrap();
    }
}

impl Subscription {
    /// The next message, or `None` if none came within `timeout`. Panics on a stream error.
    pub async fn next(&mut self, timeout: std::time::Duration) -> Option<PullMessagesResponse> {
        match tokio::time::timeout(timeout, self.responses.message()).await {
            Ok(Ok(Some(message))) => Some(message),
            Ok(Ok(None)) => panic!("the bridge ended the stream"),
            Ok(Err(status)) => panic!("stream error: {status:?}"),
            Err(_) => None,
        }
    }

    /// The next message or the stream's end/error.
    pub async fn next_result(&mut self) -> Result<Option<PullMessagesResponse>, Status> {
        self.responses.message().await
    }

    /// Receives until `count` messages arrived or `timeout` passed since the last one.
    pub async fn take(&mut self, count: usize, idle: std::time::Duration) -> Vec<PullMessagesResponse> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            match self.next(idle).await {
                Some(m) => out.push(m),
                None => break,
            }
        }
        out
    }

    /// Acks a message.
    pub async fn ack(&self, id: &str) {
        let _ =
            self.requests.send(PullMessagesRequest { topic: None, ack_message_id: id.into(), ack_error: None }).await;
    }

    /// Reports that the app failed a message.
    pub async fn nack(&self, id: &str, error: &str) {
        let _ = self
            .requests
            .send(PullMessagesRequest {
                topic: None,
                ack_message_id: id.into(),
                ack_error: Some(AckMessageError { message: error.into() }),
            })
            .await;
    }

    /// Closes daprd's side (as daprd does when it shuts down), and drops the stream.
    pub fn close(self) {}
}
