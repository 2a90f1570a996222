//! Honest numbers and the capacity search, on the mock cluster and on Tansu. No timed
//! assertions: each test compares behaviours (a throttled cluster sustains less; a step
//! offered more than it can carry is not sustained and achieves less than offered; a timed-out
//! message is an error, not a missing sample).

use std::time::Duration;

use kafka_loadgen::capacity::{self, CapacityResult, SearchSpec};
use kafka_loadgen::scenario::{Case, Count, Rate, Scenario};
use kafka_loadgen::sweep::{self, Silent, SweepResult};
use kafka_loadgen::target::{DirectKafka, Target};
use kafka_loadgen::verdict::Slo;
use testkit::{Broker, BrokerKind};

/// These tests measure rates on a 2-core machine: one at a time, so they do not measure each
/// other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One small configuration: 1 partition, no compression, short phases, no end-to-end
/// consumer (these tests are about the producer side; the consumer has its own tests). The
/// send-delay limit is loose: on a busy test machine the generator's own lateness must not
/// decide the comparison.
fn small(max_in_flight: u32) -> Scenario {
    let mut s = Scenario {
        name: "capacity-test".into(),
        max_in_flight,
        end_to_end: false,
        message_timeout: Duration::from_secs(10),
        ..Scenario::default()
    };
    let d = &mut s.dimensions;
    d.linger_ms = vec![0];
    d.compression = vec!["none".parse().unwrap()];
    d.partitions = vec![1];
    d.message_size = vec![512];
    d.replication_factor = vec![Count::N(1)];
    d.rate = vec![Rate::Max];
    s.phases.warmup = Duration::from_millis(300);
    s.phases.duration = Duration::from_secs(1);
    s.phases.cooldown = Duration::from_millis(100);
    s.pass.max_send_delay_p99 = Duration::from_millis(100);
    s
}

fn search(slo_ms: u64) -> SearchSpec {
    SearchSpec {
        slo: Slo::new(Duration::from_millis(slo_ms), None),
        budget: Duration::from_secs(90),
        repeats: 2,
        start_rate: 500,
        max_rate: 16_000,
        precision: 0.2,
    }
}

fn run_capacity(target: &dyn Target, scenario: &Scenario, spec: &SearchSpec) -> CapacityResult {
    let out = tempfile::tempdir().unwrap();
    let result = capacity::run(target, scenario, spec, None, out.path(), &|line| eprintln!("{line}")).unwrap();
    kafka_loadgen::report::capacity::write_all(&result, out.path()).unwrap();
    let back = kafka_loadgen::report::capacity::load(&out.path().join("capacity.json")).unwrap();
    assert_eq!(back.configurations.len(), result.configurations.len());
    assert!(std::fs::read_to_string(out.path().join("capacity.html")).unwrap().contains("id=\"answer\""));
    result
}

fn sustained(r: &CapacityResult) -> f64 {
    r.configurations[0].sustained_msgs_per_sec.unwrap_or(0.0)
}

fn one_step(target: &dyn Target, mut scenario: Scenario, rate: u64) -> SweepResult {
    scenario.dimensions.rate = vec![Rate::PerSecond(rate)];
    let out = tempfile::tempdir().unwrap();
    sweep::run(target, &scenario, out.path(), &Silent).unwrap().0
}

/// With one request in flight per connection, every produce waits a round trip: 25 ms of
/// injected RTT caps the rate, so the search must find less than on the plain mock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_round_trip_time_lowers_the_sustainable_rate_on_the_mock() {
    let _serial = SERIAL.lock().await;
    let (plain, slowed) = tokio::task::spawn_blocking(|| {
        let mut scenario = small(10_000);
        scenario.properties.insert("max.in.flight.requests.per.connection".into(), "1".into());
        let spec = search(200);
        let target = DirectKafka::embedded(1, None).unwrap();
        let plain = run_capacity(&target, &scenario, &spec);
        target.mock().unwrap().set_round_trip_time(Duration::from_millis(25)).unwrap();
        let slowed = run_capacity(&target, &scenario, &spec);
        (plain, slowed)
    })
    .await
    .unwrap();
    assert!(sustained(&plain) > 0.0, "{:#?}", plain.configurations);
    assert!(
        sustained(&slowed) < sustained(&plain),
        "RTT-injected {} vs plain {}",
        sustained(&slowed),
        sustained(&plain)
    );
    let failing = slowed.configurations[0].probes.iter().find(|p| !p.passed).expect("a probe failed");
    assert!(!failing.reasons.is_empty());
    // The plan was stated and the answer names the configuration.
    assert!(plain.plan.probes_per_configuration > 0);
    assert!(kafka_loadgen::report::capacity::answer(&plain).starts_with("Sustains "));
}

/// A fixed-rate step offered far beyond what a throttled cluster carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_step_above_capacity_is_not_sustained_and_achieves_less_than_offered_on_the_mock() {
    let _serial = SERIAL.lock().await;
    let result = tokio::task::spawn_blocking(|| {
        let mut scenario = small(10_000);
        scenario.properties.insert("max.in.flight.requests.per.connection".into(), "1".into());
        let target = DirectKafka::embedded(1, None).unwrap();
        target.mock().unwrap().set_round_trip_time(Duration::from_millis(25)).unwrap();
        one_step(&target, scenario, 20_000)
    })
    .await
    .unwrap();
    check_overloaded(&result, 20_000.0);
}

