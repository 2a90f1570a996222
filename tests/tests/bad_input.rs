//! Bad input never crashes the bridge or resets the stream (issue 9.7): arbitrary metadata
//! maps, topics and entries thrown at Init, Publish, BulkPublish and PullMessages over the real
//! socket. Every call must end with a status (OK or a client-error code), never a panic, and
//! the bridge must still answer afterwards.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use testkit::{BridgeUnderTest, Broker, BrokerKind, Daprd};
use tonic::Code;

/// Keys daprd users write, so that values reach the real parsers, plus anything else.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "linger",
            "batchBytes",
            "compression",
            "compressionLevel",
            "producerRequiredAcks",
            "maxMessageBytes",
            "sessionTimeout",
            "heartbeatInterval",
            "maxRetries",
            "retryBackoff",
            "deadLetterTopic",
            "initialOffset",
            "authType",
            "consumeRetryEnabled",
            "consumeRetryInterval",
            "maxInFlightPerStream",
            "maxDeliveryBytes",
            "maxUncommittedPerPartition",
            "excludeHeaderMetaRegex",
            "kafka.linger.ms",
            "kafka.sasl.pasword",
            "partitionNumber",
            "partitionKey",
            "__key",
            "kafka.enable.auto.commit",
        ])
        .prop_map(str::to_owned),
        ".{0,12}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "-1",
            "0",
            "1",
            "99999999999999999999h",
            "1e400s",
            "NaN",
            "true",
            "maybe",
            "^(",
            "\0",
            "zstd",
            "all",
        ])
        .prop_map(str::to_owned),
        ".{0,16}",
    ]
}

fn topic() -> impl Strategy<Value = String> {
    prop_oneof![Just("ok-topic".to_owned()), Just("^orders.*".to_owned()), Just("or\0ders".to_owned()), ".{0,20}"]
}

fn allowed(code: Code) -> bool {
    matches!(
        code,
        Code::Ok
            | Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::PermissionDenied
            | Code::OutOfRange
    )
}

#[test]
fn arbitrary_requests_get_a_status_never_a_crash() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (broker, bridge) =
        runtime.block_on(async { (Broker::start(BrokerKind::Mock).await, BridgeUnderTest::in_process(None)) });
    let bootstrap = broker.bootstrap().to_owned();
    // 24 cases per CI run (each one an Init and four calls over the socket); more with
    // PROPTEST_CASES=N for a longer hunt.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(24);
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(
        metadata in prop::collection::hash_map(key(), value(), 0..6),
        topic in topic(),
        entries in prop::collection::vec((".{0,6}", prop::collection::vec(any::<u8>(), 0..64), prop::collection::hash_map(key(), value(), 0..3)), 0..4),
    )| {
        runtime.block_on(async {
            let mut daprd = Daprd::connect(bridge.socket(), Some("fuzz")).await;
            let mut properties: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            properties.push(("brokers", &bootstrap));
            properties.push(("consumerGroup", "fuzz"));
            properties.push(("messageTimeout", "2s"));
            let init = daprd.init(&properties).await;
            if let Err(status) = &init {
                prop_assert!(allowed(status.code()), "Init: {status:?}");
                daprd.init(&[("brokers", &bootstrap), ("consumerGroup", "fuzz"), ("messageTimeout", "2s")]).await.unwrap();
            }
            let publish_metadata: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if let Err(status) = daprd.publish(&topic, b"x", &publish_metadata).await {
                prop_assert!(allowed(status.code()), "Publish: {status:?}");
            }
            let bulk: Vec<(String, Vec<u8>, HashMap<String, String>)> = entries.clone();
            if let Err(status) = daprd.bulk_publish(&topic, bulk).await {
                prop_assert!(allowed(status.code()), "BulkPublish: {status:?}");
            }
            match daprd.subscribe(&topic, &publish_metadata).await {
                Ok(sub) => sub.close(),
                Err(status) => prop_assert!(allowed(status.code()), "PullMessages: {status:?}"),
            }
            // Still alive and serving.
            let ping = daprd.request(dapr_kafka_proto::components::PingRequest {});
            prop_assert!(daprd.client.ping(ping).await.is_ok());
            Ok(())
        })?;
    });
    runtime.block_on(async move {
        tokio::time::timeout(Duration::from_secs(60), bridge.stop()).await.expect("stops in time");
    });
}
