//! What operators see: Prometheus metrics for the notable events, and the gRPC health service
//! that probes use.

use std::time::Duration;

use testkit::broker::free_port;
use testkit::{BridgeUnderTest, Broker, BrokerKind, Daprd, unique};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn scrape(port: u16) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body
}

fn value(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_publishes_acks_and_poison_messages_and_health_serves() {
    let broker = Broker::start(BrokerKind::Mock).await;
    let topic = unique("obs");
    broker.create_topic(&topic, 1).await;
    let port = free_port();
    let bridge = BridgeUnderTest::child(&["--metrics-addr", &format!("127.0.0.1:{port}")]);

    let mut health = HealthClient::new(testkit::daprd::channel(bridge.socket()).await);
    let status = health
        .check(HealthCheckRequest { service: dapr_kafka_proto::PUBSUB_SERVICE.into() })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);

    let mut daprd = Daprd::connect(bridge.socket(), Some("orders")).await;
    let group = unique("g");
    daprd
        .init(&[
            ("brokers", broker.bootstrap()),
            ("consumerGroup", &group),
            ("initialOffset", "oldest"),
            ("maxRetries", "0"),
            ("retryBackoff", "50ms"),
            ("commitInterval", "100ms"),
        ])
        .await
        .unwrap();
    for payload in ["good-1", "good-2", "poison"] {
        daprd.publish(&topic, payload.as_bytes(), &[]).await.unwrap();
    }
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let mut poison = 0;
    while let Some(m) = sub.next(Duration::from_secs(if poison == 0 { 30 } else { 2 })).await {
        if &m.data[..] == b"poison" {
            poison += 1;
            if poison < 3 {
                sub.nack(&m.id, "bad").await;
                continue;
            }
        }
        sub.ack(&m.id).await;
        if poison >= 3 {
            break;
        }
    }
    assert_eq!(poison, 3, "a poison message without a dead-letter topic is redelivered, never skipped");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let metrics = scrape(port).await;
    let published =
        value(&metrics, "kafka_bridge_published_records_total", &["component=\"orders\"", "outcome=\"ok\""]);
    assert_eq!(published, 3.0, "{metrics}");
    assert_eq!(value(&metrics, "kafka_bridge_acks_total", &["outcome=\"acked\""]), 3.0, "{metrics}");
    assert_eq!(value(&metrics, "kafka_bridge_acks_total", &["outcome=\"nacked\""]), 2.0, "{metrics}");
    assert_eq!(value(&metrics, "kafka_bridge_redeliveries_total", &["kind=\"exhausted\""]), 2.0, "{metrics}");
    assert_eq!(value(&metrics, "kafka_bridge_delivered_messages_total", &[]), 5.0, "{metrics}");
    assert!(value(&metrics, "kafka_bridge_commits_total", &["outcome=\"ok\""]) >= 1.0, "{metrics}");
    assert!(metrics.contains("kafka_bridge_publish_duration_seconds_bucket"), "{metrics}");
    assert!(bridge.stop().await);
}

/// A fatal producer error that every new producer hits again (here the broker answers the
/// first Produce of five producers in a row with OUT_OF_ORDER_SEQUENCE_NUMBER) does not build
/// a new client per publish: replacements are paced (the first at once, then at most one per
/// second, doubling), every publish is answered meanwhile, and the counter shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_error_that_every_new_producer_hits_paces_the_replacements() {
    use dapr_kafka_bridge::embedded::{RDKafkaApiKey, RDKafkaRespErr};
    let broker = Broker::start(BrokerKind::Mock).await;
    let topic = unique("fatal-again");
    broker.create_topic(&topic, 1).await;
    let port = free_port();
    let bridge = BridgeUnderTest::child(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    let mut daprd = Daprd::connect(bridge.socket(), None).await;
    daprd.init(&[("brokers", broker.bootstrap()), ("linger", "1ms")]).await.unwrap();
    daprd.publish(&topic, b"before", &[]).await.unwrap();
    let fatal = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER; 5];
    broker.mock().unwrap().push_request_errors(RDKafkaApiKey::Produce, &fatal).unwrap();
    let started = std::time::Instant::now();
    let mut failed = 0;
    for i in 0..6 {
        if daprd.publish(&topic, format!("during-{i}").as_bytes(), &[]).await.is_err() {
            failed += 1;
        }
    }
    let elapsed = started.elapsed();
    let rebuilds = value(&scrape(port).await, "kafka_bridge_producer_rebuilds_total", &[]);
    assert!(failed >= 1, "the fatal error failed the publish in flight");
    assert!(rebuilds >= 1.0, "the dead producer was replaced");
    // Unpaced, each of the six publishes would have built a producer and hit the next error.
    assert!(
        rebuilds <= 1.0 + elapsed.as_secs_f64().floor(),
        "{rebuilds} replacements in {elapsed:?}: at most one at once and then one per second"
    );
    assert!(bridge.stop().await);
}
