//! The load generator's own handle on librdkafka's in-process mock cluster.
//!
//! Unlike the bridge's embedded cluster it creates topics with a replication factor (the mock
//! keeps replicas in its metadata, so `acks=all` waits for the mock's ISR) and can inject a
//! broker round-trip time into every broker, which is how tests and `--inject-stall` slow
//! the cluster down. The mock ignores topic configs such as `min.insync.replicas`.
//!
//! librdkafka's mock handle is not `Send`: it lives on a thread of its own and takes
//! commands over a channel until [`MockKafka`] drops.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::mocking::MockCluster;

use crate::error::{Error, Result};

enum Command {
    CreateTopic { name: String, partitions: i32, replication: i32, done: mpsc::Sender<Result<()>> },
    RoundTripTime { rtt: Duration, done: mpsc::Sender<Result<()>> },
}

/// A running mock cluster.
pub struct MockKafka {
    bootstrap: String,
    brokers: i32,
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl MockKafka {
    /// Starts a mock cluster of `brokers` brokers.
    pub fn start(brokers: i32) -> Result<MockKafka> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (commands, command_rx) = mpsc::channel::<Command>();
        let thread = std::thread::Builder::new()
            .name("loadgen-mock-kafka".into())
            .spawn(move || match MockCluster::new(brokers) {
                Ok(cluster) => {
                    let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                    for command in command_rx {
                        match command {
                            Command::CreateTopic { name, partitions, replication, done } => {
                                let _ = done.send(
                                    cluster
                                        .create_topic(&name, partitions, replication)
                                        .map_err(|e| Error::kafka(format!("creating topic {name}"), e)),
                                );
                            }
                            Command::RoundTripTime { rtt, done } => {
                                let set = (1..=brokers).try_for_each(|id| cluster.broker_round_trip_time(id, rtt));
                                let _ = done.send(set.map_err(|e| Error::kafka("setting the mock round-trip time", e)));
                            }
                        }
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| Error::io("starting the mock cluster thread", e))?;
        let bootstrap = ready_rx
            .recv()
            .map_err(|_| Error::Step("mock cluster thread died".into()))?
            .map_err(|e| Error::kafka("starting the mock cluster", e))?;
        Ok(MockKafka { bootstrap, brokers, commands: Some(commands), thread: Some(thread) })
    }

    /// Bootstrap servers (loopback).
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Brokers in the cluster.
    pub fn brokers(&self) -> i32 {
        self.brokers
    }

    /// Creates `name` with `partitions` and `replication` replicas per partition.
    pub fn create_topic(&self, name: &str, partitions: i32, replication: i32) -> Result<()> {
        self.request(|done| Command::CreateTopic { name: name.to_owned(), partitions, replication, done })
    }

    /// Every broker delays its responses by `rtt` (zero: normal speed).
    pub fn set_round_trip_time(&self, rtt: Duration) -> Result<()> {
        self.request(|done| Command::RoundTripTime { rtt, done })
    }

    fn request(&self, command: impl FnOnce(mpsc::Sender<Result<()>>) -> Command) -> Result<()> {
        let stopped = || Error::Step("the mock cluster stopped".into());
        let (done, result) = mpsc::channel();
        self.commands.as_ref().and_then(|c| c.send(command(done)).ok()).ok_or_else(stopped)?;
        result.recv().map_err(|_| stopped())?
    }
}

impl Drop for MockKafka {
    fn drop(&mut self) {
        drop(self.commands.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
