//! The failure paths of the bridge (issue 9), each shown by a test that fails if the
//! behaviour breaks: a partition paused by flow control across a rebalance, poison messages
//! and the uncommitted cap, `consumeRetryEnabled`, records too large for daprd, Kafka errors a
//! stream must survive, a fatal producer error, health while Kafka is away, shutdown as daprd
//! does it, Pause with messages queued, binary-exact dead letters, and secrets in errors.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use dapr_kafka_bridge::embedded::{RDKafkaApiKey, RDKafkaRespErr};
use dapr_kafka_proto::components::PullMessagesResponse;
use testkit::daprd::Subscription;
use testkit::{BridgeUnderTest, Broker, BrokerKind, Daprd, broker_tests, group_init as init, read_back, unique};
use tonic::Code;

const FIRST: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_secs(3);

/// Publishes `count` messages `prefix-<i>` to `partition`.
async fn publish_to(daprd: &mut Daprd, topic: &str, prefix: &str, count: usize, partition: i32, size: usize) {
    let pad = "x".repeat(size);
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        let entries = chunk
            .iter()
            .map(|i| {
                let p = partition.to_string();
                (
                    i.to_string(),
                    format!("{prefix}-{i}-{pad}").into_bytes(),
                    testkit::daprd::map(&[("partitionNumber", &p)]),
                )
            })
            .collect();
        assert!(daprd.bulk_publish(topic, entries).await.unwrap().is_empty());
    }
}

fn offset(m: &PullMessagesResponse) -> (i32, i64) {
    (m.metadata["__partition"].parse().unwrap(), m.metadata["__offset"].parse().unwrap())
}

/// Receives and acks until `count` distinct (partition, offset) pairs arrived or nothing came for
/// `idle`; returns the distinct pairs seen.
async fn drain_acking(sub: &mut Subscription, count: usize, idle: Duration) -> BTreeSet<(i32, i64)> {
    let mut seen = BTreeSet::new();
    while seen.len() < count {
        match sub.next(idle).await {
            Some(m) => {
                seen.insert(offset(&m));
                sub.ack(&m.id).await;
            }
            None => break,
        }
    }
    seen
}

/// Issue 9.1: flow control pauses a full partition in librdkafka; librdkafka keeps that pause
/// across unassign/assign. After a second member joins and leaves, the partitions come back
/// to the first stream, and every message must still arrive.
async fn a_paused_partition_fetches_again_after_a_rebalance(broker: Broker) {
    let topic = unique("paused");
    let group = unique("g");
    broker.create_topic(&topic, 2).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[("maxInFlightPerStream", "1")])).await.unwrap();
    // Well past the prefetch bound (64 per partition) on both partitions.
    publish_to(&mut daprd, &topic, "p0", 300, 0, 10).await;
    publish_to(&mut daprd, &topic, "p1", 300, 1, 10).await;

    let mut first = daprd.subscribe(&topic, &[]).await.unwrap();
    let held = first.next(FIRST).await.expect("a first message");
    // Not acked: the stream is full, its prefetch fills, both partitions get paused.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A second member joins (rebalance), then leaves (rebalance back).
    let mut other = daprd.clone();
    let mut second = other.subscribe(&topic, &[]).await.unwrap();
    let _ = second.next(Duration::from_secs(12)).await;
    second.close();
    drop(held);
    // The first stream owns both partitions again and must read them to the end.
    let seen = drain_acking(&mut first, 600, Duration::from_secs(15)).await;
    let by_partition = |p| seen.iter().filter(|(q, _)| *q == p).count();
    assert_eq!((by_partition(0), by_partition(1)), (300, 300), "every message after the rebalances");
    assert!(bridge.stop().await);
}

