//! Topics that do not exist yet, on the mock cluster and on Tansu, driven as daprd drives the
//! bridge: a subscription opened before its topic exists loses nothing published after it
//! began (at the default `initialOffset`, newest), while a topic that already existed keeps
//! `initialOffset`'s meaning; `autoCreateTopics` creates a topic as asked; a publish to a
//! missing topic fails within `unknownTopicTimeout`, NOT_FOUND, naming the topic; a
//! subscription to a missing topic waits for it quietly.
//!
//! What the brokers allow: the mock cluster creates a topic when a producer asks for it
//! (4 partitions) and serves neither CreateTopics nor CreatePartitions; Tansu 0.6 creates
//! nothing on produce, serves CreateTopics, and does not serve CreatePartitions. So neither
//! can add partitions to an existing topic: "partitions that appear while subscribed" is
//! tested by creating the topic (mock: its `create_topic`; Tansu: CreateTopics) while the
//! subscription waits, and then writing into every partition at once.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use dapr_kafka_proto::components::PullMessagesResponse;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use testkit::broker::GROUP_SESSION_TIMEOUT;
use testkit::daprd::Subscription;
use testkit::{BridgeUnderTest, Broker, BrokerKind, Daprd, broker_tests, unique};
use tonic::Code;

/// A new topic is noticed within `metadataRefreshInterval` (5 s), then the group joins (mock
/// ~3 s, Tansu ~half the session timeout). Generous: the machine is shared.
const FIRST: Duration = Duration::from_secs(45);
const IDLE: Duration = Duration::from_secs(5);

/// Subscriber settings; `initialOffset` stays at its default (newest) on purpose.
fn subscriber<'a>(broker: &'a Broker, group: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("brokers", broker.bootstrap()),
        ("consumerGroup", group),
        ("sessionTimeout", GROUP_SESSION_TIMEOUT),
        ("heartbeatInterval", "1000"),
        ("commitInterval", "200ms"),
    ]
}

fn payload(m: &PullMessagesResponse) -> String {
    String::from_utf8(m.data.to_vec()).unwrap()
}

/// Receives (and acks) until `count` arrived: the first within [`FIRST`], the rest each within [`IDLE`].
async fn receive(sub: &mut Subscription, count: usize) -> Vec<String> {
    let mut got = Vec::new();
    let mut wait = FIRST;
    while got.len() < count {
        let Some(m) = sub.next(wait).await else { break };
        sub.ack(&m.id).await;
        got.push(payload(&m));
        wait = IDLE;
    }
    got
}

async fn bulk(daprd: &mut Daprd, topic: &str, prefix: &str, count: usize) -> BTreeSet<String> {
    let entries = (0..count)
        .map(|i| {
            let metadata = testkit::daprd::map(&[("partitionKey", &format!("k{}", i % 7))]);
            (i.to_string(), format!("{prefix}-{i}").into_bytes(), metadata)
        })
        .collect();
    let failed = daprd.bulk_publish(topic, entries).await.unwrap();
    assert!(failed.is_empty(), "{:?}", &failed[..failed.len().min(3)]);
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// Produces `prefix-<partition>-<i>` into each partition, with an independent producer.
async fn produce_into_every_partition(bootstrap: &str, topic: &str, partitions: i32, per: usize) -> BTreeSet<String> {
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).set("linger.ms", "1").create().unwrap();
    let mut sent = BTreeSet::new();
    for p in 0..partitions {
        for i in 0..per {
            let value = format!("early-{p}-{i}");
            producer
                .send(FutureRecord::<(), _>::to(topic).partition(p).payload(&value), Duration::from_secs(10))
                .await
                .map_err(|(e, _)| e)
                .expect("produce");
            sent.insert(value);
        }
    }
    sent
}

/// Partitions of `topic` and the replica count of each, from the cluster's metadata.
fn describe(bootstrap: &str, topic: &str) -> Vec<usize> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).unwrap();
    let found = metadata.topics().iter().find(|t| t.name() == topic).expect("the topic in the metadata");
    assert!(found.error().is_none(), "{topic}: {:?}", found.error());
    found.partitions().iter().map(|p| p.replicas().len()).collect()
}

