//! The gRPC surface daprd calls. It only reads the instance header and delegates.

use std::sync::Arc;

use dapr_kafka_proto::COMPONENT_INSTANCE_HEADER;
use dapr_kafka_proto::components::*;
use tonic::{Request, Response, Status, Streaming};

use crate::error::Error;
use crate::instances::Instances;
use crate::producer::Outgoing;
use crate::subscriber::{MessageStream, OpenError};

/// Features this bridge implements, as daprd's `Features` call expects them.
pub const FEATURES: &[&str] = &["BULK_PUBSUB"];

/// The `dapr.proto.components.v1.PubSub` service.
pub struct PubSubService {
    instances: Arc<Instances>,
}

impl PubSubService {
    /// A service over `instances`.
    pub fn new(instances: Arc<Instances>) -> Self {
        Self { instances }
    }
}

fn instance_name<T>(request: &Request<T>) -> String {
    request.metadata().get(COMPONENT_INSTANCE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tonic::async_trait]
impl dapr_kafka_proto::PubSub for PubSubService {
    async fn init(&self, request: Request<PubSubInitRequest>) -> Result<Response<PubSubInitResponse>, Status> {
        let name = instance_name(&request);
        let properties = request.into_inner().metadata.map(|m| m.properties).unwrap_or_default();
        self.instances.init(&name, &properties).await.map_err(|error| {
            tracing::error!(instance = crate::instances::display_name(&name), %error, "Init failed");
            Status::from(error)
        })?;
        Ok(Response::new(PubSubInitResponse {}))
    }

    async fn features(&self, _: Request<FeaturesRequest>) -> Result<Response<FeaturesResponse>, Status> {
        Ok(Response::new(FeaturesResponse { features: FEATURES.iter().map(|f| f.to_string()).collect() }))
    }

    async fn publish(&self, request: Request<PublishRequest>) -> Result<Response<PublishResponse>, Status> {
        let instance = self.instances.get(&instance_name(&request))?;
        let request = request.into_inner();
        crate::topic::validate(&request.topic).map_err(Error::InvalidRequest)?;
        let message =
            Outgoing { payload: &request.data, metadata: &request.metadata, content_type: &request.content_type };
        let no_request_metadata = Default::default();
        let failures = instance.publisher.publish(&request.topic, &no_request_metadata, std::iter::once(message)).await;
        match failures.into_iter().next() {
            None => Ok(Response::new(PublishResponse {})),
            Some((_, error)) => Err(error.into()),
        }
    }

    async fn bulk_publish(
        &self,
        request: Request<BulkPublishRequest>,
    ) -> Result<Response<BulkPublishResponse>, Status> {
        let instance = self.instances.get(&instance_name(&request))?;
        let request = request.into_inner();
        crate::topic::validate(&request.topic).map_err(Error::InvalidRequest)?;
        // daprd maps failed entries back by id: duplicate ids would make that ambiguous, so
        // such a request is refused whole before anything is sent.
        let mut ids = std::collections::HashSet::with_capacity(request.entries.len());
        if let Some(duplicate) = request.entries.iter().find(|e| !ids.insert(e.entry_id.as_str())) {
            return Err(Error::InvalidRequest(format!(
                "entry_id `{}` appears more than once; nothing was published",
                duplicate.entry_id
            ))
            .into());
        }
        let messages = request.entries.iter().map(|e| Outgoing {
            payload: &e.event,
            metadata: &e.metadata,
            content_type: &e.content_type,
        });
        let failures = instance.publisher.publish(&request.topic, &request.metadata, messages).await;
        let failed_entries = failures
            .into_iter()
            .map(|(index, error)| BulkPublishResponseFailedEntry {
                entry_id: request.entries[index].entry_id.clone(),
                error: error.to_string(),
            })
            .collect();
        Ok(Response::new(BulkPublishResponse { failed_entries }))
    }

    type PullMessagesStream = MessageStream;

    async fn pull_messages(
        &self,
        request: Request<Streaming<PullMessagesRequest>>,
    ) -> Result<Response<Self::PullMessagesStream>, Status> {
        if self.instances.is_draining() {
            return Err(Error::ShuttingDown.into());
        }
        let name = instance_name(&request);
        self.instances.get(&name)?;
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Error::InvalidRequest("the stream closed before naming a topic".into()))?;
        let topic = first
            .topic
            .ok_or_else(|| Error::InvalidRequest("the first PullMessagesRequest must name a topic".into()))?;
        // The instance is looked up after the first message: a re-Init while daprd was
        // sending it replaced the instance, and the stream belongs to the new one. If a
        // re-Init lands between the lookup and the open, the old instance refuses (Retired)
        // and the new one is used.
        for _ in 0..3 {
            let instance = self.instances.get(&name)?;
            match instance.subscriptions.open(
                &instance.name,
                &instance.config,
                &instance.bootstrap,
                &instance.publisher,
                topic.clone(),
                inbound,
            ) {
                Ok(opened) => return Ok(Response::new(opened.established().await)),
                Err(OpenError::Retired(returned)) => inbound = *returned,
                Err(OpenError::Failed(error)) => return Err(error.into()),
            }
        }
        Err(Error::Retired.into())
    }

    async fn pause(&self, request: Request<PauseRequest>) -> Result<Response<PauseResponse>, Status> {
        self.instances.get(&instance_name(&request))?.subscriptions.pause();
        Ok(Response::new(PauseResponse {}))
    }

    async fn resume(&self, request: Request<ResumeRequest>) -> Result<Response<ResumeResponse>, Status> {
        self.instances.get(&instance_name(&request))?.subscriptions.resume();
        Ok(Response::new(ResumeResponse {}))
    }

    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {}))
    }
}
