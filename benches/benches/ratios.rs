//! The bridge next to its physical limits, measured side by side in one run (issue 10). Each
//! row pairs the bridge's figure with an anchor on the same machine and prints the ratio:
//!
//! | row | bridge | anchor |
//! |---|---|---|
//! | 0 ack→next, one in flight | PullMessages with `maxInFlightPerStream: 1` | a no-op PubSub server answering each ack with the next message over the same kind of socket |
//! | 1 100 concurrent Publish | 100 B Publish ×100 concurrent into Kafka | the same calls to a no-op Publish handler |
//! | 2 BulkPublish ×1000 | 800 calls of 1000 × 100 B, 8 concurrent | `rdkafka_performance` (`RDKAFKA_PERFORMANCE`), else librdkafka in process: 800 k × 100 B, same linger, acks, idempotence, timed once its producer is ready |
//! | 3 PullMessages drain | a daprd acking one at a time, default prefetch | a librdkafka consumer draining the same backlog |
//! | 4 publish latency | `kafka-loadgen` at `LATENCY_RATE` (10 k) msg/s open loop, `LATENCY_SECONDS` (10) per target, through the bridge binary | the same step straight to Kafka; and the same calls to the no-op Publish handler (the gRPC floor: what any component beside daprd adds at least) |
//!
//! The bridge of rows 0 to 3 is the release binary in a process of its own, as beside daprd,
//! and so is the no-op server (this bench run again, with the bridge's runtime threads); the
//! daprd-like client runs here, on two runtime threads.
//!
//! Rows are interleaved (bridge, anchor, bridge, anchor, ...) `ROUNDS` times (3) and the
//! medians compared; row 4 prints the p50 and p99 publish latency the bridge adds (the median
//! of each round's difference). Then a second table, memory (rows 5 and 6, skipped with
//! `SKIP_MEMORY=1`): the bridge binary as a child process, its RSS sampled from `/proc`, under
//! a sustained BulkPublish load (`MEMORY_RATE`, 100 k msg/s, for `MEMORY_SECONDS`, 30) and
//! with a slow daprd (one ack per ms, for `BACKLOG_SECONDS`, 60) on a backlog of `BACKLOG`
//! (1 M) × 100 B.
//!
//! Brokers: `BROKERS` (e.g. Tansu, as `benches/bridge-vs-direct.sh` starts it), else the
//! in-process mock cluster. `ROWS=0,4` measures only those rows. Row 4 needs `kafka-loadgen`
//! (`LOADGEN`, else next to the bridge binary in the release directory) and rows 4 to 6 the
//! release bridge binary (`BRIDGE_BIN`, else `target/release/kafka-pubsub-bridge`):
//! `cargo build --release -p kafka-loadgen -p dapr-kafka-bridge` first.
//!
//! Run: `benches/bridge-vs-direct.sh`, or `cargo bench -p benches --bench ratios`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dapr_kafka_bridge::embedded::EmbeddedKafka;
use dapr_kafka_proto::components::*;
use dapr_kafka_proto::encoded::BodyWriter;
use dapr_kafka_proto::{EncodedPullResponse, PubSub, PubSubServer};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use testkit::{BridgeUnderTest, Daprd, unique};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// The bridge binary's allocator, so the bridge in this process runs as it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A 100 B message as the no-op service sends it: encoded per message, as the bridge
/// encodes each record it delivers (and as a generated server encodes its structs).
fn noop_message(topic: &str, n: u64) -> EncodedPullResponse {
    let mut body = BodyWriter::with_capacity(128);
    body.data(&[b'x'; 100]).topic_name(topic);
    EncodedPullResponse::new(body.finish(), n.to_string())
}

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
    type PullMessagesStream = tokio_stream::wrappers::ReceiverStream<Result<EncodedPullResponse, Status>>;
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
                    if tx.send(Ok(noop_message("noop-stream", n))).await.is_err() {
                        break;
                    }
                }
            });
            return Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(rx)));
        }
        tx.send(Ok(noop_message("noop", 0))).await.map_err(|_| Status::cancelled("gone"))?;
        tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(Ok(_)) = inbound.next().await {
                n += 1;
                if tx.send(Ok(noop_message("noop", n))).await.is_err() {
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

/// Set in the environment of this bench re-run as the no-op server (the socket to serve).
const NOOP_SOCKET_ENV: &str = "RATIOS_NOOP_SOCKET";

/// Threads of a server's runtime: the bridge binary's default (half the CPUs, rounded up),
/// for the no-op server too, so both sides of a row run the same way.
fn server_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from).div_ceil(2)
}

