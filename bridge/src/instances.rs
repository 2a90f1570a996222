//! Component instances, one per `x-component-instance` header.
//!
//! daprd opens one connection per Component resource and names it in that header on every
//! call, so several Components (each with its own brokers, auth and consumer group) can share
//! one socket. Calls without the header go to the default instance (the empty name). A second
//! Init for a name (daprd hot reload) builds a new instance and swaps it in; the old producer is
//! then flushed in the background, so publishes already in flight on it still complete.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ComponentConfig;
use crate::error::{Error, Result};
use crate::producer::Publisher;
use crate::subscriber::{StreamLimits, Subscriptions};
use crate::telemetry::metrics;

/// One initialised component instance.
pub struct Instance {
    /// The `x-component-instance` name (empty for the default instance).
    pub name: String,
    /// Its configuration.
    pub config: ComponentConfig,
    /// Bootstrap servers in use (the embedded cluster's when `brokers` was not given).
    pub bootstrap: String,
    /// Its producer (also used for dead-letter records).
    pub publisher: Arc<Publisher>,
    /// Its PullMessages streams and Pause/Resume switch.
    pub subscriptions: Subscriptions,
}

impl Instance {
    /// Ends the streams (each commits what was acked), then flushes the producer.
    async fn close(&self, flush_timeout: Duration) {
        self.subscriptions.close().await;
        let pending = self.publisher.in_flight();
        match self.publisher.clone().close(flush_timeout).await {
            Ok(()) => tracing::info!(instance = display_name(&self.name), pending, "producer flushed"),
            Err(error) => tracing::error!(instance = display_name(&self.name), %error, "producer flush incomplete"),
        }
    }
}

/// Bounds on what callers can make the bridge hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Component instances (distinct `x-component-instance` names).
    pub max_instances: usize,
    /// PullMessages streams per instance.
    pub max_streams_per_instance: usize,
    /// Largest gRPC request the server decodes; `maxMessageBytes` may not exceed it.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_instances: 64, max_streams_per_instance: 256, max_request_bytes: 64 * 1024 * 1024 }
    }
}

/// Every instance the bridge serves.
pub struct Instances {
    by_name: RwLock<HashMap<String, Arc<Instance>>>,
    /// Set once, possibly after the socket is bound (the embedded cluster starts after it).
    embedded_bootstrap: std::sync::OnceLock<String>,
    retiring: TaskTracker,
    flush_timeout: Duration,
    streams: CancellationToken,
    /// Set when shutdown begins: publishing goes on, new streams are refused.
    draining: std::sync::atomic::AtomicBool,
    /// Set (under `by_name`'s lock) when shutdown has taken every instance to close: an Init
    /// finishing later would add one that nobody flushes.
    closed: std::sync::atomic::AtomicBool,
    limits: Limits,
}

/// How an instance name is shown in logs and errors.
pub fn display_name(name: &str) -> &str {
    if name.is_empty() { "(default)" } else { name }
}

impl Instances {
    /// An empty registry. `embedded_bootstrap` serves instances whose Init names no brokers.
    pub fn new(embedded_bootstrap: Option<String>, flush_timeout: Duration, limits: Limits) -> Self {
        Self {
            by_name: RwLock::default(),
            embedded_bootstrap: embedded_bootstrap.map(std::sync::OnceLock::from).unwrap_or_default(),
            retiring: TaskTracker::new(),
            flush_timeout,
            streams: CancellationToken::new(),
            draining: Default::default(),
            closed: Default::default(),
            limits,
        }
    }

    /// Initialises (or re-initialises) instance `name` from Init metadata.
    pub async fn init(&self, name: &str, properties: &HashMap<String, String>) -> Result<()> {
        let initialised = self.try_init(name, properties).await;
        if initialised.is_err() {
            metrics::init_failed(display_name(name));
        }
        initialised
    }

    async fn try_init(&self, name: &str, properties: &HashMap<String, String>) -> Result<()> {
        // Checked before connecting, and again when the instance is added (Inits overlap).
        if let Some(refused) = self.refusal(&self.by_name.read().unwrap_or_else(|e| e.into_inner()), name) {
            return Err(refused);
        }
        let config = ComponentConfig::parse(properties)?;
        if let Some(max) = config.producer.max_message_bytes.filter(|m| *m as usize > self.limits.max_request_bytes) {
            return Err(Error::InvalidMetadata {
                key: "maxMessageBytes".into(),
                reason: format!(
                    "{max} exceeds the bridge's gRPC request limit of {} bytes: start the bridge with a larger --max-request-bytes",
                    self.limits.max_request_bytes
                ),
            });
        }
        for warning in &config.warnings {
            tracing::warn!(instance = display_name(name), "{warning}");
        }
        let bootstrap = match (&config.brokers, self.embedded_bootstrap.get()) {
            (Some(brokers), _) => brokers.clone(),
            (None, Some(embedded)) => {
                tracing::warn!(
                    instance = display_name(name),
                    "no `brokers` given: using the EMBEDDED in-process mock cluster; nothing is durable"
                );
                embedded.clone()
            }
            (None, None) => {
                return Err(Error::InvalidMetadata {
                    key: "brokers".into(),
                    reason: "is required (or start the bridge with --embedded-kafka to try it without Kafka)".into(),
                });
            }
        };
        let publisher = Publisher::connect(&config, &bootstrap, name).await?;
        tracing::info!(
            instance = display_name(name),
            brokers = %bootstrap,
            acks = ?config.producer.acks,
            idempotence = config.producer.idempotence,
            compression = ?config.producer.compression,
            linger = ?config.producer.linger,
            "instance initialised"
        );
        let subscriptions = Subscriptions::new(
            self.streams.child_token(),
            StreamLimits {
                max_streams: self.limits.max_streams_per_instance,
                join_deadline: config.subscriber.revoke_ack_timeout + Duration::from_secs(15),
            },
        );
        let instance = Arc::new(Instance { name: name.to_owned(), config, bootstrap, publisher, subscriptions });
        let added = {
            let mut by_name = self.by_name.write().unwrap_or_else(|e| e.into_inner());
            match self.refusal(&by_name, name) {
                Some(refused) => Err((refused, instance)),
                None => Ok(by_name.insert(name.to_owned(), instance)),
            }
        };
        let previous = match added {
            Ok(previous) => previous,
            Err((refused, instance)) => {
                instance.close(self.flush_timeout).await;
                return Err(refused);
            }
        };
        if let Some(previous) = previous {
            tracing::info!(instance = display_name(name), "re-initialised; flushing the previous producer");
            self.retire(previous);
        }
        Ok(())
    }

