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

use tokio_util::task::TaskTracker;

use crate::config::ComponentConfig;
use crate::error::{Error, Result};
use crate::producer::Publisher;

/// One initialised component instance.
pub struct Instance {
    /// The `x-component-instance` name (empty for the default instance).
    pub name: String,
    /// Its configuration.
    pub config: ComponentConfig,
    /// Bootstrap servers in use (the embedded cluster's when `brokers` was not given).
    pub bootstrap: String,
    /// Its producer.
    pub publisher: Arc<Publisher>,
}

/// Every instance the bridge serves.
pub struct Instances {
    by_name: RwLock<HashMap<String, Arc<Instance>>>,
    embedded_bootstrap: Option<String>,
    retiring: TaskTracker,
    flush_timeout: Duration,
}

/// How an instance name is shown in logs and errors.
pub fn display_name(name: &str) -> &str {
    if name.is_empty() { "(default)" } else { name }
}

impl Instances {
    /// An empty registry. `embedded_bootstrap` serves instances whose Init names no brokers.
    pub fn new(embedded_bootstrap: Option<String>, flush_timeout: Duration) -> Self {
        Self { by_name: RwLock::default(), embedded_bootstrap, retiring: TaskTracker::new(), flush_timeout }
    }

    /// Initialises (or re-initialises) instance `name` from Init metadata.
    pub async fn init(&self, name: &str, properties: &HashMap<String, String>) -> Result<()> {
        let config = ComponentConfig::parse(properties)?;
        for warning in &config.warnings {
            tracing::warn!(instance = display_name(name), "{warning}");
        }
        let bootstrap = match (&config.brokers, &self.embedded_bootstrap) {
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
        let publisher = Publisher::connect(&config, &bootstrap).await?;
        tracing::info!(
            instance = display_name(name),
            brokers = %bootstrap,
            acks = ?config.producer.acks,
            idempotence = config.producer.idempotence,
            compression = ?config.producer.compression,
            linger = ?config.producer.linger,
            "instance initialised"
        );
        let instance = Arc::new(Instance { name: name.to_owned(), config, bootstrap, publisher });
        let previous = self.by_name.write().unwrap_or_else(|e| e.into_inner()).insert(name.to_owned(), instance);
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

    fn retire(&self, instance: Arc<Instance>) {
        let timeout = self.flush_timeout;
        self.retiring.spawn(async move {
            if let Err(error) = instance.publisher.clone().close(timeout).await {
                tracing::error!(instance = display_name(&instance.name), %error, "previous producer did not flush");
            }
        });
    }

    /// Flushes and closes every producer within `timeout`. Called after the server stopped
    /// taking calls, so no new record can arrive.
    pub async fn shutdown(&self, timeout: Duration) {
        let all: Vec<_> = self.by_name.write().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, i)| i).collect();
        let mut closing = tokio::task::JoinSet::new();
        for instance in all {
            closing.spawn(async move {
                let pending = instance.publisher.in_flight();
                let result = instance.publisher.clone().close(timeout).await;
                (instance, pending, result)
            });
        }
        while let Some(joined) = closing.join_next().await {
            if let Ok((instance, pending, result)) = joined {
                match result {
                    Ok(()) => tracing::info!(instance = display_name(&instance.name), pending, "producer flushed"),
                    Err(error) => tracing::error!(instance = display_name(&instance.name), %error, "producer flush incomplete"),
                }
            }
        }
        self.retiring.close();
        self.retiring.wait().await;
    }
}
