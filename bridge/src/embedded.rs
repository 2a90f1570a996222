//! The embedded default: librdkafka's in-process mock cluster.
//!
//! The mock cluster speaks the Kafka protocol on loopback ports, with consumer groups and
//! idempotence, but keeps everything in memory: nothing survives the process. It lets a Dapr
//! user try the component with no Kafka at all. Producers auto-create topics on it (4
//! partitions); [`EmbeddedKafka::create_topic`] makes one with a chosen partition count
//! (the mock does not serve the admin API's CreateTopics).
//!
//! librdkafka's handle is not `Send`, so the cluster lives on a thread of its own, which
//! takes commands over a channel until [`EmbeddedKafka`] drops.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;
pub use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::error::{Error, Result};

enum Command {
    CreateTopic { name: String, partitions: i32, done: mpsc::Sender<Result<()>> },
    RoundTripTime { rtt: std::time::Duration, done: mpsc::Sender<Result<()>> },
    Brokers { up: bool, done: mpsc::Sender<Result<()>> },
    RequestErrors { api: RDKafkaApiKey, errors: Vec<RDKafkaRespErr>, done: mpsc::Sender<Result<()>> },
    TopicError { name: String, error: RDKafkaRespErr, done: mpsc::Sender<Result<()>> },
}

/// A running in-process mock cluster.
pub struct EmbeddedKafka {
    bootstrap: String,
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedKafka {
    /// Starts a mock cluster of `brokers` brokers.
    pub fn start(brokers: i32) -> Result<Self> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (commands, command_rx) = mpsc::channel::<Command>();
        let thread = std::thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || match MockCluster::new(brokers) {
                Ok(cluster) => {
                    let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                    // Runs until every sender is gone, i.e. until EmbeddedKafka drops.
                    for command in command_rx {
                        match command {
                            Command::CreateTopic { name, partitions, done } => {
                                let created = cluster
                                    .create_topic(&name, partitions, 1)
                                    .map_err(|e| Error::kafka(format!("creating topic `{name}`"), e));
                                let _ = done.send(created);
                            }
                            Command::Brokers { up, done } => {
                                let set = (1..=brokers).try_for_each(|id| {
                                    if up { cluster.broker_up(id) } else { cluster.broker_down(id) }
                                });
                                let _ = done.send(set.map_err(|e| Error::kafka("setting mock broker state", e)));
                            }
                            Command::TopicError { name, error, done } => {
                                let set = cluster
                                    .topic_error(&name, error)
                                    .map_err(|e| Error::kafka(format!("setting the error of topic `{name}`"), e));
                                let _ = done.send(set);
                            }
                            Command::RequestErrors { api, errors, done } => {
                                cluster.request_errors(api, &errors);
                                let _ = done.send(Ok(()));
                            }
                            Command::RoundTripTime { rtt, done } => {
                                let set = (1..=brokers).try_for_each(|id| cluster.broker_round_trip_time(id, rtt));
                                let _ = done.send(set.map_err(|e| Error::kafka("setting the mock round-trip time", e)));
                            }
                        }
                    }
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
        Ok(Self { bootstrap, commands: Some(commands), thread: Some(thread) })
    }

    /// Its bootstrap servers (`127.0.0.1:port,...`).
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Creates `name` with `partitions` partitions (replication 1).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        self.request(|done| Command::CreateTopic { name: name.to_owned(), partitions, done })
    }

    /// Makes every broker delay its responses by `rtt` (zero restores normal speed): a
    /// stall injected for latency tests.
    pub fn set_round_trip_time(&self, rtt: std::time::Duration) -> Result<()> {
        self.request(|done| Command::RoundTripTime { rtt, done })
    }

    /// Takes every broker down (`up == false`: connections are closed and refused) or brings
    /// them back: a cluster that goes away, for fault tests.
    pub fn set_brokers_up(&self, up: bool) -> Result<()> {
        self.request(|done| Command::Brokers { up, done })
    }

    /// Makes the next requests of kind `api` fail with `errors`, one each, in order: error
    /// injection for fault tests (e.g. `JoinGroup` refused with `GROUP_AUTHORIZATION_FAILED`).
    pub fn push_request_errors(&self, api: RDKafkaApiKey, errors: &[RDKafkaRespErr]) -> Result<()> {
        self.request(|done| Command::RequestErrors { api, errors: errors.to_vec(), done })
    }

    /// Makes metadata requests for `name` answer `error`: with `UNKNOWN_TOPIC_OR_PART`, a
    /// topic that clients see as missing although the mock (which creates topics on produce)
    /// would otherwise create it.
    pub fn set_topic_error(&self, name: &str, error: RDKafkaRespErr) -> Result<()> {
        self.request(|done| Command::TopicError { name: name.to_owned(), error, done })
    }

    /// Sends a command to the cluster's thread and waits for its answer.
    fn request(&self, command: impl FnOnce(mpsc::Sender<Result<()>>) -> Command) -> Result<()> {
        let stopped = || Error::Startup("embedded cluster stopped".into());
        let (done, result) = mpsc::channel();
        self.commands.as_ref().and_then(|c| c.send(command(done)).ok()).ok_or_else(stopped)?;
        result.recv().map_err(|_| stopped())?
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        drop(self.commands.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
