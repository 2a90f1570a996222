//! The tool's own consumer: end-to-end latency, send → consumed, in the same process.
//!
//! It is *assigned* every partition of the fresh topic from the beginning before the first
//! message is sent (no group join, so no rebalance wait), and reads the send stamp from each
//! payload. Producer and consumer share the step's monotonic epoch, so the latency needs no
//! clock synchronisation and has microsecond resolution.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::recorder::{Stamp, StepShared, record_at};
use crate::error::{Error, Result};
use crate::histogram::{self, Latency};
use crate::target::kafka::error_kind;

/// After the producers are done, the drain ends once nothing arrived for this long (the
/// mock cluster keeps only 5 MB per partition, so a consumer that fell behind at full speed
/// never sees some measured messages).
const IDLE_DRAIN: Duration = Duration::from_secs(2);

/// The consumer's `fetch.wait.max.ms` unless the target sets its own. Brokers that do not
/// answer a waiting fetch when data arrives (Tansu, the mock) add up to this much to every
/// end-to-end latency, so it is short and reported in the manifest.
pub const FETCH_WAIT_MAX_MS: &str = "10";

/// What the consumer saw.
pub(crate) struct Consumed {
    pub(crate) e2e: Latency,
    /// End-to-end latency per second of the measured phase (by read time).
    pub(crate) e2e_seconds: Vec<Latency>,
    /// When the first and the last measured message were read (since the epoch).
    pub(crate) first: Option<Duration>,
    pub(crate) last: Duration,
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    pub(crate) errors: BTreeMap<String, u64>,
}

/// An assigned consumer, ready before the producers start.
pub(crate) struct StepConsumer {
    consumer: BaseConsumer,
}

impl StepConsumer {
    pub(crate) fn assign(
        bootstrap: &str,
        topic: &str,
        partitions: u32,
        properties: &[(String, String)],
    ) -> Result<StepConsumer> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("{topic}-reader"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS);
        for (key, value) in properties {
            config.set(key, value);
        }
        let consumer: BaseConsumer =
            config.create().map_err(|e| Error::kafka("creating the end-to-end consumer", e))?;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions as i32 {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .map_err(|e| Error::kafka("building the assignment", e))?;
        }
        consumer.assign(&assignment).map_err(|e| Error::kafka("assigning the end-to-end consumer", e))?;
        Ok(StepConsumer { consumer })
    }

    /// Reads until `expected` measured messages arrived (the producers set it when done,
    /// `u64::MAX` until then) or `drain_until` (ns since epoch, set with it) passes.
    pub(crate) fn run(self, shared: &StepShared, expected: &AtomicU64, drain_until: &AtomicU64) -> Consumed {
        let mut consumed = Consumed {
            e2e: histogram::new(),
            e2e_seconds: Vec::new(),
            first: None,
            last: Duration::ZERO,
            messages: 0,
            bytes: 0,
            errors: BTreeMap::new(),
        };
        let hard_stop = Instant::now() + Duration::from_secs(3600);
        let mut last_message = Instant::now();
        loop {
            let expecting = expected.load(Ordering::Acquire);
            if consumed.messages >= expecting
                || shared.now().as_nanos() as u64 > drain_until.load(Ordering::Acquire)
                || (expecting != u64::MAX && last_message.elapsed() > IDLE_DRAIN)
                || shared.abort.load(Ordering::Relaxed)
                || Instant::now() > hard_stop
            {
                break;
            }
            match self.consumer.poll(Duration::from_millis(50)) {
                None => {}
                Some(Ok(message)) => {
                    let now = shared.now();
                    last_message = Instant::now();
                    let Some(stamp) = message.payload().and_then(Stamp::from_payload) else { continue };
                    if stamp.measured() {
                        let latency = now.saturating_sub(stamp.at());
                        histogram::record(&mut consumed.e2e, latency);
                        record_at(&mut consumed.e2e_seconds, shared.second(now), latency);
                        consumed.first.get_or_insert(now);
                        consumed.last = now;
                        consumed.messages += 1;
                        consumed.bytes += message.payload_len() as u64;
                    }
                }
                Some(Err(e)) => *consumed.errors.entry(format!("consume:{}", error_kind(&e))).or_default() += 1,
            }
        }
        consumed
    }
}
