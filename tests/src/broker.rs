//! Brokers for tests: the mock cluster in-process, or Tansu as a real separate process.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dapr_kafka_bridge::embedded::EmbeddedKafka;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// librdkafka's in-process mock cluster (3 brokers).
    Mock,
    /// Tansu, a Kafka-compatible broker, as a child process with in-memory storage.
    Tansu,
}

enum Running {
    Mock(EmbeddedKafka),
    Tansu(Child),
}

/// A running broker; stopped on drop.
pub struct Broker {
    kind: BrokerKind,
    bootstrap: String,
    running: Option<Running>,
}

/// Group settings that keep joins short on both brokers: Tansu waits about half the session
/// timeout before completing a join.
pub const GROUP_SESSION_TIMEOUT: &str = "6000";

impl Broker {
    /// Starts a broker of `kind` and waits until it answers metadata requests.
    pub async fn start(kind: BrokerKind) -> Broker {
        let broker = Self::spawn(kind, &[]);
        broker.wait_until_ready().await;
        broker
    }

    /// Starts Tansu with SASL authentication required (`--authentication`); it does not
    /// answer clients without valid credentials, so there is no readiness check.
    pub async fn tansu_requiring_authentication() -> Broker {
        let broker = Self::spawn(BrokerKind::Tansu, &["--authentication"]);
        let address = broker.bootstrap.clone();
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "tansu never listened on {address}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        broker
    }

    fn spawn(kind: BrokerKind, extra_args: &[&str]) -> Broker {
        let (bootstrap, running) = match kind {
            BrokerKind::Mock => {
                let cluster = EmbeddedKafka::start(3).expect("mock cluster");
                (cluster.bootstrap().to_owned(), Running::Mock(cluster))
            }
            BrokerKind::Tansu => {
                let port = free_port();
                let url = format!("tcp://127.0.0.1:{port}");
                let child = Command::new(tansu_binary())
                    .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
                    .args(["--storage-engine", "memory://tansu/"])
                    .args(extra_args)
                    .env("RUST_LOG", "warn")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("starting tansu");
                (format!("127.0.0.1:{port}"), Running::Tansu(child))
            }
        };
        Broker { kind, bootstrap, running: Some(running) }
    }

    /// Which broker this is.
    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    /// Bootstrap servers.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Creates `topic` with `partitions` partitions and waits until it is known.
    pub async fn create_topic(&self, topic: &str, partitions: i32) {
        match &self.running {
            Some(Running::Mock(cluster)) => cluster.create_topic(topic, partitions).expect("mock create_topic"),
            _ => crate::kafka::create_topic_with_admin(&self.bootstrap, topic, partitions).await,
        }
        crate::kafka::wait_for_topic(&self.bootstrap, topic, partitions).await;
    }

    /// The mock cluster, for fault injection (`None` on Tansu).
    pub fn mock(&self) -> Option<&EmbeddedKafka> {
        match &self.running {
            Some(Running::Mock(cluster)) => Some(cluster),
            _ => None,
        }
    }

    /// Stops the broker now (a broker that goes away).
    pub fn stop(&mut self) {
        match self.running.take() {
            Some(Running::Tansu(mut child)) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Some(Running::Mock(cluster)) => drop(cluster),
            None => {}
        }
    }

    async fn wait_until_ready(&self) {
        let bootstrap = self.bootstrap.clone();
        tokio::task::spawn_blocking(move || {
            let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &bootstrap).create().unwrap();
            let started = Instant::now();
            loop {
                match producer.client().fetch_metadata(None, Duration::from_secs(1)) {
                    Ok(_) => return,
                    Err(e) if started.elapsed() > Duration::from_secs(30) => {
                        panic!("broker at {bootstrap} not ready: {e}")
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        })
        .await
        .unwrap();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Tansu binary: `$TANSU_BIN`, else `tansu` next to cargo's binaries, else on `PATH`.
/// The README's test command installs it; a missing binary is a hard failure, not a skip.
pub fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(path);
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(candidate) = cargo_home.map(|h| h.join("bin/tansu")).filter(|p| p.exists()) {
        return candidate;
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("tansu")).find(|p| p.exists()));
    on_path.expect(
        "Tansu is not installed: run the README's test command (scripts/test), which installs it, \
         or `cargo install tansu --version 0.6.0 --locked --no-default-features --features dynostore`",
    )
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