/// Issue 9.2: a poison message without a dead-letter topic is redelivered, and its partition
/// stops delivering once `maxUncommittedPerPartition` messages wait behind it; acking it lets
/// the partition go on.
async fn a_poison_message_stops_its_partition_at_the_uncommitted_cap(broker: Broker) {
    let topic = unique("poison");
    let group = unique("g");
    broker.create_topic(&topic, 1).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    let settings = [
        ("maxUncommittedPerPartition", "40"),
        ("maxRetries", "0"),
        ("retryBackoff", "20ms"),
        ("maxRetryBackoff", "50ms"),
    ];
    daprd.init(&init(&broker, &group, &settings)).await.unwrap();
    publish_to(&mut daprd, &topic, "m", 100, 0, 10).await;
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let mut seen = BTreeSet::new();
    let mut poison_deliveries = 0;
    let mut next = sub.next(FIRST).await;
    while let Some(m) = next {
        let (_, o) = offset(&m);
        seen.insert(o);
        if o == 0 {
            poison_deliveries += 1;
            sub.nack(&m.id, "poison").await;
        } else {
            sub.ack(&m.id).await;
        }
        if poison_deliveries >= 10 {
            break;
        }
        next = sub.next(IDLE).await;
    }
    assert!(poison_deliveries >= 10, "the poison message keeps being redelivered");
    assert_eq!(seen.iter().max(), Some(&39), "nothing past the cap of 40 uncommitted: {seen:?}");
    // The app recovers: the poison message is acked and the partition moves on.
    let mut rest = BTreeSet::new();
    loop {
        let Some(m) = sub.next(IDLE).await else { break };
        let (_, o) = offset(&m);
        sub.ack(&m.id).await;
        rest.insert(o);
        if rest.iter().max() == Some(&99) {
            break;
        }
    }
    assert!(rest.contains(&0) && rest.contains(&99), "after the ack the partition goes on: {rest:?}");
    assert!(bridge.stop().await);
}

/// Issue 9.2: `consumeRetryEnabled: false` behaves as `pubsub.kafka`: a nacked message is not
/// redelivered; without a dead-letter topic it is dropped and the partition goes on.
async fn consume_retry_disabled_drops_a_nacked_message(broker: Broker) {
    let topic = unique("noretry");
    let group = unique("g");
    broker.create_topic(&topic, 1).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[("consumeRetryEnabled", "false")])).await.unwrap();
    publish_to(&mut daprd, &topic, "m", 5, 0, 10).await;
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let mut deliveries = Vec::new();
    let mut next = sub.next(FIRST).await;
    while let Some(m) = next {
        let (_, o) = offset(&m);
        deliveries.push(o);
        if o == 2 {
            sub.nack(&m.id, "app failed").await
        } else {
            sub.ack(&m.id).await
        }
        next = sub.next(Duration::from_secs(2)).await;
    }
    assert_eq!(deliveries, vec![0, 1, 2, 3, 4], "offset 2 is not redelivered");
    tokio::time::sleep(Duration::from_millis(600)).await;
    sub.close();
    // The group committed past it: a new stream gets nothing.
    let mut again = daprd.subscribe(&topic, &[]).await.unwrap();
    assert!(again.next(Duration::from_secs(8)).await.is_none(), "nothing left to deliver");
    assert!(bridge.stop().await);
}