fn check_overloaded(result: &SweepResult, offered: f64) {
    let m = result.steps[0].measurement.as_ref().expect("measured");
    let verdict = m.verdict.as_ref().expect("open-loop steps get a verdict");
    assert!(!verdict.sustained, "{verdict:?}");
    assert!(m.produced.msgs_per_sec < offered, "achieved {} of {offered}", m.produced.msgs_per_sec);
    assert!(verdict.achieved_ratio < 0.995, "{verdict:?}");
    assert_eq!(m.offered_msgs_per_sec, Some(offered));
    // Whatever was intended and not acknowledged is accounted for.
    assert_eq!(m.intended, m.produced.messages + m.failed, "{m:?}");
}

/// Two seconds of RTT (injected as a stall) against a 500 ms delivery timeout: every measured message times out,
/// and shows up as errors and in the failure histogram, not as a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_message_shows_up_in_the_error_rate_on_the_mock() {
    let _serial = SERIAL.lock().await;
    let result = tokio::task::spawn_blocking(|| {
        let mut scenario = small(10_000);
        scenario.message_timeout = Duration::from_millis(500);
        // The round trip goes up when the measured phase starts (the topic exists by then).
        let stall = kafka_loadgen::target::Stall { after: Duration::ZERO, length: Duration::from_secs(2) };
        let target = DirectKafka::embedded(1, Some(stall)).unwrap();
        one_step(&target, scenario, 200)
    })
    .await
    .unwrap();
    let step = &result.steps[0];
    let m = step.measurement.as_ref().expect("measured even though it failed");
    assert!(m.failed > 0, "{m:?}");
    assert!(m.error_rate > 0.0, "{m:?}");
    assert!(m.errors.keys().any(|k| k.contains("TimedOut")), "{:?}", m.errors);
    let failures = m.failure_latency.expect("failures have a latency histogram");
    assert_eq!(failures.count, m.failed);
    assert!(!m.verdict.as_ref().unwrap().sustained);
}

/// On Tansu: one message in flight per producer throttles the client to one round trip per
/// message; the search must find less than with the usual window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_client_sustains_less_on_tansu() {
    let _serial = SERIAL.lock().await;
    let broker = Broker::start(BrokerKind::Tansu).await;
    let bootstrap = broker.bootstrap().to_owned();
    let (wide, throttled) = tokio::task::spawn_blocking(move || {
        let target = DirectKafka::connect(&bootstrap, Duration::from_secs(10)).unwrap();
        let mut spec = search(200);
        spec.max_rate = 8_000;
        let wide = run_capacity(&target, &small(10_000), &spec);
        let throttled = run_capacity(&target, &small(1), &spec);
        (wide, throttled)
    })
    .await
    .unwrap();
    assert!(sustained(&wide) > 0.0, "{:#?}", wide.configurations);
    assert!(
        sustained(&throttled) < sustained(&wide),
        "throttled {} vs wide {}",
        sustained(&throttled),
        sustained(&wide)
    );
    assert!(!wide.target.in_process);
    // What Tansu does with replication and min ISR is stated, not assumed.
    assert!(wide.target.facts.iter().any(|f| f.contains("message.max.bytes")), "{:?}", wide.target.facts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_step_above_capacity_is_not_sustained_on_tansu() {
    let _serial = SERIAL.lock().await;
    let broker = Broker::start(BrokerKind::Tansu).await;
    let bootstrap = broker.bootstrap().to_owned();
    let result = tokio::task::spawn_blocking(move || {
        let target = DirectKafka::connect(&bootstrap, Duration::from_secs(10)).unwrap();
        // One message in flight: about one round trip per message, far below 50 000 msgs/s.
        one_step(&target, small(1), 50_000)
    })
    .await
    .unwrap();
    check_overloaded(&result, 50_000.0);
}

/// Tansu goes away in the middle of a fixed-rate step: the measured messages that never got
/// acknowledged, and those the abandoned step never sent, are errors with a rate, not
/// silently missing. (Counting only the unacknowledged ones made this depend on whether a
/// message happened to be in flight when the broker died; at 500 msg/s often none was.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_message_shows_up_in_the_error_rate_on_tansu() {
    let _serial = SERIAL.lock().await;
    let mut broker = Broker::start(BrokerKind::Tansu).await;
    let bootstrap = broker.bootstrap().to_owned();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let runner = tokio::task::spawn_blocking(move || {
        let target = DirectKafka::connect(&bootstrap, Duration::from_secs(10)).unwrap();
        let mut scenario = small(10_000);
        scenario.message_timeout = Duration::from_millis(1500);
        scenario.phases.duration = Duration::from_secs(3);
        scenario.dimensions.rate = vec![Rate::PerSecond(500)];
        scenario.cases = vec![Case::default()];
        struct Signal(std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>);
        impl sweep::Observer for Signal {
            fn tick(&self, _index: usize, elapsed: Duration, _rate: f64) {
                if elapsed > Duration::from_millis(1200)
                    && let Some(tx) = self.0.lock().unwrap().take()
                {
                    let _ = tx.send(());
                }
            }
        }
        let out = tempfile::tempdir().unwrap();
        sweep::run(&target, &scenario, out.path(), &Signal(std::sync::Mutex::new(Some(tx)))).unwrap().0
    });
    tokio::task::spawn_blocking(move || rx.recv()).await.unwrap().unwrap();
    broker.stop();
    let result = runner.await.unwrap();
    let m = result.steps[0].measurement.as_ref().expect("a partial measurement");
    assert!(m.failed > 0, "failed {} errors {:?}", m.failed, m.errors);
    assert!(m.error_rate > 0.0);
    assert!(m.failure_latency.is_some());
}
