//! The subscribe side (PullMessages), driven over the real socket exactly as daprd drives it,
//! against the mock cluster and against Tansu: round trips with metadata, out-of-order acks,
//! cancelled streams and crashes, two bridges in one group, retries and dead letters, Pause,
//! in-flight bounds, and daprds that ack one at a time or keep hundreds in flight.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use dapr_kafka_proto::components::PullMessagesResponse;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use testkit::{BridgeUnderTest, Broker, Daprd, broker_tests, group_init as init, produce, read_back, unique};

/// Long enough for a group join on either broker (mock: ~3 s; Tansu: ~half the session).
const FIRST: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_secs(3);

/// Publishes `count` messages `prefix-<i>` through the bridge, keyed round-robin.
async fn publish_n(daprd: &mut Daprd, topic: &str, prefix: &str, count: usize) -> Vec<String> {
    let entries: Vec<_> = (0..count)
        .map(|i| {
            (
                i.to_string(),
                format!("{prefix}-{i}").into_bytes(),
                testkit::daprd::map(&[("partitionKey", &format!("k{}", i % 7))]),
            )
        })
        .collect();
    assert!(daprd.bulk_publish(topic, entries).await.unwrap().is_empty());
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

fn payload(m: &PullMessagesResponse) -> String {
    String::from_utf8(m.data.to_vec()).unwrap()
}

/// Receives the first message (waiting for the group join), then the rest.
async fn receive(sub: &mut testkit::daprd::Subscription, count: usize) -> Vec<PullMessagesResponse> {
    let mut got = Vec::new();
    if let Some(first) = sub.next(FIRST).await {
        got.push(first);
        got.extend(sub.take(count - 1, IDLE).await);
    }
    got
}

fn committed(broker: &Broker, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", broker.bootstrap()).set("group.id", group).create().unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    (0..partitions)
        .map(|p| match committed.find_partition(topic, p).unwrap().offset() {
            Offset::Offset(o) => o,
            _ => -1,
        })
        .collect()
}

async fn round_trip_with_metadata(broker: Broker) {
    let topic = unique("rt");
    let group = unique("g");
    broker.create_topic(&topic, 3).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), Some("orders")).await;
    daprd.init(&init(&broker, &group, &[])).await.unwrap();
    let sent = publish_n(&mut daprd, &topic, "m", 60).await;
    let mut sub = daprd.subscribe(&topic, &[("rawPayload", "true")]).await.unwrap();
    let got = receive(&mut sub, 60).await;
    assert_eq!(got.iter().map(payload).collect::<BTreeSet<_>>(), sent.iter().cloned().collect());
    let ids: HashSet<_> = got.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids.len(), 60, "ids are unique");
    for m in &got {
        assert_eq!(m.topic_name, topic);
        assert_eq!(m.metadata["__topic"], topic);
        assert!(m.metadata["__key"].starts_with('k'));
        let partition: i32 = m.metadata["__partition"].parse().unwrap();
        assert!((0..3).contains(&partition));
        assert!(m.metadata["__offset"].parse::<i64>().unwrap() >= 0);
        assert!(m.metadata["__timestamp"].parse::<i64>().unwrap() > 1_600_000_000_000, "milliseconds");
        assert_eq!(m.content_type, "application/cloudevents+json", "from the content-type header");
        sub.ack(&m.id).await;
    }

    // Records from an independent producer arrive with their keys and headers.
    produce(
        broker.bootstrap(),
        &topic,
        &[(Some("user-1"), b"external", &[("tenant", "acme"), ("content-type", "text/plain")])],
    )
    .await;
    let external = sub.next(IDLE * 3).await.expect("the externally produced record");
    assert_eq!(payload(&external), "external");
    assert_eq!(external.metadata["__key"], "user-1");
    assert_eq!(external.metadata["tenant"], "acme");
    assert_eq!(external.content_type, "text/plain");
    sub.ack(&external.id).await;
    sub.close();
    assert!(bridge.stop().await);
}