/// Issue 12's first case: the app subscribes at boot, before anything created the topic;
/// then a publish creates it. Every message arrives, at the default `initialOffset`.
async fn subscribe_first_then_a_publish_creates_the_topic(broker: Broker) {
    let topic = unique("later");
    let group = unique("g");
    let bridge = BridgeUnderTest::in_process(None);
    let mut app = Daprd::connect(bridge.socket(), Some("app")).await;
    app.init(&subscriber(&broker, &group)).await.unwrap();
    let mut sub = app.subscribe(&topic, &[]).await.unwrap();

    // The mock creates the topic on produce; Tansu does not, so the publishing Component
    // creates it (CreateTopics).
    let mut publisher = Daprd::connect(bridge.socket(), Some("publisher")).await;
    let mut init = vec![("brokers", broker.bootstrap()), ("linger", "1ms")];
    if broker.kind() == BrokerKind::Tansu {
        init.extend([("autoCreateTopics", "true"), ("topicPartitions", "3")]);
    }
    publisher.init(&init).await.unwrap();
    let sent = bulk(&mut publisher, &topic, "m", 100).await;

    let got = receive(&mut sub, 100).await;
    let missing: Vec<_> = sent.iter().filter(|m| !got.contains(m)).collect();
    assert!(missing.is_empty(), "{} of 100 never arrived: {:?}", missing.len(), &missing[..missing.len().min(5)]);
    sub.close();
    assert!(bridge.stop().await);
}

/// Partitions that appear while a subscription waits are read from their beginning: records
/// written into every partition the moment it exists, before the group even noticed it.
async fn partitions_that_appear_while_subscribed_are_read_from_the_beginning(broker: Broker) {
    let topic = unique("appear");
    let group = unique("g");
    let bridge = BridgeUnderTest::in_process(None);
    let mut app = Daprd::connect(bridge.socket(), None).await;
    app.init(&subscriber(&broker, &group)).await.unwrap();
    let mut sub = app.subscribe(&topic, &[]).await.unwrap();

    broker.create_topic(&topic, 3).await;
    let sent = produce_into_every_partition(broker.bootstrap(), &topic, 3, 5).await;
    let got: BTreeSet<_> = receive(&mut sub, sent.len()).await.into_iter().collect();
    assert_eq!(got, sent);
    sub.close();
    assert!(bridge.stop().await);
}

/// A topic that existed when the subscription began keeps `initialOffset: newest`: what was
/// in it before is not delivered, what comes after is.
async fn a_topic_that_existed_keeps_initial_offset(broker: Broker) {
    let topic = unique("existed");
    let group = unique("g");
    broker.create_topic(&topic, 2).await;
    let old = produce_into_every_partition(broker.bootstrap(), &topic, 2, 3).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut app = Daprd::connect(bridge.socket(), None).await;
    app.init(&[subscriber(&broker, &group), vec![("linger", "1ms")]].concat()).await.unwrap();
    let mut sub = app.subscribe(&topic, &[]).await.unwrap();

    // Publish a probe each second until one arrives (the group has joined), then a batch.
    let mut got = Vec::new();
    let started = Instant::now();
    for i in 0.. {
        app.publish(&topic, format!("probe-{i}").as_bytes(), &[]).await.unwrap();
        if let Some(m) = sub.next(Duration::from_secs(1)).await {
            sub.ack(&m.id).await;
            got.push(payload(&m));
            break;
        }
        assert!(started.elapsed() < FIRST, "no probe arrived");
    }
    let sent = bulk(&mut app, &topic, "new", 20).await;
    got.extend(receive(&mut sub, 20).await);
    got.extend(sub.take(100, Duration::from_secs(2)).await.iter().map(payload));
    let delivered_old: Vec<_> = got.iter().filter(|m| old.contains(*m)).collect();
    assert!(delivered_old.is_empty(), "records from before the subscription were delivered: {delivered_old:?}");
    assert!(sent.iter().all(|m| got.contains(m)), "every record published after the join arrives");
    sub.close();
    assert!(bridge.stop().await);
}