/// Issue 9.3: a record larger than daprd can receive never reaches the stream; with a
/// dead-letter topic it is moved there byte-exact and the partition goes on; without one it
/// holds its partition (never skipped) and the stream stays open.
async fn an_oversized_record_is_dead_lettered_or_holds_without_ending_the_stream(broker: Broker) {
    let topic = unique("big");
    let dlq = unique("big-dlq");
    let group = unique("g");
    broker.create_topic(&topic, 1).await;
    broker.create_topic(&dlq, 1).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[("maxDeliveryBytes", "4096"), ("deadLetterTopic", &dlq)])).await.unwrap();
    publish_to(&mut daprd, &topic, "small", 1, 0, 10).await;
    publish_to(&mut daprd, &topic, "big", 1, 0, 10_000).await;
    publish_to(&mut daprd, &topic, "after", 1, 0, 10).await;
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let got = drain_acking(&mut sub, 2, IDLE * 2).await;
    assert_eq!(got.into_iter().map(|(_, o)| o).collect::<Vec<_>>(), vec![0, 2], "the big record is not delivered");
    let moved = read_back(broker.bootstrap(), &dlq, 1, Duration::from_secs(20)).await;
    assert_eq!(moved.len(), 1);
    assert!(moved[0].payload.len() > 10_000 && moved[0].payload.starts_with(b"big-0-"));
    assert!(moved[0].headers["dlq-error"].contains("maxDeliveryBytes"), "{:?}", moved[0].headers);
    sub.close();

    // Without a dead-letter topic: the record holds its partition; the stream stays open.
    let group = unique("g");
    let mut other = Daprd::connect(bridge.socket(), Some("nodlq")).await;
    other.init(&init(&broker, &group, &[("maxDeliveryBytes", "4096")])).await.unwrap();
    let mut sub = other.subscribe(&topic, &[]).await.unwrap();
    let got = drain_acking(&mut sub, 3, IDLE * 2).await;
    assert_eq!(got.into_iter().map(|(_, o)| o).collect::<Vec<_>>(), vec![0], "held at the big record, not skipped");
    assert!(sub.next(Duration::from_secs(1)).await.is_none(), "and the stream is still open");
    assert!(bridge.stop().await);
}

/// Issue 9.3: a Publish larger than tonic's default 4 MiB decode limit reaches Kafka when
/// `maxMessageBytes` allows it. On the mock cluster only: Tansu's own request limit is not
/// configurable, and the gRPC side is what is tested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_over_four_mebibytes_is_accepted_when_configured() {
    let broker = Broker::start(BrokerKind::Mock).await;
    let topic = unique("large");
    broker.create_topic(&topic, 1).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&[("brokers", broker.bootstrap()), ("maxMessageBytes", "8388608")]).await.unwrap();
    let payload = vec![b'a'; 5 * 1024 * 1024];
    daprd.publish(&topic, &payload, &[]).await.expect("a 5 MiB publish");
    let back = read_back(broker.bootstrap(), &topic, 1, Duration::from_secs(20)).await;
    assert_eq!(back[0].payload.len(), payload.len());
    // A value above the bridge's request limit is refused at Init, naming the key.
    let error = daprd.init(&[("brokers", broker.bootstrap()), ("maxMessageBytes", "999999999")]).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("maxMessageBytes") && error.message().contains("--max-request-bytes"));
    assert!(bridge.stop().await);
}

/// Issue 9.7: dead-lettered records keep key and header bytes exactly, and headers that look
/// like publish control keys stay headers (they used to steer the dead-letter publish).
async fn dead_letters_are_binary_exact(broker: Broker) {
    let topic = unique("dl");
    let dlq = unique("dl-dlq");
    let group = unique("g");
    broker.create_topic(&topic, 1).await;
    broker.create_topic(&dlq, 1).await;
    testkit::kafka::produce_raw(
        broker.bootstrap(),
        &topic,
        Some(&[0xff, 0x00, 0xfe]),
        b"payload",
        &[("partitionNumber", b"99".as_slice()), ("__key", b"other"), ("bin", &[0xc3, 0x28])],
    )
    .await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[("maxRetries", "0"), ("deadLetterTopic", &dlq)])).await.unwrap();
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let m = sub.next(FIRST).await.expect("the record");
    sub.nack(&m.id, "fail").await;
    let raw = read_back(broker.bootstrap(), &dlq, 1, Duration::from_secs(20)).await;
    assert_eq!(raw.len(), 1, "dead-lettered once, to partition 0 (not `partitionNumber` 99)");
    assert_eq!(raw[0].key.as_deref(), Some([0xff, 0x00, 0xfe].as_slice()), "key bytes");
    let headers: HashMap<_, _> = raw[0].raw_headers.iter().cloned().collect();
    assert_eq!(headers["partitionNumber"], b"99");
    assert_eq!(headers["__key"], b"other");
    assert_eq!(headers["bin"], vec![0xc3, 0x28]);
    assert!(bridge.stop().await);
}

