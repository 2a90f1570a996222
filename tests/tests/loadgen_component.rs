//! The load generator through a Dapr pluggable component: a `direct,component` sweep through
//! a bridge the tool spawns itself (mock cluster and Tansu), and foreign components written
//! here (one without `BULK_PUBSUB` that ignores the bridge's keys, one that implements only
//! `Publish`), which must degrade into clear step failures and notes, never a crash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dapr_kafka_proto::components::*;
use dapr_kafka_proto::{PubSub, PubSubServer};
use kafka_loadgen::report;
use kafka_loadgen::scenario::{PublishMode, Rate, Scenario, TargetKind};
use kafka_loadgen::sweep::{self, Silent, SweepResult};
use kafka_loadgen::target::component::{ComponentOptions, ComponentTarget};
use kafka_loadgen::target::process::SpawnedBridge;
use kafka_loadgen::target::{DirectKafka, Paths, Target};
use testkit::bridge::bridge_binary;
use testkit::{Broker, BrokerKind};
use tonic::{Request, Response, Status};

/// Open loop at 1000 msgs/s, 512 B, linger 0: direct, unary:20 and bulk:50x2, interleaved.
fn component_scenario() -> Scenario {
    let mut s = Scenario { name: "paths".into(), message_timeout: Duration::from_secs(10), ..Scenario::default() };
    s.dimensions.message_size = vec![512];
    s.dimensions.linger_ms = vec![0];
    s.dimensions.compression = vec!["none".parse().unwrap()];
    s.dimensions.partitions = vec![2];
    s.dimensions.rate = vec![Rate::PerSecond(1000)];
    s.dimensions.publish = vec![PublishMode::Unary(20), PublishMode::Bulk { entries: 50, calls: 2 }];
    s.dimensions.target = vec![TargetKind::Direct, TargetKind::Component];
    s.phases.warmup = Duration::from_millis(300);
    s.phases.duration = Duration::from_secs(1);
    s.phases.cooldown = Duration::from_millis(200);
    s
}

fn options(socket: &Path, foreign: bool) -> ComponentOptions {
    ComponentOptions {
        socket: socket.to_owned(),
        instance: "loadgen-test".into(),
        metadata: Vec::new(),
        foreign,
        init_timeout: Duration::from_secs(10),
        pid: None,
    }
}

/// `bootstrap` None: the embedded mock cluster.
fn sweep_through_spawned_bridge(bootstrap: Option<String>, out: &Path) -> SweepResult {
    let kafka = Arc::new(match bootstrap {
        Some(b) => DirectKafka::connect(&b, Duration::from_secs(10)).unwrap(),
        None => DirectKafka::embedded(1, None).unwrap(),
    });
    let bridge = SpawnedBridge::start(&bridge_binary(), Duration::from_secs(30)).expect("the bridge starts");
    let socket = bridge.socket().to_owned();
    let component = ComponentTarget::connect(Arc::clone(&kafka), options(&socket, false), Some(bridge)).unwrap();
    let paths = Paths::new(vec![
        (TargetKind::Direct, Box::new(Arc::clone(&kafka)) as Box<dyn Target>),
        (TargetKind::Component, Box::new(component)),
    ]);
    sweep::run(&paths, &component_scenario(), out, &Silent).expect("sweep runs").0
}

