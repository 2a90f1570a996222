//! The publish side, driven over the real socket exactly as daprd drives it, against the
//! mock cluster and against Tansu.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use testkit::daprd::{list_services_v1alpha, map};
use testkit::{BridgeUnderTest, Broker, Daprd, broker_tests, read_back, unique};
use tonic::Code;

const READ_TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn daprd_discovers_the_component_through_reflection_v1alpha() {
    let bridge = BridgeUnderTest::in_process(None);
    let services = list_services_v1alpha(bridge.socket()).await;
    assert!(services.contains(&dapr_kafka_proto::PUBSUB_SERVICE.to_owned()), "{services:?}");
    assert!(services.contains(&"grpc.health.v1.Health".to_owned()), "{services:?}");

    let mut daprd = Daprd::connect(bridge.socket(), Some("orders")).await;
    let status = daprd.publish("t", b"x", &[]).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "publish before Init: {status:?}");
    let mut ping = daprd.client.clone();
    ping.ping(dapr_kafka_proto::components::PingRequest {}).await.unwrap();
    assert!(bridge.stop().await);
}

async fn publish_round_trip(broker: Broker) {
    let topic = unique("orders");
    broker.create_topic(&topic, 3).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), Some("orders-pubsub")).await;
    daprd
        .init(&[
            ("brokers", broker.bootstrap()),
            ("consumerID", "app"),
            ("excludeHeaderMetaRegex", "^internal-"),
            ("linger", "1ms"),
        ])
        .await
        .unwrap();
    assert_eq!(daprd.features().await, vec!["BULK_PUBSUB".to_owned()]);

    daprd
        .publish(
            &topic,
            b"{\"id\":1}",
            &[("partitionKey", "order-1"), ("traceparent", "00-aa-bb-01"), ("internal-x", "hidden")],
        )
        .await
        .unwrap();
    daprd.publish(&topic, b"{\"id\":2}", &[("partitionNumber", "2"), ("__key", "k2")]).await.unwrap();
    let status = daprd.publish(&topic, b"x", &[("partitionNumber", "many")]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("partitionNumber"), "{status:?}");

    let records = read_back(broker.bootstrap(), &topic, 2, READ_TIMEOUT).await;
    assert_eq!(records.len(), 2, "{records:?}");
    let first = records.iter().find(|r| r.payload == b"{\"id\":1}").expect("first message");
    assert_eq!(first.key.as_deref(), Some(&b"order-1"[..]));
    assert_eq!(first.headers, map(&[("traceparent", "00-aa-bb-01")]), "metadata → headers, exclusions applied");
    let second = records.iter().find(|r| r.payload == b"{\"id\":2}").expect("second message");
    assert_eq!(second.partition, 2);
    assert_eq!(second.key.as_deref(), Some(&b"k2"[..]));
    assert!(second.headers.is_empty());
    assert!(bridge.stop().await);
}

async fn bulk_publish_reports_exactly_the_failed_entries(broker: Broker) {
    let topic = unique("bulk");
    broker.create_topic(&topic, 4).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&[("brokers", broker.bootstrap()), ("maxMessageBytes", "10000"), ("compression", "lz4")]).await.unwrap();

    let entries: Vec<_> = (0..300)
        .map(|i| {
            let size = if i % 50 == 7 { 20_000 } else { 100 };
            let mut payload = format!("entry-{i:04}-").into_bytes();
            payload.resize(size, b'.');
            let metadata = if i % 10 == 3 {
                map(&[("partitionNumber", "-4")])
            } else {
                map(&[("partitionKey", &format!("k{i}"))])
            };
            (format!("id-{i}"), payload, metadata)
        })
        .collect();
    let expected_failed: Vec<String> =
        (0..300).filter(|i| i % 50 == 7 || i % 10 == 3).map(|i| format!("id-{i}")).collect();
    let failed = daprd.bulk_publish(&topic, entries).await.unwrap();
    let mut failed_ids: Vec<String> = failed.iter().map(|f| f.entry_id.clone()).collect();
    failed_ids.sort();
    let mut want = expected_failed.clone();
    want.sort();
    assert_eq!(failed_ids, want);
    for f in &failed {
        assert!(!f.error.is_empty(), "each failure says why: {f:?}");
    }
    assert!(
        failed
            .iter()
            .any(|f| f.error.contains("too large") || f.error.contains("Too large") || f.error.contains("size")),
        "{failed:?}"
    );

    let delivered = 300 - expected_failed.len();
    let records = read_back(broker.bootstrap(), &topic, delivered + 1, Duration::from_secs(8)).await;
    assert_eq!(records.len(), delivered, "exactly the entries not reported failed are in Kafka");
    for record in &records {
        let text = String::from_utf8_lossy(&record.payload);
        let i: usize = text[6..10].parse().unwrap();
        assert!(!expected_failed.contains(&format!("id-{i}")));
        assert_eq!(record.headers.get("content-type").map(String::as_str), Some("application/cloudevents+json"));
    }

    assert!(daprd.bulk_publish(&topic, Vec::new()).await.unwrap().is_empty(), "empty bulk is a no-op");
    let duplicate = vec![("a".into(), b"1".to_vec(), HashMap::new()), ("a".into(), b"2".to_vec(), HashMap::new())];
    let status = daprd.bulk_publish(&topic, duplicate).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("`a`"), "{status:?}");
    assert!(bridge.stop().await);
}