/// This process as the no-op server: serves `socket` until killed.
fn run_noop_server(socket: &Path) {
    if let Ok(filter) = std::env::var("RATIOS_NOOP_LOG") {
        let _ = dapr_kafka_bridge::telemetry::init(&filter, dapr_kafka_bridge::cli::LogFormat::Text);
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(server_threads()).enable_all().build().unwrap();
    runtime.block_on(async {
        let listener = tokio::net::UnixListener::bind(socket).unwrap();
        // Reflection, as daprd (and kafka-loadgen's component target) asks for it first.
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(dapr_kafka_proto::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .unwrap();
        tonic::transport::Server::builder()
            .initial_connection_window_size(dapr_kafka_bridge::server::CONNECTION_WINDOW)
            .add_service(reflection)
            .add_service(PubSubServer::new(Noop))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
            .await
            .unwrap();
    });
}

/// The no-op server in a process of its own (this bench, re-run), as the bridge binary runs
/// beside daprd: the client's CPU and the server's are not one runtime's.
struct NoopServer(std::process::Child);

impl NoopServer {
    fn spawn(socket: &Path) -> Self {
        let child = Command::new(std::env::current_exe().unwrap())
            .env(NOOP_SOCKET_ENV, socket)
            .spawn()
            .expect("starting the no-op server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "the no-op server did not bind {}", socket.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        Self(child)
    }
}

impl Drop for NoopServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

/// Messages per second of librdkafka itself with 100 senders that each wait for their
/// delivery report before sending again (linger 0, acks all, idempotence): what Kafka allows
/// the 100-concurrent-Publish row, without gRPC and the bridge.
async fn direct_concurrent_publish(bootstrap: &str, topic: &str, rounds: usize) -> f64 {
    let producer: rdkafka::producer::FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let payload = vec![b'x'; 100];
    let send = |producer: &rdkafka::producer::FutureProducer, payload: &[u8]| {
        let record = rdkafka::producer::FutureRecord::<(), [u8]>::to(topic).payload(payload);
        let delivery = producer.send_result(record).map_err(|_| "queue full").unwrap();
        async move { delivery.await.unwrap().map_err(|(e, _)| e).unwrap() }
    };
    send(&producer, &payload).await; // warm: producer id, connection, metadata
    let started = Instant::now();
    let senders: Vec<_> = (0..100)
        .map(|_| async {
            for _ in 0..rounds {
                send(&producer, &payload).await;
            }
        })
        .collect();
    futures::future::join_all(senders).await;
    (rounds * 100) as f64 / started.elapsed().as_secs_f64()
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

/// Messages per second of librdkafka producing `count` × 100 B with the bridge's settings,
/// timed once the producer is warm (one message delivered: connections up and the
/// idempotent producer's id assigned, as the bridge's producer is by the time it is measured).
fn direct_produce(bootstrap: &str, topic: &str, count: usize) -> f64 {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let payload = vec![b'x'; 100];
    producer.send(BaseRecord::<(), [u8]>::to(topic).payload(&payload)).map_err(|(e, _)| e).unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
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

/// Messages per second of `rdkafka_performance` producing `count` × 100 B into `topic` with
/// the bridge's producer settings (linger 5 ms, acks all, idempotence), as a child process.
///
/// `-u -i 20` prints a table row every 20 ms and a last one once the last delivery report is
/// in: `elapsed` ms since the first produce call, `dr` messages delivered without error,
/// `dr_err` failed. A fresh idempotent producer delivers nothing for its first ~500 ms
/// (librdkafka retries the producer-id request on a 500 ms timer while the broker connection
/// comes up) while its queue fills; the bridge's producer is warm by then. So the rate counts
/// from the first row with deliveries to the last delivery report, which leaves out the
/// start-up and the burst of the queue filled meanwhile. A run that delivered fewer than
/// `count` panics.
fn perf_produce(perf: &Path, bootstrap: &str, topic: &str, count: usize, queue: Option<usize>) -> f64 {
    let settings = ["linger.ms=5", "acks=all", "enable.idempotence=true"];
    let mut command = Command::new(perf);
    command.args(["-P", "-u", "-i", "20", "-t", topic, "-b", bootstrap, "-s", "100", "-c", &count.to_string()]);
    for setting in settings {
        command.args(["-X", setting]);
    }
    if let Some(queue) = queue {
        command.args(["-X", &format!("queue.buffering.max.messages={queue}")]);
    }
    let output = command.output().expect("starting rdkafka_performance");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // | elapsed | msgs | bytes | rtt | dr | dr_m/s | dr_MB/s | dr_err | tx_err | outq | offset |
    let rows: Vec<(f64, usize, u64)> = stdout
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((cols.get(1)?.parse().ok()?, cols.get(5)?.parse().ok()?, cols.get(8)?.parse().ok()?))
        })
        .collect();
    let &(end, delivered, failed) =
        rows.last().unwrap_or_else(|| panic!("no summary from rdkafka_performance: {stdout}"));
    // Its exit code compares two counters that can disagree after a clean run (it has exited
    // 1 with all 800 000 delivered): the table decides; a signal (no code) is a crash.
    assert!(
        output.status.code().is_some() && delivered == count && failed == 0,
        "rdkafka_performance delivered {delivered} of {count} ({failed} failed): {stdout}"
    );
    let &(first, first_delivered, _) =
        rows.iter().find(|r| r.1 > 0 && r.0 < end).unwrap_or_else(|| panic!("too few rows to time: {stdout}"));
    (delivered - first_delivered) as f64 / ((end - first) / 1000.0)
}

/// Publish latency percentiles (µs), `[p50, p99]`, of one round of row 4: straight to
/// Kafka, through the bridge, and through a no-op Publish handler (the gRPC floor).
struct Latencies {
    direct: [f64; 2],
    component: [f64; 2],
    floor: [f64; 2],
}

/// Where a `kafka-loadgen` sweep of row 4 sends its component steps.
enum Through<'a> {
    /// The bridge binary, which the tool starts as a child process on a private socket; the
    /// sweep runs `direct,component`, interleaved by the tool.
    Bridge(&'a Path),
    /// A PubSub server already listening on this socket (the no-op server): `component` only.
    Socket(&'a Path),
}

/// One `kafka-loadgen` sweep at `rate` msg/s open loop, 100 B, linger 5 ms, acks all and
/// idempotence, as `through` says. `brokers`: a real broker; `None` is the tool's own
/// in-process mock cluster (the mock serves no CreateTopics, and the tool makes a topic per
/// step). Publish latency runs from each message's intended send time to its
/// acknowledgement; Tansu does not wake waiting fetches, so end-to-end latency would measure
/// `fetch.wait.max.ms` and is not taken. Returns `[p50, p99]` by target name.
fn loadgen_latency(
    loadgen: &Path,
    through: Through<'_>,
    brokers: Option<&str>,
    rate: u64,
    seconds: u64,
    out: &Path,
) -> HashMap<String, [f64; 2]> {
    let mut command = Command::new(loadgen);
    command.arg("sweep");
    match through {
        Through::Bridge(bridge) => {
            command.args(["--spawn-bridge", "--bridge-bin"]).arg(bridge).args(["--target", "direct,component"])
        }
        Through::Socket(socket) => command.arg("--socket").arg(socket).args(["--target", "component"]),
    };
    if let Some(brokers) = brokers {
        command.args(["--brokers", brokers]);
    }
    let output = command
        .args(["--rate", &rate.to_string()])
        .args(["--linger-ms", "5", "--acks", "all", "--idempotence", "true", "--compression", "none"])
        .args(["--partitions", "4", "--message-size", "100", "--producers", "1"])
        // Enough concurrent calls that the generator never waits for a free one at this rate.
        .args(["--publish", "unary:1000", "--warmup", "1s", "--duration", &format!("{seconds}s"), "--cooldown", "0s"])
        .args(["--no-end-to-end", "--no-progress", "--name", "ratios-latency", "--out"])
        .arg(out)
        .env_remove("LOADGEN_BROKERS")
        .output()
        .expect("starting kafka-loadgen");
    assert!(output.status.success(), "kafka-loadgen failed: {}", String::from_utf8_lossy(&output.stderr));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).expect("results.json");
    let mut latencies = HashMap::new();
    for step in results["steps"].as_array().unwrap() {
        assert_eq!(step["status"], "ok", "kafka-loadgen step failed: {}", step["failure"]);
        let p = &step["measurement"]["publish_latency"];
        let target = step["config"]["target"].as_str().expect("a target").to_owned();
        latencies.insert(target, [p["p50"].as_f64().unwrap(), p["p99"].as_f64().unwrap()]);
    }
    latencies
}

/// `field` (`VmRSS`, `VmHWM`) of process `pid`, bytes.
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let line = status.lines().find(|l| l.starts_with(field)).expect("field in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Samples a process's RSS every 100 ms until stopped.
struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(Duration, u64)>>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut samples = vec![];
            while !flag.load(Ordering::Relaxed) {
                samples.push((started.elapsed(), proc_status(pid, "VmRSS")));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        });
        Self { stop, task }
    }

    async fn finish(self) -> Vec<(Duration, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// One row of the memory table.
struct MemoryRow {
    name: String,
    load: String,
    idle: u64,
    start: u64,
    /// RSS 10 s before the end: the end minus this says whether it still grows.
    late: u64,
    end: u64,
    peak: u64,
    every_5s: Vec<u64>,
}

impl MemoryRow {
    /// From RSS samples (time since sampling began): `start` is the RSS at `warm` (2 s into
    /// the load: buffers, pools and librdkafka's queues fill in the first seconds), `end` the
    /// last sample, `peak` the process's VmHWM.
    fn new(name: String, load: String, idle: u64, samples: &[(Duration, u64)], warm: Duration, peak: u64) -> Self {
        let at = |t: Duration| samples.iter().find(|s| s.0 >= t).or(samples.last()).map_or(0, |s| s.1);
        let last = samples.last().map_or(Duration::ZERO, |s| s.0);
        let mut every_5s = vec![];
        for (t, rss) in samples {
            if t.as_secs_f64() >= 5.0 * every_5s.len() as f64 {
                every_5s.push(*rss);
            }
        }
        Self {
            name,
            load,
            idle,
            start: at(warm),
            late: at(last.saturating_sub(Duration::from_secs(10)).max(warm)),
            end: at(last),
            peak,
            every_5s,
        }
    }

    fn print(&self) {
        let mb = |b: u64| b as f64 / 1e6;
        // Flat: over the last 10 s the RSS grew by at most 2 % of it, or 1 MB.
        let late = mb(self.end) - mb(self.late);
        let verdict = if late <= (0.02 * mb(self.end)).max(1.0) { "flat" } else { "still growing" };
        let timeline: Vec<String> = self.every_5s.iter().map(|b| format!("{:.0}", mb(*b))).collect();
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {verdict}: {late:+.1} MB in the last 10 s, {:+.1} MB since 2 s in |",
            self.name,
            self.load,
            mb(self.idle),
            mb(self.start),
            mb(self.end),
            mb(self.peak),
            timeline.join(" → "),
            mb(self.end) - mb(self.start),
        );
    }
}

/// The bridge binary as a child, its RSS sampled while BulkPublish calls of 1000 × 100 B
/// arrive at `rate` msg/s (up to 16 calls in flight; the achieved rate is reported).
async fn memory_under_publish(embedded: Option<&EmbeddedKafka>, bootstrap: &str, rate: u64, seconds: u64) -> MemoryRow {
    let bridge = BridgeUnderTest::child(&[]);
    let pid = bridge.pid().unwrap();
    let topic = unique("memory-publish");
    let mut daprd = Daprd::connect(bridge.socket(), Some("memory")).await;
    daprd.init(&publisher_metadata(embedded, &[&topic], bootstrap, "5ms")).await.unwrap();
    // The topic exists before the clock starts.
    let one = vec![("0".to_owned(), vec![b'x'; 100], HashMap::new())];
    assert!(daprd.bulk_publish(&topic, one).await.unwrap().is_empty());
    let idle = proc_status(pid, "VmRSS");

    let calls = Arc::new(tokio::sync::Semaphore::new(16));
    let delivered = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1000.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let sampler = RssSampler::start(pid);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let permit = calls.clone().acquire_owned().await.unwrap();
        let (mut daprd, topic, delivered) = (daprd.clone(), topic.clone(), delivered.clone());
        tokio::spawn(async move {
            let entries = (0..1000).map(|i| (i.to_string(), vec![b'x'; 100], HashMap::new())).collect();
            assert!(daprd.bulk_publish(&topic, entries).await.unwrap().is_empty());
            delivered.fetch_add(1000, Ordering::Relaxed);
            drop(permit);
        });
    }
    let _ = calls.acquire_many(16).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let samples = sampler.finish().await;
    let peak = proc_status(pid, "VmHWM");
    assert!(bridge.stop().await);
    let achieved = delivered.load(Ordering::Relaxed) as f64 / elapsed;
    MemoryRow::new(
        format!("sustained BulkPublish, {} k msg/s offered, 100 B", rate / 1000),
        format!("{:.0} k msg/s achieved for {elapsed:.0} s", achieved / 1000.0),
        idle,
        &samples,
        Duration::from_secs(2),
        peak,
    )
}

/// A backlog of `backlog` × 100 B (produced straight to Kafka), then the bridge binary as a
/// child with a slow daprd on it: one stream acking one message per millisecond, for
/// `seconds`. The bridge may prefetch, but only up to its bounds.
async fn memory_under_backlog(
    publisher: &mut Daprd,
    embedded: Option<&EmbeddedKafka>,
    bootstrap: &str,
    backlog: usize,
    seconds: u64,
) -> MemoryRow {
    let topic = unique("memory-backlog");
    // The mock cluster keeps about 5 MB per partition: spread the backlog thin there.
    let partitions = match embedded {
        Some(mock) => {
            mock.create_topic(&topic, 64).unwrap();
            64
        }
        None => {
            // The in-process bridge creates the topic (Tansu does not create topics on produce).
            let one = vec![("0".to_owned(), vec![b'x'; 100], HashMap::new())];
            assert!(publisher.bulk_publish(&topic, one).await.unwrap().is_empty());
            4
        }
    };
    let (b, t) = (bootstrap.to_owned(), topic.clone());
    let rate = tokio::task::spawn_blocking(move || direct_produce(&b, &t, backlog)).await.unwrap();
    eprintln!("backlog of {backlog} produced at {rate:.0} msg/s");

    let bridge = BridgeUnderTest::child(&[]);
    let pid = bridge.pid().unwrap();
    let group = unique("slow");
    let mut daprd = Daprd::connect(bridge.socket(), Some(&group)).await;
    daprd
        .init(&[
            ("brokers", bootstrap),
            ("consumerGroup", &group),
            ("initialOffset", "oldest"),
            // Tansu completes a join after about half the session timeout.
            ("sessionTimeout", "6000"),
            ("heartbeatInterval", "1000"),
        ])
        .await
        .unwrap();
    let idle = proc_status(pid, "VmRSS");
    let sampler = RssSampler::start(pid);
    let started = Instant::now();
    let mut sub = daprd.subscribe(&topic, &[]).await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut acked = 0u64;
    // The load starts with the first message (after the group join); it runs `seconds` from there.
    let mut first: Option<Duration> = None;
    loop {
        let now = started.elapsed();
        match first {
            Some(f) if now >= f + Duration::from_secs(seconds) => break,
            None => assert!(now < Duration::from_secs(60), "no message from the backlog within 60 s"),
            _ => {}
        }
        let Some(m) = sub.next(Duration::from_secs(1)).await else { continue };
        first.get_or_insert(started.elapsed());
        tick.tick().await;
        sub.ack(&m.id).await;
        acked += 1;
    }
    let samples = sampler.finish().await;
    let peak = proc_status(pid, "VmHWM");
    sub.close();
    assert!(bridge.stop().await);
    let first = first.unwrap();
    MemoryRow::new(
        format!("{} k × 100 B backlog, {partitions} partitions, daprd acking 1 per ms", backlog / 1000),
        format!("{acked} acked in {seconds} s from the first message ({:.1} s after subscribing)", first.as_secs_f64()),
        idle,
        &samples,
        first + Duration::from_secs(2),
        peak,
    )
}

/// Init metadata of a publishing instance with `linger`, whose `topics` exist with 4
/// partitions. Tansu does not create topics on produce: the bridge creates them
/// (`autoCreateTopics`). The mock cluster serves no CreateTopics (the bridge's attempt would
/// time out on the first publish): the topics are created in the mock directly.
fn publisher_metadata<'a>(
    embedded: Option<&EmbeddedKafka>,
    topics: &[&str],
    bootstrap: &'a str,
    linger: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut metadata = vec![("brokers", bootstrap), ("linger", linger)];
    match embedded {
        Some(mock) => topics.iter().for_each(|t| mock.create_topic(t, 4).unwrap()),
        None => metadata.extend([("autoCreateTopics", "true"), ("topicPartitions", "4")]),
    }
    metadata
}

