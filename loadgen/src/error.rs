//! The load generator's one error type.
//!
//! Bad input ([`Error::InvalidScenario`]) is found before the first message is sent and names
//! the setting and what is accepted. Trouble with the cluster during a step is *not* an error
//! of the sweep: it becomes that step's recorded failure and the sweep moves on.

use rdkafka::error::KafkaError;

/// Result alias for the load generator.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the load generator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is contradictory, impossible or malformed.
    #[error("invalid scenario: {0}")]
    InvalidScenario(String),
    /// A scenario or payload file could not be parsed.
    #[error("cannot parse {path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said.
        reason: String,
    },
    /// A Kafka operation failed.
    #[error("{context}: {source}")]
    Kafka {
        /// What the load generator was doing.
        context: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// A step could not run; recorded as the step's failure.
    #[error("{0}")]
    Step(String),
    /// File-system trouble.
    #[error("{context}: {source}")]
    Io {
        /// What the load generator was doing.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A result file is not a load generator result.
    #[error("{path} is not a kafka-loadgen result: {reason}")]
    BadResult {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidScenario(message.into())
    }

    pub(crate) fn kafka(context: impl Into<String>, source: KafkaError) -> Self {
        Self::Kafka { context: context.into(), source }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }
}
