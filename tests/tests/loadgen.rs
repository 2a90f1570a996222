//! The load generator end to end: short sweeps against the embedded mock cluster and against
//! Tansu, coordinated omission made visible by an injected stall, and a broker that goes
//! away in the middle of a sweep.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use kafka_loadgen::report;
use kafka_loadgen::scenario::{Case, Rate, Scenario};
use kafka_loadgen::sweep::{self, Observer, Silent, SweepResult};
use kafka_loadgen::target::{DirectKafka, Stall, Target};
use testkit::{Broker, BrokerKind};

/// Three short steps: closed loop, open loop at 2000 msgs/s, and zstd on more partitions.
fn short_scenario() -> Scenario {
    let mut s = Scenario { name: "short".into(), message_timeout: Duration::from_secs(10), ..Scenario::default() };
    s.dimensions.message_size = vec![512];
    s.dimensions.rate = vec![Rate::Max];
    s.phases.warmup = Duration::from_millis(300);
    s.phases.duration = Duration::from_secs(1);
    s.phases.cooldown = Duration::from_millis(200);
    s.cases = vec![
        Case { linger_ms: Some(0), compression: Some("none".parse().unwrap()), partitions: Some(1), ..Case::default() },
        Case {
            linger_ms: Some(5),
            compression: Some("lz4".parse().unwrap()),
            partitions: Some(2),
            rate: Some(Rate::PerSecond(2000)),
            ..Case::default()
        },
        Case {
            linger_ms: Some(5),
            compression: Some("zstd:3".parse().unwrap()),
            partitions: Some(6),
            ..Case::default()
        },
    ];
    s
}

fn run(target: Box<dyn Target>, scenario: Scenario, out: &Path, observer: &dyn Observer) -> SweepResult {
    sweep::run(target.as_ref(), &scenario, out, observer).expect("sweep runs").0
}

