//! Every component metadata key the bridge understands, with its default and meaning.
//!
//! This table is the single source for three things: the unknown-key warning (a key close
//! to one of these is probably misspelt), the README's configuration reference (a unit test
//! checks that every key here is documented there), and `--print-config-keys`.

/// One documented metadata key.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// The key as users write it (matched case-insensitively, like Dapr does).
    pub name: &'static str,
    /// The default, as text.
    pub default: &'static str,
    /// What it does.
    pub meaning: &'static str,
}

macro_rules! keys {
    ($($name:literal, $default:literal, $meaning:literal;)*) => {
        /// All keys, in the order of the README table.
        pub const KEYS: &[KeySpec] = &[$(KeySpec { name: $name, default: $default, meaning: $meaning }),*];
    };
}

keys! {
    "brokers", "(embedded mock cluster if the bridge runs with --embedded-kafka)", "Comma-separated bootstrap brokers (`host:port`).";
    "clientID", "kafka-pubsub-bridge", "Kafka `client.id`, shown in broker logs and quotas.";
    "consumerGroup", "value of `consumerID`", "Consumer group for subscriptions.";
    "consumerID", "(set by daprd to the app id)", "Fallback consumer group.";
    "authType", "none", "`none`, `password` (SASL PLAIN/SCRAM), `mtls`, `certificate` (TLS, no client auth), `oidc` (SASL OAUTHBEARER).";
    "saslUsername", "", "SASL user (authType `password`).";
    "saslPassword", "", "SASL password (authType `password`); never logged.";
    "saslMechanism", "PLAINTEXT", "`PLAINTEXT` (SASL PLAIN), `SHA-256`, `SHA-512` (SCRAM).";
    "caCert", "(system roots)", "PEM CA certificate(s) to verify brokers.";
    "clientCert", "", "PEM client certificate (authType `mtls`).";
    "clientKey", "", "PEM client private key (authType `mtls`); never logged.";
    "skipVerify", "false", "Skip broker certificate verification (testing only).";
    "disableTls", "false", "Use plaintext transport with `password`/`oidc` auth.";
    "oidcTokenEndpoint", "", "OAuth2 token endpoint (authType `oidc`).";
    "oidcClientID", "", "OAuth2 client id (authType `oidc`).";
    "oidcClientSecret", "", "OAuth2 client secret (authType `oidc`); never logged.";
    "oidcScopes", "", "Comma-separated OAuth2 scopes (authType `oidc`).";
    "initialOffset", "newest", "Where a group with no committed offset starts: `newest` or `oldest`.";
    "heartbeatInterval", "3s", "Consumer group heartbeat interval.";
    "sessionTimeout", "10s", "Consumer group session timeout.";
    "consumerGroupRebalanceStrategy", "range", "`range`, `roundrobin` or `cooperative-sticky` (incremental rebalances).";
    "maxMessageBytes", "1000000", "Largest record the producer sends (`message.max.bytes`).";
    "compression", "none", "`none`, `gzip`, `snappy`, `lz4`, `zstd`.";
    "compressionLevel", "(codec default)", "gzip 0-9, lz4 0-12, zstd 1-12 (librdkafka's limit).";
    "producerRequiredAcks", "all", "`all` (every in-sync replica), `local` (leader only), `none`.";
    "enableIdempotence", "true when acks are `all`", "Idempotent producer: no duplicates or reordering on retries. Needs `producerRequiredAcks: all`.";
    "linger", "5ms", "How long the producer waits to fill a batch (`linger.ms`).";
    "batchBytes", "1000000", "Largest batch per partition in bytes (`batch.size`).";
    "batchMessages", "10000", "Largest batch in messages (`batch.num.messages`).";
    "maxInFlight", "5", "Requests in flight per broker connection (at most 5 with idempotence).";
    "queueMaxMessages", "100000", "Messages the producer may hold before Publish waits for room.";
    "queueMaxKBytes", "1048576", "Kilobytes the producer may hold before Publish waits for room.";
    "messageTimeout", "30s", "How long a record may take to be acknowledged, retries included; Publish fails after it.";
    "unknownTopicTimeout", "5s", "How long a record waits for its topic to appear before Publish fails with NOT_FOUND naming the topic (`topic.metadata.propagation.max.ms`).";
    "autoCreateTopics", "false", "Create a missing topic through the admin API (CreateTopics) on the first publish to it or subscription to it, with `topicPartitions` and `topicReplicationFactor`.";
    "topicPartitions", "(broker default, `num.partitions`)", "Partitions of a topic `autoCreateTopics` creates; a subscription's metadata may override it.";
    "topicReplicationFactor", "(broker default, `default.replication.factor`)", "Replication factor of a topic `autoCreateTopics` creates; a subscription's metadata may override it.";
    "metadataRefreshInterval", "5s", "How often topic metadata is refreshed: how soon a subscription notices a topic that appeared or partitions that were added (`topic.metadata.refresh.interval.ms`).";
    "initTimeout", "4s", "How long Init waits for the cluster to answer (daprd gives up after 5 s).";
    "excludeHeaderMetaRegex", "", "Publish metadata keys matching this regex do not become record headers.";
    "escapeHeaders", "false", "URL-escape header values of delivered messages.";
    "maxInFlightPerStream", "1000", "Un-acked messages one PullMessages stream may hold.";
    "maxInFlightPerPartition", "500", "Un-acked messages per partition before the partition is paused.";
    "maxRetries", "3 (-1 with `consumeRetryEnabled: true`)", "Redeliveries of a nacked message before it is dead-lettered (-1: forever).";
    "retryBackoff", "1s", "Delay before the first redelivery of a nacked message; doubles each time.";
    "maxRetryBackoff", "30s", "Upper bound of the redelivery delay.";
    "deadLetterTopic", "", "Topic that receives a message after its last retry (and a record too large to deliver); without it the message is redelivered, and its partition stops once `maxUncommittedPerPartition` is reached.";
    "consumeRetryEnabled", "(unset: the retry keys above)", "As in `pubsub.kafka`: `true` redelivers a nacked message every `consumeRetryInterval` (forever unless `maxRetries`); `false` redelivers nothing: a nacked message goes to `deadLetterTopic`, or is dropped with an error log.";
    "consumeRetryInterval", "100ms", "Redelivery interval with `consumeRetryEnabled: true` (constant, not doubling).";
    "maxUncommittedPerPartition", "10000", "Delivered messages a partition may hold behind its oldest un-acked one; beyond it the partition stops delivering (a poison message without a dead-letter topic), with an error log and the `kafka_bridge_blocked_partitions` gauge.";
    "maxDeliveryBytes", "4194304", "Largest PullMessages response sent to daprd (daprd's gRPC receive limit is 4 MiB); a larger record goes to `deadLetterTopic`, or holds its partition with an error log.";
    "commitInterval", "1s", "How often acked offsets are committed.";
    "revokeAckTimeout", "5s", "How long a revoked partition waits for outstanding acks before it is released.";
    "kafka.<property>", "", "Any librdkafka property, applied last; clashing with a typed key above is an error.";
}

/// Looks a key up case-insensitively.
pub fn find(name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.name.eq_ignore_ascii_case(name))
}

/// The known key closest to `name`, if it is close enough to be a likely misspelling.
pub fn likely_misspelling(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    KEYS.iter()
        .filter(|k| !k.name.starts_with("kafka."))
        .map(|k| (super::values::edit_distance(&lower, &k.name.to_ascii_lowercase()), k.name))
        .filter(|(distance, _)| *distance > 0 && *distance <= 2)
        .min()
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_documents_every_key() {
        let readme = include_str!("../../../README.md");
        for key in KEYS {
            assert!(readme.contains(&format!("`{}`", key.name)), "README.md does not document `{}`", key.name);
        }
    }

    #[test]
    fn misspellings_are_recognised() {
        assert_eq!(likely_misspelling("brokres"), Some("brokers"));
        assert_eq!(likely_misspelling("consumerGrop"), Some("consumerGroup"));
        assert_eq!(likely_misspelling("rawPayload"), None);
        assert_eq!(likely_misspelling("brokers"), None);
    }
}
