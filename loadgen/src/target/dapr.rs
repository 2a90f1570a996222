//! `--target dapr`: load through a Dapr sidecar's own HTTP publish API, for teams who already
//! run daprd in front of their pub/sub component.
//!
//! ```text
//!  unary:N   N concurrent  POST /v1.0/publish/{pubsub}/{topic}?metadata.rawPayload=true
//!                          body = the payload bytes (application/octet-stream); 2xx = published
//!  bulk:ExC  C concurrent  POST /v1.0-alpha1/publish/bulk/{pubsub}/{topic}?metadata.rawPayload=true
//!                          body = JSON [{entryId, event, contentType, metadata}]; 2xx = all
//!                          published, else `failedEntries` names the failed ones
//! ```
//!
//! `rawPayload=true` tells daprd not to wrap the payload in a CloudEvent, so the bytes (and the
//! tool's stamp) reach Kafka unchanged and the tool's own consumer reads end-to-end latency as
//! on the other paths. The record key is `metadata.partitionKey`.
//!
//! **Bulk and binary payloads.** The bulk API carries each `event` inside JSON, so a payload
//! that is not UTF-8 (the tool's payloads start with a binary stamp) cannot travel unchanged:
//! such an entry fails as `NotUtf8` rather than be re-encoded. Use `publish=unary:N` with
//! `--target dapr`.
//!
//! **Settings.** daprd configures its component from the Component resource, not per request:
//! the swept producer settings do not reach it, and every step's notes say so.
//!
//! **Only loopback.** `--dapr-http` must be a loopback address (the sidecar's port is local).
//!
//! What was verified against a real daprd: nothing (none could be installed here). The test
//! (`tests/tests/loadgen_dapr.rs`) runs an HTTP server implementing just these two routes that
//! forwards to the bridge over its socket.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::component::{CallFuture, CallSender, Entry, RpcPublisher};
use super::{DirectKafka, Publisher, Target, TargetInfo, TopicSpec};
use crate::driver::Recorder;
use crate::error::{Error, Result};
use crate::scenario::{PublishMode, Scenario, StepConfig};

/// A Dapr sidecar's HTTP API.
pub struct DaprTarget {
    kafka: Arc<DirectKafka>,
    runtime: tokio::runtime::Runtime,
    address: SocketAddr,
    pubsub: String,
}

impl DaprTarget {
    /// Checks that `address` is loopback and accepts a connection; `pubsub` is the Component's
    /// name in daprd.
    pub fn connect(kafka: Arc<DirectKafka>, address: SocketAddr, pubsub: &str) -> Result<DaprTarget> {
        if !address.ip().is_loopback() {
            return Err(Error::invalid(format!("--dapr-http {address} is not a loopback address")));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("loadgen-http")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the HTTP runtime", e))?;
        runtime
            .block_on(tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(address)))
            .map_err(|_| Error::Step(format!("connecting to daprd at {address} timed out")))?
            .map_err(|e| Error::Step(format!("cannot connect to daprd's HTTP port {address}: {e}")))?;
        Ok(DaprTarget { kafka, runtime, address, pubsub: pubsub.to_owned() })
    }
}

impl Target for DaprTarget {
    fn info(&self) -> TargetInfo {
        let mut info = self.kafka.info();
        info.kind = "dapr".into();
        info.description = format!(
            "Dapr sidecar HTTP API at {} (pubsub `{}`, rawPayload), over {}",
            self.address, self.pubsub, info.description
        );
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
    fn configure(&self, _scenario: &Scenario, step: &StepConfig, _topic: &str) -> Result<Vec<String>> {
        let mut notes = vec![format!(
            "through daprd: the swept producer settings ({}) do not reach the component; its Component resource \
             applies",
            super::component::bridge_metadata(step)
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        )];
        if matches!(step.publish, PublishMode::Bulk { .. }) {
            notes.push(
                "bulk over HTTP: entries whose payload is not UTF-8 fail as NotUtf8 (JSON cannot carry them)".into(),
            );
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
            Arc::new(HttpSend {
                address: self.address,
                unary_path: format!("/v1.0/publish/{}/{topic}?metadata.rawPayload=true", self.pubsub),
                bulk_path: format!("/v1.0-alpha1/publish/bulk/{}/{topic}?metadata.rawPayload=true", self.pubsub),
                timeout: scenario.message_timeout,
                idle: Mutex::new(Vec::new()),
            }),
            recorder,
            calls as usize,
            entries as usize,
            matches!(step.publish, PublishMode::Bulk { .. }),
        )))
    }
}

