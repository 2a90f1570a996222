//! The load generator's subscribe side (`drain`): a backlog drained and a live phase delivered
//! through a bridge the tool spawns, with each ack behaviour, next to the direct consumer, on
//! the mock cluster and on Tansu. The nack run must show redeliveries and what reached the
//! dead-letter topic. No timed assertions: only counts, presence and report content.

use std::sync::Arc;
use std::time::Duration;

use kafka_loadgen::drain::{self, AckMode, DrainResult, DrainSpec};
use kafka_loadgen::target::DirectKafka;
use kafka_loadgen::target::component::{ComponentOptions, ComponentTarget};
use kafka_loadgen::target::process::SpawnedBridge;
use testkit::bridge::bridge_binary;
use testkit::{Broker, BrokerKind};

fn spec() -> DrainSpec {
    DrainSpec {
        messages: 400,
        message_size: 64,
        partitions: 2,
        acks: vec![AckMode::Serial, AckMode::Window(8), AckMode::Nack(10)],
        direct: true,
        live_rate: 200,
        live_duration: Duration::from_millis(500),
        handle_time: Duration::ZERO,
        max_retries: 2,
        retry_backoff: Duration::from_millis(10),
        fetch_wait_max: Duration::from_millis(10),
        idle_timeout: Duration::from_secs(30),
    }
}

fn drain_through_spawned_bridge(bootstrap: Option<String>) -> DrainResult {
    let kafka = Arc::new(match bootstrap {
        Some(b) => DirectKafka::connect(&b, Duration::from_secs(10)).unwrap(),
        None => DirectKafka::embedded(1, None).unwrap(),
    });
    let bridge = SpawnedBridge::start(&bridge_binary(), Duration::from_secs(30)).expect("the bridge starts");
    let options = ComponentOptions {
        socket: bridge.socket().to_owned(),
        instance: "loadgen-drain".into(),
        metadata: Vec::new(),
        foreign: false,
        init_timeout: Duration::from_secs(10),
        pid: None,
    };
    let component = ComponentTarget::connect(Arc::clone(&kafka), options, Some(bridge)).unwrap();
    let mut result = drain::run(&kafka, Some(&component), &spec()).expect("drain runs");
    // Topics go once the bridge is gone (deleting a subscribed topic crashes it on Tansu).
    drop(component);
    drain::cleanup(&kafka, &mut result);
    result
}

fn check(result: &DrainResult) {
    let spec = spec();
    let total = spec.messages + 100;
    let runs: Vec<(&str, &str)> = result.runs.iter().map(|r| (r.path.as_str(), r.ack.as_str())).collect();
    assert_eq!(
        runs,
        vec![("direct", "–"), ("component", "serial"), ("component", "window=8"), ("component", "nack=10%")]
    );
    for r in &result.runs {
        assert_eq!(r.status, "ok", "{} {}: {:?} {:?}", r.path, r.ack, r.failure, r.notes);
        assert_eq!(r.completed, total, "{} {}", r.path, r.ack);
        assert!(r.drain_msgs_per_sec.is_some_and(|v| v > 0.0), "{r:?}");
        let latency = r.delivery_latency.expect("live-phase delivery latency");
        assert_eq!(latency.count, 100, "{} {}", r.path, r.ack);
        assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
        assert!(!r.lag.is_empty() && r.lag.last().unwrap().lag == 0, "{:?}", r.lag);
        assert_eq!(r.lag.iter().map(|l| l.produced).max(), Some(total));
        if r.path == "component" {
            assert!(r.process.as_ref().is_some_and(|p| p.peak_rss_bytes.unwrap_or(0) > 0), "{:?}", r.process);
            assert!(r.notes.iter().any(|n| n.contains("fresh Init with") && n.contains("initialOffset=oldest")));
        }
    }
    let clean = &result.runs[1];
    assert_eq!((clean.redeliveries, clean.nacked, clean.dead_lettered), (0, 0, None));
    // nack=10%: every poison message delivered maxRetries + 1 times, then dead-lettered.
    let nack = &result.runs[3];
    assert_eq!(nack.poison, total / 10);
    assert_eq!(nack.redeliveries, nack.poison * 2, "{nack:?}");
    assert_eq!(nack.nacked, nack.poison * 3);
    assert_eq!(nack.deliveries, total + nack.poison * 2);
    assert_eq!(nack.dead_lettered, Some(nack.poison));
    assert!(nack.notes.iter().any(|n| n.contains("maxRetries=2") && n.contains("deadLetterTopic=")));

    let out = tempfile::tempdir().unwrap();
    let files = drain::write_all(result, out.path()).unwrap();
    assert_eq!(files.len(), 3);
    let md = std::fs::read_to_string(out.path().join("drain.md")).unwrap();
    assert!(md.contains("## Subscribe paths compared") && md.contains("Lag over time"), "{md}");
    assert!(md.contains(&format!("{} of {} poison", nack.poison, nack.poison)), "{md}");
    let html = std::fs::read_to_string(out.path().join("drain.html")).unwrap();
    assert!(html.contains("<h2>Subscribe paths compared") && html.contains("<table>"));
    let loaded: DrainResult =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("drain.json")).unwrap()).unwrap();
    assert_eq!(&loaded, result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_through_a_spawned_bridge_on_the_mock() {
    let result = tokio::task::spawn_blocking(|| drain_through_spawned_bridge(None)).await.unwrap();
    check(&result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_through_a_spawned_bridge_on_tansu() {
    let broker = Broker::start(BrokerKind::Tansu).await;
    let bootstrap = broker.bootstrap().to_owned();
    let result = tokio::task::spawn_blocking(move || drain_through_spawned_bridge(Some(bootstrap))).await.unwrap();
    assert!(!result.target.in_process);
    check(&result);
}