fn check_component_sweep(result: &SweepResult, out: &Path) {
    let kinds: Vec<(TargetKind, PublishMode)> =
        result.steps.iter().map(|s| (s.config.target, s.config.publish)).collect();
    // The direct step runs once (the publish dimension does not multiply it), then each mode.
    assert_eq!(
        kinds,
        vec![
            (TargetKind::Direct, PublishMode::Native),
            (TargetKind::Component, PublishMode::Unary(20)),
            (TargetKind::Component, PublishMode::Bulk { entries: 50, calls: 2 }),
        ]
    );
    for step in &result.steps {
        assert!(step.ok(), "step {} failed: {:?} {:?}", step.index, step.failure, step.notes);
        let m = step.measurement.as_ref().unwrap();
        // Every measured message acknowledged …
        assert!(m.produced.messages > 0);
        assert_eq!(m.failed, 0, "step {}: {:?}", step.index, m.errors);
        assert_eq!(m.produced.messages, m.intended, "step {}", step.index);
        // … and found in Kafka by the tool's own consumer, stamps intact.
        let consumed = m.consumed.expect("the consumer ran");
        assert_eq!(consumed.messages, m.produced.messages, "step {}: {:?}", step.index, step.notes);
        let e2e = m.end_to_end_latency.expect("end-to-end percentiles");
        assert!(e2e.count > 0 && e2e.p50 <= e2e.p99 && e2e.p99 <= e2e.max, "{e2e:?}");
        if step.config.target == TargetKind::Component {
            assert!(step.notes.iter().any(|n| n.contains("fresh Init with linger=0ms")), "{:?}", step.notes);
            let cost = step.process.as_ref().expect("the spawned bridge's cost");
            assert!(cost.peak_rss_bytes.unwrap() > 0 && cost.wall_seconds > 0.0, "{cost:?}");
        } else {
            assert!(step.process.is_none());
        }
    }
    let bulk = &result.steps[2];
    assert!(bulk.notes.iter().any(|n| n.contains("per call")), "{:?}", bulk.notes);
    let rows = report::paths::rows(result);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.direct_step == 1 && r.ratios[0].is_some() && r.ratios[2].is_some()));
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("## Paths compared") && md.contains("millicores per MB/s"), "{md}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Paths compared"));
    // The result file round-trips with the new fields.
    let loaded = report::load(&out.join("results.json")).unwrap();
    assert_eq!(loaded.steps[1].process, result.steps[1].process);
    assert!(result.target.facts.iter().any(|f| f.contains("bridge spawned by the tool")), "{:?}", result.target.facts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_sweep_through_a_spawned_bridge_on_the_mock() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_owned();
    let result = tokio::task::spawn_blocking(move || sweep_through_spawned_bridge(None, &dir)).await.unwrap();
    check_component_sweep(&result, out.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_sweep_through_a_spawned_bridge_on_tansu() {
    let broker = Broker::start(BrokerKind::Tansu).await;
    let bootstrap = broker.bootstrap().to_owned();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_owned();
    let result =
        tokio::task::spawn_blocking(move || sweep_through_spawned_bridge(Some(bootstrap), &dir)).await.unwrap();
    assert!(!result.target.in_process);
    check_component_sweep(&result, out.path());
}

/// A component that is not the bridge: `Init` records what it was given (or is not
/// implemented), `Features` is empty, `Publish` answers OK without writing anywhere, and
/// nothing else is implemented.
#[derive(Clone, Default)]
struct Foreign {
    without_init: bool,
    inits: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

#[tonic::async_trait]
impl PubSub for Foreign {
    async fn init(&self, request: Request<PubSubInitRequest>) -> Result<Response<PubSubInitResponse>, Status> {
        if self.without_init {
            return Err(Status::unimplemented("only Publish"));
        }
        self.inits.lock().unwrap().push(request.into_inner().metadata.unwrap_or_default().properties);
        Ok(Response::new(PubSubInitResponse {}))
    }
    async fn features(&self, _: Request<FeaturesRequest>) -> Result<Response<FeaturesResponse>, Status> {
        Ok(Response::new(FeaturesResponse { features: Vec::new() }))
    }
    async fn publish(&self, _: Request<PublishRequest>) -> Result<Response<PublishResponse>, Status> {
        Ok(Response::new(PublishResponse {}))
    }
    async fn bulk_publish(&self, _: Request<BulkPublishRequest>) -> Result<Response<BulkPublishResponse>, Status> {
        Err(Status::unimplemented("no bulk"))
    }
    type PullMessagesStream = futures::stream::Empty<Result<dapr_kafka_proto::EncodedPullResponse, Status>>;
    async fn pull_messages(
        &self,
        _: Request<tonic::Streaming<PullMessagesRequest>>,
    ) -> Result<Response<Self::PullMessagesStream>, Status> {
        Err(Status::unimplemented("no subscribe"))
    }
    async fn pause(&self, _: Request<PauseRequest>) -> Result<Response<PauseResponse>, Status> {
        Err(Status::unimplemented("no pause"))
    }
    async fn resume(&self, _: Request<ResumeRequest>) -> Result<Response<ResumeResponse>, Status> {
        Err(Status::unimplemented("no resume"))
    }
    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingResponse>, Status> {
        Ok(Response::new(PingResponse {}))
    }
}

/// Serves `component` with reflection v1alpha on a socket in `dir`.
async fn serve(component: Foreign, dir: &Path) -> PathBuf {
    let socket = dir.join("foreign.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(dapr_kafka_proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PubSubServer::new(component))
            .add_service(reflection)
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    socket
}

fn foreign_sweep(socket: PathBuf, out: PathBuf) -> SweepResult {
    let kafka = Arc::new(DirectKafka::embedded(1, None).unwrap());
    let component = ComponentTarget::connect(Arc::clone(&kafka), options(&socket, true), None).unwrap();
    let paths = Paths::new(vec![
        (TargetKind::Direct, Box::new(Arc::clone(&kafka)) as Box<dyn Target>),
        (TargetKind::Component, Box::new(component)),
    ]);
    let mut scenario = component_scenario();
    scenario.dimensions.rate = vec![Rate::PerSecond(200)];
    scenario.dimensions.target = vec![TargetKind::Component];
    sweep::run(&paths, &scenario, &out, &Silent).expect("the sweep finishes and writes its report").0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_component_without_bulk_degrades_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let component = Foreign::default();
    let socket = serve(component.clone(), dir.path()).await;
    let out = dir.path().join("out");
    let result = tokio::task::spawn_blocking(move || foreign_sweep(socket, out)).await.unwrap();
    assert_eq!(result.steps.len(), 2);
    // Unary: it answered every Publish, so every measured message counts as acknowledged;
    // nothing reached Kafka, so the consumer found none and the step is not sustained.
    let unary = &result.steps[0];
    assert!(unary.ok(), "{:?}", unary.failure);
    assert!(unary.notes.iter().any(|n| n.contains("foreign component: the swept settings were not sent")));
    let m = unary.measurement.as_ref().unwrap();
    assert!(m.produced.messages > 0 && m.end_to_end_latency.is_none());
    assert!(!m.verdict.as_ref().unwrap().sustained);
    // Bulk: no BULK_PUBSUB in Features, so the step fails and says why.
    let bulk = &result.steps[1];
    assert!(!bulk.ok());
    assert!(bulk.failure.as_deref().unwrap().contains("BULK_PUBSUB"), "{:?}", bulk.failure);
    // Init carried only the brokers: no bridge keys for a foreign component.
    let inits = component.inits.lock().unwrap();
    assert_eq!(inits.len(), 2);
    assert!(inits.iter().all(|p| p.contains_key("brokers") && !p.contains_key("linger")), "{inits:?}");
    assert!(result.target.facts.iter().any(|f| f.contains("component Features: none")), "{:?}", result.target.facts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_only_implements_publish_fails_each_step_at_init() {
    let dir = tempfile::tempdir().unwrap();
    let socket = serve(Foreign { without_init: true, ..Foreign::default() }, dir.path()).await;
    let out = dir.path().join("out");
    let result = tokio::task::spawn_blocking(move || foreign_sweep(socket, out)).await.unwrap();
    for step in &result.steps {
        assert!(!step.ok());
        assert!(step.failure.as_deref().unwrap().contains("Init failed (Unimplemented"), "{:?}", step.failure);
    }
    assert!(dir.path().join("out/summary.md").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_without_the_pubsub_service_is_refused_at_connect() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("other.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .unwrap();
    let (_, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(reflection)
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    let error = tokio::task::spawn_blocking(move || {
        let kafka = Arc::new(DirectKafka::embedded(1, None).unwrap());
        ComponentTarget::connect(kafka, options(&socket, true), None).err().unwrap().to_string()
    })
    .await
    .unwrap();
    assert!(error.contains("not a pub/sub pluggable component"), "{error}");
}