/// Issue 9.5: after Pause, messages already queued for daprd are held back, not pushed.
async fn pause_holds_what_is_already_queued(broker: Broker) {
    let topic = unique("pq");
    let group = unique("g");
    broker.create_topic(&topic, 1).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[])).await.unwrap();
    // 4.4 MB: under the 5 MB the mock cluster keeps per partition.
    const COUNT: usize = 220;
    publish_to(&mut daprd, &topic, "m", COUNT, 0, 20 * 1024).await;
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let first = sub.next(FIRST).await.expect("first");
    // daprd is busy: it reads nothing for a while, so HTTP/2 flow control fills up and the
    // rest of the 200 messages wait in the bridge. Then it pauses and reads what comes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    daprd.pause().await;
    let mut after_pause = 0;
    while sub.next(Duration::from_secs(2)).await.is_some() {
        after_pause += 1;
    }
    // Only what HTTP/2 had already carried may arrive: the client's 2 MiB stream window holds
    // about 100 of these 20 KiB messages; the other 120 must wait in the bridge.
    assert!(after_pause < 140, "{after_pause} of {COUNT} arrived after Pause");
    daprd.resume().await;
    let rest = sub.take(COUNT, Duration::from_secs(15)).await;
    assert_eq!(1 + after_pause + rest.len(), COUNT, "everything arrives after Resume");
    drop(first);
    assert!(bridge.stop().await);
}

broker_tests!(
    a_paused_partition_fetches_again_after_a_rebalance,
    a_poison_message_stops_its_partition_at_the_uncommitted_cap,
    consume_retry_disabled_drops_a_nacked_message,
    an_oversized_record_is_dead_lettered_or_holds_without_ending_the_stream,
    dead_letters_are_binary_exact,
    pause_holds_what_is_already_queued,
);

/// Issue 9.4: authorisation and group-protocol errors while joining (ACLs propagating, a
/// rolling assignor change) do not end the stream; it joins once they stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_group_errors_do_not_end_the_stream() {
    let broker = Broker::start(BrokerKind::Mock).await;
    let topic = unique("transient");
    let group = unique("g");
    broker.create_topic(&topic, 1).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[])).await.unwrap();
    publish_to(&mut daprd, &topic, "m", 10, 0, 10).await;
    use RDKafkaRespErr::*;
    broker
        .mock()
        .unwrap()
        .push_request_errors(
            RDKafkaApiKey::JoinGroup,
            &[
                RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
                RD_KAFKA_RESP_ERR_INCONSISTENT_GROUP_PROTOCOL,
                RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
            ],
        )
        .unwrap();
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let got = drain_acking(&mut sub, 10, Duration::from_secs(40)).await;
    assert_eq!(got.len(), 10, "the stream survived the errors and delivered everything");
    assert!(bridge.stop().await);
}

/// Issue 9.4: a fatal idempotent-producer error (the broker answers the head-of-line request
/// with OUT_OF_ORDER_SEQUENCE_NUMBER) fails the records in flight, then a new producer serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_error_rebuilds_the_producer() {
    let broker = Broker::start(BrokerKind::Mock).await;
    let topic = unique("fatal");
    broker.create_topic(&topic, 1).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&[("brokers", broker.bootstrap()), ("linger", "1ms")]).await.unwrap();
    daprd.publish(&topic, b"before", &[]).await.unwrap();
    broker
        .mock()
        .unwrap()
        .push_request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER])
        .unwrap();
    let failed = daprd.publish(&topic, b"during", &[]).await.unwrap_err();
    assert_ne!(failed.code(), Code::Ok);
    for attempt in 0..3 {
        match daprd.publish(&topic, format!("after-{attempt}").as_bytes(), &[]).await {
            Ok(()) => break,
            Err(status) if attempt < 2 => eprintln!("attempt {attempt}: {status:?}"),
            Err(status) => panic!("the producer was not rebuilt: {status:?}"),
        }
    }
    let back = read_back(broker.bootstrap(), &topic, 2, Duration::from_secs(20)).await;
    let payloads: HashSet<_> = back.iter().map(|r| String::from_utf8_lossy(&r.payload).into_owned()).collect();
    assert!(payloads.contains("before") && payloads.iter().any(|p| p.starts_with("after-")), "{payloads:?}");
    assert!(!payloads.contains("during"), "a failed publish is not in Kafka");
    assert!(bridge.stop().await);
}

