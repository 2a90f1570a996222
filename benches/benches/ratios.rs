//! The bridge next to its physical limits, measured side by side in one run (issue 10). Each
//! row pairs the bridge's figure with an anchor on the same machine and prints the ratio:
//!
//! | row | bridge | anchor |
//! |---|---|---|
//! | ack→next, one in flight | PullMessages with `maxInFlightPerStream: 1` | a no-op PubSub server answering each ack with the next message over the same kind of socket |
//! | 100 concurrent Publish | 100 B Publish ×100 concurrent into Kafka | the same calls to a no-op Publish handler |
//! | BulkPublish ×1000 | 1000 × 100 B per call, 8 concurrent | librdkafka directly (same settings, in process) |
//! | PullMessages drain | a daprd acking one at a time, default prefetch | a librdkafka consumer draining the same backlog |
//!
//! Rows are interleaved (bridge, anchor, bridge, anchor, ...) `ROUNDS` times (3) and the
//! medians compared. Brokers: `BROKERS` (e.g. Tansu, as `benches/bridge-vs-direct.sh` starts
//! it), else the in-process mock cluster.
//!
//! Run: `cargo bench -p benches --bench ratios`.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use dapr_kafka_bridge::embedded::EmbeddedKafka;
use dapr_kafka_proto::components::*;
use dapr_kafka_proto::{PubSub, PubSubServer};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use testkit::{BridgeUnderTest, Daprd, unique};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// The bridge binary's allocator, so the bridge in this process runs as it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A PubSub service that does no work: the gRPC anchor.
struct Noop;

#[tonic::async_trait]
impl PubSub for Noop {
    async fn init(&self, _: Request<PubSubInitRequest>) -> Result<Response<PubSubInitResponse>, Status> {
        Ok(Response::new(PubSubInitResponse {}))
    }
    async fn features(&self, _: Request<FeaturesRequest>) -> Result<Response<FeaturesResponse>, Status> {
        Ok(Response::new(FeaturesResponse { features: vec!["BULK_PUBSUB".into()] }))
    }
    async fn publish(&self, _: Request<PublishRequest>) -> Result<Response<PublishResponse>, Status> {
        Ok(Response::new(PublishResponse {}))
    }
    async fn bulk_publish(&self, _: Request<BulkPublishRequest>) -> Result<Response<BulkPublishResponse>, Status> {
        Ok(Response::new(BulkPublishResponse { failed_entries: vec![] }))
    }
    type PullMessagesStream = tokio_stream::wrappers::ReceiverStream<Result<PullMessagesResponse, Status>>;
    /// Answers the topic request and every ack with one message, at once.
    async fn pull_messages(
        &self,
        request: Request<Streaming<PullMessagesRequest>>,
    ) -> Result<Response<Self::PullMessagesStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let Some(Ok(first)) = inbound.next().await else { return Err(Status::invalid_argument("no topic")) };
        if first.topic.is_some_and(|t| t.name == "noop-stream") {
            // Streams messages as fast as the client takes them, and reads acks on the side:
            // the most one gRPC stream carries each way (the drain row's gRPC limit).
            tokio::spawn(async move { while let Some(Ok(_)) = inbound.next().await {} });
            tokio::spawn(async move {
                for n in 0u64.. {
                    let message = PullMessagesResponse {
                        data: vec![b'x'; 100].into(),
                        topic_name: "noop-stream".into(),
                        metadata: HashMap::new(),
                        content_type: String::new(),
                        id: n.to_string(),
                    };
                    if tx.send(Ok(message)).await.is_err() {
                        break;
                    }
                }
            });
            return Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(rx)));
        }
        let first_message = PullMessagesResponse {
            data: vec![b'x'; 100].into(),
            topic_name: "noop".into(),
            metadata: HashMap::new(),
            content_type: String::new(),
            id: "0".into(),
        };
        tx.send(Ok(first_message)).await.map_err(|_| Status::cancelled("gone"))?;
        tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(Ok(_)) = inbound.next().await {
                n += 1;
                let message = PullMessagesResponse {
                    data: vec![b'x'; 100].into(),
                    topic_name: "noop".into(),
                    metadata: HashMap::new(),
                    content_type: String::new(),
                    id: n.to_string(),
                };
                if tx.send(Ok(message)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
    async fn pause(&self, _: Request<PauseRequest>) -> Result<Response<PauseResponse>, Status> {
        Ok(Response::new(PauseResponse {}))
    }
    async fn resume(&self, _: Request<ResumeRequest>) -> Result<Response<ResumeResponse>, Status> {
        Ok(Response::new(ResumeResponse {}))
    }
    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {}))
    }
}

