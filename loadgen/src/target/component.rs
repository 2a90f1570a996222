//! The component target: load through a Dapr pluggable pub/sub component's Unix socket,
//! speaking the interface exactly as daprd does (`shared/spec/dapr-pluggable-pubsub.md`).
//!
//! ```text
//!  connect ─► reflection v1alpha ListServices (PubSub must be listed, as daprd checks)
//!  per step ─► Init{brokers, step settings as metadata}  ─► Features   (x-component-instance on every call)
//!  publish ─► unary:N  N concurrent Publish per producer thread
//!             bulk:ExC BulkPublish of up to E entries, C calls in flight
//!  answer  ─► Recorder: OK = acknowledged by Kafka (the bridge answers after the delivery
//!             report at the configured acks); failed_entries / a status = failed
//! ```
//!
//! **Settings.** Each step gets a fresh `Init` (daprd's hot reload of a Component) with the
//! step's producer settings under the bridge's metadata keys: `linger`, `batchBytes`,
//! `compression`, `compressionLevel`, `producerRequiredAcks`, `enableIdempotence`, plus
//! `brokers` and `--component-metadata`. A *foreign* component (`--foreign-component`) gets
//! only `brokers` and `--component-metadata`, and every step's notes list the swept settings
//! it did not receive. Dapr components ignore unknown keys, so the tool cannot tell whether a
//! foreign component applied them; it says so rather than guessing.
//!
//! **Bulk batching.** A bulk publisher collects entries and sends a call when it holds E
//! entries, or whenever fewer than C calls are in flight (so a slow rate never waits for a
//! full batch: like `linger 0`). The report's notes give the entries per call achieved.
//! Without `BULK_PUBSUB` in `Features` a bulk step fails with that reason (daprd would fan the
//! entries out as unary calls instead; measure that with `unary:N`).
//!
//! **Latency.** Publish latency runs from the message's stamp (intended time in an open loop)
//! to the RPC's answer; a bulk entry's answer is its call's. The payload (with the stamp) goes
//! as raw bytes, and the tool's own consumer reads it back from Kafka for end-to-end latency.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use dapr_kafka_proto::components::{
    BulkMessageEntry, BulkPublishRequest, FeaturesRequest, MetadataRequest, PubSubInitRequest, PublishRequest,
};
use dapr_kafka_proto::{COMPONENT_INSTANCE_HEADER, PUBSUB_SERVICE, PubSubClient};
use hyper_util::rt::TokioIo;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

use super::process::SpawnedBridge;
use super::{DirectKafka, Publisher, Sent, Target, TargetInfo, TopicSpec};
use crate::driver::{Recorder, Stamp};
use crate::error::{Error, Result};
use crate::scenario::{Acks, PublishMode, Scenario, StepConfig};

/// How to reach and configure the component.
#[derive(Debug, Clone)]
pub struct ComponentOptions {
    /// The socket (`<folder>/<name>.sock`).
    pub socket: PathBuf,
    /// The `x-component-instance` header: the Component resource's `metadata.name`.
    pub instance: String,
    /// Extra `Init` metadata (`--component-metadata key=value`), applied last.
    pub metadata: Vec<(String, String)>,
    /// Not the bridge: do not send the bridge's producer keys.
    pub foreign: bool,
    /// Deadline of `Init` and of the reflection call.
    pub init_timeout: Duration,
    /// The component's process, to meter when the tool did not start it (`--component-pid`).
    pub pid: Option<u32>,
}

/// The swept settings as the bridge's metadata (what a foreign component may not take).
pub fn bridge_metadata(step: &StepConfig) -> Vec<(&'static str, String)> {
    let mut keys = vec![
        ("linger", format!("{}ms", step.linger_ms)),
        ("batchBytes", step.batch_size.to_string()),
        ("compression", step.compression.codec.name().to_owned()),
        (
            "producerRequiredAcks",
            match step.acks {
                Acks::All => "all",
                Acks::Leader => "local",
                Acks::None => "none",
            }
            .to_owned(),
        ),
        ("enableIdempotence", step.idempotence.to_string()),
    ];
    if let Some(level) = step.compression.level {
        keys.push(("compressionLevel", level.to_string()));
    }
    keys
}

/// A pub/sub pluggable component on a socket, possibly a bridge this tool started.
pub struct ComponentTarget {
    kafka: Arc<DirectKafka>,
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    options: ComponentOptions,
    services: Vec<String>,
    features: Mutex<Vec<String>>,
    bridge: Option<SpawnedBridge>,
}