/// Messages per round of the BulkPublish row, on each side.
const BULK_MESSAGES: usize = 800_000;

/// Where a binary is: `$var`, else `name` in the directory of the bridge binary (the release
/// directory when benches run from `cargo bench`).
fn binary(var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join(name);
    path.exists().then_some(path)
}

fn env_or<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    if let Some(socket) = std::env::var_os(NOOP_SOCKET_ENV) {
        return run_noop_server(Path::new(&socket));
    }
    // The client's runtime (the daprd side of every row).
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(run());
}

async fn run() {
    let rounds: usize = env_or("ROUNDS", 3);
    let embedded = std::env::var("BROKERS").is_err().then(|| EmbeddedKafka::start(1).unwrap());
    let bootstrap = std::env::var("BROKERS").unwrap_or_else(|_| embedded.as_ref().unwrap().bootstrap().to_owned());
    let perf = std::env::var_os("RDKAFKA_PERFORMANCE").map(PathBuf::from);
    let loadgen = binary("LOADGEN", "kafka-loadgen");
    let bridge_binary = binary("BRIDGE_BIN", "kafka-pubsub-bridge");
    let has_bridge_binary = bridge_binary.is_some();
    // Rows 0 to 3: the bridge binary beside the client, as beside daprd (in this process
    // when it is not built).
    let bridge = if has_bridge_binary {
        BridgeUnderTest::child(&[])
    } else {
        eprintln!("no bridge binary: rows 0 to 3 run the bridge in this process, on the client's runtime");
        BridgeUnderTest::in_process(None)
    };
    let folder = tempfile::tempdir().unwrap();
    let noop_socket = folder.path().join("noop.sock");
    let _noop_server = NoopServer::spawn(&noop_socket);

    let topic = unique("ratios");
    let backlog = unique("backlog");
    let mut publisher = Daprd::connect(bridge.socket(), Some("publisher")).await;
    publisher.init(&publisher_metadata(embedded.as_ref(), &[&topic, &backlog], &bootstrap, "5ms")).await.unwrap();
    // Unary Publish without a linger timer: with one, 100 callers that each wait for their
    // ack are capped at 100 / linger calls per second whatever the bridge costs.
    let mut unary = Daprd::connect(bridge.socket(), Some("unary")).await;
    unary.init(&publisher_metadata(embedded.as_ref(), &[], &bootstrap, "0ms")).await.unwrap();
    let mut noop = Daprd::connect(&noop_socket, None).await;
    noop.init(&[]).await.unwrap();

    // ROWS=0,4 measures only those rows (0-based; 5 and 6 are the memory rows).
    let only: Option<Vec<usize>> =
        std::env::var("ROWS").ok().map(|r| r.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    let skip_memory = std::env::var("SKIP_MEMORY").is_ok_and(|v| !v.is_empty() && v != "0");
    let on = |row: usize| only.as_ref().is_none_or(|o| o.contains(&row)) && !(skip_memory && row >= 5);

    // A backlog for the one-in-flight and drain rows.
    let drain_count: usize = env_or("DRAIN_COUNT", 20_000);
    if on(0) || on(3) {
        for _ in 0..drain_count / 1000 {
            let entries = (0..1000).map(|i| (i.to_string(), vec![b'x'; 100], HashMap::new())).collect();
            assert!(publisher.bulk_publish(&backlog, entries).await.unwrap().is_empty());
        }
    }

    let bulk_anchor = if perf.is_some() { "rdkafka_performance" } else { "librdkafka in process" };
    let mut rows: Vec<(String, Vec<f64>, Vec<f64>, f64)> = vec![
        ("ack→next, one in flight (msg/s)".into(), vec![], vec![], 0.5),
        ("100 concurrent Publish, 100 B, linger 0 (msg/s)".into(), vec![], vec![], 0.7),
        (format!("BulkPublish ×1000 ×8, 100 B vs {bulk_anchor} (msg/s)"), vec![], vec![], 0.8),
        ("PullMessages drain vs librdkafka consumer (msg/s)".into(), vec![], vec![], 0.7),
        // Measured with row 3: the same drain against a no-op stream (no target).
        ("PullMessages drain vs a no-op stream: the gRPC limit (msg/s)".into(), vec![], vec![], f64::NAN),
        // Measured with row 1: the same calls against librdkafka with 100 waiting senders.
        (
            "100 concurrent Publish vs librdkafka, 100 waiting senders: Kafka's limit (msg/s)".into(),
            vec![],
            vec![],
            f64::NAN,
        ),
        // Measured with row 2: rdkafka_performance holding at most the 8 000 messages the
        // bulk callers have in flight (no target).
        (
            "BulkPublish vs rdkafka_performance with 8 000 messages queued at most (msg/s)".into(),
            vec![],
            vec![],
            f64::NAN,
        ),
    ];
    // Row 4: kafka-loadgen, which starts the bridge binary as a child per sweep.
    let latency_rate: u64 = env_or("LATENCY_RATE", 10_000);
    let latency_seconds: u64 = env_or("LATENCY_SECONDS", 10);
    let latency_tools = match (&loadgen, &bridge_binary) {
        (Some(loadgen), Some(bridge)) if on(4) => Some((loadgen.clone(), bridge.clone())),
        _ if on(4) => {
            eprintln!(
                "row 4 skipped: build kafka-loadgen and the bridge (cargo build --release -p kafka-loadgen -p dapr-kafka-bridge)"
            );
            None
        }
        _ => None,
    };
    let mut latencies: Vec<Latencies> = vec![];
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
            // The same bridge figure against librdkafka with 100 waiting senders.
            let bridge_rate = *rows[1].1.last().unwrap();
            rows[5].1.push(bridge_rate);
            rows[5].2.push(direct_concurrent_publish(&bootstrap, &topic, 100).await);
        }
        // BulkPublish against librdkafka producing directly: rdkafka_performance when given.
        if on(2) {
            rows[2].1.push(bulk_publish(&publisher, &topic, BULK_MESSAGES / 1000).await);
            let (b, t, p) = (bootstrap.clone(), topic.clone(), perf.clone());
            rows[2].2.push(
                tokio::task::spawn_blocking(move || match p {
                    Some(perf) => perf_produce(&perf, &b, &t, BULK_MESSAGES, None),
                    None => direct_produce(&b, &t, BULK_MESSAGES),
                })
                .await
                .unwrap(),
            );
            // The same against rdkafka_performance with no more messages in its queue than
            // the 8 callers have in flight: what librdkafka makes of that much concurrency.
            if let Some(perf) = perf.clone() {
                let bridge_rate = *rows[2].1.last().unwrap();
                rows[6].1.push(bridge_rate);
                let (b, t) = (bootstrap.clone(), topic.clone());
                rows[6].2.push(
                    tokio::task::spawn_blocking(move || perf_produce(&perf, &b, &t, BULK_MESSAGES, Some(8 * 1000)))
                        .await
                        .unwrap(),
                );
            }
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
        // Publish latency, direct and through the bridge, interleaved by kafka-loadgen.
        if let Some((loadgen, bridge_bin)) = latency_tools.clone() {
            let brokers = embedded.is_none().then(|| bootstrap.clone());
            let (bridged, floor) =
                (folder.path().join(format!("latency-{round}")), folder.path().join(format!("floor-{round}")));
            let noop_socket = noop_socket.clone();
            let l = tokio::task::spawn_blocking(move || {
                let sweep = |through, out: &Path| {
                    loadgen_latency(&loadgen, through, brokers.as_deref(), latency_rate, latency_seconds, out)
                };
                let bridged = sweep(Through::Bridge(&bridge_bin), &bridged);
                let floor = sweep(Through::Socket(&noop_socket), &floor);
                Latencies { direct: bridged["direct"], component: bridged["component"], floor: floor["component"] }
            })
            .await
            .unwrap();
            eprintln!(
                "publish latency p50/p99 µs: direct {:.0}/{:.0}, through the bridge {:.0}/{:.0}, to a no-op handler {:.0}/{:.0}",
                l.direct[0], l.direct[1], l.component[0], l.component[1], l.floor[0], l.floor[1]
            );
            latencies.push(l);
        }
    }

    // Rows 1 and 3 pay for gRPC and for Kafka, one after the other, on cores the client, the
    // bridge and the broker share; their anchors each have only one of the two. Per round,
    // 1 / (1/gRPC + 1/Kafka) is what a component that added no work of its own would reach:
    // print the bridge against that bound too (no target).
    let bound = |grpc: &[f64], kafka: &[f64]| -> Vec<f64> {
        grpc.iter().zip(kafka).map(|(g, k)| 1.0 / (1.0 / g + 1.0 / k)).collect()
    };
    let combined = [
        // Row 1's anchor is gRPC alone; row 5's, measured with it, librdkafka alone.
        (1, (1, 5), "100 concurrent Publish vs 1 / (1/no-op + 1/librdkafka): both costs, nothing else (msg/s)"),
        // Row 3's anchor is librdkafka alone; row 4's, measured with it, gRPC alone.
        (3, (4, 3), "PullMessages drain vs 1 / (1/no-op stream + 1/consumer): both costs, nothing else (msg/s)"),
    ];
    for (row, (grpc, kafka), name) in combined {
        let (g, k) = (&rows[grpc].2, &rows[kafka].2);
        if !rows[row].1.is_empty() && g.len() == k.len() {
            let anchor = bound(g, k);
            let bridge = rows[row].1.clone();
            rows.push((name.into(), bridge, anchor, f64::NAN));
        }
    }
    if rows.iter().any(|r| !r.1.is_empty()) || !latencies.is_empty() {
        println!("| row | bridge | anchor | ratio | target |");
        println!("|---|---|---|---|---|");
    }
    for (name, bridge_rates, anchor_rates, target) in rows.into_iter().filter(|r| !r.1.is_empty()) {
        let (b, a) = (median(bridge_rates), median(anchor_rates));
        let target = if target.is_nan() { "—".to_owned() } else { format!("≥ {target}") };
        println!("| {name} | {b:.0} | {a:.0} | {:.2} | {target} |", b / a);
    }
    if !latencies.is_empty() {
        // The added latency is the median of each round's difference (both targets of a round
        // ran back to back on the same broker).
        for (i, (name, target)) in [("p50", 100.0), ("p99", 300.0)].into_iter().enumerate() {
            let bridge = median(latencies.iter().map(|l| l.component[i]).collect());
            let direct = median(latencies.iter().map(|l| l.direct[i]).collect());
            let added = median(latencies.iter().map(|l| l.component[i] - l.direct[i]).collect());
            println!(
                "| {name} publish latency, {} k msg/s open loop, linger 5 ms, vs direct (µs) | {bridge:.0} | {direct:.0} | {added:+.0} µs added | < +{target:.0} µs |",
                latency_rate / 1000
            );
        }
        // The gRPC floor: the same client and open loop against a handler that answers at
        // once. A component beside daprd cannot add less than this round trip; what the
        // bridge adds beyond it is its own (Kafka work in its process, answering).
        for (i, name) in ["p50", "p99"].into_iter().enumerate() {
            let floor = median(latencies.iter().map(|l| l.floor[i]).collect());
            let beyond = median(latencies.iter().map(|l| l.component[i] - l.direct[i] - l.floor[i]).collect());
            println!(
                "| {name} of the same calls to a no-op Publish handler: the gRPC floor (µs) | — | {floor:.0} | {beyond:+.0} µs added beyond it | — |"
            );
        }
    }

    let mut memory = vec![];
    if (on(5) || on(6)) && !has_bridge_binary {
        eprintln!("memory rows skipped: build the bridge (cargo build --release -p dapr-kafka-bridge)");
    } else {
        let seconds: u64 = env_or("MEMORY_SECONDS", 30);
        if on(5) {
            eprintln!("memory: sustained publish");
            let rate = env_or("MEMORY_RATE", 100_000);
            memory.push(memory_under_publish(embedded.as_ref(), &bootstrap, rate, seconds).await);
        }
        if on(6) {
            eprintln!("memory: backlog and a slow daprd");
            let backlog = env_or("BACKLOG", 1_000_000);
            // Longer: the bridge's prefetch for the slow daprd takes about 20 s to fill on Tansu.
            let seconds = env_or("BACKLOG_SECONDS", 60);
            memory.push(memory_under_backlog(&mut publisher, embedded.as_ref(), &bootstrap, backlog, seconds).await);
        }
    }
    if !memory.is_empty() {
        println!();
        println!("memory (the bridge binary as a child process; RSS from /proc/PID/status, MB = 10⁶ bytes)");
        println!();
        println!(
            "| row | load | idle MB | start MB (2 s into the load) | end MB | peak MB (VmHWM) | RSS every 5 s (MB) | verdict |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for row in &memory {
            row.print();
        }
    }
    assert!(bridge.stop().await);
}