    /// The initialised instance `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Instance>> {
        self.by_name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotInitialised(display_name(name).to_owned()))
    }

    /// Why instance `name` cannot be added to `by_name` now, if it cannot: shutdown took the
    /// instances, or `--max-instances` are there and `name` is not one of them.
    fn refusal(&self, by_name: &HashMap<String, Arc<Instance>>, name: &str) -> Option<Error> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Some(Error::ShuttingDown);
        }
        (!by_name.contains_key(name) && by_name.len() >= self.limits.max_instances).then(|| {
            Error::Limit(format!("{} component instances are initialised (--max-instances)", self.limits.max_instances))
        })
    }

    fn retire(&self, instance: Arc<Instance>) {
        let timeout = self.flush_timeout;
        self.retiring.spawn(async move { instance.close(timeout).await });
    }

    /// Serves Inits without `brokers` from the embedded cluster at `bootstrap` from now on
    /// (the cluster starts after the socket is bound, so daprd's scan finds the socket at once).
    pub fn use_embedded(&self, bootstrap: String) {
        let _ = self.embedded_bootstrap.set(bootstrap);
    }

    /// Ends every PullMessages stream (lets the server's streaming calls finish).
    pub fn end_streams(&self) {
        self.streams.cancel();
    }

    /// Shutdown began: refuse new PullMessages streams from now on; Publish goes on.
    pub fn start_draining(&self) {
        self.draining.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether shutdown began.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Every instance now.
    pub fn all(&self) -> Vec<Arc<Instance>> {
        self.by_name.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// Asks every instance's cluster for metadata within `timeout`; false if any does not
    /// answer. Updates `kafka_bridge_broker_connected`.
    pub async fn kafka_usable(&self, timeout: Duration) -> bool {
        let mut usable = true;
        for instance in self.all() {
            let up = instance.publisher.probe(timeout).await.is_ok();
            metrics::broker_connected(display_name(&instance.name), up);
            usable &= up;
        }
        usable
    }

    /// Ends every stream, then flushes and closes every producer within `timeout`. Called
    /// after the server stopped taking calls, so no new record can arrive.
    pub async fn shutdown(&self, timeout: Duration) {
        self.end_streams();
        let all: Vec<_> = {
            let mut by_name = self.by_name.write().unwrap_or_else(|e| e.into_inner());
            self.closed.store(true, std::sync::atomic::Ordering::Release);
            by_name.drain().map(|(_, i)| i).collect()
        };
        let mut closing = tokio::task::JoinSet::new();
        for instance in all {
            closing.spawn(async move { instance.close(timeout).await });
        }
        while closing.join_next().await.is_some() {}
        self.retiring.close();
        self.retiring.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::mocking::MockCluster;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overlapping_inits_respect_the_limit_and_none_lands_after_shutdown() {
        let cluster = MockCluster::new(1).unwrap();
        let limits = Limits { max_instances: 2, ..Limits::default() };
        let instances = Arc::new(Instances::new(Some(cluster.bootstrap_servers()), Duration::from_secs(5), limits));
        let properties = HashMap::new(); // no brokers: the embedded (here: mock) cluster
        // Four Inits overlap: each passes the check before connecting, none is added yet.
        let inits = (0..4).map(|i| {
            let (instances, properties) = (instances.clone(), properties.clone());
            tokio::spawn(async move { instances.init(&format!("app-{i}"), &properties).await })
        });
        let results = futures::future::join_all(inits).await;
        let refused = results.iter().filter(|r| matches!(r.as_ref().unwrap(), Err(Error::Limit(_)))).count();
        assert_eq!(refused, 2, "{results:?}");
        assert_eq!(instances.all().len(), 2, "--max-instances holds");
        let known = instances.all()[0].name.clone();
        instances.init(&known, &properties).await.expect("re-initialising a known instance is not limited");

        instances.shutdown(Duration::from_secs(5)).await;
        assert!(matches!(instances.init("late", &properties).await, Err(Error::ShuttingDown)));
        assert!(instances.all().is_empty(), "an Init after shutdown adds nothing that nobody would flush");
    }
}
