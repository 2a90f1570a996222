//! Messages per second delivered through PullMessages, as daprd receives them, against the
//! in-process mock cluster: a daprd that acks one message at a time (receive, ack, next),
//! the same with the bridge limited to one message in flight, and one that keeps up to 500
//! in flight. The clock starts at the first message, so the group
//! join is not counted. Not a criterion bench: each run needs a fresh consumer group.
//!
//! Run: `cargo bench -p benches --bench pull` (`PULL_MESSAGES=50000` to change the count).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dapr_kafka_bridge::embedded::EmbeddedKafka;
use testkit::{BridgeUnderTest, Daprd, unique};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count: usize = std::env::var("PULL_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let cluster = EmbeddedKafka::start(1).unwrap();
    let topic = unique("pull-bench");
    cluster.create_topic(&topic, 6).unwrap();
    let bridge = BridgeUnderTest::in_process(None);
    let mut daprd = Daprd::connect(bridge.socket(), Some("bench")).await;
    daprd.init(&[("brokers", cluster.bootstrap())]).await.unwrap();
    for chunk in 0..count.div_ceil(1000) {
        let entries = (0..1000.min(count - chunk * 1000))
            .map(|i| (i.to_string(), vec![b'x'; 256], HashMap::from([("partitionKey".to_owned(), i.to_string())])))
            .collect();
        assert!(daprd.bulk_publish(&topic, entries).await.unwrap().is_empty());
    }

    // daprd handling one message at a time, with the bridge prefetching (default bounds);
    // the same with the bridge allowed a single message in flight (every delivery waits for
    // the previous ack: the bridge's own round trip); and daprd keeping 500 in flight.
    for (name, window) in [("one-at-a-time", 1000usize), ("one-in-flight", 1), ("windowed-500", 500)] {
        let group = unique("bench");
        let mut consumer = Daprd::connect(bridge.socket(), Some(name)).await;
        let in_flight = window.to_string();
        consumer
            .init(&[
                ("brokers", cluster.bootstrap()),
                ("consumerGroup", &group),
                ("initialOffset", "oldest"),
                ("maxInFlightPerStream", &in_flight),
                ("maxInFlightPerPartition", &in_flight),
            ])
            .await
            .unwrap();
        let mut sub = consumer.subscribe(&topic, &[]).await.unwrap();
        let first = sub.next(Duration::from_secs(30)).await.expect("first message");
        let started = Instant::now();
        sub.ack(&first.id).await;
        let mut received = 1;
        while received < count {
            if window == 500 {
                // Windowed: take what is there (up to 500), then ack it all, newest first.
                let batch = sub.take(500, Duration::from_millis(20)).await;
                assert!(!batch.is_empty(), "stalled at {received}");
                for message in batch.iter().rev() {
                    sub.ack(&message.id).await;
                }
                received += batch.len();
            } else {
                let message = sub.next(Duration::from_secs(10)).await.expect("stalled");
                sub.ack(&message.id).await;
                received += 1;
            }
        }
        let took = started.elapsed();
        println!(
            "pull/{name}: {received} messages in {:.2} s = {:.0} msg/s (max {window} in flight)",
            took.as_secs_f64(),
            (received - 1) as f64 / took.as_secs_f64()
        );
        sub.close();
    }
    assert!(bridge.stop().await);
}