async fn out_of_order_acks_resume_at_the_withheld_message(broker: Broker) {
    let topic = unique("ooo");
    let group = unique("g");
    broker.create_topic(&topic, 1).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[])).await.unwrap();
    publish_n(&mut daprd, &topic, "m", 20).await;

    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let got = receive(&mut sub, 20).await;
    assert_eq!(got.len(), 20);
    // Ack everything except offset 5, newest first.
    for m in got.iter().rev().filter(|m| m.metadata["__offset"] != "5") {
        sub.ack(&m.id).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(committed(&broker, &group, &topic, 1), vec![5], "never past the withheld message");
    sub.close();
    // Let the old stream's consumer leave the group first (it does within ~0.1 s). On the
    // mock cluster a member that joins while another leaves can wait several rebalance
    // rounds (5–15 s measured, over 30 s under CPU load), which is the mock coordinator's
    // way and not this test's subject; the two-bridge tests overlap members on purpose.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A new stream (after the old one ended) starts at the withheld message, and redelivers
    // in offset order. This once failed under CPU load with a start at 12: the first fetched
    // records went to the consumer's main queue before the partition's own queue was split
    // off, were served after later ones and dropped as repeats (see `subscriber::worker`).
    let mut again = daprd.subscribe(&topic, &[]).await.unwrap();
    let redelivered = receive(&mut again, 15).await;
    let offsets: Vec<i64> = redelivered.iter().map(|m| m.metadata["__offset"].parse().unwrap()).collect();
    assert_eq!(
        offsets,
        (5..20).collect::<Vec<_>>(),
        "the at-least-once window, in order; the group's committed offsets now: {:?}",
        committed(&broker, &group, &topic, 1)
    );
    for m in &redelivered {
        again.ack(&m.id).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(committed(&broker, &group, &topic, 1), vec![20]);
    assert!(bridge.stop().await);
}

async fn crash_midway_loses_nothing(broker: Broker) {
    let topic = unique("crash");
    let group = unique("g");
    broker.create_topic(&topic, 2).await;
    let bridge = BridgeUnderTest::child(&[]);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[])).await.unwrap();
    let sent = publish_n(&mut daprd, &topic, "m", 100).await;
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let got = receive(&mut sub, 100).await;
    assert_eq!(got.len(), 100);
    let mut acked = HashSet::new();
    for m in got.iter().filter(|m| m.metadata["__offset"].parse::<i64>().unwrap() % 3 != 2) {
        sub.ack(&m.id).await;
        acked.insert(payload(m));
    }
    tokio::time::sleep(Duration::from_millis(600)).await; // let a periodic commit happen
    bridge.kill(); // SIGKILL: no drain, no final commit

    let bridge = BridgeUnderTest::child(&[]);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[])).await.unwrap();
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let again: HashSet<String> = receive(&mut sub, 100).await.iter().map(payload).collect();
    let unacked: HashSet<String> = sent.iter().filter(|p| !acked.contains(*p)).cloned().collect();
    assert!(
        unacked.is_subset(&again),
        "every un-acked message is delivered again; missing {:?}",
        unacked.difference(&again).collect::<Vec<_>>()
    );
    assert!(again.len() < 100, "acked and committed messages are not all redelivered ({} were)", again.len());
    assert!(bridge.stop().await);
}

/// `initialOffset: newest` (the default) with no committed offset: what is published after
/// the stream is established is delivered, even before the group's first assignment, and
/// messages delivered but never acked go to the next stream of the group. librdkafka alone
/// would resolve "latest" again at each assignment and skip both.
async fn newest_start_is_kept_for_the_next_owner(broker: Broker) {
    let topic = unique("newest");
    let group = unique("g");
    broker.create_topic(&topic, 1).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[("initialOffset", "newest")])).await.unwrap();
    publish_n(&mut daprd, &topic, "before", 2).await;

    let mut first = daprd.subscribe(&topic, &[]).await.unwrap();
    // Established, not yet assigned (the group join takes seconds): published now.
    let sent = publish_n(&mut daprd, &topic, "m", 3).await;
    let got = receive(&mut first, 3).await;
    assert_eq!(got.iter().map(payload).collect::<Vec<_>>(), sent, "published after the stream opened: delivered");
    first.close(); // nothing acked
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut second = daprd.subscribe(&topic, &[]).await.unwrap();
    let again = receive(&mut second, 3).await;
    assert_eq!(
        again.iter().map(payload).collect::<Vec<_>>(),
        sent,
        "the un-acked messages go to the group's next stream; committed now: {:?}",
        committed(&broker, &group, &topic, 1)
    );
    for m in &again {
        second.ack(&m.id).await;
    }
    second.close();
    assert!(bridge.stop().await);
}