/// HTTP/1.1 calls on kept-alive connections (one call per connection at a time, as a pool).
struct HttpSend {
    address: SocketAddr,
    unary_path: String,
    bulk_path: String,
    timeout: Duration,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl HttpSend {
    async fn connection(&self) -> std::result::Result<SendRequest<Full<Bytes>>, String> {
        loop {
            let Some(mut sender) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() else { break };
            if sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        let stream = tokio::net::TcpStream::connect(self.address).await.map_err(|_| "ConnectFailed".to_owned())?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| "HandshakeFailed".to_owned())?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// POSTs `body`; returns the status and the response body.
    async fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> std::result::Result<(u16, Bytes), String> {
        let call = async {
            let mut sender = self.connection().await?;
            let request = hyper::Request::post(path)
                .header(hyper::header::HOST, self.address.to_string())
                .header(hyper::header::CONTENT_TYPE, content_type)
                .body(Full::new(Bytes::from(body)))
                .map_err(|_| "BadRequest".to_owned())?;
            let response = sender.send_request(request).await.map_err(|_| "HttpError".to_owned())?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.map_err(|_| "HttpError".to_owned())?.to_bytes();
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(sender);
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, call).await.map_err(|_| "TimedOut".to_owned())?
    }
}

fn key_query(key: &Option<String>) -> String {
    key.as_ref().map_or(String::new(), |k| {
        let encoded: String = k
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("&metadata.partitionKey={encoded}")
    })
}

impl CallSender for HttpSend {
    fn unary(self: Arc<Self>, entry: &Entry) -> CallFuture<std::result::Result<(), String>> {
        let path = format!("{}{}", self.unary_path, key_query(&entry.key));
        let body = entry.data.clone();
        Box::pin(async move {
            match self.post(&path, "application/octet-stream", body).await? {
                (200..=299, _) => Ok(()),
                (status, _) => Err(format!("HTTP{status}")),
            }
        })
    }

    fn bulk(self: Arc<Self>, entries: &[Entry]) -> CallFuture<Vec<std::result::Result<(), String>>> {
        let mut results: Vec<std::result::Result<(), String>> = vec![Ok(()); entries.len()];
        let mut body = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            match std::str::from_utf8(&e.data) {
                Ok(text) => {
                    let metadata: serde_json::Map<String, serde_json::Value> =
                        e.key.iter().map(|k| ("partitionKey".to_owned(), serde_json::Value::from(k.clone()))).collect();
                    body.push(serde_json::json!({
                        "entryId": i.to_string(),
                        "event": text,
                        "contentType": "text/plain",
                        "metadata": metadata,
                    }));
                }
                Err(_) => results[i] = Err("NotUtf8".to_owned()),
            }
        }
        let path = self.bulk_path.clone();
        Box::pin(async move {
            if body.is_empty() {
                return results;
            }
            let json = serde_json::to_vec(&body).unwrap_or_default();
            match self.post(&path, "application/json", json).await {
                Ok((200..=299, _)) => {}
                Ok((_, answer)) => {
                    // daprd answers 500 with `failedEntries` naming what failed; without it, all did.
                    let failed: Vec<usize> = serde_json::from_slice::<serde_json::Value>(&answer)
                        .ok()
                        .and_then(|v| v.get("failedEntries").and_then(|f| f.as_array()).cloned())
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|f| f.get("entryId")?.as_str()?.parse().ok())
                        .collect();
                    for (i, r) in results.iter_mut().enumerate() {
                        if r.is_ok() && (failed.is_empty() || failed.contains(&i)) {
                            *r = Err("BulkEntryFailed".to_owned());
                        }
                    }
                }
                Err(kind) => {
                    for r in results.iter_mut().filter(|r| r.is_ok()) {
                        *r = Err(kind.clone());
                    }
                }
            }
            results
        })
    }
}