/// Connects a channel to a Unix socket (daprd dials `unix://…`; the authority is ignored).
async fn uds_channel(socket: &Path) -> std::result::Result<Channel, tonic::transport::Error> {
    let socket = socket.to_owned();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move { tokio::net::UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
}

/// Lists the services on `channel` through reflection v1alpha, as daprd discovers components.
async fn list_services(channel: Channel) -> std::result::Result<Vec<String>, String> {
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    match responses.message().await.map_err(|s| format!("{:?}: {}", s.code(), s.message()))? {
        Some(r) => match r.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => Ok(list.service.into_iter().map(|s| s.name).collect()),
            other => Err(format!("unexpected reflection answer {other:?}")),
        },
        None => Err("reflection closed the stream without an answer".into()),
    }
}

impl ComponentTarget {
    /// Connects to the component at `options.socket`, checks through reflection v1alpha that it
    /// serves `dapr.proto.components.v1.PubSub`, and keeps `kafka` for topics and the consumer.
    /// `bridge` is the process behind the socket when the tool started it.
    pub fn connect(
        kafka: Arc<DirectKafka>,
        options: ComponentOptions,
        bridge: Option<SpawnedBridge>,
    ) -> Result<ComponentTarget> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("loadgen-grpc")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the gRPC runtime", e))?;
        let socket = options.socket.clone();
        let timeout = options.init_timeout;
        let (channel, services) = runtime.block_on(async {
            let channel = tokio::time::timeout(timeout, uds_channel(&socket))
                .await
                .map_err(|_| Error::Step(format!("connecting to {} timed out", socket.display())))?
                .map_err(|e| {
                    Error::Step(format!("cannot connect to the component socket {}: {e}", socket.display()))
                })?;
            let services = tokio::time::timeout(timeout, list_services(channel.clone()))
                .await
                .map_err(|_| Error::Step("reflection ListServices timed out".into()))?
                .map_err(|why| {
                    Error::Step(format!(
                        "{} does not answer gRPC reflection v1alpha ListServices ({why}): daprd would register no \
                         pluggable component from it",
                        socket.display()
                    ))
                })?;
            Ok::<_, Error>((channel, services))
        })?;
        if !services.iter().any(|s| s == PUBSUB_SERVICE) {
            return Err(Error::Step(format!(
                "{} serves {:?} but not {PUBSUB_SERVICE}: not a pub/sub pluggable component",
                socket.display(),
                services
            )));
        }
        Ok(ComponentTarget { kafka, runtime, channel, options, services, features: Mutex::new(Vec::new()), bridge })
    }

    fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        instance_request(message, &self.instance_header(), timeout)
    }

    fn instance_header(&self) -> MetadataValue<tonic::metadata::Ascii> {
        self.options.instance.parse().unwrap_or_else(|_| MetadataValue::from_static("loadgen"))
    }

    /// The features the component advertised at the last `Init`.
    pub fn features(&self) -> Vec<String> {
        self.features.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn instance_request<T>(
    message: T,
    instance: &MetadataValue<tonic::metadata::Ascii>,
    timeout: Duration,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(COMPONENT_INSTANCE_HEADER, instance.clone());
    request.set_timeout(timeout);
    request
}

fn status_text(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

impl Target for ComponentTarget {
    fn info(&self) -> TargetInfo {
        let mut info = self.kafka.info();
        info.kind = "component".into();
        info.description = format!(
            "Dapr pluggable pub/sub component on {} (instance `{}`{}), over {}",
            self.options.socket.display(),
            self.options.instance,
            if self.options.foreign { ", foreign: bridge settings not sent" } else { "" },
            info.description
        );
        info.facts.push(format!("component socket serves {}", self.services.join(", ")));
        let features = self.features();
        info.facts.push(format!(
            "component Features: {}",
            if features.is_empty() { "none".to_owned() } else { features.join(", ") }
        ));
        if let Some(bridge) = &self.bridge {
            info.facts.push(bridge.describe());
        }
        info
    }

    fn consumer_bootstrap(&self) -> String {
        self.kafka.consumer_bootstrap()
    }

    fn consumer_properties(&self) -> Vec<(String, String)> {
        self.kafka.consumer_properties()
    }

    fn create_topic(&self, topic: &str, spec: &TopicSpec) -> Result<Vec<String>> {
        self.kafka.create_topic(topic, spec)
    }

    fn delete_topic(&self, topic: &str) -> Result<()> {
        self.kafka.delete_topic(topic)
    }

    fn configure(&self, scenario: &Scenario, step: &StepConfig, _topic: &str) -> Result<Vec<String>> {
        let mut properties: HashMap<String, String> = HashMap::new();
        properties.insert("brokers".into(), self.kafka.consumer_bootstrap());
        let mapped = bridge_metadata(step);
        let mut notes = Vec::new();
        if self.options.foreign {
            notes.push(format!(
                "foreign component: the swept settings were not sent ({}); the component's own defaults apply",
                mapped.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
            ));
        } else {
            properties.extend(mapped.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
            notes.push(format!(
                "fresh Init with {}",
                mapped.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
            ));
        }
        let not_mapped: Vec<&str> = ["message_timeout", "max_in_flight", "properties (-X)"]
            .into_iter()
            .filter(|s| match *s {
                "properties (-X)" => !scenario.properties.is_empty(),
                _ => true,
            })
            .collect();
        notes.push(format!(
            "not passed to the component: {} (librdkafka settings of the direct path only)",
            not_mapped.join(", ")
        ));
        properties.extend(self.options.metadata.iter().cloned());
        let timeout = self.options.init_timeout;
        let init = PubSubInitRequest { metadata: Some(MetadataRequest { properties }) };
        let features = self.runtime.block_on(async {
            let mut client = PubSubClient::new(self.channel.clone());
            client.init(self.request(init, timeout)).await.map_err(|s| {
                Error::Step(format!(
                    "component Init failed ({}); a foreign component may reject a setting",
                    status_text(&s)
                ))
            })?;
            match client.features(self.request(FeaturesRequest {}, timeout)).await {
                Ok(answer) => Ok(answer.into_inner().features),
                Err(s) => {
                    notes.push(format!("Features failed ({}): assuming none", status_text(&s)));
                    Ok::<_, Error>(Vec::new())
                }
            }
        })?;
        *self.features.lock().unwrap_or_else(|e| e.into_inner()) = features.clone();
        if matches!(step.publish, PublishMode::Bulk { .. }) && !features.iter().any(|f| f == "BULK_PUBSUB") {
            return Err(Error::Step(format!(
                "the component does not advertise BULK_PUBSUB (Features: {:?}): daprd would fan bulk entries out as \
                 unary Publish calls; measure that with publish=unary:N",
                features
            )));
        }
        Ok(notes)
    }

    fn publisher(
        &self,
        scenario: &Scenario,
        step: &StepConfig,
        topic: &str,
        recorder: Arc<Recorder>,
        _stats_interval: Duration,
    ) -> Result<Box<dyn Publisher>> {
        let (calls, entries) = step.publish.shape();
        Ok(Box::new(RpcPublisher::new(
            self.runtime.handle().clone(),
            Arc::new(GrpcSend {
                client: PubSubClient::new(self.channel.clone()),
                instance: self.instance_header(),
                topic: topic.to_owned(),
                timeout: scenario.message_timeout,
            }),
            recorder,
            calls as usize,
            entries as usize,
            matches!(step.publish, PublishMode::Bulk { .. }),
        )))
    }

    fn process(&self, _step: &StepConfig) -> Option<u32> {
        self.bridge.as_ref().map(SpawnedBridge::pid).or(self.options.pid)
    }
}

/// One message waiting for or in a call.
pub(crate) struct Entry {
    pub(crate) data: Vec<u8>,
    pub(crate) key: Option<String>,
    pub(crate) stamp: Stamp,
}

/// A call in flight on the runtime.
pub(crate) type CallFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// What an RPC-style target sends: one entry (unary) or a batch (bulk). Returns, per entry,
/// `Ok` or the kind of failure.
pub(crate) trait CallSender: Send + Sync + 'static {
    /// One entry.
    fn unary(self: Arc<Self>, entry: &Entry) -> CallFuture<std::result::Result<(), String>>;
    /// A batch; the result has one element per entry, in order.
    fn bulk(self: Arc<Self>, entries: &[Entry]) -> CallFuture<Vec<std::result::Result<(), String>>>;
}

struct GrpcSend {
    client: PubSubClient<Channel>,
    instance: MetadataValue<tonic::metadata::Ascii>,
    topic: String,
    timeout: Duration,
}

fn key_metadata(key: &Option<String>) -> HashMap<String, String> {
    key.iter().map(|k| ("partitionKey".to_owned(), k.clone())).collect()
}

impl CallSender for GrpcSend {
    fn unary(self: Arc<Self>, entry: &Entry) -> CallFuture<std::result::Result<(), String>> {
        let request = PublishRequest {
            data: entry.data.clone().into(),
            pubsub_name: "loadgen".into(),
            topic: self.topic.clone(),
            metadata: key_metadata(&entry.key),
            content_type: String::new(),
        };
        Box::pin(async move {
            let mut client = self.client.clone();
            client
                .publish(instance_request(request, &self.instance, self.timeout))
                .await
                .map(drop)
                .map_err(|s| format!("{:?}", s.code()))
        })
    }

    fn bulk(self: Arc<Self>, entries: &[Entry]) -> CallFuture<Vec<std::result::Result<(), String>>> {
        let n = entries.len();
        let request = BulkPublishRequest {
            entries: entries
                .iter()
                .enumerate()
                .map(|(i, e)| BulkMessageEntry {
                    entry_id: i.to_string(),
                    event: e.data.clone().into(),
                    content_type: String::new(),
                    metadata: key_metadata(&e.key),
                })
                .collect(),
            pubsub_name: "loadgen".into(),
            topic: self.topic.clone(),
            metadata: HashMap::new(),
        };
        Box::pin(async move {
            let mut client = self.client.clone();
            match client.bulk_publish(instance_request(request, &self.instance, self.timeout)).await {
                Ok(answer) => {
                    let mut results = vec![Ok(()); n];
                    for failed in answer.into_inner().failed_entries {
                        if let Some(r) = failed.entry_id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                            *r = Err("BulkEntryFailed".to_owned());
                        }
                    }
                    results
                }
                // A non-OK status means every entry failed.
                Err(s) => vec![Err(format!("{:?}", s.code())); n],
            }
        })
    }
}

/// State shared between a publisher and its calls in flight.
struct Flight {
    calls: AtomicUsize,
    lock: Mutex<()>,
    done: Condvar,
    calls_made: AtomicU64,
    entries_sent: AtomicU64,
}

/// The driver's [`Publisher`] over RPC-style calls (gRPC to a component, HTTP to daprd): `send`
/// never blocks; it hands a call to the runtime or says `Full` when `max_calls` are in flight.
pub(crate) struct RpcPublisher {
    runtime: tokio::runtime::Handle,
    sender: Arc<dyn CallSender>,
    recorder: Arc<Recorder>,
    max_calls: usize,
    max_entries: usize,
    bulk: bool,
    pending: Vec<Entry>,
    flight: Arc<Flight>,
}

impl RpcPublisher {
    pub(crate) fn new(
        runtime: tokio::runtime::Handle,
        sender: Arc<dyn CallSender>,
        recorder: Arc<Recorder>,
        max_calls: usize,
        max_entries: usize,
        bulk: bool,
    ) -> RpcPublisher {
        RpcPublisher {
            runtime,
            sender,
            recorder,
            max_calls: max_calls.max(1),
            max_entries: max_entries.max(1),
            bulk,
            pending: Vec::new(),
            flight: Arc::new(Flight {
                calls: AtomicUsize::new(0),
                lock: Mutex::new(()),
                done: Condvar::new(),
                calls_made: AtomicU64::new(0),
                entries_sent: AtomicU64::new(0),
            }),
        }
    }

    /// Starts a call with the pending entries if a call slot is free.
    fn dispatch(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        if self.flight.calls.load(Ordering::Acquire) >= self.max_calls {
            return false;
        }
        self.flight.calls.fetch_add(1, Ordering::AcqRel);
        let batch = std::mem::take(&mut self.pending);
        let (sender, recorder, flight) =
            (Arc::clone(&self.sender), Arc::clone(&self.recorder), Arc::clone(&self.flight));
        flight.calls_made.fetch_add(1, Ordering::Relaxed);
        flight.entries_sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let bulk = self.bulk;
        self.runtime.spawn(async move {
            let results = if bulk { sender.bulk(&batch).await } else { vec![sender.unary(&batch[0]).await] };
            for (entry, result) in batch.iter().zip(results) {
                match result {
                    Ok(()) => recorder.delivered(entry.stamp, entry.data.len()),
                    Err(kind) => recorder.failed(entry.stamp, &kind),
                }
            }
            flight.calls.fetch_sub(1, Ordering::AcqRel);
            let _guard = flight.lock.lock().unwrap_or_else(|e| e.into_inner());
            flight.done.notify_all();
        });
        true
    }

    /// Waits up to `timeout` for a call to finish.
    fn wait(&self, timeout: Duration) {
        if timeout.is_zero() {
            return;
        }
        let guard = self.flight.lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.flight.calls.load(Ordering::Acquire) == 0 {
            // Nothing can wake us: sleep the time (the open loop sleeps in poll).
            drop(guard);
            std::thread::sleep(timeout);
            return;
        }
        let _ = self.flight.done.wait_timeout(guard, timeout);
    }
}

impl Publisher for RpcPublisher {
    fn send(&mut self, payload: &[u8], key: Option<&[u8]>, stamp: Stamp) -> Sent {
        if self.pending.len() >= self.max_entries && !self.dispatch() {
            return Sent::Full;
        }
        self.pending.push(Entry {
            data: payload.to_vec(),
            key: key.map(|k| String::from_utf8_lossy(k).into_owned()),
            stamp,
        });
        if self.pending.len() >= self.max_entries || !self.bulk {
            // Unary: the entry waits here only while every call slot is busy.
            self.dispatch();
        }
        Sent::Queued
    }

    fn poll(&mut self, timeout: Duration) {
        if !self.dispatch() || !timeout.is_zero() {
            self.wait(timeout);
            self.dispatch();
        }
    }

    fn flush(&mut self, timeout: Duration) -> std::result::Result<(), String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            self.dispatch();
            if self.pending.is_empty() && self.flight.calls.load(Ordering::Acquire) == 0 {
                return Ok(());
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(format!(
                    "{} call(s) still in flight and {} entries unsent after {timeout:?}",
                    self.flight.calls.load(Ordering::Acquire),
                    self.pending.len()
                ));
            }
            self.wait((deadline - now).min(Duration::from_millis(50)));
        }
    }

    fn purge(&mut self) {
        for entry in self.pending.drain(..) {
            self.recorder.failed(entry.stamp, "Purged");
        }
    }

    fn calls(&self) -> Option<(u64, u64)> {
        Some((self.flight.calls_made.load(Ordering::Relaxed), self.flight.entries_sent.load(Ordering::Relaxed)))
    }
}