/// Issue 9.4: gRPC health says NOT_SERVING while Kafka does not answer, SERVING once it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_kafka() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let broker = Broker::start(BrokerKind::Mock).await;
    let folder = tempfile::tempdir().unwrap();
    let mut options = dapr_kafka_bridge::server::ServerOptions::new(folder.path().join("h.sock"));
    options.health_interval = Duration::from_millis(300);
    let bridge = BridgeUnderTest::with_options(folder, options);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&[("brokers", broker.bootstrap())]).await.unwrap();
    let health = HealthClient::new(testkit::daprd::channel(bridge.socket()).await);
    let status = || {
        let mut health = health.clone();
        async move {
            let request = HealthCheckRequest { service: dapr_kafka_proto::PUBSUB_SERVICE.into() };
            health.check(request).await.unwrap().into_inner().status
        }
    };
    let wait_for = |want: ServingStatus| async move {
        for _ in 0..100 {
            if status().await == want as i32 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    };
    assert_eq!(status().await, ServingStatus::Serving as i32);
    broker.mock().unwrap().set_brokers_up(false).unwrap();
    assert!(wait_for(ServingStatus::NotServing).await, "NOT_SERVING while the brokers are down");
    // What the `healthcheck` probe asks by default (the liveness probe of the manifests) is the
    // server's health, not Kafka's: a bridge restarted for a Kafka outage would never be
    // Init again by daprd.
    use clap::Parser;
    let probe = match dapr_kafka_bridge::cli::Args::try_parse_from(["kafka-pubsub-bridge", "healthcheck"]) {
        Ok(dapr_kafka_bridge::cli::Args {
            command: Some(dapr_kafka_bridge::cli::Command::Healthcheck(probe)), ..
        }) => probe,
        other => panic!("healthcheck arguments: {other:?}"),
    };
    let liveness =
        dapr_kafka_bridge::healthcheck::serving_status(bridge.socket(), &probe.service, Duration::from_secs(5));
    assert_eq!(liveness.await, Ok(ServingStatus::Serving), "liveness must not follow Kafka");
    broker.mock().unwrap().set_brokers_up(true).unwrap();
    assert!(wait_for(ServingStatus::Serving).await, "SERVING once they are back");
    drop(health);
    assert!(bridge.stop().await);
}

/// Once shutdown starts, the server as a whole is NOT_SERVING too: the liveness probe's
/// question ("", the `healthcheck` default) turns with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_server_is_not_serving_once_shutdown_starts() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let folder = tempfile::tempdir().unwrap();
    let mut options = dapr_kafka_bridge::server::ServerOptions::new(folder.path().join("s.sock"));
    options.shutdown_grace = Duration::from_secs(60);
    let socket = options.socket_path.clone();
    let bridge = BridgeUnderTest::with_options(folder, options);
    let ask = || dapr_kafka_bridge::healthcheck::serving_status(&socket, "", Duration::from_secs(5));
    assert_eq!(ask().await, Ok(ServingStatus::Serving));
    // The grace period keeps the server up (and its socket open) while we look.
    let daprd = Daprd::connect(&socket, None).await;
    let stopping = tokio::spawn(bridge.stop());
    let mut seen = None;
    for _ in 0..100 {
        seen = Some(ask().await);
        if seen == Some(Ok(ServingStatus::NotServing)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, Some(Ok(ServingStatus::NotServing)), "the server says it is going");
    drop(daprd);
    assert!(stopping.await.unwrap());
}

