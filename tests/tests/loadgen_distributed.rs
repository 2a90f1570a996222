//! Distributed load: three `kafka-loadgen sweep` worker processes against one Tansu, started
//! together by `--start-at`, then `kafka-loadgen merge`. The merged percentiles must be those
//! of the union of the workers' histograms: the test re-reads every worker's `.hlog`, adds
//! the histograms itself and compares with the merged report's numbers exactly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_loadgen::histogram::{self, Percentiles};
use kafka_loadgen::report;
use kafka_loadgen::scenario::Rate;
use testkit::{Broker, BrokerKind};

const WORKERS: u32 = 3;

/// The `kafka-loadgen` binary: `$LOADGEN_BIN`, else next to this test binary's profile
/// directory, built with cargo when missing (`cargo test -p integration-tests` does not build
/// another package's binaries).
fn loadgen_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("LOADGEN_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().and_then(Path::parent).unwrap().join("kafka-loadgen");
    if !binary.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "kafka-loadgen", "--bin", "kafka-loadgen"])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "cargo build -p kafka-loadgen failed");
    }
    assert!(binary.exists(), "{} missing: cargo build -p kafka-loadgen", binary.display());
    binary
}

/// Percentiles must match bit for bit, except the mean: it crosses JSON as a decimal, which
/// serde_json parses to within one ulp.
fn assert_same(merged: &Percentiles, union: &Percentiles, what: &str) {
    let strip = |p: &Percentiles| Percentiles { mean: 0.0, ..*p };
    assert_eq!(strip(merged), strip(union), "{what}: merged report vs union of the workers' histograms");
    assert!((merged.mean - union.mean).abs() <= union.mean.abs() * 1e-12, "{what}: mean {merged:?} vs {union:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_merge_into_the_percentiles_of_their_union() {
    let broker = Broker::start(BrokerKind::Tansu).await;
    let bootstrap = broker.bootstrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let binary = loadgen_binary();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    // Far enough ahead for three processes to start and create the first topic; a worker that
    // is late anyway only says so in its notes.
    let start_at = format!("{:.3}", (now + Duration::from_secs(6)).as_secs_f64());
    let run_id = format!("dist-{}-{}", now.as_millis(), std::process::id());

    let workers: Vec<PathBuf> = (0..WORKERS).map(|i| dir.path().join(format!("worker-{i}"))).collect();
    let children: Vec<_> = workers
        .iter()
        .enumerate()
        .map(|(i, out)| {
            Command::new(&binary)
                .args(["sweep", "--brokers", &bootstrap, "--no-progress", "--run-id", &run_id])
                .args(["--start-at", &start_at, "--step-gap", "3s", "--workers", &WORKERS.to_string()])
                .args(["--worker-index", &i.to_string(), "--out", out.to_str().unwrap()])
                .args(["--rate", "600,1500", "--keys", "rr:9", "--linger-ms", "5", "--compression", "none"])
                .args(["--partitions", "3", "--replication-factor", "1", "--min-insync-replicas", "1"])
                .args(["--message-size", "256", "--warmup", "300ms", "--duration", "2s", "--cooldown", "200ms"])
                .args(["--message-timeout", "10s"])
                .env_remove("JOB_COMPLETION_INDEX")
                .env_remove("LOADGEN_WORKERS")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("starting a worker")
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
        assert!(output.status.success(), "worker {i} failed: {}", String::from_utf8_lossy(&output.stderr));
    }

    let merged_dir = dir.path().join("merged");
    let output = Command::new(&binary)
        .arg("merge")
        .args(&workers)
        .arg("--out")
        .arg(&merged_dir)
        .output()
        .expect("running merge");
    assert!(output.status.success(), "merge failed: {}", String::from_utf8_lossy(&output.stderr));
    for file in ["results.json", "results.csv", "summary.md", "report.html", "step-001.hlog", "step-002.hlog"] {
        assert!(merged_dir.join(file).exists(), "{file} missing from the merged report");
    }

    let merged = report::load(&merged_dir.join("results.json")).unwrap();
    let results: Vec<_> = workers.iter().map(|w| report::load(&w.join("results.json")).unwrap()).collect();
    assert_eq!(merged.steps.len(), 2);
    for (s, (total_rate, step)) in [600u64, 1500].into_iter().zip(&merged.steps).enumerate() {
        assert!(step.ok(), "merged step {} failed: {:?}", step.index, step.failure);
        assert_eq!(step.config.rate, Rate::PerSecond(total_rate), "the merged step offers the whole rate");
        let mut worker_rates = Vec::new();
        for (i, r) in results.iter().enumerate() {
            let ws = &r.steps[s];
            assert!(ws.ok(), "worker {i} step {} failed: {:?}", ws.index, ws.failure);
            assert_eq!(ws.topic, step.topic, "every worker publishes to the same topic");
            let m = ws.measurement.as_ref().unwrap();
            assert!(m.produced.messages > 0, "worker {i}: {m:?}");
            // Each worker's consumer reads the shared topic but measures only its own messages.
            // Its count may pass what was acknowledged by a few: a message reported failed may
            // still have been written, and with idempotence off a retried request can write a
            // record twice (seen once in CI: 1 002 read for about 1 000 acknowledged). Another
            // worker's share would add twice as many again.
            let e2e = m.end_to_end_latency.expect("end-to-end measured");
            let ceiling = m.produced.messages + m.failed + m.produced.messages / 10;
            assert!(
                e2e.count <= ceiling,
                "worker {i} counted another worker's messages: {} read, {} acknowledged, {} failed: {e2e:?}",
                e2e.count,
                m.produced.messages,
                m.failed
            );
            let Rate::PerSecond(r) = ws.config.rate else { panic!("open loop") };
            worker_rates.push(r);
        }
        assert_eq!(worker_rates.iter().sum::<u64>(), total_rate, "the shares add up: {worker_rates:?}");

        let m = step.measurement.as_ref().unwrap();
        let log = step.histogram_log.as_deref().unwrap();
        for (tag, reported) in
            [("publish", Some(m.publish_latency)), ("end-to-end", m.end_to_end_latency), ("send-delay", m.send_delay)]
        {
            // The union, added here from the workers' own files.
            let mut union = histogram::new();
            for (w, r) in workers.iter().zip(&results) {
                let worker_log = r.steps[s].histogram_log.as_deref().unwrap();
                histogram::merge(&mut union, &histogram::read_log(&w.join(worker_log), tag).unwrap());
            }
            assert!(!union.is_empty(), "step {}: no {tag} samples", step.index);
            let union = Percentiles::of(&union);
            assert_same(&reported.expect(tag), &union, &format!("step {} {tag}", step.index));
            // The merged .hlog holds the same histogram.
            let written = Percentiles::of(&histogram::read_log(&merged_dir.join(log), tag).unwrap());
            assert_same(&written, &union, &format!("step {} {tag} (merged .hlog)", step.index));
        }
        // Every acknowledged measured message is in the union, once.
        let produced: u64 = results.iter().map(|r| r.steps[s].measurement.as_ref().unwrap().produced.messages).sum();
        assert_eq!(m.produced.messages, produced);
        assert_eq!(m.publish_latency.count, produced);
        assert_eq!(m.timeline.iter().map(|t| t.acked).sum::<u64>(), produced);
    }
}
