//! The embedded default: librdkafka's in-process mock cluster.
//!
//! The mock cluster speaks the Kafka protocol on loopback ports, with consumer groups and
//! idempotence, but keeps everything in memory: nothing survives the process. It lets a Dapr
//! user try the component with no Kafka at all. librdkafka's handle is not `Send`, so it
//! lives on a thread of its own until [`EmbeddedKafka`] drops.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;

use crate::error::{Error, Result};

/// A running in-process mock cluster.
pub struct EmbeddedKafka {
    bootstrap: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedKafka {
    /// Starts a mock cluster of `brokers` brokers.
    pub fn start(brokers: i32) -> Result<Self> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || match MockCluster::new(brokers) {
                Ok(cluster) => {
                    let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                    let _ = stop_rx.recv();
                    drop(cluster);
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                }
            })
            .map_err(|e| Error::io("starting the embedded cluster thread", e))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| Error::Startup("embedded cluster thread died".into()))?
            .map_err(|e| Error::kafka("starting the embedded mock cluster", e))?;
        Ok(Self { bootstrap, stop: Some(stop), thread: Some(thread) })
    }

    /// Its bootstrap servers (`127.0.0.1:port,...`).
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