/// Issue 9.5: after the shutdown signal, Publish is still served for the grace period and new
/// streams are refused; the grace period ends as soon as daprd's connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_keeps_publishing_for_the_grace_period() {
    let broker = Broker::start(BrokerKind::Mock).await;
    let topic = unique("grace");
    broker.create_topic(&topic, 1).await;
    let folder = tempfile::tempdir().unwrap();
    let mut options = dapr_kafka_bridge::server::ServerOptions::new(folder.path().join("g.sock"));
    options.shutdown_grace = Duration::from_secs(60);
    let socket = options.socket_path.clone();
    let bridge = BridgeUnderTest::with_options(folder, options);
    let mut daprd = Daprd::connect(&socket, None).await;
    daprd.init(&[("brokers", broker.bootstrap()), ("consumerGroup", "g")]).await.unwrap();
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(bridge.stop());
    tokio::time::sleep(Duration::from_millis(500)).await;
    daprd.publish(&topic, b"during the grace period", &[]).await.expect("Publish is still served");
    let refused = daprd.subscribe(&topic, &[]).await.err().expect("a new stream is refused");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    drop(daprd); // daprd exits: its connection closes
    assert!(stopping.await.unwrap(), "clean stop");
    assert!(started.elapsed() < Duration::from_secs(30), "the grace period ended when the connection closed");
    assert_eq!(read_back(broker.bootstrap(), &topic, 1, Duration::from_secs(20)).await.len(), 1);
}

/// Issue 9.8: a misspelt secret key's value is never echoed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_secret_is_not_echoed() {
    let broker = Broker::start(BrokerKind::Mock).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    let error =
        daprd.init(&[("brokers", broker.bootstrap()), ("kafka.sasl.pasword", "hunter2-secret")]).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("kafka.sasl.pasword"), "{}", error.message());
    assert!(!error.message().contains("hunter2"), "{}", error.message());
    assert!(bridge.stop().await);
}

/// A topic that disappears under a stream (an admin deleting it): the bridge keeps running and
/// serving, and the stream stays open, waiting for the topic. The mock cluster does not serve
/// DeleteTopics, so the topic is made to answer UNKNOWN_TOPIC_OR_PARTITION. (On Tansu 0.6 a
/// real deletion crashes librdkafka itself: Tansu's Metadata response names the deleted topic
/// with a null name and no id, and `rd_kafka_metadata_update_op` compares that NULL name; real
/// Kafka names the topic. See the README's testing notes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_disappears_under_a_stream_does_not_end_it() {
    let broker = Broker::start(BrokerKind::Mock).await;
    let topic = unique("vanishing");
    let group = unique("g");
    broker.create_topic(&topic, 2).await;
    let bridge = BridgeUnderTest::child(&[]);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[])).await.unwrap();
    publish_to(&mut daprd, &topic, "m", 5, 0, 10).await;
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    assert_eq!(drain_acking(&mut sub, 5, IDLE * 2).await.len(), 5);
    broker.mock().unwrap().set_topic_error(&topic, RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART).unwrap();
    // Long enough for a metadata refresh (5 s by default) to see the topic gone.
    assert!(sub.next(Duration::from_secs(12)).await.is_none(), "nothing delivered, and the stream is still open");
    let ping = daprd.request(dapr_kafka_proto::components::PingRequest {});
    daprd.client.ping(ping).await.expect("the bridge is still alive");
    let other = unique("other");
    broker.create_topic(&other, 1).await;
    daprd.publish(&other, b"still publishing", &[]).await.expect("and still publishes");
    assert!(bridge.stop().await, "and stops cleanly");
}
