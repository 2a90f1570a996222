//! `--target dapr` against a stand-in for daprd's HTTP API: an in-test server that implements
//! just `POST /v1.0/publish/{pubsub}/{topic}` and `POST /v1.0-alpha1/publish/bulk/{pubsub}/{topic}`
//! and forwards them to the bridge over its socket, as daprd would. Nothing here is a real
//! daprd: this checks the tool's side of the HTTP contract (routes, `rawPayload`, partition key,
//! status codes), not daprd's behaviour.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use kafka_loadgen::scenario::{PublishMode, Rate, Scenario, TargetKind};
use kafka_loadgen::sweep::{self, Silent};
use kafka_loadgen::target::dapr::DaprTarget;
use kafka_loadgen::target::{DirectKafka, Paths, Target};
use testkit::{BridgeUnderTest, Daprd};

#[derive(Default)]
struct Seen {
    unary: AtomicU64,
    bulk: AtomicU64,
    without_raw_payload: AtomicU64,
}

async fn handle(
    daprd: Arc<tokio::sync::Mutex<Daprd>>,
    seen: Arc<Seen>,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let mut daprd = daprd.lock().await;
    let path = request.uri().path().to_owned();
    let query: HashMap<String, String> = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.strip_prefix("metadata.")?.to_owned(), v.to_owned())))
        .collect();
    if query.get("rawPayload").map(String::as_str) != Some("true") {
        seen.without_raw_payload.fetch_add(1, Ordering::Relaxed);
    }
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let status =
        |code: u16, body: &str| Response::builder().status(code).body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v1.0", "publish", _pubsub, topic] => {
            seen.unary.fetch_add(1, Ordering::Relaxed);
            let metadata: Vec<(&str, &str)> =
                query.get("partitionKey").map(|k| ("partitionKey", k.as_str())).into_iter().collect();
            match daprd.publish(topic, &body, &metadata).await {
                Ok(()) => status(204, ""),
                Err(s) => status(
                    500,
                    &format!("{{\"errorCode\":\"ERR_PUBSUB_PUBLISH_MESSAGE\",\"message\":\"{}\"}}", s.code()),
                ),
            }
        }
        ["v1.0-alpha1", "publish", "bulk", _pubsub, topic] => {
            seen.bulk.fetch_add(1, Ordering::Relaxed);
            let entries: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap_or_default();
            let entries = entries
                .iter()
                .map(|e| {
                    (
                        e["entryId"].as_str().unwrap_or_default().to_owned(),
                        e["event"].as_str().unwrap_or_default().as_bytes().to_vec(),
                        HashMap::new(),
                    )
                })
                .collect();
            match daprd.bulk_publish(topic, entries).await {
                Ok(failed) if failed.is_empty() => status(200, "{\"failedEntries\":[]}"),
                Ok(failed) => {
                    let ids: Vec<String> =
                        failed.iter().map(|f| format!("{{\"entryId\":\"{}\"}}", f.entry_id)).collect();
                    status(500, &format!("{{\"failedEntries\":[{}]}}", ids.join(",")))
                }
                Err(_) => status(500, "{}"),
            }
        }
        _ => status(404, ""),
    }
}

/// Serves the two routes on a free loopback port until the test ends.
async fn fake_daprd(bridge_socket: &std::path::Path, seen: Arc<Seen>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let socket = bridge_socket.to_owned();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (socket, seen) = (socket.clone(), Arc::clone(&seen));
            tokio::spawn(async move {
                // One client per HTTP connection (HTTP/1.1 serves one request at a time on it).
                let client = Arc::new(tokio::sync::Mutex::new(Daprd::connect(&socket, Some("pubsub")).await));
                let service = hyper::service::service_fn(move |request| {
                    let (client, seen) = (Arc::clone(&client), Arc::clone(&seen));
                    async move { Ok::<_, Infallible>(handle(client, seen, request).await) }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dapr_target_publishes_through_a_stand_in_daprd() {
    let kafka = Arc::new(tokio::task::spawn_blocking(|| DirectKafka::embedded(1, None).unwrap()).await.unwrap());
    let bridge = BridgeUnderTest::in_process(None);
    // daprd initialises the component from its Component resource, once.
    let mut daprd = Daprd::connect(bridge.socket(), Some("pubsub")).await;
    daprd.init(&[("brokers", &kafka.consumer_bootstrap())]).await.unwrap();
    let seen = Arc::new(Seen::default());
    let address = fake_daprd(bridge.socket(), Arc::clone(&seen)).await;

    let mut s = Scenario { name: "dapr".into(), message_timeout: Duration::from_secs(10), ..Scenario::default() };
    s.dimensions.message_size = vec![256];
    s.dimensions.linger_ms = vec![0];
    s.dimensions.compression = vec!["none".parse().unwrap()];
    s.dimensions.partitions = vec![1];
    s.dimensions.rate = vec![Rate::PerSecond(300)];
    s.dimensions.publish = vec![PublishMode::Unary(8), PublishMode::Bulk { entries: 10, calls: 1 }];
    s.dimensions.target = vec![TargetKind::Direct, TargetKind::Dapr];
    s.phases.warmup = Duration::from_millis(200);
    s.phases.duration = Duration::from_secs(1);
    s.phases.cooldown = Duration::from_millis(100);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_owned();
    let result = tokio::task::spawn_blocking(move || {
        let dapr = DaprTarget::connect(Arc::clone(&kafka), address, "pubsub").unwrap();
        let paths = Paths::new(vec![
            (TargetKind::Direct, Box::new(Arc::clone(&kafka)) as Box<dyn Target>),
            (TargetKind::Dapr, Box::new(dapr)),
        ]);
        sweep::run(&paths, &s, &dir, &Silent).unwrap().0
    })
    .await
    .unwrap();

    let unary = result
        .steps
        .iter()
        .find(|s| s.config.target == TargetKind::Dapr && s.config.publish == PublishMode::Unary(8))
        .unwrap();
    assert!(unary.ok(), "{:?} {:?}", unary.failure, unary.notes);
    let m = unary.measurement.as_ref().unwrap();
    assert!(m.produced.messages > 0 && m.failed == 0, "{:?}", m.errors);
    // rawPayload kept the stamps: the tool's consumer found every message and read e2e latency.
    assert_eq!(m.consumed.unwrap().messages, m.produced.messages);
    assert!(m.end_to_end_latency.is_some_and(|e| e.count > 0));
    assert!(unary.notes.iter().any(|n| n.contains("do not reach the component")), "{:?}", unary.notes);
    assert!(seen.unary.load(Ordering::Relaxed) >= m.produced.messages);
    assert_eq!(seen.without_raw_payload.load(Ordering::Relaxed), 0);
    // Bulk over HTTP cannot carry the binary stamped payloads: a clear failure, not a crash.
    let bulk = result
        .steps
        .iter()
        .find(|s| s.config.target == TargetKind::Dapr && s.config.publish != PublishMode::Unary(8))
        .unwrap();
    assert!(bulk.measurement.as_ref().is_some_and(|m| m.failed > 0), "{bulk:?}");
    assert!(
        bulk.measurement.as_ref().is_some_and(|m| m.errors.contains_key("NotUtf8")),
        "{:?}",
        bulk.measurement.as_ref().map(|m| &m.errors)
    );
    // Entries that happened to be UTF-8 went through the bulk route.
    let _ = seen.bulk.load(Ordering::Relaxed);
    let md = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(md.contains("## Paths compared") && md.contains("dapr (step"), "{md}");
    assert!(bridge.stop().await);
}