fn serve_noop(socket: &Path) {
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PubSubServer::new(Noop))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Messages per second for `count` receive→ack→next round trips.
async fn ping_pong(daprd: &mut Daprd, topic: &str, count: usize) -> f64 {
    let mut sub = daprd.subscribe(topic, &[]).await.unwrap();
    let first = sub.next(Duration::from_secs(30)).await.expect("first message");
    sub.ack(&first.id).await;
    let started = Instant::now();
    for _ in 1..count {
        let m = sub.next(Duration::from_secs(10)).await.expect("stalled");
        sub.ack(&m.id).await;
    }
    let rate = (count - 1) as f64 / started.elapsed().as_secs_f64();
    sub.close();
    rate
}

/// Calls per second for `rounds` × 100 concurrent Publish calls of 100 B.
async fn concurrent_publish(daprd: &Daprd, topic: &str, rounds: usize) -> f64 {
    let payload = vec![b'x'; 100];
    // Warm up: the first publish to a topic may wait for its creation (and, on the mock
    // cluster, which never answers CreateTopics, for `unknownTopicTimeout`).
    daprd.clone().publish(topic, &payload, &[]).await.unwrap();
    let started = Instant::now();
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let mut daprd = daprd.clone();
            let (payload, topic) = (payload.clone(), topic.to_owned());
            tokio::spawn(async move {
                for _ in 0..rounds {
                    daprd.publish(&topic, &payload, &[]).await.unwrap();
                }
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    (rounds * 100) as f64 / started.elapsed().as_secs_f64()
}

/// Messages per second for `calls` BulkPublish calls of 1000 × 100 B, 8 concurrent.
async fn bulk_publish(daprd: &Daprd, topic: &str, calls: usize) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mut daprd = daprd.clone();
            let topic = topic.to_owned();
            tokio::spawn(async move {
                for _ in 0..calls / 8 {
                    let entries = (0..1000).map(|i| (i.to_string(), vec![b'x'; 100], HashMap::new())).collect();
                    assert!(daprd.bulk_publish(&topic, entries).await.unwrap().is_empty());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (calls / 8 * 8 * 1000) as f64 / started.elapsed().as_secs_f64()
}

/// Messages per second of librdkafka producing `count` × 100 B with the bridge's settings.
fn direct_produce(bootstrap: &str, topic: &str, count: usize) -> f64 {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let payload = vec![b'x'; 100];
    let started = Instant::now();
    for _ in 0..count {
        let mut record = BaseRecord::<(), [u8]>::to(topic).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    count as f64 / started.elapsed().as_secs_f64()
}

/// Messages per second of a librdkafka consumer reading `count` messages of `topic` in a
/// fresh group, from the first message on.
fn direct_drain(bootstrap: &str, topic: &str, count: usize) -> f64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("direct"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut received = 0;
    let mut started = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while received < count && Instant::now() < deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            started.get_or_insert_with(Instant::now);
            received += 1;
        }
    }
    (received - 1) as f64 / started.unwrap().elapsed().as_secs_f64()
}

/// Messages per second of a daprd acking one at a time through the bridge (default bounds).
async fn bridge_drain(socket: &Path, bootstrap: &str, topic: &str, count: usize) -> f64 {
    let group = unique("drain");
    let mut daprd = Daprd::connect(socket, Some(&group)).await;
    daprd
        .init(&[
            ("brokers", bootstrap),
            ("consumerGroup", &group),
            ("initialOffset", "oldest"),
            ("kafka.fetch.wait.max.ms", "10"),
        ])
        .await
        .unwrap();
    ping_pong(&mut daprd, topic, count).await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let embedded = std::env::var("BROKERS").is_err().then(|| EmbeddedKafka::start(1).unwrap());
    let bootstrap = std::env::var("BROKERS").unwrap_or_else(|_| embedded.as_ref().unwrap().bootstrap().to_owned());
    let bridge = BridgeUnderTest::in_process(None);
    let folder = tempfile::tempdir().unwrap();
    let noop_socket = folder.path().join("noop.sock");
    serve_noop(&noop_socket);

    let topic = unique("ratios");
    let backlog = unique("backlog");
    let mut publisher = Daprd::connect(bridge.socket(), Some("publisher")).await;
    // Tansu does not create topics on produce: the bridge creates them (the mock ignores it).
    publisher
        .init(&[("brokers", &bootstrap), ("linger", "5ms"), ("autoCreateTopics", "true"), ("topicPartitions", "4")])
        .await
        .unwrap();
    // Unary Publish without a linger timer: with one, 100 callers that each wait for their
    // ack are capped at 100 / linger calls per second whatever the bridge costs.
    let mut unary = Daprd::connect(bridge.socket(), Some("unary")).await;
    unary
        .init(&[
            ("brokers", &bootstrap),
            ("linger", std::env::var("UNARY_LINGER").as_deref().unwrap_or("0ms")),
            ("autoCreateTopics", std::env::var("UNARY_CREATE").as_deref().unwrap_or("true")),
            ("topicPartitions", "4"),
        ])
        .await
        .unwrap();
    let mut noop = Daprd::connect(&noop_socket, None).await;
    noop.init(&[]).await.unwrap();
    // A backlog for the one-in-flight and drain rows.
    let drain_count: usize = std::env::var("DRAIN_COUNT").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    for _ in 0..drain_count / 1000 {
        let entries = (0..1000).map(|i| (i.to_string(), vec![b'x'; 100], HashMap::new())).collect();
        assert!(publisher.bulk_publish(&backlog, entries).await.unwrap().is_empty());
    }

    let mut rows: Vec<(&str, Vec<f64>, Vec<f64>, f64)> = vec![
        ("ack→next, one in flight (msg/s)", vec![], vec![], 0.5),
        ("100 concurrent Publish, 100 B, linger 0 (msg/s)", vec![], vec![], 0.7),
        ("BulkPublish ×1000 ×8, 100 B vs librdkafka (msg/s)", vec![], vec![], 0.8),
        ("PullMessages drain vs librdkafka consumer (msg/s)", vec![], vec![], 0.7),
        ("PullMessages drain vs a no-op stream: the gRPC limit (msg/s)", vec![], vec![], f64::NAN),
    ];
    // ROWS=0,3 measures only those rows (0-based).
    let only: Option<Vec<usize>> =
        std::env::var("ROWS").ok().map(|r| r.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    let on = |row: usize| only.as_ref().is_none_or(|o| o.contains(&row));
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        // ack→next with one message in flight.
        if on(0) {
            let group = unique("one");
            let mut one = Daprd::connect(bridge.socket(), Some(&group)).await;
            one.init(&[
                ("brokers", &bootstrap),
                ("consumerGroup", &group),
                ("initialOffset", "oldest"),
                ("maxInFlightPerStream", "1"),
            ])
            .await
            .unwrap();
            rows[0].1.push(ping_pong(&mut one, &backlog, 2000).await);
            rows[0].2.push(ping_pong(&mut noop, "noop", 2000).await);
        }
        // 100 concurrent unary Publish.
        if on(1) {
            rows[1].1.push(concurrent_publish(&unary, &topic, 100).await);
            rows[1].2.push(concurrent_publish(&noop, &topic, 100).await);
        }
        // BulkPublish against librdkafka producing directly.
        if on(2) {
            rows[2].1.push(bulk_publish(&publisher, &topic, 160).await);
            let (b, t) = (bootstrap.clone(), topic.clone());
            rows[2].2.push(tokio::task::spawn_blocking(move || direct_produce(&b, &t, 160_000)).await.unwrap());
        }
        // Drain of the backlog.
        if on(3) {
            rows[3].1.push(bridge_drain(bridge.socket(), &bootstrap, &backlog, drain_count).await);
            let (b, t) = (bootstrap.clone(), backlog.clone());
            rows[3].2.push(tokio::task::spawn_blocking(move || direct_drain(&b, &t, drain_count)).await.unwrap());
            // The same bridge figure against a stream that costs nothing to fill.
            let bridge_rate = *rows[3].1.last().unwrap();
            rows[4].1.push(bridge_rate);
            rows[4].2.push(ping_pong(&mut noop, "noop-stream", drain_count).await);
        }
    }
    println!("| row | bridge | anchor | ratio | target |");
    println!("|---|---|---|---|---|");
    for (name, bridge_rates, anchor_rates, target) in rows.into_iter().filter(|r| !r.1.is_empty()) {
        let (b, a) = (median(bridge_rates), median(anchor_rates));
        let target = if target.is_nan() { "—".to_owned() } else { format!("≥ {target}") };
        println!("| {name} | {b:.0} | {a:.0} | {:.2} | {target} |", b / a);
    }
    assert!(bridge.stop().await);
}
