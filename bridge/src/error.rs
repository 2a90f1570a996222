//! The bridge's one error type, and the one place where errors become gRPC statuses.
//!
//! Kafka errors are sorted by what the caller can do about them: a bad request
//! (`INVALID_ARGUMENT`: oversized record, bad partition), something missing (`NOT_FOUND`:
//! unknown topic or partition), no right (`PERMISSION_DENIED`), too slow
//! (`DEADLINE_EXCEEDED`: message timeout), full (`RESOURCE_EXHAUSTED`: producer queue),
//! and the cluster being away (`UNAVAILABLE`), which daprd and apps may retry.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tonic::{Code, Status};

/// Result alias for the bridge.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the bridge.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A metadata key has a bad value; the message names the key and what is accepted.
    #[error("metadata `{key}` {reason}")]
    InvalidMetadata {
        /// The offending key.
        key: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// A request field is malformed.
    #[error("{0}")]
    InvalidRequest(String),
    /// The instance was never initialised.
    #[error("component instance `{0}` is not initialised: daprd must call Init first")]
    NotInitialised(String),
    /// Init could not reach or authenticate to the cluster in time.
    #[error("cannot use Kafka at {brokers}: {reason}")]
    ClusterUnavailable {
        /// Bootstrap brokers.
        brokers: String,
        /// What librdkafka reported.
        reason: String,
        /// Whether the failure was authentication or authorisation.
        auth: bool,
    },
    /// A Kafka operation failed.
    #[error("{context}: {source}")]
    Kafka {
        /// What the bridge was doing.
        context: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// A topic does not exist (and was not created).
    #[error("topic `{topic}` does not exist: {reason}")]
    TopicNotFound {
        /// The topic.
        topic: String,
        /// Why it was not found or created, and what to do.
        reason: String,
    },
    /// The producer queue stayed full until the deadline.
    #[error("producer queue full until the deadline ({0}); raise queueMaxMessages/queueMaxKBytes or slow down")]
    QueueFull(String),
    /// The bridge is shutting down.
    #[error("the bridge is shutting down")]
    ShuttingDown,
    /// The instance was re-initialised or closed while the call was starting.
    #[error("the component instance was re-initialised; retry")]
    Retired,
    /// A bound on what callers may make the bridge hold was reached.
    #[error("limit reached: {0}")]
    Limit(String),
    /// Socket or file-system trouble.
    #[error("{context}: {source}")]
    Io {
        /// What the bridge was doing.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bridge could not start a part of itself.
    #[error("start-up: {0}")]
    Startup(String),
    /// gRPC transport trouble.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl Error {
    /// Wraps a Kafka error with what the bridge was doing.
    pub fn kafka(context: impl Into<String>, source: KafkaError) -> Self {
        Error::Kafka { context: context.into(), source }
    }

    /// Wraps an I/O error with what the bridge was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// The gRPC code daprd sees for this error.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidMetadata { .. } | Error::InvalidRequest(_) => Code::InvalidArgument,
            Error::NotInitialised(_) => Code::FailedPrecondition,
            Error::ClusterUnavailable { auth: true, .. } => Code::PermissionDenied,
            Error::ClusterUnavailable { auth: false, .. } => Code::Unavailable,
            Error::Kafka { source, .. } => kafka_code(source),
            Error::TopicNotFound { .. } => Code::NotFound,
            Error::QueueFull(_) => Code::ResourceExhausted,
            Error::ShuttingDown | Error::Retired => Code::Unavailable,
            Error::Limit(_) => Code::ResourceExhausted,
            Error::Io { .. } | Error::Startup(_) | Error::Transport(_) => Code::Internal,
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        Status::new(error.code(), error.to_string())
    }
}

/// Maps a Kafka error to the gRPC code that tells the caller what to do.
pub fn kafka_code(error: &KafkaError) -> Code {
    use RDKafkaErrorCode as K;
    match error.rdkafka_error_code() {
        Some(
            K::MessageSizeTooLarge | K::InvalidMessageSize | K::InvalidMessage | K::InvalidRecord | K::InvalidArgument,
        ) => Code::InvalidArgument,
        Some(K::UnknownTopicOrPartition | K::UnknownTopic | K::UnknownPartition) => Code::NotFound,
        Some(
            K::TopicAuthorizationFailed
            | K::GroupAuthorizationFailed
            | K::ClusterAuthorizationFailed
            | K::TransactionalIdAuthorizationFailed
            | K::SaslAuthenticationFailed
            | K::Authentication,
        ) => Code::PermissionDenied,
        Some(K::MessageTimedOut | K::RequestTimedOut | K::OperationTimedOut) => Code::DeadlineExceeded,
        Some(K::QueueFull) => Code::ResourceExhausted,
        Some(K::MessageBatchTooLarge) => Code::InvalidArgument,
        Some(
            K::AllBrokersDown
            | K::BrokerTransportFailure
            | K::NotEnoughReplicas
            | K::NotEnoughReplicasAfterAppend
            | K::LeaderNotAvailable
            | K::NotLeaderForPartition,
        ) => Code::Unavailable,
        _ => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_errors_map_to_actionable_codes() {
        let produce = |code| KafkaError::MessageProduction(code);
        assert_eq!(kafka_code(&produce(RDKafkaErrorCode::MessageSizeTooLarge)), Code::InvalidArgument);
        assert_eq!(kafka_code(&produce(RDKafkaErrorCode::UnknownTopicOrPartition)), Code::NotFound);
        assert_eq!(kafka_code(&produce(RDKafkaErrorCode::UnknownTopic)), Code::NotFound);
        assert_eq!(kafka_code(&produce(RDKafkaErrorCode::TopicAuthorizationFailed)), Code::PermissionDenied);
        assert_eq!(kafka_code(&produce(RDKafkaErrorCode::MessageTimedOut)), Code::DeadlineExceeded);
        assert_eq!(kafka_code(&produce(RDKafkaErrorCode::QueueFull)), Code::ResourceExhausted);
        assert_eq!(kafka_code(&produce(RDKafkaErrorCode::AllBrokersDown)), Code::Unavailable);
    }

    #[test]
    fn a_missing_topic_is_not_found_and_named() {
        let status = Status::from(Error::TopicNotFound { topic: "orders".into(), reason: "create it".into() });
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().contains("`orders`"), "{status:?}");
    }

    #[test]
    fn metadata_errors_name_the_key() {
        let status = Status::from(Error::InvalidMetadata { key: "linger".into(), reason: "is bad".into() });
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("`linger`"));
    }
}