/// On shutdown a stream stops delivering, waits up to `revokeAckTimeout` for the acks of what
/// daprd holds, and commits them: acks that daprd sends in that window count.
async fn acks_sent_while_the_bridge_shuts_down_are_committed(broker: Broker) {
    let topic = unique("stopping");
    let group = unique("g");
    broker.create_topic(&topic, 1).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[])).await.unwrap();
    publish_n(&mut daprd, &topic, "m", 10).await;
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let got = receive(&mut sub, 10).await;
    assert_eq!(got.len(), 10);

    let stopping = tokio::spawn(bridge.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!stopping.is_finished(), "the stream waits for the acks of what daprd holds");
    for m in &got {
        sub.ack(&m.id).await;
    }
    assert!(stopping.await.unwrap(), "a clean stop");
    assert_eq!(committed(&broker, &group, &topic, 1), vec![10], "the acks sent during shutdown were committed");
}

/// A stream paused by daprd (its shutdown drain) and then ended by the bridge's own shutdown
/// ends at once: it does not hold the server's graceful shutdown until a Resume that never
/// comes. What it held stays un-acked; what daprd acked is committed.
async fn a_paused_stream_ends_with_the_bridge(broker: Broker) {
    let topic = unique("paused-stop");
    let group = unique("g");
    broker.create_topic(&topic, 1).await;
    let folder = tempfile::tempdir().unwrap();
    let mut options = dapr_kafka_bridge::server::ServerOptions::new(folder.path().join("p.sock"));
    options.shutdown_timeout = Duration::from_secs(120); // what an old paused stream would hold
    let bridge = BridgeUnderTest::with_options(folder, options);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[("revokeAckTimeout", "1s")])).await.unwrap();
    publish_n(&mut daprd, &topic, "m", 10).await;
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let got = receive(&mut sub, 10).await;
    assert_eq!(got.len(), 10);
    for m in &got[..5] {
        sub.ack(&m.id).await;
    }
    daprd.pause().await;
    let stopped = tokio::time::timeout(Duration::from_secs(60), bridge.stop()).await;
    assert_eq!(stopped, Ok(true), "the bridge stops cleanly, not at its 120 s shutdown timeout");
    assert_eq!(sub.next_result().await.ok(), Some(None), "the stream ended, cleanly");
    assert_eq!(committed(&broker, &group, &topic, 1), vec![5], "what daprd acked is committed");
}

async fn two_bridges_split_the_group_and_take_over(broker: Broker) {
    split_and_take_over(broker, "range").await;
}

async fn two_bridges_with_cooperative_sticky_assignor(broker: Broker) {
    split_and_take_over(broker, "cooperative-sticky").await;
}