async fn instances_on_one_socket_stay_independent(broker: Broker) {
    let other = Broker::start(broker.kind()).await;
    let topic = unique("shared-name");
    broker.create_topic(&topic, 1).await;
    other.create_topic(&topic, 1).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut orders = Daprd::connect(bridge.socket(), Some("orders-pubsub")).await;
    let mut audit = Daprd::connect(bridge.socket(), Some("audit-pubsub")).await;
    orders.init(&[("brokers", broker.bootstrap()), ("compression", "zstd")]).await.unwrap();
    audit.init(&[("brokers", other.bootstrap()), ("producerRequiredAcks", "local")]).await.unwrap();

    orders.publish(&topic, b"to-orders", &[]).await.unwrap();
    audit.publish(&topic, b"to-audit", &[]).await.unwrap();

    // A failed re-Init leaves the instance as it was; a good one re-initialises it.
    let status = audit.init(&[("brokers", other.bootstrap()), ("linger", "forever")]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    audit.publish(&topic, b"to-audit-2", &[]).await.unwrap();
    audit.init(&[("brokers", other.bootstrap()), ("linger", "0")]).await.unwrap();
    audit.publish(&topic, b"to-audit-3", &[]).await.unwrap();

    let in_first = read_back(broker.bootstrap(), &topic, 2, Duration::from_secs(5)).await;
    let in_other = read_back(other.bootstrap(), &topic, 4, Duration::from_secs(5)).await;
    let payloads = |records: &[testkit::Record]| records.iter().map(|r| r.payload.clone()).collect::<Vec<_>>();
    assert_eq!(payloads(&in_first), vec![b"to-orders".to_vec()]);
    assert_eq!(payloads(&in_other), vec![b"to-audit".to_vec(), b"to-audit-2".to_vec(), b"to-audit-3".to_vec()]);
    assert!(bridge.stop().await);
}

async fn bad_metadata_and_unreachable_brokers_fail_init_quickly(broker: Broker) {
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), Some("c")).await;
    let status = daprd.init(&[("brokers", broker.bootstrap()), ("compression", "brotli")]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("`compression`") && status.message().contains("zstd"), "{status:?}");
    let status = daprd.init(&[]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("`brokers`"), "{status:?}");
    let status = daprd.init(&[("brokers", broker.bootstrap()), ("kafka.no.such.property", "1")]).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("kafka.no.such.property"), "{status:?}");

    let nowhere = format!("127.0.0.1:{}", testkit::broker::free_port());
    let started = Instant::now();
    let status = daprd.init(&[("brokers", &nowhere), ("initTimeout", "1s")]).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains(&nowhere), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "Init must fail within daprd's 5 s init timeout");
    assert!(bridge.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthorised_cluster_fails_init_clearly_and_quickly() {
    let broker = Broker::tansu_requiring_authentication().await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;

    let started = Instant::now();
    let wrong = [
        ("brokers", broker.bootstrap()),
        ("initTimeout", "2s"),
        ("authType", "password"),
        ("saslUsername", "intruder"),
        ("saslPassword", "not-the-password"),
        ("disableTls", "true"),
    ];
    let status = daprd.init(&wrong).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("SASL") && status.message().contains(broker.bootstrap()), "{status:?}");
    assert!(!status.message().contains("not-the-password"), "secrets never appear in errors");
    assert!(started.elapsed() < Duration::from_secs(5), "within daprd's init timeout");

    // Without credentials the broker hangs up: the cluster is reported unavailable, in time.
    let started = Instant::now();
    let status = daprd.init(&[("brokers", broker.bootstrap()), ("initTimeout", "2s")]).await.unwrap_err();
    assert!(matches!(status.code(), Code::Unavailable | Code::PermissionDenied), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(bridge.stop().await);
}

/// Tansu does not create topics on produce (the mock cluster does), so an unknown topic is
/// reported. The passthrough shortens librdkafka's wait for a topic to appear (30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_topic_is_not_found_and_named() {
    let broker = Broker::start(testkit::BrokerKind::Tansu).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd
        .init(&[
            ("brokers", broker.bootstrap()),
            ("messageTimeout", "10s"),
            ("kafka.topic.metadata.propagation.max.ms", "1000"),
        ])
        .await
        .unwrap();
    let topic = unique("missing");
    let status = daprd.publish(&topic, b"x", &[]).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains(&topic), "{status:?}");
    assert!(bridge.stop().await);
}