/// `autoCreateTopics` creates a topic on the first publish, as `topicPartitions` and
/// `topicReplicationFactor` say, and on a subscription, as its metadata overrides say. The
/// mock cluster does not serve CreateTopics: there the creation fails (logged) and the mock's
/// own creation on produce takes over, so publish and subscribe still work.
async fn auto_create_makes_the_topics_asked_for(broker: Broker) {
    let published = unique("auto-pub");
    let subscribed = unique("auto-sub");
    let group = unique("g");
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    let init = [
        subscriber(&broker, &group),
        vec![
            ("autoCreateTopics", "true"),
            ("topicPartitions", "3"),
            ("topicReplicationFactor", "1"),
            ("linger", "1ms"),
        ],
    ]
    .concat();
    daprd.init(&init).await.unwrap();

    daprd.publish(&published, b"first", &[]).await.unwrap();
    let mut sub = daprd.subscribe(&subscribed, &[("topicPartitions", "5")]).await.unwrap();
    if broker.kind() == BrokerKind::Tansu {
        assert_eq!(describe(broker.bootstrap(), &published), vec![1; 3], "3 partitions of 1 replica");
        assert_eq!(describe(broker.bootstrap(), &subscribed), vec![1; 5], "the subscription's override");
    }
    let sent = bulk(&mut daprd, &subscribed, "m", 30).await;
    let got: BTreeSet<_> = receive(&mut sub, 30).await.into_iter().collect();
    assert_eq!(got, sent, "a topic the subscription created is read from its beginning");

    // A bad override is refused when the stream opens, naming the key.
    let status = daprd.subscribe(&unique("bad"), &[("topicPartitions", "zero")]).await.err().expect("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("topicPartitions"), "{status:?}");
    sub.close();
    assert!(bridge.stop().await);
}

/// Without `autoCreateTopics`, a publish to a missing topic fails within
/// `unknownTopicTimeout` (3 s here; librdkafka's default would be 30 s) with NOT_FOUND naming
/// the topic, and a BulkPublish lists every entry as failed with that reason. The mock
/// creates topics on produce, so there the topic is made to look missing (its metadata
/// answers UNKNOWN_TOPIC_OR_PART).
async fn a_publish_to_a_missing_topic_fails_fast_and_names_it(broker: Broker) {
    let topic = unique("typo");
    if let Some(mock) = broker.mock() {
        mock.set_topic_error(
            &topic,
            dapr_kafka_bridge::embedded::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        )
        .unwrap();
    }
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&[("brokers", broker.bootstrap()), ("unknownTopicTimeout", "3s")]).await.unwrap();

    let started = Instant::now();
    let status = daprd.publish(&topic, b"x", &[]).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains(&format!("`{topic}`")), "{status:?}");
    assert!(status.message().contains("autoCreateTopics"), "says what to do: {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "bounded by unknownTopicTimeout, took {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let entries: Vec<_> = (0..10).map(|i| (format!("e{i}"), b"x".to_vec(), HashMap::new())).collect();
    let failed = daprd.bulk_publish(&topic, entries).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    let ids: BTreeSet<_> = failed.iter().map(|f| f.entry_id.clone()).collect();
    assert_eq!(ids, (0..10).map(|i| format!("e{i}")).collect(), "every entry is listed");
    for entry in &failed {
        assert!(entry.error.contains(&format!("`{topic}`")) && entry.error.contains("does not exist"), "{entry:?}");
    }
    assert!(bridge.stop().await);
}

/// A subscription to a missing topic stays open and waits without spinning: librdkafka's
/// error for it is counted a bounded number of times (not once per poll), and the stream is
/// still there, and delivers, once the topic appears.
async fn a_subscription_to_a_missing_topic_waits_quietly(broker: Broker) {
    let topic = unique("absent");
    let group = unique("g");
    let port = testkit::broker::free_port();
    let bridge = BridgeUnderTest::child(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    let mut app = Daprd::connect(bridge.socket(), None).await;
    app.init(&subscriber(&broker, &group)).await.unwrap();
    let mut sub = app.subscribe(&topic, &[]).await.unwrap();
    // Several metadata refreshes (5 s each) and hundreds of polls (50 ms each) go by.
    assert!(sub.next(Duration::from_secs(12)).await.is_none(), "nothing to deliver yet");
    let errors = metric(port, "kafka_bridge_stream_errors_total", &topic).await;
    assert!(errors <= 5.0, "the missing topic is reported a bounded number of times, not per poll: {errors}");

    broker.create_topic(&topic, 2).await;
    let sent = produce_into_every_partition(broker.bootstrap(), &topic, 2, 2).await;
    let got: BTreeSet<_> = receive(&mut sub, sent.len()).await.into_iter().collect();
    assert_eq!(got, sent);
    sub.close();
    assert!(bridge.stop().await);
}

/// The sum of the Prometheus samples of `name` whose labels mention `topic`.
async fn metric(port: u16, name: &str, topic: &str) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(topic))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

broker_tests!(
    subscribe_first_then_a_publish_creates_the_topic,
    partitions_that_appear_while_subscribed_are_read_from_the_beginning,
    a_topic_that_existed_keeps_initial_offset,
    auto_create_makes_the_topics_asked_for,
    a_publish_to_a_missing_topic_fails_fast_and_names_it,
    a_subscription_to_a_missing_topic_waits_quietly,
);