/// `keeps_everything`: the broker keeps every message (Tansu); the mock keeps only 5 MB per
/// partition, so at full speed its consumer may find the measured messages already gone.
fn check_short_sweep(result: &SweepResult, out: &Path, keeps_everything: bool) {
    assert_eq!(result.steps.len(), 3);
    for step in &result.steps {
        assert!(step.ok(), "step {} failed: {:?}", step.index, step.failure);
        let m = step.measurement.as_ref().unwrap();
        assert!(m.produced.messages > 0, "{m:?}");
        assert_eq!(m.produced.bytes, m.produced.messages * 512);
        let p = m.publish_latency;
        assert_eq!(p.count, m.produced.messages);
        assert!(p.min <= p.p50 && p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.p999 && p.p999 <= p.max, "{p:?}");
        match m.end_to_end_latency {
            Some(e2e) => assert!(e2e.count > 0 && e2e.p50 <= e2e.max, "{e2e:?}"),
            None => {
                assert!(!keeps_everything, "the tool's consumer read the measured messages of step {}", step.index);
                assert!(step.notes.iter().any(|n| n.contains("fell behind")), "the gap is explained: {:?}", step.notes);
            }
        }
        assert!(m.librdkafka.samples > 0, "librdkafka statistics were collected: {:?}", m.librdkafka);
        assert!(m.librdkafka.avg_batch_messages.unwrap_or(0.0) >= 1.0, "{:?}", m.librdkafka);
        assert!(m.errors.keys().all(|k| k.starts_with("client:")), "no delivery errors: {:?}", m.errors);
        assert!(out.join(step.histogram_log.as_ref().unwrap()).exists());
        let payload = step.payload.as_ref().unwrap();
        assert!((payload.zstd_ratio - 3.0).abs() < 0.5, "measured compressibility {payload:?}");
    }
    // The open-loop step measures exactly rate × duration intended sends, however late they went out.
    let open = result.steps[1].measurement.as_ref().unwrap();
    assert_eq!(open.produced.messages, 2000);
    assert_eq!(open.consumed.unwrap().messages, 2000, "every measured message was read back");
    assert_eq!(open.end_to_end_latency.unwrap().count, 2000);
    assert!(open.send_delay.is_some());
    assert!(result.steps[0].measurement.as_ref().unwrap().send_delay.is_none(), "no send delay in a closed loop");

    // Every output file, parseable; `report` and `compare` work from the JSON.
    let loaded = report::load(&out.join("results.json")).unwrap();
    assert_eq!(&loaded, result);
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4);
    assert!(std::fs::read_to_string(out.join("summary.md")).unwrap().contains("## Best settings"));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("id=\"tput-p99-compression\""));
    std::fs::remove_file(out.join("report.html")).unwrap();
    kafka_loadgen::run(kafka_loadgen::cli::Command::Report { result: out.join("results.json"), out: None }).unwrap();
    assert!(out.join("report.html").exists());
    let compare = report::compare::render(result, "a", &loaded, "b");
    assert!(compare.contains("| 1.00× |"), "{compare}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_sweep_on_the_embedded_mock_cluster() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_owned();
    let result = tokio::task::spawn_blocking(move || {
        let target = Box::new(DirectKafka::embedded(3, None).unwrap());
        run(target, short_scenario(), &dir, &Silent)
    })
    .await
    .unwrap();
    assert!(result.target.in_process);
    assert!(std::fs::read_to_string(out.path().join("summary.md")).unwrap().contains("client-side costs only"));
    check_short_sweep(&result, out.path(), false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_sweep_against_tansu() {
    let broker = Broker::start(BrokerKind::Tansu).await;
    let bootstrap = broker.bootstrap().to_owned();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_owned();
    let result = tokio::task::spawn_blocking(move || {
        let target = Box::new(DirectKafka::connect(&bootstrap, Duration::from_secs(10)).unwrap());
        run(target, short_scenario(), &dir, &Silent)
    })
    .await
    .unwrap();
    assert!(!result.target.in_process);
    assert_eq!(result.target.kind, "kafka");
    assert!(!std::fs::read_to_string(out.path().join("summary.md")).unwrap().contains("client-side costs only"));
    check_short_sweep(&result, out.path(), true);
}

/// A 400 ms stall with one message in flight: the closed loop sends nothing while stalled, so
/// only one message sees it (p99 stays fast); the open loop keeps its schedule, so every
/// message intended during the stall waits, and the percentiles show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_percentiles_show_a_stall_the_closed_loop_hides() {
    let stall = Duration::from_millis(400);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_owned();
    let result = tokio::task::spawn_blocking(move || {
        let mut s = Scenario { max_in_flight: 1, end_to_end: false, ..Scenario::default() };
        s.phases.warmup = Duration::from_millis(500);
        s.phases.duration = Duration::from_secs(2);
        s.phases.cooldown = Duration::from_millis(200);
        s.dimensions.message_size = vec![256];
        s.dimensions.rate = vec![Rate::Max];
        s.cases = vec![
            Case {
                linger_ms: Some(0),
                partitions: Some(1),
                compression: Some("none".parse().unwrap()),
                ..Case::default()
            },
            Case {
                linger_ms: Some(0),
                partitions: Some(1),
                compression: Some("none".parse().unwrap()),
                rate: Some(Rate::PerSecond(500)),
                ..Case::default()
            },
        ];
        let target = Box::new(
            DirectKafka::embedded(1, Some(Stall { after: Duration::from_millis(600), length: stall })).unwrap(),
        );
        run(target, s, &dir, &Silent)
    })
    .await
    .unwrap();
    let closed = result.steps[0].measurement.as_ref().unwrap();
    let open = result.steps[1].measurement.as_ref().unwrap();
    assert!(result.steps.iter().all(|s| s.ok()), "{:?}", result.steps.iter().map(|s| &s.failure).collect::<Vec<_>>());
    let half = stall.as_micros() as u64 / 2;
    // Both runs met the stall...
    assert!(closed.publish_latency.max >= half, "closed loop saw the stall: {:?}", closed.publish_latency);
    assert!(open.publish_latency.max >= half, "open loop saw the stall: {:?}", open.publish_latency);
    // ...but only the open loop's percentiles admit it.
    assert!(closed.publish_latency.p99 < half, "closed loop hides it: {:?}", closed.publish_latency);
    assert!(open.publish_latency.p99 >= half, "open loop shows it: {:?}", open.publish_latency);
    assert!(open.send_delay.unwrap().max >= half / 2, "sends fell behind schedule: {:?}", open.send_delay);
    assert_eq!(open.intended, 1000, "every intended message was measured");
    assert_eq!(open.produced.messages + open.failed, 1000, "acknowledged or failed: {open:?}");
    eprintln!("open loop: {} acked, {} failed, {:?}", open.produced.messages, open.failed, open.errors);
}

/// Kills Tansu in the middle of step 2.
struct BreakBroker(Mutex<Option<Broker>>);

impl Observer for BreakBroker {
    fn tick(&self, index: usize, elapsed: Duration, _rate: f64) {
        if index == 1 && elapsed > Duration::from_millis(600) {
            if let Some(mut broker) = self.0.lock().unwrap().take() {
                broker.stop();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_goes_away_fails_its_steps_and_the_sweep_goes_on() {
    let broker = Broker::start(BrokerKind::Tansu).await;
    let bootstrap = broker.bootstrap().to_owned();
    let observer = BreakBroker(Mutex::new(Some(broker)));
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_owned();
    let result = tokio::task::spawn_blocking(move || {
        let mut s = Scenario { message_timeout: Duration::from_secs(3), ..Scenario::default() };
        s.phases.warmup = Duration::from_millis(300);
        s.phases.duration = Duration::from_secs(1);
        s.phases.cooldown = Duration::from_millis(100);
        s.dimensions.linger_ms = vec![0, 5, 10];
        s.dimensions.batch_size = vec![16_384];
        s.dimensions.compression = vec!["none".parse().unwrap()];
        s.dimensions.rate = vec![Rate::PerSecond(1000)];
        let target = Box::new(DirectKafka::connect(&bootstrap, Duration::from_secs(3)).unwrap());
        run(target, s, &dir, &observer)
    })
    .await
    .unwrap();
    let status: Vec<&str> = result.steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(status, ["ok", "failed", "failed"], "{:?}", result.steps.iter().map(|s| &s.failure).collect::<Vec<_>>());
    for failed in &result.steps[1..] {
        let reason = failed.failure.as_deref().unwrap();
        assert!(!reason.is_empty());
    }
    assert!(result.steps[2].failure.as_deref().unwrap().contains("topic"), "{:?}", result.steps[2].failure);
    let md = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(md.contains("## Failed steps"), "{md}");
    assert!(md.contains("2 step(s) failed"), "{md}");
}