async fn a_broker_that_goes_away_fails_publish_clearly(mut broker: Broker) {
    let topic = unique("away");
    broker.create_topic(&topic, 1).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&[("brokers", broker.bootstrap()), ("messageTimeout", "2s")]).await.unwrap();
    daprd.publish(&topic, b"before", &[]).await.unwrap();
    broker.stop();
    let status = daprd.publish(&topic, b"after", &[]).await.unwrap_err();
    assert!(matches!(status.code(), Code::DeadlineExceeded | Code::Unavailable), "{status:?}");
    assert!(bridge.stop().await);
}

async fn sigterm_with_publishes_in_flight_loses_no_acknowledged_message(broker: Broker) {
    let topic = unique("shutdown");
    broker.create_topic(&topic, 3).await;
    let bridge = BridgeUnderTest::child(&[]);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&[("brokers", broker.bootstrap()), ("linger", "20ms")]).await.unwrap();

    let mut publishers = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let mut client = Daprd::connect(bridge.socket(), None).await;
        let topic = topic.clone();
        publishers.spawn(async move {
            let mut acked = Vec::new();
            for i in 0..10_000 {
                let payload = format!("w{worker}-m{i}");
                match client.publish(&topic, payload.as_bytes(), &[]).await {
                    Ok(()) => acked.push(payload),
                    Err(_) => break,
                }
            }
            acked
        });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(bridge.stop().await, "bridge exits cleanly on SIGTERM");
    let mut acked = Vec::new();
    while let Some(worker) = publishers.join_next().await {
        acked.extend(worker.unwrap());
    }
    assert!(!acked.is_empty(), "some publishes were acknowledged before SIGTERM");
    let records = read_back(broker.bootstrap(), &topic, acked.len(), READ_TIMEOUT).await;
    let stored: std::collections::HashSet<Vec<u8>> = records.into_iter().map(|r| r.payload).collect();
    let lost: Vec<_> = acked.iter().filter(|p| !stored.contains(p.as_bytes())).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
}

async fn a_bulk_larger_than_the_producer_queue_waits_for_room(broker: Broker) {
    let topic = unique("queue");
    broker.create_topic(&topic, 2).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&[("brokers", broker.bootstrap()), ("queueMaxMessages", "10"), ("batchMessages", "5")]).await.unwrap();
    let entries = (0..500).map(|i| (format!("e{i}"), format!("m{i}").into_bytes(), HashMap::new())).collect();
    let failed = daprd.bulk_publish(&topic, entries).await.unwrap();
    assert!(
        failed.is_empty(),
        "a full queue means waiting for room, not failing: {:?}",
        &failed[..failed.len().min(3)]
    );
    assert_eq!(read_back(broker.bootstrap(), &topic, 500, READ_TIMEOUT).await.len(), 500);
    assert!(bridge.stop().await);
}

broker_tests!(
    a_bulk_larger_than_the_producer_queue_waits_for_room,
    publish_round_trip,
    bulk_publish_reports_exactly_the_failed_entries,
    instances_on_one_socket_stay_independent,
    bad_metadata_and_unreachable_brokers_fail_init_quickly,
    a_broker_that_goes_away_fails_publish_clearly,
    sigterm_with_publishes_in_flight_loses_no_acknowledged_message,
);

#[tokio::test]
async fn embedded_default_serves_inits_without_brokers() {
    let bridge = BridgeUnderTest::child(&["--embedded-kafka"]);
    let mut daprd = Daprd::connect(bridge.socket(), Some("try-it")).await;
    daprd.init(&[("consumerID", "app")]).await.unwrap();
    daprd.publish("hello", b"world", &[]).await.unwrap();
    let failed = daprd.bulk_publish("hello", vec![("1".into(), b"a".to_vec(), HashMap::new())]).await.unwrap();
    assert!(failed.is_empty());
    assert!(bridge.stop().await);
}