async fn split_and_take_over(broker: Broker, strategy: &str) {
    let topic = unique("split");
    let group = unique("g");
    broker.create_topic(&topic, 4).await;
    let a = BridgeUnderTest::in_process(None);
    let b = BridgeUnderTest::in_process(None);
    let mut daprd_a = Daprd::connect(a.socket(), None).await;
    let mut daprd_b = Daprd::connect(b.socket(), None).await;
    let settings = [("consumerGroupRebalanceStrategy", strategy)];
    daprd_a.init(&init(&broker, &group, &settings)).await.unwrap();
    daprd_b.init(&init(&broker, &group, &settings)).await.unwrap();
    let mut sub_a = daprd_a.subscribe(&topic, &[]).await.unwrap();
    let mut sub_b = daprd_b.subscribe(&topic, &[]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await; // both joined: partitions split
    let sent = publish_n(&mut daprd_a, &topic, "m", 200).await;

    let mut acked = HashSet::new();
    let from_b = sub_b.take(200, IDLE).await;
    let from_a = sub_a.take(200, IDLE).await;
    assert!(
        !from_a.is_empty() && !from_b.is_empty(),
        "both members got partitions ({} / {})",
        from_a.len(),
        from_b.len()
    );
    assert_eq!(from_a.len() + from_b.len(), 200);
    for m in &from_a {
        sub_a.ack(&m.id).await;
        acked.insert(payload(m));
    }
    // B acks only half of what it got, then goes away.
    for m in from_b.iter().step_by(2) {
        sub_b.ack(&m.id).await;
        acked.insert(payload(m));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    sub_b.close();
    assert!(b.stop().await);

    // A takes B's partitions over and gets everything B did not ack.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while acked.len() < sent.len() && tokio::time::Instant::now() < deadline {
        if let Some(m) = sub_a.next(Duration::from_secs(2)).await {
            sub_a.ack(&m.id).await;
            acked.insert(payload(&m));
        }
    }
    assert_eq!(acked.len(), sent.len(), "no message lost across the take-over");
    assert!(a.stop().await);
}

async fn nack_retries_then_dead_letters_with_payload_and_headers(broker: Broker) {
    let topic = unique("poison");
    let dlq = unique("dlq");
    let group = unique("g");
    broker.create_topic(&topic, 1).await;
    broker.create_topic(&dlq, 1).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd
        .init(&init(&broker, &group, &[("maxRetries", "2"), ("retryBackoff", "100ms"), ("deadLetterTopic", &dlq)]))
        .await
        .unwrap();
    daprd.publish(&topic, b"poison", &[("partitionKey", "p"), ("tenant", "acme")]).await.unwrap();
    daprd.publish(&topic, b"good", &[]).await.unwrap();

    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let mut poison_deliveries = 0;
    let mut good = 0;
    while let Some(m) = sub.next(if poison_deliveries + good == 0 { FIRST } else { IDLE }).await {
        match payload(&m).as_str() {
            "poison" => {
                poison_deliveries += 1;
                sub.nack(&m.id, "handler exploded").await;
            }
            _ => {
                good += 1;
                sub.ack(&m.id).await;
            }
        }
    }
    assert_eq!(poison_deliveries, 3, "first delivery + 2 retries");
    assert_eq!(good, 1, "the good message is not held up by the poison one");

    let dead = read_back(broker.bootstrap(), &dlq, 1, Duration::from_secs(10)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload, b"poison");
    assert_eq!(dead[0].key.as_deref(), Some(&b"p"[..]));
    assert_eq!(dead[0].headers["tenant"], "acme");
    assert_eq!(dead[0].headers["dlq-error"], "handler exploded");
    assert_eq!(dead[0].headers["dlq-original-topic"], topic);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(committed(&broker, &group, &topic, 1), vec![2], "the partition moved on past the dead-lettered message");
    assert!(bridge.stop().await);
}

async fn pause_holds_and_in_flight_bound_holds(broker: Broker) {
    let topic = unique("pause");
    let group = unique("g");
    broker.create_topic(&topic, 2).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[("maxInFlightPerStream", "10")])).await.unwrap();
    publish_n(&mut daprd, &topic, "m", 100).await;
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let first = receive(&mut sub, 10).await;
    assert_eq!(first.len(), 10);
    assert!(sub.next(Duration::from_secs(1)).await.is_none(), "no more than maxInFlightPerStream un-acked");

    daprd.pause().await;
    daprd.pause().await; // idempotent
    for m in &first {
        sub.ack(&m.id).await; // acks are accepted while paused
    }
    assert!(sub.next(Duration::from_secs(1)).await.is_none(), "paused: nothing new");
    daprd.resume().await;
    daprd.resume().await;
    let mut seen: HashSet<String> = first.iter().map(payload).collect();
    while seen.len() < 100 {
        let batch = sub.take(10, IDLE).await;
        assert!(!batch.is_empty(), "resumed delivery stalled at {}", seen.len());
        assert!(batch.len() <= 10);
        for m in &batch {
            sub.ack(&m.id).await;
            seen.insert(payload(m));
        }
    }
    assert!(bridge.stop().await);
}

