//! Test kit: what an integration test needs to act as daprd against a real bridge.
//!
//! - [`Broker`]: a Kafka to test against, either librdkafka's in-process mock cluster or a
//!   Tansu broker started as a separate process on a free loopback port (killed on drop);
//! - [`BridgeUnderTest`]: the bridge bound to a fresh temporary socket, in this process or as
//!   a child process (for signal and crash tests);
//! - [`Daprd`]: a client that connects over the Unix socket, as daprd does, and sends the
//!   `x-component-instance` header;
//! - [`read_back`]: an independent rdkafka consumer that reads a topic from the beginning.
//!
//! Every test gets random topic and group names ([`unique`]), so tests share nothing.

pub mod bridge;
pub mod broker;
pub mod daprd;
pub mod kafka;

pub use bridge::BridgeUnderTest;
pub use broker::{Broker, BrokerKind};
pub use daprd::Daprd;
pub use kafka::{Record, produce, read_back};

/// Init metadata for a subscribing instance in `group` on `broker`, as the subscribe tests use
/// it: reads from the oldest offset, short group timeouts (Tansu waits about half the session
/// timeout before completing a join), frequent commits, and one record per batch. `extra`
/// comes last, and a key given there wins (daprd's metadata is a map).
pub fn group_init<'a>(broker: &'a Broker, group: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut m = vec![
        ("brokers", broker.bootstrap()),
        ("consumerGroup", group),
        ("initialOffset", "oldest"),
        ("sessionTimeout", broker::GROUP_SESSION_TIMEOUT),
        ("heartbeatInterval", "1000"),
        ("commitInterval", "200ms"),
        ("linger", "1ms"),
        // Tansu 0.6.0 returns nothing when a fetch starts inside a record batch (a consumer
        // resuming at committed offset 5 of a 20-record batch gets no records; real Kafka
        // returns the batch and the client skips to 5). One record per batch keeps every
        // committed position at a batch boundary, so resume tests mean the same on both brokers.
        ("batchMessages", "1"),
    ];
    m.extend_from_slice(extra);
    m
}

/// A name no other test uses: `prefix-<pid>-<counter>-<nanos>`.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Declares one test per broker kind for an `async fn(Broker)` case:
/// `broker_tests!(publish_round_trip);` makes `publish_round_trip::mock` and
/// `publish_round_trip::tansu`.
#[macro_export]
macro_rules! broker_tests {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mock() {
                super::$case($crate::Broker::start($crate::BrokerKind::Mock).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tansu() {
                super::$case($crate::Broker::start($crate::BrokerKind::Tansu).await).await;
            }
        }
    )*};
}