/// What the subscribe side ([`crate::drain`]) needs from a connected component: its runtime,
/// a client with the instance header, `Init` with arbitrary metadata, and its Kafka.
impl ComponentTarget {
    /// The runtime the gRPC calls run on.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    /// A client on the component's channel.
    pub fn client(&self) -> PubSubClient<Channel> {
        PubSubClient::new(self.channel.clone())
    }

    /// `request` with the `x-component-instance` header and a deadline (none for a stream:
    /// pass `None`).
    pub fn with_instance<T>(&self, message: T, timeout: Option<Duration>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(COMPONENT_INSTANCE_HEADER, self.instance_header());
        if let Some(t) = timeout {
            request.set_timeout(t);
        }
        request
    }

    /// A fresh `Init` with `properties` (plus `--component-metadata`, applied last), then
    /// `Features`. Returns the features.
    pub fn init_with(&self, properties: HashMap<String, String>) -> Result<Vec<String>> {
        let mut properties = properties;
        properties.extend(self.options.metadata.iter().cloned());
        let timeout = self.options.init_timeout;
        let init = PubSubInitRequest { metadata: Some(MetadataRequest { properties }) };
        let features = self.runtime.block_on(async {
            let mut client = self.client();
            client
                .init(self.request(init, timeout))
                .await
                .map_err(|s| Error::Step(format!("component Init failed ({})", status_text(&s))))?;
            Ok::<_, Error>(
                client
                    .features(self.request(FeaturesRequest {}, timeout))
                    .await
                    .map(|a| a.into_inner().features)
                    .unwrap_or_default(),
            )
        })?;
        *self.features.lock().unwrap_or_else(|e| e.into_inner()) = features.clone();
        Ok(features)
    }

    /// The bridge behind the socket, when the tool started it.
    pub fn spawned_bridge(&self) -> Option<&SpawnedBridge> {
        self.bridge.as_ref()
    }

    /// The options it was connected with.
    pub fn options(&self) -> &ComponentOptions {
        &self.options
    }

    /// The Kafka cluster behind it (topics, the direct consumer).
    pub fn kafka(&self) -> &Arc<DirectKafka> {
        &self.kafka
    }
}