async fn one_at_a_time_and_windowed_daprds(broker: Broker) {
    let topic = unique("ack-styles");
    broker.create_topic(&topic, 3).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    let (g1, g2) = (unique("g"), unique("g"));
    daprd.init(&init(&broker, &g1, &[])).await.unwrap();
    let sent: HashSet<String> = publish_n(&mut daprd, &topic, "m", 1000).await.into_iter().collect();

    // One at a time: receive, ack, then the next.
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let mut seen = HashSet::new();
    let mut m = sub.next(FIRST).await;
    while let Some(message) = m {
        sub.ack(&message.id).await;
        seen.insert(payload(&message));
        m = if seen.len() == sent.len() { None } else { sub.next(IDLE).await };
    }
    assert_eq!(seen, sent);
    sub.close();

    // Windowed: up to 500 in flight, acked in bulk, out of order.
    let mut other = Daprd::connect(bridge.socket(), Some("windowed")).await;
    other
        .init(&init(&broker, &g2, &[("maxInFlightPerStream", "500"), ("maxInFlightPerPartition", "500")]))
        .await
        .unwrap();
    let mut sub = other.subscribe(&topic, &[]).await.unwrap();
    let mut seen = HashSet::new();
    while seen.len() < sent.len() {
        let window = if seen.is_empty() { receive(&mut sub, 500).await } else { sub.take(500, IDLE).await };
        assert!(!window.is_empty() && window.len() <= 500, "window of {}", window.len());
        for message in window.iter().rev() {
            sub.ack(&message.id).await;
            seen.insert(payload(message));
        }
    }
    assert_eq!(seen, sent);
    assert!(bridge.stop().await);
}

async fn closing_one_stream_does_not_disturb_another(broker: Broker) {
    let (x, y) = (unique("x"), unique("y"));
    let group = unique("g");
    broker.create_topic(&x, 2).await;
    broker.create_topic(&y, 2).await;
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&init(&broker, &group, &[])).await.unwrap();
    let mut sub_x = daprd.subscribe(&x, &[]).await.unwrap();
    let mut sub_y = daprd.subscribe(&y, &[]).await.unwrap();
    // Both streams are members of one group: wait until each has received (and acked) a
    // probe, i.e. until the joins are over, so the rebalance below is only the one that
    // closing y causes.
    publish_n(&mut daprd, &x, "probe-x", 1).await;
    publish_n(&mut daprd, &y, "probe-y", 1).await;
    async fn ack_probe(sub: &mut testkit::daprd::Subscription) {
        let probe = sub.next(FIRST).await.expect("probe");
        sub.ack(&probe.id).await;
    }
    tokio::join!(ack_probe(&mut sub_x), ack_probe(&mut sub_y));
    tokio::time::sleep(Duration::from_secs(1)).await;
    publish_n(&mut daprd, &x, "x", 50).await;
    publish_n(&mut daprd, &y, "y", 50).await;
    let got_y = receive(&mut sub_y, 50).await;
    assert_eq!(got_y.len(), 50);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for m in receive(&mut sub_x, 50).await {
        sub_x.ack(&m.id).await;
        *counts.entry(payload(&m)).or_default() += 1;
    }
    // Closing y makes the group rebalance; x acks promptly, so nothing acked comes again.
    sub_y.close();
    publish_n(&mut daprd, &x, "x2", 50).await;
    while let Some(m) = sub_x.next(Duration::from_secs(10)).await {
        sub_x.ack(&m.id).await;
        *counts.entry(payload(&m)).or_default() += 1;
        if counts.len() == 100 {
            break;
        }
    }
    assert_eq!(counts.len(), 100, "x kept delivering after y closed");
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "acked messages redelivered: {repeated:?}");
    assert!(bridge.stop().await);
}

broker_tests!(
    round_trip_with_metadata,
    out_of_order_acks_resume_at_the_withheld_message,
    crash_midway_loses_nothing,
    acks_sent_while_the_bridge_shuts_down_are_committed,
    a_paused_stream_ends_with_the_bridge,
    newest_start_is_kept_for_the_next_owner,
    two_bridges_split_the_group_and_take_over,
    two_bridges_with_cooperative_sticky_assignor,
    nack_retries_then_dead_letters_with_payload_and_headers,
    pause_holds_and_in_flight_bound_holds,
    one_at_a_time_and_windowed_daprds,
    closing_one_stream_does_not_disturb_another,
);
